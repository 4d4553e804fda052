"""Shape ops: reshape, transpose, expand_dims, squeeze, concat, stack, split, broadcast_to, pad.

These ops move elements without computing on them, so every dtype is accepted, and their derivatives are
the same moves run backwards. Two ops exist for those derivatives when sizes are known only at run time:
``reshape_like`` and ``split_like`` take the target sizes from other tensors. The rules use the static op
(``reshape``, ``split``) whenever at most one size is unknown (it becomes -1), and the ``_like`` op otherwise.

Attributes are normalized by the public functions (tuples of ints, non-negative axes) so equal nodes have
equal attributes; a value that cannot be normalized is passed on unchanged and the shape rule (``infer``)
reports it, which puts the node's name and the user's source line in the message (why:
``graphc.ops.axes``). Indexing ops (``x[...]``, slice, gather, one_hot) live in ``graphc.ops.indexing``.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.node import Node, Tensor
from graphc.graph.types import TensorType, format_shape
from graphc.ops.axes import canonical, is_int, normalize_axes, normalize_axis
from graphc.ops.broadcast import sum_to
from graphc.ops.convert import as_tensor, common_operands
from graphc.ops.elementwise import zeros_like
from graphc.ops.registry import OpDef, apply, register

__all__ = ["reshape", "transpose", "expand_dims", "squeeze", "concat", "stack", "split", "broadcast_to",
           "pad"]


# -- helpers shared with graphc.ops.indexing ----------------------------------------------------------------
def int_tuple(value: Any) -> tuple:
    """An int or a sequence of ints as a tuple of Python ints; other entries are kept for infer to report."""
    if is_int(value):
        return (int(value),)
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        return (value,)
    return tuple(int(v) if is_int(v) else v for v in value)


def merge_dims(a: int | None, b: int | None, what: str) -> int | None:
    """Two static sizes that must agree (None agrees with anything)."""
    if a is not None and b is not None and a != b:
        raise ShapeError(f"{what}: sizes {a} and {b} differ")
    return a if a is not None else b


def scalar_attr(value: Any, dtype: str) -> Any:
    """A Python scalar converted to the Python type of ``dtype`` when that loses nothing; else unchanged."""
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (bool, int, float)):
        return value
    if dtype == "bool" and value in (0, 1) and not isinstance(value, float):
        return bool(value)
    if dtype.startswith("int") and isinstance(value, float) and value.is_integer():
        return int(value)
    if dtype.startswith("float") and is_int(value):
        return float(value)
    return value


def check_scalar(name: str, value: Any, dtype: str) -> None:
    """Raise DTypeError unless ``value`` is a normalized Python scalar of ``dtype``'s kind that fits it."""
    kind = {"bool": bool, "float32": float, "float64": float}.get(dtype, int)
    fits = type(value) is kind
    if fits and kind is int:
        fits = np.iinfo(dtype).min <= value <= np.iinfo(dtype).max
    if not fits:
        raise DTypeError(f"{name} {value!r} does not fit dtype {dtype}")


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(map(repr, shape)) + ("," if len(shape) == 1 else "") + ")"


# -- reshape -------------------------------------------------------------------------------------------
def _check_target(shape: tuple, what: str, allow_inferred: bool) -> None:
    """Raise ShapeError unless ``shape`` holds non-negative ints (and, if allowed, one -1)."""
    lowest = -1 if allow_inferred else 0
    if not all(is_int(d) and d >= lowest for d in shape):
        allowed = "non-negative ints (and at most one -1)" if allow_inferred else "non-negative ints"
        raise ShapeError(f"{what} {_shape_text(shape)} must hold {allowed}")
    if shape.count(-1) > 1:
        raise ShapeError(f"{what} {_shape_text(shape)} has more than one -1")


def _reshape_infer(x: TensorType, *, shape: tuple) -> TensorType:
    _check_target(shape, "reshape target shape", allow_inferred=True)
    known = [d for d in x.shape if d is not None]
    size = 0 if 0 in known else math.prod(known) if len(known) == x.rank else None
    rest = math.prod(d for d in shape if d != -1)
    where = f"cannot reshape {format_shape(x.shape)} to {_shape_text(shape)}"
    if -1 not in shape:
        if size is not None and size != rest:
            raise ShapeError(f"{where}: {size} elements do not fit in {rest}")
        if size is None and rest % math.prod(known) != 0:
            raise ShapeError(f"{where}: {rest} elements are not a multiple of the known {math.prod(known)}")
        return TensorType(x.dtype, shape)
    if rest == 0:
        raise ShapeError(f"{where}: the -1 is ambiguous when the other sizes multiply to 0")
    if size is not None and size % rest != 0:
        raise ShapeError(f"{where}: {size} elements are not a multiple of {rest}")
    inferred = size // rest if size is not None else None
    return TensorType(x.dtype, tuple(inferred if d == -1 else d for d in shape))


def _reshape_back(value: Tensor, x: Tensor) -> Tensor:
    """``value`` reshaped to ``x``'s run-time shape: statically when at most one size is unknown."""
    unknown = x.shape.count(None)
    if unknown == 0 or (unknown == 1 and 0 not in x.shape):  # -1 is ambiguous among zero sizes
        return reshape(value, tuple(-1 if d is None else d for d in x.shape))
    return reshape_like(value, x)


RESHAPE = register(OpDef(
    "reshape", "shape", _reshape_infer,
    lambda x, *, shape: np.reshape(x, shape),
    vjp=lambda node, cotangent: (_reshape_back(cotangent, node.inputs[0]),),
    jvp=lambda node, tangents: reshape(tangents[0], node.attrs["shape"]),
    doc="The same elements in row-major order under a new shape; one entry may be -1 (inferred)."))


def reshape(x: Any, shape: Any, name: str | None = None) -> Tensor:
    """x with a new shape holding the same number of elements (row-major order, as numpy).

    One entry of ``shape`` may be -1: it is inferred, statically when x's shape is fully known, else at run
    time (its static size is then None).
    """
    return apply(RESHAPE, [as_tensor(x)], name, shape=int_tuple(shape))


def _reshape_like_infer(x: TensorType, like: TensorType) -> TensorType:
    sizes = [math.prod(t.shape) if None not in t.shape else None for t in (x, like)]
    merge_dims(*sizes, f"cannot reshape {format_shape(x.shape)} like {format_shape(like.shape)}: the numbers of "
                      "elements")
    return TensorType(x.dtype, like.shape)


RESHAPE_LIKE = register(OpDef(
    "reshape_like", "shape", _reshape_like_infer,
    lambda x, like: np.reshape(x, like.shape),
    vjp=lambda node, cotangent: (reshape_like(cotangent, node.inputs[0]), None),
    jvp=lambda node, tangents: reshape_like(tangents[0], node.inputs[1]),
    doc="x reshaped to like's run-time shape (the same number of elements): reshape's derivative."))


def reshape_like(x: Tensor, like: Tensor, name: str | None = None) -> Tensor:
    """``x`` reshaped to ``like``'s run-time shape, which may hold several unknown sizes."""
    return apply(RESHAPE_LIKE, [x, like], name)


# -- transpose -----------------------------------------------------------------------------------------
def _transpose_infer(x: TensorType, *, perm: tuple) -> TensorType:
    if not all(is_int(p) for p in perm) or sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"perm {_shape_text(perm)} is not a permutation of the {x.rank} axes "
                         f"(0..{x.rank - 1}, negative counted from the end)")
    return TensorType(x.dtype, tuple(x.shape[p] for p in perm))


def _inverse(perm: tuple) -> tuple:
    """The permutation that undoes ``perm``."""
    return tuple(perm.index(axis) for axis in range(len(perm)))


TRANSPOSE = register(OpDef(
    "transpose", "shape", _transpose_infer,
    lambda x, *, perm: np.transpose(x, perm),
    vjp=lambda node, cotangent: (transpose(cotangent, _inverse(node.attrs["perm"])),),
    jvp=lambda node, tangents: transpose(tangents[0], node.attrs["perm"]),
    doc="Axes permuted: output axis i is input axis perm[i]."))


def transpose(x: Any, perm: Sequence[int] | None = None, name: str | None = None) -> Tensor:
    """Permute the axes of x: output axis i is input axis ``perm[i]``; ``perm=None`` reverses them."""
    x = as_tensor(x)
    perm = tuple(reversed(range(x.ndim))) if perm is None else int_tuple(perm)
    return apply(TRANSPOSE, [x], name, perm=tuple(canonical(normalize_axis, p, x.ndim) for p in perm))


# -- expand_dims and squeeze ---------------------------------------------------------------------------
def _expand_dims_infer(x: TensorType, *, axis: int) -> TensorType:
    axis = normalize_axis(axis, x.rank + 1)
    return TensorType(x.dtype, x.shape[:axis] + (1,) + x.shape[axis:])


EXPAND_DIMS = register(OpDef(
    "expand_dims", "shape", _expand_dims_infer,
    lambda x, *, axis: np.expand_dims(x, axis),
    vjp=lambda node, cotangent: (squeeze(cotangent, node.attrs["axis"]),),
    jvp=lambda node, tangents: expand_dims(tangents[0], node.attrs["axis"]),
    doc="A new axis of size 1 inserted at position axis of the output."))


def expand_dims(x: Any, axis: int, name: str | None = None) -> Tensor:
    """x with a size-1 axis inserted so that it is axis ``axis`` of the result (-1 appends)."""
    x = as_tensor(x)
    return apply(EXPAND_DIMS, [x], name, axis=canonical(normalize_axis, axis, x.ndim + 1))


def _squeeze_infer(x: TensorType, *, axis: tuple) -> TensorType:
    axes = normalize_axes(axis, x.rank)
    for a in axes:
        if x.shape[a] not in (1, None):
            raise ShapeError(f"cannot squeeze axis {a} of size {x.shape[a]} (only size-1 axes)")
    return TensorType(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))


def _squeeze_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor]:
    for axis in node.attrs["axis"]:  # ascending: each axis is numbered as in the input
        cotangent = expand_dims(cotangent, axis)
    return (cotangent,)


SQUEEZE = register(OpDef(
    "squeeze", "shape", _squeeze_infer,
    lambda x, *, axis: np.squeeze(x, axis),
    vjp=_squeeze_vjp,
    jvp=lambda node, tangents: squeeze(tangents[0], node.attrs["axis"]),
    doc="The listed size-1 axes removed."))


def squeeze(x: Any, axis: int | Sequence[int] | None = None, name: str | None = None) -> Tensor:
    """x without size-1 axes: those listed in ``axis``, or (``axis=None``) every axis statically known to
    be 1. An axis whose size is known only at run time is removed only when listed (it must then be 1)."""
    x = as_tensor(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = canonical(normalize_axes, int_tuple(axis), x.ndim)
    return apply(SQUEEZE, [x], name, axis=axes)


# -- concat and stack ----------------------------------------------------------------------------------
def _same_dtype(op_name: str, types: Sequence[TensorType]) -> None:
    if len({t.dtype for t in types}) > 1:
        raise DTypeError(f"{op_name} inputs must share a dtype, got {[t.dtype for t in types]}")


def _same_rank(op_name: str, types: Sequence[TensorType]) -> None:
    if len({t.rank for t in types}) > 1:
        shown = ", ".join(format_shape(t.shape) for t in types)
        raise ShapeError(f"{op_name} inputs must have the same rank, got {shown}")


def _concat_infer(*types: TensorType, axis: int) -> TensorType:
    _same_dtype("concat", types)
    _same_rank("concat", types)
    axis = normalize_axis(axis, types[0].rank)
    shape = list(types[0].shape)
    for t in types[1:]:
        for i, d in enumerate(t.shape):
            if i != axis:
                shape[i] = merge_dims(shape[i], d, f"concat inputs disagree on axis {i} (concat axis {axis})")
    sizes = [t.shape[axis] for t in types]
    shape[axis] = None if None in sizes else sum(sizes)
    return TensorType(types[0].dtype, tuple(shape))


def _or_zeros(values: Sequence[Tensor | None], likes: Sequence[Tensor]) -> list[Tensor]:
    """Each value, or zeros shaped like the matching tensor where the value is None (zero)."""
    return [zeros_like(like) if value is None else value for value, like in zip(values, likes, strict=True)]


def _concat_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, ...]:
    axis = node.attrs["axis"]
    sizes = [x.shape[axis] for x in node.inputs]
    if sizes.count(None) <= 1:
        return split(cotangent, [-1 if size is None else size for size in sizes], axis)
    return split_like(cotangent, node.inputs, axis)


CONCAT = register(OpDef(
    "concat", "shape", _concat_infer,
    lambda *xs, axis: np.concatenate(xs, axis),
    vjp=_concat_vjp,
    jvp=lambda node, tangents: concat(_or_zeros(tangents, node.inputs), node.attrs["axis"]),
    doc="Inputs joined along an existing axis."))


def _operands(op_name: str, tensors: Any) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, Sequence) or not tensors:
        raise ShapeError(f"{op_name} takes a non-empty list of tensors, got {tensors!r}")
    return common_operands(*tensors)


def concat(tensors: Sequence[Any], axis: int, name: str | None = None) -> Tensor:
    """The tensors joined along ``axis``; the other sizes must agree. Dtypes are promoted to a common one."""
    operands = _operands("concat", tensors)
    return apply(CONCAT, operands, name, axis=canonical(normalize_axis, axis, operands[0].ndim))


def _stack_infer(*types: TensorType, axis: int) -> TensorType:
    _same_dtype("stack", types)
    _same_rank("stack", types)
    axis = normalize_axis(axis, types[0].rank + 1)
    shape = list(types[0].shape)
    for t in types[1:]:
        shape = [merge_dims(a, b, f"stack inputs disagree on axis {i}")
                 for i, (a, b) in enumerate(zip(shape, t.shape))]
    return TensorType(types[0].dtype, tuple(shape[:axis]) + (len(types),) + tuple(shape[axis:]))


def _stack_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, ...]:
    from graphc.ops.indexing import getitem

    before = (builtins.slice(None),) * node.attrs["axis"]
    return tuple(getitem(cotangent, (*before, i)) for i in range(len(node.inputs)))


STACK = register(OpDef(
    "stack", "shape", _stack_infer,
    lambda *xs, axis: np.stack(xs, axis),
    vjp=_stack_vjp,
    jvp=lambda node, tangents: stack(_or_zeros(tangents, node.inputs), node.attrs["axis"]),
    doc="Inputs of one shape joined along a new axis."))


def stack(tensors: Sequence[Any], axis: int = 0, name: str | None = None) -> Tensor:
    """Tensors of one shape joined along a new axis ``axis`` (its size is the number of tensors)."""
    operands = _operands("stack", tensors)
    return apply(STACK, operands, name, axis=canonical(normalize_axis, axis, operands[0].ndim + 1))


# -- split ---------------------------------------------------------------------------------------------
def _split_sizes(sections: Any, dim: int | None) -> tuple:
    """The static size of each piece (None where known only at run time)."""
    if is_int(sections):
        if sections < 1:
            raise ShapeError(f"split into {sections} pieces: the number must be at least 1")
        if dim is not None and dim % sections:
            raise ShapeError(f"cannot split size {dim} into {sections} equal pieces")
        return (None if dim is None else dim // sections,) * sections
    _check_target(sections, "split sizes", allow_inferred=True)
    if not sections:
        raise ShapeError("split sizes must not be empty")
    rest = sum(s for s in sections if s != -1)
    if dim is not None and (rest > dim if -1 in sections else rest != dim):
        raise ShapeError(f"split sizes {_shape_text(sections)} do not add up to the axis size {dim}")
    inferred = None if dim is None else dim - rest
    return tuple(inferred if s == -1 else s for s in sections)


def _split_infer(x: TensorType, *, sections: Any, axis: int) -> tuple[TensorType, ...]:
    axis = normalize_axis(axis, x.rank)
    sizes = _split_sizes(sections, x.shape[axis])
    return tuple(TensorType(x.dtype, x.shape[:axis] + (s,) + x.shape[axis + 1:]) for s in sizes)


def _split_reference(x: np.ndarray, *, sections: Any, axis: int) -> tuple[np.ndarray, ...]:
    if is_int(sections):
        return tuple(np.split(x, sections, axis))
    try:
        sizes = _split_sizes(sections, x.shape[axis])
    except ShapeError as error:  # a plain error: the interpreter adds the node and the user's line
        raise ValueError(str(error)) from None
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis))


SPLIT = register(OpDef(
    "split", "shape", _split_infer, _split_reference,
    vjp=lambda node, cotangents: (concat(_or_zeros(cotangents, node.outputs), node.attrs["axis"]),),
    jvp=lambda node, tangents: split(tangents[0], node.attrs["sections"], node.attrs["axis"]),
    doc="Several outputs: x cut along axis into equal pieces (sections an int) or pieces of given sizes."))


def split(x: Any, num_or_size_splits: int | Sequence[int], axis: int = 0,
          name: str | None = None) -> tuple[Tensor, ...]:
    """A tuple of pieces of x along ``axis``: ``num_or_size_splits`` equal pieces (an int), or pieces of the
    listed sizes (one may be -1: the rest of the axis), as TF's ``tf.split``."""
    x = as_tensor(x)
    axis = canonical(normalize_axis, axis, x.ndim)
    sections = int(num_or_size_splits) if is_int(num_or_size_splits) else int_tuple(num_or_size_splits)
    dim = x.shape[axis] if is_int(axis) and 0 <= axis < x.ndim else None
    if dim is not None:  # with a known size, store the sizes themselves: one canonical attribute
        sections = canonical(_split_sizes, sections, dim)
    return apply(SPLIT, [x], name, sections=sections, axis=axis)


def _split_like_infer(x: TensorType, *likes: TensorType, axis: int) -> tuple[TensorType, ...]:
    _same_rank("split_like", (x, *likes))
    axis = normalize_axis(axis, x.rank)
    sizes = [like.shape[axis] for like in likes]
    merge_dims(x.shape[axis], None if None in sizes else sum(sizes), f"split_like along axis {axis}: the axis "
               "and the pieces")
    return tuple(TensorType(x.dtype, x.shape[:axis] + (size,) + x.shape[axis + 1:]) for size in sizes)


def _split_like_reference(x: np.ndarray, *likes: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    sizes = [like.shape[axis] for like in likes]
    if sum(sizes) != x.shape[axis]:
        raise ValueError(f"pieces of sizes {sizes} do not add up to the axis size {x.shape[axis]}")
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis))


SPLIT_LIKE = register(OpDef(
    "split_like", "shape", _split_like_infer, _split_like_reference,
    vjp=lambda node, cotangents: (concat(_or_zeros(cotangents, node.outputs), node.attrs["axis"]),
                                  *(None for _ in node.inputs[1:])),
    jvp=lambda node, tangents: split_like(tangents[0], node.inputs[1:], node.attrs["axis"]),
    doc="Several outputs: x cut along axis into pieces as long as each like is there (run-time sizes)."))


def split_like(x: Tensor, likes: Sequence[Tensor], axis: int, name: str | None = None) -> tuple[Tensor, ...]:
    """``x`` cut along ``axis`` into one piece per tensor of ``likes``, each as long as that tensor on
    ``axis`` at run time (the lengths must add up to x's): concat's derivative when sizes are unknown."""
    return apply(SPLIT_LIKE, [x, *likes], name, axis=canonical(normalize_axis, axis, x.ndim))


# -- broadcast_to --------------------------------------------------------------------------------------
def _broadcast_to_infer(x: TensorType, *, shape: tuple) -> TensorType:
    _check_target(shape, "broadcast_to target shape", allow_inferred=False)
    if len(shape) < x.rank:
        raise ShapeError(f"cannot broadcast {format_shape(x.shape)} to the lower-rank {_shape_text(shape)}")
    for axis, d in enumerate(x.shape):
        target = shape[len(shape) - x.rank + axis]
        if d not in (None, 1, target):
            raise ShapeError(f"cannot broadcast {format_shape(x.shape)} to {_shape_text(shape)} "
                             f"(axis {axis}: size {d} is neither 1 nor {target})")
    return TensorType(x.dtype, shape)


BROADCAST_TO = register(OpDef(
    "broadcast_to", "shape", _broadcast_to_infer,
    lambda x, *, shape: np.broadcast_to(x, shape).copy(),  # a copy: a broadcast view is read-only
    vjp=lambda node, cotangent: (sum_to(cotangent, node.inputs[0]),),
    jvp=lambda node, tangents: broadcast_to(tangents[0], node.attrs["shape"]),
    doc="x repeated along size-1 and missing leading axes to the given shape (numpy rules)."))


def broadcast_to(x: Any, shape: Sequence[int], name: str | None = None) -> Tensor:
    """x broadcast to ``shape`` (all sizes known ints) by numpy's rules."""
    return apply(BROADCAST_TO, [as_tensor(x)], name, shape=int_tuple(shape))


# -- pad -----------------------------------------------------------------------------------------------
def _pad_infer(x: TensorType, *, paddings: tuple, constant_values: Any) -> TensorType:
    if len(paddings) != x.rank or not all(
            isinstance(p, tuple) and len(p) == 2 and all(is_int(n) and n >= 0 for n in p) for p in paddings):
        raise ShapeError(f"paddings {paddings!r} must be {x.rank} (before, after) pairs of non-negative "
                         "ints, one per axis")
    check_scalar("pad constant_values", constant_values, x.dtype)
    return TensorType(x.dtype, tuple(None if d is None else d + sum(p) for d, p in zip(x.shape, paddings)))


def _pad_reference(x: np.ndarray, *, paddings: tuple, constant_values: Any) -> np.ndarray:
    return np.pad(x, paddings, mode="constant", constant_values=x.dtype.type(constant_values))


def _pad_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor]:
    from graphc.ops.indexing import getitem

    # the interior, counted from both ends so that it works for sizes known only at run time
    return (getitem(cotangent, tuple(builtins.slice(before, -after or None)
                                     for before, after in node.attrs["paddings"])),)


PAD = register(OpDef(
    "pad", "shape", _pad_infer, _pad_reference,
    vjp=_pad_vjp,
    jvp=lambda node, tangents: pad(tangents[0], node.attrs["paddings"]),
    doc="x surrounded by constant_values: paddings[i] = (before, after) elements on axis i."))


def pad(x: Any, paddings: Sequence[Sequence[int]], constant_values: Any = 0,
        name: str | None = None) -> Tensor:
    """x padded with ``constant_values`` (constant mode): ``paddings[i] = (before, after)`` for axis i."""
    x = as_tensor(x)
    pairs = paddings
    if isinstance(paddings, (Sequence, np.ndarray)):
        pairs = tuple(int_tuple(p) for p in paddings)
    return apply(PAD, [x], name, paddings=pairs, constant_values=scalar_attr(constant_values, x.dtype))
