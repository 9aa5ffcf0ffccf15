"""Parameter checks shared by both backends.

Every message names the parameter, the value received and the allowed range, so a
user sees at once which argument to fix. These checks run on Python scalars and on
concrete arrays; the backends call :func:`out_of_range` to build the same message for
tensor-valued parameters they check with their own ops (and say so where a check
cannot run on traced JAX values).

>>> check_n_steps(5)
5
>>> check_t_1(1.5)
Traceback (most recent call last):
    ...
ValueError: t_1 must be in (0, 1], got t_1=1.5
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "out_of_range",
    "check_n_steps",
    "check_t_1",
    "check_positive_scalar",
    "check_event_size",
    "check_probs_or_logits",
]


def out_of_range(name: str, value: object, allowed: str) -> str:
    """The one message format for a parameter outside its allowed range."""
    return f"{name} must be {allowed}, got {name}={value!r}"


def check_n_steps(n_steps: object) -> int:
    """``n_steps`` counts REDGE grid points: an integer >= 2 (``n_steps - 1`` denoiser calls)."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral):
        raise TypeError(out_of_range("n_steps", n_steps, "an integer >= 2"))
    if n_steps < 2:
        raise ValueError(out_of_range("n_steps", n_steps, "an integer >= 2"))
    return int(n_steps)


def check_t_1(t_1: object) -> None:
    """``t_1`` is the REDGE end point, in (0, 1]; checks a Python number only."""
    if isinstance(t_1, numbers.Real) and not (0.0 < float(t_1) <= 1.0):  # NaN fails too
        raise ValueError(out_of_range("t_1", t_1, "in (0, 1]"))


def check_positive_scalar(name: str, value: object) -> None:
    """A temperature-like Python number must be finite and > 0 (NaN fails)."""
    if isinstance(value, numbers.Real) and not (0.0 < float(value) < math.inf):
        raise ValueError(out_of_range(name, value, "a finite number > 0"))


def check_event_size(k: int, name: str = "logits") -> None:
    """A categorical needs at least two categories on its last (event) dimension."""
    if k < 2:
        raise ValueError(
            f"{name} must have at least 2 categories on its last dimension "
            f"(the event dimension), got {name}.shape[-1]={k}"
        )


def check_probs_or_logits(probs: object, logits: object) -> None:
    """Exactly one of ``probs`` and ``logits`` must be given."""
    if (probs is None) == (logits is None):
        given = "both" if probs is not None else "neither"
        raise ValueError(f"pass exactly one of probs or logits, got {given}")


def lost_pre_image(class_name: str, n_lost: int, n_events: int, where: str, fix: str) -> str:
    """The message for relaxed values whose log-space (or logit) pre-image rounding lost.

    A Concrete sample is drawn in log space and mapped to the simplex (``exp``) or the unit
    interval (a clipped ``sigmoid``); in float32 at low temperature the map rounds many draws
    to an exact 0 (or to the clip bound), where ``log(value)`` is not the pre-image and the
    density has no finite, or no faithful, value. Own samples are scored at their stored
    pre-image; ``where`` says which values lost it, ``fix`` what to score instead.
    """
    return (
        f"{class_name}.log_prob: {n_lost} of {n_events} events of value {where}: rounding lost "
        "their pre-image, so the density has no faithful finite value there. The value is not a "
        f"sample this class drew but a copy of one or a value from elsewhere. {fix}"
    )


__all__.append("lost_pre_image")
