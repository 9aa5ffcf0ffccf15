r"""Fused GPU (Pallas, lowered to Triton) path for REDGE: the whole DDIM chain of a block of rows in one kernel.

An implementation detail of :func:`numpyro_ext.estimators.redge` on GPU, mirroring the torch
Triton path ``pyro_ext/_fused.py``; the math is exactly the XLA kernel's
``numpyro_ext.estimators._redge_hard_soft`` (tested against it, and against the float64 oracle
``relaxed_dists.reference``, in Pallas interpret mode on CPU: ``tests/test_pallas_jax.py``).

Why: REDGE runs ``n_steps - 1`` softmaxes per sample; as separate XLA ops each costs several
passes over memory, and the backward pass must keep or recompute the states. Here one Pallas
program owns a ``(block_rows, block_k)`` tile of rows and keeps it in registers:

- forward reads ``logits``, ``eps`` and ``gumbels`` once, runs the chain and writes the exact
  one-hot ``hard`` and the last denoiser output ``soft``;
- backward reads ``logits``, ``eps`` and the upstream gradient of ``soft``, recomputes the
  chain and runs the reverse recursion of ``relaxed_dists.reference._redge_backprop`` by hand;
  the state entering call ``j`` is recomputed from ``eps`` for every ``j`` (``O(n^2)``
  arithmetic in registers, no memory).

The chain is unrolled in the kernels (``n_steps - 1`` softmaxes forward, ``n_steps (n_steps - 1) / 2``
backward), so compile time grows as ``n_steps^2`` (tested up to ``n_steps = 9``).
Only the inputs ``logits`` and ``eps`` are kept between forward and backward. Unlike torch,
JAX noise is an input (``eps``, ``gumbels``), so the kernels draw no random numbers.

The schedule is baked into the kernel as Python floats (:func:`redge_coefficients`), built
with the XLA kernel's formulas, including the ``sigma_floor`` clamp of the logits' dtype, so
``t_1`` must be a Python float (no gradient to ``t_1``; an array ``t_1`` keeps the XLA path).

Supported (:func:`pallas_available`): a GPU backend, ``logits.dtype`` in float16, bfloat16
(computed in float32, stored in the input dtype), float32 or float64 (computed in float64),
``1 <= K <= 16384`` (the tile is padded to the next power of two, which Triton requires; padded
classes are masked as ``-inf`` logits and zero noise), any number of rows and leading batch dims.
On CPU/TPU the kernel runs only in interpret mode (for tests); the XLA path is the fast one there.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from relaxed_dists import schedules
from relaxed_dists.checks import check_n_steps, check_t_1, out_of_range
from relaxed_dists.clamping import sigma_floor

__all__ = ["pallas_available", "redge_coefficients", "redge_hard_soft", "MAX_K"]

#: Largest event size the fused kernel takes (a row of ``next_power_of_2(K)`` floats per tile row
#: must fit in registers; the backward pass keeps about eight such arrays live), as torch's ``_fused``.
MAX_K = 16384

#: Elements of one program's tile, ``block_rows * block_k`` (rows are added while K is small).
_TILE_ELEMENTS = 2048

_GPU_PLATFORMS = ("gpu", "cuda", "rocm")
_DTYPES = (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)


def redge_grid(n_steps: int, t_1: float, eps: float) -> tuple[list[float], list[float]]:
    """``(alphas, sigmas)`` as Python floats, as the XLA kernel builds them
    (:func:`relaxed_dists.schedules.redge_grid`, sigma at least ``sigma_floor(eps)``, ``eps`` the
    logits' dtype's)."""
    return schedules.redge_grid(n_steps, t_1, sigma_floor(eps))


def redge_coefficients(n_steps: int, t_1: float, eps: float) -> tuple[tuple[float, float, float], ...]:
    """Per denoiser call, noisiest first: ``(alpha_t / sigma_t^2, c_x0, c_x)``, Python floats
    (:func:`relaxed_dists.schedules.redge_coefficients` on :func:`redge_grid`)."""
    return schedules.redge_coefficients(n_steps, t_1, sigma_floor(eps))


def _on_gpu(x) -> bool:
    """Whether ``x`` lives on a GPU (a tracer: whether the default backend is one)."""
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
        return all(d.platform in _GPU_PLATFORMS for d in x.devices())
    return jax.default_backend() in _GPU_PLATFORMS


def pallas_available(logits: jax.Array, t_1) -> bool:
    """The fused path runs for GPU ``logits`` of dtype float16, bfloat16, float32 or float64,
    ``1 <= K <= MAX_K`` (16384) and a Python-number ``t_1``; everything else keeps the XLA path.
    Under ``jit`` the device is the default backend's."""
    return (
        isinstance(t_1, numbers.Real)
        and not isinstance(t_1, bool)
        and jnp.ndim(logits) >= 1
        and 1 <= jnp.shape(logits)[-1] <= MAX_K
        and any(jnp.dtype(logits.dtype) == d for d in _DTYPES)
        and _on_gpu(logits)
    )


class _Config(NamedTuple):
    """Static kernel parameters (hashable: a ``custom_vjp`` non-differentiable argument)."""

    coefs: tuple[tuple[float, float, float], ...]
    rows: int
    k: int
    block_rows: int
    block_k: int
    interpret: bool


def _config(rows: int, k: int, coefs, interpret: bool) -> _Config:
    block_k = pl.next_power_of_2(k)
    block_rows = max(1, min(_TILE_ELEMENTS // block_k, pl.next_power_of_2(rows)))
    return _Config(coefs, rows, k, block_rows, block_k, interpret)


def _tile(cfg: _Config):
    """This program's tile: its index into the ``(rows, K)`` arrays, the in-bounds mask and the column indices."""
    start = pl.program_id(0) * cfg.block_rows
    shape = (cfg.block_rows, cfg.block_k)
    rows = start + lax.broadcasted_iota(jnp.int32, shape, 0)
    cols = lax.broadcasted_iota(jnp.int32, shape, 1)
    first_col = jnp.int32(0)  # the same index dtype as program_id's, also under jax_enable_x64
    index = (pl.ds(start, cfg.block_rows), pl.ds(first_col, cfg.block_k))
    return index, (rows < cfg.rows) & (cols < cfg.k), cols


def _load(ref, index, mask, other, dtype):
    return plgpu.load(ref.at[index], mask=mask, other=other).astype(dtype)


def _compute_dtype(dtype) -> jnp.dtype:
    """float64 stays float64; float32 and the half types are computed in float32 (exp, sums)."""
    return jnp.dtype(jnp.float64) if jnp.dtype(dtype) == jnp.float64 else jnp.dtype(jnp.float32)


def _load_row(cfg, logits_ref, eps_ref):
    """``logits`` (padded classes ``-inf``, padded rows 0 so they stay finite) and ``eps`` (padding 0)."""
    index, mask, cols = _tile(cfg)
    dtype = _compute_dtype(logits_ref.dtype)
    pad = jnp.where(cols < cfg.k, jnp.zeros((), logits_ref.dtype), jnp.full((), -jnp.inf, logits_ref.dtype))
    logits = _load(logits_ref, index, mask, pad, dtype)
    return logits, _load(eps_ref, index, mask, 0.0, dtype), index, mask, cols


def _softmax_parts(z):
    """``(z_max, e = exp(z - z_max), total = sum(e))`` over the event axis of the tile."""
    z_max = jnp.max(z, axis=1, keepdims=True)
    e = jnp.exp(z - z_max)
    return z_max, e, jnp.sum(e, axis=1, keepdims=True)


def _redge_fwd_kernel(logits_ref, eps_ref, gumbels_ref, hard_ref, soft_ref, *, cfg: _Config):
    logits, x, index, mask, cols = _load_row(cfg, logits_ref, eps_ref)
    n_calls = len(cfg.coefs)
    for i, (a_over_s2, c_x0, c_x) in enumerate(cfg.coefs):
        z = logits + a_over_s2 * x  # logits + alpha_t x / sigma_t^2
        z_max, e, total = _softmax_parts(z)
        if i < n_calls - 1:
            x = c_x0 * (e / total) + c_x * x  # DDIM bridge
    log_soft = z - z_max - jnp.log(total)  # log_softmax of the last pre-activation, as the XLA kernel
    gumbels = _load(gumbels_ref, index, mask, 0.0, logits.dtype)
    scores = jnp.where(cols < cfg.k, log_soft + gumbels, -jnp.inf)
    winner = lax.argmax(scores, 1, jnp.int32)  # first maximum, as jnp.argmax
    hard = (cols == winner[:, None]).astype(logits.dtype).astype(hard_ref.dtype)  # bool -> float -> output dtype
    plgpu.store(hard_ref.at[index], hard, mask=mask)
    plgpu.store(soft_ref.at[index], jnp.exp(log_soft).astype(soft_ref.dtype), mask=mask)


def _redge_bwd_kernel(logits_ref, eps_ref, grad_ref, grad_logits_ref, *, cfg: _Config):
    logits, eps, index, mask, _ = _load_row(cfg, logits_ref, eps_ref)
    g_x = _load(grad_ref, index, mask, 0.0, logits.dtype)
    grad_logits = jnp.zeros_like(logits)
    n_calls = len(cfg.coefs)
    for j in range(n_calls - 1, -1, -1):
        x = eps  # recompute the state entering call j
        for a_over_s2, c_x0, c_x in cfg.coefs[:j]:
            _, e, total = _softmax_parts(logits + a_over_s2 * x)
            x = c_x0 * (e / total) + c_x * x
        a_over_s2, c_x0, c_x = cfg.coefs[j]
        _, e, total = _softmax_parts(logits + a_over_s2 * x)
        x0_hat = e / total
        if j == n_calls - 1:
            g_x0, g_x = g_x, jnp.zeros_like(g_x)  # the upstream gradient lands on the last x0_hat
        else:  # x_{j+1} = c_x0 x0_hat + c_x x_j
            g_x0, g_x = c_x0 * g_x, c_x * g_x
        d_z = x0_hat * (g_x0 - jnp.sum(x0_hat * g_x0, axis=1, keepdims=True))  # softmax VJP
        d_z = jnp.where(mask, d_z, 0.0)
        grad_logits = grad_logits + d_z
        g_x = g_x + a_over_s2 * d_z
    plgpu.store(grad_logits_ref.at[index], grad_logits.astype(grad_logits_ref.dtype), mask=mask)


def _call(kernel, cfg: _Config, out_shape, *args):
    num_warps = max(1, min(16, cfg.block_rows * cfg.block_k // 256))
    return pl.pallas_call(
        functools.partial(kernel, cfg=cfg),
        out_shape=out_shape,
        grid=(pl.cdiv(cfg.rows, cfg.block_rows),),
        compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=1),
        interpret=cfg.interpret,
        name=kernel.__name__.strip("_"),
    )(*args)


def _forward(cfg, logits, eps, gumbels):
    out = jax.ShapeDtypeStruct(logits.shape, logits.dtype)
    return _call(_redge_fwd_kernel, cfg, (out, out), logits, eps, gumbels)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _redge_rows(cfg: _Config, logits, eps, gumbels):
    r"""``(hard, soft)`` of REDGE on ``(rows, K)`` arrays. Backward, for upstream ``(g_hard, g_soft)``:
    ``d logits = J_soft^T g_soft``, the VJP of the whole chain, recomputed from ``eps``; ``hard``
    (an argmax) passes nothing, and the noise ``eps``, ``gumbels`` gets no gradient."""
    return _forward(cfg, logits, eps, gumbels)


def _redge_rows_fwd(cfg, logits, eps, gumbels):
    return _forward(cfg, logits, eps, gumbels), (logits, eps)


def _redge_rows_bwd(cfg, residuals, cotangents):
    logits, eps = residuals
    _, g_soft = cotangents
    grad_logits = _call(_redge_bwd_kernel, cfg, jax.ShapeDtypeStruct(logits.shape, logits.dtype), logits, eps, g_soft)
    return grad_logits, None, None


_redge_rows.defvjp(_redge_rows_fwd, _redge_rows_bwd)


def redge_hard_soft(
    logits: jax.Array, n_steps: int, t_1: float, eps: jax.Array, gumbels: jax.Array, *, interpret: bool | None = None
) -> tuple[jax.Array, jax.Array]:
    r"""REDGE's ``(hard, soft)`` before the straight-through surgery, in one fused kernel per direction.

    The same values as ``numpyro_ext.estimators._redge_hard_soft``: DDIM from ``x = eps`` through
    ``n_steps - 1`` denoiser calls :math:`\hat x_0 = \mathrm{softmax}(\ell + \alpha_t x_t / \sigma_t^2)`;
    ``soft`` is the last :math:`\hat x_0` and ``hard`` the exact one-hot Gumbel-max draw on its
    ``log_softmax`` with ``gumbels``. Gradient: to ``logits`` through ``soft`` only (``hard`` carries
    none; the caller applies ``hard + (soft - stop_gradient(soft))``); none to ``eps``, ``gumbels``.

    Shapes: ``logits`` is ``batch + (K,)``; ``eps`` and ``gumbels`` broadcast with it; the outputs
    have the broadcast shape and the promoted dtype of the three. ``n_steps`` is an int >= 2,
    ``t_1`` a Python float in (0, 1]. ``interpret=None`` runs Pallas interpret mode unless
    ``logits`` is on a GPU.

    >>> hard, soft = redge_hard_soft(jnp.zeros((2, 3)), 3, 0.5, jnp.zeros((2, 3)), jnp.zeros((2, 3)))
    >>> hard.shape, soft.shape
    ((2, 3), (2, 3))
    """
    n_steps = check_n_steps(n_steps)
    if isinstance(t_1, bool) or not isinstance(t_1, numbers.Real):
        raise TypeError(out_of_range("t_1", t_1, "a Python float in (0, 1] (an array t_1 takes the XLA kernel)"))
    check_t_1(t_1)
    if jnp.ndim(logits) == 0:
        raise ValueError(out_of_range("logits.shape", jnp.shape(logits), "batch + (K,), at least one axis"))
    k = jnp.shape(logits)[-1]
    if not 1 <= k <= MAX_K:
        raise ValueError(out_of_range("logits.shape[-1]", k, f"between 1 and {MAX_K}"))
    coefs = redge_coefficients(n_steps, float(t_1), float(jnp.finfo(logits.dtype).eps))
    dtype = jnp.result_type(logits, eps, gumbels)
    shape = jnp.broadcast_shapes(jnp.shape(logits), jnp.shape(eps), jnp.shape(gumbels))
    logits, eps, gumbels = (jnp.broadcast_to(a, shape).astype(dtype).reshape(-1, k) for a in (logits, eps, gumbels))
    interpret = not _on_gpu(logits) if interpret is None else bool(interpret)
    rows = math.prod(shape[:-1])
    if rows == 0:  # an empty batch: no program to launch
        return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)
    cfg = _config(rows, k, coefs, interpret)
    hard, soft = _redge_rows(cfg, logits, eps, gumbels)
    return hard.reshape(shape), soft.reshape(shape)
