"""``pyro_ext.relax`` (the ``RelaxReparam`` handler, schedules) and ``pyro_ext.kl`` (KL
registrations): site selection, wrappers kept, the estimator table, errors, gradients equal
to a hand-written relaxed guide, mean-field ELBO, KL against enumeration, and SVI runs."""

from __future__ import annotations

import doctest
import importlib
import itertools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam
from torch.distributions import kl_divergence

from pyro_ext.distributions import (
    REDGE,
    REINDGE,
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    BernoulliReinMax,
    BernoulliStraightThrough,
    REDGECov,
    ReinMax,
    RelaxedBernoulli,
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategorical,
    RelaxedOneHotCategoricalStraightThrough,
    StraightThrough,
)
from pyro_ext.kl import HARD_ONE_HOT_CLASSES
from pyro_ext.relax import BERNOULLI_CLASSES, ONE_HOT_CLASSES, RelaxReparam, exponential_anneal, relax
from relaxed_dists import schedules
from relaxed_dists.registry import BERNOULLI_ESTIMATORS, ESTIMATORS

# These tests use small t_1 / n_steps on purpose, to exercise shapes, gradients and mappings;
# the REDGE family's SampleLawWarning (issue 15, D1) is tested in test_sample_law.py.
pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

K, N = 4, 3
HARD_ESTIMATORS = ("st", "gumbel", "reinmax", "redge", "redge_cov", "reindge")


@pytest.fixture(autouse=True)
def _fresh_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)


def _trace(fn, *args, **kwargs):
    return poutine.trace(fn).get_trace(*args, **kwargs).nodes


def _leaf(fn):
    while isinstance(fn, (torch.distributions.Independent, MaskedDistribution, ExpandedDistribution)):
        fn = fn.base_dist
    return fn


def _mixed_program():
    """Two one-hot latents, a Bernoulli latent, an observed one-hot, an observed Bernoulli."""
    with pyro.plate("data", N):
        pyro.sample("z1", dist.OneHotCategorical(logits=torch.zeros(K)))
        pyro.sample("z2", dist.OneHotCategorical(probs=torch.full((K,), 1 / K)))
        pyro.sample("b", dist.Bernoulli(logits=torch.zeros(())))
        pyro.sample("x", dist.OneHotCategorical(logits=torch.zeros(K)), obs=torch.eye(K)[:N])
        pyro.sample("y", dist.Bernoulli(logits=torch.zeros(())), obs=torch.ones(N))


# --- site selection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sites, relaxed",
    [
        (None, {"z1", "z2", "b"}),
        ("z1", {"z1"}),
        (["z1", "b"], {"z1", "b"}),
        (("z2",), {"z2"}),
        (lambda name, fn: name.startswith("z"), {"z1", "z2"}),
        (lambda name, fn: isinstance(fn, dist.Bernoulli), {"b"}),
    ],
)
def test_site_selection(sites, relaxed):
    nodes = _trace(relax(_mixed_program, sites, "gumbel"))
    expected_class = {"z1": RelaxedOneHotCategoricalStraightThrough, "z2": RelaxedOneHotCategoricalStraightThrough}
    expected_class["b"] = RelaxedBernoulliStraightThrough
    for name in ("z1", "z2", "b"):
        original = dist.Bernoulli if name == "b" else dist.OneHotCategorical
        assert type(nodes[name]["fn"]) is (expected_class[name] if name in relaxed else original), name


def test_listed_site_missing_raises():
    relaxed = relax(_mixed_program, ["z1", "zz"], "gumbel")
    with pytest.raises(ValueError, match=r"sites \['zz'\] are not sample sites of '_mixed_program'; its sample sites"):
        relaxed()
    assert relaxed.step == 0  # a call that raised does not advance the step


def test_enumerated_sites_skipped_unless_named():
    def program():
        pyro.sample("e", dist.OneHotCategorical(logits=torch.zeros(K)), infer={"enumerate": "parallel"})
        pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K)))

    relaxed = relax(program, estimator="redge")
    with pytest.warns(UserWarning, match=r"left the sites \['e'\] discrete.*sites=\['e'\]"):
        nodes = _trace(relaxed)
    assert type(nodes["e"]["fn"]) is dist.OneHotCategorical and type(nodes["z"]["fn"]) is REDGE
    _trace(relaxed)  # warned once: a second call is silent (warnings are errors here)
    assert type(_trace(relax(program, "e", estimator="redge"))["e"]["fn"]) is REDGE  # named: relaxed, no warning


def test_observed_sites_untouched():
    obs_x, obs_y = torch.eye(K)[:N], torch.ones(N)
    nodes = _trace(relax(_mixed_program, estimator="gumbel"))
    assert type(nodes["x"]["fn"]) is dist.OneHotCategorical and nodes["x"]["value"] is not None
    assert torch.equal(nodes["x"]["value"], obs_x) and torch.equal(nodes["y"]["value"], obs_y)
    assert type(nodes["y"]["fn"]) is dist.Bernoulli and nodes["y"]["is_observed"]


def test_conditioned_sites_untouched_even_categorical():
    def program():
        pyro.sample("c", dist.Categorical(logits=torch.zeros(K)))
        pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K)))

    conditioned = poutine.condition(program, data={"c": torch.tensor(1), "z": torch.eye(K)[2]})
    nodes = _trace(relax(conditioned))
    assert type(nodes["c"]["fn"]) is dist.Categorical and type(nodes["z"]["fn"]) is dist.OneHotCategorical
    # RelaxReparam.apply leaves an observed message alone as well (used without relax's selector)
    fn = dist.OneHotCategorical(logits=torch.zeros(K))
    msg = {"name": "z", "fn": fn, "value": torch.eye(K)[0], "is_observed": True}
    out = RelaxReparam().apply(msg)
    assert out["fn"] is msg["fn"] and out["value"] is msg["value"] and out["is_observed"]


@pytest.mark.parametrize("sites", [None, "c", ["c", "z"]])
def test_categorical_raises_naming_the_site(sites):
    def program():
        pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K)))
        with pyro.plate("data", N):
            pyro.sample("c", dist.Categorical(logits=torch.zeros(K)))

    with pytest.raises(ValueError, match=r"site 'c' is a Categorical.*declare it OneHotCategorical"):
        relax(program, sites)()
    assert type(_trace(relax(program, "z"))["c"]["fn"]) is dist.Categorical  # not selected: no error


def test_other_and_already_relaxed_sites_left_alone():
    fns = {
        "normal": dist.Normal(0.0, 1.0),
        "redge": REDGE(logits=torch.zeros(K)),
        "pyro_st": dist.OneHotCategoricalStraightThrough(logits=torch.zeros(K)),
        "concrete": RelaxedOneHotCategorical(0.5, logits=torch.zeros(K)),
    }

    def program():
        for name, fn in fns.items():
            pyro.sample(name, fn)

    nodes = _trace(relax(program, estimator="reinmax"))
    assert all(nodes[name]["fn"] is fn for name, fn in fns.items())


def test_nested_relax_mixes_estimators():
    relaxed = relax(relax(_mixed_program, ["z1", "z2"], "redge"), estimator="gumbel")
    nodes = _trace(relaxed)
    assert type(nodes["z1"]["fn"]) is REDGE and type(nodes["b"]["fn"]) is RelaxedBernoulliStraightThrough
    assert relaxed.step == 1 and relaxed.fn.step == 1  # each layer counts its own calls


def test_wraps_fn():
    def guide(data, scale=2):
        """doc"""
        return pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K))) * scale

    relaxed = relax(guide)
    assert relaxed.__name__ == "guide" and relaxed.__doc__ == "doc" and relaxed.__wrapped__ is guide
    assert relaxed(None, scale=3).sum() == 3


# --- shapes, plates, Independent, masks ------------------------------------------------------------

MASK = torch.tensor([True, False, True])
WRAPPED_SITES = {
    "plain": lambda: dist.OneHotCategorical(logits=torch.randn(N, K)),
    "expand": lambda: dist.OneHotCategorical(logits=torch.randn(K)).expand([2, N]),
    "expanded_distribution": lambda: ExpandedDistribution(dist.OneHotCategorical(logits=torch.randn(N, K)), [2, N]),
    "to_event": lambda: dist.OneHotCategorical(logits=torch.randn(2, N, K)).to_event(1),
    "mask": lambda: dist.OneHotCategorical(logits=torch.randn(N, K)).mask(MASK),
    "mask_false": lambda: dist.OneHotCategorical(logits=torch.randn(N, K)).mask(False),
    "mask_in_to_event": lambda: dist.OneHotCategorical(logits=torch.randn(2, N, K)).mask(MASK).to_event(2),
    "bernoulli_to_event": lambda: dist.Bernoulli(logits=torch.randn(2, N)).to_event(1),
    "bernoulli_mask": lambda: dist.Bernoulli(probs=torch.rand(N)).mask(MASK),
}


def _wrappers(fn):
    """The wrapper chain as (kind, mask or ndims), outermost first; expansion is not a wrapper."""
    out = []
    while isinstance(fn, (torch.distributions.Independent, MaskedDistribution, ExpandedDistribution)):
        if isinstance(fn, MaskedDistribution):
            out.append(("mask", fn._mask))
        elif isinstance(fn, torch.distributions.Independent):
            out.append(("independent", fn.reinterpreted_batch_ndims))
        fn = fn.base_dist
    return out


@pytest.mark.parametrize("in_plate", [False, True])
@pytest.mark.parametrize("case", sorted(WRAPPED_SITES))
def test_shapes_masks_and_plates_kept(case, in_plate):
    make = WRAPPED_SITES[case]

    def program():
        if not in_plate:
            return pyro.sample("z", make())
        with pyro.plate("outer", 5, dim=-1 - len(make().batch_shape)):  # broadcasts the site
            return pyro.sample("z", make())

    estimator = "gumbel"
    original, relaxed = _trace(program)["z"], _trace(relax(program, estimator=estimator, temperature=0.5))["z"]
    fn, new = original["fn"], relaxed["fn"]
    assert (new.batch_shape, new.event_shape) == (fn.batch_shape, fn.event_shape)
    assert relaxed["value"].shape == original["value"].shape
    assert new.log_prob(relaxed["value"]).shape == fn.log_prob(original["value"]).shape
    assert [kind for kind, _ in _wrappers(new)] == [kind for kind, _ in _wrappers(fn)]
    for (_, arg), (_, new_arg) in zip(_wrappers(fn), _wrappers(new)):
        assert torch.equal(torch.as_tensor(arg), torch.as_tensor(new_arg))
    assert relaxed["cond_indep_stack"] == original["cond_indep_stack"]
    leaf = _leaf(new)
    binary = case.startswith("bernoulli")
    assert type(leaf) is (RelaxedBernoulliStraightThrough if binary else RelaxedOneHotCategoricalStraightThrough)
    assert torch.all(leaf.temperature == 0.5)
    if case == "mask_false":
        assert torch.equal(new.log_prob(relaxed["value"]), torch.zeros(fn.batch_shape))


def test_probs_or_logits_kept_as_given():
    probs, logits = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    reparam = RelaxReparam("redge")
    from_probs = reparam.relax_distribution("z", dist.OneHotCategorical(probs=probs))
    from_logits = reparam.relax_distribution("z", dist.OneHotCategorical(logits=logits))
    assert "probs" in from_probs.__dict__ and "logits" not in from_probs.__dict__
    assert torch.equal(from_probs.probs, probs / probs.sum())  # torch normalises probs so
    assert torch.equal(from_logits.logits, logits - logits.logsumexp(-1))  # and logits so
    bern = RelaxReparam("concrete").relax_distribution("b", dist.Bernoulli(probs=probs))
    assert "probs" in bern.base_dist.__dict__ and "logits" not in bern.base_dist.__dict__
    assert torch.equal(bern.probs, probs) and bern.temperature.shape == probs.shape  # Bernoulli keeps probs as given


def test_validate_args_carried_over():
    for validate_args in (False, True):
        site = dist.OneHotCategorical(logits=torch.zeros(K), validate_args=validate_args)
        assert RelaxReparam("st").relax_distribution("z", site)._validate_args is validate_args


# --- the estimator table and errors -------------------------------------------------------------------


def test_class_tables_cover_the_registry():
    assert set(ONE_HOT_CLASSES) == set(ESTIMATORS) and set(BERNOULLI_CLASSES) == set(BERNOULLI_ESTIMATORS)


ONE_HOT_EXPECTED = {
    "st": (StraightThrough, {}),
    "gumbel": (RelaxedOneHotCategoricalStraightThrough, {"temperature": 0.7}),
    "reinmax": (ReinMax, {"temperature": 0.7}),
    "redge": (REDGE, {"n_steps": 3, "t_1": 0.25}),
    "redge_cov": (REDGECov, {"n_steps": 3, "t_1": 0.25}),
    "reindge": (REINDGE, {"n_steps": 3, "t_1": 0.25}),
    "concrete": (RelaxedOneHotCategorical, {"temperature": 0.7}),
}


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_one_hot_mapping(estimator):
    cls, hyper = ONE_HOT_EXPECTED[estimator]
    fn = RelaxReparam(estimator, **hyper).relax_distribution("z", dist.OneHotCategorical(logits=torch.randn(N, K)))
    assert type(fn) is cls and fn.batch_shape == (N,) and fn.event_shape == (K,)
    assert fn.rsample((2,)).shape == (2, N, K)
    for name, value in hyper.items():
        assert torch.all(torch.as_tensor(getattr(fn, name)) == torch.as_tensor(value, dtype=torch.float32)), name
    default = RelaxReparam(estimator).relax_distribution("z", dist.OneHotCategorical(logits=torch.randn(N, K)))
    for name, value in ESTIMATORS[estimator].items():
        assert torch.all(torch.as_tensor(getattr(default, name)) == value), name


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
    # every estimator relaxes a Bernoulli site, with the hyperparameters of its one-hot class
    _, hyper = ONE_HOT_EXPECTED[estimator]
    fn = RelaxReparam(estimator, **hyper).relax_distribution("b", dist.Bernoulli(logits=torch.randn(N)))
    assert type(fn) is BERNOULLI_EXPECTED[estimator]
    assert fn.batch_shape == (N,) and fn.rsample((2,)).shape == (2, N)
    for name, value in hyper.items():
        assert torch.all(torch.as_tensor(getattr(fn, name)) == torch.as_tensor(value, dtype=torch.float32)), name


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
    with pytest.raises(TypeError, match="sites must be None, a site name"):
        relax(_mixed_program, sites=3)


def test_schedule_values_checked_when_evaluated():
    relaxed = relax(_mixed_program, estimator="gumbel", temperature=lambda step: 1.0 - step)
    relaxed()  # step 0: temperature 1.0
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got temperature=0.0"):
        relaxed()
    assert relaxed.step == 1  # a call that raised does not advance the step


def test_hyper_assignment_checked_at_once():
    relaxed = relax(_mixed_program, estimator="redge")
    with pytest.raises(TypeError, match=r"unexpected \['temperature'\]"):
        relaxed.hyper["temperature"] = 0.5
    with pytest.raises(ValueError, match="t_1 must be in"):
        relaxed.hyper["t_1"] = 0.0
    with pytest.raises(TypeError, match="cannot be removed"):
        del relaxed.hyper["t_1"]
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        relaxed.step = -1
    with pytest.raises(TypeError, match="step must be an integer >= 0"):
        relaxed.step = 1.5
    assert dict(relaxed.hyper) == {"n_steps": 5, "t_1": 0.5}


# --- gradients: relaxed guide == hand-written relaxed guide ---------------------------------------

# Hand-written guides build the estimator's class from what torch's OneHotCategorical stores:
# ``logits - logsumexp(logits)`` (or ``probs / sum(probs)``), so the two guides run the same ops.
HAND_WRITTEN = {
    "st": lambda logits: StraightThrough(logits=logits),
    "gumbel": lambda logits: RelaxedOneHotCategoricalStraightThrough(1.0, logits=logits),
    "reinmax": lambda logits: ReinMax(1.0, logits=logits),
    "redge": lambda logits: REDGE(logits=logits, n_steps=5, t_1=0.5),
    "redge_cov": lambda logits: REDGECov(logits=logits, n_steps=5, t_1=0.5),
    "reindge": lambda logits: REINDGE(logits=logits, n_steps=5, t_1=0.5),
}


def _model(data, locs, q_logits):
    with pyro.plate("data", N):
        z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K)))
        pyro.sample("x", dist.Normal(z @ locs, 1.0).to_event(1), obs=data)


def _guide(data, locs, q_logits):
    with pyro.plate("data", N):
        pyro.sample("z", dist.OneHotCategorical(logits=q_logits))


def _loss_and_grads(guide, elbo=None, model=_model):
    data = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    locs = torch.linspace(-1, 1, 2 * K).reshape(K, 2).requires_grad_()
    q_logits = torch.tensor([[0.1, -0.3, 0.7, 0.0], [2.0, 1.0, -1.0, 0.0], [-0.5, 0.5, 0.0, 1.5]], requires_grad=True)
    pyro.set_rng_seed(1)
    loss = (elbo or Trace_ELBO()).differentiable_loss(model, guide, data, locs, q_logits)
    return loss, torch.autograd.grad(loss, [locs, q_logits])


@pytest.mark.parametrize("estimator", HARD_ESTIMATORS)
def test_gradients_equal_hand_written_guide(estimator):
    def hand_guide(data, locs, q_logits):
        with pyro.plate("data", N):
            pyro.sample("z", HAND_WRITTEN[estimator](q_logits - q_logits.logsumexp(-1, keepdim=True)))

    loss, grads = _loss_and_grads(relax(_guide, estimator=estimator))
    hand_loss, hand_grads = _loss_and_grads(hand_guide)
    assert torch.equal(loss, hand_loss)  # same seed, same ops: bitwise equal
    assert all(torch.equal(g, h) for g, h in zip(grads, hand_grads))
    assert torch.count_nonzero(grads[1]) > 0  # and a gradient does reach the guide's logits


def test_gradients_equal_hand_written_guide_probs_and_bernoulli():
    def probs_model(probs, bern_logits):
        pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K)))
        pyro.sample("b", dist.Bernoulli(logits=torch.zeros(N)).to_event(1))

    def probs_guide(probs, bern_logits):
        pyro.sample("z", dist.OneHotCategorical(probs=probs))
        pyro.sample("b", dist.Bernoulli(logits=bern_logits).to_event(1))

    def hand_guide(probs, bern_logits):
        pyro.sample("z", RelaxedOneHotCategoricalStraightThrough(0.5, probs=probs / probs.sum(-1, keepdim=True)))
        pyro.sample("b", RelaxedBernoulliStraightThrough(0.5, logits=bern_logits).to_event(1))

    def run(guide):
        probs = torch.tensor([0.1, 0.2, 0.3, 0.4], requires_grad=True)
        bern_logits = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
        pyro.set_rng_seed(2)
        loss = Trace_ELBO().differentiable_loss(probs_model, guide, probs, bern_logits)
        return loss, torch.autograd.grad(loss, [probs, bern_logits])

    loss, grads = run(relax(probs_guide, estimator="gumbel", temperature=0.5))
    hand_loss, hand_grads = run(hand_guide)
    assert torch.equal(loss, hand_loss) and all(torch.equal(g, h) for g, h in zip(grads, hand_grads))


def test_concrete_relaxes_model_and_guide_together():
    guide = relax(_guide, estimator="concrete", temperature=0.1)
    with pytest.raises(ValueError, match="support"):  # the one-hot prior rejects a simplex point
        _loss_and_grads(guide)
    loss, grads = _loss_and_grads(guide, model=relax(_model, estimator="concrete", temperature=0.1))
    assert torch.isfinite(loss) and all(torch.all(torch.isfinite(g)) for g in grads)


def test_tensor_hyper_is_differentiable():
    t_1 = torch.tensor(0.5, requires_grad=True)
    q_logits = torch.randn(N, K)
    guide = relax(_guide, estimator="redge", t_1=t_1)
    loss = Trace_ELBO().differentiable_loss(_model, guide, torch.zeros(N, 2), torch.ones(K, 2), q_logits)
    (grad,) = torch.autograd.grad(loss, t_1)
    assert torch.isfinite(grad) and grad != 0


# --- TraceMeanField_ELBO and the KL registrations ------------------------------------------------------


@pytest.mark.parametrize("estimator", ["redge", "reinmax", "gumbel"])
def test_mean_field_elbo_uses_the_categorical_kl(estimator):
    relaxed = relax(_guide, estimator=estimator)
    mean_field, _ = _loss_and_grads(relaxed, TraceMeanField_ELBO())
    plain, _ = _loss_and_grads(relaxed)
    # Both ELBOs run the guide first from the same seed, so they see the same z; they differ by
    # exactly KL - (log q(z) - log p(z)), whose expectation under q is 0.
    q_logits = torch.tensor([[0.1, -0.3, 0.7, 0.0], [2.0, 1.0, -1.0, 0.0], [-0.5, 0.5, 0.0, 1.5]])  # as _loss_and_grads
    pyro.set_rng_seed(1)
    z_site = _trace(relax(_guide, estimator=estimator), None, None, q_logits)["z"]
    prior = dist.OneHotCategorical(logits=torch.zeros(K)).expand([N])
    kl = kl_divergence(z_site["fn"], prior)
    log_ratio = z_site["fn"].log_prob(z_site["value"]) - prior.log_prob(z_site["value"])
    # float32 sums of a dozen terms of size ~10 in different orders: a few ulps of 10
    torch.testing.assert_close(mean_field - plain, (kl - log_ratio).sum(), rtol=0, atol=1e-5)
    # the analytic term is the enumerated categorical KL
    log_q = torch.log_softmax(q_logits, -1)
    enumerated = (log_q.exp() * (log_q + math.log(K))).sum(-1)  # KL(q || uniform)
    torch.testing.assert_close(kl, enumerated, rtol=1e-6, atol=1e-7)  # float32 rounding


ONE_HOT_KL_CLASSES = HARD_ONE_HOT_CLASSES + (torch.distributions.OneHotCategorical, dist.OneHotCategorical)


def _one_hot(cls, logits):
    if cls in (RelaxedOneHotCategoricalStraightThrough, ReinMax):
        return cls(0.5, logits=logits)
    return cls(logits=logits)


def _enumerated_kl(p, q):
    support = p.enumerate_support()  # (K,) + batch_shape + (K,) or (2,) + batch_shape
    log_p, log_q = p.log_prob(support), q.log_prob(support)
    return torch.sum(torch.where(log_p == -math.inf, 0.0, log_p.exp() * (log_p - log_q)), 0)


@pytest.mark.parametrize("cls_p, cls_q", list(itertools.product(ONE_HOT_KL_CLASSES, repeat=2)))
def test_one_hot_kl_against_enumeration(cls_p, cls_q):
    logits_p, logits_q = torch.randn(2, 3, 5, dtype=torch.float64) * 3, torch.randn(3, 5, dtype=torch.float64) * 3
    p, q = _one_hot(cls_p, logits_p), _one_hot(cls_q, logits_q).expand([2, 3])
    exact_p = torch.distributions.OneHotCategorical(logits=logits_p)
    expected = _enumerated_kl(exact_p, torch.distributions.OneHotCategorical(logits=logits_q.expand(2, 3, 5)))
    # float64 sums of 5 terms computed in a different order
    torch.testing.assert_close(kl_divergence(p, q), expected, rtol=1e-12, atol=1e-14)


BINARY_KL_CLASSES = (RelaxedBernoulliStraightThrough, torch.distributions.Bernoulli, dist.Bernoulli)


@pytest.mark.parametrize("cls_p, cls_q", list(itertools.product(BINARY_KL_CLASSES, repeat=2)))
def test_bernoulli_kl_against_enumeration(cls_p, cls_q):
    logits_p, logits_q = torch.randn(2, 3, dtype=torch.float64) * 3, torch.randn(2, 3, dtype=torch.float64) * 3

    def make(cls, logits):
        return cls(0.5, logits=logits) if cls is RelaxedBernoulliStraightThrough else cls(logits=logits)

    exact_p, exact_q = torch.distributions.Bernoulli(logits=logits_p), torch.distributions.Bernoulli(logits=logits_q)
    expected = _enumerated_kl(exact_p, exact_q)
    kl = kl_divergence(make(cls_p, logits_p), make(cls_q, logits_q))
    torch.testing.assert_close(kl, expected, rtol=1e-12, atol=1e-14)  # float64, two terms: rounding only


def test_kl_with_zero_probabilities_is_stable():
    logits_p = torch.tensor([0.0, -math.inf, 1.0], requires_grad=True)
    p, uniform = REDGE(logits=logits_p), dist.OneHotCategorical(logits=torch.zeros(3))
    kl = kl_divergence(p, uniform)
    log_p = torch.log_softmax(logits_p.detach()[[0, 2]], -1)
    torch.testing.assert_close(kl, (log_p.exp() * (log_p + math.log(3))).sum(), rtol=1e-6, atol=0)  # float32 rounding
    (grad,) = torch.autograd.grad(kl, logits_p)
    assert torch.all(torch.isfinite(grad)) and grad[1] == 0
    assert kl_divergence(uniform, p) == math.inf  # q has a zero where p has mass
    assert kl_divergence(p, p) == 0


def test_no_kl_against_integer_categorical():
    with pytest.raises(NotImplementedError):
        kl_divergence(REDGE(logits=torch.zeros(K)), dist.Categorical(logits=torch.zeros(K)))


# --- schedules -------------------------------------------------------------------------------------


def test_exponential_anneal_matches_core():
    steps = torch.arange(0, 200, 7)
    values = exponential_anneal(steps, 0.03, 0.2, 2.0)
    expected = torch.tensor([schedules.exponential_anneal(int(s), 0.03, 0.2, 2.0) for s in steps])
    # float32 rounding of rate * step (|.| <= 2.3 above the floor) and of exp: a few 1e-7 relative
    torch.testing.assert_close(values, expected, rtol=1e-6, atol=0)
    scalars = torch.stack([exponential_anneal(int(s), 0.03, 0.2, 2.0) for s in steps])
    torch.testing.assert_close(scalars, values, rtol=2.4e-7, atol=0)  # scalar vs vectorised float32 exp: 2 ulps
    assert exponential_anneal(torch.tensor(3.0, dtype=torch.float64), 0.1, 0.5).dtype == torch.float64
    with pytest.raises(ValueError, match="minimum must be a finite number > 0"):
        exponential_anneal(0, 0.1, 0.0)
    with pytest.raises(ValueError, match="rate must be >= 0"):
        exponential_anneal(0, -0.1, 0.5)


def test_temperature_follows_schedule_and_is_settable():
    def schedule(step):
        return exponential_anneal(step, 0.5, 0.3)

    relaxed = relax(_mixed_program, "z1", "gumbel", temperature=schedule)
    for step in range(4):
        assert relaxed.step == step
        temperature = _trace(relaxed)["z1"]["fn"].temperature
        assert torch.all(temperature == schedule(step)), step
    relaxed.step = 100
    assert torch.all(_trace(relaxed)["z1"]["fn"].temperature == 0.3) and relaxed.step == 101
    relaxed.hyper["temperature"] = 0.7
    assert torch.all(_trace(relaxed)["z1"]["fn"].temperature == torch.tensor(0.7))
    relaxed.hyper["temperature"] = lambda step: 1.0 / step
    assert torch.all(_trace(relaxed)["z1"]["fn"].temperature == torch.tensor(1.0 / 102))


def test_step_counts_guide_calls_in_svi():
    relaxed = relax(_guide, estimator="redge", t_1=lambda step: max(0.1, 1.0 - 0.1 * step))
    elbo = Trace_ELBO(num_particles=2)
    q_logits = torch.zeros(N, K, requires_grad=True)
    for _ in range(3):
        elbo.differentiable_loss(_model, relaxed, torch.zeros(N, 2), torch.zeros(K, 2), q_logits)
    assert relaxed.step == 6  # two particles per step, one guide call each


# --- SVI --------------------------------------------------------------------------------------------


def _svi_model(data):
    locs = pyro.param("locs", torch.linspace(-1, 1, K))
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K)))
        pyro.sample("x", dist.Normal(z @ locs, 0.5), obs=data)


def _svi_guide(data):
    q_logits = pyro.param("q_logits", torch.zeros(len(data), K))
    with pyro.plate("data", len(data)):
        infer = {"baseline": {"use_decaying_avg_baseline": True}}  # used by the REINFORCE (unrelaxed) run
        pyro.sample("z", dist.OneHotCategorical(logits=q_logits), infer=infer)


@pytest.mark.parametrize("relaxed", [False, True], ids=["reinforce", "relaxed"])
def test_svi_trace_graph_elbo(relaxed):
    data = torch.tensor([-1.0, -0.9, 0.1, 1.0, 1.1])
    guide = relax(_svi_guide, estimator="redge") if relaxed else _svi_guide
    svi = SVI(_svi_model, guide, Adam({"lr": 0.05}), TraceGraph_ELBO())
    losses = torch.tensor([svi.step(data) for _ in range(20 if relaxed else 10)])
    assert torch.all(torch.isfinite(losses))
    assert not relaxed or guide.step == 20  # one guide call per step


def test_svi_mean_field_with_relaxed_guide():
    data = torch.tensor([-1.0, -0.9, 0.1, 1.0, 1.1])
    guide = relax(_svi_guide, estimator="reinmax", temperature=lambda step: exponential_anneal(step, 0.1, 0.5, 2.0))
    svi = SVI(_svi_model, guide, Adam({"lr": 0.05}), TraceMeanField_ELBO())
    assert all(math.isfinite(svi.step(data)) for _ in range(10))


# --- docs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["relax", "kl"])
def test_docstring_examples_run(module):
    # by module path: the package exports the function ``relax``, which hides the module name
    result = doctest.testmod(importlib.import_module(f"pyro_ext.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0


def test_default_estimator_read_from_defaults_at_call_time(monkeypatch):
    from relaxed_dists import defaults

    def program():
        pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K)))

    monkeypatch.setattr(defaults, "RELAX_ESTIMATOR", "redge")
    monkeypatch.setattr(defaults, "RELAX_HYPER", {"n_steps": 3, "t_1": 0.25})
    fn = _trace(relax(program))["z"]["fn"]
    assert type(fn) is REDGE and relax(program).hyper["t_1"] == 0.25 and RelaxReparam().estimator == "redge"
    monkeypatch.setattr(defaults, "RELAX_ESTIMATOR", "gumbel")
    monkeypatch.setattr(defaults, "RELAX_HYPER", {"temperature": 0.7})
    assert relax(program).estimator == "gumbel" and relax(program).hyper["temperature"] == 0.7
