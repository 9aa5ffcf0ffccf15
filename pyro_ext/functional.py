r"""The ``redge``-package-compatible functional API: each function draws its own noise from
torch's global generator in one or two lines, then calls a pure kernel of
:mod:`pyro_ext.estimators`.

Signatures follow the authors' ``redge`` package (``SAMPLERS`` has the same keys), with
two differences: no attribute is hung on the returned tensor (the package sets ``.soft``;
ask for ``hard=False`` to get the soft output), and the parameters are validated.
``hard=False`` returns the soft output; ReinMax and REINDGE have none and raise
:class:`NotImplementedError`, as the package does. Extra keyword arguments are accepted
and ignored, so ``SAMPLERS[name](logits, **params)`` works with one ``params`` dict.

Python-number parameters are always checked (for free). Tensor values of ``tau`` and
``t_1`` are checked only with ``validate_args=True``, since that reads them back from the
device and so synchronises with it.

>>> import torch
>>> SAMPLERS["redge"](torch.zeros(3, 4), n_steps=5, t_1=0.5).shape
torch.Size([3, 4])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from relaxed_dists.checks import check_event_size, check_n_steps, check_positive_scalar, check_t_1, out_of_range

from . import estimators
from ._fused import fused_available, redge_fused
from ._ops import sample_gumbel

__all__ = ["straight_through", "gumbel_softmax", "reinmax", "redge", "redge_cov", "reindge", "SAMPLERS"]


def _gumbels_like(logits: torch.Tensor) -> torch.Tensor:
    return sample_gumbel(logits.shape, logits.dtype, logits.device)


def _redge_noise(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eps, gumbels)``: the Gaussian start of the chain and the final draw's Gumbel noise."""
    return torch.randn_like(logits), _gumbels_like(logits)


def _chain(kernel, logits, n_steps, t_1, validate_args):
    """Check, draw ``(eps, gumbels)`` and run a REDGE-family kernel: ``(hard, soft)``."""
    _check(logits, validate_args, n_steps=n_steps, t_1=t_1)
    return kernel(logits, n_steps, t_1, *_redge_noise(logits))


def _check(logits, validate_args, **params) -> None:
    """Checks ``logits`` and every given hyperparameter; tensor values only with ``validate_args``."""
    check_event_size(logits.shape[-1])
    for name, value in params.items():
        if name == "n_steps":
            check_n_steps(value)
        elif isinstance(value, torch.Tensor):
            if validate_args and not _in_range(name, value).all():
                allowed = "in (0, 1]" if name == "t_1" else "a finite number > 0"
                raise ValueError(out_of_range(name, value, allowed))
        elif name == "t_1":
            check_t_1(value)
        else:
            check_positive_scalar(name, value)


def _in_range(name: str, value: torch.Tensor) -> torch.Tensor:
    if name == "t_1":
        return (value > 0) & (value <= 1)
    return (value > 0) & torch.isfinite(value)


def _soft_not_defined(name: str):
    return NotImplementedError(
        f"{name} has no soft output (its gradient is defined for the hard sample only); use hard=True"
    )


def straight_through(
    logits: torch.Tensor, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> torch.Tensor:
    """Straight-through: a one-hot ``~ Cat(softmax(logits))`` with the softmax gradient; ``hard=False``: ``softmax(logits)``."""
    _check(logits, validate_args)
    sample, soft = estimators.straight_through(logits, _gumbels_like(logits))
    return sample if hard else soft


def gumbel_softmax(
    logits: torch.Tensor, tau, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> torch.Tensor:
    """Gumbel-Softmax straight-through at temperature ``tau``; ``hard=False``: the Concrete sample."""
    _check(logits, validate_args, tau=tau)
    sample, soft = estimators.gumbel_softmax(logits, tau, _gumbels_like(logits))
    return sample if hard else soft


def reinmax(
    logits: torch.Tensor, tau, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> torch.Tensor:
    """ReinMax at temperature ``tau`` (backward only; ``tau`` gets no gradient). ``hard=False`` raises."""
    if not hard:
        raise _soft_not_defined("reinmax")
    _check(logits, validate_args, tau=tau)
    return estimators.reinmax(logits, tau, _gumbels_like(logits))[0]


def redge(
    logits: torch.Tensor, n_steps: int, t_1, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> torch.Tensor:
    """REDGE with ``n_steps`` grid points ending at ``t_1``; ``hard=False``: the last ``x0_hat``.

    On CUDA with a Python-float ``t_1`` this runs the fused Triton kernel of
    :mod:`pyro_ext._fused` (same math, noise drawn in-kernel)."""
    if fused_available(logits, t_1):
        _check(logits, validate_args, n_steps=n_steps, t_1=t_1)
        sample, soft = redge_fused(logits, n_steps, t_1, store_soft=not hard)
        return sample if hard else cast(torch.Tensor, soft)  # kept: store_soft=True
    sample, soft = _chain(estimators.redge, logits, n_steps, t_1, validate_args)
    return sample if hard else soft


def redge_cov(
    logits: torch.Tensor, n_steps: int, t_1, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> torch.Tensor:
    """REDGE-cov with ``n_steps`` grid points ending at ``t_1``; ``hard=False``: the last ``x0_hat``."""
    sample, soft = _chain(estimators.redge_cov, logits, n_steps, t_1, validate_args)
    return sample if hard else soft


def reindge(
    logits: torch.Tensor, n_steps: int, t_1, hard: bool = True, *, validate_args: bool | None = None, **kwargs
) -> torch.Tensor:
    """REINDGE with ``n_steps`` grid points ending at ``t_1``. ``hard=False`` raises."""
    if not hard:
        raise _soft_not_defined("reindge")
    return _chain(estimators.reindge, logits, n_steps, t_1, validate_args)[0]


#: Name -> sampler, with the ``redge`` package's keys.
SAMPLERS: dict[str, Callable[..., Any]] = {
    "st": straight_through,
    "gumbel": gumbel_softmax,
    "reinmax": reinmax,
    "redge": redge,
    "redge_cov": redge_cov,
    "reindge": reindge,
}
