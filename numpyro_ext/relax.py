r"""``relax``: swap the discrete latent sites of a NumPyro model or guide for an estimator.

:func:`relax` wraps a model or guide so that each selected latent ``OneHotCategorical`` or
``Bernoulli`` sample site draws from the estimator's distribution with the same parameters
(:class:`RelaxReparam`, used through :class:`numpyro.handlers.reparam`). The hard-sample
estimators keep an exact one-hot (or {0, 1}) forward value and score it with the exact
categorical (Bernoulli) ``log_prob``, so a relaxed guide against the model's categorical
prior is the discrete ELBO with the estimator's gradient; their supports are not discrete,
so ``SVI`` does not warn about discrete latent sites for them.

Mirrors ``pyro_ext/relax.py`` name for name; the lines that differ are where the step of a
schedule lives (a ``numpyro.primitives.mutable`` site here, an attribute in Pyro).

Estimators (``relaxed_dists.registry``): ``OneHotCategorical`` -> ``st`` StraightThrough,
``gumbel`` RelaxedOneHotCategoricalStraightThrough, ``reinmax`` ReinMax, ``redge`` REDGE,
``redge_cov`` REDGECov, ``reindge`` REINDGE, ``concrete`` RelaxedOneHotCategorical;
``Bernoulli`` -> ``st`` BernoulliStraightThrough, ``gumbel`` RelaxedBernoulliStraightThrough,
``reinmax`` BernoulliReinMax, ``redge`` BernoulliREDGE, ``redge_cov`` BernoulliREDGECov,
``reindge`` BernoulliREINDGE, ``concrete`` RelaxedBernoulli.

References
----------
- E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017,
  arXiv 1611.01144 (the exponential temperature annealing).
- M. I. Gorinova, D. Moore, M. D. Hoffman. Automatic Reparameterisation of Probabilistic
  Programs. ICML 2020, arXiv 1906.03028 (the reparam handler).
"""

from __future__ import annotations

import collections
import functools
import numbers
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro import handlers
from numpyro.infer.reparam import Reparam
from numpyro.primitives import mutable

from relaxed_dists import defaults
from relaxed_dists.checks import check_positive_scalar, out_of_range
from relaxed_dists.registry import resolve_hyper
from relaxed_dists.selection import SelectionReport, check_auto_args

from . import kl  # noqa: F401  (registers the KL divergences TraceMeanField_ELBO uses)
from .distributions import (
    REDGE,
    REINDGE,
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    BernoulliReinMax,
    BernoulliStraightThrough,
    OneHotCategorical,
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
ONE_HOT_CLASSES: dict[str, type[dist.Distribution]] = {
    "st": StraightThrough,
    "gumbel": RelaxedOneHotCategoricalStraightThrough,
    "reinmax": ReinMax,
    "redge": REDGE,
    "redge_cov": REDGECov,
    "reindge": REINDGE,
    "concrete": RelaxedOneHotCategorical,
}
#: estimator name -> the class that replaces a ``Bernoulli`` site.
BERNOULLI_CLASSES: dict[str, type[dist.Distribution]] = {
    "st": BernoulliStraightThrough,
    "gumbel": RelaxedBernoulliStraightThrough,
    "reinmax": BernoulliReinMax,
    "redge": BernoulliREDGE,
    "redge_cov": BernoulliREDGECov,
    "reindge": BernoulliREINDGE,
    "concrete": RelaxedBernoulli,
}

_BERNOULLI = (dist.BernoulliProbs, dist.BernoulliLogits)
_CATEGORICAL = (dist.CategoricalProbs, dist.CategoricalLogits)
_STEP_SITES: collections.Counter = collections.Counter()  # mutable-site names given out so far

# --- schedules ------------------------------------------------------------------------------


def exponential_anneal(step: ArrayLike, rate: float, minimum: float, maximum: float = 1.0) -> jax.Array:
    r"""Jang et al. (2017): ``max(minimum, maximum * exp(-rate * step))``, in ``jnp`` ops.

    ``step`` may be a traced array (the step :func:`relax` keeps in a ``mutable``
    site), so the schedule runs inside a jitted ``svi.update``. Python-number ``rate`` and
    ``minimum`` are checked as in :func:`relaxed_dists.schedules.exponential_anneal`.

    .. math:: \tau_s = \max\big(\tau_{\min},\ \tau_{\max} e^{-r s}\big)

    >>> import functools, jax.numpy as jnp
    >>> from numpyro_ext.relax import exponential_anneal
    >>> schedule = functools.partial(exponential_anneal, rate=1e-3, minimum=0.5)
    >>> schedule(jnp.arange(3)).shape, float(schedule(10_000))
    ((3,), 0.5)

    References: E. Jang, S. Gu, B. Poole. Categorical Reparameterization with
    Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.
    """
    check_positive_scalar("minimum", minimum)
    if isinstance(rate, numbers.Real) and rate < 0:
        raise ValueError(out_of_range("rate", rate, ">= 0"))
    return jnp.maximum(minimum, maximum * jnp.exp(-rate * jnp.asarray(step)))


# --- using a one-hot value ----------------------------------------------------------------


def take_one_hot(table: ArrayLike, value: ArrayLike) -> jax.Array:
    r"""``table[index]`` for the one-hot ``value`` of ``index``, written as a contraction, so that
    the gradient reaches ``value`` (and through it a relaxed site's logits).

    ``value.argmax(-1)`` used as an index gives the same forward result and no gradient at all:
    the ELBO then trains the discrete site from its prior and entropy terms only.

    Shapes: ``value``: ``batch + (K,)``; ``table``: ``(K,) + rest``; returns ``batch + rest``:
    ``sum_k value[..., k] * table[k]`` (``value @ table`` for a 2-d ``table``). A ``table`` of
    integers is cast to ``value``'s dtype.

    .. math:: \mathrm{out}_{b, r} = \sum_{k=1}^{K} v_{b, k}\, T_{k, r}

    >>> import jax.numpy as jnp
    >>> from numpyro_ext.relax import take_one_hot
    >>> means = jnp.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])  # (K, D) = (3, 2)
    >>> z = jnp.eye(3)[jnp.array([2, 0, 2, 1])]  # four one-hots, (4, 3)
    >>> take_one_hot(means, z).tolist()
    [[4.0, 5.0], [0.0, 1.0], [4.0, 5.0], [2.0, 3.0]]
    """
    table, value = jnp.asarray(table), jnp.asarray(value)
    if value.ndim < 1 or table.ndim < 1 or table.shape[0] != value.shape[-1]:
        raise ValueError(
            f"take_one_hot needs value of shape batch + (K,) and table of shape (K,) + rest, "
            f"got value.shape={tuple(value.shape)}, table.shape={tuple(table.shape)}"
        )
    if not jnp.issubdtype(table.dtype, jnp.inexact):
        table = table.astype(value.dtype)
    return jnp.tensordot(value, table, axes=1)


# --- unwrapping a site's distribution -------------------------------------------------------


def _unwrap(fn: dist.Distribution) -> tuple[dist.Distribution, list[tuple[str, object]]]:
    """The innermost distribution under NumPyro's wrappers, and the wrappers, outermost first."""
    wrappers = []
    while True:
        if isinstance(fn, dist.Independent):
            wrappers.append(("independent", fn.reinterpreted_batch_ndims))
        elif isinstance(fn, dist.MaskedDistribution):
            wrappers.append(("mask", fn._mask))
        elif isinstance(fn, dist.ExpandedDistribution):
            wrappers.append(("expand", fn.batch_shape))
        else:
            return fn, wrappers
        fn = fn.base_dist


def _rewrap(fn: dist.Distribution, wrappers: list[tuple[str, object]]) -> dist.Distribution:
    """Re-applies ``wrappers`` (outermost first) around ``fn``; ``expand`` uses ``fn``'s own."""
    for kind, arg in reversed(wrappers):
        if kind == "independent":
            fn = dist.Independent(fn, arg)
        elif kind == "mask":
            fn = dist.MaskedDistribution(fn, arg)
        else:
            fn = fn.expand(arg)
    return fn


def _given_param(leaf: dist.Distribution) -> dict[str, jax.Array]:
    """``{"probs": ...}`` if the site was built from ``probs``, else ``{"logits": ...}``.

    NumPyro's ``BernoulliProbs`` / ``BernoulliLogits`` say which by their class; our
    ``OneHotCategorical`` stores the given one and computes the other lazily, so ``logits``
    alone in its ``__dict__`` means logits (both there: the values are those the relaxed class
    would compute from ``probs``, so ``logits`` serves)."""
    if isinstance(leaf, dist.BernoulliProbs) or (not isinstance(leaf, _BERNOULLI) and "logits" not in leaf.__dict__):
        return {"probs": leaf.probs}
    return {"logits": leaf.logits}


# --- hyperparameters ------------------------------------------------------------------------


class _Hyper(MutableMapping):
    """An estimator's hyperparameters: numbers, arrays or schedules ``f(step) -> value``.

    Assigning a key checks its name and (for a Python number) its range at once;
    :meth:`at` evaluates the schedules at a step (a traced array inside ``jit``) and checks
    the values that are Python numbers (arrays are checked by the distribution classes,
    when concrete). ``n_steps`` is static (a Python int fixing the chain's length), so it
    cannot be a schedule: the step is an array.
    """

    def __init__(self, estimator: str, hyper: Mapping[str, object]) -> None:
        self.estimator = estimator
        self._values = _resolve(estimator, hyper)

    def __getitem__(self, name: str) -> object:
        return self._values[name]

    def __setitem__(self, name: str, value: object) -> None:
        self._values[name] = _resolve(self.estimator, {name: value})[name]

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"hyperparameters cannot be removed; assign {name!r} a new value instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.estimator!r}, {self._values!r})"

    def has_schedules(self) -> bool:
        return any(callable(value) for value in self._values.values())

    def at(self, step: ArrayLike | None) -> dict[str, object]:
        """The values at ``step``: each schedule called with ``step``, every value checked."""
        values = {name: value(step) if callable(value) else value for name, value in self._values.items()}
        return resolve_hyper(self.estimator, values)


def _resolve(estimator: str, hyper: Mapping[str, object]) -> dict[str, object]:
    """:func:`relaxed_dists.registry.resolve_hyper`, and no schedule for the static ``n_steps``."""
    resolved = resolve_hyper(estimator, hyper)
    if callable(resolved.get("n_steps")):
        raise TypeError(
            "n_steps is static (a Python int >= 2 that fixes the chain's length) and cannot be a schedule; "
            "schedule t_1 instead"
        )
    return resolved


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

    - :class:`~numpyro_ext.distributions.OneHotCategorical` becomes the one-hot class of
      ``estimator``: ``st`` :class:`StraightThrough`, ``gumbel``
      :class:`RelaxedOneHotCategoricalStraightThrough`, ``reinmax`` :class:`ReinMax`,
      ``redge`` :class:`REDGE`, ``redge_cov`` :class:`REDGECov`, ``reindge`` :class:`REINDGE`,
      ``concrete`` :class:`RelaxedOneHotCategorical`.
    - NumPyro's ``Bernoulli`` (``BernoulliProbs`` / ``BernoulliLogits``) becomes the binary class
      of ``estimator``: ``st`` :class:`BernoulliStraightThrough`, ``gumbel``
      :class:`RelaxedBernoulliStraightThrough`, ``reinmax`` :class:`BernoulliReinMax`, ``redge``
      :class:`BernoulliREDGE`, ``redge_cov`` :class:`BernoulliREDGECov`, ``reindge``
      :class:`BernoulliREINDGE`, ``concrete`` :class:`RelaxedBernoulli`: a model mixing
      ``Bernoulli`` and ``OneHotCategorical`` sites takes any estimator name.
    - NumPyro's integer ``Categorical`` (``CategoricalProbs`` / ``CategoricalLogits``) raises a
      ``ValueError``: declare the site ``numpyro_ext.distributions.OneHotCategorical``.
    - Observed sites, already relaxed classes and any other distribution are returned unchanged.

    The replacement is built from the site's ``probs`` or ``logits`` (the one it was given),
    with the site's ``validate_args``; array hyperparameters are cast to that parameter's
    dtype. The ``Independent`` / ``to_event``, ``mask`` and ``ExpandedDistribution`` wrappers
    around it are re-applied, so ``batch_shape``, ``event_shape`` and the mask are unchanged
    (plates, ``handlers.scale`` and ``handlers.mask`` act on the message and stay as they are).

    ``estimator`` ``None`` (default) takes :data:`relaxed_dists.defaults.RELAX_ESTIMATOR` with
    ``RELAX_HYPER`` (read at each construction), which ``**hyper`` overrides; ``"auto"`` is a
    ``ValueError``: selection needs a model and guide (:func:`relax`, ``AutoRelaxed``).

    ``hyper`` holds the estimator's hyperparameters (defaults filled in by
    :func:`relaxed_dists.registry.resolve_hyper`); a callable value is a schedule, called with
    :attr:`step` each time a site is relaxed. Used on its own (``handlers.reparam(config=...)``)
    nothing advances :attr:`step`: set it yourself. :func:`relax` evaluates schedules at the
    step it keeps in a mutable site instead.

    >>> import jax, jax.numpy as jnp, numpyro
    >>> from numpyro import handlers
    >>> from numpyro_ext.distributions import OneHotCategorical
    >>> from numpyro_ext.relax import RelaxReparam
    >>> def model():
    ...     with numpyro.plate("n", 3):
    ...         numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(4)))
    >>> model = handlers.reparam(model, config={"z": RelaxReparam("reinmax", temperature=0.5)})
    >>> site = handlers.trace(handlers.seed(model, 0)).get_trace()["z"]
    >>> type(site["fn"]).__name__, site["fn"].batch_shape, site["value"].shape
    ('ReinMax', (3,), (3, 4))
    """

    def __init__(self, estimator: str | None = None, **hyper) -> None:
        if estimator is None:  # read at call time, so a study can set it
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

    def __call__(self, name: str, fn: dist.Distribution, obs: ArrayLike | None):
        if obs is not None:
            return fn, obs
        return self.relax_distribution(name, fn), None

    def relax_distribution(self, name: str, fn: dist.Distribution) -> dist.Distribution:
        """The relaxed replacement of the latent site ``name``'s distribution ``fn`` (or ``fn``)."""
        return self._relax_at(self.hyper.at(self.step), name, fn)

    def _relax_at(self, hyper: dict[str, object], name: str, fn: dist.Distribution) -> dist.Distribution:
        """:meth:`relax_distribution` with the hyperparameter values ``hyper``."""
        leaf, wrappers = _unwrap(fn)
        if isinstance(leaf, _CATEGORICAL):
            raise ValueError(
                _categorical_message(name, type(leaf).__name__, "numpyro_ext.distributions.OneHotCategorical")
            )
        if not isinstance(leaf, (OneHotCategorical, *_BERNOULLI)):
            return fn
        param = _given_param(leaf)
        dtype = jnp.result_type(*param.values())
        hyper = {k: v if isinstance(v, numbers.Number) else jnp.asarray(v, dtype) for k, v in hyper.items()}
        relaxed = self._relaxed_class(name, leaf)(**hyper, **param, validate_args=leaf._validate_args)
        return _rewrap(relaxed, wrappers)

    def _relaxed_class(self, name: str, leaf: dist.Distribution) -> type[dist.Distribution]:
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


def _step_site_name(fn: Callable) -> str:
    """A mutable-site name of its own for each relaxed function (a model and a guide both
    relaxed must not share a step, or each update would advance it twice)."""
    base = f"{getattr(fn, '__name__', type(fn).__name__)}_relax_step"
    _STEP_SITES[base] += 1
    return base if _STEP_SITES[base] == 1 else f"{base}_{_STEP_SITES[base]}"


def not_selected_message(what: str) -> str:
    """Why an ``"auto"`` guide cannot be traced before its first selection, and the two ways on."""
    return (
        f"{what} with estimator='auto' has not selected an estimator yet, and NumPyro cannot select inside jit "
        f"(svi.init / svi.update / svi.run). Train with numpyro_ext.selection.run_svi(key, svi, num_steps, *args), "
        f"which selects at step 0 and every reselect_every steps, or call guide.select(key, params, *args) first"
    )


class _AutoSelection:
    """The readable log of an ``"auto"`` guide (:func:`relax`, ``AutoRelaxed``): ``selection`` (the last
    :class:`~relaxed_dists.selection.SelectionReport`), ``selections`` (``[(step, estimator, hyper)]``),
    ``selection_options`` (passed to :func:`~numpyro_ext.selection.select_estimator`), and :meth:`select`."""

    reparam: RelaxReparam  # set by the class it is mixed into

    def _init_auto(self, auto: bool, model, reselect_every) -> None:
        self._auto = auto
        self.model = model
        self.reselect_every = reselect_every
        self.selection: SelectionReport | None = None
        self.selections: list[tuple[int, str, dict]] = []
        self.selection_options: dict = {}
        self._selecting = False  # True while select_estimator traces this guide with a candidate

    def _check_selected(self) -> None:
        if self._auto and self.selection is None and not self._selecting:
            fn = getattr(self, "fn", None)
            what = type(self).__name__ if fn is None else f"relax({getattr(fn, '__name__', fn)!r})"
            raise RuntimeError(not_selected_message(what))

    def select(self, key: jax.Array, params: dict | None, *args, step: int | None = None, **kwargs):
        """Runs :func:`numpyro_ext.selection.select_estimator` on ``self.model`` and this guide at
        ``params`` (``svi.get_params(state)``; ``None``: initial values) and applies its choice;
        logs ``(step, estimator, hyper)`` in :attr:`selections` (``step`` default: the last logged
        step, or 0) and returns the report."""
        return self._select(key, params, args, kwargs, step, self.selection_options)

    def _select(self, key, params, args, kwargs, step, options):
        from .selection import select_estimator

        options = {"num_particles": defaults.AUTO_AVERAGED_GRADIENTS, **options}
        report = select_estimator(key, self.model, self, *args, params=params, **options, **kwargs)
        estimator, hyper = report.best
        reparam = RelaxReparam(estimator, **hyper)
        reparam.step = self.reparam.step
        self.reparam = reparam
        self.selection = report
        if step is None:
            step = self.selections[-1][0] if self.selections else 0
        self.selections.append((int(step), estimator, hyper))
        return report


class _Relaxed(_AutoSelection):
    """``fn`` under :class:`RelaxReparam`, with a mutable-site step for its schedules (see :func:`relax`)."""

    def __init__(
        self, fn: Callable, sites, estimator, hyper: Mapping[str, object], model=None, reselect_every=None
    ) -> None:
        functools.update_wrapper(self, fn, updated=())  # name and doc; never fn's __dict__
        self.fn = fn
        auto = estimator == "auto"
        self.reparam = RelaxReparam(None if auto else estimator, **hyper)  # auto: a placeholder until selected
        self._init_auto(auto, model, reselect_every)
        self.sites = sites
        self._names = _site_names(sites)
        self.step_site = _step_site_name(fn)
        self._skipped: set[str] = set()  # enumerated sites left alone by sites=None
        self._warned = False

    @property
    def step(self) -> int:
        """The step of a call that finds no stored step (int >= 0, settable; see :func:`relax`)."""
        return self.reparam.step

    @step.setter
    def step(self, step: int) -> None:
        self.reparam.step = step

    @property
    def hyper(self) -> _Hyper:
        """The hyperparameters (numbers, arrays, schedules); assign to change them from the next trace."""
        return self.reparam.hyper

    @property
    def estimator(self) -> str:
        return self.reparam.estimator

    def __call__(self, *args, **kwargs):
        self._check_selected()
        state = None
        if self.hyper.has_schedules():
            init = {"step": jnp.asarray(self.step, jnp.int32)}
            state = mutable(self.step_site, init)
        hyper = self.hyper.at(None if state is None else state["step"])
        seen: set[str] = set()
        relax_site = functools.partial(self.reparam._relax_at, hyper)
        with handlers.reparam(config=functools.partial(self._config, relax_site, seen)):
            result = self.fn(*args, **kwargs)
        self._check_found(seen)
        if self._skipped and not self._warned:
            self._warned = True
            warnings.warn(_skipped_message(self.fn, self._skipped), UserWarning, stacklevel=2)
        if state is not None and state is not init:  # a stored step (svi.update): advance it in place
            state["step"] = state["step"] + 1
        return result

    def _config(self, relax_site: Callable, seen: set[str], msg: dict) -> Callable | None:
        """``handlers.reparam``'s config: a reparameteriser for the selected latent sites."""
        name, fn = msg["name"], msg["fn"]
        seen.add(name)
        if msg["is_observed"]:
            return None
        if self.sites is None:
            selected = not msg["infer"].get("enumerate")
            if not selected and isinstance(_unwrap(fn)[0], (OneHotCategorical, *_BERNOULLI)):
                self._skipped.add(name)
        elif self._names is not None:
            selected = name in self._names
        else:
            selected = bool(self.sites(name, fn))
        return (lambda name, fn, obs: (relax_site(name, fn), None)) if selected else None

    def _check_found(self, seen: set[str]) -> None:
        if self._names is not None and not self._names <= seen:
            raise ValueError(
                f"sites {sorted(self._names - seen)} are not sample sites of "
                f"{getattr(self.fn, '__name__', self.fn)!r}; its sample sites are {sorted(seen)}"
            )

    def __repr__(self) -> str:
        return f"relax({getattr(self.fn, '__name__', self.fn)!r}, estimator={self.estimator!r}, step={self.step})"


def relax(
    fn: Callable, sites=None, estimator: str | None = None, *, model=None, reselect_every=None, **hyper
) -> Callable:
    r"""``fn`` with each selected latent discrete site replaced by ``estimator``'s distribution.

    - ``fn``: a NumPyro model or guide.
    - ``sites``: which sites to relax: ``None`` (every eligible site, except those marked
      ``infer={"enumerate": ...}``, e.g. by ``config_enumerate``: they are left for
      ``TraceEnum_ELBO``, and the first trace warns, naming them; list them here to relax
      them), a site name, a collection of names, or a predicate
      ``f(name, fn) -> bool`` on the site's name and distribution (wrappers included). A
      listed name that is no sample site of ``fn`` raises a ``ValueError`` after the call.
      Observed sites are never touched (nor shown to the predicate); selected sites that
      are neither ``OneHotCategorical`` nor ``Bernoulli`` (or already relaxed) are left alone,
      and a latent integer ``Categorical`` raises a ``ValueError``. See :class:`RelaxReparam`
      for the class each estimator maps to.
    - ``estimator``: one of ``st``, ``gumbel``, ``reinmax``, ``redge``, ``redge_cov``,
      ``reindge``, ``concrete``, on ``OneHotCategorical`` and ``Bernoulli`` sites alike;
      ``None`` (default): :data:`relaxed_dists.defaults.RELAX_ESTIMATOR` with ``RELAX_HYPER``
      (read at call time); ``"auto"``: chosen by
      :func:`numpyro_ext.selection.select_estimator` on ``model`` (required, ``ValueError``
      without) and this guide. NumPyro cannot select inside ``jit``: train with
      :func:`numpyro_ext.selection.run_svi`, which selects at step 0 and every
      ``reselect_every`` steps (``None``: step 0 only) and recompiles the update only when the
      choice changes; a call before any selection raises a ``RuntimeError`` saying so.
      ``guide.selection`` is the last report, ``guide.selections`` the log
      ``[(step, estimator, hyper)]``, ``guide.select(key, params, *args)`` selects now,
      ``guide.selection_options`` (a dict) is passed to ``select_estimator``. No ``**hyper``
      with ``"auto"`` (``TypeError``).
    - ``model``, ``reselect_every``: for ``"auto"`` only (``reselect_every`` a positive int or ``None``).
    - ``**hyper``: the estimator's hyperparameters (``temperature``; ``n_steps``, ``t_1``),
      checked and completed with defaults by :func:`relaxed_dists.registry.resolve_hyper`. A
      value is a number, an array, or a schedule ``f(step) -> value`` in ``jnp`` ops (e.g.
      :func:`exponential_anneal`); ``n_steps`` is static and cannot be a schedule.

    The step. With a schedule, each call reads the step from the mutable site
    ``relaxed.step_site`` (``numpyro.primitives.mutable``, value ``{"step": int32 array}``, a
    name of its own per relaxed function) and evaluates the schedules there. A call that
    finds a stored step (``svi.update``, jitted or not, which returns it in
    ``svi_state.mutable_state``; or a ``handlers.substitute``) advances it by one in place.
    A call that finds none (a bare call, ``SVI.init``, ``svi.evaluate``, ``Predictive``:
    NumPyro passes them no mutable state) uses ``relaxed.step`` (settable, default 0) and
    stores it unchanged, so the first ``svi.update`` runs at ``relaxed.step`` and update
    ``s`` at ``relaxed.step + s``; unlike Pyro's counter, ``relaxed.step`` itself never
    advances. To set the step of a running SVI, replace
    ``svi_state.mutable_state[relaxed.step_site]["step"]``. Without a schedule there is no
    mutable site. NumPyro ignores mutable state (and warns) with ``num_particles > 1``.

    The returned callable has ``fn``'s signature and return value, and attributes ``step``,
    ``step_site``, ``hyper`` (a mutable mapping: ``relaxed.hyper["temperature"] = 0.3``,
    checked at once, takes effect from the next trace; a jitted ``svi.update`` keeps the
    values it was compiled with), ``reparam`` (the :class:`RelaxReparam` in use),
    ``estimator``, ``sites`` and ``fn``.

    Relax the model too, with the same estimator: a model site is only scored, with the
    same categorical ``log_prob`` (``concrete``: the Concrete density), so the ELBO does not
    change, and ``SVI`` no longer warns that the model has discrete latent sites.
    The KL divergences ``TraceMeanField_ELBO`` uses are registered by :mod:`numpyro_ext.kl`.

    >>> import functools, jax, jax.numpy as jnp, numpyro
    >>> from numpyro import handlers
    >>> from numpyro_ext.distributions import OneHotCategorical
    >>> from numpyro_ext.relax import exponential_anneal, relax
    >>> def guide():
    ...     logits = numpyro.param("logits", jnp.zeros((3, 4)))
    ...     numpyro.sample("z", OneHotCategorical(logits=logits).to_event(1))
    >>> schedule = functools.partial(exponential_anneal, rate=0.1, minimum=0.5)
    >>> relaxed = relax(guide, estimator="gumbel", temperature=schedule)
    >>> site = handlers.trace(handlers.seed(relaxed, 0)).get_trace()["z"]
    >>> type(site["fn"].base_dist).__name__, site["fn"].event_shape, site["value"].shape
    ('RelaxedOneHotCategoricalStraightThrough', (3, 4), (3, 4))
    >>> float(site["fn"].base_dist.temperature), relaxed.step  # a bare call: step 0, unchanged
    (1.0, 0)
    """
    check_auto_args(estimator, model, hyper, reselect_every)
    return _Relaxed(fn, sites, estimator, hyper, model=model, reselect_every=reselect_every)
