"""NumPyro under ``jax.sharding`` on 4 (forced host) devices: our distributions pass through a
sharded ``jit`` and through ``shard_map`` as pytrees, and data-parallel SVI with ``relax``
equals the single-device run.

XLA fixes its device count when JAX starts, so both checks run in fresh interpreters with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``: this file runs itself (``__main__``
below) for the distribution checks, and ``examples/vae_numpyro_sharded.py --check --quick``
for SVI.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_DEVICES = 4
# float32, the same operations up to the order of the cross-device sums: a few ulps.
TOL = 1e-5


def _env() -> dict:
    flags = os.environ.get("XLA_FLAGS", "")  # under xdist: one thread per XLA device (conftest)
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        JAX_PLATFORMS="cpu",
        OMP_NUM_THREADS="1",
        XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={N_DEVICES}".strip(),
    )


def test_distributions_pass_through_sharded_jit_and_shard_map():
    done = subprocess.run(
        [sys.executable, "-W", "error", __file__], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(figures) == 17, figures  # every distribution class below, and the row-block paths
    for name, worst in figures.items():
        assert worst <= TOL, (name, worst)


def test_sharded_svi_equals_single_device(tmp_path):
    command = [
        sys.executable,
        "-W",
        "error",
        str(ROOT / "examples" / "vae_numpyro_sharded.py"),
        "--check",
        "--quick",
        "--devices",
        str(N_DEVICES),
        "--out-dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "vae_numpyro_sharded_check.json").read_text())
    assert result["devices"] == N_DEVICES and result["steps"] == 20
    assert result["loss_rel_diff"] <= TOL and result["param_rel_diff"] <= TOL, result
    assert result["loss_first"] - result["loss_last"] > 10  # SGD moved: the equality is not trivial
    bytes_per_device = {int(k): v for k, v in result["data_bytes_per_device"].items()}
    assert bytes_per_device[N_DEVICES] * N_DEVICES == bytes_per_device[1]  # the data is split, not copied


def _check_all() -> dict:
    """For every class: the same samples, log-probabilities and gradients from a jit whose
    parameters are sharded over the devices as from the unsharded jit; under ``shard_map`` each
    device's block of ``log_prob`` equals the global one's. Returns ``{class: worst rel diff}``."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    import numpyro_ext as nx

    assert len(jax.devices()) == N_DEVICES, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch, k = 8, 5
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(batch, k)), jnp.float32)
    bern_logits = logits[:, 0]
    one_hot = {
        "StraightThrough": lambda lg: nx.StraightThrough(logits=lg),
        "ReinMax": lambda lg: nx.ReinMax(0.7, logits=lg),
        "REDGE": lambda lg: nx.REDGE(logits=lg),
        "REDGECov": lambda lg: nx.REDGECov(logits=lg),
        "REINDGE": lambda lg: nx.REINDGE(logits=lg),
        "RelaxedOneHotCategoricalStraightThrough": lambda lg: nx.RelaxedOneHotCategoricalStraightThrough(
            0.5, logits=lg
        ),
        "RelaxedOneHotCategorical": lambda lg: nx.RelaxedOneHotCategorical(0.5, logits=lg),
        "ExpRelaxedOneHotCategorical": lambda lg: nx.ExpRelaxedOneHotCategorical(0.5, logits=lg),
    }
    binary = {
        "BernoulliStraightThrough": lambda lg: nx.BernoulliStraightThrough(logits=lg),
        "BernoulliReinMax": lambda lg: nx.BernoulliReinMax(0.7, logits=lg),
        "BernoulliREDGE": lambda lg: nx.BernoulliREDGE(logits=lg),
        "BernoulliREDGECov": lambda lg: nx.BernoulliREDGECov(logits=lg),
        "BernoulliREINDGE": lambda lg: nx.BernoulliREINDGE(logits=lg),
        "RelaxedBernoulliStraightThrough": lambda lg: nx.RelaxedBernoulliStraightThrough(0.5, logits=lg),
        "RelaxedBernoulli": lambda lg: nx.RelaxedBernoulli(0.5, logits=lg),
    }
    key = jax.random.PRNGKey(0)
    weight = jnp.asarray(np.random.default_rng(1).normal(size=(batch, k)), jnp.float32)
    rel = lambda a, b: float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-30))  # noqa: E731

    makers = {**one_hot, **binary}
    inputs = {name: logits if name in one_hot else bern_logits for name in makers}
    spec = {name: P("data") if lg.ndim == 1 else P("data", None) for name, lg in inputs.items()}
    dists = {name: make(inputs[name]) for name, make in makers.items()}
    # Every leaf with the batch axis split along it, the others (scalar knobs) replicated.
    specs = {
        name: jax.tree.map(
            lambda leaf: (
                P("data", *[None] * (np.ndim(leaf) - 1)) if np.ndim(leaf) and np.shape(leaf)[0] == batch else P()
            ),
            d,
        )
        for name, d in dists.items()
    }
    sharded = jax.device_put(dists, jax.tree.map(lambda s: NamedSharding(mesh, s), specs))
    sharded_inputs = {name: jax.device_put(lg, NamedSharding(mesh, spec[name])) for name, lg in inputs.items()}

    @jax.jit
    def run(ds, lgs, key):
        """All classes in one program: each ``ds[name]`` crosses jit as a pytree (leaves sharded
        or not); ``lgs[name]`` feeds the gradient of ``sum(weight * rsample)``."""
        out = {}
        for name, d in ds.items():
            x = d.rsample(key)

            def objective(lg, make=makers[name]):
                y = make(lg).rsample(key)
                return jnp.sum((weight if y.ndim == 2 else weight[:, 0]) * y)

            out[name] = (x, d.log_prob(jax.lax.stop_gradient(x)), jax.grad(objective)(lgs[name]))
        return out

    plain, split = run(dists, inputs, key), run(sharded, sharded_inputs, key)
    # shard_map: no device builds a distribution, each receives its block of one.
    local = jax.jit(
        jax.shard_map(
            lambda ds, vs: {n: ds[n].log_prob(vs[n]) for n in ds},
            mesh=mesh,
            in_specs=(specs, spec),
            out_specs=P("data"),
        )
    )
    blocks = local(sharded, {name: plain[name][0] for name in makers})
    figures = {}
    for name in makers:
        (x0, lp0, g0), (x1, lp1, g1) = plain[name], split[name]
        assert any(
            len(leaf.sharding.device_set) == N_DEVICES for leaf in jax.tree.leaves(sharded[name]) if leaf.ndim
        ), name
        assert x1.sharding.is_equivalent_to(NamedSharding(mesh, spec[name]), x1.ndim), (name, x1.sharding)
        assert np.all(np.isfinite(lp0)), name
        figures[name] = max(rel(x1, x0), rel(lp1, lp0), rel(g1, g0), rel(blocks[name], lp0))
    figures.update(_check_row_blocks(mesh, rel))
    return figures


def _check_row_blocks(mesh, rel) -> dict:
    """REDGE's chain over row blocks (K >= 64), with the noise drawn whole (2**17 entries) and
    made inside the blocks (2**21, ``numpyro_ext._keyed``): on sharded logits the compiled
    gradient has no all-gather, the sample and the gradient stay sharded, and both equal the
    unsharded run's, on an ``Auto`` mesh and on one with explicit axes. (A loop over contiguous blocks scans the sharded axis: XLA then gathers
    every array on every device.)"""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    import numpyro_ext as nx
    from numpyro_ext import _keyed, estimators

    figures = {}
    for name, shape in (("REDGE row blocks", (8, 256, 64)), ("REDGE row blocks, keyed noise", (8, 4096, 64))):
        assert estimators._blocked(False, shape) and estimators._strided_blocks()
        assert _keyed.keyed_available(jnp.zeros(1, jnp.float32), 0.5, jax.random.PRNGKey(0), shape) == (
            np.prod(shape) >= _keyed.KEYED_MIN_ENTRIES
        )
        logits = jnp.asarray(np.random.default_rng(2).normal(size=shape), jnp.float32)
        weight = jnp.asarray(np.random.default_rng(3).normal(size=shape), jnp.float32)
        sharding = NamedSharding(mesh, P("data", None, None))

        def run(lg):
            sample = lambda lg: nx.REDGE(logits=lg).rsample(jax.random.PRNGKey(4))  # noqa: E731
            return sample(lg), jax.grad(lambda lg: jnp.sum(weight * sample(lg)))(lg)

        compiled = jax.jit(run).lower(jax.device_put(logits, sharding)).compile()
        assert compiled.as_text().count("all-gather(") == 0, name
        (x0, g0), (x1, g1) = jax.jit(run)(logits), compiled(jax.device_put(logits, sharding))
        assert x1.sharding.is_equivalent_to(sharding, 3) and g1.sharding.is_equivalent_to(sharding, 3), name
        # the same under a mesh with explicit axes (sharding in types): the loop's carry must match
        explicit = jax.make_mesh((N_DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
        with jax.set_mesh(explicit):
            x2, g2 = jax.jit(run)(jax.device_put(logits, NamedSharding(explicit, P("data", None, None))))
        figures[name] = max(rel(x1, x0), rel(g1, g0), rel(x2, x0), rel(g2, g0))
    return figures


if __name__ == "__main__":
    print(json.dumps(_check_all()))
