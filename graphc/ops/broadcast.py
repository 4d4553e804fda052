"""The two ops that undo or redo broadcasting at run time, for gradients: ``sum_to`` and ``broadcast_like``.

A cotangent of a broadcast result must be summed back to each operand's shape. When shapes hold ``None``
the broadcast axes may only be known at run time (a ``(None, 3)`` operand fed one row broadcasts against
five), so these ops take a ``like`` tensor whose run-time shape is the target. ``unbroadcast`` decides
statically when no summing can be needed and returns the cotangent unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.errors import AssumptionError, ShapeError
from graphc.graph.node import Tensor
from graphc.graph.types import TensorType, broadcast_shapes, format_shape
from graphc.ops.registry import OpDef, apply, register

__all__ = ["broadcast_like", "sum_to", "match_shape"]


def _sum_to_infer(x: TensorType, like: TensorType) -> TensorType:
    if like.rank > x.rank or any(
            t is not None and s is not None and t not in (1, s) for s, t in zip(x.shape[x.rank - like.rank:],
                                                                                 like.shape)):
        raise ShapeError(f"cannot sum {format_shape(x.shape)} to the shape {format_shape(like.shape)}: it is "
                         "not a broadcast of it")
    return TensorType(x.dtype, like.shape)


def _sum_to_reference(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    lead = x.ndim - like.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(like.shape) if n == 1 and x.shape[lead + i] != 1)
    total = np.sum(x, axis=axes, keepdims=True) if axes else x
    return total.reshape(like.shape)  # raises if x was not a broadcast of like's run-time shape


def _broadcast_like_infer(x: TensorType, like: TensorType) -> TensorType:
    if x.rank > like.rank:
        raise ShapeError(f"cannot broadcast {format_shape(x.shape)} to the lower rank {format_shape(like.shape)}")
    return TensorType(x.dtype, broadcast_shapes(x.shape, like.shape))


SUM_TO = register(OpDef(
    "sum_to", "broadcast", _sum_to_infer, _sum_to_reference,
    vjp=lambda node, cotangent: (broadcast_like(cotangent, node.inputs[0]), None),
    jvp=lambda node, tangents: None if tangents[0] is None else sum_to(tangents[0], node.inputs[1]),
    doc="x summed over the axes along which like's run-time shape was broadcast to x's."))

BROADCAST_LIKE = register(OpDef(
    "broadcast_like", "broadcast", _broadcast_like_infer,
    lambda x, like: np.broadcast_to(x, np.broadcast_shapes(x.shape, like.shape)),
    vjp=lambda node, cotangent: (sum_to(cotangent, node.inputs[0]), None),
    jvp=lambda node, tangents: None if tangents[0] is None else broadcast_like(tangents[0], node.inputs[1]),
    doc="x broadcast to the run-time shape of like (the transpose of sum_to)."))


def _match_shape_infer(x: TensorType, like: TensorType) -> TensorType:
    if x.rank != like.rank or any(a is not None and b is not None and a != b for a, b in zip(x.shape, like.shape)):
        raise AssumptionError(f"{format_shape(x.shape)} was assumed to have the shape of {format_shape(like.shape)}")
    return TensorType(x.dtype, tuple(a if a is not None else b for a, b in zip(x.shape, like.shape)))


def _match_shape_reference(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    _match_shape_infer(TensorType(x.dtype.name, x.shape), TensorType(like.dtype.name, like.shape))
    return x


MATCH_SHAPE = register(OpDef(
    "match_shape", "broadcast", _match_shape_infer, _match_shape_reference,
    vjp=lambda node, cotangent: (cotangent, None),
    jvp=lambda node, tangents: tangents[0],
    doc="x itself, asserting that its run-time shape is like's: what an optimized graph leaves of a sum_to or "
        "broadcast_like between unknown sizes it assumes equal (AssumptionError at run time if they are not)."))


def match_shape(x: Tensor, like: Tensor, name: str | None = None) -> Tensor:
    """``x``, whose run-time shape must equal ``like``'s (an optimizer's assumption, checked at run time)."""
    return apply(MATCH_SHAPE, [x, like], name)


def sum_to(x: Tensor, like: Tensor, name: str | None = None) -> Tensor:
    """``x`` summed back to ``like``'s run-time shape (of which ``x``'s shape is a broadcast)."""
    return apply(SUM_TO, [x, like], name)


def broadcast_like(x: Tensor, like: Tensor, name: str | None = None) -> Tensor:
    """``x`` broadcast to ``like``'s run-time shape."""
    return apply(BROADCAST_LIKE, [x, like], name)


def may_broadcast(x: Tensor, operands: Sequence[Tensor]) -> bool:
    """Whether ``x`` may have been stretched when ``operands`` (x among them) were broadcast together.

    Certain "no" only when, on every axis of the result, ``x`` has a known size other than 1, or every other
    operand lacks the axis or has size 1 there.
    """
    rank = max(o.ndim for o in operands)
    if x.ndim < rank:
        return True
    for axis in range(rank):
        others = [o.shape[axis - rank + o.ndim] for o in operands if o is not x and axis - rank + o.ndim >= 0]
        # a size-1 (or unknown, so maybe 1) axis is stretched by any other size but 1, including 0
        if x.shape[axis] in (None, 1) and any(d != 1 for d in others):
            return True
    return False


def unbroadcast(cotangent: Tensor, x: Tensor, operands: Sequence[Tensor]) -> Tensor:
    """The cotangent of a broadcast of ``operands`` summed back to operand ``x``'s shape."""
    return sum_to(cotangent, x) if may_broadcast(x, operands) else cotangent


def expand_to(tangent: Tensor, result: Tensor, operands: Sequence[Tensor], x: Tensor) -> Tensor:
    """A tangent (or term) with ``x``'s shape broadcast to the shape of ``result`` (of ``operands``)."""
    return broadcast_like(tangent, result) if may_broadcast(x, operands) else tangent
