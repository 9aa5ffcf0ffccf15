"""Static parity: the two backends export the same names with the same signatures.

Functions that draw randomness (the functional samplers, the diagnostics) differ by exactly
one leading ``key`` argument in JAX (explicit PRNG keys); every other signature matches
parameter for parameter.
"""

import importlib
import inspect

import pytest

pyro_ext = pytest.importorskip("pyro_ext")
numpyro_ext = pytest.importorskip("numpyro_ext")

MODULES = ["concrete", "estimators", "functional", "distributions", "relax", "kl", "diagnostics"]


def _params(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = list(inspect.signature(target).parameters.values())
    return [(p.name, p.kind) for p in params if p.name != "self"]


def test_same_public_names():
    assert sorted(pyro_ext.__all__) == sorted(numpyro_ext.__all__)


@pytest.mark.parametrize("module", MODULES)
def test_same_module_names(module):
    torch_mod = importlib.import_module(f"pyro_ext.{module}")
    jax_mod = importlib.import_module(f"numpyro_ext.{module}")
    assert sorted(torch_mod.__all__) == sorted(jax_mod.__all__)


@pytest.mark.parametrize("module", MODULES)
def test_same_signatures(module):
    torch_mod = importlib.import_module(f"pyro_ext.{module}")
    jax_mod = importlib.import_module(f"numpyro_ext.{module}")
    for name in torch_mod.__all__:
        t_obj, j_obj = getattr(torch_mod, name), getattr(jax_mod, name)
        if not callable(t_obj) or (inspect.isclass(t_obj) and name == "OneHotCategorical"):
            continue  # SAMPLERS is a dict; Pyro's OneHotCategorical is Pyro's own class
        t_params, j_params = _params(t_obj), _params(j_obj)
        if module == "functional":
            assert j_params[0][0] == "key", f"{name}: JAX sampler must take a leading key"
        if j_params and j_params[0][0] == "key" and (not t_params or t_params[0][0] != "key"):
            j_params = j_params[1:]  # explicit PRNG keys: the one intended difference
        assert t_params == j_params, f"{module}.{name}: {t_params} != {j_params}"


def test_same_sampler_registry():
    assert sorted(pyro_ext.SAMPLERS) == sorted(numpyro_ext.SAMPLERS)
