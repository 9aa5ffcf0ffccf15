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

Examples
--------
A kernel and the float64 oracle on the same noise:

>>> import numpy as np
>>> from relaxed_dists import reference
>>> rng = np.random.default_rng(0)
>>> logits, gumbels = rng.normal(size=(2, 4)), rng.gumbel(size=(2, 4))
>>> y = concrete_log_sample(jnp.asarray(logits), 0.5, jnp.asarray(gumbels))
>>> bool(np.allclose(y, reference.concrete_log_sample(logits, 0.5, gumbels), atol=1e-5))
True
>>> exp_concrete_log_prob(y, jnp.asarray(logits), 0.5).shape
(2,)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, logsumexp

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


def _weighted_log(weight: jax.Array, log_p: jax.Array) -> jax.Array:
    """``weight * log_p`` with ``0 * -inf = 0``: a masked class (``log_p = -inf``) adds 0 where
    its weight is 0 and ``-inf`` elsewhere. The double where keeps ``-inf`` out of the gradient."""
    masked = jnp.isneginf(log_p)
    return jnp.where(masked, jnp.where(weight == 0, 0.0, -jnp.inf), weight * jnp.where(masked, 0.0, log_p))


def _last_kept(y: jax.Array, masked: jax.Array) -> jax.Array:
    """``y`` at the last unmasked class of each row (``y[..., -1]`` when nothing is masked): the
    coordinate that the density's base measure leaves out. The position is found on ``masked``'s
    shape (the largest unmasked index), then gathered from ``y``."""
    positions = jnp.arange(masked.shape[-1])
    last = jnp.maximum(jnp.max(jnp.where(masked, -1, positions), axis=-1, keepdims=True), 0)
    return jnp.take_along_axis(y, jnp.broadcast_to(last, y.shape[:-1] + (1,)), axis=-1)[..., 0]


def _hits_masked(y: jax.Array, masked: jax.Array) -> jax.Array:
    """Rows where ``y`` is above ``-inf`` on a masked class: a point of density 0."""
    return jnp.any(masked & (y > -jnp.inf), axis=-1)


# --- categorical -------------------------------------------------------------------


def categorical_log_prob(value: jax.Array, logits: jax.Array) -> jax.Array:
    """``log Cat(value | softmax(logits))`` for a one-hot ``value``; a ``-inf`` logit masks its class."""
    return jnp.sum(_weighted_log(value, jax.nn.log_softmax(logits, axis=-1)), axis=-1)


def bernoulli_log_prob(value: jax.Array, logits: jax.Array) -> jax.Array:
    """``log Bernoulli(value | sigmoid(logits))`` for ``value`` in {0, 1}; ``logits = +-inf`` is certain."""
    log_p1, log_p0 = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    return _weighted_log(value, log_p1) + _weighted_log(1.0 - value, log_p0)


# --- Concrete / Gumbel-Softmax (Maddison et al. 2017; Jang et al. 2017) -------------


def concrete_log_sample(logits: jax.Array, temperature, gumbels: jax.Array) -> jax.Array:
    r"""A Concrete sample on the log-simplex: ``Y = log_softmax((logits + G) / tau)``.

    A ``-inf`` logit masks its class: ``Y_k = -inf`` there (the double where keeps ``-inf / tau``
    out of the temperature's gradient)."""
    masked = jnp.isneginf(logits)
    scores = jnp.where(masked, -jnp.inf, (jnp.where(masked, 0.0, logits) + gumbels) / _hyper(temperature))
    return jax.nn.log_softmax(scores, axis=-1)


def exp_concrete_log_prob(y: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    r"""Log density of the ExpConcrete at ``y`` (a point of the log-simplex).

    With respect to Lebesgue measure on the first K-1 coordinates ``y_1 .. y_{K-1}``:

    .. math::
        \log p(y) = \log (K-1)! + (K-1) \log\tau + \sum_k (\ell_k - \tau y_k)
                    - K \operatorname{logsumexp}_k(\ell_k - \tau y_k) - y_K .

    The last term ``- y_K`` makes it integrate to one over the first K-1 coordinates
    (Maddison et al.'s ExpConcrete expression and ``torch``'s omit it).

    A ``-inf`` logit masks its class: the law is then the ExpConcrete of the ``m`` unmasked
    classes (``y = -inf`` on the masked ones, else density ``-inf``), the formula above on the
    unmasked coordinates with ``m`` for ``K``, with respect to Lebesgue measure on the unmasked
    coordinates bar the last (for ``m = 1`` a point mass, scored 0).
    """
    tau = _hyper(temperature)
    big_k = y.shape[-1]
    masked = jnp.isneginf(logits)
    # The density is invariant to shifting the logits (the K c gained by the sum is lost by
    # K logsumexp), so the unnormalised logits stand in for log(pi): one pass fewer.
    log_pi = jnp.where(masked, 0.0, logits)
    y_kept = jnp.where(masked, 0.0, y)  # the double where: -inf never reaches a gradient
    score = log_pi - tau * y_kept
    k = jnp.sum(~masked, axis=-1).astype(score.dtype)
    log_prob = (
        jnp.where(k == big_k, math.lgamma(big_k), gammaln(k))  # the exact constant when nothing is masked
        + (k - 1) * jnp.log(tau[..., 0])
        + jnp.sum(jnp.where(masked, 0.0, score), axis=-1)
        - k * logsumexp(jnp.where(masked, -jnp.inf, score), axis=-1)
        - _last_kept(y_kept, masked)
    )
    return jnp.where(_hits_masked(y, masked), -jnp.inf, log_prob)


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
    """A binary Concrete sample in logit space: ``Z = (logits + L) / tau``; ``Z = logits``
    where they are infinite (a certain outcome; the double where keeps the gradient finite)."""
    certain = jnp.isinf(logits)
    return jnp.where(certain, logits, (jnp.where(certain, 0.0, logits) + logistic) / jnp.asarray(temperature))


def logit_binary_concrete_log_prob(z: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    r"""Log density of the logit of a binary Concrete (Maddison et al. 2017, eq. 21):
    ``log tau + (l - tau z) - 2 softplus(l - tau z)``. At ``l = +-inf`` the law is the point
    mass at ``z = l``: 0 there, ``-inf`` elsewhere (double where: gradients stay finite)."""
    tau = jnp.asarray(temperature)
    certain = jnp.isinf(logits)
    d = jnp.where(certain, 0.0, logits) - tau * jnp.where(certain, 0.0, z)
    log_prob = jnp.log(tau) + d - 2.0 * jnp.logaddexp(0.0, d)
    return jnp.where(certain, jnp.where(z == logits, 0.0, -jnp.inf), log_prob)


def binary_concrete_log_prob(x: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    r"""Log density of the binary Concrete at ``x`` in (0, 1) (Maddison et al. 2017, eq. 20):

    .. math:: p(x) = \frac{\tau \alpha x^{-\tau-1} (1-x)^{-\tau-1}}{(\alpha x^{-\tau} + (1-x)^{-\tau})^2}.
    """
    tau = jnp.asarray(temperature)
    log_alpha = logits
    a = log_alpha - tau * jnp.log(x)
    b = -tau * jnp.log1p(-x)
    return jnp.log(tau) + log_alpha - (tau + 1) * (jnp.log(x) + jnp.log1p(-x)) - 2.0 * jnp.logaddexp(a, b)
