"""Example problems for ``python -m numpyro_ext.diagnostics select module:function``: each function
returns ``(model, guide, args)``.

    python -m numpyro_ext.diagnostics select benchmarks._selection_problems_numpyro:mixture --samples 128

``mixture``: issue 10's fixed-means mixture (``benchmarks/_mixtures.py``: 6 points, 4 components),
guide ``OneHotCategorical(logits=q)`` with ``q`` a ``(6, 4)`` ``numpyro.param`` starting at 0.
``expectation_model_guide(f, logits)``: a model and guide whose ELBO gradient is exactly
``grad E_q[f(z)]`` (the JAX twin of ``_selection_problems.expectation``).
"""

from __future__ import annotations

import importlib.util
import pathlib

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from numpyro_ext.distributions import OneHotCategorical

_spec = importlib.util.spec_from_file_location("_mixtures", pathlib.Path(__file__).with_name("_mixtures.py"))
mixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mixtures)

FIXED = mixtures.FIXED


def mixture_model(x):
    locs, weights = jnp.asarray(FIXED["locs"]), jnp.asarray(FIXED["weights"])
    with numpyro.plate("data", len(x)):
        z = numpyro.sample("z", OneHotCategorical(probs=weights))
        numpyro.sample("x", dist.Normal(z @ locs, FIXED["scale"]), obs=x)


def mixture_guide(x):
    q = numpyro.param("q", jnp.zeros((len(x), len(FIXED["locs"]))))
    with numpyro.plate("data", len(x)):
        numpyro.sample("z", OneHotCategorical(logits=q))


def mixture():
    """``(model, guide, (x,))`` of issue 10's mixture."""
    return mixture_model, mixture_guide, (jnp.asarray(FIXED["x"]),)


def expectation_model_guide(f, logits):
    """A model and guide whose ELBO gradient is grad E_q[f(z)]: the model's prior on ``z`` is the
    guide's own ``q`` (so ``log p(z) - log q(z)`` is 0 for every ``z`` and ``q``), plus ``factor(f(z))``."""

    def model():
        q = numpyro.param("q", logits)
        z = numpyro.sample("z", OneHotCategorical(logits=q).to_event(1))
        numpyro.factor("f", f(z))

    def guide():
        q = numpyro.param("q", logits)
        numpyro.sample("z", OneHotCategorical(logits=q).to_event(1))

    return model, guide
