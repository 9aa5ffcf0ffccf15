"""Every docstring example of the three packages runs and prints what it says.

One test per module, with the standard library's ``doctest`` (``ELLIPSIS`` and
``NORMALIZE_WHITESPACE``). Every public module (no leading underscore) must hold at least one
example, so a module whose examples are deleted fails here instead of passing with nothing run.
The examples are seeded or print only shapes, sums and booleans, never floats that could drift.
"""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("relaxed_dists", "pyro_ext", "numpyro_ext")
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules():
    names = []
    for package in PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(path)]
    return names


def _expects_examples(name):
    """Public submodules must have examples; the package ``__init__``s and private modules may."""
    return "." in name and not name.rsplit(".", 1)[1].startswith("_")


@pytest.fixture(autouse=True)
def _fresh_state():
    """Pyro's global parameter store outlives a module's examples: start each module empty."""
    import pyro

    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    # ``pyro_ext.relax`` (the function) shadows the submodule of the same name on the package:
    # import_module returns the module itself.
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=OPTIONS, report=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples failed in {name} (run: python -m doctest -v)"
    )
    if _expects_examples(name):
        assert result.attempted > 0, f"{name} has no docstring example"
