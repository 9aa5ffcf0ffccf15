"""Property-based numerics of the NumPyro classes (issue 15): float32 own-sample ``log_prob``
and its gradients are finite over temperature 0.01-5, K 2-1000 and logits scale 0-1e3.

Hypothesis draws the inputs with a fixed seed profile (``derandomize=True``: CI runs the same
examples every time). The function under test is jitted once per class, outside the
Hypothesis loop, with static shapes: the logits always have 1000 entries, and those past K are
``-inf``, which masks them (the law of the first K classes alone, checked against the float64
oracle in ``tests/test_bad_inputs_jax.py``); K itself, the scale, the temperature (REDGE: t_1)
and the noise seed are traced, so no example recompiles. The two Bernoulli classes get a batch
of 64 logits of the same scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import numpyro_ext
from bad_inputs import BINARY_CLASSES, CLASSES

K_MAX = 1000
N_DRAWS = 8
#: a few seconds per class on the 2-core CI machine, compilation included
PROFILE = settings(derandomize=True, deadline=None, max_examples=15, database=None)
REDGE_CLASSES = ("REDGE", "REDGECov", "REINDGE")
HYPER = {
    "ExpRelaxedOneHotCategorical": "temperature",
    "RelaxedOneHotCategorical": "temperature",
    "RelaxedOneHotCategoricalStraightThrough": "temperature",
    "RelaxedBernoulli": "temperature",
    "RelaxedBernoulliStraightThrough": "temperature",
    "ReinMax": "temperature",
    **{c: "t_1" for c in REDGE_CLASSES},
}


def _scenario(class_name: str):
    """``(raw, k, scale, hyper, seed) -> (log_prob, grads)``, jitted: own draws of the class with
    logits ``scale * raw`` on the first ``k`` classes (``-inf`` after), scored with their
    intermediates, and the gradient of ``sum(log_prob) + <finite draws, w>`` in ``raw`` and the
    hyperparameter (OneHotCategorical and StraightThrough have none: 0)."""
    cls = getattr(numpyro_ext, class_name)
    binary = class_name in BINARY_CLASSES
    hyper_name = HYPER.get(class_name)

    def loss(raw, hyper, k, scale, seed):
        if binary:
            logits = scale * raw[:64]
        else:
            logits = jnp.where(jnp.arange(K_MAX) < k, scale * raw, -jnp.inf)
        kwargs = {hyper_name: hyper} if hyper_name else {}
        d = cls(logits=logits, validate_args=True, **kwargs)  # under jit: off-support draws score -inf
        x, intermediates = d.sample_with_intermediates(jax.random.key(seed, impl="rbg"), (N_DRAWS,))
        lp = d.log_prob(x, intermediates) if intermediates else d.log_prob(x)
        weights = jnp.linspace(-1.0, 1.0, x.shape[-1], dtype=x.dtype)
        return jnp.sum(lp) + jnp.sum(jnp.where(jnp.isfinite(x), x, 0.0) * weights), lp

    grad = jax.grad(loss, argnums=(0, 1), has_aux=True)
    return jax.jit(lambda raw, hyper, k, scale, seed: grad(raw, hyper, k, scale, seed)[::-1])


@pytest.mark.parametrize("class_name", CLASSES)
def test_own_sample_log_prob_and_gradients_finite_float32(class_name):
    run = _scenario(class_name)
    low = 0.01
    high = 1.0 if class_name in REDGE_CLASSES else 5.0  # t_1 lives in (0, 1]

    @PROFILE
    @given(
        hyper=st.floats(low, high),
        k=st.integers(2, K_MAX),
        scale=st.floats(0.0, 1e3),
        seed=st.integers(0, 2**31 - 1),
    )
    def check(hyper, k, scale, seed):
        raw = jax.random.normal(jax.random.key(seed, impl="rbg"), (K_MAX,), jnp.float32)
        args = (raw, jnp.float32(hyper), jnp.int32(k), jnp.float32(scale), jnp.uint32(seed))
        lp, (grad_raw, grad_hyper) = run(*args)
        assert lp.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(lp))), (class_name, hyper, k, scale, seed)
        example = (class_name, hyper, k, scale, seed)
        assert np.all(np.isfinite(np.asarray(grad_raw))) and np.isfinite(grad_hyper), example

    check()
