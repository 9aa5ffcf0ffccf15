r"""Backend-free parts of estimator selection (:mod:`pyro_ext.selection`, :mod:`numpyro_ext.selection`):
the default candidate grid, the check of a user's grid, the statistics of a candidate's ELBO
gradients against a reference, the report and its table, and the rank agreement used to
validate the ranking.

The backends estimate, at the user's current parameters, the gradient of the ELBO with respect
to the guide parameters that feed its discrete sites (flattened into one vector of ``D``
coordinates), for each candidate ``(estimator, hyper)``: ``B`` group means ``G_b`` of ``P``
single-particle gradients each (``P = 1``: per-sample gradients). Against the reference
``g`` (exact enumeration of the discrete sites, or a many-sample score-function estimate with a
leave-one-out baseline) the statistics are, per single-particle gradient,

.. math::

    \bar G = \frac1B \sum_b G_b, \qquad
    v = \frac{P}{B - 1} \sum_b \lVert G_b - \bar G\rVert^2, \qquad
    b^2 = \max\Big(\lVert \bar G - g\rVert^2 - \frac{v}{BP},\ 0\Big), \qquad
    \mathrm{mse}_n = b^2 + \frac{v}{n}

(``v`` the total variance of one gradient, ``b`` the debiased bias norm, ``mse_n`` the mean
squared error of an ``n``-particle average: ``n = 1`` is one particle's). The report gives them
relative to ``||g||^2`` (``bias`` and ``se`` relative to ``||g||``). When the reference is itself an
estimate, its squared standard error ``se_ref^2`` adds the same amount to every candidate's
``||G - g||^2``, so the ranking is unchanged; it is reported.

Imports NumPy and the standard library only.

>>> grads = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
>>> r = candidate_result("st", {}, grads, np.array([0.5, 0.5]), seconds=0.01)
>>> round(r.bias, 6), round(r.mse, 3)
(0.0, 1.333)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .checks import out_of_range
from .registry import ESTIMATORS, resolve_hyper

__all__ = [
    "DEFAULT_CANDIDATES",
    "SELECTION_ESTIMATORS",
    "MAX_REFERENCE_CONFIGURATIONS",
    "CandidateResult",
    "SelectionReport",
    "check_candidates",
    "check_selection_args",
    "check_int",
    "check_auto_args",
    "reference_kind",
    "group_means",
    "mean_and_relative_se",
    "make_report",
    "candidate_result",
    "candidate_label",
    "selection_markdown",
    "rank_key",
    "spearman",
    "joint_configurations",
    "cli_parser",
    "load_problem",
]

#: Estimators that selection compares: every hard estimator of the registry (``concrete``
#: relaxes the values themselves, so its gradient is that of another objective).
SELECTION_ESTIMATORS = tuple(name for name in ESTIMATORS if name != "concrete")

#: The default grid: every estimator, a few values of each knob (12 candidates).
DEFAULT_CANDIDATES: tuple[tuple[str, dict[str, object]], ...] = (
    ("st", {}),
    ("gumbel", {"temperature": 0.5}),
    ("gumbel", {"temperature": 1.0}),
    ("reinmax", {"temperature": 1.0}),
    ("reinmax", {"temperature": 2.0}),
    ("redge", {"n_steps": 5, "t_1": 0.2}),
    ("redge", {"n_steps": 5, "t_1": 0.5}),
    ("redge", {"n_steps": 3, "t_1": 1.0}),
    ("redge_cov", {"n_steps": 5, "t_1": 0.2}),
    ("redge_cov", {"n_steps": 5, "t_1": 0.5}),
    ("reindge", {"n_steps": 5, "t_1": 0.2}),
    ("reindge", {"n_steps": 5, "t_1": 0.5}),
)

#: Largest joint support of the guide's discrete sites that ``reference="auto"`` enumerates.
MAX_REFERENCE_CONFIGURATIONS = 4096

_REFERENCES = ("auto", "exact", "score")
_RULES = ("mse", "efficiency")


def candidate_label(estimator: str, hyper: Mapping[str, object]) -> str:
    """``"redge n_steps=5 t_1=0.2"``."""
    return " ".join([estimator, *(f"{k}={v}" for k, v in hyper.items())])


def check_candidates(candidates: object) -> list[tuple[str, dict[str, object]]]:
    """``[(estimator, hyper), ...]`` with each ``hyper`` completed by the registry's defaults.

    ``candidates``: ``None`` (:data:`DEFAULT_CANDIDATES`), or a non-empty sequence whose items are
    an estimator name or a pair ``(name, {knob: value})``. ``ValueError``/``TypeError`` name the
    bad item; ``concrete`` is refused (not a hard estimator)."""
    if candidates is None:
        candidates = DEFAULT_CANDIDATES
    if isinstance(candidates, (str, Mapping)) or not isinstance(candidates, Sequence) or not candidates:
        raise TypeError(
            out_of_range("candidates", candidates, "a non-empty list of names or (name, {knob: value}) pairs")
        )
    out = []
    for item in candidates:
        name, hyper = (
            (item, {}) if isinstance(item, str) else tuple(item) if isinstance(item, Sequence) else (None, None)
        )
        if not isinstance(name, str) or not isinstance(hyper, Mapping):
            raise TypeError(f"each candidate must be a name or a (name, {{knob: value}}) pair, got {item!r}")
        if name not in SELECTION_ESTIMATORS:
            raise ValueError(f"candidate estimator must be one of {list(SELECTION_ESTIMATORS)}, got {name!r}")
        out.append((name, resolve_hyper(name, hyper)))
    return out


def check_int(name: str, value: object, low: int) -> None:
    """``value`` an integer ``>= low`` (``TypeError`` / ``ValueError`` naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(out_of_range(name, value, f"an integer >= {low}"))
    if value < low:
        raise ValueError(out_of_range(name, value, f"an integer >= {low}"))


def check_selection_args(
    num_samples: int,
    num_groups: int,
    reference: str,
    rule: str,
    num_particles: int,
    max_configurations: int,
    reference_samples: int = 2048,
    params: object = None,
) -> None:
    """Range checks of :func:`select_estimator`'s options, naming the argument."""
    for name, value, low in (
        ("num_samples", num_samples, 2),
        ("num_groups", num_groups, 2),
        ("num_particles", num_particles, 1),
        ("max_configurations", max_configurations, 1),
    ):
        check_int(name, value, low)
    if num_samples % num_groups:
        raise ValueError(
            f"num_samples must be a multiple of num_groups, got num_samples={num_samples}, num_groups={num_groups}"
        )
    if reference not in _REFERENCES:
        raise ValueError(out_of_range("reference", reference, f"one of {list(_REFERENCES)}"))
    if rule not in _RULES:
        raise ValueError(out_of_range("rule", rule, f"one of {list(_RULES)}"))
    check_int("reference_samples", reference_samples, 2 * num_groups)
    if reference_samples % num_groups:
        raise ValueError(f"reference_samples must be a multiple of num_groups, got {reference_samples=}, {num_groups=}")
    if params is not None and not isinstance(params, dict):
        raise TypeError(out_of_range("params", params, "None or a dict {name: constrained value}"))


def check_auto_args(
    estimator: str | None, model: object, hyper: Mapping[str, object], reselect_every: object, where: str = "relax"
) -> None:
    """The checks of ``relax(..., estimator, model=, reselect_every=, **hyper)`` / ``AutoRelaxed``
    for ``"auto"`` (``where`` names the caller): ``reselect_every`` ``None`` or an int >= 1
    (``ValueError``); with ``"auto"``, ``model`` required (``ValueError``) and no ``**hyper``
    (``TypeError``: they are selected)."""
    if reselect_every is not None and (
        isinstance(reselect_every, bool) or not isinstance(reselect_every, (int, np.integer)) or reselect_every < 1
    ):
        raise ValueError(out_of_range("reselect_every", reselect_every, "a positive integer or None"))
    if estimator == "auto":
        if model is None:
            raise ValueError(
                f"{where}(..., estimator='auto') needs model=: the selection measures the ELBO of model and guide"
            )
        if hyper:
            raise TypeError(
                f"{where}(..., estimator='auto') takes no hyperparameters (they are selected), got {sorted(hyper)}"
            )


def reference_kind(reference: str, n_configurations: int, continuous: Sequence[str], max_configurations: int) -> str:
    """``"exact"`` or ``"score"`` for ``reference`` (``"auto"``: exact when the guide has no
    continuous latent site and at most ``max_configurations`` joint discrete values); an
    impossible ``"exact"`` is a ``ValueError`` saying why."""
    if reference == "auto":
        return "exact" if n_configurations <= max_configurations and not continuous else "score"
    if reference == "exact":
        if continuous:
            raise ValueError(
                f"reference='exact' needs a guide without continuous latent sites, found {list(continuous)}"
            )
        if n_configurations > max_configurations:
            raise ValueError(
                f"reference='exact': the guide's discrete sites have {n_configurations} joint configurations, more than "
                f"max_configurations={max_configurations}; use reference='score' or raise max_configurations"
            )
    return reference


def group_means(grads: ArrayLike, num_groups: int) -> np.ndarray:
    """``(num_groups, D)`` means of consecutive groups of ``(N, D)`` gradients."""
    g = np.asarray(grads, dtype=np.float64)
    return g.reshape(num_groups, g.shape[0] // num_groups, -1).mean(1)


def mean_and_relative_se(groups: ArrayLike) -> tuple[np.ndarray, float]:
    """The mean of ``(B, D)`` group means and its standard error relative to its norm (``nan`` at 0)."""
    g = np.asarray(groups, dtype=np.float64)
    mean = g.mean(0)
    se = math.sqrt(((g - mean) ** 2).sum() / (g.shape[0] - 1) / g.shape[0])
    norm = float(np.linalg.norm(mean))
    return mean, se / norm if norm > 0 else math.nan


@dataclasses.dataclass(frozen=True)
class CandidateResult:
    """One candidate's gradient statistics (module docstring), relative to the reference.

    ``bias = b / ||g||``, ``var = v / ||g||^2``, ``mse = mse_1 / ||g||^2`` (one particle),
    ``mse_n`` the same for an ``num_particles``-particle average, ``se = sqrt(v / (B P)) / ||g||``
    (the Monte Carlo error of the mean), ``cos`` the cosine of ``G`` and ``g``, ``seconds``
    the wall time of one single-particle ELBO gradient (median of repeats)."""

    estimator: str
    hyper: dict
    n_samples: int
    mean: np.ndarray
    bias: float
    se: float
    var: float
    mse: float
    mse_n: float
    cos: float
    seconds: float

    @property
    def label(self) -> str:
        return candidate_label(self.estimator, self.hyper)


def candidate_result(
    estimator: str,
    hyper: Mapping[str, object],
    group_grads: ArrayLike,
    reference: ArrayLike,
    seconds: float = math.nan,
    particles_per_group: int = 1,
    num_particles: int = 1,
) -> CandidateResult:
    """:class:`CandidateResult` from ``B`` group-mean gradients ``(B, D)`` of ``P`` particles each."""
    g = np.asarray(group_grads, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    g = g.reshape(g.shape[0], -1)
    b, p = g.shape[0], int(particles_per_group)
    mean = g.mean(0)
    v = p * float(((g - mean) ** 2).sum(-1).sum() / (b - 1))
    scale = float((ref**2).sum()) or 1.0
    bias2 = max(float(((mean - ref) ** 2).sum()) - v / (b * p), 0.0)
    denom = float(np.linalg.norm(mean) * np.linalg.norm(ref))
    return CandidateResult(
        estimator=estimator,
        hyper=dict(hyper),
        n_samples=b * p,
        mean=mean,
        bias=math.sqrt(bias2 / scale),
        se=math.sqrt(v / (b * p) / scale),
        var=v / scale,
        mse=(bias2 + v) / scale,
        mse_n=(bias2 + v / num_particles) / scale,
        cos=float(mean @ ref) / denom if denom > 0 else math.nan,
        seconds=float(seconds),
    )


@dataclasses.dataclass
class SelectionReport:
    """What :func:`select_estimator` measured. ``results`` are sorted best first by ``rule``
    (``"mse"``: ``mse_n``; ``"efficiency"``: ``mse_n`` times seconds per gradient).

    ``reference``: ``"exact"`` (enumeration of ``n_configurations`` joint discrete values) or
    ``"score"`` (score function, leave-one-out baseline, ``reference_samples`` draws) with its
    relative standard error ``reference_se`` (``nan`` if not estimated); ``reference_norm`` is
    ``||g||``; ``params`` the guide parameters the gradient is taken with respect to;
    ``seconds`` the whole selection's wall time and ``step_seconds`` one single-particle SVI
    gradient of the best candidate, so ``cost_in_steps = seconds / step_seconds``."""

    results: list[CandidateResult]
    reference: str
    reference_norm: float
    reference_se: float
    reference_samples: int
    n_configurations: int | None
    params: list[str]
    num_particles: int
    rule: str
    seconds: float
    step_seconds: float

    @property
    def best(self) -> tuple[str, dict]:
        """``(estimator, hyper)`` of the best candidate."""
        top = self.results[0]
        return top.estimator, dict(top.hyper)

    @property
    def cost_in_steps(self) -> float:
        """The selection's wall time in single-particle SVI gradients of the chosen estimator."""
        return self.seconds / self.step_seconds if self.step_seconds > 0 else math.nan

    def to_dict(self) -> dict:
        """The raw numbers: one dict per candidate (best first) plus the reference's."""
        rows = [
            {k: v for k, v in dataclasses.asdict(r).items() if k != "mean"} | {"label": r.label} for r in self.results
        ]
        meta = {k: v for k, v in dataclasses.asdict(self).items() if k != "results"}
        return {"results": rows, **meta, "best": self.best, "cost_in_steps": self.cost_in_steps}

    def table(self) -> str:
        return selection_markdown(self)

    def __str__(self) -> str:
        return self.table()


def make_report(
    results: list[CandidateResult],
    reference: ArrayLike,
    reference_se: float,
    *,
    kind: str,
    n_configurations: int,
    reference_samples: int,
    params: Sequence[str],
    num_particles: int,
    rule: str,
    start: float,
    step_seconds: float | None = None,
) -> SelectionReport:
    """The :class:`SelectionReport`, results sorted by ``rule``, ``seconds`` counted from ``start``
    (``time.perf_counter()``); ``step_seconds`` defaults to the winner's measured ``seconds``."""
    results = sorted(results, key=rank_key(rule))
    return SelectionReport(
        results=results,
        reference=kind,
        reference_norm=float(np.linalg.norm(reference)),
        reference_se=reference_se,
        reference_samples=reference_samples if kind == "score" else 0,
        n_configurations=n_configurations if kind == "exact" else None,
        params=list(params),
        num_particles=num_particles,
        rule=rule,
        seconds=time.perf_counter() - start,
        step_seconds=results[0].seconds if step_seconds is None else step_seconds,
    )


def selection_markdown(report: SelectionReport) -> str:
    """The report as a markdown table with a header line on the reference and the cost."""
    if report.reference == "exact":
        ref = f"exact enumeration of {report.n_configurations} discrete configurations"
    else:
        ref = f"score function, leave-one-out baseline, {report.reference_samples} draws (relative se {report.reference_se:.2g})"
    n = report.num_particles
    lines = [
        f"Reference: {ref}; ||g|| = {report.reference_norm:.4g}; gradient w.r.t. {', '.join(report.params)}.",
        f"Rule: {report.rule} at {n} particle(s). Selection took {report.seconds:.2f} s = "
        f"{report.cost_in_steps:.0f} single-particle SVI gradients of the winner.",
        "",
        f"| rank | estimator | rel. MSE (1 particle) | rel. MSE ({n}) | rel. bias | rel. se | cos | ms / gradient |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(report.results, 1):
        label = f"**{r.label}**" if i == 1 else r.label
        lines.append(
            f"| {i} | {label} | {r.mse:.3g} | {r.mse_n:.3g} | {r.bias:.3g} | {r.se:.2g} | {r.cos:.3f} | {1e3 * r.seconds:.2f} |"
        )
    return "\n".join(lines)


def rank_key(rule: str) -> Callable[[CandidateResult], float]:
    """Sort key of a :class:`CandidateResult` under ``rule``."""
    if rule == "efficiency":
        return lambda r: r.mse_n * r.seconds
    return lambda r: r.mse_n


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman's rank correlation of two equal-length sequences (average ranks for ties)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"spearman needs two 1-D sequences of equal length >= 2, got shapes {a.shape} and {b.shape}")

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="mergesort")
        r = np.empty_like(x)
        r[order] = np.arange(x.size, dtype=np.float64)
        for value in np.unique(x):  # average the ranks of ties
            tie = x == value
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / math.sqrt((ra**2).sum() * (rb**2).sum()))


def joint_configurations(sizes: Sequence[int]) -> np.ndarray:
    """All joint values of variables with ``sizes[i]`` states: ``(prod(sizes), len(sizes))`` int64,
    first variable slowest (mixed radix)."""
    sizes = [int(s) for s in sizes]
    total = math.prod(sizes)
    grids = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
    return np.stack([g.reshape(total) for g in grids], axis=-1) if sizes else np.zeros((1, 0), dtype=np.int64)


def cli_parser(prog: str) -> argparse.ArgumentParser:
    """The ``select`` subcommand's arguments, the same in both backends."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("problem", help="module:function returning (model, guide, args[, kwargs])")
    parser.add_argument("--candidates", nargs="+", default=None, help="estimator names (registry defaults)")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--groups", type=int, default=32)
    parser.add_argument("--reference", choices=["auto", "exact", "score"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def load_problem(parser: argparse.ArgumentParser, spec: str) -> tuple:
    """``(model, guide, args, kwargs)`` from ``"module:function"`` (the function returns
    ``(model, guide, args[, kwargs])``); a malformed spec is the parser's error."""
    if ":" not in spec:
        parser.error(f"problem must be module:function, got {spec!r}")
    module, function = spec.split(":", 1)
    made = getattr(importlib.import_module(module), function)()
    if (
        not isinstance(made, tuple)
        or len(made) not in (3, 4)
        or not callable(made[0])
        or not callable(made[1])
        or (len(made) == 4 and not isinstance(made[3], Mapping))
    ):
        parser.error(f"{spec} must return (model, guide, args[, kwargs]), got {type(made).__name__}")
    model, guide, args = made[:3]
    return model, guide, tuple(args), dict(made[3]) if len(made) > 3 else {}
