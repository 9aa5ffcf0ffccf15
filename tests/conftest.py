"""Shared test set-up: float64 enabled in JAX so the oracle comparisons run in float64
(float32 tests ask for float32 explicitly), and torch's global distribution-validation
default restored after every test: the first ``torch.compile`` in a process switches it off
(``torch.distributions.Distribution._validate_args`` goes from True to False), which would
otherwise leak into every later test."""

import os

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
