"""The fused Triton REDGE path (pyro_ext._fused) against the float64 oracle on identical noise.

Runs on a CUDA device when there is one; elsewhere, if Triton is installed, in a subprocess
under Triton's CPU interpreter (TRITON_INTERPRET=1 must be set before Triton compiles the
kernels); skipped where Triton is absent (CPU-only torch ships without it, as in CI).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton", reason="Triton ships with CUDA builds of torch only")

from relaxed_dists import reference as R  # noqa: E402

CASES = [(3, 5, 2, 1.0), (4, 7, 3, 0.5), (2, 10, 5, 0.3), (3, 33, 9, 0.9), (2, 300, 5, 0.5)]


def check_against_oracle(device: str) -> None:
    from pyro_ext._fused import redge_fused

    for b, k, n_steps, t_1 in CASES:
        rng = np.random.default_rng(k)
        logits, eps, gumbels, g = (rng.normal(size=(b, k)) for _ in range(4))
        as_t = lambda a: torch.tensor(a, dtype=torch.float32, device=device)
        lt = as_t(logits).requires_grad_()
        hard, soft = redge_fused(lt, n_steps, t_1, eps=as_t(eps), gumbels=as_t(gumbels))
        (as_t(g) * hard).sum().backward()
        ref_hard, ref_soft = R.redge(logits, n_steps, t_1, eps, gumbels)
        assert np.array_equal(hard.detach().cpu().numpy(), ref_hard)
        # float32 arithmetic on O(1) values through <= 8 softmaxes: errors ~1e-7
        np.testing.assert_allclose(soft.detach().cpu().numpy(), ref_soft, atol=2e-6)
        np.testing.assert_allclose(lt.grad.cpu().numpy(), R.redge_vjp(logits, n_steps, t_1, eps, g), atol=2e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_matches_oracle_cuda():
    check_against_oracle("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.statistical
def test_fused_in_kernel_noise_follows_softmax_at_t1_one():
    """At t_1 = 1 the hard draws are Cat(softmax(logits)); chi-square at alpha = 1e-3
    (seeded, so a false failure would reproduce; rate 1e-3 per fresh seed)."""
    from scipy.stats import chisquare

    from pyro_ext._fused import redge_fused

    torch.manual_seed(0)
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0], device="cuda").expand(200_000, 4)
    hard, _ = redge_fused(logits, 3, 1.0, store_soft=False)
    counts = hard.sum(0).cpu().numpy()
    expected = torch.softmax(logits[0], -1).cpu().numpy() * 200_000
    assert chisquare(counts, expected).pvalue > 1e-3
    assert ((hard == 0) | (hard == 1)).all() and (hard.sum(-1) == 1).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA test covers it")
def test_fused_matches_oracle_interpreter():
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import test_fused; test_fused.check_against_oracle('cpu')"
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=os.path.dirname(here), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
