r"""The law of the REDGE family's hard samples against the nominal ``Cat(softmax(logits))``.

    python benchmarks/sample_law.py --threads 1                    # results/sample_law.md, ~2 min
    python benchmarks/sample_law.py --quick --out /tmp/law.md

REDGE, REDGE-cov and REINDGE draw ``h ~ Cat(x0_hat)`` with ``x0_hat`` the chain's last denoiser
output, so the law of ``h`` is ``E_eps[x0_hat]``: its mean over ``N`` noise draws is an unbiased
estimate with far less variance than counting one-hots (each draw contributes a probability
vector, not an indicator). The table gives, for each ``(n_steps, t_1)``, the largest total
variation distance ``TV(E[x0_hat], softmax(logits))`` over the problems below, and its standard
error (from ``B`` independent batches of draws). REINDGE's forward pass is REDGE's chain, so its
law is REDGE's (checked: the same noise gives the same samples).

Problems: ``K in {2, 4, 10, 100}``, logits ``~ N(0, s^2)`` with ``s in {0.5, 1, 2, 4}``, four logit
vectors each (seed 0). This table is the one that ``relaxed_dists.sample_law.TV_BOUNDS`` holds
(rounded up), from which the classes warn (:class:`relaxed_dists.sample_law.SampleLawWarning`)
when the worst case exceeds ``relaxed_dists.sample_law.WARN_TV``.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from pyro_ext import estimators

ROOT = Path(__file__).resolve().parents[1]
EVENT_SIZES = (2, 4, 10, 100)
SCALES = (0.5, 1.0, 2.0, 4.0)
N_STEPS = (2, 3, 5, 9, 17)
T_1S = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
KERNELS = {"redge": estimators.redge, "redge_cov": estimators.redge_cov}


def law_tv(kernel, logits, n_steps, t_1, n_draws, n_batches):
    """``(tv, se)`` per row of ``logits`` ``(R, K)``: TV of ``E[x0_hat]`` from ``softmax(logits)``."""
    means = []
    for _ in range(n_batches):
        shape = (n_draws,) + logits.shape
        _, soft = kernel(
            logits.expand(shape),
            n_steps,
            t_1,
            torch.randn(shape, dtype=logits.dtype),
            torch.zeros(shape, dtype=logits.dtype),
        )
        means.append(soft.mean(0))
    means = torch.stack(means)  # (B, R, K)
    probs = torch.softmax(logits, -1)
    tv = 0.5 * (means.mean(0) - probs).abs().sum(-1)
    tv_batches = 0.5 * (means - probs).abs().sum(-1)
    return tv, tv_batches.std(0) / n_batches**0.5


def measure(n_draws: int, n_batches: int, n_steps_grid, t_1_grid, kernels) -> dict:
    gen = torch.Generator().manual_seed(0)
    problems = [(k, s, s * torch.randn(4, k, generator=gen, dtype=torch.float64)) for k in EVENT_SIZES for s in SCALES]
    torch.manual_seed(0)
    table = {}
    with torch.no_grad():
        for name, n_steps, t_1 in itertools.product(kernels, n_steps_grid, t_1_grid):
            worst = (-1.0, 0.0, None)
            for k, s, logits in problems:
                tv, se = law_tv(KERNELS[name], logits, n_steps, t_1, n_draws, n_batches)
                i = int(tv.argmax())
                if float(tv[i]) > worst[0]:
                    worst = (float(tv[i]), float(se[i]), (k, s))
            table[name, n_steps, t_1] = worst
    return table


def markdown(table: dict, n_draws: int, n_batches: int) -> str:
    lines = [
        f"Largest TV(E[x0_hat], softmax(logits)) over {len(EVENT_SIZES) * len(SCALES) * 4} logit vectors "
        f"(K in {EVENT_SIZES}, scale in {SCALES}); {n_batches} x {n_draws} draws; +- its standard error; "
        "[K, scale] of the worst problem.",
        "",
    ]
    names = sorted({key[0] for key in table})
    n_steps_grid = sorted({key[1] for key in table})
    t_1_grid = sorted({key[2] for key in table})
    for name in names:
        lines += [
            f"### {name}",
            "",
            "| t_1 | " + " | ".join(f"n_steps={n}" for n in n_steps_grid) + " |",
            "| ---: |" + " ---: |" * len(n_steps_grid),
        ]
        for t_1 in t_1_grid:
            cells = []
            for n in n_steps_grid:
                tv, se, (k, s) = table[name, n, t_1]
                cells.append(f"{tv:.4f} +- {se:.4f} [{k}, {s:g}]")
            lines.append(f"| {t_1:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a small grid and few draws (seconds)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sample_law.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        table = measure(256, 2, (2, 5), (0.3, 1.0), ("redge",))
        text = markdown(table, 256, 2)
    else:
        table = measure(args.draws, args.batches, N_STEPS, T_1S, tuple(KERNELS))
        text = markdown(table, args.draws, args.batches)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return text


if __name__ == "__main__":
    main()
