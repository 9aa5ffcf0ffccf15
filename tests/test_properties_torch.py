"""Property-based numerics (issue 15) for every ``pyro_ext`` class, with ``hypothesis``.

Over temperature in [0.01, 5] (log-uniform), K in [2, 1000], logits ``scale * N(0, 1)`` with
scale in [0, 1e3], float32: the ``log_prob`` of the class's own draws is finite, and so are its
gradients (and those of the draws) in the logits and in a tensor temperature / ``t_1``.
``derandomize=True`` makes the examples a fixed function of the test, so CI is deterministic;
``max_examples=10`` per class, plus the explicit corners (K = 1000, temperature 0.01,
scale 1e3) and (K = 2, temperature 5, scale 0), keeps the file to a few seconds.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings, strategies as st

import pyro_ext
from bad_inputs import BINARY_CLASSES, CLASSES, HYPER

PROPERTY_SETTINGS = settings(derandomize=True, deadline=None, max_examples=10, database=None)

temperatures = st.floats(math.log(0.01), math.log(5.0)).map(math.exp)
event_sizes = st.integers(2, 1000)
scales = st.one_of(st.just(0.0), st.just(1e3), st.floats(0.0, 1e3))
seeds = st.integers(0, 2**31 - 1)


def _draw_and_score(class_name: str, k: int, temperature: float, scale: float, seed: int, t_1: float = 0.5):
    generator = torch.Generator().manual_seed(seed)
    shape = (3,) if class_name in BINARY_CLASSES else (3, k)
    logits = (scale * torch.randn(shape, generator=generator)).requires_grad_()
    hyper = {
        "temperature": torch.full((3,), temperature, requires_grad=True),
        "t_1": torch.full((3,), t_1, requires_grad=True),
        "n_steps": 4,
    }
    kwargs = {name: hyper[name] for name in HYPER[class_name]}
    d = getattr(pyro_ext, class_name)(logits=logits, **kwargs, validate_args=True)
    torch.manual_seed(seed)
    x = d.rsample((4,)) if d.has_rsample else d.sample((4,))
    lp = d.log_prob(x)
    leaves = [logits] + [v for v in kwargs.values() if isinstance(v, torch.Tensor)]
    loss = lp.sum() + (torch.where(torch.isfinite(x), x, 0) * torch.linspace(-1, 1, x.shape[-1])).sum()
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return x, lp, grads


@pytest.mark.parametrize("class_name", CLASSES)
@PROPERTY_SETTINGS
@given(k=event_sizes, temperature=temperatures, scale=scales, seed=seeds)
@example(k=1000, temperature=0.01, scale=1e3, seed=0)
@example(k=2, temperature=5.0, scale=0.0, seed=1)
def test_own_sample_log_prob_and_gradients_finite(class_name, k, temperature, scale, seed):
    x, lp, grads = _draw_and_score(class_name, k, temperature, scale, seed)
    assert bool(torch.isfinite(lp).all()), (lp, class_name)
    for g in grads:
        assert g is None or bool(torch.isfinite(g).all()), class_name


@pytest.mark.parametrize("class_name", ["REDGE", "REDGECov", "REINDGE"])
@PROPERTY_SETTINGS
@given(k=event_sizes, t_1=st.floats(1e-3, 1.0), scale=scales, seed=seeds)
@example(k=1000, t_1=1e-3, scale=1e3, seed=0)
def test_redge_family_finite_over_t_1(class_name, k, t_1, scale, seed):
    """The same property for the REDGE family over its own range of ``t_1`` (in (0, 1])."""
    x, lp, grads = _draw_and_score(class_name, k, 1.0, scale, seed, t_1=t_1)
    assert bool(torch.isfinite(lp).all()), class_name
    for g in grads:
        assert g is None or bool(torch.isfinite(g).all()), class_name
