"""Backend-only installs: each backend is an extra, so ``import numpyro_ext`` without JAX/NumPyro
(``import pyro_ext`` without torch/Pyro) must fail with an ImportError that names the extra to
install, and the NumPy-only core must import with neither backend present.

A fresh interpreter per case, with a ``sys.meta_path`` finder in front that refuses the blocked
top-level packages as if they were not installed (the packages themselves stay on this machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TORCH = ("torch", "pyro")
JAX = ("jax", "jaxlib", "numpyro", "optax")

_BLOCKER = """
import importlib.abc, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def _run(blocked: tuple[str, ...], code: str) -> subprocess.CompletedProcess:
    source = f"BLOCKED = {set(blocked)!r}\n" + _BLOCKER + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", source], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _import_error_of(module: str, blocked: tuple[str, ...]) -> str:
    result = _run(
        blocked,
        f"""
        try:
            import {module}
        except ImportError as err:
            print("ImportError:", err)
            print("cause:", type(err.__cause__).__name__, getattr(err.__cause__, "name", None))
        else:
            print("imported")
        """,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("missing", [JAX, ("numpyro",)], ids=["no-jax", "no-numpyro"])
def test_numpyro_ext_without_its_hosts_names_the_extra(missing):
    out = _import_error_of("numpyro_ext", missing)
    assert 'pip install "relaxed-dists[numpyro]"' in out, out
    assert "cause: ModuleNotFoundError" in out, out  # re-raised from the original error


@pytest.mark.parametrize("missing", [TORCH, ("pyro",)], ids=["no-torch", "no-pyro"])
def test_pyro_ext_without_its_hosts_names_the_extra(missing):
    out = _import_error_of("pyro_ext", missing)
    assert 'pip install "relaxed-dists[pyro]"' in out, out
    assert "cause: ModuleNotFoundError" in out, out


def test_core_imports_with_neither_backend():
    """Every module of the core (NumPy and the standard library only) with both backends blocked."""
    result = _run(
        TORCH + JAX,
        """
        import importlib, pkgutil
        import relaxed_dists
        names = [m.name for m in pkgutil.iter_modules(relaxed_dists.__path__, "relaxed_dists.")]
        for name in names:
            importlib.import_module(name)
        print(relaxed_dists.__version__, len(names))
        """,
    )
    assert result.returncode == 0, result.stderr
    version, n_modules = result.stdout.split()
    assert version == __import__("relaxed_dists").__version__ and int(n_modules) >= 10


@pytest.mark.parametrize(
    ("module", "other"), [("pyro_ext", JAX), ("numpyro_ext", TORCH)], ids=["pyro-only", "numpyro-only"]
)
def test_each_backend_imports_without_the_other(module, other):
    result = _run(other, f"import {module}; print({module}.__version__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __import__("relaxed_dists").__version__
