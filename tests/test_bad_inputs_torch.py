"""The bad-input catalogue (``tests/bad_inputs.py``) against every torch class, and
regression tests for the torch defects (a)-(g) of issue 15.

``run_case(case, class_name) -> str`` plays the catalogue's scenario (see
``tests/bad_inputs.py``) with one ``pyro_ext`` class and returns the judged outcome; the
catalogue test asserts it is a clear error or the documented result, never a silent NaN.
``benchmarks/bad_inputs_table.py`` imports ``run_case`` to write ``docs/bad_inputs.md``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import pyro_ext
from bad_inputs import (
    BINARY_CLASSES,
    CASES,
    CLASSES,
    GOOD,
    SUPPORT,
    applies,
    category,
    constructor_args,
    judge,
    never_for,
    value_for,
)

DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
}


def _param(array, dtype: torch.dtype, grad: bool) -> torch.Tensor:
    t = torch.tensor(np.asarray(array), dtype=dtype)
    return t.requires_grad_() if grad and t.is_floating_point() else t


def _on_support(family: str, x: torch.Tensor) -> torch.Tensor:
    """Per draw: whether ``x`` lies on the support (sums within ``sqrt(eps)``: the classes' own tolerance)."""
    tol = math.sqrt(torch.finfo(x.dtype).eps)
    if family == "one_hot":
        return ((x == 0) | (x == 1)).all(-1) & (x.sum(-1) == 1)
    if family == "simplex":
        return (x >= 0).all(-1) & ((x.double().sum(-1) - 1).abs() <= tol)
    if family == "log_simplex":
        return torch.logsumexp(x.double(), -1).abs() <= tol
    if family == "unit_interval":
        return (x >= 0) & (x <= 1)
    return (x == 0) | (x == 1)


def _drawn_never(family: str, x: torch.Tensor, never) -> int:
    """Draws that put mass on what ``never`` forbids (see ``bad_inputs.never_for``)."""
    if never is None:
        return 0
    never = torch.as_tensor(never)
    if family in ("one_hot", "simplex"):
        return int(((x != 0) & never).any(-1).sum())
    if family == "log_simplex":
        return int(((x > -math.inf) & never).any(-1).sum())
    forbidden = never.to(x.dtype)
    if family == "boolean":
        return int(((never >= 0) & (x == forbidden)).sum())
    # a relaxed Bernoulli with a +-inf logit sits on the other end, up to the sigmoid's clip
    return int(((never >= 0) & ((x - (1 - forbidden)).abs() > torch.finfo(x.dtype).eps)).sum())


def _record(obs: dict, name: str, t: torch.Tensor, must_be_finite=True, skip=None) -> None:
    t = t.detach()
    if skip is not None:
        t = t[~torch.as_tensor(skip).expand(t.shape)]
    if torch.isnan(t).any():
        obs["nan"].append(name)
    elif must_be_finite and not torch.isfinite(t).all():
        obs["nonfinite"].append(name)


def _stats_ok(d, probs: np.ndarray) -> bool | None:
    """Mean and entropy against those of ``probs / sum(probs)`` (None: the class has neither)."""
    p = probs / probs.sum(-1, keepdims=True)
    checked = False
    for name, expected in (("mean", p), ("entropy", -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), -1))):
        try:
            got = getattr(d, name) if name == "mean" else d.entropy()
        except NotImplementedError:
            continue
        checked = True
        # float32 arithmetic on O(1) numbers
        if not np.allclose(got.detach().double().numpy(), expected, atol=1e-5):
            return False
    return True if checked else None


def _run(case, class_name: str, obs: dict) -> None:
    cls = getattr(pyro_ext, class_name)
    dtype = DTYPES[case.dtype]
    float_dtype = dtype if dtype.is_floating_point else torch.get_default_dtype()
    args, leaves = {}, {}
    for name, v in constructor_args(case, class_name).items():
        if name in ("logits", "probs"):
            args[name] = leaves[name] = _param(v, dtype, grad=True)
        elif isinstance(v, np.ndarray):
            args[name] = _param(v, float_dtype, grad=case.grad_hyper)
            if case.grad_hyper:
                leaves[name] = args[name]
        else:
            args[name] = v
    d = cls(**args, validate_args=case.validate_args)
    family = SUPPORT[class_name]
    value = value_for(case, class_name)
    if value is None:
        shape = torch.Size(case.sample_shape)
        x = d.rsample(shape) if d.has_rsample else d.sample(shape)
        never = never_for(case, class_name)
        obs["shape_ok"] = tuple(x.shape) == tuple(shape + d.batch_shape + d.event_shape)
        skip = never if family == "log_simplex" and never is not None else None
        _record(obs, "draw", x, skip=skip)
        obs["off_support"] = int((~_on_support(family, x.detach())).sum())
        obs["drawn_never"] = _drawn_never(family, x.detach(), never)
    else:
        x = torch.as_tensor(value)
        x = x if x.dtype == torch.int64 else x.to(float_dtype)
        shape = torch.Size(x.shape[: x.dim() - len(d.event_shape) - len(d.batch_shape)])
    lp = d.log_prob(x)
    obs["shape_ok"] = obs.get("shape_ok", True) and tuple(lp.shape) == tuple(shape + d.batch_shape)
    _record(obs, "log_prob", lp)
    obs["log_prob_neg_inf"] = lp.numel() > 0 and bool((lp == -math.inf).all())
    if torch.isfinite(lp).all() and lp.requires_grad:
        # means, not sums: a float16 sum of 10^4 per-draw gradients overflows
        loss = lp.mean()
        if x.requires_grad:
            finite = torch.isfinite(x)
            loss = loss + (torch.where(finite, x, 0) * torch.linspace(-1, 1, x.shape[-1], dtype=x.dtype)).mean()
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        for name, g in zip(leaves, grads):
            if g is not None:
                _record(obs, f"grad {name}", g)
    if case.check_stats:
        obs["stats_ok"] = _stats_ok(d, np.asarray(case.probs))


def observe(case, class_name: str) -> dict:
    """The catalogue's observations for one run (see ``tests/bad_inputs.py``)."""
    obs = {"nan": [], "nonfinite": [], "error": None}
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _run(case, class_name, obs)
        except Exception as e:  # the catalogue records every failure, the judge sorts them
            obs["error"] = f"{type(e).__name__}: {e}"
    obs["warned"] = bool(caught)
    return obs


def run_case(case, class_name: str) -> str:
    """The judged outcome of ``case`` with the ``pyro_ext`` class ``class_name``."""
    return judge(case, class_name, "torch", observe(case, class_name))


RUNS = [(case, name) for case in CASES for name in CLASSES if applies(case, name, "torch")]


def _param_set(case, class_name):
    # a pending expectation is the behaviour another branch of issue 15 brings (see its name)
    marks = [pytest.mark.xfail(reason=f"pending {case.pending}", strict=False)] if case.pending else []
    return pytest.param(case, class_name, id=f"{case}-{class_name}", marks=marks)


@pytest.mark.parametrize(("case", "class_name"), [_param_set(c, n) for c, n in RUNS])
def test_catalogue(case, class_name):
    outcome = run_case(case, class_name)
    assert category(outcome) in GOOD, outcome
