"""The spike-and-slab examples (``examples/spike_slab.py``, ``examples/spike_slab_numpyro.py``):
the exact reference they score against, checked by brute force on a p = 4 problem, and a quick
run of each example (in this process: no second interpreter start-up) that must write finite
results and, with ``AutoRelaxed``'s default estimator, inclusion probabilities near the exact ones.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
try:
    from examples import _spike_slab as spike
finally:
    sys.path.remove(str(ROOT))

#: after the quick run (600 steps, lr 0.1), the default estimator's mean absolute inclusion-
#: probability error must be below this: it has learned (the starting point, every gate at the
#: prior 0.2, is 0.36 off). Not a closeness claim: the mean-field objective has two modes on the
#: 0.9-correlated pair 0/1, and on this data seed Pyro's reinmax lands in the one that picks
#: column 1 (0.21 at 2,000 steps too; gumbel, redge, redge_cov, reindge reach 0.02-0.03, the
#: mean-field optimum 0.03).
QUICK_MEAN_ERROR = 0.25


def _small_problem(seed=1, n=6, p=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    x[:, 1] = 0.8 * x[:, 0] + 0.6 * x[:, 1]  # a correlated pair, as in the example
    return x, x @ np.array([1.0, 0.0, -0.7, 0.0]) + rng.normal(size=n)


def _posterior_inclusion(log_evidence, gammas, prior):
    k = gammas.sum(-1)
    log_post = log_evidence + k * np.log(prior) + (gammas.shape[1] - k) * np.log1p(-prior)
    weights = np.exp(log_post - log_post.max())
    return weights @ gammas / weights.sum()


def _dense_log_normal(y, cov):
    """``log N(y; 0, cov)`` from the n x n covariance itself (slogdet and a solve)."""
    sign, logdet = np.linalg.slogdet(2 * np.pi * cov)
    assert sign > 0
    return -0.5 * (logdet + y @ np.linalg.solve(cov, y))


def test_log_evidence_matches_the_dense_marginal():
    """Woodbury form against ``log N(y; 0, noise^2 I + slab^2 X_g X_g^T)`` written out, all 16 configurations."""
    x, y = _small_problem()
    gammas = spike.configurations(4)
    assert gammas.shape == (16, 4) and len({tuple(g) for g in gammas}) == 16
    slab, noise = 0.7, 1.3
    dense = [_dense_log_normal(y, noise**2 * np.eye(len(y)) + slab**2 * x[:, g > 0] @ x[:, g > 0].T) for g in gammas]
    np.testing.assert_allclose(spike.log_evidence(x, y, gammas, slab, noise), dense, rtol=0, atol=1e-9)


@pytest.mark.statistical
def test_exact_inclusion_matches_monte_carlo_integration():
    """``p(y | gamma) = E_{beta ~ N(0, slab^2)} N(y; X_g beta_g, noise^2)`` by 200,000 seeded prior
    draws per configuration (standard error of each inclusion probability below 0.003 here), then
    the posterior over the 16 configurations: within 0.015 of the enumeration."""
    x, y = _small_problem()
    gammas = spike.configurations(4)
    rng = np.random.default_rng(0)
    beta = rng.normal(scale=spike.SLAB_SCALE, size=(200_000, 4))
    log_mc = []
    for gamma in gammas:
        resid = y - (beta * gamma) @ x.T  # (draws, n)
        log_lik = -0.5 * (resid**2).sum(-1) / spike.NOISE_SCALE**2 - len(y) * np.log(
            np.sqrt(2 * np.pi) * spike.NOISE_SCALE
        )
        log_mc.append(np.log(np.mean(np.exp(log_lik - log_lik.max()))) + log_lik.max())
    monte_carlo = _posterior_inclusion(np.array(log_mc), gammas, spike.PRIOR_INCLUSION)
    exact = spike.exact_inclusion(x, y)
    np.testing.assert_allclose(
        exact, _posterior_inclusion(spike.log_evidence(x, y, gammas), gammas, spike.PRIOR_INCLUSION)
    )
    assert np.all((exact > 0.05) & (exact < 0.995)), exact  # a problem where the gates are uncertain
    np.testing.assert_allclose(monte_carlo, exact, atol=0.015)


def test_mean_field_optimum_is_a_fixed_point_in_range():
    x, y, _ = spike.design()
    alpha = spike.mean_field_optimum(x, y)
    assert alpha.shape == (spike.P,) and np.all((alpha >= 0) & (alpha <= 1))
    np.testing.assert_allclose(spike.mean_field_optimum(x, y, init_probs=None, n_iter=600), alpha, atol=1e-6)
    exact = spike.exact_inclusion(x, y)
    assert spike.pip_errors(alpha, exact)[1] < spike.pip_errors(np.full(spike.P, spike.PRIOR_INCLUSION), exact)[1]


def _example(name):
    sys.path.insert(0, str(ROOT))
    try:
        return __import__(f"examples.{name}", fromlist=["main"])
    finally:
        sys.path.remove(str(ROOT))


def _quick(module_name, out_dir, *extra):
    """Run the example's ``main`` with ``--quick``; check the page, the figure and every fit."""
    module = _example(module_name)
    out = module.main(["--quick", "--no-progress", "--out-dir", str(out_dir), *extra])
    text = (out_dir / f"{module_name}.md").read_text()
    assert (out_dir / f"{module_name}.png").stat().st_size > 1000
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| fit", "| ---"))]
    labels = [row.split("|")[1].strip() for row in rows]
    assert labels[:2] == ["exact (enumerated)", "mean-field optimum (CAVI)"], labels
    n_baselines = 0 if "--no-baseline" in extra else 1
    assert sum(label.startswith("baseline") for label in labels) == n_baselines, labels
    assert len(out["results"]) + len(out["skipped"]) == 1 + n_baselines, (out["results"], out["skipped"])
    for label, result in out["results"].items():
        probs = result["probs"]
        assert probs.shape == (spike.P,) and np.all((probs >= 0) & (probs <= 1)), label
        assert math.isfinite(result["ms_per_step"]) and result["ms_per_step"] > 0, label
        if not label.startswith("baseline"):  # the NumPyro baseline's ELBO is -inf by construction
            assert math.isfinite(result["loss"]), label
    return module, out


@pytest.fixture(scope="module")
def pyro_run(tmp_path_factory):
    pytest.importorskip("pyro")
    # The baseline fit is left to test_pyro_baseline_draws_hard_gates (a few steps): the suite's
    # time budget holds one full quick fit per backend.
    return _quick("spike_slab", tmp_path_factory.mktemp("spike_slab"), "--no-baseline")


@pytest.fixture(scope="module")
def numpyro_run(tmp_path_factory):
    pytest.importorskip("numpyro")
    # No baseline fit here either: each NumPyro fit costs a compilation of seconds (the steps take
    # milliseconds); test_numpyro_baseline_scores_its_gates_impossible checks the baseline's guide.
    return _quick("spike_slab_numpyro", tmp_path_factory.mktemp("spike_slab_numpyro"), "--no-baseline")


def _check_default_estimator(module, out):
    if module.AutoRelaxed is None:
        pytest.skip(f"{module.__name__}: AutoRelaxed is not in this checkout (autoguide.py, issue 16, not merged yet)")
    label = f"AutoRelaxed {spike.default_estimator()}"
    assert label in out["results"], out["skipped"]
    worst, mean = spike.pip_errors(out["results"][label]["probs"], out["exact"])
    assert mean < QUICK_MEAN_ERROR, (worst, mean)


def test_pyro_quick_run_writes_finite_results(pyro_run):
    module, out = pyro_run
    assert module.AutoRelaxed is not None or list(out["skipped"]) == [f"AutoRelaxed {spike.default_estimator()}"]


def test_pyro_default_estimator_near_exact(pyro_run):
    _check_default_estimator(*pyro_run)


def test_numpyro_quick_run_writes_finite_results(numpyro_run):
    module, out = numpyro_run
    assert module.AutoRelaxed is not None or list(out["skipped"]) == [f"AutoRelaxed {spike.default_estimator()}"]


def test_numpyro_default_estimator_near_exact(numpyro_run):
    _check_default_estimator(*numpyro_run)


def test_pyro_baseline_draws_hard_gates():
    """The pyro#3127 guide: Pyro's own ``RelaxedBernoulliStraightThrough`` on the gate site, values
    exactly 0/1, inside the plate the ``AutoGuideList`` shares; SVI steps on it are finite."""
    pyro = pytest.importorskip("pyro")
    import torch
    from pyro.infer import SVI, Trace_ELBO

    example = _example("spike_slab")
    x, y = (torch.from_numpy(a) for a in spike.design()[:2])
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = example.baseline_guide(1.0)
    svi = SVI(example.model, guide, pyro.optim.Adam({"lr": 0.1}), Trace_ELBO())
    assert all(math.isfinite(svi.step(x, y)) for _ in range(5))
    site = pyro.poutine.trace(guide).get_trace(x, y).nodes["gamma"]
    assert type(site["fn"]) is pyro.distributions.RelaxedBernoulliStraightThrough
    assert site["value"].shape == (spike.P,) and set(site["value"].tolist()) <= {0.0, 1.0}
    assert [frame.name for frame in site["cond_indep_stack"]] == ["predictors"]
    probs = example.inclusion_probs("baseline", guide)
    assert probs.shape == (spike.P,) and np.all((probs > 0) & (probs < 1))


def test_numpyro_baseline_scores_its_gates_impossible():
    """The report's note on the NumPyro baseline: its hand-placed ``RelaxedBernoulliLogits`` gives
    gate values strictly inside (0, 1), which the model's ``Bernoulli`` scores -inf (so its ELBO is
    -inf; silently inside jit, as in the jitted update; eagerly NumPyro warns), while the
    likelihood term stays finite."""
    pytest.importorskip("numpyro")
    import jax
    from numpyro import handlers

    example = _example("spike_slab_numpyro")
    x, y, _ = spike.design()
    guide = example.baseline_guide(1.0)

    @jax.jit  # one compilation; called eagerly, every primitive compiles on its own (seconds)
    def scores(key):
        guide_trace = handlers.trace(handlers.seed(guide, key)).get_trace(x, y)
        model_trace = handlers.trace(handlers.replay(handlers.seed(example.model, key), guide_trace)).get_trace(x, y)
        site, obs = model_trace["gamma"], model_trace["y"]
        return guide_trace["gamma"]["value"], site["fn"].log_prob(site["value"]), obs["fn"].log_prob(obs["value"]).sum()

    gates, gate_log_prob, log_lik = map(np.asarray, scores(jax.random.PRNGKey(0)))
    assert gates.shape == (spike.P,) and np.all((gates > 0) & (gates < 1))
    assert np.all(np.isneginf(gate_log_prob)) and np.isfinite(log_lik)
