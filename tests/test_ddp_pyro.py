"""Issue 11, Pyro half: what PyTorch's distributed engine needs of us.

- our distribution classes, ``relax``-wrapped guides and ``AutoRelaxed`` pickle (``spawn``),
  and the copy draws what the original draws under the same seed;
- ``relax`` of a ``torch.nn.Module`` guide is a module holding the guide's parameters, so
  Pyro's ``Trace_ELBO()(model, relax(guide))`` (an ``ELBOModule``) trains them;
- ``examples/vae_pyro_ddp.py --check --quick``: 2 DDP processes (gloo) equal one process on the
  full batch, losses and parameters after 20 SGD steps, to the example's stated tolerance.
"""

import functools
import importlib.util
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule

import pyro_ext
from pyro_ext.relax import BERNOULLI_CLASSES, ONE_HOT_CLASSES, RelaxReparam, exponential_anneal, relax

ROOT = Path(__file__).resolve().parents[1]
CHECK_TOLERANCE = 1e-5  # the example's TOLERANCE (float32 relative), asserted on its printed figures


@pytest.fixture(autouse=True)
def _fresh_state():
    pyro.clear_param_store()
    with pyro.settings.context(module_local_params=True):  # as the DDP example (and svi_lightning) sets it
        yield
    pyro.clear_param_store()


def _roundtrip(obj):
    return pickle.loads(pickle.dumps(obj))


def _trace_values(fn, seed, *args):
    pyro.set_rng_seed(seed)
    trace = pyro.poutine.trace(fn).get_trace(*args)
    return {name: site["value"] for name, site in trace.nodes.items() if site["type"] == "sample"}


def _assert_same_values(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# --- (a) pickling -----------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", sorted(ONE_HOT_CLASSES))
@pytest.mark.parametrize("kind", ["one_hot", "bernoulli"])
def test_distribution_classes_pickle(estimator, kind):
    torch.manual_seed(0)
    logits = torch.randn(3, 4) if kind == "one_hot" else torch.randn(3)
    source = dist.OneHotCategorical(logits=logits) if kind == "one_hot" else dist.Bernoulli(logits=logits)
    d = RelaxReparam(estimator).relax_distribution("z", source)
    assert type(d) is (ONE_HOT_CLASSES if kind == "one_hot" else BERNOULLI_CLASSES)[estimator]
    copy = _roundtrip(d)
    assert type(copy) is type(d) and copy.batch_shape == d.batch_shape and copy.event_shape == d.event_shape
    torch.manual_seed(1)
    value = d.rsample((5,))
    torch.manual_seed(1)
    assert torch.equal(copy.rsample((5,)), value)
    assert torch.equal(copy.log_prob(value), d.log_prob(value))


def guide_function(x):
    """A module-level guide (pickle stores functions by name)."""
    logits = pyro.param("logits", torch.zeros(len(x), 5))
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.OneHotCategorical(logits=logits))
        pyro.sample("b", dist.Bernoulli(logits=logits[:, 0]))


class Guide(PyroModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(3, 5)

    def forward(self, x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.OneHotCategorical(logits=self.net(x)))


class Model(PyroModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(5, 3)

    def forward(self, x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(5)))
            pyro.sample("x", dist.Normal(self.net(z), 1.0).to_event(1), obs=x)


@pytest.mark.parametrize(
    "estimator, hyper", [("reinmax", {"temperature": 0.7}), ("redge", {"n_steps": 3}), ("gumbel", {})]
)
@pytest.mark.parametrize("make_guide", [lambda: guide_function, Guide], ids=["function", "PyroModule"])
def test_relaxed_guide_pickles_and_draws_the_same(make_guide, estimator, hyper):
    torch.manual_seed(0)
    x = torch.randn(4, 3)
    relaxed = relax(make_guide(), estimator=estimator, **hyper)
    relaxed(x)  # a function guide's logits live in the param store, which the copy shares
    copy = _roundtrip(relaxed)
    assert type(copy) is type(relaxed) and copy.step == relaxed.step == 1
    assert copy.estimator == estimator and dict(copy.hyper) == dict(relaxed.hyper)
    _assert_same_values(_trace_values(copy, 2, x), _trace_values(relaxed, 2, x))
    assert copy.step == relaxed.step == 2  # the copy's counter advances on its own
    assert "_handler" not in relaxed.__getstate__()  # rebuilt on unpickling, not pickled


def test_relax_schedule_pickles_as_partial_not_lambda():
    anneal = functools.partial(exponential_anneal, rate=1e-2, minimum=0.5)
    relaxed = relax(guide_function, estimator="gumbel", temperature=anneal)
    assert _roundtrip(relaxed).hyper["temperature"].keywords == anneal.keywords
    with pytest.raises((pickle.PicklingError, AttributeError)):  # as relax's docstring says
        pickle.dumps(relax(guide_function, estimator="gumbel", temperature=lambda step: 1.0))


def _mixture_model(x):
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(3)))
        pyro.sample("b", dist.Bernoulli(logits=torch.zeros(())))
        pyro.sample("x", dist.Normal(z @ torch.tensor([-2.0, 0.0, 2.0]), 1.0), obs=x)


@pytest.mark.parametrize("estimator", [None, "redge"])
def test_autorelaxed_pickles_and_draws_the_same(estimator):
    x = torch.randn(6)
    guide = pyro_ext.AutoRelaxed(_mixture_model, estimator=estimator)
    guide(x)
    copy = _roundtrip(guide)
    assert copy.estimator == guide.estimator and copy.step == guide.step
    assert copy.state_dict().keys() == guide.state_dict().keys()
    for key, value in guide.state_dict().items():
        assert torch.equal(copy.state_dict()[key], value), key
    _assert_same_values(_trace_values(copy, 3, x), _trace_values(guide, 3, x))


# --- (b) relax of a module is a module --------------------------------------------------------


def test_relax_of_a_module_is_a_module_holding_its_parameters():
    guide, model = Guide(), Model()
    relaxed = relax(guide)
    assert isinstance(relaxed, torch.nn.Module) and relaxed.fn is guide
    assert [id(p) for p in relaxed.parameters()] == [id(p) for p in guide.parameters()]
    assert list(relaxed.state_dict()) == [f"fn.{key}" for key in guide.state_dict()]
    assert not isinstance(relax(guide_function), torch.nn.Module)  # functions: as before
    auto = relax(guide, estimator="auto", model=model)
    assert auto.model is model and list(auto.state_dict()) == list(relaxed.state_dict())  # model= unregistered


def test_elbo_module_of_relaxed_guide_trains_the_guide():
    torch.manual_seed(0)
    guide, model = Guide(), Model()
    loss_fn = pyro.infer.Trace_ELBO()(model, relax(guide))
    assert {id(p) for p in loss_fn.parameters()} == {id(p) for p in [*model.parameters(), *guide.parameters()]}
    loss = loss_fn(torch.randn(8, 3))
    assert loss.requires_grad and loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in guide.named_parameters():  # the estimator's gradient reaches the encoder
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert loss_fn.guide.step == 1


class _MixtureGuide(PyroModule):
    """The selection problems' mixture guide with its logits in a plain torch layer."""

    def __init__(self, n: int, k: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, n * k, bias=False)
        self.shape = (n, k)

    def forward(self, x, locs, weights, scale):
        q = self.layer(torch.ones(1)).reshape(self.shape)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.OneHotCategorical(logits=q))


def test_selection_on_a_module_guide_equals_the_same_guide_with_pyro_params():
    # estimator="auto" on a PyroModule guide: its weights are module parameters (local to it under
    # module_local_params), taken in place; the report must equal the same guide written with
    # pyro.param at the same values and under the same seed (exact reference, 4^6 assignments).
    from pyro_ext.selection import select_estimator

    spec = importlib.util.spec_from_file_location("_selection_problems", ROOT / "benchmarks" / "_selection_problems.py")
    problems = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(problems)
    model, function_guide, args = problems.mixture()
    module_guide = _MixtureGuide(len(args[0]), len(args[1]))
    with torch.no_grad():
        module_guide.layer.weight.normal_()
    with pyro.settings.context(module_local_params=False):
        pyro.param("q", module_guide.layer.weight.detach().reshape(module_guide.shape).clone())
        torch.manual_seed(1)
        expected = select_estimator(
            model, function_guide, *args, candidates=["st", "reinmax"], num_samples=32, num_groups=8
        )
    torch.manual_seed(1)
    report = select_estimator(
        model, relax(module_guide), *args, candidates=["st", "reinmax"], num_samples=32, num_groups=8
    )
    assert report.reference == expected.reference == "exact" and report.params == ["fn.layer.weight"]
    assert report.reference_norm == pytest.approx(expected.reference_norm, rel=1e-5)
    for got, want in zip(report.results, expected.results):
        assert got.label == want.label
        assert got.mse == pytest.approx(want.mse, rel=1e-4) and got.bias == pytest.approx(want.bias, rel=1e-4, abs=1e-6)
    auto = relax(module_guide, estimator="auto", model=model)
    auto.selection_options.update(candidates=["st", "reinmax"], num_samples=32, num_groups=8)
    auto(*args)
    assert [s[1] for s in auto.selections] in (["st"], ["reinmax"]) and auto.selection.params == ["fn.layer.weight"]


# --- (c) the DDP example's acceptance check ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="the torch-only install has no lightning")
def test_ddp_check_two_processes_equal_one(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            str(ROOT / "examples" / "vae_pyro_ddp.py"),
            "--check",
            "--quick",
            "--out-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    differences = [float(d) for d in re.findall(r"max relative difference ([0-9.e+-]+)", out.stdout)]
    assert len(differences) == 2 and all(d <= CHECK_TOLERANCE for d in differences), out.stdout
    assert "ranks' parameters identical: True" in out.stdout and "PASS" in out.stdout
    moved = float(re.search(r"moved from their start by up to ([0-9.e+-]+)", out.stdout).group(1))
    assert moved > 1e3 * CHECK_TOLERANCE, out.stdout  # the parameters did move: equality means something
