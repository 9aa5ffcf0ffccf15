"""The Bernoulli estimators of ``pyro_ext`` (kernels ``estimators.binary_*`` and the classes
``BernoulliStraightThrough``, ``BernoulliReinMax``, ``BernoulliREDGE``, ``BernoulliREDGECov``,
``BernoulliREINDGE``): each kernel is the K = 2 one-hot kernel on logits ``(0, l)`` with the
noise mapped (``eps = eps_1 - eps_0``, ``L = G_1 - G_0``), in value and gradient; the float64
oracle on the same noise; shapes, validation, seeded statistics, KL and ``relax``.

Statistical tests are seeded and marked ``statistical``; each states its false-failure rate.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats
from torch.distributions import constraints, kl_divergence

from pyro_ext import estimators
from relaxed_dists import reference

# The REDGE family's SampleLawWarning is tested in test_sample_law.py (and once below).
pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

SHAPE = (2, 3, 4)  # 24 independent elements
REDGE_HYPER = [(2, 1.0), (3, 0.5), (5, 0.3), (9, 0.9)]
REDGE_NAMES = ("redge", "redge_cov", "reindge")
# the same float64 ops as the one-hot kernel / the oracle, in another order: rounding only
VALUE_TOL = dict(rtol=0.0, atol=1e-12)
GRAD_TOL = dict(rtol=1e-10, atol=1e-12)


def _noise(seed=0, shape=SHAPE):
    """Float64 ``(l, eps_0, eps_1, G_0, G_1, w)``: logits in [-4, 4], the two classes' Gaussian
    and Gumbel noise, and an upstream gradient."""
    rng = np.random.default_rng(seed)
    l = rng.uniform(-4.0, 4.0, size=shape)
    eps = rng.standard_normal((2,) + shape)
    gumbels = reference.gumbel_from_uniform(rng.uniform(size=(2,) + shape))
    return l, eps[0], eps[1], gumbels[0], gumbels[1], rng.standard_normal(shape)


def _pair(l):
    """One-hot logits ``(0, l)`` on a new last dimension."""
    return np.stack([np.zeros_like(l), l], -1) if isinstance(l, np.ndarray) else torch.stack([torch.zeros_like(l), l], -1)


def _kernels(name, hyper):
    """``(binary(l, eps, L), one_hot(logits2, eps2, gumbels2))`` for an estimator name."""
    if name == "st":
        return (lambda l, e, L: estimators.binary_straight_through(l, L)), (
            lambda lg, e, g: estimators.straight_through(lg, g)
        )
    if name == "reinmax":
        return (lambda l, e, L: estimators.binary_reinmax(l, hyper, L)), (
            lambda lg, e, g: estimators.reinmax(lg, hyper, g)
        )
    n_steps, t_1 = hyper
    binary, one_hot = getattr(estimators, f"binary_{name}"), getattr(estimators, name)
    return (lambda l, e, L: binary(l, n_steps, t_1, e, L)), (lambda lg, e, g: one_hot(lg, n_steps, t_1, e, g))


CASES = [("st", None), ("reinmax", 0.7), ("reinmax", 3.0)] + [
    (name, hyper) for name in REDGE_NAMES for hyper in REDGE_HYPER
]


# --- the K = 2 one-hot kernel, value and gradient --------------------------------------------


@pytest.mark.parametrize("name, hyper", CASES, ids=str)
def test_binary_kernel_is_the_one_hot_kernel_at_k2(name, hyper):
    l, e0, e1, g0, g1, w = (torch.tensor(a) for a in _noise(1))
    binary, one_hot = _kernels(name, hyper)
    l = l.requires_grad_()
    hard, soft = binary(l, e1 - e0, g1 - g0)
    hard2, soft2 = one_hot(_pair(l), torch.stack([e0, e1], -1), torch.stack([g0, g1], -1))
    assert hard.shape == soft.shape == SHAPE and hard.dtype == torch.float64
    assert torch.equal(hard.detach(), hard2[..., 1].detach())  # the same draws, exactly
    assert 0 < hard.detach().mean() < 1  # both values occur
    torch.testing.assert_close(soft, soft2[..., 1], **VALUE_TOL)
    (grad,) = torch.autograd.grad((w * hard).sum(), l, retain_graph=True)
    (grad2,) = torch.autograd.grad((w * hard2[..., 1]).sum(), l, retain_graph=True)
    torch.testing.assert_close(grad, grad2, **GRAD_TOL)
    assert torch.any(grad != 0)  # (a saturated sigmoid at small t_1 may give an exact 0)
    # the soft output's gradient too (ReinMax's is the plain sigmoid's)
    (grad_soft,) = torch.autograd.grad((w * soft).sum(), l)
    (grad_soft2,) = torch.autograd.grad((w * soft2[..., 1]).sum(), l)
    torch.testing.assert_close(grad_soft, grad_soft2, **GRAD_TOL)


# --- the float64 oracle ------------------------------------------------------------------------


def _oracle(name, hyper, l, e0, e1, g0, g1, w):
    """The oracle's ``(hard, soft, d<w, hard>/dl)`` on logits ``(0, l)``, class-1 coordinate."""
    logits, eps, gumbels = _pair(l), np.stack([e0, e1], -1), np.stack([g0, g1], -1)
    g = np.stack([np.zeros_like(w), w], -1)  # upstream on the class-1 coordinate only
    if name in ("st", "reinmax"):
        hard, soft = reference.straight_through(logits, gumbels)
        grad = reference.straight_through_vjp(logits, g) if name == "st" else reference.reinmax_vjp(logits, hyper, hard, g)
        return hard[..., 1], soft[..., 1], grad[..., 1]
    n_steps, t_1 = hyper
    if name == "redge_cov":
        hard, soft = reference.redge_cov(logits, n_steps, t_1, eps, gumbels)
        # elements are independent, so one central difference bumps them all (h = 1e-6)
        h = 1e-6
        up, down = (reference.redge_cov(_pair(l + s * h), n_steps, t_1, eps, gumbels)[1][..., 1] for s in (1, -1))
        return hard[..., 1], soft[..., 1], w * (up - down) / (2 * h)
    hard, soft = reference.redge(logits, n_steps, t_1, eps, gumbels)
    if name == "redge":
        grad = reference.redge_vjp(logits, n_steps, t_1, eps, g)
    else:
        grad = reference.reindge_vjp(logits, n_steps, t_1, eps, hard, g)
    return hard[..., 1], soft[..., 1], grad[..., 1]


@pytest.mark.parametrize("name, hyper", CASES, ids=str)
def test_binary_kernel_matches_the_oracle(name, hyper):
    noise = _noise(2)
    l, e0, e1, g0, g1, w = (torch.tensor(a) for a in noise)
    binary, _ = _kernels(name, hyper)
    l = l.requires_grad_()
    hard, soft = binary(l, e1 - e0, g1 - g0)
    (grad,) = torch.autograd.grad((w * hard).sum(), l)
    ref_hard, ref_soft, ref_grad = _oracle(name, hyper, *noise)
    np.testing.assert_array_equal(hard.detach().numpy(), ref_hard)
    torch.testing.assert_close(soft.detach(), torch.tensor(ref_soft), **VALUE_TOL)
    if name == "redge_cov":
        # a central difference: truncation O(h^2) and rounding O(1e-16 / h), about 1e-9 of the scale
        torch.testing.assert_close(grad, torch.tensor(ref_grad), rtol=0.0, atol=1e-8 * (1 + np.abs(ref_grad).max()))
    else:
        torch.testing.assert_close(grad, torch.tensor(ref_grad), **GRAD_TOL)


@pytest.mark.parametrize("name", REDGE_NAMES)
def test_tensor_t_1_broadcasts_and_gets_a_gradient(name):
    noise = _noise(3, shape=(3,))
    l, e0, e1, g0, g1, w = (torch.tensor(a) for a in noise)
    t_1 = torch.tensor([0.3, 0.6, 1.0], dtype=torch.float64, requires_grad=True)
    binary = getattr(estimators, f"binary_{name}")
    hard, soft = binary(l, 4, t_1, e1 - e0, g1 - g0)
    for i in range(3):  # each element with its own t_1, as a float
        hard_i, soft_i = binary(l[i], 4, float(t_1.detach()[i]), (e1 - e0)[i], (g1 - g0)[i])
        assert hard[i] == hard_i
        torch.testing.assert_close(soft[i], soft_i, **VALUE_TOL)
    (grad_t_1,) = torch.autograd.grad((w * soft).sum(), t_1)
    h = 1e-6  # central difference, as above
    bump = torch.eye(3, dtype=torch.float64) * h
    fd = torch.stack([(w * (binary(l, 4, t_1.detach() + bump[i], e1 - e0, g1 - g0)[1]
                            - binary(l, 4, t_1.detach() - bump[i], e1 - e0, g1 - g0)[1])).sum() / (2 * h)
                      for i in range(3)])
    torch.testing.assert_close(grad_t_1, fd, rtol=0.0, atol=1e-7)


def test_special_cases():
    l, e0, e1, g0, g1, w = (torch.tensor(a) for a in _noise(4))
    L, eps = g1 - g0, e1 - e0
    grads = {}
    for name, args in [("st", ()), ("reinmax", (1.0,)), ("redge", (2, 1.0, eps)), ("reindge", (2, 1.0, eps))]:
        leaf = l.clone().requires_grad_()
        hard, soft = getattr(estimators, f"binary_{name}" if name != "st" else "binary_straight_through")(leaf, *args, L)
        assert torch.equal(hard.detach(), (l + L > 0).double())  # 1[l + L > 0]
        (grads[name],) = torch.autograd.grad((w * hard).sum(), leaf)
    torch.testing.assert_close(grads["redge"], grads["st"], **GRAD_TOL)  # t_1 = 1, 2 steps: straight-through
    torch.testing.assert_close(grads["reindge"], grads["reinmax"], **GRAD_TOL)  # ... and ReinMax at tau = 1
