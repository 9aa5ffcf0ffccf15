r"""``AutoRelaxed``: an autoguide for models with discrete latents, drawn by a gradient estimator.

Pyro's autoguides refuse ``OneHotCategorical`` and ``Bernoulli`` latents. :class:`AutoRelaxed`
places a mean-field guide with learnable logits on every latent one-hot and Bernoulli site of
the model, each drawn by an estimator of the registry (ReinMax by default, see
:mod:`relaxed_dists.defaults`) through :class:`pyro_ext.relax.RelaxReparam`, so that
``Trace_ELBO`` gets a reparameterised gradient of the discrete ELBO. The continuous latents go
to an ordinary autoguide (``continuous=AutoNormal``, ...), composed as ``AutoGuideList`` does.

Mirrors ``numpyro_ext/autoguide.py`` name for name.

>>> import pyro, pyro.distributions as dist
>>> def model():
...     with pyro.plate("data", 3):
...         pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(4)))
>>> guide = AutoRelaxed(model, estimator="redge")
>>> sorted(guide().keys()), guide.probs()["z"].shape, guide.step
(['z'], torch.Size([3, 4]), 1)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from contextlib import ExitStack
from operator import attrgetter

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoCallable, AutoGuide
from pyro.infer.autoguide.initialization import init_to_median
from pyro.infer.autoguide.utils import deep_setattr
from pyro.nn.module import PyroModule, PyroParam
from pyro.ops.tensor_utils import periodic_repeat
from torch.distributions import Categorical

from relaxed_dists import defaults
from relaxed_dists.checks import check_positive_scalar
from relaxed_dists.selection import check_auto_args

from .relax import RelaxReparam, _rewrap, _select_into, _unwrap

__all__ = ["AutoRelaxed"]

_ONE_HOT = type(constraints.one_hot)
_BOOLEAN = type(constraints.boolean)


def _kind(leaf) -> str | None:
    """``"one_hot"``, ``"bernoulli"`` or ``None`` from the innermost distribution's support."""
    support = leaf.support
    if isinstance(support, _ONE_HOT):
        return "one_hot"
    if isinstance(support, _BOOLEAN):
        return "bernoulli"
    return None


class AutoRelaxed(AutoGuide):
    r"""A mean-field guide on the model's latent ``OneHotCategorical`` / ``Bernoulli`` sites, drawn by an estimator.

    - **Discrete sites**: every latent site whose innermost distribution (under ``Independent``
      / ``to_event``, masks and ``expand``) has support ``one_hot`` (``OneHotCategorical``, or one
      of our estimator classes used as a prior) or ``boolean`` (``Bernoulli``). Each gets one
      learnable logits parameter ``logits.<site>`` (a :class:`~pyro.nn.module.PyroParam`, as
      ``AutoNormal`` keeps its ``locs``) of the site's full shape (plates at full size),
      initialised at the prior's logits; under a subsampled plate it is indexed by the plate's
      subsample, as ``AutoNormal``'s are. The guide site is
      ``RelaxReparam(estimator, **hyper).relax_distribution(name, q)`` with
      ``q = OneHotCategorical(logits=...)`` / ``Bernoulli(logits=...)`` re-wrapped in the
      site's ``Independent`` dims and mask, so its ``batch_shape`` and ``event_shape`` are the
      model site's. The mask re-applied is the one the model used at set-up.
    - Sites marked ``infer={"enumerate": ...}`` are left for enumeration (``TraceEnum_ELBO``);
      observed sites are never touched. A latent integer ``Categorical`` (or any other discrete
      latent) raises a ``ValueError`` naming it.
    - **Continuous sites** go to ``continuous``: an autoguide class, or a callable
      ``(model, **kw) -> AutoGuide``, built on ``poutine.block(model, hide=<discrete sites>)``
      with ``init_loc_fn`` and ``init_scale`` where its signature takes them; it is held as the
      submodule :attr:`continuous` and run after the discrete sites, as in ``AutoGuideList``.
      Without it, a model with continuous latents raises a ``ValueError`` naming them.

    Args:
        model: a Pyro model.
        estimator: a registry name (``st``, ``gumbel``, ``reinmax``, ``redge``, ``redge_cov``,
            ``reindge``, ``concrete``; Bernoulli sites take those of
            ``pyro_ext.relax.BERNOULLI_CLASSES``). ``None``:
            :data:`relaxed_dists.defaults.AUTO_RELAXED_ESTIMATOR` with
            :data:`~relaxed_dists.defaults.AUTO_RELAXED_HYPER`, read at construction; ``**hyper``
            overrides them.
        continuous: the autoguide for the remaining latent sites, or ``None``.
        init_loc_fn: passed to ``continuous`` (see :mod:`pyro.infer.autoguide.initialization`). Default
            ``init_to_median``: the continuous latents start at the prior's median, not at a random
            point (from a random start, 1 of 3 seeds of NumPyro's twin ended in a label-swapped
            optimum on the held-out unknown-means mixtures: ``benchmarks/results/autoguide_acceptance_numpyro.md``).
        init_scale: passed to ``continuous``; a float > 0.
        create_plates: as for every ``AutoGuide`` (plates for data subsampling).
        **hyper: the estimator's hyperparameters, exactly as :func:`pyro_ext.relax.relax` takes
            them: numbers, tensors or schedules ``f(step) -> value``.

    Attributes: :attr:`step` (guide calls completed, settable; schedules are evaluated at it),
    :attr:`hyper` (mutable mapping), :attr:`estimator`, :attr:`continuous` (the continuous
    guide once set up, else ``None``), ``logits`` (the PyroModule holding the parameters).

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyro.infer.autoguide import AutoNormal
        >>> def model(x):
        ...     mu = pyro.sample("mu", dist.Normal(torch.zeros(2), 3.0).to_event(1))
        ...     with pyro.plate("data", len(x)):
        ...         z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(2)))
        ...         pyro.sample("x", dist.Normal(z @ mu, 1.0), obs=x)
        >>> guide = AutoRelaxed(model, continuous=AutoNormal)
        >>> x = torch.tensor([-1.0, 0.5, 2.0])
        >>> sorted(guide(x)), guide.estimator, sorted(guide.median(x))
        (['mu', 'z'], 'reinmax', ['mu', 'z'])
    """

    def __init__(
        self,
        model,
        *,
        estimator=None,
        continuous=None,
        init_loc_fn=init_to_median,
        init_scale=0.1,
        create_plates=None,
        reselect_every=None,
        **hyper,
    ):
        check_auto_args(estimator, model, hyper, reselect_every, where="AutoRelaxed")
        auto = estimator == "auto"
        if auto:
            estimator = None
        if estimator is None:
            estimator = defaults.AUTO_RELAXED_ESTIMATOR
            hyper = {**defaults.AUTO_RELAXED_HYPER, **hyper}
        if continuous is not None and not callable(continuous):
            raise TypeError(
                f"continuous must be an autoguide class or a callable (model, **kw) -> AutoGuide, got {continuous!r}"
            )
        check_positive_scalar("init_scale", init_scale)
        super().__init__(model, create_plates=create_plates)
        self._reparam = RelaxReparam(estimator, **hyper)
        self._auto = auto
        self.reselect_every = reselect_every
        self.selection = None
        self.selections = []
        self._calls = 0
        self._selecting = False
        self._external = False
        self.selection_options = {}  # extra keyword arguments of select_estimator (num_particles=..., ...)
        self._continuous_factory = continuous
        self.init_loc_fn = init_loc_fn
        self._init_scale = float(init_scale)
        self.continuous = None

    # --- schedule state ---------------------------------------------------------------------

    @property
    def step(self) -> int:
        """Completed guide calls (int >= 0, settable); schedules see it during a call."""
        return self._reparam.step

    @step.setter
    def step(self, step: int) -> None:
        self._reparam.step = step

    @property
    def hyper(self):
        """The hyperparameters (numbers, tensors, schedules); assign to change them from the next call."""
        return self._reparam.hyper

    @property
    def estimator(self) -> str:
        return self._reparam.estimator

    def select(self, *args, step=None, **kwargs):
        """Runs :func:`pyro_ext.selection.select_estimator` on the model and this guide now and
        applies its choice (the step counter kept); returns the report."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        report, self._reparam = _select_into(self, self._reparam, args, kwargs, step)
        return report

    # --- set-up -----------------------------------------------------------------------------

    def _setup_prototype(self, *args, **kwargs):
        try:
            self._setup(*args, **kwargs)
        except Exception:
            self.prototype_trace = None  # so that the next call sets up again (and raises again)
            raise

    def _setup(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        assert self.prototype_trace is not None  # set by _setup_prototype
        self.logits = PyroModule()
        self._sites = {}  # name -> (kind, wrappers kept, event_dim)
        hidden, remaining, errors = [], [], []
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            leaf, wrappers = _unwrap(site["fn"])
            if site["infer"].get("enumerate"):
                if leaf.support.is_discrete:
                    hidden.append(name)  # left for TraceEnum_ELBO
                    continue
            elif isinstance(leaf, Categorical):
                errors.append(
                    f"site {name!r} is a latent integer Categorical, which AutoRelaxed cannot relax; either "
                    f"declare it OneHotCategorical(logits=...) and use its one-hot value arithmetically "
                    f"(value @ table, not value.argmax(-1), which gets no gradient), or enumerate it: mark it "
                    f"with pyro.infer.config_enumerate (infer={{'enumerate': 'parallel'}}) and use TraceEnum_ELBO"
                )
                continue
            kind = _kind(leaf)
            if kind is None:
                if leaf.support.is_discrete:
                    errors.append(
                        f"site {name!r} is a discrete {type(leaf).__name__}: AutoRelaxed guides OneHotCategorical "
                        f"and Bernoulli sites only; enumerate it (infer={{'enumerate': 'parallel'}}, TraceEnum_ELBO) "
                        f"or give it a guide of your own in an AutoGuideList"
                    )
                else:
                    remaining.append(name)
                continue
            hidden.append(name)
            self._add_site(name, site, leaf, kind, wrappers)
        if errors:
            raise ValueError("; ".join(errors))
        if remaining and self._continuous_factory is None:
            raise ValueError(
                f"sites {remaining} are continuous latents, which AutoRelaxed does not guide by itself: "
                f"pass continuous=AutoNormal (or another autoguide class) for them, or block them out "
                f"(poutine.block(model, expose=[...])) and guide them in an AutoGuideList"
            )
        if remaining:
            self.continuous = self._build_continuous(poutine.block(self.model, hide=hidden))

    def _add_site(self, name, site, leaf, kind, wrappers):
        fn = site["fn"]
        event_dim = fn.event_dim
        init = leaf.logits.detach().expand(fn.batch_shape + fn.event_shape)
        for frame in site["cond_indep_stack"]:  # if subsampling, repeat to full size (as AutoNormal)
            full_size = frame.full_size or frame.size
            if full_size != frame.size:
                init = periodic_repeat(init, full_size, frame.dim - event_dim)
        deep_setattr(self.logits, name, PyroParam(init.clone().contiguous(), constraints.real, event_dim))
        kept = [(k, a) for k, a in wrappers if k != "expand"]  # the parameter already has the full shape
        self._sites[name] = (kind, kept, site["cond_indep_stack"])

    def _build_continuous(self, blocked):
        factory = self._continuous_factory
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):  # no signature to read: pass nothing
            params = {}
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kw = {}
        if takes_any or "init_loc_fn" in params:
            kw["init_loc_fn"] = self.init_loc_fn
        if takes_any or "init_scale" in params:
            kw["init_scale"] = self._init_scale
        guide = factory(blocked, **kw)
        if not isinstance(guide, AutoGuide):
            if not callable(guide):
                raise TypeError(f"continuous(model, **kw) must return an AutoGuide or a guide function, got {guide!r}")
            guide = AutoCallable(blocked, guide)
        return guide

    def _check_prototype(self, part_trace):
        """As ``AutoGuideList``'s: the continuous guide's sites match the model's."""
        assert self.prototype_trace is not None  # the model's, traced before the parts
        for name, part_site in part_trace.iter_stochastic_nodes():
            self_site = self.prototype_trace.nodes[name]
            assert part_site["fn"].batch_shape == self_site["fn"].batch_shape
            assert part_site["fn"].event_shape == self_site["fn"].event_shape
            assert part_site["value"].shape == self_site["value"].shape

    # --- the guide --------------------------------------------------------------------------

    def forward(self, *args, **kwargs):
        """The guide, with the model's ``*args, **kwargs``; returns ``{site: value}`` for every guided site."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        if self._auto and not self._selecting and not self._external:
            if self._calls == 0 or (self.reselect_every and self._calls % self.reselect_every == 0):
                self.select(*args, **kwargs)
            self._calls += 1
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, (kind, wrappers, frames) in self._sites.items():
            with ExitStack() as stack:
                for frame in frames:
                    if frame.vectorized:
                        stack.enter_context(plates[frame.name])
                logits = attrgetter(name)(self.logits)
                q = dist.OneHotCategorical(logits=logits) if kind == "one_hot" else dist.Bernoulli(logits=logits)
                result[name] = pyro.sample(name, self._reparam.relax_distribution(name, _rewrap(q, wrappers)))  # type: ignore[arg-type]  # a Pyro distribution
        if self.continuous is not None:
            result.update(self.continuous(*args, **kwargs))
        self._reparam.step += 1
        return result

    def _logits(self) -> dict[str, torch.Tensor]:
        return {name: attrgetter(name)(self.logits).detach() for name in self._sites}

    @torch.no_grad()
    def probs(self) -> dict[str, torch.Tensor]:
        """``{site: probabilities}`` of the guide: ``softmax(logits)`` (one-hot sites, shape
        ``batch + (K,)``) or ``sigmoid(logits)`` (Bernoulli sites), detached, plates at full size."""
        return {
            name: (logits.softmax(-1) if self._sites[name][0] == "one_hot" else logits.sigmoid())
            for name, logits in self._logits().items()
        }

    @torch.no_grad()
    def median(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        """The guide's mode of each discrete site (the one-hot of the argmax; 0./1. for Bernoulli)
        and the continuous guide's ``median(*args, **kwargs)``."""
        result = {}
        for name, logits in self._logits().items():
            if self._sites[name][0] == "one_hot":
                result[name] = F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
            else:
                result[name] = (logits > 0).to(logits.dtype)
        if self.continuous is not None:
            result.update(self.continuous.median(*args, **kwargs))
        return result
