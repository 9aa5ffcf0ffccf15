r"""Polynomial programming, the toy of the REDGE and ReinMax papers: every torch estimator
minimising ``E[(1/L) sum_i |X_i - 0.45|^p]`` over ``L`` binary variables.

    python benchmarks/polynomial.py --threads 1 --sweep     # the issue's settings: about 20 min on one CPU thread
    python benchmarks/polynomial.py --threads 1 --steps 300 --sweep --sweep-seeds 2 --sweep-L 32   # results/, 8.5 min
    python benchmarks/polynomial.py --quick --out /tmp/poly.md

Problem: ``X_i ~ Bernoulli(pi_i)``, written as 2-class one-hots with ``X_i = onehot_i[1]``
and ``pi_i = softmax(logits_i)[1]``; logits of shape ``(L, 2)`` start at zero. With
``f(X) = (1/L) sum_i |X_i - 0.45|^p`` the exact objective factorises
(:func:`exact_objective`):

.. math::

    E_\pi[f] = \frac{1}{L} \sum_i \left[\pi_i\, 0.55^p + (1 - \pi_i)\, 0.45^p\right],

minimised at ``0.45^p`` (every ``X_i = 0``); the gap to it is ``mean_i(pi_i) (0.55^p - 0.45^p)``.
Training: Adam (lr 0.05) on the logits, ``batch`` samples per step, the loss the batch mean
of ``f`` on the estimator's own hard samples (REINFORCE: the score-function surrogate with a
leave-one-out baseline over the batch). Two metrics per run:

- own-sample loss: the batch mean of ``f`` on the estimator's samples, averaged over the
  final 50 steps (biased hard samples make it differ from the next one);
- exact objective ``E_pi[f]`` under the final logits, and its gap to the optimum ``0.45^p``.

Vectorised: the powers ``p`` and the seeds are leading batch dimensions of one logits leaf
``(P, S, L, 2)``; one backward of the sum of the per-run losses gives each run its own
gradient, and Adam is coordinate-wise, so the runs are independent. The seeds are
independent replicates drawn from one stream, ``torch.manual_seed(SEED)`` before every
estimator (common random numbers across rows). Samples through ``pyro_ext.functional``.

``--sweep`` adds the hyperparameter sweep (exact-objective gap only): REDGE ``t_1 x n_steps``,
Gumbel-ST and ReinMax temperatures. Writes the markdown to ``--out`` and, beside it with a
``.png`` suffix, the exact-objective gap against the step, one panel per ``p`` (log y).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

from pyro_ext.functional import SAMPLERS

ROOT = Path(__file__).resolve().parents[1]
DTYPE = torch.float32
TARGET = 0.45
SEED = 0
LR = 0.05
TAIL = 50  # own-sample loss: mean over the final TAIL steps
DEFAULT_TEMPERATURE = 1.0
DEFAULT_REDGE = {"n_steps": 5, "t_1": 0.5}

# (row label, sampler key or "reinforce", params)
ESTIMATORS = [
    ("reinforce (LOO)", "reinforce", {}),
    ("st", "st", {}),
    (f"gumbel tau={DEFAULT_TEMPERATURE}", "gumbel", {"tau": DEFAULT_TEMPERATURE}),
    (f"reinmax tau={DEFAULT_TEMPERATURE}", "reinmax", {"tau": DEFAULT_TEMPERATURE}),
    ("redge n=5 t_1=0.5", "redge", DEFAULT_REDGE),
    ("redge_cov n=5 t_1=0.5", "redge_cov", DEFAULT_REDGE),
    ("reindge n=5 t_1=0.5", "reindge", DEFAULT_REDGE),
]
SWEEP_T_1S, SWEEP_N_STEPS = (0.1, 0.3, 0.5, 0.7, 0.9), (2, 3, 5, 9)
SWEEP_GUMBEL_TAUS, SWEEP_REINMAX_TAUS = (0.1, 0.3, 0.5, 1.0, 2.0), (0.5, 1.0, 2.0)


# --- the problem ----------------------------------------------------------------------


def objective(x: torch.Tensor, powers: torch.Tensor) -> torch.Tensor:
    """``f(X) = (1/L) sum_i |X_i - 0.45|^p`` of one-hots ``x`` ``(P, ..., L, 2)``, ``powers`` ``(P,)``: shape ``(P, ...)``."""
    p = powers.reshape(-1, *[1] * (x.dim() - 2))
    return ((x[..., 1] - TARGET).abs() ** p).mean(dim=-1)


def exact_objective(logits: torch.Tensor, powers: torch.Tensor) -> torch.Tensor:
    """``E_pi[f] = (1/L) sum_i [pi_i 0.55^p + (1 - pi_i) 0.45^p]``, ``logits`` ``(P, ..., L, 2)``: shape ``(P, ...)``."""
    p = powers.reshape(-1, *[1] * (logits.dim() - 2))
    pi = torch.softmax(logits, dim=-1)[..., 1]
    return (pi * (1.0 - TARGET) ** p + (1.0 - pi) * TARGET**p).mean(dim=-1)


def optimum(powers: torch.Tensor) -> torch.Tensor:
    """``0.45^p``: every ``X_i = 0``."""
    return TARGET**powers


def reinforce_loss(logits: torch.Tensor, batch: int, powers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(surrogate, f values)``: ``mean_b (f(X_b) - b_b) log p(X_b)`` with ``b_b`` the leave-one-out mean of ``f``.

    ``logits`` is ``(P, S, L, 2)``; the ``batch`` samples go in a new dimension after ``S``."""
    log_probs = torch.log_softmax(logits, dim=-1)[:, :, None].expand(-1, -1, batch, -1, -1)
    ones = torch.bernoulli(log_probs[..., 1].detach().exp())  # X_i = 1 w.p. pi_i; faster than OneHotCategorical
    x = torch.stack([1.0 - ones, ones], dim=-1)
    values = objective(x, powers)  # (P, S, B)
    baseline = (values.sum(dim=-1, keepdim=True) - values) / (batch - 1)
    log_p = (x * log_probs).sum(dim=(-2, -1))
    return ((values - baseline) * log_p).mean(dim=-1), values


def pathwise_loss(logits: torch.Tensor, batch: int, powers: torch.Tensor, key: str, params: dict):
    """``(loss, f values)``: the batch mean of ``f`` on ``SAMPLERS[key]`` samples (its gradient is the estimator's)."""
    x = SAMPLERS[key](logits[:, :, None].expand(-1, -1, batch, -1, -1), **params)
    values = objective(x, powers)
    return values.mean(dim=-1), values


def train(key: str, params: dict, powers, seeds: int, batch: int, n_vars: int, steps: int, seed: int = SEED) -> dict:
    """Adam from zero logits, all ``powers`` x ``seeds`` runs at once.

    Returns ``own`` ``(P, S)`` (final-``TAIL``-step mean of the own-sample loss), ``exact``
    ``(P, S)`` (final ``E_pi[f]``) and ``gap_curve`` ``(steps + 1, P, S)`` (exact gap per step)."""
    torch.manual_seed(seed)
    logits = torch.zeros(len(powers), seeds, n_vars, 2, dtype=DTYPE, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=LR)
    best = optimum(powers)[:, None]
    own, gaps = [], []
    for _ in range(steps):
        with torch.no_grad():
            gaps.append(exact_objective(logits, powers) - best)
        if key == "reinforce":
            loss, values = reinforce_loss(logits, batch, powers)
        else:
            loss, values = pathwise_loss(logits, batch, powers, key, params)
        optimiser.zero_grad()
        loss.sum().backward()
        optimiser.step()
        own.append(values.detach().mean(dim=-1))
    with torch.no_grad():
        exact = exact_objective(logits, powers)
    gaps.append(exact - best)
    return {"own": torch.stack(own[-TAIL:]).mean(dim=0), "exact": exact, "gap_curve": torch.stack(gaps)}


# --- report ------------------------------------------------------------------------------


def mean_sd(values: torch.Tensor, fmt: str = ".5f") -> str:
    """``mean ± sd`` over the seeds (sd with Bessel's correction; ``± 0`` with one seed)."""
    sd = values.std().item() if values.numel() > 1 else 0.0
    return f"{values.mean().item():{fmt}} ± {sd:.1g}"


def main_table(results: dict, powers: torch.Tensor, j: int) -> str:
    p, best = powers[j].item(), optimum(powers)[j].item()
    lines = [
        f"### p = {p:g}  (optimum 0.45^p = {best:.5f})",
        "",
        "| estimator | own-sample loss | exact E_pi[f] | gap to optimum |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {mean_sd(r['own'][j])} | {mean_sd(r['exact'][j])} | {mean_sd(r['exact'][j] - best, '.2e')} |"
        )
    return "\n".join(lines)


def gap_cell(r: dict, j: int) -> str:
    """Mean over the seeds of the final exact-objective gap."""
    return f"{r['gap_curve'][-1, j].mean().item():.2e}"


def sweep_markdown(sweep: dict, powers: torch.Tensor) -> str:
    """One REDGE ``n_steps x t_1`` grid per ``p``, then the temperature rows, cells the mean exact-objective gap."""
    parts = ["## Hyperparameter sweep: gap of the exact objective to the optimum (mean over seeds)"]
    for j, p in enumerate(powers.tolist()):
        lines = [f"### p = {p:g}", "", "| REDGE n_steps | " + " | ".join(f"t_1={t}" for t in SWEEP_T_1S) + " |"]
        lines.append("| ---: |" + " ---: |" * len(SWEEP_T_1S))
        for n in SWEEP_N_STEPS:
            lines.append(
                f"| {n} | " + " | ".join(gap_cell(sweep[f"redge n={n} t_1={t}"], j) for t in SWEEP_T_1S) + " |"
            )
        lines += ["", "| temperature | " + " | ".join(f"tau={t}" for t in SWEEP_GUMBEL_TAUS) + " |"]
        lines.append("| --- |" + " ---: |" * len(SWEEP_GUMBEL_TAUS))
        lines.append(
            "| gumbel | " + " | ".join(gap_cell(sweep[f"gumbel tau={t}"], j) for t in SWEEP_GUMBEL_TAUS) + " |"
        )
        lines.append(
            "| reinmax | "
            + " | ".join(
                gap_cell(sweep[f"reinmax tau={t}"], j) if t in SWEEP_REINMAX_TAUS else "-" for t in SWEEP_GUMBEL_TAUS
            )
            + " |"
        )
        lines.append("")
        lines.append(
            "Best and worst of each family, against ST and REINFORCE at the same settings: " + best_of(sweep, j)
        )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def best_of(sweep: dict, j: int) -> str:
    cells = []
    for family in ("redge", "gumbel", "reinmax"):
        rows = {k: v for k, v in sweep.items() if k.startswith(family + " ")}
        worst = max(rows, key=lambda k: rows[k]["gap_curve"][-1, j].mean().item())
        best = min(rows, key=lambda k: rows[k]["gap_curve"][-1, j].mean().item())
        cells.append(f"{family}: best {best} {gap_cell(rows[best], j)}, worst {worst} {gap_cell(rows[worst], j)}")
    for label in ("st", "reinforce (LOO)"):
        cells.append(f"{label}: {gap_cell(sweep[label], j)}")
    return "; ".join(cells) + "."


def plot(results: dict, powers: torch.Tensor, path: Path) -> None:
    """Exact-objective gap (mean over seeds) against the step, one panel per ``p``, log y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(powers), figsize=(4.5 * len(powers), 3.8), squeeze=False)
    for j, (ax, p) in enumerate(zip(axes[0], powers.tolist())):
        for label, r in results.items():
            ax.plot(r["gap_curve"][:, j].mean(dim=-1).clamp_min(1e-12).numpy(), label=label)
        ax.set(title=f"p = {p:g}", xlabel="step", ylabel="E_pi[f] - 0.45^p", yscale="log")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run for the test suite: 20 steps, 1 seed, L = 16")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps (default 1000, quick 20)")
    parser.add_argument("--seeds", type=int, default=None, help="independent runs per estimator (default 3, quick 1)")
    parser.add_argument("--batch", type=int, default=256, help="samples per step")
    parser.add_argument("--L", type=int, default=None, help="binary variables (default 128, quick 16)")
    parser.add_argument("--powers", type=float, nargs="+", default=[1.5, 2.0, 3.0], help="exponents p")
    parser.add_argument("--sweep", action="store_true", help="also sweep REDGE (t_1, n_steps) and the temperatures")
    parser.add_argument("--sweep-seeds", type=int, default=None, help="seeds per sweep cell (default: --seeds)")
    parser.add_argument("--sweep-L", type=int, default=None, help="binary variables in the sweep (default: --L)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "polynomial.md")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def sweep_estimators():
    return (
        [
            (f"redge n={n} t_1={t}", "redge", {"n_steps": n, "t_1": t})
            for n, t in itertools.product(SWEEP_N_STEPS, SWEEP_T_1S)
        ]
        + [(f"gumbel tau={t}", "gumbel", {"tau": t}) for t in SWEEP_GUMBEL_TAUS]
        + [(f"reinmax tau={t}", "reinmax", {"tau": t}) for t in SWEEP_REINMAX_TAUS]
        + [("st", "st", {}), ("reinforce (LOO)", "reinforce", {})]  # references at the sweep's own settings
    )


def main(argv=None) -> str:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (20 if args.quick else 1000)
    seeds = args.seeds or (1 if args.quick else 3)
    n_vars = args.L or (16 if args.quick else 128)
    powers = torch.tensor(args.powers, dtype=DTYPE)
    run = lambda key, params: train(key, params, powers, seeds, args.batch, n_vars, steps)  # noqa: E731
    start = time.perf_counter()
    results = {label: run(key, params) for label, key, params in ESTIMATORS}
    main_elapsed = time.perf_counter() - start
    sweep_seeds, sweep_vars = args.sweep_seeds or seeds, args.sweep_L or n_vars
    sweep = None
    if args.sweep:
        sweep = {
            label: train(key, params, powers, sweep_seeds, args.batch, sweep_vars, steps)
            for label, key, params in sweep_estimators()
        }
    elapsed = time.perf_counter() - start

    parts = [
        "# Polynomial programming: min E[(1/L) sum_i |X_i - 0.45|^p] over binary X (torch, float32)",
        f"L = {n_vars}, batch = {args.batch}, {steps} Adam steps (lr {LR}) from zero logits, {seeds} seed(s) "
        f"(independent replicates, seed {SEED}). Defaults: Gumbel-ST and ReinMax temperature {DEFAULT_TEMPERATURE}; "
        "REDGE, REDGE-cov, REINDGE n_steps 5, t_1 0.5; REINFORCE with a leave-one-out baseline over the batch. "
        f"own-sample loss: batch mean of f on the estimator's own samples, averaged over the final {TAIL} steps; "
        "exact E_pi[f] = (1/L) sum_i [pi_i 0.55^p + (1 - pi_i) 0.45^p] under the final logits; "
        "gap = exact - 0.45^p. Cells: mean ± sd over seeds.",
        *(main_table(results, powers, j) for j in range(len(powers))),
    ]
    if sweep is not None:
        parts.append(
            f"Sweep settings: L = {sweep_vars}, {sweep_seeds} seed(s), batch {args.batch}, {steps} steps "
            "(smaller than the main table's to fit the CPU budget; compare sweep cells with each other, not with the main table)."
        )
        parts.append(sweep_markdown(sweep, powers))
    parts.append(
        f"Runtime: {main_elapsed:.1f} s for the main table, {elapsed:.1f} s in all, on {torch.get_num_threads()} CPU thread(s)."
    )
    text = "\n\n".join(parts)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    plot(results, powers, args.out.with_suffix(".png"))
    return text


if __name__ == "__main__":
    main()
