"""Discrete VAE on binarised MNIST in Pyro: REINFORCE against relaxed gradient estimators.

The latent code is 20 categorical variables with 10 classes each (Jang et al. 2017), under a
uniform prior; encoder 784-512-256-200 and decoder 200-256-512-784 (ReLU), Bernoulli pixels.
The model and the guide are written once, with plain ``OneHotCategorical`` sites. The only
thing that changes between runs is how the guide is wrapped:

- ``reinforce``: the plain guide with ``TraceGraph_ELBO`` (score-function gradient,
  Rao-Blackwellised over the digit plate, decaying-average baseline added from outside the
  guide with ``poutine.infer_config``);
- ``gumbel``, ``reinmax``, ``redge``, ``reindge``: ``relax(guide, estimator=...)`` with
  ``Trace_ELBO`` (exact one-hot samples, the estimator's reparameterised gradient).

Every run has the same steps, optimiser (Adam 1e-3), batches of 100 and seeds. The score is
the exact discrete ELBO of the held-out digits: the *unrelaxed* model and guide under
``Trace_ELBO(num_particles=...)`` (hard samples, exact log-probabilities), in nats per digit.

    python examples/vae_pyro.py                                 # 5 estimators x 2 seeds x 1,500 steps
    python examples/vae_pyro.py --steps 500 --seeds 0 --estimators reinforce redge
    python examples/vae_pyro.py --quick                         # seconds (the test suite)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO
from torch import nn
from tqdm import tqdm

from pyro_ext import OneHotCategorical
from pyro_ext.relax import relax

try:
    from examples._data import binarized_digits
except ImportError:  # run as a script: examples/ itself is on sys.path
    from _data import binarized_digits

N_LATENT, N_CLASSES = 20, 10
BATCH_SIZE, LEARNING_RATE = 100, 1e-3
#: estimator -> hyperparameters handed to ``relax``; ``None``: the unrelaxed guide (REINFORCE).
ESTIMATORS: dict[str, dict | None] = {
    "reinforce": None,
    "gumbel": {"temperature": 1.0},
    "reinmax": {"temperature": 1.0},
    "redge": {"n_steps": 5, "t_1": 0.5},
    "reindge": {"n_steps": 5, "t_1": 0.5},
}
BASELINE = {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}


def mlp(*sizes: int) -> nn.Sequential:
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class DiscreteVAE(nn.Module):
    """``z``: ``N_LATENT`` one-hot vectors of ``N_CLASSES`` per digit; ``x``: Bernoulli pixels."""

    def __init__(self, n_pixels: int) -> None:
        super().__init__()
        self.encoder = mlp(n_pixels, 512, 256, N_LATENT * N_CLASSES)
        self.decoder = mlp(N_LATENT * N_CLASSES, 256, 512, n_pixels)

    def model(self, x: torch.Tensor) -> None:
        pyro.module("decoder", self.decoder)
        prior_logits = x.new_zeros(N_LATENT, N_CLASSES)  # uniform over the 10 classes
        with pyro.plate("digits", x.shape[0]):
            z = pyro.sample("z", OneHotCategorical(logits=prior_logits).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z.flatten(-2))).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        pyro.module("encoder", self.encoder)
        with pyro.plate("digits", x.shape[0]):
            logits = self.encoder(x).unflatten(-1, (N_LATENT, N_CLASSES))
            pyro.sample("z", OneHotCategorical(logits=logits).to_event(1))


def _baseline(msg) -> dict:
    """Pyro's decaying-average baseline on the latent sample sites (nothing elsewhere)."""
    is_latent = msg["type"] == "sample" and not msg["is_observed"]
    return {"baseline": dict(BASELINE)} if is_latent else {}


def training_setup(vae: DiscreteVAE, estimator: str):
    """``(guide, loss)``: the only lines that differ between runs."""
    hyper = ESTIMATORS[estimator]
    if hyper is None:
        return poutine.infer_config(vae.guide, _baseline), TraceGraph_ELBO()
    return relax(vae.guide, estimator=estimator, **hyper), Trace_ELBO()


@torch.no_grad()
def heldout_elbo(vae: DiscreteVAE, x: torch.Tensor, num_particles: int, chunk: int = 500) -> float:
    """Exact discrete ELBO per digit: unrelaxed model and guide, hard samples, exact log-probs."""
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)
    total = sum(elbo.loss(vae.model, vae.guide, x[i : i + chunk]) for i in range(0, len(x), chunk))
    return -total / len(x)


def train(estimator: str, seed: int, train_x, test_x, steps: int, num_particles: int, progress) -> dict:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = DiscreteVAE(train_x.shape[1])
    guide, loss = training_setup(vae, estimator)
    svi = SVI(vae.model, guide, pyro.optim.Adam({"lr": LEARNING_RATE}), loss)
    order = torch.Generator().manual_seed(seed)
    batches, curve, start = [], [], time.perf_counter()
    for _ in range(steps):
        if not batches:
            batches = list(torch.randperm(len(train_x), generator=order).split(BATCH_SIZE))
        batch = train_x[batches.pop()]
        curve.append(-svi.step(batch) / len(batch))
        progress.update()
    train_s = time.perf_counter() - start
    return {"curve": np.array(curve), "elbo": heldout_elbo(vae, test_x, num_particles), "train_s": train_s}


def smooth(curve: np.ndarray, window: int) -> np.ndarray:
    """Running mean over the last ``window`` steps (shorter at the start)."""
    cumulative = np.concatenate([[0.0], np.cumsum(curve)])
    lo = np.maximum(np.arange(1, len(curve) + 1) - window, 0)
    return (cumulative[1:] - cumulative[lo]) / (np.arange(1, len(curve) + 1) - lo)


def report(results: dict, args, source: str, n_train: int, n_test: int) -> str:
    seeds = args.seeds
    base = np.array([results["reinforce", s]["elbo"] for s in seeds]) if "reinforce" in args.estimators else None
    lines = [
        "# Discrete VAE on binarised MNIST (Pyro)",
        "",
        f"Data: {source}; {n_train} training digits, {n_test} held-out. Latent {N_LATENT} x {N_CLASSES} "
        f"one-hot, MLP 784-512-256-200 / 200-256-512-784, Bernoulli pixels. {args.steps} steps, batch "
        f"{BATCH_SIZE}, Adam {LEARNING_RATE:g}, seeds {seeds}. Held-out ELBO: exact discrete ELBO of the "
        f"unrelaxed model and guide, Trace_ELBO with {args.eval_particles} particles, nats per digit "
        "(higher is better).",
        "",
        "| estimator | hyperparameters | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean ± sd | vs REINFORCE | train s/run |",
        "| --- | --- | " + " | ".join("---:" for _ in seeds) + " | ---: | ---: | ---: |",
    ]
    for name in args.estimators:
        elbos = np.array([results[name, s]["elbo"] for s in seeds])
        hyper = ESTIMATORS[name]
        hyper_text = ", ".join(f"{k}={v}" for k, v in (hyper or {}).items()) or "TraceGraph_ELBO, decaying-avg baseline"
        sd = elbos.std(ddof=1) if len(elbos) > 1 else float("nan")
        gain = ""
        if base is not None and hyper is not None:
            gain = f"{(elbos - base).mean():+.2f} (min {(elbos - base).min():+.2f})"
        seconds = np.mean([results[name, s]["train_s"] for s in seeds])
        lines.append(
            f"| {name} | {hyper_text} | "
            + " | ".join(f"{e:.2f}" for e in elbos)
            + f" | {elbos.mean():.2f} ± {sd:.2f} | {gain} | {seconds:.0f} |"
        )
    lines += ["", "vs REINFORCE: mean over seeds of the paired difference (same seed), and its minimum."]
    return "\n".join(lines) + "\n"


def plot(results: dict, args, path: Path) -> None:
    import matplotlib.pyplot as plt

    window = max(1, min(100, args.steps // 10))
    steps = np.arange(1, args.steps + 1)
    mean_curve = {name: np.mean([results[name, seed]["curve"] for seed in args.seeds], 0) for name in args.estimators}
    curves = {name: smooth(curve, window) for name, curve in mean_curve.items()}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, curve in curves.items():
        ax.plot(steps, curve, label=name, lw=1.2)
    tail = np.concatenate([curve[args.steps // 10 :] for curve in curves.values()])  # skip the first 10%
    ax.set_ylim(tail.min() - 5, tail.max() + 5)
    ax.set(
        xlabel="step",
        ylabel=f"train ELBO / digit (mean of {window} steps)",
        title=f"Discrete VAE (Pyro): mean over seeds {args.seeds}",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--estimators", nargs="+", choices=list(ESTIMATORS), default=list(ESTIMATORS))
    parser.add_argument("--eval-particles", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    parser.add_argument("--quick", action="store_true", help="a few steps on small subsets (seconds)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    train_np, test_np, source = binarized_digits(n_test=1000, seed=0)
    if args.quick:
        train_np, test_np = train_np[:300], test_np[:200]
        args.steps, args.seeds, args.eval_particles = 4, args.seeds[:2], 2
    train_x, test_x = torch.from_numpy(train_np), torch.from_numpy(test_np)
    print(
        f"{source}: {len(train_x)} train, {len(test_x)} held-out; {args.steps} steps x "
        f"{len(args.estimators)} estimators x {len(args.seeds)} seeds"
    )

    results, start = {}, time.perf_counter()
    with tqdm(total=args.steps * len(args.estimators) * len(args.seeds), unit="step", mininterval=2) as progress:
        for name in args.estimators:
            for seed in args.seeds:
                progress.set_description(f"{name} seed {seed}")
                results[name, seed] = train(name, seed, train_x, test_x, args.steps, args.eval_particles, progress)

    table = report(results, args, source, len(train_x), len(test_x))
    table += (
        f"\nWall time {time.perf_counter() - start:.0f} s in all (training and evaluation), "
        f"{args.threads} torch CPU thread(s).\n"
    )
    print(table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "vae_pyro.md").write_text(table + "\n![training curves](vae_pyro.png)\n")
    plot(results, args, args.out_dir / "vae_pyro.png")
    print(f"wrote {args.out_dir / 'vae_pyro.md'} and {args.out_dir / 'vae_pyro.png'}")
    return results


if __name__ == "__main__":
    main()
