"""Bayesian variable selection (spike-and-slab) in Pyro with no guide written: ``AutoRelaxed``.

The model is written once, with plain discrete gates: ``gamma_j ~ Bernoulli(0.2)``, effects
``beta_j ~ Normal(0, 1)``, ``y ~ Normal(X (gamma * beta), 1)``, 10 predictors of which three
pairs are correlated (0.9, 0.8, 0.6) and three have a true effect (``examples/_spike_slab.py``:
80 rows, seeded). The fits differ only in the guide:

- ``AutoRelaxed(model, continuous=AutoNormal, estimator=e)`` for every Bernoulli estimator
  name in ``relaxed_dists.registry.BERNOULLI_ESTIMATORS``: learnable gate logits drawn by the
  estimator, ``AutoNormal`` for the effects; inclusion probabilities from ``guide.probs()``;
- what Pyro users write today (pyro-ppl/pyro#3127): an ``AutoGuideList`` of ``AutoNormal`` on
  ``poutine.block(model, hide=["gamma"])`` and a hand-written function with a hand-placed
  ``pyro.distributions.RelaxedBernoulliStraightThrough`` for the gates, at temperature 1 (the
  thread's) and 0.1.

Reference: the exact posterior inclusion probabilities, all ``2^10`` gate configurations
enumerated with the effects integrated out analytically (float64 NumPy). Beside it, the
mean-field optimum (coordinate-ascent VI for the same guide family): the error that is the guide
family's, not the estimator's. Same steps, optimiser, initial values and seed for every fit.

    python examples/spike_slab.py                 # 2,000 steps per fit (about a minute)
    python examples/spike_slab.py --quick         # seconds (the test suite)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoGuideList, AutoNormal
from tqdm.auto import tqdm

from relaxed_dists import registry

try:
    from examples import _spike_slab as spike
except ImportError:  # run as a script: examples/ itself is on sys.path
    import _spike_slab as spike

try:  # issue 16: being written; the example runs its baseline without it
    from pyro_ext.autoguide import AutoRelaxed
except ImportError:
    AutoRelaxed = None

BACKEND = "pyro"
#: temperatures of the hand-placed RelaxedBernoulliStraightThrough (pyro#3127 used 1.0).
BASELINE_TEMPERATURES = (1.0, 0.1)
RESULTS = Path(__file__).resolve().parent / "results"


def model(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    n, p = x.shape
    with pyro.plate("predictors", p):
        gamma = pyro.sample("gamma", dist.Bernoulli(torch.tensor(spike.PRIOR_INCLUSION, dtype=x.dtype)))
        beta = pyro.sample("beta", dist.Normal(torch.zeros((), dtype=x.dtype), spike.SLAB_SCALE))
    with pyro.plate("data", n):
        return pyro.sample("y", dist.Normal(x @ (gamma * beta), spike.NOISE_SCALE), obs=y)


def baseline_guide(temperature: float) -> AutoGuideList:
    """The pyro#3127 recipe: ``AutoNormal`` for the effects, a hand-placed relaxed gate site."""

    guide = AutoGuideList(model)

    def gates(x, y=None):
        prior_logit = math.log(spike.PRIOR_INCLUSION / (1 - spike.PRIOR_INCLUSION))
        logits = pyro.param("gate_logits", torch.full((x.shape[1],), prior_logit, dtype=x.dtype))
        with guide.plates["predictors"]:  # the plate the list shares with its parts (a second one clashes)
            pyro.sample("gamma", dist.RelaxedBernoulliStraightThrough(torch.tensor(temperature, dtype=x.dtype), logits=logits))

    guide.append(AutoNormal(poutine.block(model, hide=["gamma"])))
    guide.append(gates)
    return guide


def fits(args) -> dict[str, tuple[str, dict]]:
    """label -> ("auto", {"estimator": name}) or ("baseline", {"temperature": t})."""
    names = args.estimators or list(registry.BERNOULLI_ESTIMATORS)
    out = {f"AutoRelaxed {name}": ("auto", {"estimator": name}) for name in names}
    if not args.no_baseline:
        temperatures = BASELINE_TEMPERATURES[:1] if args.quick else BASELINE_TEMPERATURES
        out.update({f"pyro#3127 RelaxedBernoulliST T={t}": ("baseline", {"temperature": t}) for t in temperatures})
    return out


def make_guide(kind: str, options: dict):
    """The only lines that differ between fits."""
    if kind == "auto":
        return AutoRelaxed(model, continuous=AutoNormal, estimator=options["estimator"])
    return baseline_guide(options["temperature"])


def inclusion_probs(kind: str, guide) -> np.ndarray:
    if kind == "auto":
        return guide.probs()["gamma"].detach().numpy().astype(np.float64)
    return torch.sigmoid(pyro.param("gate_logits")).detach().numpy().astype(np.float64)


def fit(x, y, kind: str, options: dict, args, progress) -> dict:
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    guide = make_guide(kind, options)
    # Adam, its step size cut tenfold for the last 20% of the steps so that they average out the noise
    optim = pyro.optim.MultiStepLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": args.lr},
                                    "milestones": [int(0.8 * args.steps)], "gamma": 0.1})
    svi = SVI(model, guide, optim, Trace_ELBO())
    svi.step(x, y)  # builds the guide's parameters: not timed
    losses, start = [], time.perf_counter()
    for _ in range(args.steps):
        losses.append(svi.step(x, y))
        optim.step()
        progress.update()
    seconds = time.perf_counter() - start
    return {"probs": inclusion_probs(kind, guide), "loss": float(np.mean(losses[-max(1, args.steps // 10):])),
            "ms_per_step": 1e3 * seconds / args.steps}


def run_all(x, y, args) -> tuple[dict, dict]:
    """``(results, skipped)``: label -> result dict, label -> reason."""
    plan, results, skipped = fits(args), {}, {}
    if AutoRelaxed is None:
        for label in [k for k, (kind, _) in plan.items() if kind == "auto"]:
            skipped[label] = "pyro_ext.autoguide.AutoRelaxed is not available"
            del plan[label]
    with tqdm(total=args.steps * len(plan), unit="step", mininterval=2, disable=args.no_progress) as progress:
        for label, (kind, options) in plan.items():
            progress.set_description(label)
            try:
                results[label] = fit(x, y, kind, options, args, progress)
            except (ValueError, TypeError, NotImplementedError) as error:  # an estimator AutoRelaxed refuses
                skipped[label] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return results, skipped


def plot(exact: np.ndarray, optimum: np.ndarray, results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = len(exact)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.bar(np.arange(p), exact, color="0.8", label="exact (enumerated)")
    ax.plot(np.arange(p), optimum, "k_", ms=14, mew=2, label="mean-field optimum (CAVI)")
    width = 0.8 / max(1, len(results))
    for i, (label, result) in enumerate(results.items()):
        marker = "x" if "3127" in label else "o"
        ax.plot(np.arange(p) - 0.4 + width * (i + 0.5), result["probs"], marker, ms=4, ls="none", color=f"C{i}", label=label)
    ax.set_xticks(np.arange(p))
    ax.set(xlabel="predictor j (true effects at " + ", ".join(map(str, spike.TRUE_EFFECTS)) + ")",
           ylabel="P(gamma_j = 1 | y)", ylim=(-0.03, 1.03), title=title)
    ax.legend(fontsize=6, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(exact, optimum, results, skipped, args, script: str, host: str) -> str:
    def row(label, probs, loss="", ms=""):
        worst, mean = spike.pip_errors(probs, exact)
        return f"| {label} | {' '.join(f'{v:.2f}' for v in probs)} | {worst:.3f} | {mean:.3f} | {loss} | {ms} |"

    default = registry_default()
    lines = [
        f"# Spike-and-slab variable selection: AutoRelaxed against exact enumeration ({host})",
        "",
        f"`python examples/{script}{' --quick' if args.quick else ''}`: {spike.N} rows, {spike.P} predictors "
        f"(correlated pairs {', '.join(f'{i}-{j} ({r})' for i, j, r in spike.CORRELATED)}; true effects "
        f"{spike.TRUE_EFFECTS}), gates Bernoulli({spike.PRIOR_INCLUSION}), slab Normal(0, {spike.SLAB_SCALE}), "
        f"noise {spike.NOISE_SCALE}; data seed {args.seed}. {args.steps} SVI steps per fit, `Trace_ELBO`, "
        f"Adam({args.lr}), x0.1 for the last 20%; same seed and initial values for every fit.",
        "",
        "- exact: the 2^p gate configurations enumerated, effects integrated out analytically (float64).",
        "- mean-field optimum: coordinate-ascent VI for q(gamma) q(beta) (the family of both guides below): "
        "the error an unbiased estimator would still have.",
        f"- AutoRelaxed: `AutoRelaxed(model, continuous=AutoNormal, estimator=...)` (`estimator=None` is `{default}`).",
        "- pyro#3127: `AutoGuideList` of `AutoNormal(block(model, hide=['gamma']))` and a hand-placed "
        "`RelaxedBernoulliStraightThrough(T, logits)` gate site.",
        "",
        "| fit | inclusion probabilities (j = 0..9) | max abs error | mean abs error | final loss | ms / step |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        row("exact (enumerated)", exact),
        row("mean-field optimum (CAVI)", optimum),
    ]
    for label, result in results.items():
        lines.append(row(label, result["probs"], f"{result['loss']:.2f}", f"{result['ms_per_step']:.2f}"))
    lines += ["", "Final loss: mean -ELBO over the last 10% of the steps. ms / step: wall time of "
              "`svi.step` (one thread, a shared 2-core CPU)."]
    if skipped:
        lines += ["", "Not run:", ""] + [f"- {label}: {reason}" for label, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def registry_default() -> str:
    from relaxed_dists import defaults

    return defaults.AUTO_RELAXED_ESTIMATOR


def parse_args(argv, doc: str, steps: int = 2000):
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0, help="data and SVI seed")
    parser.add_argument("--estimators", nargs="+", default=None,
                        help="registry names (default: every Bernoulli estimator)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pyro#3127-style guides")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quick", action="store_true", help="300 steps, the default estimator and one baseline")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help=f"default: {RESULTS} ({RESULTS.parents[1] / 'build' / 'examples-quick'} with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = min(args.steps, 300)
        args.estimators = args.estimators or [registry_default()]
    args.out_dir = args.out_dir or (RESULTS.parents[1] / "build" / "examples-quick" if args.quick else RESULTS)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv, __doc__)
    torch.set_num_threads(1)  # 80 x 10: one thread is fastest, and the machine is shared
    x_np, y_np, _ = spike.design(seed=args.seed)
    exact, optimum = spike.exact_inclusion(x_np, y_np), spike.mean_field_optimum(x_np, y_np)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)  # float64, as the reference
    results, skipped = run_all(x, y, args)
    for label, result in results.items():
        worst, mean = spike.pip_errors(result["probs"], exact)
        print(f"{label}: max error {worst:.3f}, mean {mean:.3f}, {result['ms_per_step']:.2f} ms/step")
    text = report(exact, optimum, results, skipped, args, "spike_slab.py", "Pyro")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "spike_slab.md").write_text(text + "\n![inclusion probabilities](spike_slab.png)\n")
    plot(exact, optimum, results, args.out_dir / "spike_slab.png", "spike-and-slab: inclusion probabilities (Pyro)")
    print(text)
    print(f"wrote {args.out_dir / 'spike_slab.md'} and {args.out_dir / 'spike_slab.png'}")
    return {"exact": exact, "optimum": optimum, "results": results, "skipped": skipped}


if __name__ == "__main__":
    main()
