r"""Gradient quality of every torch estimator against the exact gradient, on a problem small
enough to enumerate; and the law of REDGE's hard samples against ``softmax(logits)``.

    python benchmarks/gradient_quality.py --threads 1     # full run, about 1.5 min on one CPU thread
    python benchmarks/gradient_quality.py --quick --out /tmp/gq.md

Problem: ``L = 3`` independent categorical variables with ``K = 4`` classes,
``X_l ~ Cat(softmax(logits_l))`` as one-hots, ``X`` of shape ``(L, K)``. The exact gradient
of ``E[f(X)]`` w.r.t. ``logits`` is computed by enumerating the ``K^L = 64`` configurations
(:func:`pyro_ext.diagnostics.exact_gradient`; the per-sample gradients, statistics, noise levels,
tables and plot are those of :mod:`pyro_ext.diagnostics` and :mod:`relaxed_dists.diagnostics`). Each estimator is run on ``M`` independent samples at once: the
logits are expanded to a leaf of shape ``(M, L, K)`` and one backward of ``sum_i f(X_i)``
gives the ``M`` per-sample gradients (sample ``i`` depends on slice ``i`` only). With
``g_i`` those gradients, ``g`` the exact one and ``mean = (1/M) sum_i g_i``:

- ``bias = ||mean - g|| / ||g||`` (relative, Euclidean over all ``L K`` coordinates);
- ``se = sqrt(var / M) / ||g||``: the root-mean-square Monte Carlo error of ``mean`` on the
  same scale, so ``bias`` below a few ``se`` is not distinguishable from zero;
- ``var = (1/M) sum_i ||g_i - mean||^2`` (trace of the covariance, one sample);
- ``mse = (1/M) sum_i ||g_i - g||^2 = var + ||mean - g||^2`` (one sample);
- ``cos = <mean, g> / (||mean|| ||g||)``.

REINFORCE (score function) with a leave-one-out baseline is the unbiased reference row:
``g_i = (f(X_i) - b_i) grad log p(X_i)``, ``b_i`` the mean of ``f`` over the other ``M - 1``
samples of the batch (so its ``var`` is, up to ``O(1/M)``, that of ``(f - E f) grad log p``).

Samples are drawn through ``pyro_ext.functional`` (each sampler draws its own noise), in
float64, with ``torch.manual_seed(seed)`` before every row (common random numbers across rows).

TV table: ``K = 10``, fixed logits; for each ``(n_steps, t_1)``, the law of REDGE's hard
sample is ``q = E_eps[soft]`` (``hard ~ Cat(soft)`` given the chain's noise). The kernel
``pyro_ext.estimators.redge`` is called with noise drawn as ``functional.redge`` draws it, so
that one call gives both its ``hard`` and its ``soft``. Two estimates
of ``TV(q, softmax(logits))`` from ``N`` draws: from the counts of the hard samples, and
Rao-Blackwellised from the mean of ``soft`` (much less noisy). Their noise levels are the
expected TV of an unbiased estimate around the truth, by the normal approximation
``E|N(0, s^2)| = s sqrt(2 / pi)``: ``0.5 sum_k sqrt(2 p_k (1 - p_k) / (pi N))`` for counts,
``0.5 sum_k sqrt(2 Var(soft_k) / (pi N))`` for the mean of ``soft``. The TV of a fresh
categorical sample of size ``N`` drawn from ``softmax(logits)`` itself is printed too.

Writes the markdown to ``--out`` and, beside it with a ``.png`` suffix, a plot of REDGE's
bias against ``t_1`` per ``n_steps`` (error bars ``+- se``) with ST, Gumbel and ReinMax as
horizontal lines.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

from pyro_ext import diagnostics, estimators as kernels
from pyro_ext._ops import sample_gumbel
from relaxed_dists import diagnostics as core
from relaxed_dists.diagnostics import REINFORCE, GradientReport, plot_sweep

ROOT = Path(__file__).resolve().parents[1]
DTYPE = torch.float64
L, K = 3, 4
TV_K = 10
SEED = 0

# (row label, estimator, hyperparameters by relax's names): REINFORCE is handled apart (it is not a reparametrisation).
ESTIMATORS = (
    [
        ("st", "st", {}),
        ("gumbel tau=0.5", "gumbel", {"temperature": 0.5}),
        ("gumbel tau=1.0", "gumbel", {"temperature": 1.0}),
    ]
    + [("reinmax tau=1.0", "reinmax", {"temperature": 1.0})]
    + [
        (f"redge n={n} t_1={t}", "redge", {"n_steps": n, "t_1": t})
        for n, t in itertools.product((3, 5, 9), (0.1, 0.3, 0.5, 0.9, 1.0))
    ]
    + [("redge_cov n=5 t_1=0.5", "redge_cov", {"n_steps": 5, "t_1": 0.5})]
    + [("reindge n=5 t_1=0.5", "reindge", {"n_steps": 5, "t_1": 0.5})]
)
QUICK_ESTIMATORS = [
    row for row in ESTIMATORS if row[1] != "redge" or (row[2]["n_steps"] == 3 and row[2]["t_1"] in (0.1, 0.9))
]
REFERENCE_LINES = (
    ("st", "k", "--"),
    ("gumbel tau=0.5", "C4", ":"),
    ("gumbel tau=1.0", "C4", "--"),
    ("reinmax tau=1.0", "C5", "-."),
)
PLOT_FLOOR = 1e-5
TV_N_STEPS, TV_T_1S = (2, 3, 5, 9, 17), (0.1, 0.3, 0.5, 0.9, 1.0)


# --- the problem ----------------------------------------------------------------------


def problem_logits(seed: int = SEED) -> torch.Tensor:
    """Fixed ``(L, K)`` logits, standard normal."""
    return torch.randn(L, K, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


def smooth_functions(seed: int = SEED) -> dict:
    """Three smooth ``f`` of one-hots ``X`` of shape ``(..., L, K)`` returning ``(...)``, with fixed coefficients.

    - ``linear``: ``<c, X>``;
    - ``quadratic``: ``sum_{l, m} X_l^T A_lm X_m`` over all pairs, ``l = m`` included (the
      ``l != m`` part is multilinear in independent variables, where straight-through is
      unbiased; the ``l = m`` blocks are not);
    - ``bump``: ``exp(-2 sum_l (X_l . v - 0.45)^2)`` (not a polynomial; the squares are
      ReinMax's toy objective).
    """
    gen = torch.Generator().manual_seed(seed + 1)
    c = torch.randn(L, K, generator=gen, dtype=DTYPE)
    a = torch.randn(L, L, K, K, generator=gen, dtype=DTYPE)
    v = torch.rand(K, generator=gen, dtype=DTYPE)
    return {
        "linear": lambda x: (x * c).sum(dim=(-2, -1)),
        "quadratic": lambda x: torch.einsum("...lk,lmkj,...mj->...", x, a, x),
        "bump": lambda x: torch.exp(-2.0 * ((x @ v - 0.45) ** 2).sum(dim=-1)),
    }


exact_gradient = diagnostics.exact_gradient


# --- per-sample gradients (pyro_ext.diagnostics) -----------------------------------------


def estimator_gradients(f, logits: torch.Tensor, key: str, params: dict, m: int) -> torch.Tensor:
    """``m`` independent per-sample gradients ``(m, L, K)`` of ``f(X)`` for ``X = SAMPLERS[key](logits, **params)``."""
    return diagnostics.estimator_gradients(key, f, logits, m, **params)


def reinforce_gradients(f, logits: torch.Tensor, m: int) -> torch.Tensor:
    """``m`` per-sample score-function gradients ``(f(X_i) - b_i) grad log p(X_i)``, ``b_i`` the leave-one-out mean."""
    return diagnostics.estimator_gradients(REINFORCE, f, logits, m)


def report(grads: torch.Tensor, exact: torch.Tensor, key: str = "", params: dict | None = None) -> GradientReport:
    return core.summarise(grads.numpy(), exact.numpy(), key, params)


def summarise(grads: torch.Tensor, exact: torch.Tensor) -> dict:
    """``bias``, ``se``, ``var``, ``mse``, ``cos`` of per-sample gradients ``(M, L, K)`` against ``exact``."""
    r = report(grads, exact)
    return {"bias": r.bias, "se": r.se, "var": r.var, "mse": r.mse, "cos": r.cos}


def gradient_table(f, logits: torch.Tensor, estimators, m: int, seed: int = SEED) -> dict:
    """``row label -> GradientReport`` for REINFORCE-LOO and each ``(label, key, params)`` of ``estimators``."""
    exact = exact_gradient(f, logits)
    torch.manual_seed(seed)
    rows = {"reinforce (LOO)": report(reinforce_gradients(f, logits, m), exact, REINFORCE)}
    for label, key, params in estimators:
        torch.manual_seed(seed)
        rows[label] = report(estimator_gradients(f, logits, key, params, m), exact, key, params)
    return rows


# --- law of REDGE's hard samples -------------------------------------------------------


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return core.total_variation(p.numpy(), q.numpy())


def redge_law_tv(logits: torch.Tensor, n_steps: int, t_1: float, n: int, seed: int = SEED) -> dict:
    """TV from ``softmax(logits)`` (shape ``(K,)``) of the law of REDGE's hard sample, from ``n`` draws."""
    torch.manual_seed(seed)
    batch = logits.expand(n, -1)
    eps, gumbels = torch.randn_like(batch), sample_gumbel(batch.shape, batch.dtype, batch.device)  # as functional.redge
    with torch.no_grad():
        hard, soft = kernels.redge(batch, n_steps, t_1, eps, gumbels)  # the kernel's own (hard, soft)
    p = torch.softmax(logits, dim=-1)
    return {
        "hard": total_variation(hard.mean(dim=0), p),
        "soft": total_variation(soft.mean(dim=0), p),
        "soft_noise": core.mean_tv_noise(soft.var(dim=0).numpy(), n),
    }


def categorical_noise(logits: torch.Tensor, n: int, seed: int = SEED) -> tuple[float, float]:
    """``(expected TV of n counts by the normal approximation, TV of one fresh sample of n draws)``."""
    p = torch.softmax(logits, dim=-1)
    torch.manual_seed(seed + 1)
    fresh = torch.distributions.OneHotCategorical(probs=p).sample((n,)).mean(dim=0)
    return core.categorical_tv_noise(p.numpy(), n), total_variation(fresh, p)


# --- report ------------------------------------------------------------------------------


def gradient_markdown(name: str, exact: torch.Tensor, rows: dict) -> str:
    return core.gradient_markdown(rows, f"### f = {name}  (||exact gradient|| = {exact.norm().item():.4g})")


def tv_markdown(tv: dict, n_steps_list, t_1s, cell, title: str) -> str:
    lines = [
        title,
        "",
        "| n_steps | " + " | ".join(f"t_1={t}" for t in t_1s) + " |",
        "| ---: |" + " ---: |" * len(t_1s),
    ]
    for n in n_steps_list:
        lines.append(f"| {n} | " + " | ".join(cell(tv[n, t]) for t in t_1s) + " |")
    return "\n".join(lines)


def plot(tables: dict, path: Path, n_steps_list, t_1s) -> None:
    """Relative bias of REDGE against ``t_1``, one panel per ``f``, error bars ``+- se``; ST, Gumbel and
    ReinMax as horizontal lines. Values below ``PLOT_FLOOR`` (exact up to rounding) sit on the bottom edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(4.5 * len(tables), 3.8), squeeze=False)
    for ax, (name, rows) in zip(axes[0], tables.items()):
        redge_rows = [
            rows[f"redge n={n} t_1={t}"] for n in n_steps_list for t in t_1s if f"redge n={n} t_1={t}" in rows
        ]
        plot_sweep(redge_rows, "t_1", by="n_steps", ax=ax, floor=PLOT_FLOOR)
        for label, color, style in REFERENCE_LINES:
            if label in rows:
                ax.axhline(max(rows[label].bias, PLOT_FLOOR), color=color, ls=style, label=label)
        ax.set(title=f"f = {name}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny M and N, few configurations (for the test suite)")
    parser.add_argument(
        "--samples", type=int, default=None, help="M, gradient samples per row (default 200000, quick 500)"
    )
    parser.add_argument(
        "--tv-samples", type=int, default=None, help="N, REDGE draws per TV cell (default 400000, quick 2000)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gradient_quality.md")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    m = args.samples or (500 if args.quick else 200_000)
    n = args.tv_samples or (2_000 if args.quick else 400_000)
    estimators = QUICK_ESTIMATORS if args.quick else ESTIMATORS
    tv_n_steps, tv_t_1s = ((2, 5), (0.1, 0.9)) if args.quick else (TV_N_STEPS, TV_T_1S)
    start = time.perf_counter()

    logits, functions = problem_logits(), smooth_functions()
    tables = {name: gradient_table(f, logits, estimators, m) for name, f in functions.items()}
    tv_logits = torch.randn(TV_K, generator=torch.Generator().manual_seed(SEED + 2), dtype=DTYPE)
    tv = {(s, t): redge_law_tv(tv_logits, s, t, n) for s in tv_n_steps for t in tv_t_1s}
    expected_noise, fresh_tv = categorical_noise(tv_logits, n)
    elapsed = time.perf_counter() - start

    text = "\n\n".join(
        [
            "# Gradient quality against the exact gradient (torch, float64)",
            f"L = {L} variables, K = {K} classes, logits ~ N(0, 1) (seed {SEED}), M = {m} samples per row, "
            f"seed {SEED} before every row. bias: ||mean - exact|| / ||exact||; se: sqrt(var / M) / ||exact|| "
            "(Monte Carlo error of the mean on the same scale); var: trace of the one-sample covariance; "
            "MSE = var + ||mean - exact||^2 (one sample); cos: cosine(mean, exact). "
            "Functions: linear <c, X>; quadratic sum_{l,m} X_l^T A_lm X_m (all pairs, l = m included); bump exp(-2 sum_l (X_l . v - 0.45)^2).",
            *(gradient_markdown(name, exact_gradient(f, logits), tables[name]) for name, f in functions.items()),
            "## Law of REDGE's hard samples against softmax(logits)",
            f"K = {TV_K}, logits ~ N(0, 1) (seed {SEED + 2}), N = {n} draws per cell. Noise level of the counts "
            f"(expected TV of N exact categorical draws, normal approximation 0.5 sum_k sqrt(2 p_k (1 - p_k) / (pi N))): "
            f"{expected_noise:.4f}; TV of one fresh categorical sample of size N: {fresh_tv:.4f}. "
            "The Rao-Blackwellised table gives each cell's own noise level in brackets: "
            "0.5 sum_k sqrt(2 Var(soft_k) / (pi N)).",
            tv_markdown(
                tv,
                tv_n_steps,
                tv_t_1s,
                lambda c: f"{c['hard']:.4f}",
                "### TV(law of hard samples, softmax(logits)), from counts",
            ),
            tv_markdown(
                tv,
                tv_n_steps,
                tv_t_1s,
                lambda c: f"{c['soft']:.4f} ({c['soft_noise']:.1g})",
                "### TV(E[soft], softmax(logits)), Rao-Blackwellised (noise level)",
            ),
            f"Runtime: {elapsed:.1f} s on {torch.get_num_threads()} CPU thread(s).",
        ]
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    plot(tables, args.out.with_suffix(".png"), (3, 5, 9), TV_T_1S)
    return text


if __name__ == "__main__":
    main()
