r"""NumPyro distribution classes of the Concrete / straight-through family.

Mirrors ``pyro_ext/distributions.py`` class for class (same names, same constructor
signatures). Samplers draw their noise in one or two lines with ``numpyro_ext._ops``
and call the pure kernels of :mod:`numpyro_ext.concrete`; densities are those kernels.
The estimator classes (``StraightThrough``, ``ReinMax``, ``REDGE``, ``REDGECov``,
``REINDGE``) call the kernels of :mod:`numpyro_ext.estimators` and score the categorical.

Validation. Shape errors (``probs``/``logits`` given both or neither, no event
dimension, ``K < 2``, a ``temperature`` that does not broadcast to the batch shape) and
a Python-number ``temperature`` outside ``(0, inf)`` always raise ``ValueError``. With
validation on (``validate_args=True``, or ``None`` under NumPyro's global default, which
``numpyro.enable_validation`` sets and NumPyro 0.22 starts on), array parameters and the
``value`` passed to ``log_prob`` are checked too, with the messages of
:mod:`relaxed_dists.checks`, as NumPyro checks its own classes: a bad parameter raises
``ValueError``, also inside ``jit`` when it is a constant (constructors evaluate constant
parameters eagerly); an out-of-support ``value`` warns (``UserWarning`` "Out-of-support
values provided to log prob method...") and scores ``-inf``. Traced values (arguments of
``jit``, ``vmap``, ``grad``) cannot be checked: their parameter checks are skipped and an
out-of-support traced ``value`` scores ``-inf`` without a warning.

Masking. A ``-inf`` logit, or a zero in ``probs``, masks its class in every class: it is never
drawn, ``log_prob`` and its gradients stay finite (double wheres keep ``0 * -inf`` out), and the
relaxed classes follow the Concrete of the kept classes (density with respect to Lebesgue
measure on the kept coordinates bar the last; one kept class is a point mass, scored 0). A
Bernoulli logit of ``-inf`` or ``+inf`` (``probs`` 0 or 1) is a certain outcome, scored the same
way. Under validation, NaN, ``+inf`` categorical logits and rows with every class masked raise
``ValueError`` naming ``logits``. Integer parameters are promoted to the default float dtype.

References
----------
- C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution. ICLR 2017, arXiv 1611.00712.
- E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.
- Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients Through Stochastic
  Neurons. 2013, arXiv 1308.3432.
"""

from __future__ import annotations

import contextvars
import functools
import math
import numbers
import warnings
import weakref
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.distribution import Distribution, ExpandedDistribution, TransformedDistribution
from numpyro.distributions.transforms import ParameterFreeTransform, SigmoidTransform, biject_to
from numpyro.distributions.util import lazy_property
from numpyro.util import find_stack_level, not_jax_tracer

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

from . import _keyed, _ops, estimators
from .concrete import (
    _last_kept,
    bernoulli_log_prob,
    binary_concrete_logit_sample,
    categorical_log_prob,
    concrete_log_sample,
    exp_concrete_log_prob,
    logit_binary_concrete_log_prob,
)

# The support constraints (``log_simplex``, ``one_hot``, ``reparametrized_one_hot``,
# ``reparametrized_boolean``) are importable from this module; ``__all__`` lists the
# classes both backends share.
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


# --- constraints ---------------------------------------------------------------------


class _LogSimplex(constraints.ParameterFreeConstraint):
    """Points ``y`` with ``logsumexp(y) == 0`` on the last axis, to within ``sqrt(eps)`` of
    their dtype (half its digits: float32 ``3.5e-4``, float64 ``1.5e-8``)."""

    event_dim = 1

    def __call__(self, x):
        x = jnp.asarray(x)
        return jnp.abs(logsumexp(x, axis=-1)) < simplex_atol(float(jnp.finfo(x.dtype).eps))

    def feasible_like(self, prototype):
        return jnp.full_like(prototype, -math.log(prototype.shape[-1]))


class _OneHot(constraints.ParameterFreeConstraint):
    """Exact one-hot vectors: entries in {0, 1} summing to 1 on the last axis. Discrete."""

    event_dim = 1
    is_discrete = True

    def __call__(self, x):
        xp = jnp if isinstance(x, jax.Array) else np
        is_binary = (x == 0) | (x == 1)
        return xp.all(is_binary, axis=-1) & (xp.sum(x, axis=-1) == 1)

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype).at[..., 0].set(1)

    def eq(self, other, static=False):
        return type(other) is type(self)


class _ReparametrizedOneHot(_OneHot):
    """The one-hot vectors of a reparameterised (straight-through) sample: not discrete.

    The values are the same as :data:`one_hot`'s, but ``is_discrete`` is False: NumPyro's
    ``SVI`` warns "does not support models with discrete latent variables" for every latent
    site whose ``support.is_discrete`` is True, which is right for :class:`OneHotCategorical`
    (no gradient flows through its samples) and wrong for a straight-through sample, whose
    gradient is the relaxed one and which ``Trace_ELBO`` handles as any reparameterised site.
    """

    is_discrete = False


class _ReparametrizedBoolean(constraints.ParameterFreeConstraint):
    """{0, 1}, for a straight-through sample: not discrete (see :data:`reparametrized_one_hot`)."""

    is_discrete = False

    def __call__(self, x):
        return (x == 0) | (x == 1)

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)


class _MaskableLogits(constraints.ParameterFreeConstraint):
    """Logits of a categorical: every entry finite or ``-inf`` (``-inf`` masks its class, which
    is never drawn), at least one finite on the last axis. NaN and ``+inf`` fail. Unconstrained
    like ``real_vector`` (``biject_to`` gives the identity)."""

    event_dim = 1

    def __call__(self, x):
        xp = jnp if isinstance(x, jax.Array) else np
        return xp.all(x < xp.inf, axis=-1) & xp.any(x > -xp.inf, axis=-1)

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)


class _ExtendedReal(constraints.ParameterFreeConstraint):
    """Binary logits: any number, ``+-inf`` included (a certain outcome, probs 0 or 1); NaN fails."""

    def __call__(self, x):
        xp = jnp if isinstance(x, jax.Array) else np
        return ~xp.isnan(x)

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)


log_simplex = _LogSimplex()
one_hot = _OneHot()
maskable_logits = _MaskableLogits()
extended_real = _ExtendedReal()
biject_to.register(_MaskableLogits, lambda constraint: biject_to(constraints.real_vector))
biject_to.register(_ExtendedReal, lambda constraint: biject_to(constraints.real))
reparametrized_one_hot = _ReparametrizedOneHot()
reparametrized_boolean = _ReparametrizedBoolean()


def _no_bijection(constraint: constraints.Constraint):
    """``biject_to`` of a relaxed discrete support: a clear ``ValueError`` (NumPyro's registry has
    no entry and raises a bare ``NotImplementedError`` from ``AutoNormal``'s ``init_to_uniform``)."""
    raise ValueError(
        f"a relaxed discrete site (support {type(constraint).__name__}: the exact one-hot or 0/1 values of an "
        f"estimator class such as ReinMax or REDGE) has no bijection onto the reals, so a continuous autoguide "
        f"(AutoNormal, AutoDiagonalNormal, ...) or its init_loc_fn cannot place it. Guide the discrete sites "
        f"with numpyro_ext.autoguide.AutoRelaxed(model, continuous=AutoNormal), or hide them from the continuous "
        f"autoguide, AutoNormal(handlers.block(model, hide=[...])), and guide them yourself (AutoGuideList)"
    )


biject_to.register(_ReparametrizedOneHot, _no_bijection)
biject_to.register(_ReparametrizedBoolean, _no_bijection)


class _PreImages:
    """Sample array -> the log-space pre-image its transform computed, keyed on identity.

    NumPyro's ``replay`` hands the model the guide's *value* and not its intermediates. The
    value is the very array (or, under ``jit``/``grad``/``vmap``, the very tracer) that the
    guide's transform returned, so the transform files the pre-image here and the inverse
    looks it up: the model then scores the guide's sample at its exact pre-image, as the
    guide does, where ``log(value)`` would be ``-inf`` (a float32 entry that underflowed to 0).
    Mirrors ``pyro_ext.distributions._PRE_IMAGES`` (torch's ``WeakTensorKeyDictionary``).

    JAX arrays and tracers are unhashable but weakly referenceable: an entry is keyed on
    ``id(sample)``, holds a weak reference to the sample and is dropped when the sample dies,
    so a recycled ``id`` never finds a stale entry. A copy (``x + 0``, ``stop_gradient``, a
    ``jit`` argument or result) is a new object and is scored at ``log(value)``.
    """

    def __init__(self) -> None:
        self._entries: dict = {}

    def put(self, sample, pre_image) -> None:
        key = id(sample)

        def forget(ref, key=key):
            entry = self._entries.get(key)
            if entry is not None and entry[0] is ref:
                del self._entries[key]

        try:
            self._entries[key] = (weakref.ref(sample, forget), pre_image)
        except TypeError:  # a Python scalar has no weak reference: nothing to find again
            pass

    def get(self, sample):
        entry = self._entries.get(id(sample))
        return entry[1] if entry is not None and entry[0]() is sample else None


#: every relaxed sample a transform below produced -> its log-space (or logit) pre-image.
_PRE_IMAGES = _PreImages()


class _LogSimplexExpTransform(ParameterFreeTransform):
    r"""``x = exp(y)``, from the log-simplex to the simplex, keeping ``y`` in ``_PRE_IMAGES``.

    Both are (K-1)-dimensional, so the Jacobian is that of the first K-1 coordinates:
    :math:`\log |\det \partial x_{1:K-1} / \partial y_{1:K-1}| = \sum_{k<K} y_k`. Coordinates
    with ``y_k = -inf`` (masked classes, ``x_k = 0``) are not coordinates of the law: the sum
    runs over the finite ones bar the last (double where: no ``-inf`` in the gradient).
    The inverse of a sample this transform produced is its pre-image ``y``; of any other
    array ``log(x)``, exact to rounding where ``x > 0`` (XLA flushes subnormals, so an
    entry is either a normal float or 0) and ``-inf`` where ``x`` has an exact 0.
    """

    domain = log_simplex
    codomain = constraints.simplex
    sign = 1

    def __call__(self, x):
        y = jnp.exp(x)
        _PRE_IMAGES.put(y, x)
        return y

    def _inverse(self, y):
        x = _PRE_IMAGES.get(y)
        return jnp.log(y) if x is None else x

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        # a -inf coordinate is a masked class (y = 0 there): left out of the base measure,
        # with the last kept coordinate in place of the K-th
        masked = jnp.isneginf(x)
        x_kept = jnp.where(masked, 0.0, x)
        return jnp.sum(x_kept, axis=-1) - _last_kept(x_kept, masked)


class _SigmoidTransform(SigmoidTransform):
    """NumPyro's ``SigmoidTransform`` (its clipping to ``[tiny, 1 - eps]`` included) that keeps
    each sample's logit pre-image in ``_PRE_IMAGES`` (a clipped value's ``logit`` is the clip
    bound, about 16.6 in float32, not the sample's logit, and would be scored there), and whose
    log-Jacobian is 0 at ``z = +-inf``."""

    def __call__(self, x):
        y = super().__call__(x)
        _PRE_IMAGES.put(y, x)
        return y

    def _inverse(self, y):
        x = _PRE_IMAGES.get(y)
        return super()._inverse(y) if x is None else x

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        # z = +-inf: the binary Concrete of an infinite logit is a point mass, scored 0
        certain = jnp.isinf(x)
        return jnp.where(certain, 0.0, super().log_abs_det_jacobian(jnp.where(certain, 0.0, x), y, intermediates))


# --- parameters ----------------------------------------------------------------------

_CATEGORICAL_RANGES = {
    "temperature": "a finite number > 0",
    "probs": "a probability vector (entries >= 0 summing to 1 over the last dimension)",
    "logits": "finite or -inf (-inf masks a class), with at least one finite entry over the last dimension",
}
_BINARY_RANGES = {"temperature": "a finite number > 0", "probs": "in [0, 1]", "logits": "a number or +-inf, not NaN"}


def _given(probs: Any, logits: Any) -> tuple[str, Any]:
    """The one of ``probs``/``logits`` that was given, as ``(name, value)``."""
    check_probs_or_logits(probs, logits)
    return ("probs", probs) if probs is not None else ("logits", logits)


def _check_event_shape(name: str, shape) -> None:
    """``shape`` must be ``batch_shape + (K,)`` with ``K >= 2``."""
    if len(shape) < 1:
        raise ValueError(out_of_range(f"{name}.shape", tuple(shape), "batch_shape + (K,) with K >= 2"))
    check_event_size(shape[-1], name)


def _binary_batch_shape(logits_shape, temperature_shape=(), **shapes) -> tuple[int, ...]:
    """``logits.shape`` broadcast with ``temperature.shape`` and each other hyperparameter's shape
    (``shapes``: name -> shape); binary classes have no event dimension. The message names the
    hyperparameter that does not broadcast."""
    batch = tuple(logits_shape)
    for name, shape in {"temperature": temperature_shape, **shapes}.items():
        try:
            batch = broadcast_shapes(batch, tuple(shape))
        except ValueError:
            allowed = f"broadcastable to the batch shape {tuple(logits_shape)} (logits.shape)"
            raise ValueError(out_of_range(f"{name}.shape", tuple(shape), allowed)) from None
    return batch


def _logits_from_probs(probs: jax.Array) -> jax.Array:
    """``log(probs)``: a zero probability is a masked class, logit ``-inf`` (the double where
    keeps ``log 0`` out of the gradient, which is 0 there)."""
    is_zero = probs == 0
    return jnp.where(is_zero, -jnp.inf, jnp.log(jnp.where(is_zero, 1.0, probs)))


def _binary_logits_from_probs(probs: jax.Array) -> jax.Array:
    """``log(p) - log(1 - p)``; ``-inf`` at ``p = 0`` and ``+inf`` at ``p = 1`` (double where)."""
    certain = (probs == 0) | (probs == 1)
    safe = jnp.where(certain, 0.5, probs)
    return jnp.where(certain, jnp.where(probs == 0, -jnp.inf, jnp.inf), jnp.log(safe) - jnp.log1p(-safe))


def _float(value) -> jax.Array:
    """``value`` as an array, an integer or boolean dtype promoted to the default float dtype
    (``jnp.result_type(float)``, as NumPyro's distributions promote their parameters)."""
    value = jnp.asarray(value)
    return value if jnp.issubdtype(value.dtype, jnp.inexact) else value.astype(jnp.result_type(float))


def _float_hyper(value):
    """A hyperparameter (``temperature``): a Python number stays one (weakly typed, so it does
    not promote float32 logits); an array gets :func:`_float`."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else _float(value)


def _normalised(probs: jax.Array) -> jax.Array:
    """``probs / sum(probs)``: with validation off, unnormalised ``probs`` are accepted (as by
    ``log_prob``, which normalises through ``log_softmax``); moments use the normalised ones."""
    return probs / jnp.sum(probs, axis=-1, keepdims=True)


# --- validation shared by every class -------------------------------------------------


# Set while ``_validated`` scores a value it has checked, so that the host's own check inside
# (``TransformedDistribution.log_prob`` calls ``_validate_sample`` again) does not warn twice.
_VALUE_CHECKED = contextvars.ContextVar("numpyro_ext_value_checked", default=False)


def _validated(log_prob):
    """Check ``value`` before scoring it, when validation is on: a wrong shape raises
    ``ValueError``; an out-of-support value warns and scores ``-inf`` (NumPyro's convention)."""

    @functools.wraps(log_prob)
    def wrapper(self, value, *args, **kwargs):
        if not self._validate_args:
            return log_prob(self, value, *args, **kwargs)
        mask = self._validate_sample(value)
        token = _VALUE_CHECKED.set(True)
        try:
            return jnp.where(mask, log_prob(self, value, *args, **kwargs), -jnp.inf)
        finally:
            _VALUE_CHECKED.reset(token)

    return wrapper


def _eager_on_constants(init):
    """Run a constructor under ``jax.ensure_compile_time_eval``: inside ``jit`` its ops on
    constant (non-traced) parameters are evaluated at once, so ``validate_args`` sees concrete
    values and checks them, as NumPyro's own classes (which keep NumPy inputs) are checked;
    traced parameters are traced as before."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        with jax.ensure_compile_time_eval():
            init(self, *args, **kwargs)

    return wrapper


if TYPE_CHECKING:
    # To the type checker the mixins below are the host distributions they are mixed into (their
    # attributes and super() calls are the host's); at run time they are plain classes.
    _Host = Any
else:
    _Host = object


class _Checked(_Host):
    """Mixin: parameter and value checks with the core's messages, and an ``expand`` that
    rebuilds the class with broadcast parameters (so enumeration keeps the event shape)."""

    _ranges: dict = _CATEGORICAL_RANGES
    _support_text: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _eager_on_constants(cls.__init__)  # type: ignore[method-assign]

    def validate_args(self, strict: bool = True) -> None:
        """Check array parameters. Constant parameters are checked inside ``jit`` too (the
        constructor keeps them concrete); traced ones cannot be: skipped, or ``RuntimeError``
        if ``strict``."""
        with jax.ensure_compile_time_eval():
            for name, value in self.get_args().items():
                is_valid = self.arg_constraints[name](value)
                if name == "temperature":
                    is_valid = is_valid & jnp.isfinite(value)
                if not not_jax_tracer(is_valid):
                    if strict:
                        raise RuntimeError("Cannot validate arguments inside jitted code.")
                elif not np.all(is_valid):
                    # under grad without jit the check is concrete but the value is a tracer
                    shown = (
                        np.asarray(value) if not_jax_tracer(value) else f"<traced array of shape {jnp.shape(value)}>"
                    )
                    raise ValueError(out_of_range(name, shown, self._ranges[name]))

    def _validate_sample(self, value):
        """The support mask of ``value``, whose shape must fit (else ``ValueError``). A concrete
        ``value`` outside the support warns as NumPyro does (``UserWarning`` "Out-of-support
        values provided to log prob method...", here with the first bad event), inside ``jit``
        too for a constant ``value``; ``log_prob`` then scores it ``-inf``. A traced ``value``
        cannot be checked: it scores ``-inf`` without a warning."""
        check_value_shape(jnp.shape(value), self.batch_shape, self.event_shape)
        with jax.ensure_compile_time_eval():
            mask = self.support(value)
        if not_jax_tracer(mask) and not np.all(np.asarray(mask)) and not _VALUE_CHECKED.get():
            events = np.asarray(value).reshape((-1,) + self.event_shape)
            bad = events[~np.asarray(mask).reshape(-1)]
            message = out_of_range("value", bad[0], f"{self._support_text} (the support of {type(self).__name__})")
            warnings.warn(
                "Out-of-support values provided to log prob method. The value argument should be within "
                f"the support: {message}; {len(bad)} of {len(events)} events are outside the support",
                UserWarning,
                stacklevel=find_stack_level(),
            )
        return mask

    def _expanded_shape(self, batch_shape) -> tuple[int, ...]:
        """``batch_shape`` as a tuple, checked as NumPyro checks an expansion (with its message,
        "Cannot broadcast distribution of shape ... to shape ...", on an incompatible shape)."""
        batch_shape = tuple(batch_shape)
        ExpandedDistribution._broadcast_shape(self.batch_shape, batch_shape)
        return batch_shape

    def expand(self, batch_shape) -> Distribution:
        batch_shape = self._expanded_shape(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        logits = jnp.broadcast_to(self.logits, batch_shape + self.event_shape)
        if "temperature" not in self.arg_constraints:
            return type(self)(logits=logits, validate_args=self._validate_args)
        temperature = jnp.broadcast_to(self.temperature, batch_shape)
        return type(self)(temperature, logits=logits, validate_args=self._validate_args)


class _TransformedRelaxed(_Checked):
    """Mixin for a relaxed class built as ``TransformedDistribution(base_dist, transform)``:
    the parameters are the base's, and ``value`` is checked before it is transformed back.

    ``value`` is scored at its pre-image: the ``intermediates`` if given, else the one its
    transform filed in ``_PRE_IMAGES`` (a sample any instance drew, e.g. the guide's value
    that ``replay`` hands to the model), else the inverse transform of ``value``. The last
    is exact to rounding except at points where rounding lost the pre-image (``_lost``:
    a Concrete entry that underflowed to 0). With validation on, such a point raises a
    ``ValueError`` that says what to do instead (concrete ``value``) or scores ``-inf``
    with a zero gradient (traced ``value``, NumPyro's convention for a value it cannot score);
    with validation off it gives the formula's NaN.
    """

    _lost_text: str = ""
    _log_space_class: str = ""

    @property
    def temperature(self):
        return self.base_dist.temperature

    @property
    def logits(self) -> jax.Array:
        return self.base_dist.logits

    @property
    def probs(self) -> jax.Array:
        return self.base_dist.probs

    def get_args(self) -> dict:
        return self.base_dist.get_args()

    @_validated
    def log_prob(self, value: ArrayLike, intermediates: list | None = None) -> jax.Array:
        if jnp.size(value) == 0:
            # NumPyro's TransformedDistribution.log_prob sums with sum_rightmost, whose reshape to
            # (..., -1) raises ZeroDivisionError on an empty array (NumPyro 0.22): score none.
            shape = broadcast_shapes(jnp.shape(value)[: jnp.ndim(value) - len(self.event_shape)], self.batch_shape)
            return jnp.zeros(shape, jnp.result_type(value, self.logits))
        if intermediates is None and self._validate_args and _PRE_IMAGES.get(value) is None:
            return self._log_prob_without_pre_image(jnp.asarray(value))
        return super().log_prob(value, intermediates)

    def _log_prob_without_pre_image(self, value: jax.Array) -> jax.Array:
        # off-support events are not lost samples: _validated warns and scores them -inf (D3)
        lost = self._lost(value) & self.support(value)
        if not_jax_tracer(lost):
            if np.any(lost):
                raise ValueError(self._lost_message(np.asarray(lost)))
            return super().log_prob(value)
        # double where: score a feasible point instead, so no NaN reaches the gradient
        lost_entries = jnp.reshape(lost, jnp.shape(lost) + (1,) * len(self.event_shape))
        safe = jnp.where(lost_entries, self.support.feasible_like(value).astype(value.dtype), value)
        return jnp.where(lost, -jnp.inf, super().log_prob(safe))

    def _lost_message(self, lost: np.ndarray) -> str:
        log_space = f", or use {self._log_space_class}" if self._log_space_class else ""
        fix = (
            "NumPyro's replay hands the guide's own sample to the model, where it is found; a copy "
            "(stop_gradient(x), x + 0, an argument or result of jit, multi_sample_guide's vmap) is "
            "not. Score the sample itself or pass its intermediates, log_prob(x, intermediates); "
            "for a latent site in model and guide, sample in log space: wrap both in "
            f"numpyro.handlers.reparam(config={{site: numpyro.infer.reparam.TransformReparam()}}){log_space}."
        )
        return lost_pre_image(type(self).__name__, int(lost.sum()), lost.size, self._lost_text, fix)


class _HardSample(_Host):
    """Mixin for a straight-through class: its sample is the hard value, reparameterised
    through ``_ops.straight_through``, with no intermediates (``log_prob`` needs none)."""

    def rsample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        return self.sample(key, sample_shape)

    def sample_with_intermediates(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> tuple[jax.Array, list]:
        """The hard sample (the same draw as ``sample``) and the host's intermediates of the
        relaxed sample it is drawn from: one ``[pre-image, None]`` pair per transform, as
        ``TransformedDistribution`` returns them. ``log_prob`` scores the hard value and
        ignores them."""
        _, intermediates = super().sample_with_intermediates(key, sample_shape)
        return self.sample(key, sample_shape), intermediates


# --- Concrete (Maddison et al. 2017; Jang et al. 2017) --------------------------------


class ExpRelaxedOneHotCategorical(_Checked, Distribution):
    r"""The ExpConcrete distribution: a Concrete sample on the log-simplex.

    - Forward value: ``y = log_softmax((logits + G) / temperature)``, ``G`` standard Gumbel,
      a point of the log-simplex (``logsumexp(y) == 0``); ``exp(y)`` is a Concrete sample.
    - Gradient: reparameterised, with respect to ``logits`` (or ``probs``) and ``temperature``.
    - ``log_prob(y)``: the exact log density with respect to Lebesgue measure on the first
      K-1 coordinates ``y_1 .. y_{K-1}``, including the ``- y_K`` term that torch's
      ``ExpRelaxedCategorical`` omits. Use this class, rather than the simplex one, for
      latent sites of a model: a simplex point whose entries underflowed to 0 (common in
      float32 at low temperature) has no finite log density, its log-simplex point does.

    .. math::
        \log p(y) = \log (K-1)! + (K-1) \log\tau + \sum_k (\ell_k - \tau y_k)
                    - K \operatorname{logsumexp}_k(\ell_k - \tau y_k) - y_K,
        \qquad \ell = \log \mathrm{softmax}(\text{logits}).

    ``temperature`` (a Python float or an array) broadcasts against ``batch_shape``, never
    against the event dimension: a temperature of shape ``(K,)`` is a batch of temperatures.

    Validation: a Python-number ``temperature`` and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs: batch_shape + (K,)     temperature: broadcasts to batch_shape
        sample(key, sample_shape): sample_shape + batch_shape + (K,)
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import ExpRelaxedOneHotCategorical
    >>> d = ExpRelaxedOneHotCategorical(0.5, logits=jnp.zeros((3, 4)))
    >>> y = d.sample(jax.random.key(0), (2,))
    >>> y.shape, d.log_prob(y).shape, d.batch_shape, d.event_shape
    ((2, 3, 4), (2, 3), (3,), (4,))

    References: C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution. ICLR 2017,
    arXiv 1611.00712. E. Jang, S. Gu, B. Poole. Categorical
    Reparameterization with Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.
    """

    arg_constraints = {
        "temperature": constraints.positive,
        "probs": constraints.simplex,
        "logits": maskable_logits,
    }
    reparametrized_params = ["temperature", "probs", "logits"]
    support = log_simplex
    pytree_data_fields = ("temperature", "probs", "logits")
    _support_text = "a point of the log-simplex (logsumexp over the last dimension equal to 0)"

    def __init__(
        self,
        temperature: ArrayLike,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        name, param = _given(probs, logits)
        param = _float(param)
        _check_event_shape(name, param.shape)
        check_positive_scalar("temperature", temperature)
        setattr(self, name, param)
        self.temperature = temperature = _float_hyper(temperature)
        batch_shape = batch_shape_of(param.shape, temperature=jnp.shape(temperature))
        super().__init__(batch_shape, param.shape[-1:], validate_args=validate_args)

    @lazy_property
    def logits(self) -> jax.Array:
        return _logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> jax.Array:
        return jax.nn.softmax(self.logits, axis=-1)

    @classmethod
    def infer_shapes(cls, temperature=(), probs: Any = None, logits: Any = None):
        name, shape = _given(probs, logits)
        _check_event_shape(name, shape)
        return batch_shape_of(shape, temperature=temperature), tuple(shape[-1:])

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        gumbels = _ops.gumbel_from_uniform(_ops.sample_uniform(key, self.shape(sample_shape), self.logits.dtype))
        return concrete_log_sample(self.logits, self.temperature, gumbels)

    @_validated
    def log_prob(self, value: ArrayLike) -> jax.Array:
        return exp_concrete_log_prob(jnp.asarray(value), self.logits, self.temperature)


class RelaxedOneHotCategorical(_TransformedRelaxed, TransformedDistribution):
    r"""The Concrete (Gumbel-Softmax) distribution on the probability simplex.

    - Forward value: ``x = softmax((logits + G) / temperature)``, ``G`` standard Gumbel,
      computed as ``exp`` of the :class:`ExpRelaxedOneHotCategorical` sample ``y``.
    - Gradient: reparameterised, with respect to ``logits`` (or ``probs``) and ``temperature``.
    - ``log_prob(x)``: the exact log density with respect to Lebesgue measure on the first
      K-1 coordinates ``x_1 .. x_{K-1}``, equal to ``relaxed_dists.reference.concrete_log_prob``.
      A sample of this class is scored at its log-space pre-image ``y``: from the
      ``intermediates`` (``log_prob(value, intermediates)``, as the ``trace`` handler and the
      ELBOs do for guide sites) or, without them, from the pre-image the sampler filed for that
      very array (``_PRE_IMAGES``): so a model site that ``replay`` hands the guide's sample
      scores it exactly, under ``jit``, ``grad`` and ``vmap`` too, finite at any temperature
      even where ``x`` has entries that underflowed to 0. Any other ``value`` is scored at
      ``log(value)``, exact to rounding where every entry is a normal float; where one is
      below ``tiny`` (0 included, finite logit) the pre-image is lost: with validation on that
      raises a ``ValueError`` (concrete ``value``) or scores ``-inf`` with a zero gradient
      (traced), with validation off it gives NaN. See ``docs/relaxed_latents.md``.

    Sampling in log space avoids the question: :class:`ExpRelaxedOneHotCategorical` sites,
    or ``numpyro.handlers.reparam(config={"z": numpyro.infer.reparam.TransformReparam()})``
    around model and guide (each ``z`` site becomes its log-space base site ``z_base`` and
    ``z = exp(z_base)`` a deterministic site).

    .. math::
        p(x) = (K-1)!\, \tau^{K-1} \prod_{k=1}^K \frac{\pi_k x_k^{-\tau-1}}{\sum_j \pi_j x_j^{-\tau}},
        \qquad \log p(x) = \log p_Y(\log x) - \sum_{k<K} \log x_k .

    ``temperature`` (a Python float or an array) broadcasts against ``batch_shape``, never
    against the event dimension: a temperature of shape ``(K,)`` is a batch of temperatures.

    Validation: a Python-number ``temperature`` and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    The support is NumPyro's ``constraints.simplex`` (so ``biject_to`` and the autoguides
    know it), whose check allows a sum error of 1e-6: float16 and bfloat16 samples miss it,
    so validate those with ``validate_args=False`` or use the log-simplex class.

    Shapes::

        logits, probs: batch_shape + (K,)     temperature: broadcasts to batch_shape
        sample(key, sample_shape): sample_shape + batch_shape + (K,)
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import RelaxedOneHotCategorical
    >>> d = RelaxedOneHotCategorical(jnp.array([0.1, 1.0, 5.0]), logits=jnp.zeros((3, 4)))
    >>> x, intermediates = d.sample_with_intermediates(jax.random.key(0), (2,))
    >>> x.shape, d.log_prob(x, intermediates).shape
    ((2, 3, 4), (2, 3))

    References: C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution. ICLR 2017,
    arXiv 1611.00712. E. Jang, S. Gu, B. Poole. Categorical Reparameterization with
    Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.
    """

    arg_constraints = ExpRelaxedOneHotCategorical.arg_constraints
    reparametrized_params = ["temperature", "probs", "logits"]
    support = constraints.simplex
    pytree_data_fields = ()
    _support_text = "a point of the probability simplex (entries >= 0 summing to 1)"
    _lost_text = (
        "have an entry below the smallest normal float, 0 included, where the logits are "
        "finite (a float32 Concrete entry below exp(-87); common at low temperature)"
    )
    _log_space_class = "ExpRelaxedOneHotCategorical"

    def __init__(
        self,
        temperature: ArrayLike,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        base_dist = ExpRelaxedOneHotCategorical(temperature, probs, logits, validate_args=False)
        super().__init__(base_dist, _LogSimplexExpTransform(), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, temperature=(), probs: Any = None, logits: Any = None):
        return ExpRelaxedOneHotCategorical.infer_shapes(temperature, probs, logits)

    def _lost(self, value: jax.Array) -> jax.Array:
        """Events with an entry below the smallest normal float (0 included; XLA flushes
        subnormals to 0) where the class is not masked: ``log`` of it is not the pre-image."""
        return jnp.any((value < jnp.finfo(value.dtype).tiny) & (self.logits > -jnp.inf), axis=-1)


class RelaxedOneHotCategoricalStraightThrough(_HardSample, RelaxedOneHotCategorical):
    r"""Straight-through Gumbel-Softmax: an exact one-hot sample with the Concrete gradient.

    - Forward value: ``one_hot(argmax y)`` with ``y`` the :class:`ExpRelaxedOneHotCategorical`
      sample, an exact one-hot (every entry exactly 0 or 1, in float32 and bfloat16 too)
      distributed as ``Categorical(softmax(logits))``.
    - Gradient: that of the relaxed sample ``exp(y) = softmax((logits + G) / temperature)``,
      through ``_ops.straight_through(hard, soft) = hard + (soft - stop_gradient(soft))``.
    - ``log_prob(value)``: the categorical log-probability of the one-hot ``value``,
      ``sum(value * log_softmax(logits))``, with respect to counting measure on the K
      one-hots; it depends on ``value`` alone (no attributes, no intermediates), so it is
      the same under ``jit``, after ``stop_gradient`` or for a value built elsewhere.
      Gradients flow into ``value`` (the straight-through path) and into ``logits``.

    The support is :data:`reparametrized_one_hot`, a one-hot constraint whose ``is_discrete``
    is False, so ``SVI`` treats the site as reparameterised and does not warn.

    .. math::
        z = \mathrm{onehot}(\arg\max_k y_k) + \big(e^{y} - \mathrm{sg}(e^{y})\big),\qquad
        y = \log\mathrm{softmax}((\ell + G)/\tau),\qquad
        \log p(z) = \textstyle\sum_k z_k \log \mathrm{softmax}(\ell)_k .

    ``temperature`` (a Python float or an array) broadcasts against ``batch_shape``, never
    against the event dimension: a temperature of shape ``(K,)`` is a batch of temperatures.

    Validation: a Python-number ``temperature`` and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs: batch_shape + (K,)     temperature: broadcasts to batch_shape
        sample(key, sample_shape): sample_shape + batch_shape + (K,)
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import RelaxedOneHotCategoricalStraightThrough
    >>> d = RelaxedOneHotCategoricalStraightThrough(0.5, logits=jnp.zeros((3, 4)))
    >>> z = d.sample(jax.random.key(0), (2,))
    >>> z.shape, d.log_prob(z).shape, z.sum(-1).tolist()
    ((2, 3, 4), (2, 3), [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])

    References: Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients
    Through Stochastic Neurons. 2013, arXiv 1308.3432. E. Jang, S. Gu, B. Poole. Categorical
    Reparameterization with Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.
    """

    support = reparametrized_one_hot
    _support_text = "a one-hot vector (entries in {0, 1} summing to 1)"

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        y = self.base_dist.sample(key, sample_shape)
        return _ops.straight_through(_ops.one_hot_argmax(y), jnp.exp(y))

    @_validated
    def log_prob(self, value: ArrayLike, intermediates: list | None = None) -> jax.Array:
        """Categorical log-probability of the one-hot ``value``; ``intermediates`` is ignored."""
        return categorical_log_prob(jnp.asarray(value), self.logits)

    @property
    def mean(self) -> jax.Array:
        """``softmax(logits)``, the mean of the one-hot samples (as torch's class), broadcast to
        ``batch_shape + event_shape`` (a batched temperature widens the batch)."""
        return jnp.broadcast_to(_normalised(self.probs), self.shape())

    @property
    def mode(self) -> jax.Array:
        return jnp.broadcast_to(_ops.one_hot_argmax(self.logits), self.shape())


# --- binary Concrete (Maddison et al. 2017, appendix B) --------------------------------


class _LogitRelaxedBernoulli(_Checked, Distribution):
    r"""The logit of a binary Concrete sample (the base of :class:`RelaxedBernoulli`).

    - Forward value: ``z = (logits + L) / temperature``, ``L`` standard logistic.
    - Gradient: reparameterised, with respect to ``logits`` (or ``probs``) and ``temperature``.
    - ``log_prob(z)``: the log density with respect to Lebesgue measure on the real line.

    .. math:: \log p(z) = \log\tau + (\ell - \tau z) - 2 \log(1 + e^{\ell - \tau z}).

    Validation: a Python-number ``temperature`` and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs, temperature: broadcast to batch_shape (no event dimension)
        sample(key, sample_shape): sample_shape + batch_shape
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import _LogitRelaxedBernoulli
    >>> d = _LogitRelaxedBernoulli(0.5, logits=jnp.zeros(3))
    >>> z = d.sample(jax.random.key(0), (2,))
    >>> z.shape, d.log_prob(z).shape, d.event_shape
    ((2, 3), (2, 3), ())

    References: C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution. ICLR 2017,
    arXiv 1611.00712 (eq. 21).
    """

    arg_constraints = {
        "temperature": constraints.positive,
        "probs": constraints.unit_interval,
        "logits": extended_real,
    }
    reparametrized_params = ["temperature", "probs", "logits"]
    support = constraints.real
    pytree_data_fields = ("temperature", "probs", "logits")
    _ranges = _BINARY_RANGES
    _support_text = "a real number"

    def __init__(
        self,
        temperature: ArrayLike,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        name, param = _given(probs, logits)
        param = _float(param)
        check_positive_scalar("temperature", temperature)
        setattr(self, name, param)
        self.temperature = temperature = _float_hyper(temperature)
        batch_shape = _binary_batch_shape(param.shape, jnp.shape(temperature))
        super().__init__(batch_shape, validate_args=validate_args)

    @lazy_property
    def logits(self) -> jax.Array:
        return _binary_logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> jax.Array:
        return jax.nn.sigmoid(self.logits)

    @classmethod
    def infer_shapes(cls, temperature=(), probs: Any = None, logits: Any = None):
        _, shape = _given(probs, logits)
        return _binary_batch_shape(shape, temperature), ()

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        logistic = _ops.logistic_from_uniform(_ops.sample_uniform(key, self.shape(sample_shape), self.logits.dtype))
        return binary_concrete_logit_sample(self.logits, self.temperature, logistic)

    @_validated
    def log_prob(self, value: ArrayLike) -> jax.Array:
        return logit_binary_concrete_log_prob(jnp.asarray(value), self.logits, self.temperature)


class RelaxedBernoulli(_TransformedRelaxed, TransformedDistribution):
    r"""The binary Concrete distribution on the unit interval.

    - Forward value: ``x = sigmoid(z)`` with ``z`` the :class:`_LogitRelaxedBernoulli` sample.
    - Gradient: reparameterised, with respect to ``logits`` (or ``probs``) and ``temperature``.
    - ``log_prob(x)``: the exact log density with respect to Lebesgue measure on (0, 1),
      equal to ``relaxed_dists.reference.binary_concrete_log_prob``. A sample of this class
      is scored at its logit pre-image ``z`` (from the intermediates, or the pre-image filed
      for that very array, as :class:`RelaxedOneHotCategorical`), exact even where ``x`` was
      clipped to ``[tiny, 1 - eps]`` (``|z| > 16.6`` in float32); any other value at
      ``logit(x)``, except that a value at the clip bounds (0 and 1 included) with finite
      logits raises a ``ValueError`` under validation (traced: ``-inf``), since its logit is
      the bound's and not the sample's.

    .. math::
        p(x) = \frac{\tau \alpha x^{-\tau-1} (1-x)^{-\tau-1}}{(\alpha x^{-\tau} + (1-x)^{-\tau})^2},
        \qquad \alpha = e^{\text{logits}} .

    Validation: a Python-number ``temperature`` and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs, temperature: broadcast to batch_shape (no event dimension)
        sample(key, sample_shape): sample_shape + batch_shape
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import RelaxedBernoulli
    >>> d = RelaxedBernoulli(0.5, logits=jnp.zeros(3))
    >>> x, intermediates = d.sample_with_intermediates(jax.random.key(0), (2,))
    >>> x.shape, d.log_prob(x, intermediates).shape
    ((2, 3), (2, 3))

    References: C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution. ICLR 2017,
    arXiv 1611.00712 (eq. 20). E. Jang, S. Gu, B. Poole. Categorical Reparameterization
    with Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.
    """

    arg_constraints = _LogitRelaxedBernoulli.arg_constraints
    reparametrized_params = ["temperature", "probs", "logits"]
    support = constraints.unit_interval
    pytree_data_fields = ()
    _ranges = _BINARY_RANGES
    _support_text = "in [0, 1]"
    _lost_text = (
        "are at the sampler's clip bounds (<= tiny or >= 1 - eps of the dtype, 0 and 1 included) with finite logits"
    )

    def __init__(
        self,
        temperature: ArrayLike,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        base_dist = _LogitRelaxedBernoulli(temperature, probs, logits, validate_args=False)
        super().__init__(base_dist, _SigmoidTransform(), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, temperature=(), probs: Any = None, logits: Any = None):
        return _LogitRelaxedBernoulli.infer_shapes(temperature, probs, logits)

    def _lost(self, value: jax.Array) -> jax.Array:
        """Values at or beyond the sampler's clip bounds ``[tiny, 1 - eps]`` (0 and 1 included):
        a sample is clipped there whenever ``|logit| > 16.6`` in float32 (a third of the draws at
        temperature 0.05), so ``logit(value)`` is the bound's, not the sample's."""
        finfo = jnp.finfo(value.dtype)
        return ((value <= finfo.tiny) | (value >= 1 - finfo.eps)) & jnp.isfinite(self.logits)


class RelaxedBernoulliStraightThrough(_HardSample, RelaxedBernoulli):
    r"""Straight-through binary Concrete: an exact {0, 1} sample with the relaxed gradient.

    - Forward value: ``hard = (z > 0)`` as exactly 0. or 1. in the logits' dtype, with ``z``
      the :class:`_LogitRelaxedBernoulli` sample; distributed as ``Bernoulli(sigmoid(logits))``.
    - Gradient: that of the relaxed sample ``sigmoid(z)``, through ``_ops.straight_through``.
    - ``log_prob(value)``: the Bernoulli log-probability of ``value`` in {0, 1},
      ``value * logits - log(1 + exp(logits))``, with respect to counting measure on {0, 1};
      it depends on ``value`` alone.

    The support is :data:`reparametrized_boolean` ({0, 1} with ``is_discrete`` False), so
    ``SVI`` treats the site as reparameterised (see :data:`reparametrized_one_hot`).

    .. math::
        b = \mathbb{1}[z > 0] + \big(\sigma(z) - \mathrm{sg}(\sigma(z))\big),\qquad
        \log p(b) = b\,\ell - \log(1 + e^{\ell}) .

    Validation: a Python-number ``temperature`` and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs, temperature: broadcast to batch_shape (no event dimension)
        sample(key, sample_shape): sample_shape + batch_shape
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import RelaxedBernoulliStraightThrough
    >>> d = RelaxedBernoulliStraightThrough(0.5, logits=jnp.zeros(3))
    >>> b = d.sample(jax.random.key(0), (2,))
    >>> b.shape, d.log_prob(b).shape
    ((2, 3), (2, 3))

    References: Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients
    Through Stochastic Neurons. 2013, arXiv 1308.3432. C. J. Maddison, A. Mnih, Y. W. Teh.
    The Concrete Distribution. ICLR 2017, arXiv 1611.00712.
    """

    support = reparametrized_boolean
    _support_text = "0 or 1"

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        z = self.base_dist.sample(key, sample_shape)
        return _ops.straight_through((z > 0).astype(z.dtype), jax.nn.sigmoid(z))

    @_validated
    def log_prob(self, value: ArrayLike, intermediates: list | None = None) -> jax.Array:
        """Bernoulli log-probability of ``value``; ``intermediates`` is ignored."""
        return bernoulli_log_prob(jnp.asarray(value), self.logits)

    @property
    def mean(self) -> jax.Array:
        """``sigmoid(logits)``, the mean of the {0, 1} samples (as torch's class), broadcast to
        ``batch_shape`` (a batched temperature widens the batch)."""
        return jnp.broadcast_to(self.probs, self.shape())

    @property
    def mode(self) -> jax.Array:
        return jnp.broadcast_to((self.logits > 0).astype(self.logits.dtype), self.shape())


# --- exact categorical -----------------------------------------------------------------


class OneHotCategorical(_Checked, Distribution):
    r"""A categorical distribution over one-hot vectors (NumPyro has none).

    - Forward value: ``one_hot(argmax(logits + G))``, ``G`` standard Gumbel: an exact one-hot
      in the logits' dtype.
    - Gradient: none (not reparameterised; the support :data:`one_hot` is discrete).
    - ``log_prob(value)``: ``sum(value * log_softmax(logits))``, the log-probability with
      respect to counting measure on the K one-hot vectors.

    .. math:: P(X = e_k) = \pi_k = \mathrm{softmax}(\text{logits})_k .

    Validation: the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs: batch_shape + (K,)
        sample(key, sample_shape): sample_shape + batch_shape + (K,)
        log_prob(value): sample_shape + batch_shape
        enumerate_support(expand=True): (K,) + batch_shape + (K,)  ((K,) + (1,) * len(batch_shape) + (K,) if not expand)

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import OneHotCategorical
    >>> d = OneHotCategorical(logits=jnp.zeros((3, 4)))
    >>> d.sample(jax.random.key(0), (2,)).shape, d.enumerate_support().shape, d.entropy().shape
    ((2, 3, 4), (4, 3, 4), (3,))

    References: E. J. Gumbel. Statistical Theory of Extreme Values and Some Practical
    Applications. 1954 (the Gumbel-max trick).
    """

    arg_constraints = {"probs": constraints.simplex, "logits": maskable_logits}
    support = one_hot
    has_enumerate_support = True
    pytree_data_fields = ("probs", "logits")
    _support_text = "a one-hot vector (entries in {0, 1} summing to 1)"

    def __init__(
        self,
        probs: ArrayLike | None = None,
        logits: ArrayLike | None = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        name, param = _given(probs, logits)
        param = _float(param)
        _check_event_shape(name, param.shape)
        setattr(self, name, param)
        super().__init__(param.shape[:-1], param.shape[-1:], validate_args=validate_args)

    @lazy_property
    def logits(self) -> jax.Array:
        return _logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> jax.Array:
        return jax.nn.softmax(self.logits, axis=-1)

    @classmethod
    def infer_shapes(cls, probs: Any = None, logits: Any = None):
        name, shape = _given(probs, logits)
        _check_event_shape(name, shape)
        return tuple(shape[:-1]), tuple(shape[-1:])

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        gumbels = _ops.gumbel_from_uniform(_ops.sample_uniform(key, self.shape(sample_shape), self.logits.dtype))
        return _ops.one_hot_argmax(self.logits + gumbels)

    @_validated
    def log_prob(self, value: ArrayLike) -> jax.Array:
        return categorical_log_prob(jnp.asarray(value), self.logits)

    def enumerate_support(self, expand: bool = True) -> jax.Array:
        k = self.event_shape[0]
        values = jnp.eye(k, dtype=self.logits.dtype).reshape((k,) + (1,) * len(self.batch_shape) + (k,))
        return jnp.broadcast_to(values, (k,) + self.batch_shape + (k,)) if expand else values

    @property
    def mean(self) -> jax.Array:
        return _normalised(self.probs)

    @property
    def variance(self) -> jax.Array:
        return self.mean * (1.0 - self.mean)

    @property
    def mode(self) -> jax.Array:
        return _ops.one_hot_argmax(self.logits)

    def entropy(self) -> jax.Array:
        return -categorical_log_prob(self.mean, self.logits)


# --- estimator classes: exact one-hot samples, an estimator's gradient -------------------


class _OpenUnitInterval(constraints._Interval, constraints._SingletonConstraint):
    """``(0, 1]``: the range of REDGE's ``t_1``; written as NumPyro's interval constraints (NaN fails)."""

    def __init__(self) -> None:
        super().__init__(0.0, 1.0)

    def __call__(self, x):
        xp = jnp if isinstance(x, jax.Array) else np
        return xp.greater(x, self.lower_bound) & xp.less_equal(x, self.upper_bound)

    def __repr__(self) -> str:
        return "OpenClosedInterval(lower_bound=0.0, upper_bound=1.0)"

    def tree_flatten(self):
        return (), ((), dict())

    def eq(self, other, static=False):
        return type(other) is type(self)  # not unit_interval, whose bounds are the same


_t_1_interval = _OpenUnitInterval()
# A learnable t_1 (``numpyro.param(..., constraint=_t_1_interval)``) lives in (0, 1) by a sigmoid.
biject_to.register(_OpenUnitInterval, lambda constraint: biject_to(constraints.unit_interval))

_ESTIMATOR_RANGES = {**_CATEGORICAL_RANGES, "t_1": "in (0, 1]"}


class _OneHotEstimator(_Checked, Distribution):
    """A categorical over one-hot vectors whose ``sample`` is a gradient estimator.

    Subclasses name their hyperparameters in ``_hyper`` (array-valued, broadcast to
    ``batch_shape`` and cast to the parameter's dtype, validated by ``arg_constraints``) and
    implement ``_sample(key, shape)``. ``log_prob`` is the categorical log-probability of the
    one-hot value (counting measure on the K one-hot vectors), whatever the estimator.
    """

    arg_constraints = {"probs": constraints.simplex, "logits": maskable_logits}
    reparametrized_params = ["probs", "logits"]
    support = reparametrized_one_hot
    has_enumerate_support = True
    pytree_data_fields: tuple[str, ...] = ("probs", "logits")
    _ranges = _ESTIMATOR_RANGES
    _support_text = "a one-hot vector (entries in {0, 1} summing to 1)"
    _hyper: tuple[str, ...] = ()

    def __init__(self, probs=None, logits=None, *, validate_args: bool | None = None, **hyper) -> None:
        name, param = _given(probs, logits)
        param = _float(param)
        _check_event_shape(name, param.shape)
        batch_shape = batch_shape_of(param.shape, **{k: jnp.shape(v) for k, v in hyper.items()})
        event_shape = param.shape[-1:]
        for k, v in hyper.items():
            setattr(self, k, jnp.broadcast_to(jnp.asarray(v, param.dtype), batch_shape))
        setattr(self, name, jnp.broadcast_to(param, batch_shape + event_shape))
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, probs: Any = None, logits: Any = None, **hyper):
        name, shape = _given(probs, logits)
        _check_event_shape(name, shape)
        hyper = {k: v for k, v in hyper.items() if k in cls._hyper}
        return batch_shape_of(shape, **hyper), tuple(shape[-1:])

    def expand(self, batch_shape) -> Distribution:
        batch_shape = self._expanded_shape(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)  # event shape, n_steps, hard, validate_args as given
        new._batch_shape = batch_shape
        for k in self._hyper:
            setattr(new, k, jnp.broadcast_to(getattr(self, k), batch_shape))
        for name in ("probs", "logits"):
            if name in self.__dict__:
                setattr(new, name, jnp.broadcast_to(getattr(self, name), batch_shape + self.event_shape))
        return new

    @lazy_property
    def logits(self) -> jax.Array:
        return _logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> jax.Array:
        return jax.nn.softmax(self.logits, axis=-1)

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        return self._sample(key, self.shape(sample_shape))

    def _gumbels(self, key: jax.Array, shape) -> jax.Array:
        return _ops.sample_gumbel(key, shape, self.logits.dtype)

    @_validated
    def log_prob(self, value: ArrayLike) -> jax.Array:
        return categorical_log_prob(jnp.asarray(value), self.logits)

    @property
    def mean(self) -> jax.Array:
        return _normalised(self.probs)

    @property
    def mode(self) -> jax.Array:
        return _ops.one_hot_argmax(self.logits)

    @property
    def variance(self) -> jax.Array:
        return self.mean * (1.0 - self.mean)

    def entropy(self) -> jax.Array:
        return -categorical_log_prob(self.mean, self.logits)

    def enumerate_support(self, expand: bool = True) -> jax.Array:
        k = self.event_shape[0]
        values = jnp.eye(k, dtype=self.logits.dtype).reshape((k,) + (1,) * len(self.batch_shape) + (k,))
        return jnp.broadcast_to(values, (k,) + self.batch_shape + (k,)) if expand else values


class StraightThrough(_OneHotEstimator):
    r"""Straight-through estimator (Bengio et al. 2013) as a distribution.

    - Forward value: an exact one-hot ``h ~ Cat(softmax(logits))`` (Gumbel-max).
    - Gradient: that of ``softmax(logits)`` (``h + (p - stop_gradient(p))``), biased.
    - ``log_prob(value)``: the categorical log-probability ``sum(value * log_softmax(logits))``
      of the one-hot ``value`` (counting measure on the K one-hot vectors), so a guide with
      this class and a model with ``OneHotCategorical`` give the discrete ELBO. The support
      is :data:`reparametrized_one_hot` (``is_discrete`` False): ``SVI`` treats the site as
      reparameterised and does not warn.

    .. math:: h \sim \mathrm{Cat}(\pi),\quad \pi = \mathrm{softmax}(\ell),\quad
              \nabla_\ell := J_\pi^\top g = \pi \odot (g - \langle \pi, g\rangle).

    Validation: Python-number hyperparameters and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs: batch_shape + (K,)
        sample(key, sample_shape): sample_shape + batch_shape + (K,)
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import StraightThrough
    >>> d = StraightThrough(logits=jnp.zeros((3, 4)))
    >>> h = d.sample(jax.random.key(0), (2,))
    >>> h.shape, d.log_prob(h).shape
    ((2, 3, 4), (2, 3))

    References: Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients
    Through Stochastic Neurons for Conditional Computation. 2013, arXiv 1308.3432.
    """

    def __init__(self, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        super().__init__(probs, logits, validate_args=validate_args)

    def _sample(self, key, shape):
        return estimators.straight_through(self.logits, self._gumbels(key, shape))[0]


class ReinMax(_OneHotEstimator):
    r"""ReinMax (Liu et al. 2023): exact one-hot samples with a second-order (Heun) gradient.

    - Forward value: an exact one-hot ``h ~ Cat(softmax(logits))`` (Gumbel-max).
    - Gradient: ``2 J_{pi_1}^T g - J_{pi_0}^T g / 2`` with ``pi_0 = softmax(logits)`` and
      ``pi_1 = (softmax(logits / temperature) + h) / 2``, centred (a ``jax.custom_vjp``).
      ``temperature`` enters the backward pass only and receives no gradient.
    - ``log_prob(value)``: the categorical log-probability ``sum(value * log_softmax(logits))``
      of the one-hot ``value`` (counting measure on the K one-hot vectors), so a guide with
      this class and a model with ``OneHotCategorical`` give the discrete ELBO. The support
      is :data:`reparametrized_one_hot` (``is_discrete`` False): ``SVI`` treats the site as
      reparameterised and does not warn.

    .. math:: \nabla_\ell := 2 J_{\pi_1}^\top g - \tfrac12 J_{\pi_0}^\top g,\qquad
              J_p^\top g = p \odot (g - \langle p, g\rangle).

    Validation: Python-number hyperparameters and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs: batch_shape + (K,)     temperature: broadcasts to batch_shape
        sample(key, sample_shape): sample_shape + batch_shape + (K,)
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import ReinMax
    >>> ReinMax(1.0, logits=jnp.zeros((3, 4))).sample(jax.random.key(0), (2,)).shape
    (2, 3, 4)

    References: L. Liu, C. Dong, X. Liu, B. Yu, J. Gao. Bridging Discrete and
    Backpropagation: Straight-Through and Beyond. NeurIPS 2023, arXiv 2304.08612.
    """

    arg_constraints = {**_OneHotEstimator.arg_constraints, "temperature": constraints.positive}
    reparametrized_params = ["probs", "logits", "temperature"]
    pytree_data_fields = ("temperature",)
    _hyper = ("temperature",)

    def __init__(self, temperature=1.0, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        check_positive_scalar("temperature", temperature)
        super().__init__(probs, logits, validate_args=validate_args, temperature=temperature)

    @classmethod
    def infer_shapes(cls, temperature=(), probs: Any = None, logits: Any = None):  # type: ignore[override]  # its own knobs, by keyword
        return super().infer_shapes(probs, logits, temperature=temperature)

    def _sample(self, key, shape):
        return estimators.reinmax(self.logits, self.temperature, self._gumbels(key, shape))[0]


class _SampleLaw(_Host):
    """Mixin for the REDGE family (one-hot and Bernoulli): the measured bias of the hard samples'
    law (``relaxed_dists.sample_law``), looked up by ``_law_name`` at ``(n_steps, t_1)``."""

    _law_name: str = ""

    def _init_chain(self, n_steps: int, t_1) -> None:
        """Check ``n_steps`` (kept static) and a Python-number ``t_1`` (arrays: under validation)."""
        self.n_steps = check_n_steps(n_steps)
        check_t_1(t_1)
        # A Python-number t_1 is also kept as a float, for the kernels' folded-coefficient path
        # (numpyro_ext.estimators._redge). Not a pytree field: a jit/vmap/grad boundary
        # (tree_unflatten) drops it, and the kernels then get the array leaf, which may be traced.
        self._t_1_float = float(t_1) if isinstance(t_1, numbers.Real) else None

    @property
    def _kernel_t_1(self):
        """``t_1`` for the kernels: the Python float given to this very object, else the array."""
        value = self.__dict__.get("_t_1_float")
        return self.t_1 if value is None else value

    def _warn_if_biased(self, t_1) -> None:
        if isinstance(t_1, numbers.Real):  # an array t_1 is not read here (it may be traced)
            warn_if_biased(self._law_name, self.n_steps, float(t_1), stacklevel=4)

    @property
    def sample_law_tv(self) -> float | None:
        """Measured worst-case TV between the law of this class's samples and the nominal
        categorical (Bernoulli) at its ``(n_steps, t_1)`` (:func:`relaxed_dists.sample_law.tv_bound`;
        at the smallest ``t_1`` of a batch); ``None`` when ``t_1`` is traced."""
        if not not_jax_tracer(self.t_1):
            return None
        return tv_bound(self._law_name, self.n_steps, float(np.min(self.t_1)))

    def sample_law(self, key: jax.Array, n_samples: int = 10_000) -> jax.Array:
        """Monte-Carlo estimate, ``batch_shape + event_shape``, of the law that ``sample`` follows on
        these logits (the frequencies of ``n_samples`` draws: of each class for a one-hot class, of 1
        for a Bernoulli one; standard error at most ``0.5 / sqrt(n_samples)``); compare it with
        ``probs``, the law ``log_prob`` describes."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(out_of_range("n_samples", n_samples, "an integer >= 1"))
        return jax.lax.stop_gradient(self.sample(key, (n_samples,))).mean(0)


class _REDGEBase(_SampleLaw, _OneHotEstimator):
    """``n_steps`` (static: a pytree aux field, so ``jit`` and ``vmap`` see a Python int) and
    ``t_1`` (data: an array broadcast to ``batch_shape``, differentiable)."""

    arg_constraints = {**_OneHotEstimator.arg_constraints, "t_1": _t_1_interval}
    reparametrized_params = ["probs", "logits", "t_1"]
    pytree_data_fields = ("t_1",)
    pytree_aux_fields = ("n_steps",)
    _hyper = ("t_1",)

    def __init__(
        self, probs=None, logits=None, n_steps: int = 5, t_1=0.5, *, validate_args: bool | None = None
    ) -> None:
        self._init_chain(n_steps, t_1)
        super().__init__(probs, logits, validate_args=validate_args, t_1=t_1)
        self._warn_if_biased(t_1)

    @classmethod
    def infer_shapes(cls, probs: Any = None, logits: Any = None, n_steps=(), t_1=()):  # type: ignore[override]  # its own knobs, by keyword
        return super().infer_shapes(probs, logits, t_1=t_1)

    def _draw(self, kernel, key, shape):
        """``kernel``'s ``(sample, soft)`` on the chain's Gaussian start and the last step's Gumbel
        noise, the same draws as ``numpyro_ext.functional`` (:func:`numpyro_ext._keyed.draw`:
        one hash per element, made inside the row blocks where that path takes the draw)."""
        return _keyed.draw(kernel, self.logits, self.n_steps, self._kernel_t_1, key, shape)


class REDGE(_REDGEBase):
    r"""REDGE (Gourevitch et al. 2026): categorical reparameterisation by a few DDIM steps
    with the closed-form denoiser ``softmax(logits + alpha_t x_t / sigma_t^2)``.

    - Forward value: an exact one-hot ``h ~ Cat(x0_hat)``, where ``x0_hat`` is the denoiser's
      output at ``alpha = 1 - t_1`` after ``n_steps - 1`` DDIM steps from ``eps ~ N(0, I)``.
      ``h`` follows ``softmax(logits)`` exactly only at ``t_1 = 1``; at small ``t_1`` with few
      steps it is biased toward the mode.
    - Gradient: that of ``x0_hat`` through the whole chain (straight-through on the last
      step), with respect to ``logits`` (or ``probs``) and ``t_1``.
    - ``hard=False``: ``sample`` returns ``x0_hat`` itself (support: the simplex); its density
      is intractable and ``log_prob`` raises ``NotImplementedError``.
    - ``log_prob(value)``: the categorical log-probability ``sum(value * log_softmax(logits))``
      of the one-hot ``value`` (counting measure on the K one-hot vectors), so a guide with
      this class and a model with ``OneHotCategorical`` give the discrete ELBO. The support
      is :data:`reparametrized_one_hot` (``is_discrete`` False): ``SVI`` treats the site as
      reparameterised and does not warn.

    - Sample law: that of the samples is *not* the nominal ``Cat(probs)`` unless ``t_1 = 1``;
      ``log_prob``, ``mean``, ``variance``, ``entropy`` and the KL registrations are the nominal
      categorical's. ``sample_law_tv`` gives the measured worst-case TV between the two at this
      ``(n_steps, t_1)``, ``sample_law(key, n)`` estimates the samples' law on these logits, and
      the constructor warns (``relaxed_dists.sample_law.SampleLawWarning``) when the worst case
      exceeds ``relaxed_dists.sample_law.WARN_TV`` (0.1).

    .. math::
        x_{t} \leftarrow \alpha_s \hat x_0 + \sigma_s \frac{x_t - \alpha_t \hat x_0}{\sigma_t},\qquad
        \hat x_0(x_t) = \mathrm{softmax}\Big(\ell + \frac{\alpha_t x_t}{\sigma_t^2}\Big),\qquad
        \alpha \in [1, \mathrm{linspace}(1 - t_1, 10^{-4}, n - 1)],\ \sigma = 1 - \alpha.

    ``n_steps`` (a Python int >= 2) and ``hard`` are static (pytree aux fields); ``t_1`` is
    data: a Python float in (0, 1] (checked always) or an array broadcasting to ``batch_shape``.

    Validation: Python-number hyperparameters and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs: batch_shape + (K,)     t_1: broadcasts to batch_shape
        sample(key, sample_shape): sample_shape + batch_shape + (K,)
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import REDGE
    >>> d = REDGE(logits=jnp.zeros((3, 4)), n_steps=5, t_1=0.5)
    >>> h = d.sample(jax.random.key(0), (2,))
    >>> h.shape, d.log_prob(h).shape
    ((2, 3, 4), (2, 3))

    References: S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical
    Reparameterization with Denoising Diffusion models. 2026, arXiv 2601.00781.
    """

    _law_name = "redge"

    pytree_aux_fields = ("hard",)

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

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self):
        return reparametrized_one_hot if self.hard else constraints.simplex

    def _sample(self, key, shape):
        hard, soft = self._draw(estimators.redge, key, shape)
        return hard if self.hard else soft

    def log_prob(self, value: ArrayLike) -> jax.Array:
        if not self.hard:
            raise NotImplementedError(
                "REDGE(hard=False) samples the denoiser output x0_hat, whose density is intractable; "
                "use hard=True, whose log_prob is the categorical log-probability of the one-hot sample"
            )
        return super().log_prob(value)


class REDGECov(_REDGEBase):
    r"""REDGE-cov (Gourevitch et al. 2026): REDGE with a per-class Gaussian variance
    ``max(p (1 - p), 0.1)``, ``p = softmax(logits)``, and the start ``p + sqrt(var) eps``.

    - Forward value: an exact one-hot ``h ~ Cat(x0_hat)`` (biased toward the mode at small ``t_1``).
    - Gradient: that of ``x0_hat`` through the whole chain, ``p`` and ``var`` included.
    - ``log_prob(value)``: the categorical log-probability ``sum(value * log_softmax(logits))``
      of the one-hot ``value`` (counting measure on the K one-hot vectors), so a guide with
      this class and a model with ``OneHotCategorical`` give the discrete ELBO. The support
      is :data:`reparametrized_one_hot` (``is_discrete`` False): ``SVI`` treats the site as
      reparameterised and does not warn.

    - Sample law: that of the samples is *not* the nominal ``Cat(probs)`` unless ``t_1 = 1``;
      ``log_prob``, ``mean``, ``variance``, ``entropy`` and the KL registrations are the nominal
      categorical's. ``sample_law_tv`` gives the measured worst-case TV between the two at this
      ``(n_steps, t_1)``, ``sample_law(key, n)`` estimates the samples' law on these logits, and
      the constructor warns (``relaxed_dists.sample_law.SampleLawWarning``) when the worst case
      exceeds ``relaxed_dists.sample_law.WARN_TV`` (0.1).

    .. math:: \hat x_0 = \mathrm{softmax}\Big(\ell + \frac{\alpha x - \alpha\sigma p - \alpha^2/2}{v\,\sigma^2}\Big),
              \quad v = \max(p(1-p), 0.1).

    Validation: Python-number hyperparameters and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        as :class:`REDGE`

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import REDGECov
    >>> REDGECov(logits=jnp.zeros((3, 4))).sample(jax.random.key(0), (2,)).shape
    (2, 3, 4)

    References: S. Gourevitch et al. Categorical Reparameterization with Denoising Diffusion
    models. 2026, arXiv 2601.00781.
    """

    _law_name = "redge_cov"

    def _sample(self, key, shape):
        return self._draw(estimators.redge_cov, key, shape)[0]


class REINDGE(_REDGEBase):
    r"""REINDGE (Gourevitch et al. 2026): REDGE's trajectory with ReinMax's correction at the
    last step.

    - Forward value: an exact one-hot ``h ~ Cat(x0_hat)``, as :class:`REDGE`.
    - Gradient: the chain gradient through the last step's state ``x_t`` plus
      ``(J^T g + <g, D> D) / 2`` with ``D = h - x0_hat`` and ``J`` the last denoiser's logits Jacobian.
    - ``log_prob(value)``: the categorical log-probability ``sum(value * log_softmax(logits))``
      of the one-hot ``value`` (counting measure on the K one-hot vectors), so a guide with
      this class and a model with ``OneHotCategorical`` give the discrete ELBO. The support
      is :data:`reparametrized_one_hot` (``is_discrete`` False): ``SVI`` treats the site as
      reparameterised and does not warn.

    - Sample law: that of the samples is *not* the nominal ``Cat(probs)`` unless ``t_1 = 1``;
      ``log_prob``, ``mean``, ``variance``, ``entropy`` and the KL registrations are the nominal
      categorical's. ``sample_law_tv`` gives the measured worst-case TV between the two at this
      ``(n_steps, t_1)``, ``sample_law(key, n)`` estimates the samples' law on these logits, and
      the constructor warns (``relaxed_dists.sample_law.SampleLawWarning``) when the worst case
      exceeds ``relaxed_dists.sample_law.WARN_TV`` (0.1).

    .. math:: \nabla_\ell := \nabla_\ell^{x_t} + \tfrac12\big(J^\top g + \langle g, D\rangle D\big).

    Validation: Python-number hyperparameters and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        as :class:`REDGE`

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import REINDGE
    >>> REINDGE(logits=jnp.zeros((3, 4))).sample(jax.random.key(0), (2,)).shape
    (2, 3, 4)

    References: S. Gourevitch et al. Categorical Reparameterization with Denoising Diffusion
    models. 2026, arXiv 2601.00781.
    """

    _law_name = "reindge"

    def _sample(self, key, shape):
        return self._draw(estimators.reindge, key, shape)[0]


# --- Bernoulli estimator classes: exact {0, 1} samples, an estimator's gradient ------------------

_BERNOULLI_ESTIMATOR_RANGES = {**_BINARY_RANGES, "t_1": "in (0, 1]"}


class _BernoulliEstimator(_Checked, Distribution):
    """A Bernoulli over {0., 1.} whose ``sample`` is a gradient estimator: the binary kernels of
    :mod:`numpyro_ext.estimators` (the K = 2 case on the logits ``(0, l)``).

    Parameters as :class:`RelaxedBernoulli`'s (``probs`` in [0, 1] or ``logits``, ``+-inf``
    included: a certain outcome); hyperparameters named in ``_hyper`` are broadcast to
    ``batch_shape`` and cast to the parameter's dtype, as :class:`_OneHotEstimator` does.
    ``log_prob`` is the Bernoulli log-probability of the value (counting measure on {0, 1}).
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": extended_real}
    reparametrized_params = ["probs", "logits"]
    support = reparametrized_boolean
    has_enumerate_support = True
    pytree_data_fields: tuple[str, ...] = ("probs", "logits")
    _ranges = _BERNOULLI_ESTIMATOR_RANGES
    _support_text = "0 or 1"
    _hyper: tuple[str, ...] = ()

    def __init__(self, probs=None, logits=None, *, validate_args: bool | None = None, **hyper) -> None:
        name, param = _given(probs, logits)
        param = _float(param)
        batch_shape = _binary_batch_shape(param.shape, **{k: jnp.shape(v) for k, v in hyper.items()})
        for k, v in hyper.items():
            setattr(self, k, jnp.broadcast_to(jnp.asarray(v, param.dtype), batch_shape))
        setattr(self, name, jnp.broadcast_to(param, batch_shape))
        super().__init__(batch_shape, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, probs: Any = None, logits: Any = None, **hyper):
        _, shape = _given(probs, logits)
        hyper = {k: v for k, v in hyper.items() if k in cls._hyper}
        return _binary_batch_shape(shape, **hyper), ()

    def expand(self, batch_shape) -> Distribution:
        batch_shape = self._expanded_shape(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)  # n_steps and validate_args as given
        new._batch_shape = batch_shape
        for name in (*self._hyper, "probs", "logits"):
            if name in self.__dict__:
                setattr(new, name, jnp.broadcast_to(getattr(self, name), batch_shape))
        return new

    @lazy_property
    def logits(self) -> jax.Array:
        return _binary_logits_from_probs(self.probs)

    @lazy_property
    def probs(self) -> jax.Array:
        return jax.nn.sigmoid(self.logits)

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        return self._sample(key, self.shape(sample_shape))

    def _logistic(self, key: jax.Array, shape) -> jax.Array:
        """``L = g_1 - g_0``, standard logistic: the Gumbel-max noise of the two classes."""
        return _ops.sample_logistic(key, shape, self.logits.dtype)

    @_validated
    def log_prob(self, value: ArrayLike) -> jax.Array:
        return bernoulli_log_prob(jnp.asarray(value), self.logits)

    @property
    def mean(self) -> jax.Array:
        return self.probs

    @property
    def mode(self) -> jax.Array:
        return (self.logits > 0).astype(self.logits.dtype)

    @property
    def variance(self) -> jax.Array:
        return self.probs * (1.0 - self.probs)

    def entropy(self) -> jax.Array:
        return -bernoulli_log_prob(self.probs, self.logits)

    def enumerate_support(self, expand: bool = True) -> jax.Array:
        """``[0., 1.]`` in the logits' dtype, as NumPyro's ``Bernoulli`` enumerates (which gives integers)."""
        values = jnp.arange(2, dtype=self.logits.dtype).reshape((-1,) + (1,) * len(self.batch_shape))
        return jnp.broadcast_to(values, values.shape[:1] + self.batch_shape) if expand else values


class BernoulliStraightThrough(_BernoulliEstimator):
    r"""Straight-through estimator (Bengio et al. 2013) for a binary variable.

    - Forward value: ``h = 1[logits + L > 0] ~ Bernoulli(sigmoid(logits))``, ``L`` standard
      logistic, exactly 0. or 1. in the logits' dtype.
    - Gradient: that of ``p = sigmoid(logits)`` (``h + (p - stop_gradient(p))``), biased:
      :func:`numpyro_ext.estimators.binary_straight_through`, :class:`StraightThrough` on the
      logits ``(0, l)``.
    - ``log_prob(value)``: the Bernoulli log-probability ``value * logits - log(1 + exp(logits))``
      (counting measure on {0, 1}), so a guide with this class and a model with ``Bernoulli``
      give the discrete ELBO. The support is :data:`reparametrized_boolean` (``is_discrete``
      False): ``SVI`` treats the site as reparameterised and does not warn.
    - ``mean``, ``mode``, ``variance``, ``entropy``, ``enumerate_support``: Bernoulli(``probs``)'s.

    .. math:: h = \mathbb{1}[\ell + L > 0],\quad p = \sigma(\ell),\quad \nabla_\ell := p (1 - p)\, g .

    Validation: the shapes are checked always. Array parameters are checked with validation on
    (NumPyro's default) when concrete, constants inside ``jit`` included; traced ones
    (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support ``value`` warns where
    concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs: batch_shape (no event dimension)
        sample(key, sample_shape): sample_shape + batch_shape
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import BernoulliStraightThrough
    >>> d = BernoulliStraightThrough(logits=jnp.zeros(3))
    >>> h = d.sample(jax.random.key(0), (2,))
    >>> h.shape, d.log_prob(h).shape, d.event_shape, bool(jnp.all((h == 0) | (h == 1)))
    ((2, 3), (2, 3), (), True)

    References: Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients
    Through Stochastic Neurons for Conditional Computation. 2013, arXiv 1308.3432.
    """

    def __init__(self, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        super().__init__(probs, logits, validate_args=validate_args)

    def _sample(self, key, shape):
        return estimators.binary_straight_through(self.logits, self._logistic(key, shape))[0]


class BernoulliReinMax(_BernoulliEstimator):
    r"""ReinMax (Liu et al. 2023) for a binary variable: exact {0, 1} samples with the
    second-order gradient.

    - Forward value: ``h = 1[logits + L > 0] ~ Bernoulli(sigmoid(logits))``, exactly 0. or 1.
    - Gradient: :func:`numpyro_ext.estimators.binary_reinmax` (:class:`ReinMax` on the logits
      ``(0, l)``), ``(2 p_1 (1 - p_1) - p_0 (1 - p_0) / 2) g`` with ``p_0 = sigmoid(logits)`` and
      ``p_1 = (sigmoid(logits / temperature) + h) / 2`` (a ``jax.custom_vjp``); ``temperature``
      enters the backward pass only and receives no gradient.
    - ``log_prob(value)``: the Bernoulli log-probability (counting measure on {0, 1}); support
      :data:`reparametrized_boolean` (``is_discrete`` False).
    - ``mean``, ``mode``, ``variance``, ``entropy``, ``enumerate_support``: Bernoulli(``probs``)'s.

    .. math:: \nabla_\ell := \big(2 p_1 (1 - p_1) - \tfrac12 p_0 (1 - p_0)\big)\, g .

    Validation: a Python-number ``temperature`` and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs, temperature: broadcast to batch_shape (no event dimension)
        sample(key, sample_shape): sample_shape + batch_shape
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import BernoulliReinMax
    >>> d = BernoulliReinMax(0.5, logits=jnp.zeros(3))
    >>> d.sample(jax.random.key(0), (2,)).shape, d.batch_shape
    ((2, 3), (3,))

    References: L. Liu, C. Dong, X. Liu, B. Yu, J. Gao. Bridging Discrete and
    Backpropagation: Straight-Through and Beyond. NeurIPS 2023, arXiv 2304.08612.
    """

    arg_constraints = {**_BernoulliEstimator.arg_constraints, "temperature": constraints.positive}
    reparametrized_params = ["probs", "logits", "temperature"]
    pytree_data_fields = ("temperature",)
    _hyper = ("temperature",)

    def __init__(self, temperature=1.0, probs=None, logits=None, *, validate_args: bool | None = None) -> None:
        check_positive_scalar("temperature", temperature)
        super().__init__(probs, logits, validate_args=validate_args, temperature=temperature)

    @classmethod
    def infer_shapes(cls, temperature=(), probs: Any = None, logits: Any = None):  # type: ignore[override]  # its own knobs, by keyword
        return super().infer_shapes(probs, logits, temperature=temperature)

    def _sample(self, key, shape):
        return estimators.binary_reinmax(self.logits, self.temperature, self._logistic(key, shape))[0]


class _BernoulliREDGEBase(_SampleLaw, _BernoulliEstimator):
    """``n_steps`` (static: a pytree aux field) and ``t_1`` (data: an array broadcast to
    ``batch_shape``, differentiable), as :class:`_REDGEBase`."""

    arg_constraints = {**_BernoulliEstimator.arg_constraints, "t_1": _t_1_interval}
    reparametrized_params = ["probs", "logits", "t_1"]
    pytree_data_fields = ("t_1",)
    pytree_aux_fields = ("n_steps",)
    _hyper = ("t_1",)

    def __init__(
        self, probs=None, logits=None, n_steps: int = 5, t_1=0.5, *, validate_args: bool | None = None
    ) -> None:
        self._init_chain(n_steps, t_1)
        super().__init__(probs, logits, validate_args=validate_args, t_1=t_1)
        self._warn_if_biased(t_1)

    @classmethod
    def infer_shapes(cls, probs: Any = None, logits: Any = None, n_steps=(), t_1=()):  # type: ignore[override]  # its own knobs, by keyword
        return super().infer_shapes(probs, logits, t_1=t_1)

    def _noise(self, key, shape):
        """``(eps, logistic)``: the chain's start in the difference of the two classes,
        ``eps = eps_1 - eps_0 ~ N(0, 2)``, and the last step's ``L = g_1 - g_0``, from one hash per
        element (:func:`numpyro_ext._ops.sample_normal_and_uniform`)."""
        normal, u = _ops.sample_normal_and_uniform(key, shape, self.logits.dtype)
        return math.sqrt(2.0) * normal, jax.scipy.special.logit(u)


class BernoulliREDGE(_BernoulliREDGEBase):
    r"""REDGE (Gourevitch et al. 2026) for a binary variable: :class:`REDGE` on the logits
    ``(0, l)``, with the DDIM chain written in the difference ``d = x_1 - x_0`` of the two classes.

    - Forward value: ``h = 1[z + L > 0]``, exactly 0. or 1., where ``z`` is the denoiser's log-odds
      at ``alpha = 1 - t_1`` after ``n_steps - 1`` DDIM steps from ``d = eps ~ N(0, 2)``;
      ``h ~ Bernoulli(sigmoid(z))``, which is ``Bernoulli(sigmoid(logits))`` exactly only at ``t_1 = 1``.
    - Gradient: that of ``sigmoid(z)`` through the whole chain (straight-through on the last
      step), with respect to ``logits`` (or ``probs``) and ``t_1``
      (:func:`numpyro_ext.estimators.binary_redge`).
    - ``log_prob(value)``: the Bernoulli log-probability (counting measure on {0, 1}); support
      :data:`reparametrized_boolean` (``is_discrete`` False).
    - ``mean``, ``mode``, ``variance``, ``entropy``, ``enumerate_support``: Bernoulli(``probs``)'s.
    - Sample law: that of the samples is *not* the nominal ``Bernoulli(probs)`` unless ``t_1 = 1``;
      ``log_prob``, ``mean``, ``variance``, ``entropy`` and the KL registrations are the nominal
      Bernoulli's. ``sample_law_tv`` gives the measured worst-case TV at this ``(n_steps, t_1)``
      (the one-hot class's table, measured on K = 2 among others), ``sample_law(key, n)``
      estimates the frequency of 1 on these logits, and the constructor warns
      (``relaxed_dists.sample_law.SampleLawWarning``) when the worst case exceeds
      ``relaxed_dists.sample_law.WARN_TV`` (0.1).

    .. math::
        z_t = \ell + \frac{\alpha_t d_t}{\sigma_t^2},\qquad
        d_s = \alpha_s m_t + \sigma_s \frac{d_t - \alpha_t m_t}{\sigma_t},\quad m_t = 2\sigma(z_t) - 1,
        \qquad \alpha \in [1, \mathrm{linspace}(1 - t_1, 10^{-4}, n - 1)],\ \sigma = 1 - \alpha.

    ``n_steps`` (a Python int >= 2) is static (a pytree aux field); ``t_1`` is data: a Python
    float in (0, 1] (checked always) or an array broadcasting to ``batch_shape``.

    Validation: Python-number hyperparameters and the shapes are checked always. Array
    parameters are checked with validation on (NumPyro's default) when concrete, constants inside
    ``jit`` included; traced ones (``jit``/``vmap``/``grad`` arguments) cannot be. An out-of-support
    ``value`` warns where concrete and scores ``-inf`` (NumPyro's convention).

    Shapes::

        logits, probs, t_1: broadcast to batch_shape (no event dimension)
        sample(key, sample_shape): sample_shape + batch_shape
        log_prob(value): sample_shape + batch_shape

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import BernoulliREDGE
    >>> d = BernoulliREDGE(logits=jnp.zeros(3), n_steps=5, t_1=0.5)
    >>> h = d.sample(jax.random.key(0), (2,))
    >>> h.shape, d.log_prob(h).shape, d.sample_law_tv
    ((2, 3), (2, 3), 0.019)

    References: S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical
    Reparameterization with Denoising Diffusion models. 2026, arXiv 2601.00781.
    """

    _law_name = "redge"

    def _sample(self, key, shape):
        return estimators.binary_redge(self.logits, self.n_steps, self._kernel_t_1, *self._noise(key, shape))[0]


class BernoulliREDGECov(_BernoulliREDGEBase):
    r"""REDGE-cov (Gourevitch et al. 2026) for a binary variable: :class:`REDGECov` on the logits
    ``(0, l)``, in the difference ``d = x_1 - x_0``.

    - Forward value: ``h = 1[z + L > 0]``, exactly 0. or 1. (biased toward the mode at small ``t_1``);
      ``p = sigmoid(logits)``, ``v = max(p (1 - p), 0.1)`` (the same for both classes), the chain
      starts at ``d = (2p - 1) + sqrt(v) eps``, ``eps ~ N(0, 2)``.
    - Gradient: that of ``sigmoid(z)`` through the whole chain, ``p`` and ``v`` included
      (:func:`numpyro_ext.estimators.binary_redge_cov`).
    - ``log_prob(value)``: the Bernoulli log-probability (counting measure on {0, 1}); support
      :data:`reparametrized_boolean` (``is_discrete`` False).
    - ``mean``, ``mode``, ``variance``, ``entropy``, ``enumerate_support``: Bernoulli(``probs``)'s.
    - Sample law: that of the samples is *not* the nominal ``Bernoulli(probs)`` unless ``t_1 = 1``;
      ``log_prob``, ``mean``, ``variance``, ``entropy`` and the KL registrations are the nominal
      Bernoulli's. ``sample_law_tv`` gives the measured worst-case TV at this ``(n_steps, t_1)``
      (the one-hot class's table, measured on K = 2 among others), ``sample_law(key, n)``
      estimates the frequency of 1 on these logits, and the constructor warns
      (``relaxed_dists.sample_law.SampleLawWarning``) when the worst case exceeds
      ``relaxed_dists.sample_law.WARN_TV`` (0.1).

    .. math:: z_t = \ell + \frac{\alpha_t d_t - \alpha_t \sigma_t (2p - 1)}{v\,\sigma_t^2},
              \quad v = \max(p(1-p), 0.1).

    Validation: as :class:`BernoulliREDGE`.

    Shapes::

        as :class:`BernoulliREDGE`

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import BernoulliREDGECov
    >>> BernoulliREDGECov(logits=jnp.zeros(3)).sample(jax.random.key(0), (2,)).shape
    (2, 3)

    References: S. Gourevitch et al. Categorical Reparameterization with Denoising Diffusion
    models. 2026, arXiv 2601.00781.
    """

    _law_name = "redge_cov"

    def _sample(self, key, shape):
        return estimators.binary_redge_cov(self.logits, self.n_steps, self._kernel_t_1, *self._noise(key, shape))[0]


class BernoulliREINDGE(_BernoulliREDGEBase):
    r"""REINDGE (Gourevitch et al. 2026) for a binary variable: :class:`REINDGE` on the logits
    ``(0, l)``: :class:`BernoulliREDGE`'s trajectory with ReinMax's correction at the last step.

    - Forward value: ``h = 1[z + L > 0]``, exactly 0. or 1., as :class:`BernoulliREDGE`.
    - Gradient: the chain gradient through the last step's state plus ``(q (1 - q) + D^2) g / 2``
      with ``q = sigmoid(z)``, ``D = h - q`` (:func:`numpyro_ext.estimators.binary_reindge`).
    - ``log_prob(value)``: the Bernoulli log-probability (counting measure on {0, 1}); support
      :data:`reparametrized_boolean` (``is_discrete`` False).
    - ``mean``, ``mode``, ``variance``, ``entropy``, ``enumerate_support``: Bernoulli(``probs``)'s.
    - Sample law: that of the samples is *not* the nominal ``Bernoulli(probs)`` unless ``t_1 = 1``;
      ``log_prob``, ``mean``, ``variance``, ``entropy`` and the KL registrations are the nominal
      Bernoulli's. ``sample_law_tv`` gives the measured worst-case TV at this ``(n_steps, t_1)``
      (the one-hot class's table, measured on K = 2 among others), ``sample_law(key, n)``
      estimates the frequency of 1 on these logits, and the constructor warns
      (``relaxed_dists.sample_law.SampleLawWarning``) when the worst case exceeds
      ``relaxed_dists.sample_law.WARN_TV`` (0.1).

    .. math:: \nabla_\ell := \nabla_\ell^{d_1} + \tfrac12\big(q(1-q) + D^2\big)\, g .

    Validation: as :class:`BernoulliREDGE`.

    Shapes::

        as :class:`BernoulliREDGE`

    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ext.distributions import BernoulliREINDGE
    >>> BernoulliREINDGE(logits=jnp.zeros(3)).sample(jax.random.key(0), (2,)).shape
    (2, 3)

    References: S. Gourevitch et al. Categorical Reparameterization with Denoising Diffusion
    models. 2026, arXiv 2601.00781.
    """

    _law_name = "reindge"

    def _sample(self, key, shape):
        return estimators.binary_reindge(self.logits, self.n_steps, self._kernel_t_1, *self._noise(key, shape))[0]
