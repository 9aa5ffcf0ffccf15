"""Example problems for ``python -m numpyro_ext.diagnostics select module:function``: each function
returns ``(model, guide, args)``.

    python -m numpyro_ext.diagnostics select benchmarks._selection_problems_numpyro:mixture --samples 128

``mixture``: issue 10's fixed-means mixture (``benchmarks/_mixtures.py``: 6 points, 4 components),
guide ``OneHotCategorical(logits=q)`` with ``q`` a ``(6, 4)`` ``numpyro.param`` starting at 0.
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
