"""Reductions over a set of axes (sum, mean, max, min, prod, logsumexp) and argmax / argmin.

The axes are normalized when the node is built, to a sorted tuple of distinct non-negative ints, so every
later stage sees one spelling of them. An empty reduction gives the op's identity (sum 0, prod 1, max −inf
or the dtype's lowest int, logsumexp −inf; mean is 0/0 = NaN), as a compiled loop that starts from the
identity does. Each op is one ``OpDef`` plus its public function.

Derivatives: a cotangent flows back with the reduced axes restored (``unreduce``); max and min split it
evenly among tied extremes (as TF); prod is exact at zeros; argmax and argmin have int outputs, so no
derivative flows through them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.dtypes import ALL, FLOATS
from graphc.graph.node import Node, Tensor
from graphc.graph.types import Shape, TensorType
from graphc.ops.axes import canonical, normalize_axes, normalize_axis
from graphc.ops.broadcast import broadcast_like
from graphc.ops.convert import as_tensor
from graphc.ops.elementwise import cast, equal, exp, mul_no_nan, ones_like, where, zeros_like
from graphc.ops.registry import OpDef, apply, register

__all__ = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_logsumexp",
           "argmax", "argmin"]

Axis = None | int | Sequence[int]


def _reduced_shape(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _check_dtype(op_name: str, accepted: frozenset, x: TensorType) -> None:
    if x.dtype not in accepted:
        raise DTypeError(f"{op_name} does not accept {x.dtype} (accepts {', '.join(sorted(accepted))})")


# -- dtype rules ------------------------------------------------------------------------------------------
def _sum_dtype(dtype: str) -> str:
    """Sums and products keep the dtype; bools count, as int64 (numpy and TF do the same)."""
    return "int64" if dtype == "bool" else dtype


def _mean_dtype(dtype: str) -> str:
    """A mean of ints or bools is float64, as graphc's int division is; a float mean keeps its dtype."""
    return dtype if dtype in FLOATS else "float64"


def _same_dtype(dtype: str) -> str:
    return dtype


def _reduce_rule(op_name: str, accepted: frozenset, result: Callable[[str], str]) -> Callable[..., TensorType]:
    """Shape rule shared by the reductions: check the dtype and axes, drop (or keep as 1) the reduced dims."""

    def infer(x: TensorType, *, axis: Axis, keepdims: bool) -> TensorType:
        _check_dtype(op_name, accepted, x)
        axes = normalize_axes(axis, x.rank)
        return TensorType(result(x.dtype), _reduced_shape(x.shape, axes, keepdims))

    return infer


# -- references -------------------------------------------------------------------------------------------
def _lowest(dtype: np.dtype) -> Any:
    """The identity of max: −inf, the smallest int, or False."""
    if dtype.kind == "f":
        return -np.inf
    return False if dtype.kind == "b" else np.iinfo(dtype).min


def _highest(dtype: np.dtype) -> Any:
    """The identity of min: +inf, the largest int, or True."""
    if dtype.kind == "f":
        return np.inf
    return True if dtype.kind == "b" else np.iinfo(dtype).max


def _sum_reference(x: np.ndarray, *, axis: tuple, keepdims: bool) -> np.ndarray:
    return np.sum(x, axis=axis, dtype=_sum_dtype(x.dtype.name), keepdims=keepdims)


def _prod_reference(x: np.ndarray, *, axis: tuple, keepdims: bool) -> np.ndarray:
    return np.prod(x, axis=axis, dtype=_sum_dtype(x.dtype.name), keepdims=keepdims)


def _mean_reference(x: np.ndarray, *, axis: tuple, keepdims: bool) -> np.ndarray:
    dtype = np.dtype(_mean_dtype(x.dtype.name))
    total = np.sum(x, axis=axis, dtype=dtype, keepdims=keepdims)
    count = math.prod(x.shape[a] for a in axis)
    with np.errstate(invalid="ignore"):  # an empty mean is 0/0 = NaN, silently, as in compiled code
        return np.true_divide(total, dtype.type(count))


def _max_reference(x: np.ndarray, *, axis: tuple, keepdims: bool) -> np.ndarray:
    return np.max(x, axis=axis, keepdims=keepdims, initial=_lowest(x.dtype))


def _min_reference(x: np.ndarray, *, axis: tuple, keepdims: bool) -> np.ndarray:
    return np.min(x, axis=axis, keepdims=keepdims, initial=_highest(x.dtype))


def _logsumexp_reference(x: np.ndarray, *, axis: tuple, keepdims: bool) -> np.ndarray:
    # log Σ exp(x) = m + log Σ exp(x − m) with m the slice max, so exp never overflows. A slice with no
    # finite max (all −inf, empty, or holding +inf or NaN) is shifted by 0: log(0) = −inf, +inf and NaN stay.
    peak = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    shift = np.where(np.isfinite(peak), peak, 0).astype(x.dtype)
    with np.errstate(divide="ignore"):
        result = np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True)) + shift
    return result if keepdims else np.squeeze(result, axis=axis)


def _reduction(name: str, reference: Callable, accepted: frozenset, result: Callable[[str], str],
               doc: str, vjp: Callable | None = None, jvp: Callable | None = None) -> OpDef:
    return register(OpDef(name, "reduce", _reduce_rule(name, accepted, result), reference, vjp=vjp, jvp=jvp,
                          doc=doc))


# -- derivatives ------------------------------------------------------------------------------------------
# A reduction's local derivative ∂out/∂x has x's shape; a cotangent (output-shaped) meets it after its reduced
# axes are restored, through mul_no_nan so a zero cotangent stays zero (the safety rule of graphc.ops.chain).
def restore_axes(value: Tensor, node: Node) -> Tensor:
    """A value of the reduction's output shape with the reduced axes put back as size 1 (it then broadcasts
    against the input)."""
    from graphc.ops.shape import expand_dims

    if not node.attrs["keepdims"]:
        for axis in node.attrs["axis"]:
            value = expand_dims(value, axis)
    return value


def unreduce(value: Tensor, node: Node) -> Tensor:
    """A value of the reduction's output shape, with the reduced axes restored (size 1) and broadcast back
    to the input's run-time shape: how a cotangent flows back through a reduction."""
    return broadcast_like(restore_axes(value, node), node.inputs[0])


def _reduce_like(node: Node, value: Tensor) -> Tensor:
    """``value`` (input-shaped) summed over the node's axes: how a tangent flows forward."""
    return reduce_sum(value, node.attrs["axis"], node.attrs["keepdims"])


def _sum_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor]:
    return (unreduce(cotangent, node),)


def _sum_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor:
    return _reduce_like(node, tangents[0])


def _mean_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor]:
    spread = unreduce(cotangent, node)
    return (spread / _reduced_count(node, spread),)


def _reduced_count(node: Node, like: Tensor) -> Tensor | float:
    """How many elements each output element of the reduction gathers: a number when the reduced sizes are
    known, else counted when run (a sum of ones of ``like``, input-shaped, keeping the reduced axes)."""
    sizes = [node.inputs[0].shape[axis] for axis in node.attrs["axis"]]
    if None not in sizes:
        return float(math.prod(sizes))
    return reduce_sum(ones_like(like), node.attrs["axis"], keepdims=True)


def _extreme_partial(node: Node) -> Tensor:
    """∂max/∂x (or ∂min/∂x): 1/k at each of the k elements of a slice equal to its max, 0 elsewhere.

    Ties share the derivative evenly, as TF does, so the vjp and jvp are one linear map and its transpose
    (a NaN slice has no element equal to its max: its derivative is NaN).
    """
    x = node.inputs[0]
    hits = cast(equal(x, restore_axes(node.outputs[0], node)), x.dtype)
    return hits / reduce_sum(hits, node.attrs["axis"], keepdims=True)


def _prod_partial(node: Node) -> Tensor:
    """∂prod/∂x: the product of the other elements of the slice, exact where the slice holds zeros.

    out / x away from zeros; at a slice's only zero, the product of the rest; with two zeros or more, 0.
    Limitation: in that last case the second derivative between two of the zeros is 0 (it should be the
    product of the rest); one zero or none is exact to every order.
    """
    x, axes = node.inputs[0], node.attrs["axis"]
    is_zero = equal(x, zeros_like(x))
    nonzero = where(is_zero, ones_like(x), x)  # no division by zero on the branch not taken
    zeros = reduce_sum(cast(is_zero, x.dtype), axes, keepdims=True)
    lone_zero = where(equal(zeros, 1), reduce_prod(nonzero, axes, keepdims=True), zeros_like(zeros))
    return where(is_zero, lone_zero, restore_axes(node.outputs[0], node) / nonzero)


def _logsumexp_partial(node: Node) -> Tensor:
    """∂logsumexp/∂x: the softmax of each slice, exp(x − out)."""
    return exp(node.inputs[0] - restore_axes(node.outputs[0], node))


def _partial_rules(partial: Callable[[Node], Tensor]) -> tuple[Callable, Callable]:
    """(vjp, jvp) of a reduction whose local derivative ``partial(node)`` has the input's shape."""

    def vjp(node: Node, cotangent: Tensor) -> tuple[Tensor]:
        return (mul_no_nan(partial(node), restore_axes(cotangent, node)),)

    def jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor:
        return _reduce_like(node, mul_no_nan(partial(node), tangents[0]))

    return vjp, jvp


SUM = _reduction("reduce_sum", _sum_reference, ALL, _sum_dtype,
                 "Sum over axes; keeps the dtype (bool counts as int64); empty sum 0.", _sum_vjp, _sum_jvp)
MEAN = _reduction("reduce_mean", _mean_reference, ALL, _mean_dtype,
                  "Mean over axes; ints and bools give float64; empty mean NaN.", _mean_vjp,
                  lambda node, tangents: reduce_mean(tangents[0], node.attrs["axis"], node.attrs["keepdims"]))
MAX = _reduction("reduce_max", _max_reference, ALL, _same_dtype,
                 "Max over axes (NaN propagates; tied maxima share the derivative evenly); empty max −inf, the "
                 "lowest int, or False.", *_partial_rules(_extreme_partial))
MIN = _reduction("reduce_min", _min_reference, ALL, _same_dtype,
                 "Min over axes (NaN propagates; tied minima share the derivative evenly); empty min +inf, the "
                 "highest int, or True.", *_partial_rules(_extreme_partial))
PROD = _reduction("reduce_prod", _prod_reference, ALL, _sum_dtype,
                  "Product over axes; keeps the dtype (bool as int64); empty product 1.",
                  *_partial_rules(_prod_partial))
LOGSUMEXP = _reduction("reduce_logsumexp", _logsumexp_reference, FLOATS, _same_dtype,
                       "log(sum(exp(x))) over axes, without overflow; empty or all −inf gives −inf.",
                       *_partial_rules(_logsumexp_partial))


# -- argmax / argmin ----------------------------------------------------------------------------------------
def normalize_arg_axis(axis: Any, rank: int) -> int | None:
    """argmax's axis: None (the flattened tensor) or one non-negative axis."""
    if axis is None:
        return None
    if isinstance(axis, (tuple, list)):
        raise ShapeError(f"argmax and argmin take one axis or None, got {axis!r}")
    return normalize_axis(axis, rank)


def _arg_rule(op_name: str) -> Callable[..., TensorType]:
    """Shape rule of argmax / argmin: an int64 index; a known empty reduced axis has no answer."""

    def infer(x: TensorType, *, axis: int | None, keepdims: bool) -> TensorType:
        _check_dtype(op_name, ALL, x)
        index = normalize_arg_axis(axis, x.rank)
        axes = tuple(range(x.rank)) if index is None else (index,)
        if any(x.shape[a] == 0 for a in axes):
            where = "the tensor is empty" if index is None else f"axis {index} has size 0"
            raise ShapeError(f"{op_name} of nothing: {where}")
        return TensorType("int64", _reduced_shape(x.shape, axes, keepdims))

    return infer


def _arg_reference(select: Callable) -> Callable[..., np.ndarray]:
    def reference(x: np.ndarray, *, axis: int | None, keepdims: bool) -> np.ndarray:
        return np.asarray(select(x, axis=axis, keepdims=keepdims), dtype=np.int64)

    return reference


ARGMAX = register(OpDef("argmax", "reduce", _arg_rule("argmax"), _arg_reference(np.argmax),
                        doc="Index of the largest element (the first one on ties or NaN), as int64."))
ARGMIN = register(OpDef("argmin", "reduce", _arg_rule("argmin"), _arg_reference(np.argmin),
                        doc="Index of the smallest element (the first one on ties or NaN), as int64."))


# -- public functions ---------------------------------------------------------------------------------------
def _public_function(op: OpDef, normalize: Callable[[Any, int], Any], axis_doc: str) -> Callable[..., Tensor]:
    """The public function of a reduction or argmax/argmin op; ``normalize`` checks and normalizes its axis."""

    def function(x: Any, axis: Axis = None, keepdims: bool = False, name: str | None = None) -> Tensor:
        x = as_tensor(x)
        return apply(op, [x], name, axis=canonical(normalize, axis, x.ndim), keepdims=bool(keepdims))

    function.__name__ = function.__qualname__ = op.name
    function.__doc__ = f"{op.doc}\n\n{axis_doc}"
    function.opdef = op
    return function


_AXES_DOC = ("``axis``: None (all axes), an int or a tuple of ints, negative counting from the end; "
             "``keepdims`` keeps reduced axes with size 1.")
_ARG_AXIS_DOC = "``axis=None`` indexes the flattened tensor (numpy semantics); an int axis may be negative."

reduce_sum = _public_function(SUM, normalize_axes, _AXES_DOC)
reduce_mean = _public_function(MEAN, normalize_axes, _AXES_DOC)
reduce_max = _public_function(MAX, normalize_axes, _AXES_DOC)
reduce_min = _public_function(MIN, normalize_axes, _AXES_DOC)
reduce_prod = _public_function(PROD, normalize_axes, _AXES_DOC)
reduce_logsumexp = _public_function(LOGSUMEXP, normalize_axes, _AXES_DOC)
argmax = _public_function(ARGMAX, normalize_arg_axis, _ARG_AXIS_DOC)
argmin = _public_function(ARGMIN, normalize_arg_axis, _ARG_AXIS_DOC)
