"""2-D convolution (``gc.nn.conv2d``) and the two ops its derivatives need.

Layout is TensorFlow's: inputs are NHWC, x (N, H, W, C), and filters are HWIO, w (KH, KW, C, F); the
result is (N, OH, OW, F). Like TF (and every deep-learning library) this is a cross-correlation: the filter
is not flipped. ``conv2d_backprop_input`` (dx) and ``conv2d_backprop_filter`` (dw) are internal ops, not in
``gc.nn``; the three are bilinear and each one's derivative is built from the other two, so derivatives of
any order stay within them.

Attributes are normalized when a node is built: ``stride=(sh, sw)``, ``dilation=(dh, dw)`` and
``padding=((top, bottom), (left, right))``, or the string ``"same"``, which stays symbolic because its pads
depend on H and W, which may be known only at run time. TF's "same": OH = ceil(H / sh), the total pad
max((OH − 1)·sh + (KH − 1)·dh + 1 − H, 0), its smaller half on top (``axis_geometry``). "valid" is zero
padding. Only float32 and float64 are accepted: the lowering is a GEMM, which BLAS has for those only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphc.errors import ArgumentError, DTypeError, GradientError, ShapeError
from graphc.graph.dtypes import FLOATS
from graphc.graph.node import Node, Tensor
from graphc.graph.types import TensorType, format_shape, is_int
from graphc.ops.chain import add_all
from graphc.ops.convert import as_tensor
from graphc.ops.registry import OpDef, apply, register

__all__ = ["conv2d"]

Padding = str | tuple[tuple[int, int], tuple[int, int]]


# -- geometry ------------------------------------------------------------------------------------------------
def axis_geometry(size: int, kernel: int, stride: int, dilation: int,
                  pad: str | tuple[int, int]) -> tuple[int, int, int]:
    """(pad before, pad after, output size) along one spatial axis; ``pad`` is "same" or (before, after)."""
    span = (kernel - 1) * dilation + 1  # the extent of a dilated window
    if pad == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        return total // 2, total - total // 2, out
    before, after = pad
    return before, after, (size + before + after - span) // stride + 1


def _axis_pads(padding: Padding) -> tuple[Any, Any]:
    """The padding of the H axis and of the W axis ("same" for both when symbolic)."""
    return ("same", "same") if padding == "same" else padding


def _out_size(size: int | None, kernel: int | None, stride: int, dilation: int, pad: Any) -> int | None:
    """An output size when the graph is built: None when it depends on a size known only at run time."""
    if size is None or (kernel is None and pad != "same"):
        return None
    return -(-size // stride) if pad == "same" else axis_geometry(size, kernel, stride, dilation, pad)[2]


def output_hw(h: int | None, w: int | None, kernel: Sequence[int | None], *, stride: tuple[int, int],
              padding: Padding, dilation: tuple[int, int]) -> tuple[int | None, int | None]:
    """(OH, OW) of a convolution of an input of height h and width w (None where unknown)."""
    return tuple(_out_size(size, k, s, d, p)
                 for size, k, s, d, p in zip((h, w), kernel, stride, dilation, _axis_pads(padding)))


# -- shape and dtype rules ---------------------------------------------------------------------------------
def _is_pair(value: Any, least: int) -> bool:
    """Whether ``value`` is a normalized pair of ints >= ``least``."""
    return isinstance(value, tuple) and len(value) == 2 and all(is_int(v) and v >= least for v in value)


def _check_attrs(stride: Any, padding: Any, dilation: Any) -> None:
    for what, pair in (("stride", stride), ("dilation", dilation)):
        if not _is_pair(pair, 1):
            raise ArgumentError(f"{what} must be an int >= 1 or a pair of them, got {pair}")
    pads_ok = isinstance(padding, tuple) and len(padding) == 2 and all(_is_pair(p, 0) for p in padding)
    if padding != "same" and not pads_ok:
        raise ArgumentError(f"padding must be 'valid', 'same', an int >= 0, (ph, pw) or ((top, bottom), "
                            f"(left, right)), got {padding}")


def _check_operands(op_name: str, roles: Sequence[str], types: Sequence[TensorType]) -> None:
    for role, t in zip(roles, types):
        if t.rank != 4:
            raise ShapeError(f"{op_name}: {role} must have rank 4, got shape {format_shape(t.shape)}")
        if t.dtype not in FLOATS:
            raise DTypeError(f"{op_name} needs float32 or float64 {role}, got {t.dtype} "
                             "(convert with gc.cast(x, 'float32'))")
    if len({t.dtype for t in types}) > 1:
        listed = ", ".join(f"{role} {t.dtype}" for role, t in zip(roles, types))
        raise DTypeError(f"{op_name}: operands must have one dtype, got {listed}")


def _same_size(op_name: str, what: str, a: int | None, b: int | None) -> int | None:
    """The size two axes share (None when both are unknown); ShapeError when they differ."""
    if a is not None and b is not None and a != b:
        raise ShapeError(f"{op_name}: {what} differ ({a} and {b})")
    return a if a is not None else b


def _spatial_out(op_name: str, x: Sequence[int | None], kernel: Sequence[int | None],
                 attrs: dict[str, Any]) -> tuple[int | None, int | None]:
    """(OH, OW) for input shape ``x`` (NHWC) and kernel (KH, KW); ShapeError if a window does not fit."""
    _check_attrs(**attrs)
    out = output_hw(x[1], x[2], kernel, **attrs)
    if any(size is not None and size < 1 for size in out):
        raise ShapeError(f"{op_name}: a {kernel[0]}x{kernel[1]} window (dilation {attrs['dilation']}) does not fit "
                         f"an input of {x[1]}x{x[2]} padded by {attrs['padding']}: output size {out}")
    return out


def _check_dy(op_name: str, dy: TensorType, expected: Sequence[int | None]) -> None:
    """dy must have the convolution's output shape (N, OH, OW, F)."""
    for axis, (got, want) in enumerate(zip(dy.shape, expected)):
        _same_size(op_name, f"dy's axis {axis} and the convolution output's (shape {format_shape(tuple(expected))})",
                   got, want)


def _conv2d_infer(x: TensorType, w: TensorType, **attrs: Any) -> TensorType:
    _check_operands("conv2d", ("input x", "filter w"), (x, w))
    _same_size("conv2d", "the input's channels (x axis 3) and the filter's (w axis 2)", x.shape[3], w.shape[2])
    oh, ow = _spatial_out("conv2d", x.shape, w.shape[:2], attrs)
    return TensorType(x.dtype, (x.shape[0], oh, ow, w.shape[3]))


def _backprop_input_infer(dy: TensorType, w: TensorType, like: TensorType, **attrs: Any) -> TensorType:
    name = "conv2d_backprop_input"
    _check_operands(name, ("dy", "filter w", "like (x)"), (dy, w, like))
    _same_size(name, "x's channels (axis 3) and the filter's (w axis 2)", like.shape[3], w.shape[2])
    oh, ow = _spatial_out(name, like.shape, w.shape[:2], attrs)
    _check_dy(name, dy, (like.shape[0], oh, ow, w.shape[3]))
    return TensorType(dy.dtype, like.shape)


def _backprop_filter_infer(x: TensorType, dy: TensorType, *, kernel_size: tuple[int, int], **attrs: Any) -> TensorType:
    name = "conv2d_backprop_filter"
    _check_operands(name, ("input x", "dy"), (x, dy))
    if not _is_pair(kernel_size, 1):
        raise ArgumentError(f"{name}: kernel_size must be two ints >= 1, got {kernel_size}")
    oh, ow = _spatial_out(name, x.shape, kernel_size, attrs)
    _check_dy(name, dy, (x.shape[0], oh, ow, dy.shape[3]))
    return TensorType(x.dtype, (*kernel_size, x.shape[3], dy.shape[3]))


# -- numpy references ----------------------------------------------------------------------------------
def _windows(x: np.ndarray, kernel: Sequence[int], stride: tuple[int, int], padding: Padding,
             dilation: tuple[int, int]) -> tuple[np.ndarray, tuple]:
    """The input's dilated windows as a view (N, OH, OW, C, KH, KW), and the pads ((t, b), (l, r))."""
    geometry = [axis_geometry(size, k, s, d, p)
                for size, k, s, d, p in zip(x.shape[1:3], kernel, stride, dilation, _axis_pads(padding))]
    if any(out < 1 for _, _, out in geometry):
        raise ValueError(f"a {kernel[0]}x{kernel[1]} window does not fit the input of shape "
                         f"{format_shape(x.shape)} padded by {padding}")
    pads = tuple((before, after) for before, after, _ in geometry)
    padded = np.pad(x, ((0, 0), *pads, (0, 0)))
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    views = sliding_window_view(padded, spans, axis=(1, 2))  # (N, H', W', C, span_h, span_w)
    views = views[:, ::stride[0], ::stride[1], :, ::dilation[0], ::dilation[1]]
    return views[:, :geometry[0][2], :geometry[1][2]], pads


def _conv2d(x: np.ndarray, w: np.ndarray, **attrs: Any) -> np.ndarray:
    windows, _ = _windows(x, w.shape[:2], **attrs)
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"x has {x.shape[3]} channels, the filter {w.shape[2]}")
    return np.tensordot(windows, w, axes=([3, 4, 5], [2, 0, 1]))


def _check_dy_value(dy: np.ndarray, windows: np.ndarray, filters: int) -> None:
    if dy.shape != (*windows.shape[:3], filters):
        raise ValueError(f"dy of shape {format_shape(dy.shape)} is not the convolution's output shape "
                         f"{format_shape((*windows.shape[:3], filters))}")


def _conv2d_backprop_input(dy: np.ndarray, w: np.ndarray, like: np.ndarray, *, stride: tuple[int, int],
                           padding: Padding, dilation: tuple[int, int]) -> np.ndarray:
    windows, ((top, bottom), (left, right)) = _windows(like, w.shape[:2], stride, padding, dilation)
    _check_dy_value(dy, windows, w.shape[3])
    n, h, width, c = like.shape
    padded = np.zeros((n, h + top + bottom, width + left + right, c), dy.dtype)
    oh, ow = dy.shape[1:3]
    # the transpose of reading a window: each kernel offset adds dy·wᵀ back where it read
    for kh in range(w.shape[0]):
        for kw in range(w.shape[1]):
            rows = slice(kh * dilation[0], kh * dilation[0] + (oh - 1) * stride[0] + 1, stride[0])
            cols = slice(kw * dilation[1], kw * dilation[1] + (ow - 1) * stride[1] + 1, stride[1])
            padded[:, rows, cols, :] += dy @ w[kh, kw].T
    return padded[:, top:top + h, left:left + width, :]


def _conv2d_backprop_filter(x: np.ndarray, dy: np.ndarray, *, kernel_size: tuple[int, int], **attrs: Any) -> np.ndarray:
    windows, _ = _windows(x, kernel_size, **attrs)
    _check_dy_value(dy, windows, dy.shape[3])
    # patchesᵀ·dy: (C, KH, KW, F), returned as HWIO
    return np.tensordot(windows, dy, axes=([0, 1, 2], [0, 1, 2])).transpose(1, 2, 0, 3)


# -- the ops and their derivatives ---------------------------------------------------------------------
def _attrs(node: Node) -> dict[str, Any]:
    """The geometry attributes shared by the three ops."""
    return {k: node.attrs[k] for k in ("stride", "padding", "dilation")}


def _kernel_size(w: Tensor) -> tuple[int, int]:
    """The filter's (KH, KW), which its gradient op needs when the graph is built."""
    if w.shape[0] is None or w.shape[1] is None:
        raise GradientError(f"the gradient of a conv2d by its filter '{w.name}' needs the filter's height and "
                            f"width when the graph is built, got shape {format_shape(w.shape)}")
    return w.shape[0], w.shape[1]


def _term(op: Any, *operands: Any) -> Tensor | None:
    """``op(*operands)``, one term of a bilinear op's tangent; None (no term) when a tangent is None."""
    return None if any(o is None for o in operands) else op(*operands)


def _conv2d_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, Tensor]:
    x, w = node.inputs
    return (_backprop_input(cotangent, w, x, _attrs(node)),
            _backprop_filter(x, cotangent, _kernel_size(w), _attrs(node)))


def _conv2d_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
    (x, w), (tx, tw) = node.inputs, tangents
    return add_all([_term(_conv, tx, w, _attrs(node)), _term(_conv, x, tw, _attrs(node))])


CONV2D = register(OpDef(
    "conv2d", "conv", _conv2d_infer, _conv2d, vjp=_conv2d_vjp, jvp=_conv2d_jvp,
    doc="2-D cross-correlation of NHWC x with an HWIO filter, with stride, padding and dilation."))


def _backprop_input_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, Tensor, None]:
    # dx = Σ dy·w placed where each window read: bilinear in (dy, w); like gives a shape only
    dy, w, _ = node.inputs
    return _conv(cotangent, w, _attrs(node)), _backprop_filter(cotangent, dy, _kernel_size(w), _attrs(node)), None


def _backprop_input_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
    (dy, w, like), (tdy, tw, _) = node.inputs, tangents
    return add_all([_term(_backprop_input, tdy, w, like, _attrs(node)),
                    _term(_backprop_input, dy, tw, like, _attrs(node))])


CONV2D_BACKPROP_INPUT = register(OpDef(
    "conv2d_backprop_input", "conv", _backprop_input_infer, _conv2d_backprop_input,
    vjp=_backprop_input_vjp, jvp=_backprop_input_jvp,
    doc="The derivative of conv2d by its input: dy (N, OH, OW, F) spread back to like's shape (N, H, W, C)."))


def _backprop_filter_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, Tensor]:
    x, dy = node.inputs
    attrs = _attrs(node)
    return _backprop_input(dy, cotangent, x, attrs), _conv(x, cotangent, attrs)


def _backprop_filter_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
    (x, dy), (tx, tdy) = node.inputs, tangents
    kernel = node.attrs["kernel_size"]
    return add_all([_term(_backprop_filter, tx, dy, kernel, _attrs(node)),
                    _term(_backprop_filter, x, tdy, kernel, _attrs(node))])


CONV2D_BACKPROP_FILTER = register(OpDef(
    "conv2d_backprop_filter", "conv", _backprop_filter_infer, _conv2d_backprop_filter,
    vjp=_backprop_filter_vjp, jvp=_backprop_filter_jvp,
    doc="The derivative of conv2d by its filter: windows of x times dy, summed, as (KH, KW, C, F)."))


def _conv(x: Tensor, w: Tensor, attrs: dict[str, Any]) -> Tensor:
    return apply(CONV2D, [x, w], **attrs)


def _backprop_input(dy: Tensor, w: Tensor, like: Tensor, attrs: dict[str, Any]) -> Tensor:
    return apply(CONV2D_BACKPROP_INPUT, [dy, w, like], **attrs)


def _backprop_filter(x: Tensor, dy: Tensor, kernel_size: tuple[int, int], attrs: dict[str, Any]) -> Tensor:
    return apply(CONV2D_BACKPROP_FILTER, [x, dy], kernel_size=kernel_size, **attrs)


# -- public functions ------------------------------------------------------------------------------------
def _pair(value: Any) -> Any:
    """An int or a pair of ints as a pair; anything else as its repr (the shape rule rejects it, with the line)."""
    if is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        return tuple(int(v) for v in value)
    return repr(value)


def _padding(value: Any) -> Any:
    """Padding normalized to "same" or ((top, bottom), (left, right)) (invalid values: their repr)."""
    if isinstance(value, str) and value.lower() in ("same", "valid"):
        return "same" if value.lower() == "same" else ((0, 0), (0, 0))
    if is_int(value) or (isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value)):
        ph, pw = _pair(value)
        return ((ph, ph), (pw, pw))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(_pair(v), tuple) for v in value):
        return tuple(_pair(v) for v in value)
    return repr(value)


def conv2d(x: Any, w: Any, stride: int | Sequence[int] = 1, padding: Any = "valid",
           dilation: int | Sequence[int] = 1, name: str | None = None) -> Tensor:
    """2-D convolution (cross-correlation, as in TF and PyTorch) of x (N, H, W, C) with w (KH, KW, C, F).

    Returns (N, OH, OW, F). ``stride`` and ``dilation``: an int or (sh, sw). ``padding``: "valid" (none),
    "same" (TF's: OH = ceil(H / sh), the extra row at the bottom), an int, (ph, pw) or
    ((top, bottom), (left, right)). x and w must both be float32 or both float64; a non-tensor ``w`` takes
    x's dtype.
    """
    x = as_tensor(x)
    w = w if isinstance(w, Tensor) else as_tensor(w, x.dtype, x.graph)
    return apply(CONV2D, [x, w], name, stride=_pair(stride), padding=_padding(padding), dilation=_pair(dilation))


def conv2d_backprop_input(dy: Any, w: Any, like: Tensor, stride: int | Sequence[int] = 1, padding: Any = "valid",
                          dilation: int | Sequence[int] = 1, name: str | None = None) -> Tensor:
    """The derivative of ``conv2d(x, w, ...)`` by x for output cotangent ``dy``: an array of x's shape
    (``like`` is x, read for its run-time shape only). Internal: ``gc.gradients`` builds it."""
    return apply(CONV2D_BACKPROP_INPUT, [as_tensor(dy), as_tensor(w), like], name, stride=_pair(stride),
                 padding=_padding(padding), dilation=_pair(dilation))


def conv2d_backprop_filter(x: Any, dy: Any, kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                           padding: Any = "valid", dilation: int | Sequence[int] = 1,
                           name: str | None = None) -> Tensor:
    """The derivative of ``conv2d(x, w, ...)`` by w (of height and width ``kernel_size``) for output
    cotangent ``dy``: an array (KH, KW, C, F). Internal: ``gc.gradients`` builds it."""
    return apply(CONV2D_BACKPROP_FILTER, [as_tensor(x), as_tensor(dy)], name, kernel_size=_pair(kernel_size),
                 stride=_pair(stride), padding=_padding(padding), dilation=_pair(dilation))
