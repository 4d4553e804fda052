"""Cases for the shape and indexing ops (graphc/ops/shape.py, graphc/ops/indexing.py).

``expected`` is plain numpy: each op is checked against what numpy (or TF's documented rule, spelled out
in numpy) gives, never against the op's own reference.
"""

import numpy as np

import graphc as gc
from graphc.ops.indexing import GATHER, GETITEM, ONE_HOT, SLICE
from graphc.ops.shape import BROADCAST_TO, CONCAT, EXPAND_DIMS, PAD, RESHAPE, SPLIT, SQUEEZE, STACK, TRANSPOSE
from tests.ops.harness import OpCase, uniform


def arrays(*specs):
    """make_inputs for random arrays; each spec is (shape, dtype)."""
    return lambda rng: [uniform(rng, shape, dtype) for shape, dtype in specs]


def ints(low, high, shape, dtype="int64"):
    """make_inputs for one array of integers in [low, high), zeros included (they are valid indices)."""
    return lambda rng: [rng.integers(low, high, size=shape).astype(dtype)]


F32, F64, I32, I64, B = "float32", "float64", "int32", "int64", "bool"

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
    OpCase(SQUEEZE, lambda x: gc.squeeze(x), arrays(((1, 3, 1, 2), F32)), lambda a: a.reshape(3, 2), "all",
           unknown_dims=False),  # with unknown dims nothing is known to be 1
    OpCase(SQUEEZE, lambda x: gc.squeeze(x, -2), arrays(((1, 3, 1, 2), I32)), lambda a: a[:, :, 0, :],
           "negative-axis"),
    OpCase(SQUEEZE, lambda x: gc.squeeze(x, (0, 2)), arrays(((1, 0, 1), F64)), lambda a: a.reshape(0),
           "tuple-zero-size"),
    OpCase(SQUEEZE, lambda x: gc.squeeze(x), arrays(((1, 1), B)), lambda a: a.reshape(()), "to-scalar",
           unknown_dims=False),
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
    # -- broadcast_to ------------------------------------------------------------------------------------
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, (4, 3)), arrays(((3,), F32)),
           lambda a: np.tile(a, (4, 1)), "new-axis"),
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, [2, 3, 4]), arrays(((3, 1), I64)),
           lambda a: np.repeat(a[None], 2, 0).repeat(4, 2), "size-1-axis"),
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, (2, 0)), arrays(((1, 1), F64)),
           lambda a: np.zeros((2, 0)), "zero-size"),
    OpCase(BROADCAST_TO, lambda x: gc.broadcast_to(x, (2, 2)), arrays(((), B)),
           lambda a: np.full((2, 2), a), "scalar-bool"),
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
      ]],
    # -- slice (TF) --------------------------------------------------------------------------------------
    OpCase(SLICE, lambda x: gc.slice(x, [1, 0, 2], [2, -1, 3]), arrays(((4, 3, 5), F32)),
           lambda a: a[1:3, :, 2:5], "mixed"),
    OpCase(SLICE, lambda x: gc.slice(x, (0, 1), (0, 2)), arrays(((2, 3), I32)), lambda a: a[:0, 1:],
           "zero-size"),
    OpCase(SLICE, lambda x: gc.slice(x, [3], [-1]), arrays(((3,), F64)), lambda a: a[3:], "at-end"),
    OpCase(SLICE, lambda x: gc.slice(x, [1, 1], [1, 1]), arrays(((2, 2), B)), lambda a: a[1:, 1:], "bool"),
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
