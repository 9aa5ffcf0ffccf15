"""The NumPyro estimator classes (``numpyro_ext.distributions``: ``StraightThrough``,
``ReinMax``, ``REDGE``, ``REDGECov``, ``REINDGE``): shapes, exact one-hots, ``log_prob``
against the oracle, gradients against the functional API on the same key, array ``t_1``,
errors, seeded statistics, pytrees under ``jit``/``vmap``/``grad``, and SVI.

Mirrors ``tests/test_estimator_dists_torch.py`` test for test. Statistical tests are seeded
and marked ``statistical``; each states its false-failure rate.
"""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
import pytest
from numpyro import handlers
from numpyro.distributions import Normal, constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.reparam import TransformReparam
from scipy import special, stats

from cases import BATCH_SHAPES, make_logits
from numpyro_ext import functional as F
from numpyro_ext.distributions import (
    REDGE,
    REINDGE,
    ExpRelaxedOneHotCategorical,
    REDGECov,
    ReinMax,
    RelaxedOneHotCategorical,
    StraightThrough,
    one_hot,
    reparametrized_one_hot,
)
from relaxed_dists import reference

# These tests use small t_1 / n_steps on purpose, to exercise shapes, gradients and mappings;
# the REDGE family's SampleLawWarning (issue 15, D1) is tested in test_sample_law.py.
pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

CLASSES = [StraightThrough, ReinMax, REDGE, REDGECov, REINDGE]
REDGE_FAMILY = [REDGE, REDGECov, REINDGE]
# Hyperparameters each class is built with below, and the functional sampler that must
# draw the same noise from the same key.
PARAMS = {StraightThrough: {}, ReinMax: {"temperature": 0.7}, **{c: {"n_steps": 3, "t_1": 0.5} for c in REDGE_FAMILY}}
SAMPLER = {
    StraightThrough: lambda key, lg, t_1: F.straight_through(key, lg),
    ReinMax: lambda key, lg, t_1: F.reinmax(key, lg, 0.7),
    REDGE: lambda key, lg, t_1, **kw: F.redge(key, lg, 3, t_1, **kw),
    REDGECov: lambda key, lg, t_1: F.redge_cov(key, lg, 3, t_1),
    REINDGE: lambda key, lg, t_1: F.reindge(key, lg, 3, t_1),
}
# A correct sampler fails a seeded test at level ALPHA for a fraction ALPHA of seeds: that is
# each statistical test's false-failure rate (the seed is fixed, so the outcome is too).
ALPHA = 1e-3
IDS = lambda c: c.__name__  # noqa: E731


def _key(seed: int) -> jax.Array:
    # "rbg" keys compile faster than threefry on CPU (as tests/test_concrete_jax.py)
    return jax.random.key(seed, impl="rbg")


def _make(cls, **kwargs):
    return cls(**{**PARAMS[cls], **kwargs})


def _finite(x) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x, np.float64))))


def _sample_and_score(d, key, sample_shape=()):
    value = d.sample(key, sample_shape)
    return value, d.log_prob(value)


# --- shapes, expand, infer_shapes ---------------------------------------------------------


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_shapes_and_expand(cls, batch_shape):
    logits = jnp.asarray(make_logits(batch_shape, 4, 3.0))
    d = _make(cls, logits=logits)
    assert d.batch_shape == batch_shape and d.event_shape == (4,)
    # abstract evaluation: shapes without compiling (the values are tested below)
    value, log_prob = jax.eval_shape(lambda key: _sample_and_score(d, key, (2,)), _key(0))
    assert value.shape == (2,) + batch_shape + (4,) and log_prob.shape == (2,) + batch_shape
    assert cls.infer_shapes(logits=logits.shape) == (batch_shape, (4,))
    expanded = d.expand((5,) + batch_shape)
    assert type(expanded) is cls and expanded.batch_shape == (5,) + batch_shape
    assert jax.tree.structure(expanded) == jax.tree.structure(_make(cls, logits=jnp.zeros((5,) + batch_shape + (4,))))
    assert jax.eval_shape(lambda key: expanded.sample(key, (2,)), _key(0)).shape == (2, 5) + batch_shape + (4,)


def test_hyperparameters_broadcast_to_batch_shape():
    d = REDGE(logits=jnp.zeros((3, 4)), t_1=jnp.array([[0.2], [0.9]]), n_steps=4, hard=False)
    assert d.batch_shape == (2, 3) and d.t_1.shape == (2, 3) and d.support is constraints.simplex
    expanded = d.expand((5, 2, 3))
    assert expanded.t_1.shape == (5, 2, 3) and (expanded.n_steps, expanded.hard) == (4, False)
    assert REDGE.infer_shapes(logits=(3, 4), t_1=(2, 1)) == ((2, 3), (4,))
    assert ReinMax.infer_shapes((2, 1), logits=(3, 4)) == ((2, 3), (4,))
    # a hyperparameter of shape (K,) is a batch of K values, never one per category
    with pytest.raises(ValueError, match=r"t_1 must broadcast to the batch shape \(3,\).*t_1.shape=\(4,\)"):
        REDGE(logits=jnp.zeros((3, 4)), t_1=jnp.full(4, 0.5))


# --- exact one-hots, log_prob, moments -------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_hard_samples_exactly_one_hot(dtype):
    logits = jnp.asarray(make_logits((3,), 50, 10.0), dtype)
    dists = [_make(cls, logits=logits, validate_args=True) for cls in CLASSES]
    # one program for the five classes; under jit, validation turns an out-of-support value
    # into log_prob = -inf, so a finite log_prob also says the value passed validation
    samples = jax.jit(lambda ds, key: [_sample_and_score(d, key, (100,)) for d in ds])(dists, _key(1))
    for cls, (value, log_prob) in zip(CLASSES, samples):
        assert value.dtype == dtype and value.shape == (100, 3, 50), cls.__name__
        assert np.all(one_hot(np.asarray(value, np.float32))) and _finite(log_prob), cls.__name__


def test_log_prob_is_the_categorical_oracle():
    logits = make_logits((3,), 6, 3.0, seed=2)
    dists = [_make(cls, logits=jnp.asarray(logits)) for cls in CLASSES]
    # one program for the five classes (each class's own program would compile separately)
    samples = jax.jit(lambda ds, key: [_sample_and_score(d, key, (40,)) for d in ds])(dists, _key(2))
    probs = special.softmax(logits, -1)
    for cls, (value, log_prob) in zip(CLASSES, samples):
        expected = reference.categorical_log_prob(np.asarray(value), logits)
        np.testing.assert_allclose(log_prob, expected, rtol=1e-13)  # float64 log_softmax in JAX vs NumPy: round-off
        by_probs = _make(cls, probs=jnp.asarray(probs), validate_args=True).log_prob(value)  # eager: validated
        np.testing.assert_allclose(by_probs, expected, rtol=1e-13)  # log(softmax) vs log_softmax: round-off


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_enumeration_and_moments(cls):
    probs = np.array([[0.2, 0.5, 0.3], [0.1, 0.15, 0.75]])
    d = _make(cls, probs=jnp.asarray(probs), validate_args=True)
    assert d.has_enumerate_support and d.enumerate_support().shape == (3, 2, 3)
    assert d.enumerate_support(expand=False).shape == (3, 1, 3)
    np.testing.assert_allclose(np.exp(d.log_prob(d.enumerate_support())), probs.T, rtol=1e-12)  # log/exp round-off
    np.testing.assert_allclose(d.mean, probs, rtol=1e-15)  # softmax(log p) = p to round-off
    np.testing.assert_allclose(d.variance, probs * (1 - probs), rtol=1e-14)  # as above, one product more
    np.testing.assert_array_equal(d.mode, np.eye(3)[[1, 2]])
    np.testing.assert_allclose(d.entropy(), -np.sum(probs * np.log(probs), -1), rtol=1e-13)  # round-off


def test_supports_and_reparametrization():
    for cls in CLASSES:
        d = _make(cls, logits=jnp.zeros(3))
        assert d.has_rsample and set(d.reparametrized_params) == set(cls.arg_constraints)
        assert d.support is reparametrized_one_hot and not d.support.is_discrete
    assert REDGE(logits=jnp.zeros(3), hard=False).support is constraints.simplex
    t_1_constraint = REDGE.arg_constraints["t_1"]
    assert np.array_equal(t_1_constraint(np.array([0.0, 1e-9, 1.0, 1.5, np.nan])), [False, True, True, False, False])
    assert repr(t_1_constraint) == "OpenClosedInterval(lower_bound=0.0, upper_bound=1.0)"
    assert t_1_constraint != constraints.unit_interval
    assert float(biject_to(t_1_constraint)(0.0)) == 0.5  # a learnable t_1: a sigmoid onto (0, 1)


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, hard", [(c, True) for c in CLASSES] + [(REDGE, False)], ids=[c.__name__ for c in CLASSES] + ["REDGE-soft"]
)
def test_sample_and_gradient_are_the_functional_apis_on_the_same_key(cls, hard):
    # The REDGE family runs with an array t_1, one per batch element, and is differentiated
    # in it too (the functional samplers take an array t_1 as well).
    logits = jnp.asarray(make_logits((3,), 5, 3.0, seed=3))
    weights = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 5)))
    t_1 = jnp.array([0.3, 0.6, 1.0]) if cls in REDGE_FAMILY else None
    soft = {} if hard else {"hard": False}

    @jax.jit
    def both(logits, t_1, key):
        # the functional sampler on logits broadcast to sample_shape + batch_shape + (K,)
        # draws the class's noise from the same key: the same sample and the same gradient
        def by_class(logits, t_1):
            hyper = {} if t_1 is None else {"t_1": t_1}
            return jnp.sum(weights * _make(cls, logits=logits, **hyper, **soft).sample(key, (2,)))

        def by_sampler(logits, t_1):
            return jnp.sum(weights * SAMPLER[cls](key, jnp.broadcast_to(logits, (2, 3, 5)), t_1, **soft))

        argnums = (0,) if t_1 is None else (0, 1)
        return [jax.value_and_grad(f, argnums)(logits, t_1) for f in (by_class, by_sampler)]

    (value, grads), (expected_value, expected_grads) = both(logits, t_1, _key(3))
    np.testing.assert_allclose(value, expected_value, rtol=1e-14)  # float64 sums in another order
    for grad, expected_grad in zip(grads, expected_grads):
        # the same float64 ops; the class sums the broadcast gradient inside the kernel, the
        # sampler through broadcast_to's transpose: round-off, measured <= 1e-15 relative
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-14)
        assert _finite(grad) and np.any(np.asarray(grad) != 0)
    if t_1 is not None:
        assert grads[1].shape == (3,)  # d/dt_1 per batch element


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", REDGE_FAMILY, ids=IDS)
def test_redge_parameter_errors(cls):
    logits = jnp.zeros((2, 3))
    for n_steps, error in [(1, ValueError), (0, ValueError), (3.0, TypeError), (True, TypeError)]:
        with pytest.raises(error, match=r"n_steps must be an integer >= 2, got n_steps="):
            cls(logits=logits, n_steps=n_steps)
    for t_1 in (0.0, -0.5, 1.5, float("nan")):  # a Python number is always checked
        with pytest.raises(ValueError, match=r"t_1 must be in \(0, 1\], got t_1="):
            cls(logits=logits, t_1=t_1, validate_args=False)
    for t_1 in (0.0, 1.5, float("nan")):
        bad = jnp.array([0.5, t_1])
        cls(logits=logits, t_1=bad, validate_args=False)  # arrays are checked only under validation
        with pytest.raises(ValueError, match=r"t_1 must be in \(0, 1\], got t_1=array"):
            cls(logits=logits, t_1=bad, validate_args=True)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_parameter_errors(cls):
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got both"):
        _make(cls, probs=jnp.full(3, 1 / 3), logits=jnp.zeros(3))
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got neither"):
        _make(cls)
    with pytest.raises(ValueError, match=r"logits must be finite or -inf \(-inf masks a class\).*, got logits="):
        _make(cls, logits=jnp.array([0.0, jnp.nan, 1.0]), validate_args=True)
    with pytest.raises(ValueError, match=r"probs must be a probability vector"):
        _make(cls, probs=jnp.array([0.7, 0.7, -0.4]), validate_args=True)
    with pytest.raises(ValueError, match=r"logits must have at least 2 categories"):
        _make(cls, logits=jnp.zeros((3, 1)))
    with pytest.warns(UserWarning, match=r"Out-of-support values .*the support of " + cls.__name__):
        assert _make(cls, logits=jnp.zeros(3), validate_args=True).log_prob(jnp.full(3, 1 / 3)) == -np.inf


def test_reinmax_temperature_errors():
    for temperature in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got temperature="):
            ReinMax(temperature, logits=jnp.zeros(3))
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0"):
        ReinMax(jnp.array([1.0, 0.0]), logits=jnp.zeros((2, 3)), validate_args=True)


def test_soft_redge_log_prob_raises():
    d = REDGE(logits=jnp.zeros(3), hard=False)
    with pytest.raises(NotImplementedError, match=r"REDGE\(hard=False\) .* intractable"):
        d.log_prob(jnp.full(3, 1 / 3))


# --- statistics -------------------------------------------------------------------------------


@pytest.mark.statistical
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cls", [StraightThrough, ReinMax, REDGE], ids=IDS)
def test_hard_samples_follow_softmax(cls, dtype):
    # Exact categorical draws: ST and ReinMax always, REDGE at t_1 = 1 (the last denoiser
    # sees alpha = 0). Chi-square on 20000 seeded draws at level ALPHA: false-failure rate 1e-3 each.
    # float32 draws both words of each threefry hash (numpyro_ext._ops), float64 jax.random's.
    logits = jnp.array([1.0, 0.0, -1.0, 0.5, -2.0], dtype)
    d = _make(cls, logits=logits, **({"t_1": 1.0} if cls is REDGE else {}))
    samples = jax.jit(d.sample, static_argnums=1)(_key(5), (20_000,))
    counts = np.asarray(samples).sum(0)
    assert stats.chisquare(counts, 20_000 * special.softmax(np.asarray(logits))).pvalue > ALPHA


# --- pytrees: jit, vmap, grad ----------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_pytree_jit_vmap_grad(cls):
    logits = jnp.array([[0.3, -0.2, 0.5], [1.0, 0.0, -1.0]])
    d = _make(cls, logits=logits)
    leaves, treedef = jax.tree.flatten(d)
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert type(rebuilt) is cls and rebuilt.batch_shape == d.batch_shape
    jitted = jax.jit(_sample_and_score)  # the distribution as a jit argument: traced leaves, static aux
    value, log_prob = jitted(d, _key(6))
    assert value.shape == (2, 3) and log_prob.shape == (2,) and _finite(log_prob)
    for a, b in zip(jitted(rebuilt, _key(6)), (value, log_prob)):
        np.testing.assert_array_equal(a, b)

    @jax.jit
    def vmapped_and_grad(logits, keys):
        per_row = jax.vmap(lambda lg, key: _sample_and_score(_make(cls, logits=lg), key)[1])(logits, keys)
        # grad through sample: test_sample_and_gradient_are_the_functional_apis_on_the_same_key
        return per_row, jax.grad(lambda lg: jnp.sum(_make(cls, logits=lg).log_prob(value)))(logits)

    per_row, grad = vmapped_and_grad(logits, jax.random.split(_key(7), 2))
    assert per_row.shape == (2,) and _finite(per_row)
    # d/dlogits sum(value * log_softmax(logits)) = value - softmax(logits): round-off
    np.testing.assert_allclose(grad, np.asarray(value) - special.softmax(np.asarray(logits), -1), rtol=1e-12)


def test_n_steps_and_hard_are_static():
    logits = jnp.zeros((2, 3))
    structure = lambda **kw: jax.tree.structure(REDGE(logits=logits, **kw))  # noqa: E731
    assert structure(n_steps=3) != structure(n_steps=5) and structure(hard=True) != structure(hard=False)
    assert structure(t_1=0.3) == structure(t_1=jnp.array([0.5, 0.9]))  # t_1 is data (a leaf)
    assert jax.jit(lambda d: d.n_steps)(REDGE(logits=logits, n_steps=4)) == 4  # a Python int inside jit


# --- SVI ---------------------------------------------------------------------------------------


def test_svi_straight_through_prior_redge_guide():
    # filterwarnings=error: a "discrete latent variables" warning from SVI fails this test.
    means = jnp.arange(5.0) * 2.0
    data = jnp.full(10, 6.0)  # generated by category 3

    def model(data):
        z = numpyro.sample("z", StraightThrough(probs=jnp.full(5, 0.2)))  # a OneHotCategorical prior
        with numpyro.plate("data", len(data)):
            numpyro.sample("obs", Normal(z @ means, 1.0), obs=data)

    def guide(data):
        numpyro.sample("z", REDGE(logits=numpyro.param("logits", jnp.zeros(5))))

    result = SVI(model, guide, optax.adam(0.1), Trace_ELBO(num_particles=4)).run(_key(8), 20, data, progress_bar=False)
    losses = np.asarray(result.losses)
    assert _finite(losses)
    # seeded, so deterministic; the loss is noisy step to step, 5-step averages are not
    assert losses[-5:].mean() < losses[:5].mean()


def test_svi_relaxed_simplex_latent_via_transform_reparam():
    # A RelaxedOneHotCategorical site in both model and guide: replay hands the model the
    # guide's value but not its log-space pre-image, and at temperature 0.05 in float32 the
    # value has exact zeros, so the model scores log(0) and the loss goes NaN. TransformReparam
    # turns both sites into their log-space base "z_base" (ExpRelaxedOneHotCategorical).
    k, temperature = 50, 0.05
    means = jnp.linspace(-3.0, 3.0, k, dtype=jnp.float32)
    data = jnp.full(20, 1.5, jnp.float32)

    def model(data):
        z = numpyro.sample("z", RelaxedOneHotCategorical(temperature, logits=jnp.zeros(k, jnp.float32)))
        with numpyro.plate("data", len(data)):
            numpyro.sample("obs", Normal(z @ means, 1.0), obs=data)

    def guide(data):
        logits = numpyro.param("logits", jnp.zeros(k, jnp.float32))
        numpyro.sample("z", RelaxedOneHotCategorical(temperature, logits=logits))

    reparam = lambda fn: handlers.reparam(fn, config={"z": TransformReparam()})  # noqa: E731
    svi = SVI(reparam(model), reparam(guide), optax.adam(0.05), Trace_ELBO())
    result = svi.run(_key(9), 200, data, progress_bar=False)
    assert result.losses.dtype == jnp.float32 and not np.any(np.isnan(np.asarray(result.losses)))
    trace = handlers.trace(handlers.seed(reparam(guide), _key(10))).get_trace(data)
    assert trace["z"]["type"] == "deterministic" and isinstance(trace["z_base"]["fn"], ExpRelaxedOneHotCategorical)


# --- docs ------------------------------------------------------------------------------------------


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for cls in CLASSES:
        for test in finder.find(cls, cls.__name__, globs={}):
            runner.run(test, out=lambda _: None)
    assert runner.tries >= len(CLASSES) and runner.failures == 0
