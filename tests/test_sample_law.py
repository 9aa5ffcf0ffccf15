"""The REDGE family's sample law made explicit (issue 15, D1): the measured worst-case TV table,
the warning above its threshold, and ``sample_law`` / ``sample_law_tv`` in both backends.

The classes' ``log_prob``, ``mean``, ``entropy`` and KLs are those of the nominal
``Cat(softmax(logits))``; their hard samples follow it exactly only at ``t_1 = 1``.
"""

import warnings

import numpy as np
import pytest

from relaxed_dists import sample_law
from relaxed_dists.sample_law import N_STEPS_GRID, T_1_GRID, WARN_TV, SampleLawWarning, tv_bound

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import numpyro_ext  # noqa: E402
import pyro_ext  # noqa: E402
from pyro_ext import estimators as torch_estimators  # noqa: E402

NAMES = {"REDGE": "redge", "REDGECov": "redge_cov", "REINDGE": "reindge"}


@pytest.mark.parametrize("estimator", sorted(sample_law.MEASURED_TV))
def test_bound_is_monotone_and_covers_the_measurements(estimator):
    grid = [[tv_bound(estimator, n, t) for n in N_STEPS_GRID] for t in T_1_GRID]
    for j, t in enumerate(T_1_GRID):
        for i in range(len(N_STEPS_GRID)):
            assert grid[j][i] >= sample_law.MEASURED_TV[estimator][t][i]
            if i + 1 < len(N_STEPS_GRID):
                assert grid[j][i] >= grid[j][i + 1]  # more steps: no more bias
            if j + 1 < len(T_1_GRID):
                assert grid[j][i] >= grid[j + 1][i]  # larger t_1: no more bias
    # between grid points the look-up is at the grid point below (more biased)
    assert tv_bound(estimator, 4, 0.45) == tv_bound(estimator, 3, 0.3)
    assert tv_bound(estimator, 100, 0.99) == tv_bound(estimator, 17, 0.9)
    assert tv_bound(estimator, 2, 1.0) == 0.0  # t_1 = 1: the exact law
    assert tv_bound(estimator, 9, 0.05) == 1.0  # below the measured grid: no claim


def test_bound_rejects_unknown_estimators():
    with pytest.raises(ValueError, match="estimator must be one of"):
        tv_bound("gumbel", 5, 0.5)


@pytest.mark.parametrize("backend", [pyro_ext, numpyro_ext], ids=["torch", "jax"])
@pytest.mark.parametrize("name", sorted(NAMES))
def test_warns_above_the_threshold_and_not_at_the_defaults(backend, name):
    cls = getattr(backend, name)
    logits = np.zeros((2, 3))
    as_array = torch.as_tensor if backend is pyro_ext else jnp.asarray
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults are quiet
        d = cls(logits=as_array(logits))
    assert d.sample_law_tv == tv_bound(NAMES[name], 5, 0.5) <= WARN_TV
    with pytest.warns(SampleLawWarning, match=rf"{NAMES[name]} with n_steps=2, t_1=0.3: .* up to TV"):
        d = cls(logits=as_array(logits), n_steps=2, t_1=0.3)
    assert d.sample_law_tv == tv_bound(NAMES[name], 2, 0.3) > WARN_TV


@pytest.mark.parametrize("backend", [pyro_ext, numpyro_ext], ids=["torch", "jax"])
def test_array_t_1_is_not_read_at_construction_but_bounded_on_request(backend):
    as_array = torch.as_tensor if backend is pyro_ext else jnp.asarray
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an array t_1 may be traced: no check at construction
        d = backend.REDGE(logits=as_array(np.zeros((2, 3))), n_steps=2, t_1=as_array(np.array([0.3, 0.9])))
    assert d.sample_law_tv == tv_bound("redge", 2, 0.3)  # the batch's worst t_1


@pytest.mark.statistical
@pytest.mark.parametrize("backend", [pyro_ext, numpyro_ext], ids=["torch", "jax"])
def test_sample_law_shows_the_bias_the_table_bounds(backend):
    """K = 10 logits ~ N(0, 2^2), one of the measured problem families. At ``n_steps=2,
    t_1=0.3`` the frequencies of 20,000 draws are far from ``probs`` (TV well above the
    sampling noise) yet within the table's bound; at ``t_1 = 1`` they match ``probs``.
    Sampling noise: the TV of 20,000 exact draws over 10 classes has mean ~0.01 and
    sd ~0.003, so 0.04 is a > 9-sigma margin either way (false-failure rate < 1e-6)."""
    logits = 2.0 * np.random.default_rng(0).standard_normal(10)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()

    def law(**hyper):
        if backend is pyro_ext:
            torch.manual_seed(0)
            d = backend.REDGE(logits=torch.as_tensor(logits), **hyper)
            return d.sample_law(20_000).numpy(), d.sample_law_tv
        d = backend.REDGE(logits=jnp.asarray(logits), **hyper)
        return np.asarray(d.sample_law(jax.random.key(0), 20_000)), d.sample_law_tv

    with pytest.warns(SampleLawWarning):
        biased, bound = law(n_steps=2, t_1=0.3)
    tv = 0.5 * np.abs(biased - probs).sum()
    assert 0.04 < tv <= bound + 0.04
    exact, bound = law(n_steps=2, t_1=1.0)
    assert bound == 0.0 and 0.5 * np.abs(exact - probs).sum() < 0.04


def test_sample_law_rejects_bad_sample_counts():
    d = pyro_ext.REDGE(logits=torch.zeros(3))
    with pytest.raises(ValueError, match=r"n_samples must be an integer >= 1, got n_samples=0"):
        d.sample_law(0)
    with pytest.raises(ValueError, match=r"n_samples must be an integer >= 1"):
        numpyro_ext.REDGE(logits=jnp.zeros(3)).sample_law(jax.random.key(0), 2.5)


def test_reindge_draws_redges_samples():
    """REINDGE's forward pass is REDGE's chain, so the table gives it REDGE's row."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 7, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 7, generator=g, dtype=torch.float64)
    gumbels = -torch.log(-torch.log(torch.rand(64, 7, generator=g, dtype=torch.float64)))
    for n_steps, t_1 in [(2, 0.3), (5, 0.5), (9, 0.7)]:
        redge = torch_estimators.redge(logits, n_steps, t_1, eps, gumbels)[0]
        reindge = torch_estimators.reindge(logits, n_steps, t_1, eps, gumbels)[0]
        assert torch.equal(redge, reindge)
    assert sample_law.MEASURED_TV["reindge"] is sample_law.MEASURED_TV["redge"]
