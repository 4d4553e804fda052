"""Cases for the shape and indexing ops (graphc/ops/shape.py, graphc/ops/indexing.py).

``expected`` is plain numpy: each op is checked against what numpy (or TF's documented rule, spelled out
in numpy) gives, never against the op's own reference. Every differentiable op has a small float64 case
(at most 40 elements), which tests/autodiff differentiates.
"""

import numpy as np

import graphc as gc
from graphc.ops import indexing, shape
from graphc.ops.indexing import GATHER, GETITEM, GETITEM_GRAD, ONE_HOT, SCATTER_ADD, SLICE
from graphc.ops.shape import (
    BROADCAST_TO,
    CONCAT,
    EXPAND_DIMS,
    PAD,
    RESHAPE,
    RESHAPE_LIKE,
    SPLIT,
    SPLIT_LIKE,
    SQUEEZE,
    STACK,
    TRANSPOSE,
)
from tests.ops.harness import OpCase, uniform


def arrays(*specs):
    """make_inputs for random arrays; each spec is (shape, dtype)."""
    return lambda rng: [uniform(rng, shape, dtype) for shape, dtype in specs]


def ints(low, high, shape, dtype="int64"):
    """make_inputs for one array of integers in [low, high), zeros included (they are valid indices)."""
    return lambda rng: [rng.integers(low, high, size=shape).astype(dtype)]


F32, F64, I32, I64, B = "float32", "float64", "int32", "int64", "bool"


def _placed(x, like, key):
    """Zeros shaped like ``like`` with x written at [key], by a Python loop over like's positions."""
    result = np.zeros(like.shape, x.dtype)
    positions = np.arange(like.size).reshape(like.shape)[key]
    for position, value in zip(positions.ravel(), x.ravel()):
        result.flat[position] = value
    return result


def _scattered(updates, indices, shape, axis):
    """Zeros of ``shape`` with updates added along ``axis`` at indices, one update slice at a time."""
    result = np.zeros(shape, updates.dtype)
    moved = np.moveaxis(result, axis, 0)  # a view: writes land in result
    slices = np.moveaxis(updates.reshape(shape[:axis] + (indices.size,) + shape[axis + 1:]), axis, 0)
    for index, piece in zip(indices.ravel(), slices):
        moved[index] += piece
    return result

CASES = [
    # -- reshape -----------------------------------------------------------------------------------------
    OpCase(RESHAPE, lambda x: gc.reshape(x, (6, 4)), arrays(((2, 3, 4), F32)), lambda a: a.reshape(6, 4),
           "known"),
    OpCase(RESHAPE, lambda x: gc.reshape(x, (-1, 12)), arrays(((2, 3, 4), F64)), lambda a: a.reshape(2, 12),
           "infer-first"),
    OpCase(RESHAPE, lambda x: x.reshape(4, -1), arrays(((2, 3, 4), I32)), lambda a: a.reshape(4, 6),
           "method-infer-last"),
    OpCase(RESHAPE, lambda x: x.reshape(-1), arrays(((3, 1, 2), B)), lambda a: a.ravel(), "flatten-bool"),
    OpCase(RESHAPE, lambda x: gc.reshape(x, ()), arrays(((1, 1), I64)), lambda a: a.reshape(()), "to-scalar"),
    OpCase(RESHAPE, lambda x: gc.reshape(x, (1, 1, 1)), arrays(((), F32)), lambda a: a.reshape(1, 1, 1),
           "from-scalar"),
    OpCase(RESHAPE, lambda x: gc.reshape(x, (3, -1)), arrays(((0, 3), F32)), lambda a: a.reshape(3, 0),
           "zero-size"),
    OpCase(RESHAPE_LIKE, shape.reshape_like, arrays(((2, 6), F64), ((3, 1, 4), F32)),
           lambda a, like: a.reshape(3, 1, 4), "float64"),
    OpCase(RESHAPE_LIKE, shape.reshape_like, arrays(((4,), I32), ((2, 2), B)), lambda a, like: a.reshape(2, 2),
           "int"),
    OpCase(RESHAPE_LIKE, shape.reshape_like, arrays(((0, 3), F32), ((3, 0, 2), F32)),
           lambda a, like: a.reshape(3, 0, 2), "zero-size"),
    # -- transpose ---------------------------------------------------------------------------------------
    OpCase(TRANSPOSE, lambda x: gc.transpose(x), arrays(((2, 3, 4), F32)), lambda a: a.transpose(2, 1, 0),
           "reverse"),
    OpCase(TRANSPOSE, lambda x: x.T, arrays(((3, 5), F64)), lambda a: a.swapaxes(0, 1), "T"),
    OpCase(TRANSPOSE, lambda x: gc.transpose(x, (1, -1, 0)), arrays(((2, 3, 4), I32)),
           lambda a: np.moveaxis(a, 0, -1), "negative-perm"),
    OpCase(TRANSPOSE, lambda x: x.transpose([0, 2, 1]), arrays(((2, 0, 1), B)),
           lambda a: np.swapaxes(a, 1, 2), "zero-size-bool"),
    # -- expand_dims and squeeze -------------------------------------------------------------------------
    OpCase(EXPAND_DIMS, lambda x: gc.expand_dims(x, 0), arrays(((3, 4), F32)), lambda a: a[None], "front"),
    OpCase(EXPAND_DIMS, lambda x: gc.expand_dims(x, -1), arrays(((3, 4), I64)), lambda a: a[..., None],
           "back"),
    OpCase(EXPAND_DIMS, lambda x: gc.expand_dims(x, -2), arrays(((0, 2), F64)), lambda a: a[:, None, :],
           "middle-zero-size"),
    OpCase(EXPAND_DIMS, lambda x: gc.expand_dims(x, 0), arrays(((), B)), lambda a: a.reshape(1), "scalar"),
    OpCase(EXPAND_DIMS, lambda x: gc.expand_dims(x, 1), arrays(((3, 4), F64)), lambda a: a[:, None],
           "middle-float64"),
    OpCase(SQUEEZE, lambda x: gc.squeeze(x), arrays(((1, 3, 1, 2), F32)), lambda a: a.reshape(3, 2), "all",
           unknown_dims=False),  # with unknown dims nothing is known to be 1
    OpCase(SQUEEZE, lambda x: gc.squeeze(x, -2), arrays(((1, 3, 1, 2), I32)), lambda a: a[:, :, 0, :],
           "negative-axis"),
    OpCase(SQUEEZE, lambda x: gc.squeeze(x, (0, 2)), arrays(((1, 0, 1), F64)), lambda a: a.reshape(0),
           "tuple-zero-size"),
    OpCase(SQUEEZE, lambda x: gc.squeeze(x), arrays(((1, 1), B)), lambda a: a.reshape(()), "to-scalar",
           unknown_dims=False),
    OpCase(SQUEEZE, lambda x: gc.squeeze(x, (0, 2)), arrays(((1, 3, 1, 2), F64)), lambda a: a.reshape(3, 2),
           "two-float64"),
    # -- concat and stack --------------------------------------------------------------------------------
    OpCase(CONCAT, lambda x, y: gc.concat([x, y], 0), arrays(((2, 3), F32), ((4, 3), F32)),
           lambda a, b: np.vstack([a, b]), "axis0"),
    OpCase(CONCAT, lambda x, y, z: gc.concat([x, y, z], axis=-1),
           arrays(((2, 1), F64), ((2, 0), F64), ((2, 3), F64)), lambda a, b, c: np.hstack([a, b, c]),
           "negative-axis-zero-size"),
    OpCase(CONCAT, lambda x, y: gc.concat([x, y], 1), arrays(((2, 2), F32), ((2, 3), I32)),
           lambda a, b: np.hstack([a, b.astype(np.float32)]), "promote"),
    OpCase(CONCAT, lambda x: gc.concat([x], 0), arrays(((3,), B)), lambda a: a.copy(), "single-bool"),
    OpCase(STACK, lambda x, y: gc.stack([x, y]), arrays(((2, 3), F32), ((2, 3), F32)),
           lambda a, b: np.array([a, b]), "axis0"),
    OpCase(STACK, lambda x, y, z: gc.stack([x, y, z], axis=-1), arrays(((2, 3), I64), ((2, 3), I64),
                                                                      ((2, 3), I64)),
           lambda a, b, c: np.dstack([a, b, c]), "last-axis"),
    OpCase(STACK, lambda x, y: gc.stack((x, y), 1), arrays(((0,), F64), ((0,), F64)),
           lambda a, b: np.zeros((0, 2)), "zero-size"),
    OpCase(STACK, lambda x: gc.stack([x, x], 0), arrays(((), B)), lambda a: np.array([a, a]), "scalars"),
    OpCase(STACK, lambda x, y: gc.stack([x, y, x], 1), arrays(((2, 3), F64), ((2, 3), F64)),
           lambda a, b: np.stack([a, b, a], 1), "repeated-float64"),
    # -- split -------------------------------------------------------------------------------------------
    OpCase(SPLIT, lambda x: gc.split(x, 3), arrays(((6, 2), F32)), lambda a: (a[:2], a[2:4], a[4:]),
           "equal"),
    OpCase(SPLIT, lambda x: gc.split(x, [1, -1, 2], axis=-1), arrays(((2, 6), F64)),
           lambda a: (a[:, :1], a[:, 1:4], a[:, 4:]), "sizes-with-minus-one"),
    OpCase(SPLIT, lambda x: gc.split(x, [2, 0, 1], 1), arrays(((1, 3, 2), I32)),
           lambda a: (a[:, :2], a[:, 2:2], a[:, 2:]), "empty-piece"),
    OpCase(SPLIT, lambda x: gc.split(x, 1), arrays(((2,), B)), lambda a: (a.copy(),), "one-piece-bool"),
    OpCase(SPLIT, lambda x: gc.split(x, 2, axis=1), arrays(((3, 0), F32)),
           lambda a: (a[:, :0], a[:, :0]), "zero-size"),
    OpCase(SPLIT, lambda x: gc.split(x, 3)[::2], arrays(((3, 2, 2), F64)), lambda a: (a[0:1], a[2:3]),
           "unused-piece"),
    OpCase(SPLIT_LIKE, lambda x, a, b: shape.split_like(x, [a, b], 1),
           arrays(((2, 5), F64), ((1, 2), F64), ((1, 3), I32)), lambda x, a, b: (x[:, :2], x[:, 2:]), "float64"),
    OpCase(SPLIT_LIKE, lambda x, a, b, c: shape.split_like(x, [a, b, c], -1),
           arrays(((3, 3), B), ((0, 1), F32), ((2, 0), F32), ((1, 2), F32)),
           lambda x, a, b, c: (x[:, :1], x[:, 1:1], x[:, 1:]), "empty-piece-bool"),
    OpCase(SPLIT_LIKE, lambda x, a: shape.split_like(x, [a], 0), arrays(((2, 3), I64), ((2, 7), F32)),
           lambda x, a: (x.copy(),), "one-piece"),
    # -- broadcast_to ------------------------------------------------------------------------------------
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, (4, 3)), arrays(((3,), F32)),
           lambda a: np.tile(a, (4, 1)), "new-axis"),
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, [2, 3, 4]), arrays(((3, 1), I64)),
           lambda a: np.repeat(a[None], 2, 0).repeat(4, 2), "size-1-axis"),
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, (2, 0)), arrays(((1, 1), F64)),
           lambda a: np.zeros((2, 0)), "zero-size"),
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, (2, 2)), arrays(((), B)),
           lambda a: np.full((2, 2), a), "scalar-bool"),
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, (2, 3, 4)), arrays(((3, 1), F64)),
           lambda a: np.tile(a, (2, 1, 4)), "float64"),
    # -- pad ---------------------------------------------------------------------------------------------
    OpCase(PAD, lambda x: gc.pad(x, [(1, 2), (0, 1)]), arrays(((2, 3), F32)),
           lambda a: np.block([[np.zeros((1, 4))], [a, np.zeros((2, 1))], [np.zeros((2, 4))]])
           .astype(np.float32), "zeros"),
    OpCase(PAD, lambda x: gc.pad(x, ((0, 0), (2, 0)), constant_values=-7), arrays(((2, 2), I32)),
           lambda a: np.concatenate([np.full((2, 2), -7, np.int32), a], 1), "int-value"),
    OpCase(PAD, lambda x: gc.pad(x, [[1, 1]], 2.5), arrays(((0,), F64)), lambda a: np.array([2.5, 2.5]),
           "zero-size"),
    OpCase(PAD, lambda x: gc.pad(x, [(0, 1)], constant_values=True), arrays(((2,), B)),
           lambda a: np.append(a, True), "bool"),
    OpCase(PAD, lambda x: gc.pad(x, [(1, 0), (2, 1)], 0.5), arrays(((2, 3), F64)),
           lambda a: np.pad(a, ((1, 0), (2, 1)), constant_values=0.5), "float64"),
    # -- getitem (x[key]) --------------------------------------------------------------------------------
    *[OpCase(GETITEM, lambda x, k=key: x[k], arrays((shape, dtype)), lambda a, k=key: a[k], label)
      for label, shape, dtype, key in [
          ("int", (4, 5), F32, 1),
          ("negative-int", (4, 5), F64, -1),
          ("ints", (4, 5, 6), I32, np.s_[1, -2, 3]),
          ("step-newaxis", (6, 3), F32, np.s_[1:-1:2, None]),
          ("reverse", (5,), I64, np.s_[::-1]),
          ("negative-step", (6, 5, 4), F32, np.s_[::-2, 1:4, -3]),
          ("negative-bounds", (6, 5), B, np.s_[:, -1:-4:-1]),
          ("negative-step-to-start", (6, 5), F32, np.s_[-2, 5:0:-2]),
          ("ellipsis-int", (2, 3, 4), F64, np.s_[..., 0]),
          ("int-ellipsis-step", (2, 3, 4), I32, np.s_[1, ..., ::3]),
          ("newaxis-around", (2, 3), F32, np.s_[None, ..., None]),
          ("ellipsis-only", (2, 3), B, Ellipsis),
          ("out-of-range-slice", (4, 3), F32, np.s_[10:, -10:2]),
          ("empty-slice", (4, 3), F64, np.s_[3:1]),
          ("zero-size", (0, 3), F32, np.s_[:, 1:]),
          ("zero-size-reverse", (0, 3), I64, np.s_[::-1, -1]),
          ("scalar-newaxis", (), F32, None),
          ("size-1", (1, 4), F32, np.s_[-1, None, 1::2]),
          ("steps-newaxis-float64", (5, 4), F64, np.s_[None, ::-2, 1::2]),
      ]],
    # -- getitem_grad (zeros with x placed at [key]) ------------------------------------------------------
    *[OpCase(GETITEM_GRAD, lambda x, like, k=key: indexing.getitem_grad(x, like, k),
             arrays((np.zeros(shape)[key].shape, dtype), (shape, like_dtype)),
             lambda a, like, k=key: _placed(a, like, k), label)
      for label, shape, dtype, like_dtype, key in [
          ("int", (4, 5), F64, F64, -2),
          ("steps-newaxis", (5, 4), F64, F32, np.s_[None, ::-2, 1::2]),
          ("ellipsis-int", (2, 3, 4), I32, F32, np.s_[..., 1]),
          ("empty", (4, 3), F32, F32, np.s_[3:1]),
          ("bool", (3,), B, B, np.s_[::2]),
      ]],
    # -- slice (TF) --------------------------------------------------------------------------------------
    OpCase(SLICE, lambda x: gc.slice(x, [1, 0, 2], [2, -1, 3]), arrays(((4, 3, 5), F32)),
           lambda a: a[1:3, :, 2:5], "mixed"),
    OpCase(SLICE, lambda x: gc.slice(x, (0, 1), (0, 2)), arrays(((2, 3), I32)), lambda a: a[:0, 1:],
           "zero-size"),
    OpCase(SLICE, lambda x: gc.slice(x, [3], [-1]), arrays(((3,), F64)), lambda a: a[3:], "at-end"),
    OpCase(SLICE, lambda x: gc.slice(x, [1, 1], [1, 1]), arrays(((2, 2), B)), lambda a: a[1:, 1:], "bool"),
    OpCase(SLICE, lambda x: gc.slice(x, [1, 0], [2, -1]), arrays(((4, 3), F64)), lambda a: a[1:3], "float64"),
    # -- gather ------------------------------------------------------------------------------------------
    OpCase(GATHER, lambda x, i: gc.gather(x, i),
           lambda rng: [uniform(rng, (5, 3)), rng.integers(0, 5, size=(4,))],
           lambda a, i: np.stack([a[j] for j in i]), "rows"),
    OpCase(GATHER, lambda x, i: gc.gather(x, i, axis=-1),
           lambda rng: [uniform(rng, (2, 3, 4), F64), rng.integers(0, 4, size=(2, 5)).astype(np.int32)],
           lambda a, i: np.stack([a[..., j] for j in i.ravel()], -1).reshape(2, 3, 2, 5), "matrix-indices"),
    OpCase(GATHER, lambda x: gc.gather(x, [2, -1, 0], axis=1), arrays(((2, 3), I64)),
           lambda a: a[:, [2, 2, 0]], "list-negative"),
    OpCase(GATHER, lambda x, i: gc.gather(x, i),
           lambda rng: [uniform(rng, (3, 2), B), np.zeros((0,), np.int64)], lambda a, i: a[:0], "empty"),
    OpCase(GATHER, lambda x: gc.gather(x, 1), arrays(((3, 2), F32)), lambda a: a[1], "scalar-index"),
    OpCase(GATHER, lambda x: gc.gather(x, [2, -1, 0, 2], axis=1), arrays(((2, 3), F64)),
           lambda a: a[:, [2, 2, 0, 2]], "repeated-float64"),
    # -- scatter_add (gather's transpose) ----------------------------------------------------------------
    OpCase(SCATTER_ADD, lambda u, i, like: indexing.scatter_add(u, i, like),
           lambda rng: [uniform(rng, (6, 2), F64), np.array([0, 3, 0, 4, -1, 0]), uniform(rng, (5, 2), F64)],
           lambda u, i, like: _scattered(u, i, like.shape, 0), "repeated-rows"),
    OpCase(SCATTER_ADD, lambda u, i, like: indexing.scatter_add(u, i, like, axis=-1),
           lambda rng: [uniform(rng, (2, 2, 3), F32), rng.integers(0, 4, size=(2, 3)).astype(np.int32),
                        uniform(rng, (2, 4), F32)],
           lambda u, i, like: _scattered(u, i, like.shape, 1), "matrix-indices", rtol=1e-6),
    OpCase(SCATTER_ADD, lambda u, like: indexing.scatter_add(u, 1, like, axis=1), arrays(((3,), I64), ((3, 2), B)),
           lambda u, like: _scattered(u, np.array(1), like.shape, 1), "scalar-index-int"),
    OpCase(SCATTER_ADD, lambda u, i, like: indexing.scatter_add(u, i, like),
           lambda rng: [np.zeros((0, 2)), np.zeros((0,), np.int64), uniform(rng, (3, 2), F64)],
           lambda u, i, like: np.zeros((3, 2)), "empty"),
    # -- one_hot -----------------------------------------------------------------------------------------
    OpCase(ONE_HOT, lambda i: gc.one_hot(i, 4), ints(-2, 6, (7,)),
           lambda i: np.array([[float(j == k) for k in range(4)] for j in i], np.float32),
           "with-out-of-range"),
    OpCase(ONE_HOT, lambda i: gc.one_hot(i, 3, on_value=5, off_value=-1, dtype="int32"),
           ints(0, 3, (2, 3), "int32"), lambda i: np.where(i[..., None] == np.arange(3), 5, -1)
           .astype(np.int32), "int-values"),
    OpCase(ONE_HOT, lambda i: gc.one_hot(i, 2, dtype=np.float64), ints(0, 2, (0, 2)),
           lambda i: np.zeros((0, 2, 2)), "zero-size"),
    OpCase(ONE_HOT, lambda i: gc.one_hot(i, 3, True, False, "bool"), ints(0, 3, ()),
           lambda i: np.arange(3) == i, "scalar-bool"),
]
