"""The Sudoku example: the puzzle generator, the reward and its gradient, the shipped denoiser,
and the evaluation CLI in its quick mode."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sudoku():
    sys.path.insert(0, str(ROOT))
    try:
        from examples import sudoku
    finally:
        sys.path.remove(str(ROOT))
    return sudoku


def _one_hot(sudoku, grid: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(grid, sudoku.N_DIGITS).float()


def _rows_cols_boxes(grid: torch.Tensor) -> torch.Tensor:
    """``[B, 27, 9]`` digits of each row, column and box, by plain indexing (not the unit matrix)."""
    g = grid.view(-1, 9, 9)
    boxes = g.view(-1, 3, 3, 3, 3).transpose(2, 3).reshape(-1, 9, 9)
    return torch.cat([g, g.transpose(1, 2), boxes], dim=1)


def test_generated_grids_are_valid_and_puzzles_have_k_blanks(sudoku):
    puzzle, solution = sudoku.puzzles(64, 45, seed=3)
    assert puzzle.shape == solution.shape == (64, 81) and puzzle.dtype == torch.long
    units = _rows_cols_boxes(solution).sort(-1).values
    assert (units == torch.arange(9)).all()  # each unit holds every digit 0..8 once
    blanks = puzzle == sudoku.MASK_ID
    assert (blanks.sum(-1) == 45).all()
    assert (puzzle[~blanks] == solution[~blanks]).all()
    assert sudoku.is_valid(solution, puzzle).all() and (sudoku.violations(solution) == 0).all()
    assert len({tuple(row) for row in solution.tolist()}) == 64  # the symmetries do vary the grid
    again, _ = sudoku.puzzles(64, 45, seed=3)
    assert torch.equal(again, puzzle)  # seeded


def test_reward_is_zero_exactly_on_valid_grids_and_has_finite_gradient(sudoku):
    puzzle, solution = sudoku.puzzles(8, 30, seed=1)
    assert (sudoku.reward(_one_hot(sudoku, solution)) == 0).all()
    swapped = solution.clone()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # two cells of a row and a box: two columns break
    assert (sudoku.reward(_one_hot(sudoku, swapped)) < 0).all()
    assert (sudoku.violations(swapped) > 0).all() and not sudoku.is_valid(swapped, puzzle).any()
    x = _one_hot(sudoku, swapped).requires_grad_(True)
    sudoku.reward(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_shipped_weights_load_and_give_logits(sudoku):
    assert sudoku.WEIGHTS.stat().st_size < 3_000_000
    model = sudoku.load_denoiser()
    puzzle, _ = sudoku.puzzles(3, 45, seed=0)
    with torch.no_grad():
        logits = model(puzzle, torch.full((3,), 45 / 81))
    assert logits.shape == (3, 81, 9) and torch.isfinite(logits).all()


def test_conditional_denoiser_reads_the_clue_indicator(sudoku):
    torch.manual_seed(0)
    model = sudoku.SudokuDenoiser(d_model=16, n_layers=1, n_heads=2, d_ff=16, conditional=True).eval()
    puzzle, _ = sudoku.puzzles(2, 45, seed=0)
    t = torch.ones(2)
    with torch.no_grad():
        told = sudoku.with_clues(model, puzzle)(puzzle, t)
        blind = model(puzzle, t)  # no clue indicator: every cell "not a clue"
        assert torch.equal(told, model(puzzle, t, puzzle != sudoku.N_DIGITS))
    assert not torch.allclose(told, blind)
    plain = sudoku.SudokuDenoiser(d_model=16, n_layers=1, n_heads=2, d_ff=16)
    assert sudoku.with_clues(plain, puzzle) is plain and "conditional" not in plain.config


def test_random_clue_sets_have_uniform_sizes_up_to_the_cap():
    import numpy as np

    sys.path.insert(0, str(ROOT))
    try:
        from examples.sudoku_train import random_clues
    finally:
        sys.path.remove(str(ROOT))
    clues = random_clues((4000, 81), np.random.default_rng(0), max_clues=64)
    sizes = clues.sum(-1).numpy()
    assert clues.dtype == torch.bool and sizes.min() == 0 and sizes.max() == 64
    counts = np.bincount(sizes, minlength=65)  # 65 sizes, ~61.5 each: none empty, none double
    assert counts.min() > 25 and counts.max() < 110


def _run(script: str, *args: str, cwd: Path) -> str:
    """``examples/<script> args`` in a fresh interpreter (its own thread count, matplotlib backend)."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    command = [sys.executable, str(ROOT / "examples" / script), *args]
    out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


def test_quick_evaluation_writes_a_table(sudoku, tmp_path):
    _run("sudoku.py", "--quick", "--out-dir", str(tmp_path), cwd=tmp_path)
    text = (tmp_path / "sudoku.md").read_text()
    table = text[text.index("| method |") :].split("\n\n")[0].splitlines()[2:]  # below the header
    assert [row.split("|")[1].strip() for row in table] == list(sudoku.METHODS)
    assert "McNemar" in text
    assert (tmp_path / "sudoku.png").stat().st_size > 1000


def test_training_quick_runs(tmp_path):
    stdout = _run("sudoku_train.py", "--quick", "--out", str(tmp_path / "w.pt"), cwd=tmp_path)
    assert (tmp_path / "w.pt").stat().st_size > 0 and "loss" in stdout


def test_wilson_interval_and_mcnemar_match_scipy(sudoku):
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 20), (7, 20), (120, 200), (200, 200)]:
        expected = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert sudoku.wilson(k, n) == pytest.approx((expected.low, expected.high), abs=1e-6)
    a = torch.tensor([1, 1, 1, 0, 1, 0, 1, 1, 0, 1], dtype=torch.bool).numpy()
    b = torch.tensor([0, 0, 1, 0, 0, 1, 0, 0, 0, 1], dtype=torch.bool).numpy()
    only_a, only_b, p = sudoku.mcnemar_exact(a, b)
    assert (only_a, only_b) == (5, 1)
    assert p == pytest.approx(stats.binomtest(5, 6).pvalue, rel=1e-12)
