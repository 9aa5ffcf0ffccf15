"""Shared test set-up: fresh cache and config directories for the session, float64 enabled in JAX so the oracle comparisons run in float64
(float32 tests ask for float32 explicitly), and torch's global distribution-validation
default restored after every test: the first ``torch.compile`` in a process switches it off
(``torch.distributions.Distribution._validate_args`` goes from True to False), which would
otherwise leak into every later test."""

import os
import tempfile

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# Under pytest-xdist (README's `-n auto`: one worker per core) each worker, and every example it
# starts in a subprocess, computes on one thread: torch's and XLA's own thread pools would
# otherwise put two busy threads on every core (measured on 2 cores: the suite took 600 s with
# both pools on, the JAX examples three times their single-process time).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # the JAX-only install
        pass

# Fresh by construction: every test session (and every example it starts in a subprocess) gets
# an empty cache and matplotlib config directory, as a new CI machine has. Libraries that act
# once per machine or per day (ArviZ 0.23's daily FutureWarning, stamped in
# $XDG_CACHE_HOME/arviz/daily_warning) then behave here as they will there.
_FRESH = tempfile.mkdtemp(prefix="relaxed-dists-tests-")
os.environ["XDG_CACHE_HOME"] = os.path.join(_FRESH, "cache")
os.environ["MPLCONFIGDIR"] = os.path.join(_FRESH, "mplconfig")

try:
    import jax

    jax.config.update("jax_enable_x64", True)
except ImportError:  # the torch-only install runs the torch tests alone
    pass


@pytest.fixture(autouse=True)
def _restore_torch_validation_default():
    try:
        from torch.distributions import Distribution
    except ImportError:
        yield
        return
    before = Distribution._validate_args
    yield
    Distribution.set_default_validate_args(before)
