"""Time rsample + log_prob, forward and backward, of our Concrete classes against
``torch.distributions.RelaxedOneHotCategorical`` and ``torch.nn.functional.gumbel_softmax``.

All rows are timed in one run and reported as ratios to torch's class, so machine speed
cancels. Writes a markdown table (``--out``).

    python benchmarks/bench_concrete.py --quick
    python benchmarks/bench_concrete.py --out benchmarks/results/concrete_cpu.md
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import pyro_ext


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cases(logits: torch.Tensor, temperature: float):
    def dist_step(cls):
        def step():
            lg = logits.detach().requires_grad_()
            d = cls(torch.tensor(temperature), logits=lg, validate_args=False)
            x = d.rsample()
            (d.log_prob(x).sum() + x.sum()).backward()

        return step

    def gumbel_softmax_step(hard):
        def step():
            lg = logits.detach().requires_grad_()
            x = F.gumbel_softmax(lg, tau=temperature, hard=hard)
            (x * torch.arange(x.shape[-1], dtype=x.dtype)).sum().backward()

        return step

    return {
        "torch.distributions.RelaxedOneHotCategorical": dist_step(torch.distributions.RelaxedOneHotCategorical),
        "pyro_ext.RelaxedOneHotCategorical": dist_step(pyro_ext.RelaxedOneHotCategorical),
        "pyro_ext.ExpRelaxedOneHotCategorical": dist_step(pyro_ext.ExpRelaxedOneHotCategorical),
        "pyro_ext.RelaxedOneHotCategoricalStraightThrough": dist_step(pyro_ext.RelaxedOneHotCategoricalStraightThrough),
        "F.gumbel_softmax(hard=False) (no log_prob)": gumbel_softmax_step(False),
        "F.gumbel_softmax(hard=True) (no log_prob)": gumbel_softmax_step(True),
    }


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small size, few repeats (for the tests)")
    parser.add_argument("--out", help="write the markdown table here")
    parser.add_argument("--temperature", type=float, default=0.5)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    sizes = [(64, 10)] if args.quick else [(1024, 10), (256, 1000), (4096, 100)]
    repeats = 3 if args.quick else 20
    lines = [
        f"rsample + log_prob forward+backward, CPU, {torch.get_num_threads()} threads, temperature {args.temperature}, "
        f"median of {repeats}; ratio = time / torch.distributions.RelaxedOneHotCategorical",
        "",
        "| batch x K | implementation | ms | ratio |",
        "| --- | --- | ---: | ---: |",
    ]
    for batch, k in sizes:
        logits = torch.randn(batch, k)
        timings = {name: _time(fn, repeats) for name, fn in _cases(logits, args.temperature).items()}
        base = timings["torch.distributions.RelaxedOneHotCategorical"]
        for name, t in timings.items():
            lines.append(f"| {batch}x{k} | {name} | {1e3 * t:.3f} | {t / base:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(table + "\n")
    return table


if __name__ == "__main__":
    main()
