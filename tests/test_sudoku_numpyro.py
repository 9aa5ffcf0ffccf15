"""The JAX Sudoku demo (``examples/sudoku_numpyro.py``) and its NumPy puzzle module
(``examples/_sudoku_grid.py``): generated grids are valid for box sizes 2 and 3, puzzles blank
exactly ``n_blanks`` cells, hard counts and the differentiable reward agree, the shipped
denoiser solves most easy puzzles, and a quick run (training included) writes finite results.
"""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))  # the examples import each other as scripts do

import _sudoku_grid as grid  # noqa: E402
import sudoku_numpyro as demo  # noqa: E402


def test_grid_module_imports_numpy_only():
    tree = ast.parse((EXAMPLES / "_sudoku_grid.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"numpy", "__future__"}, imported


@pytest.mark.parametrize("box", [2, 3])
def test_solved_grids_are_valid_and_varied(box):
    side = box * box
    grids = grid.solved_grids(500, np.random.default_rng(0), box)
    assert grids.shape == (500, side**2) and grids.min() == 0 and grids.max() == side - 1
    assert (grid.violations(grids, box) == 0).all()
    rows = grids.reshape(500, side, side)
    for lines in (rows, rows.transpose(0, 2, 1)):  # each row and column a permutation
        assert (np.sort(lines, axis=-1) == np.arange(side)).all()
    # 4x4: the generator reaches 192 of the 288 grids; 500 draws see most of them
    assert len({g.tobytes() for g in grids}) > (150 if box == 2 else 490)


@pytest.mark.parametrize("box,n_blanks", [(2, 0), (2, 12), (3, 45), (3, 81)])
def test_puzzles_blank_exactly_n_cells_of_a_valid_solution(box, n_blanks):
    puzzle, solution = grid.puzzles(50, n_blanks, seed=3, box=box)
    blank = puzzle == box * box
    assert (blank.sum(-1) == n_blanks).all()
    assert (puzzle[~blank] == solution[~blank]).all()
    assert grid.is_valid(solution, puzzle, box).all()
    again, _ = grid.puzzles(50, n_blanks, seed=3, box=box)
    np.testing.assert_array_equal(puzzle, again)  # seeded


def test_puzzles_reject_a_bad_blank_count():
    with pytest.raises(ValueError, match="n_blanks"):
        grid.puzzles(1, 17, seed=0, box=2)


def test_violations_and_validity_by_hand():
    solution = np.array([0, 1, 2, 3, 2, 3, 0, 1, 1, 0, 3, 2, 3, 2, 1, 0])  # a valid 4x4 grid
    puzzle = np.where(np.arange(16) % 3 == 0, solution, 4)
    assert grid.violations(solution, 2) == 0 and grid.is_valid(solution, puzzle, 2)
    broken = solution.copy()
    broken[1] = 0  # row 0 gets two 0s, column 1 and box 0 too
    assert grid.violations(broken, 2) == 3 and not grid.is_valid(broken, puzzle, 2)
    swapped = solution.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # a clue (cell 0) changed
    assert not grid.is_valid(swapped, puzzle, 2)
    assert grid.violations(puzzle, 2) == 0 and not grid.is_valid(puzzle, puzzle, 2)  # masks: blank, incomplete


def test_unit_matrix_puts_every_cell_in_three_units():
    units = grid.unit_matrix(3)
    assert units.shape == (27, 81) and (units.sum(0) == 3).all() and (units.sum(1) == 9).all()


def test_reward_is_zero_exactly_on_valid_grids_and_matches_the_counts():
    puzzle, solution = grid.puzzles(20, 0, seed=4, box=2)
    rng = np.random.default_rng(5)
    noisy = np.where(rng.random(solution.shape) < 0.2, rng.integers(0, 4, solution.shape), solution)
    one_hot = jax.nn.one_hot(jnp.asarray(noisy), 4)
    counts = np.einsum("uc,bcd->bud", grid.unit_matrix(2), np.asarray(one_hot))
    np.testing.assert_allclose(demo.reward(one_hot), -((counts - 1) ** 2).sum((1, 2)), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(demo.reward(one_hot)) == 0, grid.violations(noisy, 2) == 0)
    assert (np.asarray(demo.reward(jax.nn.one_hot(jnp.asarray(solution), 4))) == 0).all()


def test_shipped_denoiser_solves_easy_puzzles():
    # 6 blanks, 3 denoiser calls, argmax: the shipped weights solve all 50 (and 95% of 200
    # validation puzzles with 10 blanks and 2 calls); the untrained MLP (init_params) solves none.
    params = demo.load_params(demo.WEIGHTS)
    puzzle, _ = grid.puzzles(50, 6, seed=6, box=2)
    solution = demo.solve(params, jnp.asarray(puzzle, dtype=jnp.int32), 0, 3, {})
    assert grid.is_valid(solution, puzzle, 2).mean() >= 0.9


def test_quick_run_with_training_writes_finite_results(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    weights = tmp_path / "weights.npz"
    command = [
        sys.executable,
        "-W",
        "error",
        str(EXAMPLES / "sudoku_numpyro.py"),
        "--quick",
        "--no-progress",
        "--train",
        "--train-steps",
        "5",
        "--weights",
        str(weights),
        "--out-dir",
        str(tmp_path),
    ]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert weights.stat().st_size > 1000
    markdown = (tmp_path / "sudoku_numpyro.md").read_text()
    assert (tmp_path / "sudoku_numpyro.png").stat().st_size > 1000
    rows = [line for line in markdown.splitlines() if line.startswith(("| adaptive", "| random"))]
    assert len(rows) == 6, markdown
    numbers = [float(v) for row in rows for v in re.findall(r"\d+\.\d+", row)]
    assert numbers and all(math.isfinite(v) for v in numbers)
