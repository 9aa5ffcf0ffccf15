"""Acceptance figures for the Concrete family, both backends, in one run.

1. Own-sample ``log_prob`` of ``RelaxedOneHotCategorical`` in float32 with validation on:
   the fraction of non-finite values over ``--samples`` draws for every temperature in
   {0.01, 0.05, 0.1, 0.5, 1, 5} and K in {2, 10, 100, 1000}, and the largest error against the
   float64 oracle evaluated at the same float32 pre-image, ``|lp - oracle| / max(1, |oracle|)``.
   ``torch.distributions.RelaxedOneHotCategorical`` is measured beside it (validation off: with
   validation on it raises on its own samples).
2. 200 SVI steps with a relaxed prior and a relaxed guide at K=50, temperature 0.05, float32:
   the number of NaN losses for ours (Pyro; NumPyro with the log-space class and with
   ``TransformReparam``) and for Pyro's built-in class.

    python benchmarks/acceptance_concrete.py --out benchmarks/results/acceptance_concrete.md
    python benchmarks/acceptance_concrete.py --quick
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from relaxed_dists import reference as R

TEMPERATURES = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
EVENT_SIZES = (2, 10, 100, 1000)
#: --quick (the test suite's smoke run) keeps the smallest and largest K: the same code paths, and
#: each new K costs the eager JAX cells a fresh compile of every primitive (~3.5 CPU s per K).
QUICK_EVENT_SIZES = (2, 1000)


def _logits(k: int) -> np.ndarray:
    return np.random.default_rng(k).uniform(-3, 3, size=k)


def _oracle_error(log_prob: np.ndarray, y: np.ndarray, logits: np.ndarray, temperature: float) -> float:
    """Largest ``|lp - oracle| / max(1, |oracle|)``; the oracle runs in float64 on chunks."""
    worst = 0.0
    for start in range(0, len(y), 10_000):
        y64 = y[start : start + 10_000].astype(np.float64)
        oracle = R.exp_concrete_log_prob(y64, logits, temperature) - y64[..., :-1].sum(-1)
        err = np.abs(log_prob[start : start + 10_000].astype(np.float64) - oracle) / np.maximum(1.0, np.abs(oracle))
        worst = max(worst, float(err.max()))
    return worst


def own_samples_torch(n: int, event_sizes=EVENT_SIZES):
    import torch

    from pyro_ext import RelaxedOneHotCategorical

    rows = []
    torch.manual_seed(0)
    for k in event_sizes:
        for tau in TEMPERATURES:
            logits = torch.tensor(_logits(k), dtype=torch.float32)
            d = RelaxedOneHotCategorical(tau, logits=logits, validate_args=True)
            x = d.rsample((n,))
            lp = d.log_prob(x)  # validation on: raises if a sample is rejected
            y = d.transforms[0].inv(x)  # the cached float32 pre-image
            err = _oracle_error(lp.numpy(), y.numpy(), d.logits.double().numpy(), tau)
            builtin = torch.distributions.RelaxedOneHotCategorical(
                torch.tensor(tau), logits=logits, validate_args=False
            )
            lp_builtin = builtin.log_prob(builtin.rsample((n,)))
            rows.append(
                (
                    k,
                    tau,
                    float((~torch.isfinite(lp)).float().mean()),
                    err,
                    float((~torch.isfinite(lp_builtin)).float().mean()),
                )
            )
    return rows


def own_samples_jax(n: int, event_sizes=EVENT_SIZES):
    import jax
    import jax.numpy as jnp

    from numpyro_ext import RelaxedOneHotCategorical

    rows = []
    for k in event_sizes:
        logits = jnp.asarray(_logits(k), jnp.float32)
        for i, tau in enumerate(TEMPERATURES):
            d = RelaxedOneHotCategorical(tau, logits=logits, validate_args=True)
            x, inter = d.sample_with_intermediates(jax.random.PRNGKey(i), (n,))
            lp = np.asarray(d.log_prob(x, inter))  # eager, validation on
            y = np.asarray(inter[0][0])
            err = _oracle_error(lp, y, np.asarray(d.logits, np.float64), tau)
            rows.append((k, tau, float(np.mean(~np.isfinite(lp))), err, None))
    return rows


def svi_nan_pyro(steps: int, builtin: bool) -> int:
    import pyro
    import pyro.distributions as dist
    import torch

    import pyro_ext

    cls = dist.RelaxedOneHotCategorical if builtin else pyro_ext.RelaxedOneHotCategorical
    k, tau = 50, torch.tensor(0.05)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    data = torch.randn(20) + 3.0

    def model():
        locs = torch.linspace(-5, 5, k)
        with pyro.plate("data", len(data)):
            z = pyro.sample("z", cls(tau, probs=torch.full((k,), 1.0 / k)))
            pyro.sample("x", dist.Normal(z @ locs, 1.0), obs=data)

    def guide():
        logits = pyro.param("logits", torch.zeros(len(data), k))
        with pyro.plate("data", len(data)):
            pyro.sample("z", cls(tau, logits=logits))

    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), pyro.infer.Trace_ELBO())
    nans = 0
    with pyro.validation_enabled(not builtin):  # the built-in class raises on its own samples when validating
        for _ in range(steps):
            nans += int(not np.isfinite(svi.step()))
    return nans


def svi_nan_numpyro(steps: int, reparam: bool) -> int:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.reparam import TransformReparam

    import numpyro_ext

    k, tau = 50, 0.05
    data = jax.random.normal(jax.random.PRNGKey(1), (20,), jnp.float32) + 3.0
    locs = jnp.linspace(-5, 5, k, dtype=jnp.float32)

    def site(logits):
        if reparam:  # a simplex-valued site, reparameterised to its log-space base in model and guide
            return numpyro_ext.RelaxedOneHotCategorical(tau, logits=logits)
        return numpyro_ext.ExpRelaxedOneHotCategorical(tau, logits=logits)

    def value(z):
        return z if reparam else jnp.exp(z)

    def model():
        with numpyro.plate("data", len(data)):
            z = numpyro.sample("z", site(jnp.zeros(k, jnp.float32)))
            numpyro.sample("x", dist.Normal(value(z) @ locs, 1.0), obs=data)

    def guide():
        logits = numpyro.param("logits", jnp.zeros((len(data), k), jnp.float32))
        with numpyro.plate("data", len(data)):
            numpyro.sample("z", site(logits))

    if reparam:
        config = {"z": TransformReparam()}
        model, guide = numpyro.handlers.reparam(model, config), numpyro.handlers.reparam(guide, config)
    svi = SVI(model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0))
    update = jax.jit(svi.update)
    nans = 0
    for _ in range(steps):
        state, loss = update(state)
        nans += int(not np.isfinite(float(loss)))
    return nans


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="draws per cell (default 100,000; quick 200)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default 200; quick 5)")
    parser.add_argument(
        "--quick", action="store_true", help="few samples and steps, K in {2, 1000} only (for the tests)"
    )
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    n = args.samples or (200 if args.quick else 100_000)
    steps = args.steps or (5 if args.quick else 200)
    sizes = QUICK_EVENT_SIZES if args.quick else EVENT_SIZES
    warnings.simplefilter("ignore")  # numpyro/pyro deprecation notices are not the figures

    lines = [
        f"### Own-sample log_prob, RelaxedOneHotCategorical, float32, validation on, {n:,} samples per cell",
        "",
        "error = max |lp - oracle(pre-image)| / max(1, |oracle|); torch built-in: non-finite fraction of "
        "`torch.distributions.RelaxedOneHotCategorical` on its own samples (validation off)",
        "",
        "| K | temperature | pyro_ext non-finite | pyro_ext error | numpyro_ext non-finite | numpyro_ext error | torch built-in non-finite |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t_row, j_row in zip(own_samples_torch(n, sizes), own_samples_jax(n, sizes)):
        k, tau, t_bad, t_err, builtin_bad = t_row
        lines.append(
            f"| {k} | {tau} | {t_bad:.0%} | {t_err:.1e} | {j_row[2]:.0%} | {j_row[3]:.1e} | {builtin_bad:.0%} |"
        )
    lines += [
        "",
        f"### SVI, relaxed prior + relaxed guide, K=50, temperature 0.05, float32: NaN losses in {steps} steps",
        "",
        "| implementation | NaN steps |",
        "| --- | ---: |",
        f"| pyro_ext.RelaxedOneHotCategorical (validation on) | {svi_nan_pyro(steps, builtin=False)} |",
        f"| pyro.distributions.RelaxedOneHotCategorical (validation off) | {svi_nan_pyro(steps, builtin=True)} |",
        f"| numpyro_ext.ExpRelaxedOneHotCategorical | {svi_nan_numpyro(steps, reparam=False)} |",
        f"| numpyro_ext.RelaxedOneHotCategorical + TransformReparam | {svi_nan_numpyro(steps, reparam=True)} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return text


if __name__ == "__main__":
    main()
