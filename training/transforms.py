"""The gradient transformations SGD, Adam and K-FAC share (optax's habit: small pieces composed by each optimiser).

- ``decayed``: L2 weight decay added to a weight's gradient (biases are not decayed).
- ``heavy_ball``: momentum on an update direction, b <- mu b + d (Nesterov: d + mu b), with its buffer.
"""
from __future__ import annotations

import numpy as np


def is_weight(key: str) -> bool:
    return key.endswith(".W")


def decayed(grad: np.ndarray, param: np.ndarray, weight_decay: float, weight: bool = True) -> np.ndarray:
    """grad + weight_decay * param for weights (``weight``), grad unchanged otherwise."""
    return grad + weight_decay * param if (weight_decay and weight) else grad


def heavy_ball(buf: np.ndarray, direction: np.ndarray, momentum: float,
               nesterov: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(the step direction, the new buffer). With momentum 0 the direction passes through and the buffer stays."""
    if not momentum:
        return direction, buf
    new_buf = momentum * buf + direction
    return (direction + momentum * new_buf if nesterov else new_buf), new_buf
