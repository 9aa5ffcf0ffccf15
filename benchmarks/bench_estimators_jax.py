"""Time the JAX estimator kernels: jitted forward + backward against a plain Gumbel-ST baseline.

For each size ``B x N x K`` (logits of that shape) and each estimator, the timed function
runs the kernel on pre-drawn noise (kernels are pure; drawing noise costs the same for every
estimator, and threefry on CPU would dominate the small ones) and returns the sample
``hard`` and the gradient of ``sum(w * hard)`` with respect to the logits. The baseline is
the textbook straight-through Gumbel-Softmax written inline with ``jax.nn.softmax``.
Reported: compile time, median run time over ``--repeats`` calls or more, until
``--min-time`` seconds (each ended by ``block_until_ready``; without subprocesses the rows
of a size are compiled first, then timed interleaved, run by run, so a change in machine
load hits every row alike), its ratio to the baseline, and peak memory. ``--large-only``
and ``--large-repeats`` thin out the sizes of ``2**25`` elements or more (16x1024x4096).

``--classes`` adds the distribution classes of ``numpyro_ext.distributions``, built and
sampled with ``rsample(key)`` inside the jitted function (``validate_args=False``): they draw
their own noise, so they come with ``baseline_rng``, the baseline drawing its Gumbel noise
the same way, the functional samplers (``functional.redge`` etc., drawing the same noise as the
classes), a column ``x kernel``: a class's (or sampler's) time over its kernel row's (the class
machinery plus its noise), and a column ``x sampler``: a class's time over its functional
sampler's (the class machinery alone). ``RelaxedOneHotCategorical+log_prob`` scores its sample
at the log-space pre-image (``sample_with_intermediates``) and returns
``sample + log_prob[..., None]``, so the score's gradient flows too.

Peak memory: on a device with ``memory_stats()`` (GPU) each measurement runs in a fresh
subprocess and reports ``peak_bytes_in_use`` (a process-wide high-water mark, inputs
included); elsewhere the compiled executable's ``memory_analysis()`` temporary size (XLA's
scratch buffers, inputs and outputs excluded); else ``n/a``.

Time: wall-clock medians, and beside them (last column) the median process CPU time of a
call (``time.process_time``, all threads): CPU ms above median ms means XLA ran on more
than one thread.

Runs on the default JAX device. Needs only jax and this repository on the path (NumPyro
for ``--classes``). On a CPU shared with others, run XLA on one thread of one core: XLA CPU
honours ``--xla_cpu_multi_thread_eigen=false`` (no Eigen thread pool in its kernels) and the
process's CPU affinity (``taskset -c N``, or ``--cpu N`` here, which calls
``os.sched_setaffinity`` before JAX starts its thread pools). ``intra_op_parallelism_threads``
is a TensorFlow option, not an XLA flag: XLA stops parsing ``XLA_FLAGS`` at it and drops the
flags after it::

    PYTHONPATH=. python benchmarks/bench_estimators_jax.py --quick --out bench.md
    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 \
        PYTHONPATH=. python benchmarks/bench_estimators_jax.py --classes --large-only baseline,redge
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time


def _pin_from_argv(argv) -> None:
    """``--cpu N[,M...]``: pin this process to those cores before JAX starts its thread pools."""
    if "--cpu" in argv and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in argv[argv.index("--cpu") + 1].split(",")})


_pin_from_argv(sys.argv)

import jax  # noqa: E402 (after the pinning)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from numpyro_ext import estimators  # noqa: E402
from numpyro_ext._ops import gumbel_from_uniform, sample_gumbel, sample_uniform  # noqa: E402

FULL_SIZES = "256x81x9,128x256x64,32x512x1024,16x1024x4096"
QUICK_SIZES = "256x81x9,64x128x64"
LARGE = 2**25  # elements: from here on (16x1024x4096 has 2**26) --large-only and --large-repeats apply


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


def _rsample(make, score=False):
    """``sample(logits, key, opts)``: ``make(logits, opts).rsample(key)``; with ``score``, plus
    its ``log_prob`` at the log-space pre-image, broadcast over the event."""

    def sample(logits, key, o):
        dist = make(logits, o)
        if not score:
            return dist.rsample(key)
        value, intermediates = dist.sample_with_intermediates(key)
        return value + dist.log_prob(value, intermediates)[..., None]

    return sample


def classes() -> dict:
    """With ``--classes``: name -> (``sample(logits, key, opts)``, the kernel row it wraps)."""
    from numpyro_ext import distributions as dists  # needs NumPyro

    off = dict(validate_args=False)
    relaxed = lambda lg, o: dists.RelaxedOneHotCategorical(o.tau, logits=lg, **off)
    redge_family = {
        "REDGE": ("redge", dists.REDGE),
        "REDGECov": ("redge_cov", dists.REDGECov),
        "REINDGE": ("reindge", dists.REINDGE),
    }
    from numpyro_ext import functional as F

    return {
        "baseline_rng": (lambda lg, key, o: baseline(lg, sample_gumbel(key, lg.shape, lg.dtype), o.tau), "baseline"),
        "functional.straight_through": (lambda lg, key, o: F.straight_through(key, lg), "straight_through"),
        "functional.gumbel_softmax": (lambda lg, key, o: F.gumbel_softmax(key, lg, o.tau), "gumbel_softmax"),
        "functional.reinmax": (lambda lg, key, o: F.reinmax(key, lg, o.tau), "reinmax"),
        **{
            f"functional.{kernel}": (lambda lg, key, o, k=kernel: getattr(F, k)(key, lg, o.n_steps, o.t_1), kernel)
            for kernel in ("redge", "redge_cov", "reindge")
        },
        "StraightThrough": (_rsample(lambda lg, o: dists.StraightThrough(logits=lg, **off)), "straight_through"),
        "RelaxedOneHotCategoricalStraightThrough": (
            _rsample(lambda lg, o: dists.RelaxedOneHotCategoricalStraightThrough(o.tau, logits=lg, **off)),
            "gumbel_softmax",
        ),
        "ReinMax": (_rsample(lambda lg, o: dists.ReinMax(o.tau, logits=lg, **off)), "reinmax"),
        **{
            name: (_rsample(lambda lg, o, c=c: c(logits=lg, n_steps=o.n_steps, t_1=o.t_1, **off)), kernel)
            for name, (kernel, c) in redge_family.items()
        },
        "RelaxedOneHotCategorical": (_rsample(relaxed), "gumbel_softmax"),
        "RelaxedOneHotCategorical+log_prob": (_rsample(relaxed, score=True), "gumbel_softmax"),
        "ExpRelaxedOneHotCategorical": (
            _rsample(lambda lg, o: dists.ExpRelaxedOneHotCategorical(o.tau, logits=lg, **off)),
            "gumbel_softmax",
        ),
    }


def _parse_size(text: str) -> tuple[int, ...]:
    return tuple(int(d) for d in text.lower().split("x"))


def _numel(size: str) -> int:
    return int(np.prod(_parse_size(size)))


def compile_row(name: str, size: str, opts) -> tuple:
    """``(compiled, args, compile seconds)``: ``hard`` and ``grad(sum(w * hard))`` of one row at one size."""
    shape, dtype = _parse_size(size), jnp.dtype(opts.dtype)
    key_logits, key_eps, key_gumbels, key_w = jax.random.split(jax.random.PRNGKey(0), 4)
    logits = 3.0 * jax.random.normal(key_logits, shape, dtype)
    w = jax.random.normal(key_w, shape, dtype)  # the upstream gradient
    if name in ESTIMATORS:
        hard = ESTIMATORS[name]
        noise = (
            jax.random.normal(key_eps, shape, dtype),
            gumbel_from_uniform(sample_uniform(key_gumbels, shape, dtype)),
        )
    else:  # a class: it draws its noise from a key
        hard, noise = classes()[name][0], (key_gumbels,)
    args = (logits, *noise, w)
    # Return the sample too: grad alone lets XLA drop a sample the gradient ignores (straight-through).
    step = jax.jit(jax.grad(lambda lg, *nw: (jnp.sum(nw[-1] * (h := hard(lg, *nw[:-1], opts))), h), has_aux=True))
    start = time.perf_counter()
    compiled = step.lower(*args).compile()
    return compiled, args, time.perf_counter() - start


def measure(names: list[str], size: str, opts) -> list[dict]:
    """Compile the rows of one size, then time them in this process, interleaved run by run
    (so a change in machine load hits every row alike)."""
    rows = {name: compile_row(name, size, opts) for name in names}
    for compiled, args, _ in rows.values():
        jax.block_until_ready(compiled(*args))  # first run: allocations, autotuning
    times = {name: [] for name in names}
    cpu_times = {name: [] for name in names}
    start_rounds = time.perf_counter()
    for rounds in range(100 * opts.repeats):  # --repeats rounds, more until --min-time seconds have passed
        if rounds >= opts.repeats and time.perf_counter() - start_rounds >= opts.min_time:
            break
        for name, (compiled, args, _) in rows.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(compiled(*args))
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - start_cpu)
    stats = jax.devices()[0].memory_stats()
    return [
        {
            "name": name,
            "size": size,
            "compile_s": compile_s,
            "median_s": statistics.median(times[name]),
            "cpu_s": statistics.median(cpu_times[name]),
            "temp_bytes": getattr(compiled.memory_analysis(), "temp_size_in_bytes", None),
            "peak_bytes": stats.get("peak_bytes_in_use") if stats else None,
        }
        for name, (compiled, _, compile_s) in rows.items()
    ]


def measure_isolated(name: str, size: str, argv: list[str]) -> dict:
    """:func:`measure` of one row in a fresh interpreter, so ``peak_bytes_in_use`` is this row's alone."""
    out = subprocess.run(
        [sys.executable, __file__, *argv, "--one", name, size], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mib(n) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f}"


def _kernel_ratio(row: dict, medians: dict, kernels: dict) -> str:
    kernel = medians.get((row["size"], kernels.get(row["name"])))
    return f"{row['median_s'] / kernel:.2f}" if kernel else ""


#: With ``--classes``: a class -> the functional sampler that draws the same noise and calls the
#: same kernel (column ``x sampler``: what the class machinery costs over that).
SAMPLER_OF = {
    "StraightThrough": "functional.straight_through",
    "RelaxedOneHotCategoricalStraightThrough": "functional.gumbel_softmax",
    "ReinMax": "functional.reinmax",
    "REDGE": "functional.redge",
    "REDGECov": "functional.redge_cov",
    "REINDGE": "functional.reindge",
}


def report(rows: list[dict], opts, device: str, command: str) -> str:
    medians = {(r["size"], r["name"]): r["median_s"] for r in rows}
    kernels = {name: kernel for name, (_, kernel) in classes().items()} if opts.classes else {}
    peak = any(r["peak_bytes"] is not None for r in rows)
    mem_col = "peak MiB (device)" if peak else "XLA temp MiB"
    lines = [
        f"# JAX estimators: jitted forward + backward ({device})",
        "",
        f"Command: `{command}`",
        "",
        f"jax {jax.__version__}, Python {platform.python_version()}, dtype {opts.dtype}, tau {opts.tau}, "
        f"n_steps {opts.n_steps}, t_1 {opts.t_1}, median of {opts.repeats} runs or more (until {opts.min_time} s)"
        + (f" ({opts.large_repeats} at {LARGE} elements or more)" if opts.large_repeats else "")
        + "; ratio = median / baseline median at the same size"
        + (
            "; x kernel = a class's (or sampler's) median / its kernel row's; x sampler = a class's median /"
            " the functional sampler's that draws the same noise for the same kernel."
            if kernels
            else "."
        ),
        "",
        f"| size (BxNxK) | estimator | compile s | median ms | ratio |{' x kernel | x sampler |' if kernels else ''}"
        f" {mem_col} | CPU ms |",
        f"| --- | --- | ---: | ---: | ---: |{' ---: | ---: |' if kernels else ''} ---: | ---: |",
    ]
    for r in rows:
        memory = r["peak_bytes"] if peak else r["temp_bytes"]
        lines.append(
            f"| {r['size']} | {r['name']} | {r['compile_s']:.2f} | {r['median_s'] * 1e3:.2f} "
            f"| {r['median_s'] / medians[(r['size'], 'baseline')]:.2f} "
            f"|{f' {_kernel_ratio(r, medians, kernels)} | {_kernel_ratio(r, medians, SAMPLER_OF)} |' if kernels else ''}"
            f" {_mib(memory)} | {r['cpu_s'] * 1e3:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"small sizes only ({QUICK_SIZES}), 5 repeats")
    parser.add_argument("--sizes", help=f"comma-separated BxNxK sizes (default {FULL_SIZES})")
    parser.add_argument("--out", help="write the markdown table to this path too")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 10; 5 with --quick)")
    parser.add_argument(
        "--min-time",
        type=float,
        default=1.0,
        help="seconds of timed runs per size at least: cheap sizes get more than --repeats (default 1)",
    )
    parser.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated subset")
    parser.add_argument(
        "--classes",
        nargs="?",
        const="all",
        help="add the numpyro_ext distribution classes' rsample (all, or a comma-separated subset)",
    )
    parser.add_argument("--large-only", help=f"comma-separated rows to run at sizes of {LARGE} elements or more")
    parser.add_argument("--large-repeats", type=int, help="timed runs per measurement at those sizes")
    parser.add_argument("--n-steps", type=int, default=5, help="REDGE grid points (default 5, as the torch script)")
    parser.add_argument("--t-1", type=float, default=0.5, help="REDGE end point (default 0.5)")
    parser.add_argument("--tau", type=float, default=0.5, help="temperature (default 0.5)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cpu", help="pin the process to these cores (os.sched_setaffinity), e.g. 0")
    parser.add_argument("--no-isolate", action="store_true", help="never use one subprocess per measurement")
    parser.add_argument("--one", nargs=2, metavar=("NAME", "SIZE"), help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    opts = parser.parse_args(argv)
    opts.repeats = opts.repeats or (5 if opts.quick else 10)

    if opts.one:  # child of measure_isolated: one JSON line on stdout
        print(json.dumps(measure([opts.one[0]], opts.one[1], opts)[0]))
        return

    sizes = (opts.sizes or (QUICK_SIZES if opts.quick else FULL_SIZES)).split(",")
    class_names = list(classes()) if opts.classes == "all" else opts.classes.split(",") if opts.classes else []
    names = ["baseline"] + [n for n in opts.estimators.split(",") if n != "baseline"] + class_names
    device = jax.devices()[0]
    isolate = not opts.no_isolate and device.memory_stats() is not None
    jax.jit(lambda x: x + 1).lower(1.0).compile()  # warm the compiler so the first row's compile time is fair
    rows = []
    for size in sizes:
        large = _numel(size) >= LARGE
        size_opts = argparse.Namespace(**{**vars(opts), "repeats": (large and opts.large_repeats) or opts.repeats})
        child_argv = [a for a in argv if a != "--quick"] + ["--repeats", str(size_opts.repeats)]
        size_names = [n for n in names if not (large and opts.large_only) or n in opts.large_only.split(",")]
        if isolate:
            size_rows = [measure_isolated(name, size, child_argv) for name in size_names]
        else:
            size_rows = measure(size_names, size, size_opts)
        for row in size_rows:
            ms = row["median_s"] * 1e3
            print(f"{size:>14s} {row['name']:16s} compile {row['compile_s']:6.2f} s  median {ms:9.2f} ms", flush=True)
        rows += size_rows
    flags = os.environ.get("XLA_FLAGS")
    command = shlex.join(["python", "benchmarks/bench_estimators_jax.py", *argv])
    command = f"XLA_FLAGS={shlex.quote(flags)} {command}" if flags else command
    table = report(rows, opts, f"{device.platform}: {device.device_kind}", command)
    print(table)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
