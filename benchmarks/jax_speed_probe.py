"""The measurements behind ``benchmarks/results/jax_speed_diagnosis.md``: JAX kernel variants
on XLA CPU, jitted forward + backward (or forward only for the one-hot and the noise), timed
interleaved in one process, with the compiled executable's ``cost_analysis()`` (flops, bytes
accessed), ``memory_analysis()`` (scratch) and what its HLO holds (``while`` loops, fusions).

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 PYTHONPATH=. \\
        python benchmarks/jax_speed_probe.py --section one_hot,noise,redge

Variants are written here, beside the library's own (``numpyro_ext``), so one run compares
them on the same machine state: ``argmax`` + ``one_hot`` against :func:`numpyro_ext._ops.one_hot_argmax`;
Gumbel noise by the exponential route against ``-log(-log U)``; REDGE on an array ``t_1``
(the general, doubly checkpointed scan) against a float ``t_1`` (the hand-written VJP),
its chain unrolled or a :func:`lax.scan` (``numpyro_ext.estimators._UNROLL_MAX_STEPS``);
``--section blocks``: REDGE's row-block size (``numpyro_ext.estimators.REDGE_BLOCK_ENTRIES``);
``--section hash``: noise from ``jax.random`` (one hash per 32-bit draw, its two words XORed)
against :mod:`numpyro_ext._ops`' draws from both words of each hash; ``--section keyed``: the
REDGE sampler drawing its noise whole against drawing it inside the row blocks
(``numpyro_ext._keyed``), beside the Gumbel-ST sampler.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

from numpyro_ext import _keyed, _ops, estimators as E, functional as F
from relaxed_dists.clamping import exponential_bounds


def hlo_facts(compiled) -> str:
    text = compiled.as_text()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    temp = compiled.memory_analysis().temp_size_in_bytes
    return (
        f"temp {temp / 2**20:7.1f} MiB  moved {cost.get('bytes accessed', 0) / 1e9:6.2f} GB  "
        f"flops {cost.get('flops', 0) / 1e9:6.2f} G  while {text.count(' while(')}  fusions {text.count(' fusion(')}"
    )


def run(fns: dict, args_of: dict, repeats: int, min_time: float) -> None:
    """Compile every variant (a function, or an already compiled one), then time them
    interleaved; print one line each."""
    compiled = {
        name: fn if hasattr(fn, "as_text") else jax.jit(fn).lower(*args_of[name]).compile() for name, fn in fns.items()
    }
    for name, c in compiled.items():
        jax.block_until_ready(c(*args_of[name]))
    wall, cpu = ({name: [] for name in fns} for _ in range(2))
    start_rounds = time.perf_counter()
    for rounds in range(100 * repeats):
        if rounds >= repeats and time.perf_counter() - start_rounds >= min_time:
            break
        for name, c in compiled.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(c(*args_of[name]))
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    for name, c in compiled.items():
        print(
            f"  {name:34s} {statistics.median(wall[name]) * 1e3:8.2f} ms  CPU {statistics.median(cpu[name]) * 1e3:8.2f} ms  "
            f"{hlo_facts(c)}",
            flush=True,
        )


def argmax_one_hot(scores):
    return jax.nn.one_hot(jnp.argmax(scores, axis=-1), scores.shape[-1], dtype=scores.dtype)


def reduction_one_hot(scores):  # numpyro_ext._ops.one_hot_argmax without its K threshold
    top = jnp.max(scores, axis=-1, keepdims=True)
    hit = (scores == top) | jnp.isnan(scores)
    index = lax.broadcasted_iota(jnp.int32, scores.shape, scores.ndim - 1)
    first = jnp.min(jnp.where(hit, index, scores.shape[-1]), axis=-1, keepdims=True)
    return (index == first).astype(scores.dtype)


def gumbel_exponential(key, shape, dtype):  # the former numpyro_ext._ops.sample_gumbel
    finfo = jnp.finfo(dtype)
    lo, hi = exponential_bounds(float(finfo.tiny), float(finfo.eps))
    return -jnp.log(jnp.clip(jax.random.exponential(key, shape, dtype=dtype), lo, hi))


def gumbel_inversion(key, shape, dtype):
    return _ops.gumbel_from_uniform(_ops.sample_uniform(key, shape, dtype))


def section_one_hot(opts):
    for k in (9, 16, 64, 512):
        shape = (2**21 // k, k)
        scores = jax.random.normal(jax.random.PRNGKey(0), shape, jnp.float32)
        print(f"one-hot, forward, {shape[0]}x{k}:")
        fns = {"argmax + one_hot": argmax_one_hot, "max + first index": reduction_one_hot}
        run(fns, dict.fromkeys(fns, (scores,)), opts.repeats, opts.min_time)


def _gs_grad(gumbel, one_hot):
    def loss(logits, key, w):
        g = gumbel(key, logits.shape, logits.dtype)
        soft = jax.nn.softmax(logits + g, axis=-1)
        hard = one_hot(logits + g)
        h = hard + (soft - lax.stop_gradient(soft))
        return jnp.sum(w * h), h

    return jax.grad(loss, has_aux=True)


def section_noise(opts):
    for size in opts.sizes.split(","):
        shape = tuple(int(d) for d in size.split("x"))
        key, logits, w = (
            jax.random.PRNGKey(1),
            jax.random.normal(jax.random.PRNGKey(2), shape),
            jax.random.normal(jax.random.PRNGKey(3), shape),
        )
        print(f"noise, {size}:")
        fns = {
            "draw: exponential route": lambda key: gumbel_exponential(key, shape, jnp.float32),
            "draw: -log(-log U)": lambda key: gumbel_inversion(key, shape, jnp.float32),
            "draw: normal (REDGE's eps)": lambda key: jax.random.normal(key, shape, jnp.float32),
            "GS+grad: exp route, argmax": _gs_grad(gumbel_exponential, argmax_one_hot),
            "GS+grad: exp route, reductions": _gs_grad(gumbel_exponential, reduction_one_hot),
            "GS+grad: -log(-log U), argmax": _gs_grad(gumbel_inversion, argmax_one_hot),
            "GS+grad: -log(-log U), reductions": _gs_grad(gumbel_inversion, reduction_one_hot),
        }
        args = {name: ((key,) if name.startswith("draw") else (logits, key, w)) for name in fns}
        run(fns, args, opts.repeats, opts.min_time)


def _redge_inputs(size: str, seed: int):
    """``(logits, w, eps, gumbels)`` for the REDGE sections: float32 draws of ``BxNxK``."""
    shape = tuple(int(d) for d in size.split("x"))
    ks = jax.random.split(jax.random.PRNGKey(seed), 4)
    logits, w, eps = (jax.random.normal(k, shape) for k in ks[:3])
    return logits, w, eps, gumbel_inversion(ks[3], shape, jnp.float32)


def _grad_of(hard):
    """``(logits, w) -> (grad of sum(w * hard(logits)), hard(logits))``."""
    return jax.grad(lambda lg, w: (jnp.sum(w * (h := hard(lg))), h), has_aux=True)


def section_redge(opts):
    default = E._UNROLL_MAX_STEPS
    for size in opts.sizes.split(","):
        logits, w, eps, gumbels = _redge_inputs(size, 4)
        for n in opts.n_steps.split(","):
            n = int(n)
            print(f"REDGE kernels, {size}, n_steps {n}:")
            fns = {
                "gumbel_softmax kernel": _grad_of(lambda lg: E.gumbel_softmax(lg, 1.0, gumbels)[0]),
                "redge, array t_1 (general)": _grad_of(lambda lg: E.redge(lg, n, jnp.asarray(0.5), eps, gumbels)[0]),
            }
            for name, unroll_max in (("unrolled chain", 99), ("scan chain", 0)):
                E._UNROLL_MAX_STEPS = unroll_max  # read at trace time: compile now, then restore
                try:
                    fns[f"redge, float t_1, {name}"] = (
                        jax.jit(_grad_of(lambda lg: E.redge(lg, n, 0.5, eps, gumbels)[0])).lower(logits, w).compile()
                    )
                finally:
                    E._UNROLL_MAX_STEPS = default
            run(fns, dict.fromkeys(fns, (logits, w)), opts.repeats, opts.min_time)
        print(f"end to end (functional, noise drawn), {size}, n_steps 5:")
        e2e = {
            "F.gumbel": lambda lg, w, key: _grad_of(lambda l: F.gumbel_softmax(key, l, 1.0))(lg, w),
            "F.redge": lambda lg, w, key: _grad_of(lambda l: F.redge(key, l, 5, 0.5))(lg, w),
        }
        run(e2e, dict.fromkeys(e2e, (logits, w, jax.random.PRNGKey(5))), opts.repeats, opts.min_time)


def section_blocks(opts):
    """REDGE's row-block size (``numpyro_ext.estimators.REDGE_BLOCK_ENTRIES``), n_steps 5, float
    ``t_1``: forward + backward on pre-drawn noise for several block sizes and none (one block),
    beside the Gumbel-ST kernel, at each size."""
    default = E.REDGE_BLOCK_ENTRIES
    for size in opts.sizes.split(","):
        logits, w, eps, gumbels = _redge_inputs(size, 6)
        print(f"REDGE row blocks, {size}, n_steps 5:")
        fns = {"gumbel_softmax kernel": _grad_of(lambda lg: E.gumbel_softmax(lg, 1.0, gumbels)[0])}
        for log2 in (12, 14, 16, 18, 20, None):
            E.REDGE_BLOCK_ENTRIES = 2**62 if log2 is None else 2**log2  # read at trace time
            try:
                name = "redge, one block" if log2 is None else f"redge, blocks of 2**{log2}"
                fns[name] = (
                    jax.jit(_grad_of(lambda lg: E.redge(lg, 5, 0.5, eps, gumbels)[0])).lower(logits, w).compile()
                )
            finally:
                E.REDGE_BLOCK_ENTRIES = default
        run(fns, dict.fromkeys(fns, (logits, w)), opts.repeats, opts.min_time)


def _jax_random_uniform(key, shape, dtype):  # numpyro_ext._ops.sample_uniform before issue 14's paired hashes
    return _ops.clamp_uniform(jax.random.uniform(key, shape, dtype=dtype))


def _two_draws(key, shape, dtype):  # REDGE's noise before issue 14: jax.random.normal and a uniform, two keys
    key_normal, key_uniform = jax.random.split(key)
    return jax.random.normal(key_normal, shape, dtype), _jax_random_uniform(key_uniform, shape, dtype)


def section_hash(opts):
    """The draws alone (forward), then inside a Gumbel-ST and a REDGE sampler (forward + backward)."""
    for size in opts.sizes.split(","):
        shape = tuple(int(d) for d in size.split("x"))
        logits, w, _, _ = _redge_inputs(size, 7)
        key = jax.random.PRNGKey(3)
        print(f"noise from threefry, {size}:")
        fns = {
            "uniform, jax.random": lambda key: _jax_random_uniform(key, shape, jnp.float32),
            "uniform, both words (halves)": lambda key: _ops.sample_uniform(key, shape, jnp.float32),
            "normal + uniform, jax.random": lambda key: _two_draws(key, shape, jnp.float32),
            "normal + uniform, one hash": lambda key: _ops.sample_normal_and_uniform(key, shape, jnp.float32),
        }
        run(fns, dict.fromkeys(fns, (key,)), opts.repeats, opts.min_time)
        print(f"samplers with their noise, {size}, n_steps 5:")

        def gs(uniform):
            return lambda lg, w, key: _grad_of(
                lambda l: E.gumbel_softmax(l, 1.0, _ops.gumbel_from_uniform(uniform(key, shape, jnp.float32)))[0]
            )(lg, w)

        def redge(noise):
            def f(lg, w, key):
                eps, u = noise(key, shape, jnp.float32)
                return _grad_of(lambda l: E.redge(l, 5, 0.5, eps, _ops.gumbel_from_uniform(u))[0])(lg, w)

            return f

        fns = {
            "Gumbel-ST, jax.random": gs(_jax_random_uniform),
            "Gumbel-ST, both words": gs(_ops.sample_uniform),
            "REDGE, jax.random": redge(_two_draws),
            "REDGE, one hash": redge(_ops.sample_normal_and_uniform),
        }
        run(fns, dict.fromkeys(fns, (logits, w, key)), opts.repeats, opts.min_time)


def section_keyed(opts):
    """REDGE's sampler, n_steps 5, float ``t_1``, forward + backward: the noise drawn whole
    (``sample_normal_and_uniform``, then the kernel) against drawn inside the row blocks
    (``numpyro_ext._keyed``), the same values; beside the Gumbel-ST sampler."""
    for size in opts.sizes.split(","):
        shape = tuple(int(d) for d in size.split("x"))
        logits, w, _, _ = _redge_inputs(size, 8)
        print(f"REDGE sampler, noise whole or in the blocks, {size}, n_steps 5:")

        def whole(lg, key):
            eps, u = _ops.sample_normal_and_uniform(key, shape, jnp.float32)
            return E.redge(lg, 5, 0.5, eps, _ops.gumbel_from_uniform(u))[0]

        fns = {
            "Gumbel-ST sampler": lambda lg, w, key: _grad_of(lambda l: F.gumbel_softmax(key, l, 1.0))(lg, w),
            "REDGE, noise whole": lambda lg, w, key: _grad_of(lambda l: whole(l, key))(lg, w),
            "REDGE, noise in the blocks": lambda lg, w, key: _grad_of(lambda l: _keyed.redge(l, 5, 0.5, key, shape)[0])(
                lg, w
            ),
        }
        run(fns, dict.fromkeys(fns, (logits, w, jax.random.PRNGKey(5))), opts.repeats, opts.min_time)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", default="one_hot,noise,redge")
    parser.add_argument("--sizes", default="64x256x64,32x512x512")
    parser.add_argument("--n-steps", default="5,9")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=1.0)
    opts = parser.parse_args(argv)
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}; argv {sys.argv[1:]}")
    for section in opts.section.split(","):
        globals()[f"section_{section}"](opts)


if __name__ == "__main__":
    main()
