"""Shape rules shared by both backends.

``logits.shape == batch_shape + (K,)``; samples have shape
``sample_shape + batch_shape + (K,)``; ``log_prob`` returns ``sample_shape + batch_shape``.
Hyperparameters such as ``temperature`` and ``t_1`` broadcast against ``batch_shape``
(never against the event dimension): a temperature of shape ``(K,)`` is a batch of
temperatures, not one per category.

>>> batch_shape_of((2, 3, 5), temperature=(3,))  # logits (2, 3, 5): batch (2, 3), K = 5
(2, 3)
>>> batch_shape_of((2, 3, 5), temperature=(5,))
Traceback (most recent call last):
    ...
ValueError: temperature must broadcast to the batch shape (2, 3) (logits.shape[:-1]; never to the event dimension), got temperature.shape=(5,)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["broadcast_shapes", "batch_shape_of", "check_value_shape"]


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """NumPy broadcasting of shapes, with an error that lists the shapes."""
    # max(..., default=0) is not traceable by torch.compile(fullgraph=True); max over a
    # list that always holds 0 gives the same result and compiles.
    ndim = max([0] + [len(s) for s in shapes])
    out = []
    for i in range(-ndim, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i and s[i] != 1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def batch_shape_of(logits_shape: Sequence[int], **params: Sequence[int]) -> tuple[int, ...]:
    """``batch_shape`` from ``logits.shape[:-1]`` broadcast with each hyperparameter's shape.

    Each keyword is a parameter name and its shape; the message names the parameter.
    """
    batch = tuple(logits_shape[:-1])
    for name, shape in params.items():
        try:
            batch = broadcast_shapes(batch, shape)
        except ValueError:
            raise ValueError(
                f"{name} must broadcast to the batch shape {tuple(logits_shape[:-1])} "
                f"(logits.shape[:-1]; never to the event dimension), got {name}.shape={tuple(shape)}"
            ) from None
    return batch


def check_value_shape(value_shape: Sequence[int], batch_shape: Sequence[int], event_shape: Sequence[int]) -> None:
    """``value`` must end in ``event_shape`` and broadcast against ``batch_shape``."""
    n = len(event_shape)
    if tuple(value_shape[len(value_shape) - n :]) != tuple(event_shape) or len(value_shape) < n:
        raise ValueError(
            f"value must have shape sample_shape + batch_shape + event_shape with "
            f"event_shape={tuple(event_shape)}, got value.shape={tuple(value_shape)}"
        )
    try:
        broadcast_shapes(tuple(value_shape[: len(value_shape) - n]), tuple(batch_shape))
    except ValueError:
        raise ValueError(
            f"value.shape={tuple(value_shape)} does not broadcast with batch_shape={tuple(batch_shape)}"
        ) from None
