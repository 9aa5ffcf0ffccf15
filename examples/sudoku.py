"""Sudoku by masked diffusion (torch): a small denoiser, steered at sampling time by a reward.

Grids are ``LongTensor[B, 81]`` (row-major), tokens ``0..8`` for digits ``1..9`` and the mask
token ``9``. Puzzles come from a seeded NumPy generator shared with the JAX demo
(``examples/_sudoku_grid.py``): a valid base grid ``(3 r + r // 3 + c) % 9`` under random
validity-preserving symmetries (digit relabelling, row permutations within bands, band
permutations, column permutations within stacks, stack permutations, transpose), then ``k``
cells blanked uniformly at random.

The reward acts on one-hot grids ``FloatTensor[B, 81, 9]``: minus the sum over the 27 units
(rows, columns, boxes) and the 9 digits of ``(count - 1)^2``. It is 0 exactly on a valid grid,
negative otherwise, and differentiable, so a relaxed gradient estimator (``gumbel``,
``redge``, ``reinmax``) can tilt the denoiser's per-cell logits towards grids that satisfy
the constraints (:class:`pyro_ext.diffusion.Guidance`).

The denoiser (trained by ``examples/sudoku_train.py``, weights in
``examples/weights/sudoku_denoiser.pt``) is a pre-norm transformer encoder over the 81 cells.

Evaluation (the CLI): a fixed held-out set (``EVAL_SEED``, never a training seed) of puzzles
with 45 blanks, solved by RDM's route-and-denoise sampler with the same number of denoiser
calls for every method: {random-order unmasking, adaptive top-k} x {no guidance, Gumbel
straight-through, REDGE, ReinMax}, plus REDGE guidance without the prior (the reward and a KL
to uniform logits alone, ``Guidance(use_prior=False)``) and REDGE guidance at the authors'
knobs (``n_opt=10, lr=0.1, kl_weight=1``; the other rows use the CLI's). Reported per
method: the rate of valid solutions (clues kept, no repeated digit) with a Wilson 95%
interval, the mean number of violations, the wall-clock time, over several seeds (the
estimators' noise and the random routing order), and an exact McNemar test of guided against
unguided adaptive sampling on the same puzzles.

The CLI's guidance knobs were tuned, modestly, on 100 validation puzzles (``--validation``:
seed ``VALIDATION_SEED``, not the evaluation set), seed 0, adaptive routing, REDGE guidance,
against unguided sampling (50% valid there). Gain in valid solutions, percentage points:
``(n_opt, lr, kl_weight)`` = (10, 0.1, 1) +2 (the authors'), (10, 0.3, 0.5) +13,
(20, 0.1, 0.5) +19, (20, 0.2, 1) +25, (20, 0.3, 0.5) +27, (20, 0.2, 0.5) +30 (kept). A
step of Adam moves each logit by about ``lr``, so ``n_opt * lr`` bounds the tilt: at the
authors' 10 x 0.1 it is too small to move a confident denoiser.

    python examples/sudoku.py --out-dir examples/results     # 10 methods x 3 seeds x 200 puzzles
    python examples/sudoku.py --quick                         # seconds (the test suite)
    python examples/sudoku.py --validation --n-puzzles 100 --seeds 0 --methods adaptive "adaptive + redge"
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pyro_ext.diffusion import Guidance, sample

N_CELLS, N_DIGITS = 81, 9
MASK_ID = N_DIGITS
WEIGHTS = Path(__file__).resolve().parent / "weights" / "sudoku_denoiser.pt"
WEIGHTS_MULTINOMIAL = WEIGHTS.with_name("sudoku_denoiser_multinomial.pt")  # sudoku_train.py --noise multinomial
#: sudoku_train.py --noise multinomial --conditional: with the clue indicator (SudokuDenoiser docstring)
WEIGHTS_MULTINOMIAL_CONDITIONAL = WEIGHTS.with_name("sudoku_denoiser_multinomial_conditional.pt")


try:
    from examples import _sudoku_grid as grid
except ImportError:  # run as a script: examples/ itself is on sys.path
    import _sudoku_grid as grid

# --- puzzles and constraints: NumPy, shared with sudoku_numpyro.py ---------------------------

#: ``int64[n, 81]`` solved grids, and the hard checks of token grids (NumPy arrays or CPU tensors in,
#: NumPy arrays out): repeated digits ``sum max(count - 1, 0)``, and complete + valid + clues kept.
solved_grids, violations, is_valid = grid.solved_grids, grid.violations, grid.is_valid
UNITS = torch.from_numpy(grid.unit_matrix())  # [27, 81]: the cells of each row, column and box


def puzzles(n_puzzles: int, n_blanks: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(puzzle, solution)``, ``LongTensor[n_puzzles, 81]`` each: ``n_blanks`` cells of each set to the mask."""
    puzzle, solution = grid.puzzles(n_puzzles, n_blanks, seed)
    return torch.from_numpy(puzzle), torch.from_numpy(solution)


def reward(one_hot: torch.Tensor) -> torch.Tensor:
    """``-sum_units sum_digits (count - 1)^2`` of ``FloatTensor[..., 81, 9]``: 0 exactly on valid grids."""
    counts = torch.einsum("uc,...ck->...uk", UNITS.to(one_hot), one_hot)
    return -(counts - 1).square().sum((-2, -1))


# --- denoiser --------------------------------------------------------------------------------


class SudokuDenoiser(nn.Module):
    """``(x_t LongTensor[B, 81] in 0..9, t Tensor[B]) -> logits Tensor[B, 81, 9]``.

    Token embedding (10 tokens, the mask included) + a learned embedding per cell + an
    embedding of ``t``, then a pre-norm transformer encoder and a linear read-out to 9 digits.
    The cell embedding is the sum of learned row, column and box embeddings (27 vectors, at the
    token embeddings' scale N(0, 1)): the attention layers see from the start which cells share
    a unit. (A first try, a free table of 81 vectors at scale 0.02, stayed at the uniform-logits
    loss for 300 steps: the positions were drowned by the tokens.)

    ``conditional=True`` adds an embedding of a clue indicator, ``forward(x_t, t, clues)``
    (``clues``: ``BoolTensor[B, 81]``, the cells known to be clean). Multinomial noise needs it
    for puzzles: noisy cells hold digits, so without it a clue looks like any noisy cell, and at
    ``t = 1`` (where training saw only noise) the denoiser ignores the clues it is given.
    """

    def __init__(
        self, d_model: int = 128, n_layers: int = 4, n_heads: int = 4, d_ff: int = 256, conditional: bool = False
    ) -> None:
        super().__init__()
        self.config = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "d_ff": d_ff}
        if conditional:
            self.config["conditional"] = True
            self.clues = nn.Embedding(2, d_model)
        self.tokens = nn.Embedding(N_DIGITS + 1, d_model)
        self.units = nn.Parameter(torch.randn(27, d_model))  # rows, columns, boxes
        self.time = nn.Sequential(nn.Linear(1, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.readout = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, N_DIGITS))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, clues: torch.Tensor | None = None) -> torch.Tensor:
        cells = UNITS.to(self.units).T @ self.units  # [81, d]: row + column + box of each cell
        h = self.tokens(x_t) + cells + self.time(t[:, None].to(cells))[:, None, :]
        if self.config.get("conditional"):
            h = h + self.clues(torch.zeros_like(x_t) if clues is None else clues.long())
        return self.readout(self.encoder(h))


def with_clues(denoiser: SudokuDenoiser, puzzle: torch.Tensor):
    """``denoiser(x_t, t)`` with the clue cells of ``puzzle`` (``!= N_DIGITS``) as the clue
    indicator when the denoiser is conditional; the denoiser itself otherwise."""
    if not denoiser.config.get("conditional"):
        return denoiser
    clues = puzzle != N_DIGITS
    return lambda x_t, t: denoiser(x_t, t, clues)


def load_denoiser(path: Path = WEIGHTS) -> SudokuDenoiser:
    """The trained denoiser saved by ``sudoku_train.py`` (``{"config", "state_dict"}``), in eval mode."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = SudokuDenoiser(**saved["config"])
    model.load_state_dict({name: value.float() for name, value in saved["state_dict"].items()})
    return model.eval()


# --- evaluation ------------------------------------------------------------------------------

EVAL_SEED, VALIDATION_SEED, N_BLANKS = 20_240_917, 777, 45
#: The authors' guidance knobs (REDGE's guidance code); the CLI's defaults are tuned from these.
AUTHORS_KNOBS = {"n_opt": 10, "lr": 0.1, "kl_weight": 1.0}


class Method(NamedTuple):
    routing: str
    estimator: str | None = None  # guidance estimator; None: no guidance
    use_prior: bool = True  # tilt the denoiser's logits (False: uniform logits)
    knobs: dict | None = None  # n_opt, lr, kl_weight; None: the CLI's


METHODS: dict[str, Method] = {
    "random": Method("random"),
    "random + gumbel": Method("random", "gumbel"),
    "random + redge": Method("random", "redge"),
    "random + reinmax": Method("random", "reinmax"),
    "adaptive": Method("adaptive"),
    "adaptive + gumbel": Method("adaptive", "gumbel"),
    "adaptive + redge": Method("adaptive", "redge"),
    "adaptive + reinmax": Method("adaptive", "reinmax"),
    "adaptive + redge, no prior": Method("adaptive", "redge", use_prior=False),
    "adaptive + redge, authors' knobs": Method("adaptive", "redge", knobs=AUTHORS_KNOBS),
}
BASELINE, GUIDED = "adaptive", "adaptive + redge"


def guidance_for(method: str, args) -> Guidance | None:
    _, estimator, use_prior, knobs = METHODS[method]
    if estimator is None:
        return None
    knobs = knobs or {"n_opt": args.n_opt, "lr": args.lr, "kl_weight": args.kl_weight}
    # normalize=False: the CLI knobs and the results were tuned and measured on the raw reward
    return Guidance(reward, estimator, use_prior=use_prior, normalize=False, **knobs)


def solve(denoiser, puzzle: torch.Tensor, method: str, seed: int, args) -> dict:
    """Samples every puzzle once; ``valid`` (bool per puzzle), ``violations``, ``seconds``."""
    torch.manual_seed(seed)  # the estimators' noise (torch's global generator)
    generator = torch.Generator().manual_seed(seed)  # the routing order
    start = time.perf_counter()
    solution = sample(
        denoiser,
        puzzle,
        n_classes=N_DIGITS,
        n_steps=args.n_steps,
        routing=METHODS[method].routing,
        guidance=guidance_for(method, args),
        generator=generator,
    )
    seconds = time.perf_counter() - start
    solution, puzzle = solution.numpy(), puzzle.numpy()
    return {"valid": is_valid(solution, puzzle), "violations": violations(solution), "seconds": seconds}


wilson = grid.wilson


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """``(only a, only b, two-sided p)``: exact McNemar test (a sign test on the discordant pairs)."""
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, low = only_a + only_b, min(only_a, only_b)
    p = sum(math.comb(n, i) for i in range(low + 1)) / 2.0**n if n else 1.0
    return only_a, only_b, min(1.0, 2 * p)


def paired_lines(results: dict, seeds: list[int], pairs: list[tuple[str, str]]) -> list[str]:
    """Markdown rows: per pair of methods, the valid-rate difference and McNemar's test per seed and pooled."""
    lines = [
        "| comparison | seed | valid % (a) | valid % (b) | a - b (pp) | only a | only b | McNemar p |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a, b in pairs:
        groups = [(str(s), [s]) for s in seeds] + ([("pooled", seeds)] if len(seeds) > 1 else [])
        for name, group in groups:
            va = np.concatenate([results[a, s]["valid"] for s in group])
            vb = np.concatenate([results[b, s]["valid"] for s in group])
            only_a, only_b, p = mcnemar_exact(va, vb)
            lines.append(
                f"| {a} vs {b} | {name} | {100 * va.mean():.1f} | {100 * vb.mean():.1f} | "
                f"{100 * (va.mean() - vb.mean()):+.1f} | {only_a} | {only_b} | {p:.2g} |"
            )
    return lines


def summarise(results: dict, method: str, seeds: list[int]) -> dict:
    valid = np.concatenate([results[method, s]["valid"] for s in seeds])
    return {
        "per_seed": [100 * results[method, s]["valid"].mean() for s in seeds],
        "rate": valid.mean(),
        "interval": wilson(int(valid.sum()), len(valid)),
        "violations": np.mean([results[method, s]["violations"].mean() for s in seeds]),
        "seconds": np.mean([results[method, s]["seconds"] for s in seeds]),
    }


def _puzzle_seed(args) -> int:
    return VALIDATION_SEED if args.validation else EVAL_SEED


def _preamble(args, n_puzzles: int) -> str:
    knobs = f"n_opt={args.n_opt}, lr={args.lr:g}, kl_weight={args.kl_weight:g}"
    hyper = {name: Guidance(reward, name).hyper for name in ("gumbel", "redge", "reinmax")}
    estimators = ", ".join(f"{name} {', '.join(f'{k}={v}' for k, v in h.items())}" for name, h in hyper.items())
    authors = ", ".join(f"{k}={v:g}" for k, v in AUTHORS_KNOBS.items())
    return (
        f"{n_puzzles} {'validation' if args.validation else 'held-out'} puzzles (seed {_puzzle_seed(args)}) with "
        f"{args.n_blanks} blanks; {args.n_steps} denoiser calls per puzzle for every method (linear schedule, "
        f"argmax decoding). Guidance: {knobs} (authors' knobs row: {authors}); estimators {estimators}. "
        f"Seeds {args.seeds} (estimator noise and random routing order). Valid: every clue kept and no digit "
        "repeated in any row, column or box. Interval: Wilson 95% over all puzzles x seeds (the seeds share "
        "the puzzles, so it is a little narrow for between-puzzle variation). s / run: wall-clock seconds to "
        "solve all the puzzles in one batch. Knobs tuned on validation puzzles: see the docstring of "
        "examples/sudoku.py."
    )


def _method_row(method: str, row: dict) -> str:
    lo, hi = row["interval"]
    per_seed = " | ".join(f"{v:.1f}" for v in row["per_seed"])
    return (
        f"| {method} | {per_seed} | {100 * row['rate']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | "
        f"{row['violations']:.2f} | {row['seconds']:.1f} |"
    )


def report(results: dict, args, n_puzzles: int) -> str:
    seeds = args.seeds
    lines = [
        "# Sudoku by guided masked diffusion (torch)",
        "",
        _preamble(args, n_puzzles),
        "",
        "| method | "
        + " | ".join(f"valid % seed {s}" for s in seeds)
        + " | valid % [95% CI] | mean violations | s / run |",
        "| --- | " + " | ".join("---:" for _ in seeds) + " | ---: | ---: | ---: |",
    ]
    lines += [_method_row(method, summarise(results, method, seeds)) for method in args.methods]
    guided = [m for m in METHODS if METHODS[m].routing == "adaptive" and METHODS[m].estimator and METHODS[m].use_prior]
    pairs = [(a, BASELINE) for a in guided] + [(GUIDED, "adaptive + redge, no prior")]
    pairs = [(a, b) for a, b in pairs if a in args.methods and b in args.methods]
    if pairs:
        lines += [
            "",
            "Paired on the same puzzles and seed (exact McNemar, two-sided; the pooled rows treat the "
            "puzzle x seed pairs as independent, the per-seed rows are exact):",
            "",
        ]
        lines += paired_lines(results, seeds, pairs)
    return "\n".join(lines) + "\n"


def plot(results: dict, args, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = [summarise(results, method, args.seeds) for method in args.methods]
    rates = np.array([100 * row["rate"] for row in rows])
    errors = np.abs(np.array([[100 * v for v in row["interval"]] for row in rows]).T - rates)
    colours = ["tab:gray" if METHODS[m].routing == "random" else "tab:blue" for m in args.methods]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.bar(range(len(rows)), rates, yerr=errors, color=colours, capsize=3)
    ax.set_xticks(range(len(rows)), args.methods, rotation=35, ha="right", fontsize=8)
    ax.set(
        ylabel="valid solutions % (Wilson 95%)",
        ylim=(0, 100),
        title=f"Sudoku, {args.n_blanks} blanks, {args.n_steps} denoiser calls (seeds {args.seeds})",
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Evaluate guided masked-diffusion Sudoku solving")
    parser.add_argument("--n-puzzles", type=int, default=200)
    parser.add_argument("--n-blanks", type=int, default=N_BLANKS)
    parser.add_argument("--n-steps", type=int, default=20, help="denoiser calls per puzzle")
    parser.add_argument("--n-opt", type=int, default=20, help="guidance: Adam steps per diffusion step")
    parser.add_argument("--lr", type=float, default=0.2, help="guidance: Adam step size")
    parser.add_argument("--kl-weight", type=float, default=0.5, help="guidance: weight of the KL to the prior")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--validation", action="store_true", help="validation puzzles (for tuning), not held-out")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (shared machine)")
    parser.add_argument("--quick", action="store_true", help="8 puzzles, 4 steps, 1 seed (seconds)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.quick:
        args.n_puzzles, args.n_steps, args.n_opt, args.seeds = 8, 4, 2, args.seeds[:1]
    denoiser = load_denoiser(args.weights)
    puzzle, _ = puzzles(args.n_puzzles, args.n_blanks, _puzzle_seed(args))
    results, start = {}, time.perf_counter()
    for method in args.methods:
        for seed in args.seeds:
            results[method, seed] = solve(denoiser, puzzle, method, seed, args)
            print(
                f"{method:28s} seed {seed}: valid {100 * results[method, seed]['valid'].mean():5.1f}%  "
                f"({results[method, seed]['seconds']:.1f} s)",
                flush=True,
            )

    table = report(results, args, args.n_puzzles)
    table += f"\nWall time {time.perf_counter() - start:.0f} s in all, {args.threads} torch CPU thread(s).\n"
    print(table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "sudoku.md").write_text(table + "\n![valid solutions](sudoku.png)\n")
    plot(results, args, args.out_dir / "sudoku.png")
    print(f"wrote {args.out_dir / 'sudoku.md'} and {args.out_dir / 'sudoku.png'}")
    return results


if __name__ == "__main__":
    main()
