"""One compiled run signature of the LLVM backend: buffers in, one native call, fetches out.

``run`` validates what native code cannot (the run-time sizes of every tensor, from the feeds' shapes, by
the ops' own shape rules — cached per set of feed shapes), fills a table with one pointer per buffer (feeds,
variables, constants, fresh arrays for the fetched outputs, and temporaries at their offsets in one arena
planned for these sizes), and makes one call: every kernel and GEMM of forward pass, gradients and updates.
Variables are updated in place. Under a monitor (profiling, check_numerics) the kernels are called one at a
time instead, on copies of the variables, and the monitor sees every kernel's outputs.
"""

from __future__ import annotations

import ctypes
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc.backends.compiled import (
    CompileReport,
    ShowsProgram,
    check_extents,
    check_sizes,
    checked_variable,
    contiguous,
    fetch_value,
    fetched_variables,
    lower_plan,
)
from graphc.errors import ShapeError
from graphc.graph.node import Node, Tensor
from graphc.lower.memory import plan_arena
from graphc.lower.shapes import ShapeResolver
from graphc.runtime.plan import Plan

_ONLY_HERE = 3  # sys.getrefcount of an array referenced by self._returned only (+ the local, + the argument)
KernelFunction = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)


@dataclass(eq=False)
class _Sized:
    """What depends on the run-time sizes only: dims, concrete shapes, the arena and the pointer table."""

    dims: np.ndarray
    shapes: dict[Tensor, tuple[int, ...]]
    arena: np.ndarray
    table: np.ndarray  # uint64 pointers, one per program buffer


class LLVMExecutable(ShowsProgram):
    """A plan compiled to native code (see the module docstring)."""

    def __init__(self, plan: Plan, build_native: Any) -> None:
        self.plan = plan
        self.report = CompileReport()
        started = time.perf_counter()
        self.partition, self.lowered = lower_plan(plan)
        self.report.stages["lower"] = time.perf_counter() - started
        self.native = build_native(self.lowered.program, self.report)
        self._entry = KernelFunction(self.native.entry)
        self._kernels = [KernelFunction(address) for address in self.native.kernels]
        self._resolver = ShapeResolver(self.lowered.shapes)
        buffers = self.lowered.program.buffers
        self._index = {id(b): i for i, b in enumerate(buffers)}
        self._feeds = [(self._index[id(b)], n) for n, b in self.lowered.feeds.items()]
        self._variables = [(self._index[id(b)], n) for n, b in self.lowered.variables.items()]
        self._outputs = [(self._index[id(b)], t, b.dtype) for t, b in self.lowered.outputs.items()]
        self._constants = {self._index[id(b)]: contiguous(b.value) for b in buffers if b.role == "constant"}
        self._fetched_variables = fetched_variables(plan)
        self._sized: dict[tuple, _Sized] = {}
        self._returned: dict[Tensor, np.ndarray] = {}  # each fetched output's array of the last run

    # -- what ``sess.compiled(...)`` shows -------------------------------------------------------------------
    @property
    def llvm_ir(self) -> str:
        """The LLVM IR after optimization for this CPU (vectorized loops show as ``<16 x float>`` etc.)."""
        return self.native.llvm_ir

    # -- running -------------------------------------------------------------------------------------------
    def run(self, feeds: dict[Node, np.ndarray], variables: dict[Node, np.ndarray], run_count: int,
            monitor: Any = None) -> tuple[list[Any], dict[Node, np.ndarray]]:
        feeds = {n: contiguous(a) for n, a in feeds.items()}
        sized = self._sized_for(feeds)
        sized.dims[0] = run_count
        table = sized.table
        for i, node in self._feeds:
            table[i] = feeds[node].ctypes.data
        if monitor is not None:  # observed runs work on copies: a failed check must leave variables untouched
            variables = {n: np.array(v) for n, v in variables.items()}
        before = {node: np.array(variables[node]) for node in self._fetched_variables}
        for i, node in self._variables:
            table[i] = checked_variable(node, variables[node]).ctypes.data
        outputs = {}
        for i, tensor, dtype in self._outputs:
            outputs[tensor] = array = self._output_array(tensor, sized.shapes[tensor], dtype)
            table[i] = array.ctypes.data
        if monitor is None:
            self._check(self._entry(table.ctypes.data, sized.dims.ctypes.data))
        else:
            self._run_monitored(sized, monitor)
        values = [fetch_value(t, feeds, variables, before, outputs) for t in self.plan.targets]
        updates = {n: variables[n] for n in self.lowered.updated} if monitor is not None else {}
        return values, updates

    def _output_array(self, tensor: Tensor, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        """A fresh array for a fetched output, or the one returned for it last run if nobody holds it any more
        (no reference outside this executable, no view of it): a training loop that drops its fetches then
        writes into memory already mapped, instead of page-faulting a new array in every run."""
        last = self._returned.get(tensor)
        if last is not None and last.shape == shape and sys.getrefcount(last) <= _ONLY_HERE:
            return last
        self._returned[tensor] = array = np.empty(shape, dtype=dtype)
        return array

    def _run_monitored(self, sized: _Sized, monitor: Any) -> None:
        clock = time.perf_counter
        for function, kernel in zip(self._kernels, self.lowered.program.kernels):
            started = clock()
            self._check(function(sized.table.ctypes.data, sized.dims.ctypes.data))
            seconds = clock() - started
            for tensor, buffer in kernel.outputs:
                address = int(sized.table[self._index[id(buffer)]])
                monitor.node_done(tensor.node, (self._view(address, buffer.dtype, sized.shapes[tensor]),), seconds)
                seconds = 0.0  # a kernel's time is counted once

    @staticmethod
    def _view(address: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape))
        if count == 0:
            return np.empty(shape, dtype)
        raw = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(address)
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()

    def _check(self, code: int) -> None:
        """A nonzero code: a ``Fail`` ran (an index out of range in the data): its message, as a ShapeError."""
        if code:
            raise ShapeError(self.lowered.program.failures[code - 1])

    def _sized_for(self, feeds: dict[Node, np.ndarray]) -> _Sized:
        feed_shapes = {n: a.shape for n, a in feeds.items()}
        key = tuple(feed_shapes.get(n, ()) for n in self.lowered.feeds)
        sized = self._sized.get(key)
        if sized is None:
            dims, shapes = self._resolver.resolve(feed_shapes)
            check_extents(self.partition, shapes)
            check_sizes(self.lowered.program, dims)
            temps = self.lowered.temps
            offsets, total = plan_arena(temps, self.lowered.lifetimes, dims)
            arena = np.empty(max(total, 1), dtype=np.uint8)
            table = np.zeros(len(self.lowered.program.buffers), dtype=np.uint64)
            for buffer, offset in zip(temps, offsets):
                table[self._index[id(buffer)]] = arena.ctypes.data + offset
            for i, constant in self._constants.items():
                table[i] = constant.ctypes.data
            sized = self._sized[key] = _Sized(dims, shapes, arena, table)
        return sized
