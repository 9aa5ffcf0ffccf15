"""Small JAX helpers every kernel shares: noise, clamping, exact one-hots and the one
straight-through helper. Mirrors ``pyro_ext/_ops.py`` line for line."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from relaxed_dists.clamping import exponential_bounds, uniform_bounds

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
    """Standard Gumbel noise ``-log E``, ``E = -log U ~ Exp(1)`` clamped to the image of the
    clamped uniforms (mirrors the torch helper; XLA fuses it into one kernel)."""
    finfo = jnp.finfo(dtype)
    lo, hi = exponential_bounds(float(finfo.tiny), float(finfo.eps))
    return -jnp.log(jnp.clip(jax.random.exponential(key, shape, dtype=dtype), lo, hi))


def sample_logistic(key: jax.Array, shape, dtype) -> jax.Array:
    """Standard logistic noise ``logit(U)`` of clamped uniforms."""
    return jax.scipy.special.logit(sample_uniform(key, shape, dtype))


def gumbel_from_uniform(u: jax.Array) -> jax.Array:
    """Standard Gumbel by inversion: ``-log(-log u)``."""
    return -jnp.log(-jnp.log(u))


def logistic_from_uniform(u: jax.Array) -> jax.Array:
    """Standard logistic by inversion: ``log u - log(1 - u)``."""
    return jnp.log(u) - jnp.log1p(-u)


def one_hot_argmax(scores: jax.Array) -> jax.Array:
    """Exact one-hot (every entry 0.0 or 1.0, in ``scores.dtype``) of the argmax over the last axis."""
    index = jnp.argmax(scores, axis=-1)
    return jax.nn.one_hot(index, scores.shape[-1], dtype=scores.dtype)


def straight_through(hard: jax.Array, soft: jax.Array) -> jax.Array:
    """Forward value ``hard``, gradient of ``soft``.

    The parentheses matter: ``hard + soft - stop_gradient(soft)`` is not exactly one-hot
    in float32, while ``soft - stop_gradient(soft)`` is exactly zero, so this is exactly ``hard``.
    """
    return hard + (soft - lax.stop_gradient(soft))
