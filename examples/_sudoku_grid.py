"""Sudoku grids for the diffusion demos, in NumPy only (no torch, no JAX): a seeded puzzle
generator and the hard constraint counts, for any box size ``n`` (``n = 2``: 4x4 grids and
digits 1-4; ``n = 3``: the usual 9x9).

A grid is a row-major integer array ``[..., n^4]`` of tokens ``0 .. n^2 - 1`` (digit ``d`` is
token ``d - 1``); the token ``n^2`` is the mask, a blank cell.

- :func:`solved_grids`: the valid base grid ``(r n + r // n + c) mod n^2`` under random
  validity-preserving symmetries: digit relabelling, row permutations within each band, band
  permutations, column permutations within each stack, stack permutations, transposition.
- :func:`puzzles`: ``n_blanks`` cells of each solved grid, chosen uniformly, set to the mask.
- :func:`unit_matrix`: which cells make up each of the ``3 n^2`` units (rows, columns, boxes);
  the backends turn it into their differentiable reward on one-hot grids.
- :func:`violations` and :func:`is_valid`: hard checks of token grids.
- :func:`wilson`: the Wilson score interval both demos report valid-solution rates with.
"""

from __future__ import annotations

import numpy as np

__all__ = ["solved_grids", "puzzles", "unit_matrix", "violations", "is_valid", "wilson"]


def _permutations(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Independent uniform permutations of ``0 .. shape[-1] - 1``, one per leading index."""
    return rng.permuted(np.broadcast_to(np.arange(shape[-1]), shape), axis=-1)


def _band_order(rng: np.random.Generator, n_grids: int, box: int) -> np.ndarray:
    """``[n_grids, box^2]`` orders of the rows (or columns): bands shuffled, lines within each band shuffled."""
    bands = _permutations(rng, (n_grids, box))
    lines = _permutations(rng, (n_grids, box, box))
    return (box * bands[..., None] + lines).reshape(n_grids, box * box)


def solved_grids(n_grids: int, rng: np.random.Generator, box: int = 3) -> np.ndarray:
    """``int64[n_grids, box^4]``: random valid grids (tokens ``0 .. box^2 - 1``)."""
    side = box * box
    r, c = np.indices((side, side))
    base = (r * box + r // box + c) % side
    rows, cols = _band_order(rng, n_grids, box), _band_order(rng, n_grids, box)
    grids = base[rows[:, :, None], cols[:, None, :]]
    relabel = _permutations(rng, (n_grids, side))
    grids = np.take_along_axis(relabel, grids.reshape(n_grids, -1), axis=1).reshape(n_grids, side, side)
    flip = rng.random(n_grids) < 0.5
    grids[flip] = np.swapaxes(grids[flip], 1, 2)
    return grids.reshape(n_grids, side * side).astype(np.int64)


def puzzles(n_puzzles: int, n_blanks: int, seed: int, box: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(puzzle, solution)``, ``int64[n_puzzles, box^4]`` each: ``n_blanks`` uniformly chosen
    cells of every solution set to the mask token ``box^2``."""
    n_cells = box**4
    if not 0 <= n_blanks <= n_cells:
        raise ValueError(f"n_blanks must be in [0, {n_cells}] for box={box}, got n_blanks={n_blanks!r}")
    rng = np.random.default_rng(seed)
    solution = solved_grids(n_puzzles, rng, box)
    blanks = np.argsort(rng.random((n_puzzles, n_cells)), axis=1)[:, :n_blanks]
    puzzle = solution.copy()
    np.put_along_axis(puzzle, blanks, box * box, axis=1)
    return puzzle, solution


def unit_matrix(box: int = 3) -> np.ndarray:
    """``float32[3 box^2, box^4]``: row ``u`` marks the cells of unit ``u`` (rows, then columns, then boxes)."""
    side = box * box
    r, c = np.indices((side, side)).reshape(2, -1)
    unit_of_cell = np.stack([r, side + c, 2 * side + box * (r // box) + c // box])  # [3, n_cells]
    members = np.zeros((3 * side, side * side), np.float32)
    members[unit_of_cell, np.arange(side * side)] = 1.0
    return members


def _digit_counts(grid: np.ndarray, box: int) -> np.ndarray:
    """``int64[..., 3 box^2, box^2]``: how often each digit occurs in each unit (masks ignored)."""
    side = box * box
    one_hot = (np.asarray(grid)[..., None] == np.arange(side)).astype(np.int64)
    return np.einsum("uc,...cd->...ud", unit_matrix(box).astype(np.int64), one_hot)


def violations(grid: np.ndarray, box: int = 3) -> np.ndarray:
    """``int64[...]``: repeated digits over all units, ``sum max(count - 1, 0)``; masks count as blanks."""
    return np.maximum(_digit_counts(grid, box) - 1, 0).sum((-2, -1))


def is_valid(solution: np.ndarray, puzzle: np.ndarray, box: int = 3) -> np.ndarray:
    """``bool[...]``: ``solution`` is complete, keeps every clue of ``puzzle`` and has no violation."""
    solution, puzzle = np.asarray(solution), np.asarray(puzzle)
    mask = box * box
    complete = (solution != mask).all(-1)
    keeps_clues = ((solution == puzzle) | (puzzle == mask)).all(-1)
    return complete & keeps_clues & (violations(solution, box) == 0)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (95% by default)."""
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * float(np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)))
    return max(0.0, centre - half), min(1.0, centre + half)
