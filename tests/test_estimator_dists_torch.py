"""The Pyro estimator classes (``pyro_ext.distributions``: ``StraightThrough``, ``ReinMax``,
``REDGE``, ``REDGECov``, ``REINDGE``): shapes, exact one-hots, ``log_prob`` against the
oracle, gradients against the functional API under the same seed, tensor ``t_1``, errors,
seeded statistics and SVI.

Mirrors ``tests/test_estimator_dists_jax.py`` test for test (its pytree/``jit``/``vmap``
tests have no torch counterpart). Statistical tests are seeded and marked ``statistical``;
each states its false-failure rate.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pyro
import pytest
import torch
from pyro.distributions import Normal
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from scipy import special, stats
from torch.distributions import constraints

from cases import BATCH_SHAPES, make_logits
from pyro_ext import functional as F
from pyro_ext.distributions import REDGE, REINDGE, REDGECov, ReinMax, StraightThrough
from relaxed_dists import reference

# These tests use small t_1 / n_steps on purpose, to exercise shapes, gradients and mappings;
# the REDGE family's SampleLawWarning (issue 15, D1) is tested in test_sample_law.py.
pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

CLASSES = [StraightThrough, ReinMax, REDGE, REDGECov, REINDGE]
REDGE_FAMILY = [REDGE, REDGECov, REINDGE]
# Hyperparameters each class is built with below, and the functional sampler that must
# draw the same noise after the same seed.
PARAMS = {StraightThrough: {}, ReinMax: {"temperature": 0.7}, **{c: {"n_steps": 3, "t_1": 0.5} for c in REDGE_FAMILY}}
SAMPLER = {
    StraightThrough: lambda lg, t_1: F.straight_through(lg),
    ReinMax: lambda lg, t_1: F.reinmax(lg, 0.7),
    REDGE: lambda lg, t_1, **kw: F.redge(lg, 3, t_1, **kw),
    REDGECov: lambda lg, t_1: F.redge_cov(lg, 3, t_1),
    REINDGE: lambda lg, t_1: F.reindge(lg, 3, t_1),
}
# A correct sampler fails a seeded test at level ALPHA for a fraction ALPHA of seeds: that is
# each statistical test's false-failure rate (the seed is fixed, so the outcome is too).
ALPHA = 1e-3
IDS = lambda c: c.__name__  # noqa: E731


def _make(cls, **kwargs):
    return cls(**{**PARAMS[cls], **kwargs})


def _t(array, dtype=torch.float64):
    return torch.as_tensor(np.asarray(array), dtype=dtype)


def _is_one_hot(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all() and (x.sum(-1) == 1).all())


# --- shapes, expand, infer_shapes ---------------------------------------------------------


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_shapes_and_expand(cls, batch_shape):
    torch.manual_seed(0)
    logits = _t(make_logits(batch_shape, 4, 3.0))
    d = _make(cls, logits=logits)
    assert d.batch_shape == batch_shape and d.event_shape == (4,)
    value = d.rsample((2,))
    assert value.shape == (2,) + batch_shape + (4,) and d.log_prob(value).shape == (2,) + batch_shape
    expanded = d.expand((5,) + batch_shape)
    assert type(expanded) is cls and expanded.batch_shape == (5,) + batch_shape
    assert expanded.rsample((2,)).shape == (2, 5) + batch_shape + (4,)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_infer_shapes(cls):
    assert cls.infer_shapes(logits=(3, 4)) == ((3,), (4,))


def test_hyperparameters_broadcast_to_batch_shape():
    d = REDGE(logits=torch.zeros(3, 4), t_1=torch.tensor([[0.2], [0.9]]), n_steps=4, hard=False)
    assert d.batch_shape == (2, 3) and d.t_1.shape == (2, 3) and d.support is constraints.simplex
    expanded = d.expand((5, 2, 3))
    assert expanded.t_1.shape == (5, 2, 3) and (expanded.n_steps, expanded.hard) == (4, False)
    assert ReinMax(torch.ones(2, 1), logits=torch.zeros(3, 4)).batch_shape == (2, 3)
    # a hyperparameter of shape (K,) is a batch of K values, never one per category
    with pytest.raises(ValueError, match=r"t_1 must broadcast to the batch shape \(3,\).*t_1.shape=\(4,\)"):
        REDGE(logits=torch.zeros(3, 4), t_1=torch.full((4,), 0.5))


# --- exact one-hots, log_prob, moments -------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_hard_samples_exactly_one_hot(dtype):
    torch.manual_seed(1)
    logits = _t(make_logits((3,), 50, 10.0), dtype)
    for cls in CLASSES:
        d = _make(cls, logits=logits, validate_args=True)  # validation checks log_prob's value
        value = d.rsample((100,))
        assert value.dtype == dtype and value.shape == (100, 3, 50) and _is_one_hot(value), cls.__name__
        assert torch.isfinite(d.log_prob(value)).all(), cls.__name__


def test_log_prob_is_the_categorical_oracle():
    torch.manual_seed(2)
    logits = make_logits((3,), 6, 3.0, seed=2)
    probs = special.softmax(logits, -1)
    for cls in CLASSES:
        value = _make(cls, logits=_t(logits)).rsample((40,))
        expected = reference.categorical_log_prob(value.numpy(), logits)
        log_prob = _make(cls, logits=_t(logits), validate_args=True).log_prob(value)
        np.testing.assert_allclose(log_prob, expected, rtol=1e-13)  # float64 log_softmax in torch vs NumPy: round-off
        by_probs = _make(cls, probs=_t(probs), validate_args=True).log_prob(value)
        np.testing.assert_allclose(by_probs, expected, rtol=1e-13)  # log(softmax) vs log_softmax: round-off


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_enumeration_and_moments(cls):
    probs = np.array([[0.2, 0.5, 0.3], [0.1, 0.15, 0.75]])
    d = _make(cls, probs=_t(probs), validate_args=True)
    assert d.has_enumerate_support and d.enumerate_support().shape == (3, 2, 3)
    assert d.enumerate_support(expand=False).shape == (3, 1, 3)
    np.testing.assert_allclose(d.log_prob(d.enumerate_support()).exp(), probs.T, rtol=1e-12)  # log/exp round-off
    np.testing.assert_allclose(d.mean, probs, rtol=1e-15)  # probs stored as given
    np.testing.assert_allclose(d.variance, probs * (1 - probs), rtol=1e-15)  # one product: round-off
    np.testing.assert_array_equal(d.mode, np.eye(3)[[1, 2]])
    np.testing.assert_allclose(d.entropy(), -np.sum(probs * np.log(probs), -1), rtol=1e-13)  # round-off


def test_supports_and_reparametrization():
    for cls in CLASSES:
        d = _make(cls, logits=torch.zeros(3))
        assert d.has_rsample and d.support is constraints.one_hot
    assert REDGE(logits=torch.zeros(3), hard=False).support is constraints.simplex
    t_1_constraint = REDGE.arg_constraints["t_1"]
    checked = t_1_constraint.check(torch.tensor([0.0, 1e-9, 1.0, 1.5, math.nan]))
    assert checked.tolist() == [False, True, True, False, False]
    assert repr(t_1_constraint) == "OpenClosedInterval(lower_bound=0.0, upper_bound=1.0)"


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, hard", [(c, True) for c in CLASSES] + [(REDGE, False)], ids=[c.__name__ for c in CLASSES] + ["REDGE-soft"]
)
def test_sample_and_gradient_are_the_functional_apis_under_the_same_seed(cls, hard):
    # The REDGE family runs with a tensor t_1, one per batch element, and is differentiated
    # in it too (the functional samplers take a tensor t_1 as well).
    logits = make_logits((3,), 5, 3.0, seed=3)
    weights = _t(np.random.default_rng(3).normal(size=(2, 3, 5)))
    t_1 = [0.3, 0.6, 1.0] if cls in REDGE_FAMILY else None
    soft = {} if hard else {"hard": False}

    def by_class(logits, t_1):
        hyper = {} if t_1 is None else {"t_1": t_1}
        return (weights * _make(cls, logits=logits, **hyper, **soft).rsample((2,))).sum()

    def by_sampler(logits, t_1):
        # the functional sampler on logits expanded to sample_shape + batch_shape + (K,)
        # draws the class's noise after the same seed: the same sample and the same gradient
        return (weights * SAMPLER[cls](logits.expand(2, 3, 5), t_1, **soft)).sum()

    results = []
    for f in (by_class, by_sampler):
        torch.manual_seed(3)
        inputs = [_t(logits).requires_grad_()] + ([] if t_1 is None else [_t(t_1).requires_grad_()])
        value = f(*inputs, *([None] if t_1 is None else []))
        results.append((value.detach(), torch.autograd.grad(value, inputs)))
    (value, grads), (expected_value, expected_grads) = results
    torch.testing.assert_close(value, expected_value, rtol=1e-14, atol=0.0)  # float64 sums in another order
    for grad, expected_grad in zip(grads, expected_grads):
        # the same float64 ops on expanded logits: round-off only
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-14)
        assert torch.isfinite(grad).all() and (grad != 0).any()
    if t_1 is not None:
        assert grads[1].shape == (3,)  # d/dt_1 per batch element


def test_log_prob_gradient():
    torch.manual_seed(7)
    logits = torch.tensor([[0.3, -0.2, 0.5], [1.0, 0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    for cls in CLASSES:
        value = _make(cls, logits=logits).rsample().detach()
        (grad,) = torch.autograd.grad(_make(cls, logits=logits).log_prob(value).sum(), logits)
        # d/dlogits sum(value * log_softmax(logits)) = value - softmax(logits): round-off
        torch.testing.assert_close(grad, value - torch.softmax(logits, -1), rtol=1e-12, atol=1e-15)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", REDGE_FAMILY, ids=IDS)
def test_redge_parameter_errors(cls):
    logits = torch.zeros(2, 3)
    for n_steps, error in [(1, ValueError), (0, ValueError), (3.0, TypeError), (True, TypeError)]:
        with pytest.raises(error, match=r"n_steps must be an integer >= 2, got n_steps="):
            cls(logits=logits, n_steps=n_steps)
    for t_1 in (0.0, -0.5, 1.5, math.nan):  # a Python number is checked under validation only
        with pytest.raises(ValueError, match=r"t_1 must be in \(0, 1\], got t_1="):
            cls(logits=logits, t_1=t_1, validate_args=True)
        d = cls(logits=logits, t_1=t_1, validate_args=False)  # torch's rule: kept as given
        assert d._t_1() == t_1 or (math.isnan(t_1) and math.isnan(d._t_1()))
    for t_1 in (0.0, 1.5, math.nan):
        bad = torch.tensor([0.5, t_1])
        cls(logits=logits, t_1=bad, validate_args=False)  # tensors are checked only under validation
        with pytest.raises(ValueError, match=r"parameter t_1 .* OpenClosedInterval"):  # torch's message
            cls(logits=logits, t_1=bad, validate_args=True)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_parameter_errors(cls):
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got both"):
        _make(cls, probs=torch.full((3,), 1 / 3), logits=torch.zeros(3))
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got neither"):
        _make(cls)
    with pytest.raises(ValueError, match=r"parameter logits .* invalid values"):  # torch's message
        _make(cls, logits=torch.tensor([0.0, math.nan, 1.0]), validate_args=True)
    with pytest.raises(ValueError, match=r"parameter probs .* invalid values"):
        _make(cls, probs=torch.tensor([0.7, 0.7, -0.4]), validate_args=True)
    with pytest.raises(ValueError, match=r"logits must have at least 2 categories"):
        _make(cls, logits=torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"value argument .* within the support"):
        _make(cls, logits=torch.zeros(3), validate_args=True).log_prob(torch.full((3,), 1 / 3))


def test_reinmax_temperature_errors():
    for temperature in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got temperature="):
            ReinMax(temperature, logits=torch.zeros(3))
    with pytest.raises(ValueError, match=r"parameter temperature .* invalid values"):
        ReinMax(torch.tensor([1.0, 0.0]), logits=torch.zeros(2, 3), validate_args=True)


def test_soft_redge_log_prob_raises():
    d = REDGE(logits=torch.zeros(3), hard=False)
    with pytest.raises(NotImplementedError, match=r"REDGE\(hard=False\) .* intractable"):
        d.log_prob(torch.full((3,), 1 / 3))


# --- statistics -------------------------------------------------------------------------------


@pytest.mark.statistical
@pytest.mark.parametrize("cls", [StraightThrough, ReinMax, REDGE], ids=IDS)
def test_hard_samples_follow_softmax(cls):
    # Exact categorical draws: ST and ReinMax always, REDGE at t_1 = 1 (the last denoiser
    # sees alpha = 0). Chi-square on 20000 seeded draws at level ALPHA: false-failure rate 1e-3 each.
    torch.manual_seed(5)
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5, -2.0])
    d = _make(cls, logits=logits, **({"t_1": 1.0} if cls is REDGE else {}))
    counts = d.rsample((20_000,)).sum(0).numpy()
    assert stats.chisquare(counts, 20_000 * special.softmax(logits.numpy())).pvalue > ALPHA


# --- SVI ---------------------------------------------------------------------------------------


def test_svi_straight_through_prior_redge_guide():
    # filterwarnings=error: any warning from Pyro fails this test.
    pyro.clear_param_store()
    pyro.set_rng_seed(8)
    means = torch.arange(5.0) * 2.0
    data = torch.full((10,), 6.0)  # generated by category 3

    def model(data):
        z = pyro.sample("z", StraightThrough(probs=torch.full((5,), 0.2)))  # a OneHotCategorical prior
        with pyro.plate("data", len(data)):
            pyro.sample("obs", Normal(z @ means, 1.0), obs=data)

    def guide(data):
        pyro.sample("z", REDGE(logits=pyro.param("logits", torch.zeros(5))))

    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO(num_particles=4))
    losses = np.array([svi.step(data) for _ in range(20)])
    assert np.all(np.isfinite(losses))
    # seeded, so deterministic; the loss is noisy step to step, 5-step averages are not
    assert losses[-5:].mean() < losses[:5].mean()


# --- docs ------------------------------------------------------------------------------------------


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for cls in CLASSES:
        for test in finder.find(cls, cls.__name__, globs={"torch": torch, cls.__name__: cls}):
            runner.run(test, out=lambda _: None)
    assert runner.tries >= len(CLASSES) and runner.failures == 0
