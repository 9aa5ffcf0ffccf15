"""JAX / NumPyro half of the Concrete / straight-through family: ``numpyro_ext.concrete``
(kernels against the float64 oracle) and ``numpyro_ext.distributions`` (the classes)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
import pytest
from jax.test_util import check_grads
from numpyro import handlers
from numpyro.distributions import Normal
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.util import log_density
from scipy import integrate, special, stats

from cases import BATCH_SHAPES, CASES, make_logits
from numpyro_ext import concrete
from numpyro_ext.distributions import (
    ExpRelaxedOneHotCategorical,
    OneHotCategorical,
    RelaxedBernoulli,
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategorical,
    RelaxedOneHotCategoricalStraightThrough,
    _LogitRelaxedBernoulli as LogitRelaxedBernoulli,  # the binary base class
    one_hot,
    reparametrized_boolean,
    reparametrized_one_hot,
)
from relaxed_dists import reference

CATEGORICAL = [ExpRelaxedOneHotCategorical, RelaxedOneHotCategorical, RelaxedOneHotCategoricalStraightThrough]
BINARY = [LogitRelaxedBernoulli, RelaxedBernoulli, RelaxedBernoulliStraightThrough]
# A correct sampler fails a test at level ALPHA for a fraction ALPHA of seeds; every
# statistical test below is seeded, so it is deterministic, and that is its false-failure rate.
ALPHA = 1e-3


def _key(seed: int) -> jax.Array:
    # "rbg" keys: XLA's RngBitGenerator compiles ~4x faster than threefry on CPU, and every
    # eager sample of a new shape compiles; the classes only hand the key to jax.random.
    return jax.random.key(seed, impl="rbg")


def _finite(x) -> bool:
    """All entries finite (NumPy: an eager JAX reduction compiles for every new shape)."""
    return bool(np.all(np.isfinite(np.asarray(x, np.float64))))


# --- kernels against the float64 oracle --------------------------------------------


@jax.jit
def _kernels(logits, tau, gumbels, y, x, value, logistic, z, u, b):
    """Every kernel of ``numpyro_ext.concrete`` in one program (one compile per case)."""
    logits_1 = logits[..., 0]
    return {
        "concrete_log_sample": concrete.concrete_log_sample(logits, tau, gumbels),
        "exp_concrete_log_prob": concrete.exp_concrete_log_prob(y, logits, tau),
        "concrete_log_prob": concrete.concrete_log_prob(x, logits, tau),
        "categorical_log_prob": concrete.categorical_log_prob(value, logits),
        "binary_concrete_logit_sample": concrete.binary_concrete_logit_sample(logits_1, tau, logistic),
        "logit_binary_concrete_log_prob": concrete.logit_binary_concrete_log_prob(z, logits_1, tau),
        "binary_concrete_log_prob": concrete.binary_concrete_log_prob(u, logits_1, tau),
        "bernoulli_log_prob": concrete.bernoulli_log_prob(b, logits_1),
    }


# scalar and batched temperatures alternate over the table: each case is one compile
@pytest.mark.parametrize(
    "case, batched_temperature",
    [
        pytest.param(case, i % 2 == 1, id=f"{case}-tau{'batched' if i % 2 else 'scalar'}")
        for i, case in enumerate(CASES)
    ],
)
def test_kernels_match_reference(case, batched_temperature):
    rng = np.random.default_rng(0)
    logits = case.logits
    tau = case.temperature * (rng.uniform(0.5, 2.0, case.batch_shape) if batched_temperature else 1.0)
    gumbels = reference.gumbel_from_uniform(rng.uniform(size=logits.shape))
    y = reference.concrete_log_sample(logits, tau, gumbels)
    x = rng.dirichlet(np.ones(case.k), size=case.batch_shape)  # inside the simplex: the oracle is finite
    value = reference.categorical_sample(reference.log_softmax(logits), gumbels)
    logits_1 = logits[..., 0]  # the binary kernels use the first category's logits
    logistic = reference.logistic_from_uniform(rng.uniform(size=logits_1.shape))
    z = reference.binary_concrete_logit_sample(logits_1, tau, logistic)
    u = rng.uniform(0.01, 0.99, logits_1.shape)
    b = (u > 0.5).astype(np.float64)
    expected = {
        "concrete_log_sample": y,
        "exp_concrete_log_prob": reference.exp_concrete_log_prob(y, logits, tau),
        "concrete_log_prob": reference.concrete_log_prob(x, logits, tau),
        "categorical_log_prob": reference.categorical_log_prob(value, logits),
        "binary_concrete_logit_sample": z,
        "logit_binary_concrete_log_prob": reference.logit_binary_concrete_log_prob(z, logits_1, tau),
        "binary_concrete_log_prob": reference.binary_concrete_log_prob(u, logits_1, tau),
        "bernoulli_log_prob": reference.bernoulli_log_prob(b, logits_1),
    }
    actual = _kernels(*map(jnp.asarray, (logits, tau, gumbels, y, x, value, logistic, z, u, b)))
    assert set(actual) == set(concrete.__all__)
    for name, kernel_value in actual.items():
        # Both are float64 evaluations of the same formula; 1e-12 of the largest magnitude
        # leaves room for a different summation order (measured: <= 3e-16 relative).
        scale = max(1.0, float(np.max(np.abs(expected[name]))))
        np.testing.assert_allclose(np.asarray(kernel_value), expected[name], rtol=0, atol=1e-12 * scale, err_msg=name)


# --- own samples in float32 are scored at their pre-image -----------------------------

OWN_TEMPERATURES = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
N_OWN = 10_000
# Measured: |float32 log_prob - float64 oracle at the same pre-image| <= 1.2e-6 * max(1, |oracle|)
# over this whole grid (about 10 float32 eps); 1e-5 leaves a margin for other CPUs.
OWN_RTOL = 1e-5


@pytest.mark.parametrize("k", [2, 10, 100, 1000])
def test_own_samples_float32_finite_and_match_oracle(k):
    logits = jnp.asarray(make_logits((), k, 3.0, seed=k), jnp.float32)
    temperature = jnp.asarray(OWN_TEMPERATURES, jnp.float32)  # a batch of temperatures: one compile per K
    d = RelaxedOneHotCategorical(temperature, logits=logits, validate_args=True)
    x, intermediates = jax.jit(d.sample_with_intermediates, static_argnums=1)(_key(k), (N_OWN,))
    # Scored in a second program: validating inside the sampling program lets XLA constant-fold
    # the support check of exp(y) >= 0 over all samples (measured: 20-40 s of compile at K = 100).
    # Under jit a failing support check cannot raise; it gives -inf, so finiteness below
    # also shows that validation accepted every sample.
    log_prob = jax.jit(d.log_prob)(x, intermediates)
    assert x.dtype == log_prob.dtype == jnp.float32 and log_prob.shape == (N_OWN, len(OWN_TEMPERATURES))
    assert _finite(log_prob)
    # The float64 NumPy oracle is slow at K = 1000; 1,000 samples per temperature bound the error.
    y = np.asarray(intermediates[0][0], np.float64)[:1000]
    oracle = reference.exp_concrete_log_prob(y, np.asarray(logits, np.float64), np.asarray(OWN_TEMPERATURES))
    oracle -= np.sum(y[..., :-1], axis=-1)  # the simplex density at the same pre-image
    error = np.abs(np.asarray(log_prob, np.float64)[:1000] - oracle) / np.maximum(1.0, np.abs(oracle))
    assert error.max() < OWN_RTOL


def test_own_samples_float32_binary():
    temperature = jnp.asarray(OWN_TEMPERATURES, jnp.float32)
    d = RelaxedBernoulli(temperature, logits=jnp.full(len(OWN_TEMPERATURES), 0.7, jnp.float32), validate_args=True)
    x, intermediates = d.sample_with_intermediates(_key(0), (N_OWN,))
    log_prob = d.log_prob(x, intermediates)  # eager with validation: must not raise
    assert log_prob.dtype == jnp.float32 and _finite(log_prob)
    z = np.asarray(intermediates[0][0], np.float64)
    tau = np.asarray(OWN_TEMPERATURES)
    oracle = reference.logit_binary_concrete_log_prob(z, 0.7, tau) + np.logaddexp(0, z) + np.logaddexp(0, -z)
    # same measured bound as the categorical grid (<= 1e-6 relative)
    assert (np.abs(np.asarray(log_prob, np.float64) - oracle) / np.maximum(1.0, np.abs(oracle))).max() < OWN_RTOL


def test_trace_site_log_prob_uses_intermediates():
    def model():
        numpyro.sample("x", RelaxedOneHotCategorical(0.05, logits=jnp.zeros(10, jnp.float32)), sample_shape=(1000,))

    @jax.jit
    def traced(key):
        site = handlers.trace(handlers.seed(model, key)).get_trace()["x"]
        assert site["intermediates"], "the trace handler records the log-simplex pre-image"
        with_pre_image = site["fn"].log_prob(site["value"], site["intermediates"])
        return site["value"], with_pre_image, log_density(handlers.seed(model, key), (), {}, {})[0]

    value, with_pre_image, joint = traced(_key(0))
    assert _finite(with_pre_image)
    # At temperature 0.05 in float32 many samples have an exact 0: log(value) is not finite.
    # (value enters as an argument: jitted with the sampler, XLA may simplify log(exp(y)) to y.)
    without = jax.jit(RelaxedOneHotCategorical(0.05, logits=jnp.zeros(10, jnp.float32)).log_prob)(value)
    assert np.any(np.asarray(value) == 0) and not _finite(without)
    # log_density (NumPyro's own scoring of the trace) used the intermediates: float32 sums
    # of the same 1000 terms of magnitude ~1e3, relative 1e-6 is a few float32 eps.
    np.testing.assert_allclose(float(joint), float(np.sum(np.asarray(with_pre_image, np.float64))), rtol=1e-6)


# --- normalisation by quadrature (additive logistic coordinates t_k = y_k - y_K) ----------


def _density_in_t(d, simplex: bool):
    """Density of ``t`` in R^{K-1} (shape ``(..., K-1)``): ``y = log_softmax([t, 0])``, and the
    Jacobians are ``|dy_{<K}/dt| = x_K`` (log-simplex), ``|dx_{<K}/dt| = prod_k x_k`` (simplex)."""

    @jax.jit
    def density(t):
        y = jax.nn.log_softmax(jnp.concatenate([t, jnp.zeros(t.shape[:-1] + (1,))], -1))
        log_p = d.log_prob(jnp.exp(y)) + jnp.sum(y, -1) if simplex else d.log_prob(y) + y[..., -1]
        return jnp.exp(log_p)

    return lambda t: np.asarray(density(jnp.asarray(t, jnp.float64)))


@pytest.mark.parametrize("temperature", [0.3, 3.0])  # below 1 the simplex density is singular at the vertices
@pytest.mark.parametrize("cls", CATEGORICAL[:2], ids=lambda c: c.__name__)
def test_density_integrates_to_one(cls, temperature):
    # t = (logits_k - logits_K + G_k - G_K) / tau: beyond (40 + 2) / tau the mass is < e^-40.
    half_width = 42.0 / temperature
    density = _density_in_t(cls(temperature, logits=jnp.array([0.4, -0.6])), cls is RelaxedOneHotCategorical)
    total, _ = integrate.quad(lambda t: float(density([t])), -half_width, half_width, points=[0.0], limit=200)
    assert total == pytest.approx(1.0, abs=1e-8)  # quad's own error estimate is ~1e-10
    # K = 3: SciPy's vectorised adaptive cubature (dblquad, one JAX call per point, takes
    # ~20 s per case on a loaded 2-core machine); it converges to an estimated error ~1e-10.
    density = _density_in_t(cls(temperature, logits=jnp.array([0.4, -0.6, 0.1])), cls is RelaxedOneHotCategorical)
    result = integrate.cubature(density, [-half_width] * 2, [half_width] * 2, rtol=1e-10, atol=1e-12)
    assert result.status == "converged" and result.estimate == pytest.approx(1.0, abs=1e-8)


def test_two_categories_match_binary_concrete():
    x = jnp.linspace(0.01, 0.99, 41)
    y = jnp.log(jnp.stack([x, 1 - x], -1))

    @jax.jit
    def scores(temperature):
        two = RelaxedOneHotCategorical(temperature, logits=jnp.array([0.4, -0.6]))
        exp_two = ExpRelaxedOneHotCategorical(temperature, logits=jnp.array([0.4, -0.6]))
        # On the log-simplex: y_1 = log x, z = y_1 - y_2 and dz/dy_1 = 1 / x_2, so log p(y) = log p(z) - y_2.
        logit = LogitRelaxedBernoulli(temperature, logits=1.0)
        return (
            (two.log_prob(jnp.exp(y)), RelaxedBernoulli(temperature, logits=1.0).log_prob(x)),
            (exp_two.log_prob(y), logit.log_prob(y[:, 0] - y[:, 1]) - y[:, 1]),
        )

    for temperature in (0.3, 1.0, 3.0):
        for categorical, binary in scores(temperature):
            # float64 evaluations of equal formulas in different arrangements
            np.testing.assert_allclose(categorical, binary, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("temperature", [0.3, 3.0])
def test_binary_density_integrates_to_one(temperature):
    d = LogitRelaxedBernoulli(temperature, logits=1.0)
    log_p = jax.jit(d.log_prob)
    total, _ = integrate.quad(lambda z: math.exp(log_p(z)), -60.0 / temperature, 60.0 / temperature, limit=200)
    assert total == pytest.approx(1.0, abs=1e-7)  # tails beyond 60 / tau carry < e^-58


# --- goodness of fit and argmax frequencies --------------------------------------------


def _binary_concrete_cdf(x, a, temperature):
    """P(X <= x) for X = sigmoid((a + L) / tau), L standard logistic."""
    return special.expit(temperature * special.logit(x) - a)


@pytest.mark.statistical
@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_two_category_samples_fit_density(temperature):
    logits = np.array([0.4, -0.6])
    d = ExpRelaxedOneHotCategorical(temperature, logits=jnp.asarray(logits))
    y = np.asarray(d.sample(_key(1), (4000,)))
    # In t = y_1 - y_2 (not y_1, which rounds to 0 where x_2 < eps) the K = 2 Concrete is
    # a logistic with CDF sigmoid(tau t - (l_1 - l_2)) ...
    t = y[:, 0] - y[:, 1]
    cdf = lambda t: special.expit(temperature * t - (logits[0] - logits[1]))  # noqa: E731
    # ... which is the integral of exp(log_prob) (times the Jacobian x_2 = |dy_1/dt|).
    density = _density_in_t(d, simplex=False)
    for t_q in np.quantile(t, [0.1, 0.5, 0.9]):
        mass, _ = integrate.quad(lambda s: float(density([s])), -42.0 / temperature, t_q, limit=200)
        assert mass == pytest.approx(cdf(t_q), abs=1e-8)  # quad error ~1e-10; mass below -42/tau < e^-40
    assert stats.kstest(t, cdf).pvalue > ALPHA


@pytest.mark.statistical
def test_binary_samples_fit_cdf():
    temperature, logits = 0.5, 0.7
    x = np.asarray(RelaxedBernoulli(temperature, logits=logits).sample(_key(2), (4000,)))
    assert stats.kstest(x, lambda v: _binary_concrete_cdf(v, logits, temperature)).pvalue > ALPHA


def _assert_frequencies(counts, probs):
    assert stats.chisquare(counts, np.sum(counts) * probs).pvalue > ALPHA


@pytest.mark.statistical
@pytest.mark.parametrize("cls", CATEGORICAL[1:] + [OneHotCategorical], ids=lambda c: c.__name__)
def test_argmax_frequencies(cls):
    logits = jnp.array([1.0, 0.0, -1.0, 0.5, -0.3])
    d = OneHotCategorical(logits=logits) if cls is OneHotCategorical else cls(0.3, logits=logits)
    samples = d.sample(_key(3), (20_000,))
    counts = np.bincount(np.argmax(np.asarray(samples), -1), minlength=5)
    _assert_frequencies(counts, np.asarray(jax.nn.softmax(logits)))


@pytest.mark.statistical
def test_bernoulli_straight_through_frequency():
    samples = RelaxedBernoulliStraightThrough(0.3, logits=0.7).sample(_key(4), (20_000,))
    assert stats.binomtest(int(samples.sum()), 20_000, float(jax.nn.sigmoid(0.7))).pvalue > ALPHA


# --- shapes, expand, infer_shapes, pytrees ---------------------------------------------


def _shapes(d, sample_shape):
    """Shapes of ``(sample, log_prob(sample))`` by abstract evaluation (nothing compiles;
    the values are exercised by the other tests)."""
    return jax.eval_shape(lambda key: (lambda v: (v, d.log_prob(v)))(d.sample(key, sample_shape)), _key(0))


def _make(cls, temperature, logits, **kwargs):
    return cls(logits=logits, **kwargs) if cls is OneHotCategorical else cls(temperature, logits=logits, **kwargs)


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("cls", CATEGORICAL + [OneHotCategorical], ids=lambda c: c.__name__)
def test_categorical_shapes(cls, batch_shape):
    logits = jnp.asarray(make_logits(batch_shape, 4, 3.0))
    d = _make(cls, 0.5, logits)
    assert d.batch_shape == batch_shape and d.event_shape == (4,)
    value, log_prob = _shapes(d, (5,))
    assert value.shape == (5,) + batch_shape + (4,) and log_prob.shape == (5,) + batch_shape
    args = {"logits": logits.shape} if cls is OneHotCategorical else {"temperature": (), "logits": logits.shape}
    assert cls.infer_shapes(**args) == (batch_shape, (4,))
    expanded = d.expand((2,) + batch_shape)
    assert type(expanded) is cls and expanded.batch_shape == (2,) + batch_shape
    assert _shapes(expanded, (3,))[0].shape == (3, 2) + batch_shape + (4,)


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
@pytest.mark.parametrize("cls", BINARY, ids=lambda c: c.__name__)
def test_binary_shapes(cls, batch_shape):
    logits = jnp.asarray(make_logits(batch_shape, 1, 3.0))[..., 0]
    d = cls(0.5, logits=logits)
    assert d.batch_shape == batch_shape and d.event_shape == ()
    value, log_prob = _shapes(d, (5,))
    assert value.shape == (5,) + batch_shape and log_prob.shape == (5,) + batch_shape
    assert cls.infer_shapes(temperature=(), logits=logits.shape) == (batch_shape, ())
    assert _shapes(d.expand((2,) + batch_shape), ())[0].shape == (2,) + batch_shape


@pytest.mark.parametrize("cls", CATEGORICAL, ids=lambda c: c.__name__)
def test_temperature_broadcasts_to_batch_shape(cls):
    d = cls(jnp.array([[0.1], [2.0]]), logits=jnp.zeros((3, 4)))
    assert d.batch_shape == (2, 3) and _shapes(d, ())[0].shape == (2, 3, 4)
    assert cls.infer_shapes((2, 1), logits=(3, 4)) == ((2, 3), (4,))
    # a temperature of shape (K,) is a batch of K temperatures, never one per category
    with pytest.raises(ValueError, match=r"temperature must broadcast to the batch shape \(3,\).*shape=\(4,\)"):
        cls(jnp.ones(4), logits=jnp.zeros((3, 4)))


@pytest.mark.parametrize("cls", BINARY, ids=lambda c: c.__name__)
def test_binary_temperature_broadcasts(cls):
    assert cls(jnp.ones((2, 1)), logits=jnp.zeros(3)).batch_shape == (2, 3)
    with pytest.raises(ValueError, match=r"temperature.shape must be broadcastable .*got temperature.shape=\(4,\)"):
        cls(jnp.ones(4), logits=jnp.zeros(3))


@pytest.mark.parametrize("cls", CATEGORICAL + BINARY + [OneHotCategorical], ids=lambda c: c.__name__)
def test_pytree_jit_vmap(cls):
    logits = jnp.array([[0.3, -0.2, 0.5], [1.0, 0.0, -1.0]])
    if cls in BINARY:
        logits = logits[:, 0]
    d = _make(cls, jnp.array(0.5), logits)
    leaves, treedef = jax.tree.flatten(d)
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert type(rebuilt) is cls and rebuilt.batch_shape == d.batch_shape
    sample_and_score = lambda d, key: (lambda v: (v, d.log_prob(v)))(d.sample(key))  # noqa: E731
    # the distribution as a jit argument: flattened to traced leaves and rebuilt inside
    jitted = jax.jit(sample_and_score)
    value, log_prob = jitted(d, _key(5))
    assert value.shape == d.shape() and log_prob.shape == d.batch_shape and _finite(log_prob)
    for a, b in zip(jitted(rebuilt, _key(5)), (value, log_prob)):  # same treedef: no recompile
        np.testing.assert_array_equal(a, b)
    batched = jax.jit(jax.vmap(lambda lg, key: sample_and_score(_make(cls, 0.5, lg), key)[1]))
    vmapped = batched(logits, jax.random.split(_key(6), 2))
    assert vmapped.shape == (2,) and _finite(vmapped)


# --- gradients --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CATEGORICAL, ids=lambda c: c.__name__)
def test_grad_through_sample_and_log_prob(cls):
    weights = jnp.arange(4.0)

    def objective(logits, temperature):
        d = cls(temperature, logits=logits)
        value = d.sample(_key(7))
        return jnp.sum(weights * value) + d.log_prob(value)

    grad_logits, grad_temperature = jax.jit(jax.grad(objective, argnums=(0, 1)))(jnp.array([0.2, -0.1, 0.4, 0.0]), 0.7)
    assert _finite(grad_logits) and np.any(np.asarray(grad_logits) != 0)
    assert _finite(grad_temperature) and grad_temperature != 0


def test_straight_through_gradient_is_the_relaxed_one():
    weights = jnp.array([0.3, -1.0, 2.0, 0.5])

    def through(cls, logits):
        objective = lambda lg, t: jnp.sum(weights * cls(t, logits=lg).sample(_key(8)))  # noqa: E731
        return jax.jit(jax.grad(objective, argnums=(0, 1)))(logits, 0.7)

    logits = jnp.array([0.2, -0.1, 0.4, 0.0])
    pairs = [
        *zip(through(RelaxedOneHotCategoricalStraightThrough, logits), through(RelaxedOneHotCategorical, logits)),
        *zip(through(RelaxedBernoulliStraightThrough, logits), through(RelaxedBernoulli, logits)),
    ]
    for st, soft in pairs:
        np.testing.assert_allclose(st, soft, rtol=1e-12)  # identical graphs below the stop_gradient


def test_check_grads_float64():
    # float64 central differences (check_grads' default step and float64 tolerances);
    # jitted, since check_grads evaluates each function many times. Not the straight-through
    # sample: its forward value is piecewise constant, its gradient a surrogate (tested above).
    logits, temperature = jnp.array([0.2, -0.1, 0.4]), jnp.array(0.7)
    y = concrete.concrete_log_sample(logits, temperature, jnp.array([0.3, -0.5, 1.2]))
    one_hot_value = jnp.array([0.0, 1.0, 0.0])

    def soft_paths_and_log_probs(lg, t):  # one program: check_grads compares every output
        return (
            RelaxedOneHotCategorical(t, logits=lg).sample(_key(9)),
            ExpRelaxedOneHotCategorical(t, logits=lg).log_prob(y),
            RelaxedOneHotCategorical(t, logits=lg).log_prob(jnp.exp(y)),
            RelaxedOneHotCategoricalStraightThrough(t, logits=lg).log_prob(one_hot_value),
            RelaxedBernoulli(t, logits=lg).sample(_key(9)),
            RelaxedBernoulli(t, logits=lg).log_prob(jnp.full(3, 0.3)),
        )

    check_grads(jax.jit(soft_paths_and_log_probs), (logits, temperature), order=1, modes=["rev"])  # as SVI uses


# --- exact hard samples -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_hard_samples_exactly_one_hot(dtype):
    logits = jnp.asarray(make_logits((3,), 10, 3.0), dtype)
    straight_through = RelaxedOneHotCategoricalStraightThrough(0.5, logits=logits, validate_args=True)
    for d in (straight_through, OneHotCategorical(logits=logits, validate_args=True)):
        # under jit, validation turns an out-of-support value into -inf: finite means accepted
        value, log_prob = jax.jit(lambda d, key: (lambda v: (v, d.log_prob(v)))(d.sample(key, (200,))))(d, _key(10))
        assert value.dtype == dtype and np.all(one_hot(np.asarray(value))) and _finite(log_prob)
    b = jax.jit(RelaxedBernoulliStraightThrough(0.5, logits=logits[..., 0]).sample, static_argnums=1)(_key(10), (200,))
    assert b.dtype == dtype and np.all(np.isin(np.asarray(b, np.float32), [0.0, 1.0]))


def test_straight_through_log_prob_depends_on_value_only():
    logits = np.array([0.2, -0.1, 0.4])
    d = RelaxedOneHotCategoricalStraightThrough(0.5, logits=jnp.asarray(logits))
    z = jax.jit(d.sample, static_argnums=1)(_key(11), (50,))
    expected = reference.categorical_log_prob(np.asarray(z), logits)
    for score in (d.log_prob(z), jax.jit(d.log_prob)(z), d.log_prob(jax.lax.stop_gradient(z)), d.log_prob(np.array(z))):
        # float64 log_softmax by JAX and by NumPy: round-off only
        np.testing.assert_allclose(score, expected, rtol=1e-14)
    b = RelaxedBernoulliStraightThrough(0.5, logits=0.3)
    value = jax.jit(b.sample, static_argnums=1)(_key(11), (50,))
    expected = reference.bernoulli_log_prob(np.asarray(value), 0.3)
    np.testing.assert_allclose(jax.jit(b.log_prob)(value), expected, rtol=1e-14)  # round-off only


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CATEGORICAL + BINARY, ids=lambda c: c.__name__)
@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_python_temperature(cls, temperature):
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got temperature="):
        cls(temperature, logits=jnp.zeros(3))


@pytest.mark.parametrize("cls", CATEGORICAL + BINARY, ids=lambda c: c.__name__)
@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_bad_array_temperature_under_validation(cls, temperature):
    tau = jnp.array([0.5, temperature])
    logits = jnp.zeros((2, 3)) if cls in CATEGORICAL else jnp.zeros(2)
    cls(tau, logits=logits, validate_args=False)  # arrays are checked only with validation on
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got temperature="):
        cls(tau, logits=logits, validate_args=True)


@pytest.mark.parametrize("cls", CATEGORICAL + BINARY + [OneHotCategorical], ids=lambda c: c.__name__)
def test_probs_xor_logits(cls):
    make = (lambda **kw: cls(**kw)) if cls is OneHotCategorical else (lambda **kw: cls(0.5, **kw))
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got both"):
        make(probs=jnp.full(3, 1 / 3), logits=jnp.zeros(3))
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got neither"):
        make()
    with pytest.raises(ValueError, match=r"probs must be a probability vector|probs must be in \[0, 1\]"):
        make(probs=jnp.array([0.7, 0.7, -0.4]) * (1 if cls not in BINARY else 2), validate_args=True)


@pytest.mark.parametrize("cls", CATEGORICAL + [OneHotCategorical], ids=lambda c: c.__name__)
def test_event_dimension_errors(cls):
    make = (lambda lg: cls(logits=lg)) if cls is OneHotCategorical else (lambda lg: cls(0.5, logits=lg))
    with pytest.raises(ValueError, match=r"logits.shape must be batch_shape \+ \(K,\) with K >= 2, got .*=\(\)"):
        make(jnp.array(0.3))
    with pytest.raises(ValueError, match=r"logits must have at least 2 categories .*logits.shape\[-1\]=1"):
        make(jnp.zeros((3, 1)))


@pytest.mark.parametrize("cls", CATEGORICAL + [OneHotCategorical], ids=lambda c: c.__name__)
def test_value_errors_under_validation(cls):
    d = _make(cls, 0.5, jnp.zeros((3, 4)), validate_args=True)
    with pytest.raises(ValueError, match=r"value must have shape sample_shape \+ .*value.shape=\(3, 5\)"):
        d.log_prob(jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"does not broadcast with batch_shape=\(3,\)"):
        d.log_prob(jnp.full((2, 4), 0.25))
    bad = jnp.full((3, 4), 0.4)  # not on the simplex, the log-simplex or the one-hots
    # NumPyro's convention: an out-of-support value warns and scores -inf
    with pytest.warns(
        UserWarning, match=r"Out-of-support values .*the support of " + cls.__name__ + r".*3 of 3 events"
    ):
        assert np.all(np.asarray(d.log_prob(bad)) == -np.inf)
    # under jit a traced value cannot be checked: no warning, the same -inf
    assert np.all(np.asarray(jax.jit(d.log_prob)(bad)) == -np.inf)


@pytest.mark.parametrize("cls", BINARY, ids=lambda c: c.__name__)
def test_binary_value_errors_under_validation(cls):
    d = cls(0.5, logits=jnp.zeros(3), validate_args=True)
    with pytest.raises(ValueError, match=r"does not broadcast with batch_shape=\(3,\)"):
        d.log_prob(jnp.zeros(2))
    if cls is not LogitRelaxedBernoulli:  # its support is the real line
        with pytest.warns(UserWarning, match=r"Out-of-support values .*the support of " + cls.__name__):
            # 0.7, not 0: an exact 0 given to RelaxedBernoulli is a copy whose pre-image was lost,
            # a ValueError of its own (tests/test_relaxed_latents.py)
            log_prob = d.log_prob(jnp.array([0.2, 1.5, 0.7]))
        assert log_prob[1] == -np.inf  # 1.5 is outside [0, 1] and {0, 1}


def test_supports():
    assert one_hot.is_discrete and not reparametrized_one_hot.is_discrete and not reparametrized_boolean.is_discrete
    assert OneHotCategorical(logits=jnp.zeros(3)).support.is_discrete
    assert not RelaxedOneHotCategoricalStraightThrough(0.5, logits=jnp.zeros(3)).support.is_discrete
    for cls in CATEGORICAL + BINARY:
        assert cls(0.5, logits=jnp.zeros(3)).has_rsample  # reparametrized_params covers every arg
    for c in (one_hot, reparametrized_one_hot):
        assert bool(jnp.all(c(c.feasible_like(jnp.zeros((2, 4))))))


# --- OneHotCategorical ---------------------------------------------------------------------


def test_one_hot_categorical_enumeration_and_moments():
    probs = np.array([[0.2, 0.5, 0.3], [0.0, 0.25, 0.75]])
    d = OneHotCategorical(probs=jnp.asarray(probs), validate_args=True)
    support = d.enumerate_support()
    assert support.shape == (3, 2, 3) and d.enumerate_support(expand=False).shape == (3, 1, 3)
    # eager, so validation of the enumerated one-hots runs (and would raise)
    np.testing.assert_allclose(np.exp(d.log_prob(support)), probs.T, rtol=1e-12)  # log/exp round-off
    assert d.expand((4, 2)).enumerate_support().shape == (3, 4, 2, 3)
    mean, variance, mode, entropy = jax.jit(lambda d: (d.mean, d.variance, d.mode, d.entropy()))(d)
    np.testing.assert_allclose(mean, probs)
    np.testing.assert_allclose(variance, probs * (1 - probs))
    np.testing.assert_array_equal(mode, np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    expected = -np.sum(special.xlogy(probs, probs), axis=-1)  # a zero probability contributes 0
    np.testing.assert_allclose(entropy, expected, rtol=1e-12)  # float64 round-off


# --- SVI ------------------------------------------------------------------------------------


def test_svi_relaxed_prior_and_guide_float32_no_nan():
    # Latent relaxed sites live on the log-simplex: a model site replayed against the guide
    # gets no intermediates, and a float32 simplex sample at temperature 0.05 often has
    # exact zeros whose log density is not finite (RelaxedOneHotCategorical is for
    # observed sites and own samples).
    k, temperature = 50, 0.05
    means = jnp.linspace(-3.0, 3.0, k, dtype=jnp.float32)
    data = jnp.full(20, 1.5, jnp.float32)

    def model(data):
        y = numpyro.sample("y", ExpRelaxedOneHotCategorical(temperature, logits=jnp.zeros(k, jnp.float32)))
        numpyro.sample("obs", Normal(jnp.exp(y) @ means, 1.0), obs=data)

    def guide(data):
        logits = numpyro.param("logits", jnp.zeros(k, jnp.float32))
        numpyro.sample("y", ExpRelaxedOneHotCategorical(temperature, logits=logits))

    result = SVI(model, guide, optax.adam(0.05), Trace_ELBO()).run(_key(12), 200, data, progress_bar=False)
    assert result.losses.dtype == jnp.float32 and np.isnan(np.asarray(result.losses)).sum() == 0
    assert _finite(result.params["logits"])


def test_svi_straight_through_no_warning_and_loss_decreases():
    # filterwarnings=error: a "discrete latent variables" warning from SVI fails this test.
    means = jnp.arange(5.0) * 2.0
    data = jnp.full(10, 6.0)  # generated by category 3

    def model(data):
        z = numpyro.sample("z", RelaxedOneHotCategoricalStraightThrough(0.5, logits=jnp.zeros(5)))
        numpyro.sample("obs", Normal(z @ means, 1.0), obs=data)

    def guide(data):
        logits = numpyro.param("logits", jnp.zeros(5))
        numpyro.sample("z", RelaxedOneHotCategoricalStraightThrough(0.5, logits=logits))

    svi = SVI(model, guide, optax.adam(0.05), Trace_ELBO(num_particles=8))
    result = svi.run(_key(13), 300, data, progress_bar=False)
    losses = np.asarray(result.losses)
    # the loss is noisy; averages over 20 steps separate clearly (measured ~53 -> ~12)
    assert losses[-20:].mean() < 0.5 * losses[:20].mean()
    assert np.argmax(np.asarray(result.params["logits"])) == 3


def test_invalid_parameter_under_grad_without_jit_is_a_value_error():
    """Under ``jax.grad`` (no ``jit``) the check is concrete while the value is a tracer: the
    error must still be the ValueError naming the parameter, not a tracer-conversion error."""

    def log_prob(logits):
        return RelaxedOneHotCategorical(0.5, logits=logits, validate_args=True).log_prob(jnp.ones(3) / 3)

    with pytest.raises(ValueError, match=r"logits must be finite or -inf \(-inf masks a class\)"):
        jax.grad(log_prob)(jnp.array([0.0, jnp.inf, 1.0]))  # -inf is a mask, +inf is not
