r"""REDGE and REINDGE with their noise drawn inside the row blocks: the samplers' CPU path.

An implementation detail of the REDGE and REINDGE samplers (``numpyro_ext.functional`` and the
classes of ``numpyro_ext.distributions``): the same samples as drawing ``(eps, gumbels)`` with
:func:`numpyro_ext._ops.sample_normal_and_uniform` and calling the kernel, and the same gradients
up to float32 round-off (tested), without the two logits-sized noise arrays. The kernels stay pure; this is the
one place besides ``_ops`` that turns a key into noise, as the torch Triton path draws its own.

Why: the XLA kernel (``numpyro_ext.estimators._redge``) runs one-hot chains of
``K >= REDGE_BLOCK_MIN_K`` classes over row blocks, so its scratch is a few blocks; but a sampler
that draws ``eps`` whole must keep it for the backward pass, which replays the chain from it.
``sample_normal_and_uniform`` hashes ``(key, element index)``, so the noise of any block can be
made where the block is used: the forward draws a block's ``eps`` and uniforms, the backward
draws its ``eps`` again. The residuals are ``logits``, the key and ``soft``.

Taken (:func:`keyed_available`) for a Python-float ``t_1``, float32, a threefry key, a one-hot
chain run over row blocks, at least :data:`KEYED_MIN_ENTRIES` entries, and not on a GPU backend
(the Pallas kernel takes the noise as input there); otherwise the samplers draw the noise whole
and call the kernel.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from . import _ops, estimators as E

__all__ = ["draw", "keyed_available", "redge_hard_soft", "KEYED_MIN_ENTRIES"]

#: From this many entries (``prod(shape)``) on, the samplers draw REDGE's noise in the blocks.
#: Measured on XLA CPU, one core, n_steps 5, forward + backward, in the blocks over drawn whole
#: (``benchmarks/jax_speed_probe.py --section keyed``, ``jax_speed_diagnosis.md`` section 6):
#: 1.14-1.15x at 2**20 entries (16x256x256, 64x256x64: the second hash of the backward costs
#: more than the memory it saves), 0.73-0.80x at 2**21, 0.74x at 2**22, 0.87x at 2**23; the
#: XLA scratch 0.3-0.5x throughout.
KEYED_MIN_ENTRIES = 2**21


def keyed_available(logits: jax.Array, t_1, key: jax.Array, shape) -> bool:
    """Whether :func:`redge_hard_soft` takes this draw (the module docstring's conditions)."""
    shape = tuple(shape)
    if not (E._is_float(t_1) and E._blocked(False, shape) and _ops.one_hash(key, shape, logits.dtype)):
        return False
    rows, n_classes = math.prod(shape[:-1]), shape[-1]
    if rows * n_classes < KEYED_MIN_ENTRIES:
        return False
    block = max(1, E.REDGE_BLOCK_ENTRIES // n_classes)
    if (-(-rows // block)) * block * n_classes >= 2**32:  # the padded blocks' indices must fit uint32
        return False
    return not E._fused_available(logits, t_1)


def redge_hard_soft(logits: jax.Array, n_steps: int, t_1: float, key: jax.Array, shape) -> tuple[jax.Array, jax.Array]:
    """REDGE's ``(hard, soft)`` on ``logits`` broadcast to ``shape``, the noise drawn from ``key``
    in the blocks: equal to ``estimators._redge_hard_soft(logits, n_steps, t_1, eps, gumbels)``
    with ``eps, u = sample_normal_and_uniform(key, shape, dtype)``, ``gumbels = -log(-log u)``."""
    coefs = E._redge_coefficients(n_steps, t_1, logits.dtype)
    return _redge_keyed(coefs, tuple(shape), logits, jax.random.key_data(key))


def _block_noise(key_data, rows, shape):
    """``(eps, gumbels)`` of the block of the rows numbered ``rows`` (``shape = (len(rows), K)``)."""
    n_classes = shape[-1]
    index = rows[:, None] * jnp.uint32(n_classes) + lax.broadcasted_iota(jnp.uint32, shape, 1)
    eps, u = _ops.normal_and_uniform_at(key_data, index)
    return eps, _ops.gumbel_from_uniform(u)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _redge_keyed(coefs, shape, logits, key_data):
    return _redge_keyed_fwd(coefs, shape, logits, key_data)[0]


def _redge_keyed_fwd(coefs, shape, logits, key_data):
    def block(rows, logits):
        eps, gumbels = _block_noise(key_data, rows, logits.shape)
        return E._redge_block_fwd(False, coefs, logits, eps, gumbels)

    hard, soft = E._row_blocks(block, shape, logits, indexed=True)
    return (hard, soft), (logits, key_data, soft)


def _redge_keyed_bwd(coefs, shape, residuals, cotangents):
    logits, key_data, soft = residuals
    _, g = cotangents

    def block(rows, logits, soft, g):
        eps, _ = _block_noise(key_data, rows, logits.shape)
        return E._redge_block_bwd(False, coefs, logits, eps, soft, g)

    grad_logits = E._row_blocks(block, shape, logits, soft, g, indexed=True)
    return E._sum_to(grad_logits, logits.shape).astype(logits.dtype), None


_redge_keyed.defvjp(_redge_keyed_fwd, _redge_keyed_bwd)


def redge(logits: jax.Array, n_steps: int, t_1: float, key: jax.Array, shape) -> tuple[jax.Array, jax.Array]:
    """``estimators.redge``'s ``(sample, soft)`` on the keyed path."""
    hard, soft = redge_hard_soft(logits, n_steps, t_1, key, shape)
    return _ops.straight_through(hard, soft), soft


def reindge(logits: jax.Array, n_steps: int, t_1: float, key: jax.Array, shape) -> tuple[jax.Array, jax.Array]:
    """``estimators.reindge``'s ``(sample, soft)`` on the keyed path."""
    return E._reindge_from(logits, *redge_hard_soft(logits, n_steps, t_1, key, shape))


def draw(kernel, logits: jax.Array, n_steps: int, t_1, key: jax.Array, shape) -> tuple[jax.Array, jax.Array]:
    """``kernel(logits, n_steps, t_1, eps, gumbels)`` (a REDGE-family kernel of
    ``numpyro_ext.estimators``) on the samplers' noise of ``shape`` from ``key``: in the blocks
    where this module takes the draw (REDGE, REINDGE: :func:`keyed_available`), else ``(eps, u)``
    drawn whole by :func:`numpyro_ext._ops.sample_normal_and_uniform`, ``gumbels = -log(-log u)``.
    The same values either way.

    >>> import jax.numpy as jnp
    >>> logits, key = jnp.zeros((2**15, 64), jnp.float32), jax.random.PRNGKey(0)
    >>> sample, soft = draw(E.redge, logits, 5, 0.5, key, logits.shape)
    >>> sample.shape, float(sample.sum()), keyed_available(logits, 0.5, key, logits.shape)
    ((32768, 64), 32768.0, True)
    """
    keyed = {E.redge: redge, E.reindge: reindge}.get(kernel)
    if keyed is not None and keyed_available(logits, t_1, key, shape):
        return keyed(logits, n_steps, t_1, key, shape)
    eps, u = _ops.sample_normal_and_uniform(key, shape, logits.dtype)
    return kernel(logits, n_steps, t_1, eps, _ops.gumbel_from_uniform(u))
