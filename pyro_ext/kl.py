r"""``kl_divergence`` for the hard-sample classes: the exact categorical / Bernoulli KL.

Importing this module registers, with :func:`torch.distributions.kl.register_kl`:

- every pair of :class:`StraightThrough`, :class:`ReinMax`, :class:`REDGE`, :class:`REDGECov`,
  :class:`REINDGE`, :class:`RelaxedOneHotCategoricalStraightThrough` and
  ``torch.distributions.OneHotCategorical`` (hence Pyro's subclass), both ways round, except
  ``OneHotCategorical`` against itself (torch's own);
- every pair of :class:`BernoulliStraightThrough`, :class:`BernoulliReinMax`,
  :class:`BernoulliREDGE`, :class:`BernoulliREDGECov`, :class:`BernoulliREINDGE`,
  :class:`RelaxedBernoulliStraightThrough` and ``torch.distributions.Bernoulli`` (hence Pyro's),
  both ways round, except ``Bernoulli`` against itself.

All one-hot pairs share one function and all binary pairs another, so torch's dispatch (which
warns when its left- and right-first orders pick different functions) is never ambiguous.
With these a guide relaxed by :func:`pyro_ext.relax.relax` works with ``TraceMeanField_ELBO``
against a ``OneHotCategorical`` / ``Bernoulli`` prior (``Independent`` and masked sites
through Pyro's own registrations).

Which law. Each class's ``log_prob`` is the categorical (Bernoulli) log-probability of
``softmax(logits)`` (``sigmoid(logits)``) and the KL is that of these laws,

.. math:: \mathrm{KL}(p \,\|\, q) = \sum_k e^{\lambda^p_k} (\lambda^p_k - \lambda^q_k),
          \qquad \lambda = \log\operatorname{softmax}(\text{logits}),

computed from ``log_softmax(logits)`` (``logsigmoid(+-logits)``), a term with ``p_k = 0``
(``logits = -inf``) counting 0 and one with ``p_k > 0 = q_k`` making the KL ``inf``. Probabilities
given as ``probs`` pass through the classes' logits, where a zero probability is a ``-inf`` logit.
It is the KL of the hard samples' law for StraightThrough, ReinMax and the straight-through
Gumbel-Softmax, whose forward samples are exact categorical draws. For REDGE, REDGE-cov and
REINDGE the hard sample ``h ~ Cat(x0_hat)`` follows ``softmax(logits)`` exactly only at
``t_1 = 1``; at smaller ``t_1`` (and few ``n_steps``) its law is only approximately the
categorical (biased toward the mode), and the KL here is still the categorical one of
``softmax(logits)``, consistent with their ``log_prob``. The same holds for their Bernoulli
versions and ``sigmoid(logits)``.

Not registered against the integer ``torch.distributions.Categorical``: its ``event_shape`` is
``()`` and its values are indices, while these classes have ``event_shape == (K,)`` and one-hot
values. The laws correspond, and the KL would even have the right shape (``batch_shape``), but
no Pyro site can hold both: a one-hot guide value replayed into a ``Categorical`` model site is
scored as an index, so ``Trace_ELBO`` would fail where ``TraceMeanField_ELBO`` would silently
succeed. Declare the model site ``OneHotCategorical`` (:func:`relax` raises on ``Categorical``).

Example:
    >>> from torch.distributions import OneHotCategorical, kl_divergence
    >>> kl_divergence(REDGE(logits=torch.zeros(3, 4)), OneHotCategorical(logits=torch.zeros(3, 4)))
    tensor([0., 0., 0.])
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, OneHotCategorical
from torch.distributions.kl import register_kl

from .distributions import (
    REDGE,
    REINDGE,
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    BernoulliReinMax,
    BernoulliStraightThrough,
    REDGECov,
    ReinMax,
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategoricalStraightThrough,
    StraightThrough,
)

__all__: list[str] = []

#: The classes whose samples are exact one-hots scored by the categorical log-probability.
HARD_ONE_HOT_CLASSES = (StraightThrough, ReinMax, REDGE, REDGECov, REINDGE, RelaxedOneHotCategoricalStraightThrough)

#: The classes whose samples are exact 0./1. scored by the Bernoulli log-probability.
HARD_BINARY_CLASSES = (
    BernoulliStraightThrough,
    BernoulliReinMax,
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    RelaxedBernoulliStraightThrough,
)


def _kl_from_log_probs(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``sum_k p_k (log p_k - log q_k)`` over the last dim, with ``0 log 0 = 0`` (double where)."""
    p_zero = log_p == -torch.inf
    log_ratio = torch.where(p_zero, 0.0, torch.where(p_zero, 0.0, log_p) - log_q)
    return torch.sum(torch.exp(log_p) * log_ratio, dim=-1)


def _kl_one_hot(p, q) -> torch.Tensor:
    """KL of ``Cat(softmax(p.logits))`` from ``Cat(softmax(q.logits))``, shape ``batch_shape``."""
    return _kl_from_log_probs(torch.log_softmax(p.logits, dim=-1), torch.log_softmax(q.logits, dim=-1))


def _kl_binary(p, q) -> torch.Tensor:
    """KL of ``Bernoulli(sigmoid(p.logits))`` from ``Bernoulli(sigmoid(q.logits))``."""
    log_p = torch.stack([F.logsigmoid(p.logits), F.logsigmoid(-p.logits)], dim=-1)
    log_q = torch.stack([F.logsigmoid(q.logits), F.logsigmoid(-q.logits)], dim=-1)
    return _kl_from_log_probs(log_p, log_q)


def _register(classes: tuple[type, ...], exact: type, kl_fn) -> None:
    for type_p, type_q in itertools.product(classes + (exact,), repeat=2):
        if (type_p, type_q) != (exact, exact):
            register_kl(type_p, type_q)(kl_fn)


_register(HARD_ONE_HOT_CLASSES, OneHotCategorical, _kl_one_hot)
_register(HARD_BINARY_CLASSES, Bernoulli, _kl_binary)
