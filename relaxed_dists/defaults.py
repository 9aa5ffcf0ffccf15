"""The library's default estimator choices, in one place, each chosen by a measurement.

``AUTO_RELAXED_ESTIMATOR`` / ``AUTO_RELAXED_HYPER``: what :class:`pyro_ext.autoguide.AutoRelaxed`
and :class:`numpyro_ext.autoguide.AutoRelaxed` draw their discrete sites with when the user
names no estimator. Provisional until ``benchmarks/autoguide_defaults.py`` (a suite of models
scored against exact enumeration, 3 seeds, best worst-case regret) fixes it; the table that
chose it is ``benchmarks/results/autoguide_defaults.md``.
"""

from __future__ import annotations

__all__ = ["AUTO_RELAXED_ESTIMATOR", "AUTO_RELAXED_HYPER"]

#: registry name of the estimator AutoRelaxed uses by default.
AUTO_RELAXED_ESTIMATOR: str = "reinmax"

#: its hyperparameters (completed with the registry's defaults by ``resolve_hyper``).
AUTO_RELAXED_HYPER: dict[str, object] = {"temperature": 1.0}
