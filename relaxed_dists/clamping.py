"""The clamping policy: where the library clamps, and to what.

Clamping happens only at named boundaries, with the working dtype's ``finfo``; the
backends pass their own ``finfo(dtype).tiny`` and ``.eps`` so this policy is written
once and holds for float64, float32, float16 and bfloat16 alike.

>>> import numpy as np
>>> finfo = np.finfo(np.float32)
>>> lo, hi = uniform_bounds(float(finfo.tiny), float(finfo.eps))
>>> bool(np.float32(hi) < 1.0), bool(np.isfinite(-np.log(-np.log(np.float32(lo)))))
(True, True)
"""

from __future__ import annotations

import math

__all__ = ["uniform_bounds", "exponential_bounds", "simplex_atol", "ALPHA_MIN", "COV_MIN_VARIANCE", "sigma_floor"]

#: Smallest signal coefficient on the REDGE grid (the noisiest point), as in the
#: authors' flow-matching schedule ``linspace(1 - t_1, 1e-4, n_steps - 1)``.
ALPHA_MIN = 1e-4

#: REDGE-cov floors the per-class variance ``p (1 - p)`` at this value, as the authors do.
COV_MIN_VARIANCE = 0.1


def uniform_bounds(tiny: float, eps: float) -> tuple[float, float]:
    """Bounds of the half-open interval ``[tiny, 1 - eps / 2]`` that uniforms are clamped to.

    ``1 - eps / 2`` is the largest float below one, so ``-log(-log(u))`` and
    ``log(u) - log1p(-u)`` stay finite for every clamped ``u``.
    """
    return tiny, 1.0 - eps / 2.0


def exponential_bounds(tiny: float, eps: float) -> tuple[float, float]:
    """Bounds for ``E ~ Exp(1)`` noise: the image ``[-log(1 - eps / 2), -log(tiny)]`` of the
    clamped uniforms under ``E = -log U``, so ``G = -log E`` is the same clamped Gumbel."""
    lo, hi = uniform_bounds(tiny, eps)
    return -math.log(hi), -math.log(lo)


def simplex_atol(eps: float) -> float:
    """Tolerance of the simplex and log-simplex support checks: ``sqrt(eps)``, half the digits
    of the dtype (float32 3.5e-4, bfloat16 0.088, float64 1.5e-8). A fixed 1e-6 (torch's)
    rejects about 1 in 10^4 float32 Concrete samples at K = 1000 and every bfloat16 one."""
    return math.sqrt(eps)


def sigma_floor(eps: float) -> float:
    """Smallest REDGE noise level ``sigma``: ``eps / 2``, the gap below one (``1 - t_1`` rounds
    to 1 for a smaller ``t_1``). The denoiser divides by ``sigma^2`` and its ``t_1``-gradient by
    ``sigma^3``: at this floor both stay finite in float32 (6e-8) and float64 (1.1e-16). A smaller
    ``t_1`` acts as the floor, where the last denoiser is already an exact argmax."""
    return eps / 2.0
