"""Estimators by name: which hyperparameters each takes, their defaults, and the check of a
user's choice. Shared by ``pyro_ext.relax`` and ``numpyro_ext.relax`` (each maps a name to
its own distribution class).

>>> resolve_hyper("redge", {"t_1": 0.2})  # the registry's defaults, overridden
{'n_steps': 5, 't_1': 0.2}
>>> resolve_hyper("reinmax", {"n_steps": 3})
Traceback (most recent call last):
    ...
TypeError: estimator='reinmax' takes hyperparameters ['temperature'], got unexpected ['n_steps']
"""

from __future__ import annotations

from collections.abc import Mapping

from .checks import check_n_steps, check_positive_scalar, check_t_1

__all__ = ["ESTIMATORS", "BERNOULLI_ESTIMATORS", "resolve_hyper"]

#: name -> {hyperparameter: default}. Keys match ``functional.SAMPLERS`` plus "concrete"
#: (the relaxed, non-hard Concrete: meant for both the model and the guide).
ESTIMATORS: dict[str, dict[str, object]] = {
    "st": {},
    "gumbel": {"temperature": 1.0},
    "reinmax": {"temperature": 1.0},
    "redge": {"n_steps": 5, "t_1": 0.5},
    "redge_cov": {"n_steps": 5, "t_1": 0.5},
    "reindge": {"n_steps": 5, "t_1": 0.5},
    "concrete": {"temperature": 1.0},
}

#: Estimators with a Bernoulli version: all of them (the hard estimators as their K = 2 case on
#: one coordinate, ``gumbel``/``concrete`` as the binary Concrete, hard or relaxed).
BERNOULLI_ESTIMATORS = ("st", "gumbel", "reinmax", "redge", "redge_cov", "reindge", "concrete")

_CHECKS = {"n_steps": check_n_steps, "t_1": check_t_1, "temperature": lambda v: check_positive_scalar("temperature", v)}


def resolve_hyper(estimator: str, hyper: Mapping[str, object]) -> dict[str, object]:
    """The estimator's hyperparameters: defaults overridden by ``hyper``.

    Unknown estimators and hyperparameters the estimator does not take are errors that name
    them; Python-number values are range-checked here, callables (schedules) and arrays by
    the backend when they are evaluated.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got estimator={estimator!r}")
    allowed = ESTIMATORS[estimator]
    unknown = sorted(set(hyper) - set(allowed))
    if unknown:
        raise TypeError(
            f"estimator={estimator!r} takes hyperparameters {sorted(allowed) or 'none'}, got unexpected {unknown}"
        )
    resolved = {**allowed, **hyper}
    for name, value in resolved.items():
        if not callable(value) and (name == "n_steps" or isinstance(value, (int, float))):
            _CHECKS[name](value)
    return resolved
