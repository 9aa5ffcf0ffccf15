"""Every estimator on Bernoulli sites, JAX: the binary kernels of ``numpyro_ext.estimators``
and the classes ``BernoulliStraightThrough``, ``BernoulliReinMax``, ``BernoulliREDGE``,
``BernoulliREDGECov``, ``BernoulliREINDGE``.

The binary kernels are the K = 2 case on the logits ``(0, l)``: on the mapped noise
(``eps = eps_1 - eps_0``, ``L = g_1 - g_0``) each one's hard value is the one-hot kernel's
class-1 coordinate and its gradient the one-hot class-1 output's, to float64 rounding; both
follow the float64 oracle (``relaxed_dists.reference``, fed ``(0, eps)`` and ``(0, L)``).
Compiles dominate the run time, so each test jits one program for all five estimators.
Float64 throughout (``tests/conftest.py`` enables JAX's x64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.distributions.kl import kl_divergence
from numpyro.infer import Trace_ELBO
from scipy import special, stats

from cases import make_logits
from numpyro_ext import estimators as E
from numpyro_ext.distributions import (
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    BernoulliReinMax,
    BernoulliStraightThrough,
    OneHotCategorical,
    reparametrized_boolean,
)
from numpyro_ext.relax import BERNOULLI_CLASSES, ONE_HOT_CLASSES, relax
from relaxed_dists import reference as R
from relaxed_dists.registry import BERNOULLI_ESTIMATORS, ESTIMATORS

CLASSES = [BernoulliStraightThrough, BernoulliReinMax, BernoulliREDGE, BernoulliREDGECov, BernoulliREINDGE]
REDGE_FAMILY = [BernoulliREDGE, BernoulliREDGECov, BernoulliREINDGE]
PARAMS = {
    BernoulliStraightThrough: {},
    BernoulliReinMax: {"temperature": 0.7},
    **{c: {"n_steps": 5, "t_1": 0.5} for c in REDGE_FAMILY},
}
IDS = lambda c: c.__name__  # noqa: E731
# A correct sampler fails a seeded test at level ALPHA for a fraction ALPHA of seeds.
ALPHA = 1e-3

# --- kernels: the K = 2 case of the one-hot kernels ---------------------------------------------

SHAPE = (3, 4)
T_1 = np.array([[0.3], [0.6], [1.0]])  # an array t_1, broadcast against the logits (no event axis)
# name -> (binary kernel, one-hot kernel), each (logits, eps, noise) -> (hard, soft). Short chains
# (3-4 steps: one or two DDIM bridges in the scan) keep the compile small; longer chains are the
# one-hot kernels' business (tests/test_estimators_jax.py), whose chain code the binary ones share.
KERNELS = {
    "st": (lambda lg, e, n: E.binary_straight_through(lg, n), lambda lg, e, n: E.straight_through(lg, n)),
    "reinmax": (lambda lg, e, n: E.binary_reinmax(lg, 0.7, n), lambda lg, e, n: E.reinmax(lg, 0.7, n)),
    "redge": (lambda lg, e, n: E.binary_redge(lg, 4, T_1, e, n), lambda lg, e, n: E.redge(lg, 4, T_1, e, n)),
    "redge_cov": (
        lambda lg, e, n: E.binary_redge_cov(lg, 3, 0.4, e, n),
        lambda lg, e, n: E.redge_cov(lg, 3, 0.4, e, n),
    ),
    "reindge": (lambda lg, e, n: E.binary_reindge(lg, 3, T_1, e, n), lambda lg, e, n: E.reindge(lg, 3, T_1, e, n)),
}


def _stack(x):
    """``(0, x)`` on a new last axis: the K = 2 logits (or noise) whose class-1 coordinate is ``x``."""
    return jnp.stack([jnp.zeros_like(x), x], axis=-1)


@pytest.fixture(scope="module")
def kernel_runs():
    """For every estimator, float64: the binary kernel and the one-hot kernel on the logits ``(0, l)``
    with the noise ``(eps_0, eps_1)``, ``(g_0, g_1)``; values, and gradients of ``<w, hard>``
    (one-hot: of the class-1 output) with respect to ``l``. One program for all of them."""
    rng = np.random.default_rng(0)
    logits = make_logits(SHAPE, 1, spread=4.0)[..., 0]
    eps, gumbels = rng.normal(size=SHAPE + (2,)), R.gumbel_from_uniform(rng.uniform(size=SHAPE + (2,)))
    w = rng.normal(size=SHAPE)
    eps_diff, logistic = eps[..., 1] - eps[..., 0], gumbels[..., 1] - gumbels[..., 0]

    @jax.jit
    def run(logits):
        out = {}
        for name, (binary, one_hot) in KERNELS.items():

            def loss_binary(lg):
                hard, soft = binary(lg, eps_diff, logistic)
                return jnp.sum(w * hard), (hard, soft)

            def loss_one_hot(lg):
                hard, soft = one_hot(_stack(lg), eps, gumbels)
                return jnp.sum(w * hard[..., 1]), (hard[..., 1], soft[..., 1])

            out[name] = [jax.value_and_grad(f, has_aux=True)(logits) for f in (loss_binary, loss_one_hot)]
        return out

    data = dict(logits=logits, eps=eps_diff, logistic=logistic, w=w, eps2=eps, gumbels2=gumbels)
    return data, jax.tree.map(np.asarray, run(jnp.asarray(logits)))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_binary_kernel_is_the_one_hot_kernel_at_k2(kernel_runs, name):
    _, runs = kernel_runs
    ((_, (hard, soft)), grad), ((_, (hard_k2, soft_k2)), grad_k2) = runs[name]
    assert np.all((hard == 0) | (hard == 1)) and 0 < hard.mean() < 1  # exact, and both values drawn
    np.testing.assert_array_equal(hard, hard_k2)
    # float64: sigmoid vs softmax, tanh(z / 2) vs the difference of two softmax entries;
    # observed <= 1.4e-15 (REDGE-cov through 3 steps); a wrong term shows at >= 1e-4
    np.testing.assert_allclose(soft, soft_k2, rtol=0, atol=1e-13)
    np.testing.assert_allclose(grad, grad_k2, rtol=0, atol=1e-13)
    assert np.any(grad != 0)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_binary_kernel_matches_oracle(kernel_runs, name):
    data, runs = kernel_runs
    ((_, (hard, soft)), grad), _ = runs[name]
    logits2, eps2, gumbels2 = (np.stack([np.zeros(SHAPE), data[k]], -1) for k in ("logits", "eps", "logistic"))
    g = np.stack([np.zeros(SHAPE), data["w"]], -1)  # the upstream gradient on the class-1 coordinate
    if name in ("st", "reinmax"):
        ref_hard, ref_soft = R.straight_through(logits2, gumbels2)
    else:
        forward = R.redge_cov if name == "redge_cov" else R.redge
        n_steps, t_1 = (3, 0.4) if name == "redge_cov" else (4 if name == "redge" else 3, T_1)
        ref_hard, ref_soft = forward(logits2, n_steps, t_1, eps2, gumbels2)
    np.testing.assert_array_equal(hard, ref_hard[..., 1])
    np.testing.assert_allclose(soft, ref_soft[..., 1], rtol=0, atol=1e-12)  # float64, as tests/test_estimators_jax.py

    # the gradient of <w, hard>: the oracle's surrogate VJP, class-1 coordinate
    tol = 1e-12
    if name == "st":
        expected = R.straight_through_vjp(logits2, g)
    elif name == "reinmax":
        expected = R.reinmax_vjp(logits2, 0.7, ref_hard, g)
    elif name == "redge":
        expected = R.redge_vjp(logits2, 4, T_1, eps2, g)
    elif name == "reindge":
        expected = R.reindge_vjp(logits2, 3, T_1, eps2, ref_hard, g)
    else:  # the oracle is a float64 central difference (h = 1e-6): about 1e-9
        expected, tol = R.redge_cov_vjp(logits2, 3, 0.4, eps2, g), 1e-8
    np.testing.assert_allclose(grad, expected[..., 1], rtol=0, atol=tol)


# name -> pyro_ext's one-hot kernel, (module, logits, eps, gumbels, t_1 tensor) -> (hard, soft)
TORCH_ONE_HOT = {
    "st": lambda te, lg, e, n, t_1: te.straight_through(lg, n),
    "reinmax": lambda te, lg, e, n, t_1: te.reinmax(lg, 0.7, n),
    "redge": lambda te, lg, e, n, t_1: te.redge(lg, 4, t_1, e, n),
    "redge_cov": lambda te, lg, e, n, t_1: te.redge_cov(lg, 3, 0.4, e, n),
    "reindge": lambda te, lg, e, n, t_1: te.reindge(lg, 3, t_1, e, n),
}

TORCH_BINARY = {
    "st": lambda te, lg, e, n, t_1: te.binary_straight_through(lg, n),
    "reinmax": lambda te, lg, e, n, t_1: te.binary_reinmax(lg, 0.7, n),
    "redge": lambda te, lg, e, n, t_1: te.binary_redge(lg, 4, t_1, e, n),
    "redge_cov": lambda te, lg, e, n, t_1: te.binary_redge_cov(lg, 3, 0.4, e, n),
    "reindge": lambda te, lg, e, n, t_1: te.binary_reindge(lg, 3, t_1, e, n),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_binary_kernel_is_the_torch_one_hot_kernel_at_k2(kernel_runs, name):
    # Cross-backend: the JAX binary kernel against pyro_ext's one-hot kernel on (0, l), same noise,
    # and against pyro_ext's binary kernel on the mapped noise.
    torch = pytest.importorskip("torch")
    from pyro_ext import estimators as te

    data, runs = kernel_runs
    ((_, (hard, soft)), grad), _ = runs[name]
    logits = torch.tensor(data["logits"], requires_grad=True)
    logits2 = torch.stack([torch.zeros_like(logits), logits], -1)
    noise = (torch.tensor(data["eps2"]), torch.tensor(data["gumbels2"]), torch.tensor(T_1))
    hard_t, soft_t = TORCH_ONE_HOT[name](te, logits2, *noise)
    (torch.tensor(data["w"]) * hard_t[..., 1]).sum().backward()
    np.testing.assert_array_equal(hard, hard_t[..., 1].detach().numpy())
    # float64, as tests/test_cross_backend.py: the same operations up to order (and sigmoid/tanh here)
    np.testing.assert_allclose(soft, soft_t[..., 1].detach().numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(grad, logits.grad.numpy(), rtol=1e-11, atol=1e-12)
    # and pyro_ext's own binary kernel, on the mapped noise
    logits.grad = None
    hard_b, soft_b = TORCH_BINARY[name](te, logits, torch.tensor(data["eps"]), torch.tensor(data["logistic"]), noise[2])
    (torch.tensor(data["w"]) * hard_b).sum().backward()
    np.testing.assert_array_equal(hard, hard_b.detach().numpy())
    np.testing.assert_allclose(soft, soft_b.detach().numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(grad, logits.grad.numpy(), rtol=1e-11, atol=1e-12)


# --- classes -----------------------------------------------------------------------------------


def _make(cls, **kwargs):
    return cls(**{**PARAMS[cls], **kwargs})


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_shapes_expand_and_errors(cls):
    logits = jnp.asarray(make_logits((2,), 3, 3.0))  # batch (2, 3), no event dimension
    d = _make(cls, logits=logits)
    assert d.batch_shape == (2, 3) and d.event_shape == () and cls.infer_shapes(logits=(2, 3)) == ((2, 3), ())
    value, log_prob = jax.eval_shape(lambda key: (lambda v: (v, d.log_prob(v)))(d.sample(key, (5,))), jax.random.key(0))
    assert value.shape == log_prob.shape == (5, 2, 3)
    expanded = d.expand((4, 2, 3))
    assert type(expanded) is cls and expanded.batch_shape == (4, 2, 3)
    assert jax.tree.structure(expanded) == jax.tree.structure(_make(cls, logits=jnp.zeros((4, 2, 3))))
    assert jax.eval_shape(lambda key: expanded.sample(key), jax.random.key(0)).shape == (4, 2, 3)
    assert d.support is reparametrized_boolean and not d.support.is_discrete
    assert d.has_rsample and set(d.reparametrized_params) == set(cls.arg_constraints)
    # errors name the parameter and its range
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got both"):
        _make(cls, probs=jnp.full(3, 0.5), logits=jnp.zeros(3))
    with pytest.raises(ValueError, match="pass exactly one of probs or logits, got neither"):
        _make(cls)
    with pytest.raises(ValueError, match=r"logits must be a number or \+-inf, not NaN, got logits="):
        _make(cls, logits=jnp.array([0.0, jnp.nan]), validate_args=True)
    with pytest.raises(ValueError, match=r"probs must be in \[0, 1\], got probs="):
        _make(cls, probs=jnp.array([0.5, 1.5]), validate_args=True)
    with pytest.warns(UserWarning, match=r"Out-of-support values .*0 or 1 \(the support of " + cls.__name__):
        assert _make(cls, logits=jnp.zeros(2), validate_args=True).log_prob(jnp.array([1.0, 0.5]))[1] == -np.inf
    if cls is BernoulliReinMax:
        with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got temperature="):
            cls(0.0, logits=logits)
        with pytest.raises(ValueError, match=r"temperature.shape must be broadcastable to the batch shape"):
            cls(jnp.ones(4), logits=logits)
    if cls in REDGE_FAMILY:
        with pytest.raises(ValueError, match=r"t_1 must be in \(0, 1\], got t_1="):
            cls(logits=logits, t_1=1.5)
        with pytest.raises(ValueError, match=r"t_1 must be in \(0, 1\], got t_1=array"):
            cls(logits=logits, t_1=jnp.array([0.5, 0.0, 1.0]), validate_args=True)
        with pytest.raises(TypeError, match=r"n_steps must be an integer >= 2, got n_steps="):
            cls(logits=logits, n_steps=2.5)
        with pytest.raises(ValueError, match=r"t_1.shape must be broadcastable to the batch shape \(2, 3\)"):
            cls(logits=logits, t_1=jnp.full(4, 0.5))
        assert cls(logits=logits, t_1=jnp.array([[0.2], [0.9]])).t_1.shape == (2, 3)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_enumeration_and_moments(cls):
    probs = np.array([0.0, 0.2, 0.7, 1.0])  # 0 and 1: certain outcomes, logits -+inf
    d = _make(cls, probs=jnp.asarray(probs), validate_args=True)
    assert d.has_enumerate_support and d.enumerate_support().shape == (2, 4)
    assert d.enumerate_support(expand=False).shape == (2, 1)
    np.testing.assert_array_equal(d.enumerate_support()[:, 0], [0.0, 1.0])
    np.testing.assert_allclose(np.exp(d.log_prob(d.enumerate_support())), np.stack([1 - probs, probs]), rtol=1e-14)
    np.testing.assert_allclose(d.mean, probs, rtol=1e-15)  # sigmoid(logit p) = p to round-off
    np.testing.assert_allclose(d.variance, probs * (1 - probs), atol=1e-15)
    np.testing.assert_array_equal(d.mode, [0.0, 0.0, 1.0, 1.0])
    expected = -special.xlogy(probs, probs) - special.xlogy(1 - probs, 1 - probs)
    np.testing.assert_allclose(d.entropy(), expected, rtol=1e-14, atol=1e-15)  # round-off


@pytest.mark.statistical
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
def test_samples_under_jit_are_exact_bernoulli_draws(dtype):
    # The distributions go through jit as arguments (pytrees: traced logits and t_1, static
    # n_steps). ST and ReinMax always, REDGE at t_1 = 1 (the last denoiser sees alpha = 0) draw
    # Bernoulli(sigmoid(l)) exactly: per class, a chi-square with 5 degrees of freedom on 20000
    # seeded draws of 5 independent Bernoullis, at level ALPHA (false-failure rate 1e-3 each).
    # float32 draws both words of each threefry hash (numpyro_ext._ops), float64 jax.random's.
    logits = jnp.array([-2.0, -0.5, 0.0, 1.0, 3.0], dtype)
    classes = [BernoulliStraightThrough, BernoulliReinMax, BernoulliREDGE]
    dists = [
        _make(cls, logits=logits, **({"n_steps": 3, "t_1": 1.0} if cls is BernoulliREDGE else {})) for cls in classes
    ]
    n = 20_000
    run = jax.jit(lambda ds, key: [(lambda v: (v, d.log_prob(v)))(d.sample(key, (n,))) for d in ds])
    p = special.expit(np.asarray(logits))
    for cls, (value, log_prob) in zip(classes, run(dists, jax.random.key(1))):
        value = np.asarray(value)
        assert value.shape == (n, 5) and value.dtype == dtype and np.all((value == 0) | (value == 1)), cls
        rtol = 1e-14 if dtype == jnp.float64 else 1e-6  # round-off
        np.testing.assert_allclose(log_prob, R.bernoulli_log_prob(value, np.asarray(logits, np.float64)), rtol=rtol)
        chi2 = np.sum((value.sum(0) - n * p) ** 2 / (n * p * (1 - p)))
        assert stats.chi2.sf(chi2, df=5) > ALPHA, (cls.__name__, chi2)


def test_kl_is_the_bernoulli_kl():
    rng = np.random.default_rng(2)
    lp, lq = rng.normal(size=(2, 3)) * 3, rng.normal(size=3) * 3
    p, q = special.expit(lp), special.expit(lq)
    expected = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    for cls in CLASSES:
        ours = _make(cls, logits=jnp.asarray(lp))
        # NumPyro's BernoulliLogits, and BernoulliProbs once
        bernoulli = (
            dist.Bernoulli(probs=jnp.asarray(q)) if cls is BernoulliReinMax else dist.Bernoulli(logits=jnp.asarray(lq))
        )
        np.testing.assert_allclose(kl_divergence(ours, bernoulli), expected, rtol=1e-12)  # float64 round-off
        reverse = q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))
        np.testing.assert_allclose(kl_divergence(bernoulli, ours), reverse, rtol=1e-12)
    np.testing.assert_allclose(kl_divergence(ours, _make(CLASSES[0], logits=jnp.asarray(lp))), 0.0, atol=1e-15)


# --- relax on a guide with a Bernoulli and a OneHotCategorical site -----------------------------

N, K = 4, 3
DATA = jnp.array([0.3, 2.5, -1.0, 1.7])


def _model(data):
    with numpyro.plate("data", N):
        z = numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K)))
        b = numpyro.sample("b", dist.Bernoulli(logits=0.0))
        numpyro.sample("y", dist.Normal(z @ jnp.array([-1.0, 0.0, 1.0]) + 2.0 * b, 1.0), obs=data)


def _guide(data):
    z_logits = numpyro.param("z_logits", jnp.zeros((N, K)))
    b_logits = numpyro.param("b_logits", jnp.zeros(N))
    with numpyro.plate("data", N):
        numpyro.sample("z", OneHotCategorical(logits=z_logits))
        numpyro.sample("b", dist.Bernoulli(logits=b_logits))


def _elbo_grad(model, guide, seen=None):
    """``params, key -> d Trace_ELBO / d params``; traced, it records the guide's site classes in ``seen``."""

    def grad(params, key):
        if seen is not None:
            trace = handlers.trace(handlers.seed(handlers.substitute(guide, params), key)).get_trace(DATA)
            seen.update(z=type(trace["z"]["fn"]), b=type(trace["b"]["fn"]), b_shape=trace["b"]["value"].shape)
        return jax.grad(lambda p: Trace_ELBO().loss(key, p, model, guide, DATA))(params)

    return grad


PARAMS_GUIDE = {"z_logits": jnp.asarray(make_logits((N,), K, 1.0)), "b_logits": jnp.array([-1.0, 0.5, 0.0, 2.0])}


def _relaxed_pair(estimator):
    # short chains keep the compiles small (t_1 = 0.9: no SampleLawWarning at 2 steps); concrete
    # relaxes values, so the model too, whose sites then score them by the Concrete density
    hyper = {"n_steps": 2, "t_1": 0.9} if "n_steps" in ESTIMATORS[estimator] else {}
    model = relax(_model, estimator=estimator) if estimator == "concrete" else _model
    return model, relax(_guide, estimator=estimator, **hyper)


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_relax_every_estimator_on_a_mixed_guide(estimator):
    # Every name relaxes both sites to its classes, and the jitted Trace_ELBO gradient traces
    # (abstract evaluation: jit's tracing, without the compile, about 1 s per estimator here).
    assert set(BERNOULLI_ESTIMATORS) == set(ESTIMATORS) == set(BERNOULLI_CLASSES)
    seen = {}
    shapes = jax.eval_shape(jax.jit(_elbo_grad(*_relaxed_pair(estimator), seen)), PARAMS_GUIDE, jax.random.key(3))
    assert seen == {"z": ONE_HOT_CLASSES[estimator], "b": BERNOULLI_CLASSES[estimator], "b_shape": (N,)}
    assert jax.tree.map(lambda a: a.shape, shapes) == {"z_logits": (N, K), "b_logits": (N,)}


def test_relax_mixed_guide_gradient_under_jit():
    # The values, for relax's default estimator (one compile: the others are traced above).
    grad = jax.jit(_elbo_grad(*_relaxed_pair("redge")))(PARAMS_GUIDE, jax.random.key(3))
    for site in ("z_logits", "b_logits"):
        assert np.all(np.isfinite(grad[site])) and np.any(grad[site] != 0), site
