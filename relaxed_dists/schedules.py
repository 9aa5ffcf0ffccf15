"""Noise and temperature schedules, built from Python floats.

REDGE (Gourevitch et al. 2026, arXiv 2601.00781) runs DDIM on the flow-matching grid
``alphas = [1, linspace(1 - t_1, ALPHA_MIN, n_steps - 1)]``, ``sigmas = 1 - alphas``.
Index 0 is clean data, index ``n_steps - 1`` the noisiest point. Because ``t_1`` may be
a (differentiable) array, the grid is expressed through the fractions ``f_k`` with
``alpha_k = (1 - t_1) (1 - f_k) + ALPHA_MIN f_k`` for ``k = 1 .. n_steps - 1``; the
backends build the alphas from these Python floats once per call.

>>> redge_alphas(3, 0.5)  # clean, 1 - t_1, ALPHA_MIN
(1.0, 0.5, 0.0001)
>>> len(redge_coefficients(5, 0.5))  # one (k_t, c_x0, c_x) per denoiser call
4
>>> exponential_anneal(0, 1e-3, 0.5), exponential_anneal(10_000, 1e-3, 0.5)
(1.0, 0.5)
"""

from __future__ import annotations

import math

from .checks import check_n_steps, check_positive_scalar, out_of_range
from .clamping import ALPHA_MIN

__all__ = ["redge_fractions", "redge_alphas", "redge_grid", "redge_coefficients", "exponential_anneal"]


def redge_fractions(n_steps: int) -> tuple[float, ...]:
    """``f_1 .. f_{n_steps-1}``: where each non-clean grid point sits between ``1 - t_1`` (0) and ``ALPHA_MIN`` (1)."""
    n_steps = check_n_steps(n_steps)
    if n_steps == 2:
        return (0.0,)  # linspace(a, b, 1) == [a]
    return tuple(k / (n_steps - 2) for k in range(n_steps - 1))


def redge_alphas(n_steps: int, t_1: float) -> tuple[float, ...]:
    """The full grid ``(alpha_0 = 1, alpha_1 = 1 - t_1, ..., alpha_{n_steps-1} = ALPHA_MIN)`` for a float ``t_1``."""
    start = 1.0 - t_1
    return (1.0,) + tuple(start * (1.0 - f) + ALPHA_MIN * f for f in redge_fractions(n_steps))


def redge_grid(n_steps: int, t_1: float, sigma_min: float = 0.0) -> tuple[list[float], list[float]]:
    """``(alphas, sigmas)`` as Python floats for a float ``t_1``, index 0 clean (``sigma_0 = 0``):
    ``alpha_k = (1 - t_1)(1 - f_k) + ALPHA_MIN f_k`` and ``sigma_k = t_1 (1 - f_k) + (1 - ALPHA_MIN) f_k``
    (the same number as ``1 - alpha_k`` without the cancellation), at least ``sigma_min``. The JAX
    kernels pass ``sigma_floor`` of their dtype, so that ``1 / sigma^3`` stays finite."""
    fractions = redge_fractions(n_steps)
    alphas = [1.0] + [(1.0 - t_1) * (1.0 - f) + ALPHA_MIN * f for f in fractions]
    sigmas = [0.0] + [max(t_1 * (1.0 - f) + (1.0 - ALPHA_MIN) * f, sigma_min) for f in fractions]
    return alphas, sigmas


def redge_coefficients(n_steps: int, t_1: float, sigma_min: float = 0.0) -> tuple[tuple[float, float, float], ...]:
    """Per denoiser call, noisiest first: ``(k_t, c_x0, c_x)`` on :func:`redge_grid`, with
    ``k_t = alpha_t / sigma_t^2`` and the DDIM bridge ``x <- c_x0 x0_hat + c_x x``,
    ``c_x = sigma_s / sigma_t``, ``c_x0 = alpha_s - c_x alpha_t`` (both 0 at the last call)."""
    alphas, sigmas = redge_grid(n_steps, t_1, sigma_min)
    coefs = []
    for t in range(n_steps - 1, 0, -1):
        c_x = sigmas[t - 1] / sigmas[t] if t > 1 else 0.0
        c_x0 = alphas[t - 1] - c_x * alphas[t] if t > 1 else 0.0
        coefs.append((alphas[t] / sigmas[t] ** 2, c_x0, c_x))
    return tuple(coefs)


def exponential_anneal(step: int, rate: float, minimum: float, maximum: float = 1.0) -> float:
    """Jang et al. (2017): ``max(minimum, maximum * exp(-rate * step))``."""
    check_positive_scalar("minimum", minimum)
    if rate < 0:
        raise ValueError(out_of_range("rate", rate, ">= 0"))
    return max(minimum, maximum * math.exp(-rate * step))
