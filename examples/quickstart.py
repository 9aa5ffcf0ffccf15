"""Quickstart: SVI with a categorical latent per data point, in Pyro and in NumPyro.

A 1-D Gaussian mixture with three components. Each point has a one-hot assignment ``z_n``;
the model's prior and the guide both use ``RelaxedOneHotCategoricalStraightThrough``: the
forward value is an exact one-hot, ``log_prob`` is the categorical log-probability (so the
ELBO is the discrete one), and gradients flow through the Gumbel-Softmax relaxation.

    python examples/quickstart.py                  # both backends, 300 steps
    python examples/quickstart.py --backend pyro --steps 50
"""

from __future__ import annotations

import argparse

import numpy as np

TRUE_LOCS = np.array([-4.0, 0.0, 4.0])
K, N, SCALE, TEMPERATURE = 3, 300, 0.7, 0.5


def make_data(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return TRUE_LOCS[rng.integers(0, K, size=N)] + SCALE * rng.normal(size=N)


def run_pyro(data: np.ndarray, steps: int, report_every: int) -> tuple[list[float], np.ndarray]:
    import pyro
    import pyro.distributions as dist
    import torch

    from pyro_ext import RelaxedOneHotCategoricalStraightThrough as GumbelST

    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    x = torch.as_tensor(data, dtype=torch.float32)

    def model(x):
        locs = pyro.param("locs", torch.tensor([-1.0, 0.0, 1.0]))
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", GumbelST(TEMPERATURE, probs=torch.full((K,), 1.0 / K)))
            pyro.sample("x", dist.Normal(z @ locs, SCALE), obs=x)

    def guide(x):
        logits = pyro.param("assignment_logits", torch.zeros(len(x), K))
        with pyro.plate("data", len(x)):
            pyro.sample("z", GumbelST(TEMPERATURE, logits=logits))

    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), pyro.infer.Trace_ELBO())
    losses = []
    for step in range(steps):
        losses.append(svi.step(x) / len(x))
        if step % report_every == 0 or step == steps - 1:
            print(f"  pyro    step {step:4d}  loss/point {losses[-1]:8.3f}")
    return losses, pyro.param("locs").detach().numpy()


def run_numpyro(data: np.ndarray, steps: int, report_every: int) -> tuple[list[float], np.ndarray]:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO

    from numpyro_ext import RelaxedOneHotCategoricalStraightThrough as GumbelST

    x = jnp.asarray(data, dtype=jnp.float32)

    def model(x):
        locs = numpyro.param("locs", jnp.array([-1.0, 0.0, 1.0]))
        with numpyro.plate("data", len(x)):
            z = numpyro.sample("z", GumbelST(TEMPERATURE, probs=jnp.full((K,), 1.0 / K)))
            numpyro.sample("x", dist.Normal(z @ locs, SCALE), obs=x)

    def guide(x):
        logits = numpyro.param("assignment_logits", jnp.zeros((len(x), K)))
        with numpyro.plate("data", len(x)):
            numpyro.sample("z", GumbelST(TEMPERATURE, logits=logits))

    svi = SVI(model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), x)
    update = jax.jit(svi.update)
    losses = []
    for step in range(steps):
        state, loss = update(state, x)
        losses.append(float(loss) / len(x))
        if step % report_every == 0 or step == steps - 1:
            print(f"  numpyro step {step:4d}  loss/point {losses[-1]:8.3f}")
    return losses, np.asarray(svi.get_params(state)["locs"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["pyro", "numpyro", "both"], default="both")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)

    data = make_data()
    report_every = max(1, args.steps // 6)
    runners = {"pyro": run_pyro, "numpyro": run_numpyro}
    names = list(runners) if args.backend == "both" else [args.backend]
    print(f"3-component mixture, {N} points, true means {TRUE_LOCS.tolist()}")
    for name in names:
        losses, locs = runners[name](data, args.steps, report_every)
        window = max(1, min(20, args.steps // 5))
        first, last = np.mean(losses[:window]), np.mean(losses[-window:])
        print(
            f"{name}: mean loss/point over the first {window} steps {first:.3f}, "
            f"over the last {window} {last:.3f}; fitted means {', '.join(f'{m:.2f}' for m in np.sort(locs))}"
        )


if __name__ == "__main__":
    main()
