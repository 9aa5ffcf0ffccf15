"""The Bernoulli estimators of ``pyro_ext`` (kernels ``estimators.binary_*`` and the classes
``BernoulliStraightThrough``, ``BernoulliReinMax``, ``BernoulliREDGE``, ``BernoulliREDGECov``,
``BernoulliREINDGE``): each kernel is the K = 2 one-hot kernel on logits ``(0, l)`` with the
noise mapped (``eps = eps_1 - eps_0``, ``L = G_1 - G_0``), in value and gradient; the float64
oracle on the same noise; shapes, validation, seeded statistics, KL and ``relax``.

Statistical tests are seeded and marked ``statistical``; each states its false-failure rate.
"""

from __future__ import annotations

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
    return (
        np.stack([np.zeros_like(l), l], -1) if isinstance(l, np.ndarray) else torch.stack([torch.zeros_like(l), l], -1)
    )


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
        grad = (
            reference.straight_through_vjp(logits, g) if name == "st" else reference.reinmax_vjp(logits, hyper, hard, g)
        )
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
    fd = torch.stack(
        [
            (
                w
                * (
                    binary(l, 4, t_1.detach() + bump[i], e1 - e0, g1 - g0)[1]
                    - binary(l, 4, t_1.detach() - bump[i], e1 - e0, g1 - g0)[1]
                )
            ).sum()
            / (2 * h)
            for i in range(3)
        ]
    )
    torch.testing.assert_close(grad_t_1, fd, rtol=0.0, atol=1e-7)


def test_special_cases():
    l, e0, e1, g0, g1, w = (torch.tensor(a) for a in _noise(4))
    L, eps = g1 - g0, e1 - e0
    grads = {}
    for name, args in [("st", ()), ("reinmax", (1.0,)), ("redge", (2, 1.0, eps)), ("reindge", (2, 1.0, eps))]:
        leaf = l.clone().requires_grad_()
        hard, soft = getattr(estimators, f"binary_{name}" if name != "st" else "binary_straight_through")(
            leaf, *args, L
        )
        assert torch.equal(hard.detach(), (l + L > 0).double())  # 1[l + L > 0]
        (grads[name],) = torch.autograd.grad((w * hard).sum(), leaf)
    torch.testing.assert_close(grads["redge"], grads["st"], **GRAD_TOL)  # t_1 = 1, 2 steps: straight-through
    torch.testing.assert_close(grads["reindge"], grads["reinmax"], **GRAD_TOL)  # ... and ReinMax at tau = 1


# --- the classes -------------------------------------------------------------------------------

from pyro.infer import Trace_ELBO  # noqa: E402

from pyro_ext import (  # noqa: E402
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    BernoulliReinMax,
    BernoulliStraightThrough,
    relax,
)
from pyro_ext._ops import sample_logistic  # noqa: E402
from pyro_ext.relax import BERNOULLI_CLASSES, ONE_HOT_CLASSES  # noqa: E402
from relaxed_dists.registry import BERNOULLI_ESTIMATORS, ESTIMATORS  # noqa: E402
from relaxed_dists.sample_law import SampleLawWarning  # noqa: E402

CLASSES = [BernoulliStraightThrough, BernoulliReinMax, BernoulliREDGE, BernoulliREDGECov, BernoulliREINDGE]
REDGE_FAMILY = CLASSES[2:]
PARAMS = {
    BernoulliStraightThrough: {},
    BernoulliReinMax: {"temperature": 0.7},
    **{c: {"n_steps": 3, "t_1": 0.5} for c in REDGE_FAMILY},
}
KERNEL = {
    BernoulliStraightThrough: lambda lg, e, L: estimators.binary_straight_through(lg, L),
    BernoulliReinMax: lambda lg, e, L: estimators.binary_reinmax(lg, 0.7, L),
    BernoulliREDGE: lambda lg, e, L: estimators.binary_redge(lg, 3, 0.5, e, L),
    BernoulliREDGECov: lambda lg, e, L: estimators.binary_redge_cov(lg, 3, 0.5, e, L),
    BernoulliREINDGE: lambda lg, e, L: estimators.binary_reindge(lg, 3, 0.5, e, L),
}
IDS = lambda c: c.__name__  # noqa: E731
ALPHA = 1e-3  # each seeded statistical test's false-failure rate


def _make(cls, **kwargs):
    return cls(**{**PARAMS[cls], **kwargs})


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_shapes_expand_support_and_the_kernel_under_the_same_seed(cls):
    logits = torch.tensor(_noise(5, shape=(2, 3))[0], requires_grad=True)
    d = _make(cls, logits=logits, validate_args=True)
    assert d.batch_shape == (2, 3) and d.event_shape == () and cls.infer_shapes(logits=(2, 3)) == ((2, 3), ())
    assert d.has_rsample and d.support is constraints.boolean
    torch.manual_seed(5)
    value = d.rsample((4,))
    assert value.shape == (4, 2, 3) and value.dtype == torch.float64 and d.log_prob(value).shape == (4, 2, 3)
    assert set(value.detach().flatten().tolist()) == {0.0, 1.0}  # exact 0./1., both drawn
    # the kernel on the class's noise: sqrt(2) N(0, 1) for the REDGE family, then logistic
    torch.manual_seed(5)
    eps = math.sqrt(2.0) * torch.randn(4, 2, 3, dtype=torch.float64) if cls in REDGE_FAMILY else None
    expected = KERNEL[cls](logits.expand(4, 2, 3), eps, sample_logistic((4, 2, 3), torch.float64, "cpu"))[0]
    assert torch.equal(value.detach(), expected.detach())
    w = torch.randn(4, 2, 3, dtype=torch.float64)
    grads = [torch.autograd.grad((w * v).sum(), logits)[0] for v in (value, expected)]
    torch.testing.assert_close(grads[0], grads[1], rtol=0.0, atol=0.0)  # the same ops
    expanded = d.expand((5, 2, 3))
    assert type(expanded) is cls and expanded.batch_shape == (5, 2, 3) and expanded.rsample().shape == (5, 2, 3)
    assert expanded._validate_args and all(getattr(expanded, k).shape == (5, 2, 3) for k in cls._hyper)
    if cls in REDGE_FAMILY:
        assert expanded.n_steps == 3 and expanded._t_1() == 0.5


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_log_prob_moments_and_enumeration_are_bernoullis(cls):
    probs = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)
    d, exact = _make(cls, probs=probs, validate_args=True), torch.distributions.Bernoulli(probs=probs)
    support = d.enumerate_support()
    assert support.shape == (2, 5) and d.enumerate_support(expand=False).shape == (2, 1)
    assert torch.equal(support, exact.enumerate_support())
    log_prob = d.log_prob(support)
    torch.testing.assert_close(log_prob.exp().sum(0), torch.ones(5, dtype=torch.float64), rtol=1e-15, atol=0.0)
    torch.testing.assert_close(log_prob.exp()[1], probs, rtol=1e-15, atol=0.0)  # exp(log p) round-off
    logits = torch.tensor([-2.0, 0.3, 4.0], dtype=torch.float64)
    value = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    expected = reference.bernoulli_log_prob(value.numpy(), logits.numpy())
    # against the float64 oracle (softplus written another way): round-off of a few ulp of log 2
    np.testing.assert_allclose(_make(cls, logits=logits).log_prob(value), expected, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(d.mean, probs, rtol=0.0, atol=0.0)
    torch.testing.assert_close(d.variance, probs * (1 - probs), rtol=0.0, atol=0.0)
    assert d.mode.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(d.entropy(), exact.entropy(), rtol=1e-12, atol=1e-15)
    # +-inf logits (probs 0 and 1) are point masses: drawn exactly, finite everywhere
    samples = d.rsample((200,))
    assert torch.all(samples[:, 0] == 0) and torch.all(samples[:, -1] == 1)
    assert torch.isfinite(d.log_prob(samples)).all()


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_parameter_errors_name_the_parameter(cls):
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got both"):
        _make(cls, probs=torch.full((3,), 0.5), logits=torch.zeros(3))
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got neither"):
        _make(cls)
    with pytest.raises(ValueError, match=r"parameter logits .* invalid values"):  # torch's message
        _make(cls, logits=torch.tensor([0.0, math.nan]), validate_args=True)
    with pytest.raises(ValueError, match=r"parameter probs .* invalid values"):
        _make(cls, probs=torch.tensor([0.5, 1.5]), validate_args=True)
    with pytest.raises(ValueError, match=r"value argument .* within the support"):
        _make(cls, logits=torch.zeros(3), validate_args=True).log_prob(torch.full((3,), 0.5))
    if cls is BernoulliReinMax:
        for temperature in (0.0, -1.0, math.nan, math.inf):
            with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got temperature="):
                BernoulliReinMax(temperature, logits=torch.zeros(3))
        with pytest.raises(ValueError, match=r"temperature.shape must be broadcastable with logits.shape=\(3,\)"):
            BernoulliReinMax(torch.ones(2), logits=torch.zeros(3))
    if cls in REDGE_FAMILY:
        for n_steps, error in [(1, ValueError), (3.0, TypeError), (True, TypeError)]:
            with pytest.raises(error, match=r"n_steps must be an integer >= 2, got n_steps="):
                cls(logits=torch.zeros(3), n_steps=n_steps)
        for t_1 in (0.0, 1.5, math.nan):
            with pytest.raises(ValueError, match=r"t_1 must be in \(0, 1\], got t_1="):
                cls(logits=torch.zeros(3), t_1=t_1, validate_args=True)
            with pytest.raises(ValueError, match=r"parameter t_1 .* OpenClosedInterval"):  # torch's message
                cls(logits=torch.zeros(3), t_1=torch.tensor([0.5, t_1, 0.5]), validate_args=True)
        with pytest.raises(ValueError, match=r"t_1.shape must be broadcastable with probs.shape=\(3,\)"):
            cls(probs=torch.full((3,), 0.5), t_1=torch.full((2,), 0.5))


def test_tensor_t_1_broadcasts_sample_law_and_warning():
    d = BernoulliREDGE(logits=torch.zeros(3), t_1=torch.tensor([[0.2], [0.9]]), n_steps=4)
    assert d.batch_shape == (2, 3) and d.t_1.shape == (2, 3) and d.expand((5, 2, 3)).t_1.shape == (5, 2, 3)
    assert d.sample_law_tv == BernoulliREDGE(logits=torch.zeros(3), t_1=0.2, n_steps=4).sample_law_tv
    with pytest.warns(SampleLawWarning, match="redge_cov with n_steps=2, t_1=0.2"):
        BernoulliREDGECov(logits=torch.zeros(3), n_steps=2, t_1=0.2)
    torch.manual_seed(6)
    law = BernoulliREDGE(logits=torch.tensor([-1.0, 2.0]), t_1=1.0).sample_law(4000)
    assert law.shape == (2,)
    # t_1 = 1 draws Bernoulli(sigmoid(l)) exactly: within 4 standard errors (false failure ~1e-4)
    assert torch.all((law - torch.sigmoid(torch.tensor([-1.0, 2.0]))).abs() < 4 * 0.5 / math.sqrt(4000))
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        d.sample_law(0)


@pytest.mark.statistical
@pytest.mark.parametrize("cls", [BernoulliStraightThrough, BernoulliReinMax, BernoulliREDGE], ids=IDS)
def test_hard_samples_are_bernoulli_draws(cls):
    # ST and ReinMax always, REDGE at t_1 = 1 (its last denoiser sees alpha = 0): exact
    # Bernoulli(sigmoid(l)) draws. One chi-square per logit on 20000 seeded draws, the
    # smallest p-value against ALPHA / 4 (Bonferroni): false-failure rate <= 1e-3.
    torch.manual_seed(7)
    logits = torch.tensor([-2.0, -0.3, 0.5, 1.5])
    d = _make(cls, logits=logits, **({"t_1": 1.0} if cls is BernoulliREDGE else {}))
    ones = d.sample((20_000,)).sum(0).numpy()
    p = torch.sigmoid(logits).double().numpy()
    pvalues = [stats.chisquare([n - k, k], [n * (1 - q), n * q]).pvalue for k, q, n in zip(ones, p, [20_000] * 4)]
    assert min(pvalues) > ALPHA / 4


# --- KL and relax -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_kl_against_bernoulli_is_the_analytic_one(cls):
    logits_p = torch.tensor([-3.0, -0.5, 0.0, 2.0, -math.inf], dtype=torch.float64)
    logits_q = torch.tensor([1.0, 0.5, -2.0, 2.0, 0.3], dtype=torch.float64)
    p, q = torch.sigmoid(logits_p), torch.sigmoid(logits_q)
    with np.errstate(divide="ignore", invalid="ignore"):
        analytic = torch.where(p > 0, p * (p.log() - q.log()), 0.0) + (1 - p) * ((1 - p).log() - (1 - q).log())
    for exact in (torch.distributions.Bernoulli, dist.Bernoulli):
        kl = kl_divergence(_make(cls, logits=logits_p), exact(logits=logits_q))
        torch.testing.assert_close(kl, analytic, rtol=1e-12, atol=1e-15)  # float64 round-off
        reverse = kl_divergence(exact(logits=logits_q[:4]), _make(cls, logits=logits_p[:4]))
        torch.testing.assert_close(reverse, kl_divergence(exact(logits=logits_q[:4]), exact(logits=logits_p[:4])))
    assert kl_divergence(_make(cls, logits=logits_q), _make(cls, logits=logits_q)).abs().max() == 0


def test_registry_and_class_table_cover_every_estimator():
    assert set(BERNOULLI_ESTIMATORS) == set(ESTIMATORS) == set(BERNOULLI_CLASSES) == set(ONE_HOT_CLASSES)


def _mixed_model():
    with pyro.plate("data", 3):
        z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(4)))
        b = pyro.sample("b", dist.Bernoulli(logits=torch.zeros(())))
        pyro.sample("y", dist.Normal(z @ torch.arange(4.0) + 2.0 * b, 1.0), obs=torch.tensor([3.0, 1.0, 0.5]))


def _mixed_guide():
    z_logits = pyro.param("z_logits", torch.zeros(3, 4))
    b_logits = pyro.param("b_logits", torch.zeros(3))
    with pyro.plate("data", 3):
        pyro.sample("z", dist.OneHotCategorical(logits=z_logits))
        pyro.sample("b", dist.Bernoulli(logits=b_logits))


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_relax_mixed_guide_with_every_estimator(estimator):
    pyro.clear_param_store()
    pyro.set_rng_seed(8)
    hyper = {"n_steps": 3, "t_1": 0.7} if estimator.startswith(("redge", "reindge")) else {}
    guide = relax(_mixed_guide, estimator=estimator, **hyper)
    nodes = pyro.poutine.trace(guide).get_trace().nodes
    assert type(nodes["z"]["fn"]) is ONE_HOT_CLASSES[estimator]
    assert type(nodes["b"]["fn"]) is BERNOULLI_CLASSES[estimator] and nodes["b"]["fn"].batch_shape == (3,)
    if estimator == "concrete":  # relaxes values: meant for model and guide together
        model = relax(_mixed_model, estimator="concrete")
    else:
        model = _mixed_model
        assert set(nodes["b"]["value"].tolist()) <= {0.0, 1.0}
    loss = Trace_ELBO(num_particles=2).differentiable_loss(model, guide)
    grads = torch.autograd.grad(loss, [pyro.param("z_logits"), pyro.param("b_logits")])
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() and (g != 0).any() for g in grads)


def test_docstring_examples_run():
    import doctest

    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    kernels = [getattr(estimators, f"binary_{n}") for n in ("straight_through", "reinmax") + REDGE_NAMES]
    for obj in CLASSES + kernels:
        for test in finder.find(obj, obj.__name__, globs={"torch": torch, obj.__name__: obj}):
            runner.run(test, out=lambda _: None)
    assert runner.tries >= len(CLASSES) + len(kernels) and runner.failures == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_low_precision_samples_are_exactly_0_or_1(dtype):
    torch.manual_seed(9)
    logits = (8.0 * torch.rand(3, 50) - 4.0).to(dtype).requires_grad_()
    for cls in CLASSES:
        value = _make(cls, logits=logits, validate_args=True).rsample((20,))
        assert value.dtype == dtype and bool(((value == 0) | (value == 1)).all()), cls.__name__
        assert torch.isfinite(_make(cls, logits=logits, validate_args=True).log_prob(value)).all(), cls.__name__
        (grad,) = torch.autograd.grad(value.sum(), logits)
        assert torch.isfinite(grad).all() and (grad != 0).any(), cls.__name__


def test_trace_mean_field_elbo_uses_the_registered_kl():
    # TraceMeanField_ELBO takes the analytic KL of each (guide, prior) pair: with a Bernoulli
    # estimator class in the guide it must find the registration and give Trace_ELBO's mean
    pyro.clear_param_store()

    def model():
        with pyro.plate("data", 3):
            pyro.sample("b", dist.Bernoulli(logits=torch.tensor(0.4)))

    def guide():
        with pyro.plate("data", 3):
            pyro.sample("b", dist.Bernoulli(logits=pyro.param("b_logits", torch.tensor([-1.0, 0.0, 2.0]))))

    relaxed = relax(guide, estimator="reindge", n_steps=3, t_1=0.7)
    loss = pyro.infer.TraceMeanField_ELBO().differentiable_loss(model, relaxed)
    q, p = torch.distributions.Bernoulli(logits=pyro.param("b_logits")), torch.distributions.Bernoulli(logits=0.4)
    torch.testing.assert_close(loss, kl_divergence(q, p).sum())  # no likelihood: the loss is the KL
    (grad,) = torch.autograd.grad(loss, pyro.param("b_logits").unconstrained())
    assert torch.isfinite(grad).all() and (grad != 0).all()
