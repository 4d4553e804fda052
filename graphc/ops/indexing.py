"""Indexing ops: ``x[...]`` (numpy basic indexing), TF's ``slice``, ``gather`` and ``one_hot``, and the two
ops their derivatives need: ``getitem_grad`` (x written at ``[key]`` of zeros, the transpose of ``x[key]``
and of ``slice``) and ``scatter_add`` (values added at indices of zeros, the transpose of ``gather``). Each
pair differentiates the other, so gradients of any order stay within these four ops.

``x[key]`` is stored with its key normalized to a hashable tuple that covers every input axis, one entry
per key item: ``("index", i)``, ``("slice", start, stop, step)`` or ``("newaxis",)``; Ellipsis is expanded
and missing trailing axes become full slices. On an axis of known size, indices are made non-negative and
slices canonical (so ``x[-1]`` and ``x[2]`` of a size-3 axis are the same node); on an axis known only at
run time they are kept as written and numpy resolves them when the graph runs.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.dtypes import INTS, NUMERIC, as_dtype
from graphc.graph.node import Node, Tensor
from graphc.graph.types import TensorType, format_shape
from graphc.ops.axes import canonical, is_int, normalize_axis
from graphc.ops.convert import as_tensor
from graphc.ops.registry import OpDef, apply, register
from graphc.ops.shape import check_scalar, int_tuple, scalar_attr

__all__ = ["getitem", "slice", "gather", "one_hot"]


# -- x[key] --------------------------------------------------------------------------------------------
def _key_problem(items: tuple, rank: int) -> tuple | None:
    """An ("invalid", error kind, message) entry if ``items`` is not a basic index for rank ``rank``."""
    for item in items:
        if isinstance(item, builtins.slice):
            parts = (item.start, item.stop, item.step)
            if not all(p is None or is_int(p) for p in parts):
                return ("invalid", "type", f"slice bounds must be ints or None, got {item!r}")
            if item.step == 0:
                return ("invalid", "shape", "slice step cannot be zero")
        elif item is not None and item is not Ellipsis and not is_int(item):
            return ("invalid", "type", f"{type(item).__name__} {item!r} is not a basic index (use ints, "
                                       "slices, None and ...; gc.gather takes tensors and lists of indices)")
    if sum(item is Ellipsis for item in items) > 1:
        return ("invalid", "shape", "an index can have only one ellipsis ('...')")
    consumed = sum(item is not None and item is not Ellipsis for item in items)
    if consumed > rank:
        return ("invalid", "shape", f"too many indices: {consumed} for a tensor of rank {rank}")
    return None


def _slice_entry(item: builtins.slice, dim: int | None) -> tuple:
    step = 1 if item.step is None else int(item.step)
    start, stop = (None if v is None else int(v) for v in (item.start, item.stop))
    if dim is None:
        return ("slice", start, stop, step)
    positions = range(*builtins.slice(start, stop, step).indices(dim))
    if not positions:
        return ("slice", 0, 0, 1)
    end = positions[-1] + (1 if step > 0 else -1)
    return ("slice", positions[0], end if end >= 0 else None, step)


def _index_entry(index: int, dim: int | None) -> tuple:
    index = int(index)
    return ("index", index + dim if dim is not None and -dim <= index < 0 else index)


def normalize_key(key: Any, shape: tuple) -> tuple:
    """The hashable, canonical form of a basic-indexing key for a tensor of static ``shape``."""
    items = key if isinstance(key, tuple) else (key,)
    problem = _key_problem(items, len(shape))
    if problem:
        return (problem,)
    missing = len(shape) - sum(item is not None and item is not Ellipsis for item in items)
    if Ellipsis not in items:
        items = (*items, Ellipsis)
    entries, axis = [], 0
    for item in items:
        if item is None:
            entries.append(("newaxis",))
            continue
        for _ in range(missing if item is Ellipsis else 1):
            whole = item is Ellipsis or isinstance(item, builtins.slice)
            entries.append(_slice_entry(builtins.slice(None) if item is Ellipsis else item, shape[axis])
                           if whole else _index_entry(item, shape[axis]))
            axis += 1
    return tuple(entries)


def _getitem_infer(x: TensorType, *, key: tuple) -> TensorType:
    shape, axis = [], 0
    for entry in key:
        if entry[0] == "invalid":
            raise (DTypeError if entry[1] == "type" else ShapeError)(entry[2])
        if entry[0] == "newaxis":
            shape.append(1)
            continue
        if axis >= x.rank:
            raise ShapeError(f"too many indices for a tensor of rank {x.rank}")
        dim = x.shape[axis]
        if entry[0] == "index" and dim is not None and not -dim <= entry[1] < dim:  # unnormalized when built on None
            raise ShapeError(f"index {entry[1]} is out of range for axis {axis} of size {dim}")
        if entry[0] == "slice":
            shape.append(None if dim is None else len(range(*builtins.slice(*entry[1:]).indices(dim))))
        axis += 1
    if axis != x.rank:
        raise ShapeError(f"the key indexes {axis} of the {x.rank} axes (a normalized key covers all)")
    return TensorType(x.dtype, tuple(shape))


def _python_index(entry: tuple) -> Any:
    if entry[0] == "newaxis":
        return None
    return entry[1] if entry[0] == "index" else builtins.slice(*entry[1:])


def _index(key: tuple) -> tuple:
    return tuple(_python_index(e) for e in key)


GETITEM = register(OpDef(
    "getitem", "shape", _getitem_infer,
    lambda x, *, key: np.asarray(x[_index(key)]),
    vjp=lambda node, cotangent: (_place(cotangent, node.inputs[0], node.attrs["key"]),),
    jvp=lambda node, tangents: _pick(tangents[0], node.attrs["key"]),
    doc="numpy basic indexing x[key]: ints, slices (any step), None (new axis) and Ellipsis."))


def getitem(x: Any, key: Any, name: str | None = None) -> Tensor:
    """``x[key]`` with numpy basic indexing: ints (negative count from the end), slices with any step,
    ``None``/``np.newaxis`` and ``...``. An int out of range of an axis of known size is a ShapeError."""
    x = as_tensor(x)
    return apply(GETITEM, [x], name, key=normalize_key(key, x.shape))


def _pick(x: Tensor, key: tuple) -> Tensor:
    """``x[key]`` for a key already normalized."""
    return apply(GETITEM, [x], key=key)


# -- getitem_grad: the transpose of x[key] -----------------------------------------------------------------
def _check_fits(shape: tuple, wanted: tuple, what: str) -> None:
    """Raise ShapeError unless ``shape`` can be ``wanted`` at run time (None fits any size)."""
    if len(shape) != len(wanted) or any(a is not None and b is not None and a != b for a, b in zip(shape, wanted)):
        raise ShapeError(f"{what}: expected shape {format_shape(wanted)}, got {format_shape(shape)}")


def _getitem_grad_infer(x: TensorType, like: TensorType, *, key: tuple) -> TensorType:
    _check_fits(x.shape, _getitem_infer(like, key=key).shape, f"cannot place x at [key] of {format_shape(like.shape)}")
    return TensorType(x.dtype, like.shape)


def _getitem_grad_reference(x: np.ndarray, like: np.ndarray, *, key: tuple) -> np.ndarray:
    result = np.zeros(like.shape, x.dtype)
    if result[_index(key)].shape != x.shape:  # numpy would broadcast a wrong shape silently
        raise ValueError(f"cannot place shape {x.shape} at a selection of shape {result[_index(key)].shape}")
    result[_index(key)] = x
    return result


GETITEM_GRAD = register(OpDef(
    "getitem_grad", "shape", _getitem_grad_infer, _getitem_grad_reference,
    vjp=lambda node, cotangent: (_pick(cotangent, node.attrs["key"]), None),
    jvp=lambda node, tangents: _place(tangents[0], node.inputs[1], node.attrs["key"]),
    doc="Zeros of like's run-time shape with x placed at [key]: the derivative of getitem and slice."))


def getitem_grad(x: Any, like: Tensor, key: Any, name: str | None = None) -> Tensor:
    """Zeros of ``like``'s run-time shape with ``x`` written at ``[key]`` (basic indexing, as ``like[key]``,
    whose shape x must have): the transpose of ``like[key]``, so the derivative of ``x[key]``."""
    return _place(as_tensor(x, graph=like.graph), like, normalize_key(key, like.shape), name)


def _place(x: Tensor, like: Tensor, key: tuple, name: str | None = None) -> Tensor:
    """getitem_grad for a key already normalized."""
    return apply(GETITEM_GRAD, [x, like], name, key=key)


# -- slice (TF) ----------------------------------------------------------------------------------------
def _slice_infer(x: TensorType, *, begin: tuple, size: tuple) -> TensorType:
    if len(begin) != x.rank or len(size) != x.rank:
        raise ShapeError(f"slice begin {begin} and size {size} need one entry per axis (rank {x.rank})")
    if not all(is_int(b) and b >= 0 for b in begin) or not all(is_int(s) and s >= -1 for s in size):
        raise ShapeError(f"slice begin {begin} must hold non-negative ints and size {size} ints >= -1")
    shape = []
    for axis, (dim, b, s) in enumerate(zip(x.shape, begin, size)):
        if dim is not None and (b > dim or b + s > dim):
            end = "the end" if s == -1 else b + s
            raise ShapeError(f"slice from {b} to {end} runs past the end of axis {axis} (size {dim})")
        shape.append(s if s != -1 else None if dim is None else dim - b)
    return TensorType(x.dtype, tuple(shape))


def _slice_reference(x: np.ndarray, *, begin: tuple, size: tuple) -> np.ndarray:
    ends = [dim if s == -1 else b + s for dim, b, s in zip(x.shape, begin, size)]
    if any(b > dim or end > dim for dim, b, end in zip(x.shape, begin, ends)):
        raise ValueError(f"slice begin {begin} size {size} runs past the end of {format_shape(x.shape)}")
    return x[tuple(builtins.slice(b, end) for b, end in zip(begin, ends))]


def _slice_key(node: Node) -> tuple:
    """The basic-indexing key that picks what a slice node picks."""
    ends = (None if s == -1 else b + s for b, s in zip(node.attrs["begin"], node.attrs["size"]))
    return normalize_key(tuple(map(builtins.slice, node.attrs["begin"], ends)), node.inputs[0].shape)


SLICE = register(OpDef(
    "slice", "shape", _slice_infer, _slice_reference,
    vjp=lambda node, cotangent: (_place(cotangent, node.inputs[0], _slice_key(node)),),
    jvp=lambda node, tangents: slice(tangents[0], node.attrs["begin"], node.attrs["size"]),
    doc="TF's slice: size[i] elements of axis i from begin[i] (size -1: to the end); must stay in bounds."))


def slice(x: Any, begin: Sequence[int], size: Sequence[int], name: str | None = None) -> Tensor:  # noqa: A001
    """TF's ``tf.slice``: ``size[i]`` elements of axis i starting at ``begin[i]``; size -1 takes the rest.

    Unlike Python slicing, a slice running past the end is an error, not clamped.
    """
    x = as_tensor(x)
    begin, size = int_tuple(begin), int_tuple(size)
    if len(begin) == len(size) == x.ndim:  # a known size replaces -1: one canonical attribute
        size = tuple(d - b if s == -1 and d is not None and is_int(b) and 0 <= b <= d else s
                     for d, b, s in zip(x.shape, begin, size))
    return apply(SLICE, [x], name, begin=begin, size=size)


# -- gather and one_hot --------------------------------------------------------------------------------
def _check_indices(op_name: str, indices: TensorType) -> None:
    if indices.dtype not in INTS:
        raise DTypeError(f"{op_name} indices must be int32 or int64, got {indices.dtype}")


def _gather_infer(params: TensorType, indices: TensorType, *, axis: int) -> TensorType:
    axis = normalize_axis(axis, params.rank)
    _check_indices("gather", indices)
    return TensorType(params.dtype, params.shape[:axis] + indices.shape + params.shape[axis + 1:])


GATHER = register(OpDef(
    "gather", "shape", _gather_infer,
    lambda params, indices, *, axis: np.take(params, indices, axis=axis),
    vjp=lambda node, cotangent: (scatter_add(cotangent, node.inputs[1], node.inputs[0], node.attrs["axis"]),
                                 None),
    jvp=lambda node, tangents: gather(tangents[0], node.inputs[1], node.attrs["axis"]),
    doc="Slices of params along axis picked by integer indices (any shape)."))


def gather(params: Any, indices: Any, axis: int = 0, name: str | None = None) -> Tensor:
    """Slices of ``params`` along ``axis`` picked by ``indices`` (an int32/int64 tensor, array or list).

    The result has shape ``params.shape[:axis] + indices.shape + params.shape[axis+1:]``. Negative indices
    count from the end (numpy); an index outside [-n, n) is an error when the graph runs.
    """
    params = as_tensor(params)
    indices = as_tensor(indices, graph=params.graph)
    return apply(GATHER, [params, indices], name, axis=canonical(normalize_axis, axis, params.ndim))


def _scatter_add_infer(updates: TensorType, indices: TensorType, like: TensorType, *, axis: int) -> TensorType:
    axis = normalize_axis(axis, like.rank)
    _check_indices("scatter_add", indices)
    if updates.dtype not in NUMERIC:
        raise DTypeError(f"scatter_add updates must be numeric, got {updates.dtype}")
    _check_fits(updates.shape, _gather_infer(like, indices, axis=axis).shape,
                f"scatter_add updates for indices {format_shape(indices.shape)} along axis {axis} of "
                f"{format_shape(like.shape)}")
    return TensorType(updates.dtype, like.shape)


def _scatter_add_reference(updates: np.ndarray, indices: np.ndarray, like: np.ndarray, *,
                           axis: int) -> np.ndarray:
    result = np.zeros(like.shape, updates.dtype)
    where = (builtins.slice(None),) * axis + (indices,)
    if result[where].shape != updates.shape:  # np.add.at would broadcast a wrong shape silently
        raise ValueError(f"updates of shape {updates.shape} for a selection of shape {result[where].shape}")
    np.add.at(result, where, updates)  # repeated indices add up
    return result


SCATTER_ADD = register(OpDef(
    "scatter_add", "shape", _scatter_add_infer, _scatter_add_reference,
    vjp=lambda node, cotangent: (gather(cotangent, node.inputs[1], node.attrs["axis"]), None, None),
    jvp=lambda node, tangents: scatter_add(tangents[0], node.inputs[1], node.inputs[2], node.attrs["axis"]),
    doc="Zeros of like's run-time shape plus updates added at indices along axis: gather's transpose."))


def scatter_add(updates: Any, indices: Any, like: Tensor, axis: int = 0, name: str | None = None) -> Tensor:
    """Zeros of ``like``'s run-time shape, with slice j of ``updates`` added at position ``indices[j]`` of
    ``axis`` (repeated indices add up; negative ones count from the end): the transpose of
    ``gather(like, indices, axis)``, whose shape ``updates`` must have."""
    updates = as_tensor(updates, graph=like.graph)
    indices = as_tensor(indices, graph=like.graph)
    return apply(SCATTER_ADD, [updates, indices, like], name, axis=canonical(normalize_axis, axis, like.ndim))


def _one_hot_infer(indices: TensorType, *, depth: int, on_value: Any, off_value: Any,
                   dtype: str) -> TensorType:
    _check_indices("one_hot", indices)
    if not is_int(depth) or depth < 0:
        raise ShapeError(f"one_hot depth must be a non-negative int, got {depth!r}")
    check_scalar("one_hot on_value", on_value, dtype)
    check_scalar("one_hot off_value", off_value, dtype)
    return TensorType(dtype, indices.shape + (depth,))


def _one_hot_reference(indices: np.ndarray, *, depth: int, on_value: Any, off_value: Any,
                       dtype: str) -> np.ndarray:
    hot = np.expand_dims(indices, -1) == np.arange(depth)
    return np.where(hot, np.asarray(on_value, dtype), np.asarray(off_value, dtype))


ONE_HOT = register(OpDef(
    "one_hot", "shape", _one_hot_infer, _one_hot_reference,
    vjp=lambda node, cotangent: (None,),  # its input is an integer index: no derivative flows to it
    jvp=lambda node, tangents: None,
    doc="A new last axis of size depth: on_value at each index, off_value elsewhere."))


def one_hot(indices: Any, depth: int, on_value: Any = 1, off_value: Any = 0, dtype: Any = "float32",
            name: str | None = None) -> Tensor:
    """A new last axis of size ``depth`` holding ``on_value`` at position ``indices`` and ``off_value``
    elsewhere; an index outside [0, depth) gives a row of ``off_value`` (as TF)."""
    dtype = as_dtype(dtype)
    depth = int(depth) if is_int(depth) else depth
    return apply(ONE_HOT, [as_tensor(indices)], name, depth=depth, on_value=scalar_attr(on_value, dtype),
                 off_value=scalar_attr(off_value, dtype), dtype=dtype)
