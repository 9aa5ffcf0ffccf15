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


# --- JAX: the normal and the uniforms of the REDGE chains from one threefry hash -----------


@pytest.mark.parametrize("shape", [(), (7,), (5, 6, 7)])
def test_one_hash_words_are_jax_threefry_counters(shape):
    # the XOR of the two words is exactly jax.random.bits under partitionable threefry (JAX's
    # default): the same hash on the same per-element counters, both words kept
    key = jax.random.PRNGKey(3)
    word_a, word_b = jops._threefry_words(key, shape)
    with jax.threefry_partitionable(True):
        assert bool(jnp.all((word_a ^ word_b) == jax.random.bits(key, shape, jnp.uint32)))
    # the words become floats exactly as jax.random.uniform and jax.random.normal make them
    bits = jax.random.bits(key, (1000,), jnp.uint32)
    assert bool(jnp.all(jops._unit_float(bits) == jax.random.uniform(key, (1000,), jnp.float32)))
    assert bool(jnp.all(jops._normal_from_bits(bits) == jax.random.normal(key, (1000,), jnp.float32)))


@pytest.mark.statistical
def test_one_hash_normal_and_uniform_laws_and_independence():
    # seeded, alpha = 1e-3 each: the normal and the uniform follow their laws, and they are
    # independent (chi-square on a 10 x 10 table of their deciles: one hash feeds both)
    z, u = jops.sample_normal_and_uniform(jax.random.PRNGKey(0), (250, 200), jnp.float32)
    z, u = np.asarray(z, np.float64).ravel(), np.asarray(u, np.float64).ravel()
    assert stats.kstest(z, stats.norm.cdf).pvalue > 1e-3
    assert stats.kstest(u, stats.uniform.cdf).pvalue > 1e-3
    assert np.all((u > 0) & (u < 1)) and np.all(np.isfinite(z))
    table = np.histogram2d(stats.norm.cdf(z), u, bins=10, range=[[0, 1], [0, 1]])[0]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # neighbouring elements are independent too (counters differ by one)
    assert abs(stats.pearsonr(z[:-1], z[1:]).statistic) < 4 / np.sqrt(z.size)


def test_one_hash_under_jit_and_vmap_and_the_fallbacks():
    key = jax.random.PRNGKey(5)
    eager = jops.sample_normal_and_uniform(key, (4, 3), jnp.float32)
    jitted = jax.jit(lambda k: jops.sample_normal_and_uniform(k, (4, 3), jnp.float32))(key)
    assert all(bool(jnp.all(a == b)) for a, b in zip(eager, jitted))
    keys = jax.random.split(key, 3)
    batched = jax.vmap(lambda k: jops.sample_normal_and_uniform(k, (4, 3), jnp.float32))(keys)
    for i in range(3):
        single = jops.sample_normal_and_uniform(keys[i], (4, 3), jnp.float32)
        assert all(bool(jnp.all(a[i] == b)) for a, b in zip(batched, single))
    assert bool(
        jnp.all(eager[0] == jops.sample_normal_and_uniform(jax.random.wrap_key_data(key), (4, 3), "float32")[0])
    )
    # other key implementations and dtypes: jax.random's two draws on a split key
    for key, dtype in [(jax.random.key(5, impl="rbg"), jnp.float32), (jax.random.PRNGKey(5), jnp.bfloat16)]:
        key_normal, key_uniform = jax.random.split(key)
        z, u = jops.sample_normal_and_uniform(key, (4, 3), dtype)
        assert z.dtype == u.dtype == dtype
        assert bool(jnp.all(z == jax.random.normal(key_normal, (4, 3), dtype)))
        assert bool(jnp.all(u == jops.sample_uniform(key_uniform, (4, 3), dtype)))


@pytest.mark.parametrize("shape", [(), (1,), (4, 7), (3, 2, 8)])
def test_paired_uniforms_take_both_words_of_each_hash(shape):
    # float32 + threefry: entry j of the last axis's first half and entry j of its second half
    # are the two words of the hash at (..., j); an odd last axis drops the last second word
    key = jax.random.PRNGKey(11)
    u = jops.sample_uniform(key, shape, jnp.float32)
    assert u.shape == shape and u.dtype == jnp.float32
    n_last = shape[-1] if shape else 1
    half = -(-n_last // 2)
    first, second = jops._threefry_words(key, shape[:-1] + (half,))
    flat = np.asarray(u).reshape(shape[:-1] + (n_last,))
    np.testing.assert_array_equal(flat[..., :half], jops.clamp_uniform(jops._unit_float(first)))
    np.testing.assert_array_equal(flat[..., half:], jops.clamp_uniform(jops._unit_float(second))[..., : n_last // 2])


@pytest.mark.statistical
def test_paired_uniforms_law_and_independence_of_the_two_words():
    # seeded, alpha = 1e-3: uniform law of all draws; the two words of a hash (column j and
    # column 51 + j) independent: chi-square on a 10 x 10 table of their deciles
    u = np.asarray(jops.sample_uniform(jax.random.PRNGKey(4), (500, 101), jnp.float32), np.float64)
    assert stats.kstest(u.ravel(), stats.uniform.cdf).pvalue > 1e-3
    table = np.histogram2d(u[:, :50].ravel(), u[:, 51:].ravel(), bins=10, range=[[0, 1], [0, 1]])[0]
    assert stats.chi2_contingency(table).pvalue > 1e-3
