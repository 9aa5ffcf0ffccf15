r"""Concrete / binary Concrete kernels in torch: pure functions of parameters and noise.

Same names, arguments, variable names and line order as ``relaxed_dists.reference`` (the
float64 oracle) and ``numpyro_ext/concrete.py``. Kernels never draw noise: the samplers in
``distributions.py`` draw it in one line and call these. Everything stays in log space
(``log_softmax``, ``logsumexp``, softplus); ``temperature`` is a Python float or a tensor of
shape ``batch`` and broadcasts on the last dimension through ``_hyper``.

References
----------
- C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution. ICLR 2017, arXiv 1611.00712.
- E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.

Examples
--------
A kernel and the float64 oracle on the same noise:

>>> import numpy as np
>>> from relaxed_dists import reference
>>> rng = np.random.default_rng(0)
>>> logits, gumbels = rng.normal(size=(2, 4)), rng.gumbel(size=(2, 4))
>>> y = concrete_log_sample(torch.tensor(logits), 0.5, torch.tensor(gumbels))
>>> bool(np.allclose(y.numpy(), reference.concrete_log_sample(logits, 0.5, gumbels)))
True
>>> exp_concrete_log_prob(y, torch.tensor(logits), 0.5).shape
torch.Size([2])
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "categorical_log_prob",
    "bernoulli_log_prob",
    "concrete_log_sample",
    "exp_concrete_log_prob",
    "concrete_log_prob",
    "binary_concrete_logit_sample",
    "logit_binary_concrete_log_prob",
    "binary_concrete_log_prob",
]


def _scalar(value, like: torch.Tensor) -> torch.Tensor:
    """A Python float or ``batch``-shaped tensor hyperparameter as a tensor of ``like``'s dtype."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def _hyper(value, like: torch.Tensor) -> torch.Tensor:
    """A scalar or ``batch``-shaped hyperparameter, broadcast over the event dim."""
    return _scalar(value, like)[..., None]


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))``, exact for every ``x``: ``F.softplus`` returns ``x`` itself above
    its ``threshold=20``, off by ``log1p(exp(-x))``, about 2e-9 at 20."""
    return torch.logaddexp(x, torch.zeros_like(x))


# --- categorical -------------------------------------------------------------------


def _weighted_log(weight: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """``weight * log_p`` with ``0 * -inf = 0``: a masked class (``log_p = -inf``) adds 0 where
    its weight is 0 and ``-inf`` elsewhere. The double where keeps ``-inf`` out of the gradient;
    the gradient in ``weight`` stays ``log_p`` on every unmasked class (drawn or not), as the
    plain product's, and is 0 on masked ones."""
    masked = torch.isneginf(log_p)
    return torch.where(masked, torch.where(weight == 0, 0.0, -math.inf), weight * torch.where(masked, 0.0, log_p))


def _last_kept(y: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """``y`` at the last unmasked class of each row (``y[..., -1]`` when nothing is masked): the
    coordinate that the density's base measure leaves out. The position is found on ``masked``'s
    shape (a float32 ``amax``, three times cheaper on CPU than a cumulative sum or an integer
    ``argmax``), then gathered from ``y``."""
    positions = torch.arange(masked.shape[-1], dtype=torch.float32, device=masked.device)
    last = torch.where(masked, -1.0, positions).amax(dim=-1, keepdim=True).clamp(min=0).long()
    shape = torch.broadcast_shapes(y.shape[:-1], last.shape[:-1])  # a value may be smaller than the batch
    return torch.gather(y.expand(shape + y.shape[-1:]), -1, last.expand(shape + (1,)))[..., 0]


def _hits_masked(y: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Rows where ``y`` is above ``-inf`` on a masked class: a point of density 0."""
    return torch.where(masked, y, -math.inf).amax(dim=-1) > -math.inf


def categorical_log_prob(value: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``log Cat(value | softmax(logits))`` for a one-hot ``value``.

    A ``-inf`` logit masks its class: 0 where ``value`` misses it, ``-inf`` where it hits it.
    """
    return torch.sum(_weighted_log(value, torch.log_softmax(logits, dim=-1)), dim=-1)


def bernoulli_log_prob(value: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``log Bernoulli(value | sigmoid(logits))`` for ``value`` in {0, 1}, written
    ``value log sigmoid(l) + (1 - value) log sigmoid(-l)`` so that a logit of ``-inf`` (``+inf``),
    which masks the value 1 (0), gives 0 at the other value and ``-inf`` at the masked one."""
    return _weighted_log(value, -_softplus(-logits)) + _weighted_log(1 - value, -_softplus(logits))


# --- Concrete / Gumbel-Softmax (Maddison et al. 2017; Jang et al. 2017) -------------


def _requires_grad(value) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad


def _masked_safe(logits: torch.Tensor, temperature) -> torch.Tensor:
    """``logits`` with 0 for ``-inf`` when ``temperature`` is a tensor that requires grad: the
    derivative of ``(l + G) / tau`` in ``tau`` is ``-(l + G) / tau^2``, and a masked class
    would make it ``0 * inf = nan``. A float or a constant tensor takes no detour."""
    if _requires_grad(temperature):
        return torch.where(torch.isinf(logits), 0.0, logits)
    return logits


def concrete_log_sample(logits: torch.Tensor, temperature, gumbels: torch.Tensor) -> torch.Tensor:
    r"""A Concrete sample on the log-simplex: ``Y = log_softmax((logits + G) / tau)``.

    A ``-inf`` logit masks its class: ``Y = -inf`` there, a Concrete draw on the others.
    """
    tau = _hyper(temperature, logits)
    safe = _masked_safe(logits, temperature)
    if safe is logits:
        return torch.log_softmax((logits + gumbels) / tau, dim=-1)
    scores = torch.where(torch.isneginf(logits), -math.inf, (safe + gumbels) / tau)
    return torch.log_softmax(scores, dim=-1)


def exp_concrete_log_prob(y: torch.Tensor, logits: torch.Tensor, temperature) -> torch.Tensor:
    r"""Log density of the ExpConcrete at ``y`` (a point of the log-simplex).

    With respect to Lebesgue measure on the first K-1 coordinates:

    .. math::
        \log p(y) = \log (K-1)! + (K-1) \log\tau + \sum_k (\ell_k - \tau y_k)
                    - K \operatorname{logsumexp}_k(\ell_k - \tau y_k) - y_K .

    ``torch``'s ``ExpRelaxedCategorical.log_prob`` is this plus ``y_K``.

    Masks: a ``-inf`` logit removes its class. The law is then the ExpConcrete of the K' kept
    classes (``y = -inf`` on the others), and the density is the formula above on them, with
    respect to Lebesgue measure on the kept coordinates bar the last kept one (K' = 1: a point
    mass, density 1). A ``y`` finite on a masked class has density 0: ``-inf``.
    """
    tau = _hyper(temperature, y)
    big_k = y.shape[-1]
    masked = torch.isneginf(logits)
    # The density is invariant to shifting the logits (the K c gained by the sum is lost by
    # K logsumexp), so the unnormalised logits stand in for log(pi): one pass fewer.
    log_pi = logits
    # On masked classes ``log_pi - tau * y`` is NaN (-inf + inf) and the wheres below drop it;
    # its gradient is then 0, except in a tensor temperature that requires grad, where
    # ``0 * y = nan``: the double where, for that case only, sets y to 0 there first.
    y_kept = torch.where(masked, 0.0, y) if _requires_grad(temperature) else y
    score = log_pi - tau * y_kept
    k = torch.sum(~masked, dim=-1).to(score.dtype)
    log_prob = (
        torch.where(k == big_k, math.lgamma(big_k), torch.lgamma(k))  # the exact constant when nothing is masked
        + (k - 1) * torch.log(tau[..., 0])
        + torch.sum(torch.where(masked, 0.0, score), dim=-1)
        - k * torch.logsumexp(torch.where(masked, -math.inf, score), dim=-1)
        - _last_kept(y, masked)
    )
    return torch.where(_hits_masked(y, masked), -math.inf, log_prob)


def concrete_log_prob(x: torch.Tensor, logits: torch.Tensor, temperature) -> torch.Tensor:
    r"""Log density of the Concrete at ``x`` on the simplex (Maddison et al. 2017, eq. 3).

    With respect to Lebesgue measure on the first K-1 coordinates:

    .. math::
        p(x) = (K-1)!\, \tau^{K-1} \prod_k \frac{\pi_k x_k^{-\tau-1}}{\sum_j \pi_j x_j^{-\tau}} .

    An exact zero in ``x`` gives ``nan``: score samples at their log-space pre-image
    (:func:`exp_concrete_log_prob`) instead.
    """
    tau = _hyper(temperature, x)
    k = x.shape[-1]
    # The density is invariant to shifting the logits (the K c gained by the sum is lost by
    # K logsumexp), so the unnormalised logits stand in for log(pi): one pass fewer.
    log_pi = logits
    log_x = torch.log(x)
    return (
        math.lgamma(k)
        + (k - 1) * torch.log(tau[..., 0])
        + torch.sum(log_pi - (tau + 1) * log_x, dim=-1)
        - k * torch.logsumexp(log_pi - tau * log_x, dim=-1)
    )


def binary_concrete_logit_sample(logits: torch.Tensor, temperature, logistic: torch.Tensor) -> torch.Tensor:
    """A binary Concrete sample in logit space: ``Z = (logits + L) / tau`` (``+-inf`` for a
    ``+-inf`` logit, a point mass)."""
    tau = _scalar(temperature, logits)
    safe = _masked_safe(logits, temperature)
    if safe is logits:
        return (logits + logistic) / tau
    return torch.where(torch.isinf(logits), logits, (safe + logistic) / tau)


def logit_binary_concrete_log_prob(z: torch.Tensor, logits: torch.Tensor, temperature) -> torch.Tensor:
    r"""Log density of the logit of a binary Concrete (Maddison et al. 2017, eq. 21):
    ``log tau + (l - tau z) - 2 softplus(l - tau z)``.

    A logit of ``+-inf`` (one value masked) makes the law a point mass at ``z = +-inf``:
    log-density 0 there (counting measure) and ``-inf`` elsewhere.
    """
    tau = _scalar(temperature, z)
    certain = torch.isinf(logits)
    d = torch.where(certain, 0.0, logits) - tau * torch.where(certain, 0.0, z)
    log_prob = torch.log(tau) + d - 2.0 * _softplus(d)
    return torch.where(certain, torch.where(z == logits, 0.0, -math.inf), log_prob)


def binary_concrete_log_prob(x: torch.Tensor, logits: torch.Tensor, temperature) -> torch.Tensor:
    r"""Log density of the binary Concrete at ``x`` in (0, 1) (Maddison et al. 2017, eq. 20):

    .. math:: p(x) = \frac{\tau \alpha x^{-\tau-1} (1-x)^{-\tau-1}}{(\alpha x^{-\tau} + (1-x)^{-\tau})^2}.
    """
    tau = _scalar(temperature, x)
    log_alpha = logits
    a = log_alpha - tau * torch.log(x)
    b = -tau * torch.log1p(-x)
    return torch.log(tau) + log_alpha - (tau + 1) * (torch.log(x) + torch.log1p(-x)) - 2.0 * torch.logaddexp(a, b)
