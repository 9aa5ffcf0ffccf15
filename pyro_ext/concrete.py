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


def categorical_log_prob(value: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``log Cat(value | softmax(logits))`` for a one-hot ``value``."""
    return torch.sum(value * torch.log_softmax(logits, dim=-1), dim=-1)


def bernoulli_log_prob(value: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``log Bernoulli(value | sigmoid(logits))`` for ``value`` in {0, 1}."""
    return value * logits - _softplus(logits)


# --- Concrete / Gumbel-Softmax (Maddison et al. 2017; Jang et al. 2017) -------------


def concrete_log_sample(logits: torch.Tensor, temperature, gumbels: torch.Tensor) -> torch.Tensor:
    r"""A Concrete sample on the log-simplex: ``Y = log_softmax((logits + G) / tau)``."""
    return torch.log_softmax((logits + gumbels) / _hyper(temperature, logits), dim=-1)


def exp_concrete_log_prob(y: torch.Tensor, logits: torch.Tensor, temperature) -> torch.Tensor:
    r"""Log density of the ExpConcrete at ``y`` (a point of the log-simplex).

    With respect to Lebesgue measure on the first K-1 coordinates:

    .. math::
        \log p(y) = \log (K-1)! + (K-1) \log\tau + \sum_k (\ell_k - \tau y_k)
                    - K \operatorname{logsumexp}_k(\ell_k - \tau y_k) - y_K .

    ``torch``'s ``ExpRelaxedCategorical.log_prob`` is this plus ``y_K``.
    """
    tau = _hyper(temperature, y)
    k = y.shape[-1]
    # The density is invariant to shifting the logits (the K c gained by the sum is lost by
    # K logsumexp), so the unnormalised logits stand in for log(pi): one pass fewer.
    log_pi = logits
    score = log_pi - tau * y
    return (
        math.lgamma(k)
        + (k - 1) * torch.log(tau[..., 0])
        + torch.sum(score, dim=-1)
        - k * torch.logsumexp(score, dim=-1)
        - y[..., -1]
    )


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
    """A binary Concrete sample in logit space: ``Z = (logits + L) / tau``."""
    return (logits + logistic) / _scalar(temperature, logits)


def logit_binary_concrete_log_prob(z: torch.Tensor, logits: torch.Tensor, temperature) -> torch.Tensor:
    r"""Log density of the logit of a binary Concrete (Maddison et al. 2017, eq. 21):
    ``log tau + (l - tau z) - 2 softplus(l - tau z)``."""
    tau = _scalar(temperature, z)
    d = logits - tau * z
    return torch.log(tau) + d - 2.0 * _softplus(d)


def binary_concrete_log_prob(x: torch.Tensor, logits: torch.Tensor, temperature) -> torch.Tensor:
    r"""Log density of the binary Concrete at ``x`` in (0, 1) (Maddison et al. 2017, eq. 20):

    .. math:: p(x) = \frac{\tau \alpha x^{-\tau-1} (1-x)^{-\tau-1}}{(\alpha x^{-\tau} + (1-x)^{-\tau})^2}.
    """
    tau = _scalar(temperature, x)
    log_alpha = logits
    a = log_alpha - tau * torch.log(x)
    b = -tau * torch.log1p(-x)
    return (
        torch.log(tau) + log_alpha - (tau + 1) * (torch.log(x) + torch.log1p(-x)) - 2.0 * torch.logaddexp(a, b)
    )
