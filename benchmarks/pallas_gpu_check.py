"""GPU check of the fused Pallas REDGE path (``numpyro_ext._pallas``): agreement, then time and memory.

One short script for a lent GPU (written and run on CPU in interpret mode only; the GPU
figures are open until someone runs it there):

1. agreement: on identical float32 noise, Pallas ``(hard, soft)`` and the gradient of
   ``sum(w * (hard + soft - stop_gradient(soft)))`` against the XLA kernel
   ``numpyro_ext.estimators.redge`` at a few small shapes (max abs differences, hard mismatches);
2. timing: jitted forward + backward at ``--size`` (default 16x1024x4096, ``n_steps`` 5, float32)
   of the textbook Gumbel-ST baseline, the XLA REDGE kernel and the Pallas one, on pre-drawn
   noise, interleaved run by run, median of ``--repeats``; peak memory as the compiled
   executable's ``memory_analysis()`` (arguments + outputs + temporaries), where the backend has it.

    PYTHONPATH=. python benchmarks/pallas_gpu_check.py                     # on a GPU
    PYTHONPATH=. python benchmarks/pallas_gpu_check.py --size 4x8x9 --repeats 2   # CPU: interpret mode
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ext import _ops, _pallas, estimators


def gumbel_st(logits, n_steps, t_1, eps, gumbels):
    """Baseline: straight-through Gumbel-Softmax at temperature 1 (``n_steps``, ``t_1``, ``eps`` unused)."""
    soft = jax.nn.softmax(logits + gumbels, axis=-1)
    return _ops.straight_through(_ops.one_hot_argmax(logits + gumbels), soft), soft


def pallas_redge(logits, n_steps, t_1, eps, gumbels):
    hard, soft = _pallas.redge_hard_soft(logits, n_steps, t_1, eps, gumbels)
    return _ops.straight_through(hard, soft), soft


KERNELS = {"gumbel_st": gumbel_st, "redge_xla": estimators.redge, "redge_pallas": pallas_redge}


def forward_and_grad(kernel, n_steps, t_1):
    """Jitted ``(hard, d sum(w * hard) / d logits)``."""

    def run(logits, eps, gumbels, w):
        hard, pullback = jax.vjp(lambda lg: kernel(lg, n_steps, t_1, eps, gumbels)[0], logits)
        return hard, pullback(w)[0]

    return jax.jit(run)


def inputs(shape, seed):
    keys = jax.random.split(jax.random.PRNGKey(seed), 4)
    logits = 3.0 * jax.random.normal(keys[0], shape)
    eps = jax.random.normal(keys[1], shape)
    gumbels = jax.random.gumbel(keys[2], shape)
    return logits, eps, gumbels, jax.random.normal(keys[3], shape)


def agreement(n_steps, t_1):
    print("| shape | n_steps | t_1 | hard mismatches | max |soft| diff | max |grad| diff |\n|---|---|---|---|---|---|")
    for shape in [(3, 5), (2, 7, 9), (33, 64), (8, 1000), (4, 4096)]:
        args = inputs(shape, seed=sum(shape))
        soft_of = lambda k: jax.jit(lambda *a: k(a[0], n_steps, t_1, *a[1:3])[1])(*args)
        (hard_p, grad_p), (hard_x, grad_x) = (
            forward_and_grad(k, n_steps, t_1)(*args) for k in (pallas_redge, estimators.redge)
        )
        soft_diff = float(jnp.max(jnp.abs(soft_of(pallas_redge) - soft_of(estimators.redge))))
        print(
            f"| {shape} | {n_steps} | {t_1} | {int(jnp.sum(hard_p != hard_x))} | {soft_diff:.1e} "
            f"| {float(jnp.max(jnp.abs(grad_p - grad_x))):.1e} |"
        )


def timing(shape, n_steps, t_1, repeats):
    args = inputs(shape, seed=0)
    compiled, rows = {}, {}
    for name, kernel in KERNELS.items():
        start = time.perf_counter()
        compiled[name] = forward_and_grad(kernel, n_steps, t_1).lower(*args).compile()
        jax.block_until_ready(compiled[name](*args))
        memory = compiled[name].memory_analysis()
        peak = (
            None
            if memory is None
            else (memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes)
        )
        rows[name] = {"compile_s": time.perf_counter() - start, "times": [], "peak": peak}
    for _ in range(repeats):  # interleaved: a change in load hits every row alike
        for name, fn in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            rows[name]["times"].append(time.perf_counter() - start)
    base = statistics.median(rows["gumbel_st"]["times"])
    print(
        f"\n{jax.devices()[0].device_kind}, {'x'.join(map(str, shape))}, n_steps {n_steps}, t_1 {t_1}, float32, "
        f"forward + backward, median of {repeats}\n"
    )
    print("| kernel | compile s | run ms | x gumbel_st | peak MiB (memory_analysis) |\n|---|---|---|---|---|")
    for name, row in rows.items():
        median = statistics.median(row["times"])
        peak = "n/a" if row["peak"] is None else f"{row['peak'] / 2**20:.0f}"
        print(f"| {name} | {row['compile_s']:.2f} | {1e3 * median:.3f} | {median / base:.2f} | {peak} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="16x1024x4096")
    parser.add_argument("--n-steps", type=int, default=5)
    parser.add_argument("--t-1", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(
        f"backend {jax.default_backend()}, pallas_available: "
        f"{_pallas.pallas_available(jnp.zeros((1, 4)), args.t_1)} (False: interpret mode)\n"
    )
    agreement(args.n_steps, args.t_1)
    timing(tuple(int(s) for s in args.size.split("x")), args.n_steps, args.t_1, args.repeats)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
