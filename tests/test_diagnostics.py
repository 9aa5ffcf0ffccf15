"""``diagnostics`` in both backends and the core: exact gradients by enumeration against
hand-derived ones, the fields of a gradient report, sample fidelity, the two backends against
each other, and the command lines.

Statistical tests are seeded (so deterministic) and marked ``statistical``; each states its
false-failure rate. The margin on a mean of ``M`` per-sample gradients is five standard errors:
with ``e`` its error and ``tr`` the trace of their covariance, ``E||e||^2 = tr / M`` and under
the CLT ``P(||e||^2 > 25 tr / M) <= P(chi2_1 > 25) ~ 6e-7`` (all variance in one direction).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import subprocess
import sys

import numpy as np
import pytest

from relaxed_dists import diagnostics as core

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy
torch_diag = importlib.import_module("pyro_ext.diagnostics")
jax_diag = importlib.import_module("numpyro_ext.diagnostics")

N_SE = 5.0  # standard errors; false-failure rate ~6e-7 per assertion (module docstring)
KEYED = {"estimator_gradients", "gradient_report", "gradient_sweep", "sample_fidelity", "check_gradients"}


class Backend:
    """Calls a backend's diagnostics with float64 arrays, inserting JAX's leading key."""

    def __init__(self, name: str):
        self.name, self.module = name, torch_diag if name == "torch" else jax_diag

    def array(self, x):
        return torch.as_tensor(np.asarray(x, np.float64)) if self.name == "torch" else jnp.asarray(x, jnp.float64)

    def ops(self):
        return torch if self.name == "torch" else jnp

    def __call__(self, fn: str, *args, seed: int = 0, **kwargs):
        if self.name == "torch":
            torch.manual_seed(seed)
            return getattr(self.module, fn)(*args, **kwargs)
        return getattr(self.module, fn)(jax.random.PRNGKey(seed), *args, **kwargs)


@pytest.fixture(params=["torch", "jax"])
def backend(request):
    return Backend(request.param)


def _softmax_vjp(p, g):
    return p * (g - (p * g).sum(axis=-1, keepdims=True))


def _problem(seed, n_vars=3, k=4, batch=()):
    rng = np.random.default_rng(seed)
    logits, c = rng.standard_normal(batch + (n_vars, k)), rng.standard_normal((n_vars, k))
    return logits, c, rng.standard_normal((n_vars, n_vars, k, k))


@pytest.mark.parametrize("batch", [(), (2,)])
def test_exact_gradient_linear_hand_derived(backend, batch):
    logits, c, _ = _problem(1, batch=batch)
    p = np.exp(logits - np.log(np.exp(logits).sum(-1, keepdims=True)))
    cb = backend.array(c)
    grad = backend.module.exact_gradient(lambda x: (x * cb).sum(axis=(-2, -1)), backend.array(logits))
    # d/dlogits sum_l <c_l, softmax(logits_l)> = p * (c - <p, c>); float64 sums over 64 configurations
    np.testing.assert_allclose(np.asarray(grad), _softmax_vjp(p, np.broadcast_to(c, logits.shape)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch", [(), (2, 1)])
def test_exact_gradient_quadratic_hand_derived(backend, batch):
    logits, _, a = _problem(2, batch=batch)
    n_vars = a.shape[0]
    p = np.exp(logits - np.log(np.exp(logits).sum(-1, keepdims=True)))
    # E sum_{l,m} X_l^T A_lm X_m = sum_{l != m} p_l^T A_lm p_m + sum_l <diag(A_ll), p_l> (independent
    # one-hots, X_lk^2 = X_lk), so dE/dp_l = sum_{m != l} (A_lm p_m + A_ml^T p_m) + diag(A_ll)
    off = a * (1.0 - np.eye(n_vars))[..., None, None]
    diag = np.stack([np.diag(a[l, l]) for l in range(n_vars)])
    d_p = np.einsum("lmkj,...mj->...lk", off, p) + np.einsum("mljk,...mj->...lk", off, p) + diag
    ab = backend.array(a)
    f = lambda x: backend.ops().einsum("...lk,lmkj,...mj->...", x, ab, x)  # noqa: E731
    grad = backend.module.exact_gradient(f, backend.array(logits))
    np.testing.assert_allclose(np.asarray(grad), _softmax_vjp(p, d_p), rtol=0, atol=1e-12)


def test_exact_gradient_torch_and_jax_agree():
    t_logits, t_functions = torch_diag.standard_problem()
    j_logits, j_functions = jax_diag.standard_problem()
    np.testing.assert_array_equal(t_logits.numpy(), np.asarray(j_logits))
    for name in core.FUNCTIONS:
        t_grad = torch_diag.exact_gradient(t_functions[name], t_logits).numpy()
        j_grad = np.asarray(jax_diag.exact_gradient(j_functions[name], j_logits))
        np.testing.assert_allclose(t_grad, j_grad, rtol=1e-12, atol=1e-14)  # float64, same 64 terms


def test_enumeration_limit():
    assert core.all_one_hots(2, 3).sum(axis=-1).min() == 1.0
    with pytest.raises(ValueError, match="K=10, L=6"):
        torch_diag.exact_gradient(lambda x: x.sum(dim=(-2, -1)), torch.zeros(6, 10))


def test_unknown_estimator(backend):
    with pytest.raises(ValueError, match="estimator=.nope."):
        backend("gradient_report", "nope", lambda x: x.sum(), backend.array(np.zeros((2, 3))))


def test_hyperparameters_by_relax_names(backend):
    """``temperature`` as ``relax`` names it (the samplers' ``tau`` is no diagnostics keyword);
    a name the estimator does not take is a TypeError listing the allowed ones, before any draw."""
    logits = backend.array(np.zeros((1, 3)))
    report = backend("sample_fidelity", "gumbel", logits[0], n_samples=10, temperature=0.5)
    assert report.params == {"temperature": 0.5} and "gumbel temperature=0.5" in report.to_markdown()
    for estimator, wrong, allowed in [
        ("gumbel", "tau", r"\['temperature'\]"),
        ("redge", "temperature", r"\['n_steps', 't_1'\]"),
        ("st", "temperature", "none"),
        ("reinforce", "temperature", "none"),
    ]:
        with pytest.raises(
            TypeError, match=rf"estimator='{estimator}' takes hyperparameters {allowed}, got unexpected \['{wrong}'\]"
        ):
            backend("gradient_report", estimator, lambda x: x.sum(axis=(-2, -1)), logits, n_samples=2, **{wrong: 0.5})


def test_report_fields_st_linear_is_exact(backend):
    # straight-through's gradient of <c, X> is softmax_vjp(p, c) whatever the sample: exact per sample
    logits, c, _ = _problem(3, n_vars=2, k=3)
    cb = backend.array(c)
    f = lambda x: (x * cb).sum(axis=(-2, -1))  # noqa: E731
    report = backend("gradient_report", "st", f, backend.array(logits), n_samples=200)
    assert report.n_samples == 200 and report.mean.shape == report.exact.shape == (2, 3)
    assert all(isinstance(getattr(report, s), float) for s in ("bias", "se", "var", "mse", "cos"))
    assert report.bias < 1e-12 and report.var < 1e-24 and abs(report.cos - 1.0) < 1e-12  # float64 rounding
    assert "| st |" in report.to_markdown()


@pytest.mark.statistical
def test_report_fields_reinforce_quadratic(backend):
    logits, _, a = _problem(4, n_vars=2, k=3)
    ab = backend.array(a)
    f = lambda x: backend.ops().einsum("...lk,lmkj,...mj->...", x, ab, x)  # noqa: E731
    report = backend("gradient_report", "reinforce", f, backend.array(logits), n_samples=20_000)
    assert report.bias <= N_SE * report.se, report  # unbiased: false-failure rate ~6e-7
    # mse = var + ||mean - exact||^2 exactly (up to float64 rounding), and bias * ||exact|| = ||mean - exact||
    norm = np.linalg.norm(report.exact)
    np.testing.assert_allclose(report.mse, report.var + (report.bias * norm) ** 2, rtol=1e-9)
    np.testing.assert_allclose(report.se, np.sqrt(report.var / 20_000) / norm, rtol=1e-12)
    assert 0.99 < report.cos <= 1.0  # with bias ~ se ~ 0.02 at this M, cos >= 1 - O(se^2)


def test_batched_report_shapes(backend):
    logits, c, _ = _problem(5, n_vars=2, k=3, batch=(4,))
    cb = backend.array(c)
    f = lambda x: (x * cb).sum(axis=(-2, -1))  # noqa: E731
    report = backend("gradient_report", "redge", f, backend.array(logits), n_samples=50, n_steps=3, t_1=0.5)
    assert report.mean.shape == (4, 2, 3) and report.bias.shape == report.cos.shape == (4,)


def test_sweep_and_plot(backend):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logits, functions = backend.module.standard_problem()
    # two points: each JAX point compiles its own program (~1.5 s on CPU)
    reports = backend("gradient_sweep", "redge", functions["bump"], logits, n_samples=100, n_steps=(2, 3), t_1=[0.5])
    assert [r.params for r in reports] == [{"n_steps": 2, "t_1": 0.5}, {"n_steps": 3, "t_1": 0.5}]
    ax = core.plot_sweep(reports, "t_1", by="n_steps")
    assert len(ax.lines) >= 2
    plt.close("all")


@pytest.mark.statistical
def test_sample_fidelity(backend):
    # K = 10. At t_1 = 1 REDGE's hard sample is exactly categorical: TV ~ the noise level (0.013 at
    # N = 20000); TV is a sum of 10 half-normals, P(TV > 3 * E TV) is negligible (< 1e-6). At
    # n_steps = 2, t_1 = 0.3 the law is off by ~0.23 (benchmarks/results/gradient_quality.md).
    logits = backend.array(core.standard_coefficients()["fidelity_logits"])
    exact = backend("sample_fidelity", "redge", logits, n_samples=20_000, n_steps=5, t_1=1.0)
    off = backend("sample_fidelity", "redge", logits, n_samples=20_000, n_steps=2, t_1=0.3)
    assert exact.tv < 3 * exact.noise < 0.05 < off.tv, (exact, off)
    assert "| redge n_steps=2 t_1=0.3 | 20000 |" in off.to_markdown()


def test_same_names_and_signatures():
    assert sorted(torch_diag.__all__) == sorted(jax_diag.__all__)
    for name in torch_diag.__all__:
        t_obj, j_obj = getattr(torch_diag, name), getattr(jax_diag, name)
        if inspect.isclass(t_obj):
            assert t_obj is j_obj  # the core's dataclasses
            continue
        t_params, j_params = list(inspect.signature(t_obj).parameters), list(inspect.signature(j_obj).parameters)
        if name in KEYED:
            assert j_params[0] == "key", name
            j_params = j_params[1:]
        assert t_params == j_params, name


@pytest.mark.parametrize("module", [core, torch_diag, jax_diag], ids=["core", "torch", "jax"])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    "module, extra",
    # the JAX command compiles each row's program (~2 s each on CPU): one function keeps it short
    [("pyro_ext.diagnostics", []), ("numpyro_ext.diagnostics", ["--function", "bump", "--fidelity-samples", "2000"])],
)
def test_cli(module, extra):
    command = [sys.executable, "-m", module, "--estimator", "redge", "--samples", "2000", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| reinforce |" in done.stdout and "| redge n_steps=5 t_1=0.5 |" in done.stdout
    assert "TV(hard, softmax)" in done.stdout
