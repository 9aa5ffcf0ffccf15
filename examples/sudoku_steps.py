"""Sudoku quality against the number of denoiser calls: RDM against vanilla discrete diffusion,
absorbing against multinomial noise, adaptive against random routing (torch).

The RDM paper (Zheng et al. 2023, arXiv 2302.05737) makes three claims, taken here as
hypotheses on conditional generation (the clues of a held-out puzzle are pinned, the blanks
are generated):

1. vanilla multinomial diffusion degenerates (its quality plateaus, or falls, with more steps);
2. RDM's reparameterised route-and-denoise sampler fixes that, for both kinds of noise;
3. adaptive routing (denoise the most confident positions first) beats random routing.

Two denoisers of the same architecture (``examples/sudoku.py``'s ``SudokuDenoiser``), each
trained by ``examples/sudoku_train.py`` with the same budget and seed on its own forward
process: ``MaskedDiffusion`` (absorbing; the shipped ``sudoku_denoiser.pt``) and
``MultinomialDiffusion`` (``--noise multinomial --conditional``;
``sudoku_denoiser_multinomial_conditional.pt``: with multinomial noise a clue looks like a noisy
cell, so that denoiser is told the clue cells by one more embedding; the unconditional first try,
``sudoku_denoiser_multinomial.pt``, gave no valid grid unguided:
``examples/results/sudoku_steps_unconditional.md``).
Samplers, at equal denoiser calls ``n_steps``:

- ``vanilla absorbing`` / ``vanilla multinomial``: D3PM-style ancestral sampling
  (``pyro_ext.diffusion.ancestral_sample``, ``decode="sample"``: the posterior ``p(x_s | x_t)``
  with ``x_0`` marginalised under the denoiser);
- ``RDM absorbing`` / ``RDM multinomial``, each with ``adaptive`` and ``random`` routing
  (``pyro_ext.diffusion.sample``, argmax decoding, linear schedule, RDM's defaults).

Then guidance with multinomial noise: ``RDM multinomial, adaptive`` with and without REDGE
guidance (``examples/sudoku.py``'s reward and CLI knobs) at 20 calls, paired on the same
puzzles and seeds (exact McNemar, and a 95% interval on the paired difference).

Valid: every clue kept and no digit repeated in any row, column or box (``sudoku.is_valid``).
Intervals: Wilson 95% over puzzles x seeds.

    python examples/sudoku_steps.py                 # 200 puzzles x 3 seeds (minutes on 1 thread)
    python examples/sudoku_steps.py --quick         # seconds (the test suite)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pyro_ext.diffusion import ancestral_sample, sample

try:
    from examples import sudoku
except ImportError:  # run as a script: examples/ itself is on sys.path
    import sudoku

#: method -> (sampler, noise, routing); vanilla samplers have no routing.
METHODS = {
    "vanilla absorbing": ("vanilla", "absorbing", None),
    "vanilla multinomial": ("vanilla", "multinomial", None),
    "RDM absorbing, random": ("rdm", "absorbing", "random"),
    "RDM absorbing, adaptive": ("rdm", "absorbing", "adaptive"),
    "RDM multinomial, random": ("rdm", "multinomial", "random"),
    "RDM multinomial, adaptive": ("rdm", "multinomial", "adaptive"),
}
GUIDED = "RDM multinomial, adaptive + redge"


def solve(denoiser, puzzle: torch.Tensor, method: str, n_steps: int, seed: int, guidance=None) -> dict:
    """Every puzzle once: ``valid`` (bool per puzzle), ``violations``, ``seconds``."""
    kind, noise, routing = METHODS[method]
    torch.manual_seed(seed)  # guidance's estimator noise (torch's global generator)
    generator = torch.Generator().manual_seed(seed)  # noise tokens, routing order, ancestral draws
    denoiser = sudoku.with_clues(denoiser, puzzle)  # a conditional denoiser is told the clue cells
    start = time.perf_counter()
    common = dict(n_classes=sudoku.N_DIGITS, n_steps=n_steps, noise=noise, guidance=guidance, generator=generator)
    if kind == "vanilla":
        solution = ancestral_sample(denoiser, puzzle, decode="sample", **common)
    else:
        solution = sample(denoiser, puzzle, routing=routing, **common)
    seconds = time.perf_counter() - start
    solution, puzzle = solution.numpy(), puzzle.numpy()
    return {"valid": sudoku.is_valid(solution, puzzle), "violations": sudoku.violations(solution), "seconds": seconds}


def rate(results: dict, key, seeds) -> tuple[float, tuple[float, float], float]:
    """``(valid rate, Wilson 95% interval, mean violations)`` pooled over ``seeds``."""
    valid = np.concatenate([results[(*key, s)]["valid"] for s in seeds])
    violations = np.mean([results[(*key, s)]["violations"].mean() for s in seeds])
    return valid.mean(), sudoku.wilson(int(valid.sum()), len(valid)), violations


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """``(a - b, lower, upper)``: the difference of two paired rates with its 95% Wald interval
    for paired proportions, ``se = sqrt(n_ab + n_ba - (n_ab - n_ba)^2 / n) / n``."""
    n = len(a)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    diff = (only_a - only_b) / n
    se = math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    return diff, diff - 1.96 * se, diff + 1.96 * se


def report(results: dict, args, n_puzzles: int, guided: dict | None) -> str:
    steps, seeds = args.steps, args.seeds
    lines = [
        "# Sudoku: valid solutions against denoiser calls, RDM against vanilla diffusion (torch)",
        "",
        f"{n_puzzles} held-out puzzles (seed {sudoku.EVAL_SEED}) with {args.n_blanks} blanks; seeds {seeds}. "
        "Each cell: valid % [Wilson 95%] over puzzles x seeds (the seeds share the puzzles, so the "
        "interval is a little narrow for between-puzzle variation). Denoisers: the shipped absorbing "
        f"one (`{args.weights.name}`) and the multinomial one (`{args.weights_multinomial.name}`"
        + (", conditional: told the clue cells by one more embedding" if args.conditional else "")
        + "), same "
        'architecture, same training budget. Vanilla: ancestral sampling, `decode="sample"`; RDM: '
        f"argmax decoding, linear schedule. Command: `{args.command}`.",
        "",
        "| method | " + " | ".join(f"{n} calls" for n in steps) + " |",
        "| --- | " + " | ".join("---:" for _ in steps) + " |",
    ]
    for method in METHODS:
        cells = []
        for n in steps:
            r, (lo, hi), _ = rate(results, (method, n), seeds)
            cells.append(f"{100 * r:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean violations (repeated digits per grid; 0 is valid):",
        "",
        "| method | " + " | ".join(f"{n} calls" for n in steps) + " |",
        "| --- | " + " | ".join("---:" for _ in steps) + " |",
    ]
    for method in METHODS:
        lines.append(f"| {method} | " + " | ".join(f"{rate(results, (method, n), seeds)[2]:.2f}" for n in steps) + " |")
    if guided is not None:
        n = guided["n_steps"]
        base = np.concatenate([results[("RDM multinomial, adaptive", n, s)]["valid"] for s in seeds])
        tilted = np.concatenate([guided[s]["valid"] for s in seeds])
        only_a, only_b, p = sudoku.mcnemar_exact(tilted, base)
        diff, lo, hi = paired_difference(tilted, base)
        wa, wb = sudoku.wilson(int(tilted.sum()), len(tilted)), sudoku.wilson(int(base.sum()), len(base))
        lines += [
            "",
            f"Guidance with multinomial noise, {n} calls, REDGE guidance at `examples/sudoku.py`'s knobs "
            f"(n_opt={args.n_opt}, lr={args.lr:g}, kl_weight={args.kl_weight:g}), paired on the same puzzles and seeds:",
            "",
            "| method | valid % [Wilson 95%] | s / run |",
            "| --- | ---: | ---: |",
            f"| RDM multinomial, adaptive | {100 * base.mean():.1f} [{100 * wb[0]:.1f}, {100 * wb[1]:.1f}] | "
            f"{np.mean([results[('RDM multinomial, adaptive', n, s)]['seconds'] for s in seeds]):.1f} |",
            f"| {GUIDED} | {100 * tilted.mean():.1f} [{100 * wa[0]:.1f}, {100 * wa[1]:.1f}] | "
            f"{np.mean([guided[s]['seconds'] for s in seeds]):.1f} |",
            "",
            f"Gain: {100 * diff:+.1f} pp, 95% interval [{100 * lo:+.1f}, {100 * hi:+.1f}] (paired Wald); "
            f"only guided valid {only_a}, only unguided valid {only_b}, exact McNemar p = {p:.2g}.",
        ]
    return "\n".join(lines) + "\n"


def plot(results: dict, args, path: Path) -> None:
    import matplotlib.pyplot as plt

    styles = {"vanilla": "--", "rdm": "-"}
    colours = {"absorbing": "tab:blue", "multinomial": "tab:orange"}
    markers = {None: "s", "random": "v", "adaptive": "o"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, (kind, noise, routing) in METHODS.items():
        rows = [rate(results, (method, n), args.seeds) for n in args.steps]
        r = np.array([100 * row[0] for row in rows])
        err = np.abs(np.array([[100 * v for v in row[1]] for row in rows]).T - r)
        ax.errorbar(
            args.steps,
            r,
            yerr=err,
            ls=styles[kind],
            marker=markers[routing],
            color=colours[noise],
            capsize=3,
            label=method,
        )
    ax.set_xscale("log")
    ax.set_xticks(args.steps, [str(n) for n in args.steps])
    ax.set_xticks([], minor=True)  # no 3x10^0-style labels between the call counts
    ax.set(
        xlabel="denoiser calls",
        ylabel="valid solutions % (Wilson 95%)",
        ylim=(0, 100),
        title=f"Sudoku, {args.n_blanks} blanks: RDM vs vanilla diffusion (seeds {args.seeds})",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-puzzles", type=int, default=200)
    parser.add_argument("--n-blanks", type=int, default=sudoku.N_BLANKS)
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 5, 10, 20], help="denoiser calls")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--guided-steps", type=int, default=20, help="calls of the guided comparison (0: skip it)")
    parser.add_argument("--n-opt", type=int, default=20, help="guidance: Adam steps per diffusion step")
    parser.add_argument("--lr", type=float, default=0.2, help="guidance: Adam step size")
    parser.add_argument("--kl-weight", type=float, default=0.5, help="guidance: weight of the KL to the prior")
    parser.add_argument("--weights", type=Path, default=sudoku.WEIGHTS, help="the absorbing denoiser")
    parser.add_argument(
        "--weights-multinomial",
        type=Path,
        default=sudoku.WEIGHTS_MULTINOMIAL_CONDITIONAL,
        help="the multinomial denoiser (default: the conditional one; the unconditional first "
        f"try is {sudoku.WEIGHTS_MULTINOMIAL.name})",
    )
    parser.add_argument("--name", default="sudoku_steps", help="stem of the .md and .png written to --out-dir")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (shared machine)")
    parser.add_argument("--quick", action="store_true", help="8 puzzles, 1 and 2 calls, 1 seed (seconds)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.quick:
        args.n_puzzles, args.steps, args.seeds, args.guided_steps, args.n_opt = 8, [1, 2], args.seeds[:1], 2, 2
    denoisers = {
        "absorbing": sudoku.load_denoiser(args.weights),
        "multinomial": sudoku.load_denoiser(args.weights_multinomial),
    }
    args.conditional = bool(denoisers["multinomial"].config.get("conditional"))
    args.command = "python examples/sudoku_steps.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    puzzle, _ = sudoku.puzzles(args.n_puzzles, args.n_blanks, sudoku.EVAL_SEED)
    results, start = {}, time.perf_counter()
    for method, (_, noise, _) in METHODS.items():
        for n in args.steps:
            for seed in args.seeds:
                results[method, n, seed] = solve(denoisers[noise], puzzle, method, n, seed)
            print(
                f"{method:28s} {n:3d} calls: valid {100 * rate(results, (method, n), args.seeds)[0]:5.1f}%", flush=True
            )
    guided = None
    if args.guided_steps:
        n = args.guided_steps
        guidance = sudoku.Guidance(
            sudoku.reward, "redge", n_opt=args.n_opt, lr=args.lr, kl_weight=args.kl_weight, normalize=False
        )  # as examples/sudoku.py: knobs tuned on the raw reward
        for seed in args.seeds:
            if ("RDM multinomial, adaptive", n, seed) not in results:
                results["RDM multinomial, adaptive", n, seed] = solve(
                    denoisers["multinomial"], puzzle, "RDM multinomial, adaptive", n, seed
                )
        guided = {
            seed: solve(denoisers["multinomial"], puzzle, "RDM multinomial, adaptive", n, seed, guidance)
            for seed in args.seeds
        }
        guided["n_steps"] = n
    table = report(results, args, args.n_puzzles, guided)
    table += f"\nWall time {time.perf_counter() - start:.0f} s in all, {args.threads} torch CPU thread(s).\n"
    print(table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    md, png = args.out_dir / f"{args.name}.md", args.out_dir / f"{args.name}.png"
    md.write_text(table + f"\n![valid against calls]({png.name})\n")
    plot(results, args, png)
    print(f"wrote {md} and {png}")
    return results


if __name__ == "__main__":
    main()
