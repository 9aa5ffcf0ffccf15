r"""Pure JAX estimator kernels ``f(params, noise) -> (hard, soft)``.

Each kernel mirrors ``relaxed_dists.reference`` (same names, argument order, variable
names and line order) and ``pyro_ext/estimators.py``. Kernels never draw noise:
:mod:`numpyro_ext.functional` and the distribution classes do.

- ``hard`` is exactly one-hot in the forward pass (every entry 0.0 or 1.0, in
  ``logits.dtype``) and carries the estimator's surrogate gradient;
- ``soft`` is the relaxed value the estimator differentiates, with its exact gradient.

Shapes: ``logits`` is ``batch + (K,)``; ``gumbels`` and ``eps`` have ``logits.shape``
(or a shape ``logits`` broadcasts to, such as ``sample_shape + logits.shape``);
``temperature`` and ``t_1`` are Python floats or arrays broadcastable to ``batch``,
applied with ``[..., None]`` and cast to ``logits.dtype``. Outputs have the broadcast shape.

Binary kernels (``binary_straight_through``, ``binary_reinmax``, ``binary_redge``,
``binary_redge_cov``, ``binary_reindge``) are the K = 2 case on logits ``(0, l)`` written for
one coordinate: ``logits`` (``l``, any shape) is the log-odds of class 1, ``softmax(0, l) =
(1 - p, p)`` with ``p = sigmoid(l)``, and ``hard`` and ``soft`` are the class-1 coordinates
(``hard`` exactly 0. or 1.). The noise is one number per element: ``logistic = g_1 - g_0``
(standard logistic) for the Gumbel-max draw, which becomes ``hard = 1[z + logistic > 0]`` on
the last pre-activation ``z``; ``eps = eps_1 - eps_0`` (so ``eps ~ N(0, 2)``) for the REDGE
chain, which is closed in the difference ``d = x_1 - x_0`` of the two coordinates (the DDIM
update is linear per coordinate and the denoiser sees ``x`` only through ``d``).
Hyperparameters broadcast against ``logits`` directly (there is no event axis).

Recompute strategy (REDGE, REDGE-cov, REINDGE). For a Python-float ``t_1`` (what the
distribution classes and samplers get from users), REDGE, REINDGE and their binary kernels
run :func:`_redge`, a :func:`jax.custom_vjp` that mirrors torch's ``_REDGE``: the schedule is
folded into Python floats (:func:`_redge_coefficients`), the forward keeps only ``logits``,
``eps`` and ``soft``, and the backward recomputes the chain once (unrolled up to
``n_steps = 5``, a scan beyond), keeping its ``n_steps - 2`` intermediate ``x0_hat``, then runs
the reverse recursion by hand as a reverse scan (``reference._redge_backprop``). That path has no forward-mode derivative and gives ``eps``
no gradient. An array ``t_1`` (differentiable) and REDGE-cov take the general path: the DDIM
chain up to the last state is a :func:`lax.scan` with a checkpointed body, itself wrapped in
:func:`jax.checkpoint` (nothing saved). The forward pass keeps no chain intermediate, only
the inputs and the grid; the backward replays the chain once, keeping the ``n_steps - 2``
scan carries ``x_t``, then walks back recomputing each step's softmax (two extra forward
sweeps). The inner checkpoint matters when ``t_1`` is an array or for REDGE-cov (plain
autodiff then keeps several arrays a step: 2-3x the scratch memory on CPU); the outer one
frees the chain while the rest of a model runs. The derivative is the exact chain rule
(``reference._redge_backprop``); the other hand-written derivatives are ReinMax's and
REINDGE's correction (:func:`jax.custom_vjp`, formulas in their docstrings). What each
choice costs on CPU, from the compiled HLO: ``benchmarks/results/jax_speed_diagnosis.md``.

References
----------
- Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients Through
  Stochastic Neurons for Conditional Computation. 2013, arXiv 1308.3432.
- E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017,
  arXiv 1611.01144.
- L. Liu, C. Dong, X. Liu, B. Yu, J. Gao. Bridging Discrete and Backpropagation:
  Straight-Through and Beyond (ReinMax). NeurIPS 2023, arXiv 2304.08612.
- S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical
  Reparameterization with Denoising Diffusion models (REDGE). 2026, arXiv 2601.00781.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from relaxed_dists.clamping import ALPHA_MIN, COV_MIN_VARIANCE, sigma_floor
from relaxed_dists.schedules import redge_coefficients, redge_fractions

from . import _ops
from ._ops import one_hot_argmax

__all__ = [
    "straight_through",
    "gumbel_softmax",
    "reinmax",
    "redge",
    "redge_cov",
    "reindge",
    "binary_straight_through",
    "binary_reinmax",
    "binary_redge",
    "binary_redge_cov",
    "binary_reindge",
]


def _hyper(value, dtype) -> jax.Array:
    """A scalar or ``batch``-shaped hyperparameter in the working dtype, broadcast over the event axis."""
    return jnp.asarray(value, dtype=dtype)[..., None]


def _softmax_vjp(p: jax.Array, g: jax.Array) -> jax.Array:
    """Vector-Jacobian product of ``p = softmax(z)``: ``p * (g - <p, g>)``."""
    return p * (g - jnp.sum(p * g, axis=-1, keepdims=True))


# --- straight-through family ---------------------------------------------------------


def straight_through(logits: jax.Array, gumbels: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Straight-through (Bengio et al. 2013).

    Forward: ``hard ~ Cat(softmax(logits))`` by Gumbel-max with ``gumbels``;
    ``soft = softmax(logits)``. Gradient of ``hard``: the softmax VJP,
    :math:`\nabla_\ell = p \odot (g - \langle p, g\rangle)`.

    >>> hard, soft = straight_through(jnp.zeros((3, 4)), jnp.zeros((3, 4)))
    >>> hard.shape, soft.shape
    ((3, 4), (3, 4))
    """
    soft = jax.nn.softmax(logits, axis=-1)
    hard = one_hot_argmax(jax.nn.log_softmax(logits, axis=-1) + gumbels)
    return _ops.straight_through(hard, soft), soft


def gumbel_softmax(logits: jax.Array, temperature, gumbels: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Straight-through Gumbel-Softmax (Jang et al. 2017).

    Forward: ``soft = softmax((logits + G) / temperature)``,
    ``hard = one_hot(argmax(logits + G))``. Gradient of ``hard``: that of ``soft``
    (w.r.t. ``logits`` and ``temperature``),
    :math:`\nabla_\ell = \tau^{-1}\, s \odot (g - \langle s, g\rangle)`.

    >>> hard, soft = gumbel_softmax(jnp.zeros(4), 0.5, jnp.zeros(4))
    >>> hard.shape, soft.shape
    ((4,), (4,))
    """
    soft = jax.nn.softmax((logits + gumbels) / _hyper(temperature, logits.dtype), axis=-1)
    hard = one_hot_argmax(logits + gumbels)
    return _ops.straight_through(hard, soft), soft


@jax.custom_vjp
def _reinmax_hard(logits: jax.Array, temperature, hard: jax.Array) -> jax.Array:
    r"""Forward: ``hard``. Backward (Liu et al. 2023, Algorithm 2), for upstream ``g``:

    .. math::
        \pi_0 = \mathrm{softmax}(\ell),\quad
        \pi_1 = \tfrac12 (\mathrm{softmax}(\ell / \tau) + \text{hard}),\quad
        \nabla_\ell = 2\, J_{\pi_1}^\top g - \tfrac12 J_{\pi_0}^\top g
        \ \text{ minus its mean over the event axis},

    with :math:`J_p^\top g = p \odot (g - \langle p, g\rangle)`. No gradient flows to
    ``temperature`` (it enters the backward pass only) nor to ``hard``.
    """
    return hard


def _reinmax_hard_fwd(logits, temperature, hard):
    return hard, (logits, temperature, hard)


def _reinmax_hard_bwd(residuals, g):
    logits, temperature, hard = residuals
    pi_0 = jax.nn.softmax(logits, axis=-1)
    pi_1 = 0.5 * (jax.nn.softmax(logits / _hyper(temperature, logits.dtype), axis=-1) + hard)
    grad = 2.0 * _softmax_vjp(pi_1, g) - 0.5 * _softmax_vjp(pi_0, g)
    return grad - jnp.mean(grad, axis=-1, keepdims=True), None, None


_reinmax_hard.defvjp(_reinmax_hard_fwd, _reinmax_hard_bwd)


def reinmax(logits: jax.Array, temperature, gumbels: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""ReinMax (Liu et al. 2023, arXiv 2304.08612).

    Forward: ``hard ~ Cat(softmax(logits))`` by Gumbel-max with ``gumbels``;
    ``soft = softmax(logits)`` (as the authors' ``reinmax`` returns it, with its exact
    gradient). Gradient of ``hard``: the second-order ReinMax surrogate

    .. math::
        \nabla_\ell = 2\, J_{\pi_1}^\top g - \tfrac12 J_{\pi_0}^\top g - \text{mean},\quad
        \pi_0 = \mathrm{softmax}(\ell),\ \pi_1 = \tfrac12 (\mathrm{softmax}(\ell/\tau) + \text{hard}).

    ``temperature`` enters the backward pass only: it receives **no gradient** (zero).

    >>> hard, soft = reinmax(jnp.zeros((2, 3)), 1.0, jnp.zeros((2, 3)))
    >>> hard.shape, soft.shape
    ((2, 3), (2, 3))
    """
    soft = jax.nn.softmax(logits, axis=-1)
    hard = one_hot_argmax(jax.nn.log_softmax(logits, axis=-1) + gumbels)
    logits = jnp.broadcast_to(logits, hard.shape)  # the custom VJP returns a cotangent of hard's shape
    return _reinmax_hard(logits, temperature, hard), soft


# --- REDGE (Gourevitch et al. 2026) ---------------------------------------------------


def _redge_schedule(n_steps: int, t_1, dtype, event_axis: bool = True):
    """``(alphas, sigmas)``: lists of ``n_steps`` entries, index 0 clean (the Python float 1.0),
    then ``alpha_k = (1 - t_1)(1 - f_k) + ALPHA_MIN f_k``, differentiable in an array ``t_1``
    (broadcast over the event axis, ``[..., None]``, unless ``event_axis`` is False: the binary kernels).

    ``sigma_k = 1 - alpha_k`` is computed as ``t_1 (1 - f_k) + (1 - ALPHA_MIN) f_k`` (the same
    number without the cancellation: in float32 ``1 - (1 - t_1)`` is 0 for ``t_1 < 6e-8``), at
    least ``sigma_floor`` of the dtype (``eps / 2``), so that ``1 / sigma^3`` stays finite."""
    t_1 = _hyper(t_1, dtype) if event_axis else jnp.asarray(t_1, dtype=dtype)
    fractions = redge_fractions(n_steps)
    lo = sigma_floor(float(jnp.finfo(dtype).eps))
    alphas = [1.0] + [(1.0 - t_1) * (1.0 - f) + ALPHA_MIN * f for f in fractions]
    sigmas = [t_1 * (1.0 - f) + (1.0 - ALPHA_MIN) * f for f in fractions]
    return alphas, [0.0] + [jnp.where(sigma < lo, lo, sigma) for sigma in sigmas]


def _redge_logits(logits, x, alpha, sigma):
    r"""Pre-activation of the REDGE denoiser (REDGE, eq. 7): ``x0_hat = softmax(logits + alpha x / sigma^2)``."""
    return logits + alpha * x / sigma**2


def _redge_denoiser(logits, x, alpha, sigma):
    """The REDGE denoiser ``x0_hat = softmax(_redge_logits(...))``."""
    return jax.nn.softmax(_redge_logits(logits, x, alpha, sigma), axis=-1)


def _redge_cov_logits(logits, x, alpha, sigma, p, var):
    r"""Pre-activation of the REDGE-cov denoiser:
    ``logits + (alpha x - alpha sigma p - alpha^2 / 2) / (var sigma^2)``."""
    return logits + (alpha * x - alpha * sigma * p - alpha**2 / 2.0) / (var * sigma**2)


def _redge_cov_denoiser(logits, x, alpha, sigma, p, var):
    """The REDGE-cov denoiser ``x0_hat = softmax(_redge_cov_logits(...))``."""
    return jax.nn.softmax(_redge_cov_logits(logits, x, alpha, sigma, p, var), axis=-1)


def _ddim_bridge(x, x0_hat, alpha_s, sigma_s, alpha_t, sigma_t):
    """DDIM step from t to s < t: ``alpha_s x0 + sigma_s (x - alpha_t x0) / sigma_t``."""
    return alpha_s * x0_hat + sigma_s * (x - alpha_t * x0_hat) / sigma_t


def _redge_step(denoiser, logits, x, alpha_s, sigma_s, alpha_t, sigma_t, *args):
    """One denoiser call at ``t`` and the DDIM bridge to ``s``."""
    x0_hat = denoiser(logits, x, alpha_t, sigma_t, *args)
    return _ddim_bridge(x, x0_hat, alpha_s, sigma_s, alpha_t, sigma_t)


def _redge_chain(denoiser, logits, x, alphas, sigmas, *args):
    """DDIM from the noisiest grid point down to index 1; returns the state ``x_1`` there
    (the input of the last denoiser call). ``denoiser(logits, x, alpha, sigma, *args)`` is the
    posterior mean of ``x0`` (one-hot kernels: a softmax; binary kernels: its difference
    ``x0_hat_1 - x0_hat_0``, the state being the difference ``d = x_1 - x_0``).

    A :func:`lax.scan` over ``t = n_steps - 1 .. 2`` whose body is checkpointed (the scan
    keeps only its carries ``x_t`` for the backward pass); the kernels call it through
    :data:`_redge_chain_remat`, so not even those are kept between forward and backward.
    """
    if len(alphas) == 2:  # a single denoiser call: no bridge
        return x
    shape = jnp.broadcast_shapes(x.shape, logits.shape, alphas[-1].shape)  # t_1 may widen the batch
    x = jnp.broadcast_to(x, shape).astype(jnp.result_type(x, logits))  # the scan carry keeps one shape and dtype
    grid = [(alphas[t - 1], sigmas[t - 1], alphas[t], sigmas[t]) for t in range(len(alphas) - 1, 1, -1)]

    def step(x, grid_t):
        return _redge_step(denoiser, logits, x, *grid_t, *args), None

    x, _ = lax.scan(jax.checkpoint(step), x, jax.tree.map(lambda *c: jnp.stack(c), *grid))
    return x


_redge_chain_remat = jax.checkpoint(_redge_chain, static_argnums=(0,))


def _is_float(t_1) -> bool:
    """A Python number (not an array, not a tracer): the schedule folds into Python floats."""
    return isinstance(t_1, (int, float)) and not isinstance(t_1, bool)


def _redge_coefficients(n_steps: int, t_1: float, dtype) -> tuple[tuple[float, float, float], ...]:
    """Per denoiser call, noisiest first: ``(k_t, c_x0, c_x)`` as Python floats, with
    ``k_t = alpha_t / sigma_t^2`` and the DDIM bridge ``x <- c_x0 x0_hat + c_x x``,
    ``c_x = sigma_s / sigma_t``, ``c_x0 = alpha_s - c_x alpha_t`` (0 at the last call).

    The grid of :func:`_redge_schedule` (``sigma`` without the cancellation, at least
    ``sigma_floor`` of ``dtype``), as torch's ``_fused.redge_coefficients`` folds it: Python
    floats are constants to XLA, where shape-(1,) arrays are broadcast full-size at every step."""
    return redge_coefficients(n_steps, t_1, sigma_floor(float(jnp.finfo(dtype).eps)))


def _redge_chain_float(binary, logits, x, coefs, keep=False):
    """:func:`_redge_chain` on folded coefficients: ``(x_1, x0_hats)``, the state at the last
    call and, with ``keep``, the ``n_steps - 2`` intermediate ``x0_hat`` stacked noisiest first
    (else ``None``). ``binary``: the chain of the differences ``d = x_1 - x_0``, whose denoiser is
    ``tanh(z / 2)``. Unrolled up to ``_UNROLL_MAX_STEPS``, beyond a :func:`lax.scan` over a small
    constant table of the coefficients: measured on XLA CPU at ``n_steps = 5``, the unrolled chain
    is 15% faster at 32x512x512 (a tie within run-to-run noise at 64x256x64), the scan faster and
    smaller at 9 (``benchmarks/results/jax_speed_diagnosis.md``)."""
    if len(coefs) == 1:  # a single denoiser call: no bridge
        return x, None
    x = jnp.broadcast_to(x, jnp.broadcast_shapes(x.shape, logits.shape)).astype(jnp.result_type(x, logits))
    if len(coefs) + 1 <= _UNROLL_MAX_STEPS:
        x0_hats = []
        for k_t, c_x0, c_x in coefs[:-1]:
            z = logits + k_t * x
            x0_hat = _binary_mean(z) if binary else jax.nn.softmax(z, axis=-1)
            x0_hats.append(x0_hat)
            x = c_x0 * x0_hat + c_x * x
        return x, (jnp.stack(x0_hats) if keep else None)

    def step(x, c):
        z = logits + c[0] * x
        x0_hat = _binary_mean(z) if binary else jax.nn.softmax(z, axis=-1)
        return c[1] * x0_hat + c[2] * x, (x0_hat if keep else None)

    return lax.scan(step, x, jnp.asarray(coefs[:-1], dtype=x.dtype))


_UNROLL_MAX_STEPS = 5


def _sum_to(x: jax.Array, shape) -> jax.Array:
    """``x`` summed over the leading and the size-1 axes that broadcasting added to ``shape``."""
    lead = x.ndim - len(shape)
    x = jnp.sum(x, axis=tuple(range(lead))) if lead else x
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return jnp.sum(x, axis=axes, keepdims=True) if axes else x


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _redge(binary, coefs, logits, eps, noise):
    r"""REDGE's chain for a float ``t_1`` with a hand-written, recomputing backward (torch's
    ``_REDGE``): forward ``(hard, soft)``; ``coefs`` from :func:`_redge_coefficients`, ``noise``
    the Gumbels (``binary``: the logistic noise of :func:`_binary_hard_soft`).

    The forward keeps only ``logits``, ``eps`` and ``soft``. The backward recomputes the
    chain once, keeping the ``n_steps - 2`` intermediate ``x0_hat`` (the last is ``soft``), then
    runs reverse mode by hand (``reference._redge_backprop``). With ``z_t = logits + k_t x_t``,
    ``x0_hat_t = softmax(z_t)``, ``x_{t-1} = c_{x0,t} x0_hat_t + c_{x,t} x_t``,
    ``J_t^T g = x0_hat_t * (g - <x0_hat_t, g>)`` (binary: ``(1 - x0_hat_t^2) g / 2`` of the chain's
    ``tanh(z / 2)`` and ``soft (1 - soft) g`` at the last call) and ``g`` the cotangent of ``soft``,
    for ``t = 1 .. n_steps - 1``:

    .. math::
        \bar z_1 = J_1^\top g,\quad
        \bar z_t = J_t^\top \big(c_{x0,t}\, \bar x_{t-1}\big),\quad
        \bar x_t = c_{x,t}\, \bar x_{t-1} + k_t \bar z_t \ (\bar x_0 := 0),\quad
        \nabla_\ell = \textstyle\sum_t \bar z_t .

    One-hot chains with ``K >= REDGE_BLOCK_MIN_K`` run, forward and backward, over blocks of
    whole rows (:func:`_row_blocks`, :data:`REDGE_BLOCK_ENTRIES`): each block's chain stays in
    cache and XLA's scratch is a few blocks, so at 32x512x512 the kernel takes about 0.7x the time
    and a third of the scratch (``benchmarks/results/jax_speed_diagnosis.md``). Binary chains,
    and one-hot chains of fewer classes, run whole: XLA fuses them into one loop.

    ``hard`` is piecewise constant: its cotangent is dropped. ``eps`` and ``noise`` get none, and
    there is no forward mode (``jax.jvp``): an array ``t_1`` takes the autodiffed chain.
    """
    return _redge_fwd(binary, coefs, logits, eps, noise)[0]


def _redge_fwd(binary, coefs, logits, eps, noise):
    shape = jnp.broadcast_shapes(logits.shape, eps.shape, noise.shape)
    if not _blocked(binary, shape):  # XLA fuses the whole chain into one loop
        hard, soft = _redge_block_fwd(binary, coefs, logits, eps, noise)
        return (hard, soft), (logits, eps, soft)
    hard, soft = _row_blocks(functools.partial(_redge_block_fwd, binary, coefs), shape, logits, eps, noise)
    return (hard, soft), (logits, eps, soft)


def _redge_bwd(binary, coefs, residuals, cotangents):
    logits, eps, soft = residuals
    _, g = cotangents
    if not _blocked(binary, soft.shape):
        grad_logits = _redge_block_bwd(binary, coefs, logits, eps, soft, g)
    else:
        grad_logits = _row_blocks(functools.partial(_redge_block_bwd, binary, coefs), soft.shape, logits, eps, soft, g)
    return _sum_to(grad_logits, logits.shape).astype(logits.dtype), None, None


#: :func:`_redge` runs the one-hot chain over blocks of about this many entries (whole rows), one
#: block at a time (:func:`lax.map`), forward and backward: a block's chain stays in cache, and
#: XLA's scratch is a few blocks instead of ``n_steps`` logits-sized arrays. Measured on XLA CPU,
#: forward + backward, n_steps 5 (``benchmarks/results/jax_speed_diagnosis.md``, section 1b).
REDGE_BLOCK_ENTRIES = 2**16

#: One-hot chains with fewer classes than this run whole, as binary ones do: at K = 9 row blocks
#: cost 1.5-1.8x the whole chain (the blocked loop body vectorises poorly over 9 classes); at
#: K = 64 they tie in time with a third of the scratch; at K = 512 and 4096 they win 1.4-1.7x
#: (``benchmarks/jax_speed_probe.py --section blocks``, ``jax_speed_diagnosis.md`` section 1b).
REDGE_BLOCK_MIN_K = 64


def _blocked(binary: bool, shape) -> bool:
    """Whether :func:`_redge` runs this chain over row blocks: one-hot, ``K >= REDGE_BLOCK_MIN_K``."""
    return not binary and bool(shape) and shape[-1] >= REDGE_BLOCK_MIN_K


def _row_blocks(fn, shape, *arrays, indexed=False):
    """``fn`` over row blocks of ``arrays`` broadcast to ``shape``, flattened to ``(rows, K)``:
    about :data:`REDGE_BLOCK_ENTRIES` entries per block; one call when it all fits in one block,
    else a loop over blocks (rows zero-padded to a whole number of blocks). ``fn`` maps
    ``(block_rows, K)`` arrays to one array or a tuple of them, each ``(block_rows, K)``; with
    ``indexed``, ``fn(rows, *blocks)`` also gets its block's row numbers (uint32, ``(block_rows,)``)
    in the padded ``(rows, K)`` array.

    On one device, block ``j`` is the contiguous rows ``j * block_rows ...`` (:func:`lax.map`). With
    more than one device (:func:`_strided_blocks`) it is every ``n_blocks``-th row from ``j``, so
    a leading axis sharded across devices stays sharded inside every block. A loop over contiguous
    blocks scans the sharded axis, and XLA then gathers the whole array on every device (measured:
    3-5 all-gathers and a replicated gradient with 4 host devices). The strided loop costs
    1.1-1.24x the contiguous one on one device (``jax_speed_diagnosis.md`` section 6)."""
    n_classes = shape[-1] if shape else 1
    rows = math.prod(shape[:-1])
    flat = [jnp.broadcast_to(a, shape).reshape(rows, n_classes) for a in arrays]
    block = max(1, REDGE_BLOCK_ENTRIES // max(n_classes, 1))
    if rows <= block:
        out = fn(lax.iota(jnp.uint32, rows), *flat) if indexed else fn(*flat)
        return jax.tree.map(lambda o: o.reshape(shape), out)
    n_blocks = -(-rows // block)
    pad = n_blocks * block - rows
    flat = [jnp.pad(a, ((0, pad), (0, 0))) if pad else a for a in flat]
    local = lax.iota(jnp.uint32, block)
    if _strided_blocks():
        grid = tuple(a.reshape(block, n_blocks, n_classes) for a in flat)  # block j: rows i * n_blocks + j
        out_struct = jax.eval_shape(
            lambda *b: fn(local, *b) if indexed else fn(*b),
            *(jax.ShapeDtypeStruct((block, n_classes), a.dtype) for a in flat),
        )
        # zeros like an input block grid: under an explicit mesh the carry takes the inputs' sharding
        init = jax.tree.map(lambda o: jnp.zeros_like(grid[0], dtype=o.dtype), out_struct)

        def body(j, outs):
            blocks = [lax.dynamic_index_in_dim(g, j, axis=1, keepdims=False) for g in grid]
            res = fn(local * jnp.uint32(n_blocks) + j.astype(jnp.uint32), *blocks) if indexed else fn(*blocks)
            return jax.tree.map(lambda o, r: lax.dynamic_update_index_in_dim(o, r, j, axis=1), outs, res)

        out = lax.fori_loop(0, n_blocks, body, init)
    else:
        blocks = tuple(a.reshape(n_blocks, block, n_classes) for a in flat)
        if indexed:
            starts = jnp.arange(n_blocks, dtype=jnp.uint32) * jnp.uint32(block)
            out = lax.map(lambda args: fn(args[0] + local, *args[1]), (starts, blocks))
        else:
            out = lax.map(lambda args: fn(*args), blocks)
    return jax.tree.map(lambda o: o.reshape(n_blocks * block, n_classes)[:rows].reshape(shape), out)


def _strided_blocks() -> bool:
    """Whether :func:`_row_blocks` takes strided blocks: more than one device visible to JAX."""
    return jax.device_count() > 1


def _redge_block_fwd(binary, coefs, logits, eps, noise):
    """``(hard, soft)`` of the chain on one block (or on whole arrays, binary)."""
    z = logits + coefs[-1][0] * _redge_chain_float(binary, logits, eps, coefs)[0]
    return _binary_hard_soft(z, noise) if binary else _hard_soft(z, noise)


def _redge_block_bwd(binary, coefs, logits, eps, soft, g):
    """The gradient of ``sum(g * soft)`` w.r.t. ``logits``, broadcast to ``soft.shape``: the chain
    recomputed once, then reverse mode by hand (:func:`_redge`'s docstring)."""
    _, x0_hats = _redge_chain_float(binary, logits, eps, coefs, keep=True)
    vjp = (lambda p, g: 0.5 * (1.0 - p * p) * g) if binary else _softmax_vjp
    grad_logits = soft * (1.0 - soft) * g if binary else _softmax_vjp(soft, g)  # t = 1, the last call
    g_x = coefs[-1][0] * grad_logits

    def step(carry, c_x0_hat):  # t = 2 .. n_steps - 1: a reverse scan over the chain's calls
        (grad_logits, g_x), (c, x0_hat) = carry, c_x0_hat
        d_z = vjp(x0_hat, g_x)  # the cotangent of z_t is c_x0 * d_z, by linearity
        return (grad_logits + c[1] * d_z, c[2] * g_x + (c[1] * c[0]) * d_z), None  # g_x: now this step's state

    if x0_hats is not None:
        table = jnp.asarray(coefs[:-1], dtype=x0_hats.dtype)
        (grad_logits, _), _ = lax.scan(
            step, (grad_logits, g_x.astype(grad_logits.dtype)), (table, x0_hats), reverse=True
        )
    return grad_logits


_redge.defvjp(_redge_fwd, _redge_bwd)


def _hard_soft(z, gumbels):
    """``soft = softmax(z)`` and ``hard ~ Cat(soft)`` by Gumbel-max on ``log_softmax(z)``."""
    log_soft = jax.nn.log_softmax(z, axis=-1)
    soft = jnp.exp(log_soft)
    return one_hot_argmax(log_soft + gumbels), soft


def _redge_hard_soft(logits, n_steps, t_1, eps, gumbels):
    """REDGE's ``(hard, soft)`` before the straight-through surgery: through :func:`_redge` for a
    Python-float ``t_1``, else the chain (:func:`_redge_general`), which differentiates ``t_1`` too."""
    if _is_float(t_1):
        if _fused_available(logits, t_1):
            from ._pallas import redge_hard_soft

            return redge_hard_soft(logits, n_steps, t_1, eps, gumbels)
        return _redge(False, _redge_coefficients(n_steps, t_1, logits.dtype), logits, eps, gumbels)
    return _redge_general(logits, n_steps, t_1, eps, gumbels)


def _fused_available(logits, t_1) -> bool:
    """Whether the fused Pallas (Triton) kernel of :mod:`numpyro_ext._pallas` takes this call: on a
    GPU backend only (it is imported there only), as torch's Triton path; the XLA path elsewhere."""
    if jax.default_backend() not in ("gpu", "cuda", "rocm"):
        return False
    from ._pallas import pallas_available

    return pallas_available(logits, t_1)


def _redge_general(logits, n_steps, t_1, eps, gumbels):
    """The chain through :data:`_redge_chain_remat`, then the last denoiser: any ``t_1``."""
    alphas, sigmas = _redge_schedule(n_steps, t_1, logits.dtype)
    x = _redge_chain_remat(_redge_denoiser, logits, eps, alphas, sigmas)
    return _hard_soft(_redge_logits(logits, x, alphas[1], sigmas[1]), gumbels)


def redge(logits: jax.Array, n_steps: int, t_1, eps: jax.Array, gumbels: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""REDGE (Gourevitch et al. 2026, arXiv 2601.00781).

    Forward: DDIM on the grid ``alphas = [1, linspace(1 - t_1, 1e-4, n_steps - 1)]``,
    ``sigmas = 1 - alphas``, from ``x = eps`` at the noisiest point down to ``t_1``
    (``n_steps - 1`` denoiser calls); ``soft`` is the last ``x0_hat`` and
    ``hard ~ Cat(soft)`` by Gumbel-max on ``log_softmax`` of the last pre-activation.
    Gradient of ``hard``: the exact gradient of ``soft`` through the whole chain
    (w.r.t. ``logits`` and an array ``t_1``), recomputed in the backward pass (module docstring).

    .. math::
        \hat x_0 = \mathrm{softmax}(\ell + \alpha_t x_t / \sigma_t^2),\qquad
        x_s = \alpha_s \hat x_0 + \sigma_s (x_t - \alpha_t \hat x_0) / \sigma_t .

    ``n_steps`` is a static Python int >= 2; ``t_1 = 1, n_steps = 2`` is straight-through.

    >>> hard, soft = redge(jnp.zeros((2, 3)), 5, 0.5, jnp.zeros((2, 3)), jnp.zeros((2, 3)))
    >>> hard.shape, soft.shape
    ((2, 3), (2, 3))
    """
    hard, soft = _redge_hard_soft(logits, n_steps, t_1, eps, gumbels)
    return _ops.straight_through(hard, soft), soft


def _cov_variance(logits):
    p = jax.nn.softmax(logits, axis=-1)
    return p, jnp.maximum(p * (1.0 - p), COV_MIN_VARIANCE)


def redge_cov(logits: jax.Array, n_steps: int, t_1, eps: jax.Array, gumbels: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""REDGE-cov (Gourevitch et al. 2026): REDGE with a per-class variance.

    Forward: ``p = softmax(logits)``, ``var = max(p (1 - p), 0.1)``; start at
    ``x = p + sqrt(var) eps`` and run the REDGE chain with the denoiser
    ``softmax(logits + (alpha x - alpha sigma p - alpha^2 / 2) / (var sigma^2))``;
    ``(hard, soft)`` as in :func:`redge`. Gradient of ``hard``: the exact gradient of
    ``soft`` (through the chain, ``p`` and ``var``), recomputed in the backward pass.

    >>> hard, soft = redge_cov(jnp.zeros(3), 3, 0.5, jnp.zeros(3), jnp.zeros(3))
    >>> hard.shape, soft.shape
    ((3,), (3,))
    """
    p, var = _cov_variance(logits)
    x = p + jnp.sqrt(var) * eps
    alphas, sigmas = _redge_schedule(n_steps, t_1, logits.dtype)
    x = _redge_chain_remat(_redge_cov_denoiser, logits, x, alphas, sigmas, p, var)
    hard, soft = _hard_soft(_redge_cov_logits(logits, x, alphas[1], sigmas[1], p, var), gumbels)
    return _ops.straight_through(hard, soft), soft


@jax.custom_vjp
def _reindge_correction(logits: jax.Array, hard: jax.Array, x0_hat: jax.Array) -> jax.Array:
    r"""Forward: exact zeros of ``hard``'s shape. Backward, for upstream ``g``:

    .. math::
        \nabla_\ell = \tfrac12 \big(\langle g, D\rangle D - \hat x_0 \odot (g - \langle \hat x_0, g\rangle)\big),
        \qquad D = \text{hard} - \hat x_0,

    and nothing to ``hard`` or ``x0_hat``. Added to REDGE's full gradient, whose last
    denoiser contributes ``J^T g`` directly to the logits, it leaves the chain term through
    ``x_1`` plus ``(J^T g + <g, D> D) / 2``.
    """
    return jnp.zeros_like(hard)


def _reindge_correction_fwd(logits, hard, x0_hat):
    return jnp.zeros_like(hard), (hard, x0_hat)


def _reindge_correction_bwd(residuals, g):
    hard, x0_hat = residuals
    d = hard - x0_hat
    return 0.5 * (jnp.sum(g * d, axis=-1, keepdims=True) * d - _softmax_vjp(x0_hat, g)), None, None


_reindge_correction.defvjp(_reindge_correction_fwd, _reindge_correction_bwd)


def reindge(logits: jax.Array, n_steps: int, t_1, eps: jax.Array, gumbels: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""REINDGE (Gourevitch et al. 2026): REDGE's chain with a ReinMax-style last step.

    Forward: exactly :func:`redge`'s ``(hard, soft)``. Gradient of ``hard``: REDGE's chain
    gradient flowing only through the last step's state ``x_1`` (the last denoiser's
    direct ``logits`` path is cut), plus a correction; with ``J^T g = softmax_vjp(x0_hat, g)``:

    .. math:: \nabla_\ell = \nabla^{\text{chain}, x_1}_\ell + \tfrac12 \big(J^\top g + \langle g, D\rangle D\big),
              \qquad D = \text{hard} - \hat x_0 .

    Computed as REDGE's full gradient (one recomputing backward, module docstring) plus
    ``_reindge_correction``, a :func:`jax.custom_vjp` whose forward is exact zeros added to
    the straight-through output and whose backward is ``(<g, D> D - J^T g) / 2``. ``soft``
    carries REDGE's gradient; an array ``t_1`` gets REDGE's gradient (the correction has no
    ``t_1`` path). With ``t_1 = 1`` and ``n_steps = 2`` this is ReinMax at ``tau = 1``.

    >>> hard, soft = reindge(jnp.zeros(3), 3, 0.5, jnp.zeros(3), jnp.zeros(3))
    >>> hard.shape, soft.shape
    ((3,), (3,))
    """
    return _reindge_from(logits, *_redge_hard_soft(logits, n_steps, t_1, eps, gumbels))


def _reindge_from(logits, hard, soft):
    """REINDGE's ``(sample, soft)`` from REDGE's ``(hard, soft)``: straight-through plus the correction."""
    logits = jnp.broadcast_to(logits, hard.shape)  # the custom VJP returns a cotangent of hard's shape
    correction = _reindge_correction(logits, hard, lax.stop_gradient(soft))
    return _ops.straight_through(hard, soft) + correction, soft


# --- binary kernels: the K = 2 case on logits (0, l), one coordinate ----------------------


def _binary_hard(z: jax.Array, logistic: jax.Array) -> jax.Array:
    """``1[z + logistic > 0]``, exactly 0. or 1. in the scores' dtype: the Gumbel-max draw of
    class 1 from the logits ``(0, z)`` with ``logistic = g_1 - g_0`` (a tie goes to class 0, as
    ``argmax`` gives it the first index)."""
    scores = z + logistic
    return (scores > 0).astype(scores.dtype)


def binary_straight_through(logits: jax.Array, logistic: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""Straight-through (Bengio et al. 2013) for a binary variable: :func:`straight_through`
    on the logits ``(0, l)``, class-1 coordinate.

    Forward: ``hard = 1[l + L > 0] ~ Bernoulli(p)``, ``p = sigmoid(l)``, ``L`` standard logistic;
    ``soft = p``. Gradient of ``hard``: that of ``p``, :math:`\nabla_l = p (1 - p)\, g`.

    >>> hard, soft = binary_straight_through(jnp.zeros(3), jnp.array([-1.0, 0.5, 2.0]))
    >>> hard.tolist(), soft.tolist()
    ([0.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    """
    soft = jax.nn.sigmoid(logits)
    hard = _binary_hard(logits, logistic)
    return _ops.straight_through(hard, soft), soft


@jax.custom_vjp
def _binary_reinmax_hard(logits: jax.Array, temperature, hard: jax.Array) -> jax.Array:
    r"""Forward: ``hard``. Backward, for upstream ``g``: :func:`_reinmax_hard`'s on ``(0, l)``,
    class-1 coordinate (every term there is a multiple of ``(-1, 1)``, so the centring is void):

    .. math::
        p_0 = \sigma(l),\quad p_1 = \tfrac12 (\sigma(l / \tau) + \text{hard}),\quad
        \nabla_l = \big(2\, p_1 (1 - p_1) - \tfrac12 p_0 (1 - p_0)\big)\, g .

    No gradient flows to ``temperature`` nor to ``hard``.
    """
    return hard


def _binary_reinmax_hard_fwd(logits, temperature, hard):
    return hard, (logits, temperature, hard)


def _binary_reinmax_hard_bwd(residuals, g):
    logits, temperature, hard = residuals
    p_0 = jax.nn.sigmoid(logits)
    p_1 = 0.5 * (jax.nn.sigmoid(logits / jnp.asarray(temperature, dtype=logits.dtype)) + hard)
    return (2.0 * p_1 * (1.0 - p_1) - 0.5 * p_0 * (1.0 - p_0)) * g, None, None


_binary_reinmax_hard.defvjp(_binary_reinmax_hard_fwd, _binary_reinmax_hard_bwd)


def binary_reinmax(logits: jax.Array, temperature, logistic: jax.Array) -> tuple[jax.Array, jax.Array]:
    r"""ReinMax (Liu et al. 2023) for a binary variable: :func:`reinmax` on the logits ``(0, l)``,
    class-1 coordinate.

    Forward: ``hard = 1[l + L > 0]``, ``soft = sigmoid(l)``. Gradient of ``hard``:

    .. math:: \nabla_l = \big(2\, p_1 (1 - p_1) - \tfrac12 p_0 (1 - p_0)\big)\, g,\quad
              p_0 = \sigma(l),\ p_1 = \tfrac12 (\sigma(l/\tau) + \text{hard}).

    ``temperature`` (broadcasting against ``logits``) receives **no gradient**.

    >>> hard, soft = binary_reinmax(jnp.zeros(2), 1.0, jnp.array([-1.0, 1.0]))
    >>> hard.tolist(), soft.tolist()
    ([0.0, 1.0], [0.5, 0.5])
    """
    soft = jax.nn.sigmoid(logits)
    hard = _binary_hard(logits, logistic)
    shape = jnp.broadcast_shapes(
        hard.shape, jnp.shape(temperature)
    )  # the custom VJP returns a cotangent of hard's shape
    hard, logits = jnp.broadcast_to(hard, shape), jnp.broadcast_to(logits, shape)
    return _binary_reinmax_hard(logits, temperature, hard), soft


def _binary_redge_logits(logits, d, alpha, sigma):
    r"""Log-odds of class 1 under the REDGE denoiser at the difference ``d = x_1 - x_0``:
    ``_redge_logits`` on ``(0, l)``, class 1 minus class 0: ``l + alpha d / sigma^2``."""
    return logits + alpha * d / sigma**2


def _binary_mean(z):
    """``x0_hat_1 - x0_hat_0 = 2 sigmoid(z) - 1 = tanh(z / 2)`` (no cancellation near ``z = 0``)."""
    return jnp.tanh(z / 2.0)


def _binary_redge_denoiser(logits, d, alpha, sigma):
    """The difference of the REDGE denoiser's two coordinates."""
    return _binary_mean(_binary_redge_logits(logits, d, alpha, sigma))


def _binary_redge_cov_logits(logits, d, alpha, sigma, m, var):
    r"""``_redge_cov_logits`` on ``(0, l)``, class 1 minus class 0. Both classes have the variance
    ``var = max(p (1 - p), 0.1)``, so the ``alpha^2 / 2`` terms cancel and ``p_1 - p_0 = m = 2p - 1``:
    ``l + (alpha d - alpha sigma m) / (var sigma^2)``."""
    return logits + (alpha * d - alpha * sigma * m) / (var * sigma**2)


def _binary_redge_cov_denoiser(logits, d, alpha, sigma, m, var):
    """The difference of the REDGE-cov denoiser's two coordinates."""
    return _binary_mean(_binary_redge_cov_logits(logits, d, alpha, sigma, m, var))


def _binary_hard_soft(z, logistic):
    """``soft = sigmoid(z)`` and ``hard = 1[z + logistic > 0] ~ Bernoulli(soft)``."""
    return _binary_hard(z, logistic), jax.nn.sigmoid(z)


def _binary_redge_hard_soft(logits, n_steps, t_1, eps, logistic):
    """Binary REDGE's ``(hard, soft)`` before the straight-through surgery: :func:`_redge` for a
    Python-float ``t_1``, else the autodiffed chain."""
    if _is_float(t_1):
        return _redge(True, _redge_coefficients(n_steps, t_1, logits.dtype), logits, eps, logistic)
    alphas, sigmas = _redge_schedule(n_steps, t_1, logits.dtype, event_axis=False)
    d = _redge_chain_remat(_binary_redge_denoiser, logits, eps, alphas, sigmas)
    return _binary_hard_soft(_binary_redge_logits(logits, d, alphas[1], sigmas[1]), logistic)


def binary_redge(
    logits: jax.Array, n_steps: int, t_1, eps: jax.Array, logistic: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""REDGE (Gourevitch et al. 2026) for a binary variable: :func:`redge` on the logits ``(0, l)``,
    class-1 coordinate, with the chain written in the difference ``d = x_1 - x_0``.

    Forward: start at ``d = eps`` (``eps = eps_1 - eps_0 ~ N(0, 2)``) at the noisiest grid
    point; at each grid point ``z = l + alpha_t d / sigma_t^2`` and the DDIM bridge of the
    difference ``m = 2 sigmoid(z) - 1``; ``soft = sigmoid(z)`` at ``alpha = 1 - t_1`` and
    ``hard = 1[z + L > 0] ~ Bernoulli(soft)``. Gradient of ``hard``: the exact gradient of
    ``soft`` through the chain (w.r.t. ``logits`` and an array ``t_1``), recomputed in the
    backward pass as :func:`redge`'s.

    .. math::
        z_t = l + \frac{\alpha_t d_t}{\sigma_t^2},\qquad
        d_s = \alpha_s m_t + \sigma_s \frac{d_t - \alpha_t m_t}{\sigma_t},\quad m_t = \tanh(z_t / 2).

    >>> hard, soft = binary_redge(jnp.zeros(3), 5, 0.5, jnp.zeros(3), jnp.array([-1.0, 0.5, 2.0]))
    >>> hard.tolist(), soft.tolist()
    ([0.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    """
    hard, soft = _binary_redge_hard_soft(logits, n_steps, t_1, eps, logistic)
    return _ops.straight_through(hard, soft), soft


def binary_redge_cov(
    logits: jax.Array, n_steps: int, t_1, eps: jax.Array, logistic: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""REDGE-cov (Gourevitch et al. 2026) for a binary variable: :func:`redge_cov` on the logits
    ``(0, l)``, class-1 coordinate, in the difference ``d = x_1 - x_0``.

    Forward: ``p = sigmoid(l)``, ``var = max(p (1 - p), 0.1)`` (the same for both classes),
    ``m = 2p - 1``; start at ``d = m + sqrt(var) eps`` (``eps = eps_1 - eps_0``) and run
    :func:`binary_redge`'s chain with the log-odds ``l + (alpha d - alpha sigma m) / (var sigma^2)``.
    Gradient of ``hard``: the exact gradient of ``soft`` (through the chain, ``p`` and ``var``).

    >>> hard, soft = binary_redge_cov(jnp.zeros(2), 3, 0.5, jnp.zeros(2), jnp.array([-1.0, 1.0]))
    >>> hard.tolist(), soft.tolist()
    ([0.0, 1.0], [0.5, 0.5])
    """
    p = jax.nn.sigmoid(logits)
    var = jnp.maximum(p * (1.0 - p), COV_MIN_VARIANCE)
    m = 2.0 * p - 1.0
    d = m + jnp.sqrt(var) * eps
    alphas, sigmas = _redge_schedule(n_steps, t_1, logits.dtype, event_axis=False)
    d = _redge_chain_remat(_binary_redge_cov_denoiser, logits, d, alphas, sigmas, m, var)
    hard, soft = _binary_hard_soft(_binary_redge_cov_logits(logits, d, alphas[1], sigmas[1], m, var), logistic)
    return _ops.straight_through(hard, soft), soft


@jax.custom_vjp
def _binary_reindge_correction(logits: jax.Array, hard: jax.Array, x0_hat: jax.Array) -> jax.Array:
    r"""Forward: exact zeros of ``hard``'s shape. Backward, for upstream ``g``:
    :func:`_reindge_correction`'s on ``(0, l)``, class-1 coordinate,

    .. math:: \nabla_l = \tfrac12 \big(D^2 - \hat x_0 (1 - \hat x_0)\big)\, g,\qquad D = \text{hard} - \hat x_0,

    with ``x0_hat`` the class-1 probability; nothing to ``hard`` or ``x0_hat``.
    """
    return jnp.zeros_like(hard)


def _binary_reindge_correction_fwd(logits, hard, x0_hat):
    return jnp.zeros_like(hard), (hard, x0_hat)


def _binary_reindge_correction_bwd(residuals, g):
    hard, x0_hat = residuals
    d = hard - x0_hat
    return 0.5 * (d * d - x0_hat * (1.0 - x0_hat)) * g, None, None


_binary_reindge_correction.defvjp(_binary_reindge_correction_fwd, _binary_reindge_correction_bwd)


def binary_reindge(
    logits: jax.Array, n_steps: int, t_1, eps: jax.Array, logistic: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""REINDGE (Gourevitch et al. 2026) for a binary variable: :func:`reindge` on the logits
    ``(0, l)``, class-1 coordinate.

    Forward: exactly :func:`binary_redge`'s ``(hard, soft)``. Gradient of ``hard``: the chain
    gradient through the last step's state ``d_1`` plus the ReinMax-style correction; with
    ``q = soft`` and ``D = hard - q``:

    .. math:: \nabla_l = \nabla^{\text{chain}, d_1}_l + \tfrac12 \big(q (1 - q) + D^2\big)\, g,

    computed as binary REDGE's full gradient plus :func:`_binary_reindge_correction`. With
    ``t_1 = 1`` and ``n_steps = 2`` this is :func:`binary_reinmax` at ``tau = 1``.

    >>> hard, soft = binary_reindge(jnp.zeros(2), 3, 0.5, jnp.zeros(2), jnp.array([-1.0, 1.0]))
    >>> hard.tolist(), soft.tolist()
    ([0.0, 1.0], [0.5, 0.5])
    """
    hard, soft = _binary_redge_hard_soft(logits, n_steps, t_1, eps, logistic)
    logits = jnp.broadcast_to(logits, hard.shape)  # the custom VJP returns a cotangent of hard's shape
    correction = _binary_reindge_correction(logits, hard, lax.stop_gradient(soft))
    return _ops.straight_through(hard, soft) + correction, soft
