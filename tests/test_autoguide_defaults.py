"""``benchmarks/autoguide_defaults.py``: its exact KL against brute force, its loss against
Pyro's ``Trace_ELBO`` on the same noise, the script in ``--quick`` mode, and the defaults it chose
(``relaxed_dists.defaults``) against the registry and the committed results table."""

from __future__ import annotations

import importlib.util
import itertools
import math
import pathlib
import sys

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_ext import relax
from relaxed_dists import defaults
from relaxed_dists.registry import ESTIMATORS, resolve_hyper

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "autoguide_defaults.py"
_spec = importlib.util.spec_from_file_location("autoguide_defaults", SCRIPT)
ad = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ad  # dataclasses look their module up there
_spec.loader.exec_module(ad)

TINY = [
    pytest.param(lambda: ad.mixture(n=2, means=(-1.0, 0.0, 1.5), weights=(0.5, 0.3, 0.2)), id="mixture"),
    pytest.param(lambda: ad.hmm(t=3), id="hmm"),
    pytest.param(lambda: ad.noisy_or(n_causes=3, n_obs=4), id="noisy-or"),
    pytest.param(lambda: ad.ising(side=2), id="ising"),
]


def _random_logits(problem, seeds, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(seeds, *prior.shape, generator=g) for name, prior in problem.sites.items()}


def _brute_force_kl(problem, logits):
    """KL(q || p(z | x)) per variable by a Python loop over the joint states, one unbatched trace of the
    model per state (no broadcasting, no factorisation), in float64."""
    variables = [
        (name, idx, prior.shape[-1])
        for name, prior in problem.sites.items()
        for idx in itertools.product(*map(range, prior.shape[:-1]))
    ]
    log_joint, log_q = [], []
    for combo in itertools.product(*(range(k) for _, _, k in variables)):
        values = {name: torch.zeros_like(prior) for name, prior in problem.sites.items()}
        lq = 0.0
        for (name, idx, _), k in zip(variables, combo):
            values[name][(*idx, k)] = 1.0
            lq += torch.log_softmax(logits[name].double(), -1)[(*idx, k)].item()
        trace = poutine.trace(poutine.condition(problem.model, data=values)).get_trace()
        log_joint.append(trace.log_prob_sum().item())
        log_q.append(lq)
    log_joint, log_q = torch.tensor(log_joint, dtype=torch.float64), torch.tensor(log_q, dtype=torch.float64)
    log_post = log_joint - torch.logsumexp(log_joint, 0)
    return float((log_q.exp() * (log_q - log_post)).sum()) / len(variables)


@pytest.mark.parametrize("make", TINY)
def test_exact_kl_matches_brute_force(make):
    problem = make()
    logits = _random_logits(problem, seeds=2)
    kl = ad.exact_kl(problem, logits)
    assert kl.shape == (2,)
    for s in range(2):
        expected = _brute_force_kl(problem, {name: value[s] for name, value in logits.items()})
        # float32 enumeration against a float64 loop over a few dozen states
        assert kl[s].item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("make", TINY)
def test_cavi_improves_on_the_prior(make):
    problem = make()
    prior = {name: value[None] for name, value in problem.sites.items()}
    # coordinate ascent from the prior's logits never increases the KL; 1e-6: float32 table
    assert 0.0 <= ad.cavi_kl(problem) <= ad.exact_kl(problem, prior).item() + 1e-6


@pytest.mark.parametrize("estimator, hyper", [("reinmax", {"temperature": 1.0}), ("redge", {"n_steps": 3, "t_1": 1.0})])
@pytest.mark.parametrize("make", [TINY[0], TINY[1]])
def test_loop_loss_is_trace_elbo(make, estimator, hyper):
    """The study's loss and gradient (seeds and particles as leading dims of the logits) are those of
    ``Trace_ELBO(num_particles=8, vectorize_particles=True)`` on the same noise."""
    problem = make()
    init = _random_logits(problem, seeds=1)
    logits = {name: value.clone().requires_grad_() for name, value in init.items()}
    torch.manual_seed(0)
    loss = ad.elbo_loss(problem, relax(problem.guide(logits, ad.PARTICLES), estimator=estimator, **hyper), ad.PARTICLES)
    loss.backward()

    pyro.clear_param_store()

    def guide():
        params = {name: pyro.param(f"{name}_logits", value[0].clone()) for name, value in init.items()}
        problem.guide(params)()

    elbo = Trace_ELBO(num_particles=ad.PARTICLES, vectorize_particles=True, max_plate_nesting=problem.max_plate_nesting)
    torch.manual_seed(0)
    expected = elbo.differentiable_loss(problem.model, relax(guide, estimator=estimator, **hyper))
    expected.backward()
    torch.testing.assert_close(loss, expected)  # float32, different summation order
    for name, value in logits.items():
        torch.testing.assert_close(value.grad[0], pyro.param(f"{name}_logits").grad)
    pyro.clear_param_store()


def test_script_quick(tmp_path):
    out = tmp_path / "defaults.md"
    text = ad.main(["--quick", "--out", str(out)])
    assert out.read_text() == text + "\n"
    rows = [line for line in text.splitlines() if line.startswith("| ") and "e" in line.split("|")[-2]]
    for estimator, hyper in ad.QUICK_GRID:
        name = ad.label(estimator, hyper)
        assert sum(f"| {name} |" in row or f"| **{name}** |" in row for row in rows) == 2  # regret + KL tables
    names = [p.name for p in ad.suite(quick=True)]
    header = next(line for line in text.splitlines() if line.startswith("| config |") and "worst-case" in line)
    assert header.split(" | ")[1:-1] == names
    assert "**Winner: `" in text and "Rule:" in text


def test_rule_picks_the_smallest_worst_case_regret():
    kls = {
        "a": {"p": torch.tensor([0.0]), "q": torch.tensor([1.0])},  # best on p, worst-case 1.0 on q
        "b": {"p": torch.tensor([0.3]), "q": torch.tensor([0.2])},  # worst-case 0.3
        "c": {"p": torch.tensor([0.5]), "q": torch.tensor([0.0])},  # best on q, worst-case 0.5
    }
    reg = ad.regrets(kls)
    assert reg["b"] == pytest.approx({"p": 0.3, "q": 0.2})
    assert ad.choose(kls) == "b"


def test_defaults_name_a_registry_estimator_with_valid_hyper():
    estimator, hyper = defaults.AUTO_RELAXED_ESTIMATOR, defaults.AUTO_RELAXED_HYPER
    assert estimator in ESTIMATORS
    assert set(resolve_hyper(estimator, hyper)) == set(ESTIMATORS[estimator])  # raises on a bad name or range
    # the defaults are the winner of the committed study, and a config of its grid
    assert (estimator, hyper) in [(e, {k: float(v) if k != "n_steps" else v for k, v in h.items()}) for e, h in ad.GRID]
    table = (ROOT / "benchmarks" / "results" / "autoguide_defaults.md").read_text()
    winner = f"**Winner: `{ad.label(estimator, hyper)}`** (worst-case regret "
    assert winner in table
    assert math.isfinite(float(table.split(winner, 1)[1].split(" ", 1)[0]))
