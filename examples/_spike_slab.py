"""Spike-and-slab variable selection, backend-free (NumPy, float64): the synthetic design and the
exact answer, shared by ``examples/spike_slab.py`` (Pyro) and ``examples/spike_slab_numpyro.py``.

Model: ``gamma_j ~ Bernoulli(prior_inclusion)``, ``beta_j ~ Normal(0, slab_scale)``,
``y ~ Normal(X (gamma * beta), noise_scale)``. With ``beta`` integrated out,
``y | gamma ~ Normal(0, noise_scale^2 I + slab_scale^2 X_g X_g^T)`` (``X_g``: the columns with
``gamma_j = 1``), so the posterior over the ``2^p`` gate configurations is exact by enumeration.

- :func:`design`: a seeded design with correlated column pairs and a few true nonzero effects;
- :func:`log_evidence`: ``log p(y | gamma)`` for a batch of configurations (Woodbury form, a
  ``k x k`` Cholesky per configuration instead of ``n x n``);
- :func:`exact_inclusion`: posterior inclusion probabilities ``P(gamma_j = 1 | y)``;
- :func:`mean_field_optimum`: coordinate-ascent VI for the mean-field family ``prod_j
  Bernoulli(gamma_j) Normal(beta_j)`` that the autoguides fit: what an unbiased gradient
  estimator converges to (a local optimum, from the guides' initial point), which separates the
  guide family's error from the estimator's;
- the examples' shared command line (:func:`parse_args`), table (:func:`report`) and figure
  (:func:`plot`).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

__all__ = [
    "N",
    "P",
    "PRIOR_INCLUSION",
    "SLAB_SCALE",
    "NOISE_SCALE",
    "TRUE_EFFECTS",
    "CORRELATED",
    "design",
    "configurations",
    "log_evidence",
    "exact_inclusion",
    "mean_field_optimum",
    "pip_errors",
    "parse_args",
    "report",
    "plot",
    "finish",
    "error_summary",
]

N, P = 80, 10
PRIOR_INCLUSION, SLAB_SCALE, NOISE_SCALE = 0.2, 1.0, 1.0
#: column -> true effect; every other column has none.
TRUE_EFFECTS = {0: 1.0, 3: -0.8, 6: 0.6}
#: (column, column, correlation): each pair shares a latent factor.
CORRELATED = ((0, 1, 0.9), (3, 4, 0.8), (6, 7, 0.6))


def design(n: int = N, p: int = P, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, beta)``: standard-normal columns, the pairs in :data:`CORRELATED` with the stated
    correlation, ``y = X beta + NOISE_SCALE * noise``, float64."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    for i, j, rho in CORRELATED:
        if j < p:
            x[:, j] = rho * x[:, i] + np.sqrt(1 - rho**2) * x[:, j]
    beta = np.zeros(p)
    for j, effect in TRUE_EFFECTS.items():
        if j < p:
            beta[j] = effect
    return x, x @ beta + NOISE_SCALE * rng.normal(size=n), beta


def configurations(p: int) -> np.ndarray:
    """All ``2^p`` gate configurations, ``(2^p, p)`` of 0/1 (float64)."""
    return np.array(list(itertools.product((0.0, 1.0), repeat=p)))


def log_evidence(x, y, gammas, slab_scale: float = SLAB_SCALE, noise_scale: float = NOISE_SCALE) -> np.ndarray:
    """``log N(y; 0, noise^2 I + slab^2 X_g X_g^T)`` for each row of ``gammas``.

    With ``A = X_g^T X_g / noise^2 + I / slab^2`` and ``b = X_g^T y / noise^2`` (Woodbury and the
    matrix determinant lemma): ``-n/2 log 2 pi - n log noise - k log slab - 1/2 log|A|
    - 1/2 (y^T y / noise^2 - b^T A^-1 b)``.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(y)
    out = np.empty(len(gammas))
    base = -0.5 * n * np.log(2 * np.pi) - n * np.log(noise_scale) - 0.5 * (y @ y) / noise_scale**2
    for row, gamma in enumerate(np.asarray(gammas, bool)):
        xg = x[:, gamma]
        k = xg.shape[1]
        if k == 0:
            out[row] = base
            continue
        a = xg.T @ xg / noise_scale**2 + np.eye(k) / slab_scale**2
        b = xg.T @ y / noise_scale**2
        chol = np.linalg.cholesky(a)
        w = np.linalg.solve(chol, b)
        out[row] = base - k * np.log(slab_scale) - np.log(np.diag(chol)).sum() + 0.5 * (w @ w)
    return out


def exact_inclusion(
    x, y, prior_inclusion: float = PRIOR_INCLUSION, slab_scale: float = SLAB_SCALE, noise_scale: float = NOISE_SCALE
) -> np.ndarray:
    """``P(gamma_j = 1 | y)`` for each column, by enumerating all ``2^p`` configurations."""
    gammas = configurations(np.shape(x)[1])
    k = gammas.sum(-1)
    log_post = (
        log_evidence(x, y, gammas, slab_scale, noise_scale)
        + k * np.log(prior_inclusion)
        + (gammas.shape[1] - k) * np.log1p(-prior_inclusion)
    )
    weights = np.exp(log_post - log_post.max())
    return weights @ gammas / weights.sum()


def mean_field_optimum(
    x,
    y,
    prior_inclusion: float = PRIOR_INCLUSION,
    slab_scale: float = SLAB_SCALE,
    noise_scale: float = NOISE_SCALE,
    init_probs: float | None = None,
    n_iter: int = 500,
) -> np.ndarray:
    """Inclusion probabilities at a fixed point of coordinate-ascent VI for ``q(gamma, beta) =
    prod_j Bernoulli(gamma_j; alpha_j) Normal(beta_j; mu_j, v_j)`` (gate and effect independent,
    as in ``AutoRelaxed(model, continuous=AutoNormal)``). With ``r_j = x_j^T (y - sum_{k != j}
    alpha_k mu_k x_k)``, both updates are closed form:
    ``1/v_j = 1/slab^2 + alpha_j |x_j|^2 / noise^2``, ``mu_j = v_j alpha_j r_j / noise^2``,
    ``logit alpha_j = logit prior - ((mu_j^2 + v_j) |x_j|^2 - 2 mu_j r_j) / (2 noise^2)``.
    Started at ``alpha = init_probs`` (default: the prior, as the guides start), ``mu = 0``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    p = x.shape[1]
    alpha = np.full(p, prior_inclusion if init_probs is None else init_probs)
    mu, norms = np.zeros(p), (x**2).sum(0)
    prior_logit = np.log(prior_inclusion) - np.log1p(-prior_inclusion)
    for _ in range(n_iter):
        for j in range(p):
            fitted = x @ (alpha * mu) - x[:, j] * alpha[j] * mu[j]
            r = x[:, j] @ (y - fitted)
            v = 1 / (1 / slab_scale**2 + alpha[j] * norms[j] / noise_scale**2)
            mu[j] = v * alpha[j] * r / noise_scale**2
            logit = prior_logit - ((mu[j] ** 2 + v) * norms[j] - 2 * mu[j] * r) / (2 * noise_scale**2)
            alpha[j] = 1 / (1 + np.exp(-logit))
    return alpha


def pip_errors(estimate, exact) -> tuple[float, float]:
    """``(max, mean)`` absolute inclusion-probability error."""
    gap = np.abs(np.asarray(estimate, np.float64) - np.asarray(exact, np.float64))
    return float(gap.max()), float(gap.mean())


# --- the examples' shared command line, table and figure (backend-free) ---------------------

RESULTS = Path(__file__).resolve().parent / "results"
#: temperatures of the hand-placed relaxed gate site of the baselines (pyro#3127 used 1.0).
BASELINE_TEMPERATURES = (1.0, 0.1)
QUICK_STEPS, QUICK_LR = 600, 0.1


def default_estimator() -> str:
    """``AutoRelaxed``'s default, read when asked (the defaults study may change it)."""
    from relaxed_dists import defaults

    return defaults.AUTO_RELAXED_ESTIMATOR


def parse_args(argv, doc: str, steps: int = 2000) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0, help="data and SVI seed")
    parser.add_argument(
        "--estimators", nargs="+", default=None, help="registry names (default: every Bernoulli estimator)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the hand-placed relaxed-site baselines")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_STEPS} steps at lr {QUICK_LR}, the default estimator and one baseline (seconds)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"default: {RESULTS} ({RESULTS.parents[1] / 'build' / 'examples-quick'} with --quick)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.lr = min(args.steps, QUICK_STEPS), QUICK_LR
        args.estimators = args.estimators or [default_estimator()]
    if args.estimators is None:
        from relaxed_dists import registry

        args.estimators = list(registry.BERNOULLI_ESTIMATORS)
    args.temperatures = () if args.no_baseline else BASELINE_TEMPERATURES[:1] if args.quick else BASELINE_TEMPERATURES
    args.out_dir = args.out_dir or (RESULTS.parents[1] / "build" / "examples-quick" if args.quick else RESULTS)
    return args


def plot(exact, optimum, results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = len(exact)
    fig, ax = plt.subplots(figsize=(9.5, 3.8))
    ax.bar(np.arange(p), exact, color="0.8", label="exact (enumerated)")
    ax.plot(np.arange(p), optimum, "k_", ms=14, mew=2, label="mean-field optimum (CAVI)")
    width = 0.8 / max(1, len(results))
    for i, (label, result) in enumerate(results.items()):
        marker = "x" if label.startswith("baseline") else "o"
        ax.plot(
            np.arange(p) - 0.4 + width * (i + 0.5), result["probs"], marker, ms=4, ls="none", color=f"C{i}", label=label
        )
    ax.set_xticks(np.arange(p))
    ax.set(
        xlabel="predictor j (true effects at " + ", ".join(map(str, TRUE_EFFECTS)) + ")",
        ylabel="P(gamma_j = 1 | y)",
        ylim=(-0.03, 1.03),
        title=title,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(
    exact,
    optimum,
    results: dict,
    skipped: dict,
    args,
    *,
    script: str,
    host: str,
    baseline: str,
    notes: tuple[str, ...] = (),
) -> str:
    """The markdown page: setup, one table row per fit, ``notes``, the fits that did not run and why."""

    def row(label, probs, loss="", ms=""):
        worst, mean = pip_errors(probs, exact)
        return f"| {label} | {' '.join(f'{v:.2f}' for v in probs)} | {worst:.3f} | {mean:.3f} | {loss} | {ms} |"

    flags = " --quick" if args.quick else ""
    lines = [
        f"# Spike-and-slab variable selection: AutoRelaxed against exact enumeration ({host})",
        "",
        f"`python examples/{script}{flags}`: {N} rows, {P} predictors (correlated pairs "
        f"{', '.join(f'{i}-{j} ({r})' for i, j, r in CORRELATED)}; true effects {TRUE_EFFECTS}), gates "
        f"Bernoulli({PRIOR_INCLUSION}), slab Normal(0, {SLAB_SCALE}), noise {NOISE_SCALE}; data seed {args.seed}. "
        f"{args.steps} SVI steps per fit, `Trace_ELBO`, Adam({args.lr}), x0.1 for the last 20%; same seed and "
        "initial values (gate logits at the prior's, `AutoNormal`'s defaults) for every fit.",
        "",
        "- exact: the 2^p gate configurations enumerated, effects integrated out analytically (float64).",
        "- mean-field optimum: coordinate-ascent VI for q(gamma) q(beta), the family of every guide below: "
        "the error an unbiased gradient estimator would still have.",
        f"- AutoRelaxed: `AutoRelaxed(model, continuous=AutoNormal, estimator=...)`; `estimator=None` is "
        f"`{default_estimator()}`.",
        f"- baseline: {baseline}",
        "",
        f"| fit | inclusion probabilities (j = 0..{P - 1}) | max abs error | mean abs error | final loss | ms / step |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        row("exact (enumerated)", exact),
        row("mean-field optimum (CAVI)", optimum),
    ]
    for label, result in results.items():
        lines.append(row(label, result["probs"], f"{result['loss']:.2f}", f"{result['ms_per_step']:.2f}"))
    lines += [
        "",
        "Final loss: mean -ELBO over the last 10% of the steps. ms / step: wall time per SVI step "
        "after the first (one thread, this project's shared 2-core CPU).",
    ]
    lines += [note for note in notes]
    if skipped:
        lines += ["", "Not run:", ""] + [f"- {label}: {reason}" for label, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def error_summary(error: BaseException) -> str:
    """``"Type: message"`` on one line: the first two lines of the message (host errors append
    whole trace tables), at most 300 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()][:2]
    return f"{type(error).__name__}: {' '.join(lines)}"[:300]


def finish(
    exact,
    optimum,
    results: dict,
    skipped: dict,
    args,
    *,
    name: str,
    host: str,
    baseline: str,
    notes: tuple[str, ...] = (),
) -> str:
    """Print the errors, write ``<out_dir>/<name>.md`` and ``<name>.png``; returns the page."""
    for label, result in results.items():
        worst, mean = pip_errors(result["probs"], exact)
        print(f"{label}: max error {worst:.3f}, mean {mean:.3f}, {result['ms_per_step']:.2f} ms/step")
    text = report(
        exact, optimum, results, skipped, args, script=f"{name}.py", host=host, baseline=baseline, notes=notes
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{name}.md").write_text(text + f"\n![inclusion probabilities]({name}.png)\n")
    plot(exact, optimum, results, args.out_dir / f"{name}.png", f"spike-and-slab: inclusion probabilities ({host})")
    print(text)
    print(f"wrote {args.out_dir / (name + '.md')} and {args.out_dir / (name + '.png')}")
    return text
