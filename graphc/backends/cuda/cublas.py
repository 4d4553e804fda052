"""cuBLAS GEMMs through ctypes (libcublas of the CUDA toolkit), on pycuda device pointers.

graphc's ``Gemm`` is row-major: C[m×n] = alpha·op(A)·op(B) + beta·C with row strides ``lda``/``ldb``/``ldc``.
cuBLAS is column-major, and a row-major matrix read column-major is its transpose, so the same memory holds
Cᵀ = op(B)ᵀ·op(A)ᵀ: one column-major GEMM with the operands swapped, m and n swapped, the same leading
dimensions and the same transpose flags (``column_major`` computes the arguments; it is a pure function,
tested against numpy without a GPU).
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from graphc.errors import BackendUnavailableError, CompileError

OP_N, OP_T = 0, 1  # cublasOperation_t
_STATUS = {1: "not initialized", 3: "allocation failed", 7: "invalid value", 8: "architecture mismatch",
           11: "mapping error", 13: "execution failed", 14: "internal error", 15: "not supported"}
_FUNCTIONS = {"float32": ("cublasSgemm_v2", ctypes.c_float), "float64": ("cublasDgemm_v2", ctypes.c_double)}
_BATCHED = {"float32": "cublasSgemmStridedBatched", "float64": "cublasDgemmStridedBatched"}


@dataclass(frozen=True)
class ColumnMajorGemm:
    """The arguments of one column-major cuBLAS GEMM (``a``, ``b``, ``c``: device addresses, or any values the
    caller passes through, such as offsets in a test)."""

    transa: int
    transb: int
    m: int
    n: int
    k: int
    a: int
    lda: int
    b: int
    ldb: int
    c: int
    ldc: int


def column_major(trans_a: bool, trans_b: bool, m: int, n: int, k: int, a: int, lda: int, b: int, ldb: int,
                 c: int, ldc: int) -> ColumnMajorGemm:
    """The column-major GEMM that computes the row-major C[m×n] = op(A)·op(B) (see the module docstring).
    A leading dimension of 0 (a matrix with no columns) is given as 1, the least cuBLAS accepts."""
    return ColumnMajorGemm(OP_T if trans_b else OP_N, OP_T if trans_a else OP_N, n, m, k,
                           b, max(ldb, 1), a, max(lda, 1), c, max(ldc, 1))


@dataclass(frozen=True)
class Batch:
    """Consecutive GEMMs of one shape whose operands lie ``strides`` elements apart (the column-major a, b, c):
    one strided batched call (``count`` 1: a plain GEMM)."""

    count: int = 1
    strides: tuple[int, int, int] = (0, 0, 0)


SINGLE = Batch()  # one plain GEMM


def batched(calls: list[tuple[ColumnMajorGemm, int]]) -> list[tuple[ColumnMajorGemm, Batch]]:
    """``calls`` — in order, each with the size of its C region in elements — grouped into runs of one shape
    at constant strides (an attention's product per sequence and head): each run one batched call. A run
    never writes one C region twice or a C region another member reads (the members run concurrently)."""
    runs: list[tuple[ColumnMajorGemm, Batch, ColumnMajorGemm, int]] = []  # first, batch, last, C size
    for call, c_size in calls:
        if runs:
            first, batch, last, size = runs[-1]
            step = (call.a - last.a, call.b - last.b, call.c - last.c)
            same = (call.transa, call.transb, call.m, call.n, call.k, call.lda, call.ldb, call.ldc) == \
                   (first.transa, first.transb, first.m, first.n, first.k, first.lda, first.ldb, first.ldc)
            if same and (batch.count == 1 or step == batch.strides) and abs(step[2]) >= size:
                runs[-1] = (first, Batch(batch.count + 1, step), call, size)
                continue
        runs.append((call, SINGLE, call, c_size))
    return [(first, batch) for first, batch, _, _ in runs]


def _candidates() -> list[str]:
    names = ["libcublas.so", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11"]
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    found = [str(Path(root) / lib / name) for root in roots if root for lib in ("lib64", "lib") for name in names
             if (Path(root) / lib / name).is_file()]
    return names + found


@functools.cache
def library() -> ctypes.CDLL:
    """libcublas, found by the dynamic loader or under the CUDA toolkit; BackendUnavailableError without it."""
    for candidate in _candidates():
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        lib.cublasCreate_v2.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.cublasDestroy_v2.argtypes = [ctypes.c_void_p]
        lib.cublasSetStream_v2.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        for dtype, (name, scalar) in _FUNCTIONS.items():
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                           ctypes.c_int, ctypes.POINTER(scalar), ctypes.c_void_p, ctypes.c_int,
                                           ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(scalar), ctypes.c_void_p,
                                           ctypes.c_int]
            matrix = [ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong]  # pointer, leading dimension, stride
            getattr(lib, _BATCHED[dtype]).argtypes = [
                ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                ctypes.POINTER(scalar), *matrix, *matrix, ctypes.POINTER(scalar), *matrix, ctypes.c_int]
        return lib
    raise BackendUnavailableError("the cuda backend runs matrix products with cuBLAS, and libcublas.so was not found: "
                                  "install the CUDA toolkit's cuBLAS and put its lib64 directory on LD_LIBRARY_PATH, "
                                  "or set CUDA_HOME")


def _check(status: int, what: str) -> None:
    if status:
        raise CompileError(f"cuBLAS {what} failed: {_STATUS.get(status, 'status')} ({status})")


class Cublas:
    """A cuBLAS handle of the current CUDA context, issuing GEMMs on one stream (None: the legacy default
    stream, which orders them with pycuda's kernel launches)."""

    def __init__(self, stream: int | None = None) -> None:
        self._lib = library()
        self._handle = ctypes.c_void_p()
        _check(self._lib.cublasCreate_v2(ctypes.byref(self._handle)), "cublasCreate")
        _check(self._lib.cublasSetStream_v2(self._handle, stream), "cublasSetStream")

    def gemm(self, dtype: str, call: ColumnMajorGemm, alpha: float, beta: float, batch: Batch = SINGLE) -> None:
        """Issue ``call`` (asynchronous, like a kernel launch) on ``dtype`` (float32 or float64) matrices — or,
        for a ``batch`` of more than one, ``batch.count`` GEMMs, the i-th on operands ``i·batch.strides``
        elements after ``call``'s, as one strided batched call."""
        if dtype not in _FUNCTIONS:
            raise CompileError(f"cuBLAS GEMM of {dtype} is not supported by the cuda backend (float32, float64)")
        name, scalar = _FUNCTIONS[dtype]
        alpha_, beta_ = ctypes.byref(scalar(alpha)), ctypes.byref(scalar(beta))
        shape = (self._handle, call.transa, call.transb, call.m, call.n, call.k)
        if batch.count == 1:
            status = getattr(self._lib, name)(*shape, alpha_, call.a, call.lda, call.b, call.ldb, beta_, call.c,
                                              call.ldc)
        else:
            name = _BATCHED[dtype]
            status = getattr(self._lib, name)(*shape, alpha_, call.a, call.lda, batch.strides[0], call.b, call.ldb,
                                              batch.strides[1], beta_, call.c, call.ldc, batch.strides[2],
                                              batch.count)
        _check(status, name)

    def close(self) -> None:
        """Destroy the handle (once)."""
        if self._handle:
            self._lib.cublasDestroy_v2(self._handle)
            self._handle = ctypes.c_void_p()
