r"""Estimator selection in NumPyro: measure, on the user's own model and guide at the current
parameters, the ELBO gradient of each candidate ``(estimator, hyper)`` against an unbiased
reference, and pick the best (statistics, report and table: :mod:`relaxed_dists.selection`).

Mirrors :mod:`pyro_ext.selection`; the functions that draw noise take a leading PRNG ``key``.

The gradient is that of the single-particle ELBO ``log p(x, z) - log q(z)`` (``Trace_ELBO``'s
own ``loss``: plates, masks and scales respected, the guide replayed into the model) with respect
to the unconstrained guide parameters that feed its discrete sites (``biject_to`` of each
``numpyro.param``'s constraint), flattened into one vector of ``D`` coordinates (names sorted,
``jax.flatten_util.ravel_pytree``). Per candidate, ``num_samples`` per-sample gradients are one
``jax.jit(jax.vmap(jax.grad(...)))`` over ``num_samples`` keys: the same keys for every candidate
(common random numbers). References:

- ``"exact"``: the guide's discrete sites substituted with every joint value (each batch element of
  a site is one variable; the sites stay latent, so ``replay`` hands the model the value), a
  ``vmap`` over the ``C`` configurations: ``\nabla \sum_c q(c) (\log p - \log q)(c)``.
- ``"score"``: ``reference_samples`` hard draws (straight-through's forward value is an exact
  draw), score function with a leave-one-out baseline, continuous guide sites reparameterised;
  its relative standard error from ``num_groups`` groups.

``seconds`` of a candidate: the wall time of its batched program over ``num_samples`` (after
compilation, with XLA's optimisation level 0: each program runs once); ``step_seconds`` of the
report: the median of 5 calls of the winner's jitted single-key gradient (what one SVI step
costs, minus the optimiser), so ``cost_in_steps`` counts steps of the chosen estimator.

>>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
>>> from numpyro_ext.distributions import OneHotCategorical
>>> locs = jnp.array([-1.0, 1.0])
>>> def model(x):
...     with numpyro.plate("data", len(x)):
...         z = numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(2)))
...         numpyro.sample("x", dist.Normal(z @ locs, 1.0), obs=x)
>>> def guide(x):
...     q = numpyro.param("q", jnp.zeros((len(x), 2)))
...     with numpyro.plate("data", len(x)):
...         numpyro.sample("z", OneHotCategorical(logits=q))
>>> report = select_estimator(jax.random.PRNGKey(0), model, guide, jnp.array([0.5, -2.0]),
...                           candidates=["st", "reinmax"], num_samples=32, num_groups=8)
>>> report.reference, report.n_configurations, report.params, len(report.results)
('exact', 4, ['q'], 2)
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import sys
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions import biject_to, constraints
from numpyro.infer import Trace_ELBO
from numpyro.infer.svi import SVIRunResult
from numpyro.infer.util import compute_log_probs

from relaxed_dists.sample_law import SampleLawWarning
from relaxed_dists.selection import (
    MAX_REFERENCE_CONFIGURATIONS,
    SelectionReport,
    candidate_result,
    check_candidates,
    check_int,
    check_selection_args,
    cli_parser,
    group_means,
    joint_configurations,
    load_problem,
    make_report,
    mean_and_relative_se,
    rank_key,
    reference_kind,
)

from . import relax as _relax
from .distributions import OneHotCategorical

__all__ = ["select_estimator", "run_svi", "main"]

logger = logging.getLogger(__name__)

_HARD = "st"  # the candidate whose forward value is an exact draw: references and set-up trace with it
_TIMING_REPEATS = 5


# --- the guide drawn by one candidate --------------------------------------------------------


@contextlib.contextmanager
def _guide_with(guide, estimator: str, hyper: dict):
    """``guide`` drawing its discrete sites with ``estimator``: a plain guide is ``relax``-ed, a
    ``relax``-ed guide or an ``AutoRelaxed`` has its ``RelaxReparam`` swapped and restored
    afterwards (step included)."""
    from .autoguide import AutoRelaxed

    if isinstance(guide, (AutoRelaxed, _relax._Relaxed)):
        saved, selecting = guide.reparam, guide._selecting
        reparam = _relax.RelaxReparam(estimator, **hyper)
        reparam.step = saved.step
        guide.reparam, guide._selecting = reparam, True
        try:
            yield guide
        finally:
            guide.reparam, guide._selecting = saved, selecting
        return
    relaxed = _relax._Relaxed(guide, None, estimator, hyper)
    relaxed._warned = True  # warnings about enumerated sites were the user's guide's to give
    yield relaxed


def _leaf(fn):
    return _relax._unwrap(fn)[0]


_DISCRETE = (
    *_relax.ONE_HOT_CLASSES.values(),
    *_relax.BERNOULLI_CLASSES.values(),
    OneHotCategorical,
    *_relax._BERNOULLI,
)


def _kind(site) -> str | None:
    """``"one_hot"`` / ``"bernoulli"`` for a latent discrete (or relaxed-discrete) guide site, else ``None``."""
    if site["type"] != "sample" or site["is_observed"]:
        return None
    leaf = _leaf(site["fn"])
    if not isinstance(leaf, _DISCRETE):
        return None
    return "one_hot" if leaf.event_shape else "bernoulli"


class _Problem:
    """Model and guide at fixed parameters; the discrete-feeding parameters as unconstrained leaves ``u``."""

    def __init__(self, key, model, guide, args, kwargs, params):
        self.model, self.guide, self.args, self.kwargs = model, guide, args, kwargs
        with _guide_with(guide, _HARD, {}) as hard:
            guide_trace = handlers.trace(handlers.seed(handlers.substitute(hard, data=params or {}), key)).get_trace(
                *args, **kwargs
            )
            if params is None:  # as SVI.init: the guide's initial values, then the model's own
                params = {n: s["value"] for n, s in guide_trace.items() if s["type"] == "param"}
                model_trace = handlers.trace(
                    handlers.substitute(handlers.replay(handlers.seed(model, key), guide_trace), data=params)
                ).get_trace(*args, **kwargs)
                params.update(
                    {n: s["value"] for n, s in model_trace.items() if s["type"] == "param" and n not in params}
                )
        self.params = dict(params)
        self.discrete = {n: (_kind(s), tuple(jnp.shape(s["value"]))) for n, s in guide_trace.items() if _kind(s)}
        if not self.discrete:
            raise ValueError("select_estimator found no latent OneHotCategorical or Bernoulli site in the guide")
        self.continuous = [
            n
            for n, s in guide_trace.items()
            if s["type"] == "sample" and not s["is_observed"] and n not in self.discrete
        ]
        transforms = {
            n: biject_to(s["kwargs"].get("constraint", constraints.real))
            for n, s in guide_trace.items()
            if s["type"] == "param"
        }
        self.names = self._feeding(key, transforms)
        self.transforms = {n: transforms[n] for n in self.names}
        self.u0 = {n: self.transforms[n].inv(jnp.asarray(self.params[n])) for n in self.names}
        self.flat0, self.unravel = ravel_pytree(self.u0)

    def param_map(self, flat) -> dict:
        u = self.unravel(flat)
        return {**self.params, **{n: self.transforms[n](u[n]) for n in self.names}}

    def _feeding(self, key, transforms) -> list[str]:
        """The guide parameters the discrete sites' logits depend on: the non-zero entries of the
        gradient of a random projection of those logits."""
        candidates = sorted(n for n in transforms if jnp.issubdtype(jnp.result_type(self.params[n]), jnp.inexact))
        if not candidates:
            raise ValueError("select_estimator found no floating-point numpyro.param in the guide")
        weights_key, trace_key = jax.random.split(key)

        def projection(values):
            with _guide_with(self.guide, _HARD, {}) as hard:
                trace = handlers.trace(
                    handlers.seed(handlers.substitute(hard, data={**self.params, **values}), trace_key)
                ).get_trace(*self.args, **self.kwargs)
            total = 0.0
            for i, name in enumerate(self.discrete):
                logits = _leaf(trace[name]["fn"]).logits
                w = jax.random.normal(jax.random.fold_in(weights_key, i), jnp.shape(logits), jnp.result_type(logits))
                total = total + (w * logits).sum()
            return total

        grads = jax.jit(jax.grad(projection))(
            {n: jnp.asarray(self.params[n]) for n in candidates}
        )  # eager: one compile per op
        names = [n for n in candidates if bool(jnp.any(grads[n] != 0))]
        if not names:
            raise ValueError("select_estimator found no guide parameter that feeds the discrete sites' logits")
        return names

    def n_configurations(self) -> int:
        sizes = [(shape[-1] if kind == "one_hot" else 2) for kind, shape in self.discrete.values()]
        counts = [math.prod(shape[:-1] if kind == "one_hot" else shape) for kind, shape in self.discrete.values()]
        return math.prod(s**c for s, c in zip(sizes, counts))

    def configurations(self) -> dict:
        """``{site: values}`` with a leading axis of the ``C`` joint configurations."""
        sizes: list[int] = []
        slices: list[tuple[int, int]] = []
        for kind, shape in self.discrete.values():
            n_vars = math.prod(shape[:-1] if kind == "one_hot" else shape)
            slices.append((len(sizes), n_vars))
            sizes += [shape[-1] if kind == "one_hot" else 2] * n_vars
        joint = joint_configurations(sizes)
        dtype = jnp.result_type(self.flat0)
        out = {}
        for (name, (kind, shape)), (start, n_vars) in zip(self.discrete.items(), slices):
            index = jnp.asarray(joint[:, start : start + n_vars])
            if kind == "one_hot":
                out[name] = jax.nn.one_hot(index, shape[-1], dtype=dtype).reshape((-1, *shape))
            else:
                out[name] = index.astype(dtype).reshape((-1, *shape))
        return out

    def elbo_terms(self, guide, flat, key, values):
        """``(log p - log q, log q of the discrete sites)`` with the discrete sites substituted by ``values``."""
        params = self.param_map(flat)
        model_key, guide_key = jax.random.split(key)
        guide = handlers.seed(handlers.substitute(guide, data=values), guide_key)
        guide_lp, guide_trace = compute_log_probs(guide, self.args, self.kwargs, params)
        model = handlers.replay(handlers.seed(self.model, model_key), guide_trace)
        model_lp, _ = compute_log_probs(model, self.args, self.kwargs, params)
        log_q = sum((guide_lp[n] for n in self.discrete), start=0.0)
        return sum(model_lp.values(), start=0.0) - sum(guide_lp.values(), start=0.0), log_q

    def hard_values(self, guide, key) -> dict:
        guide = handlers.seed(handlers.substitute(guide, data=self.param_map(self.flat0)), jax.random.split(key)[1])
        trace = handlers.trace(guide).get_trace(*self.args, **self.kwargs)
        return {n: jax.lax.stop_gradient(trace[n]["value"]) for n in self.discrete}


def _exact_reference(problem: _Problem) -> np.ndarray:
    values = problem.configurations()
    key = jax.random.PRNGKey(0)  # no continuous site: the key draws nothing that matters

    def expected_elbo(flat):
        with _guide_with(problem.guide, _HARD, {}) as hard:
            f, log_q = jax.vmap(lambda v: problem.elbo_terms(hard, flat, key, v))(values)
        return (jnp.exp(log_q) * f).sum()

    return np.asarray(jax.jit(jax.grad(expected_elbo))(problem.flat0), dtype=np.float64)


def _score_reference(key, problem: _Problem, m: int, groups: int) -> tuple[np.ndarray, float]:
    keys = jax.random.split(key, m)

    def per_sample(flat):
        with _guide_with(problem.guide, _HARD, {}) as hard:
            values = jax.vmap(lambda k: problem.hard_values(hard, k))(keys)
            f = jax.vmap(lambda v, k: problem.elbo_terms(hard, flat, k, v)[0])(values, keys)
            baseline = (f.sum() - f) / (m - 1)

            def surrogate(flat, v, k, b):
                f_i, log_q = problem.elbo_terms(hard, flat, k, v)
                return (jax.lax.stop_gradient(f_i) - b) * log_q + f_i  # score term + reparameterised path

            return jax.vmap(jax.grad(surrogate), (None, 0, 0, 0))(flat, values, keys, jax.lax.stop_gradient(baseline))

    grads = np.asarray(jax.jit(per_sample)(problem.flat0), dtype=np.float64)
    return mean_and_relative_se(group_means(grads, groups))


#: XLA options for the selection's own programs: each is run once, so compile time dominates
#: (optimisation level 0 compiles ~3x faster on CPU and runs ~2x slower).
_FAST_COMPILE: dict[str, Any] = {"xla_backend_optimization_level": 0}  # XLA takes the int


def _candidate_gradients(key, problem: _Problem, estimator, hyper, num_samples) -> tuple[np.ndarray, float]:
    """``(num_samples, D)`` single-particle ELBO gradients and the seconds per gradient of the
    batched program (after compilation, its wall time over ``num_samples``)."""
    with _guide_with(problem.guide, estimator, hyper) as guide, warnings.catch_warnings():
        # a candidate's sample-law warning is no news here: its gradient is what is measured
        warnings.simplefilter("ignore", SampleLawWarning)
        grad = jax.grad(_objective(problem, guide))
        keys = jax.random.split(key, num_samples)
        batch = jax.jit(jax.vmap(grad, (None, 0))).lower(problem.flat0, keys).compile(compiler_options=_FAST_COMPILE)
        t0 = time.perf_counter()
        grads = np.asarray(batch(problem.flat0, keys), dtype=np.float64)
    return grads, (time.perf_counter() - t0) / num_samples


def _objective(problem, guide):
    elbo = Trace_ELBO()

    def objective(flat, key):
        return -elbo.loss(key, problem.param_map(flat), problem.model, guide, *problem.args, **problem.kwargs)

    return objective


def _step_seconds(key, problem: _Problem, estimator, hyper) -> float:
    """Median wall time of the jitted single-key gradient (as ``svi.update`` compiles it), after compilation."""
    with _guide_with(problem.guide, estimator, hyper) as guide, warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleLawWarning)
        single = jax.jit(jax.grad(_objective(problem, guide)))
        single(problem.flat0, key).block_until_ready()  # compile
        times = []
        for i in range(_TIMING_REPEATS):
            k = jax.random.fold_in(key, i)
            t0 = time.perf_counter()
            single(problem.flat0, k).block_until_ready()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def select_estimator(
    key: jax.Array,
    model,
    guide,
    *args,
    params=None,
    candidates=None,
    num_samples=256,
    num_groups=32,
    reference="auto",
    num_particles=1,
    rule="mse",
    max_configurations=MAX_REFERENCE_CONFIGURATIONS,
    reference_samples=2048,
    **kwargs,
) -> SelectionReport:
    """Measures each candidate's ELBO gradient at the given parameters; returns a
    :class:`~relaxed_dists.selection.SelectionReport` (best first by ``rule``).

    - ``key``: PRNG key; the same per-candidate keys for every candidate (common random numbers).
    - ``model``, ``guide``: the user's (a plain guide, whose ``OneHotCategorical``/``Bernoulli``
      sites are ``relax``-ed per candidate; a ``relax``-ed guide or an
      :class:`~numpyro_ext.autoguide.AutoRelaxed`, whose ``RelaxReparam`` is swapped per candidate
      and restored afterwards, step included). ``*args, **kwargs`` are theirs.
    - ``params``: ``{name: constrained value}`` as ``svi.get_params(state)`` gives; ``None``: the
      initial values (as ``SVI.init`` finds them, seeded with ``key``).
    - ``candidates``: ``None`` (:data:`~relaxed_dists.selection.DEFAULT_CANDIDATES`) or names /
      ``(name, {knob: value})`` pairs.
    - ``num_samples``, ``num_groups``: single-particle gradients per candidate, in groups
      (``num_samples`` a multiple of ``num_groups``).
    - ``reference``: ``"auto"`` | ``"exact"`` | ``"score"`` (module docstring); ``"auto"`` is
      exact when the guide has no continuous latent site and at most ``max_configurations``
      joint discrete values, else score.
    - ``num_particles``: the particle count the MSE ranking is for (``mse_n``).
    - ``rule``: ``"mse"`` or ``"efficiency"`` (MSE times seconds per gradient).
    - ``max_configurations``: the largest joint support ``"exact"`` enumerates (``ValueError`` beyond).
    - ``reference_samples``: draws of the score reference, a multiple of ``num_groups``.

    Shapes: every gradient is flattened to ``D`` = the total size of ``report.params``; the
    selection runs eagerly (outside ``jit``), compiling one batched gradient per candidate and one single gradient for the winner.
    """
    start = time.perf_counter()
    check_selection_args(
        num_samples, num_groups, reference, rule, num_particles, max_configurations, reference_samples, params
    )
    cands = check_candidates(candidates)
    if not callable(model) or not callable(guide):
        raise TypeError(f"model and guide must be callables, got model={model!r}, guide={guide!r}")
    setup_key, ref_key, sample_key = jax.random.split(key, 3)
    problem = _Problem(setup_key, model, guide, args, kwargs, params)
    n_conf = problem.n_configurations()
    kind = reference_kind(reference, n_conf, problem.continuous, max_configurations)
    if kind == "exact":
        ref, ref_se = _exact_reference(problem), 0.0
    else:
        ref, ref_se = _score_reference(ref_key, problem, reference_samples, num_groups)
    results = []
    per = num_samples // num_groups
    for estimator, hyper in cands:
        grads, seconds = _candidate_gradients(sample_key, problem, estimator, hyper, num_samples)
        results.append(
            candidate_result(
                estimator,
                hyper,
                group_means(grads, num_groups),
                ref,
                seconds,
                particles_per_group=per,
                num_particles=num_particles,
            )
        )
    best = min(results, key=rank_key(rule))
    return make_report(
        results,
        ref,
        ref_se,
        kind=kind,
        n_configurations=n_conf,
        reference_samples=reference_samples,
        params=problem.names,
        num_particles=num_particles,
        rule=rule,
        start=start,
        step_seconds=_step_seconds(sample_key, problem, best.estimator, best.hyper),
    )


# --- SVI with reselection ----------------------------------------------------------------------


def _compiled_update(svi, kwargs):
    """A fresh ``jax.jit`` of ``svi.update`` (a new function object: traced with the guide's current choice)."""

    def update(state, *args):
        return svi.update(state, *args, **kwargs)

    return jax.jit(update)


def run_svi(key: jax.Array, svi, num_steps: int, *args, progress_bar: bool = True, **kwargs) -> SVIRunResult:
    """``num_steps`` jitted ``svi.update`` steps from ``svi.init(key, ...)``; returns NumPyro's
    ``SVIRunResult(params, state, losses)`` (``losses``: ``(num_steps,)``).

    When ``svi.guide`` is an ``"auto"`` guide (``relax(..., estimator="auto")``,
    ``AutoRelaxed(estimator="auto")``), it is initialised under a placeholder estimator, then
    :func:`select_estimator` runs (outside ``jit``, at ``svi.get_params(state)``, ranking for
    ``defaults.AUTO_AVERAGED_GRADIENTS`` averaged gradients; ``guide.selection_options`` passed on) at step 0 and every
    ``guide.reselect_every`` steps; each choice is logged in ``guide.selections`` and by
    ``logging`` (``numpyro_ext.selection``). The jitted update is rebuilt only when the choice
    changes. ``args`` are passed to the jitted update (``kwargs`` are closed over, static).
    """
    check_int("num_steps", num_steps, 0)
    guide = svi.guide
    auto = getattr(guide, "_auto", False)
    every = getattr(guide, "reselect_every", None)
    init_key, select_key = jax.random.split(key)
    if auto:
        with _guide_with(guide, guide.reparam.estimator, dict(guide.reparam.hyper)):
            state = svi.init(init_key, *args, **kwargs)
    else:
        state = svi.init(init_key, *args, **kwargs)
    options = dict(getattr(guide, "selection_options", {}))
    steps: Any = range(num_steps)  # or a tqdm bar over it
    if progress_bar:
        from tqdm.auto import tqdm

        steps = tqdm(steps)
    update, choice, losses = None, None, []
    for i in steps:
        if auto and (i == 0 or (every and i % every == 0)):
            k = jax.random.fold_in(select_key, i)
            report = guide._select(k, svi.get_params(state), args, kwargs, i, options)
            logger.info(
                "step %d: selected %s (%.2f s = %.0f SVI gradients)",
                i,
                report.results[0].label,
                report.seconds,
                report.cost_in_steps,
            )
            if progress_bar:
                steps.set_postfix_str(report.results[0].label, refresh=False)
        if update is None or (auto and report.best != choice):
            update = _compiled_update(svi, kwargs)
            choice = report.best if auto else None
        state, loss = update(state, *args)
        losses.append(loss)
    stacked = jnp.stack(losses) if losses else jnp.zeros((0,))
    return SVIRunResult(svi.get_params(state), state, stacked)


# --- CLI ---------------------------------------------------------------------------------------


def main(argv=None) -> str:
    """``python -m numpyro_ext.diagnostics select module:function [...]``: prints and returns the table.

    ``module:function`` returns ``(model, guide, args[, kwargs])``; the selection runs at the
    initial parameters, seeded with ``--seed``."""
    parser = cli_parser("python -m numpyro_ext.diagnostics select")
    opts = parser.parse_args(argv)
    model, guide, args, kwargs = load_problem(parser, opts.problem)
    report = select_estimator(
        jax.random.PRNGKey(opts.seed),
        model,
        guide,
        *args,
        candidates=opts.candidates,
        num_samples=opts.samples,
        num_groups=opts.groups,
        reference=opts.reference,
        **kwargs,
    )
    text = report.table()
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
