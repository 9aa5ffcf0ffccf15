"""The noise helpers of both backends: the right law (seeded KS tests, alpha = 1e-3, so a
false failure would reproduce with the seed; rate 1e-3 per fresh seed), finite at the clamp
boundaries, and exact one-hots / straight-through in low precision."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import stats

from numpyro_ext import _ops as jops
from pyro_ext import _ops as tops

N = 50_000


@pytest.mark.statistical
def test_gumbel_and_logistic_laws():
    torch.manual_seed(0)
    draws = {
        "torch gumbel": (tops.sample_gumbel((N,), torch.float32, "cpu").numpy(), stats.gumbel_r.cdf),
        "jax gumbel": (np.asarray(jops.sample_gumbel(jax.random.PRNGKey(0), (N,), jnp.float32)), stats.gumbel_r.cdf),
        "torch logistic": (tops.sample_logistic((N,), torch.float32, "cpu").numpy(), stats.logistic.cdf),
        "jax logistic": (
            np.asarray(jops.sample_logistic(jax.random.PRNGKey(1), (N,), jnp.float32)),
            stats.logistic.cdf,
        ),
    }
    for name, (x, cdf) in draws.items():
        assert stats.kstest(x, cdf).pvalue > 1e-3, name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_clamped_noise_is_finite_at_the_boundaries(dtype):
    u = tops.clamp_uniform(torch.tensor([0.0, 1.0], dtype=dtype))
    assert torch.isfinite(tops.gumbel_from_uniform(u)).all()
    assert torch.isfinite(tops.logistic_from_uniform(u)).all()
    ju = jops.clamp_uniform(jnp.asarray([0.0, 1.0], dtype=jnp.dtype(str(dtype).split(".")[-1])))
    assert bool(jnp.isfinite(jops.gumbel_from_uniform(ju)).all())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_straight_through_is_exactly_one_hot(dtype):
    scores = np.random.default_rng(0).normal(size=(64, 7))
    soft = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    t = tops.straight_through(
        tops.one_hot_argmax(torch.tensor(scores).to(getattr(torch, dtype))),
        torch.tensor(soft).to(getattr(torch, dtype)),
    )
    j = jops.straight_through(jops.one_hot_argmax(jnp.asarray(scores, dtype)), jnp.asarray(soft, dtype))
    for value in (t.float().numpy(), np.asarray(j, np.float32)):
        assert set(np.unique(value)) <= {0.0, 1.0} and np.all(value.sum(-1) == 1)


@pytest.mark.parametrize("k", [3, 16, 40])  # below and above REDUCTION_ONE_HOT_MIN_K (32)
def test_jax_one_hot_argmax_follows_argmax_on_ties_nan_and_inf(k):
    # jnp.argmax's rules: ties go to the first index, a NaN counts as the maximum (first NaN wins).
    rng = np.random.default_rng(0)
    rows = np.round(rng.normal(size=(12, k)))  # rounded: many ties
    rows[1, :] = 0.0
    rows[2, [1, k - 1]] = np.nan
    rows[3, :] = np.nan
    rows[4, :] = -np.inf
    rows[5, [0, 2]] = np.inf
    rows[6, 0], rows[6, 2] = -np.inf, np.nan
    rows[7, k - 1] = np.nan
    for dtype in (jnp.float32, jnp.float64, jnp.bfloat16):
        scores = jnp.asarray(rows, dtype)
        hard = jax.jit(jops.one_hot_argmax)(scores)
        assert hard.dtype == dtype
        np.testing.assert_array_equal(hard, jax.nn.one_hot(jnp.argmax(scores, axis=-1), k, dtype=dtype))
