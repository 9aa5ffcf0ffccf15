"""Issue 16, "found on real tutorial models" (JAX): the differentiable one-hot index
``take_one_hot`` and the ``Categorical`` error that points to it, the no-gradient check,
the warning for enumerated sites that ``relax`` skips, ``AutoNormal`` on a relaxed model,
Concrete at a low temperature, and a Concrete guide against an unrelaxed model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers

from numpyro_ext import take_one_hot
from numpyro_ext.distributions import OneHotCategorical
from numpyro_ext.relax import relax

# small t_1 / n_steps on purpose; the REDGE family's SampleLawWarning is tested in test_sample_law.py
pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

K, N = 3, 5


# --- take_one_hot and the Categorical error -----------------------------------------------


def test_take_one_hot_is_the_index_with_a_gradient():
    rng = np.random.default_rng(0)
    table, upstream = rng.standard_normal((K, 2, 4)), rng.standard_normal((2, 2, 2, 4))
    index = np.array([[2, 0], [1, 1]])
    value = jnp.asarray(np.eye(K)[index])
    # one compiled program (the forward value and the gradient in value)
    out, grad = jax.jit(
        lambda v: (take_one_hot(table, v), jax.grad(lambda v: (take_one_hot(table, v) * upstream).sum())(v))
    )(value)
    assert out.shape == index.shape + (2, 4)
    np.testing.assert_array_equal(out, table[index])  # a one-hot picks one row exactly
    # d out[b] / d value[b, k] = table[k]: the gradient is <upstream[b], table[k]> over the rest
    np.testing.assert_allclose(grad, np.einsum("ijab,kab->ijk", upstream, table), rtol=1e-12)  # float64 (x64 on)
    matrix = table[..., 0]  # a (K, 2) table: take_one_hot is value @ table
    np.testing.assert_array_equal(take_one_hot(matrix, value), value @ matrix)


def test_take_one_hot_shape_and_int_table():
    value = jnp.eye(K)[jnp.array([1, 2])]
    assert take_one_hot(jnp.arange(K), value).tolist() == [1.0, 2.0]  # an integer table is cast
    with pytest.raises(ValueError, match=r"value.shape=\(2, 3\), table.shape=\(4,\)"):
        take_one_hot(jnp.zeros(4), value)


def test_categorical_error_gives_the_two_ways_out():
    def model():
        numpyro.sample("c", dist.Categorical(logits=jnp.zeros(K)))

    with pytest.raises(ValueError) as info:
        handlers.trace(handlers.seed(relax(model), 0)).get_trace()
    message = str(info.value)
    assert "site 'c'" in message and "OneHotCategorical(logits=...)" in message
    assert "take_one_hot(table, value)" in message and "value @ table" in message
    assert "config_enumerate" in message and "TraceEnum_ELBO" in message


# --- check_gradients: a relaxed value that gets no gradient --------------------------------

MEANS = jnp.array([-2.0, 0.0, 2.0])
X = jnp.array([-2.1, 0.2, 1.9, 2.2, -1.8])


def _mixture(use):
    def model(x):
        with numpyro.plate("data", len(x)):
            z = numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K)))
            numpyro.sample("x", dist.Normal(use(z), 1.0), obs=x)

    return model


def _guide(x):
    logits = numpyro.param("logits", jnp.zeros((len(x), K)))
    with numpyro.plate("data", len(x)):
        numpyro.sample("z", OneHotCategorical(logits=logits))


@pytest.mark.parametrize("estimator", ["gumbel"])  # concrete: in the torch twin (JAX time budget)
def test_check_gradients_warns_on_argmax_only(estimator):
    from numpyro_ext.diagnostics import check_gradients
    from relaxed_dists.diagnostics import NoGradientWarning

    key = jax.random.PRNGKey(0)
    guide = relax(_guide, estimator=estimator, temperature=0.5)
    model = relax(_mixture(lambda z: MEANS[z.argmax(-1)]), estimator=estimator, temperature=0.5)
    with pytest.warns(NoGradientWarning, match=r"site\(s\) \['z'\].*take_one_hot"):
        assert check_gradients(key, model, guide, X) == {"z": 0.0}
    # the same model through take_one_hot: a gradient, no warning (warnings are errors here)
    model = relax(_mixture(lambda z: take_one_hot(MEANS, z)), estimator=estimator, temperature=0.5)
    params = {"logits": jnp.ones((len(X), K))}  # as svi.get_params returns them
    norms = check_gradients(key, model, guide, X, params=params)
    assert list(norms) == ["z"] and norms["z"] > 0.1  # d/dz_k of -(x - mu_k)^2 / 2 is O(1) per point


# --- AutoNormal on a relaxed model: a clear error instead of a bare NotImplementedError ----


def test_autonormal_on_relaxed_model_says_what_to_do():
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer.autoguide import AutoNormal

    from numpyro_ext.distributions import RelaxedBernoulliStraightThrough

    def model(x):
        loc = numpyro.sample("loc", dist.Normal(jnp.zeros(K), 3.0).to_event(1))
        with numpyro.plate("data", len(x)):
            z = numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K)))
            numpyro.sample("x", dist.Normal(take_one_hot(loc, z), 1.0), obs=x)

    guide = AutoNormal(relax(model, estimator="reinmax"))
    with pytest.raises(ValueError, match=r"_ReparametrizedOneHot.*AutoRelaxed\(model, continuous=AutoNormal\)"):
        handlers.seed(guide, 0)(X)
    with pytest.raises(ValueError, match=r"_ReparametrizedBoolean.*handlers.block\(model, hide="):
        biject_to(RelaxedBernoulliStraightThrough(0.5, logits=jnp.zeros(2)).support)


# --- concrete at temperature 0.1 through relax: finite (the guide's pre-image is scored) ---


def test_relaxed_concrete_mixture_at_temperature_0_1_is_finite():
    """The issue's reproduction: ``relax(model/guide, estimator="concrete", temperature=0.1)`` on a
    mixture gave NaN losses (185 of 200 steps, before the pre-image table of
    ``numpyro_ext.distributions``): ``replay`` hands the model the guide's value, whose float32
    entries round to 0, and ``log(0)`` is ``-inf``. Now every loss is finite, under ``jit`` too."""
    from numpyro.infer import Trace_ELBO

    x = jnp.concatenate([X, X + 0.1]).astype(jnp.float32)  # the tests run with x64 on; users in float32
    spread = 4.0 * jax.random.normal(jax.random.PRNGKey(2), (len(x), K), jnp.float32)  # peaked: exact zeros

    def guide(x):
        logits = numpyro.param("logits", spread)
        with numpyro.plate("data", len(x)):
            numpyro.sample("z", OneHotCategorical(logits=logits))

    model = relax(_mixture(lambda z: take_one_hot(MEANS, z)), estimator="concrete", temperature=0.1)
    guide = relax(guide, estimator="concrete", temperature=0.1)
    value = handlers.trace(handlers.seed(guide, 0)).get_trace(x)["z"]["value"]
    assert bool((value == 0).any())  # the case that was -inf: an entry that underflowed
    loss_and_grad = jax.jit(jax.value_and_grad(lambda params, key: Trace_ELBO().loss(key, params, model, guide, x)))
    for seed in range(5):  # one compiled program, five draws: finite loss and gradient each time
        loss, grads = loss_and_grad({"logits": spread}, jax.random.PRNGKey(seed))
        assert np.isfinite(loss) and np.all(np.isfinite(grads["logits"]))
