r"""Float64 NumPy reference math: the test oracle.

Every function takes its noise as an argument and is written as literally as the paper
it cites, with no attention to speed. Both backends' kernels are tested against these
functions on identical float64 noise (agreement to ~1e-12). Never on a hot path.

Conventions: ``logits`` has shape ``batch + (K,)``; a categorical draw is the
Gumbel-max ``one_hot(argmax(log p + gumbels))``; hyperparameters (``temperature``,
``t_1``) are scalars or arrays of shape ``batch`` and broadcast on the last axis with
``[..., None]``.

References
----------
- C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution. ICLR 2017, arXiv 1611.00712.
- E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.
- Y. Bengio, N. Leonard, A. Courville. Estimating or Propagating Gradients Through Stochastic
  Neurons. 2013, arXiv 1308.3432.
- L. Liu, C. Dong, X. Liu, B. Yu, J. Gao. Bridging Discrete and Backpropagation:
  Straight-Through and Beyond (ReinMax). NeurIPS 2023, arXiv 2304.08612.
- S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical Reparameterization
  with Denoising Diffusion models (REDGE). 2026, arXiv 2601.00781.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> logits = rng.normal(size=(2, 5))
>>> hard, soft = redge(logits, 5, 0.5, rng.normal(size=(2, 5)), rng.gumbel(size=(2, 5)))
>>> hard.sum(-1).tolist(), bool(np.allclose(soft.sum(-1), 1.0))
([1.0, 1.0], True)
"""

from __future__ import annotations

import math

import numpy as np

from .clamping import COV_MIN_VARIANCE
from .schedules import redge_alphas

__all__ = [
    "gumbel_from_uniform",
    "logistic_from_uniform",
    "one_hot_argmax",
    "categorical_sample",
    "categorical_log_prob",
    "bernoulli_log_prob",
    "softmax_vjp",
    "concrete_log_sample",
    "exp_concrete_log_prob",
    "concrete_log_prob",
    "binary_concrete_logit_sample",
    "logit_binary_concrete_log_prob",
    "binary_concrete_log_prob",
    "straight_through",
    "straight_through_vjp",
    "gumbel_softmax",
    "gumbel_softmax_vjp",
    "reinmax_vjp",
    "redge_schedule",
    "redge_denoiser",
    "redge",
    "redge_vjp",
    "redge_cov",
    "redge_cov_vjp",
    "reindge_vjp",
]


def logsumexp(z, axis=-1):
    """``log sum exp z`` along ``axis``, shifted by the max."""
    m = np.max(z, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(z - m), axis=axis))


def log_softmax(z, axis=-1):
    return z - np.expand_dims(logsumexp(z, axis=axis), axis)


def softmax(z, axis=-1):
    return np.exp(log_softmax(z, axis=axis))


def _hyper(value):
    """A scalar or ``batch``-shaped hyperparameter, broadcast over the event axis."""
    return np.asarray(value, dtype=np.float64)[..., None]


# --- noise -------------------------------------------------------------------------


def gumbel_from_uniform(u):
    """Standard Gumbel by inversion: ``G = -log(-log U)``."""
    return -np.log(-np.log(u))


def logistic_from_uniform(u):
    """Standard logistic by inversion: ``L = log U - log(1 - U)``."""
    return np.log(u) - np.log1p(-u)


# --- categorical -------------------------------------------------------------------


def one_hot_argmax(scores):
    """One-hot of the argmax over the last axis."""
    return np.eye(scores.shape[-1])[np.argmax(scores, axis=-1)]


def categorical_sample(log_probs, gumbels):
    """Gumbel-max draw from ``Categorical(exp(log_probs))``, as a one-hot."""
    return one_hot_argmax(log_probs + gumbels)


def categorical_log_prob(value, logits):
    """``log Cat(value | softmax(logits))`` for a one-hot ``value``."""
    return np.sum(value * log_softmax(logits, axis=-1), axis=-1)


def bernoulli_log_prob(value, logits):
    """``log Bernoulli(value | sigmoid(logits))`` for ``value`` in {0, 1}."""
    return value * logits - np.logaddexp(0.0, logits)


def softmax_vjp(p, g):
    """Vector-Jacobian product of ``p = softmax(z)``: ``dL/dz = p * (g - <p, g>)``."""
    return p * (g - np.sum(p * g, axis=-1, keepdims=True))


# --- Concrete / Gumbel-Softmax (Maddison et al. 2017; Jang et al. 2017) -------------


def concrete_log_sample(logits, temperature, gumbels):
    r"""A Concrete sample on the log-simplex: ``Y = log_softmax((logits + G) / tau)``."""
    return log_softmax((logits + gumbels) / _hyper(temperature), axis=-1)


def exp_concrete_log_prob(y, logits, temperature):
    r"""Log density of the ExpConcrete at ``y`` (a point of the log-simplex).

    The density is with respect to Lebesgue measure on the first K-1 coordinates
    ``y_1 .. y_{K-1}`` (``y_K = log(1 - sum_{k<K} exp(y_k))``):

    .. math::
        \log p(y) = \log (K-1)! + (K-1) \log\tau + \sum_k (\ell_k - \tau y_k)
                    - K \operatorname{logsumexp}_k(\ell_k - \tau y_k) - y_K .

    Maddison et al.'s ExpConcrete expression (and ``torch``'s ``ExpRelaxedCategorical``)
    omits the last term ``- y_K``; with it the density integrates to one over the first
    K-1 coordinates, which is what the tests check by quadrature.
    """
    tau = _hyper(temperature)
    k = y.shape[-1]
    log_pi = log_softmax(logits, axis=-1)
    score = log_pi - tau * y
    return (
        math.lgamma(k)
        + (k - 1) * np.log(tau[..., 0])
        + np.sum(score, axis=-1)
        - k * logsumexp(score, axis=-1)
        - y[..., -1]
    )


def concrete_log_prob(x, logits, temperature):
    r"""Log density of the Concrete at ``x`` on the simplex (Maddison et al. 2017, eq. 3).

    With respect to Lebesgue measure on the first K-1 coordinates:

    .. math::
        p(x) = (K-1)!\, \tau^{K-1} \prod_k \frac{\pi_k x_k^{-\tau-1}}{\sum_j \pi_j x_j^{-\tau}} .
    """
    tau = _hyper(temperature)
    k = x.shape[-1]
    log_pi = log_softmax(logits, axis=-1)
    log_x = np.log(x)
    return (
        math.lgamma(k)
        + (k - 1) * np.log(tau[..., 0])
        + np.sum(log_pi - (tau + 1) * log_x, axis=-1)
        - k * logsumexp(log_pi - tau * log_x, axis=-1)
    )


def binary_concrete_logit_sample(logits, temperature, logistic):
    """A binary Concrete sample in logit space: ``Z = (logits + L) / tau``."""
    return (logits + logistic) / np.asarray(temperature, dtype=np.float64)


def logit_binary_concrete_log_prob(z, logits, temperature):
    r"""Log density of the logit of a binary Concrete (Maddison et al. 2017, eq. 21):
    ``log tau + (l - tau z) - 2 softplus(l - tau z)``."""
    tau = np.asarray(temperature, dtype=np.float64)
    d = logits - tau * z
    return np.log(tau) + d - 2.0 * np.logaddexp(0.0, d)


def binary_concrete_log_prob(x, logits, temperature):
    r"""Log density of the binary Concrete at ``x`` in (0, 1) (Maddison et al. 2017, eq. 20):

    .. math:: p(x) = \frac{\tau \alpha x^{-\tau-1} (1-x)^{-\tau-1}}{(\alpha x^{-\tau} + (1-x)^{-\tau})^2}.
    """
    tau = np.asarray(temperature, dtype=np.float64)
    log_alpha = logits
    a = log_alpha - tau * np.log(x)
    b = -tau * np.log1p(-x)
    return np.log(tau) + log_alpha - (tau + 1) * (np.log(x) + np.log1p(-x)) - 2.0 * np.logaddexp(a, b)


# --- straight-through family --------------------------------------------------------


def straight_through(logits, gumbels):
    """Straight-through (Bengio et al. 2013): forward ``(hard, soft)`` with
    ``hard ~ Cat(softmax(logits))`` and ``soft = softmax(logits)``."""
    soft = softmax(logits, axis=-1)
    return categorical_sample(log_softmax(logits, axis=-1), gumbels), soft


def straight_through_vjp(logits, g):
    """Straight-through surrogate gradient: the softmax VJP, ``p * (g - <p, g>)``."""
    return softmax_vjp(softmax(logits, axis=-1), g)


def gumbel_softmax(logits, temperature, gumbels):
    """Gumbel-Softmax (Jang et al. 2017): ``(hard, soft)`` with
    ``soft = softmax((logits + G) / tau)`` and ``hard = one_hot(argmax soft)``."""
    soft = np.exp(concrete_log_sample(logits, temperature, gumbels))
    return one_hot_argmax(logits + gumbels), soft


def gumbel_softmax_vjp(logits, temperature, gumbels, g):
    """Gradient of ``<g, soft>`` with respect to logits: ``softmax_vjp(soft, g) / tau``."""
    soft = np.exp(concrete_log_sample(logits, temperature, gumbels))
    return softmax_vjp(soft, g) / _hyper(temperature)


def reinmax_vjp(logits, temperature, hard, g):
    r"""ReinMax surrogate gradient (Liu et al. 2023, Algorithm 2), for ``hard ~ Cat(softmax(logits))``.

    .. math::
        \pi_0 = \mathrm{softmax}(\ell),\quad
        \pi_1 = \tfrac12 (\mathrm{softmax}(\ell / \tau) + D),\quad
        \nabla_\ell = 2\, J_{\pi_1}^\top g - \tfrac12 J_{\pi_0}^\top g,

    with ``J_p^T g = p * (g - <p, g>)``, then centred (softmax is shift-invariant).
    """
    pi_0 = softmax(logits, axis=-1)
    pi_1 = 0.5 * (softmax(logits / _hyper(temperature), axis=-1) + hard)
    grad = 2.0 * softmax_vjp(pi_1, g) - 0.5 * softmax_vjp(pi_0, g)
    return grad - np.mean(grad, axis=-1, keepdims=True)


# --- REDGE (Gourevitch et al. 2026) --------------------------------------------------


def redge_schedule(n_steps, t_1):
    """``(alphas, sigmas)``: lists of ``n_steps`` arrays of ``t_1``'s shape, index 0 clean."""
    t_1 = np.asarray(t_1, dtype=np.float64)
    flat = [redge_alphas(n_steps, float(t)) for t in t_1.reshape(-1)]
    alphas = [np.array([a[k] for a in flat]).reshape(t_1.shape) for k in range(n_steps)]
    return alphas, [1.0 - a for a in alphas]


def redge_denoiser(logits, x, alpha, sigma):
    r"""Posterior mean of a one-hot ``x0`` given ``x_t = alpha x0 + sigma eps``:
    ``softmax(logits + alpha x_t / sigma^2)`` (REDGE, eq. 7)."""
    return softmax(logits + _hyper(alpha) * x / _hyper(sigma) ** 2, axis=-1)


def _ddim_bridge(x, x0_hat, alpha_s, sigma_s, alpha_t, sigma_t):
    """DDIM step from t to s < t: ``alpha_s x0 + sigma_s (x - alpha_t x0) / sigma_t``."""
    return _hyper(alpha_s) * x0_hat + _hyper(sigma_s) * (x - _hyper(alpha_t) * x0_hat) / _hyper(sigma_t)


def _redge_chain(logits, x, n_steps, t_1, denoiser):
    """Run DDIM from the noisiest point down to ``t_1``; return every state and ``x0_hat``."""
    alphas, sigmas = redge_schedule(n_steps, t_1)
    states, x0_hats = [], []
    for t in range(n_steps - 1, 0, -1):
        x0_hat = denoiser(logits, x, alphas[t], sigmas[t])
        states.append(x)
        x0_hats.append(x0_hat)
        if t > 1:
            x = _ddim_bridge(x, x0_hat, alphas[t - 1], sigmas[t - 1], alphas[t], sigmas[t])
    return states, x0_hats, alphas, sigmas


def redge(logits, n_steps, t_1, eps, gumbels):
    r"""REDGE forward pass: ``(hard, soft)``.

    Start at ``x = eps`` at the noisiest grid point; at each grid point ``t`` from the
    noisiest down to ``t_1``: ``x0_hat = softmax(logits + alpha_t x / sigma_t^2)``, then
    the DDIM bridge to the next point. ``soft`` is the last ``x0_hat`` (at ``alpha = 1 - t_1``)
    and ``hard ~ Cat(soft)``. There are ``n_steps - 1`` denoiser calls.
    """
    _, x0_hats, _, _ = _redge_chain(logits, eps, n_steps, t_1, redge_denoiser)
    soft = x0_hats[-1]
    return _hard_from(soft, gumbels), soft


def _redge_backprop(logits, n_steps, t_1, x0, g, denoiser_vjp, last_logits_weight=1.0):
    """Reverse mode through ``_redge_chain`` for an upstream gradient ``g`` on the last ``x0_hat``.

    ``denoiser_vjp(logits, x, alpha, sigma, x0_hat, g) -> (d logits, d x)``.
    ``last_logits_weight`` scales the direct logits path of the last denoiser call
    (REINDGE detaches it: weight 0).
    """
    states, x0_hats, alphas, sigmas = x0
    grad_logits = np.zeros_like(logits)
    g_x0, g_x = g, np.zeros_like(states[0])
    ts = list(range(n_steps - 1, 0, -1))
    for i in reversed(range(len(ts))):
        t = ts[i]
        if t > 1:  # x_next = c_x0 * x0_hat + c_x * x
            c_x = _hyper(sigmas[t - 1]) / _hyper(sigmas[t])
            c_x0 = _hyper(alphas[t - 1]) - c_x * _hyper(alphas[t])
            g_x0, g_x = c_x0 * g_x, c_x * g_x
        else:
            g_x = np.zeros_like(states[i])
        d_logits, d_x = denoiser_vjp(logits, states[i], alphas[t], sigmas[t], x0_hats[i], g_x0)
        grad_logits += (last_logits_weight if t == 1 else 1.0) * d_logits
        g_x = g_x + d_x  # now the gradient with respect to this step's state
    return grad_logits


def _redge_denoiser_vjp(logits, x, alpha, sigma, x0_hat, g):
    d_z = softmax_vjp(x0_hat, g)
    return d_z, _hyper(alpha) / _hyper(sigma) ** 2 * d_z


def _hard_from(soft, gumbels):
    with np.errstate(divide="ignore"):  # an underflowed class has log-probability -inf
        return categorical_sample(np.log(soft), gumbels)


def redge_vjp(logits, n_steps, t_1, eps, g):
    """Gradient of ``<g, soft>`` with respect to logits, by reverse mode through the whole chain."""
    chain = _redge_chain(logits, eps, n_steps, t_1, redge_denoiser)
    return _redge_backprop(logits, n_steps, t_1, chain, g, _redge_denoiser_vjp)


def _cov_variance(logits):
    p = softmax(logits, axis=-1)
    return p, np.maximum(p * (1.0 - p), COV_MIN_VARIANCE)


def _redge_cov_denoiser(logits, x, alpha, sigma, p, var):
    r"""REDGE-cov posterior mean with per-class variance ``var = max(p (1 - p), 0.1)``:
    ``softmax(logits + (alpha x - alpha sigma p - alpha^2 / 2) / (var sigma^2))``, as in the
    authors' ``redge_cov``."""
    a, s = _hyper(alpha), _hyper(sigma)
    return softmax(logits + (a * x - a * s * p - a**2 / 2.0) / (var * s**2), axis=-1)


def redge_cov(logits, n_steps, t_1, eps, gumbels):
    """REDGE-cov forward pass: start at ``p + sqrt(var) eps``, run the cov denoiser; ``(hard, soft)``."""
    p, var = _cov_variance(logits)
    x = p + np.sqrt(var) * eps
    _, x0_hats, _, _ = _redge_chain(
        logits, x, n_steps, t_1, lambda lg, x_, a, s: _redge_cov_denoiser(lg, x_, a, s, p, var)
    )
    soft = x0_hats[-1]
    return _hard_from(soft, gumbels), soft


def redge_cov_vjp(logits, n_steps, t_1, eps, g, h=1e-6):
    """Gradient of ``<g, soft>`` for REDGE-cov by central differences in float64.

    ``p`` and ``var`` depend on the logits too (through the start point and the
    likelihood), which makes the literal reverse mode long; a float64 central
    difference with ``h = 1e-6`` is accurate to about 1e-9, the tolerance its tests use.
    """
    grad = np.zeros_like(logits)
    flat = grad.reshape(-1)
    for i in range(flat.size):
        bump = np.zeros(flat.size)
        bump[i] = h
        up = redge_cov(logits + bump.reshape(logits.shape), n_steps, t_1, eps, np.zeros_like(logits))[1]
        dn = redge_cov(logits - bump.reshape(logits.shape), n_steps, t_1, eps, np.zeros_like(logits))[1]
        flat[i] = np.sum(g * (up - dn)) / (2 * h)
    return grad


def reindge_vjp(logits, n_steps, t_1, eps, hard, g):
    r"""REINDGE surrogate gradient (REDGE paper, REINDGE): the REDGE chain gradient with the
    last denoiser's direct logits path replaced by a ReinMax-style correction,

    .. math:: \nabla_\ell = \nabla^{\text{chain}, x_t}_\ell + \tfrac12 (J^\top g + \langle g, D\rangle D),
              \qquad D = \text{hard} - \hat x_0,

    where ``J^T g = softmax_vjp(x0_hat, g)`` is the last step's logits Jacobian and the
    chain term flows only through the state ``x_t`` of the last step.
    """
    chain = _redge_chain(logits, eps, n_steps, t_1, redge_denoiser)
    through_x = _redge_backprop(logits, n_steps, t_1, chain, g, _redge_denoiser_vjp, last_logits_weight=0.0)
    x0_hat = chain[1][-1]
    d = hard - x0_hat
    return through_x + 0.5 * (softmax_vjp(x0_hat, g) + np.sum(g * d, axis=-1, keepdims=True) * d)
