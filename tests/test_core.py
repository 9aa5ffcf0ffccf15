"""The backend-free core: checks, schedules, shapes, and the oracle's own consistency
(its closed-form VJPs against float64 central differences of its forward passes)."""

import math

import numpy as np
import pytest

from relaxed_dists import checks, reference as R, schedules, shapes
from relaxed_dists.clamping import ALPHA_MIN, uniform_bounds

# --- checks --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1, 0, -3])
def test_n_steps_below_two_names_parameter(bad):
    with pytest.raises(ValueError, match=r"n_steps must be an integer >= 2, got n_steps="):
        checks.check_n_steps(bad)


@pytest.mark.parametrize("bad", [2.0, "5", True, None])
def test_n_steps_not_integer_is_type_error(bad):
    with pytest.raises(TypeError, match="n_steps"):
        checks.check_n_steps(bad)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_t_1_outside_unit_interval(bad):
    with pytest.raises(ValueError, match=r"t_1 must be in \(0, 1\]"):
        checks.check_t_1(bad)


def test_t_1_accepts_endpoint():
    checks.check_t_1(1.0)
    checks.check_t_1(1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_positive_scalar(bad):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        checks.check_positive_scalar("temperature", bad)


def test_event_size_and_probs_or_logits():
    with pytest.raises(ValueError, match=r"logits must have at least 2 categories.*shape\[-1\]=1"):
        checks.check_event_size(1)
    with pytest.raises(ValueError, match="exactly one of probs or logits, got both"):
        checks.check_probs_or_logits(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="got neither"):
        checks.check_probs_or_logits(None, None)


# --- schedules -----------------------------------------------------------------------


@pytest.mark.parametrize("n_steps", [2, 3, 5, 9])
@pytest.mark.parametrize("t_1", [0.1, 0.5, 1.0])
def test_redge_grid_is_the_authors_linspace(n_steps, t_1):
    alphas = schedules.redge_alphas(n_steps, t_1)
    expected = np.concatenate([[1.0], np.linspace(1 - t_1, ALPHA_MIN, n_steps - 1)])
    np.testing.assert_allclose(alphas, expected, rtol=0, atol=1e-15)  # same floats up to rounding
    assert len(alphas) == n_steps


def test_exponential_anneal():
    assert schedules.exponential_anneal(0, 0.1, 0.5) == 1.0
    assert schedules.exponential_anneal(1000, 0.1, 0.5) == 0.5
    assert math.isclose(schedules.exponential_anneal(3, 0.1, 0.01), math.exp(-0.3))
    with pytest.raises(ValueError, match="rate"):
        schedules.exponential_anneal(3, -0.1, 0.01)


# --- shapes / clamping ---------------------------------------------------------------


def test_batch_shape_rule():
    assert shapes.batch_shape_of((3, 5), temperature=()) == (3,)
    assert shapes.batch_shape_of((3, 5), temperature=(2, 1)) == (2, 3)
    with pytest.raises(ValueError, match=r"temperature must broadcast to the batch shape \(3,\).*never to the event"):
        shapes.batch_shape_of((3, 5), temperature=(5, 2))
    with pytest.raises(ValueError, match="event_shape=\\(5,\\)"):
        shapes.check_value_shape((3, 4), (3,), (5,))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_uniform_bounds_keep_noise_finite(dtype):
    fi = np.finfo(dtype)
    lo, hi = (np.asarray(b, dtype=dtype) for b in uniform_bounds(float(fi.tiny), float(fi.eps)))
    assert hi < 1 and lo > 0
    with np.errstate(over="ignore"):
        assert np.isfinite(R.gumbel_from_uniform(np.array([lo, hi], dtype=dtype))).all()
        assert np.isfinite(R.logistic_from_uniform(np.array([lo, hi], dtype=dtype))).all()


# --- the oracle's VJPs against its forward passes (float64 central differences) ------


def _fd_grad(f, logits, g, h=1e-6):
    grad = np.zeros_like(logits)
    for i in np.ndindex(logits.shape):
        bump = np.zeros_like(logits)
        bump[i] = h
        grad[i] = (np.sum(g * f(logits + bump)) - np.sum(g * f(logits - bump))) / (2 * h)
    return grad


@pytest.mark.parametrize("n_steps", [2, 3, 5, 9])
def test_reference_redge_vjp_matches_finite_differences(n_steps):
    rng = np.random.default_rng(n_steps)
    logits, eps, g = (rng.normal(size=(2, 4)) for _ in range(3))
    t_1 = np.array([0.3, 0.9])
    soft = lambda lg: R.redge(lg, n_steps, t_1, eps, np.zeros_like(lg))[1]
    # central differences with h=1e-6 on an O(1) smooth map: error ~1e-9
    np.testing.assert_allclose(R.redge_vjp(logits, n_steps, t_1, eps, g), _fd_grad(soft, logits, g), atol=1e-8)


def test_reference_st_family_vjps():
    rng = np.random.default_rng(0)
    logits, gumbels, g = (rng.normal(size=(3, 5)) for _ in range(3))
    np.testing.assert_allclose(
        R.straight_through_vjp(logits, g), _fd_grad(lambda lg: R.softmax(lg), logits, g), atol=1e-8
    )
    gs = lambda lg: R.gumbel_softmax(lg, 0.7, gumbels)[1]
    np.testing.assert_allclose(R.gumbel_softmax_vjp(logits, 0.7, gumbels, g), _fd_grad(gs, logits, g), atol=1e-8)


def test_reference_limits():
    """REDGE at t_1 = 1 with one denoiser call is straight-through; REINDGE is then ReinMax."""
    rng = np.random.default_rng(1)
    logits, eps, gumbels, g = (rng.normal(size=(3, 6)) for _ in range(4))
    hard, soft = R.redge(logits, 2, 1.0, eps, gumbels)
    st_hard, st_soft = R.straight_through(logits, gumbels)
    np.testing.assert_array_equal(hard, st_hard)
    np.testing.assert_allclose(soft, st_soft, rtol=1e-15)
    np.testing.assert_allclose(R.redge_vjp(logits, 2, 1.0, eps, g), R.straight_through_vjp(logits, g), atol=1e-15)
    np.testing.assert_allclose(
        R.reindge_vjp(logits, 2, 1.0, eps, hard, g), R.reinmax_vjp(logits, 1.0, hard, g), atol=1e-14
    )


def test_reference_concrete_k2_is_binary_concrete():
    logits = np.array([0.4, -1.1])
    x = np.linspace(0.01, 0.99, 7)
    simplex = np.stack([x, 1 - x], -1)
    np.testing.assert_allclose(
        R.concrete_log_prob(simplex, logits, 0.3),
        R.binary_concrete_log_prob(x, logits[0] - logits[1], 0.3),
        rtol=1e-12,
    )


def test_selection_reference_kind_and_group_statistics():
    import numpy as np
    import pytest

    from relaxed_dists.selection import check_selection_args, group_means, mean_and_relative_se, reference_kind

    assert reference_kind("auto", 4096, [], 4096) == "exact"
    assert reference_kind("auto", 4097, [], 4096) == "score"
    assert reference_kind("auto", 4, ["mu"], 4096) == "score"
    with pytest.raises(ValueError, match="max_configurations=16"):
        reference_kind("exact", 17, [], 16)
    with pytest.raises(ValueError, match="continuous"):
        reference_kind("exact", 4, ["mu"], 16)
    g = np.random.default_rng(0).normal(size=(12, 3)) + 1.0
    groups = group_means(g, 4)
    assert groups.shape == (4, 3) and np.allclose(groups[1], g[3:6].mean(0))
    mean, rel_se = mean_and_relative_se(groups)
    se = np.sqrt(groups.var(0, ddof=1).sum() / 4)
    assert np.allclose(mean, g.mean(0)) and np.isclose(rel_se, se / np.linalg.norm(mean))
    with pytest.raises(ValueError, match="reference_samples"):
        check_selection_args(64, 8, "auto", "mse", 1, 16, reference_samples=100)
    with pytest.raises(TypeError, match="params"):
        check_selection_args(64, 8, "auto", "mse", 1, 16, params=[1.0])
