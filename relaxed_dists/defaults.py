"""The library's default estimator choices, in one place, each chosen by a measurement.

``AUTO_RELAXED_ESTIMATOR`` / ``AUTO_RELAXED_HYPER``: what :class:`pyro_ext.autoguide.AutoRelaxed`
and :class:`numpyro_ext.autoguide.AutoRelaxed` draw their discrete sites with when the user
names no estimator. Chosen by ``benchmarks/autoguide_defaults.py`` (table:
``benchmarks/results/autoguide_defaults.md``): 15 configs (st; gumbel and reinmax at several
temperatures; redge, redge_cov, reindge at three ``(n_steps, t_1)``) train AutoRelaxed's
mean-field guide on five models scored by exact enumeration (1-D and 2-D fixed-means mixtures,
a 3-state HMM, a noisy-OR net, an Ising grid), Trace_ELBO with 8 particles, Adam 0.05, 1,000
steps, 3 seeds. Rule: the smallest worst-case regret (final exact KL per latent variable minus
the best config's). ReinMax at temperature 1 wins, worst-case regret 0.035 nats per variable
(next: reindge ``n_steps=5, t_1=0.5``, 0.038; redge at its registry defaults, 0.56). The
acceptance models of issues 10 and 16 were held out of the suite.

>>> from relaxed_dists.registry import resolve_hyper
>>> RELAX_ESTIMATOR, resolve_hyper(RELAX_ESTIMATOR, RELAX_HYPER)
('reinmax', {'temperature': 1.0})
"""

from __future__ import annotations

__all__ = ["AUTO_RELAXED_ESTIMATOR", "AUTO_RELAXED_HYPER", "RELAX_ESTIMATOR", "RELAX_HYPER", "AUTO_AVERAGED_GRADIENTS"]

#: registry name of the estimator AutoRelaxed uses by default.
AUTO_RELAXED_ESTIMATOR: str = "reinmax"

#: its hyperparameters (completed with the registry's defaults by ``resolve_hyper``).
AUTO_RELAXED_HYPER: dict[str, object] = {"temperature": 1.0}

#: registry name of the estimator :func:`pyro_ext.relax.relax` / :class:`~pyro_ext.relax.RelaxReparam`
#: (and their NumPyro twins) use when the user names none. Provisional: the same measurement as
#: AutoRelaxed's until ``benchmarks/defaults.py`` (issue 10) decides over its larger suite.
RELAX_ESTIMATOR: str = AUTO_RELAXED_ESTIMATOR

#: its hyperparameters.
RELAX_HYPER: dict[str, object] = dict(AUTO_RELAXED_HYPER)

#: ``estimator="auto"`` ranks candidates by the mean squared error of the average of this many
#: single-particle gradients (``select_estimator(num_particles=...)``), not of one gradient. An
#: optimiser moves by the sum of many steps' gradients: over ``H`` steps of ``P`` particles the
#: bias adds up ``H`` times while the noise grows as ``sqrt(H)``, so the error of the displacement
#: per step is ``bias^2 + var / (H P)``. 2000 is 250 SVI steps of 8 particles. Measured on issue
#: 10's mixture (``benchmarks/selection_acceptance_*.py``): ranking one gradient (or 8) picks
#: low-variance biased candidates (Gumbel T=1, REDGE t_1=1: final KL 0.24-0.28 nats per point);
#: ranking 2000 picks ReinMax / REINDGE (0.006-0.014). Override with ``guide.selection_options``.
AUTO_AVERAGED_GRADIENTS: int = 2000
