"""Small JAX helpers every kernel shares: noise, clamping, exact one-hots and the one
straight-through helper. Mirrors ``pyro_ext/_ops.py`` line for line, bar the draws from both
words of each threefry hash (:func:`sample_normal_and_uniform`, :func:`normal_and_uniform_at`,
:func:`one_hash` and :func:`sample_uniform`'s float32 path): torch's generators are sequential,
so torch has no counterpart and its REDGE classes draw ``randn`` and the uniforms separately."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p

from relaxed_dists.clamping import uniform_bounds

__all__ = [
    "clamp_uniform",
    "sample_uniform",
    "sample_gumbel",
    "sample_logistic",
    "sample_normal_and_uniform",
    "normal_and_uniform_at",
    "one_hash",
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
    """Clamped uniforms of ``shape`` from an explicit PRNG key.

    For float32 and a threefry key, from half as many hashes as ``jax.random.uniform``: along the
    last axis, entry ``j`` of the first half and entry ``j`` of the second take the two 32-bit words
    of one ``threefry2x32`` hash (:func:`sample_normal_and_uniform` has the reason and the
    fallbacks; the counters stay per row, so the draw shards with the leading axes). Measured in a
    Gumbel-ST with its noise at 64x256x64: 6.4 ms with ``jax.random.uniform``, 4.6 ms pairing
    neighbours ``2j, 2j + 1``, 4.3 ms pairing the halves. The concatenated halves are an array
    that XLA does not fuse into the consumers: a Gumbel-ST with its noise at 32x512x512 keeps
    64.1 MiB of scratch where ``jax.random.uniform``'s took 32.3."""
    shape = tuple(shape)
    if not one_hash(key, shape, dtype):
        return clamp_uniform(jax.random.uniform(key, shape, dtype=dtype))
    lead, n_last = shape[:-1], (shape[-1] if shape else 1)
    first, second = _threefry_words(key, lead + (-(-n_last // 2),))
    words = jnp.concatenate([first, second[..., : n_last // 2]], axis=-1).reshape(shape)
    return clamp_uniform(_unit_float(words))


def one_hash(key: jax.Array, shape, dtype) -> bool:
    """Whether the draws of ``shape`` use both words of each threefry hash: float32, a threefry key,
    fewer than ``2**32`` elements; else ``jax.random``'s own draws."""
    size = int(np.prod(shape, dtype=np.int64))
    return jnp.dtype(dtype) == jnp.float32 and str(jax.random.key_impl(key)) == "threefry2x32" and size < 2**32


def sample_gumbel(key: jax.Array, shape, dtype) -> jax.Array:
    """Standard Gumbel noise ``-log(-log U)`` of clamped uniforms (:func:`sample_uniform`), finite
    for every draw. On XLA CPU this is one fused pass after the bits; the exponential route
    ``-log E``, ``E = -log1p(-U)``, costs a ``log1p`` more per element and, fused into a
    consumer's argmax loop, about 2x a Gumbel-ST (``benchmarks/results/jax_speed_diagnosis.md``)."""
    return gumbel_from_uniform(sample_uniform(key, shape, dtype))


def sample_logistic(key: jax.Array, shape, dtype) -> jax.Array:
    """Standard logistic noise ``logit(U)`` of clamped uniforms."""
    return jax.scipy.special.logit(sample_uniform(key, shape, dtype))


def sample_normal_and_uniform(key: jax.Array, shape, dtype) -> tuple[jax.Array, jax.Array]:
    """``(normal, uniform)``: independent standard normals and clamped uniforms
    (:func:`clamp_uniform`) of ``shape``, the two draws of the REDGE chains (its Gaussian start and
    the uniforms of its last step's Gumbel or logistic noise).

    For float32 and a threefry key (JAX's default) both come from **one** ``threefry2x32`` hash per
    element, of ``(key, element index)``: the hash yields two 32-bit words, the first becomes the
    normal, the second the uniform. ``jax.random``'s 32-bit draws hash once per element too but
    XOR the two words into one (``jax_threefry_partitionable``), so two draws cost two hashes. On
    XLA CPU one hash per element costs about as much as a Gumbel-ST kernel; at 64x256x64 this
    took the REDGE noise from 10.4 to 6.2 ms (``benchmarks/results/jax_speed_diagnosis.md``,
    section 6). Words to floats as ``jax.random.uniform`` and ``jax.random.normal`` do (23
    mantissa bits; ``sqrt(2) erfinv`` of a uniform on ``(-1, 1)``). A counter per element, like
    partitionable threefry: the draw shards with the array. Other dtypes, other key
    implementations (``rbg``) and arrays of ``2**32`` elements or more: ``jax.random.normal``
    and :func:`sample_uniform` on two keys split from ``key``.

    >>> z, u = sample_normal_and_uniform(jax.random.PRNGKey(0), (2, 3), jnp.float32)
    >>> z.shape, bool(jnp.all((u > 0) & (u < 1)))
    ((2, 3), True)
    """
    shape = tuple(shape)
    if not one_hash(key, shape, dtype):
        key_normal, key_uniform = jax.random.split(key)
        return jax.random.normal(key_normal, shape, dtype), sample_uniform(key_uniform, shape, dtype)
    return normal_and_uniform_at(jax.random.key_data(key), _row_major_index(shape))


def normal_and_uniform_at(key_data: jax.Array, index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:func:`sample_normal_and_uniform`'s float32 draws at the element indices ``index`` (uint32)
    of ``key_data`` (a threefry key's two words): the draws of any block of an array, made where
    the block is used (the keyed REDGE path, ``numpyro_ext._keyed``) and equal to the whole draw's."""
    word_normal, word_uniform = _hash_words(key_data, index)
    return _normal_from_bits(word_normal), clamp_uniform(_unit_float(word_uniform))


def _row_major_index(shape) -> jax.Array:
    """uint32 row-major element index of ``shape``, as a sum of iotas (JAX's own counters)."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
        stride *= shape[axis]
    return index


def _hash_words(key_data: jax.Array, index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The two 32-bit output words of ``threefry2x32(key, (0, i))`` for every ``i`` in ``index``."""
    return tuple(threefry2x32_p.bind(key_data[0], key_data[1], jnp.zeros_like(index), index))


def _threefry_words(key: jax.Array, shape) -> tuple[jax.Array, jax.Array]:
    """The two words of the hash of every element of ``shape`` (row-major index): their XOR is
    ``jax.random.bits(key, shape)`` under ``jax_threefry_partitionable`` (tested)."""
    return _hash_words(jax.random.key_data(key), _row_major_index(shape))


def _normal_from_bits(bits: jax.Array) -> jax.Array:
    """float32 standard normals from 32 random bits, as ``jax.random.normal``: ``sqrt(2) erfinv``
    of a uniform on ``(-1, 1)``."""
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    return np.float32(np.sqrt(2.0)) * lax.erf_inv(jnp.maximum(lo, _unit_float(bits) * (1 - lo) + lo))


def _unit_float(bits: jax.Array) -> jax.Array:
    """float32 in ``[0, 1)`` from 32 random bits, as ``jax.random.uniform``: the top 23 bits as the
    mantissa of a number in ``[1, 2)``, minus 1."""
    one = np.array(1.0, np.float32).view(np.uint32)
    return lax.bitcast_convert_type(lax.shift_right_logical(bits, jnp.uint32(9)) | one, jnp.float32) - 1.0


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
