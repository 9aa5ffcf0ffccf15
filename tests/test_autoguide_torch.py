"""``pyro_ext.autoguide.AutoRelaxed``: gradients equal to the hand-written relaxed mean-field
guide (bit for bit), site shapes under plates / subsampling / ``Independent`` / masks /
``expand``, errors, the continuous part, ``AutoGuideList``, ``Predictive``, the exact KL of
``TraceMeanField_ELBO``, ``probs``/``median``, schedules, and a short convergence run on the
fixed-means mixture of ``benchmarks/_mixtures.py`` against its exact posterior."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pathlib

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.infer import SVI, JitTrace_ELBO, Predictive, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import (
    AutoDiagonalNormal,
    AutoGuideList,
    AutoLowRankMultivariateNormal,
    AutoNormal,
    init_to_value,
)
from pyro.optim import Adam
from torch.distributions import kl_divergence

import pyro_ext
import pyro_ext.autoguide
from pyro_ext.autoguide import AutoRelaxed
from pyro_ext.relax import BERNOULLI_CLASSES, ONE_HOT_CLASSES, relax
from relaxed_dists import defaults

_spec = importlib.util.spec_from_file_location(
    "_mixtures", pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "_mixtures.py"
)
mixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mixtures)

pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

HARD_ESTIMATORS = ("st", "gumbel", "reinmax", "redge", "redge_cov", "reindge")
K, N = 4, 3
LOCS = torch.tensor([-3.0, -1.0, 1.0, 3.0])
PRIOR = torch.tensor([0.1, 0.2, 0.3, 0.4])
W_PRIOR = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -2.0]])  # (2, 3): an Independent pair of 3-way sites
X = torch.tensor([-2.0, 0.3, 2.5])


@pytest.fixture(autouse=True)
def _fresh_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)


def _model(x, bernoulli=True):
    """z: plate of N one-hot sites; w: (2,) batch reinterpreted as an event; b: Bernoulli (optional)."""
    w = pyro.sample("w", dist.OneHotCategorical(logits=W_PRIOR).to_event(1))
    shift = (w @ torch.tensor([0.5, 0.0, -0.5])).sum()
    if bernoulli:
        shift = shift + pyro.sample("b", dist.Bernoulli(logits=torch.tensor(0.3)))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.OneHotCategorical(probs=PRIOR))
        pyro.sample("x", dist.Normal(z @ LOCS + shift, 1.0), obs=x)


def _hand_guide(x, bernoulli=True):
    """The mean-field guide one writes by hand, logits at the prior's (as torch stores them)."""
    w_logits = pyro.param("w_q", dist.OneHotCategorical(logits=W_PRIOR).logits)
    pyro.sample("w", dist.OneHotCategorical(logits=w_logits).to_event(1))
    if bernoulli:
        pyro.sample("b", dist.Bernoulli(logits=pyro.param("b_q", torch.tensor(0.3))))
    z_logits = pyro.param("z_q", dist.OneHotCategorical(probs=PRIOR).logits.expand(len(x), K).clone())
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.OneHotCategorical(logits=z_logits))


def _unconstrained(name):
    return pyro.get_param_store().get_param(name).unconstrained()


# --- gradients equal to the hand-written guide ------------------------------------------------


@pytest.mark.parametrize("estimator", HARD_ESTIMATORS)
def test_gradient_equals_hand_written_relaxed_guide(estimator):
    bernoulli = estimator in BERNOULLI_CLASSES
    hyper = {"n_steps": 3, "t_1": 0.5} if estimator.startswith("re") and estimator != "reinmax" else {}
    guide = AutoRelaxed(_model, estimator=estimator, **hyper)
    guide(X, bernoulli)  # set-up (runs the model once)
    names = ["w", "b", "z"] if bernoulli else ["w", "z"]
    pyro.set_rng_seed(1)
    loss = Trace_ELBO().differentiable_loss(_model, guide, X, bernoulli)
    auto = torch.autograd.grad(loss, [_unconstrained(f"AutoRelaxed.logits.{n}") for n in names])

    hand = relax(_hand_guide, estimator=estimator, **hyper)
    hand(X, bernoulli)  # creates the params; same RNG position is set below
    pyro.set_rng_seed(1)
    hand_loss = Trace_ELBO().differentiable_loss(_model, hand, X, bernoulli)
    grads = torch.autograd.grad(hand_loss, [_unconstrained(f"{n}_q") for n in names])
    assert torch.equal(loss, hand_loss)
    for n, a, h in zip(names, auto, grads):
        assert a.abs().sum() > 0, n
        assert torch.equal(a, h), n


# --- shapes ------------------------------------------------------------------------------------


def _shape_model():
    pyro.sample("d", dist.Bernoulli(logits=torch.zeros(5)).to_event(1))  # event (5,)
    with pyro.plate("group", 3, dim=-2):
        mask = torch.tensor([[True], [False], [True]])
        pyro.sample("m", dist.OneHotCategorical(logits=torch.zeros(K)).expand([3, 1]).mask(mask))
        with pyro.plate("data", 6, subsample_size=2, dim=-1):
            pyro.sample("a", dist.OneHotCategorical(logits=torch.randn(K)))
            pyro.sample("y", dist.OneHotCategorical(logits=torch.zeros(K)), obs=torch.eye(K)[:2].expand(3, 2, K))


def test_sites_keep_the_model_shapes_plates_subsample_mask_and_expand():
    guide = AutoRelaxed(_shape_model, estimator="gumbel")
    guide()
    full = {n: pyro.param(f"AutoRelaxed.logits.{n}").detach() for n in ("d", "m", "a")}
    assert {n: tuple(v.shape) for n, v in full.items()} == {"d": (5,), "m": (3, 1, K), "a": (3, 6, K)}
    guide_tr = poutine.trace(guide).get_trace()
    model_tr = poutine.trace(poutine.replay(_shape_model, trace=guide_tr)).get_trace()
    assert "y" not in guide_tr.nodes  # observed: never guided
    assert model_tr.nodes["y"]["is_observed"] and type(model_tr.nodes["y"]["fn"]) is dist.OneHotCategorical
    for name in ("d", "m", "a"):
        g, m = guide_tr.nodes[name], model_tr.nodes[name]
        assert g["fn"].batch_shape == m["fn"].batch_shape and g["fn"].event_shape == m["fn"].event_shape, name
        assert g["value"].shape == m["value"].shape, name
        assert g["fn"].log_prob(g["value"]).shape == m["fn"].batch_shape, name
    assert guide_tr.nodes["d"]["fn"].event_shape == (5,) and set(guide_tr.nodes["d"]["value"].unique().tolist()) <= {
        0,
        1,
    }
    masked = guide_tr.nodes["m"]["fn"]
    assert isinstance(masked, MaskedDistribution) and masked.log_prob(guide_tr.nodes["m"]["value"])[1].item() == 0.0
    # subsampling: the guide's logits are the full parameter at the plate's subsample indices
    idx = guide_tr.nodes["data"]["value"]
    assert torch.equal(idx, model_tr.nodes["data"]["value"])
    leaf = guide_tr.nodes["a"]["fn"]
    assert torch.allclose(leaf.logits, full["a"][:, idx].log_softmax(-1))
    assert torch.equal(guide_tr.nodes["a"]["value"].sum(-1), torch.ones(3, 2))


def test_logits_start_at_the_prior_and_estimator_classes_as_priors():
    probs = torch.tensor([0.5, 0.3, 0.2])

    def model():
        with pyro.plate("data", 2):
            pyro.sample("z", pyro_ext.StraightThrough(probs=probs))  # the README's prior

    guide = AutoRelaxed(model, estimator="redge", n_steps=3, t_1=0.5)
    guide()
    assert type(poutine.trace(guide).get_trace().nodes["z"]["fn"]) is ONE_HOT_CLASSES["redge"]
    assert torch.allclose(guide.probs()["z"], probs.expand(2, 3))


# --- errors -------------------------------------------------------------------------------------


def test_integer_categorical_raises_with_both_ways_out():
    def model():
        pyro.sample("k", dist.Categorical(logits=torch.zeros(3)))

    guide = AutoRelaxed(model)
    with pytest.raises(ValueError, match=r"'k'.*OneHotCategorical.*config_enumerate.*TraceEnum_ELBO"):
        guide()
    with pytest.raises(ValueError, match="'k'"):  # raises again: no half-set-up state
        guide()


def test_enumerated_sites_are_left_for_enumeration():
    def model():
        k = pyro.sample("k", dist.Categorical(logits=torch.zeros(3)), infer={"enumerate": "parallel"})
        z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(2)))
        pyro.sample("x", dist.Normal(k.float() + z[..., 0], 1.0), obs=torch.tensor(1.0))

    guide = AutoRelaxed(model)
    assert set(guide()) == {"z"}
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, guide)
    assert torch.isfinite(torch.tensor(loss))


def test_continuous_latents_without_a_continuous_guide_raise():
    def model():
        pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(2)))

    with pytest.raises(ValueError, match=r"\['mu'\].*continuous=AutoNormal"):
        AutoRelaxed(model)()


def test_bad_arguments():
    with pytest.raises(ValueError, match="estimator"):
        AutoRelaxed(_model, estimator="nope")
    with pytest.raises(TypeError, match="unexpected"):
        AutoRelaxed(_model, estimator="st", temperature=0.5)
    with pytest.raises(ValueError, match="init_scale"):
        AutoRelaxed(_model, init_scale=-1.0)
    with pytest.raises(TypeError, match="continuous"):
        AutoRelaxed(_model, continuous=3)
    if "reinmax" not in BERNOULLI_CLASSES:  # until the Bernoulli classes land
        with pytest.raises(ValueError, match="'b'.*Bernoulli"):
            AutoRelaxed(_model, estimator="reinmax")(X)


def test_defaults_read_at_construction(monkeypatch):
    monkeypatch.setattr(defaults, "AUTO_RELAXED_ESTIMATOR", "gumbel")
    monkeypatch.setattr(defaults, "AUTO_RELAXED_HYPER", {"temperature": 0.7})
    guide = AutoRelaxed(_model)
    assert guide.estimator == "gumbel" and guide.hyper["temperature"] == 0.7
    assert AutoRelaxed(_model, temperature=0.2).hyper["temperature"] == 0.2


# --- continuous part, AutoGuideList, Predictive --------------------------------------------------


def _mixture(x):
    mu = pyro.sample("mu", dist.Normal(torch.tensor([-2.0, 2.0]), 2.0).to_event(1))
    sigma = pyro.sample("sigma", dist.LogNormal(0.0, 0.5))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(2)))
        pyro.sample("x", dist.Normal((z * mu).sum(-1), sigma), obs=x)  # broadcasts under Predictive


@pytest.mark.parametrize("cls", [AutoNormal, AutoDiagonalNormal, AutoLowRankMultivariateNormal])
def test_continuous_autoguide(cls):
    mu0 = torch.tensor([-1.5, 1.5])
    guide = AutoRelaxed(_mixture, continuous=cls, init_loc_fn=init_to_value(values={"mu": mu0}), init_scale=0.05)
    sample = guide(X)
    assert set(sample) == {"mu", "sigma", "z"} and isinstance(guide.continuous, cls)
    assert guide.continuous.master() is guide
    assert torch.allclose(guide.median(X)["mu"], mu0)  # init_loc_fn reached the continuous guide
    assert guide.continuous._init_scale == 0.05  # and init_scale
    svi = SVI(_mixture, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(3):
        assert torch.isfinite(torch.tensor(svi.step(X)))
    assert guide.step == 4
    median = guide.median(X)
    assert set(median) == {"mu", "sigma", "z"} and torch.equal(median["z"].sum(-1), torch.ones(N))


def test_inside_autoguide_list_and_predictive():
    guide = AutoGuideList(_mixture)
    guide.append(AutoRelaxed(poutine.block(_mixture, expose=["z"]), estimator="st"))
    guide.append(AutoNormal(poutine.block(_mixture, hide=["z"])))
    svi = SVI(_mixture, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(3):
        assert torch.isfinite(torch.tensor(svi.step(X)))
    assert set(guide.median(X)) == {"mu", "sigma", "z"}
    assert guide[0].probs()["z"].shape == (N, 2)
    samples = Predictive(_mixture, guide=guide, num_samples=5)(X)
    assert samples["z"].shape == (5, N, 2) and torch.equal(samples["z"].sum(-1), torch.ones(5, N))
    assert samples["mu"].shape == (5, 1, 2) and samples["x"].shape == (5, N)


def test_predictive_standalone_with_continuous():
    guide = AutoRelaxed(_mixture, continuous=AutoNormal)
    samples = Predictive(_mixture, guide=guide, num_samples=4)(X)
    assert samples["z"].shape == (4, N, 2) and set(samples["z"].unique().tolist()) == {0.0, 1.0}
    assert samples["mu"].shape == (4, 1, 2) and samples["x"].shape == (4, N)  # Predictive's shapes


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
def test_jit_trace_elbo():
    """JitTrace_ELBO works; the guide's Python runs only while tracing, so its step stays there."""
    guide = AutoRelaxed(_mixture, estimator="st", continuous=AutoNormal)
    svi = SVI(_mixture, guide, Adam({"lr": 0.05}), JitTrace_ELBO())
    losses = [svi.step(X) for _ in range(4)]
    assert all(torch.isfinite(torch.tensor(losses))) and len(set(losses)) > 1  # fresh noise each step
    assert guide.step == 2  # set-up call + the traced call


# --- TraceMeanField_ELBO: the exact KL ----------------------------------------------------------


@pytest.mark.parametrize("estimator", ["gumbel", "reinmax", "redge"])
def test_mean_field_loss_is_the_exact_kl(estimator):
    torch.set_default_dtype(torch.float64)
    try:
        prior_z, prior_b = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.2, -1.0])
        bernoulli = estimator in BERNOULLI_CLASSES

        def model():
            with pyro.plate("data", 3):
                pyro.sample("z", dist.OneHotCategorical(probs=prior_z))
            if bernoulli:
                pyro.sample("b", dist.Bernoulli(logits=prior_b).to_event(1))

        guide = AutoRelaxed(model, estimator=estimator)
        guide()
        q_z, q_b = torch.randn(3, 4), torch.randn(2)
        with torch.no_grad():
            _unconstrained("AutoRelaxed.logits.z").copy_(q_z)
            if bernoulli:
                _unconstrained("AutoRelaxed.logits.b").copy_(q_b)
        exact = kl_divergence(dist.OneHotCategorical(logits=q_z), dist.OneHotCategorical(probs=prior_z)).sum()
        if bernoulli:
            exact = exact + kl_divergence(dist.Bernoulli(logits=q_b), dist.Bernoulli(logits=prior_b)).sum()
        loss = TraceMeanField_ELBO().loss(model, guide)
        assert exact > 0.1
        assert loss == pytest.approx(exact.item(), rel=1e-12, abs=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


# --- probs, median, schedules -------------------------------------------------------------------


def test_probs_and_median():
    guide = AutoRelaxed(_model, estimator="gumbel")
    guide(X)
    q = torch.tensor([[2.0, 0.0, 1.0, -1.0], [0.0, 0.0, 0.0, 3.0], [-1.0, 4.0, 0.0, 0.0]])
    with torch.no_grad():
        _unconstrained("AutoRelaxed.logits.z").copy_(q)
        _unconstrained("AutoRelaxed.logits.b").fill_(-0.5)
    probs, median = guide.probs(), guide.median(X)
    assert set(probs) == set(median) == {"w", "b", "z"}
    assert torch.allclose(probs["z"], q.softmax(-1)) and not probs["z"].requires_grad
    assert torch.allclose(probs["b"], torch.sigmoid(torch.tensor(-0.5)))
    assert torch.equal(median["z"], torch.eye(K)[[0, 3, 1]]) and median["b"].item() == 0.0
    assert probs["w"].shape == median["w"].shape == (2, 3)


def test_step_counter_and_schedules():
    guide = AutoRelaxed(_model, estimator="gumbel", temperature=lambda step: 1.0 / (1 + step))
    for _ in range(3):
        guide(X)
    assert guide.step == 3
    assert torch.allclose(poutine.trace(guide).get_trace(X).nodes["z"]["fn"].temperature, torch.tensor(0.25))
    guide.step = 0
    guide.hyper["temperature"] = 0.5
    assert torch.allclose(poutine.trace(guide).get_trace(X).nodes["z"]["fn"].temperature, torch.tensor(0.5))
    assert guide.step == 1


def test_every_estimator_on_bernoulli_sites():
    try:
        from pyro_ext.distributions import BernoulliReinMax  # noqa: F401
    except ImportError:
        pytest.skip("the Bernoulli estimator classes (BernoulliReinMax, ...) have not landed yet")
    for estimator in HARD_ESTIMATORS:
        pyro.clear_param_store()
        guide = AutoRelaxed(_model, estimator=estimator)
        site = poutine.trace(guide).get_trace(X).nodes["b"]
        assert type(site["fn"]) is BERNOULLI_CLASSES[estimator] and site["value"].item() in (0.0, 1.0)
        assert torch.isfinite(torch.tensor(Trace_ELBO().loss(_model, guide, X)))


# --- convergence on the fixed-means mixture ------------------------------------------------------


def test_converges_on_the_fixed_means_mixture():
    problem = mixtures.FIXED
    x, locs = torch.tensor(problem["x"]), torch.tensor(problem["locs"])
    weights = torch.tensor(problem["weights"])

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.OneHotCategorical(probs=weights))
            pyro.sample("x", dist.Normal(z @ locs, problem["scale"]), obs=x)

    x, locs, weights = x.float(), locs.float(), weights.float()
    guide = AutoRelaxed(model)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO(num_particles=8, vectorize_particles=True))
    for _ in range(300):
        svi.step(x)
    kl = mixtures.mean_kl(guide.probs()["z"].double().numpy(), mixtures.fixed_posterior())
    assert kl < 0.1  # loose: the acceptance benchmark runs 1500 steps to < 0.05


def test_doctests():
    assert doctest.testmod(pyro_ext.autoguide, optionflags=doctest.ELLIPSIS).failed == 0
