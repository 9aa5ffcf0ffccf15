r"""Pure JAX kernels of the Concrete / Gumbel-Softmax family.

Each kernel mirrors the function of the same name in :mod:`relaxed_dists.reference`
(same arguments, same variable names, same line order) and in ``pyro_ext.concrete``.
Kernels never draw noise: samplers draw it in one or two lines (``numpyro_ext._ops``)
and pass it in, so the tests can feed a kernel and the float64 oracle identical noise.

Conventions: ``logits`` has shape ``batch + (K,)``; ``temperature`` is a scalar or an
array of shape ``batch`` (never per category) and broadcasts on the last axis with
``[..., None]``. Everything is computed in log space: samples live on the log-simplex,
normalised with ``log_softmax``; densities of simplex points take ``log x`` once.

References
----------
- C. J. Maddison, A. Mnih, Y. W. Teh. The Concrete Distribution. ICLR 2017, arXiv 1611.00712.
- E. Jang, S. Gu, B. Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017, arXiv 1611.01144.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

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


def _hyper(value) -> jax.Array:
    """A scalar or ``batch``-shaped hyperparameter, broadcast over the event axis.

    A Python float stays weakly typed, so it does not promote float32 or bfloat16 logits.
    """
    return jnp.expand_dims(jnp.asarray(value), -1)


# --- categorical -------------------------------------------------------------------


def categorical_log_prob(value: jax.Array, logits: jax.Array) -> jax.Array:
    """``log Cat(value | softmax(logits))`` for a one-hot ``value``."""
    return jnp.sum(value * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def bernoulli_log_prob(value: jax.Array, logits: jax.Array) -> jax.Array:
    """``log Bernoulli(value | sigmoid(logits))`` for ``value`` in {0, 1}."""
    return value * logits - jnp.logaddexp(0.0, logits)


# --- Concrete / Gumbel-Softmax (Maddison et al. 2017; Jang et al. 2017) -------------


def concrete_log_sample(logits: jax.Array, temperature, gumbels: jax.Array) -> jax.Array:
    r"""A Concrete sample on the log-simplex: ``Y = log_softmax((logits + G) / tau)``."""
    return jax.nn.log_softmax((logits + gumbels) / _hyper(temperature), axis=-1)


def exp_concrete_log_prob(y: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    r"""Log density of the ExpConcrete at ``y`` (a point of the log-simplex).

    With respect to Lebesgue measure on the first K-1 coordinates ``y_1 .. y_{K-1}``:

    .. math::
        \log p(y) = \log (K-1)! + (K-1) \log\tau + \sum_k (\ell_k - \tau y_k)
                    - K \operatorname{logsumexp}_k(\ell_k - \tau y_k) - y_K .

    The last term ``- y_K`` makes it integrate to one over the first K-1 coordinates
    (Maddison et al.'s ExpConcrete expression and ``torch``'s omit it).
    """
    tau = _hyper(temperature)
    k = y.shape[-1]
    # The density is invariant to shifting the logits (the K c gained by the sum is lost by
    # K logsumexp), so the unnormalised logits stand in for log(pi): one pass fewer.
    log_pi = logits
    score = log_pi - tau * y
    return (
        math.lgamma(k)
        + (k - 1) * jnp.log(tau[..., 0])
        + jnp.sum(score, axis=-1)
        - k * logsumexp(score, axis=-1)
        - y[..., -1]
    )


def concrete_log_prob(x: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    r"""Log density of the Concrete at ``x`` on the simplex (Maddison et al. 2017, eq. 3).

    With respect to Lebesgue measure on the first K-1 coordinates:

    .. math::
        p(x) = (K-1)!\, \tau^{K-1} \prod_k \frac{\pi_k x_k^{-\tau-1}}{\sum_j \pi_j x_j^{-\tau}} .

    ``log x`` is ``-inf`` where ``x`` underflowed to 0; the distribution classes score
    their own samples at the log-space pre-image instead (:func:`exp_concrete_log_prob`).
    """
    tau = _hyper(temperature)
    k = x.shape[-1]
    # The density is invariant to shifting the logits (the K c gained by the sum is lost by
    # K logsumexp), so the unnormalised logits stand in for log(pi): one pass fewer.
    log_pi = logits
    log_x = jnp.log(x)
    return (
        math.lgamma(k)
        + (k - 1) * jnp.log(tau[..., 0])
        + jnp.sum(log_pi - (tau + 1) * log_x, axis=-1)
        - k * logsumexp(log_pi - tau * log_x, axis=-1)
    )


def binary_concrete_logit_sample(logits: jax.Array, temperature, logistic: jax.Array) -> jax.Array:
    """A binary Concrete sample in logit space: ``Z = (logits + L) / tau``."""
    return (logits + logistic) / jnp.asarray(temperature)


def logit_binary_concrete_log_prob(z: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    r"""Log density of the logit of a binary Concrete (Maddison et al. 2017, eq. 21):
    ``log tau + (l - tau z) - 2 softplus(l - tau z)``."""
    tau = jnp.asarray(temperature)
    d = logits - tau * z
    return jnp.log(tau) + d - 2.0 * jnp.logaddexp(0.0, d)


def binary_concrete_log_prob(x: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    r"""Log density of the binary Concrete at ``x`` in (0, 1) (Maddison et al. 2017, eq. 20):

    .. math:: p(x) = \frac{\tau \alpha x^{-\tau-1} (1-x)^{-\tau-1}}{(\alpha x^{-\tau} + (1-x)^{-\tau})^2}.
    """
    tau = jnp.asarray(temperature)
    log_alpha = logits
    a = log_alpha - tau * jnp.log(x)
    b = -tau * jnp.log1p(-x)
    return (
        jnp.log(tau) + log_alpha - (tau + 1) * (jnp.log(x) + jnp.log1p(-x)) - 2.0 * jnp.logaddexp(a, b)
    )
