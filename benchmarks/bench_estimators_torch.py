"""Forward + backward time and memory of the torch estimators against
``torch.nn.functional.gumbel_softmax(hard=True)``, the authors' ``redge`` package and the
``reinmax`` package, in one run; prints (and with ``--out`` writes) a markdown table.

    python benchmarks/bench_estimators_torch.py --device cpu --quick
    python benchmarks/bench_estimators_torch.py --device cuda --out results.md

Each call draws its own noise inside the timed region (as the peers do) and runs
``(sample * weight).sum().backward()``. Time: median over ``--repeats`` after
``--warmup`` calls, with ``torch.cuda.synchronize`` around each on CUDA. Memory:

- ``peak MiB``: the most memory allocated at once during one call, minus what was
  allocated before it (the inputs ``logits`` and ``weight``); it includes ``logits.grad``.
  CUDA: ``torch.cuda.max_memory_allocated``. CPU: the allocator's running total that
  ``torch.profiler`` records with ``profile_memory=True`` (the same counts: 5 logits-sized
  buffers for torch's ``gumbel_softmax`` on both). ``--no-cpu-peak`` skips it (n/a).
- ``saved MiB`` (every device): the distinct storages autograd keeps between forward and
  backward (``saved_tensors_hooks``), the inputs excluded: what an estimator holds while
  the rest of a model runs.

This script imports torch, ``relaxed_dists`` and ``pyro_ext.estimators`` / ``._ops``
only (never Pyro); the peers are imported lazily and reported "not installed" if absent.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import statistics
import tempfile
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SIZES = ("256x81x9", "64x256x64", "32x512x512", "16x1024x4096")
QUICK_SIZES = ("256x81x9", "64x64x64")
ESTIMATORS = ("st", "gumbel", "reinmax", "redge", "redge_cov", "reindge")


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
    return {name: (lambda lg, f=functional.SAMPLERS[name]: f(lg, **params)) for name in ESTIMATORS}


def ours_eager_redge(args):
    """REDGE's eager kernel (the CPU path), to show what the fused CUDA kernel buys."""
    est, ops = load_kernels()
    n, t_1 = args.n_steps, args.t_1
    return {"redge": lambda lg: est.redge(lg, n, t_1, torch.randn_like(lg), ops.sample_gumbel(lg.shape, lg.dtype, lg.device))[0]}


def peers(args):
    """``impl -> {estimator: fn}`` for the peers, or ``impl -> "not installed"``."""
    params = dict(tau=args.tau, n_steps=args.n_steps, t_1=args.t_1)
    out = {"torch": {"gumbel": lambda lg: torch.nn.functional.gumbel_softmax(lg, tau=args.tau, hard=True)}}
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


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def step(fn, logits, weight):
    logits.grad = None
    (fn(logits) * weight).sum().backward()


def median_seconds(fn, logits, weight, args):
    for _ in range(args.warmup):
        step(fn, logits, weight)
    times = []
    for _ in range(args.repeats):
        sync(args.device)
        start = time.perf_counter()
        step(fn, logits, weight)
        sync(args.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def measure(fn, shape, args):
    generator = torch.Generator(device=args.device).manual_seed(0)
    dtype = getattr(torch, args.dtype)
    logits = torch.randn(shape, generator=generator, device=args.device, dtype=dtype).requires_grad_(True)
    weight = torch.randn(shape, generator=generator, device=args.device, dtype=dtype)
    try:
        seconds = median_seconds(fn, logits, weight, args)
        return seconds, peak_mib(fn, logits, weight, args), saved_mib(fn, logits)
    except torch.OutOfMemoryError:
        return "OOM"
    finally:
        del logits, weight
        if args.device == "cuda":
            torch.cuda.empty_cache()


def _fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def table(shape, results, unavailable):
    """Markdown rows for one size; ratios to our Gumbel-ST and to the redge package's same estimator."""
    base = results.get(("gumbel", "ours"))
    rows = [
        f"\n### logits {'x'.join(map(str, shape))}\n",
        "| estimator | impl | ms | x our Gumbel-ST | x redge pkg same | peak MiB | x our Gumbel-ST | saved MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, impl), result in results.items():
        if isinstance(result, str):
            rows.append(f"| {name} | {impl} | {result} | | | | | |")
            continue
        seconds, peak, saved = result
        ok_base = base if not isinstance(base, str) else None
        pkg = results.get((name, "redge pkg"))
        pkg = pkg if pkg is not None and not isinstance(pkg, str) else None
        time_base = seconds / ok_base[0] if ok_base else None
        time_pkg = seconds / pkg[0] if pkg else None
        peak_base = peak / ok_base[1] if ok_base and peak is not None and ok_base[1] else None
        rows.append(
            f"| {name} | {impl} | {seconds * 1e3:.3f} | {_fmt(time_base, '.2f')} | {_fmt(time_pkg, '.2f')} "
            f"| {_fmt(peak, '.1f')} | {_fmt(peak_base, '.2f')} | {saved:.1f} |"
        )
    rows += [f"| {impl} | not installed | | | | | | |" for impl in unavailable]
    return "\n".join(rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", default=None, help=f"comma-separated BxNxK shapes (default {','.join(SIZES)})")
    parser.add_argument("--quick", action="store_true", help=f"small sizes only ({','.join(QUICK_SIZES)}), fewer repeats")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    parser.add_argument("--n-steps", type=int, default=5)
    parser.add_argument("--t-1", type=float, default=0.5)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 20, quick 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--only", default=None, help="comma-separated estimator names to run")
    parser.add_argument("--compile", action="store_true", help="add rows for our kernels under torch.compile (fullgraph)")
    parser.add_argument("--no-cpu-peak", dest="cpu_peak", action="store_false", help="skip the CPU peak (profiler)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is steadier on a shared machine)")
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",") if args.sizes else QUICK_SIZES if args.quick else SIZES
    args.shapes = [tuple(int(d) for d in size.lower().split("x")) for size in sizes]
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.names = args.only.split(",") if args.only else ESTIMATORS
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    impls = {"ours": ours(args), **peers(args)}
    if args.device == "cuda":
        impls["ours eager"] = ours_eager_redge(args)
    if args.compile:
        impls["ours+compile"] = {name: torch.compile(fn, fullgraph=True) for name, fn in impls["ours"].items()}
    unavailable = [impl for impl, fns in impls.items() if isinstance(fns, str)]
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    report = [
        f"## Estimators, forward + backward ({device_name}, torch {torch.__version__}, {args.dtype})\n",
        f"n_steps={args.n_steps}, t_1={args.t_1}, tau={args.tau}; median of {args.repeats} after {args.warmup} warm-up calls.",
    ]
    for shape in args.shapes:
        results = {}
        for name in args.names:
            for impl, fns in impls.items():
                if not isinstance(fns, str) and name in fns:
                    print(f"{'x'.join(map(str, shape))} {name} {impl}", file=sys.stderr, flush=True)
                    results[(name, impl)] = measure(fns[name], shape, args)
        report.append(table(shape, results, unavailable))
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
