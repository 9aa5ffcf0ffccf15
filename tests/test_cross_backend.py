"""torch and JAX agree on the same noise: every kernel of ``pyro_ext`` against its twin in
``numpyro_ext``, forward values and gradients, in float64 and float32.

Both follow the float64 oracle separately (the per-backend tests); this file checks the
mirror directly, so a change on one side that the oracle does not see still shows.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from numpyro_ext import concrete as jc, estimators as je
from pyro_ext import concrete as tc, estimators as te

# float64: the same operations up to order, ~1e-16 per op through a few dozen ops.
# float32: the same, at eps32 = 1.2e-7, through chains of up to 8 softmaxes.
TOL = {np.float64: dict(rtol=1e-11, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}

ESTIMATORS = {
    "straight_through": lambda m, lg, eps, g: m.straight_through(lg, g),
    "gumbel_softmax": lambda m, lg, eps, g: m.gumbel_softmax(lg, 0.5, g),
    "reinmax": lambda m, lg, eps, g: m.reinmax(lg, 0.7, g),
    "redge": lambda m, lg, eps, g: m.redge(lg, 5, 0.5, eps, g),
    "redge_t1_array": lambda m, lg, eps, g: m.redge(lg, 3, m_array(m, [0.3, 0.9], lg), eps, g),
    "redge_cov": lambda m, lg, eps, g: m.redge_cov(lg, 4, 0.4, eps, g),
    "reindge": lambda m, lg, eps, g: m.reindge(lg, 5, 0.5, eps, g),
}


def m_array(module, values, like):
    if module is te:
        return torch.tensor(values, dtype=like.dtype)
    return jnp.asarray(values, dtype=like.dtype)


def _inputs(dtype, k=6, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, k)) * 2
    eps, gumbels, weight = (rng.normal(size=(2, k)) for _ in range(3))
    return [a.astype(dtype) for a in (logits, eps, gumbels, weight)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_estimator_kernels_agree(name, dtype):
    logits, eps, gumbels, weight = _inputs(dtype)
    kernel = ESTIMATORS[name]

    lt = torch.tensor(logits, requires_grad=True)
    hard_t, soft_t = kernel(te, lt, torch.tensor(eps), torch.tensor(gumbels))
    (torch.tensor(weight) * hard_t).sum().backward()

    def loss(lg):
        hard, soft = kernel(je, lg, jnp.asarray(eps), jnp.asarray(gumbels))
        return jnp.sum(jnp.asarray(weight) * hard), (hard, soft)

    (_, (hard_j, soft_j)), grad_j = jax.value_and_grad(loss, has_aux=True)(jnp.asarray(logits))
    np.testing.assert_array_equal(hard_t.detach().numpy(), np.asarray(hard_j))
    np.testing.assert_allclose(soft_t.detach().numpy(), np.asarray(soft_j), **TOL[dtype])
    np.testing.assert_allclose(lt.grad.numpy(), np.asarray(grad_j), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_concrete_kernels_agree(dtype):
    logits, _, gumbels, _ = _inputs(dtype, k=5)
    for temperature in (0.05, 1.0):
        y_t = tc.concrete_log_sample(torch.tensor(logits), temperature, torch.tensor(gumbels))
        y_j = jc.concrete_log_sample(jnp.asarray(logits), temperature, jnp.asarray(gumbels))
        np.testing.assert_allclose(y_t.numpy(), np.asarray(y_j), **TOL[dtype])
        lp_t = tc.exp_concrete_log_prob(y_t, torch.tensor(logits), temperature)
        lp_j = jc.exp_concrete_log_prob(y_j, jnp.asarray(logits), temperature)
        np.testing.assert_allclose(lp_t.numpy(), np.asarray(lp_j), **TOL[dtype])
        x = np.exp(np.asarray(y_j))
        np.testing.assert_allclose(
            tc.concrete_log_prob(torch.tensor(x), torch.tensor(logits), temperature).numpy(),
            np.asarray(jc.concrete_log_prob(jnp.asarray(x), jnp.asarray(logits), temperature)),
            **TOL[dtype],
        )
    z = logits[:, 0]
    for fn in ("logit_binary_concrete_log_prob", "bernoulli_log_prob"):
        args = (z, logits[:, 1], 0.3) if fn.startswith("logit") else ((z > 0).astype(dtype), logits[:, 1])
        t_out = getattr(tc, fn)(*(torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args))
        j_out = getattr(jc, fn)(*(jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args))
        np.testing.assert_allclose(t_out.numpy(), np.asarray(j_out), **TOL[dtype])
