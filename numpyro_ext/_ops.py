"""Small JAX helpers every kernel shares: noise, clamping, exact one-hots and the one
straight-through helper. Mirrors ``pyro_ext/_ops.py`` line for line."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from relaxed_dists.clamping import uniform_bounds

__all__ = [
    "clamp_uniform",
    "sample_uniform",
    "sample_gumbel",
    "sample_logistic",
    "gumbel_from_uniform",
    "logistic_from_uniform",
    "one_hot_argmax",
    "straight_through",
]


def clamp_uniform(u: jax.Array) -> jax.Array:
    """Clamp uniforms to ``[tiny, 1 - eps / 2]`` of their dtype (the core clamping policy)."""
    finfo = jnp.finfo(u.dtype)
    lo, hi = uniform_bounds(float(finfo.tiny), float(finfo.eps))
    return jnp.clip(u, lo, hi)


def sample_uniform(key: jax.Array, shape, dtype) -> jax.Array:
    """Clamped uniforms of ``shape`` from an explicit PRNG key."""
    return clamp_uniform(jax.random.uniform(key, shape, dtype=dtype))


def sample_gumbel(key: jax.Array, shape, dtype) -> jax.Array:
    """Standard Gumbel noise ``-log(-log U)`` of clamped uniforms (:func:`sample_uniform`), finite
    for every draw. On XLA CPU this is one fused pass after the bits; the exponential route
    ``-log E``, ``E = -log1p(-U)``, costs a ``log1p`` more per element and, fused into a
    consumer's argmax loop, about 2x a Gumbel-ST (``benchmarks/results/jax_speed_diagnosis.md``)."""
    return gumbel_from_uniform(sample_uniform(key, shape, dtype))


def sample_logistic(key: jax.Array, shape, dtype) -> jax.Array:
    """Standard logistic noise ``logit(U)`` of clamped uniforms."""
    return jax.scipy.special.logit(sample_uniform(key, shape, dtype))


def gumbel_from_uniform(u: jax.Array) -> jax.Array:
    """Standard Gumbel by inversion: ``-log(-log u)``."""
    return -jnp.log(-jnp.log(u))


def logistic_from_uniform(u: jax.Array) -> jax.Array:
    """Standard logistic by inversion: ``log u - log(1 - u)``."""
    return jnp.log(u) - jnp.log1p(-u)


#: From this many classes on, :func:`one_hot_argmax` builds the one-hot from two plain reductions;
#: below it, from ``argmax``. Measured on XLA CPU, Gumbel-ST forward + backward on 2**20 logits:
#: the reductions take 1.8x argmax's time at K = 9, 1.4x at 16, 0.6x at 32 and 64.
REDUCTION_ONE_HOT_MIN_K = 32


def one_hot_argmax(scores: jax.Array) -> jax.Array:
    """Exact one-hot (every entry 0.0 or 1.0, in ``scores.dtype``) of the argmax over the last axis.

    Ties go to the first index; a row with a NaN gets its first NaN (``jnp.argmax``'s rules). For
    ``K >= REDUCTION_ONE_HOT_MIN_K`` it is built from a max and a min, which XLA vectorises,
    instead of ``argmax``'s variadic reduction, which XLA CPU runs element by element.
    """
    n_classes = scores.shape[-1]
    if n_classes < REDUCTION_ONE_HOT_MIN_K:
        return jax.nn.one_hot(jnp.argmax(scores, axis=-1), n_classes, dtype=scores.dtype)
    top = jnp.max(scores, axis=-1, keepdims=True)  # NaN if the row holds one
    hit = (scores == top) | jnp.isnan(scores)  # the maxima, or the NaNs of a NaN row
    index = lax.broadcasted_iota(jnp.int32, scores.shape, scores.ndim - 1)
    first = jnp.min(jnp.where(hit, index, n_classes), axis=-1, keepdims=True)
    return (index == first).astype(scores.dtype)


def straight_through(hard: jax.Array, soft: jax.Array) -> jax.Array:
    """Forward value ``hard``, gradient of ``soft``.

    The parentheses matter: ``hard + soft - stop_gradient(soft)`` is not exactly one-hot
    in float32, while ``soft - stop_gradient(soft)`` is exactly zero, so this is exactly ``hard``.
    """
    return hard + (soft - lax.stop_gradient(soft))
