"""JAX estimator kernels (``numpyro_ext.estimators``) and samplers (``numpyro_ext.functional``).

The kernels are fed the same float64 noise as ``relaxed_dists.reference`` and must agree
with it in the forward value (hard and soft) and in the gradient with respect to the logits.
Compiles dominate the run time, so the REDGE grid (batch shape x K x n_steps x t_1) is
covered by a small covering design rather than the full product.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

from cases import CASES, make_logits
from numpyro_ext import _keyed as KY, _ops as jops, estimators as E, functional as F
from relaxed_dists import reference as R

# Float64 agreement with the oracle: the kernels do the oracle's arithmetic in another
# order (fused XLA ops, softmax via log-softmax); observed gaps are <= 3e-14 (ReinMax, K =
# 1000, logits to +-50) and <= 3e-15 for REDGE, so 1e-12 leaves room without hiding a
# wrong term (a wrong term shows at >= 1e-4).
ORACLE_TOL = 1e-12

# A covering design ``(batch_shape, K, n_steps, t_1)``: every value of every factor
# appears and n_steps = 3 and 9 each meet two values of t_1 and K; t_1 = 1 with n_steps = 2
# is checked against straight-through below.
REDGE_CASES = [
    ((), 2, 2, 0.9),
    ((3,), 5, 3, 0.3),
    ((2, 1), 50, 5, 0.5),
    ((), 50, 9, 0.9),
    ((3,), 2, 9, 0.3),
    ((2, 1), 5, 3, 1.0),
]


def _noise(shape, seed):
    """Float64 ``(eps, gumbels, g)``: chain noise, Gumbel noise and an upstream cotangent."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), R.gumbel_from_uniform(rng.uniform(size=shape)), rng.normal(size=shape)


def _vjp(kernel, logits, g, g_soft=None):
    """``(hard, soft, d<g, hard> + <g_soft, soft> / d logits)`` of ``kernel(logits)``."""
    g_soft = np.zeros_like(g) if g_soft is None else g_soft

    @jax.jit  # one compile per case instead of one per primitive
    def forward_and_vjp(logits, g, g_soft):
        (hard, soft), pullback = jax.vjp(kernel, logits)
        return hard, soft, pullback((g, g_soft))[0]

    return forward_and_vjp(jnp.asarray(logits), jnp.asarray(g), jnp.asarray(g_soft))


def _is_one_hot(x):
    return bool(jnp.all((x == 0) | (x == 1)) & jnp.all(jnp.sum(x, axis=-1) == 1))


def _central_difference(f, x, h=1e-6):
    """Float64 central difference of the scalar ``f`` at the array ``x`` (error ~1e-10 here)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        bump = np.zeros_like(x)
        bump[i] = h
        grad[i] = (f(x + bump) - f(x - bump)) / (2 * h)
    return grad


# --- oracle agreement ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
def test_straight_through_matches_oracle(case):
    logits = case.logits
    _, gumbels, g = _noise(logits.shape, seed=1)
    hard, soft, grad = _vjp(lambda lg: E.straight_through(lg, gumbels), logits, g)
    ref_hard, ref_soft = R.straight_through(logits, gumbels)
    np.testing.assert_array_equal(hard, ref_hard)
    np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=ORACLE_TOL)
    np.testing.assert_allclose(grad, R.straight_through_vjp(logits, g), rtol=0, atol=ORACLE_TOL)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gumbel_softmax_matches_oracle(case):
    logits, tau = case.logits, case.temperature
    _, gumbels, g = _noise(logits.shape, seed=2)
    hard, soft, grad = _vjp(lambda lg: E.gumbel_softmax(lg, tau, gumbels), logits, g)
    ref_hard, ref_soft = R.gumbel_softmax(logits, tau, gumbels)
    np.testing.assert_array_equal(hard, ref_hard)
    np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=ORACLE_TOL)
    # The gradient scales as 1 / tau (up to 20 here): tolerance relative to that scale.
    np.testing.assert_allclose(grad, R.gumbel_softmax_vjp(logits, tau, gumbels, g), rtol=0, atol=ORACLE_TOL / tau)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_reinmax_matches_oracle(case):
    logits, tau = case.logits, case.temperature
    _, gumbels, g = _noise(logits.shape, seed=3)
    g_soft = np.random.default_rng(4).normal(size=logits.shape)
    hard, soft, grad = _vjp(lambda lg: E.reinmax(lg, tau, gumbels), logits, g, g_soft)
    ref_hard, ref_soft = R.straight_through(logits, gumbels)  # ReinMax samples as straight-through does
    np.testing.assert_array_equal(hard, ref_hard)
    np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=ORACLE_TOL)
    expected = R.reinmax_vjp(logits, tau, ref_hard, g) + R.straight_through_vjp(logits, g_soft)
    np.testing.assert_allclose(grad, expected, rtol=0, atol=ORACLE_TOL)


@pytest.mark.parametrize("name", ["redge", "redge_cov", "reindge"])
@pytest.mark.parametrize("batch_shape, k, n_steps, t_1", REDGE_CASES)
def test_redge_family_matches_oracle(name, batch_shape, k, n_steps, t_1):
    logits = make_logits(batch_shape, k, spread=3.0, seed=k)
    eps, gumbels, g = _noise(logits.shape, seed=n_steps)
    kernel = getattr(E, name)
    hard, soft, grad = _vjp(lambda lg: kernel(lg, n_steps, t_1, eps, gumbels), logits, g)
    forward = R.redge_cov if name == "redge_cov" else R.redge  # REINDGE's forward is REDGE's
    ref_hard, ref_soft = forward(logits, n_steps, t_1, eps, gumbels)
    np.testing.assert_array_equal(hard, ref_hard)
    np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=ORACLE_TOL)
    if name == "redge":
        expected, tol = R.redge_vjp(logits, n_steps, t_1, eps, g), ORACLE_TOL
    elif name == "reindge":
        expected, tol = R.reindge_vjp(logits, n_steps, t_1, eps, ref_hard, g), ORACLE_TOL
    else:
        # The oracle is a float64 central difference (h = 1e-6): truncation plus
        # round-off is about 1e-9 at most (observed 2e-9 with K = 50), not 1e-12.
        expected, tol = R.redge_cov_vjp(logits, n_steps, t_1, eps, g), 1e-8
    np.testing.assert_allclose(grad, expected, rtol=0, atol=tol)


@pytest.mark.parametrize("name", ["redge", "reindge"])
@pytest.mark.parametrize(
    "block_entries,min_k",
    [(6, 2), (25, 2), (10**6, 2), (6, 64)],  # several blocks with a padded tail, one block, K < min K: whole
)
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])  # one device, several
def test_redge_row_blocks_match_oracle(monkeypatch, name, block_entries, min_k, strided):
    """The float-``t_1`` kernel runs the chain over row blocks (``lax.map``, rows zero-padded to
    whole blocks) when ``K >= REDGE_BLOCK_MIN_K``, else whole: with blocks of 1 and 5 rows out of
    7 x 3 = 21 rows, one block, or unblocked, and logits broadcast against a leading sample axis,
    it gives the oracle's samples and gradient."""
    monkeypatch.setattr(E, "REDGE_BLOCK_ENTRIES", block_entries)
    monkeypatch.setattr(E, "REDGE_BLOCK_MIN_K", min_k)
    monkeypatch.setattr(E, "_strided_blocks", lambda: strided)
    assert E._blocked(False, (3, 7, 5)) == (min_k <= 5)
    logits = make_logits((7,), 5, spread=3.0, seed=11)
    eps, gumbels, g = _noise((3, 7, 5), seed=12)
    kernel = getattr(E, name)
    hard, soft, grad = _vjp(lambda lg: kernel(lg, 4, 0.4, eps, gumbels), logits, g)
    ref_hard, ref_soft = R.redge(np.broadcast_to(logits, eps.shape), 4, 0.4, eps, gumbels)
    np.testing.assert_array_equal(hard, ref_hard)
    np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=ORACLE_TOL)
    full = np.broadcast_to(logits, eps.shape)
    expected = R.redge_vjp(full, 4, 0.4, eps, g) if name == "redge" else R.reindge_vjp(full, 4, 0.4, eps, ref_hard, g)
    np.testing.assert_allclose(grad, expected.sum(0), rtol=0, atol=ORACLE_TOL)


@pytest.mark.parametrize("name", ["redge", "reindge"])
@pytest.mark.parametrize("block_entries", [10, 25, 10**6])  # blocks of 2 and 5 rows (padded tail), one block
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_keyed_path_draws_the_same_noise_in_the_blocks(monkeypatch, name, block_entries, strided):
    """The samplers' keyed path (``numpyro_ext._keyed``: noise made inside each row block from the
    key, made again in the backward) gives exactly the samples of drawing the noise whole with
    ``sample_normal_and_uniform`` and calling the kernel, and the same gradient up to float32
    round-off, with logits broadcast against a leading sample axis."""
    monkeypatch.setattr(E, "REDGE_BLOCK_ENTRIES", block_entries)
    monkeypatch.setattr(E, "REDGE_BLOCK_MIN_K", 2)
    monkeypatch.setattr(KY, "KEYED_MIN_ENTRIES", 1)
    monkeypatch.setattr(E, "_strided_blocks", lambda: strided)
    logits = jnp.asarray(make_logits((7,), 5, spread=3.0, seed=11), jnp.float32)
    shape, key = (3, 7, 5), jax.random.PRNGKey(8)
    g = jnp.asarray(_noise(shape, seed=12)[2], jnp.float32)
    kernel = getattr(E, name)
    assert KY.keyed_available(logits, 0.4, key, shape)

    def whole(lg):
        eps, u = jops.sample_normal_and_uniform(key, shape, jnp.float32)
        return kernel(lg, 4, 0.4, eps, jops.gumbel_from_uniform(u))

    keyed_sample, keyed_pullback = jax.vjp(lambda lg: KY.draw(kernel, lg, 4, 0.4, key, shape)[0], logits)
    whole_sample, whole_pullback = jax.vjp(lambda lg: whole(lg)[0], logits)
    np.testing.assert_array_equal(keyed_sample, whole_sample)
    assert np.all(np.isin(np.asarray(keyed_sample), [0.0, 1.0]))
    np.testing.assert_allclose(keyed_pullback(g)[0], whole_pullback(g)[0], rtol=1e-5, atol=1e-6)


def test_keyed_path_only_where_it_applies():
    logits, key, shape = jnp.zeros((4, 64), jnp.float32), jax.random.PRNGKey(0), (KY.KEYED_MIN_ENTRIES // 64, 64)
    assert KY.keyed_available(logits, 0.5, key, shape)
    assert not KY.keyed_available(logits, 0.5, key, (shape[0] - 1, 64))  # fewer entries: drawn whole
    assert not KY.keyed_available(logits, jnp.asarray(0.5), key, shape)  # an array t_1: the general path
    assert not KY.keyed_available(logits.astype(jnp.float64), 0.5, key, shape)  # jax.random's draws
    assert not KY.keyed_available(logits, 0.5, jax.random.key(0, impl="rbg"), shape)
    assert not KY.keyed_available(logits[:, :9], 0.5, key, (shape[0] * 8, 9))  # K < REDGE_BLOCK_MIN_K: whole chain


@pytest.mark.parametrize("name", ["redge", "redge_cov"])
def test_array_t_1_gradient_matches_finite_difference(name):
    logits = make_logits((3,), 5, spread=3.0)
    eps, gumbels, w = _noise(logits.shape, seed=5)
    t_1 = np.array([0.3, 0.6, 0.95])
    forward = getattr(R, name)
    loss = lambda t: jnp.sum(w * getattr(E, name)(logits, 5, t, eps, gumbels)[0])
    value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(t_1))
    np.testing.assert_allclose(value, np.sum(w * forward(logits, 5, t_1, eps, gumbels)[0]), rtol=0, atol=ORACLE_TOL)
    expected = _central_difference(lambda t: np.sum(w * forward(logits, 5, t, eps, gumbels)[1]), t_1)
    # Central difference with h = 1e-6 in float64: error ~1e-10 (observed 1.4e-10).
    np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-8)


def test_gumbel_softmax_array_temperature_gradient():
    logits = make_logits((3,), 5, spread=3.0)
    _, gumbels, w = _noise(logits.shape, seed=6)
    tau = np.array([0.1, 0.5, 2.0])
    grad = jax.grad(lambda t: jnp.sum(w * E.gumbel_softmax(logits, t, gumbels)[0]))(jnp.asarray(tau))
    expected = _central_difference(lambda t: np.sum(w * R.gumbel_softmax(logits, t, gumbels)[1]), tau)
    # Central difference with h = 1e-6 on a function of scale 1 / tau^2 <= 100: error ~1e-8.
    np.testing.assert_allclose(grad, expected, rtol=1e-7, atol=1e-8)


# --- closed forms ----------------------------------------------------------------------


def test_straight_through_closed_form_k2():
    # K = 2, upstream g = e_0: d hard_0 / d logits = p_0 p_1 (1, -1) whatever the sample.
    logits = np.array([0.3, -1.2])
    p = R.softmax(logits)
    for gumbels in (np.array([5.0, 0.0]), np.array([0.0, 5.0])):
        grad = jax.grad(lambda lg: E.straight_through(lg, gumbels)[0][0])(jnp.asarray(logits))
        np.testing.assert_allclose(grad, p[0] * p[1] * np.array([1.0, -1.0]), rtol=1e-14)  # float64 round-off


def test_reinmax_closed_form_k2():
    # K = 2, tau = 1, hard = e_0, g = e_0: pi_1 = ((p_0 + 1) / 2, p_1 / 2) and
    # 2 J_{pi_1}^T g - J_{p}^T g / 2 = (p_1 / 2) (1, -1) (already centred).
    logits = np.array([0.3, -1.2])
    p = R.softmax(logits)
    gumbels = np.array([5.0, 0.0])  # forces hard = e_0
    grad = jax.grad(lambda lg: E.reinmax(lg, 1.0, gumbels)[0][0])(jnp.asarray(logits))
    np.testing.assert_allclose(grad, 0.5 * p[1] * np.array([1.0, -1.0]), rtol=1e-14)  # float64 round-off


def test_reinmax_gives_no_gradient_to_temperature_and_centres_logits():
    logits = make_logits((3,), 5, spread=3.0)
    _, gumbels, w = _noise(logits.shape, seed=7)
    loss = lambda lg, tau: jnp.sum(w * E.reinmax(lg, tau, gumbels)[0])
    d_logits, d_tau = jax.grad(loss, argnums=(0, 1))(jnp.asarray(logits), jnp.array([0.5, 1.0, 2.0]))
    np.testing.assert_array_equal(d_tau, 0.0)
    np.testing.assert_allclose(jnp.sum(d_logits, axis=-1), 0.0, atol=1e-15)  # centred up to round-off


@pytest.mark.parametrize("batch_shape", [(), (2, 1)])
def test_redge_at_t_1_one_two_steps_is_straight_through(batch_shape):
    logits = make_logits(batch_shape, 5, spread=3.0)
    eps, gumbels, g = _noise(logits.shape, seed=8)
    hard, soft, grad = _vjp(lambda lg: E.redge(lg, 2, 1.0, eps, gumbels), logits, g)
    st_hard, st_soft, st_grad = _vjp(lambda lg: E.straight_through(lg, gumbels), logits, g)
    np.testing.assert_array_equal(hard, st_hard)
    # alpha_1 = 0 makes the denoiser softmax(logits) exactly; only the softmax route
    # (exp(log_softmax) vs softmax) may differ in the last bit.
    np.testing.assert_allclose(soft, st_soft, rtol=0, atol=1e-15)
    np.testing.assert_allclose(grad, st_grad, rtol=0, atol=1e-15)


def test_reindge_at_t_1_one_two_steps_is_reinmax_at_temperature_one():
    logits = make_logits((3,), 5, spread=3.0)
    eps, gumbels, g = _noise(logits.shape, seed=9)
    hard, _, grad = _vjp(lambda lg: E.reindge(lg, 2, 1.0, eps, gumbels), logits, g)
    rm_hard, _, rm_grad = _vjp(lambda lg: E.reinmax(lg, 1.0, gumbels), logits, g)
    np.testing.assert_array_equal(hard, rm_hard)
    np.testing.assert_allclose(grad, rm_grad, rtol=0, atol=1e-15)  # same terms, other order: round-off


@pytest.mark.parametrize("name", ["redge", "binary_redge"])  # REINDGE's: the same VJP (oracle tests)
def test_float_t_1_kernel_matches_the_general_path(name):
    # A Python-float t_1 takes the hand-written recomputing VJP on folded coefficients; an
    # array t_1 the autodiffed chain. Same math, other rounding order: float64 to 1e-10.
    # Cases: t_1 below the sigma floor; three reverse steps; noise with a sample shape and
    # logits broadcast over a batch axis (the VJP sums back to logits' shape). Compiles
    # dominate (about 0.5 s each), hence two cases.
    kernel = getattr(E, name)
    logits = jnp.asarray(make_logits((3, 1), 6, spread=4.0))
    for n_steps, t_1, shape in [(3, 1e-20, (3, 4, 6)), (5, 0.3, (2, 3, 4, 6))]:
        eps, gumbels, g = _noise(shape, seed=n_steps)
        g_soft = np.random.default_rng(n_steps + 1).normal(size=shape)
        new = _vjp(lambda lg: kernel(lg, n_steps, t_1, eps, gumbels), logits, g, g_soft)
        old = _vjp(lambda lg: kernel(lg, n_steps, jnp.asarray(t_1), eps, gumbels), logits, g, g_soft)
        assert new[2].shape == logits.shape
        for a, b in zip(new, old):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# --- dtypes, transformations, memory -----------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_exactly_one_hot_in_low_precision(dtype):
    logits = jnp.asarray(make_logits((64,), 50, spread=10.0), dtype)
    params = dict(tau=0.1, n_steps=3, t_1=0.5)
    draw_all = jax.jit(lambda key: {name: sampler(key, logits, **params) for name, sampler in F.SAMPLERS.items()})
    for name, sample in draw_all(jax.random.PRNGKey(0)).items():
        assert sample.dtype == dtype, name
        assert _is_one_hot(sample), name


@pytest.mark.parametrize("name", ["gumbel_softmax", "redge", "redge_cov"])  # REINDGE's soft is REDGE's
def test_check_grads_on_soft_path(name):
    logits = jnp.asarray(make_logits((2,), 4, spread=2.0))
    eps, gumbels, _ = _noise(logits.shape, seed=10)
    if name == "gumbel_softmax":
        soft = lambda lg, tau: E.gumbel_softmax(lg, tau, gumbels)[1]
        args = (logits, jnp.array([0.5, 2.0]))
    else:
        soft = lambda lg, t_1: getattr(E, name)(lg, 4, t_1, eps, gumbels)[1]
        args = (logits, jnp.array([0.4, 0.8]))
    check_grads(jax.jit(soft), args, order=1, modes=("fwd", "rev"))  # jit: one compile, not one per op


def test_jit_vmap_grad_compose():
    logits = jnp.asarray(make_logits((4,), 5, spread=3.0))
    eps, gumbels, w = _noise(logits.shape, seed=11)
    t_1 = jnp.array([0.3, 0.5, 0.7, 0.9])
    per_row = lambda lg, t, e, gm, w_row: jnp.sum(w_row * E.redge(lg, 5, t, e, gm)[0])
    d_logits, d_t_1 = jax.jit(jax.vmap(jax.grad(per_row, argnums=(0, 1))))(logits, t_1, eps, gumbels, w)
    expected = np.stack([R.redge_vjp(np.asarray(logits[i]), 5, float(t_1[i]), eps[i], w[i]) for i in range(4)])
    np.testing.assert_allclose(d_logits, expected, rtol=0, atol=ORACLE_TOL)
    # vmap of per-row grads equals the grad of the batched kernel (rows are independent).
    batched = jax.grad(lambda t: jnp.sum(w * E.redge(logits, 5, t, eps, gumbels)[0]))(t_1)
    np.testing.assert_allclose(d_t_1, batched, rtol=0, atol=1e-14)  # other fusion order: round-off


def test_functional_under_jit_with_static_n_steps():
    sampler = jax.jit(F.redge, static_argnames=("n_steps", "hard", "validate_args"))
    # A traced t_1 has no value to check: validate_args cannot run under jit and is skipped.
    t_1 = jnp.array([0.5, 0.9, 1.0])
    sample = sampler(jax.random.PRNGKey(1), jnp.zeros((3, 4)), n_steps=5, t_1=t_1, validate_args=True)
    assert sample.shape == (3, 4) and _is_one_hot(sample)


@pytest.mark.parametrize("name", ["reinmax", "reindge"])
def test_custom_vjp_kernels_accept_noise_with_a_sample_shape(name):
    # Noise of shape sample_shape + logits.shape: the gradient is the sum over samples,
    # as if the logits had been broadcast to the noise's shape first.
    logits = jnp.asarray(make_logits((3,), 5, spread=3.0))
    eps, gumbels, w = _noise((4, 3, 5), seed=12)
    if name == "reinmax":
        loss = lambda lg: jnp.sum(w * E.reinmax(lg, 0.5, gumbels)[0])
    else:
        loss = lambda lg: jnp.sum(w * E.reindge(lg, 3, 0.5, eps, gumbels)[0])
    grad = jax.jit(jax.grad(loss))(logits)
    expected = jax.jit(jax.grad(lambda lg: loss(jnp.broadcast_to(lg, w.shape))))(logits)
    assert grad.shape == logits.shape
    np.testing.assert_allclose(grad, expected, rtol=0, atol=1e-14)  # same sum, other order: round-off


@pytest.mark.parametrize("name", ["redge", "redge_cov", "reindge"])
def test_forward_keeps_no_chain_intermediates(name):
    # The recompute strategy: the residuals kept for the backward pass do not grow with
    # n_steps (only the grid's scalars do), whereas plain autodiff keeps two arrays a step.
    logits = jnp.asarray(make_logits((3,), 5, spread=3.0))
    eps, gumbels, _ = _noise(logits.shape, seed=13)

    def n_big_residuals(n_steps):
        _, pullback = jax.vjp(lambda lg: getattr(E, name)(lg, n_steps, 0.5, eps, gumbels), logits)
        return sum(leaf.size >= logits.size for leaf in jax.tree.leaves(pullback))

    assert n_big_residuals(9) == n_big_residuals(3)


# --- functional API ----------------------------------------------------------------------


def test_samplers_share_one_call_site_and_match_kernels():
    key, logits = jax.random.PRNGKey(2), jnp.asarray(make_logits((3,), 5, spread=3.0))
    assert sorted(F.SAMPLERS) == ["gumbel", "redge", "redge_cov", "reindge", "reinmax", "st"]
    for name, sampler in F.SAMPLERS.items():
        sample = sampler(key, logits, tau=0.5, n_steps=3, t_1=0.5)  # extra kwargs are ignored
        assert sample.shape == logits.shape and _is_one_hot(sample), name
    soft = F.redge(key, logits, 3, 0.5, hard=False)
    eps, u = jops.sample_normal_and_uniform(key, logits.shape, logits.dtype)  # the sampler's own noise
    gumbels = jops.gumbel_from_uniform(u)
    np.testing.assert_array_equal(soft, E.redge(logits, 3, 0.5, eps, gumbels)[1])
    np.testing.assert_array_equal(F.straight_through(key, logits, hard=False), jax.nn.softmax(logits))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda k, lg: F.redge(k, lg, 1, 0.5), ValueError, r"n_steps must be an integer >= 2, got n_steps=1"),
        (lambda k, lg: F.redge_cov(k, lg, 3.0, 0.5), TypeError, r"n_steps must be an integer >= 2"),
        (lambda k, lg: F.reindge(k, lg, 3, 0.0), ValueError, r"t_1 must be in \(0, 1\], got t_1=0.0"),
        (lambda k, lg: F.redge(k, lg, 3, 1.5), ValueError, r"t_1 must be in \(0, 1\]"),
        (lambda k, lg: F.gumbel_softmax(k, lg, -1.0), ValueError, r"tau must be a finite number > 0"),
        (
            lambda k, lg: F.gumbel_softmax(k, lg, jnp.array([0.5, 0.0]), validate_args=True),
            ValueError,
            r"tau must be a finite number > 0",
        ),
        (lambda k, lg: F.redge(k, lg, 3, jnp.array([0.5, 1.5]), validate_args=True), ValueError, r"t_1 must be in"),
        (lambda k, lg: F.reinmax(k, lg, 0.0), ValueError, r"tau must be a finite number > 0"),
        (lambda k, lg: F.straight_through(k, lg[..., :1]), ValueError, r"at least 2 categories"),
        (lambda k, lg: F.straight_through(k, jnp.ones(3, dtype=jnp.int32)), TypeError, r"logits must be a floating"),
        (lambda k, lg: F.reinmax(k, lg, 0.5, hard=False), NotImplementedError, r"reinmax .* use hard=True"),
        (lambda k, lg: F.reindge(k, lg, 3, 0.5, hard=False), NotImplementedError, r"reindge .* use hard=True"),
    ],
)
def test_functional_errors_name_the_parameter(call, error, match):
    with pytest.raises(error, match=match):
        call(jax.random.PRNGKey(0), jnp.zeros((2, 3)))


# --- statistics --------------------------------------------------------------------------


@pytest.mark.statistical
def test_redge_hard_samples_follow_softmax_at_t_1_one():
    # At t_1 = 1 the last denoiser sees alpha = 0, so soft = softmax(logits) and the hard
    # sample is an exact categorical draw. Chi-square goodness of fit of 20000 seeded
    # draws, rejected at p < 1e-3: false-failure rate 1e-3 (fixed seed: deterministic).
    logits = jnp.array([1.0, 0.0, -1.0, 0.5, -2.0])
    keys = jax.random.split(jax.random.PRNGKey(3), 20_000)
    samples = jax.jit(jax.vmap(lambda k: F.redge(k, logits, 5, 1.0)))(keys)
    counts = np.asarray(jnp.sum(samples, axis=0))
    expected = counts.sum() * np.asarray(jax.nn.softmax(logits))
    assert stats.chisquare(counts, expected).pvalue > 1e-3
