r"""Estimator selection in Pyro: measure, on the user's own model and guide at the current
parameters, the ELBO gradient of each candidate ``(estimator, hyper)`` against an unbiased
reference, and pick the best (statistics, report and table: :mod:`relaxed_dists.selection`).

The gradient is that of the single-particle ELBO ``log p(x, z) - log q(z)`` (``Trace_ELBO``
semantics: plates and scales respected, the guide replayed into the model) with respect to the
unconstrained guide parameters that feed its discrete sites, flattened into one vector of ``D``
coordinates (parameter names sorted). References:

- ``"exact"``: the discrete sites of the (unrelaxed) guide conditioned on every joint value
  (each batch element of a site is one variable), all at once under an outer plate of size
  ``C``: ``\nabla \sum_c q(c) (\log p - \log q)(c)``.
- ``"score"``: ``reference_samples`` hard draws of the unrelaxed guide, score function with a
  leave-one-out baseline (continuous guide sites stay reparameterised), standard error from
  ``num_groups`` groups.

Per-candidate gradients are computed one particle at a time (a loop of ``num_samples``
forward + backward passes; their median time is the candidate's ``seconds``), with common
random numbers across candidates: one base seed from torch's global generator, then
``torch.random.fork_rng()`` + ``manual_seed(base)`` per candidate.

>>> import pyro, pyro.distributions as dist
>>> from pyro_ext.relax import take_one_hot
>>> pyro.clear_param_store()
>>> locs = torch.tensor([-1.0, 1.0])
>>> def model(x):
...     with pyro.plate("data", len(x)):
...         z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(2)))
...         pyro.sample("x", dist.Normal(take_one_hot(locs, z), 1.0), obs=x)
>>> def guide(x):
...     q = pyro.param("q", torch.zeros(len(x), 2))
...     with pyro.plate("data", len(x)):
...         pyro.sample("z", dist.OneHotCategorical(logits=q))
>>> report = select_estimator(model, guide, torch.tensor([0.5, -2.0]), candidates=["st", "reinmax"], num_samples=32, num_groups=8)
>>> report.reference, report.n_configurations, report.params, len(report.results)
('exact', 4, ['q'], 2)
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time
import warnings
from typing import Any, cast

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.distributions import Bernoulli, OneHotCategorical, biject_to, constraints

from relaxed_dists.checks import out_of_range
from relaxed_dists.sample_law import SampleLawWarning
from relaxed_dists.selection import (
    MAX_REFERENCE_CONFIGURATIONS,
    SelectionReport,
    candidate_result,
    check_candidates,
    check_selection_args,
    cli_parser,
    group_means,
    joint_configurations,
    load_problem,
    make_report,
    mean_and_relative_se,
    reference_kind,
)

from .relax import RelaxReparam, _Relaxed, _unwrap

__all__ = ["select_estimator", "run_svi", "main"]


class _NoRelax:
    """Stands in for an AutoRelaxed's RelaxReparam: leaves the discrete sites as they are."""

    def __init__(self, step: int) -> None:
        self.step = step

    def relax_distribution(self, name, fn):
        return fn


@contextlib.contextmanager
def _guide_with(guide, estimator, hyper):
    """``guide`` drawing its discrete sites with ``estimator`` (``None``: unrelaxed); an
    AutoRelaxed has its reparam swapped and restored (step included)."""
    from .autoguide import AutoRelaxed

    if isinstance(guide, AutoRelaxed):
        saved, selecting = guide._reparam, guide._selecting
        guide._selecting = True
        guide._reparam = _NoRelax(saved.step) if estimator is None else RelaxReparam(estimator, **hyper)  # type: ignore[assignment]  # a stand-in
        try:
            yield guide
        finally:
            guide._reparam, guide._selecting = saved, selecting
        return
    fn, sites = (guide.fn, guide.sites) if isinstance(guide, _Relaxed) else (guide, None)
    if estimator is None:
        yield fn
    else:
        relaxed = _Relaxed(fn, sites, estimator, hyper)
        relaxed._warned = True  # warnings were the user's guide's to give
        yield relaxed


def _leaf(fn):
    return _unwrap(fn)[0]


def _discrete_sites(trace) -> dict:
    """``{name: (kind, value_shape)}`` of the latent OneHotCategorical / Bernoulli sites."""
    out = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        leaf = _leaf(site["fn"])
        if isinstance(leaf, OneHotCategorical):
            out[name] = ("one_hot", tuple(site["value"].shape), len(site["fn"].batch_shape))
        elif isinstance(leaf, Bernoulli):
            out[name] = ("bernoulli", tuple(site["value"].shape), len(site["fn"].batch_shape))
    return out


def _continuous_sites(trace, discrete) -> list[str]:
    return [
        n
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s) and n not in discrete
    ]


def _max_plate_nesting(*traces) -> int:
    return max(
        [
            len(s["fn"].batch_shape)
            for t in traces
            for s in t.nodes.values()
            if s["type"] == "sample" and not site_is_subsample(s)
        ]
        + [0]
    )


@contextlib.contextmanager
def _own_plate_dims():
    """Runs the selection with Pyro's plate-dimension allocator empty, then restores it. The
    selection's traces are under ``poutine.block()``, so enclosing plates (``Trace_ELBO``'s
    vectorised particle plate when an auto guide selects at its first call) never see its sites;
    without this their dims would still collide with the selection's own outer plate."""
    from pyro.poutine.runtime import _DIM_ALLOCATOR

    saved, _DIM_ALLOCATOR._stack = _DIM_ALLOCATOR._stack, []
    try:
        yield
    finally:
        _DIM_ALLOCATOR._stack = saved


class _Problem:
    """Model and guide at fixed parameters: unconstrained leaves ``u`` substituted as constrained values."""

    def __init__(self, model, guide, args, kwargs, params):
        self.model, self.guide, self.args, self.kwargs = model, guide, args, kwargs
        store = pyro.get_param_store()
        with _guide_with(guide, None, None) as base, poutine.block():
            if not params and not len(store):
                poutine.trace(base).get_trace(*args, **kwargs)  # initialise the store, like SVI's first step
            ptrace = poutine.trace(base).get_trace(*args, **kwargs)
        names = sorted(n for n, s in ptrace.nodes.items() if s["type"] == "param")
        # A torch.nn.Module guide (a PyroModule, relax() of one) whose layers are plain torch
        # modules holds its weights as module parameters, not pyro.param sites: they are taken
        # as they are (leaves of their own, unconstrained), when no pyro.param feeds the sites.
        self.module_leaves = dict(guide.named_parameters()) if isinstance(guide, torch.nn.Module) else {}
        if not names and not self.module_leaves:
            raise ValueError("select_estimator: the guide has no pyro.param sites to take the gradient with respect to")
        self.constrained, self.leaves = {}, {}
        for name in names:
            constraint = store._constraints.get(name, constraints.real) if name in store else constraints.real
            value = params[name] if params and name in params else ptrace.nodes[name]["value"]
            value = torch.as_tensor(value).detach()
            self.leaves[name] = biject_to(constraint).inv(value).detach().clone().requires_grad_(True)
            self.constrained[name] = (constraint, value)
        self.extra = {k: torch.as_tensor(v) for k, v in (params or {}).items() if k not in self.leaves}
        # which parameters feed the discrete sites
        data = self.data()
        with _guide_with(guide, None, None) as base, poutine.block(), warnings.catch_warnings():
            # a PyroModule's param sites are local to it (module_local_params): substitute misses them
            warnings.filterwarnings("ignore", message=".*did not find params")
            trace = poutine.trace(poutine.substitute(base, data=data)).get_trace(*args, **kwargs)
        self.discrete = _discrete_sites(trace)
        if not self.discrete:
            raise ValueError("select_estimator: the guide has no latent OneHotCategorical or Bernoulli site")
        self.continuous = _continuous_sites(trace, self.discrete)
        nodes: Any = trace.nodes  # Pyro types a site's "fn" as any callable, its "value" as optional
        lp = cast(
            torch.Tensor,
            sum(_unwrap(nodes[n]["fn"])[0].log_prob(nodes[n]["value"].detach()).sum() for n in self.discrete),
        )
        grads = (
            torch.autograd.grad(lp, [self.leaves[n] for n in names], allow_unused=True, retain_graph=True)
            if names
            else []
        )
        self.names = [n for n, g in zip(names, grads) if g is not None]
        if not self.names and self.module_leaves:
            module_names = sorted(self.module_leaves)
            grads = torch.autograd.grad(lp, [self.module_leaves[n] for n in module_names], allow_unused=True)
            self.names = [n for n, g in zip(module_names, grads) if g is not None]
            self.leaves, self.constrained = {n: self.module_leaves[n] for n in self.names}, {}
        if not self.names:
            raise ValueError("select_estimator: no guide parameter feeds the guide's discrete sites")
        self.sizes = [self.leaves[n].numel() for n in self.names]

    def data(self) -> dict:
        out = dict(self.extra)
        for name, leaf in self.leaves.items():
            if name in self.constrained:  # module parameters are used in place, not substituted
                out[name] = biject_to(self.constrained[name][0])(leaf)
        return out

    def flat_grad(self, objective, retain_graph=False) -> np.ndarray:
        grads = torch.autograd.grad(
            objective, [self.leaves[n] for n in self.names], allow_unused=True, retain_graph=retain_graph
        )
        return (
            torch.cat(
                [(torch.zeros_like(self.leaves[n]) if g is None else g).reshape(-1) for n, g in zip(self.names, grads)]
            )
            .detach()
            .double()
            .numpy()
        )

    def traces(self, guide, vectorize=None, condition=None):
        """Guide and replayed model traces at the substituted parameters (optionally under an outer plate)."""
        data = self.data()
        g, m = poutine.substitute(guide, data=data), poutine.substitute(self.model, data=data)
        if condition is not None:
            g, m = poutine.condition(g, data=condition), poutine.condition(m, data=condition)
        if vectorize is not None:
            size, dim = vectorize
            g = pyro.plate("_selection_particles", size, dim=dim)(g)
            m = pyro.plate("_selection_particles", size, dim=dim)(m)
        with poutine.block(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*did not find params")  # guide-only params in the model
            gt = poutine.trace(g).get_trace(*self.args, **self.kwargs)
            mt = poutine.trace(poutine.replay(m, trace=gt)).get_trace(*self.args, **self.kwargs)
        return gt, mt

    def n_configurations(self) -> int:
        total = 1
        for kind, shape, _ in self.discrete.values():
            n = math.prod(shape[:-1]) if kind == "one_hot" else math.prod(shape)
            total *= (shape[-1] if kind == "one_hot" else 2) ** n
        return total


def _per_particle_log_prob(trace, size, names=None) -> torch.Tensor:
    """``(size,)``: the trace's log density (of sites ``names``, default all) summed over all but
    the leading particle dim."""
    total = torch.zeros(size, dtype=torch.float64)
    trace.compute_log_prob()
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) and (names is None or name in names):
            lp = site["log_prob"]
            total = total + (lp.reshape(size, -1).sum(-1) if lp.dim() and lp.shape[0] == size else lp.sum() / 1.0)
    return total


def _exact_reference(problem: _Problem) -> np.ndarray:
    sizes, layout = [], []
    for name, (kind, shape, nbatch) in problem.discrete.items():
        n = math.prod(shape[:-1]) if kind == "one_hot" else math.prod(shape)
        sizes += [shape[-1] if kind == "one_hot" else 2] * n
        layout.append((name, kind, shape, n, nbatch))
    configs = torch.as_tensor(joint_configurations(sizes))
    c = configs.shape[0]
    with _guide_with(problem.guide, None, None) as base:
        gt0, mt0 = problem.traces(base)
        nest = _max_plate_nesting(gt0, mt0)
        cond, start = {}, 0
        for name, kind, shape, n, nbatch in layout:
            idx = configs[:, start : start + n]
            start += n
            if kind == "one_hot":
                value = (
                    torch.nn.functional.one_hot(idx, shape[-1]).to(gt0.nodes[name]["value"].dtype).reshape(c, *shape)
                )
            else:
                value = idx.to(gt0.nodes[name]["value"].dtype).reshape(c, *shape)
            value = value.reshape((c,) + (1,) * max(nest - nbatch, 0) + tuple(shape))
            cond[name] = value
        gt, mt = problem.traces(base, vectorize=(c, -nest - 1), condition=cond)
    log_q, log_p = _per_particle_log_prob(gt, c), _per_particle_log_prob(mt, c)
    return problem.flat_grad((log_q.exp() * (log_p - log_q)).sum())


def _score_reference(problem: _Problem, m: int, groups: int):
    with _guide_with(problem.guide, None, None) as base:
        gt0, mt0 = problem.traces(base)
        nest = _max_plate_nesting(gt0, mt0)
        with torch.no_grad():
            draws, _ = problem.traces(base, vectorize=(m, -nest - 1))
        cond = {n: draws.nodes[n]["value"].detach() for n in problem.discrete}
        gt, mt = problem.traces(base, vectorize=(m, -nest - 1), condition=cond)
    log_q_disc = _per_particle_log_prob(gt, m, set(problem.discrete))
    log_q, log_p = _per_particle_log_prob(gt, m), _per_particle_log_prob(mt, m)
    f = log_p - log_q
    baseline = (f.sum() - f) / (m - 1)
    surrogate = f + (f - baseline).detach() * log_q_disc
    per = m // groups
    grads = np.stack(
        [problem.flat_grad(surrogate[i * per : (i + 1) * per].sum() / per, retain_graph=True) for i in range(groups)]
    )
    return mean_and_relative_se(grads)


def _candidate_gradients(problem: _Problem, estimator, hyper, num_samples):
    grads, times = [], []
    with _guide_with(problem.guide, estimator, hyper) as guide, warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleLawWarning)  # the candidate's law is what is being measured
        for _ in range(num_samples):
            t0 = time.perf_counter()
            gt, mt = problem.traces(guide)
            elbo = mt.log_prob_sum() - gt.log_prob_sum()
            grads.append(problem.flat_grad(elbo))
            times.append(time.perf_counter() - t0)
    return np.stack(grads), statistics.median(times)


def select_estimator(
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
    """Measures each candidate's ELBO gradient at the current parameters; returns a
    :class:`~relaxed_dists.selection.SelectionReport` (best first by ``rule``).

    Args:
        model, guide: the user's model and guide (a plain guide, a ``relax``-ed one, or an
            :class:`~pyro_ext.autoguide.AutoRelaxed`, whose reparam is swapped per candidate
            and restored afterwards, step included). ``*args, **kwargs`` are theirs.
        params: optional ``{name: constrained value}`` to measure at instead of the param store
            (the store is initialised by one guide trace when empty and ``params`` is None).
        candidates: ``None`` (:data:`~relaxed_dists.selection.DEFAULT_CANDIDATES`) or names /
            ``(name, {knob: value})`` pairs.
        num_samples, num_groups: single-particle gradients per candidate, in groups
            (``num_samples`` a multiple of ``num_groups``).
        reference: ``"auto"`` | ``"exact"`` | ``"score"`` (module docstring).
        num_particles: the particle count the MSE ranking is for (``mse_n``).
        rule: ``"mse"`` or ``"efficiency"`` (MSE times seconds per gradient).
        max_configurations: largest joint support ``"exact"`` enumerates (``ValueError`` beyond).
        reference_samples: draws of the score reference, a multiple of ``num_groups``.

    Example:
        One 3-class latent, two candidates; ``report.best`` is ``(estimator, hyper)``, ready
        for ``relax(guide, estimator, **hyper)``.

        >>> import pyro, pyro.distributions as dist
        >>> pyro.clear_param_store()
        >>> def model():
        ...     z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(3)))
        ...     pyro.sample("x", dist.Normal(z @ torch.tensor([-1.0, 0.0, 1.0]), 1.0), obs=torch.tensor(0.8))
        >>> def guide():
        ...     pyro.sample("z", dist.OneHotCategorical(logits=pyro.param("q", torch.zeros(3))))
        >>> report = select_estimator(model, guide, candidates=["st", ("reinmax", {"temperature": 1.0})], num_samples=16, num_groups=4)
        >>> report.best[0] in ("st", "reinmax"), report.reference, report.n_configurations
        (True, 'exact', 3)
    """
    start = time.perf_counter()
    check_selection_args(
        num_samples, num_groups, reference, rule, num_particles, max_configurations, reference_samples, params
    )
    cands = check_candidates(candidates)
    with _own_plate_dims():  # called from a guide inside SVI's particle plate: that plate is blocked out
        problem = _Problem(model, guide, args, kwargs, params)
        n_conf = problem.n_configurations()
        kind = reference_kind(reference, n_conf, problem.continuous, max_configurations)
        base = int(torch.randint(0, 2**62, ()))
        with torch.random.fork_rng():
            torch.manual_seed(base)
            if kind == "exact":
                ref, ref_se = _exact_reference(problem), 0.0
            else:
                ref, ref_se = _score_reference(problem, reference_samples, num_groups)
        results = []
        per = num_samples // num_groups
        for est, hyper in cands:
            with torch.random.fork_rng():
                torch.manual_seed(base)
                grads, seconds = _candidate_gradients(problem, est, hyper, num_samples)
            groups = group_means(grads, num_groups)
            results.append(
                candidate_result(est, hyper, groups, ref, seconds, particles_per_group=per, num_particles=num_particles)
            )
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
        )


def run_svi(svi, num_steps, *args, progress_bar=True, **kwargs) -> list[float]:
    """``num_steps`` of ``svi.step(*args, **kwargs)``; returns the losses. An ``"auto"`` guide
    (``relax(..., estimator="auto")`` / ``AutoRelaxed(estimator="auto")``) selects by itself at its
    first call and every ``reselect_every`` calls; this runs it at step 0 and every
    ``guide.reselect_every`` steps instead, by resetting its call counter."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(out_of_range("num_steps", num_steps, "an integer >= 0"))
    guide = svi.guide
    auto = getattr(guide, "_auto", False)
    every = getattr(guide, "reselect_every", None)
    steps = range(num_steps)
    if progress_bar:
        try:
            from tqdm.auto import tqdm

            steps = tqdm(steps)
        except ImportError:  # pragma: no cover
            pass
    losses = []
    saved = getattr(guide, "_external", False)
    if auto:
        guide._external = True  # the schedule is run here, in SVI steps, not by the guide's own call count
    try:
        for i in steps:
            if auto and (i == 0 or (every and i % every == 0)):
                guide.select(*args, step=i, **kwargs)
            losses.append(float(svi.step(*args, **kwargs)))
    finally:
        if auto:
            guide._external = saved
    return losses


def main(argv=None) -> str:
    """``python -m pyro_ext.diagnostics select module:function [...]``: prints and returns the table."""
    parser = cli_parser("python -m pyro_ext.diagnostics select")
    opts = parser.parse_args(argv)
    model, guide, args, kwargs = load_problem(parser, opts.problem)
    pyro.clear_param_store()
    torch.manual_seed(opts.seed)
    report = select_estimator(
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
