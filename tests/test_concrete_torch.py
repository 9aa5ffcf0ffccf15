"""The torch/Pyro Concrete family: ``pyro_ext.concrete`` kernels against the float64 oracle
(``relaxed_dists.reference``) and the ``pyro_ext.distributions`` classes (densities,
statistics, shapes, gradients, exact one-hots, errors, SVI).

Statistical tests are seeded and marked ``statistical``; each states its false-failure rate
(the probability that it fails for a random seed when the code is right).
"""

import doctest
import math

import numpy as np
import pyro
import pyro.distributions as pyro_dist
import pytest
import scipy.integrate
import scipy.stats
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from cases import CASES, make_logits
from pyro_ext import concrete, distributions as D
from pyro_ext.distributions import (
    ExpRelaxedOneHotCategorical,
    OneHotCategorical,
    RelaxedBernoulli,
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategorical,
    RelaxedOneHotCategoricalStraightThrough,
)
from relaxed_dists import reference as R

F32_EPS = torch.finfo(torch.float32).eps
ONE_HOT_CLASSES = [ExpRelaxedOneHotCategorical, RelaxedOneHotCategorical, RelaxedOneHotCategoricalStraightThrough]
BINARY_CLASSES = [RelaxedBernoulli, RelaxedBernoulliStraightThrough]
ST_CLASSES = [RelaxedOneHotCategoricalStraightThrough, RelaxedBernoulliStraightThrough]


def _t(array, dtype=torch.float64):
    return torch.as_tensor(np.asarray(array), dtype=dtype)


def _uniforms(shape, seed):
    """Float64 uniforms in (0, 1), the noise both the kernels and the oracle are fed."""
    return np.random.default_rng(seed).uniform(np.finfo(np.float64).tiny, 1.0, size=shape)


def _assert_close_f64(actual, expected):
    # Float64 round-off relative to the magnitude of the result (the Concrete log densities
    # reach ~1e5 at temperature 0.05 with logits spread to +-50): 1e-12 of it.
    expected = np.asarray(expected)
    scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isfinite(expected), expected, 0.0)))))
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=1e-12, atol=1e-12 * scale)


def _concrete_inputs(case, seed=0):
    """Logits, temperature (per batch element when batched) and Gumbel noise of one case."""
    logits = case.logits
    spread = 1.0 + 0.1 * np.arange(math.prod(case.batch_shape)).reshape(case.batch_shape)
    temperature = case.temperature * spread  # a distinct temperature per batch element
    gumbels = R.gumbel_from_uniform(_uniforms((4,) + logits.shape, seed))
    return logits, temperature, gumbels


# --- kernels against the float64 oracle -----------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
def test_concrete_kernels_match_oracle(case):
    logits, temperature, gumbels = _concrete_inputs(case)
    y = R.concrete_log_sample(logits, temperature, gumbels)
    _assert_close_f64(concrete.concrete_log_sample(_t(logits), _t(temperature), _t(gumbels)), y)
    _assert_close_f64(
        concrete.exp_concrete_log_prob(_t(y), _t(logits), _t(temperature)),
        R.exp_concrete_log_prob(y, logits, temperature),
    )
    # exp(y) underflows to 0 at low temperature: both give nan there (assert_allclose: equal_nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.exp(y)
        expected = R.concrete_log_prob(x, logits, temperature)
    _assert_close_f64(concrete.concrete_log_prob(_t(x), _t(logits), _t(temperature)), expected)
    hard = R.categorical_sample(R.log_softmax(logits), gumbels)
    _assert_close_f64(concrete.categorical_log_prob(_t(hard), _t(logits)), R.categorical_log_prob(hard, logits))


def test_concrete_kernel_takes_python_float_temperature():
    logits, _, gumbels = _concrete_inputs(CASES[4])
    expected = R.concrete_log_sample(logits, 0.3, gumbels)
    _assert_close_f64(concrete.concrete_log_sample(_t(logits), 0.3, _t(gumbels)), expected)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_binary_concrete_kernels_match_oracle(case):
    logits, temperature, _ = _concrete_inputs(case)
    logits = logits[..., 0]  # one binary logit per batch element, spread as the case's
    logistic = R.logistic_from_uniform(_uniforms((4,) + logits.shape, seed=1))
    z = R.binary_concrete_logit_sample(logits, temperature, logistic)
    _assert_close_f64(concrete.binary_concrete_logit_sample(_t(logits), _t(temperature), _t(logistic)), z)
    expected = R.logit_binary_concrete_log_prob(z, logits, temperature)
    _assert_close_f64(concrete.logit_binary_concrete_log_prob(_t(z), _t(logits), _t(temperature)), expected)
    # sigmoid(z) rounds to 0 or 1 at low temperature: both give nan/inf there alike
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = 1.0 / (1.0 + np.exp(-z))
        expected = R.binary_concrete_log_prob(x, logits, temperature)
    _assert_close_f64(concrete.binary_concrete_log_prob(_t(x), _t(logits), _t(temperature)), expected)
    hard = (z > 0).astype(np.float64)
    _assert_close_f64(concrete.bernoulli_log_prob(_t(hard), _t(logits)), R.bernoulli_log_prob(hard, logits))


def test_exp_concrete_is_torch_plus_last_coordinate():
    """torch's ExpRelaxedCategorical.log_prob = ours + y_K (torch omits the -y_K term)."""
    logits = _t(make_logits((3,), 5, 2.0))
    ours = ExpRelaxedOneHotCategorical(0.7, logits=logits)
    theirs = torch.distributions.relaxed_categorical.ExpRelaxedCategorical(
        torch.tensor(0.7, dtype=torch.float64), logits=logits
    )
    y = ours.rsample((4,))
    torch.testing.assert_close(theirs.log_prob(y), ours.log_prob(y) + y[..., -1], rtol=1e-12, atol=1e-12)


# --- own samples: finite under validation, and the oracle at the same pre-image ------------


@pytest.mark.parametrize("k", [2, 10, 100, 1000])
@pytest.mark.parametrize("temperature", [0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
def test_own_samples_finite_and_match_oracle_float32(temperature, k):
    torch.manual_seed(k)
    logits = make_logits((), k, 3.0, seed=k)
    d = RelaxedOneHotCategorical(temperature, logits=_t(logits, torch.float32), validate_args=True)
    x = d.rsample((10_000,))
    log_prob = d.log_prob(x)  # validation on: must not raise, exact zeros included
    assert torch.isfinite(log_prob).all()
    y = d.transforms[0].inv(x).double().numpy()  # the cached float32 pre-image, upcast
    logits32 = d.logits.double().numpy()
    expected = R.exp_concrete_log_prob(y, logits32, temperature) - y[..., :-1].sum(-1)
    # Float32 round-off of sums of K terms: relative to their magnitude (sum of |terms|),
    # the error reached is <= 2.5 eps over this grid; allow 8 eps.
    magnitude = np.abs(R.log_softmax(logits32) - temperature * y).sum(-1) + np.abs(y).sum(-1)
    assert np.all(np.abs(log_prob.double().numpy() - expected) <= 8 * F32_EPS * magnitude)
    # torch.distributions.RelaxedOneHotCategorical scores log(x) instead: at temperature 0.01,
    # K = 10 (these logits, 10,000 samples) every sample holds an exact zero and 100% of its
    # log_prob values are nan (measured with torch 2.13).


@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0, 5.0])
def test_binary_own_samples_finite_and_match_oracle_float32(temperature):
    torch.manual_seed(0)
    logits = _t(make_logits((5,), 1, 3.0)[..., 0], torch.float32)
    d = RelaxedBernoulli(temperature, logits=logits, validate_args=True)
    x = d.rsample((10_000,))  # clipped to [tiny, 1 - eps] by SigmoidTransform
    log_prob = d.log_prob(x)
    assert torch.isfinite(log_prob).all()
    z = d.transforms[0].inv(x).double().numpy()  # the exact logit pre-image, not logit(clipped x)
    expected = R.logit_binary_concrete_log_prob(z, logits.double().numpy(), temperature)
    expected = expected + np.logaddexp(0.0, z) + np.logaddexp(0.0, -z)  # - log |dx/dz|
    magnitude = np.abs(temperature * z) + np.abs(z) + np.abs(logits.double().numpy()) + 1.0
    # float32 round-off of a handful of terms: 8 eps of their magnitude (as above)
    assert np.all(np.abs(log_prob.double().numpy() - expected) <= 8 * F32_EPS * magnitude)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_own_samples_pass_validation_in_low_precision(dtype):
    torch.manual_seed(0)
    logits = _t(make_logits((3,), 1000, 3.0), dtype)  # K = 1000: float32 sums miss 1 by > 1e-6
    for temperature in (0.05, 1.0):
        for cls in ONE_HOT_CLASSES:
            d = cls(temperature, logits=logits, validate_args=True)
            assert torch.isfinite(d.log_prob(d.rsample((100,)))).all()


def test_prior_scores_a_guide_sample_at_its_pre_image():
    """Pyro replays the guide's sample tensor into the model: the prior (another instance)
    finds its pre-image too; a copy is a new point, scored at log(x): NaN at its exact zeros,
    so under validation it raises a ValueError that says so (tests/test_relaxed_latents.py)."""
    torch.manual_seed(0)
    guide = RelaxedOneHotCategorical(0.05, logits=torch.zeros(50), validate_args=True)
    prior = RelaxedOneHotCategorical(0.05, logits=torch.randn(50), validate_args=True)
    x = guide.rsample((100,))
    assert (x == 0).any(-1).float().mean() > 0.5  # most samples hold exact zeros at this temperature
    y = guide.transforms[0].inv(x)
    expected = concrete.exp_concrete_log_prob(y, prior.logits, prior.temperature) - y[..., :-1].sum(-1)
    torch.testing.assert_close(prior.log_prob(x), expected)
    with pytest.raises(ValueError, match="pre-image"):
        prior.log_prob(x.clone())
    unchecked = RelaxedOneHotCategorical(0.05, logits=prior.logits, validate_args=False)
    torch.testing.assert_close(
        unchecked.log_prob(x.clone()), concrete.concrete_log_prob(x, prior.logits, prior.temperature), equal_nan=True
    )


# --- densities integrate to one; K = 2 is the binary Concrete --------------------------------

QUAD_TOL = 1e-6  # QUADPACK targets an absolute error of 1.5e-8 (1-D) and 1e-7 (2-D, asked): headroom


@pytest.mark.parametrize("temperature", [0.7, 2.0])
def test_density_integrates_to_one_k2(temperature):
    logits = torch.tensor([0.4, -0.3], dtype=torch.float64)
    simplex = RelaxedOneHotCategorical(temperature, logits=logits)
    log_simplex = ExpRelaxedOneHotCategorical(temperature, logits=logits)

    def on_simplex(x1):
        return math.exp(simplex.log_prob(torch.tensor([x1, 1.0 - x1], dtype=torch.float64)))

    def on_log_simplex(y1):
        return math.exp(log_simplex.log_prob(torch.tensor([y1, math.log(-math.expm1(y1))], dtype=torch.float64)))

    assert scipy.integrate.quad(on_simplex, 0.0, 1.0)[0] == pytest.approx(1.0, abs=QUAD_TOL)
    assert scipy.integrate.quad(on_log_simplex, -math.inf, 0.0)[0] == pytest.approx(1.0, abs=QUAD_TOL)


@pytest.mark.slow
def test_density_integrates_to_one_k3():
    # tau = 3 > K - 1: the density vanishes at the vertices (it behaves as eps**(tau - K + 1)
    # there). Below that its integrable vertex singularities cost dblquad 1e5+ evaluations.
    logits = torch.tensor([0.4, -0.3, 1.0], dtype=torch.float64)
    simplex = RelaxedOneHotCategorical(3.0, logits=logits, validate_args=False)
    log_simplex = ExpRelaxedOneHotCategorical(3.0, logits=logits, validate_args=False)

    def on_simplex(x2, x1):
        return math.exp(simplex.log_prob(torch.tensor([x1, x2, 1.0 - x1 - x2], dtype=torch.float64)))

    def on_log_simplex(x2, x1):
        # the ExpConcrete density in the coordinates x = exp(y): dy1 dy2 = dx1 dx2 / (x1 x2)
        y = torch.log(torch.tensor([x1, x2, 1.0 - x1 - x2], dtype=torch.float64))
        return math.exp(log_simplex.log_prob(y)) / (x1 * x2)

    for density in (on_simplex, on_log_simplex):
        total = scipy.integrate.dblquad(density, 0.0, 1.0, 0.0, lambda x1: 1.0 - x1, epsabs=1e-7)[0]
        assert total == pytest.approx(1.0, abs=QUAD_TOL)


def _binary_concrete_cdf(x, delta, temperature):
    """P(X_1 <= x) for the K = 2 Concrete, X_1 = sigmoid((delta + L) / tau), L logistic."""
    return scipy.special.expit(temperature * scipy.special.logit(x) - delta)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 4.0])
def test_k2_is_binary_concrete(temperature):
    logits = torch.tensor([0.9, -0.4], dtype=torch.float64)
    x1 = torch.linspace(0.01, 0.99, 41, dtype=torch.float64)
    simplex = RelaxedOneHotCategorical(temperature, logits=logits).log_prob(torch.stack([x1, 1 - x1], -1))
    binary = RelaxedBernoulli(temperature, logits=logits[0] - logits[1]).log_prob(x1)
    # SigmoidTransform's log|det J| uses F.softplus, linear above 20 (error <= 2e-9 there);
    # on this grid |logit(x)| / tau stays below 16, so float64 round-off alone: 1e-12
    torch.testing.assert_close(simplex, binary, rtol=1e-12, atol=1e-12)
    # the closed-form CDF is the integral of exp(log_prob): it ties the GoF tests below to log_prob
    delta = float(logits[0] - logits[1])
    dist = RelaxedBernoulli(temperature, logits=logits[0] - logits[1])
    for x in (0.1, 0.5, 0.95):
        integral = scipy.integrate.quad(
            lambda t: math.exp(dist.log_prob(torch.tensor(t, dtype=torch.float64))), 0.0, x
        )[0]
        assert integral == pytest.approx(_binary_concrete_cdf(x, delta, temperature), abs=QUAD_TOL)


# --- statistics ---------------------------------------------------------------------------------

ALPHA = 1e-3  # false-failure rate of each statistical assertion below (p-value threshold)


@pytest.mark.statistical
@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_k2_samples_fit_density(temperature):
    """KS test of the first coordinate (simplex, log-simplex, binary) against the CDF of
    exp(log_prob); three assertions at ALPHA each: false-failure rate <= 3e-3."""
    torch.manual_seed(1)
    logits = torch.tensor([0.9, -0.4])
    delta = float(logits[0] - logits[1])
    cdf = lambda x: _binary_concrete_cdf(x, delta, temperature)  # noqa: E731
    x1 = RelaxedOneHotCategorical(temperature, logits=logits).sample((5000,))[:, 0].double().numpy()
    assert scipy.stats.kstest(x1, cdf).pvalue > ALPHA
    y1 = ExpRelaxedOneHotCategorical(temperature, logits=logits).sample((5000,))[:, 0].double().numpy()
    assert scipy.stats.kstest(np.exp(y1), cdf).pvalue > ALPHA
    b = RelaxedBernoulli(temperature, logits=logits[0] - logits[1]).sample((5000,)).double().numpy()
    assert scipy.stats.kstest(b, cdf).pvalue > ALPHA


@pytest.mark.statistical
@pytest.mark.parametrize("temperature", [0.1, 5.0])
def test_straight_through_argmax_frequencies(temperature):
    """Chi-square of one-hot counts against softmax(logits) (K = 10, 20,000 draws) and of
    Bernoulli counts against sigmoid(logits) (5 logits): false-failure rate 2 * ALPHA = 2e-3."""
    torch.manual_seed(2)
    logits = _t(make_logits((), 10, 1.5, seed=3), torch.float32)
    n = 20_000
    counts = RelaxedOneHotCategoricalStraightThrough(temperature, logits=logits).sample((n,)).sum(0).double().numpy()
    expected = n * torch.softmax(logits.double(), -1).numpy()
    assert scipy.stats.chisquare(counts, expected).pvalue > ALPHA
    logits = torch.tensor([-2.0, -0.5, 0.0, 0.7, 2.5])
    ones = RelaxedBernoulliStraightThrough(temperature, logits=logits).sample((n,)).sum(0).double().numpy()
    p = torch.sigmoid(logits.double()).numpy()
    statistic = np.sum((ones - n * p) ** 2 / (n * p * (1 - p)))
    assert scipy.stats.chi2.sf(statistic, df=len(p)) > ALPHA


# --- shapes ---------------------------------------------------------------------------------------


def _build(cls, case, dtype=torch.float64, **kwargs):
    logits = case.logits if cls in ONE_HOT_CLASSES else case.logits[..., 0]
    return cls(case.temperature, logits=_t(logits, dtype), **kwargs)


@pytest.mark.parametrize("cls", ONE_HOT_CLASSES + BINARY_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_shapes(cls, case):
    d = _build(cls, case)
    event_shape = (case.k,) if cls in ONE_HOT_CLASSES else ()
    assert d.batch_shape == case.batch_shape and d.event_shape == event_shape
    x = d.rsample((4,))
    assert x.shape == (4,) + case.batch_shape + event_shape
    assert d.log_prob(x).shape == (4,) + case.batch_shape
    big = d.expand((5,) + case.batch_shape)
    assert type(big) is cls and big.batch_shape == (5,) + case.batch_shape
    x = big.rsample((2,))
    assert x.shape == (2, 5) + case.batch_shape + event_shape
    torch.testing.assert_close(big.log_prob(x), d.log_prob(x), rtol=1e-12, atol=0.0)
    if cls in ONE_HOT_CLASSES:
        assert cls.infer_shapes(temperature=(), logits=case.logits.shape) == (case.batch_shape, event_shape)


@pytest.mark.parametrize("cls", ONE_HOT_CLASSES, ids=lambda c: c.__name__)
def test_temperature_broadcasts_over_batch_only(cls):
    logits = torch.zeros(3, 4)
    assert cls(torch.tensor([0.1, 1.0, 5.0]), logits=logits).rsample((2,)).shape == (2, 3, 4)
    assert cls(torch.tensor([[0.1], [1.0]]), logits=logits).batch_shape == (2, 3)
    assert cls(torch.ones(3), logits=torch.zeros(4)).batch_shape == (3,)  # a batch, not per category
    with pytest.raises(
        ValueError, match=r"temperature must broadcast to the batch shape \(3,\).*temperature.shape=\(4,\)"
    ):
        cls(torch.ones(4), logits=logits)


@pytest.mark.parametrize("cls", BINARY_CLASSES, ids=lambda c: c.__name__)
def test_binary_temperature_broadcasts(cls):
    assert cls(torch.ones(2, 1), logits=torch.zeros(3)).batch_shape == (2, 3)
    assert cls.infer_shapes(temperature=(2, 1), logits=(3,)) == ((2, 3), ())
    with pytest.raises(ValueError, match=r"temperature.shape must be broadcastable with logits.shape=\(3,\)"):
        cls(torch.ones(4), logits=torch.zeros(3))


def test_straight_through_mean_and_mode():
    logits = torch.tensor([[0.3, 2.0, -1.0], [1.0, 0.0, 0.5]])
    d = RelaxedOneHotCategoricalStraightThrough(0.5, logits=logits)
    torch.testing.assert_close(d.mean, torch.softmax(logits, -1))
    assert torch.equal(d.mode, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    b = RelaxedBernoulliStraightThrough(0.5, probs=torch.tensor([0.2, 0.9]))
    torch.testing.assert_close(b.mean, torch.tensor([0.2, 0.9]))
    assert torch.equal(b.mode, torch.tensor([0.0, 1.0]))


# --- gradients ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ONE_HOT_CLASSES + BINARY_CLASSES, ids=lambda c: c.__name__)
def test_gradients_reach_logits_and_temperature(cls):
    torch.manual_seed(0)
    shape = (3, 4) if cls in ONE_HOT_CLASSES else (3,)
    logits = torch.randn(shape, requires_grad=True)
    temperature = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    x = cls(temperature, logits=logits).rsample((5,))
    (torch.randn(x.shape) * x).sum().backward()
    for grad in (logits.grad, temperature.grad):
        assert torch.isfinite(grad).all() and (grad != 0).any()


def _seeded_rsample(cls, shape=(3,)):
    def sample(logits, temperature):
        torch.manual_seed(0)  # the same noise on every call: a deterministic function
        return cls(temperature, logits=logits).rsample(shape)

    return sample


@pytest.mark.parametrize(
    "cls", [ExpRelaxedOneHotCategorical, RelaxedOneHotCategorical, RelaxedBernoulli], ids=lambda c: c.__name__
)
def test_gradcheck_float64(cls):
    logits = torch.tensor([[0.3, -1.2, 0.8], [1.5, 0.1, -0.4]], dtype=torch.float64, requires_grad=True)
    if cls is RelaxedBernoulli:
        logits = logits[:, 0].detach().requires_grad_()
    temperature = torch.tensor([0.6, 1.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_seeded_rsample(cls), (logits, temperature))
    value = _seeded_rsample(cls)(logits, temperature).detach().clone()  # a foreign point: no cache
    assert torch.autograd.gradcheck(lambda lg, t: cls(t, logits=lg).log_prob(value), (logits, temperature))


@pytest.mark.parametrize("cls", ST_CLASSES, ids=lambda c: c.__name__)
def test_gradcheck_straight_through_log_prob(cls):
    logits = torch.tensor([[0.3, -1.2, 0.8], [1.5, 0.1, -0.4]], dtype=torch.float64, requires_grad=True)
    value = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    if cls is RelaxedBernoulliStraightThrough:
        logits, value = logits[:, 0].detach().requires_grad_(), value[:, 0]
    assert torch.autograd.gradcheck(lambda lg: cls(0.5, logits=lg).log_prob(value), (logits,))


@pytest.mark.parametrize(
    ("hard_cls", "soft_cls"),
    [
        (RelaxedOneHotCategoricalStraightThrough, RelaxedOneHotCategorical),
        (RelaxedBernoulliStraightThrough, RelaxedBernoulli),
    ],
    ids=["categorical", "bernoulli"],
)
def test_straight_through_gradient_is_the_relaxed_one(hard_cls, soft_cls):
    """The ST surrogate gradient equals the (gradchecked) relaxed sample's, on the same noise."""
    logits = torch.tensor([[0.3, -1.2, 0.8], [1.5, 0.1, -0.4]], dtype=torch.float64, requires_grad=True)
    if hard_cls is RelaxedBernoulliStraightThrough:
        logits = logits[:, 0].detach().requires_grad_()
    temperature = torch.tensor([0.6, 1.7], dtype=torch.float64, requires_grad=True)
    weights = torch.randn((3,) + logits.shape, dtype=torch.float64)
    grads = []
    for cls in (hard_cls, soft_cls):
        x = _seeded_rsample(cls)(logits, temperature)
        grads.append(torch.autograd.grad((weights * x).sum(), (logits, temperature)))
    for hard_grad, soft_grad in zip(*grads):
        torch.testing.assert_close(hard_grad, soft_grad, rtol=1e-12, atol=1e-12)


# --- exact one-hots and log_prob without tensor attributes -----------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [0.01, 1.0, 10.0])
def test_hard_samples_are_exactly_one_hot(dtype, temperature):
    torch.manual_seed(0)
    logits = _t(make_logits((2,), 1000, 3.0), dtype)
    h = RelaxedOneHotCategoricalStraightThrough(temperature, logits=logits, validate_args=True).rsample((50,))
    assert h.dtype == dtype and ((h == 0) | (h == 1)).all() and (h.sum(-1) == 1).all()
    assert torch.isfinite(OneHotCategorical(logits=logits, validate_args=True).log_prob(h)).all()
    b = RelaxedBernoulliStraightThrough(temperature, logits=logits[0], validate_args=True).rsample((50,))
    assert b.dtype == dtype and ((b == 0) | (b == 1)).all()
    assert torch.isfinite(pyro_dist.Bernoulli(logits=logits[0], validate_args=True).log_prob(b)).all()


@pytest.mark.parametrize("cls", ST_CLASSES, ids=lambda c: c.__name__)
def test_straight_through_log_prob_depends_on_value_only(cls):
    torch.manual_seed(0)
    logits = torch.randn(3, 4) if cls is RelaxedOneHotCategoricalStraightThrough else torch.randn(3)
    d = cls(0.3, logits=logits.requires_grad_(), validate_args=True)
    h = d.rsample((5,))
    log_prob = d.log_prob(h)
    assert torch.equal(log_prob, d.log_prob(h.clone()))
    assert torch.equal(log_prob, d.log_prob(h.detach()))
    assert torch.equal(log_prob, cls(0.3, logits=logits).log_prob(h))  # another instance


@pytest.mark.parametrize("cls", ST_CLASSES, ids=lambda c: c.__name__)
def test_straight_through_log_prob_under_compile(cls):
    torch.manual_seed(0)
    logits = torch.randn(3, 4) if cls is RelaxedOneHotCategoricalStraightThrough else torch.randn(3)
    d = cls(0.3, logits=logits, validate_args=False)  # validation reads values: a graph break
    h = d.rsample((5,))
    # aot_eager: traces through dynamo and AOTAutograd in ~2 s; inductor would add a C++
    # build (tens of seconds on 2 cores) that tests nothing more here
    try:
        compiled = torch.compile(d.log_prob, backend="aot_eager", fullgraph=True)
        result = compiled(h)
    except RuntimeError as error:  # e.g. a Python version dynamo does not support
        pytest.skip(f"torch.compile unavailable here: {error}")
    torch.testing.assert_close(result, d.log_prob(h), rtol=0.0, atol=0.0)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ONE_HOT_CLASSES + BINARY_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_bad_python_temperature(cls, bad):
    logits = torch.zeros(4) if cls in ONE_HOT_CLASSES else torch.zeros(())
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got temperature="):
        cls(bad, logits=logits, validate_args=True)
    # without validation a Python number is not checked either (torch's rule for every
    # parameter), and is kept as given
    d = cls(bad, logits=logits, validate_args=False)
    expected = torch.full_like(logits[..., 0] if cls in ONE_HOT_CLASSES else logits, bad)
    torch.testing.assert_close(d.temperature, expected, rtol=0.0, atol=0.0, equal_nan=True)


@pytest.mark.parametrize("cls", ONE_HOT_CLASSES + BINARY_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_bad_tensor_temperature(cls, bad):
    logits = torch.zeros(2, 4) if cls in ONE_HOT_CLASSES else torch.zeros(2)
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got temperature="):
        cls(torch.tensor([1.0, bad]), logits=logits, validate_args=True)


@pytest.mark.parametrize("cls", ONE_HOT_CLASSES + BINARY_CLASSES, ids=lambda c: c.__name__)
def test_probs_or_logits(cls):
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got both"):
        cls(1.0, probs=torch.full((2,), 0.5), logits=torch.zeros(2))
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got neither"):
        cls(1.0)


@pytest.mark.parametrize("cls", ONE_HOT_CLASSES, ids=lambda c: c.__name__)
def test_event_dimension_errors(cls):
    with pytest.raises(ValueError, match=r"logits.shape must be batch_shape \+ \(K,\)"):
        cls(1.0, logits=torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"logits must have at least 2 categories.*logits.shape\[-1\]=1"):
        cls(1.0, logits=torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"probs must have at least 2 categories"):
        cls(1.0, probs=torch.ones(3, 1))


@pytest.mark.parametrize(
    ("cls", "logits", "bad_shape", "outside"),
    [
        (ExpRelaxedOneHotCategorical, torch.zeros(3, 4), torch.full((3, 5), -math.log(5)), torch.zeros(3, 4)),
        (RelaxedOneHotCategorical, torch.zeros(3, 4), torch.full((3, 5), 0.2), torch.tensor([0.5, 0.6, -0.1, 0.0])),
        (RelaxedOneHotCategoricalStraightThrough, torch.zeros(3, 4), torch.eye(5)[:3], torch.full((4,), 0.25)),
        (RelaxedBernoulli, torch.zeros(3), torch.full((4,), 0.5), torch.tensor(1.5)),
        (RelaxedBernoulliStraightThrough, torch.zeros(3), torch.zeros(4), torch.tensor(0.5)),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_bad_value_under_validation(cls, logits, bad_shape, outside):
    d = cls(0.5, logits=logits, validate_args=True)
    with pytest.raises(ValueError, match="(?i)value"):
        d.log_prob(bad_shape)
    with pytest.raises(ValueError, match="(?i)value"):
        d.log_prob(outside)


# --- Pyro SVI ----------------------------------------------------------------------------------------


def _svi_losses(prior, guide_cls, n_steps, k, temperature):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)

    def model():
        pyro.sample("z", prior)

    def guide():
        logits = pyro.param("logits", torch.zeros(k))
        pyro.sample("z", guide_cls(temperature, logits=logits))

    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    return [svi.step() for _ in range(n_steps)]


def test_svi_relaxed_prior_and_guide_low_temperature():
    """K = 50, temperature 0.05, float32: nearly every sample holds exact zeros, yet no NaN.
    Pyro's own RelaxedOneHotCategorical gives a NaN loss at the first step in this set-up."""
    torch.manual_seed(0)
    prior = RelaxedOneHotCategorical(0.05, logits=torch.randn(50))
    losses = _svi_losses(prior, RelaxedOneHotCategorical, n_steps=200, k=50, temperature=0.05)
    assert all(math.isfinite(loss) for loss in losses)


@pytest.mark.parametrize(
    "prior_cls", [RelaxedOneHotCategoricalStraightThrough, OneHotCategorical], ids=lambda c: c.__name__
)
def test_svi_straight_through_guide(prior_cls):
    logits = torch.randn(5)
    prior = prior_cls(0.5, logits=logits) if prior_cls is not OneHotCategorical else prior_cls(logits=logits)
    losses = _svi_losses(prior, RelaxedOneHotCategoricalStraightThrough, n_steps=20, k=5, temperature=0.5)
    assert all(math.isfinite(loss) for loss in losses)
    assert not torch.equal(pyro.param("logits"), torch.zeros(5))


# --- docs -----------------------------------------------------------------------------------------


def test_docstring_examples_run():
    assert doctest.testmod(D, raise_on_error=False).failed == 0
