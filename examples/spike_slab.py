"""Bayesian variable selection (spike-and-slab) in Pyro with no guide written: ``AutoRelaxed``.

The model is written once, with plain discrete gates: ``gamma_j ~ Bernoulli(0.2)``, effects
``beta_j ~ Normal(0, 1)``, ``y ~ Normal(X (gamma * beta), 1)``, 10 predictors of which three
pairs are correlated (0.9, 0.8, 0.6) and three have a true effect (``examples/_spike_slab.py``:
80 rows, seeded). The fits differ only in the guide:

- ``AutoRelaxed(model, continuous=AutoNormal, estimator=e)`` for every Bernoulli estimator
  name in ``relaxed_dists.registry.BERNOULLI_ESTIMATORS``: learnable gate logits drawn by the
  estimator, ``AutoNormal`` for the effects; inclusion probabilities from ``guide.probs()``;
- what Pyro users write today (pyro-ppl/pyro#3127): an ``AutoGuideList`` of ``AutoNormal`` on
  ``poutine.block(model, hide=["gamma"])`` and a hand-written function with a hand-placed
  ``pyro.distributions.RelaxedBernoulliStraightThrough`` for the gates, at temperature 1 (the
  thread's) and 0.1.

Reference: the exact posterior inclusion probabilities, all ``2^10`` gate configurations
enumerated with the effects integrated out analytically (float64 NumPy). Beside it, the
mean-field optimum (coordinate-ascent VI for the same guide family): the error that is the guide
family's, not the estimator's. Same steps, optimiser, initial values and seed for every fit.

    python examples/spike_slab.py                 # 2,000 steps per fit (about a minute)
    python examples/spike_slab.py --quick         # seconds (the test suite)
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoGuideList, AutoNormal
from pyro.infer.autoguide.initialization import init_to_feasible
from tqdm.auto import tqdm

try:
    from examples import _spike_slab as spike
except ImportError:  # run as a script: examples/ itself is on sys.path
    import _spike_slab as spike

try:  # issue 16: being written; the example runs its baseline without it
    from pyro_ext.autoguide import AutoRelaxed
except ImportError:
    AutoRelaxed = None

BASELINE = (
    "pyro-ppl/pyro#3127's recipe: an `AutoGuideList` of `AutoNormal(poutine.block(model, hide=['gamma']))` "
    "and a hand-written function with a hand-placed `pyro.distributions.RelaxedBernoulliStraightThrough(T, logits)` "
    "gate site (logits a `pyro.param`)."
)


def model(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    n, p = x.shape
    with pyro.plate("predictors", p):
        gamma = pyro.sample("gamma", dist.Bernoulli(torch.tensor(spike.PRIOR_INCLUSION, dtype=x.dtype)))
        beta = pyro.sample("beta", dist.Normal(torch.zeros((), dtype=x.dtype), spike.SLAB_SCALE))
    with pyro.plate("data", n):
        return pyro.sample("y", dist.Normal(x @ (gamma * beta), spike.NOISE_SCALE), obs=y)


def baseline_guide(temperature: float) -> AutoGuideList:
    """The pyro#3127 recipe: ``AutoNormal`` for the effects, a hand-placed relaxed gate site."""

    guide = AutoGuideList(model)

    def gates(x, y=None):
        prior_logit = math.log(spike.PRIOR_INCLUSION / (1 - spike.PRIOR_INCLUSION))
        logits = pyro.param("gate_logits", torch.full((x.shape[1],), prior_logit, dtype=x.dtype))
        with guide.plates["predictors"]:  # the plate the list shares with its parts (a second one clashes)
            pyro.sample(
                "gamma", dist.RelaxedBernoulliStraightThrough(torch.tensor(temperature, dtype=x.dtype), logits=logits)
            )

    guide.append(AutoNormal(poutine.block(model, hide=["gamma"])))
    guide.append(gates)
    return guide


def fits(args) -> dict[str, tuple[str, dict]]:
    """label -> ("auto", {"estimator": name}) or ("baseline", {"temperature": t})."""
    out = {f"AutoRelaxed {name}": ("auto", {"estimator": name}) for name in args.estimators}
    out.update({f"baseline RelaxedBernoulliST T={t}": ("baseline", {"temperature": t}) for t in args.temperatures})
    return out


def make_guide(kind: str, options: dict):
    """The only lines that differ between fits."""
    if kind == "auto":
        # effects start at 0, as the baseline's AutoNormal (init_to_feasible) and the NumPyro twin start them
        return AutoRelaxed(model, continuous=AutoNormal, estimator=options["estimator"], init_loc_fn=init_to_feasible)
    return baseline_guide(options["temperature"])


def inclusion_probs(kind: str, guide) -> np.ndarray:
    if kind == "auto":
        return guide.probs()["gamma"].detach().numpy().astype(np.float64)
    return torch.sigmoid(pyro.param("gate_logits")).detach().numpy().astype(np.float64)


def fit(x, y, kind: str, options: dict, args, progress) -> dict:
    pyro.clear_param_store()
    pyro.set_rng_seed(args.seed)
    guide = make_guide(kind, options)
    # Adam, its step size cut tenfold for the last 20% of the steps so that they average out the noise
    optim = pyro.optim.MultiStepLR(
        {
            "optimizer": torch.optim.Adam,
            "optim_args": {"lr": args.lr},
            "milestones": [int(0.8 * args.steps)],
            "gamma": 0.1,
        }
    )
    svi = SVI(model, guide, optim, Trace_ELBO())
    svi.step(x, y)  # builds the guide's parameters: not timed
    losses, start = [], time.perf_counter()
    for _ in range(args.steps):
        losses.append(svi.step(x, y))
        optim.step()
        progress.update()
    seconds = time.perf_counter() - start
    return {
        "probs": inclusion_probs(kind, guide),
        "loss": float(np.mean(losses[-max(1, args.steps // 10) :])),
        "ms_per_step": 1e3 * seconds / args.steps,
    }


def run_all(x, y, args) -> tuple[dict, dict]:
    """``(results, skipped)``: label -> result dict, label -> reason."""
    plan, results, skipped = fits(args), {}, {}
    if AutoRelaxed is None:
        for label in [k for k, (kind, _) in plan.items() if kind == "auto"]:
            skipped[label] = "pyro_ext.autoguide.AutoRelaxed is not available"
            del plan[label]
    with tqdm(total=args.steps * len(plan), unit="step", mininterval=2, disable=args.no_progress) as progress:
        for label, (kind, options) in plan.items():
            progress.set_description(label)
            try:
                results[label] = fit(x, y, kind, options, args, progress)
            except (ValueError, TypeError, NotImplementedError) as error:  # an estimator AutoRelaxed refuses
                skipped[label] = spike.error_summary(error)
    return results, skipped


def main(argv=None) -> dict:
    args = spike.parse_args(argv, __doc__)
    x_np, y_np, _ = spike.design(seed=args.seed)
    exact, optimum = spike.exact_inclusion(x_np, y_np), spike.mean_field_optimum(x_np, y_np)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)  # float64, as the reference
    results, skipped = run_all(x, y, args)
    spike.finish(exact, optimum, results, skipped, args, name="spike_slab", host="Pyro", baseline=BASELINE)
    return {"exact": exact, "optimum": optimum, "results": results, "skipped": skipped}


if __name__ == "__main__":
    torch.set_num_threads(1)  # 80 x 10: one thread is fastest, and the machine is shared
    main()
