r"""Data-parallel SVI throughput: the discrete VAE with ``relax`` on 1, 2 and 4 devices, in both
backends on their hosts' own engines, and step time against the batch per device.

    python benchmarks/data_parallel.py                 # both backends (~10 min on 2 cores)
    python benchmarks/data_parallel.py --only numpyro  # or pyro
    python benchmarks/data_parallel.py --quick         # seconds: tiny runs, to a temporary file

- NumPyro: ``examples/vae_numpyro_sharded.py`` (``jax.sharding``: the batch split over a
  ``("data",)`` mesh, the state replicated, XLA's SPMD partitioner). On CPU the N devices are
  forced host devices (``--xla_force_host_platform_device_count``) of one thread each
  (``--xla_cpu_multi_thread_eigen=false``): they share this machine's cores.
- Pyro: ``examples/vae_pyro_ddp.py`` (PyTorch Lightning, ``DDPStrategy``, gloo on CPU): N
  processes, one torch thread each.

Each configuration runs in its own process (XLA fixes its device count when it starts;
Lightning spawns its own workers). Weak scaling: ``--batch-size`` digits per device and step,
so the global batch grows with N. Figures: steps/s and digits/s from the timed steps (compile
and start-up excluded, the examples' own timers), the configurations interleaved round by
round so that a load spike of the machine does not fall on one configuration only; the
median over ``--rounds``. Writes ``results/data_parallel.md`` and ``results/data_parallel.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def run_numpyro(devices: int, batch: int, steps: int, out: Path) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        JAX_PLATFORMS="cpu",
        OMP_NUM_THREADS="1",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} --xla_cpu_multi_thread_eigen=false",
    )
    command = [
        sys.executable,
        str(ROOT / "examples" / "vae_numpyro_sharded.py"),
        "--devices",
        str(devices),
        "--batch-size",
        str(batch),
        "--steps",
        str(steps),
        "--chunk",
        str(max(1, steps // 4)),
        "--out-dir",
        str(out),
    ]
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads((out / f"vae_numpyro_sharded_{devices}.json").read_text())


def run_pyro(devices: int, batch: int, steps: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        str(ROOT / "examples" / "vae_pyro_ddp.py"),
        "--devices",
        str(devices),
        "--batch-size",
        str(batch),
        "--steps",
        str(steps),
        "--out-dir",
        str(out),
        "--threads",
        "1",
    ]
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    result = json.loads((out / f"vae_pyro_ddp_devices{devices}.json").read_text())
    return dict(result, engine=f"Lightning {result['strategy']}, gloo", source=result["data"])


RUNNERS = {"numpyro": run_numpyro, "pyro": run_pyro}


def measure(configs: list[tuple[str, int, int, int]], rounds: int, out: Path) -> dict:
    """``{(backend, devices, batch): [result per round]}``, configurations interleaved per round."""
    results: dict = {}
    for r in range(rounds):
        for backend, devices, batch, steps in configs:
            start = time.perf_counter()
            result = RUNNERS[backend](devices, batch, steps, out)
            results.setdefault((backend, devices, batch), []).append(result)
            print(
                f"round {r}: {backend:>7} {devices} device(s) batch {batch:>4}/device: "
                f"{result['steps_per_s']:7.1f} steps/s {result['samples_per_s']:8.0f} digits/s "
                f"({time.perf_counter() - start:.0f} s with start-up)",
                flush=True,
            )
    return results


def median(results: list[dict], key: str) -> float:
    return float(np.median([r[key] for r in results]))


def table(results: dict, batch: int, device_counts: list[int]) -> list[str]:
    lines = [
        "| backend (engine) | devices | global batch | steps/s | steps/s, rounds' range | digits/s | digits/s vs 1 device |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in RUNNERS:
        base = results.get((backend, 1, batch))
        for n in device_counts:
            runs = results.get((backend, n, batch))
            if not runs:
                continue
            engine = runs[0].get("engine", "")
            ratio = median(runs, "samples_per_s") / median(base, "samples_per_s") if base else float("nan")
            spread = f"{min(r['steps_per_s'] for r in runs):.1f}-{max(r['steps_per_s'] for r in runs):.1f}"
            lines.append(
                f"| {backend} ({engine}) | {n} | {n * batch} | {median(runs, 'steps_per_s'):.1f} | {spread} | "
                f"{median(runs, 'samples_per_s'):.0f} | {ratio:.2f}x |"
            )
    return lines


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    series = sorted({(b, n) for b, n, _ in results})
    for i, (backend, n) in enumerate(series):
        batches = sorted(bb for b, nn, bb in results if (b, nn) == (backend, n))
        if len(batches) < 2:
            continue
        ms = [1e3 / median(results[backend, n, bb], "steps_per_s") for bb in batches]
        ax.plot(batches, ms, "o-" if backend == "numpyro" else "s--", color=f"C{i}", label=f"{backend}, {n} device(s)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="digits per device and step",
        ylabel="step time (ms)",
        title="discrete VAE, relax(guide): step time vs batch per device",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(RUNNERS), default=None)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-size", type=int, default=100, help="digits per device for the devices table")
    parser.add_argument(
        "--sweep", type=int, nargs="+", default=[8, 32, 128, 512], help="batches per device for the plot"
    )
    parser.add_argument("--sweep-devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.sweep, args.sweep_devices, args.steps, args.rounds = [1, 2], [8, 32], [1], 8, 1
    out = args.out or (Path(tempfile.mkdtemp()) / "data_parallel.md" if args.quick else RESULTS / "data_parallel.md")
    backends = [args.only] if args.only else list(RUNNERS)
    configs = [(b, n, args.batch_size, args.steps) for b in backends for n in args.devices]
    configs += [
        (b, n, bb, args.steps)
        for b in backends
        for n in args.sweep_devices
        for bb in args.sweep
        if (b, n, bb, args.steps) not in configs
    ]
    start, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        results = measure(configs, args.rounds, Path(scratch))
    first = next(iter(results.values()))[0]
    lines = [
        "# Data-parallel SVI: the discrete VAE with `relax` on 1, 2, 4 devices",
        "",
        f"`python benchmarks/data_parallel.py {' '.join(argv if argv is not None else sys.argv[1:])}`".replace(
            " `", "`"
        ),
        "",
        f"- Data: {first.get('source', 'MNIST')}; 20 x 10-class latents, encoder 784-512-256-200, decoder 200-256-512-784, "
        "`relax`'s default estimator, Adam 1e-3.",
        f"- Weak scaling: {args.batch_size} digits per device and step; {args.steps} steps per run, compile and start-up "
        f"excluded; median of {args.rounds} interleaved rounds.",
        f"- Machine: {os.cpu_count()} CPU cores (1-min load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), "
        "no GPU. **The devices share these cores**: N forced XLA host devices, or N gloo processes of one thread each. "
        "This table shows that the engines run our classes unchanged and what their overhead is; it cannot show a "
        "speed-up, which needs N real devices.",
        "",
        *table(results, args.batch_size, args.devices),
        "",
        "Step time against the batch per device (the plot): where the line is flat the step is bound by launch and "
        "communication overhead, where it rises in proportion to the batch the devices are doing arithmetic.",
        "",
        "| backend | devices | " + " | ".join(f"batch {b}" for b in args.sweep) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in args.sweep) + " |",
    ]
    for backend in backends:
        for n in args.sweep_devices:
            cells = [
                f"{1e3 / median(results[backend, n, b], 'steps_per_s'):.1f} ms" if (backend, n, b) in results else ""
                for b in args.sweep
            ]
            lines.append(f"| {backend} | {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"![step time vs batch per device]({out.with_suffix('.png').name})",
        "",
        f"Wall time {time.perf_counter() - start:.0f} s.",
        "",
    ]
    text = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    plot(results, out.with_suffix(".png"))
    print(text)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
