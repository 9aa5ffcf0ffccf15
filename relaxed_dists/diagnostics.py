r"""Backend-free parts of the gradient diagnostics of :mod:`pyro_ext.diagnostics` and
:mod:`numpyro_ext.diagnostics`: enumeration of one-hot configurations, the summary statistics
of per-sample gradients, total variation with its Monte Carlo noise level, markdown, a plot,
and the standard problem.

Problem shapes: ``logits`` is ``batch_shape + (L, K)``: ``L`` independent categorical variables
``X_l ~ Cat(softmax(logits_l))`` with ``K`` classes, as one-hots, so ``X`` has shape ``(L, K)``
and ``f`` maps ``(..., L, K)`` to ``(...)``. The exact gradient enumerates the ``K^L``
configurations (at most :data:`MAX_CONFIGURATIONS`):

.. math::

    \nabla_\theta \mathbb{E}[f(X)] = \sum_{x \in \{e_1..e_K\}^L} f(x)\, \nabla_\theta
    \exp\Big(\sum_l \langle x_l, \log\mathrm{softmax}(\theta_l)\rangle\Big).

With ``g_i`` the ``M`` per-sample gradients of an estimator, ``g`` the exact one and
``mean = (1/M) sum_i g_i`` (norms Euclidean over the ``L K`` coordinates of one batch entry):
``bias = ||mean - g|| / ||g||``, ``se = sqrt(var / M) / ||g||`` (the root-mean-square Monte
Carlo error of ``mean`` on the same scale: a ``bias`` below a few ``se`` is indistinguishable
from zero), ``var = (1/M) sum_i ||g_i - mean||^2``, ``mse = (1/M) sum_i ||g_i - g||^2`` and
``cos = <mean, g> / (||mean|| ||g||)``.

Imports NumPy and the standard library only; :func:`plot_sweep` imports matplotlib when called.

>>> all_one_hots(3, 4).shape
(64, 3, 4)
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .checks import out_of_range
from .registry import ESTIMATORS, resolve_hyper

__all__ = [
    "MAX_CONFIGURATIONS",
    "REINFORCE",
    "GradientReport",
    "FidelityReport",
    "all_one_hots",
    "check_enumerable",
    "summarise",
    "sweep_grid",
    "total_variation",
    "categorical_tv_noise",
    "mean_tv_noise",
    "fidelity_report",
    "gradient_markdown",
    "fidelity_markdown",
    "plot_sweep",
    "standard_coefficients",
    "FUNCTIONS",
    "cli_parser",
    "cli_params",
    "check_n_samples",
    "sampler_params",
    "NoGradientWarning",
    "no_gradient_message",
]

#: Largest ``K^L`` that :func:`all_one_hots` enumerates.
MAX_CONFIGURATIONS = 100_000
#: Name of the score-function estimator with a leave-one-out baseline (the unbiased reference).
REINFORCE = "reinforce"


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """Monte Carlo summary of an estimator's gradient against the exact one (module docstring).

    ``mean`` and ``exact`` have the shape of ``logits``; the statistics have its batch shape
    (floats for unbatched ``(L, K)`` logits)."""

    estimator: str
    params: dict
    n_samples: int
    mean: np.ndarray
    exact: np.ndarray
    bias: float | np.ndarray
    se: float | np.ndarray
    var: float | np.ndarray
    mse: float | np.ndarray
    cos: float | np.ndarray

    @property
    def label(self) -> str:
        return " ".join([self.estimator, *(f"{k}={v}" for k, v in self.params.items())])

    def to_markdown(self) -> str:
        return gradient_markdown({self.label: self})


@dataclasses.dataclass(frozen=True)
class FidelityReport:
    """``tv``: TV between the frequencies of ``n_samples`` hard samples and ``softmax(logits)``;
    ``noise``: the TV expected from exact categorical draws of the same size (so ``tv`` within a
    small multiple of ``noise`` means no detectable difference). Batch-shaped (float unbatched)."""

    estimator: str
    params: dict
    n_samples: int
    tv: float | np.ndarray
    noise: float | np.ndarray

    def to_markdown(self) -> str:
        return fidelity_markdown([self])


def check_enumerable(n_vars: int, k: int) -> None:
    if k**n_vars > MAX_CONFIGURATIONS:
        raise ValueError(
            f"exact enumeration needs K^L <= {MAX_CONFIGURATIONS} configurations, "
            f"got K={k}, L={n_vars}: K^L={k**n_vars}"
        )


def all_one_hots(n_vars: int, k: int) -> np.ndarray:
    """Every configuration of ``n_vars`` one-hots of size ``k``, float64 ``(k^n_vars, n_vars, k)``,
    in lexicographic order of the class indices."""
    check_enumerable(n_vars, k)
    index = np.array(list(itertools.product(range(k), repeat=n_vars)), dtype=np.int64).reshape(-1, n_vars)
    return np.eye(k)[index]


def _item(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def summarise(grads: ArrayLike, exact: ArrayLike, estimator: str = "", params: Mapping | None = None) -> GradientReport:
    """:class:`GradientReport` of per-sample gradients ``(M, *batch, L, K)`` against ``exact``
    ``(*batch, L, K)`` (anything :func:`numpy.asarray` takes, computed in float64)."""
    grads, exact = np.asarray(grads, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    m, norm = grads.shape[0], np.linalg.norm(exact, axis=(-2, -1))
    mean = grads.mean(axis=0)
    var = ((grads - mean) ** 2).sum(axis=(-2, -1)).mean(axis=0)
    return GradientReport(
        estimator=estimator,
        params=dict(params or {}),
        n_samples=m,
        mean=mean,
        exact=exact,
        bias=_item(np.linalg.norm(mean - exact, axis=(-2, -1)) / norm),
        se=_item(np.sqrt(var / m) / norm),
        var=_item(var),
        mse=_item(((grads - exact) ** 2).sum(axis=(-2, -1)).mean(axis=0)),
        cos=_item((mean * exact).sum(axis=(-2, -1)) / (np.linalg.norm(mean, axis=(-2, -1)) * norm)),
    )


def sweep_grid(params: Mapping[str, object]) -> list[dict]:
    """Cartesian product of the hyperparameters given as lists or tuples; other values are fixed.

    >>> sweep_grid({"n_steps": (3, 5), "t_1": [0.1, 0.9], "eps": 1.0})[1]
    {'n_steps': 3, 't_1': 0.9, 'eps': 1.0}
    """
    swept = {k: v for k, v in params.items() if isinstance(v, (list, tuple))}
    return [{**params, **dict(zip(swept, values))} for values in itertools.product(*swept.values())]


def total_variation(p: ArrayLike, q: ArrayLike) -> float | np.ndarray:
    """``0.5 sum_k |p_k - q_k|`` over the last axis."""
    return _item(0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum(axis=-1))


def categorical_tv_noise(probs: ArrayLike, n: int) -> float | np.ndarray:
    r"""Expected TV between the frequencies of ``n`` exact draws from ``probs`` and ``probs``, by
    the normal approximation :math:`E|N(0, s^2)| = s\sqrt{2/\pi}`:
    :math:`\tfrac12 \sum_k \sqrt{2 p_k (1 - p_k) / (\pi n)}`."""
    p = np.asarray(probs, np.float64)
    return mean_tv_noise(p * (1.0 - p), n)


def mean_tv_noise(variance: ArrayLike, n: int) -> float | np.ndarray:
    r"""Expected TV error of a mean of ``n`` draws with per-coordinate ``variance`` (last axis):
    :math:`\tfrac12 \sum_k \sqrt{2 \mathrm{Var}_k / (\pi n)}`."""
    return _item(0.5 * np.sqrt(2.0 * np.asarray(variance, np.float64) / (math.pi * n)).sum(axis=-1))


def fidelity_report(
    hard: ArrayLike, probs: ArrayLike, estimator: str = "", params: Mapping | None = None
) -> FidelityReport:
    """:class:`FidelityReport` of hard samples ``(N, *batch, K)`` against ``probs`` ``(*batch, K)``."""
    hard = np.asarray(hard, np.float64)
    n = hard.shape[0]
    return FidelityReport(
        estimator=estimator,
        params=dict(params or {}),
        n_samples=n,
        tv=total_variation(hard.mean(axis=0), probs),
        noise=categorical_tv_noise(probs, n),
    )


def gradient_markdown(rows: Mapping[str, GradientReport], title: str | None = None) -> str:
    """A markdown table, one row per ``label -> report`` (unbatched reports)."""
    head = [title, ""] if title else []
    lines = head + [
        "| estimator | bias (rel.) | se (rel.) | cos | var (trace) | MSE |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in rows.items():
        lines.append(f"| {label} | {r.bias:.3g} | {r.se:.2g} | {r.cos:.4f} | {r.var:.3g} | {r.mse:.3g} |")
    return "\n".join(lines)


def fidelity_markdown(reports: Sequence[FidelityReport]) -> str:
    lines = ["| estimator | N | TV(hard, softmax) | noise level |", "| --- | ---: | ---: | ---: |"]
    for r in reports:
        label = " ".join([r.estimator, *(f"{k}={v}" for k, v in r.params.items())])
        lines.append(f"| {label} | {r.n_samples} | {r.tv:.4f} | {r.noise:.4f} |")
    return "\n".join(lines)


def plot_sweep(
    reports: Sequence[GradientReport], x: str, by: str | None = None, ax: Any = None, floor: float = 1e-5
) -> Any:
    """Relative bias against hyperparameter ``x``, one line per value of ``by``, error bars ``+- se``
    on a log axis (values below ``floor``, exact up to rounding, sit on the bottom edge). Returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax if ax is not None else plt.subplots(figsize=(4.5, 3.8))[1]
    groups: dict = {}
    for r in reports:
        groups.setdefault(r.params.get(by) if by else None, []).append(r)
    for value, rows in groups.items():
        xs = [r.params[x] for r in rows]
        bias = [max(r.bias, floor) for r in rows]
        below = [min(r.se, b - floor) for r, b in zip(rows, bias)]  # keep the bars on the log axis
        label = f"{rows[0].estimator} {by}={value}" if by else rows[0].estimator
        ax.errorbar(xs, bias, yerr=[below, [r.se for r in rows]], fmt="o-", ms=4, capsize=2, label=label)
    ax.set(xlabel=x, ylabel="relative bias", yscale="log", ylim=(floor / 2, None))
    return ax


def standard_coefficients(seed: int = 0, n_vars: int = 3, k: int = 4, fidelity_k: int = 10) -> dict:
    """The standard problem's float64 NumPy arrays: ``logits`` ``(L, K)`` ~ N(0, 1),
    ``fidelity_logits`` ``(fidelity_k,)`` ~ N(0, 1) for :func:`sample_fidelity`, and the
    coefficients of three ``f`` that each backend's ``standard_problem`` writes with its own ops:

    - ``linear``: ``<c, X>`` (``c``: ``(L, K)``);
    - ``quadratic``: ``sum_{l, m} X_l^T A_lm X_m`` over all pairs, ``l = m`` included (``a``:
      ``(L, L, K, K)``; the ``l = m`` blocks are where straight-through is biased);
    - ``bump``: ``exp(-2 sum_l (X_l . v - 0.45)^2)`` (``v``: ``(K,)``, not a polynomial).

    >>> sorted(standard_coefficients())
    ['a', 'c', 'fidelity_logits', 'logits', 'v']
    """
    rng = np.random.default_rng(seed)
    return {
        "logits": rng.standard_normal((n_vars, k)),
        "fidelity_logits": rng.standard_normal(fidelity_k),
        "c": rng.standard_normal((n_vars, k)),
        "a": rng.standard_normal((n_vars, n_vars, k, k)),
        "v": rng.uniform(size=k),
    }


#: The standard problem's functions, in the order the CLI reports them.
FUNCTIONS = ("linear", "quadratic", "bump")
# SAMPLERS name hyperparameters as the ``redge`` package does: ``tau`` for the registry's ``temperature``.
_SAMPLER_NAMES = {"temperature": "tau"}


def sampler_params(estimator: str, params: Mapping[str, object]) -> dict:
    """The keyword arguments of ``SAMPLERS[estimator]`` for the diagnostics' ``**params``.

    The diagnostics take the hyperparameters by the names :func:`~pyro_ext.relax.relax` uses
    (``temperature``, ``n_steps``, ``t_1``; :data:`relaxed_dists.registry.ESTIMATORS`), with its
    defaults; a name the estimator does not take is a ``TypeError`` that lists the ones it does.
    The functional samplers keep the ``redge`` package's ``tau``.

    >>> sampler_params("gumbel", {"temperature": 0.5})
    {'tau': 0.5}
    >>> sampler_params("gumbel", {"tau": 0.5})
    Traceback (most recent call last):
    ...
    TypeError: estimator='gumbel' takes hyperparameters ['temperature'], got unexpected ['tau']
    """
    if estimator == REINFORCE:
        if params:
            raise TypeError(f"estimator={REINFORCE!r} takes hyperparameters none, got unexpected {sorted(params)}")
        return {}
    return {_SAMPLER_NAMES.get(name, name): value for name, value in resolve_hyper(estimator, params).items()}


def cli_parser(prog: str, samplers: Sequence[str]) -> argparse.ArgumentParser:
    """The command line shared by ``python -m pyro_ext.diagnostics`` and ``python -m numpyro_ext.diagnostics``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Gradient report and sample fidelity of one estimator on the standard problem."
    )
    parser.add_argument("--estimator", default="redge", choices=[*samplers, REINFORCE])
    parser.add_argument("--samples", type=int, default=10_000, help="M, gradient samples per row")
    parser.add_argument("--fidelity-samples", type=int, default=None, help="N, hard samples for the TV (default 10 M)")
    parser.add_argument("--n-steps", type=int, default=None, help="REDGE-family grid size (registry default)")
    parser.add_argument("--t-1", type=float, default=None, help="REDGE-family last grid point (registry default)")
    parser.add_argument(
        "--temperature", type=float, default=None, help="Gumbel / ReinMax temperature (registry default)"
    )
    parser.add_argument("--function", choices=FUNCTIONS, action="append", help="repeatable; default: all three")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def cli_params(args: argparse.Namespace) -> dict:
    """The hyperparameters of ``args.estimator`` (registry names): its defaults, overridden by the flags given.

    >>> cli_params(argparse.Namespace(estimator="gumbel", n_steps=None, t_1=None, temperature=0.5))
    {'temperature': 0.5}
    """
    defaults = ESTIMATORS.get(args.estimator, {})
    flags = {"n_steps": args.n_steps, "t_1": args.t_1, "temperature": args.temperature}
    return {name: flags[name] if flags[name] is not None else value for name, value in defaults.items()}


def check_n_samples(n_samples: object, minimum: int = 1) -> int:
    """``n_samples`` counts Monte Carlo draws: an integer >= ``minimum`` (no draws give no
    frequencies, and a TV or a mean of none is NaN).

    >>> check_n_samples(0)
    Traceback (most recent call last):
    ...
    ValueError: n_samples must be an integer >= 1, got n_samples=0
    """
    allowed = f"an integer >= {minimum}"
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral):
        raise TypeError(out_of_range("n_samples", n_samples, allowed))
    if n_samples < minimum:
        raise ValueError(out_of_range("n_samples", n_samples, allowed))
    return int(n_samples)


class NoGradientWarning(UserWarning):
    """A relaxed discrete site whose value gets no gradient from the ELBO (``check_gradients``)."""


def no_gradient_message(names: Sequence[str]) -> str:
    """The warning of ``check_gradients`` for the relaxed sites ``names`` whose values get no gradient.

    >>> no_gradient_message(["z"]).split(":")[0]
    "no gradient of the ELBO reaches the relaxed value of site(s) ['z']"
    """
    return (
        f"no gradient of the ELBO reaches the relaxed value of site(s) {sorted(names)}: the model uses "
        f"them only through a step without a derivative (value.argmax(-1) as an index, a comparison, "
        f"an integer cast), so their logits learn from the prior and the entropy alone. Use the one-hot "
        f"value itself: take_one_hot(table, value) (or value @ table) for table[index]"
    )
