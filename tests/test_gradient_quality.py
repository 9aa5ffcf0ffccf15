"""``benchmarks/gradient_quality.py``: its exact gradient by enumeration against closed forms,
REINFORCE and straight-through against that exact gradient, REDGE's bias against ``t_1``, and
the script itself in ``--quick`` mode.

Statistical tests are seeded (so deterministic) and marked ``statistical``. Their margin is
five standard errors: with ``e`` the error of a mean of ``M`` per-sample gradients and ``tr``
the trace of their covariance, ``E||e||^2 = tr / M``, and under the CLT
``P(||e||^2 > 25 tr / M) <= P(chi2_1 > 25) ~ 6e-7`` (the worst case puts all the variance in
one direction; Markov's inequality alone gives 4%). That is each assertion's false-failure rate.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gradient_quality.py"
_spec = importlib.util.spec_from_file_location("gradient_quality", SCRIPT)
gq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gq)

N_SE = 5.0  # margin in standard errors; false-failure rate ~6e-7 per assertion (module docstring)


def _softmax_vjp(p, g):
    return p * (g - (p * g).sum(dim=-1, keepdim=True))


def test_exact_gradient_linear_closed_form():
    logits = gq.problem_logits(seed=3)
    c = torch.randn(gq.L, gq.K, generator=torch.Generator().manual_seed(4), dtype=gq.DTYPE)
    p = torch.softmax(logits, dim=-1)
    # d/dlogits sum_l <c_l, softmax(logits_l)> = p * (c - <p, c>); float64 sums over 64 configurations
    torch.testing.assert_close(
        gq.exact_gradient(lambda x: (x * c).sum(dim=(-2, -1)), logits), _softmax_vjp(p, c), rtol=0, atol=1e-12
    )


def test_exact_gradient_quadratic_closed_form():
    logits = gq.problem_logits(seed=5)
    a = torch.randn(gq.L, gq.L, gq.K, gq.K, generator=torch.Generator().manual_seed(6), dtype=gq.DTYPE)
    p = torch.softmax(logits, dim=-1)
    # E sum_{l,m} X_l^T A_lm X_m = sum_{l != m} p_l^T A_lm p_m + sum_l <diag(A_ll), p_l> (independent one-hots, X_lk^2 = X_lk)
    diag = torch.diagonal(a, dim1=0, dim2=1).permute(2, 0, 1)  # (L, K, K): A_ll
    off = a * (1.0 - torch.eye(gq.L, dtype=gq.DTYPE))[..., None, None]
    d_p = (
        torch.einsum("lmkj,mj->lk", off, p)
        + torch.einsum("mljk,mj->lk", off, p)
        + torch.diagonal(diag, dim1=-2, dim2=-1)
    )
    exact = gq.exact_gradient(lambda x: torch.einsum("...lk,lmkj,...mj->...", x, a, x), logits)
    torch.testing.assert_close(exact, _softmax_vjp(p, d_p), rtol=0, atol=1e-12)


@pytest.mark.statistical
@pytest.mark.parametrize("name", ["quadratic", "bump"])
def test_reinforce_is_unbiased(name):
    f, logits = gq.smooth_functions()[name], gq.problem_logits()
    torch.manual_seed(0)
    row = gq.summarise(gq.reinforce_gradients(f, logits, 20_000), gq.exact_gradient(f, logits))
    assert row["bias"] <= N_SE * row["se"], row


def test_straight_through_is_exact_for_linear_f():
    # ST's gradient of <c, X> is softmax_vjp(p, c) whatever the sample: exact per sample, so its mean is exact too
    f, logits = gq.smooth_functions()["linear"], gq.problem_logits()
    torch.manual_seed(0)
    grads = gq.estimator_gradients(f, logits, "st", {}, 1_000)
    torch.testing.assert_close(grads, gq.exact_gradient(f, logits).expand_as(grads), rtol=0, atol=1e-12)


@pytest.mark.statistical
def test_redge_bias_shrinks_with_t_1_for_nonlinear_f():
    # Each estimated bias is within ||e|| / ||g|| of the true one (triangle inequality), so the
    # ordering holds if the intervals bias +- N_SE se do not overlap. Measured at M = 100000:
    # bias 0.27 (se 0.16) at t_1 = 0.1 against 1.92 (se 0.016) at t_1 = 0.9.
    f, logits = gq.smooth_functions()["bump"], gq.problem_logits()
    exact = gq.exact_gradient(f, logits)
    rows = {}
    for t_1 in (0.1, 0.9):
        torch.manual_seed(0)
        rows[t_1] = gq.summarise(gq.estimator_gradients(f, logits, "redge", {"n_steps": 5, "t_1": t_1}, 100_000), exact)
    assert rows[0.1]["bias"] + N_SE * rows[0.1]["se"] < rows[0.9]["bias"] - N_SE * rows[0.9]["se"], rows


def test_script_quick(tmp_path):
    out = tmp_path / "gq.md"
    # a subprocess, as a user runs it; --quick keeps it to a few seconds
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "reinforce (LOO)" in text and "redge n=3 t_1=0.1" in text and "Rao-Blackwellised" in text
    assert out.with_suffix(".png").stat().st_size > 0
