"""Data-parallel SVI on several devices with ``jax.sharding``: the discrete VAE of ``vae_numpyro.py``.

The model, the guide and ``relax`` are those of ``examples/vae_numpyro.py``, unchanged. What
changes in a user's script is the data's and the state's placement, nothing in the model:

- a ``Mesh`` over the devices with one axis, ``"data"``;
- each batch ``device_put`` with ``NamedSharding(mesh, P(None, "data"))`` (a chunk of steps,
  each step's batch split over the devices along the digit plate);
- the SVI state ``device_put`` replicated (``NamedSharding(mesh, P())``);
- the chunked ``svi.update`` under ``jax.jit`` with those ``in_shardings``/``out_shardings``.

XLA partitions the program (GSPMD): each device draws and scores its part of the batch and
the gradient is all-reduced. JAX's random numbers do not depend on the sharding, so N devices
compute the single-device run, up to the order of the batch sums.

    python examples/vae_numpyro_sharded.py --devices 4            # CPU: 4 forced host devices
    python examples/vae_numpyro_sharded.py --check --quick        # N devices == 1 device (SGD, 20 steps)
    python examples/vae_numpyro_sharded.py --device gpu           # every GPU JAX sees

On CPU ``--devices N`` sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX
starts (N "devices" share the cores: this checks the program, it does not speed it up).
``--batch-size`` is per device: the global batch is N times it (weak scaling).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--devices", type=int, default=None, help="devices of the mesh (default: all that JAX sees; 4 on CPU)"
    )
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="platform (default: cpu)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100, help="digits per device and step")
    parser.add_argument("--estimator", default=None, help="relax's estimator (default: relax's default)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: Adam 1e-3, SGD 1e-4)")
    parser.add_argument("--chunk", type=int, default=50, help="steps per compiled lax.scan call")
    parser.add_argument(
        "--check",
        action="store_true",
        help="run 1 device and N devices on the same data and keys (SGD) and compare loss and parameters",
    )
    parser.add_argument("--tolerance", type=float, default=1e-5, help="--check: largest relative difference allowed")
    parser.add_argument("--quick", action="store_true", help="seconds: 20 steps, batch 16 per device")
    parser.add_argument("--out-dir", type=Path, default=None, help=f"where the JSON result goes (default: {RESULTS})")
    args = parser.parse_args(argv)
    if args.devices is not None and args.devices < 1:
        parser.error(f"--devices must be >= 1, got {args.devices}")
    if args.batch_size < 1 or args.steps < 1 or args.chunk < 1:
        parser.error("--batch-size, --steps and --chunk must be >= 1")
    if args.quick:
        args.steps, args.batch_size, args.chunk = 20, 16, 20
    if args.check:
        args.optimizer, args.steps = "sgd", min(args.steps, 20)
    if args.lr is None:
        args.lr = 1e-3 if args.optimizer == "adam" else 1e-4
    return args


def _force_host_devices(args: argparse.Namespace) -> None:
    """On CPU, ask XLA for ``--devices`` host devices; it reads the flag once, when JAX starts."""
    if args.device != "cpu":
        return
    args.devices = args.devices or 4
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return  # the caller's choice wins; a mismatch is reported by mesh()
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={args.devices}".strip()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    _force_host_devices(ARGS)
    os.environ.setdefault("JAX_PLATFORMS", ARGS.device.replace("gpu", "cuda"))

import jax  # noqa: E402  (after XLA_FLAGS: XLA reads them once)
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402
from numpyro.infer import SVI, Trace_ELBO  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import binarized_digits  # noqa: E402
from numpyro_ext.relax import relax  # noqa: E402
from vae_numpyro import guide, model  # noqa: E402  (the same model and guide, unchanged)


def mesh(n_devices: int, platform: str) -> Mesh:
    """A one-axis ``("data",)`` mesh over the first ``n_devices`` devices of ``platform``."""
    devices = jax.devices(platform.replace("gpu", "cuda") if platform == "gpu" else platform)
    if n_devices > len(devices):
        raise SystemExit(
            f"--devices {n_devices}: JAX sees {len(devices)} {platform} device(s) "
            f"(XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})"
        )
    return Mesh(np.array(devices[:n_devices]), ("data",))


def make_svi(optimizer: str, lr: float, estimator: str | None) -> SVI:
    optim = numpyro.optim.Adam(lr) if optimizer == "adam" else numpyro.optim.SGD(lr)
    return SVI(relax(model, estimator=estimator), relax(guide, estimator=estimator), optim, Trace_ELBO())


def batches(x_train: np.ndarray, steps: int, batch: int, seed: int) -> np.ndarray:
    """``(steps, batch, pixels)``: shuffled epochs of ``x_train``, one global batch per step."""
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch // len(x_train))
    order = np.concatenate([rng.permutation(len(x_train)) for _ in range(epochs)])[: steps * batch]
    return x_train[order].reshape(steps, batch, x_train.shape[-1])


def train(svi: SVI, data: np.ndarray, the_mesh: Mesh, chunk: int, seed: int = 0) -> dict:
    """SVI over ``data`` (``(steps, global batch, pixels)``), each step's batch sharded over the
    mesh's ``"data"`` axis and the state replicated; ``lax.scan`` over chunks of ``chunk`` steps.

    Returns the losses (nats per digit), the final parameters (NumPy), the time of each chunk
    after the first (compile excluded) and the per-device bytes of one chunk's data."""
    n = the_mesh.devices.size
    if data.shape[1] % n:
        raise ValueError(f"the global batch ({data.shape[1]}) must be divisible by the number of devices ({n})")
    data_sharding = NamedSharding(the_mesh, P(None, "data"))  # (steps, batch, pixels): batch split
    replicated = NamedSharding(the_mesh, P())

    def run_chunk(state, chunk_data):
        return jax.lax.scan(svi.update, state, chunk_data)

    state = jax.device_put(jax.jit(svi.init)(jax.random.PRNGKey(seed), data[0]), replicated)
    init_params = jax.tree.map(np.asarray, svi.get_params(state))
    step = jax.jit(run_chunk, in_shardings=(replicated, data_sharding), out_shardings=(replicated, replicated))
    losses, times, per_device_bytes = [], [], None
    for start in range(0, len(data), chunk):
        chunk_data = jax.device_put(data[start : start + chunk], data_sharding)
        per_device_bytes = chunk_data.addressable_shards[0].data.nbytes
        begin = time.perf_counter()
        state, chunk_losses = step(state, chunk_data)
        losses.append(np.asarray(jax.block_until_ready(chunk_losses)) / data.shape[1])
        if start:  # the first chunk compiles
            times.append((time.perf_counter() - begin) / len(chunk_data))
    params = jax.tree.map(np.asarray, svi.get_params(state))
    return {
        "losses": np.concatenate(losses),
        "params": params,
        "init_params": init_params,
        "step_times": times,
        "data_bytes_per_device": per_device_bytes,
        "devices": n,
    }


def relative_difference(a, b) -> float:
    """max over leaves of ``max|a - b| / max|b|`` (pytrees of arrays of equal structure)."""
    leaves = jax.tree.leaves(jax.tree.map(lambda u, v: np.max(np.abs(u - v)) / max(np.max(np.abs(v)), 1e-30), a, b))
    return float(max(leaves))


def check(args, x_train: np.ndarray) -> dict:
    """The same data and keys on 1 device and on ``args.devices``: loss per step and parameters."""
    data = batches(x_train, args.steps, args.batch_size * args.devices, seed=0)
    svi = make_svi("sgd", args.lr, args.estimator)
    single = train(svi, data, mesh(1, args.device), args.chunk)
    sharded = train(svi, data, mesh(args.devices, args.device), args.chunk)
    result = {
        "devices": args.devices,
        "steps": args.steps,
        "global_batch": int(data.shape[1]),
        "optimizer": f"SGD({args.lr})",
        "loss_rel_diff": float(np.max(np.abs(sharded["losses"] - single["losses"]) / np.abs(single["losses"]))),
        "param_rel_diff": relative_difference(sharded["params"], single["params"]),
        "loss_first": float(single["losses"][0]),
        "loss_last": float(single["losses"][-1]),
        "data_bytes_per_device": {1: single["data_bytes_per_device"], args.devices: sharded["data_bytes_per_device"]},
        "tolerance": args.tolerance,
    }
    print(
        f"{args.devices} devices vs 1, {args.steps} SGD steps, global batch {data.shape[1]}: "
        f"loss rel diff {result['loss_rel_diff']:.2e}, param rel diff {result['param_rel_diff']:.2e} "
        f"(tolerance {args.tolerance:g}; loss {result['loss_first']:.1f} -> {result['loss_last']:.1f} nats/digit); data per device {single['data_bytes_per_device']} B on 1, "
        f"{sharded['data_bytes_per_device']} B on {args.devices}"
    )
    result["ok"] = bool(
        result["loss_rel_diff"] <= args.tolerance
        and result["param_rel_diff"] <= args.tolerance
        and sharded["data_bytes_per_device"] * args.devices == single["data_bytes_per_device"]
    )
    return result


def main(args: argparse.Namespace) -> dict:
    train_np, _, source = binarized_digits(n_test=1000)
    out_dir = args.out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    args.devices = args.devices or len(jax.devices(args.device.replace("gpu", "cuda")))
    if args.check:
        result = check(args, train_np)
        (out_dir / "vae_numpyro_sharded_check.json").write_text(json.dumps(result, indent=1))
        if not result["ok"]:
            raise SystemExit(f"sharded run differs from the single-device run beyond {args.tolerance:g}")
        return result

    the_mesh = mesh(args.devices, args.device)
    data = batches(train_np, args.steps, args.batch_size * args.devices, seed=0)
    run = train(make_svi(args.optimizer, args.lr, args.estimator), data, the_mesh, args.chunk)
    step_s = float(np.median(run["step_times"])) if run["step_times"] else float("nan")
    result = {
        "backend": "numpyro",
        "engine": "jax.sharding (GSPMD)",
        "platform": args.device,
        "device_kind": jax.devices(args.device.replace("gpu", "cuda"))[0].device_kind,
        "devices": args.devices,
        "batch_per_device": args.batch_size,
        "global_batch": int(data.shape[1]),
        "steps": args.steps,
        "step_s": step_s,
        "steps_per_s": 1 / step_s,
        "samples_per_s": data.shape[1] / step_s,
        "final_loss": float(np.mean(run["losses"][-10:])),
        "data_bytes_per_device": run["data_bytes_per_device"],
        "cpu_count": os.cpu_count(),
        "source": source,
    }
    print(
        f"{source}; {args.devices} {args.device} device(s), batch {args.batch_size}/device: "
        f"{result['steps_per_s']:.1f} steps/s, {result['samples_per_s']:.0f} digits/s "
        f"(median of {len(run['step_times'])} chunks, compile excluded); loss {result['final_loss']:.1f} nats/digit"
    )
    (out_dir / f"vae_numpyro_sharded_{args.devices}.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(ARGS)
