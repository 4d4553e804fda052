"""Running a loop-nest program element by element in Python: the IR's own oracle.

Slow (one Python step per element) and exact to the IR's meaning, so lowering can be tested on small
shapes independently of any renderer, and a renderer's result can be compared with it when they differ.
Arithmetic is done with numpy scalars of each expression's dtype, so float32 rounds as it would natively.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from graphc.errors import GraphcError
from graphc.lower.ir import Assign, Buffer, Declare, Dim, Fail, Gemm, If, Index, Load, Local, Loop, Program, Stmt, Store
from graphc.ops.scalar import CAST, Call, Const, Expr


class ProgramFailed(GraphcError):
    """A ``Fail`` statement ran: ``code`` indexes the program's failure messages (1-based)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def interpret(program: Program, arrays: Mapping[Buffer, np.ndarray], dims: Sequence[int]) -> None:
    """Run every kernel of ``program`` on ``arrays`` (flat, one per buffer, written in place)."""
    machine = _Machine(arrays, dims)
    for kernel in program.kernels:
        try:
            machine.run(kernel.body, {})
        except _Stop as stop:
            raise ProgramFailed(stop.code, program.failures[stop.code - 1]) from None


class _Stop(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Machine:
    def __init__(self, arrays: Mapping[Buffer, np.ndarray], dims: Sequence[int]) -> None:
        self.arrays = arrays
        self.dims = [np.int64(d) for d in dims]

    def run(self, body: Sequence[Stmt], env: dict[str, Any]) -> None:
        for s in body:
            if isinstance(s, Loop):
                for i in range(int(self.value(s.extent, env))):
                    env[s.index.name] = np.int64(i)
                    self.run(s.body, env)
            elif isinstance(s, Store):
                self.arrays[s.buffer][self.offset(s.buffer, s.index, env)] = self.value(s.value, env)
            elif isinstance(s, Declare | Assign):
                env[s.local.name] = self.value(s.value, env)
            elif isinstance(s, If):
                self.run(s.then if self.value(s.condition, env) else s.orelse, env)
            elif isinstance(s, Fail):
                raise _Stop(s.code)
            elif isinstance(s, Gemm):
                self.gemm(s, env)
            else:
                raise TypeError(f"unknown statement {s!r}")

    def offset(self, buffer: Buffer, index: Expr, env: dict[str, Any]) -> int:
        offset = int(self.value(index, env))
        if not 0 <= offset < self.arrays[buffer].size:
            raise IndexError(f"{buffer.name}[{offset}] is outside its {self.arrays[buffer].size} elements")
        return offset

    def value(self, e: Expr, env: dict[str, Any]) -> Any:
        if isinstance(e, Const):
            return np.dtype(e.dtype).type(e.value)
        if isinstance(e, Index | Local):
            return env[e.name]
        if isinstance(e, Dim):
            return self.dims[e.slot]
        if isinstance(e, Load):
            return self.arrays[e.buffer][self.offset(e.buffer, e.index, env)]
        assert isinstance(e, Call)
        args = [self.value(a, env) for a in e.args]
        with np.errstate(all="ignore"):
            if e.primitive is CAST:
                return np.asarray(args[0]).astype(e.to)[()]
            return np.asarray(e.primitive.numpy(*args)).astype(e.dtype)[()]

    def gemm(self, g: Gemm, env: dict[str, Any]) -> None:
        m, n, k = (int(self.value(x, env)) for x in (g.m, g.n, g.k))
        a = self.matrix(g.a, g.a_offset, g.lda, (k, m) if g.trans_a else (m, k), env)
        b = self.matrix(g.b, g.b_offset, g.ldb, (n, k) if g.trans_b else (k, n), env)
        c = self.matrix(g.c, g.c_offset, g.ldc, (m, n), env)
        product = (a.T if g.trans_a else a) @ (b.T if g.trans_b else b)
        c[...] = (g.alpha * product + (g.beta * c if g.beta else 0)).astype(c.dtype)

    def matrix(self, buffer: Buffer, offset: Expr, ld: Expr, shape: tuple[int, int], env: dict) -> np.ndarray:
        flat = self.arrays[buffer]
        start, stride = int(self.value(offset, env)), int(self.value(ld, env))
        rows, cols = shape
        if rows and cols and (start < 0 or start + (rows - 1) * stride + cols > flat.size):
            raise IndexError(f"gemm operand {buffer.name} reaches outside its {flat.size} elements")
        return np.lib.stride_tricks.as_strided(flat[start:], shape, (stride * flat.itemsize, flat.itemsize))
