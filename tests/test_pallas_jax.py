"""The fused Pallas REDGE kernel (``numpyro_ext._pallas``), in Pallas interpret mode on CPU.

It must give the XLA kernel's ``(hard, soft)`` and straight-through gradient on the same
noise (float32) and the float64 oracle's (``relaxed_dists.reference``, float64: interpret
mode runs the kernel as ordinary JAX ops, so float64 works there). Compiles dominate the run
time (each case compiles a forward and a backward interpret scan), so the grid of shapes x
n_steps x t_1 is a covering design, not the product. On GPU the same kernels lower to Triton:
not exercised here.
"""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jax.experimental.pallas")
pytest.importorskip("jax.experimental.pallas.triton")

from cases import make_logits  # noqa: E402
from numpyro_ext import _ops, _pallas as P, estimators as E  # noqa: E402
from relaxed_dists import reference as R  # noqa: E402

# Float64 agreement with the oracle: the same arithmetic in another order (coefficients
# folded into Python floats, c_x0 x0 + c_x x instead of the DDIM bridge written out);
# observed gaps are ~1e-15, a wrong term shows at >= 1e-4.
ORACLE_TOL = 1e-12

# Float32 against the XLA kernel on the same float32 inputs: both round differently
# (folded coefficients, e / sum vs the XLA softmax), errors grow with alpha_t / sigma_t^2
# (up to 20 at t_1 = 0.2) along the chain. Observed max gaps in the cases below: soft 4.5e-7,
# gradient 5.5e-7 (|w| ~ 1), the size of the XLA kernel's own float32 gap to the oracle
# (3.6e-7, 5.9e-7); at (33, 64), n_steps 9, t_1 0.2 they reach 1.9e-6, 3.8e-6. 1e-5 leaves
# room for longer chains and is far below a wrong term.
F32_TOL = 1e-5

# A covering design (shape, n_steps, t_1): every shape, n_steps in {2, 3, 5, 9} and
# t_1 in {0.2, 0.5, 1.0} appear. K = 5, 9 are not powers of two (padded, masked classes);
# (2, 7, 9) has batch dims and 14 rows in a 16-row tile; (33, 64) fills one 32-row tile
# and one more row (rows not a multiple of the block). In the last case the logits are
# (7, 9) and the noise (2, 7, 9): a sample shape, as the samplers pass it.
CASES = [
    ((3, 5), 2, 1.0),
    ((2, 7, 9), 9, 0.5),
    ((33, 64), 5, 0.2),
    ((2, 7, 9), 3, 0.2),
]
SAMPLE_SHAPE_CASE = CASES[3]

# Float32 against the XLA kernel: the shortest chain and the case with the largest float32
# gap ((33, 64), t_1 = 0.2: alpha / sigma^2 up to 20, two tiles; at n_steps 3, a cheaper
# compile than 5). Compiles dominate; the float64 comparisons cover the rest.
F32_CASES = [CASES[0], ((33, 64), 3, 0.2)]


def _noise(shape, seed):
    """Float64 ``(eps, gumbels, w)``: chain noise, Gumbel noise and an upstream cotangent."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), R.gumbel_from_uniform(rng.uniform(size=shape)), rng.normal(size=shape)


def _pallas_redge(logits, n_steps, t_1, eps, gumbels):
    """The fused kernel with the caller's straight-through surgery, as ``estimators.redge`` returns it."""
    hard, soft = P.redge_hard_soft(logits, n_steps, t_1, eps, gumbels)
    return _ops.straight_through(hard, soft), soft


def _forward_and_grad(kernel, logits, eps, gumbels, w):
    """``(hard, soft, d sum(w * hard) / d logits)`` of ``kernel(logits, eps, gumbels)``."""
    (hard, soft), pullback = jax.vjp(lambda lg: kernel(lg, eps, gumbels), logits)
    return hard, soft, pullback((w, jnp.zeros_like(soft)))[0]


def _is_one_hot(x):
    return bool(jnp.all((x == 0) | (x == 1)) & jnp.all(jnp.sum(x, axis=-1) == 1))


@pytest.mark.parametrize("shape, n_steps, t_1", CASES)
def test_matches_oracle_in_float64(shape, n_steps, t_1):
    logits_shape = shape[1:] if (shape, n_steps, t_1) == SAMPLE_SHAPE_CASE else shape
    logits = make_logits(logits_shape[:-1], logits_shape[-1], spread=3.0, seed=shape[-1])
    eps, gumbels, w = _noise(shape, seed=n_steps)
    kernel = lambda lg, e, gm: _pallas_redge(lg, n_steps, t_1, e, gm)
    hard, soft, grad = jax.jit(_forward_and_grad, static_argnums=0)(kernel, logits, eps, gumbels, w)
    wide_logits = np.broadcast_to(logits, shape)
    ref_hard, ref_soft = R.redge(wide_logits, n_steps, t_1, eps, gumbels)
    ref_grad = R.redge_vjp(wide_logits, n_steps, t_1, eps, w).reshape((-1,) + logits.shape).sum(0)
    assert hard.shape == soft.shape == shape and grad.shape == logits.shape
    assert hard.dtype == soft.dtype == grad.dtype == jnp.float64
    assert _is_one_hot(hard)
    np.testing.assert_array_equal(hard, ref_hard)
    np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=ORACLE_TOL)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=ORACLE_TOL)


@pytest.mark.parametrize("shape, n_steps, t_1", F32_CASES)
def test_matches_xla_kernel_in_float32(shape, n_steps, t_1):
    logits = make_logits(shape[:-1], shape[-1], spread=3.0, seed=shape[-1])
    inputs = (logits, *_noise(shape, seed=n_steps))
    pallas = lambda lg, e, gm: _pallas_redge(lg, n_steps, t_1, e, gm)
    xla = lambda lg, e, gm: E.redge(lg, n_steps, t_1, e, gm)

    @jax.jit  # one compile for both kernels
    def run(*inputs):
        return _forward_and_grad(pallas, *inputs), _forward_and_grad(xla, *inputs)

    (hard, soft, grad), xla_32 = run(*(np.float32(a) for a in inputs))
    assert hard.dtype == soft.dtype == grad.dtype == jnp.float32
    assert _is_one_hot(hard)
    np.testing.assert_array_equal(hard, xla_32[0])
    np.testing.assert_allclose(soft, xla_32[1], rtol=0, atol=F32_TOL)
    np.testing.assert_allclose(grad, xla_32[2], rtol=0, atol=F32_TOL)
    ref_soft = R.redge(logits, n_steps, t_1, inputs[1], inputs[2])[1]
    np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=F32_TOL)  # float32 inputs: same gap as XLA's
    np.testing.assert_allclose(grad, R.redge_vjp(logits, n_steps, t_1, inputs[1], inputs[3]), rtol=0, atol=F32_TOL)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("t_1", [1e-9, 0.2, 0.5, 1.0])  # 1e-9: below float32's sigma floor (6e-8)
def test_schedule_equals_the_xla_kernels(dtype, t_1):
    eps = float(jnp.finfo(dtype).eps)
    for n_steps in (2, 3, 5, 9):
        xla_alphas, xla_sigmas = E._redge_schedule(n_steps, t_1, dtype)
        alphas, sigmas = P.redge_grid(n_steps, t_1, eps)
        # Float64: the same float operations on the same numbers (exact). Float32: XLA rounds
        # t_1 and every intermediate to float32; the Python floats are rounded once.
        rtol = 0 if dtype == jnp.float64 else 4 * eps
        np.testing.assert_allclose(np.ravel(np.asarray(xla_alphas[1:], np.float64)), alphas[1:], rtol=rtol, atol=0)
        np.testing.assert_allclose(np.ravel(np.asarray(xla_sigmas[1:], np.float64)), sigmas[1:], rtol=rtol, atol=0)
        coefs = P.redge_coefficients(n_steps, t_1, eps)
        assert len(coefs) == n_steps - 1
        for (a_over_s2, c_x0, c_x), t in zip(coefs, range(n_steps - 1, 0, -1)):
            assert a_over_s2 == alphas[t] / sigmas[t] ** 2
            if t > 1:  # c_x0 x0 + c_x x is the DDIM bridge alpha_s x0 + sigma_s (x - alpha_t x0) / sigma_t
                assert (c_x0, c_x) == (alphas[t - 1] - sigmas[t - 1] / sigmas[t] * alphas[t], sigmas[t - 1] / sigmas[t])
    if t_1 == 1e-9:
        assert P.redge_grid(3, t_1, eps)[1][1] == (eps / 2 if dtype == jnp.float32 else t_1)


def test_jit_and_vmap_compose():
    logits = make_logits((4,), 6, spread=3.0)
    eps, gumbels, w = _noise(logits.shape, seed=11)
    kernel = lambda lg, e, gm: _pallas_redge(lg, 3, 0.5, e, gm)
    row = lambda lg, e, gm, w_row: _forward_and_grad(kernel, lg, e, gm, w_row)
    hard, soft, grads = jax.jit(jax.vmap(row))(logits, eps, gumbels, w)
    expected = np.stack([R.redge_vjp(logits[i], 3, 0.5, eps[i], w[i]) for i in range(4)])
    np.testing.assert_allclose(grads, expected, rtol=0, atol=ORACLE_TOL)
    ref_hard, ref_soft = R.redge(logits, 3, 0.5, eps, gumbels)
    np.testing.assert_array_equal(hard, ref_hard)
    np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=ORACLE_TOL)


def test_half_precision_is_one_hot_and_close_to_the_oracle():
    # float16 takes the same code path (loaded, computed in float32, stored): bfloat16 only, to save a compile
    logits = jnp.asarray(make_logits((3,), 5, spread=3.0), jnp.bfloat16)
    eps, gumbels = (jnp.asarray(a, jnp.bfloat16) for a in _noise((3, 5), seed=2)[:2])
    hard, soft = P.redge_hard_soft(logits, 3, 0.5, eps, gumbels)
    assert hard.dtype == soft.dtype == jnp.bfloat16 and _is_one_hot(hard)
    logits_64, eps_64, gumbels_64 = (np.asarray(a, np.float64) for a in (logits, eps, gumbels))
    ref_soft = R.redge(logits_64, 3, 0.5, eps_64, gumbels_64)[1]
    # computed in float32 on the bfloat16 inputs, rounded once on store: within one bfloat16 ulp of 1
    np.testing.assert_allclose(soft.astype(np.float64), ref_soft, rtol=0, atol=float(jnp.finfo(jnp.bfloat16).eps))


def test_forward_keeps_only_logits_and_eps():
    # The recompute strategy: whatever n_steps, the backward pass gets the inputs logits and
    # eps and nothing of logits' size more (traced with eval_shape: nothing is compiled).
    logits = jnp.asarray(make_logits((3,), 5, spread=3.0))
    eps, gumbels, _ = _noise(logits.shape, seed=13)

    def big_residuals(n_steps):
        kernel = lambda lg: _pallas_redge(lg, n_steps, 0.5, eps, gumbels)
        pullback = jax.eval_shape(lambda lg: jax.vjp(kernel, lg)[1], logits)
        return sum(leaf.size >= logits.size for leaf in jax.tree.leaves(pullback))

    assert big_residuals(3) == big_residuals(9) == 2


def test_pallas_available_only_on_gpu_with_a_float_t_1(monkeypatch):
    logits = jnp.zeros((2, 5))
    assert jax.default_backend() == "cpu"  # this suite runs on CPU
    assert not P.pallas_available(logits, 0.5)
    # The other conditions, as if on a GPU (the real GPU answer is untested here).
    monkeypatch.setattr(P, "_on_gpu", lambda x: True)
    assert P.pallas_available(logits, 0.5) and P.pallas_available(jnp.zeros((4, P.MAX_K), jnp.bfloat16), 1)
    assert not P.pallas_available(logits, jnp.array(0.5))
    assert not P.pallas_available(logits, np.array([0.5, 0.7]))
    assert not P.pallas_available(logits, True)
    assert not P.pallas_available(jnp.zeros((2, 5), jnp.int32), 0.5)
    assert not P.pallas_available(jnp.zeros((2, P.MAX_K + 1)), 0.5)


@pytest.mark.parametrize(
    "n_steps, t_1, k, error, match",
    [
        (1, 0.5, 5, ValueError, r"n_steps must be an integer >= 2, got n_steps=1"),
        (3, 1.5, 5, ValueError, r"t_1 must be in \(0, 1\]"),
        (3, jnp.array(0.5), 5, TypeError, r"t_1 must be a Python float"),
        (3, 0.5, P.MAX_K + 1, ValueError, r"logits.shape\[-1\] must be between 1 and 16384"),
        (3, 0.5, None, ValueError, r"logits.shape must be batch \+ \(K,\), at least one axis, got logits.shape=\(\)"),
    ],
)
def test_bad_arguments_name_the_parameter(n_steps, t_1, k, error, match):
    zeros = jnp.zeros(() if k is None else (1, k))
    with pytest.raises(error, match=match):
        P.redge_hard_soft(zeros, n_steps, t_1, zeros, zeros)


def test_empty_batch_launches_nothing():
    hard, soft = P.redge_hard_soft(jnp.zeros((0, 5)), 3, 0.5, jnp.zeros((2, 0, 5)), jnp.zeros((0, 5)))
    assert hard.shape == soft.shape == (2, 0, 5)


def test_doctests():
    assert doctest.testmod(P, optionflags=doctest.ELLIPSIS).failed == 0


def test_lowers_to_triton_for_cuda_without_a_gpu():
    # Cross-platform lowering (jax.export for "cuda"): Pallas's Triton lowering runs here, so
    # shapes Triton rejects (non-power-of-two tiles), int64 indices or unsupported ops fail
    # on CPU. Triton's own compile to PTX and the run are not exercised (no GPU).
    from jax import export

    def forward_and_grad(logits, eps, gumbels, w):
        kernel = lambda lg, e, gm: P.redge_hard_soft(lg, 3, 0.5, e, gm, interpret=False)  # the Triton path
        return _forward_and_grad(kernel, logits, eps, gumbels, w)

    triton_call = "__gpu$xla.gpu.triton"
    checks = [export.DisabledSafetyCheck.custom_call(triton_call)]
    args = [jax.ShapeDtypeStruct((33, 64), jnp.float32)] * 4
    exported = export.export(jax.jit(forward_and_grad), platforms=["cuda"], disabled_checks=checks)(*args)
    module = exported.mlir_module()
    assert module.count(triton_call + "(") == 2  # the forward and the backward kernel
    assert "grid_x = 2 : i32" in module  # 33 rows in 32-row tiles


def test_redge_dispatches_to_the_fused_kernel_on_gpu_only(monkeypatch):
    # CPU: the XLA path. With the backend reported as a GPU (and the device check patched), the
    # public kernel runs the Pallas kernel (interpret mode here) and gives the XLA path's numbers.
    estimators, _pallas = E, P
    logits = jnp.asarray(np.random.default_rng(3).normal(size=(4, 6)), jnp.float32)
    eps, gumbels = (jnp.asarray(np.random.default_rng(s).normal(size=(4, 6)), jnp.float32) for s in (4, 5))
    assert not estimators._fused_available(logits, 0.5)
    xla = estimators.redge(logits, 3, 0.5, eps, gumbels)
    calls = []
    real = _pallas.redge_hard_soft
    monkeypatch.setattr(estimators.jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(_pallas, "_on_gpu", lambda x: True)
    monkeypatch.setattr(_pallas, "redge_hard_soft", lambda *a, **k: calls.append(a) or real(*a, interpret=True, **k))
    fused = estimators.redge(logits, 3, 0.5, eps, gumbels)
    assert len(calls) == 1
    assert np.array_equal(fused[0], xla[0]) and np.allclose(fused[1], xla[1], rtol=1e-5, atol=1e-6)
    assert not estimators._fused_available(logits, jnp.asarray(0.5))  # an array t_1: the XLA path
