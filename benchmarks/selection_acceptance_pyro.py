"""Issue 10's acceptance, Pyro side: writes ``benchmarks/results/selection_acceptance_pyro.md``.

(a) The issue's mixture (``benchmarks/_mixtures.py`` ``FIXED``: 6 points, 4 fixed means), guide
    ``OneHotCategorical(logits=q)`` per point, ``Trace_ELBO(num_particles=8)`` (vectorised),
    Adam 0.05, 1,500 steps, seed 0: mean exact KL to the posterior (nats per point) for
    ``relax(guide)`` (library defaults; must be < 0.05), ``estimator="auto"`` (selection at step 0
    and every 250 steps via ``run_svi``, ranking for 8 particles; must be < 0.03) and each of the
    12 default candidates for reference.
(b) Spearman between ``select_estimator``'s MSE ranking (default budget, 256 gradients) and the
    exact-gradient MSE (``pyro_ext.diagnostics.gradient_report``, 20,000 samples) over the 12
    candidates, on the ``expectation`` problems (ELBO gradient = grad E[f]) of
    ``benchmarks/_selection_problems.py``: f in linear, quadratic, bump, seeds 0 and 1.
    Must be >= 0.8 (reported per problem and as the mean).
(c) The cost of a selection in SVI steps: ``report.cost_in_steps`` (single-particle gradients
    of the winner) and the selection's time over one 8-particle SVI step.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/selection_acceptance_pyro.py
"""

from __future__ import annotations

import importlib.util
import pathlib
import time

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from pyro_ext.diagnostics import gradient_report, standard_problem
from pyro_ext.relax import relax
from pyro_ext.selection import run_svi, select_estimator
from relaxed_dists import defaults
from relaxed_dists.selection import DEFAULT_CANDIDATES, candidate_label, spearman

_spec = importlib.util.spec_from_file_location(
    "_selection_problems", pathlib.Path(__file__).with_name("_selection_problems.py")
)
problems = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(problems)
mixtures = problems.mixtures

STEPS, RESELECT = 1500, 250
OUT = pathlib.Path(__file__).with_name("results") / "selection_acceptance_pyro.md"


def fit(guide, steps=STEPS, seed=0, auto=False):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    args = problems.mixture_args()
    svi = SVI(
        problems.mixture_model,
        guide,
        Adam({"lr": 0.05}),
        Trace_ELBO(num_particles=8, vectorize_particles=True, max_plate_nesting=1),
    )
    t0 = time.perf_counter()
    run_svi(svi, steps, *args, progress_bar=False)
    seconds = time.perf_counter() - t0
    q = torch.softmax(pyro.param("q").detach(), -1).double().numpy()
    return mixtures.mean_kl(q, mixtures.fixed_posterior()), seconds


def part_a():
    rows = []
    kl, _ = fit(relax(problems.mixture_guide))
    rows.append(("relax(guide) defaults", kl))
    guide = relax(problems.mixture_guide, estimator="auto", model=problems.mixture_model, reselect_every=RESELECT)
    kl_auto, auto_seconds = fit(guide)
    rows.append(('estimator="auto"', kl_auto))
    for est, hyper in DEFAULT_CANDIDATES:
        rows.append((candidate_label(est, hyper), fit(relax(problems.mixture_guide, estimator=est, **hyper))[0]))
    return rows, guide, auto_seconds


def part_b():
    out = []
    for name in ("linear", "quadratic", "bump"):
        for seed in (0, 1):
            pyro.clear_param_store()
            torch.manual_seed(seed)
            model, guide, args = problems.expectation(name, seed)
            report = select_estimator(model, guide, *args)
            sel = {r.label: r.mse for r in report.results}
            logits, functions = standard_problem(seed)
            torch.manual_seed(100 + seed)
            exact = {
                candidate_label(e, h): gradient_report(e, functions[name], logits, 20_000, **h).mse
                for e, h in DEFAULT_CANDIDATES
            }
            labels = list(exact)
            out.append((name, seed, spearman([sel[k] for k in labels], [exact[k] for k in labels]), report))
    return out


def main() -> str:
    t0 = time.perf_counter()
    rows, guide, auto_seconds = part_a()
    b = part_b()
    # (c): selection cost on the mixture at uniform logits
    pyro.clear_param_store()
    torch.manual_seed(0)
    model, mguide, args = problems.mixture()
    report = select_estimator(model, mguide, *args, num_particles=defaults.AUTO_AVERAGED_GRADIENTS)  # auto's rule
    svi = SVI(
        model,
        relax(mguide, estimator=report.best[0], **report.best[1]),
        Adam({"lr": 0.05}),
        Trace_ELBO(num_particles=8, vectorize_particles=True, max_plate_nesting=1),
    )
    svi.step(*args)
    ts = []
    for _ in range(20):
        s = time.perf_counter()
        svi.step(*args)
        ts.append(time.perf_counter() - s)
    step8 = float(np.median(ts))
    lines = [
        "# Issue 10 acceptance, Pyro (`benchmarks/selection_acceptance_pyro.py`)",
        "",
        "Command: `OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/selection_acceptance_pyro.py` (1 thread).",
        "",
        f"## (a) Mixture (6 points, 4 fixed means), Trace_ELBO(8), Adam 0.05, {STEPS} steps, seed 0",
        "",
        "| relax(guide, ...) | mean exact KL (nats / point) |",
        "| --- | ---: |",
        *[f"| {label} | {kl:.4f} |" for label, kl in rows],
        "",
        f"Bounds: defaults < 0.05: **{'pass' if rows[0][1] < 0.05 else 'FAIL'}**; auto < 0.03: **{'pass' if rows[1][1] < 0.03 else 'FAIL'}**.",
        f"Auto's choices (step, estimator, hyper), reselect every {RESELECT} steps: {guide.selections}; "
        f"its run took {auto_seconds:.1f} s.",
        "",
        "## (b) Spearman, select_estimator's MSE ranking (256 gradients) vs exact-gradient MSE (20,000 samples), 12 candidates",
        "",
        "| f | seed | Spearman | selection's best |",
        "| --- | ---: | ---: | --- |",
        *[f"| {n} | {s} | {rho:.3f} | {rep.results[0].label} |" for n, s, rho, rep in b],
        "",
        f"Mean Spearman {np.mean([x[2] for x in b]):.3f}, min {min(x[2] for x in b):.3f} (bound >= 0.8).",
        "",
        "## (c) Cost of one selection (mixture, uniform logits, 12 candidates x 256 gradients, exact reference)",
        "",
        f"{report.seconds:.2f} s = {report.cost_in_steps:.0f} single-particle gradients of the winner "
        f"({report.best[0]}) = {report.seconds / step8:.0f} SVI steps at 8 vectorised particles ({1e3 * step8:.2f} ms / step).",
        "",
        "Selection table at the start of that run:",
        "",
        report.table(),
        "",
        f"Total script time {time.perf_counter() - t0:.0f} s.",
    ]
    text = "\n".join(lines)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text + "\n")
    print(text)
    return text


if __name__ == "__main__":
    main()
