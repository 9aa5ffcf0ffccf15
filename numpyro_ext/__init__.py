"""relaxed-dists for NumPyro (JAX): relaxed and straight-through categorical distributions,
REDGE-family estimators, their kernels and a ``redge``-package-compatible functional API.

Mirrors :mod:`pyro_ext` name for name. Needs JAX and NumPyro: ``pip install "relaxed-dists[numpyro]"``.
"""

try:  # the backend is an extra: say which one when its host libraries are missing
    import jax  # noqa: F401
    import numpyro  # noqa: F401
except ImportError as err:
    raise ImportError(
        f"numpyro_ext needs JAX and NumPyro, which are not installed ({err}); "
        'install them with: pip install "relaxed-dists[numpyro]"'
    ) from err

from relaxed_dists import __version__ as __version__  # re-exported: the one version

# `relax` is the function (from .relax below), which shadows the submodule of that name.
from . import autoguide, concrete, diagnostics, diffusion, distributions, estimators, functional, kl, selection
from .autoguide import AutoRelaxed
from .distributions import (
    REDGE,
    REINDGE,
    BernoulliREDGE,
    BernoulliREDGECov,
    BernoulliREINDGE,
    BernoulliReinMax,
    BernoulliStraightThrough,
    ExpRelaxedOneHotCategorical,
    OneHotCategorical,
    REDGECov,
    ReinMax,
    RelaxedBernoulli,
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategorical,
    RelaxedOneHotCategoricalStraightThrough,
    StraightThrough,
)
from .functional import SAMPLERS, gumbel_softmax, redge, redge_cov, reindge, reinmax, straight_through
from .relax import RelaxReparam, exponential_anneal, relax, take_one_hot
from .selection import select_estimator

__all__ = [
    "autoguide",
    "concrete",
    "diagnostics",
    "diffusion",
    "distributions",
    "estimators",
    "functional",
    "kl",
    "relax",
    "selection",
    "ExpRelaxedOneHotCategorical",
    "RelaxedOneHotCategorical",
    "RelaxedOneHotCategoricalStraightThrough",
    "RelaxedBernoulli",
    "RelaxedBernoulliStraightThrough",
    "OneHotCategorical",
    "StraightThrough",
    "ReinMax",
    "REDGE",
    "REDGECov",
    "REINDGE",
    "BernoulliStraightThrough",
    "BernoulliReinMax",
    "BernoulliREDGE",
    "BernoulliREDGECov",
    "BernoulliREINDGE",
    "SAMPLERS",
    "straight_through",
    "gumbel_softmax",
    "reinmax",
    "redge",
    "redge_cov",
    "reindge",
    "RelaxReparam",
    "exponential_anneal",
    "take_one_hot",
    "AutoRelaxed",
    "select_estimator",
]
