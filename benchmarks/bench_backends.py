"""One table, both backends: each estimator's forward + backward time as a ratio to its own
backend's Gumbel-ST, on the CPU, kernels alone and with the noise drawn, all rows of a size
(JAX and torch) interleaved call by call in one process.

Rows per size and estimator:

- ``kernel``: the pure kernel on pre-drawn noise (``numpyro_ext.estimators`` jitted with its
  gradient; ``pyro_ext.estimators`` eager), returning ``hard`` and the gradient of
  ``sum(w * hard)`` with respect to the logits;
- ``noise``: what users call, drawing its own noise inside the timed call
  (``numpyro_ext.functional.SAMPLERS`` with a key, jitted; ``pyro_ext.functional.SAMPLERS``).

The base of each ratio (``x GS``) is the same backend's ``gumbel`` row of the same mode and
size; ``JAX / torch`` is the JAX ratio over the torch ratio (the issue's acceptance: at most
1.5 for REDGE). Time: the median wall time of a call (``block_until_ready`` for JAX) and the
median process CPU time (``time.process_time``, every thread): a CPU time above the wall time
means more than one thread ran. ``XLA temp MiB``: the compiled executable's
``memory_analysis()`` scratch (inputs and outputs excluded); ``XLA GB moved``: its
``cost_analysis()`` "bytes accessed".

Threads: the process is pinned to ``--cpu`` (``os.sched_setaffinity``) before JAX or torch
start their pools, XLA gets ``--xla_cpu_multi_thread_eigen=false`` and torch
``set_num_threads(1)``::

    PYTHONPATH=. python benchmarks/bench_backends.py --cpu 0 --out benchmarks/results/estimators_backends_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time

ESTIMATORS = ("gumbel", "st", "reinmax", "redge", "reindge", "redge_cov")
SIZES = "64x256x64,32x512x512"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=SIZES, help=f"comma-separated BxNxK (default {SIZES})")
    parser.add_argument(
        "--estimators", default=",".join(ESTIMATORS), help="comma-separated subset (gumbel is always run)"
    )
    parser.add_argument("--n-steps", type=int, default=5)
    parser.add_argument("--t-1", type=float, default=0.5)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds at least (default 10)")
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of rounds per size at least (default 2)")
    parser.add_argument("--cpu", default="0", help="cores to pin to (default 0; 'none' to leave the affinity)")
    parser.add_argument("--out", help="write the markdown table here too")
    return parser.parse_args(argv)


def pin(args) -> None:
    """Affinity and single-thread settings, before JAX or torch is imported."""
    if args.cpu != "none" and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.cpu.split(",")})
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def jax_rows(shape, names, args) -> dict:
    """``(name, mode) -> (call, compiled)``: jitted forward + backward of the JAX rows."""
    import jax
    import jax.numpy as jnp

    from numpyro_ext import estimators as E, functional as F
    from numpyro_ext._ops import gumbel_from_uniform, sample_uniform

    dtype = jnp.dtype(args.dtype)
    k_logits, k_eps, k_gumbels, k_w, k_draw = jax.random.split(jax.random.PRNGKey(0), 5)
    logits, w = jax.random.normal(k_logits, shape, dtype), jax.random.normal(k_w, shape, dtype)
    eps, gumbels = jax.random.normal(k_eps, shape, dtype), gumbel_from_uniform(sample_uniform(k_gumbels, shape, dtype))
    n, t_1, tau = args.n_steps, args.t_1, args.tau
    kernels = {
        "gumbel": lambda lg: E.gumbel_softmax(lg, tau, gumbels)[0],
        "st": lambda lg: E.straight_through(lg, gumbels)[0],
        "reinmax": lambda lg: E.reinmax(lg, tau, gumbels)[0],
        **{
            name: (lambda lg, f=getattr(E, name): f(lg, n, t_1, eps, gumbels)[0])
            for name in ("redge", "reindge", "redge_cov")
        },
    }
    params = dict(tau=tau, n_steps=n, t_1=t_1)
    rows = {}
    for name in names:
        for mode, hard in (
            ("kernel", lambda lg, key, f=kernels[name]: f(lg)),
            ("noise", lambda lg, key, f=F.SAMPLERS[name]: f(key, lg, **params)),
        ):
            grad = jax.grad(lambda lg, key, w, h=hard: (jnp.sum(w * (s := h(lg, key))), s), has_aux=True)
            compiled = jax.jit(grad).lower(logits, k_draw, w).compile()
            rows[("JAX", name, mode)] = (lambda c=compiled: jax.block_until_ready(c(logits, k_draw, w)), compiled)
    return rows


def torch_rows(shape, names, args) -> dict:
    """``(name, mode) -> (call, None)``: eager forward + backward of the torch rows."""
    import torch

    from pyro_ext import _ops, estimators as E, functional as F

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    dtype = getattr(torch, args.dtype)
    logits = torch.randn(shape, generator=generator, dtype=dtype).requires_grad_(True)
    w, eps = torch.randn(shape, generator=generator, dtype=dtype), torch.randn(shape, generator=generator, dtype=dtype)
    gumbels = _ops.sample_gumbel(shape, dtype, "cpu")
    n, t_1, tau = args.n_steps, args.t_1, args.tau
    kernels = {
        "gumbel": lambda lg: E.gumbel_softmax(lg, tau, gumbels)[0],
        "st": lambda lg: E.straight_through(lg, gumbels)[0],
        "reinmax": lambda lg: E.reinmax(lg, tau, gumbels)[0],
        **{
            name: (lambda lg, f=getattr(E, name): f(lg, n, t_1, eps, gumbels)[0])
            for name in ("redge", "reindge", "redge_cov")
        },
    }
    params = dict(tau=tau, n_steps=n, t_1=t_1)

    def call(fn):
        logits.grad = None
        (fn(logits) * w).sum().backward()

    rows = {}
    for name in names:
        for mode, fn in (("kernel", kernels[name]), ("noise", lambda lg, f=F.SAMPLERS[name]: f(lg, **params))):
            rows[("torch", name, mode)] = (lambda fn=fn: call(fn), None)
    return rows


def measure(rows: dict, args) -> dict:
    """``key -> (median wall s, median CPU s)``, the rows interleaved round by round."""
    for call, _ in rows.values():
        call(), call()  # warm-up: first-call allocations
    wall, cpu = ({key: [] for key in rows} for _ in range(2))
    start_rounds = time.perf_counter()
    for rounds in range(100 * args.repeats):
        if rounds >= args.repeats and time.perf_counter() - start_rounds >= args.min_time:
            break
        for key, (call, _) in rows.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            wall[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - start_cpu)
    return {key: (statistics.median(wall[key]), statistics.median(cpu[key])) for key in rows}


def _xla(compiled) -> tuple[str, str]:
    if compiled is None:
        return "", ""
    temp = getattr(compiled.memory_analysis(), "temp_size_in_bytes", None)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    moved = (cost or {}).get("bytes accessed")
    return ("" if temp is None else f"{temp / 2**20:.1f}"), ("" if moved is None else f"{moved / 1e9:.2f}")


def table(size, names, rows, times) -> list[str]:
    lines = []
    for name in names:
        for mode in ("kernel", "noise"):
            cells, ratios = [], []
            for backend in ("JAX", "torch"):
                wall, cpu = times[(backend, name, mode)]
                ratio = wall / times[(backend, "gumbel", mode)][0]
                ratios.append(ratio)
                cells += [f"{wall * 1e3:.2f}", f"{cpu * 1e3:.2f}", f"{ratio:.2f}"]
            temp, moved = _xla(rows[("JAX", name, mode)][1])
            lines.append(
                f"| {size} | {name} | {mode} | {' | '.join(cells)} | {ratios[0] / ratios[1]:.2f} | {temp} | {moved} |"
            )
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    pin(args)
    import jax
    import torch

    names = ["gumbel"] + [n for n in args.estimators.split(",") if n != "gumbel"]
    flags = os.environ.get("XLA_FLAGS", "")
    lines = [
        "# Estimators on CPU, both backends in one run: ratio to the same backend's Gumbel-ST",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/bench_backends.py', *(sys.argv[1:] if argv is None else argv)])}`",
        "",
        f"jax {jax.__version__}, torch {torch.__version__}, Python {platform.python_version()}, {platform.processor() or platform.machine()}; "
        f"cores {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 'n/a'}, XLA_FLAGS=`{flags}`, "
        f"torch threads {torch.get_num_threads()}; dtype {args.dtype}, n_steps {args.n_steps}, t_1 {args.t_1}, tau {args.tau}; "
        f"median of {args.repeats} interleaved rounds or more (until {args.min_time} s per size). "
        "kernel: pre-drawn noise; noise: the functional samplers draw it in the call. "
        "x GS: time over the same backend's Gumbel-ST (same mode); JAX / torch: JAX's x GS over torch's.",
        "",
        "| size (BxNxK) | estimator | mode | JAX ms | JAX CPU ms | JAX x GS | torch ms | torch CPU ms | torch x GS "
        "| JAX / torch | XLA temp MiB | XLA GB moved |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in args.sizes.split(","):
        shape = tuple(int(d) for d in size.lower().split("x"))
        rows = {**jax_rows(shape, names, args), **torch_rows(shape, names, args)}
        times = measure(rows, args)
        lines += table(size, names, rows, times)
        print(f"{size}: done", file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
