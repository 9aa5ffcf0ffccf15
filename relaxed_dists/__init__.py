"""relaxed-dists core: backend-free schedules, parameter checks, shape rules, the
clamping policy and the float64 NumPy reference math (``reference``) that the Pyro
(``pyro_ext``) and NumPyro (``numpyro_ext``) backends are tested against.

This package imports NumPy and the standard library only.
"""

from . import checks, clamping, diagnostics, diffusion, reference, registry, schedules, selection, shapes
from .checks import (
    check_event_size,
    check_n_steps,
    check_positive_scalar,
    check_probs_or_logits,
    check_t_1,
    out_of_range,
)
from .clamping import ALPHA_MIN, COV_MIN_VARIANCE, uniform_bounds
from .schedules import exponential_anneal, redge_alphas, redge_fractions
from .shapes import batch_shape_of, broadcast_shapes, check_value_shape

__version__ = "0.1.0"

__all__ = [
    "checks",
    "clamping",
    "diagnostics",
    "diffusion",
    "reference",
    "registry",
    "schedules",
    "selection",
    "shapes",
    "check_event_size",
    "check_n_steps",
    "check_positive_scalar",
    "check_probs_or_logits",
    "check_t_1",
    "out_of_range",
    "ALPHA_MIN",
    "COV_MIN_VARIANCE",
    "uniform_bounds",
    "exponential_anneal",
    "redge_alphas",
    "redge_fractions",
    "batch_shape_of",
    "broadcast_shapes",
    "check_value_shape",
]
