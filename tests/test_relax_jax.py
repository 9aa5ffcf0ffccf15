"""``numpyro_ext.relax`` (the ``RelaxReparam`` handler, schedules) and ``numpyro_ext.kl`` (KL
registrations): site selection, wrappers kept, the estimator table, errors, gradients equal
to a hand-written relaxed guide, ``TraceMeanField_ELBO``, KL against enumeration, a schedule
advancing inside a jitted ``svi.update``, SVI without warnings, and ``TraceGraph_ELBO``
(REINFORCE) on the unrelaxed guide.

Mirrors ``tests/test_relax_torch.py`` test for test where the backends agree; the step tests
differ as the step does (a mutable site here). ``filterwarnings = error`` (pyproject): any
warning, SVI's "discrete latent variables" one included, fails a test.
"""

from __future__ import annotations

import doctest
import functools
import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from multipledispatch.conflict import ambiguities
from numpyro import handlers
from numpyro.distributions.kl import kl_divergence
from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from scipy import special, stats

from numpyro_ext.distributions import (
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
    RelaxedBernoulli,
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategorical,
    RelaxedOneHotCategoricalStraightThrough,
    StraightThrough,
)
from numpyro_ext.kl import ONE_HOT_CLASSES as KL_ONE_HOT_CLASSES, OUR_BERNOULLI_CLASSES
from numpyro_ext.relax import BERNOULLI_CLASSES, ONE_HOT_CLASSES, RelaxReparam, exponential_anneal, relax
from relaxed_dists import defaults, schedules
from relaxed_dists.registry import BERNOULLI_ESTIMATORS, ESTIMATORS

# These tests use small t_1 / n_steps on purpose, to exercise shapes, gradients and mappings;
# the REDGE family's SampleLawWarning (issue 15, D1) is tested in test_sample_law.py.
pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

# The modules by import_module: a package exporting the function ``relax`` shadows its module
# attribute ``numpyro_ext.relax``.
relax_module, kl_module = importlib.import_module("numpyro_ext.relax"), importlib.import_module("numpyro_ext.kl")

K, N = 4, 3
DATA = jnp.array([0.0, 1.0, 3.0])
LOCS = jnp.arange(K, dtype=jnp.float64)
# A correct estimator fails a seeded test at level ALPHA for a fraction ALPHA of seeds.
ALPHA = 1e-3


def _key(seed: int) -> jax.Array:
    # "rbg" keys compile faster than threefry on CPU (as tests/test_concrete_jax.py)
    return jax.random.key(seed, impl="rbg")


def _trace(fn, *args, seed=0, **kwargs):
    return handlers.trace(handlers.seed(fn, _key(seed))).get_trace(*args, **kwargs)


def _leaf(fn):
    return relax_module._unwrap(fn)[0]


def _mixed_program():
    """Two one-hot latents, a Bernoulli latent, an observed one-hot, an observed Bernoulli."""
    with numpyro.plate("data", N):
        numpyro.sample("z1", OneHotCategorical(logits=jnp.zeros(K)))
        numpyro.sample("z2", OneHotCategorical(probs=jnp.full(K, 1 / K)))
        numpyro.sample("b", dist.Bernoulli(logits=0.0))
        numpyro.sample("x", OneHotCategorical(logits=jnp.zeros(K)), obs=jnp.eye(K)[:N])
        numpyro.sample("y", dist.Bernoulli(logits=0.0), obs=jnp.ones(N))


# --- site selection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sites, relaxed",
    [
        (None, {"z1", "z2", "b"}),
        ("z1", {"z1"}),
        (["z1", "b"], {"z1", "b"}),
        (("z2",), {"z2"}),
        (lambda name, fn: name.startswith("z"), {"z1", "z2"}),
        (lambda name, fn: isinstance(_leaf(fn), dist.BernoulliLogits), {"b"}),
    ],
)
def test_site_selection(sites, relaxed):
    trace = _trace(relax(_mixed_program, sites, "gumbel"))
    expected = {"z1": RelaxedOneHotCategoricalStraightThrough, "z2": RelaxedOneHotCategoricalStraightThrough}
    expected["b"] = RelaxedBernoulliStraightThrough
    for name in ("z1", "z2", "b"):
        original = dist.BernoulliLogits if name == "b" else OneHotCategorical
        assert type(_leaf(trace[name]["fn"])) is (expected[name] if name in relaxed else original), name


def test_listed_site_missing_raises():
    relaxed = relax(_mixed_program, ["z1", "zz"], "gumbel")
    with pytest.raises(ValueError, match=r"sites \['zz'\] are not sample sites of '_mixed_program'; its sample sites"):
        _trace(relaxed)


def test_enumerated_sites_skipped_unless_named():
    def program():
        numpyro.sample("e", OneHotCategorical(logits=jnp.zeros(K)), infer={"enumerate": "parallel"})
        numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K)))

    relaxed = relax(program, estimator="redge")  # named: the test is about site selection, not the default
    with pytest.warns(UserWarning, match=r"left the sites \['e'\] discrete.*sites=\['e'\]"):
        trace = _trace(relaxed)
    assert type(trace["e"]["fn"]) is OneHotCategorical and type(trace["z"]["fn"]) is REDGE
    _trace(relaxed)  # warned once: a second trace is silent (warnings are errors here)
    assert type(_trace(relax(program, "e", "redge"))["e"]["fn"]) is REDGE  # named: relaxed, no warning


def test_observed_sites_untouched():
    trace = _trace(relax(_mixed_program, estimator="gumbel"))
    assert type(trace["x"]["fn"]) is OneHotCategorical and trace["x"]["is_observed"]
    np.testing.assert_array_equal(trace["x"]["value"], jnp.eye(K)[:N])
    assert type(_leaf(trace["y"]["fn"])) is dist.BernoulliLogits and trace["y"]["is_observed"]
    seen = []
    _trace(relax(_mixed_program, lambda name, fn: seen.append(name) or False))
    assert seen == ["z1", "z2", "b"]  # observed sites never reach the predicate


def test_conditioned_sites_untouched_even_categorical():
    def program():
        numpyro.sample("c", dist.Categorical(logits=jnp.zeros(K)))
        numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K)))

    conditioned = handlers.condition(program, data={"c": jnp.array(1), "z": jnp.eye(K)[2]})
    trace = _trace(relax(conditioned))
    assert type(trace["c"]["fn"]) is dist.CategoricalLogits and type(trace["z"]["fn"]) is OneHotCategorical
    # RelaxReparam leaves an observed site alone as well (used without relax's selector)
    fn, value = OneHotCategorical(logits=jnp.zeros(K)), jnp.eye(K)[0]
    new_fn, new_value = RelaxReparam()("z", fn, value)
    assert new_fn is fn and new_value is value


@pytest.mark.parametrize("categorical", [dist.CategoricalLogits, dist.CategoricalProbs], ids=lambda c: c.__name__)
@pytest.mark.parametrize("sites", [None, "c", ["c", "z"]])
def test_categorical_raises_naming_the_site(sites, categorical):
    def program():
        numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K)))
        with numpyro.plate("data", N):
            numpyro.sample("c", categorical(jnp.full(K, 1 / K)))

    with pytest.raises(ValueError, match=rf"site 'c' is a {categorical.__name__}.*declare it .*OneHotCategorical"):
        _trace(relax(program, sites))
    assert type(_leaf(_trace(relax(program, "z"))["c"]["fn"])) is categorical  # not selected: no error


def test_other_and_already_relaxed_sites_left_alone():
    fns = {
        "normal": dist.Normal(0.0, 1.0),
        "redge": REDGE(logits=jnp.zeros(K)),
        "concrete": RelaxedOneHotCategorical(0.5, logits=jnp.zeros(K)),
        "bernoulli_st": RelaxedBernoulliStraightThrough(0.5, logits=0.0),
    }

    def program():
        for name, fn in fns.items():
            numpyro.sample(name, fn)

    trace = _trace(relax(program, estimator="reinmax"))
    assert all(trace[name]["fn"] is fn for name, fn in fns.items())
    assert _trace(relax(program, "normal"))["normal"]["fn"] is fns["normal"]  # named: left alone too


def test_nested_relax_mixes_estimators():
    relaxed = relax(relax(_mixed_program, ["z1", "z2"], "redge"), estimator="gumbel")
    trace = _trace(relaxed)
    assert type(trace["z1"]["fn"]) is REDGE and type(trace["b"]["fn"]) is RelaxedBernoulliStraightThrough


def test_wraps_fn():
    def guide(data, scale=2):
        """doc"""
        return numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K))) * scale

    relaxed = relax(guide)
    assert relaxed.__name__ == "guide" and relaxed.__doc__ == "doc" and relaxed.__wrapped__ is guide
    assert handlers.seed(relaxed, _key(0))(None, scale=3).sum() == 3
    assert (
        repr(relaxed) == f"relax('guide', estimator={defaults.RELAX_ESTIMATOR!r}, step=0)"
    )  # the default, read at call time


# --- shapes, plates, Independent, masks ------------------------------------------------------------

MASK = jnp.array([True, False, True])
_LOGITS = jnp.array(np.random.default_rng(0).normal(size=(2, N, K)))
# Every site has batch shape (2, N) before its wrappers (eager JAX compiles each new shape once).
WRAPPED_SITES = {
    "plain": lambda: OneHotCategorical(logits=_LOGITS),
    "expand": lambda: OneHotCategorical(logits=_LOGITS[0, 0]).expand([2, N]),
    "expanded_distribution": lambda: dist.ExpandedDistribution(OneHotCategorical(logits=_LOGITS[0]), (2, N)),
    "to_event": lambda: OneHotCategorical(logits=_LOGITS).to_event(1),
    "mask": lambda: OneHotCategorical(logits=_LOGITS).mask(MASK),
    "mask_false": lambda: OneHotCategorical(logits=_LOGITS).mask(False),
    "mask_in_to_event": lambda: OneHotCategorical(logits=_LOGITS).mask(MASK).to_event(2),
    "bernoulli_to_event": lambda: dist.Bernoulli(logits=_LOGITS[..., 0]).to_event(1),
    "bernoulli_mask": lambda: dist.Bernoulli(logits=_LOGITS[..., 0]).mask(MASK),
}


def _wrappers(fn):
    """The wrapper chain as (kind, mask or ndims), outermost first; expansion is not a wrapper."""
    out = []
    while isinstance(fn, (dist.Independent, dist.MaskedDistribution, dist.ExpandedDistribution)):
        if isinstance(fn, dist.MaskedDistribution):
            out.append(("mask", fn._mask))
        elif isinstance(fn, dist.Independent):
            out.append(("independent", fn.reinterpreted_batch_ndims))
        fn = fn.base_dist
    return out


@pytest.mark.parametrize("case", sorted(WRAPPED_SITES))
def test_shapes_masks_and_plates_kept(case):
    make = WRAPPED_SITES[case]

    def program(in_plate):
        if not in_plate:
            return numpyro.sample("z", make())
        with numpyro.plate("outer", 5, dim=-1 - len(make().batch_shape)), handlers.scale(scale=2.0):
            return numpyro.sample("z", make())

    for in_plate in (False, True):
        original = _trace(program, in_plate)["z"]
        relaxed = _trace(relax(program, estimator="gumbel", temperature=0.5), in_plate)["z"]
        fn, new = original["fn"], relaxed["fn"]
        assert (new.batch_shape, new.event_shape) == (fn.batch_shape, fn.event_shape)
        assert relaxed["value"].shape == original["value"].shape
        assert new.log_prob(relaxed["value"]).shape == fn.log_prob(original["value"]).shape
        assert [kind for kind, _ in _wrappers(new)] == [kind for kind, _ in _wrappers(fn)]
        for (_, arg), (_, new_arg) in zip(_wrappers(fn), _wrappers(new)):
            np.testing.assert_array_equal(arg, new_arg)
        assert relaxed["cond_indep_stack"] == original["cond_indep_stack"] and relaxed["scale"] == original["scale"]
        binary = case.startswith("bernoulli")
        leaf = _leaf(new)
        assert type(leaf) is (RelaxedBernoulliStraightThrough if binary else RelaxedOneHotCategoricalStraightThrough)
        assert np.all(leaf.temperature == 0.5)
        if case == "mask_false":
            np.testing.assert_array_equal(new.log_prob(relaxed["value"]), jnp.zeros(fn.batch_shape))


def test_probs_or_logits_kept_as_given():
    probs, logits = jnp.array([0.1, 0.2, 0.3, 0.4]), jnp.array([1.0, 2.0, 3.0, 4.0])
    reparam = RelaxReparam("redge")
    from_probs = reparam.relax_distribution("z", OneHotCategorical(probs=probs))
    from_logits = reparam.relax_distribution("z", OneHotCategorical(logits=logits))
    assert "probs" in from_probs.__dict__ and "logits" not in from_probs.__dict__
    np.testing.assert_array_equal(from_probs.probs, probs)
    np.testing.assert_array_equal(from_logits.logits, logits)
    bern = RelaxReparam("concrete").relax_distribution("b", dist.Bernoulli(probs=probs))
    assert "probs" in bern.base_dist.__dict__ and "logits" not in bern.base_dist.__dict__
    np.testing.assert_array_equal(bern.probs, probs)
    assert bern.batch_shape == probs.shape


def test_validate_args_carried_over_and_dtype_kept():
    for validate_args in (False, True):
        site = OneHotCategorical(logits=jnp.zeros(K), validate_args=validate_args)
        assert RelaxReparam("st").relax_distribution("z", site)._validate_args is validate_args
    site = OneHotCategorical(logits=jnp.zeros(K, jnp.float32))
    relaxed = RelaxReparam("gumbel", temperature=jnp.array(0.5)).relax_distribution("z", site)  # a float64 array
    assert relaxed.sample(_key(0)).dtype == jnp.float32  # array hyperparameters take the site's dtype


# --- the estimator table and errors -------------------------------------------------------------------


def test_class_tables_cover_the_registry():
    assert set(ONE_HOT_CLASSES) == set(ESTIMATORS) and set(BERNOULLI_CLASSES) == set(BERNOULLI_ESTIMATORS)


ONE_HOT_EXPECTED = {
    "st": (StraightThrough, {}),
    "gumbel": (RelaxedOneHotCategoricalStraightThrough, {"temperature": 0.7}),
    "reinmax": (ReinMax, {"temperature": 0.7}),
    "redge": (REDGE, {"n_steps": 2, "t_1": 0.25}),
    "redge_cov": (REDGECov, {"n_steps": 2, "t_1": 0.25}),
    "reindge": (REINDGE, {"n_steps": 2, "t_1": 0.25}),
    "concrete": (RelaxedOneHotCategorical, {"temperature": 0.7}),
}


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_one_hot_mapping(estimator):
    cls, hyper = ONE_HOT_EXPECTED[estimator]
    fn = RelaxReparam(estimator, **hyper).relax_distribution("z", OneHotCategorical(logits=_LOGITS[0]))
    assert type(fn) is cls and fn.batch_shape == (N,) and fn.event_shape == (K,)
    for name, value in hyper.items():
        assert np.all(getattr(fn, name) == value), name
    default = RelaxReparam(estimator).relax_distribution("z", OneHotCategorical(logits=_LOGITS[0]))
    for name, value in ESTIMATORS[estimator].items():
        assert np.all(getattr(default, name) == value), name


BERNOULLI_EXPECTED = {
    "st": BernoulliStraightThrough,
    "gumbel": RelaxedBernoulliStraightThrough,
    "reinmax": BernoulliReinMax,
    "redge": BernoulliREDGE,
    "redge_cov": BernoulliREDGECov,
    "reindge": BernoulliREINDGE,
    "concrete": RelaxedBernoulli,
}


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_bernoulli_mapping(estimator):
    assert estimator in BERNOULLI_ESTIMATORS  # every estimator has a Bernoulli class
    _, hyper = ONE_HOT_EXPECTED[estimator]
    fn = RelaxReparam(estimator, **hyper).relax_distribution("b", dist.Bernoulli(logits=_LOGITS[0, :, 0]))
    assert type(fn) is BERNOULLI_EXPECTED[estimator] and fn.batch_shape == (N,) and fn.event_shape == ()
    for name, value in hyper.items():
        assert np.all(getattr(fn, name) == value), name


def test_bad_estimator_and_hyper_errors():
    with pytest.raises(ValueError, match="estimator must be one of .* got estimator='nope'"):
        relax(_mixed_program, estimator="nope")
    with pytest.raises(ValueError, match="estimator must be one of"):
        RelaxReparam("gumbel_softmax")
    with pytest.raises(TypeError, match=r"estimator='st' takes hyperparameters none, got unexpected \['temperature'\]"):
        relax(_mixed_program, estimator="st", temperature=1.0)
    with pytest.raises(TypeError, match=r"unexpected \['tau'\]"):
        relax(_mixed_program, estimator="gumbel", tau=1.0)
    with pytest.raises(ValueError, match="t_1 must be in"):
        relax(_mixed_program, estimator="redge", t_1=1.5)
    with pytest.raises(TypeError, match="n_steps must be an integer"):
        relax(_mixed_program, estimator="redge", n_steps=2.5)
    with pytest.raises(TypeError, match="n_steps is static .* cannot be a schedule"):
        relax(_mixed_program, estimator="redge", n_steps=lambda step: 3)
    with pytest.raises(TypeError, match="sites must be None, a site name"):
        relax(_mixed_program, sites=3)


def test_schedule_values_checked_when_evaluated():
    relaxed = relax(_mixed_program, estimator="gumbel", temperature=lambda step: 1.0 - step)
    _trace(relaxed)  # step 0: temperature 1.0
    relaxed.step = 1
    # the step is an array, so the value is an array: checked by the class (validation on, concrete)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got temperature=array"):
        _trace(relaxed)


def test_hyper_assignment_checked_at_once():
    relaxed = relax(_mixed_program, estimator="redge")
    with pytest.raises(TypeError, match=r"unexpected \['temperature'\]"):
        relaxed.hyper["temperature"] = 0.5
    with pytest.raises(ValueError, match="t_1 must be in"):
        relaxed.hyper["t_1"] = 0.0
    with pytest.raises(TypeError, match="n_steps is static"):
        relaxed.hyper["n_steps"] = lambda step: 3
    with pytest.raises(TypeError, match="cannot be removed"):
        del relaxed.hyper["t_1"]
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        relaxed.step = -1
    with pytest.raises(TypeError, match="step must be an integer >= 0"):
        relaxed.step = 1.5
    assert dict(relaxed.hyper) == {"n_steps": 5, "t_1": 0.5}


# --- gradients: relaxed guide == hand-written relaxed guide ---------------------------------------

HYPER = {name: hyper for name, (_, hyper) in ONE_HOT_EXPECTED.items()}
HAND_WRITTEN = {
    "st": lambda logits: StraightThrough(logits=logits),
    "gumbel": lambda logits: RelaxedOneHotCategoricalStraightThrough(0.7, logits=logits),
    "reinmax": lambda logits: ReinMax(0.7, logits=logits),
    "redge": lambda logits: REDGE(logits=logits, n_steps=2, t_1=0.25),
    "redge_cov": lambda logits: REDGECov(logits=logits, n_steps=2, t_1=0.25),
    "reindge": lambda logits: REINDGE(logits=logits, n_steps=2, t_1=0.25),
    "concrete": lambda logits: RelaxedOneHotCategorical(0.7, logits=logits),
}


def _model(data):
    with numpyro.plate("data", N):
        z = numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K)))
        numpyro.sample("x", dist.Normal(z @ LOCS, 1.0), obs=data)


def _guide(data):
    q_logits = numpyro.param("q_logits", jnp.zeros((N, K)))
    with numpyro.plate("data", N):
        numpyro.sample("z", OneHotCategorical(logits=q_logits))


def _loss_and_grads(guide, model, params, elbo=Trace_ELBO()):
    loss = lambda params: elbo.loss(_key(1), params, model, guide, DATA)  # noqa: E731
    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_gradients_equal_hand_written_guide(estimator):
    def hand_guide(data):
        q_logits = numpyro.param("q_logits", jnp.zeros((N, K)))
        with numpyro.plate("data", N):
            numpyro.sample("z", HAND_WRITTEN[estimator](q_logits))

    # the same model for both guides (relaxed: a "concrete" guide's simplex values need its density)
    model = relax(_model, estimator=estimator, **HYPER[estimator])
    params = {"q_logits": _LOGITS[0]}
    loss, grads = _loss_and_grads(relax(_guide, estimator=estimator, **HYPER[estimator]), model, params)
    hand_loss, hand_grads = _loss_and_grads(hand_guide, model, params)
    # same key, same class, same parameter: the same program, so bitwise equal
    assert loss == hand_loss and np.isfinite(loss)
    np.testing.assert_array_equal(grads["q_logits"], hand_grads["q_logits"])
    assert np.count_nonzero(grads["q_logits"]) > 0  # and a gradient does reach the guide's logits


def test_gradients_equal_hand_written_guide_probs_and_bernoulli():
    def probs_model():
        numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(K)))
        numpyro.sample("b", dist.Bernoulli(logits=jnp.zeros(N)).to_event(1))

    def probs_guide():
        numpyro.sample("z", OneHotCategorical(probs=numpyro.param("probs", jnp.full(K, 1 / K))))
        numpyro.sample("b", dist.Bernoulli(logits=numpyro.param("b_logits", jnp.zeros(N))).to_event(1))

    def hand_guide():
        numpyro.sample("z", RelaxedOneHotCategoricalStraightThrough(0.5, probs=numpyro.param("probs", jnp.zeros(K))))
        numpyro.sample(
            "b", RelaxedBernoulliStraightThrough(0.5, logits=numpyro.param("b_logits", jnp.zeros(N))).to_event(1)
        )

    def run(guide):
        params = {"probs": jnp.array([0.1, 0.2, 0.3, 0.4]), "b_logits": jnp.array([-1.0, 0.5, 2.0])}
        loss = lambda p: Trace_ELBO().loss(_key(2), p, relax(probs_model, estimator="gumbel"), guide)  # noqa: E731
        return jax.jit(jax.value_and_grad(loss))(params)

    (loss, grads), (hand_loss, hand_grads) = (
        run(relax(probs_guide, estimator="gumbel", temperature=0.5)),
        run(hand_guide),
    )
    assert loss == hand_loss and all(np.array_equal(grads[k], hand_grads[k]) for k in grads)


def test_concrete_relaxes_model_and_guide_together():
    guide, params = relax(_guide, estimator="concrete", temperature=0.1), {"q_logits": _LOGITS[0]}
    # the one-hot prior rejects a simplex point (eager, concrete): NumPyro's warning, and a log
    # density of -inf, so an infinite loss
    with pytest.warns(UserWarning, match="Out-of-support values .*the support of OneHotCategorical"):
        assert Trace_ELBO().loss(_key(1), params, _model, guide, DATA) == np.inf
    loss, grads = _loss_and_grads(guide, relax(_model, estimator="concrete", temperature=0.1), params)
    assert np.isfinite(loss) and np.all(np.isfinite(grads["q_logits"]))


def test_array_hyper_is_differentiable():
    def loss(t_1):
        guide = relax(_guide, estimator="redge", t_1=t_1)
        return Trace_ELBO().loss(_key(3), {"q_logits": _LOGITS[0]}, _model, guide, DATA)

    grad = jax.jit(jax.grad(loss))(jnp.array(0.5))
    assert np.isfinite(grad) and grad != 0


# --- TraceMeanField_ELBO and the KL registrations ------------------------------------------------------


@pytest.mark.parametrize("estimator", ["redge", "reinmax", "gumbel"])
def test_mean_field_elbo_uses_the_categorical_kl(estimator):
    # The model's prior stays an (unrelaxed) OneHotCategorical; the guide is relaxed.
    relaxed = relax(_guide, estimator=estimator)
    loss = TraceMeanField_ELBO(sum_sites=False).loss(_key(4), {"q_logits": _LOGITS[0]}, _model, relaxed, DATA)
    log_q = special.log_softmax(np.asarray(_LOGITS[0]), -1)
    enumerated = np.sum(np.exp(log_q) * (log_q + np.log(K)))  # KL(q || uniform), summed over the plate
    np.testing.assert_allclose(loss["z"], enumerated, rtol=1e-12)  # float64, the same sums in another order
    assert type(_trace(relaxed, DATA)["z"]["fn"]) is ONE_HOT_CLASSES[estimator]


ONE_HOT_KL_CLASSES = KL_ONE_HOT_CLASSES
BINARY_KL_CLASSES = (RelaxedBernoulliStraightThrough, dist.BernoulliProbs, dist.BernoulliLogits)


def _one_hot(cls, logits):
    if cls in (RelaxedOneHotCategoricalStraightThrough, ReinMax):
        return cls(0.5, logits=logits)  # a temperature, which plays no part in the KL
    return cls(logits=logits)


def _enumerated_kl(p, q, support):
    """``sum_v p(v) (log p(v) - log q(v))`` over ``support`` from the classes' ``log_prob`` (float64)."""
    log_p = np.stack([np.asarray(p.log_prob(v)) for v in support])
    log_q = np.stack([np.asarray(q.log_prob(v)) for v in support])
    return np.sum(np.where(log_p == -np.inf, 0.0, np.exp(log_p) * (log_p - log_q)), 0)


def test_one_hot_kl_against_enumeration():
    rng = np.random.default_rng(1)
    logits_p, logits_q = jnp.array(rng.normal(size=(2, 3, 5)) * 3), jnp.array(rng.normal(size=(3, 5)) * 3)
    support = jnp.eye(5)[:, None, None, :]
    for cls_p, cls_q in itertools.product(ONE_HOT_KL_CLASSES, repeat=2):
        p, q = _one_hot(cls_p, logits_p), _one_hot(cls_q, logits_q)
        expected = _enumerated_kl(p, q, support)
        kl = kl_divergence(p, q)
        assert kl.shape == (2, 3), (cls_p, cls_q)  # the batch shapes broadcast
        # float64 sums of 5 terms computed in a different order
        np.testing.assert_allclose(kl, expected, rtol=1e-12, atol=1e-14, err_msg=f"{cls_p} {cls_q}")


def test_bernoulli_kl_against_enumeration():
    rng = np.random.default_rng(2)
    logits_p, logits_q = jnp.array(rng.normal(size=(2, 3)) * 3), jnp.array(rng.normal(size=(2, 3)) * 3)

    def make(cls, logits):
        if cls is RelaxedBernoulliStraightThrough:
            return cls(0.5, logits=logits)
        return cls(jax.nn.sigmoid(logits)) if cls is dist.BernoulliProbs else cls(logits)

    for cls_p, cls_q in itertools.product(BINARY_KL_CLASSES, repeat=2):
        if RelaxedBernoulliStraightThrough not in (cls_p, cls_q):
            continue  # NumPyro's own pairs are NumPyro's business
        p, q = make(cls_p, logits_p), make(cls_q, logits_q)
        # float64, two terms; BernoulliProbs round-trips its logits through sigmoid/log: a few ulps
        np.testing.assert_allclose(
            kl_divergence(p, q), _enumerated_kl(p, q, jnp.array([0.0, 1.0])), rtol=1e-12, atol=1e-14
        )


def test_kl_with_zero_probabilities_is_stable():
    logits_p = jnp.array([0.0, -jnp.inf, 1.0])
    uniform = OneHotCategorical(logits=jnp.zeros(3))
    kl = lambda lg: kl_divergence(REDGE(logits=lg, validate_args=False), uniform)  # noqa: E731  (-inf logits)
    log_p = special.log_softmax(np.array([0.0, 1.0]))
    np.testing.assert_allclose(kl(logits_p), np.sum(np.exp(log_p) * (log_p + np.log(3))), rtol=1e-12)  # float64
    grad = jax.grad(kl)(logits_p)
    assert np.all(np.isfinite(grad)) and grad[1] == 0  # the double where keeps -inf out of the gradient
    p = REDGE(logits=logits_p, validate_args=False)
    assert kl_divergence(uniform, p) == np.inf  # q has a zero where p has mass
    assert kl_divergence(p, p) == 0
    zero_prob = StraightThrough(probs=jnp.array([0.5, 0.5, 0.0]))  # probs 0: a masked class, logit -inf
    np.testing.assert_allclose(kl_divergence(zero_prob, uniform), np.log(1.5), rtol=1e-12)  # log(0.5 * 3), float64
    assert kl_divergence(uniform, zero_prob) == np.inf
    grad = jax.grad(lambda p: kl_divergence(StraightThrough(probs=p, validate_args=False), uniform))(zero_prob.probs)
    assert np.all(np.isfinite(grad)) and grad[2] == 0  # the double where in log(probs)


def test_kl_errors_and_no_ambiguity():
    with pytest.raises(NotImplementedError, match=r"REDGE\(hard=False\)"):
        kl_divergence(REDGE(logits=jnp.zeros(K), hard=False), OneHotCategorical(logits=jnp.zeros(K)))
    with pytest.raises(ValueError, match="equal event shapes"):
        kl_divergence(StraightThrough(logits=jnp.zeros(3)), OneHotCategorical(logits=jnp.zeros(4)))
    ours = set(KL_ONE_HOT_CLASSES) | set(OUR_BERNOULLI_CLASSES)
    assert [pair for pair in ambiguities(kl_divergence.funcs) if ours & set(pair[0] + pair[1])] == []


def test_no_kl_against_integer_categorical():
    with pytest.raises(NotImplementedError):
        kl_divergence(REDGE(logits=jnp.zeros(K)), dist.Categorical(logits=jnp.zeros(K)))


# --- schedules -------------------------------------------------------------------------------------


def test_exponential_anneal_matches_core():
    steps = jnp.arange(0, 200, 7)
    values = exponential_anneal(steps, 0.03, 0.2, 2.0)
    expected = [schedules.exponential_anneal(int(s), 0.03, 0.2, 2.0) for s in steps]
    np.testing.assert_allclose(values, expected, rtol=1e-15)  # float64: XLA's exp vs libm's, an ulp or so
    assert jax.jit(exponential_anneal, static_argnums=(1, 2))(jnp.array(3, jnp.int32), 0.1, 0.5).shape == ()
    assert exponential_anneal(jnp.array(3.0, jnp.float32), 0.1, 0.5).dtype == jnp.float32
    with pytest.raises(ValueError, match="minimum must be a finite number > 0"):
        exponential_anneal(0, 0.1, 0.0)
    with pytest.raises(ValueError, match="rate must be >= 0"):
        exponential_anneal(0, -0.1, 0.5)


def test_temperature_follows_schedule_and_is_settable():
    def schedule(step):
        return exponential_anneal(step, 0.5, 0.3)

    relaxed = relax(_mixed_program, "z1", "gumbel", temperature=schedule)
    for step in (0, 3):
        relaxed.step = step
        trace = _trace(relaxed)
        assert np.all(trace["z1"]["fn"].temperature == schedule(step)) and relaxed.step == step  # no auto-advance
        assert trace[relaxed.step_site]["value"]["step"] == step  # stored unchanged (the state SVI.init records)
    stored = {relaxed.step_site: {"step": jnp.array(100, jnp.int32)}}
    trace = _trace(handlers.substitute(relaxed, stored))
    assert np.all(trace["z1"]["fn"].temperature == 0.3) and trace[relaxed.step_site]["value"]["step"] == 101
    assert stored[relaxed.step_site]["step"] == 100  # substitute hands over a copy: the caller's state is kept
    relaxed.hyper["temperature"] = 0.7
    assert np.all(_trace(relaxed)["z1"]["fn"].temperature == 0.7)
    assert relaxed.step_site not in _trace(relaxed)  # no schedule, no mutable site
    relaxed.hyper["temperature"] = lambda step: 1.0 / (step + 1)
    assert np.all(_trace(relaxed)["z1"]["fn"].temperature == 0.25)


def test_schedule_advances_inside_jitted_svi_update():
    schedule = functools.partial(exponential_anneal, rate=0.3, minimum=0.2)
    seen = []  # (step, temperature) of every guide call, recorded from inside the compiled update

    def recorded(step):
        temperature = schedule(step)
        jax.debug.callback(lambda s, t: seen.append((int(s), float(t))), step, temperature)
        return temperature

    guide = relax(_guide, estimator="gumbel", temperature=recorded)
    model = relax(_model, estimator="gumbel", temperature=schedule)
    assert guide.step_site != model.step_site  # one step each
    svi = SVI(model, guide, optax.adam(0.1), Trace_ELBO())
    state = svi.init(_key(5), DATA)
    assert int(state.mutable_state[guide.step_site]["step"]) == 0 and seen == [(0, 1.0)]
    update = jax.jit(svi.update)
    for s in range(1, 5):
        state, _ = update(state, DATA)
        for site in (guide.step_site, model.step_site):
            assert int(state.mutable_state[site]["step"]) == s  # each update advances each step once
    steps, temperatures = zip(*seen[1:])
    assert steps == (0, 1, 2, 3) and len(set(temperatures)) == 4  # the temperature changed at every update
    np.testing.assert_allclose(temperatures, [schedules.exponential_anneal(s, 0.3, 0.2) for s in steps], rtol=1e-15)
    # set directly: the stored step of a running SVI
    mutable_state = {**state.mutable_state, guide.step_site: {"step": jnp.array(20, jnp.int32)}}
    state, _ = update(state._replace(mutable_state=mutable_state), DATA)
    assert seen[-1] == (20, 0.2) and int(state.mutable_state[guide.step_site]["step"]) == 21


# --- SVI --------------------------------------------------------------------------------------------


def test_svi_relaxed_guide_and_model_jit_without_warnings():
    # filterwarnings=error: a "discrete latent variables" warning from SVI fails this test.
    for elbo in (Trace_ELBO(), TraceMeanField_ELBO()):
        svi = SVI(relax(_model), relax(_guide), optax.adam(0.1), elbo)
        state = svi.init(_key(6), DATA)
        update = jax.jit(svi.update)
        losses = []
        for _ in range(3):
            state, loss = update(state, DATA)
            losses.append(float(loss))
        assert np.all(np.isfinite(losses)) and state.mutable_state is None, elbo  # no schedule: no mutable site
    with pytest.warns(UserWarning, match="discrete latent variables"):  # why the docs say: relax the model too
        SVI(_model, relax(_guide), optax.adam(0.1), Trace_ELBO()).init(_key(6), DATA)


@pytest.mark.statistical
def test_trace_graph_elbo_on_the_unrelaxed_guide_is_the_reinforce_baseline():
    # REINFORCE (TraceGraph_ELBO on the OneHotCategorical guide) is unbiased: the mean of 4000
    # seeded surrogate gradients matches the exact gradient by enumeration, by a z-test at level
    # ALPHA on each of the 12 coordinates (Bonferroni: false-failure rate <= ALPHA).
    SVI(_model, _guide, optax.adam(0.1), TraceGraph_ELBO()).init(_key(7), DATA)  # can_infer_discrete: no warning
    q_logits = _LOGITS[1]
    surrogate = lambda key, lg: TraceGraph_ELBO().loss(key, {"q_logits": lg}, _model, _guide, DATA)  # noqa: E731
    grads = jax.jit(jax.vmap(jax.grad(surrogate, argnums=1), (0, None)))(jax.random.split(_key(8), 4000), q_logits)

    def exact_loss(lg):  # -ELBO summed over the K^N = 64 joint values of z
        values = jnp.eye(K)[jnp.array(list(itertools.product(range(K), repeat=N)))]
        log_q = jnp.sum(values * jax.nn.log_softmax(lg), axis=(-2, -1))
        log_joint = -N * jnp.log(K) + jnp.sum(dist.Normal(values @ LOCS, 1.0).log_prob(DATA), -1)
        return -jnp.sum(jnp.exp(log_q) * (log_joint - log_q))

    z = (np.mean(grads, 0) - jax.grad(exact_loss)(q_logits)) / (np.std(grads, 0) / np.sqrt(len(grads)))
    assert np.max(np.abs(z)) < stats.norm.isf(ALPHA / (2 * z.size))


# --- docs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [relax_module, kl_module], ids=["relax", "kl"])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0
