"""Higher order: ``gc.jacobian`` (every partial ∂y_i/∂x_j) and ``gc.hessian`` (the jacobian of a gradient).

Both are built from the first-order passes, so they are ordinary graph nodes like every gradient:

- **reverse** (one ``gc.gradients`` pass per element of y, its ``grad_ys`` a one-hot constant): each pass
  gives one row ∂y_i/∂x, of x's shape;
- **forward** (one ``gc.jvp`` pass per element of x, its tangent a one-hot constant): each pass gives one
  column ∂y/∂x_j, of y's shape.

``mode="auto"`` picks whichever needs fewer passes (reverse on a tie, so a hessian is reverse-over-reverse).
The rows or columns are stacked and reshaped to ``y.shape + x.shape``. Shapes must be fully known: the
number of passes is fixed when the graph is built.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from graphc.autodiff.forward import jvp
from graphc.autodiff.paths import between
from graphc.autodiff.reverse import (
    UNCONNECTED,
    UnconnectedGradientWarning,
    _as_list,
    _check_float,
    _check_graph,
    gradients,
)
from graphc.errors import ArgumentError, GradientError, ShapeError
from graphc.graph.node import Tensor
from graphc.graph.types import format_shape
from graphc.ops.shape import reshape, stack
from graphc.ops.sources import constant

MODES = ("auto", "reverse", "forward")


def jacobian(y: Tensor, x: Tensor, mode: str = "auto", unconnected: str = "zero") -> Tensor | None:
    """∂y/∂x as one tensor of shape ``y.shape + x.shape``: entry ``[i..., j...]`` is ∂y[i...]/∂x[j...].

    ``mode``: ``"reverse"`` builds one reverse pass per element of y, ``"forward"`` one forward pass per
    element of x, ``"auto"`` (default) the one with fewer passes. When y does not depend on x at all the
    result is zeros with an UnconnectedGradientWarning saying why (``unconnected="zero"``), None
    (``"none"``) or a GradientError (``"raise"``), as for ``gc.gradients``.
    """
    (y,), (x,) = _as_single(y, "y"), _as_single(x, "x")
    if mode not in MODES:
        raise ArgumentError(f"jacobian: mode must be one of {MODES}, got {mode!r}")
    if unconnected not in UNCONNECTED:
        raise ArgumentError(f"unconnected must be one of {UNCONNECTED}, got {unconnected!r}")
    graph = _check_graph([y, x])
    _check_float([x], "differentiate with respect to")
    _check_float([y], "differentiate")
    _check_known(y, "y", "jacobian")
    _check_known(x, "x", "jacobian")
    if math.prod(y.shape) == 0 or math.prod(x.shape) == 0:
        return _zeros(y.shape + x.shape, x)  # no entries, no passes
    if mode == "auto":
        mode = "reverse" if math.prod(y.shape) <= math.prod(x.shape) else "forward"
    with graph.as_default(), graph.name_scope("jacobian"):
        if mode == "reverse":
            return _reverse_jacobian(y, x, unconnected)
        return _forward_jacobian(y, x, unconnected)


def hessian(y: Tensor, x: Tensor, mode: str = "auto", unconnected: str = "zero") -> Tensor | None:
    """∂²y/∂x² of a scalar y, of shape ``x.shape + x.shape``: the jacobian of ``gc.gradients(y, x)``.

    With ``mode="auto"`` that is reverse-over-reverse (one reverse pass per element of x through the
    gradient's graph). ``unconnected`` applies to y and x as in ``gc.jacobian``; a gradient that no longer
    depends on x (y linear in x) gives a zero hessian without a warning.
    """
    (y,), (x,) = _as_single(y, "y"), _as_single(x, "x")
    if unconnected not in UNCONNECTED:
        raise ArgumentError(f"unconnected must be one of {UNCONNECTED}, got {unconnected!r}")
    if y.shape != ():
        raise ShapeError(f"gc.hessian needs a scalar y; '{y.name}' (created at {y.node.source}) has shape "
                         f"{format_shape(y.shape)}: use gc.jacobian of its gradient, or reduce it first")
    _check_float([x], "differentiate with respect to")
    _check_known(x, "x", "hessian")
    (gradient,) = gradients(y, x, unconnected="none")
    if gradient is None:
        return _unconnected_result(y, x, x.shape + x.shape, unconnected, "hessian", stacklevel=3)
    result = jacobian(gradient, x, mode, unconnected="none")
    return result if result is not None else _zeros(x.shape + x.shape, x)


def _reverse_jacobian(y: Tensor, x: Tensor, unconnected: str) -> Tensor | None:
    rows = []
    for flat in range(math.prod(y.shape)):
        (row,) = gradients(y, x, grad_ys=_one_hot(y, flat), unconnected="none")
        rows.append(row)
    if all(row is None for row in rows):
        return _unconnected_result(y, x, y.shape + x.shape, unconnected)
    rows = [_zeros(x.shape, x) if row is None else row for row in rows]
    return reshape(stack(rows, axis=0), y.shape + x.shape)


def _forward_jacobian(y: Tensor, x: Tensor, unconnected: str) -> Tensor | None:
    if not between([x], [y]):
        return _unconnected_result(y, x, y.shape + x.shape, unconnected)
    columns = [jvp(y, x, _one_hot(x, flat))[0] for flat in range(math.prod(x.shape))]
    return reshape(stack(columns, axis=y.ndim), y.shape + x.shape)


def _unconnected_result(y: Tensor, x: Tensor, shape: tuple, unconnected: str,
                        what: str = "jacobian", stacklevel: int = 4) -> Tensor | None:
    """What an unconnected y gives, as for gc.gradients: zeros with a warning, None, or a GradientError."""
    if unconnected == "none":
        return None
    try:  # one plain reverse pass says why (which op, if any, cuts every path)
        gradients(y, x, unconnected="raise")
    except GradientError as error:
        reason = str(error)
    else:  # pragma: no cover - connectivity does not depend on grad_ys
        raise GradientError(f"internal: '{y.name}' was found unconnected to '{x.name}' and then connected")
    if unconnected == "raise":
        raise GradientError(reason)
    warnings.warn(f"{reason}; its {what} is zeros", UnconnectedGradientWarning, stacklevel=stacklevel)
    return _zeros(shape, x)


def _one_hot(like: Tensor, flat: int) -> np.ndarray:
    value = np.zeros(math.prod(like.shape), dtype=like.dtype)
    value[flat] = 1
    return value.reshape(like.shape)


def _zeros(shape: tuple, like: Tensor) -> Tensor:
    with like.graph.as_default():
        return constant(np.zeros(shape, dtype=like.dtype))


def _as_single(value, what: str) -> list[Tensor]:
    items = _as_list(value, what)
    if len(items) != 1:
        raise GradientError(f"{what} must be one tensor, got {len(items)}; call once per pair")
    return items


def _check_known(t: Tensor, what: str, function: str) -> None:
    if any(d is None for d in t.shape):
        raise ShapeError(f"gc.{function} needs fully known shapes: {what} '{t.name}' (created at {t.node.source}) "
                         f"has shape {format_shape(t.shape)}, and the number of derivative passes is fixed when "
                         "the graph is built; give the placeholder a fixed shape")
