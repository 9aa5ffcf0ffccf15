"""One table of cases for both backends (like NumPyro's ``T(...)`` lists and Pyro's fixtures).

Each case is plain NumPy float64 data; a backend test turns it into tensors/arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Case", "CASES", "TEMPERATURES", "EVENT_SIZES", "BATCH_SHAPES", "make_logits"]

EVENT_SIZES = (2, 3, 10, 1000)
TEMPERATURES = (0.05, 0.1, 0.5, 1.0, 5.0)
BATCH_SHAPES = ((), (3,), (2, 1))


def make_logits(batch_shape, k, spread, seed=0):
    """Logits of shape ``batch_shape + (k,)`` spread uniformly in ``[-spread, spread]``."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-spread, spread, size=tuple(batch_shape) + (k,))


@dataclass(frozen=True)
class Case:
    k: int
    temperature: float
    batch_shape: tuple
    spread: float  # logits lie in [-spread, spread]

    @property
    def logits(self):
        return make_logits(self.batch_shape, self.k, self.spread, seed=self.k)

    def __str__(self):
        return f"K{self.k}-tau{self.temperature}-b{'x'.join(map(str, self.batch_shape)) or 'scalar'}-s{self.spread}"


CASES = [
    Case(2, 0.05, (), 1.0),
    Case(2, 5.0, (3,), 50.0),
    Case(3, 0.5, (2, 1), 3.0),
    Case(3, 0.1, (3,), 50.0),
    Case(10, 1.0, (), 3.0),
    Case(10, 0.05, (2, 1), 10.0),
    Case(10, 5.0, (3,), 1.0),
    Case(1000, 0.5, (3,), 3.0),
    Case(1000, 0.05, (), 50.0),
]
