"""``benchmarks/polynomial.py``: its exact objective against a Monte Carlo estimate and the
closed form at zero logits, REINFORCE's progress on it, and the script in ``--quick`` mode.

The Monte Carlo test is seeded (so deterministic) and marked ``statistical``: its margin is
five standard errors of the sample mean, a false-failure rate of ~6e-7 under the CLT.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "polynomial.py"
_spec = importlib.util.spec_from_file_location("polynomial", SCRIPT)
poly = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(poly)

POWERS = torch.tensor([1.5, 2.0, 3.0], dtype=torch.float64)
N_SE = 5.0  # margin in standard errors; false-failure rate ~6e-7 per power (module docstring)


@pytest.mark.statistical
def test_exact_objective_matches_monte_carlo():
    n_vars, n = 8, 50_000
    logits = torch.randn(len(POWERS), n_vars, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.manual_seed(1)
    x = torch.distributions.OneHotCategorical(logits=logits[:, None].expand(-1, n, -1, -1)).sample()
    values = poly.objective(x, POWERS)  # (P, n)
    se = values.std(dim=-1) / n**0.5
    error = (poly.exact_objective(logits, POWERS) - values.mean(dim=-1)).abs()
    assert (error < N_SE * se).all(), (error, se)


def test_exact_objective_at_zero_logits_closed_form():
    logits = torch.zeros(len(POWERS), 5, 2, dtype=torch.float64)
    # pi_i = 1/2: E f = (0.55^p + 0.45^p) / 2, exact up to float64 rounding
    expected = 0.5 * (0.55**POWERS + 0.45**POWERS)
    torch.testing.assert_close(poly.exact_objective(logits, POWERS), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(poly.optimum(POWERS), 0.45**POWERS, rtol=0, atol=0)


def test_objective_of_one_hots():
    x = torch.nn.functional.one_hot(torch.tensor([[0, 1, 1, 0]]), 2).to(torch.float64)  # X = (0, 1, 1, 0), p = 2
    # (2 * 0.45^2 + 2 * 0.55^2) / 4; float64 rounding only
    torch.testing.assert_close(
        poly.objective(x, torch.tensor([2.0], dtype=torch.float64)),
        torch.tensor([0.2525], dtype=torch.float64),
        rtol=0,
        atol=1e-15,
    )


def test_reinforce_decreases_the_exact_objective():
    powers = torch.tensor([1.5, 2.0, 3.0])
    result = poly.train("reinforce", {}, powers, seeds=2, batch=32, n_vars=16, steps=200, seed=0)
    start, end = result["gap_curve"][0], result["gap_curve"][-1]
    # seeded; the gap starts at (0.55^p - 0.45^p) / 2 and REINFORCE with a baseline is unbiased, so after
    # 200 Adam steps (lr 0.05) it has shrunk by far more than half in every run
    assert (end < 0.5 * start).all(), (start, end)


def test_script_quick(tmp_path):
    out = tmp_path / "polynomial.md"
    text = poly.main(["--quick", "--out", str(out)])
    assert out.read_text() == text + "\n"
    assert out.with_suffix(".png").exists()
    for label, _, _ in poly.ESTIMATORS:
        assert text.count(f"| {label} |") == 3  # one row per power
