r"""Gradient diagnostics in torch: the exact gradient of ``E[f(X)]`` by enumeration, Monte Carlo
reports of an estimator's gradient against it, and the fidelity of its hard samples.

Mirrors :mod:`numpyro_ext.diagnostics` name for name (the JAX functions that draw noise take a
leading ``key``); the statistics, tables and plot are :mod:`relaxed_dists.diagnostics`.
Estimators are the keys of :data:`pyro_ext.functional.SAMPLERS`, their
hyperparameters by the names :func:`relax` gives them (``temperature``, ``n_steps``, ``t_1``, with the
registry's defaults; another name is a ``TypeError`` listing the allowed ones), plus
``"reinforce"``: the score function with a leave-one-out baseline, unbiased,

.. math::

    g_i = (f(X_i) - b_i)\, \nabla_\theta \log p_\theta(X_i), \qquad
    b_i = \frac{1}{M - 1} \sum_{j \ne i} f(X_j).

Shapes: ``logits`` is ``batch_shape + (L, K)`` (``L`` independent variables); ``f`` maps one-hots
``(..., L, K)`` to ``(...)`` and must broadcast over leading dimensions. Noise comes from torch's
global generator, as in :mod:`pyro_ext.functional`.

    python -m pyro_ext.diagnostics --estimator redge --n-steps 5 --t-1 0.5 --samples 20000

>>> import torch
>>> logits, functions = standard_problem()
>>> exact_gradient(functions["quadratic"], logits).shape
torch.Size([3, 4])
>>> type(gradient_report("redge", functions["bump"], logits, n_samples=100, n_steps=5, t_1=0.5)).__name__
'GradientReport'
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample

from relaxed_dists.diagnostics import (
    FUNCTIONS,
    REINFORCE,
    FidelityReport,
    GradientReport,
    NoGradientWarning,
    all_one_hots,
    check_n_samples,
    cli_params,
    cli_parser,
    fidelity_report,
    gradient_markdown,
    no_gradient_message,
    plot_sweep,
    sampler_params,
    standard_coefficients,
    summarise,
    sweep_grid,
)

from . import relax as _relax
from .functional import SAMPLERS

__all__ = [
    "GradientReport",
    "FidelityReport",
    "exact_gradient",
    "estimator_gradients",
    "gradient_report",
    "gradient_sweep",
    "sample_fidelity",
    "plot_sweep",
    "standard_problem",
    "check_gradients",
    "main",
]


def _check_estimator(estimator: str) -> None:
    if estimator not in SAMPLERS and estimator != REINFORCE:
        raise ValueError(f"estimator must be one of {[*SAMPLERS, REINFORCE]}, got estimator={estimator!r}")


def _numpy(x: torch.Tensor):
    return x.detach().cpu().numpy()


def exact_gradient(f, logits: torch.Tensor) -> torch.Tensor:
    r"""Exact :math:`\nabla_\theta \mathbb{E}_{X \sim \prod_l \mathrm{Cat}(\mathrm{softmax}(\theta_l))}[f(X)]`,
    by enumerating the ``K^L`` one-hot configurations (``K^L <= 1e5``); shape of ``logits``."""
    logits = logits.detach().clone().requires_grad_(True)
    x = torch.as_tensor(all_one_hots(*logits.shape[-2:]), dtype=logits.dtype, device=logits.device)
    x = x.reshape(x.shape[:1] + (1,) * (logits.dim() - 2) + x.shape[1:])  # (K^L, 1.., L, K)
    log_p = (x * torch.log_softmax(logits, dim=-1)).sum(dim=(-2, -1))
    (grad,) = torch.autograd.grad((log_p.exp() * f(x)).sum(), logits)
    return grad


def estimator_gradients(estimator: str, f, logits: torch.Tensor, n_samples: int, **params) -> torch.Tensor:
    """``n_samples`` independent per-sample gradients ``(n_samples, *logits.shape)`` of ``f(X)``.

    The logits are expanded to a leaf of shape ``(n_samples, *logits.shape)`` and one backward of
    ``sum_i f(X_i)`` gives every per-sample gradient (sample ``i`` depends on slice ``i`` only)."""
    _check_estimator(estimator)
    check_n_samples(n_samples)
    kwargs = sampler_params(estimator, params)
    batch = logits.detach().expand(n_samples, *logits.shape).clone().requires_grad_(True)
    if estimator == REINFORCE:
        return _reinforce_gradients(f, batch)
    (grad,) = torch.autograd.grad(f(SAMPLERS[estimator](batch, **kwargs)).sum(), batch)
    return grad


def _reinforce_gradients(f, batch: torch.Tensor) -> torch.Tensor:
    m = batch.shape[0]
    if m < 2:
        raise ValueError(f"reinforce's leave-one-out baseline needs n_samples >= 2, got n_samples={m}")
    log_probs = torch.log_softmax(batch, dim=-1)
    x = torch.distributions.OneHotCategorical(logits=log_probs.detach()).sample()
    values = f(x)
    baseline = (values.sum(dim=0) - values) / (m - 1)
    (grad,) = torch.autograd.grad(((values - baseline) * (x * log_probs).sum(dim=(-2, -1))).sum(), batch)
    return grad


def gradient_report(estimator: str, f, logits: torch.Tensor, n_samples: int = 10_000, **params) -> GradientReport:
    """Mean, relative bias, standard error, variance, MSE and cosine of ``n_samples`` per-sample
    gradients against :func:`exact_gradient` (formulas in :mod:`relaxed_dists.diagnostics`)."""
    grads = estimator_gradients(estimator, f, logits, n_samples, **params)
    return summarise(_numpy(grads), _numpy(exact_gradient(f, logits)), estimator, params)


def gradient_sweep(estimator: str, f, logits: torch.Tensor, n_samples: int = 10_000, **params) -> list[GradientReport]:
    """:func:`gradient_report` at every point of the product of the hyperparameters given as
    lists or tuples (``n_steps=(3, 5), t_1=[0.1, 0.9]``); feed the result to :func:`plot_sweep`."""
    return [gradient_report(estimator, f, logits, n_samples, **point) for point in sweep_grid(params)]


def sample_fidelity(estimator: str, logits: torch.Tensor, n_samples: int = 100_000, **params) -> FidelityReport:
    """TV distance between the frequencies of ``n_samples`` hard samples and ``softmax(logits)``
    (``logits``: ``batch_shape + (K,)``), with the TV expected from exact categorical draws.
    ``n_samples`` must be an integer >= 1 (``ValueError`` / ``TypeError`` otherwise)."""
    _check_estimator(estimator)
    check_n_samples(n_samples)
    kwargs = sampler_params(estimator, params)
    batch = logits.detach().expand(n_samples, *logits.shape)
    with torch.no_grad():
        if estimator == REINFORCE:
            hard = torch.distributions.OneHotCategorical(logits=batch).sample()
        else:
            hard = SAMPLERS[estimator](batch, **kwargs)
    return fidelity_report(_numpy(hard), _numpy(torch.softmax(logits.detach(), dim=-1)), estimator, params)


def standard_problem(seed: int = 0) -> tuple[torch.Tensor, dict]:
    """``(logits, functions)``: float64 ``(3, 4)`` logits and the ``linear``, ``quadratic`` and ``bump``
    ``f`` of :func:`relaxed_dists.diagnostics.standard_coefficients`."""
    arrays = {k: torch.as_tensor(v) for k, v in standard_coefficients(seed).items()}
    c, a, v = arrays["c"], arrays["a"], arrays["v"]
    functions = {
        "linear": lambda x: (x * c).sum(dim=(-2, -1)),
        "quadratic": lambda x: torch.einsum("...lk,lmkj,...mj->...", x, a, x),
        "bump": lambda x: torch.exp(-2.0 * ((x @ v - 0.45) ** 2).sum(dim=-1)),
    }
    return arrays["logits"], functions


def _is_relaxed(site) -> bool:
    """Whether a trace node is a latent site drawn from a relaxed (estimator) class of :mod:`pyro_ext.relax`."""
    if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
        return False
    classes = (*_relax.ONE_HOT_CLASSES.values(), *_relax.BERNOULLI_CLASSES.values())
    return isinstance(_relax._unwrap(site["fn"])[0], classes) and site["value"].requires_grad


def _log_density_downstream(trace, values: dict) -> torch.Tensor:
    """The trace's log density, with each site of ``values`` scored at its value detached: what
    remains of a relaxed value's gradient is what reaches it through the rest of the program."""
    total = torch.zeros(())
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site):
            value = site["value"].detach() if name in values else site["value"]
            log_p = scale_and_mask(
                site["fn"].log_prob(value, *site["args"], **site["kwargs"]), site["scale"], site["mask"]
            )
            total = total + log_p.sum()
    return total


def check_gradients(model, guide, *args, params=None, **kwargs) -> dict[str, float]:
    r"""Norms of the ELBO's gradient with respect to each relaxed discrete value of ``guide``,
    and a :class:`~relaxed_dists.diagnostics.NoGradientWarning` naming the sites where it is zero.

    One draw of ``guide`` (a :func:`~pyro_ext.relax.relax` -ed guide, or one with relaxed classes)
    is replayed through ``model``, as ``Trace_ELBO`` does; then one backward pass of
    ``log p(x, z) - log q(z)`` gives the gradient at each relaxed value ``z_s``, with the two terms
    of the site itself (``log p(z_s | ...)``, ``log q(z_s | ...)``) held fixed: what is left is
    what the rest of the model (the likelihood, the sites that use ``z_s``) sends back. It is zero
    when the model reads the value only through a step without a derivative, e.g.
    ``value.argmax(-1)`` as an index; use :func:`~pyro_ext.relax.take_one_hot` (or ``value @ table``)
    instead.

    ``params``: optional ``{name: tensor}`` substituted for ``pyro.param`` sites of model and guide
    (``poutine.substitute``); by default the param store's values. Sites whose value does not depend
    on any parameter (nothing to train) are left out.

    Returns ``{site: ||d ELBO / d z_s||}`` (Python floats).

    >>> import pyro, pyro.distributions as dist
    >>> from pyro_ext.relax import relax, take_one_hot
    >>> pyro.clear_param_store()
    >>> means = torch.tensor([-2.0, 0.0, 2.0])
    >>> def model(x):
    ...     with pyro.plate("data", len(x)):
    ...         z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(3)))
    ...         pyro.sample("x", dist.Normal(take_one_hot(means, z), 1.0), obs=x)
    >>> def guide(x):
    ...     logits = pyro.param("logits", torch.zeros(len(x), 3))
    ...     with pyro.plate("data", len(x)):
    ...         pyro.sample("z", dist.OneHotCategorical(logits=logits))
    >>> norms = check_gradients(model, relax(guide, estimator="st"), torch.tensor([1.0, -1.0]))
    >>> sorted(norms), norms["z"] > 0
    (['z'], True)
    """
    if params:
        model, guide = poutine.substitute(model, data=params), poutine.substitute(guide, data=params)
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    values = {name: site["value"] for name, site in guide_trace.nodes.items() if _is_relaxed(site)}
    elbo = _log_density_downstream(model_trace, values) - _log_density_downstream(guide_trace, values)
    grads: Sequence[torch.Tensor | None]
    if elbo.requires_grad and values:
        grads = torch.autograd.grad(elbo, list(values.values()), allow_unused=True)
    else:
        grads = [None] * len(values)
    norms = {name: 0.0 if g is None else float(torch.linalg.norm(g)) for name, g in zip(values, grads)}
    dead = [name for name, norm in norms.items() if norm == 0.0]
    if dead:
        warnings.warn(no_gradient_message(dead), NoGradientWarning, stacklevel=2)
    return norms


def main(argv=None) -> str:
    """Prints and returns the markdown report of one estimator (and REINFORCE) on the standard problem;
    ``select module:function ...`` runs :func:`pyro_ext.selection.main` instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "select":
        from .selection import main as select_main

        return select_main(argv[1:])
    args = cli_parser("python -m pyro_ext.diagnostics", list(SAMPLERS)).parse_args(argv)
    params = cli_params(args)
    logits, functions = standard_problem(args.seed)
    sections = []
    for name in args.function or FUNCTIONS:
        rows = {}
        for estimator, hyper in ((REINFORCE, {}), (args.estimator, params)):
            torch.manual_seed(args.seed)  # common random numbers across rows
            report = gradient_report(estimator, functions[name], logits, args.samples, **hyper)
            rows[report.label] = report
        norm = float(torch.linalg.norm(exact_gradient(functions[name], logits)))
        sections.append(gradient_markdown(rows, f"### f = {name}  (||exact gradient|| = {norm:.4g})"))
    torch.manual_seed(args.seed)
    fidelity_logits = torch.as_tensor(standard_coefficients(args.seed)["fidelity_logits"])
    n_fidelity = args.fidelity_samples or 10 * args.samples
    fidelity = sample_fidelity(args.estimator, fidelity_logits, n_fidelity, **params)
    sections.append(f"### Law of the hard samples, K = {fidelity_logits.shape[-1]}\n\n{fidelity.to_markdown()}")
    text = "\n\n".join(sections)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
