r"""Backend-free parts of discrete diffusion, RDM style, with absorbing or multinomial noise.

Zheng, Yuan, Yu, Kong (2023), "A Reparameterized Discrete Diffusion Model for Text
Generation", arXiv 2302.05737. Time runs from ``t = 1`` (every free token is noise) to
``t = 0`` (clean data); the forward process makes each free token noisy independently with
probability ``t`` (the linear schedule ``alpha_t = 1 - t``):

- ``"absorbing"``: a noisy token is the mask token ``K`` (``x_t`` shows which are noisy).
- ``"multinomial"``: a noisy token is drawn uniformly from the ``K`` tokens (Hoogeboom et al.
  2021), so ``q(x_t | x_0) = Cat((1 - t) x_0 + t / K)``; the noisy set is not visible in
  ``x_t`` (a noisy token equals ``x_0`` with probability ``1 / K``), and RDM's sampler tracks it.

- **Loss weights** ``lambda(t)`` of RDM's reweighted cross-entropy on the masked positions:
  ``"linear"`` ``1 - t`` (RDM's default), ``"reciprocal"`` ``1 / t`` (the ELBO's weight for the
  linear absorbing schedule), ``"none"`` ``1``.
- **Routing schedules**: the fraction of the free positions still noisy at time ``t``:
  ``"linear"`` ``t``; ``"cosine"`` ``cos(pi/2 (1 - t))`` (MaskGIT's ``cos(pi r / 2)`` in the
  progress ``r = 1 - t``: few tokens decoded early, many late). The sampler visits
  ``t_s = s / n_steps`` for ``s = n_steps .. 0`` and keeps ``floor(n_free * fraction(t_s))``
  positions noisy after step ``s``; at ``s = 0`` that is 0, so the last step denoises all.

The backends (``pyro_ext.diffusion``, ``numpyro_ext.diffusion``) hold the samplers; this
module holds the names, the checks and the schedule arithmetic they share, and
:func:`noisy_counts`, the oracle the tests compare a sampler's trace with, :func:`marginal` (``q(x_t | x_0)``) and
:func:`posterior` (the vanilla, D3PM-style ``q(x_s | x_t, x_0)`` that ancestral sampling draws from).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .checks import check_positive_scalar, out_of_range
from .registry import resolve_hyper

__all__ = [
    "LOSS_WEIGHTS",
    "ROUTINGS",
    "SCHEDULES",
    "DECODINGS",
    "NOISES",
    "check_choice",
    "check_n_diffusion_steps",
    "check_n_opt",
    "check_guidance_args",
    "check_routing_noise",
    "guidance_hyper",
    "check_normalize",
    "loss_weight",
    "noisy_fraction",
    "noisy_count",
    "noisy_counts",
    "step_times",
    "marginal",
    "posterior",
    "unmask_probability",
    "multinomial_rates",
]

LOSS_WEIGHTS = ("linear", "reciprocal", "none")
ROUTINGS = ("adaptive", "random")
SCHEDULES = ("linear", "cosine")
DECODINGS = ("argmax", "sample")
NOISES = ("absorbing", "multinomial")


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` must be one of the strings in ``allowed``; the error names the parameter."""
    if value not in allowed:
        raise ValueError(out_of_range(name, value, f"one of {list(allowed)}"))
    return value


def check_n_diffusion_steps(n_steps: object) -> int:
    """The sampler's number of steps (denoiser calls): an integer >= 1."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral):
        raise TypeError(out_of_range("n_steps", n_steps, "an integer >= 1"))
    if n_steps < 1:
        raise ValueError(out_of_range("n_steps", n_steps, "an integer >= 1"))
    return int(n_steps)


def check_n_opt(n_opt: object) -> int:
    """Inner optimiser steps of guidance: an integer >= 0 (0 leaves the prior logits as they are)."""
    if isinstance(n_opt, bool) or not isinstance(n_opt, numbers.Integral) or n_opt < 0:
        raise ValueError(out_of_range("n_opt", n_opt, "an integer >= 0"))
    return int(n_opt)


def check_routing_noise(routing_noise: object) -> None:
    """The scale of the Gumbel noise on adaptive routing scores: a finite Python number >= 0."""
    if (
        isinstance(routing_noise, bool)
        or not isinstance(routing_noise, numbers.Real)
        or not 0.0 <= float(routing_noise) < math.inf
    ):
        raise ValueError(out_of_range("routing_noise", routing_noise, "a finite number >= 0"))


def check_guidance_args(n_opt: object, lr: object, kl_weight: object, n_samples: object) -> None:
    """Guidance's scalars: ``n_opt >= 0``, ``lr > 0``, ``kl_weight > 0``, ``n_samples >= 1``."""
    check_n_opt(n_opt)
    check_positive_scalar("lr", lr)
    check_positive_scalar("kl_weight", kl_weight)
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(out_of_range("n_samples", n_samples, "an integer >= 1"))


def check_normalize(normalize: object) -> bool:
    """Guidance's ``normalize``: a Python ``bool`` (divide the reward by its detached per-sequence
    mean absolute value at every Adam step, or not)."""
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(out_of_range("normalize", normalize, "True or False"))
    return bool(normalize)


#: Guidance's estimator defaults where they differ from the registry's (the REDGE authors'
#: guidance code uses REDGE with ``n_steps=3, t_1=0.5``).
GUIDANCE_DEFAULTS = {name: {"n_steps": 3, "t_1": 0.5} for name in ("redge", "redge_cov", "reindge")}


def guidance_hyper(estimator: str, hyper: Mapping[str, object]) -> dict:
    """An estimator name's hyperparameters for guidance; ``"concrete"`` is refused (the
    reward is evaluated on hard one-hot samples)."""
    if estimator == "concrete":
        raise ValueError("estimator must give hard one-hot samples for the reward, got estimator='concrete'")
    return resolve_hyper(estimator, {**GUIDANCE_DEFAULTS.get(estimator, {}), **hyper})


def loss_weight(t: ArrayLike, weight: str) -> np.ndarray:
    """RDM's time weight ``lambda(t)`` (float64 NumPy; the backends write the same three lines)."""
    check_choice("weight", weight, LOSS_WEIGHTS)
    t = np.asarray(t, dtype=np.float64)
    if weight == "linear":
        return 1.0 - t
    if weight == "reciprocal":
        return 1.0 / t
    return np.ones_like(t)


def noisy_fraction(t: float, schedule: str) -> float:
    """The fraction of free positions still noisy at time ``t`` in [0, 1]."""
    check_choice("schedule", schedule, SCHEDULES)
    if schedule == "linear":
        return float(t)
    return math.cos(0.5 * math.pi * (1.0 - t)) if t > 0 else 0.0  # cos(pi/2) is 6e-17, not 0


def step_times(n_steps: int) -> tuple[float, ...]:
    """``t_s = s / n_steps`` for ``s = n_steps .. 0``: the sampler's ``n_steps + 1`` time points."""
    n_steps = check_n_diffusion_steps(n_steps)
    return tuple(s / n_steps for s in range(n_steps, -1, -1))


def noisy_counts(n_free: int, n_steps: int, schedule: str) -> list[int]:
    """How many free positions are noisy after each of the ``n_steps`` steps (last: 0).

    ``floor(n_free * noisy_fraction(t_s))`` with a small tolerance so that ``n_free * t``
    computed as ``n_free * (s / n_steps)`` does not lose one to rounding.
    """
    return [int(noisy_count(n_free, t, schedule)) for t in step_times(n_steps)[1:]]


def noisy_count(n_free: ArrayLike, t: float, schedule: str) -> np.ndarray:
    """``floor(n_free * fraction + 1e-9)``: works on ints and on NumPy integer arrays."""
    return np.floor(np.asarray(n_free) * noisy_fraction(t, schedule) + 1e-9).astype(np.int64)


def _check_times(t: float, s: float | None = None) -> None:
    if not 0.0 <= float(t) <= 1.0 or (s is not None and not 0.0 <= float(s) <= float(t)):
        raise ValueError(out_of_range("(t, s)", (t, s), "0 <= s <= t <= 1"))


def marginal(x0_probs: ArrayLike, t: float, noise: str) -> np.ndarray:
    """``q(x_t | x_0)`` in float64, ``x0_probs.shape[:-1] + (K + 1,)`` over the ``K`` tokens and
    the mask (index ``K``, only ever non-zero for absorbing noise). ``x0_probs``: a one-hot
    ``x_0`` (or any law over it, ``(..., K)``).

    - absorbing: ``(1 - t) x_0`` on the tokens, ``t`` on the mask;
    - multinomial: ``(1 - t) x_0 + t / K``, 0 on the mask.

    >>> marginal(np.eye(3)[[0]], 0.25, "absorbing").tolist()
    [[0.75, 0.0, 0.0, 0.25]]
    >>> marginal(np.eye(2)[[1]], 0.5, "multinomial").tolist()
    [[0.25, 0.75, 0.0]]
    """
    check_choice("noise", noise, NOISES)
    _check_times(t)
    p = np.asarray(x0_probs, dtype=np.float64)
    mask = np.full(p.shape[:-1] + (1,), float(t) if noise == "absorbing" else 0.0)
    tokens = (1.0 - t) * p + (t / p.shape[-1] if noise == "multinomial" else 0.0)
    return np.concatenate([tokens, mask], axis=-1)


def unmask_probability(t: float, s: float) -> float:
    """Absorbing noise: the probability that a token masked at time ``t`` is unmasked at ``s < t``,
    ``(t - s) / t`` (1 at ``s = 0``)."""
    _check_times(t, s)
    return (t - s) / t if t > 0 else 1.0


def multinomial_rates(t: float, s: float) -> tuple[float, float]:
    """Multinomial noise: ``(alpha_{t|s}, alpha_s)`` of the reverse step from ``t`` to ``s < t``,
    ``alpha = 1 - time`` and ``alpha_{t|s} = alpha_t / alpha_s`` (:func:`posterior`).

    >>> multinomial_rates(0.5, 0.25)
    (0.6666666666666666, 0.75)
    """
    _check_times(t, s)
    a_s = 1.0 - s
    return (1.0 - t) / a_s, a_s


def posterior(x_t: ArrayLike, x0_probs: ArrayLike, t: float, s: float, noise: str) -> np.ndarray:
    r"""The vanilla (D3PM) reverse step ``p(x_s | x_t) = sum_{x_0} q(x_s | x_t, x_0) p(x_0 | x_t)``
    in float64, ``x_t.shape + (K + 1,)`` (the last entry: the mask), for ``0 <= s < t <= 1``;
    ``x_t`` integer tokens in ``0 .. K`` (``K``: the mask), ``x0_probs`` ``x_t.shape + (K,)``
    the denoiser's law of ``x_0``.

    - absorbing: a masked token is unmasked with probability ``(t - s) / t``, to ``x_0 ~ p``;
      else it stays masked; an unmasked token stays.
    - multinomial (Hoogeboom et al. 2021, eq. 7, with ``x_0`` marginalised):
      ``alpha_{t|s} = alpha_t / alpha_s``, ``alpha = 1 - time``,

      .. math:: p(x_s \mid x_t) \propto \big(\alpha_{t|s}\, x_t + (1 - \alpha_{t|s}) / K\big)
                \odot \big(\alpha_s\, p + (1 - \alpha_s) / K\big).
    """
    check_choice("noise", noise, NOISES)
    _check_times(t, s)
    x_t = np.asarray(x_t)
    p = np.asarray(x0_probs, dtype=np.float64)
    k = p.shape[-1]
    out = np.zeros(x_t.shape + (k + 1,))
    if noise == "absorbing":
        masked = x_t == k
        move = unmask_probability(t, s)
        out[..., :k] = np.where(masked[..., None], move * p, 0.0)
        out[..., k] = np.where(masked, 1.0 - move, 0.0)
        stay = np.eye(k + 1)[np.where(masked, k, x_t)]
        return np.where(masked[..., None], out, stay)
    if np.any(x_t >= k):
        raise ValueError(
            out_of_range("x_t", "a mask token", f"token ids in [0, {k - 1}] (multinomial noise has no mask)")
        )
    a_ts, a_s = multinomial_rates(t, s)
    left = a_ts * np.eye(k)[x_t] + (1.0 - a_ts) / k
    right = a_s * p + (1.0 - a_s) / k
    joint = left * right
    out[..., :k] = joint / joint.sum(-1, keepdims=True)
    return out
