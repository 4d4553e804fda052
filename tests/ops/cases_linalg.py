"""Cases for matmul, tensordot and einsum; expected values are plain numpy."""

from __future__ import annotations

import numpy as np

import graphc as gc
from graphc.ops import linalg as L
from tests.ops.harness import OpCase, uniform

# Dot products of random signs cancel: an entry near 0 carries the rounding of its larger terms, so the
# tolerance is absolute as well as relative (float32 summation order may differ from numpy's).
TOLERANCES = {"float32": {"rtol": 1e-5, "atol": 1e-4}, "float64": {"rtol": 1e-12, "atol": 1e-12}}


def _inputs(*shapes, dtype="float32"):
    return lambda rng: [uniform(rng, shape, dtype, -9, 9) if dtype.startswith("int")
                        else uniform(rng, shape, dtype) for shape in shapes]


def _dims(shape):
    return "x".join(map(str, shape)) or "scalar"


def _tolerance(dtype):
    return TOLERANCES.get(dtype, {})


def _matmul(a_shape, b_shape, dtype="float32", note="", operator=False):
    build = (lambda a, b: a @ b) if operator else gc.matmul
    label = f"{dtype}-{_dims(a_shape)}@{_dims(b_shape)}" + (f"-{note}" if note else "")
    return OpCase(L.MATMUL, build, _inputs(a_shape, b_shape, dtype=dtype), np.matmul, label=label,
                  **_tolerance(dtype))


def _tensordot(a_shape, b_shape, axes, dtype="float32", note=""):
    label = f"{dtype}-{_dims(a_shape)}.{_dims(b_shape)}-{note}"
    return OpCase(L.TENSORDOT, lambda a, b: gc.tensordot(a, b, axes), _inputs(a_shape, b_shape, dtype=dtype),
                  _np_tensordot(axes), label=label, **_tolerance(dtype))


def _np_tensordot(axes):
    """np.tensordot written independently: move the contracted axes together, then one matmul."""
    def expected(a, b):
        a_axes, b_axes = ((range(a.ndim - axes, a.ndim), range(axes)) if isinstance(axes, int) else axes)
        a_axes, b_axes = [np.atleast_1d(x) % n for x, n in zip((a_axes, b_axes), (a.ndim, b.ndim))]
        a_free = [i for i in range(a.ndim) if i not in a_axes]
        b_free = [j for j in range(b.ndim) if j not in b_axes]
        size = int(np.prod([a.shape[i] for i in a_axes]))
        left = np.transpose(a, a_free + list(a_axes)).reshape(-1, size)
        right = np.transpose(b, list(b_axes) + b_free).reshape(size, -1)
        shape = [a.shape[i] for i in a_free] + [b.shape[j] for j in b_free]
        return (left @ right).reshape(shape)
    return expected


def _einsum(spec, expected, *shapes, dtype="float32", unknown_dims=True):
    label = f"{dtype}-{spec.replace(' ', '').replace('->', '_to_').replace(',', '_').replace('...', 'E')}"
    return OpCase(L.EINSUM, lambda *xs: gc.einsum(spec, *xs), _inputs(*shapes, dtype=dtype),
                  expected, label=label if spec else f"{dtype}-scalar", **_tolerance(dtype),
                  unknown_dims=unknown_dims)


CASES = [
    # matmul: matrices, batches (broadcast), 1-D operands, size-1 and zero-size dims, ints
    _matmul((3, 4), (4, 5)),
    _matmul((3, 4), (4, 5), "float64"),
    _matmul((3, 4), (4, 5), "int32"),
    _matmul((2, 3), (3, 2), "int64"),
    _matmul((2, 3, 4), (2, 4, 5)),
    _matmul((2, 3, 4), (4, 5), "float64", note="batch-left"),
    _matmul((4, 5), (2, 5, 3), "float64", note="batch-right"),
    _matmul((2, 1, 3, 4), (5, 4, 2), "float64", note="broadcast"),
    _matmul((4,), (4, 5), note="vector-left"),
    _matmul((3, 4), (4,), "float64", note="vector-right"),
    _matmul((4,), (4,), "float64", note="dot"),
    _matmul((4,), (4, 3), "float64", note="vector-left"),
    _matmul((3,), (2, 3, 2), "float64", note="vector-batch"),
    _matmul((2, 2, 3), (3,), "float64", note="batch-vector"),
    _matmul((2, 2, 3), (3, 2), "float64", note="batch-left-small"),
    _matmul((2, 1, 2, 3), (3, 3, 2), "float64", note="broadcast-small"),  # both operands' batch dims stretch
    _matmul((4,), (2, 4, 3), note="vector-batch"),
    _matmul((2, 3, 4), (4,), "int64", note="batch-vector"),
    _matmul((1, 1), (1, 1)),
    _matmul((0, 4), (4, 3), "float64"),
    _matmul((3, 0), (0, 2), note="empty-contraction"),
    _matmul((3, 4), (4, 5), note="operator", operator=True),
    _matmul((256, 64), (64, 32), note="large"),
    # tensordot: an int N, a pair of ints, a pair of sequences (any order, negative)
    _tensordot((3, 4), (4, 5), 1, note="axes1"),
    _tensordot((2, 3, 4), (3, 4, 5), 2, "float64", note="axes2"),
    _tensordot((2, 3), (4, 5), 0, "float64", note="outer"),
    _tensordot((3, 4, 5), (5, 4, 2), ((1, 2), (1, 0)), note="pairs"),
    _tensordot((3, 4, 5), (2, 3), (0, -1), "float64", note="negative"),
    _tensordot((3, 2, 2), (2, 3), (0, -1), "float64", note="negative-small"),
    _tensordot((2, 2, 3), (3, 2, 2), ((1, 2), (2, 0)), "float64", note="pairs-unordered"),
    _tensordot((2, 3), (3, 4), 1, "float64", note="axes1"),
    _tensordot((3, 4), (4, 3), ([0, 1], [1, 0]), "int32", note="full"),
    _tensordot((2, 3), (3, 0), 1, "float64", note="empty-free"),
    # einsum: the common patterns, implicit outputs, '...', traces; expected without einsum
    _einsum("ij,jk->ik", np.matmul, (3, 4), (4, 5)),
    _einsum("ij,jk->ik", np.matmul, (3, 4), (4, 5), dtype="int32"),
    _einsum("bij,bjk->bik", np.matmul, (2, 3, 4), (2, 4, 5), dtype="float64"),
    _einsum("i,i->", lambda a, b: np.sum(a * b), (6,), (6,), dtype="float64"),
    _einsum("ij->ji", lambda x: x.T.copy(), (3, 4)),
    _einsum("bhqd,bhkd->bhqk", lambda q, k: q @ np.swapaxes(k, -1, -2), (2, 3, 4, 8), (2, 3, 5, 8)),
    _einsum("ij,j->i", lambda a, v: np.sum(a * v, axis=1), (3, 4), (4,), dtype="float64"),
    _einsum("i,j->ij", np.outer, (3,), (4,), dtype="int64"),
    _einsum("ij->i", lambda x: np.sum(x, axis=1), (3, 4), dtype="float64"),
    _einsum("ij->", lambda x: np.sum(x), (3, 4), dtype="float64"),
    _einsum("ij,jk", np.matmul, (3, 4), (4, 5), dtype="float64"),
    _einsum("ba", lambda x: x.T.copy(), (3, 4), dtype="float64"),
    _einsum("aB", lambda x: x.T.copy(), (3, 4), dtype="float64"),  # 'B' sorts before 'a'
    _einsum("i j , j k -> k i", lambda a, b: (a @ b).T.copy(), (3, 4), (4, 2), dtype="float64"),
    _einsum("ijk->kij", lambda x: np.transpose(x, (2, 0, 1)).copy(), (2, 3, 4), dtype="float64"),
    _einsum("bi,bi->b", lambda a, b: np.sum(a * b, axis=-1), (5, 3), (5, 3), dtype="float64"),
    _einsum("...ij,...jk->...ik", np.matmul, (2, 3, 4), (4, 5), dtype="float64"),
    _einsum("...i,i", lambda x, v: np.sum(x * v, axis=-1), (2, 3, 4), (4,), dtype="float64"),
    _einsum("ij,jk,kl->il", lambda a, b, c: a @ b @ c, (2, 3), (3, 4), (4, 5), dtype="float64"),
    _einsum("ij,ij->ij", np.multiply, (0, 3), (0, 3), dtype="float64"),
    _einsum("ij,jk->ik", np.matmul, (3, 0), (0, 2), dtype="float64"),
    _einsum("ii->", lambda x: np.asarray(np.trace(x)), (3, 3), dtype="float64", unknown_dims=False),
    _einsum("ii->i", lambda x: np.diagonal(x).copy(), (3, 3), dtype="float64"),
    _einsum("", lambda x: x.copy(), (), dtype="float64"),
    # small float64 cases for the derivative checks: '...' broadcast (also inside a term), a letter summed in
    # one operand only, and repeated letters beside other operands
    _einsum("...ij,jk->...ik", np.matmul, (2, 2, 3), (3, 2), dtype="float64"),
    _einsum("i...j,...j->...i", lambda a, b: np.sum(np.moveaxis(a, 0, -2) * b[..., None, :], axis=-1),
            (2, 1, 3, 2), (4, 1, 2), dtype="float64"),
    _einsum("ij,jk->i", lambda a, b: a @ b.sum(axis=1), (2, 3), (3, 2), dtype="float64"),
    _einsum("iji,jk->ik", lambda a, b: np.diagonal(a, axis1=0, axis2=2).T @ b, (2, 3, 2), (3, 2),
            dtype="float64"),
    _einsum("iii->i", lambda x: x[np.arange(2), np.arange(2), np.arange(2)], (2, 2, 2), dtype="float64"),
    _einsum("bij,bjk->bik", np.matmul, (2, 2, 3), (2, 3, 2), dtype="float64"),
    # eye_like: the identity that einsum's derivative ties repeated letters with
    OpCase(L.EYE_LIKE, lambda x: L.eye_like(x, 0), _inputs((3, 2), dtype="float64"),
           lambda x: np.eye(3), label="float64-3x2-axis0"),
    OpCase(L.EYE_LIKE, lambda x: L.eye_like(x, -1), _inputs((3, 2), dtype="int32"),
           lambda x: np.eye(2, dtype=np.int32), label="int32-3x2-axis-1"),
]
