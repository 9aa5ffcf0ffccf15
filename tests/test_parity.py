"""Static parity: the two backends export the same names with the same signatures.

Functions that draw randomness (the functional samplers, the diagnostics, the diffusion
sampler and loss) differ by exactly one leading ``key`` argument in JAX (explicit PRNG keys),
where torch may take a keyword ``generator`` instead (or nothing: its global generator); every
other signature matches parameter for parameter. In ``diffusion`` the public methods of the
(plain Python) classes are compared too.
"""

import importlib
import inspect

import pytest

pyro_ext = pytest.importorskip("pyro_ext")
numpyro_ext = pytest.importorskip("numpyro_ext")

MODULES = [
    "concrete",
    "estimators",
    "functional",
    "distributions",
    "relax",
    "kl",
    "diagnostics",
    "diffusion",
    "autoguide",
    "selection",
]


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
        if module == "functional":
            assert _params(j_obj)[0][0] == "key", f"{name}: JAX sampler must take a leading key"
        _assert_same_params(f"{module}.{name}", t_obj, j_obj)


def _assert_same_params(where, t_obj, j_obj):
    """Same parameters, modulo the one intended difference: JAX's leading ``key`` for torch's
    ``generator`` keyword (or its global generator)."""
    t_params, j_params = _params(t_obj), _params(j_obj)
    if j_params and j_params[0][0] == "key" and (not t_params or t_params[0][0] != "key"):
        j_params = j_params[1:]
        t_params = [p for p in t_params if p[0] != "generator"]
    assert t_params == j_params, f"{where}: {t_params} != {j_params}"


def _public_methods(cls):
    return sorted(n for n, v in vars(cls).items() if callable(v) and not n.startswith("_"))


def test_same_diffusion_methods():
    from numpyro_ext import diffusion as jax_mod
    from pyro_ext import diffusion as torch_mod

    for name in ("MaskedDiffusion", "MultinomialDiffusion", "Guidance"):
        t_cls, j_cls = getattr(torch_mod, name), getattr(jax_mod, name)
        assert _public_methods(t_cls) == _public_methods(j_cls), name
        for method in _public_methods(t_cls):
            _assert_same_params(f"{name}.{method}", getattr(t_cls, method), getattr(j_cls, method))


def test_same_sampler_registry():
    assert sorted(pyro_ext.SAMPLERS) == sorted(numpyro_ext.SAMPLERS)
