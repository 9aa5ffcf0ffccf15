"""Noise and temperature schedules, built from Python floats.

REDGE (Gourevitch et al. 2026, arXiv 2601.00781) runs DDIM on the flow-matching grid
``alphas = [1, linspace(1 - t_1, ALPHA_MIN, n_steps - 1)]``, ``sigmas = 1 - alphas``.
Index 0 is clean data, index ``n_steps - 1`` the noisiest point. Because ``t_1`` may be
a (differentiable) array, the grid is expressed through the fractions ``f_k`` with
``alpha_k = (1 - t_1) (1 - f_k) + ALPHA_MIN f_k`` for ``k = 1 .. n_steps - 1``; the
backends build the alphas from these Python floats once per call.
"""

from __future__ import annotations

import math

from .checks import check_n_steps, check_positive_scalar, out_of_range
from .clamping import ALPHA_MIN

__all__ = ["redge_fractions", "redge_alphas", "exponential_anneal"]


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


def exponential_anneal(step: int, rate: float, minimum: float, maximum: float = 1.0) -> float:
    """Jang et al. (2017): ``max(minimum, maximum * exp(-rate * step))``."""
    check_positive_scalar("minimum", minimum)
    if rate < 0:
        raise ValueError(out_of_range("rate", rate, ">= 0"))
    return max(minimum, maximum * math.exp(-rate * step))
