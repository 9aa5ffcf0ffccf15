r"""Fused CUDA (Triton) path for REDGE: the whole DDIM chain for one row in one kernel.

This is an implementation detail of :func:`pyro_ext.functional.redge` and of the ``REDGE``
distribution on CUDA tensors; the math is exactly :func:`pyro_ext.estimators.redge`
(tested against it on identical noise on a GPU, ``tests/test_fused_cuda.py``).

Why: REDGE runs ``n_steps - 1`` softmaxes per sample. In eager torch each step costs
several passes over memory, and backward must keep or recompute the states. Here one
Triton program owns one row of ``K`` logits and keeps the row in registers:

- forward reads ``logits`` once, draws the Gaussian start ``eps`` and the Gumbel noise of
  the final categorical draw in-kernel (Philox, from a seed), runs the chain and writes
  the exact one-hot ``hard`` (and ``soft`` if asked);
- backward reads ``logits`` and the upstream gradient, regenerates the same ``eps`` from
  the seed, recomputes the chain in registers and runs the reverse pass by hand
  (the same recursion as ``relaxed_dists.reference._redge_backprop``); state ``j`` is
  recomputed from ``eps`` for every ``j`` (``O(n^2)`` arithmetic on registers, no memory).

Nothing but the seed is saved between forward and backward, so peak memory is the
inputs plus the outputs. ``t_1`` must be a Python float here (no gradient to ``t_1``);
other cases use the eager kernel.
"""

from __future__ import annotations

import functools

import torch

from relaxed_dists.clamping import uniform_bounds
from relaxed_dists.schedules import redge_alphas

try:  # Triton ships with CUDA builds of torch; CPU-only installs simply don't take this path
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on CPU-only machines
    triton = None

__all__ = ["fused_available", "redge_fused", "redge_coefficients"]


def redge_coefficients(n_steps: int, t_1: float) -> list[tuple[float, float, float]]:
    """Per denoiser call, noisiest first: ``(alpha_t / sigma_t^2, c_x0, c_x)``.

    The bridge to the next point is ``x <- c_x0 * x0_hat + c_x * x`` with
    ``c_x = sigma_s / sigma_t`` and ``c_x0 = alpha_s - c_x alpha_t`` (unused at the last call).
    """
    alphas = redge_alphas(n_steps, t_1)
    sigmas = [1.0 - a for a in alphas]
    coefs = []
    for t in range(n_steps - 1, 0, -1):
        c_x = sigmas[t - 1] / sigmas[t] if t > 1 else 0.0
        c_x0 = alphas[t - 1] - c_x * alphas[t] if t > 1 else 0.0
        coefs.append((alphas[t] / sigmas[t] ** 2, c_x0, c_x))
    return coefs


@functools.lru_cache(maxsize=64)
def _coefficient_table(n_steps: int, t_1: float, device: torch.device) -> torch.Tensor:
    """The schedule as a small device tensor, built once per ``(n_steps, t_1, device)``
    (a fresh host-to-device copy on every call would serialise with the stream)."""
    return torch.tensor(redge_coefficients(n_steps, t_1), dtype=torch.float32, device=device)


def fused_available(logits: torch.Tensor, t_1) -> bool:
    """The fused path runs for CUDA logits, a Python-float ``t_1``, ``K <= 16384`` and
    fewer than ``2**31`` elements (the in-kernel Philox offsets are 32-bit)."""
    return (
        triton is not None
        and logits.is_cuda
        and isinstance(t_1, (int, float))
        and logits.shape[-1] <= 16384
        and logits.numel() < 2**31
        and logits.dtype in (torch.float32, torch.float16, torch.bfloat16)
    )


if triton is not None:

    @triton.jit
    def _load_row(logits_ptr, eps_ptr, row, K, seed, offs, mask, NOISE_IN: tl.constexpr):
        logits = tl.load(logits_ptr + row * K + offs, mask=mask, other=-float("inf")).to(tl.float32)
        if NOISE_IN:
            eps = tl.load(eps_ptr + row * K + offs, mask=mask, other=0.0).to(tl.float32)
        else:
            eps = tl.where(mask, tl.randn(seed, (row * K + offs).to(tl.int32)), 0.0)
        return logits, eps

    @triton.jit
    def _coef(coef_ptr, i, j):
        return tl.load(coef_ptr + 3 * i + j)

    @triton.jit
    def _redge_fwd_kernel(
        logits_ptr,
        eps_ptr,
        gumbel_ptr,
        hard_ptr,
        soft_ptr,
        coef_ptr,
        K,
        seed,
        u_lo,
        u_hi,
        N_CALLS: tl.constexpr,
        BLOCK_K: tl.constexpr,
        NOISE_IN: tl.constexpr,
        STORE_SOFT: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK_K)
        mask = offs < K
        logits, x = _load_row(logits_ptr, eps_ptr, row, K, seed, offs, mask, NOISE_IN)
        for i in tl.static_range(N_CALLS):
            z = logits + _coef(coef_ptr, i, 0) * x  # logits + alpha_t x / sigma_t^2
            z_max = tl.max(z, 0)
            e = tl.exp(z - z_max)
            total = tl.sum(e, 0)
            x0_hat = e / total
            if i < N_CALLS - 1:
                x = _coef(coef_ptr, i, 1) * x0_hat + _coef(coef_ptr, i, 2) * x  # DDIM bridge
        log_soft = z - z_max - tl.log(total)
        if NOISE_IN:
            gumbels = tl.load(gumbel_ptr + row * K + offs, mask=mask, other=0.0).to(tl.float32)
        else:
            u = tl.minimum(tl.maximum(tl.rand(seed + 1, (row * K + offs).to(tl.int32)), u_lo), u_hi)
            gumbels = -tl.log(-tl.log(u))
        index = tl.argmax(tl.where(mask, log_soft + gumbels, -float("inf")), 0)
        hard = (offs == index).to(hard_ptr.dtype.element_ty)
        tl.store(hard_ptr + row * K + offs, hard, mask=mask)
        if STORE_SOFT:
            tl.store(soft_ptr + row * K + offs, x0_hat.to(soft_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _redge_bwd_kernel(
        logits_ptr,
        eps_ptr,
        grad_ptr,
        grad_logits_ptr,
        coef_ptr,
        K,
        seed,
        N_CALLS: tl.constexpr,
        BLOCK_K: tl.constexpr,
        NOISE_IN: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK_K)
        mask = offs < K
        logits, eps = _load_row(logits_ptr, eps_ptr, row, K, seed, offs, mask, NOISE_IN)
        g_x = tl.load(grad_ptr + row * K + offs, mask=mask, other=0.0).to(tl.float32)
        grad_logits = tl.zeros([BLOCK_K], dtype=tl.float32)
        for j in tl.static_range(N_CALLS - 1, -1, -1):
            x = eps  # recompute the state entering call j
            for i in tl.static_range(j):
                z = logits + _coef(coef_ptr, i, 0) * x
                e = tl.exp(z - tl.max(z, 0))
                x = _coef(coef_ptr, i, 1) * (e / tl.sum(e, 0)) + _coef(coef_ptr, i, 2) * x
            z = logits + _coef(coef_ptr, j, 0) * x
            e = tl.exp(z - tl.max(z, 0))
            x0_hat = e / tl.sum(e, 0)
            if j == N_CALLS - 1:
                g_x0 = g_x  # the upstream gradient lands on the last x0_hat
                g_x = tl.zeros([BLOCK_K], dtype=tl.float32)
            else:  # x_{j+1} = c_x0 x0_hat + c_x x_j
                g_x0 = _coef(coef_ptr, j, 1) * g_x
                g_x = _coef(coef_ptr, j, 2) * g_x
            d_z = x0_hat * (g_x0 - tl.sum(x0_hat * g_x0, 0))  # softmax VJP
            d_z = tl.where(mask, d_z, 0.0)
            grad_logits += d_z
            g_x += _coef(coef_ptr, j, 0) * d_z
        tl.store(grad_logits_ptr + row * K + offs, grad_logits.to(grad_logits_ptr.dtype.element_ty), mask=mask)


def _launch_config(k: int) -> dict:
    block_k = triton.next_power_of_2(k)
    return {"BLOCK_K": block_k, "num_warps": max(1, min(16, block_k // 256))}


class _REDGEFused(torch.autograd.Function):
    r"""Forward ``(hard, soft)`` of REDGE; backward ``d logits = J_soft^T (g_hard + g_soft)``,
    the VJP of the whole chain (straight-through: the one-hot's gradient is the soft output's)."""

    @staticmethod
    def forward(ctx, logits, coefs, seed, eps, gumbels, store_soft):
        k = logits.shape[-1]
        rows = logits.numel() // k
        logits_c = logits.contiguous()
        hard = torch.empty_like(logits_c)
        soft = torch.empty_like(logits_c) if store_soft else hard
        noise_in = eps is not None
        finfo = torch.finfo(torch.float32)
        u_lo, u_hi = uniform_bounds(finfo.tiny, finfo.eps)
        _redge_fwd_kernel[(rows,)](
            logits_c,
            eps if noise_in else logits_c,
            gumbels if noise_in else logits_c,
            hard,
            soft,
            coefs,
            k,
            seed,
            u_lo,
            u_hi,
            N_CALLS=coefs.shape[0],
            NOISE_IN=noise_in,
            STORE_SOFT=store_soft,
            **_launch_config(k),
        )
        ctx.save_for_backward(logits_c, coefs, *((eps,) if noise_in else ()))
        ctx.seed, ctx.noise_in = seed, noise_in
        return (hard, soft) if store_soft else (hard, None)

    @staticmethod
    def backward(ctx, grad_hard, grad_soft):
        logits, coefs, *noise = ctx.saved_tensors
        grad = grad_hard if grad_soft is None else (grad_soft if grad_hard is None else grad_hard + grad_soft)
        grad = grad.contiguous()
        k = logits.shape[-1]
        grad_logits = torch.empty_like(logits)
        eps = noise[0] if ctx.noise_in else logits
        _redge_bwd_kernel[(logits.numel() // k,)](
            logits,
            eps,
            grad,
            grad_logits,
            coefs,
            k,
            ctx.seed,
            N_CALLS=coefs.shape[0],
            NOISE_IN=ctx.noise_in,
            **_launch_config(k),
        )
        return grad_logits, None, None, None, None, None


def redge_fused(
    logits: torch.Tensor,
    n_steps: int,
    t_1: float,
    eps: torch.Tensor | None = None,
    gumbels: torch.Tensor | None = None,
    store_soft: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """REDGE ``(hard, soft)`` in one fused kernel per direction; see the module docstring.

    With ``eps``/``gumbels`` given, uses them (for tests against the eager kernel);
    otherwise draws them in-kernel from a seed taken from torch's global CPU generator.
    """
    coefs = _coefficient_table(n_steps, float(t_1), logits.device)
    seed = int(torch.randint(0, 2**31 - 1, (), dtype=torch.int64))  # CPU generator: no device sync
    if eps is not None:
        if gumbels is None:
            raise ValueError("redge_fused: pass eps and gumbels together, or neither")
        eps, gumbels = eps.to(torch.float32).contiguous(), gumbels.to(torch.float32).contiguous()
    return _REDGEFused.apply(logits, coefs, seed, eps, gumbels, store_soft)
