r"""Relax a Pyro program: swap its latent discrete sites for an estimator's distribution.

:func:`relax` wraps a model or guide so that each selected latent ``OneHotCategorical`` or
``Bernoulli`` site is drawn from the distribution class of a gradient estimator (REDGE,
ReinMax, straight-through Gumbel-Softmax, ...) built from the same ``probs``/``logits``.
It is :func:`pyro.poutine.reparam` with one reparameteriser, :class:`RelaxReparam`
(the idea of pyro-ppl/pyro#2689: a ``Reparam`` that turns a discrete site into a relaxed
one). The hard estimators score their exact one-hot value with the categorical
log-probability, so a relaxed guide against the unrelaxed model gives the discrete ELBO,
now with a reparameterised gradient; ``"concrete"`` relaxes the values themselves and is
meant for the model and the guide together.

Mirrors ``numpyro_ext/relax.py`` name for name; the one difference is where the schedule
step lives (here on the returned object, there in a ``numpyro.mutable`` site).

>>> import pyro, pyro.distributions as dist
>>> pyro.clear_param_store()
>>> def guide():
...     logits = pyro.param("logits", torch.zeros(3, 4))
...     with pyro.plate("data", 3):
...         return pyro.sample("z", dist.OneHotCategorical(logits=logits))
>>> relaxed = relax(guide, estimator="redge", n_steps=5, t_1=0.5)
>>> site = pyro.poutine.trace(relaxed).get_trace().nodes["z"]
>>> type(site["fn"]).__name__, site["fn"].batch_shape, site["value"].shape, relaxed.step
('REDGE', torch.Size([3]), torch.Size([3, 4]), 1)
"""

from __future__ import annotations

import functools
import numbers
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping
from typing import Any

import torch
from pyro import poutine
from pyro.distributions import Independent
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.infer.reparam.reparam import Reparam
from pyro.poutine.messenger import Messenger
from torch.distributions import Bernoulli, Categorical, Distribution, OneHotCategorical

from relaxed_dists import defaults
from relaxed_dists.checks import check_positive_scalar, out_of_range
from relaxed_dists.registry import resolve_hyper
from relaxed_dists.selection import check_auto_args

from .distributions import (
    REDGE,
    REINDGE,
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    BernoulliReinMax,
    BernoulliStraightThrough,
    REDGECov,
    ReinMax,
    RelaxedBernoulli,
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategorical,
    RelaxedOneHotCategoricalStraightThrough,
    StraightThrough,
)

__all__ = ["relax", "RelaxReparam", "exponential_anneal", "take_one_hot"]

#: estimator name -> the class that replaces a ``OneHotCategorical`` site.
ONE_HOT_CLASSES: dict[str, type[Distribution]] = {
    "st": StraightThrough,
    "gumbel": RelaxedOneHotCategoricalStraightThrough,
    "reinmax": ReinMax,
    "redge": REDGE,
    "redge_cov": REDGECov,
    "reindge": REINDGE,
    "concrete": RelaxedOneHotCategorical,
}

#: estimator name -> the class that replaces a ``Bernoulli`` site.
BERNOULLI_CLASSES: dict[str, type[Distribution]] = {
    "st": BernoulliStraightThrough,
    "gumbel": RelaxedBernoulliStraightThrough,
    "reinmax": BernoulliReinMax,
    "redge": BernoulliREDGE,
    "redge_cov": BernoulliREDGECov,
    "reindge": BernoulliREINDGE,
    "concrete": RelaxedBernoulli,
}

# --- schedules ------------------------------------------------------------------------------


def exponential_anneal(step, rate: float, minimum: float, maximum: float = 1.0) -> torch.Tensor:
    r"""Jang et al. (2017)'s temperature schedule ``max(minimum, maximum * exp(-rate * step))``.

    The torch twin of :func:`relaxed_dists.schedules.exponential_anneal` (which returns a
    Python float, and so keeps REDGE's fused CUDA path open when used for ``t_1``).

    Shapes:
        ``step``: a Python int or a tensor of any shape; returns a tensor of that shape
        (0-d for an int), in ``step``'s floating dtype or the default one.

    .. math:: \tau(s) = \max\big(\tau_{\min},\ \tau_{\max}\, e^{-r s}\big)

    Example:
        >>> exponential_anneal(0, 1e-3, 0.5)
        tensor(1.)
        >>> exponential_anneal(torch.arange(3), 1e-3, 0.5).shape
        torch.Size([3])

    References:
        E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax.
        ICLR 2017, arXiv 1611.01144.
    """
    check_positive_scalar("minimum", minimum)
    if isinstance(rate, numbers.Real) and not rate >= 0:  # NaN fails too
        raise ValueError(out_of_range("rate", rate, ">= 0"))
    step = torch.as_tensor(step)
    if not step.is_floating_point():
        step = step.to(torch.get_default_dtype())
    return torch.clamp(maximum * torch.exp(-rate * step), min=minimum)


# --- using a one-hot value ----------------------------------------------------------------


def take_one_hot(table: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    r"""``table[index]`` for the one-hot ``value`` of ``index``, written as a contraction, so that
    the gradient reaches ``value`` (and through it a relaxed site's logits).

    ``value.argmax(-1)`` used as an index gives the same forward result and no gradient at all:
    the ELBO then trains the discrete site from its prior and entropy terms only.

    Shapes:
        ``value``: ``batch + (K,)``; ``table``: ``(K,) + rest``; returns ``batch + rest``:
        ``sum_k value[..., k] * table[k]`` (``value @ table`` for a 2-d ``table``). A ``table``
        of integers is cast to ``value``'s dtype.

    .. math:: \mathrm{out}_{b, r} = \sum_{k=1}^{K} v_{b, k}\, T_{k, r}

    Example:
        >>> means = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])  # (K, D) = (3, 2)
        >>> z = torch.eye(3)[torch.tensor([2, 0, 2, 1])]  # four one-hots, (4, 3)
        >>> take_one_hot(means, z)
        tensor([[4., 5.],
                [0., 1.],
                [4., 5.],
                [2., 3.]])
    """
    if value.dim() < 1 or table.dim() < 1 or table.shape[0] != value.shape[-1]:
        raise ValueError(
            f"take_one_hot needs value of shape batch + (K,) and table of shape (K,) + rest, "
            f"got value.shape={tuple(value.shape)}, table.shape={tuple(table.shape)}"
        )
    if not table.is_floating_point() and not table.is_complex():
        table = table.to(value.dtype)
    return torch.tensordot(value, table, dims=1)


# --- unwrapping a site's distribution -------------------------------------------------------


def _unwrap(fn: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """The innermost distribution under Pyro's wrappers, and the wrappers, outermost first."""
    wrappers: list[tuple[str, Any]] = []
    while True:
        if isinstance(fn, torch.distributions.Independent):
            wrappers.append(("independent", fn.reinterpreted_batch_ndims))
        elif isinstance(fn, MaskedDistribution):
            wrappers.append(("mask", fn._mask))
        elif isinstance(fn, ExpandedDistribution):
            wrappers.append(("expand", fn.batch_shape))
        else:
            return fn, wrappers
        fn = fn.base_dist


def _rewrap(fn: Distribution, wrappers: list[tuple[str, Any]]) -> Distribution:
    """Re-applies ``wrappers`` (outermost first) around ``fn``; ``expand`` uses ``fn``'s own."""
    for kind, arg in reversed(wrappers):
        if kind == "independent":
            fn = Independent(fn, arg)
        elif kind == "mask":
            fn = MaskedDistribution(fn, arg)
        else:
            fn = fn.expand(arg)
    return fn


def _given_param(leaf: Distribution) -> dict[str, torch.Tensor]:
    """``{"probs": ...}`` if torch records the site as built from ``probs`` (its ``_param``),
    else ``{"logits": ...}``. Torch's ``OneHotCategorical`` stores ``probs / sum(probs)`` or
    ``logits - logsumexp(logits)``; ``Bernoulli`` stores them as given. A validated
    ``OneHotCategorical`` computes its logits at once and, once expanded (as by a plate), records
    them as its parameter: the values are those the relaxed class would compute from ``probs``."""
    store: Any = leaf._categorical if isinstance(leaf, OneHotCategorical) else leaf
    probs = store.__dict__.get("probs")
    return {"probs": probs} if probs is not None and store._param is probs else {"logits": store.logits}


# --- hyperparameters ------------------------------------------------------------------------


class _Hyper(MutableMapping):
    """An estimator's hyperparameters: numbers, tensors or schedules ``f(step) -> value``.

    Assigning a key checks its name and (for a Python number) its range at once;
    :meth:`at` evaluates the schedules at a step and checks their values.
    """

    def __init__(self, estimator: str, hyper: Mapping[str, object]) -> None:
        self.estimator = estimator
        self._values = resolve_hyper(estimator, hyper)

    def __getitem__(self, name: str) -> object:
        return self._values[name]

    def __setitem__(self, name: str, value: object) -> None:
        self._values[name] = resolve_hyper(self.estimator, {name: value})[name]

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"hyperparameters cannot be removed; assign {name!r} a new value instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.estimator!r}, {self._values!r})"

    def at(self, step: int) -> dict[str, object]:
        """The values at ``step``: each schedule called with ``step``, every value checked."""
        values = {name: value(step) if callable(value) else value for name, value in self._values.items()}
        return resolve_hyper(self.estimator, values)


def _check_step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(out_of_range("step", step, "an integer >= 0"))
    if step < 0:
        raise ValueError(out_of_range("step", step, "an integer >= 0"))
    return int(step)


# --- the reparameteriser --------------------------------------------------------------------


def _categorical_message(name: str, found: str, one_hot: str) -> str:
    """The two ways out for a latent integer ``Categorical`` site (an index has no gradient)."""
    return (
        f"site {name!r} is a {found} (integer values), which relax cannot reparameterise. Either "
        f"(1) declare it {one_hot}(logits=...) and use its one-hot value differentiably: "
        f"take_one_hot(table, value) (or value @ table) for table[index]; value.argmax(-1) as an index "
        f"cuts the gradient and trains nothing; or (2) keep it {found} and enumerate it: "
        f"config_enumerate (infer={{'enumerate': 'parallel'}}) with TraceEnum_ELBO"
    )


class RelaxReparam(Reparam):
    r"""A ``Reparam`` that replaces a latent discrete site by an estimator's distribution.

    - ``OneHotCategorical`` (torch's or Pyro's) becomes the one-hot class of ``estimator``:
      ``st`` :class:`StraightThrough`, ``gumbel`` :class:`RelaxedOneHotCategoricalStraightThrough`,
      ``reinmax`` :class:`ReinMax`, ``redge`` :class:`REDGE`, ``redge_cov`` :class:`REDGECov`,
      ``reindge`` :class:`REINDGE`, ``concrete`` :class:`RelaxedOneHotCategorical`.
    - ``Bernoulli`` becomes the Bernoulli class of ``estimator``: ``st``
      :class:`BernoulliStraightThrough`, ``gumbel`` :class:`RelaxedBernoulliStraightThrough`,
      ``reinmax`` :class:`BernoulliReinMax`, ``redge`` :class:`BernoulliREDGE`, ``redge_cov``
      :class:`BernoulliREDGECov`, ``reindge`` :class:`BernoulliREINDGE`, ``concrete``
      :class:`RelaxedBernoulli`. Every estimator name thus relaxes a program that mixes
      ``OneHotCategorical`` and ``Bernoulli`` sites.
    - An integer ``Categorical`` raises a ``ValueError``: declare the site ``OneHotCategorical``.
    - Observed sites, sites that already have ``rsample`` (a relaxed class, torch's
      ``OneHotCategoricalStraightThrough``) and any other distribution are returned unchanged.

    The replacement is built from the site's ``logits`` (its ``probs`` where torch records
    that it was built from them), with the site's ``validate_args``; the
    ``Independent`` / ``to_event``, ``mask`` and ``expand`` wrappers around it are re-applied,
    so ``batch_shape``, ``event_shape`` and the mask are unchanged. The value is not touched.

    ``hyper`` holds the estimator's hyperparameters (defaults filled in by
    :func:`relaxed_dists.registry.resolve_hyper`); a callable value is a schedule, called with
    :attr:`step` each time a site is relaxed. Used on its own (``poutine.reparam(config=...)``)
    nothing advances :attr:`step`: set it yourself. :func:`relax` advances it once per call.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> def model():
        ...     return pyro.sample("b", dist.Bernoulli(logits=torch.zeros(2)).to_event(1))
        >>> reparam = RelaxReparam("gumbel", temperature=0.5)
        >>> site = pyro.poutine.trace(pyro.poutine.reparam(model, {"b": reparam})).get_trace().nodes["b"]
        >>> type(site["fn"].base_dist).__name__, site["fn"].event_shape
        ('RelaxedBernoulliStraightThrough', torch.Size([2]))
    """

    def __init__(self, estimator: str | None = None, **hyper) -> None:
        if estimator is None:
            estimator, hyper = defaults.RELAX_ESTIMATOR, {**defaults.RELAX_HYPER, **hyper}
        if estimator == "auto":
            raise ValueError(
                "RelaxReparam(estimator='auto') is not available: 'auto' selects by measuring a model and guide; "
                "use relax(guide, estimator='auto', model=model) or AutoRelaxed(model, estimator='auto')"
            )
        self.hyper = _Hyper(estimator, hyper)
        self.estimator = estimator
        self._step = 0

    @property
    def step(self) -> int:
        """The step at which schedules are evaluated (an int >= 0, settable)."""
        return self._step

    @step.setter
    def step(self, step: int) -> None:
        self._step = _check_step(step)

    def apply(self, msg):
        fn = msg["fn"] if msg["is_observed"] else self.relax_distribution(msg["name"], msg["fn"])
        return {"fn": fn, "value": msg["value"], "is_observed": msg["is_observed"]}

    def relax_distribution(self, name: str, fn: Distribution) -> Distribution:
        """The relaxed replacement of the latent site ``name``'s distribution ``fn`` (or ``fn``)."""
        leaf, wrappers = _unwrap(fn)
        if isinstance(leaf, Categorical):
            raise ValueError(_categorical_message(name, "Categorical", "OneHotCategorical"))
        if leaf.has_rsample or not isinstance(leaf, (OneHotCategorical, Bernoulli)):
            return fn
        cls = self._relaxed_class(name, leaf)
        relaxed = cls(**self.hyper.at(self.step), **_given_param(leaf), validate_args=leaf._validate_args)
        return _rewrap(relaxed, wrappers)

    def _relaxed_class(self, name: str, leaf: Distribution) -> Callable[..., Distribution]:
        return (ONE_HOT_CLASSES if isinstance(leaf, OneHotCategorical) else BERNOULLI_CLASSES)[self.estimator]


# --- relax ------------------------------------------------------------------------------------


def _skipped_message(fn: Callable, skipped: set[str]) -> str:
    name = getattr(fn, "__name__", fn)
    return (
        f"relax({name!r}) left the sites {sorted(skipped)} discrete: they are marked "
        f"infer={{'enumerate': ...}} (config_enumerate), so they stay for TraceEnum_ELBO to enumerate. "
        f"To relax them, name them: relax({name}, sites={sorted(skipped)!r}, ...) (this warning is given once)"
    )


def _site_names(sites) -> frozenset[str] | None:
    """The names ``sites`` lists (a name or a collection of names), or ``None``; checks its type."""
    if sites is None or callable(sites):
        return None
    if isinstance(sites, str):
        return frozenset([sites])
    if isinstance(sites, Collection) and all(isinstance(s, str) for s in sites):
        return frozenset(sites)
    raise TypeError(
        f"sites must be None, a site name, a collection of site names or a predicate f(name, fn) -> bool, got {sites=}"
    )


class _ReplayedValueCheck(Messenger):
    """After each relaxed site of a model is given its value, checks (under validation) that a hard
    class got an exact one-hot / 0-1 value: a Concrete guide's relaxed point replayed into a hard
    model site is a short ``ValueError`` naming the site, not the host's message printing the tensor."""

    def __init__(self, relaxed: _Relaxed) -> None:
        super().__init__()
        self.relaxed = relaxed

    def _pyro_post_sample(self, msg) -> None:
        leaf = _unwrap(msg["fn"])[0]
        if msg["is_observed"] or not isinstance(leaf, _hard_classes()) or not leaf._validate_args:
            return
        if not bool(torch.all(leaf.support.check(msg["value"]))):  # type: ignore[union-attr]  # hard classes have one
            raise ValueError(
                f"site {msg['name']!r} of {getattr(self.relaxed.fn, '__name__', self.relaxed.fn)!r} is relaxed to "
                f"{type(leaf).__name__}, which takes exact one-hot (or 0/1) values, and was given a value that is not "
                f"one, as a guide relaxed with estimator='concrete' draws: 'concrete' relaxes the values themselves, "
                f"so it belongs in model and guide together (relax(model, estimator='concrete') too); or give the "
                f"guide a hard estimator"
            )


def _hard_classes() -> tuple[type[Distribution], ...]:
    """The classes of :data:`ONE_HOT_CLASSES` / :data:`BERNOULLI_CLASSES` with exact discrete values."""
    classes = (*ONE_HOT_CLASSES.values(), *BERNOULLI_CLASSES.values())
    return tuple(c for c in classes if c not in (RelaxedOneHotCategorical, RelaxedBernoulli))


def _select_into(guide, reparam: RelaxReparam, args, kwargs, step) -> tuple:
    """One selection for an auto guide (``relax(..., "auto")`` or ``AutoRelaxed``): runs
    :func:`pyro_ext.selection.select_estimator` on ``guide.model`` and ``guide`` (hidden from
    enclosing handlers, ranked for ``defaults.AUTO_AVERAGED_GRADIENTS`` averaged gradients unless
    ``guide.selection_options`` says otherwise), logs it in ``guide.selection`` /
    ``guide.selections`` and returns ``(report, the chosen RelaxReparam with reparam's step)``."""
    from .selection import select_estimator

    with poutine.block():
        options = {"num_particles": defaults.AUTO_AVERAGED_GRADIENTS, **guide.selection_options}
        report = select_estimator(guide.model, guide, *args, **options, **kwargs)
    estimator, hyper = report.best
    chosen = RelaxReparam(estimator, **hyper)
    chosen.step = reparam.step
    guide.selection = report
    guide.selections.append((guide._calls if step is None else step, estimator, hyper))
    return report, chosen


def _copy_name_and_doc(wrapper, fn) -> None:
    """``functools.update_wrapper(wrapper, fn, updated=())`` (name and doc; never fn's ``__dict__``),
    with ``__wrapped__`` set past ``torch.nn.Module.__setattr__``: a module ``fn`` is registered
    once, as the submodule ``fn``, not a second time as ``__wrapped__``. Of a module only the doc
    is copied: its other "wrapper assignments" are its class's (``__annotations__`` is
    ``nn.Module``'s, which does not pickle)."""
    for name in ("__doc__",) if isinstance(fn, torch.nn.Module) else functools.WRAPPER_ASSIGNMENTS:
        try:
            object.__setattr__(wrapper, name, getattr(fn, name))
        except AttributeError:
            pass
    object.__setattr__(wrapper, "__wrapped__", fn)


class _Relaxed:
    """``fn`` under :class:`RelaxReparam`, with a step counter for its schedules (see :func:`relax`)."""

    def __init__(
        self, fn: Callable, sites, estimator, hyper: Mapping[str, object], model=None, reselect_every=None
    ) -> None:
        _copy_name_and_doc(self, fn)
        self.fn = fn
        self._auto = estimator == "auto"
        self.model = model
        self.reselect_every = reselect_every
        self.selection = None
        self.selections: list = []
        self._calls = 0
        self._external = False
        self.selection_options: dict = {}  # extra keyword arguments of select_estimator (num_particles=..., ...)
        self.reparam = RelaxReparam(None if self._auto else estimator, **hyper)
        self.sites = sites
        self._names = _site_names(sites)
        self._seen: set[str] = set()
        self._skipped: set[str] = set()  # enumerated sites left alone by sites=None
        self._warned = False
        self._handler = self._make_handler()

    def _make_handler(self) -> Callable:
        return poutine.reparam(_ReplayedValueCheck(self)(self.fn), config=self._config)

    # Pickling (``spawn``-started processes, ``copy.deepcopy``): the handler is rebuilt from ``fn``
    # rather than pickled, so the pickle holds ``fn``, the reparameteriser and the counters only.
    def __getstate__(self) -> dict:
        parent = getattr(super(), "__getstate__", None)  # object's from Python 3.11, torch.nn.Module's
        state = dict(parent() if parent is not None else self.__dict__)
        state.pop("_handler", None)
        return state

    def __setstate__(self, state: dict) -> None:
        parent = getattr(super(), "__setstate__", None)  # torch.nn.Module's for _RelaxedModule
        if parent is None:
            self.__dict__.update(state)
        else:
            parent(state)
        self._handler = self._make_handler()

    def _config(self, msg) -> RelaxReparam | None:
        """``poutine.reparam``'s config: the reparameteriser for the selected latent sites."""
        name, fn = msg["name"], msg["fn"]
        self._seen.add(name)
        if msg["is_observed"]:
            return None
        if self.sites is None:
            selected = not msg["infer"].get("enumerate")
            if not selected and isinstance(_unwrap(fn)[0], (OneHotCategorical, Bernoulli)):
                self._skipped.add(name)
        elif self._names is not None:
            selected = name in self._names
        else:
            selected = bool(self.sites(name, fn))
        return self.reparam if selected else None

    def _check_found(self) -> None:
        if self._names is not None and not self._names <= self._seen:
            raise ValueError(
                f"sites {sorted(self._names - self._seen)} are not sample sites of "
                f"{getattr(self.fn, '__name__', self.fn)!r}; its sample sites are {sorted(self._seen)}"
            )

    def _warn_skipped(self) -> None:
        if self._skipped and not self._warned:
            self._warned = True
            warnings.warn(_skipped_message(self.fn, self._skipped), UserWarning, stacklevel=3)

    @property
    def step(self) -> int:
        """Completed calls of this function (int >= 0, settable); schedules see it during a call."""
        return self.reparam.step

    @step.setter
    def step(self, step: int) -> None:
        self.reparam.step = step

    @property
    def hyper(self) -> MutableMapping:
        """The hyperparameters (numbers, tensors, schedules); assign to change them from the next call."""
        return self.reparam.hyper

    @property
    def estimator(self) -> str:
        return self.reparam.estimator

    def select(self, *args, step=None, **kwargs):
        """Runs :func:`pyro_ext.selection.select_estimator` now (model and this guide at the current
        parameters) and applies its choice; returns the report. Options of the selection can be set
        in ``self.selection_options`` (a dict)."""
        report, self.reparam = _select_into(self, self.reparam, args, kwargs, step)
        return report

    def __call__(self, *args, **kwargs):
        if (
            self._auto
            and not self._external
            and (self._calls == 0 or (self.reselect_every and self._calls % self.reselect_every == 0))
        ):
            self.select(*args, **kwargs)
        self._calls += 1
        self._seen = set()
        result = self._handler(*args, **kwargs)
        self._check_found()
        self._warn_skipped()
        self.reparam.step += 1
        return result

    def __repr__(self) -> str:
        return f"relax({getattr(self.fn, '__name__', self.fn)!r}, estimator={self.estimator!r}, step={self.step})"


def relax(
    fn: Callable, sites=None, estimator: str | None = None, *, model=None, reselect_every=None, **hyper
) -> Callable:
    r"""``fn`` with each selected latent discrete site replaced by ``estimator``'s distribution.

    Args:
        fn: a Pyro model or guide.
        sites: which sites to relax: ``None`` (every eligible site, except those marked
            ``infer={"enumerate": ...}``, e.g. by ``config_enumerate``: they are left for
            ``TraceEnum_ELBO``, and the first call warns, naming them; list them here to relax
            them), a site name, a collection of names, or a predicate
            ``f(name, fn) -> bool`` on the site's name and distribution. A listed name that is no
            sample site of ``fn`` raises a ``ValueError`` after the call. Observed sites are never
            touched; selected sites that are neither ``OneHotCategorical`` nor ``Bernoulli`` (or
            already reparameterised) are left alone, and a latent integer ``Categorical`` raises a
            ``ValueError``. See :class:`RelaxReparam` for the class each estimator maps to.
        estimator: one of ``st``, ``gumbel``, ``reinmax``, ``redge``, ``redge_cov``, ``reindge``,
            ``concrete``, for ``OneHotCategorical`` and ``Bernoulli`` sites alike; ``None`` (default):
            :data:`relaxed_dists.defaults.RELAX_ESTIMATOR` with ``RELAX_HYPER`` (read at call time);
            ``"auto"``: chosen by :func:`pyro_ext.selection.select_estimator` on ``model`` and this
            guide at the first call and every ``reselect_every`` calls (``guide.selection`` the last
            report, ``guide.selections`` the log ``[(call, estimator, hyper)]``, ``guide.select(*args)``
            selects now).
            ``concrete`` relaxes the values themselves: relax the model with it too. A model site
            relaxed to a hard class that is handed a non-one-hot value (under validation) raises a
            short ``ValueError`` naming the site; an unrelaxed model's own ``OneHotCategorical``
            validation error is Pyro's.
        **hyper: the estimator's hyperparameters (``temperature``; ``n_steps``, ``t_1``), checked
            and completed with defaults by :func:`relaxed_dists.registry.resolve_hyper`. A value is
            a number, a tensor, or a schedule: a callable ``f(step) -> value``.

    Returns:
        A callable with ``fn``'s signature and return value, and attributes

        - ``step`` (int, settable): how many calls have completed. Schedules are evaluated at
          it during a call; it advances by one when a call returns (not when it raises). In
          ``SVI`` with ``Trace_ELBO(num_particles=n)`` a relaxed guide is called ``n`` times
          per ``svi.step`` (once if ``vectorize_particles=True``), so the step counts guide
          calls, not optimiser steps; a relaxed model has its own counter. Under
          ``JitTrace_ELBO`` the guide's Python code runs only while tracing, so schedules are
          frozen at the traced step (use ``Trace_ELBO`` with schedules).
        - ``hyper``: the hyperparameters, a mutable mapping: ``relaxed.hyper["temperature"] = 0.3``
          takes effect from the next call (a name the estimator does not take, or a number out
          of range, raises at once). Assign a new schedule the same way.
        - ``reparam``: the :class:`RelaxReparam` in use; ``estimator``, ``sites`` and ``fn`` as given.

        If ``fn`` is a ``torch.nn.Module`` (a ``PyroModule`` guide), the result is a
        ``torch.nn.Module`` too, with ``fn`` as its one submodule (``parameters()``,
        ``state_dict()`` keys ``fn.<name>``): Pyro's ``Trace_ELBO()(model, relax(guide))`` then
        collects the guide's parameters, and ``DistributedDataParallel`` / Lightning can wrap it.
        ``model=`` is not registered as a submodule of it.

        The result pickles (``spawn``-started processes, ``copy.deepcopy``) when ``fn``, ``sites``
        and the ``hyper`` values do: a schedule given as a ``lambda`` or a local function does
        not pickle; use a module-level function or ``functools.partial(exponential_anneal, ...)``.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> def guide():
        ...     with pyro.plate("data", 3):
        ...         pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(4)))
        ...         pyro.sample("b", dist.Bernoulli(0.5))
        >>> anneal = lambda step: exponential_anneal(step, rate=1e-2, minimum=0.5)
        >>> relaxed = relax(guide, sites="z", estimator="gumbel", temperature=anneal)
        >>> nodes = pyro.poutine.trace(relaxed).get_trace().nodes
        >>> type(nodes["z"]["fn"]).__name__, type(nodes["b"]["fn"]).__name__, relaxed.step
        ('RelaxedOneHotCategoricalStraightThrough', 'Bernoulli', 1)
        >>> relaxed.hyper["temperature"] = 0.3
        >>> pyro.poutine.trace(relaxed).get_trace().nodes["z"]["fn"].temperature
        tensor([0.3000, 0.3000, 0.3000])
    """
    check_auto_args(estimator, model, hyper, reselect_every)
    cls: Callable[..., _Relaxed] = _RelaxedModule if isinstance(fn, torch.nn.Module) else _Relaxed
    return cls(fn, sites, estimator, hyper, model=model, reselect_every=reselect_every)


class _RelaxedModule(_Relaxed, torch.nn.Module):
    """:func:`relax` of a ``torch.nn.Module`` (a ``PyroModule`` guide): a module whose one submodule
    is ``fn``, so ``parameters()`` / ``state_dict()`` (keys ``fn.<name>``), ``.to(...)``,
    ``ELBOModule`` (``Trace_ELBO()(model, relax(guide))``) and ``DistributedDataParallel`` see
    ``fn``'s parameters. ``model=`` (auto selection's) is held but not registered: it belongs to
    the ``ELBOModule``, and its state would otherwise appear twice. Calls go through
    :meth:`_Relaxed.__call__` (step counter, auto selection), not ``nn.Module.__call__``'s hooks."""

    def __init__(self, fn: torch.nn.Module, *args, model=None, **kwargs) -> None:
        torch.nn.Module.__init__(self)
        _Relaxed.__init__(self, fn, *args, model=None, **kwargs)  # type: ignore[misc]  # model is keyword-only here
        object.__setattr__(self, "model", model)  # unregistered (see the class docstring)

    def forward(self, *args, **kwargs):
        return _Relaxed.__call__(self, *args, **kwargs)
