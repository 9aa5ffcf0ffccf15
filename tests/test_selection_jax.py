"""numpyro_ext.selection: select_estimator's references and statistics, the "auto" guides and
run_svi, the CLI. Small shapes (2 x 3 logits, 2-4 candidates) keep jit compile time low."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
import pytest
from numpyro.infer import SVI, Trace_ELBO

from numpyro_ext import diagnostics, selection
from numpyro_ext.autoguide import AutoRelaxed
from numpyro_ext.distributions import OneHotCategorical
from numpyro_ext.relax import RelaxReparam, relax
from relaxed_dists import defaults
from relaxed_dists.selection import SelectionReport, candidate_result

_spec = importlib.util.spec_from_file_location(
    "_selection_problems_numpyro", pathlib.Path(__file__).parents[1] / "benchmarks" / "_selection_problems_numpyro.py"
)
problems = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(problems)

LOGITS = jnp.array([[0.3, -0.5, 1.0], [-1.0, 0.2, 0.4]])
A = jnp.array(np.random.default_rng(0).normal(size=(2, 2, 3, 3)))
QUADRATIC = lambda x: jnp.einsum("...lk,lmkj,...mj->...", x, A, x)  # noqa: E731


def _model_guide(f, logits=LOGITS):
    """ELBO gradient = grad E_q[f(z)] (log p - log q = 0): benchmarks/_selection_problems_numpyro.py."""
    return problems.expectation_model_guide(f, logits)


@pytest.fixture(scope="module")
def problem():
    model, guide = _model_guide(QUADRATIC)
    return selection._Problem(jax.random.PRNGKey(0), model, guide, (), {}, None)


def test_exact_reference_is_the_enumerated_gradient(problem):
    assert problem.n_configurations() == 9 and problem.names == ["q"]
    exact = diagnostics.exact_gradient(QUADRATIC, LOGITS)
    np.testing.assert_allclose(selection._exact_reference(problem), np.asarray(exact).ravel(), rtol=1e-10, atol=1e-12)


@pytest.mark.statistical
def test_score_reference_within_its_standard_error(problem):
    # Seeded; ||mean - exact|| / ||exact|| has the scale of the reported relative se (it is the
    # root of the summed per-coordinate variances of the mean): 4 se bounds it except with
    # probability far below 1e-3 for 6 coordinates (chi with 6 dof).
    mean, rel_se = selection._score_reference(jax.random.PRNGKey(1), problem, 2048, 32)
    exact = np.asarray(diagnostics.exact_gradient(QUADRATIC, LOGITS)).ravel()
    assert 0 < rel_se < 0.5
    assert np.linalg.norm(mean - exact) / np.linalg.norm(exact) < 4 * rel_se


@pytest.fixture(scope="module")
def report():
    model, guide = _model_guide(QUADRATIC)
    return selection.select_estimator(
        jax.random.PRNGKey(2),
        model,
        guide,
        candidates=["st", "reinmax"],
        num_samples=512,
        num_groups=32,
        reference="exact",
    )


def test_report_shapes_and_fields(report):
    assert report.reference == "exact" and report.n_configurations == 9 and report.params == ["q"]
    assert [r.n_samples for r in report.results] == [512, 512] and report.results[0].mean.shape == (6,)
    assert report.reference_norm == pytest.approx(float(jnp.linalg.norm(diagnostics.exact_gradient(QUADRATIC, LOGITS))))
    assert report.best[0] in ("st", "reinmax") and report.step_seconds > 0 and report.cost_in_steps > 1
    assert report.results[0].mse_n <= report.results[1].mse_n
    assert "| rank | estimator |" in report.table() and set(report.to_dict()) >= {"results", "best", "cost_in_steps"}


@pytest.mark.statistical
def test_straight_through_more_biased_than_reinmax_on_a_quadratic(report):
    # ReinMax is second-order accurate, ST first-order: on a quadratic f ST's bias is larger.
    # 512 seeded samples; the debiased biases are compared with a margin of 2 of their se.
    r = {x.estimator: x for x in report.results}
    assert r["st"].bias > r["reinmax"].bias + 2 * (r["st"].se + r["reinmax"].se) / 2


def test_bad_inputs_name_the_parameter():
    model, guide = _model_guide(QUADRATIC)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="num_samples must be a multiple of num_groups"):
        selection.select_estimator(key, model, guide, num_samples=33, num_groups=32)
    with pytest.raises(ValueError, match="reference"):
        selection.select_estimator(key, model, guide, reference="bogus")
    with pytest.raises(TypeError, match="params"):
        selection.select_estimator(key, model, guide, params=[1.0])
    with pytest.raises(ValueError, match="reference_samples"):
        selection.select_estimator(key, model, guide, reference_samples=10)
    with pytest.raises(ValueError, match="max_configurations=4"):
        selection.select_estimator(key, model, guide, reference="exact", max_configurations=4)
    with pytest.raises(ValueError, match="needs model="):
        relax(guide, estimator="auto")
    with pytest.raises(TypeError, match="no hyperparameters"):
        relax(guide, estimator="auto", model=model, temperature=0.5)
    with pytest.raises(ValueError, match="reselect_every"):
        relax(guide, estimator="auto", model=model, reselect_every=0)
    with pytest.raises(ValueError, match="reselect_every"):
        AutoRelaxed(model, estimator="auto", reselect_every=1.5)
    with pytest.raises(TypeError, match="no hyperparameters"):
        AutoRelaxed(model, estimator="auto", temperature=0.5)
    with pytest.raises(ValueError, match="relax.*AutoRelaxed"):
        RelaxReparam("auto")
    with pytest.raises(ValueError, match="num_steps"):
        selection.run_svi(key, SVI(model, guide, optax.adam(0.1), Trace_ELBO()), -1)


def test_auto_guide_before_selection_raises_pointing_at_run_svi():
    model, guide = _model_guide(QUADRATIC)
    auto = relax(guide, estimator="auto", model=model)
    with pytest.raises(RuntimeError, match=r"run_svi.*guide\.select"):
        SVI(model, auto, optax.adam(0.1), Trace_ELBO()).init(jax.random.PRNGKey(0))


def _counting_mixture():
    locs = jnp.array([-2.0, 0.0, 2.0])
    traces = []

    def model(x):
        if isinstance(x, jax.core.Tracer):  # x is an argument of the jitted update only
            traces.append(1)
        with numpyro.plate("data", 2):
            z = numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(3)))
            numpyro.sample("x", numpyro.distributions.Normal(z @ locs, 1.0), obs=x)

    def guide(x):
        q = numpyro.param("q", jnp.zeros((2, 3)))
        with numpyro.plate("data", 2):
            numpyro.sample("z", OneHotCategorical(logits=q))

    return model, guide, traces


@pytest.mark.filterwarnings("ignore:Currently, SVI with:UserWarning")  # the model's one-hot prior
def test_run_svi_reselects_on_schedule_and_recompiles_only_on_change(caplog, monkeypatch):
    model, guide, traces = _counting_mixture()
    auto = relax(guide, estimator="auto", model=model, reselect_every=3)
    auto.selection_options = {"candidates": ["st", "reinmax"], "num_samples": 16, "num_groups": 4}
    svi = SVI(model, auto, optax.adam(0.1), Trace_ELBO())
    x = jnp.array([-1.9, 2.2])
    with caplog.at_level("INFO", logger="numpyro_ext.selection"):
        result = selection.run_svi(jax.random.PRNGKey(0), svi, 5, x, progress_bar=False)
    assert result.losses.shape == (5,) and np.all(np.isfinite(result.losses))
    assert [s for s, _, _ in auto.selections] == [0, 3] and auto.selection is not None
    assert auto.selection.num_particles == defaults.AUTO_AVERAGED_GRADIENTS
    assert sum("selected" in r.message for r in caplog.records) == 2
    changes = sum(a[1:] != b[1:] for a, b in zip(auto.selections, auto.selections[1:]))
    assert len(traces) == 1 + changes  # one trace of the jitted update per distinct choice in a row
    # forced alternation (no measurement: a stand-in report): each change of choice -> one more compile
    choices = iter([("st", {}), ("reinmax", {"temperature": 1.0}), ("reinmax", {"temperature": 1.0})])

    def fake(key, model, guide, *args, **kwargs):
        estimator, hyper = next(choices)
        result = candidate_result(estimator, hyper, np.ones((4, 6)), np.ones(6), seconds=1e-3)
        return SelectionReport([result], "exact", 1.0, 0.0, 0, 9, ["q"], 1, "mse", 0.1, 1e-3)

    monkeypatch.setattr(selection, "select_estimator", fake)
    traces.clear()
    auto = relax(guide, estimator="auto", model=model, reselect_every=2)
    selection.run_svi(jax.random.PRNGKey(0), SVI(model, auto, optax.adam(0.1), Trace_ELBO()), 5, x, progress_bar=False)
    assert [e for _, e, _ in auto.selections] == ["st", "reinmax", "reinmax"] and len(traces) == 2


def _cli_problem():
    model, guide = _model_guide(QUADRATIC)
    return model, guide, ()


def test_cli_prints_the_table(capsys):
    # the benchmark factory (benchmarks._selection_problems_numpyro:mixture) enumerates 4^6
    # configurations; this file's own 9-configuration problem keeps the test short
    text = diagnostics.main(
        ["select", f"{__name__}:_cli_problem", "--candidates", "st", "--samples", "16", "--groups", "4"]
    )
    assert "| rank | estimator |" in text and "| 1 | **st** |" in text and text in capsys.readouterr().out
