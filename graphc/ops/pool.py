"""2-D max and average pooling (NHWC) and their gradient ops.

``max_pool2d`` and ``avg_pool2d`` slide a (kh, kw) window with stride (sh, sw) over the H and W axes of
x (N, H, W, C). Padding follows TF: "valid" keeps the windows that fit (OH = (H − kh)//sh + 1); "same" gives
OH = ceil(H/sh) and pads max((OH − 1)·sh + kh − H, 0) rows, the smaller half on top. Padded positions never
take part: they never win a max, and an average divides by the number of in-bounds elements of its window.

The derivatives are three internal ops (not exported), each a kernel of its own, that differentiate each
other, so gradients of any order stay within these five ops:
``max_pool2d_grad(x, dy)`` sends each window's dy to the window's max (the FIRST max in row-major window
order on ties, as numpy's argmax; overlapping windows add up); ``max_pool2d_select(x, t)`` reads t at each
window's max (the tangent of max_pool2d); ``avg_pool2d_grad(dy, like)`` spreads dy/count over each window
(``like`` is x, read for its run-time shape only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.dtypes import FLOATS, INTS
from graphc.graph.node import Node, Tensor
from graphc.graph.types import TensorType, format_shape, is_int
from graphc.ops.conv import axis_geometry
from graphc.ops.convert import as_tensor
from graphc.ops.registry import OpDef, apply, register
from graphc.ops.shape import int_tuple

__all__ = ["max_pool2d", "avg_pool2d"]

PADDINGS = ("valid", "same")


# -- windows ---------------------------------------------------------------------------------------------
def pair(value: Any) -> tuple:
    """An int or a pair of ints as (for H, for W); other values are kept for ``infer`` to report."""
    values = int_tuple(value)
    return values * 2 if len(values) == 1 else values


def window_extent(size: int, k: int, s: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) of one spatial axis of ``size`` elements (TF's rule, as conv2d's)."""
    before, _, out = axis_geometry(size, k, s, 1, "same" if padding == "same" else (0, 0))
    return out, before


def _check_attrs(op_name: str, ksize: tuple, stride: tuple, padding: str) -> None:
    for what, value in (("ksize", ksize), ("stride", stride)):
        if len(value) != 2 or not all(is_int(v) and v >= 1 for v in value):
            raise ShapeError(f"{op_name} {what} must be a positive int or a pair of them, got {value!r}")
    if padding not in PADDINGS:
        raise ShapeError(f"{op_name} padding must be 'valid' or 'same', got {padding!r}")


def _pooled_shape(op_name: str, x: TensorType, ksize: tuple, stride: tuple, padding: str) -> tuple:
    """The output shape of pooling x: rank 4, and with "valid" padding every window must fit."""
    _check_attrs(op_name, ksize, stride, padding)
    if x.rank != 4:
        raise ShapeError(f"{op_name} takes x of shape (N, H, W, C), got rank {x.rank} {format_shape(x.shape)}")
    spatial = []
    for axis, size, k, s in zip("HW", x.shape[1:3], ksize, stride):
        if size is not None and padding == "valid" and size < k:
            raise ShapeError(f"{op_name}: the {k}-wide window does not fit the {axis} axis of x "
                             f"{format_shape(x.shape)} with 'valid' padding (pad with 'same')")
        spatial.append(None if size is None else window_extent(size, k, s, padding)[0])
    return (x.shape[0], *spatial, x.shape[3])


def _check_dtype(op_name: str, t: TensorType, allowed: frozenset | tuple, kinds: str) -> None:
    if t.dtype not in allowed:
        raise DTypeError(f"{op_name} needs {kinds} input, got {t.dtype}")


def _check_fits(op_name: str, role: str, shape: tuple, wanted: tuple) -> None:
    if len(shape) != len(wanted) or any(a is not None and b is not None and a != b for a, b in zip(shape, wanted)):
        raise ShapeError(f"{op_name}: {role} must have shape {format_shape(wanted)}, got {format_shape(shape)}")


def _pool_infer(op_name: str, allowed: frozenset | tuple, kinds: str):
    def infer(x: TensorType, *, ksize: tuple, stride: tuple, padding: str) -> TensorType:
        _check_dtype(op_name, x, allowed, kinds)
        return TensorType(x.dtype, _pooled_shape(op_name, x, ksize, stride, padding))

    return infer


def _float_pair(op_name: str, role: str, x: TensorType, other: TensorType) -> None:
    _check_dtype(op_name, x, FLOATS, "floating-point")
    if other.dtype != x.dtype:
        raise DTypeError(f"{op_name}: x and {role} must have one dtype, got {x.dtype} and {other.dtype}")


def _max_pool2d_grad_infer(x: TensorType, dy: TensorType, **window: Any) -> TensorType:
    _float_pair("max_pool2d_grad", "dy", x, dy)
    _check_fits("max_pool2d_grad", "dy", dy.shape, _pooled_shape("max_pool2d_grad", x, **window))
    return x


def _max_pool2d_select_infer(x: TensorType, t: TensorType, **window: Any) -> TensorType:
    _float_pair("max_pool2d_select", "t", x, t)
    _check_fits("max_pool2d_select", "t", t.shape, x.shape)
    return TensorType(x.dtype, _pooled_shape("max_pool2d_select", x, **window))


def _avg_pool2d_grad_infer(dy: TensorType, like: TensorType, **window: Any) -> TensorType:
    _check_dtype("avg_pool2d_grad", dy, FLOATS, "floating-point dy")
    _check_fits("avg_pool2d_grad", "dy", dy.shape, _pooled_shape("avg_pool2d_grad", like, **window))
    return TensorType(dy.dtype, like.shape)


# -- numpy references ------------------------------------------------------------------------------------
def _geometry(shape: tuple, ksize: tuple, stride: tuple, padding: str) -> tuple[tuple, tuple]:
    """((OH, OW), ((top, bottom), (left, right))) for x of ``shape``, checked at run time."""
    outs, pads = [], []
    for size, k, s in zip(shape[1:3], ksize, stride):
        if padding == "valid" and size < k:
            raise ValueError(f"a {k}-wide window does not fit an axis of size {size} ('valid' padding)")
        out, before = window_extent(size, k, s, padding)
        total = max((out - 1) * s + k - size, 0) if padding == "same" else 0
        outs.append(out)
        pads.append((before, total - before))
    return tuple(outs), tuple(pads)


def _windows(x: np.ndarray, fill: Any, ksize: tuple, stride: tuple, padding: str) -> np.ndarray:
    """Every window of x padded with ``fill``: shape (N, OH, OW, C, kh, kw)."""
    (oh, ow), pads = _geometry(x.shape, ksize, stride, padding)
    padded = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=fill)
    views = np.lib.stride_tricks.sliding_window_view(padded, ksize, axis=(1, 2))
    return views[:, :stride[0] * oh:stride[0], :stride[1] * ow:stride[1]]


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min


def _first_max(x: np.ndarray, ksize: tuple, stride: tuple, padding: str) -> np.ndarray:
    """Each window's first max as a flat position i·kw + j within the window: (N, OH, OW, C)."""
    windows = _windows(x, _lowest(x.dtype), ksize, stride, padding)
    return np.argmax(windows.reshape(*windows.shape[:4], -1), axis=-1)


def _spread(x_shape: tuple, dtype: np.dtype, weight: Any, ksize: tuple, stride: tuple, padding: str) -> np.ndarray:
    """x-shaped: pooled-shaped ``weight(i, j)`` added at position (i, j) of every window (padding cut off)."""
    (oh, ow), ((top, bottom), (left, right)) = _geometry(x_shape, ksize, stride, padding)
    n, h, w, c = x_shape
    padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype)
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            rows, cols = slice(i, i + stride[0] * oh, stride[0]), slice(j, j + stride[1] * ow, stride[1])
            padded[:, rows, cols] += weight(i, j)
    return padded[:, top:top + h, left:left + w]


def _max_pool2d(x: np.ndarray, **window: Any) -> np.ndarray:
    return _windows(x, _lowest(x.dtype), **window).max(axis=(-2, -1))


def _max_pool2d_grad(x: np.ndarray, dy: np.ndarray, **window: Any) -> np.ndarray:
    first = _first_max(x, **window)
    kw = window["ksize"][1]
    return _spread(x.shape, dy.dtype, lambda i, j: np.where(first == i * kw + j, dy, dy.dtype.type(0)), **window)


def _max_pool2d_select(x: np.ndarray, t: np.ndarray, **window: Any) -> np.ndarray:
    first = _first_max(x, **window)
    windows = _windows(t, 0, **window)
    flat = windows.reshape(*windows.shape[:4], -1)
    return np.take_along_axis(flat, first[..., None], axis=-1)[..., 0]


def _counts(shape: tuple, dtype: np.dtype, **window: Any) -> np.ndarray:
    """The number of in-bounds elements of each window: (1, OH, OW, 1)."""
    ones = np.ones((1, *shape[1:3], 1), dtype)
    return _windows(ones, 0, **window).sum(axis=(-2, -1))


def _avg_pool2d(x: np.ndarray, **window: Any) -> np.ndarray:
    return _windows(x, 0, **window).sum(axis=(-2, -1)) / _counts(x.shape, x.dtype, **window)


def _avg_pool2d_grad(dy: np.ndarray, like: np.ndarray, **window: Any) -> np.ndarray:
    share = dy / _counts(like.shape, dy.dtype, **window)
    return _spread(like.shape, dy.dtype, lambda i, j: share, **window)


# -- the ops and their derivatives ---------------------------------------------------------------------
def _window(node: Node) -> dict[str, Any]:
    return {name: node.attrs[name] for name in ("ksize", "stride", "padding")}


def _when(tangent: Tensor | None, build: Any) -> Tensor | None:
    return None if tangent is None else build(tangent)


MAX_POOL2D = register(OpDef(
    "max_pool2d", "nn", _pool_infer("max_pool2d", FLOATS | INTS, "floating-point or integer"), _max_pool2d,
    vjp=lambda node, cotangent: (max_pool2d_grad(node.inputs[0], cotangent, **_window(node)),),
    jvp=lambda node, tangents: _when(tangents[0], lambda t: max_pool2d_select(node.inputs[0], t, **_window(node))),
    doc="The max of each (kh, kw) window of x (N, H, W, C); padded positions never win."))

MAX_POOL2D_GRAD = register(OpDef(
    "max_pool2d_grad", "nn", _max_pool2d_grad_infer, _max_pool2d_grad,
    # piecewise constant in x: no derivative flows to it
    vjp=lambda node, cotangent: (None, max_pool2d_select(node.inputs[0], cotangent, **_window(node))),
    jvp=lambda node, tangents: _when(tangents[1], lambda t: max_pool2d_grad(node.inputs[0], t, **_window(node))),
    doc="x-shaped: each window's dy added at the window's first max (the derivative of max_pool2d)."))

MAX_POOL2D_SELECT = register(OpDef(
    "max_pool2d_select", "nn", _max_pool2d_select_infer, _max_pool2d_select,
    vjp=lambda node, cotangent: (None, max_pool2d_grad(node.inputs[0], cotangent, **_window(node))),
    jvp=lambda node, tangents: _when(tangents[1], lambda t: max_pool2d_select(node.inputs[0], t, **_window(node))),
    doc="Pooled-shaped: t read at each window's first max of x (the tangent of max_pool2d)."))

AVG_POOL2D = register(OpDef(
    "avg_pool2d", "nn", _pool_infer("avg_pool2d", FLOATS, "floating-point"), _avg_pool2d,
    vjp=lambda node, cotangent: (avg_pool2d_grad(cotangent, node.inputs[0], **_window(node)),),
    jvp=lambda node, tangents: _when(tangents[0], lambda t: avg_pool2d(t, **_window(node))),
    doc="The mean of the in-bounds elements of each (kh, kw) window of x (N, H, W, C)."))

AVG_POOL2D_GRAD = register(OpDef(
    "avg_pool2d_grad", "nn", _avg_pool2d_grad_infer, _avg_pool2d_grad,
    vjp=lambda node, cotangent: (avg_pool2d(cotangent, **_window(node)), None),
    jvp=lambda node, tangents: _when(tangents[0], lambda t: avg_pool2d_grad(t, node.inputs[1], **_window(node))),
    doc="like-shaped: each window's dy / count spread over its in-bounds elements (avg_pool2d's transpose)."))


# -- public functions ------------------------------------------------------------------------------------
def _attrs(ksize: Any, stride: Any, padding: Any) -> dict[str, Any]:
    ksize = pair(ksize)
    return {"ksize": ksize, "stride": ksize if stride is None else pair(stride),
            "padding": padding.lower() if isinstance(padding, str) else padding}


def max_pool2d(x: Any, ksize: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: str = "valid", name: str | None = None) -> Tensor:
    """The max of each ``ksize`` window of x (N, H, W, C), moved by ``stride`` (default: ``ksize``, so
    windows do not overlap). ``padding`` "valid" keeps the windows that fit; "same" (TF) gives ceil(H/stride)
    rows, and padded positions never win. Float or integer x; result (N, OH, OW, C) of x's dtype.

    The gradient goes to each window's first max in row-major window order when several elements tie.
    """
    return apply(MAX_POOL2D, [as_tensor(x)], name, **_attrs(ksize, stride, padding))


def avg_pool2d(x: Any, ksize: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: str = "valid", name: str | None = None) -> Tensor:
    """The mean of each ``ksize`` window of float x (N, H, W, C), moved by ``stride`` (default ``ksize``).

    With "same" padding a window at the border averages its in-bounds elements only (TF's rule; PyTorch's
    ``count_include_pad=False``).
    """
    return apply(AVG_POOL2D, [as_tensor(x)], name, **_attrs(ksize, stride, padding))


def max_pool2d_grad(x: Tensor, dy: Any, ksize: Any, stride: Any = None, padding: str = "valid",
                    name: str | None = None) -> Tensor:
    """x-shaped: each window's ``dy`` added at the window's first max of ``x`` — the derivative of
    ``max_pool2d`` for cotangent dy. Internal (not in ``gc.nn``)."""
    dy = as_tensor(dy, graph=x.graph)
    return apply(MAX_POOL2D_GRAD, [x, dy], name, **_attrs(ksize, stride, padding))


def max_pool2d_select(x: Tensor, t: Any, ksize: Any, stride: Any = None, padding: str = "valid",
                      name: str | None = None) -> Tensor:
    """Pooled-shaped: ``t`` (x-shaped) read at each window's first max of ``x`` — the derivative of
    ``max_pool2d`` along tangent t. Internal (not in ``gc.nn``)."""
    t = as_tensor(t, graph=x.graph)
    return apply(MAX_POOL2D_SELECT, [x, t], name, **_attrs(ksize, stride, padding))


def avg_pool2d_grad(dy: Any, like: Tensor, ksize: Any, stride: Any = None, padding: str = "valid",
                    name: str | None = None) -> Tensor:
    """Shaped as ``like`` (x, whose run-time shape only is read): each window's ``dy`` divided by its count
    and added over its in-bounds elements — the transpose of ``avg_pool2d``. Internal (not in ``gc.nn``)."""
    dy = as_tensor(dy, graph=like.graph)
    return apply(AVG_POOL2D_GRAD, [dy, like], name, **_attrs(ksize, stride, padding))
