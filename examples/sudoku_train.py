"""Train the Sudoku denoiser of ``examples/sudoku.py`` with the masked-diffusion loss, on CPU.

Every step draws fresh solved grids from the seeded generator (no grid is seen twice, so
nothing to over-fit but the generator itself) and minimises ``MaskedDiffusion(9).loss``: each
grid masked at its own rate ``t ~ U(0, 1)``, cross-entropy on the masked cells, reweighted as
in RDM. ``--noise multinomial`` trains the same network on ``MultinomialDiffusion(9).loss``
instead: noisy cells hold uniformly drawn digits, not the mask. Nothing is pinned: a puzzle's blanks are a uniformly random set of cells, which is
exactly what masking at rate ``t = 45 / 81`` draws, so pinning a random clue set would change
nothing the denoiser sees except to drop the clue cells from the loss. That holds for absorbing
noise only: with multinomial noise a clue looks like a noisy cell. ``--conditional`` trains the
conditional denoiser (``SudokuDenoiser(conditional=True)``, a clue indicator as input): every grid
gets a uniformly random clue set of 0 to 64 cells, pinned (``loss(..., pinned=)``) and shown to
the denoiser, and the other cells are noised at rate ``t``. AdamW, linear warm-up
then cosine decay, gradient norm clipped at 1.

The weights are saved as ``{"config", "state_dict"}`` in float16 (about 1 MB). The training
grids come from one NumPy generator seeded with ``--seed`` (0); the evaluation and validation
puzzles of ``sudoku.py`` come from its ``EVAL_SEED`` and ``VALIDATION_SEED``, never used here.

    python examples/sudoku_train.py                      # the shipped weights (minutes on 1 CPU thread)
    python examples/sudoku_train.py --noise multinomial  # the multinomial-noise denoiser (MultinomialDiffusion)
    python examples/sudoku_train.py --noise multinomial --conditional  # the same, told the clue cells
    python examples/sudoku_train.py --quick              # seconds, writes to a temporary file
"""

from __future__ import annotations

import argparse
import functools
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pyro_ext.diffusion import MaskedDiffusion, MultinomialDiffusion

try:
    from examples.sudoku import (
        N_DIGITS,
        WEIGHTS,
        WEIGHTS_MULTINOMIAL,
        WEIGHTS_MULTINOMIAL_CONDITIONAL,
        SudokuDenoiser,
        solved_grids,
    )
except ImportError:  # run as a script: examples/ itself is on sys.path
    from sudoku import (
        N_DIGITS,
        WEIGHTS,
        WEIGHTS_MULTINOMIAL,
        WEIGHTS_MULTINOMIAL_CONDITIONAL,
        SudokuDenoiser,
        solved_grids,
    )


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to a tenth of ``peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def train(model: SudokuDenoiser, args) -> np.ndarray:
    """Runs ``args.steps`` AdamW steps; returns the loss of each step."""
    diffusion = (MaskedDiffusion if args.noise == "absorbing" else MultinomialDiffusion)(N_DIGITS, weight=args.weight)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng, generator = np.random.default_rng(args.seed), torch.Generator().manual_seed(args.seed)
    losses = np.empty(args.steps)
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        x0 = torch.from_numpy(solved_grids(args.batch_size, rng))
        if args.conditional:
            pinned = random_clues(x0.shape, rng)
            loss = diffusion.loss(functools.partial(model, clues=pinned), x0, pinned=pinned, generator=generator)
        else:
            loss = diffusion.loss(model, x0, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses[step] = loss.item()
        if (step + 1) % args.log_every == 0:
            print(f"step {step + 1:5d}  loss {losses[step + 1 - args.log_every : step + 1].mean():.4f}", flush=True)
    return losses


def random_clues(shape: tuple[int, int], rng: np.random.Generator, max_clues: int = 64) -> torch.Tensor:
    """``BoolTensor[shape]``: per grid, a uniformly random set of ``n ~ U{0 .. max_clues}`` cells."""
    n_clues = rng.integers(0, max_clues + 1, size=(shape[0], 1))
    ranks = rng.random(shape).argsort(-1).argsort(-1)
    return torch.from_numpy(ranks < n_clues)


def save(model: SudokuDenoiser, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: value.half() for name, value in model.state_dict().items()}
    torch.save({"config": model.config, "state_dict": state}, path)


def summary(losses: np.ndarray, n_chunks: int = 10) -> str:
    """Mean loss over ``n_chunks`` consecutive stretches of training."""
    chunks = np.array_split(losses, min(n_chunks, len(losses)))
    edges = np.cumsum([0] + [len(chunk) for chunk in chunks])
    return "\n".join(
        f"steps {lo + 1:5d}-{hi:5d}: loss {chunk.mean():.4f}" for lo, hi, chunk in zip(edges[:-1], edges[1:], chunks)
    )


def main(argv=None) -> np.ndarray:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--weight", choices=["linear", "reciprocal", "none"], default="linear", help="MaskedDiffusion's loss weighting"
    )
    parser.add_argument(
        "--noise",
        choices=["absorbing", "multinomial"],
        default="absorbing",
        help="the forward process: MaskedDiffusion or MultinomialDiffusion",
    )
    parser.add_argument(
        "--conditional",
        action="store_true",
        help="train with random pinned clue sets shown to the denoiser (SudokuDenoiser(conditional=True))",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="a few small steps, saved to a temporary file")
    parser.add_argument("--out", type=Path, default=None, help=f"weights file (default {WEIGHTS})")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.quick:
        args.steps, args.batch_size, args.warmup, args.log_every = 5, 8, 2, 1
        args.out = args.out or Path(tempfile.mkdtemp()) / "sudoku_denoiser.pt"
    default = WEIGHTS if args.noise == "absorbing" else WEIGHTS_MULTINOMIAL
    out = args.out or (WEIGHTS_MULTINOMIAL_CONDITIONAL if args.conditional else default)
    if args.conditional and args.noise == "absorbing" and args.out is None:
        out = WEIGHTS.with_name("sudoku_denoiser_conditional.pt")
    model = SudokuDenoiser(conditional=args.conditional)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"denoiser: {model.config}, {n_params:,} parameters; {args.steps} steps x {args.batch_size} grids")

    start = time.perf_counter()
    losses = train(model, args)
    wall = time.perf_counter() - start
    save(model, out)
    print(summary(losses))
    if (
        args.weight == "linear" and args.noise == "absorbing"
    ):  # uniform logits: log(9) per masked cell, t of them, weight 1 - t
        print(f"(uniform logits would score log(9) E[t (1 - t)] = {math.log(N_DIGITS) / 6:.4f})")
    print(
        f"trained in {wall:.0f} s ({args.threads} thread(s)); final loss (last 10%) "
        f"{losses[-max(1, len(losses) // 10) :].mean():.4f}; wrote {out}"
    )
    return losses


if __name__ == "__main__":
    main()
