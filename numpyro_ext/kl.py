r"""Exact KL divergences for the hard-sample classes, registered with NumPyro's
:func:`numpyro.distributions.kl.kl_divergence` (so ``TraceMeanField_ELBO`` uses them).

Importing this module registers (NumPyro has no ``register_kl``: ``kl_divergence`` is a
``multipledispatch`` dispatcher, and ``kl_divergence.register(P, Q)`` adds to it):

- every ordered pair of the one-hot classes ``OneHotCategorical``, ``StraightThrough``,
  ``ReinMax``, ``REDGE``, ``REDGECov``, ``REINDGE`` and
  ``RelaxedOneHotCategoricalStraightThrough`` (49 signatures of concrete classes, none a
  subclass of another, so no pair is ambiguous), as the categorical KL

  .. math:: \mathrm{KL}(p \,\|\, q) = \sum_k \pi_k (\log \pi_k - \log \rho_k),\qquad
            \log\pi = \log\mathrm{softmax}(\ell_p),\ \log\rho = \log\mathrm{softmax}(\ell_q);

- every ordered pair of the binary hard-sample classes ``RelaxedBernoulliStraightThrough``,
  ``BernoulliStraightThrough``, ``BernoulliReinMax``, ``BernoulliREDGE``, ``BernoulliREDGECov``,
  ``BernoulliREINDGE`` and NumPyro's ``BernoulliProbs`` / ``BernoulliLogits`` with at least one
  of ours, as the Bernoulli KL with ``log p = log_sigmoid(l)``, ``log(1 - p) = log_sigmoid(-l)``.
  NumPyro's own Bernoulli-Bernoulli pairs are left to NumPyro.

Each is the KL of the distributions ``log_prob`` scores, computed from ``log_softmax`` /
``log_sigmoid`` of the logits: a term with zero probability under ``p`` counts 0; one with
zero probability under ``q`` (a ``-inf`` logit, or a zero in ``probs``, which the classes turn
into a ``-inf`` logit: a masked class) gives ``+inf`` where ``p`` has mass there.
For ``REDGE``, ``REDGECov`` and ``REINDGE`` (and their Bernoulli classes) this is the categorical
(Bernoulli) KL of ``softmax(logits)`` (``sigmoid(logits)``),
as their ``log_prob`` is the categorical one, although at ``t_1 < 1`` their samples follow
the chain's ``x0_hat``, biased toward the mode (so the analytic KL of ``TraceMeanField_ELBO``
and the Monte Carlo ``log q - log p`` of ``Trace_ELBO`` estimate the same categorical KL
only where the samples follow ``softmax(logits)``). ``REDGE(hard=False)`` (simplex samples,
no density) raises ``NotImplementedError``.
Temperatures and other hyperparameters play no part.

Not registered against NumPyro's ``CategoricalProbs`` / ``CategoricalLogits``: their values
are integers with ``event_shape == ()`` and ``batch_shape == logits.shape[:-1]``, ours are
one-hot with ``event_shape == (K,)``; the two live on different sample spaces, a model site
of one cannot score a guide value of the other, and ``relax`` refuses integer sites, so no
ELBO ever asks for that pair (NumPyro's own ``(CategoricalProbs, CategoricalProbs)`` stays).

>>> import jax.numpy as jnp
>>> from numpyro.distributions.kl import kl_divergence
>>> from numpyro_ext import kl  # registers
>>> from numpyro_ext.distributions import REDGE, OneHotCategorical
>>> kl_divergence(REDGE(logits=jnp.zeros((3, 4))), OneHotCategorical(logits=jnp.ones(4))).shape
(3,)
>>> import numpyro.distributions as dist
>>> from numpyro_ext.distributions import BernoulliREDGE
>>> kl_divergence(BernoulliREDGE(logits=jnp.zeros(3)), dist.Bernoulli(logits=0.5)).shape
(3,)
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions.kl import kl_divergence

from .distributions import (
    REDGE,
    REINDGE,
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    BernoulliReinMax,
    BernoulliStraightThrough,
    OneHotCategorical,
    REDGECov,
    ReinMax,
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategoricalStraightThrough,
    StraightThrough,
)

__all__: list[str] = []  # the registrations are the module's effect

ONE_HOT_CLASSES = (
    OneHotCategorical,
    StraightThrough,
    ReinMax,
    REDGE,
    REDGECov,
    REINDGE,
    RelaxedOneHotCategoricalStraightThrough,
)
#: ours, then NumPyro's: a pair with one of ours is registered.
OUR_BERNOULLI_CLASSES = (
    RelaxedBernoulliStraightThrough,
    BernoulliStraightThrough,
    BernoulliReinMax,
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
)
BERNOULLI_CLASSES = (*OUR_BERNOULLI_CLASSES, dist.BernoulliProbs, dist.BernoulliLogits)


def _kl_terms(p: jax.Array, log_p: jax.Array, log_q: jax.Array) -> jax.Array:
    """``p (log_p - log_q)``, 0 where ``p == 0`` (the difference is sanitised there too, so
    ``-inf - -inf`` never reaches the gradient: the double where)."""
    is_zero = p == 0
    return jnp.where(is_zero, 0.0, p * jnp.where(is_zero, 0.0, log_p - log_q))


def _categorical_kl(p_logits: jax.Array, q_logits: jax.Array) -> jax.Array:
    log_p = jax.nn.log_softmax(p_logits, axis=-1)
    log_q = jax.nn.log_softmax(q_logits, axis=-1)
    return jnp.sum(_kl_terms(jnp.exp(log_p), log_p, log_q), axis=-1)


def _bernoulli_kl(p_logits: jax.Array, q_logits: jax.Array) -> jax.Array:
    log_p1, log_p0 = jax.nn.log_sigmoid(p_logits), jax.nn.log_sigmoid(-p_logits)
    log_q1, log_q0 = jax.nn.log_sigmoid(q_logits), jax.nn.log_sigmoid(-q_logits)
    return _kl_terms(jnp.exp(log_p1), log_p1, log_q1) + _kl_terms(jnp.exp(log_p0), log_p0, log_q0)


def _check_scored(d: dist.Distribution) -> None:
    if getattr(d, "hard", True) is False:
        raise NotImplementedError(
            f"{type(d).__name__}(hard=False) samples the simplex and has no density: no KL divergence"
        )


def _one_hot_kl(p: dist.Distribution, q: dist.Distribution) -> jax.Array:
    """Categorical KL of ``softmax(p.logits)`` from ``softmax(q.logits)``; shape: the batch shapes broadcast."""
    _check_scored(p)
    _check_scored(q)
    if p.event_shape != q.event_shape:
        shapes = f"got {p.event_shape} and {q.event_shape}"
        raise ValueError(f"KL between one-hot distributions needs equal event shapes, {shapes}")
    return _categorical_kl(p.logits, q.logits)


def _binary_kl(p: dist.Distribution, q: dist.Distribution) -> jax.Array:
    """Bernoulli KL of ``sigmoid(p.logits)`` from ``sigmoid(q.logits)``; shape: the batch shapes broadcast."""
    return _bernoulli_kl(p.logits, q.logits)


for _p, _q in itertools.product(ONE_HOT_CLASSES, repeat=2):
    kl_divergence.register(_p, _q)(_one_hot_kl)
for _p, _q in itertools.product(BERNOULLI_CLASSES, repeat=2):
    if _p in OUR_BERNOULLI_CLASSES or _q in OUR_BERNOULLI_CLASSES:
        kl_divergence.register(_p, _q)(_binary_kl)
