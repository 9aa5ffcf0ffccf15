"""Discrete VAE (Pyro) trained data-parallel with PyTorch Lightning's DDP: ``relax(guide)`` unchanged.

The VAE of ``examples/vae_pyro.py`` (20 one-hot latents of 10 classes, encoder 784-512-256-200,
decoder 200-256-512-784, Bernoulli pixels), trained with ``relax(guide)`` (the default
estimator) as Pyro's own ``examples/svi_lightning.py`` trains: the loss is
``Trace_ELBO()(model, relax(guide))``, an ``ELBOModule``, inside a ``pl.LightningModule``;
Lightning's DDP strategy starts one process per device, hands each a slice of every global
batch (its automatic ``DistributedSampler``) and averages the gradients.

    python examples/vae_pyro_ddp.py --devices 2                   # train; prints steps/s, samples/s
    python examples/vae_pyro_ddp.py --check --quick               # 2 processes == 1 process (the test suite)

``--devices N`` processes (gloo on CPU; ``--accelerator gpu`` for real GPUs), ``--strategy
ddp_spawn`` (default: the module and the data are pickled into the new processes) or ``ddp``.

What a user changes in a single-process script, and nothing else:

1. model and guide are ``PyroModule`` s (under ``pyro.settings.set(module_local_params=True)``,
   set here at import because ``spawn``-started processes import this file, not run ``main``);
2. the data plate is ``pyro.plate("digits", size=N_TRAIN, subsample_size=len(x))``, so each
   process's minibatch is scaled to the whole data set;
3. ``loss_fn = Trace_ELBO()(model, relax(guide))``: ``relax`` of a module is a module, so the
   ``ELBOModule`` (and DDP) see the guide's parameters;
4. a ``pl.LightningModule`` whose ``training_step`` returns ``loss_fn(x)`` and a ``pl.Trainer``;
   and seed each process's RNG from ``(seed, rank)`` (``on_fit_start`` here): after
   ``pl.seed_everything(seed)`` Lightning re-seeds every process with that one seed (its DDP
   strategies call ``reset_seed()``), and all ranks then draw the same relaxation noise;
   without it each process starts from an unreproducible seed.

What does not scale this way: exact references by enumeration (``TraceEnum_ELBO``,
``pyro_ext.diagnostics.exact_gradient``) still enumerate on one process; ``relax(...,
estimator="auto")`` (and ``AutoRelaxed(model, estimator="auto")``) selects in each process, on
that process's minibatch and noise, with no collective step, so ranks can pick different
estimators (DDP then averages gradients of different estimators without complaint): select
once on one process (``select_estimator(model, relax(guide), x)`` takes a ``PyroModule``
guide's weights as they are), then train with the chosen ``estimator=``. A schedule's ``step``
counts guide calls per process.

``--check``: 20 SGD steps with 2 processes against one process on the full global batch. Both
seed torch from ``(seed, step, rank)`` at every step; the single-process step is the mean of the
2 micro-batch losses, micro-batch ``r`` being exactly what
``torch.utils.data.distributed.DistributedSampler(dataset, 2, r, shuffle=True, seed=0)`` hands
rank ``r`` (Lightning's automatic sampler for training always shuffles), drawn with rank ``r``'s
noise; one backward, one SGD step. The losses per step (mean over ranks) and every parameter
after 20 steps must agree to ``TOLERANCE`` relative, the ranks' parameters be identical and each
rank's data indices be the sampler's; exit 1 if not.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from pyro_ext import OneHotCategorical
from pyro_ext.relax import relax

try:
    from examples._data import labelled_binarized_digits
    from examples.vae_pyro import N_CLASSES, N_LATENT, mlp
except ImportError:  # run as a script: examples/ itself is on sys.path
    from _data import labelled_binarized_digits
    from vae_pyro import N_CLASSES, N_LATENT, mlp

# Module level, not in main(): processes started by ``spawn`` import this file and unpickle the
# modules; the setting must hold there too (else PyroModule parameters go to the param store).
pyro.settings.set(module_local_params=True)
# Lightning's advice for real data loaders; the data here are tensors in memory (no workers needed).
warnings.filterwarnings("ignore", message=r"The '\w+_dataloader' does not have many workers")
# Lightning 2.6 with torch 2.13: its utilities/_pytree.py still uses torch's deprecated LeafSpec.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # "GPU available: ..." banners

#: relative tolerance of --check (float32). Measured: losses 4e-8 (the ranks' mean taken in float64
#: here, in float32 by the reference), parameters bitwise equal: with 2 ranks DDP's average and the
#: reference's backward of the mean both scale by an exact 1/2 (more ranks: sums in other orders).
TOLERANCE = 1e-5
CHECK_STEPS, CHECK_DEVICES = 20, 2
WARMUP_STEPS = 5  # steps excluded from the timing (process start-up, first allocations)


class Model(PyroModule):
    """p(z) p(x | z) of ``examples/vae_pyro.py``; the plate scales a minibatch to ``n_train`` digits."""

    def __init__(self, n_pixels: int, n_train: int) -> None:
        super().__init__()
        self.n_train = n_train
        self.decoder = mlp(N_LATENT * N_CLASSES, 256, 512, n_pixels)

    def forward(self, x: torch.Tensor) -> None:
        prior_logits = x.new_zeros(N_LATENT, N_CLASSES)  # uniform over the 10 classes
        with pyro.plate("digits", size=self.n_train, subsample_size=len(x)):
            z = pyro.sample("z", OneHotCategorical(logits=prior_logits).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z.flatten(-2))).to_event(1), obs=x)


class Guide(PyroModule):
    """q(z | x): the encoder's logits on plain ``OneHotCategorical`` sites (``relax`` swaps them)."""

    def __init__(self, n_pixels: int, n_train: int) -> None:
        super().__init__()
        self.n_train = n_train
        self.encoder = mlp(n_pixels, 512, 256, N_LATENT * N_CLASSES)

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("digits", size=self.n_train, subsample_size=len(x)):
            logits = self.encoder(x).unflatten(-1, (N_LATENT, N_CLASSES))
            pyro.sample("z", OneHotCategorical(logits=logits).to_event(1))


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of ``rank`` at ``step`` (``--check``), or at the start (``step=-1``)."""
    return int(np.random.SeedSequence([seed, step + 1, rank]).generate_state(1)[0])


class PyroLightningModule(pl.LightningModule):
    """Pyro's ``svi_lightning`` module: ``training_step`` returns the ELBO loss of a minibatch."""

    def __init__(
        self,
        loss_fn: pyro.infer.elbo.ELBOModule,
        lr: float,
        optimizer: str,
        seed: int,
        threads: int,
        check_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.loss_fn = loss_fn
        self.lr, self.optimizer, self.seed, self.threads, self.check_dir = lr, optimizer, seed, threads, check_dir
        self.record: list = []  # --check: (step, loss, data indices) of this rank

    def on_fit_start(self) -> None:
        torch.set_num_threads(self.threads)
        torch.manual_seed(step_seed(self.seed, -1, self.global_rank))  # ranks draw different noise

    def training_step(self, batch, batch_idx):
        index, x = batch
        if self.check_dir is not None:
            torch.manual_seed(step_seed(self.seed, self.global_step, self.global_rank))
        loss = self.loss_fn(x)
        if self.check_dir is not None:
            self.record.append((self.global_step, loss.item(), index.tolist()))
        return loss

    def configure_optimizers(self):
        optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[self.optimizer]
        return optimizer(self.loss_fn.parameters(), lr=self.lr)

    def on_train_end(self) -> None:
        if self.check_dir is not None:
            params = {name: p.detach().clone() for name, p in self.loss_fn.named_parameters()}
            torch.save({"record": self.record, "params": params}, self.check_dir / f"check_rank{self.global_rank}.pt")
            self.trainer.strategy.barrier("check files written")  # rank 0 reads them all after fit


class StepTimer(pl.Callback):
    """Wall-clock time at the end of every training step; rank 0 writes them to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path, self.times = path, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            self.path.write_text(json.dumps(self.times))


def build(n_pixels: int, n_train: int, first_batch: torch.Tensor, seed: int) -> pyro.infer.elbo.ELBOModule:
    """``Trace_ELBO()(model, relax(guide))``, its parameters set up on one minibatch."""
    pyro.set_rng_seed(seed)
    model, guide = Model(n_pixels, n_train), Guide(n_pixels, n_train)
    loss_fn = Trace_ELBO()(model, relax(guide))
    loss_fn(first_batch)  # all parameters must exist before configure_optimizers (svi_lightning)
    return loss_fn


def fit(loss_fn, dataset, args, *, devices: int, steps: int, batch_size: int, shuffle: bool, check_dir=None):
    """Trains ``loss_fn`` with Lightning on ``devices`` processes; returns rank 0's step end times,
    or ``None`` in the other processes of ``--strategy ddp`` (which run this script too)."""
    module = PyroLightningModule(loss_fn, args.lr, args.optimizer, args.seed, args.threads, check_dir)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=True)
    timer = StepTimer(args.scratch / f"times_{devices}.json")
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        strategy=args.strategy,
        devices=devices,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=args.progress,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    if trainer.global_rank != 0:
        return None
    times = json.loads(timer.path.read_text())
    timer.path.unlink()
    if check_dir is None:
        args.scratch.rmdir()
    return times


def reference_run(loss_fn, dataset, args, *, ranks: int, steps: int, batch_size: int):
    """One process, full global batch: per step the mean of the ``ranks`` micro-batch losses (the
    data ``DistributedSampler`` gives each rank, that rank's noise seed), one backward, one SGD step.
    Lightning's automatic sampler of a training loader always shuffles (``shuffle=True``, its
    ``seed`` the global seed, 0 if unset; epoch 0), whatever the loader's ``shuffle``: so does this."""
    optimizer = torch.optim.SGD(loss_fn.parameters(), lr=args.lr)
    seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
    shards = [
        list(DistributedSampler(dataset, num_replicas=ranks, rank=r, shuffle=True, seed=seed)) for r in range(ranks)
    ]
    losses, indices = [], []
    for step in range(steps):
        optimizer.zero_grad()
        micro = []
        for r in range(ranks):
            index = torch.tensor(shards[r][step * batch_size : (step + 1) * batch_size])
            torch.manual_seed(step_seed(args.seed, step, r))
            micro.append(loss_fn(dataset[index][1]))
            indices.append(index.tolist())
        loss = torch.stack(micro).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    params = {name: p.detach().clone() for name, p in loss_fn.named_parameters()}
    return losses, indices, params


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|``: the difference relative to the tensor's scale."""
    return float((a - b).abs().max() / b.abs().max())


def check(loss_fn, dataset, args) -> int:
    ranks, steps, batch_size = CHECK_DEVICES, CHECK_STEPS, args.batch_size
    initial = {name: p.detach().clone() for name, p in loss_fn.named_parameters()}
    reference = copy.deepcopy(loss_fn)  # pickles relax(guide) too
    start = time.perf_counter()
    if (
        fit(
            loss_fn,
            dataset,
            args,
            devices=ranks,
            steps=steps,
            batch_size=batch_size,
            shuffle=False,
            check_dir=args.scratch,
        )
        is None
    ):
        return 0  # a worker of --strategy ddp: rank 0 compares
    ddp_s = time.perf_counter() - start
    ref_losses, ref_indices, ref_params = reference_run(
        reference, dataset, args, ranks=ranks, steps=steps, batch_size=batch_size
    )
    runs = [torch.load(args.scratch / f"check_rank{r}.pt") for r in range(ranks)]
    for r in range(ranks):
        (args.scratch / f"check_rank{r}.pt").unlink()
    args.scratch.rmdir()
    ddp_losses = np.mean([[loss for _, loss, _ in run["record"]] for run in runs], axis=0)
    ddp_indices = [run["record"][step][2] for step in range(steps) for run in runs]
    loss_diff = float(np.max(np.abs(ddp_losses - ref_losses) / np.abs(ref_losses)))
    param_diff = max(relative(runs[0]["params"][n], ref_params[n]) for n in ref_params)
    ranks_equal = all(torch.equal(run["params"][n], runs[0]["params"][n]) for run in runs for n in ref_params)
    moved = max(relative(ref_params[n], initial[n]) for n in ref_params)
    same_data = ddp_indices == ref_indices
    ok = loss_diff <= TOLERANCE and param_diff <= TOLERANCE and ranks_equal and same_data
    lines = [
        f"check: {steps} SGD steps (lr {args.lr:g}), {ranks} processes ({args.strategy}, per-device batch "
        f"{batch_size}) vs 1 process on the global batch of {ranks * batch_size}; {len(dataset)} digits",
        f"loss per step (mean over ranks): max relative difference {loss_diff:.2e} (tolerance {TOLERANCE:g})",
        f"parameters after {steps} steps: max relative difference {param_diff:.2e} (tolerance {TOLERANCE:g})",
        f"parameters moved from their start by up to {moved:.2e} relative (what the check compares)",
        f"ranks' parameters identical: {ranks_equal}; each rank's data = DistributedSampler(shuffle=True, seed=0)'s: {same_data}",
        f"DDP run {ddp_s:.1f} s (with process start-up)",
        "PASS" if ok else "FAIL",
    ]
    print("\n".join(lines))
    (args.out_dir / "vae_pyro_ddp_check.json").write_text(
        json.dumps(
            {
                "loss_max_rel_diff": loss_diff,
                "param_max_rel_diff": param_diff,
                "tolerance": TOLERANCE,
                "ranks_identical": ranks_equal,
                "same_data": same_data,
                "steps": steps,
                "ranks": ranks,
                "batch_size": batch_size,
                "passed": ok,
            },
            indent=1,
        )
    )
    return 0 if ok else 1


def benchmark(loss_fn, dataset, args) -> int:
    times = fit(
        loss_fn, dataset, args, devices=args.devices, steps=args.steps, batch_size=args.batch_size, shuffle=True
    )
    if times is None:
        return 0  # a worker of --strategy ddp: rank 0 reports
    warmup = min(WARMUP_STEPS, len(times) - 2)
    steps_per_s = (len(times) - 1 - warmup) / (times[-1] - times[warmup])
    global_batch = args.devices * args.batch_size
    result = {
        "devices": args.devices,
        "strategy": args.strategy,
        "accelerator": args.accelerator,
        "batch_per_device": args.batch_size,
        "global_batch": global_batch,
        "steps": args.steps,
        "timed_steps": len(times) - 1 - warmup,
        "threads_per_process": args.threads,
        "steps_per_s": steps_per_s,
        "samples_per_s": steps_per_s * global_batch,
        "data": f"{args.source}, {len(dataset)} training digits",
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "lightning": pl.__version__,
    }
    line = (
        f"devices {args.devices} ({args.strategy}, {args.accelerator}), batch {args.batch_size}/device "
        f"(global {global_batch}): {steps_per_s:.2f} steps/s, {steps_per_s * global_batch:.0f} samples/s "
        f"(steps {warmup + 1}-{len(times)} of {args.steps}, {args.threads} thread(s)/process, "
        f"{os.cpu_count()} CPU cores; {args.source})"
    )
    print(line)
    name = f"vae_pyro_ddp_devices{args.devices}"
    (args.out_dir / f"{name}.json").write_text(json.dumps(result, indent=1))
    (args.out_dir / f"{name}.md").write_text(line + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2, help="processes (CPU) or GPUs")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--strategy", default="ddp_spawn", choices=["ddp_spawn", "ddp"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=None, help="PER DEVICE (default 100; --check 16)")
    parser.add_argument("--lr", type=float, default=None, help="default: Adam 1e-3, SGD 1e-5")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    parser.add_argument("--quick", action="store_true", help="8x8 digits, few steps (seconds)")
    parser.add_argument("--progress", action="store_true", help="Lightning's progress bar")
    parser.add_argument(
        "--check", action="store_true", help=f"{CHECK_DEVICES} processes == 1 process, SGD, {CHECK_STEPS} steps"
    )
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    for name in ("devices", "steps", "batch_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.check:
        args.optimizer = "sgd"  # Adam amplifies float noise in near-zero gradients
    args.batch_size = args.batch_size or (16 if args.check else 100)
    args.lr = args.lr or {"adam": 1e-3, "sgd": 1e-5}[args.optimizer]
    if args.quick and not args.check:
        args.steps = min(args.steps, 10)
    args.scratch = args.out_dir / ".vae_pyro_ddp"  # the processes' files for rank 0 (deleted once read)
    args.scratch.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    train_np, _, _, _, args.source = labelled_binarized_digits(n_test=1000, seed=0, small=args.quick)
    train_x = torch.from_numpy(train_np)
    if args.check:  # exactly one epoch: CHECK_STEPS global batches
        train_x = train_x[: CHECK_STEPS * CHECK_DEVICES * args.batch_size]
    dataset = TensorDataset(torch.arange(len(train_x)), train_x)
    loss_fn = build(train_x.shape[1], len(train_x), train_x[: args.batch_size], args.seed)
    return check(loss_fn, dataset, args) if args.check else benchmark(loss_fn, dataset, args)


if __name__ == "__main__":
    raise SystemExit(main())
