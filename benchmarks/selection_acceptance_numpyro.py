"""Acceptance of issue 10 (NumPyro): ``relax`` defaults and ``estimator="auto"`` on the fixed-means
mixture, the ranking of ``select_estimator`` against many-sample gradient MSEs, and the cost of a
selection in SVI steps.

(a) Issue 10's mixture (``benchmarks/_mixtures.py``: 6 points, 4 fixed means), guide
    ``OneHotCategorical(logits=q)``, ``Trace_ELBO(num_particles=8)``, ``optax.adam(0.05)``, 1500 steps:
    mean KL per point (nats) from the exact posterior for ``relax(guide)`` (defaults, < 0.05),
    ``relax(guide, estimator="auto", model=model)`` trained by ``run_svi`` (< 0.03) and fixed candidates.
(b) Spearman >= 0.8 between ``select_estimator``'s MSE ranking (default budget: 256 gradients) and a
    many-sample MSE over the 12 default candidates: on ``numpyro_ext.diagnostics.standard_problem``
    (``gradient_report``, 20000 samples, exact gradient) and on the mixture (``select_estimator`` with
    8192 gradients against the exact enumeration of its 4^6 configurations).

    python benchmarks/selection_acceptance_numpyro.py [--quick]

Writes ``benchmarks/results/selection_acceptance_numpyro.md``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI, Trace_ELBO

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import _selection_problems_numpyro as problems  # noqa: E402
from numpyro_ext.diagnostics import gradient_report, standard_problem  # noqa: E402
from numpyro_ext.relax import relax  # noqa: E402
from numpyro_ext.selection import run_svi, select_estimator  # noqa: E402
from relaxed_dists import defaults  # noqa: E402
from relaxed_dists.selection import DEFAULT_CANDIDATES, candidate_label, spearman  # noqa: E402

warnings.filterwarnings("ignore", message="Currently, SVI with")  # the model's one-hot prior; relaxed guide

mixtures = problems.mixtures
X = jnp.asarray(mixtures.FIXED["x"])
FIXED = [
    ("redge", {"t_1": 0.5}),
    ("redge", {"t_1": 0.9}),
    ("redge", {"t_1": 0.2}),
    ("gumbel", {"temperature": 1.0}),
    ("st", {}),
    ("redge_cov", {}),
    ("reindge", {}),
    ("reinmax", {}),
]


def kls(params):
    q = np.asarray(jax.nn.softmax(params["q"], -1), dtype=np.float64)
    p = mixtures.fixed_posterior()
    return mixtures.mean_kl(q, p), mixtures.mean_kl(p, q)


def train(guide, steps, seed, auto=False):
    svi = SVI(problems.mixture_model, guide, optax.adam(0.05), Trace_ELBO(num_particles=8))
    key = jax.random.PRNGKey(seed)
    t0 = time.perf_counter()
    result = run_svi(key, svi, steps, X, progress_bar=False) if auto else svi.run(key, steps, X, progress_bar=False)
    return kls(result.params), time.perf_counter() - t0


standard_model_guide = problems.expectation_model_guide


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("numpyro_ext.selection").setLevel(logging.INFO)  # each selection, as it happens
    steps, seeds = (100, [0]) if args.quick else (1500, [0])
    start = time.time()
    lines = [
        "# Estimator selection acceptance, NumPyro (issue 10)",
        "",
        f"Command: `python benchmarks/selection_acceptance_numpyro.py{' --quick' if args.quick else ''}` "
        f"(CPU, `OMP_NUM_THREADS=1`); seeds {seeds}.",
        "",
        f"## (a) mixture, {steps} steps: mean KL per point (nats), worst seed",
        "",
        f"`relax(guide)` defaults: `{defaults.RELAX_ESTIMATOR}` {defaults.RELAX_HYPER} (< 0.05 required); "
        "`auto`: `relax(guide, estimator='auto', model=model)` trained by `numpyro_ext.selection.run_svi`, "
        "selections at steps 0, 500, 1000 (< 0.03 required). `Trace_ELBO(num_particles=8)`, `optax.adam(0.05)`.",
        "",
        "| `relax(guide, ...)` | KL(q‖exact) | KL(exact‖q) | wall s |",
        "| --- | ---: | ---: | ---: |",
    ]
    rows = [("defaults", lambda: relax(problems.mixture_guide), False)]
    rows.append(
        (
            "auto, reselect_every=500",
            lambda: relax(problems.mixture_guide, estimator="auto", model=problems.mixture_model, reselect_every=500),
            True,
        )
    )
    rows += [
        (candidate_label(e, h), (lambda e=e, h=h: relax(problems.mixture_guide, estimator=e, **h)), False)
        for e, h in FIXED
    ]
    choices = []
    for name, make, auto in rows:
        out = []
        for s in seeds:
            guide = make()
            (kl_q, kl_p), wall = train(guide, steps, s, auto)
            out.append((kl_q, kl_p, wall))
            if auto:
                choices.append((s, guide.selections, guide.selection.seconds, guide.selection.cost_in_steps))
        worst = np.max(np.array(out), 0)
        lines.append(f"| {name} | {worst[0]:.4f} | {worst[1]:.4f} | {worst[2]:.1f} |")
        print(lines[-1], flush=True)
    lines += [
        "",
        "Selections of `auto` (seed, log `(step, estimator, hyper)`, selection seconds, cost in SVI gradients):",
        "",
    ]
    lines += [
        f"- seed {s}: {log}; {sec:.1f} s = {cost:.0f} single-particle SVI gradients of the winner"
        for s, log, sec, cost in choices
    ]

    # (b) rank agreement
    lines += [
        "",
        "## (b) Spearman of select_estimator's MSE ranking against a many-sample MSE (12 default candidates)",
        "",
    ]
    jax.config.update("jax_enable_x64", True)
    logits, functions = standard_problem()
    key = jax.random.PRNGKey(0)
    n_truth = 2000 if args.quick else 20000
    lines += ["| problem | Spearman | select's best | truth's best |", "| --- | ---: | --- | --- |"]
    for fname in ("quadratic", "bump"):
        model, guide = standard_model_guide(functions[fname], logits)
        report = select_estimator(key, model, guide)
        by_label = {r.label: r.mse for r in report.results}
        truth = {
            candidate_label(e, h): gradient_report(key, e, functions[fname], logits, n_truth, **h).mse
            for e, h in DEFAULT_CANDIDATES
        }
        labels = list(truth)
        rho = spearman([by_label[k] for k in labels], [truth[k] for k in labels])
        lines.append(
            f"| standard_problem {fname} | {rho:.3f} | {report.results[0].label} | {min(truth, key=truth.get)} |"
        )
        print(lines[-1], flush=True)
    jax.config.update("jax_enable_x64", False)
    report = select_estimator(key, problems.mixture_model, problems.mixture_guide, X)
    big = select_estimator(
        jax.random.PRNGKey(1),
        problems.mixture_model,
        problems.mixture_guide,
        X,
        num_samples=2048 if args.quick else 8192,
        num_groups=64,
    )
    a = {r.label: r.mse for r in report.results}
    b = {r.label: r.mse for r in big.results}
    rho = spearman([a[k] for k in b], [b[k] for k in b])
    lines.append(f"| mixture (q = 0) | {rho:.3f} | {report.results[0].label} | {big.results[0].label} |")
    print(lines[-1], flush=True)
    lines += [
        "",
        "## Cost of one selection (mixture, q = 0, 12 candidates, 256 gradients each, exact reference)",
        "",
        f"{report.seconds:.1f} s = {report.cost_in_steps:.0f} single-particle SVI gradients of the winner "
        f"({1e3 * report.step_seconds:.3f} ms each, jitted, after compilation); almost all of it is XLA compilation "
        "of one program per candidate.",
        "",
        report.table(),
        "",
        f"Wall time: {time.time() - start:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    if not args.quick:
        (ROOT / "benchmarks" / "results" / "selection_acceptance_numpyro.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
