"""Shared test set-up: float64 enabled in JAX so the oracle comparisons run in float64;
float32 tests ask for float32 explicitly."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

try:
    import jax

    jax.config.update("jax_enable_x64", True)
except ImportError:  # the torch-only install runs the torch tests alone
    pass
