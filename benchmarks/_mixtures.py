"""The two mixture-assignment problems AutoRelaxed is accepted on, with exact answers by
enumeration (float64 NumPy, no backend). Both are held out of the defaults study
(``benchmarks/autoguide_defaults.py``), so the defaults were not chosen on them.

- ``FIXED``: issue 10's problem: 6 points, 4 components with fixed means, uniform weights.
  The posterior factorises over points: ``p(z_n = k | x_n) ∝ w_k N(x_n; mu_k, s)``.
- ``UNKNOWN``: 10 points, 3 components whose means are latent, ``mu_k ~ N(m_k, tau)``; the
  exact posterior is the sum over all 3^10 assignments, each with its conjugate Gaussian
  posterior of the means (marginal likelihood in closed form). Its point x = 2.1 is ambiguous
  (0.435 / 0.565 between two components) in a way a mean-field guide cannot express: the
  mean-field optimum (:func:`cavi_unknown`) is itself 0.135 off in that point's probabilities.
- ``UNKNOWN_CLEAR``: the same with that point at x = 1.6 (0.94 / 0.06), where the mean-field
  optimum is 0.047 off: the problem on which a 0.1 bound on the probabilities can be met by
  any mean-field guide. Both are reported; neither was used to choose a default.

>>> p = fixed_posterior()
>>> p.shape, bool(np.allclose(p.sum(-1), 1.0))
((6, 4), True)
>>> assign, means = unknown_posterior()
>>> assign.shape, means.shape
((10, 3), (3,))
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["FIXED", "UNKNOWN", "UNKNOWN_CLEAR", "fixed_posterior", "unknown_posterior", "cavi_unknown", "mean_kl"]

FIXED = {
    "x": np.array([-2.2, -0.9, 0.1, 0.8, 2.0, 3.6]),
    "locs": np.array([-3.0, -1.0, 1.0, 3.0]),
    "scale": 1.0,
    "weights": np.full(4, 0.25),
}

UNKNOWN = {
    "x": np.array([-4.6, -3.9, -3.2, -0.6, 0.2, 0.9, 2.1, 3.4, 4.0, 4.5]),
    "prior_locs": np.array([-4.0, 0.0, 4.0]),
    "prior_scale": 1.0,
    "scale": 0.7,
    "weights": np.full(3, 1.0 / 3.0),
}

UNKNOWN_CLEAR = {**UNKNOWN, "x": np.array([-4.6, -3.9, -3.2, -0.6, 0.2, 0.9, 1.6, 3.4, 4.0, 4.5])}


def _log_normal(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)


def fixed_posterior(problem: dict = FIXED) -> np.ndarray:
    """Exact ``p(z_n = k | x)``, shape ``(N, K)``."""
    x, locs = problem["x"][:, None], problem["locs"][None, :]
    log_joint = np.log(problem["weights"])[None, :] + _log_normal(x, locs, problem["scale"])
    log_joint -= log_joint.max(-1, keepdims=True)
    p = np.exp(log_joint)
    return p / p.sum(-1, keepdims=True)


def unknown_posterior(problem: dict = UNKNOWN) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(p(z_n = k | x), E[mu_k | x])`` by enumerating every assignment."""
    x, m0, tau, s = problem["x"], problem["prior_locs"], problem["prior_scale"], problem["scale"]
    n, k = len(x), len(m0)
    z = np.array(list(itertools.product(range(k), repeat=n)))  # (k^n, n)
    onehot = np.eye(k)[z]  # (k^n, n, k)
    counts = onehot.sum(1)  # (k^n, k)
    r = x[None, :, None] - m0[None, None, :]  # residual against each component's prior mean
    sum_r = np.einsum("cnk,cnk->ck", onehot, np.broadcast_to(r, onehot.shape))
    sum_r2 = np.einsum("cnk,cnk->ck", onehot, np.broadcast_to(r**2, onehot.shape))
    s2, t2 = s**2, tau**2
    # log N(x_k; m0 1, s^2 I + tau^2 11^T) per component, by the matrix determinant lemma and
    # Sherman-Morrison; an empty component contributes 0.
    quad = sum_r2 / s2 - t2 * sum_r**2 / (s2 * (s2 + counts * t2))
    logdet = counts * np.log(s2) + np.log1p(counts * t2 / s2)
    log_marg = -0.5 * (quad + logdet + counts * np.log(2 * np.pi))
    log_w = (counts * np.log(problem["weights"])[None, :]).sum(-1)
    log_post = log_w + log_marg.sum(-1)
    post = np.exp(log_post - log_post.max())
    post /= post.sum()
    assign = np.einsum("c,cnk->nk", post, onehot)
    # conjugate posterior mean of mu_k given the assignment
    prec = 1 / t2 + counts / s2
    sum_x = np.einsum("cnk,n->ck", onehot, x)
    cond_mean = (m0[None, :] / t2 + sum_x / s2) / prec
    return assign, post @ cond_mean


def cavi_unknown(problem: dict = UNKNOWN, iterations: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """The mean-field fixed point ``q(z) q(mu)`` by coordinate ascent (conjugate updates, float64,
    from uniform responsibilities): ``(E_q[mu], q(z))``, the best a guide that treats the
    assignments and the means as independent (``AutoRelaxed`` + ``AutoNormal``) can aim at."""
    x, m0, tau, s, w = problem["x"], problem["prior_locs"], problem["prior_scale"], problem["scale"], problem["weights"]
    r = np.full((len(x), len(m0)), 1.0 / len(m0))
    for _ in range(iterations):
        prec = 1 / tau**2 + r.sum(0) / s**2
        mean = (m0 / tau**2 + r.T @ x / s**2) / prec
        log_r = np.log(w) - ((x[:, None] - mean) ** 2 + 1 / prec) / (2 * s**2)
        r = np.exp(log_r - log_r.max(1, keepdims=True))
        r /= r.sum(1, keepdims=True)
    return mean, r


def mean_kl(q: np.ndarray, p: np.ndarray) -> float:
    """Mean over points of ``KL(q_n || p_n)``, in nats (``q``, ``p``: ``(N, K)`` probabilities)."""
    q, p = np.asarray(q, dtype=np.float64), np.asarray(p, dtype=np.float64)
    terms = np.where(q > 0, q * (np.log(np.where(q > 0, q, 1.0)) - np.log(p)), 0.0)
    return float(terms.sum(-1).mean())
