r"""Gradient diagnostics in JAX: the exact gradient of ``E[f(X)]`` by enumeration, Monte Carlo
reports of an estimator's gradient against it, and the fidelity of its hard samples.

Mirrors :mod:`pyro_ext.diagnostics` name for name; the functions that draw noise take a
leading PRNG ``key``, as :mod:`numpyro_ext.functional` does; the statistics, tables and plot
are :mod:`relaxed_dists.diagnostics`.
Estimators are the keys of :data:`numpyro_ext.functional.SAMPLERS`, their
hyperparameters by the names :func:`relax` gives them (``temperature``, ``n_steps``, ``t_1``, with the
registry's defaults; another name is a ``TypeError`` listing the allowed ones), plus
``"reinforce"``: the score function with a leave-one-out baseline, unbiased,

.. math::

    g_i = (f(X_i) - b_i)\, \nabla_\theta \log p_\theta(X_i), \qquad
    b_i = \frac{1}{M - 1} \sum_{j \ne i} f(X_j).

Shapes: ``logits`` is ``batch_shape + (L, K)`` (``L`` independent variables); ``f`` maps one-hots
``(..., L, K)`` to ``(...)`` and must broadcast over leading dimensions. Per-sample gradients are the
gradient of one batched sum (sample ``i`` depends on slice ``i`` of the logits only).

    python -m numpyro_ext.diagnostics --estimator redge --n-steps 5 --t-1 0.5 --samples 20000
    python -m numpyro_ext.diagnostics select benchmarks._selection_problems_numpyro:mixture --samples 128

>>> import jax
>>> logits, functions = standard_problem()
>>> exact_gradient(functions["quadratic"], logits).shape
(3, 4)
>>> key = jax.random.PRNGKey(0)
>>> type(gradient_report(key, "redge", functions["bump"], logits, n_samples=100, n_steps=5, t_1=0.5)).__name__
'GradientReport'
"""

from __future__ import annotations

import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers

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


def exact_gradient(f, logits: jax.Array) -> jax.Array:
    r"""Exact :math:`\nabla_\theta \mathbb{E}_{X \sim \prod_l \mathrm{Cat}(\mathrm{softmax}(\theta_l))}[f(X)]`,
    by enumerating the ``K^L`` one-hot configurations (``K^L <= 1e5``); shape of ``logits``."""
    x = jnp.asarray(all_one_hots(*logits.shape[-2:]), dtype=logits.dtype)
    x = x.reshape(x.shape[:1] + (1,) * (logits.ndim - 2) + x.shape[1:])  # (K^L, 1.., L, K)

    def expectation(logits):
        log_p = (x * jax.nn.log_softmax(logits, axis=-1)).sum(axis=(-2, -1))
        return (jnp.exp(log_p) * f(x)).sum()

    return jax.grad(expectation)(logits)


def estimator_gradients(key: jax.Array, estimator: str, f, logits: jax.Array, n_samples: int, **params) -> jax.Array:
    """``n_samples`` independent per-sample gradients ``(n_samples, *logits.shape)`` of ``f(X)``.

    The logits are broadcast to ``(n_samples, *logits.shape)`` and one gradient of
    ``sum_i f(X_i)`` gives every per-sample gradient (sample ``i`` depends on slice ``i`` only)."""
    _check_estimator(estimator)
    check_n_samples(n_samples)
    kwargs = sampler_params(estimator, params)
    batch = jnp.broadcast_to(jax.lax.stop_gradient(logits), (n_samples, *logits.shape))
    if estimator == REINFORCE:
        return _reinforce_gradients(key, f, batch)
    grad = jax.grad(lambda batch, key: f(SAMPLERS[estimator](key, batch, **kwargs)).sum())
    return jax.jit(grad)(batch, key)  # one compiled program: much faster than op-by-op dispatch


def _reinforce_gradients(key: jax.Array, f, batch: jax.Array) -> jax.Array:
    m = batch.shape[0]
    if m < 2:
        raise ValueError(f"reinforce's leave-one-out baseline needs n_samples >= 2, got n_samples={m}")

    def surrogate(batch, key):
        index = jax.random.categorical(key, jax.lax.stop_gradient(batch))
        x = jax.nn.one_hot(index, batch.shape[-1], dtype=batch.dtype)
        values = f(x)
        baseline = (values.sum(axis=0) - values) / (m - 1)
        return ((values - baseline) * (x * jax.nn.log_softmax(batch, axis=-1)).sum(axis=(-2, -1))).sum()

    return jax.jit(jax.grad(surrogate))(batch, key)


def gradient_report(
    key: jax.Array, estimator: str, f, logits: jax.Array, n_samples: int = 10_000, **params
) -> GradientReport:
    """Mean, relative bias, standard error, variance, MSE and cosine of ``n_samples`` per-sample
    gradients against :func:`exact_gradient` (formulas in :mod:`relaxed_dists.diagnostics`)."""
    grads = estimator_gradients(key, estimator, f, logits, n_samples, **params)
    return summarise(np.asarray(grads), np.asarray(exact_gradient(f, logits)), estimator, params)


def gradient_sweep(
    key: jax.Array, estimator: str, f, logits: jax.Array, n_samples: int = 10_000, **params
) -> list[GradientReport]:
    """:func:`gradient_report` at every point of the product of the hyperparameters given as
    lists or tuples (``n_steps=(3, 5), t_1=[0.1, 0.9]``), all with the same ``key`` (common random
    numbers); feed the result to :func:`plot_sweep`."""
    return [gradient_report(key, estimator, f, logits, n_samples, **point) for point in sweep_grid(params)]


def sample_fidelity(
    key: jax.Array, estimator: str, logits: jax.Array, n_samples: int = 100_000, **params
) -> FidelityReport:
    """TV distance between the frequencies of ``n_samples`` hard samples and ``softmax(logits)``
    (``logits``: ``batch_shape + (K,)``), with the TV expected from exact categorical draws."""
    _check_estimator(estimator)
    n_samples = check_n_samples(n_samples)
    kwargs = sampler_params(estimator, params)
    batch = jnp.broadcast_to(jax.lax.stop_gradient(logits), (n_samples, *logits.shape))
    if estimator == REINFORCE:
        hard = jax.nn.one_hot(jax.random.categorical(key, batch), batch.shape[-1], dtype=batch.dtype)
    else:
        hard = jax.jit(lambda key, batch: SAMPLERS[estimator](key, batch, **kwargs))(key, batch)
    return fidelity_report(np.asarray(hard), np.asarray(jax.nn.softmax(logits, axis=-1)), estimator, params)


def standard_problem(seed: int = 0) -> tuple[jax.Array, dict]:
    """``(logits, functions)``: ``(3, 4)`` logits (float64 when ``jax_enable_x64`` is on) and the
    ``linear``, ``quadratic`` and ``bump`` ``f`` of :func:`relaxed_dists.diagnostics.standard_coefficients`."""
    arrays = {k: jnp.asarray(v) for k, v in standard_coefficients(seed).items()}
    c, a, v = arrays["c"], arrays["a"], arrays["v"]
    functions = {
        "linear": lambda x: (x * c).sum(axis=(-2, -1)),
        "quadratic": lambda x: jnp.einsum("...lk,lmkj,...mj->...", x, a, x),
        "bump": lambda x: jnp.exp(-2.0 * ((x @ v - 0.45) ** 2).sum(axis=-1)),
    }
    return arrays["logits"], functions


def _is_relaxed(site) -> bool:
    """Whether a trace node is a latent site drawn from a relaxed (estimator) class of :mod:`numpyro_ext.relax`."""
    if site["type"] != "sample" or site["is_observed"]:
        return False
    classes = (*_relax.ONE_HOT_CLASSES.values(), *_relax.BERNOULLI_CLASSES.values())
    return isinstance(_relax._unwrap(site["fn"])[0], classes)


def _log_density_downstream(trace, values: dict) -> jax.Array:
    """The trace's log density, with each site of ``values`` scored at its value under
    ``stop_gradient``: what remains of a relaxed value's gradient is what reaches it through the
    rest of the program."""
    total = jnp.zeros(())
    for name, site in trace.items():
        if site["type"] == "sample":
            value = jax.lax.stop_gradient(site["value"]) if name in values else site["value"]
            log_p = site["fn"].log_prob(value)
            total = total + jnp.sum(log_p if site["scale"] is None else site["scale"] * log_p)
    return total


def check_gradients(key: jax.Array, model, guide, *args, params=None, **kwargs) -> dict[str, float]:
    r"""Norms of the ELBO's gradient with respect to each relaxed discrete value of ``guide``,
    and a :class:`~relaxed_dists.diagnostics.NoGradientWarning` naming the sites where it is zero.

    One draw of ``guide`` (a :func:`~numpyro_ext.relax.relax` -ed guide, or one with relaxed
    classes), seeded with ``key``, is replayed through ``model``, as ``Trace_ELBO`` does; then one
    ``jax.grad`` of ``log p(x, z) - log q(z)`` with respect to the relaxed values (substituted back
    at their sites, the same noise elsewhere) gives the gradient at each ``z_s``, with the two terms
    of the site itself (``log p(z_s | ...)``, ``log q(z_s | ...)``) held fixed: what is left is
    what the rest of the model (the likelihood, the sites that use ``z_s``) sends back. It is zero
    when the model reads the value only through a step without a derivative, e.g.
    ``value.argmax(-1)`` as an index; use :func:`~numpyro_ext.relax.take_one_hot` (or
    ``value @ table``) instead.

    ``params``: ``{name: value}`` for the ``numpyro.param`` sites of model and guide, as
    ``svi.get_params(state)`` returns them (``handlers.substitute``); by default their initial values.

    Returns ``{site: ||d ELBO / d z_s||}`` (Python floats).

    >>> import jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist
    >>> from numpyro_ext.distributions import OneHotCategorical
    >>> from numpyro_ext.relax import relax, take_one_hot
    >>> means = jnp.array([-2.0, 0.0, 2.0])
    >>> def model(x):
    ...     with numpyro.plate("data", len(x)):
    ...         z = numpyro.sample("z", OneHotCategorical(logits=jnp.zeros(3)))
    ...         numpyro.sample("x", dist.Normal(take_one_hot(means, z), 1.0), obs=x)
    >>> def guide(x):
    ...     logits = numpyro.param("logits", jnp.zeros((len(x), 3)))
    ...     with numpyro.plate("data", len(x)):
    ...         numpyro.sample("z", OneHotCategorical(logits=logits))
    >>> x = jnp.array([1.0, -1.0])
    >>> norms = check_gradients(jax.random.PRNGKey(0), model, relax(guide, estimator="st"), x)
    >>> sorted(norms), norms["z"] > 0
    (['z'], True)
    """
    guide_key, model_key = jax.random.split(key)
    guide = handlers.seed(handlers.substitute(guide, data=params or {}), guide_key)
    model = handlers.seed(handlers.substitute(model, data=params or {}), model_key)
    guide_trace = handlers.trace(guide).get_trace(*args, **kwargs)
    values = {name: site["value"] for name, site in guide_trace.items() if _is_relaxed(site)}

    def elbo(values):
        # substitute outside seed: the other sites draw the same noise as in guide_trace
        guide_trace = handlers.trace(handlers.substitute(guide, data=values)).get_trace(*args, **kwargs)
        model_trace = handlers.trace(handlers.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return _log_density_downstream(model_trace, values) - _log_density_downstream(guide_trace, values)

    grads = jax.jit(jax.grad(elbo))(values)  # one compiled program: faster than op-by-op dispatch
    norms = {name: float(jnp.linalg.norm(grads[name])) for name in values}
    dead = [name for name, norm in norms.items() if norm == 0.0]
    if dead:
        warnings.warn(no_gradient_message(dead), NoGradientWarning, stacklevel=2)
    return norms


def main(argv=None) -> str:
    """Prints and returns the markdown report of one estimator (and REINFORCE) on the standard problem,
    in float64. ``main(["select", "module:function", ...])`` runs :func:`numpyro_ext.selection.main`
    (the selection table for a user's model and guide) instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "select":
        from .selection import main as select_main

        return select_main(argv[1:])
    jax.config.update("jax_enable_x64", True)
    args = cli_parser("python -m numpyro_ext.diagnostics", list(SAMPLERS)).parse_args(argv)
    params = cli_params(args)
    key = jax.random.PRNGKey(args.seed)  # the same key for every row: common random numbers
    logits, functions = standard_problem(args.seed)
    sections = []
    for name in args.function or FUNCTIONS:
        rows = {}
        for estimator, hyper in ((REINFORCE, {}), (args.estimator, params)):
            report = gradient_report(key, estimator, functions[name], logits, args.samples, **hyper)
            rows[report.label] = report
        norm = float(jnp.linalg.norm(exact_gradient(functions[name], logits)))
        sections.append(gradient_markdown(rows, f"### f = {name}  (||exact gradient|| = {norm:.4g})"))
    fidelity_logits = jnp.asarray(standard_coefficients(args.seed)["fidelity_logits"])
    n_fidelity = args.fidelity_samples or 10 * args.samples
    fidelity = sample_fidelity(key, args.estimator, fidelity_logits, n_fidelity, **params)
    sections.append(f"### Law of the hard samples, K = {fidelity_logits.shape[-1]}\n\n{fidelity.to_markdown()}")
    text = "\n\n".join(sections)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
