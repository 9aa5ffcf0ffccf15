"""How far the REDGE family's hard samples are from the categorical their densities describe.

``REDGE``, ``REDGECov`` and ``REINDGE`` draw ``h ~ Cat(x0_hat)`` with ``x0_hat`` the last output of a
short DDIM chain, and their ``log_prob``, ``mean``, ``variance``, ``entropy`` and KL registrations
are those of the *nominal* categorical ``Cat(softmax(logits))``. The two laws agree exactly only
at ``t_1 = 1``; elsewhere the samples are biased toward the mode, by an amount that depends on
``n_steps``, ``t_1`` and the logits. This module holds the measured worst case of that bias and
the warning the classes give when it is large. Backend-free: NumPy-free, standard library only.

The table is ``benchmarks/sample_law.py``'s (``benchmarks/results/sample_law.md``): the largest
total-variation distance ``TV(E[x0_hat], softmax(logits))`` over 64 logit vectors (``K`` in
2, 4, 10, 100; logits ``~ N(0, s^2)``, ``s`` in 0.5, 1, 2, 4), plus two standard errors, rounded
up. REINDGE's forward pass is REDGE's chain, so it shares REDGE's row.
"""

from __future__ import annotations

import bisect
import warnings

__all__ = ["WARN_TV", "N_STEPS_GRID", "T_1_GRID", "MEASURED_TV", "SampleLawWarning", "tv_bound", "warn_if_biased"]

#: A class warns when the worst-case TV at its ``(n_steps, t_1)`` exceeds this: more than a tenth of
#: the probability mass can sit on other classes than the nominal categorical puts it. The
#: defaults (``n_steps=5, t_1=0.5``: REDGE 0.019, REDGE-cov 0.068) stay below it.
WARN_TV = 0.1

N_STEPS_GRID = (2, 3, 5, 9, 17)
T_1_GRID = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)

#: estimator -> {t_1: worst-case TV for each n_steps of N_STEPS_GRID}.
MEASURED_TV = {
    "redge": {
        0.1: (0.938, 0.515, 0.155, 0.055, 0.058),
        0.2: (0.898, 0.229, 0.082, 0.042, 0.046),
        0.3: (0.818, 0.110, 0.040, 0.027, 0.025),
        0.5: (0.297, 0.021, 0.012, 0.011, 0.019),
        0.7: (0.047, 0.005, 0.005, 0.008, 0.006),
        0.9: (0.003, 0.002, 0.002, 0.001, 0.002),
        1.0: (0.0, 0.0, 0.0, 0.0, 0.0),
    },
    "redge_cov": {
        0.1: (0.771, 0.845, 0.202, 0.077, 0.051),
        0.2: (0.788, 0.681, 0.171, 0.071, 0.051),
        0.3: (0.748, 0.569, 0.148, 0.071, 0.054),
        0.5: (0.475, 0.166, 0.068, 0.047, 0.037),
        0.7: (0.143, 0.031, 0.013, 0.015, 0.012),
        0.9: (0.005, 0.004, 0.004, 0.003, 0.002),
        1.0: (0.0, 0.0, 0.0, 0.0, 0.0),
    },
}
MEASURED_TV["reindge"] = MEASURED_TV["redge"]


class SampleLawWarning(UserWarning):
    """The hard samples' law may be far (TV > :data:`WARN_TV`) from the nominal categorical."""


def _envelope(rows: dict) -> list[list[float]]:
    """The table made non-increasing in ``n_steps`` and ``t_1``: entry ``[j][i]`` is the largest
    measured value at any grid point with at least ``N_STEPS_GRID[i]`` steps and ``t_1`` at
    least ``T_1_GRID[j]``, so a look-up at the grid point below a query bounds it."""
    table = [list(rows[t]) for t in T_1_GRID]
    for j in reversed(range(len(T_1_GRID))):
        for i in reversed(range(len(N_STEPS_GRID))):
            later = [table[j][i]]
            if i + 1 < len(N_STEPS_GRID):
                later.append(table[j][i + 1])
            if j + 1 < len(T_1_GRID):
                later.append(table[j + 1][i])
            table[j][i] = max(later)
    return table


_ENVELOPES = {name: _envelope(rows) for name, rows in MEASURED_TV.items()}


def tv_bound(estimator: str, n_steps: int, t_1: float) -> float:
    """The measured worst-case TV between the hard samples' law and ``softmax(logits)``.

    Looked up at the grid point with at most ``n_steps`` steps and at most ``t_1`` (fewer steps
    and smaller ``t_1`` are more biased), in the table made monotone. ``t_1 = 1`` is exact (0).
    Below the grid (``t_1 < 0.1``) nothing was measured and the bound is 1.

    >>> tv_bound("redge", 5, 0.5), tv_bound("redge", 2, 0.3), tv_bound("redge", 5, 1.0)
    (0.019, 0.818, 0.0)
    """
    if estimator not in _ENVELOPES:
        raise ValueError(f"estimator must be one of {sorted(_ENVELOPES)}, got estimator={estimator!r}")
    if t_1 >= 1.0:
        return 0.0
    if t_1 < T_1_GRID[0]:
        return 1.0
    i = bisect.bisect_right(N_STEPS_GRID, n_steps) - 1
    j = bisect.bisect_right(T_1_GRID, t_1) - 1
    return _ENVELOPES[estimator][j][max(i, 0)]


def warn_if_biased(estimator: str, n_steps: int, t_1: float, *, stacklevel: int = 3) -> float:
    """:func:`tv_bound`, with a :class:`SampleLawWarning` when it exceeds :data:`WARN_TV`.

    A ``t_1`` outside ``(0, 1]`` is the parameter checks' business (an error under validation,
    taken as given without it): no warning then."""
    bound = tv_bound(estimator, n_steps, t_1)
    if bound > WARN_TV and 0.0 < t_1 <= 1.0:
        warnings.warn(
            f"{estimator} with n_steps={n_steps}, t_1={t_1}: its hard samples can be up to TV {bound:g} "
            f"from Cat(softmax(logits)), the law that its log_prob, mean, entropy and KL describe "
            f"(measured worst case; warning above {WARN_TV}). Raise t_1 toward 1 or n_steps, or "
            "report exact objectives; .sample_law() estimates the law on your logits.",
            SampleLawWarning,
            stacklevel=stacklevel,
        )
    return bound
