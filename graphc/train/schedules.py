"""Learning-rate schedules: scalar float32 tensors computed from a step counter (``optimizer.iterations``).

Built from graph ops, so the rate is recomputed inside every compiled training step:
``gc.train.SGD(lambda step: gc.train.exponential_decay(0.1, step, decay_steps=100, decay_rate=0.5))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from graphc.errors import ArgumentError
from graphc.graph.node import Tensor
from graphc.ops.elementwise import cast, cos, minimum, where

__all__ = ["cosine_decay", "exponential_decay", "piecewise_constant"]


def exponential_decay(learning_rate: float, step: Tensor, decay_steps: int, decay_rate: float,
                      staircase: bool = False) -> Tensor:
    """``learning_rate · decay_rate ** (step / decay_steps)`` (TF1's); ``staircase`` decays in whole
    ``decay_steps`` jumps (the exponent rounded down)."""
    _check_positive(decay_steps, "decay_steps")
    progress = _as_float(step) / float(decay_steps)
    if staircase:  # step >= 0, so truncating towards zero is rounding down
        progress = cast(cast(progress, "int64"), "float32")
    return learning_rate * decay_rate ** progress


def cosine_decay(learning_rate: float, step: Tensor, decay_steps: int, alpha: float = 0.0) -> Tensor:
    """Half a cosine from ``learning_rate`` down to ``alpha · learning_rate`` over ``decay_steps``, then
    constant (TF1's ``cosine_decay``; torch's CosineAnnealingLR with eta_min = alpha · lr)."""
    _check_positive(decay_steps, "decay_steps")
    progress = minimum(_as_float(step), float(decay_steps)) / float(decay_steps)
    cosine = 0.5 * (1.0 + cos(math.pi * progress))
    return learning_rate * ((1.0 - alpha) * cosine + alpha)


def piecewise_constant(step: Tensor, boundaries: Sequence[int], values: Sequence[float]) -> Tensor:
    """``values[0]`` while ``step < boundaries[0]``, ``values[1]`` up to ``boundaries[1]``, …, the last value
    after the last boundary (TF1's ``piecewise_constant``; boundaries must increase)."""
    if len(values) != len(boundaries) + 1:
        raise ArgumentError(f"piecewise_constant: needs one value more than boundaries, got {len(boundaries)} "
                            f"boundaries and {len(values)} values")
    if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
        raise ArgumentError(f"piecewise_constant: boundaries must increase, got {list(boundaries)}")
    step = _as_float(step)
    rate = step * 0.0 + float(values[-1])
    for boundary, value in reversed(list(zip(boundaries, values))):
        rate = where(step < float(boundary), float(value), rate)
    return rate


def _as_float(step: Tensor) -> Tensor:
    if not isinstance(step, Tensor) or step.shape != ():
        raise ArgumentError(f"a schedule's step must be a scalar tensor (e.g. optimizer.iterations), got {step!r}")
    return cast(step, "float32")


def _check_positive(value: float, what: str) -> None:
    if not value > 0:
        raise ArgumentError(f"{what} must be positive, got {value!r}")
