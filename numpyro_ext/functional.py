"""The ``redge``-package-compatible samplers in JAX, with a leading PRNG ``key``.

Each sampler checks its parameters, draws its noise in one or two lines and calls the
pure kernel of the same name in :mod:`numpyro_ext.estimators` (REDGE and REINDGE on large
float32 inputs make the same noise inside the kernel's row blocks instead: ``numpyro_ext._keyed``). Signatures follow the
authors' ``redge`` package (``SAMPLERS`` has the same keys) plus the explicit ``key``;
no attribute is hung on the returned array (ask for ``hard=False`` for the soft output).
``hard=True`` returns the exactly one-hot sample carrying the estimator's gradient;
``hard=False`` the soft output, which ReinMax and REINDGE do not have (they raise
:class:`NotImplementedError`, as the package does). Extra keyword arguments are accepted
and ignored, so ``SAMPLERS[name](key, logits, **params)`` works with one ``params`` dict.

Python-number parameters are always checked. Array values of ``tau`` and ``t_1`` are
checked only with ``validate_args=True``, and only when concrete: under :func:`jax.jit`
they are tracers whose values are unknown, so the check cannot run and is skipped.
Under ``jit``, ``n_steps`` and ``hard`` must be static.

>>> import jax, jax.numpy as jnp
>>> SAMPLERS["redge"](jax.random.PRNGKey(0), jnp.zeros((3, 4)), n_steps=5, t_1=0.5).shape
(3, 4)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from relaxed_dists.checks import check_event_size, check_n_steps, check_positive_scalar, check_t_1, out_of_range

from . import _keyed, estimators
from ._ops import sample_gumbel

__all__ = ["straight_through", "gumbel_softmax", "reinmax", "redge", "redge_cov", "reindge", "SAMPLERS"]


def _gumbels_like(key: jax.Array, logits: jax.Array) -> jax.Array:
    return sample_gumbel(key, logits.shape, logits.dtype)


def _chain(kernel, key, logits, n_steps, t_1, validate_args):
    """Check, draw ``(eps, gumbels)`` and run a REDGE-family kernel: ``(hard, soft)``. The noise:
    the chain's Gaussian start and the final draw's Gumbel noise from one hash per element
    (:func:`numpyro_ext._keyed.draw`, made inside the row blocks where that path takes it)."""
    _check(logits, validate_args, n_steps=n_steps, t_1=t_1)
    return _keyed.draw(kernel, logits, n_steps, t_1, key, logits.shape)


def _check(logits, validate_args, **params) -> None:
    """Checks ``logits`` and every given hyperparameter; array values only with ``validate_args``
    and only outside ``jit`` (a tracer has no value to check)."""
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"logits must be a floating-point array, got logits.dtype={logits.dtype}")
    if logits.ndim == 0:
        raise ValueError(f"logits must have an event (last) dimension, got logits.shape={logits.shape}")
    check_event_size(logits.shape[-1])
    for name, value in params.items():
        if name == "n_steps":
            check_n_steps(value)
        elif isinstance(value, jax.Array):
            if validate_args and not isinstance(value, jax.core.Tracer) and not _in_range(name, value).all():
                allowed = "in (0, 1]" if name == "t_1" else "a finite number > 0"
                raise ValueError(out_of_range(name, value, allowed))
        elif name == "t_1":
            check_t_1(value)
        else:
            check_positive_scalar(name, value)


def _in_range(name: str, value: jax.Array) -> jax.Array:
    if name == "t_1":
        return (value > 0) & (value <= 1)
    return (value > 0) & jnp.isfinite(value)


def _soft_not_defined(name: str):
    return NotImplementedError(
        f"{name} has no soft output (its gradient is defined for the hard sample only); use hard=True"
    )


def straight_through(
    key: jax.Array, logits: jax.Array, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> jax.Array:
    """Straight-through: a one-hot ``~ Cat(softmax(logits))`` with the softmax gradient;
    ``hard=False``: ``softmax(logits)``."""
    _check(logits, validate_args)
    sample, soft = estimators.straight_through(logits, _gumbels_like(key, logits))
    return sample if hard else soft


def gumbel_softmax(
    key: jax.Array, logits: jax.Array, tau, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> jax.Array:
    """Gumbel-Softmax straight-through at temperature ``tau``; ``hard=False``: the Concrete sample."""
    _check(logits, validate_args, tau=tau)
    sample, soft = estimators.gumbel_softmax(logits, tau, _gumbels_like(key, logits))
    return sample if hard else soft


def reinmax(
    key: jax.Array, logits: jax.Array, tau, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> jax.Array:
    """ReinMax at temperature ``tau`` (backward only; ``tau`` gets no gradient). ``hard=False`` raises."""
    if not hard:
        raise _soft_not_defined("reinmax")
    _check(logits, validate_args, tau=tau)
    return estimators.reinmax(logits, tau, _gumbels_like(key, logits))[0]


def redge(
    key: jax.Array,
    logits: jax.Array,
    n_steps: int,
    t_1,
    hard: bool = True,
    *,
    validate_args: bool | None = None,
    **kwargs,
) -> jax.Array:
    """REDGE with ``n_steps`` grid points ending at ``t_1``; ``hard=False``: the last ``x0_hat``."""
    sample, soft = _chain(estimators.redge, key, logits, n_steps, t_1, validate_args)
    return sample if hard else soft


def redge_cov(
    key: jax.Array,
    logits: jax.Array,
    n_steps: int,
    t_1,
    hard: bool = True,
    *,
    validate_args: bool | None = None,
    **kwargs,
) -> jax.Array:
    """REDGE-cov with ``n_steps`` grid points ending at ``t_1``; ``hard=False``: the last ``x0_hat``."""
    sample, soft = _chain(estimators.redge_cov, key, logits, n_steps, t_1, validate_args)
    return sample if hard else soft


def reindge(
    key: jax.Array,
    logits: jax.Array,
    n_steps: int,
    t_1,
    hard: bool = True,
    *,
    validate_args: bool | None = None,
    **kwargs,
) -> jax.Array:
    """REINDGE with ``n_steps`` grid points ending at ``t_1``. ``hard=False`` raises."""
    if not hard:
        raise _soft_not_defined("reindge")
    return _chain(estimators.reindge, key, logits, n_steps, t_1, validate_args)[0]


#: Name -> sampler, with the ``redge`` package's keys.
SAMPLERS: dict[str, Callable[..., Any]] = {
    "st": straight_through,
    "gumbel": gumbel_softmax,
    "reinmax": reinmax,
    "redge": redge,
    "redge_cov": redge_cov,
    "reindge": reindge,
}
