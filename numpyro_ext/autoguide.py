r"""``AutoRelaxed``: a NumPyro autoguide for models with ``OneHotCategorical`` and ``Bernoulli`` latents.

NumPyro's autoguides refuse discrete latent sites (``initialize_model`` asks for ``funsor``
and enumeration, and ``biject_to`` has no transform for a one-hot support). :class:`AutoRelaxed`
places, from the model alone, a mean-field guide with one learnable logits parameter on every
latent discrete site, drawn by one of the library's estimators (:class:`~numpyro_ext.relax.RelaxReparam`),
and hands the remaining continuous latent sites to a NumPyro autoguide of the user's choice
(``continuous=AutoNormal``, ``AutoDiagonalNormal``, ...), composed the way ``AutoGuideList`` composes.

Mirrors ``pyro_ext/autoguide.py`` (same name, same constructor signature); the differences are
the host's: parameters are ``numpyro.param`` sites named ``f"{name}_auto_logits"`` (as
``AutoNormal``'s ``f"{name}_auto_loc"``), and ``probs``, ``median`` and ``sample_posterior`` take
``params``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import ExitStack

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions.util import periodic_repeat
from numpyro.infer.autoguide import AutoGuide
from numpyro.infer.initialization import init_to_median
from numpyro.primitives import mutable

from relaxed_dists import defaults
from relaxed_dists.selection import check_auto_args

from . import kl  # noqa: F401  (registers the KL divergences TraceMeanField_ELBO uses)
from ._ops import one_hot_argmax
from .distributions import OneHotCategorical, one_hot, reparametrized_boolean
from .relax import (
    _BERNOULLI,
    _CATEGORICAL,
    RelaxReparam,
    _AutoSelection,
    _rewrap,
    _step_site_name,
    _unwrap,
)

__all__ = ["AutoRelaxed"]

_BOOLEAN_SUPPORTS = (dist.constraints.boolean, reparametrized_boolean)


def _discrete_kind(leaf: dist.Distribution) -> str | None:
    """``"one_hot"``, ``"bernoulli"`` or ``None`` for the innermost distribution of a latent site.

    One-hot: our :class:`OneHotCategorical` or any class with a one-hot support (the estimator
    classes used as a prior, e.g. in a ``relax``-ed model). Bernoulli: NumPyro's
    ``BernoulliProbs`` / ``BernoulliLogits`` or a class with a {0, 1} support and logits (our
    straight-through Bernoulli classes)."""
    if isinstance(leaf, OneHotCategorical) or (isinstance(leaf.support, type(one_hot)) and hasattr(leaf, "logits")):
        return "one_hot"
    if isinstance(leaf, _BERNOULLI) or (
        any(leaf.support is s for s in _BOOLEAN_SUPPORTS) and leaf.event_shape == () and hasattr(leaf, "logits")
    ):
        return "bernoulli"
    return None


def _categorical_error(name: str, leaf: dist.Distribution) -> ValueError:
    return ValueError(
        f"site {name!r} is a latent {type(leaf).__name__} (integer values), which AutoRelaxed cannot relax. "
        f"Two ways out: (1) declare it numpyro_ext.distributions.OneHotCategorical(logits=...) and index with "
        f"one-hot arithmetic (value @ table, which carries the estimator's gradient; value.argmax(-1) carries "
        f"none); or (2) enumerate it: mark it infer={{'enumerate': 'parallel'}} "
        f"(numpyro.contrib.funsor.config_enumerate) and train with TraceEnum_ELBO; AutoRelaxed leaves "
        f"enumerated sites alone"
    )


def _accepts(factory: Callable, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class AutoRelaxed(_AutoSelection, AutoGuide):
    r"""A mean-field guide on every latent ``OneHotCategorical`` / ``Bernoulli`` site, drawn by an estimator.

    - ``model``: a NumPyro model (relaxed or not: a latent site already drawn from one of the
      estimator classes counts as discrete too).
    - ``estimator``: a registry name (``st``, ``gumbel``, ``reinmax``, ``redge``, ``redge_cov``,
      ``reindge``, ``concrete``); ``None`` takes ``relaxed_dists.defaults.AUTO_RELAXED_ESTIMATOR``
      with ``AUTO_RELAXED_HYPER`` (read here, at construction), which ``**hyper`` overrides.
    - ``**hyper``: the estimator's hyperparameters exactly as :func:`~numpyro_ext.relax.relax`
      takes them: numbers, arrays or schedules ``f(step) -> value``; the step lives in the
      mutable site :attr:`step_site` and advances once per ``svi.update`` (jitted too), as in ``relax``.
    - ``continuous``: an autoguide class (or a callable ``(model, **kw) -> guide``) for the
      remaining latent sites. It is built on ``handlers.block(model, hide=<discrete and enumerated
      sites>)``, with ``init_loc_fn`` and ``init_scale`` (and ``create_plates``) passed where its
      signature takes them. NumPyro's ``initialize_model`` runs that blocked model as is: the
      hidden discrete sites are drawn from their priors inside it (``block`` gives them a key).
      Without ``continuous``, a model with continuous latents raises a ``ValueError`` naming them.
    - ``init_loc_fn``, ``init_scale``: for the continuous guide only; the logits start at the prior's.
      Default ``init_to_median`` (the prior's median), not ``AutoNormal``'s ``init_to_uniform``: from
      that random start 1 of 3 seeds ended in a label-swapped optimum on the held-out unknown-means
      mixtures (``benchmarks/results/autoguide_acceptance_numpyro.md``).
    - ``create_plates``: as the host's (subsampling).
    - ``estimator="auto"``: the estimator and its hyperparameters are chosen by
      :func:`numpyro_ext.selection.select_estimator` on the model and this guide (no ``**hyper``:
      ``TypeError``). NumPyro cannot select inside ``jit``: train with
      :func:`numpyro_ext.selection.run_svi`, which selects at step 0 and every ``reselect_every``
      steps (a positive int; ``None``: step 0 only) and recompiles the update only when the choice
      changes. Called before any selection, the guide raises a ``RuntimeError`` saying so.
      :attr:`selection` (the last report), :attr:`selections` (``[(step, estimator, hyper)]``),
      :meth:`select` ``(key, params, *args)`` and ``selection_options`` as for :func:`~numpyro_ext.relax.relax`.

    Each discrete site ``name`` gets a ``numpyro.param`` ``f"{name}_auto_logits"`` of the site's full
    shape (``batch_shape + event_shape``, plates at full size; under subsampling the plate indexes it,
    as ``AutoNormal``'s locations), initialised at the prior's logits. In the guide the site is drawn
    from ``RelaxReparam(estimator, **hyper)``'s replacement of ``OneHotCategorical(logits=param)``
    (``Bernoulli(logits=param)``), with the model site's ``Independent`` / ``mask`` / ``expand``
    wrappers re-applied (masks as the first call found them). Sites marked
    ``infer={"enumerate": ...}`` are left to enumeration (no guide site; ``TraceEnum_ELBO``);
    a latent integer ``Categorical`` raises a ``ValueError``; observed sites are never touched.
    The KLs ``TraceMeanField_ELBO`` takes are registered by :mod:`numpyro_ext.kl`.

    ``SVI.init`` warns "Currently, SVI with Trace_ELBO loss does not support models with discrete
    latent variables" for the model's discrete prior sites: with this guide it does not apply.
    Filter it, or give ``SVI`` ``relax(model, estimator=guide.estimator)`` (the model sites are
    only scored, with the same ``log_prob``, so the ELBO and its gradient are the same).

    Inside the user's own ``AutoGuideList``, append ``AutoRelaxed(handlers.block(model, expose=[...]))``.
    (``AutoGuideList(model)`` itself runs ``initialize_model`` on the whole model, which needs
    ``funsor`` for discrete sites; without it, give the list ``handlers.block(model, hide=[...])``.)

    >>> import warnings, jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist, optax
    >>> from numpyro.infer import SVI, Trace_ELBO
    >>> from numpyro_ext.autoguide import AutoRelaxed
    >>> from numpyro_ext.distributions import OneHotCategorical
    >>> def model(x):
    ...     with numpyro.plate("n", 3):
    ...         z = numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(2)))
    ...         numpyro.sample("x", dist.Normal(z @ jnp.array([-2.0, 2.0]), 1.0), obs=x)
    >>> guide = AutoRelaxed(model)
    >>> svi = SVI(model, guide, optax.adam(0.1), Trace_ELBO())
    >>> with warnings.catch_warnings():  # SVI.init's warning about the model's discrete prior
    ...     warnings.filterwarnings("ignore", message="Currently, SVI with")
    ...     result = svi.run(jax.random.key(0), 200, jnp.array([-2.0, 2.0, 1.5]), progress_bar=False)
    >>> guide.probs(result.params)["z"].round(1).tolist()
    [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    """

    def __init__(
        self,
        model: Callable,
        *,
        estimator: str | None = None,
        continuous: Callable | None = None,
        init_loc_fn: Callable = init_to_median,
        init_scale: float = 0.1,
        create_plates: Callable | None = None,
        reselect_every: int | None = None,
        **hyper,
    ) -> None:
        check_auto_args(estimator, model, hyper, reselect_every, where="AutoRelaxed")
        auto = estimator == "auto"
        if auto:
            estimator = None  # a placeholder until the first selection
        if estimator is None:
            estimator, hyper = defaults.AUTO_RELAXED_ESTIMATOR, {**defaults.AUTO_RELAXED_HYPER, **hyper}
        if continuous is not None and not callable(continuous):
            raise TypeError(
                f"continuous must be an autoguide class or a callable (model, **kw) -> guide, got {continuous!r}"
            )
        self.reparam = RelaxReparam(estimator, **hyper)  # checks the name and the hyperparameters
        self.continuous = continuous
        self._init_scale = init_scale
        self.step_site = _step_site_name(self)
        self.continuous_guide = None
        self._discrete: dict[str, dict] = {}
        self._continuous_first = False
        super().__init__(model, prefix="auto", init_loc_fn=init_loc_fn, create_plates=create_plates)
        self._init_auto(auto, model, reselect_every)

    # --- attributes as relax's -------------------------------------------------------------

    @property
    def estimator(self) -> str:
        return self.reparam.estimator

    @property
    def hyper(self):
        """The hyperparameters (numbers, arrays, schedules), a mapping checked on assignment."""
        return self.reparam.hyper

    @property
    def step(self) -> int:
        """The step of a call that finds no stored step (see :func:`~numpyro_ext.relax.relax`)."""
        return self.reparam.step

    @step.setter
    def step(self, step: int) -> None:
        self.reparam.step = step

    @property
    def discrete_sites(self) -> list[str]:
        """The names of the sites this guide relaxes (after the first call)."""
        return list(self._discrete)

    def _logits_name(self, name: str) -> str:
        return f"{name}_{self.prefix}_logits"

    # --- the prototype ---------------------------------------------------------------------

    def _setup_prototype(self, *args, **kwargs) -> None:
        rng_key = numpyro.prng_key()
        if rng_key is None:
            rng_key = jax.random.PRNGKey(0)
        with handlers.block():
            self.prototype_trace = handlers.trace(handlers.seed(self.model, rng_key)).get_trace(*args, **kwargs)

        self._prototype_frames: dict = {}
        self._prototype_frame_full_sizes = {}
        discrete, enumerated, continuous, order = {}, [], [], []
        for name, site in self.prototype_trace.items():
            if site["type"] == "plate":
                self._prototype_frame_full_sizes[name] = site["args"][0]
            if site["type"] != "sample" or site["is_observed"]:
                continue
            if site["infer"].get("enumerate"):
                enumerated.append(name)
                continue
            leaf, wrappers = _unwrap(site["fn"])
            if isinstance(leaf, _CATEGORICAL):
                raise _categorical_error(name, leaf)
            kind = _discrete_kind(leaf)
            if kind is None:
                continuous.append(name)
                order.append("continuous")
                continue
            order.append("discrete")
            discrete[name] = {"kind": kind, "site": site, "leaf": leaf, "wrappers": wrappers}
            for frame in site["cond_indep_stack"]:
                # a plate hidden by handlers.block(model, expose=[...]): its full size is unknown here
                self._prototype_frame_full_sizes.setdefault(frame.name, frame.size)
                if frame.name in self._prototype_frames:
                    assert frame == self._prototype_frames[frame.name], (
                        f"The plate {frame.name} has inconsistent dim or size. Please check your model again."
                    )
                else:
                    self._prototype_frames[frame.name] = frame

        for name, info in discrete.items():
            fn = info["site"]["fn"]
            event_dim = fn.event_dim
            init = jnp.broadcast_to(info["leaf"].logits, fn.batch_shape + fn.event_shape)
            for frame in info["site"]["cond_indep_stack"]:
                full_size = self._prototype_frame_full_sizes[frame.name]
                if full_size != frame.size:
                    init = periodic_repeat(init, full_size, frame.dim - event_dim)
            info["init"], info["event_dim"] = init, event_dim
            self.reparam._relaxed_class(name, info["leaf"])  # a Bernoulli the estimator cannot take raises now
        self._discrete = discrete
        self._continuous_first = bool(order) and order[0] == "continuous"

        if continuous and self.continuous is None:
            raise ValueError(
                f"the model has continuous latent sites {continuous}, which AutoRelaxed does not guide: "
                f"pass continuous=AutoNormal (or another NumPyro autoguide class) for them"
            )
        if self.continuous is not None:
            hidden = [*discrete, *enumerated]
            kwargs_ = {"init_loc_fn": self.init_loc_fn, "init_scale": self._init_scale}
            if self.create_plates is not None:
                kwargs_["create_plates"] = self.create_plates
            kwargs_ = {k: v for k, v in kwargs_.items() if _accepts(self.continuous, k)}
            self.continuous_guide = self.continuous(handlers.block(self.model, hide=hidden), **kwargs_)

    # --- the guide ---------------------------------------------------------------------------

    def __call__(self, *args, **kwargs) -> dict:
        self._check_selected()
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        result = {}
        if self.continuous_guide is not None and self._continuous_first:
            result.update(self.continuous_guide(*args, **kwargs))
        if self._discrete:
            result.update(self._discrete_guide(*args, **kwargs))
        if self.continuous_guide is not None and not self._continuous_first:
            result.update(self.continuous_guide(*args, **kwargs))
        return result

    def _discrete_guide(self, *args, **kwargs) -> dict:
        state = None
        if self.hyper.has_schedules():
            init = {"step": jnp.asarray(self.step, jnp.int32)}
            state = mutable(self.step_site, init)
        hyper = self.hyper.at(None if state is None else state["step"])
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, info in self._discrete.items():
            with ExitStack() as stack:
                for frame in info["site"]["cond_indep_stack"]:
                    stack.enter_context(plates[frame.name])
                logits = numpyro.param(self._logits_name(name), info["init"], event_dim=info["event_dim"])
                result[name] = numpyro.sample(name, self._relaxed(hyper, name, info, logits))
        if state is not None and state is not init:  # a stored step (svi.update): advance it in place
            state["step"] = state["step"] + 1
        return result

    def _exact(self, info: dict, logits: jax.Array) -> dist.Distribution:
        """The exact discrete distribution with ``logits`` (the site's full shape)."""
        return OneHotCategorical(logits=logits) if info["kind"] == "one_hot" else dist.BernoulliLogits(logits=logits)

    def _relaxed(self, hyper: dict, name: str, info: dict, logits: jax.Array) -> dist.Distribution:
        exact = self._exact(info, logits)
        return self.reparam._relax_at(hyper, name, _rewrap(exact, info["wrappers"]))

    # --- posterior summaries -------------------------------------------------------------------

    def probs(self, params: dict) -> dict:
        """``{site: probs}``: the guide's probabilities per discrete site (one-hot sites: ``softmax``
        over the last axis; Bernoulli sites: ``sigmoid``), at full plate size."""
        out = {}
        for name, info in self._discrete.items():
            logits = params[self._logits_name(name)]
            out[name] = jax.nn.softmax(logits, -1) if info["kind"] == "one_hot" else jax.nn.sigmoid(logits)
        return out

    def _modes(self, params: dict) -> dict:
        out = {}
        for name, info in self._discrete.items():
            logits = params[self._logits_name(name)]
            out[name] = one_hot_argmax(logits) if info["kind"] == "one_hot" else (logits > 0).astype(logits.dtype)
        return out

    def median(self, params: dict) -> dict:
        """The mode of each discrete site (one-hot, or 0./1.) and the continuous guide's median."""
        self._check_ready()
        out = self._modes(params)
        if self.continuous_guide is not None:
            out.update(self.continuous_guide.median(params))
        return out

    def sample_posterior(self, rng_key, params, *args, sample_shape=(), **kwargs) -> dict:
        """Samples of every latent site: the discrete sites from the categorical / Bernoulli with the
        learned logits (exact 0./1. values, full plate size), the others from the continuous guide."""
        self._check_ready()
        key_discrete, key_continuous = jax.random.split(rng_key)
        out = {}
        with handlers.seed(rng_seed=key_discrete):
            for name, info in self._discrete.items():
                logits = params[self._logits_name(name)]
                value = numpyro.sample(name, self._exact(info, logits).expand_by(sample_shape))
                out[name] = value.astype(logits.dtype)
        if self.continuous_guide is not None:
            out.update(
                self.continuous_guide.sample_posterior(
                    key_continuous, params, *args, sample_shape=sample_shape, **kwargs
                )
            )
        return out

    def _check_ready(self) -> None:
        if self.prototype_trace is None:
            raise RuntimeError("AutoRelaxed has no sites yet: call it (svi.init / svi.run) before asking for summaries")
