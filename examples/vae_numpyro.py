"""Discrete VAE on binarised MNIST in NumPyro: REINFORCE against relaxed gradient estimators.

20 categorical latents with 10 classes each, a uniform prior, MLP encoder 784-512-256-200 and
decoder 200-256-512-784 (ReLU, ``jax.example_libraries.stax`` through ``numpyro.module``) and a
Bernoulli likelihood. The model and the guide are written once, with ``OneHotCategorical``
sites. Runs differ in one place, :func:`objective`:

- ``reinforce``: the plain guide under ``TraceGraph_ELBO`` (score-function gradient);
- ``gumbel``, ``reinmax``, ``redge``, ``reindge``: ``relax(model)`` and ``relax(guide)``
  under ``Trace_ELBO`` (the model's prior is relaxed too so that SVI sees no discrete latent;
  its ``log_prob`` is the same categorical log-probability).

Every run is scored the same way: the exact discrete ELBO of the *unrelaxed* model and guide,
estimated by ``Trace_ELBO(num_particles=...)`` on held-out digits, in nats per digit.

    python examples/vae_numpyro.py                        # CPU: 1,000 steps x 3 seeds x 5 estimators (~7 min)
    python examples/vae_numpyro.py --quick                # a smoke test of a few seconds
    python examples/vae_numpyro.py --device gpu --steps 20000 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.example_libraries import stax
from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO
from tqdm.auto import tqdm

from _data import binarized_digits  # examples/ is on sys.path when run as a script
from numpyro_ext import OneHotCategorical
from numpyro_ext.relax import relax
from relaxed_dists.registry import ESTIMATORS as HYPER_DEFAULTS

N_LATENTS, N_CLASSES = 20, 10
ESTIMATORS = ("reinforce", "gumbel", "reinmax", "redge", "reindge")
RESULTS = Path(__file__).resolve().parent / "results"


def mlp(*widths: int):
    """``stax`` MLP: Dense layers of ``widths`` with ReLU between them (none after the last)."""
    layers = []
    for width in widths[:-1]:
        layers += [stax.Dense(width), stax.Relu]
    return stax.serial(*layers, stax.Dense(widths[-1]))


def model(x):
    decoder = numpyro.module("decoder", mlp(256, 512, x.shape[-1]), (1, N_LATENTS * N_CLASSES))
    with numpyro.plate("digits", x.shape[0]):
        prior = OneHotCategorical(logits=jnp.zeros((N_LATENTS, N_CLASSES)))
        z = numpyro.sample("z", prior.to_event(1))
        pixel_logits = decoder(z.reshape(z.shape[:-2] + (N_LATENTS * N_CLASSES,)))
        numpyro.sample("x", dist.Bernoulli(logits=pixel_logits).to_event(1), obs=x)


def guide(x):
    encoder = numpyro.module("encoder", mlp(512, 256, N_LATENTS * N_CLASSES), (1, x.shape[-1]))
    with numpyro.plate("digits", x.shape[0]):
        logits = encoder(x).reshape(x.shape[:-1] + (N_LATENTS, N_CLASSES))
        numpyro.sample("z", OneHotCategorical(logits=logits).to_event(1))


def objective(estimator: str):
    """``(model, guide, loss)`` of one run: the only place where the estimators differ."""
    if estimator == "reinforce":
        return model, guide, TraceGraph_ELBO()
    return relax(model, estimator=estimator), relax(guide, estimator=estimator), Trace_ELBO()


def heldout_elbo(params, x, key, num_particles: int) -> jax.Array:
    """Exact discrete ELBO of the unrelaxed model and guide, nats per digit (a Monte Carlo estimate)."""
    return -Trace_ELBO(num_particles=num_particles).loss(key, params, model, guide, x) / x.shape[0]


def batch_indices(n_train: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """``(steps, batch_size)`` row indices: shuffled epochs, one batch per step."""
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch_size // n_train)
    order = np.concatenate([rng.permutation(n_train) for _ in range(epochs)])
    return order[: steps * batch_size].reshape(steps, batch_size).astype(np.int32)


_evaluate = jax.jit(heldout_elbo, static_argnums=3)


def train(estimator: str, seeds: list[int], x_train, x_test, args) -> list[dict]:
    """One run per seed: SVI in jitted chunks of steps (``lax.scan``), compiled once per
    estimator, with the held-out ELBO after each chunk."""
    run_model, run_guide, loss = objective(estimator)
    svi = SVI(run_model, run_guide, numpyro.optim.Adam(args.lr), loss)

    def run_chunk(state, x_train, chunk):
        return jax.lax.scan(lambda state, rows: svi.update(state, x_train[rows]), state, chunk)

    chunks = np.array_split(np.arange(args.steps), min(args.n_evals, args.steps))
    init = jax.jit(svi.init)  # run eagerly, the model and guide would compile op by op: slower
    runs, compiled = [], {}
    for seed in seeds:
        indices = jnp.asarray(batch_indices(x_train.shape[0], args.steps, args.batch_size, seed))
        start = time.perf_counter()
        state = init(jax.random.PRNGKey(seed), x_train[indices[0]])
        for size in {len(c) for c in chunks} - set(compiled):
            compiled[size] = jax.jit(run_chunk).lower(state, x_train, indices[:size]).compile()
        compile_s = time.perf_counter() - start

        eval_key = jax.random.PRNGKey(10_000 + seed)
        losses, curve, rates = [], [], []
        bar = tqdm(total=args.steps, desc=f"{estimator:>9} seed {seed}", leave=False, disable=args.no_progress)
        for chunk in chunks:
            start = time.perf_counter()
            state, chunk_losses = compiled[len(chunk)](state, x_train, indices[chunk])
            chunk_losses = np.asarray(jax.block_until_ready(chunk_losses))
            rates.append(len(chunk) / (time.perf_counter() - start))
            losses.append(chunk_losses / args.batch_size)
            eval_key, key = jax.random.split(eval_key)
            curve.append(
                (int(chunk[-1]) + 1, float(_evaluate(svi.get_params(state), x_test, key, args.curve_particles)))
            )
            bar.update(len(chunk))
            bar.set_postfix(loss=f"{losses[-1][-1]:.1f}", heldout_elbo=f"{curve[-1][1]:.1f}")
        bar.close()

        final_key = jax.random.PRNGKey(20_000 + seed)
        runs.append(
            {
                "estimator": estimator,
                "seed": seed,
                "elbo": float(_evaluate(svi.get_params(state), x_test, final_key, args.eval_particles)),
                "losses": np.concatenate(losses),
                "curve": np.asarray(curve),
                "steps_per_s": float(np.median(rates)),  # the median chunk: robust to load spikes of other jobs
                "compile_s": compile_s,
            }
        )
        print(
            f"{estimator:>9} seed {seed}: held-out ELBO {runs[-1]['elbo']:8.2f} nats/digit, "
            f"{runs[-1]['steps_per_s']:6.0f} steps/s" + (f" (compile {compile_s:.1f} s)" if compile_s > 0.5 else ""),
            flush=True,
        )
    return runs


# --- reporting --------------------------------------------------------------------------


def summary_rows(runs: list[dict], seeds: list[int]) -> list[dict]:
    """Per estimator: ELBOs by seed, mean and sd, paired gain over REINFORCE, throughput."""
    by = {(r["estimator"], r["seed"]): r for r in runs}
    baseline = np.array([by["reinforce", s]["elbo"] for s in seeds]) if ("reinforce", seeds[0]) in by else None
    rows = []
    for estimator in dict.fromkeys(r["estimator"] for r in runs):
        elbos = np.array([by[estimator, s]["elbo"] for s in seeds])
        gains = elbos - baseline if baseline is not None else None
        rows.append(
            {
                "estimator": estimator,
                "elbos": elbos,
                "gains": gains,
                "steps_per_s": np.mean([by[estimator, s]["steps_per_s"] for s in seeds]),
                "compile_s": np.sum([by[estimator, s]["compile_s"] for s in seeds]),
                "last_change": np.mean([np.diff(by[estimator, s]["curve"][-2:, 1]) for s in seeds])
                if len(by[estimator, seeds[0]]["curve"]) > 1
                else np.nan,
            }
        )
    return rows


def mean_sd(values: np.ndarray) -> str:
    """``mean ± sd`` (sample sd over seeds); the mean alone for one seed."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def verdict(rows: list[dict]) -> str:
    relaxed = [r for r in rows if r["estimator"] != "reinforce" and r["gains"] is not None]
    if not relaxed:
        return "No REINFORCE run to compare with."
    beaten = [r["estimator"] for r in relaxed if np.all(r["gains"] > 0)]
    gains = ", ".join(f"{r['estimator']} {np.mean(r['gains']):+.2f}" for r in relaxed)
    head = (
        "Every relaxed estimator beats REINFORCE on every seed"
        if len(beaten) == len(relaxed)
        else f"Beats REINFORCE on every seed: {', '.join(beaten) or 'none'} (of {len(relaxed)})"
    )
    return f"{head}, at equal steps. Mean paired gain in held-out ELBO (nats/digit): {gains}."


def markdown(rows: list[dict], args, source: str, x_shapes: tuple, wall_s: float, load: tuple) -> str:
    seeds, ((n_train, n_pixels), (n_test, _)) = args.seeds, x_shapes
    device = jax.devices()[0]
    hyper = {e: HYPER_DEFAULTS[e] for e in ESTIMATORS if e in HYPER_DEFAULTS}
    lines = [
        "# Discrete VAE on binarised MNIST (NumPyro)",
        "",
        f"`python examples/vae_numpyro.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"- Data: {source}; {n_train} training / {n_test} held-out digits, binarised at 0.5.",
        f"- Model: {N_LATENTS} x {N_CLASSES}-class `OneHotCategorical` latents, uniform prior; "
        f"encoder {n_pixels}-512-256-200, decoder 200-256-512-{n_pixels} (ReLU), Bernoulli pixels.",
        f"- Training: {args.steps} steps of Adam({args.lr}), batch {args.batch_size}, seeds {seeds}. "
        "REINFORCE: plain guide, `TraceGraph_ELBO`. Relaxed: `relax(model)`, `relax(guide)`, `Trace_ELBO`, "
        f"default hyperparameters {hyper}.",
        f"- Score: exact discrete ELBO of the unrelaxed model and guide, `Trace_ELBO(num_particles={args.eval_particles})` "
        "on the held-out digits, nats per digit (higher is better).",
        f"- Device: {device.platform} ({device.device_kind}), JAX {jax.__version__}, NumPyro {numpyro.__version__}; "
        f"total wall time {wall_s / 60:.1f} min; 1-min load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
        f"on {os.cpu_count()} cores (other jobs share the machine: steps/s are what this run got).",
        "",
        "| estimator | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean ± sd | gain over REINFORCE | last-chunk change | steps/s | compile s |",
        "| --- | " + " | ".join("---:" for _ in seeds) + " | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        gain = "" if r["gains"] is None or r["estimator"] == "reinforce" else mean_sd(r["gains"])
        lines.append(
            f"| {r['estimator']} | "
            + " | ".join(f"{e:.2f}" for e in r["elbos"])
            + f" | {mean_sd(r['elbos'])} | {gain} | {r['last_change']:+.2f} | {r['steps_per_s']:.0f} | {r['compile_s']:.1f} |"
        )
    lines += [
        "",
        verdict(rows),
        "",
        "Last-chunk change: held-out ELBO (the curves' 2-particle estimate) gained over the last "
        f"{args.steps // min(args.n_evals, args.steps)} steps, mean over seeds: clearly positive means the runs "
        "are compared at equal steps, before convergence.",
        "",
        "steps/s: training steps (batch of 100, one SVI update each) per second of compiled execution, "
        "compile and evaluation excluded: the median over the chunks of a run, averaged over seeds. "
        "Compile s: tracing and compiling the chunked update once per estimator (all seeds).",
        "",
        f"![training curves]({args.plot_name})",
        "",
    ]
    return "\n".join(lines)


def plot(runs: list[dict], path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    window = max(1, min(50, steps // 10))
    for i, estimator in enumerate(dict.fromkeys(r["estimator"] for r in runs)):
        mine = [r for r in runs if r["estimator"] == estimator]
        smooth = np.mean([np.convolve(r["losses"], np.ones(window) / window, mode="valid") for r in mine], axis=0)
        left.plot(np.arange(window, window + len(smooth)), smooth, color=f"C{i}", label=estimator)
        curves = np.stack([r["curve"][:, 1] for r in mine])
        x = mine[0]["curve"][:, 0]
        right.plot(x, curves.mean(0), "o-", ms=3, color=f"C{i}", label=estimator)
        right.fill_between(x, curves.min(0), curves.max(0), color=f"C{i}", alpha=0.2)
    left.set(
        xlabel="step", ylabel="training loss (nats/digit)", title=f"-ELBO on the training batch ({window}-step mean)"
    )
    right.set(xlabel="step", ylabel="held-out ELBO (nats/digit)", title="exact discrete ELBO, held out")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def select_device(name: str | None) -> None:
    """Make ``name`` (``cpu``/``gpu``) JAX's default device; ``None`` keeps JAX's default backend."""
    if name is None:
        return
    try:
        device = jax.devices(name)[0]
    except RuntimeError as error:
        raise SystemExit(
            f"--device {name}: JAX sees no {name.upper()} ({error}). Install a CUDA jaxlib "
            "(pip install 'jax[cuda12]') or use --device cpu."
        ) from None
    jax.config.update("jax_default_device", device)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=list(ESTIMATORS))
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-evals", type=int, default=10, help="held-out evaluations along training (for the curves)")
    parser.add_argument("--curve-particles", type=int, default=2)
    parser.add_argument("--eval-particles", type=int, default=20, help="particles of the final held-out ELBO")
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None, help="default: JAX's default backend")
    parser.add_argument(
        "--out-dir", type=Path, default=None, help=f"default: {RESULTS} ({RESULTS.parents[1] / 'build'} with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="seconds: 20 steps, one seed, 200 held-out digits")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.n_evals, args.eval_particles = 20, args.seeds[:1], 2, 2
    out_dir = args.out_dir or (RESULTS.parents[1] / "build" / "examples-quick" if args.quick else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    args.plot_name = "vae_numpyro.png"
    select_device(args.device)

    train_np, test_np, source = binarized_digits(n_test=1000)
    if args.quick:
        test_np = test_np[:200]
    x_train, x_test = jnp.asarray(train_np), jnp.asarray(test_np)
    print(
        f"{source}: {len(train_np)} train / {len(test_np)} held-out; device {jax.devices()[0]}; "
        f"{args.steps} steps x seeds {args.seeds}"
    )

    start, runs, load_start = time.perf_counter(), [], os.getloadavg()[0]
    for estimator in args.estimators:
        runs += train(estimator, args.seeds, x_train, x_test, args)
    wall_s = time.perf_counter() - start

    rows = summary_rows(runs, args.seeds)
    report = markdown(rows, args, source, (train_np.shape, test_np.shape), wall_s, (load_start, os.getloadavg()[0]))
    (out_dir / "vae_numpyro.md").write_text(report)
    plot(runs, out_dir / args.plot_name, args.steps)
    print(report)
    print(f"wrote {out_dir / 'vae_numpyro.md'} and {out_dir / args.plot_name}")
    return runs


if __name__ == "__main__":
    main()
