"""Forward + backward time and memory of the torch estimators against
``torch.nn.functional.gumbel_softmax(hard=True)``, the authors' ``redge`` package and the
``reinmax`` package, in one run; prints (and with ``--out`` writes) a markdown table.

    python benchmarks/bench_estimators_torch.py --device cpu --quick
    python benchmarks/bench_estimators_torch.py --device cuda --out results.md
    python benchmarks/bench_estimators_torch.py --classes --threads 1 --cpu 0 --large-only gumbel,redge
    python benchmarks/bench_estimators_torch.py --scaling --threads 1 --out scaling.md

Each call draws its own noise inside the timed region (as the peers do) and runs
``(sample * weight).sum().backward()``. Time: median over ``--repeats`` calls (more for a
cheap size, until ``--min-time`` seconds) after ``--warmup`` calls, the rows of one size
interleaved call by call (so a change in machine load hits every row alike), with
``torch.cuda.synchronize`` around each on CUDA; ``CPU ms`` (last column) is the median
process CPU time of a call (``time.process_time``, all threads). On a shared CPU, pin with
``--threads 1`` (``torch.set_num_threads``, which ATen's intra-op pool honours) and ``--cpu N``
(``os.sched_setaffinity``) or ``taskset -c N``. Memory:

- ``peak MiB``: the most memory allocated at once during one call, minus what was
  allocated before it (the inputs ``logits`` and ``weight``); it includes ``logits.grad``.
  CUDA: ``torch.cuda.max_memory_allocated``. CPU: the allocator's running total that
  ``torch.profiler`` records with ``profile_memory=True`` (the same counts: 5 logits-sized
  buffers for torch's ``gumbel_softmax`` on both). ``--no-cpu-peak`` skips it (n/a).
- ``saved MiB`` (every device): the distinct storages autograd keeps between forward and
  backward (``saved_tensors_hooks``), the inputs excluded: what an estimator holds while
  the rest of a model runs.

``--classes`` adds the distribution classes of ``pyro_ext.distributions`` (built and
sampled with ``.rsample()`` inside the timed call, ``validate_args=False``), the Concrete
rows (soft samples: ours, ``F.gumbel_softmax(hard=False)``, both ``RelaxedOneHotCategorical``
classes, ours in log space) and ``rsample`` + ``log_prob``; a scored row returns
``sample + log_prob(sample)[..., None]``, so the score's gradient flows too.

``--scaling`` times instead, as ratios to our Gumbel-ST at the same shape in the same run,
REDGE, the ``redge`` package's REDGE, REINDGE and REDGE-cov against the number of
classes ``K`` (logits ``--scaling-bn`` x K) and against ``n_steps`` (logits
``--steps-size``); with ``--out`` it writes the table and a PNG plot beside it.

This script imports torch, ``relaxed_dists`` and ``pyro_ext.estimators`` / ``._ops``
only (Pyro only with ``--classes``); the peers are imported lazily and reported "not
installed" if absent.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("256x81x9", "64x256x64", "32x512x512", "16x1024x4096")
QUICK_SIZES = ("256x81x9", "64x64x64")
ESTIMATORS = ("st", "gumbel", "reinmax", "redge", "redge_cov", "reindge")
CONCRETE = ("concrete", "concrete+log_prob")  # the soft rows of --classes
LARGE = 2**25  # elements: from here on (16x1024x4096 has 2**26) --large-only and --large-repeats apply
#: The rows of --scaling: (estimator, impl); the first is the baseline of the ratios.
SCALING_ROWS = (
    ("gumbel", "ours"),
    ("redge", "ours"),
    ("redge", "redge pkg"),
    ("reindge", "ours"),
    ("redge_cov", "ours"),
)
SHORT_CALL_S = 5e-3  # --scaling flags points whose Gumbel-ST call is shorter than this
SCALING = {"ks": "2,8,64,512,4096", "scaling_bn": "16x128", "steps": "2,3,5,9,17", "steps_size": "64x256x64"}
QUICK_SCALING = {"ks": "2,8,64", "scaling_bn": "8x32", "steps": "2,3,5", "steps_size": "8x32x16"}


def load_kernels():
    """``pyro_ext.estimators``, ``.functional`` and ``._ops`` need torch only, while the
    package's ``__init__`` imports Pyro: without Pyro, load the modules without running it."""
    sys.path.insert(0, str(ROOT))
    if importlib.util.find_spec("pyro") is None and "pyro_ext" not in sys.modules:
        package = types.ModuleType("pyro_ext")
        package.__path__ = [str(ROOT / "pyro_ext")]
        sys.modules["pyro_ext"] = package
    return importlib.import_module("pyro_ext.estimators"), importlib.import_module("pyro_ext._ops")


def ours(args):
    """What users call: ``pyro_ext.functional`` (REDGE takes the fused Triton kernel on CUDA)."""
    load_kernels()
    functional = importlib.import_module("pyro_ext.functional")
    params = dict(tau=args.tau, n_steps=args.n_steps, t_1=args.t_1)
    fns = {name: (lambda lg, f=functional.SAMPLERS[name]: f(lg, **params)) for name in ESTIMATORS}
    return {**fns, "concrete": lambda lg: functional.gumbel_softmax(lg, args.tau, hard=False)}


def ours_eager_redge(args):
    """REDGE's eager kernel (the CPU path), to show what the fused CUDA kernel buys."""
    est, ops = load_kernels()
    n, t_1 = args.n_steps, args.t_1
    return {
        "redge": lambda lg: est.redge(
            lg, n, t_1, torch.randn_like(lg), ops.sample_gumbel(lg.shape, lg.dtype, lg.device)
        )[0]
    }


def peers(args):
    """``impl -> {estimator: fn}`` for the peers, or ``impl -> "not installed"``."""
    params = dict(tau=args.tau, n_steps=args.n_steps, t_1=args.t_1)
    gumbel_softmax = torch.nn.functional.gumbel_softmax
    out = {
        "torch": {
            "gumbel": lambda lg: gumbel_softmax(lg, tau=args.tau, hard=True),
            "concrete": lambda lg: gumbel_softmax(lg, tau=args.tau, hard=False),
        }
    }
    try:
        samplers = importlib.import_module("redge").SAMPLERS
        out["redge pkg"] = {name: (lambda lg, f=samplers[name]: f(lg, **params)) for name in ESTIMATORS}
    except ImportError:
        out["redge pkg"] = "not installed"
    try:
        reinmax = importlib.import_module("reinmax").reinmax
        out["reinmax pkg"] = {"reinmax": lambda lg: reinmax(lg, args.tau)[0]}
    except ImportError:
        out["reinmax pkg"] = "not installed"
    return out


def rsample(make, score=False):
    """``make(logits).rsample()``; with ``score``, plus its ``log_prob`` broadcast over the event."""

    def fn(logits):
        dist = make(logits)
        sample = dist.rsample()
        return sample + dist.log_prob(sample).unsqueeze(-1) if score else sample

    return fn


def classes(args):
    """``impl -> {estimator: fn}`` for the distribution classes (Pyro's needed for ours)."""
    tau, n_steps, t_1, off = args.tau, args.n_steps, args.t_1, dict(validate_args=False)
    torch_concrete = torch.distributions.RelaxedOneHotCategorical
    temperature = torch.tensor(tau, device=args.device)  # torch's log_prob needs a tensor
    out = {
        "torch.distributions": {
            "concrete": rsample(lambda lg: torch_concrete(temperature, logits=lg, **off)),
            "concrete+log_prob": rsample(lambda lg: torch_concrete(temperature, logits=lg, **off), score=True),
        }
    }
    try:
        load_kernels()
        dists = importlib.import_module("pyro_ext.distributions")
    except ImportError:
        return {**out, "class": "not installed"}
    redge_family = dict(redge=dists.REDGE, redge_cov=dists.REDGECov, reindge=dists.REINDGE)
    out["class"] = {
        "st": rsample(lambda lg: dists.StraightThrough(logits=lg, **off)),
        "gumbel": rsample(lambda lg: dists.RelaxedOneHotCategoricalStraightThrough(tau, logits=lg, **off)),
        "reinmax": rsample(lambda lg: dists.ReinMax(tau, logits=lg, **off)),
        **{
            name: rsample(lambda lg, c=c: c(logits=lg, n_steps=n_steps, t_1=t_1, **off))
            for name, c in redge_family.items()
        },
        "concrete": rsample(lambda lg: dists.RelaxedOneHotCategorical(tau, logits=lg, **off)),
        "concrete+log_prob": rsample(lambda lg: dists.RelaxedOneHotCategorical(tau, logits=lg, **off), score=True),
    }
    out["class, log space"] = {
        "concrete": rsample(lambda lg: dists.ExpRelaxedOneHotCategorical(tau, logits=lg, **off)),
        "concrete+log_prob": rsample(lambda lg: dists.ExpRelaxedOneHotCategorical(tau, logits=lg, **off), score=True),
    }
    return out


def implementations(args):
    """``impl -> {estimator: fn}`` (or ``impl -> "not installed"``) for every row this run can time."""
    impls = {"ours": ours(args), **peers(args)}
    if args.device == "cuda":
        impls["ours eager"] = ours_eager_redge(args)
    if args.compile:
        impls["ours+compile"] = {name: torch.compile(fn, fullgraph=True) for name, fn in impls["ours"].items()}
    if args.classes:
        impls.update(classes(args))
    return impls


def row_fns(impls, names):
    """``(estimator, impl) -> fn`` for the given estimators, grouped by estimator."""
    return {
        (name, impl): fns[name]
        for name in names
        for impl, fns in impls.items()
        if not isinstance(fns, str) and name in fns
    }


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def step(fn, logits, weight):
    logits.grad = None
    (fn(logits) * weight).sum().backward()


def inputs(shape, args):
    """``(logits, weight)``: the same seeded draws for every row of a size."""
    generator = torch.Generator(device=args.device).manual_seed(0)
    dtype = getattr(torch, args.dtype)
    logits = torch.randn(shape, generator=generator, device=args.device, dtype=dtype).requires_grad_(True)
    return logits, torch.randn(shape, generator=generator, device=args.device, dtype=dtype)


def median_seconds(fns, logits, weight, args, repeats, cpu=None):
    """``key -> median seconds`` of one call, the calls of all rows interleaved round by round:
    ``repeats`` rounds, more (up to 100 times as many) until ``--min-time`` seconds have passed.
    ``cpu``, a dict, gets ``key -> median process CPU seconds`` of a call (all threads)."""
    for fn in fns.values():
        for _ in range(args.warmup):
            step(fn, logits, weight)
    times = {key: [] for key in fns}
    cpu_times = {key: [] for key in fns}
    start_rounds = time.perf_counter()
    for rounds in range(100 * repeats):
        if rounds >= repeats and time.perf_counter() - start_rounds >= args.min_time:
            break
        for key, fn in fns.items():
            sync(args.device)
            start, start_cpu = time.perf_counter(), time.process_time()
            step(fn, logits, weight)
            sync(args.device)
            times[key].append(time.perf_counter() - start)
            cpu_times[key].append(time.process_time() - start_cpu)
    if cpu is not None:
        cpu.update({key: statistics.median(t) for key, t in cpu_times.items()})
    return {key: statistics.median(t) for key, t in times.items()}


def cpu_peak_mib(fn, logits, weight):
    """Peak of the CPU allocator's running total over one call, from the profiler's memory events."""
    logits.grad = None
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        step(fn, logits, weight)
    with tempfile.NamedTemporaryFile(suffix=".json") as trace:
        prof.export_chrome_trace(trace.name)
        events = [e["args"] for e in json.load(open(trace.name))["traceEvents"] if e.get("name") == "[memory]"]
    totals = [e["Total Allocated"] for e in events if e.get("Device Type") == 0]  # 0: CPU
    before = totals[0] - next(e["Bytes"] for e in events if e.get("Device Type") == 0)
    return (max(totals) - before) / 2**20


def peak_mib(fn, logits, weight, args):
    if args.device != "cuda":
        return cpu_peak_mib(fn, logits, weight) if args.cpu_peak else None
    logits.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step(fn, logits, weight)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def saved_mib(fn, logits):
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn(logits)
    storages.pop(logits.untyped_storage().data_ptr(), None)
    del out
    logits.grad = None
    return sum(storages.values()) / 2**20


def measure(fns, shape, args, repeats):
    """``key -> (seconds, peak MiB, saved MiB, CPU seconds)``, or ``"OOM"`` for a row that ran out of memory."""
    logits, weight = inputs(shape, args)
    cpu = {}
    try:
        seconds = median_seconds(fns, logits, weight, args, repeats, cpu)
    except torch.OutOfMemoryError:  # time the rows one by one to find the culprits
        del logits, weight
        if args.device == "cuda":
            torch.cuda.empty_cache()
        if len(fns) == 1:
            return dict.fromkeys(fns, "OOM")
        results = {}
        for key, fn in fns.items():
            results.update(measure({key: fn}, shape, args, repeats))
        return results
    results = {}
    for key, fn in fns.items():
        # A fresh leaf per row: saved_mib runs no backward, so hooks that the redge package's
        # REINDGE hangs on the logits (removed by its backward) would fire in the next row's.
        row_logits = logits.detach().clone().requires_grad_(True)
        try:
            results[key] = seconds[key], peak_mib(fn, row_logits, weight, args), saved_mib(fn, row_logits), cpu[key]
        except torch.OutOfMemoryError:
            results[key] = "OOM"
        if args.device == "cuda":
            torch.cuda.empty_cache()
    return results


def _fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def _ratio(results, key, index, value):
    """``value`` over entry ``index`` of the row ``key``, if that row was measured."""
    base = results.get(key)
    return value / base[index] if value is not None and base and not isinstance(base, str) and base[index] else None


def table(shape, results, unavailable):
    """Markdown rows for one size; ratios to our Gumbel-ST, to our row of the same estimator
    (a class's overhead over the kernel) and to the redge package's same estimator."""
    rows = [
        f"\n### logits {'x'.join(map(str, shape))}\n",
        "| estimator | impl | ms | x our Gumbel-ST | x ours same | x redge pkg same | peak MiB | x our Gumbel-ST | saved MiB | CPU ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, impl), result in results.items():
        if isinstance(result, str):
            rows.append(f"| {name} | {impl} | {result} | | | | | | | |")
            continue
        seconds, peak, saved, cpu = result
        ratios = [
            _ratio(results, ("gumbel", "ours"), 0, seconds),
            _ratio(results, (name, "ours"), 0, seconds),
            _ratio(results, (name, "redge pkg"), 0, seconds),
        ]
        rows.append(
            f"| {name} | {impl} | {seconds * 1e3:.3f} | {' | '.join(_fmt(r, '.2f') for r in ratios)} "
            f"| {_fmt(peak, '.1f')} | {_fmt(_ratio(results, ('gumbel', 'ours'), 1, peak), '.2f')} | {saved:.1f} "
            f"| {cpu * 1e3:.3f} |"
        )
    rows += [f"| {impl} | not installed | | | | | | | | |" for impl in unavailable]
    return "\n".join(rows)


def sizes_report(args, impls):
    unavailable = [impl for impl, fns in impls.items() if isinstance(fns, str)]
    report = [
        f"n_steps={args.n_steps}, t_1={args.t_1}, tau={args.tau}; median of {args.repeats} interleaved calls or more "
        f"(until {args.min_time} s) after {args.warmup} warm-up calls each."
    ]
    if args.large_only or args.large_repeats:
        report.append(
            f"Sizes of {LARGE} elements or more: {args.large_repeats or args.repeats} calls, "
            f"estimators {','.join(args.large_only or args.names)}."
        )
    for shape in args.shapes:
        large = torch.Size(shape).numel() >= LARGE
        names = [n for n in args.names if n in args.large_only] if large and args.large_only else args.names
        fns = row_fns(impls, names)
        print(f"{'x'.join(map(str, shape))}: {len(fns)} rows", file=sys.stderr, flush=True)
        results = measure(fns, shape, args, (args.large_repeats or args.repeats) if large else args.repeats)
        report.append(table(shape, results, unavailable))
    return report


def scaling_times(args, sweep, points):
    """``[(x, {row: seconds})]`` for ``SCALING_ROWS`` at each ``(x, shape, n_steps)`` point."""
    out = []
    for x, shape, n_steps in points:
        print(f"{sweep} = {x}: logits {'x'.join(map(str, shape))}, n_steps={n_steps}", file=sys.stderr, flush=True)
        fns = row_fns(implementations(argparse.Namespace(**{**vars(args), "n_steps": n_steps})), dict(SCALING_ROWS))
        fns = {key: fns[key] for key in SCALING_ROWS if key in fns}
        out.append((x, median_seconds(fns, *inputs(shape, args), args, args.repeats)))
    return out


def scaling_table(sweep, times):
    keys = [key for key in SCALING_ROWS[1:] if key in times[0][1]]
    base = SCALING_ROWS[0]
    pkg = (("redge", "ours"), ("redge", "redge pkg"))
    rows = [
        f"| {sweep} | Gumbel-ST ms | "
        + " | ".join(f"{name} ({impl}) x Gumbel-ST" for name, impl in keys)
        + (" | redge ours / pkg |" if all(k in keys for k in pkg) else " |"),
        "|---:|---:|" + "---:|" * (len(keys) + all(k in keys for k in pkg)),
    ]
    for x, seconds in times:
        cells = [f"{seconds[key] / seconds[base]:.2f}" for key in keys]
        cells += [f"{seconds[pkg[0]] / seconds[pkg[1]]:.2f}"] if all(k in keys for k in pkg) else []
        rows.append(f"| {x} | {seconds[base] * 1e3:.3f} | " + " | ".join(cells) + " |")
    short = [str(x) for x, seconds in times if seconds[base] < SHORT_CALL_S]
    if short:
        rows.append(
            f"\n{sweep} = {', '.join(short)}: Gumbel-ST calls under {SHORT_CALL_S * 1e3:.0f} ms, so these ratios "
            "measure per-call Python overhead more than arithmetic (and, on a loaded machine, preemption)."
        )
    return "\n".join(rows)


def plot_scaling(sweeps, path):
    """One panel per sweep: time over Gumbel-ST's against K (log scale) and against n_steps (linear)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweeps), figsize=(5.5 * len(sweeps), 4.0), squeeze=False)
    for ax, (sweep, label, times) in zip(axes[0], sweeps):
        for key in SCALING_ROWS:
            if key in times[0][1]:
                ratios = [seconds[key] / seconds[SCALING_ROWS[0]] for _, seconds in times]
                ax.plot([x for x, _ in times], ratios, marker="o", label=f"{key[0]} ({key[1]})")
        ax.set(xlabel=label, ylabel="time / our Gumbel-ST (same run)", yscale="log")
        if sweep == "K":
            ax.set_xscale("log", base=2)
        ax.set_xticks([x for x, _ in times], [str(x) for x, _ in times])
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def scaling_report(args):
    b_n = tuple(int(d) for d in args.scaling_bn.lower().split("x"))
    size = tuple(int(d) for d in args.steps_size.lower().split("x"))
    by_k = scaling_times(args, "K", [(k, b_n + (k,), args.n_steps) for k in map(int, args.ks.split(","))])
    by_steps = scaling_times(args, "n_steps", [(n, size, n) for n in map(int, args.steps.split(","))])
    if args.out:
        plot_scaling(
            [
                ("K", f"K (logits {args.scaling_bn}xK, n_steps={args.n_steps})", by_k),
                ("n_steps", f"n_steps (logits {args.steps_size})", by_steps),
            ],
            args.out.with_suffix(".png"),
        )
    return [
        f"Time over our Gumbel-ST's at the same shape, median of {args.repeats} interleaved calls or more "
        f"(until {args.min_time} s) after {args.warmup} warm-up calls each; t_1={args.t_1}, tau={args.tau}.",
        f"\n### Time vs K (logits {args.scaling_bn}xK, n_steps={args.n_steps})\n",
        scaling_table("K", by_k),
        f"\n### Time vs n_steps (logits {args.steps_size})\n",
        scaling_table("n_steps", by_steps),
    ]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", default=None, help=f"comma-separated BxNxK shapes (default {','.join(SIZES)})")
    parser.add_argument(
        "--quick", action="store_true", help=f"small sizes only ({','.join(QUICK_SIZES)}), fewer repeats"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    parser.add_argument("--n-steps", type=int, default=5)
    parser.add_argument("--t-1", type=float, default=0.5)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 20, quick 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--min-time",
        type=float,
        default=1.0,
        help="seconds of rounds per size at least: cheap sizes get more than --repeats calls (default 1)",
    )
    parser.add_argument("--only", default=None, help="comma-separated estimator names to run")
    parser.add_argument("--large-only", default=None, help=f"estimators to run at sizes of {LARGE} elements or more")
    parser.add_argument("--large-repeats", type=int, default=None, help="timed calls per row at those sizes")
    parser.add_argument(
        "--compile", action="store_true", help="add rows for our kernels under torch.compile (fullgraph)"
    )
    parser.add_argument("--classes", action="store_true", help="add the distribution classes and the Concrete rows")
    parser.add_argument("--scaling", action="store_true", help="time against K and n_steps instead of --sizes")
    what = {
        "ks": "the Ks of the K sweep",
        "scaling_bn": "BxN of the K sweep's logits",
        "steps": "the n_steps of the n_steps sweep",
        "steps_size": "BxNxK of the n_steps sweep's logits",
    }
    for name, default in SCALING.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            default=None,
            help=f"--scaling: {what[name]} (default {default}, quick {QUICK_SCALING[name]})",
        )
    parser.add_argument("--no-cpu-peak", dest="cpu_peak", action="store_false", help="skip the CPU peak (profiler)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 is steadier on a shared machine)"
    )
    parser.add_argument("--cpu", default=None, help="pin the process to these cores (os.sched_setaffinity), e.g. 0")
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",") if args.sizes else QUICK_SIZES if args.quick else SIZES
    args.shapes = [tuple(int(d) for d in size.lower().split("x")) for size in sizes]
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.names = args.only.split(",") if args.only else ESTIMATORS + (CONCRETE if args.classes else ())
    args.large_only = args.large_only.split(",") if args.large_only else None
    for name, default in (QUICK_SCALING if args.quick else SCALING).items():
        setattr(args, name, getattr(args, name) or default)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.cpu and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.cpu.split(",")})
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    title = "Scaling with K and n_steps" if args.scaling else "Estimators"
    report = [
        f"## {title}, forward + backward ({device_name}, torch {torch.__version__}, {args.dtype})\n",
        f"Command: `python benchmarks/bench_estimators_torch.py {shlex.join(sys.argv[1:] if argv is None else argv)}`\n",
    ]
    report += scaling_report(args) if args.scaling else sizes_report(args, implementations(args))
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
