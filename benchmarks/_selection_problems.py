"""Small problems for :func:`pyro_ext.selection.select_estimator` (torch): factories returning
``(model, guide, args)``, usable from the CLI:

    python -m pyro_ext.diagnostics select benchmarks._selection_problems:mixture

- :func:`mixture`: issue 10's fixed-means mixture (``benchmarks/_mixtures.py``'s ``FIXED``:
  6 points, 4 components), guide ``OneHotCategorical(logits=q)`` per point.
- :func:`expectation`: the ELBO gradient equals ``grad E_q[f(z)]`` exactly: model and guide share
  the ``(3, 4)`` logits parameter, the model scores ``z`` under the same law with the same
  function of ``(z, theta)`` as the estimator classes' ``log_prob``
  (:func:`pyro_ext.concrete.categorical_log_prob`; torch's ``OneHotCategorical.log_prob`` has no
  gradient in the value, theirs has one, so they would not cancel) so ``log p(z) - log q(z) = 0``
  identically, value and gradient, and adds ``pyro.factor("f", f(z))``
  with ``f`` one of :func:`pyro_ext.diagnostics.standard_problem`'s functions; so the exact
  reference must equal :func:`pyro_ext.diagnostics.exact_gradient` (``f``, the logits).
"""

from __future__ import annotations

import importlib.util
import pathlib

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from pyro_ext.concrete import categorical_log_prob
from pyro_ext.diagnostics import standard_problem

_spec = importlib.util.spec_from_file_location("_mixtures", pathlib.Path(__file__).with_name("_mixtures.py"))
mixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mixtures)

__all__ = ["mixture", "mixture_args", "mixture_model", "mixture_guide", "expectation"]


def mixture_args():
    p = mixtures.FIXED
    return (
        torch.tensor(p["x"]).float(),
        torch.tensor(p["locs"]).float(),
        torch.tensor(p["weights"]).float(),
        p["scale"],
    )


def mixture_model(x, locs, weights, scale):
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.OneHotCategorical(probs=weights))
        pyro.sample("x", dist.Normal(z @ locs, scale), obs=x)


def mixture_guide(x, locs, weights, scale):
    q = pyro.param("q", torch.zeros(len(x), len(locs)))
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.OneHotCategorical(logits=q))


def mixture():
    """``(model, guide, args)`` of issue 10's mixture (4^6 = 4096 joint assignments)."""
    return mixture_model, mixture_guide, mixture_args()


def expectation(name: str = "quadratic", seed: int = 0):
    """``(model, guide, args)`` whose ELBO gradient is ``grad E[f(z)]``, ``f`` = standard function
    ``name`` (float64, logits param ``"theta"`` initialised at the standard problem's logits)."""
    logits, functions = standard_problem(seed)
    f = functions[name]

    def guide():
        theta = pyro.param("theta", logits.clone())
        pyro.sample("z", dist.OneHotCategorical(logits=theta).to_event(1))

    def model():
        theta = pyro.param("theta", logits.clone())
        with poutine.mask(mask=False):  # scored below by the same function of (z, theta) as the guide's classes use
            z = pyro.sample("z", dist.OneHotCategorical(logits=theta).to_event(1))
        pyro.factor("log_p", categorical_log_prob(z, theta).sum(-1))
        pyro.factor("f", f(z))

    return model, guide, ()
