"""Time the JAX estimator kernels: jitted forward + backward against a plain Gumbel-ST baseline.

For each size ``B x N x K`` (logits of that shape) and each estimator, the timed function
runs the kernel on pre-drawn noise (kernels are pure; drawing noise costs the same for every
estimator, and threefry on CPU would dominate the small ones) and returns the sample
``hard`` and the gradient of ``sum(w * hard)`` with respect to the logits. The baseline is
the textbook straight-through Gumbel-Softmax written inline with ``jax.nn.softmax``.
Reported: compile time, median run time over ``--repeats`` calls (each ended by
``block_until_ready``), its ratio to the baseline, and peak memory.

Peak memory: on a device with ``memory_stats()`` (GPU) each measurement runs in a fresh
subprocess and reports ``peak_bytes_in_use`` (a process-wide high-water mark, inputs
included); elsewhere the compiled executable's ``memory_analysis()`` temporary size (XLA's
scratch buffers, inputs and outputs excluded); else ``n/a``.

Runs on the default JAX device. Needs only jax and this repository on the path::

    PYTHONPATH=. python benchmarks/bench_estimators_jax.py --quick --out bench.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

from numpyro_ext import estimators
from numpyro_ext._ops import gumbel_from_uniform, sample_uniform

FULL_SIZES = "256x81x9,128x256x64,32x512x1024,16x1024x4096"
QUICK_SIZES = "256x81x9,64x128x64"


def baseline(logits, gumbels, tau):
    """Textbook straight-through Gumbel-Softmax, inline: the reference cost."""
    soft = jax.nn.softmax((logits + gumbels) / tau, axis=-1)
    hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), logits.shape[-1], dtype=logits.dtype)
    return hard + (soft - lax.stop_gradient(soft))


#: name -> ``hard(logits, eps, gumbels, opts)``: the kernels are pure, so noise is an input.
ESTIMATORS = {
    "baseline": lambda logits, eps, gumbels, o: baseline(logits, gumbels, o.tau),
    "straight_through": lambda logits, eps, gumbels, o: estimators.straight_through(logits, gumbels)[0],
    "gumbel_softmax": lambda logits, eps, gumbels, o: estimators.gumbel_softmax(logits, o.tau, gumbels)[0],
    "reinmax": lambda logits, eps, gumbels, o: estimators.reinmax(logits, o.tau, gumbels)[0],
    "redge": lambda logits, eps, gumbels, o: estimators.redge(logits, o.n_steps, o.t_1, eps, gumbels)[0],
    "reindge": lambda logits, eps, gumbels, o: estimators.reindge(logits, o.n_steps, o.t_1, eps, gumbels)[0],
    "redge_cov": lambda logits, eps, gumbels, o: estimators.redge_cov(logits, o.n_steps, o.t_1, eps, gumbels)[0],
}


def _parse_size(text: str) -> tuple[int, ...]:
    return tuple(int(d) for d in text.lower().split("x"))


def measure(name: str, size: str, opts) -> dict:
    """Compile and time ``hard`` and ``grad(sum(w * hard))`` of one estimator at one size, in this process."""
    shape, dtype = _parse_size(size), jnp.dtype(opts.dtype)
    key_logits, key_eps, key_gumbels, key_w = jax.random.split(jax.random.PRNGKey(0), 4)
    args = (
        3.0 * jax.random.normal(key_logits, shape, dtype),  # logits
        jax.random.normal(key_eps, shape, dtype),  # eps
        gumbel_from_uniform(sample_uniform(key_gumbels, shape, dtype)),  # gumbels
        jax.random.normal(key_w, shape, dtype),  # w, the upstream gradient
    )
    hard = ESTIMATORS[name]
    # Return the sample too: grad alone lets XLA drop a sample the gradient ignores (straight-through).
    step = jax.jit(jax.grad(lambda lg, e, gm, w: (jnp.sum(w * (h := hard(lg, e, gm, opts))), h), has_aux=True))

    start = time.perf_counter()
    compiled = step.lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))  # first run: allocations, autotuning
    times = []
    for _ in range(opts.repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)

    analysis = compiled.memory_analysis()
    stats = jax.devices()[0].memory_stats()
    return {
        "name": name,
        "size": size,
        "compile_s": compile_s,
        "median_s": statistics.median(times),
        "temp_bytes": getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None,
        "peak_bytes": stats.get("peak_bytes_in_use") if stats else None,
    }


def measure_isolated(name: str, size: str, argv: list[str]) -> dict:
    """:func:`measure` in a fresh interpreter, so ``peak_bytes_in_use`` is this measurement's alone."""
    out = subprocess.run(
        [sys.executable, __file__, *argv, "--one", name, size], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mib(n) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f}"


def report(rows: list[dict], opts, device: str) -> str:
    base = {r["size"]: r["median_s"] for r in rows if r["name"] == "baseline"}
    peak = any(r["peak_bytes"] is not None for r in rows)
    mem_col = "peak MiB (device)" if peak else "XLA temp MiB"
    lines = [
        f"# JAX estimators: jitted forward + backward ({device})",
        "",
        f"jax {jax.__version__}, Python {platform.python_version()}, dtype {opts.dtype}, tau {opts.tau}, "
        f"n_steps {opts.n_steps}, t_1 {opts.t_1}, median of {opts.repeats} runs; "
        f"ratio = median / baseline median at the same size.",
        "",
        f"| size (BxNxK) | estimator | compile s | median ms | ratio | {mem_col} |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        memory = r["peak_bytes"] if peak else r["temp_bytes"]
        lines.append(
            f"| {r['size']} | {r['name']} | {r['compile_s']:.2f} | {r['median_s'] * 1e3:.2f} "
            f"| {r['median_s'] / base[r['size']]:.2f} | {_mib(memory)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"small sizes only ({QUICK_SIZES}), 5 repeats")
    parser.add_argument("--sizes", help=f"comma-separated BxNxK sizes (default {FULL_SIZES})")
    parser.add_argument("--out", help="write the markdown table to this path too")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 10; 5 with --quick)")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated subset")
    parser.add_argument("--n-steps", type=int, default=9, help="REDGE grid points (default 9)")
    parser.add_argument("--t-1", type=float, default=0.5, help="REDGE end point (default 0.5)")
    parser.add_argument("--tau", type=float, default=0.5, help="temperature (default 0.5)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--no-isolate", action="store_true", help="never use one subprocess per measurement")
    parser.add_argument("--one", nargs=2, metavar=("NAME", "SIZE"), help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    opts = parser.parse_args(argv)
    opts.repeats = opts.repeats or (5 if opts.quick else 10)

    if opts.one:  # child of measure_isolated: one JSON line on stdout
        print(json.dumps(measure(*opts.one, opts)))
        return

    sizes = (opts.sizes or (QUICK_SIZES if opts.quick else FULL_SIZES)).split(",")
    names = ["baseline"] + [n for n in opts.estimators.split(",") if n != "baseline"]
    device = jax.devices()[0]
    isolate = not opts.no_isolate and device.memory_stats() is not None
    jax.jit(lambda x: x + 1).lower(1.0).compile()  # warm the compiler so the first row's compile time is fair
    child_argv = [a for a in argv if a != "--quick"] + ["--repeats", str(opts.repeats)]
    rows = []
    for size in sizes:
        for name in names:
            row = measure_isolated(name, size, child_argv) if isolate else measure(name, size, opts)
            rows.append(row)
            ms = row["median_s"] * 1e3
            print(f"{size:>14s} {name:16s} compile {row['compile_s']:6.2f} s  median {ms:9.2f} ms", flush=True)
    table = report(rows, opts, f"{device.platform}: {device.device_kind}")
    print(table)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
