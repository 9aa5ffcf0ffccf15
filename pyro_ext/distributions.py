r"""The Concrete / straight-through family as Pyro distributions.

Mirrors ``numpyro_ext/distributions.py`` class for class. Samplers draw their noise in one
line and call a kernel of :mod:`pyro_ext.concrete`; relaxed samples are drawn in log space
(log-simplex, logit) and mapped to the simplex or unit interval by a transform.

Scoring at the pre-image. A float32 Concrete sample at a low temperature often holds exact
zeros (``exp`` underflows), where ``log(value)`` is ``-inf`` and the density ``nan``. The
transforms therefore keep each sample's log-space pre-image: in their own cache
(``cache_size=1``, as torch's transforms) and in ``_PRE_IMAGES``, a table keyed weakly on the
sample tensor's identity that every instance shares. The second lets a prior score the very
tensor a guide drew (Pyro replays the guide's value into the model), the counterpart of the
``intermediates`` that NumPyro's ``replay`` does not hand to the model's ``log_prob`` (the
NumPyro classes keep the same table). A copy (``clone``, ``detach``) is a new point to score:
its pre-image is ``log(value)``, exact to rounding except where rounding lost it (an entry
below ``tiny``, a sigmoid clipped to its bound), which raises a ``ValueError`` under validation.
Under ``torch.compile`` the table is skipped (Dynamo will not trace a weak dictionary) and the
transform's own cache scores the samples of the instance that drew them.

Masks and zeros. A ``-inf`` logit (or a zero probability: ``log 0 = -inf``, never clamped to
``log(eps)``) masks its class, with validation on or off: it is never drawn, and ``log_prob``
and its gradients stay finite for values that miss it (``-inf`` for one that hits it). For
the Concrete classes the law is then the Concrete of the kept classes and the density is with
respect to Lebesgue measure on the kept coordinates bar the last kept one. For the binary
classes a ``-inf`` (``+inf``) logit masks the value 1 (0): a point mass.

Validation. With validation on, categorical logits must be free of NaN and ``+inf`` and keep at
least one class per row (``ValueError`` naming ``logits``); Bernoulli logits may be ``+-inf``.
With validation off nothing reads parameter values (no device sync; traceable), so NaN, ``+inf``
or all-masked rows give NaN samples and scores, as in ``torch.distributions``. Integer
``logits``/``probs`` are promoted to the default float dtype; ``mean``, ``variance`` and
``entropy`` are those of the normalised probabilities.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from pyro.distributions import OneHotCategorical
from pyro.distributions.torch import TransformedDistribution  # type: ignore[attr-defined]  # made at import
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import Distribution, biject_to, constraints, transform_to
from torch.distributions.transforms import SigmoidTransform, Transform
from torch.distributions.utils import lazy_property, logits_to_probs
from torch.utils.weak import WeakTensorKeyDictionary

from relaxed_dists.checks import (
    check_event_size,
    check_n_steps,
    check_positive_scalar,
    check_probs_or_logits,
    check_t_1,
    lost_pre_image,
    out_of_range,
)
from relaxed_dists.clamping import simplex_atol
from relaxed_dists.sample_law import tv_bound, warn_if_biased
from relaxed_dists.shapes import batch_shape_of, broadcast_shapes, check_value_shape

from . import estimators
from ._fused import fused_available, redge_fused
from ._ops import one_hot_argmax, sample_gumbel, sample_logistic, straight_through
from .concrete import (
    _last_kept,
    bernoulli_log_prob,
    binary_concrete_logit_sample,
    categorical_log_prob,
    concrete_log_sample,
    exp_concrete_log_prob,
    logit_binary_concrete_log_prob,
)

__all__ = [
    "ExpRelaxedOneHotCategorical",
    "RelaxedOneHotCategorical",
    "RelaxedOneHotCategoricalStraightThrough",
    "RelaxedBernoulli",
    "RelaxedBernoulliStraightThrough",
    "OneHotCategorical",
    "StraightThrough",
    "ReinMax",
    "REDGE",
    "REDGECov",
    "REINDGE",
    "BernoulliStraightThrough",
    "BernoulliReinMax",
    "BernoulliREDGE",
    "BernoulliREDGECov",
    "BernoulliREINDGE",
]

# --- parameters ----------------------------------------------------------------------


def _validating(validate_args: bool | None) -> bool:
    return Distribution._validate_args if validate_args is None else validate_args


def _probs_or_logits(probs, logits, *, normalise: bool = False) -> tuple[str, torch.Tensor]:
    """The one parameter given, by name, as a floating tensor.

    With ``normalise`` (the categorical classes), ``probs`` is divided by its sum over the last
    dimension, as torch's ``Categorical`` does (``probs / probs.sum(-1, keepdim=True)``): any
    non-negative finite weights with a non-zero sum are accepted. Validation then checks the
    normalised ``probs`` against ``constraints.simplex``, as torch does, so negative, infinite
    or all-zero weights fail under validation only.
    """
    check_probs_or_logits(probs, logits)
    name, param = ("probs", probs) if probs is not None else ("logits", logits)
    if not isinstance(param, torch.Tensor):
        param = torch.as_tensor(param, dtype=torch.get_default_dtype())
    if not (param.is_floating_point() or param.is_complex()):
        # integer (or bool) parameters are promoted to the default float dtype, as a Python
        # number is, so that hyperparameters cast to their dtype stay what they were (an int
        # dtype would turn temperature 0.5 into 0)
        param = param.to(torch.get_default_dtype())
    if normalise and name == "probs" and param.dim() > 0:
        param = param / param.sum(-1, keepdim=True)
    return name, param


def _logits_from_probs(probs: torch.Tensor) -> torch.Tensor:
    """Normalised log-probabilities with ``log 0 = -inf``: a zero-probability class is masked,
    never drawn. torch's ``probs_to_logits`` clamps to ``[eps, 1 - eps]`` instead, so the class
    kept ``log(eps)`` and was drawn (bfloat16: 0.7% of draws, float32: ~1e-7); the double where
    keeps the gradient finite."""
    positive = probs > 0
    log_p = torch.where(positive, torch.log(torch.where(positive, probs, 1.0)), -math.inf)
    return log_p - torch.log(torch.sum(probs, dim=-1, keepdim=True))


def _binary_logits_from_probs(probs: torch.Tensor) -> torch.Tensor:
    """``log p - log(1 - p)`` with ``p = 0 -> -inf`` and ``p = 1 -> +inf`` (no clamping: those
    values are never drawn), finite gradients by the double where."""
    positive, below_one = probs > 0, probs < 1
    log_p = torch.where(positive, torch.log(torch.where(positive, probs, 1.0)), -math.inf)
    log_q = torch.where(below_one, torch.log1p(-torch.where(below_one, probs, 0.0)), -math.inf)
    return log_p - log_q


def _normalised(probs: torch.Tensor) -> torch.Tensor:
    """``probs / sum(probs)``: what ``mean`` and ``entropy`` use even when validation is off and
    the probs given do not sum to one."""
    return probs / torch.sum(probs, dim=-1, keepdim=True)


def _categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``-sum_k p_k log p_k`` from the logits, with ``0 log 0 = 0`` for masked classes."""
    log_p = torch.log_softmax(logits, dim=-1)
    p = torch.exp(log_p)
    return -torch.sum(p * torch.where(p > 0, log_p, 0.0), dim=-1)


def _temperature(temperature, like: torch.Tensor, validate_args: bool | None) -> torch.Tensor:
    """``temperature`` as a tensor of ``like``'s dtype; under validation only (torch's rule for
    every parameter, Python numbers included), checked finite and > 0 (NaN fails).

    A Python number gets the message of :func:`relaxed_dists.checks.check_positive_scalar`;
    a tensor's check reads its values, a device sync that cannot run while tracing.
    """
    validating = _validating(validate_args)
    if validating:
        check_positive_scalar("temperature", temperature)
    temperature = torch.as_tensor(temperature, dtype=like.dtype, device=like.device)
    if validating and not bool(torch.all(torch.isfinite(temperature) & (temperature > 0))):
        raise ValueError(out_of_range("temperature", temperature.detach(), "a finite number > 0"))
    return temperature


def _concrete_infer_shapes(temperature=(), probs=None, logits=None) -> tuple[torch.Size, torch.Size]:
    param_shape = logits if probs is None else probs
    return torch.Size(batch_shape_of(param_shape, temperature=temperature)), torch.Size(param_shape[-1:])


def _atol(dtype: torch.dtype) -> float:
    """Tolerance of the (log-)simplex support checks (the core policy, ``simplex_atol``)."""
    return simplex_atol(torch.finfo(dtype).eps)


class _LogSimplex(constraints.Constraint):
    """Points ``y`` with ``logsumexp(y) == 0`` on the last dimension, within ``_atol``."""

    event_dim = 1

    def check(self, value):
        return torch.abs(torch.logsumexp(value, dim=-1)) <= _atol(value.dtype)


class _Simplex(constraints.Constraint):
    """``constraints.simplex`` with the sum checked to within ``_atol`` (used for validation
    only: ``support`` stays ``constraints.simplex``, which ``biject_to`` knows)."""

    event_dim = 1

    def check(self, value):
        return torch.all(value >= 0, dim=-1) & (torch.abs(torch.sum(value, dim=-1) - 1) <= _atol(value.dtype))


class _LogitsVector(constraints.Constraint):
    """Logits of a categorical: no NaN, no ``+inf``, and at least one entry above ``-inf`` per
    row. A ``-inf`` entry masks its class; ``+inf`` and an all-masked row define no law.
    (``constraints.real_vector`` accepts both, and cannot check an empty batch: it reshapes
    ``(0, K)`` to ``(0, -1)``.)"""

    event_dim = 1

    def check(self, value):
        return torch.all((value == value) & (value < math.inf), dim=-1) & torch.any(value > -math.inf, dim=-1)

    def __repr__(self):
        return "LogitsVector(entries in [-inf, inf), NaN-free, at least one > -inf per row)"


_log_simplex = _LogSimplex()
_simplex = _Simplex()
_logits_vector = _LogitsVector()


@biject_to.register(_LogitsVector)
@transform_to.register(_LogitsVector)
def _to_logits_vector(constraint):
    # unconstrained logits: the transforms of constraints.real_vector (the identity)
    return biject_to(constraints.real_vector)


# --- transforms that keep the pre-image ------------------------------------------------

#: sample tensor -> its log-space pre-image, for every sample a transform below produced.
_PRE_IMAGES = WeakTensorKeyDictionary()


def _remember(x: torch.Tensor, pre_image: torch.Tensor) -> None:
    """Record ``x``'s pre-image in ``_PRE_IMAGES``, except while ``torch.compile`` traces:
    Dynamo refuses to trace ``WeakIdKeyDictionary.__setitem__`` ("Attempted to inline function
    marked as skipped", torch/utils is on its skip list), so a compiled function keeps only the
    transform's own cache, which scores a sample by the instance that drew it."""
    if not torch.compiler.is_compiling():
        _PRE_IMAGES[x] = pre_image


def _recall(x: torch.Tensor) -> torch.Tensor | None:
    """``x``'s recorded pre-image, or None (always None while ``torch.compile`` traces)."""
    return None if torch.compiler.is_compiling() else _PRE_IMAGES.get(x)


class _ExpToSimplexTransform(Transform):
    r"""``x = exp(y)`` from the log-simplex onto the simplex, in the first K-1 coordinates.

    Both densities are with respect to Lebesgue measure on the first K-1 coordinates, so
    ``log|det J| = sum_{k<K} y_k`` (``ExpTransform`` would sum all K).
    """

    domain = _log_simplex
    codomain = constraints.simplex
    bijective = True

    def _call(self, y):
        x = torch.exp(y)
        _remember(x, y)
        return x

    def _inverse(self, x):
        y = _recall(x)
        return torch.log(x) if y is None else y

    def log_abs_det_jacobian(self, y, x):  # type: ignore[override]  # (input, output), called positionally
        # a -inf coordinate is a masked class (x = 0 there): left out of the base measure,
        # with the last kept coordinate in place of the K-th
        masked = torch.isneginf(y)
        y_kept = torch.where(masked, 0.0, y)
        return torch.sum(y_kept, dim=-1) - _last_kept(y_kept, masked)


class _SigmoidTransform(SigmoidTransform):
    """``SigmoidTransform`` (its clipping included) that keeps each sample's logit pre-image."""

    def with_cache(self, cache_size=1):
        return self if self._cache_size == cache_size else _SigmoidTransform(cache_size=cache_size)

    def _call(self, z):
        x = super()._call(z)
        _remember(x, z)
        return x

    def _inverse(self, x):
        z = _recall(x)
        return super()._inverse(x) if z is None else z

    def log_abs_det_jacobian(self, z, x):  # type: ignore[override]  # (input, output), called positionally
        # z = +-inf is the point mass of a +-inf logit (one value masked): no Jacobian
        infinite = torch.isinf(z)
        return torch.where(infinite, 0.0, super().log_abs_det_jacobian(torch.where(infinite, 0.0, z), x))


_LOST_WHERE = {
    "RelaxedOneHotCategorical": "have an entry below the smallest normal float, 0 included, where the logits are "
    "finite (a float32 Concrete entry below exp(-87); common at low temperature)",
    "RelaxedBernoulli": "are at the sampler's clip bounds (<= tiny or >= 1 - eps of the dtype, "
    "0 and 1 included) with finite logits",
}


def _check_pre_image(d: Distribution, value: torch.Tensor, lost: torch.Tensor) -> None:
    """Under validation: a ``value`` with no pre-image in ``_PRE_IMAGES`` whose ``lost`` events
    (``log``/``logit`` of the value is not the pre-image) have no faithful density raises."""
    if _PRE_IMAGES.get(value) is None and bool(torch.any(lost)):
        name = type(d).__name__
        fix = (
            "Pyro's replay hands the guide's own sample to the model, where it is found; a copy "
            "(clone(), detach(), x + 0) is not. Score the sample itself, or sample in log space: "
            "pyro.poutine.reparam(config={site: pyro.infer.reparam.TransformReparam()}) on model "
            "and guide" + (", or use ExpRelaxedOneHotCategorical." if "Categorical" in name else ".")
        )
        raise ValueError(lost_pre_image(name, int(lost.sum()), lost.numel(), _LOST_WHERE[name], fix))


# --- one-hot classes ---------------------------------------------------------------------


class _RelaxedCategoricalBase(TorchDistribution):
    """Parameters, shapes and the log-space Concrete draw shared by the one-hot classes."""

    arg_constraints = {
        "temperature": constraints.positive,
        "probs": constraints.simplex,
        "logits": _logits_vector,
    }
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        name, param = _probs_or_logits(probs, logits, normalise=True)
        if param.dim() == 0:
            raise ValueError(out_of_range(f"{name}.shape", tuple(param.shape), "batch_shape + (K,) with K >= 2"))
        check_event_size(param.shape[-1], name)
        temperature = _temperature(temperature, param, validate_args)
        batch_shape = torch.Size(batch_shape_of(param.shape, temperature=temperature.shape))
        event_shape = param.shape[-1:]
        self.temperature = temperature.expand(batch_shape)
        if name == "probs":
            self.probs = param.expand(batch_shape + event_shape)
        else:
            self.logits = param.expand(batch_shape + event_shape)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    infer_shapes = staticmethod(_concrete_infer_shapes)  # type: ignore[assignment]  # Pyro calls it by keyword

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(_RelaxedCategoricalBase, _instance)
        batch_shape = torch.Size(batch_shape)
        new.temperature = self.temperature.expand(batch_shape)
        if "probs" in self.__dict__:
            new.probs = self.probs.expand(batch_shape + self.event_shape)
        if "logits" in self.__dict__:
            new.logits = self.logits.expand(batch_shape + self.event_shape)
        super(_RelaxedCategoricalBase, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def logits(self) -> torch.Tensor:
        return _logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> torch.Tensor:
        return logits_to_probs(self.logits)

    def _log_sample(self, sample_shape) -> torch.Tensor:
        """A Concrete draw on the log-simplex: Gumbel noise in one line, then the kernel."""
        shape = self._extended_shape(sample_shape)
        gumbels = sample_gumbel(shape, self.logits.dtype, self.logits.device)
        return concrete_log_sample(self.logits, self.temperature, gumbels)


class ExpRelaxedOneHotCategorical(_RelaxedCategoricalBase):
    r"""The ExpConcrete: the log of a Concrete (Gumbel-Softmax) sample, a point of the log-simplex.

    - Forward value: ``y = log_softmax((logits + G) / temperature)`` with ``G`` standard Gumbel.
    - Gradient: the exact reparameterisation gradient of ``y`` with respect to ``logits``
      (or ``probs``) and ``temperature``.
    - ``log_prob(y)``: the ExpConcrete log density with respect to Lebesgue measure on the
      first K-1 coordinates ``y_1 .. y_{K-1}`` (``y_K`` follows from them). It includes the
      Jacobian term ``- y_K``; torch's ``ExpRelaxedCategorical.log_prob`` omits it, so
      ``torch's = ours + y[..., -1]``. Validation checks ``logsumexp(y) == 0`` (within
      ``sqrt(eps)`` of the dtype).

    .. math::
        \log p(y) = \log (K-1)! + (K-1) \log\tau + \sum_k (\ell_k - \tau y_k)
                    - K \operatorname{logsumexp}_k(\ell_k - \tau y_k) - y_K,
        \qquad \ell = \log\operatorname{softmax}(\text{logits}).

    Shapes:
        ``logits``/``probs``: ``batch_shape + (K,)`` (stored broadcast to it), K >= 2;
        ``temperature``: a Python float or a tensor broadcasting to ``batch_shape`` (never to
        the event dimension), stored as ``batch_shape``; ``rsample(sample_shape)``:
        ``sample_shape + batch_shape + (K,)``; ``log_prob``: ``sample_shape + batch_shape``.

    Example:
        >>> d = ExpRelaxedOneHotCategorical(0.5, logits=torch.zeros(3, 4))
        >>> d.batch_shape, d.event_shape
        (torch.Size([3]), torch.Size([4]))
        >>> y = d.rsample((2,))
        >>> y.shape, d.log_prob(y).shape
        (torch.Size([2, 3, 4]), torch.Size([2, 3]))

    References:
        C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution: A Continuous Relaxation
        of Discrete Random Variables. ICLR 2017, arXiv 1611.00712.
        E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax.
        ICLR 2017, arXiv 1611.01144.
    """

    support = _log_simplex

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._log_sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return exp_concrete_log_prob(value, self.logits, self.temperature)


class RelaxedOneHotCategorical(TransformedDistribution):
    r"""The Concrete (Gumbel-Softmax) distribution on the simplex.

    - Forward value: ``x = softmax((logits + G) / temperature)``, computed as ``exp`` of the
      log-space sample of :class:`ExpRelaxedOneHotCategorical`; in float32 at low temperature
      it often holds exact zeros.
    - Gradient: the exact reparameterisation gradient of ``x``.
    - ``log_prob(x)``: the Concrete log density with respect to Lebesgue measure on the first
      K-1 coordinates (torch's ``RelaxedOneHotCategorical`` agrees on interior points).
      A sample drawn by any instance of this class is scored at its log-space pre-image, so it
      is finite at every temperature, exact zeros included; torch's class (``ExpTransform``
      with ``cache_size=0``) scores ``log(x)`` and gives ``-inf``/``nan`` there. Any other tensor
      (a ``clone`` too) is scored at ``log(x)``; under validation one with an entry below
      ``tiny`` (0 included) where the logits are finite raises a ``ValueError`` (its pre-image
      is lost; without validation: ``nan``). Validation accepts sums within ``sqrt(eps)`` of 1.

    .. math::
        p(x) = (K-1)!\, \tau^{K-1} \prod_{k=1}^K
               \frac{\pi_k x_k^{-\tau-1}}{\sum_j \pi_j x_j^{-\tau}},
        \qquad \log p(x) = \log p_{\text{Exp}}(y) - \sum_{k<K} y_k, \quad y = \log x.

    Shapes:
        as :class:`ExpRelaxedOneHotCategorical`: samples ``sample_shape + batch_shape + (K,)``,
        ``log_prob`` ``sample_shape + batch_shape``.

    Example:
        >>> d = RelaxedOneHotCategorical(torch.tensor([0.1, 1.0, 5.0]), logits=torch.zeros(4))
        >>> d.batch_shape, d.event_shape
        (torch.Size([3]), torch.Size([4]))
        >>> x = d.rsample((2,))
        >>> x.shape, d.log_prob(x).shape
        (torch.Size([2, 3, 4]), torch.Size([2, 3]))

    References:
        C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution: A Continuous Relaxation
        of Discrete Random Variables. ICLR 2017, arXiv 1611.00712.
        E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax.
        ICLR 2017, arXiv 1611.01144.
    """

    arg_constraints = _RelaxedCategoricalBase.arg_constraints
    support = constraints.simplex
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        base_dist = ExpRelaxedOneHotCategorical(temperature, probs, logits, validate_args=validate_args)
        super().__init__(base_dist, _ExpToSimplexTransform(cache_size=1), validate_args=validate_args)

    infer_shapes = staticmethod(_concrete_infer_shapes)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(RelaxedOneHotCategorical, _instance)
        return super().expand(batch_shape, _instance=new)

    def _validate_sample(self, value: torch.Tensor) -> None:
        check_value_shape(value.shape, self.batch_shape, self.event_shape)
        if not bool(torch.all(_simplex.check(value))):
            raise ValueError(out_of_range("value", value, "on the simplex (entries >= 0 summing to 1)"))
        # below the smallest normal float (0, or a subnormal with few digits left): log is not y
        tiny = torch.finfo(value.dtype).tiny
        _check_pre_image(self, value, torch.any((value < tiny) & (self.logits > -torch.inf), dim=-1))

    @property
    def temperature(self) -> torch.Tensor:
        return self.base_dist.temperature

    # lazy (not plain) properties, so that argument validation skips them as it does the base's
    @lazy_property
    def logits(self) -> torch.Tensor:
        return self.base_dist.logits

    @lazy_property
    def probs(self) -> torch.Tensor:
        return self.base_dist.probs


class RelaxedOneHotCategoricalStraightThrough(_RelaxedCategoricalBase):
    r"""Straight-through Gumbel-Softmax: exact one-hot samples, Concrete gradients.

    - Forward value: ``one_hot(argmax y)`` for the log-space Concrete sample ``y``, an exact
      draw from ``OneHotCategorical(logits)`` (every entry exactly 0 or 1, in any float dtype).
    - Gradient: that of the relaxed sample ``softmax((logits + G) / temperature)``
      (``hard + (soft - soft.detach())``), a biased surrogate for the categorical's.
    - ``log_prob(value)``: the categorical log-probability of the one-hot ``value``, with
      respect to counting measure on the K one-hot vectors. It depends on ``value`` alone, so
      ``log_prob(x)``, ``log_prob(x.clone())``, ``log_prob(x.detach())`` and a compiled
      ``log_prob`` agree.

    Pyro's ``RelaxedOneHotCategoricalStraightThrough`` instead scores the *relaxed* sample
    (a Concrete density) that it hangs on the hard sample as a ``_unquantize`` attribute: the
    attribute is lost by ``clone``, ``detach``, serialisation or ``torch.compile``, after which
    the same density is evaluated at a one-hot vertex (``-inf``/``nan``). Use this class where
    the model needs exact discrete values (with a ``OneHotCategorical`` or this class as the
    prior); to optimise a Concrete relaxation of the ELBO, use
    :class:`RelaxedOneHotCategorical` in both the model and the guide instead.

    .. math::
        h = \operatorname{onehot}(\arg\max_k (\ell_k + G_k)), \qquad
        \frac{\partial h}{\partial \theta} := \frac{\partial}{\partial \theta}
            \operatorname{softmax}\Big(\frac{\ell + G}{\tau}\Big), \qquad
        \log p(h) = \sum_k h_k \ell_k .

    Shapes:
        as :class:`ExpRelaxedOneHotCategorical`: samples ``sample_shape + batch_shape + (K,)``,
        ``log_prob`` ``sample_shape + batch_shape``.

    Example:
        >>> d = RelaxedOneHotCategoricalStraightThrough(0.5, logits=torch.zeros(2, 1, 5))
        >>> h = d.rsample((3,))
        >>> h.shape, d.log_prob(h).shape, sorted(set(h.flatten().tolist()))
        (torch.Size([3, 2, 1, 5]), torch.Size([3, 2, 1]), [0.0, 1.0])

    References:
        C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution: A Continuous Relaxation
        of Discrete Random Variables. ICLR 2017, arXiv 1611.00712.
        E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax.
        ICLR 2017, arXiv 1611.01144.
        Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients Through
        Stochastic Neurons for Conditional Computation. 2013, arXiv 1308.3432.
    """

    support = constraints.one_hot

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        y = self._log_sample(sample_shape)
        return straight_through(one_hot_argmax(y), torch.exp(y))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return categorical_log_prob(value, self.logits)

    @property
    def mean(self) -> torch.Tensor:
        return _normalised(self.probs)

    @property
    def mode(self) -> torch.Tensor:
        return one_hot_argmax(self.logits)


# --- binary classes ------------------------------------------------------------------------


class _RelaxedBernoulliBase(TorchDistribution):
    """Parameters, shapes and the logit-space binary Concrete draw shared by the binary classes."""

    arg_constraints = {
        "temperature": constraints.positive,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        name, param = _probs_or_logits(probs, logits)
        temperature = _temperature(temperature, param, validate_args)
        try:
            batch_shape = torch.Size(broadcast_shapes(param.shape, temperature.shape))
        except ValueError:
            allowed = f"broadcastable with {name}.shape={tuple(param.shape)}"
            raise ValueError(out_of_range("temperature.shape", tuple(temperature.shape), allowed)) from None
        self.temperature = temperature.expand(batch_shape)
        if name == "probs":
            self.probs = param.expand(batch_shape)
        else:
            self.logits = param.expand(batch_shape)
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(_RelaxedBernoulliBase, _instance)
        batch_shape = torch.Size(batch_shape)
        new.temperature = self.temperature.expand(batch_shape)
        if "probs" in self.__dict__:
            new.probs = self.probs.expand(batch_shape)
        if "logits" in self.__dict__:
            new.logits = self.logits.expand(batch_shape)
        super(_RelaxedBernoulliBase, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def logits(self) -> torch.Tensor:
        return _binary_logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> torch.Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    def _logit_sample(self, sample_shape) -> torch.Tensor:
        """A binary Concrete draw in logit space: logistic noise in one line, then the kernel."""
        shape = self._extended_shape(sample_shape)
        logistic = sample_logistic(shape, self.logits.dtype, self.logits.device)
        return binary_concrete_logit_sample(self.logits, self.temperature, logistic)


class _LogitRelaxedBernoulli(_RelaxedBernoulliBase):
    """The logit of a binary Concrete, ``z = (logits + L) / temperature``: the base of
    :class:`RelaxedBernoulli`; its density is with respect to Lebesgue measure on the line."""

    support = constraints.real

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._logit_sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return logit_binary_concrete_log_prob(value, self.logits, self.temperature)


class RelaxedBernoulli(TransformedDistribution):
    r"""The binary Concrete distribution on the unit interval.

    - Forward value: ``x = sigmoid((logits + L) / temperature)`` with ``L`` standard logistic,
      clipped to ``[tiny, 1 - eps]`` of the dtype by ``SigmoidTransform``.
    - Gradient: the exact reparameterisation gradient of ``x``.
    - ``log_prob(x)``: the binary Concrete log density with respect to Lebesgue measure on
      (0, 1). A sample drawn by any instance of this class is scored at its logit pre-image
      ``z``, exact even where ``x`` was clipped; any other tensor is scored at ``logit(x)``, and
      under validation one at the clip bounds (0 and 1 included) with finite logits raises a
      ``ValueError``: its logit is the bound's, not the sample's.
      For K = 2 it equals :class:`RelaxedOneHotCategorical`'s density at ``(x, 1 - x)``.

    .. math::
        p(x) = \frac{\tau \alpha x^{-\tau-1} (1-x)^{-\tau-1}}{(\alpha x^{-\tau} + (1-x)^{-\tau})^2},
        \qquad \log\alpha = \text{logits}.

    Shapes:
        ``logits``/``probs`` and ``temperature`` broadcast together to ``batch_shape``;
        samples and ``log_prob``: ``sample_shape + batch_shape`` (``event_shape == ()``).

    Example:
        >>> d = RelaxedBernoulli(torch.tensor(0.5), logits=torch.zeros(3))
        >>> x = d.rsample((2,))
        >>> d.batch_shape, x.shape, d.log_prob(x).shape
        (torch.Size([3]), torch.Size([2, 3]), torch.Size([2, 3]))

    References:
        C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution: A Continuous Relaxation
        of Discrete Random Variables. ICLR 2017, arXiv 1611.00712.
        E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax.
        ICLR 2017, arXiv 1611.01144.
    """

    arg_constraints = _RelaxedBernoulliBase.arg_constraints
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        base_dist = _LogitRelaxedBernoulli(temperature, probs, logits, validate_args=validate_args)
        super().__init__(base_dist, _SigmoidTransform(cache_size=1), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(RelaxedBernoulli, _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def temperature(self) -> torch.Tensor:
        return self.base_dist.temperature

    # lazy (not plain) properties, so that argument validation skips them as it does the base's
    @lazy_property
    def logits(self) -> torch.Tensor:
        return self.base_dist.logits

    @lazy_property
    def probs(self) -> torch.Tensor:
        return self.base_dist.probs

    def _validate_sample(self, value: torch.Tensor) -> None:
        super()._validate_sample(value)
        finfo = torch.finfo(value.dtype)
        clipped = (value <= finfo.tiny) | (value >= 1 - finfo.eps)
        _check_pre_image(self, value, clipped & torch.isfinite(self.logits))


class RelaxedBernoulliStraightThrough(_RelaxedBernoulliBase):
    r"""Straight-through binary Concrete: exact 0./1. samples, binary Concrete gradients.

    - Forward value: ``(z > 0)`` as exactly 0. or 1. in the logits' dtype, for the logit-space
      sample ``z``: an exact draw from ``Bernoulli(sigmoid(logits))``.
    - Gradient: that of the relaxed sample ``sigmoid(z)``.
    - ``log_prob(value)``: the Bernoulli log-probability of ``value`` in {0, 1}, with respect
      to counting measure; it depends on ``value`` alone (no attributes on tensors), unlike
      Pyro's ``RelaxedBernoulliStraightThrough``, which scores the relaxed sample it hangs on
      the hard one. Use :class:`RelaxedBernoulli` in model and guide for a relaxed ELBO.

    .. math::
        h = \mathbb{1}[\ell + L > 0], \qquad
        \frac{\partial h}{\partial \theta} := \frac{\partial}{\partial \theta}
            \sigma\Big(\frac{\ell + L}{\tau}\Big), \qquad
        \log p(h) = h \ell - \log(1 + e^{\ell}).

    Shapes:
        as :class:`RelaxedBernoulli`: samples and ``log_prob`` ``sample_shape + batch_shape``.

    Example:
        >>> d = RelaxedBernoulliStraightThrough(0.5, logits=torch.zeros(2, 1))
        >>> h = d.rsample((3,))
        >>> h.shape, d.log_prob(h).shape, set(h.flatten().tolist()) <= {0.0, 1.0}
        (torch.Size([3, 2, 1]), torch.Size([3, 2, 1]), True)

    References:
        C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution: A Continuous Relaxation
        of Discrete Random Variables. ICLR 2017, arXiv 1611.00712.
        E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax.
        ICLR 2017, arXiv 1611.01144.
        Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients Through
        Stochastic Neurons for Conditional Computation. 2013, arXiv 1308.3432.
    """

    support = constraints.boolean

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        z = self._logit_sample(sample_shape)
        return straight_through((z > 0).to(z.dtype), torch.sigmoid(z))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return bernoulli_log_prob(value, self.logits)

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    @property
    def mode(self) -> torch.Tensor:
        return (self.logits > 0).to(self.logits.dtype)


# --- estimator classes: exact one-hot samples, an estimator's gradient -------------------


class _OpenUnitInterval(constraints.Constraint):
    """``(0, 1]``: the range of REDGE's ``t_1`` (NaN fails)."""

    def check(self, value):
        return (value > 0) & (value <= 1)

    def __repr__(self):
        return "OpenClosedInterval(lower_bound=0.0, upper_bound=1.0)"


_t_1_interval = _OpenUnitInterval()


class _OneHotEstimator(TorchDistribution):
    """A categorical over one-hot vectors whose ``rsample`` is a gradient estimator.

    Subclasses name their hyperparameters in ``_hyper`` (tensor-valued, broadcast to
    ``batch_shape``, validated by ``arg_constraints``) and implement ``_sample(logits, shape)``.
    ``log_prob`` is the categorical log-probability of the one-hot value (counting measure on
    the K one-hot vectors), whatever the estimator.
    """

    arg_constraints = {"probs": constraints.simplex, "logits": _logits_vector}
    support = constraints.one_hot
    has_rsample = True
    has_enumerate_support = True
    _hyper: tuple[str, ...] = ()

    @classmethod
    def infer_shapes(cls, probs=None, logits=None, **hyper) -> tuple[torch.Size, torch.Size]:
        param_shape = logits if probs is None else probs
        return torch.Size(batch_shape_of(param_shape, **hyper)), torch.Size(param_shape[-1:])

    def __init__(self, probs=None, logits=None, *, validate_args: bool | None = None, **hyper) -> None:
        name, param = _probs_or_logits(probs, logits, normalise=True)
        if param.dim() == 0:
            raise ValueError(out_of_range(f"{name}.shape", tuple(param.shape), "batch_shape + (K,) with K >= 2"))
        check_event_size(param.shape[-1], name)
        hyper = {k: torch.as_tensor(v, dtype=param.dtype, device=param.device) for k, v in hyper.items()}
        batch_shape = torch.Size(batch_shape_of(param.shape, **{k: v.shape for k, v in hyper.items()}))
        event_shape = param.shape[-1:]
        for k, v in hyper.items():
            setattr(self, k, v.expand(batch_shape))
        setattr(self, name, param.expand(batch_shape + event_shape))
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        for k in self._hyper:
            setattr(new, k, getattr(self, k).expand(batch_shape))
        for name in ("probs", "logits"):
            if name in self.__dict__:
                setattr(new, name, getattr(self, name).expand(batch_shape + self.event_shape))
        new.__dict__.update({k: v for k, v in self.__dict__.items() if k.startswith("_py_")})
        super(_OneHotEstimator, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def logits(self) -> torch.Tensor:
        return _logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> torch.Tensor:
        return logits_to_probs(self.logits)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        return self._sample(self.logits.expand(shape), shape)

    def _gumbels(self, shape) -> torch.Tensor:
        return sample_gumbel(shape, self.logits.dtype, self.logits.device)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return categorical_log_prob(value, self.logits)

    @property
    def mean(self) -> torch.Tensor:
        return _normalised(self.probs)

    @property
    def mode(self) -> torch.Tensor:
        return one_hot_argmax(self.logits)

    @property
    def variance(self) -> torch.Tensor:
        return self.mean * (1 - self.mean)

    def entropy(self) -> torch.Tensor:
        return _categorical_entropy(self.logits)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        k = self.event_shape[0]
        values = torch.eye(k, dtype=self.logits.dtype, device=self.logits.device)
        values = values.view((k,) + (1,) * len(self.batch_shape) + (k,))
        return values.expand((k,) + self.batch_shape + (k,)) if expand else values


_ESTIMATOR_LOG_PROB = """
    - ``log_prob(value)``: the categorical log-probability ``sum(value * log_softmax(logits))``
      of the one-hot ``value`` (counting measure on the K one-hot vectors), so a guide with
      this class and a model with ``OneHotCategorical`` give the discrete ELBO."""

_NOMINAL_LAW = """
    - The law of the samples is *not* the nominal ``Cat(probs)`` unless ``t_1 = 1``; ``log_prob``,
      ``mean``, ``variance``, ``entropy`` and the KL registrations are the nominal categorical's.
      ``sample_law_tv`` gives the measured worst-case TV between the two at this
      ``(n_steps, t_1)``, ``sample_law(n)`` estimates the samples' law on these logits, and the
      constructor warns (``relaxed_dists.sample_law.SampleLawWarning``) when the worst case
      exceeds ``relaxed_dists.sample_law.WARN_TV`` (0.1)."""


class StraightThrough(_OneHotEstimator):
    __doc__ = (
        r"""Straight-through estimator (Bengio et al. 2013) as a distribution.

    - Forward value: an exact one-hot ``h ~ Cat(softmax(logits))``.
    - Gradient: that of ``softmax(logits)`` (``h + (p - p.detach())``), biased.
    """
        + _ESTIMATOR_LOG_PROB
        + r"""

    .. math:: h \sim \mathrm{Cat}(\pi),\quad \pi = \mathrm{softmax}(\ell),\quad
              \nabla_\ell := J_\pi^\top g = \pi \odot (g - \langle \pi, g\rangle).

    Shapes:
        ``logits.shape == batch_shape + (K,)``; samples ``sample_shape + batch_shape + (K,)``;
        ``log_prob`` returns ``sample_shape + batch_shape``.

    Example:
        >>> d = StraightThrough(logits=torch.zeros(3, 4))
        >>> d.rsample((2,)).shape, d.log_prob(d.rsample()).shape
        (torch.Size([2, 3, 4]), torch.Size([3]))

    References:
        Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients Through
        Stochastic Neurons for Conditional Computation. 2013, arXiv 1308.3432.
    """
    )

    def __init__(self, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        super().__init__(probs, logits, validate_args=validate_args)

    def _sample(self, logits, shape):
        return estimators.straight_through(logits, self._gumbels(shape))[0]


class ReinMax(_OneHotEstimator):
    __doc__ = (
        r"""ReinMax (Liu et al. 2023): exact one-hot samples with a second-order (Heun) gradient.

    - Forward value: an exact one-hot ``h ~ Cat(softmax(logits))``.
    - Gradient: ``2 J_{pi_1}^T g - J_{pi_0}^T g / 2`` with ``pi_0 = softmax(logits)`` and
      ``pi_1 = (softmax(logits / temperature) + h) / 2``, centred. ``temperature`` enters the
      backward pass only and receives no gradient.
    """
        + _ESTIMATOR_LOG_PROB
        + r"""

    .. math:: \nabla_\ell := 2 J_{\pi_1}^\top g - \tfrac12 J_{\pi_0}^\top g,\qquad
              J_p^\top g = p \odot (g - \langle p, g\rangle).

    Shapes:
        as :class:`StraightThrough`; ``temperature`` broadcasts to ``batch_shape``.

    Example:
        >>> d = ReinMax(1.0, logits=torch.zeros(3, 4))
        >>> d.rsample((2,)).shape
        torch.Size([2, 3, 4])

    References:
        L. Liu, C. Dong, X. Liu, B. Yu, J. Gao. Bridging Discrete and Backpropagation:
        Straight-Through and Beyond. NeurIPS 2023, arXiv 2304.08612.
    """
    )

    arg_constraints = {**_OneHotEstimator.arg_constraints, "temperature": constraints.positive}
    _hyper = ("temperature",)

    def __init__(self, temperature=1.0, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        if _validating(validate_args):  # tensors: by arg_constraints, under validation too
            check_positive_scalar("temperature", temperature)
        super().__init__(probs, logits, validate_args=validate_args, temperature=temperature)

    def _sample(self, logits, shape):
        return estimators.reinmax(logits, self.temperature, self._gumbels(shape))[0]


if TYPE_CHECKING:
    # To the type checker the mixins below are the host distributions they are mixed into (their
    # attributes and super() calls are the host's); at run time they are plain classes.
    _Host = Any
else:
    _Host = object


class _REDGEKnobs(_Host):
    """``n_steps`` and ``t_1`` of the REDGE family, shared by the one-hot and the Bernoulli classes:
    their checks, the bias warning, ``expand`` and the measured sample law. Put first among the
    bases, before the estimator base whose ``__init__`` takes ``t_1`` as a hyperparameter."""

    def __init__(
        self, probs=None, logits=None, n_steps: int = 5, t_1=0.5, *, validate_args: bool | None = None
    ) -> None:
        self.n_steps = check_n_steps(n_steps)
        if _validating(validate_args):  # tensors: by arg_constraints, under validation too
            check_t_1(t_1)
        # A Python-float t_1 is kept as such: it lets the schedule be built from floats and
        # allows the fused CUDA kernel; a tensor t_1 is differentiable.
        self._py_t_1 = float(t_1) if isinstance(t_1, (int, float)) else None
        super().__init__(probs, logits, validate_args=validate_args, t_1=t_1)
        if self._py_t_1 is not None:  # a tensor t_1 is not read here (a device sync; traced)
            warn_if_biased(self._law_name, self.n_steps, self._py_t_1)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new.n_steps = self.n_steps
        return new

    @property
    def sample_law_tv(self) -> float:
        """Measured worst-case TV between the law of this class's samples and the nominal one at its
        ``(n_steps, t_1)`` (:func:`relaxed_dists.sample_law.tv_bound`, measured on the one-hot class
        over K from 2 to 100: for a Bernoulli class a bound); at the smallest ``t_1`` of a batch
        (reads a tensor ``t_1``, a device sync)."""
        t_1 = self._py_t_1 if self._py_t_1 is not None else float(self.t_1.detach().min())
        return tv_bound(self._law_name, self.n_steps, t_1)

    def sample_law(self, n_samples: int = 10_000) -> torch.Tensor:
        """Monte-Carlo estimate of the law that ``sample`` follows on these logits: the mean of
        ``n_samples`` draws (one-hot: the class frequencies, ``batch_shape + (K,)``; Bernoulli:
        ``P(h = 1)``, ``batch_shape``), standard error at most ``0.5 / sqrt(n_samples)``; compare it
        with ``probs``, the law ``log_prob`` describes."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(out_of_range("n_samples", n_samples, "an integer >= 1"))
        with torch.no_grad():
            return self.sample((n_samples,)).mean(0)

    def _t_1(self):
        return self._py_t_1 if self._py_t_1 is not None else self.t_1


class _REDGEBase(_REDGEKnobs, _OneHotEstimator):
    arg_constraints = {**_OneHotEstimator.arg_constraints, "t_1": _t_1_interval}
    _hyper = ("t_1",)

    def _noise(self, shape):
        """``(eps, gumbels)``: the Gaussian start of the chain and the final draw's Gumbel noise."""
        return torch.randn(shape, dtype=self.logits.dtype, device=self.logits.device), self._gumbels(shape)


class REDGE(_REDGEBase):
    __doc__ = (
        r"""REDGE (Gourevitch et al. 2026): categorical reparameterisation by a few DDIM steps
    with the closed-form denoiser ``softmax(logits + alpha_t x_t / sigma_t^2)``.

    - Forward value: an exact one-hot ``h ~ Cat(x0_hat)``, where ``x0_hat`` is the denoiser's
      output at ``alpha = 1 - t_1`` after ``n_steps - 1`` DDIM steps from ``eps ~ N(0, I)``.
      ``h`` follows ``softmax(logits)`` exactly only at ``t_1 = 1``; at small ``t_1`` with few
      steps it is biased toward the mode (``pyro_ext.diagnostics`` measures it).
    - Gradient: that of ``x0_hat`` through the whole chain (straight-through on the last
      step), including ``t_1`` when it is a tensor that requires grad.
    - ``hard=False``: ``rsample`` returns ``x0_hat`` itself (support: the simplex); its density
      is intractable and ``log_prob`` raises.
    """
        + _ESTIMATOR_LOG_PROB
        + _NOMINAL_LAW
        + r"""

    .. math::
        x_{t} \leftarrow \alpha_s \hat x_0 + \sigma_s \frac{x_t - \alpha_t \hat x_0}{\sigma_t},\qquad
        \hat x_0(x_t) = \mathrm{softmax}\Big(\ell + \frac{\alpha_t x_t}{\sigma_t^2}\Big),\qquad
        \alpha \in [1, \mathrm{linspace}(1 - t_1, 10^{-4}, n - 1)],\ \sigma = 1 - \alpha.

    Shapes:
        ``logits.shape == batch_shape + (K,)``; ``t_1`` broadcasts to ``batch_shape``; samples
        ``sample_shape + batch_shape + (K,)``; ``log_prob`` returns ``sample_shape + batch_shape``.

    Example:
        >>> d = REDGE(logits=torch.zeros(3, 4), n_steps=5, t_1=0.5)
        >>> h = d.rsample((2,))
        >>> h.shape, d.log_prob(h).shape
        (torch.Size([2, 3, 4]), torch.Size([2, 3]))

    References:
        S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical
        Reparameterization with Denoising Diffusion models. 2026, arXiv 2601.00781.
    """
    )

    _law_name = "redge"

    def __init__(
        self,
        probs=None,
        logits=None,
        n_steps: int = 5,
        t_1=0.5,
        *,
        hard: bool = True,
        validate_args: bool | None = None,
    ) -> None:
        self.hard = bool(hard)
        super().__init__(probs, logits, n_steps, t_1, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = super().expand(batch_shape, _instance)
        new.hard = self.hard
        return new

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self):
        return constraints.one_hot if self.hard else constraints.simplex

    def _sample(self, logits, shape):
        t_1 = self._t_1()
        if fused_available(logits, t_1):
            hard, soft = redge_fused(logits, self.n_steps, t_1, store_soft=not self.hard)
        else:
            hard, soft = estimators.redge(logits, self.n_steps, t_1, *self._noise(shape))
        return hard if self.hard else soft

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if not self.hard:
            raise NotImplementedError(
                "REDGE(hard=False) samples the denoiser output x0_hat, whose density is intractable; "
                "use hard=True, whose log_prob is the categorical log-probability of the one-hot sample"
            )
        return super().log_prob(value)


class REDGECov(_REDGEBase):
    __doc__ = (
        r"""REDGE-cov (Gourevitch et al. 2026): REDGE with a per-class Gaussian variance
    ``max(p (1 - p), 0.1)``, ``p = softmax(logits)``, and the start ``p + sqrt(var) eps``.

    - Forward value: an exact one-hot ``h ~ Cat(x0_hat)`` (biased toward the mode at small ``t_1``).
    - Gradient: that of ``x0_hat`` through the whole chain, ``p`` and ``var`` included.
    """
        + _ESTIMATOR_LOG_PROB
        + _NOMINAL_LAW
        + r"""

    .. math:: \hat x_0 = \mathrm{softmax}\Big(\ell + \frac{\alpha x - \alpha\sigma p - \alpha^2/2}{v\,\sigma^2}\Big),
              \quad v = \max(p(1-p), 0.1).

    Shapes:
        as :class:`REDGE`.

    Example:
        >>> REDGECov(logits=torch.zeros(3, 4)).rsample((2,)).shape
        torch.Size([2, 3, 4])

    References:
        S. Gourevitch et al. Categorical Reparameterization with Denoising Diffusion models.
        2026, arXiv 2601.00781.
    """
    )

    _law_name = "redge_cov"

    def _sample(self, logits, shape):
        return estimators.redge_cov(logits, self.n_steps, self._t_1(), *self._noise(shape))[0]


class REINDGE(_REDGEBase):
    __doc__ = (
        r"""REINDGE (Gourevitch et al. 2026): REDGE's trajectory with ReinMax's correction at the
    last step.

    - Forward value: an exact one-hot ``h ~ Cat(x0_hat)``, as :class:`REDGE`.
    - Gradient: the chain gradient through the last step's state ``x_t`` plus
      ``(J^T g + <g, D> D) / 2`` with ``D = h - x0_hat`` and ``J`` the last denoiser's logits Jacobian.
    """
        + _ESTIMATOR_LOG_PROB
        + _NOMINAL_LAW
        + r"""

    .. math:: \nabla_\ell := \nabla_\ell^{x_t} + \tfrac12\big(J^\top g + \langle g, D\rangle D\big).

    Shapes:
        as :class:`REDGE`.

    Example:
        >>> REINDGE(logits=torch.zeros(3, 4)).rsample((2,)).shape
        torch.Size([2, 3, 4])

    References:
        S. Gourevitch et al. Categorical Reparameterization with Denoising Diffusion models.
        2026, arXiv 2601.00781.
    """
    )

    _law_name = "reindge"

    def _sample(self, logits, shape):
        return estimators.reindge(logits, self.n_steps, self._t_1(), *self._noise(shape))[0]


# --- Bernoulli estimator classes: exact 0./1. samples, an estimator's gradient -------------


class _BernoulliEstimator(TorchDistribution):
    """A Bernoulli whose ``rsample`` is a gradient estimator: the K = 2 case of
    :class:`_OneHotEstimator` on one coordinate (``estimators.binary_*``).

    Parameters as :class:`_RelaxedBernoulliBase` (``probs`` in [0, 1] or ``logits``, ``+-inf``
    allowed: a point mass); hyperparameters named in ``_hyper`` broadcast with them to
    ``batch_shape``; ``event_shape == ()``. ``log_prob`` is the Bernoulli log-probability of the
    0./1. value (counting measure), whatever the estimator.
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_rsample = True
    has_enumerate_support = True
    _hyper: tuple[str, ...] = ()

    @classmethod
    def infer_shapes(cls, probs=None, logits=None, **hyper) -> tuple[torch.Size, torch.Size]:
        param_shape = logits if probs is None else probs
        return torch.Size(broadcast_shapes(param_shape, *hyper.values())), torch.Size()

    def __init__(self, probs=None, logits=None, *, validate_args: bool | None = None, **hyper) -> None:
        name, param = _probs_or_logits(probs, logits)
        hyper = {k: torch.as_tensor(v, dtype=param.dtype, device=param.device) for k, v in hyper.items()}
        batch_shape = torch.Size(param.shape)
        for k, v in hyper.items():
            try:
                batch_shape = torch.Size(broadcast_shapes(batch_shape, v.shape))
            except ValueError:
                allowed = f"broadcastable with {name}.shape={tuple(param.shape)}"
                raise ValueError(out_of_range(f"{k}.shape", tuple(v.shape), allowed)) from None
        for k, v in hyper.items():
            setattr(self, k, v.expand(batch_shape))
        setattr(self, name, param.expand(batch_shape))
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        for k in self._hyper:
            setattr(new, k, getattr(self, k).expand(batch_shape))
        for name in ("probs", "logits"):
            if name in self.__dict__:
                setattr(new, name, getattr(self, name).expand(batch_shape))
        new.__dict__.update({k: v for k, v in self.__dict__.items() if k.startswith("_py_")})
        super(_BernoulliEstimator, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def logits(self) -> torch.Tensor:
        return _binary_logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> torch.Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        return self._sample(self.logits.expand(shape), shape)

    def _logistic(self, shape) -> torch.Tensor:
        return sample_logistic(shape, self.logits.dtype, self.logits.device)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return bernoulli_log_prob(value, self.logits)

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    @property
    def mode(self) -> torch.Tensor:
        return (self.logits > 0).to(self.logits.dtype)

    @property
    def variance(self) -> torch.Tensor:
        return self.probs * (1 - self.probs)

    def entropy(self) -> torch.Tensor:
        """``log(1 + e^l) - p l``, and 0 at ``l = +-inf`` (a point mass), with finite gradients there."""
        infinite = torch.isinf(self.logits)
        logits = torch.where(infinite, 0.0, self.logits)
        entropy = torch.logaddexp(logits, torch.zeros_like(logits)) - torch.sigmoid(logits) * logits
        return torch.where(infinite, 0.0, entropy)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        values = torch.arange(2, dtype=self.logits.dtype, device=self.logits.device)
        values = values.view((-1,) + (1,) * len(self.batch_shape))
        return values.expand((-1,) + self.batch_shape) if expand else values


_BERNOULLI_LOG_PROB = """
    - ``log_prob(value)``: the Bernoulli log-probability ``value * l - log(1 + e^l)`` of the 0./1.
      ``value`` (counting measure on {0, 1}), so a guide with this class and a model with
      ``Bernoulli`` give the discrete ELBO. ``mean``, ``mode``, ``variance``, ``entropy`` and
      ``enumerate_support`` are those of ``Bernoulli(sigmoid(logits))``."""

_BERNOULLI_NOMINAL_LAW = """
    - The law of the samples is *not* the nominal ``Bernoulli(probs)`` unless ``t_1 = 1``;
      ``log_prob``, the moments and the KL registrations are the nominal Bernoulli's.
      ``sample_law_tv`` gives the measured worst-case TV of the one-hot class at this
      ``(n_steps, t_1)`` (over K from 2 to 100, so an upper bound here), ``sample_law(n)``
      estimates ``P(h = 1)`` on these logits, and the constructor warns
      (``relaxed_dists.sample_law.SampleLawWarning``) when the worst case exceeds
      ``relaxed_dists.sample_law.WARN_TV`` (0.1)."""


class BernoulliStraightThrough(_BernoulliEstimator):
    __doc__ = (
        r"""Straight-through estimator (Bengio et al. 2013) for a Bernoulli variable.

    - Forward value: exactly 0. or 1., ``h = 1[l + L > 0] ~ Bernoulli(sigmoid(l))`` with ``L``
      standard logistic.
    - Gradient: that of ``p = sigmoid(l)`` (``h + (p - p.detach())``), biased. The K = 2 case
      of :class:`StraightThrough`.
    """
        + _BERNOULLI_LOG_PROB
        + r"""

    .. math:: h = \mathbb{1}[\ell + L > 0],\qquad \nabla_\ell := p (1 - p)\, g .

    Shapes:
        ``logits``/``probs``: ``batch_shape`` (``event_shape == ()``); samples and ``log_prob``:
        ``sample_shape + batch_shape``.

    Example:
        >>> d = BernoulliStraightThrough(logits=torch.zeros(3))
        >>> h = d.rsample((2,))
        >>> h.shape, d.log_prob(h).shape, set(h.flatten().tolist()) <= {0.0, 1.0}
        (torch.Size([2, 3]), torch.Size([2, 3]), True)

    References:
        Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients Through
        Stochastic Neurons for Conditional Computation. 2013, arXiv 1308.3432.
    """
    )

    def __init__(self, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        super().__init__(probs, logits, validate_args=validate_args)

    def _sample(self, logits, shape):
        return estimators.binary_straight_through(logits, self._logistic(shape))[0]


class BernoulliReinMax(_BernoulliEstimator):
    __doc__ = (
        r"""ReinMax (Liu et al. 2023) for a Bernoulli variable: exact 0./1. samples with a
    second-order (Heun) gradient, the K = 2 case of :class:`ReinMax`.

    - Forward value: exactly 0. or 1., ``h ~ Bernoulli(sigmoid(l))``.
    - Gradient: ``(2 pi_1 (1 - pi_1) - p (1 - p) / 2) g`` with ``p = sigmoid(l)`` and
      ``pi_1 = (sigmoid(l / temperature) + h) / 2``. ``temperature`` enters the backward pass
      only and receives no gradient.
    """
        + _BERNOULLI_LOG_PROB
        + r"""

    .. math:: \nabla_\ell := \big(2 \pi_1 (1 - \pi_1) - \tfrac12 p (1 - p)\big)\, g .

    Shapes:
        as :class:`BernoulliStraightThrough`; ``temperature`` broadcasts with the logits to
        ``batch_shape``.

    Example:
        >>> d = BernoulliReinMax(1.0, logits=torch.zeros(3))
        >>> d.rsample((2,)).shape
        torch.Size([2, 3])

    References:
        L. Liu, C. Dong, X. Liu, B. Yu, J. Gao. Bridging Discrete and Backpropagation:
        Straight-Through and Beyond. NeurIPS 2023, arXiv 2304.08612.
    """
    )

    arg_constraints = {**_BernoulliEstimator.arg_constraints, "temperature": constraints.positive}
    _hyper = ("temperature",)

    def __init__(self, temperature=1.0, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        if _validating(validate_args):  # tensors: by arg_constraints, under validation too
            check_positive_scalar("temperature", temperature)
        super().__init__(probs, logits, validate_args=validate_args, temperature=temperature)

    def _sample(self, logits, shape):
        return estimators.binary_reinmax(logits, self.temperature, self._logistic(shape))[0]


class _BernoulliREDGEBase(_REDGEKnobs, _BernoulliEstimator):
    arg_constraints = {**_BernoulliEstimator.arg_constraints, "t_1": _t_1_interval}
    _hyper = ("t_1",)

    def _noise(self, shape):
        """``(eps, L)``: the chain's start ``eps_1 - eps_0 ~ N(0, 2)`` and the final draw's logistic noise."""
        eps = math.sqrt(2.0) * torch.randn(shape, dtype=self.logits.dtype, device=self.logits.device)
        return eps, self._logistic(shape)


class BernoulliREDGE(_BernoulliREDGEBase):
    __doc__ = (
        r"""REDGE (Gourevitch et al. 2026) for a Bernoulli variable: the K = 2 case of
    :class:`REDGE`, its DDIM chain run on the difference ``d = x_1 - x_0`` of the two coordinates.

    - Forward value: exactly 0. or 1., ``h = 1[u + L > 0] ~ Bernoulli(q)``, where
      ``q = sigmoid(u)`` is the denoiser's output at ``alpha = 1 - t_1`` after ``n_steps - 1``
      DDIM steps from ``d = eps ~ N(0, 2)``. ``h`` follows ``sigmoid(logits)`` exactly only at
      ``t_1 = 1``; at small ``t_1`` with few steps it is biased toward the mode.
    - Gradient: that of ``q`` through the whole chain (straight-through on the last step),
      including ``t_1`` when it is a tensor that requires grad.
    """
        + _BERNOULLI_LOG_PROB
        + _BERNOULLI_NOMINAL_LAW
        + r"""

    .. math::
        q = \sigma\Big(\ell + \frac{\alpha_t d}{\sigma_t^2}\Big),\qquad
        d \leftarrow \alpha_s (2q - 1) + \sigma_s \frac{d - \alpha_t (2q - 1)}{\sigma_t},\qquad
        \alpha \in [1, \mathrm{linspace}(1 - t_1, 10^{-4}, n - 1)],\ \sigma = 1 - \alpha.

    Shapes:
        ``logits``/``probs`` and ``t_1`` broadcast to ``batch_shape``; samples and ``log_prob``:
        ``sample_shape + batch_shape``.

    Example:
        >>> d = BernoulliREDGE(logits=torch.zeros(3), n_steps=5, t_1=0.5)
        >>> h = d.rsample((2,))
        >>> h.shape, d.log_prob(h).shape
        (torch.Size([2, 3]), torch.Size([2, 3]))

    References:
        S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical
        Reparameterization with Denoising Diffusion models. 2026, arXiv 2601.00781.
    """
    )

    _law_name = "redge"

    def _sample(self, logits, shape):
        return estimators.binary_redge(logits, self.n_steps, self._t_1(), *self._noise(shape))[0]


class BernoulliREDGECov(_BernoulliREDGEBase):
    __doc__ = (
        r"""REDGE-cov (Gourevitch et al. 2026) for a Bernoulli variable: the K = 2 case of
    :class:`REDGECov`; both classes share the variance ``v = max(p (1 - p), 0.1)``,
    ``p = sigmoid(logits)``, and the chain starts at ``d = (2p - 1) + sqrt(v) eps``.

    - Forward value: exactly 0. or 1., ``h ~ Bernoulli(q)`` (biased toward the mode at small ``t_1``).
    - Gradient: that of ``q`` through the whole chain, ``p`` and ``v`` included.
    """
        + _BERNOULLI_LOG_PROB
        + _BERNOULLI_NOMINAL_LAW
        + r"""

    .. math:: q = \sigma\Big(\ell + \frac{\alpha\,(d - \sigma (2p - 1))}{v\,\sigma^2}\Big),
              \quad v = \max(p(1-p), 0.1).

    Shapes:
        as :class:`BernoulliREDGE`.

    Example:
        >>> BernoulliREDGECov(logits=torch.zeros(3)).rsample((2,)).shape
        torch.Size([2, 3])

    References:
        S. Gourevitch et al. Categorical Reparameterization with Denoising Diffusion models.
        2026, arXiv 2601.00781.
    """
    )

    _law_name = "redge_cov"

    def _sample(self, logits, shape):
        return estimators.binary_redge_cov(logits, self.n_steps, self._t_1(), *self._noise(shape))[0]


class BernoulliREINDGE(_BernoulliREDGEBase):
    __doc__ = (
        r"""REINDGE (Gourevitch et al. 2026) for a Bernoulli variable: the K = 2 case of
    :class:`REINDGE`, REDGE's trajectory with ReinMax's correction at the last step.

    - Forward value: exactly 0. or 1., as :class:`BernoulliREDGE`.
    - Gradient: the chain gradient through the last step's state plus
      ``(q (1 - q) + D^2) g / 2`` with ``D = h - q``, in place of the last denoiser's direct path.
    """
        + _BERNOULLI_LOG_PROB
        + _BERNOULLI_NOMINAL_LAW
        + r"""

    .. math:: \nabla_\ell := \nabla_\ell^{d} + \tfrac12\big(q (1 - q) + D^2\big)\, g .

    Shapes:
        as :class:`BernoulliREDGE`.

    Example:
        >>> BernoulliREINDGE(logits=torch.zeros(3)).rsample((2,)).shape
        torch.Size([2, 3])

    References:
        S. Gourevitch et al. Categorical Reparameterization with Denoising Diffusion models.
        2026, arXiv 2601.00781.
    """
    )

    _law_name = "reindge"

    def _sample(self, logits, shape):
        return estimators.binary_reindge(logits, self.n_steps, self._t_1(), *self._noise(shape))[0]
