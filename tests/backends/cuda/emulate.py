"""The CUDA backend's programs run end to end on the host, without a GPU (test helper).

A plan is lowered and rendered exactly as ``CUDAExecutable`` does it; the rendered CUDA C is compiled as host
C++ (g++ with the CUDA shim of test_render.py: IEEE intrinsics, no contraction), many programs to one shared
library; a run then does what ``CUDAExecutable.run`` does, step for step, on host memory: the run-time sizes
resolved and checked, the temps placed in one arena by ``plan_arena`` (filled with 0xff bytes: NaN in every
float, so a value read before it is written shows), the outputs filled the same way, each ``Launch`` run as
every thread of a small simulated grid (blocks of 4 threads, at most 2 blocks: fewer threads than elements,
so the grid-stride loops and the index recovery are exercised; a serial part on one thread; none for 0
threads; a launch whose threads synchronize — a block per row, its reductions warp shuffles and shared
memory — runs blocks of the runtime's 256 threads, at most 2, each block's threads as fibers switched at
every barrier and shuffle),
each ``GemmCall`` as the column-major GEMMs executable.py would issue to cuBLAS (computed by numpy
on views of the buffers), and the status word checked after each step (a failure raises the program's
message, as ``CUDAExecutable`` does).

Usage: ``emulated(graph, fetches, feed_dict, number)`` for each program, ``build(programs, directory)`` once
(one g++ run per chunk of programs, in parallel), then ``program.run(feed_dict, {variable node: value})``.
The CUDA shim (``HOST_SHIMS``) and the g++ build (``compile_host``) live here; test_render.py uses them too.
"""

from __future__ import annotations

import ctypes
import dataclasses
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc
from graphc.backends.compiled import check_extents, check_sizes, contiguous, fetch_value, fetched_variables, lower_plan
from graphc.backends.cuda.cublas import OP_T, Batch, ColumnMajorGemm
from graphc.backends.cuda.executable import gemm_batches
from graphc.backends.cuda.render import BLOCK as RENDER_BLOCK
from graphc.backends.cuda.render import PRELUDE, CudaModule, GemmCall, Launch, render
from graphc.errors import ShapeError
from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.memory import plan_arena
from graphc.lower.shapes import ShapeResolver
from graphc.passes.pipeline import optimize as optimize_graph
from graphc.runtime.feeds import check_feeds
from graphc.runtime.fetches import flatten_fetches
from graphc.runtime.optimized import OptimizedExecutable
from graphc.runtime.plan import Plan, make_plan

# -- host C++ standing in for CUDA C ------------------------------------------------------------------------
GXX = shutil.which("g++")
HOST_SHIMS = r"""#include <climits>
#include <ucontext.h>
#include <vector>
#include <cmath>
#include <math.h>
#define __global__
#define __device__
#define __forceinline__ inline
/* what the CUDA intrinsics guarantee: IEEE round-to-nearest operations, never contracted (-ffp-contract=off);
   float to int truncates, saturates and gives 0 for NaN (PTX cvt.rzi) */
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dsqrt_rn(double a) { return sqrt(a); }
template <typename I, typename F> inline I saturate(F x, I low, I high) {
  if (x != x) return 0;
  if (x <= (F)low) return low;  /* -2^31 and -2^63 are exact in either float type */
  if (x >= -(F)low) return high;
  return (I)x;
}
inline int __float2int_rz(float x) { return saturate<int>(x, INT_MIN, INT_MAX); }
inline long long __float2ll_rz(float x) { return saturate<long long>(x, LLONG_MIN, LLONG_MAX); }
inline int __double2int_rz(double x) { return saturate<int>(x, INT_MIN, INT_MAX); }
inline long long __double2ll_rz(double x) { return saturate<long long>(x, LLONG_MIN, LLONG_MAX); }
inline int atomicCAS(int* p, int compare, int value) { int old = *p; if (old == compare) *p = value; return old; }
/* a simulated grid: the host sets which thread of which block runs */
struct gc_dim3 { unsigned x, y, z; };
gc_dim3 blockIdx, threadIdx, blockDim, gridDim;
extern "C" void gc_set_thread(unsigned block, unsigned thread, unsigned blocks, unsigned per_block) {
  blockIdx.x = block; threadIdx.x = thread; gridDim.x = blocks; blockDim.x = per_block;
}
/* a block's threads as fibers (ucontext) of the calling host thread: __shared__ arrays are function statics
   (one block runs at a time), and __syncthreads switches back to the block's scheduler, which resumes the
   threads in rounds: each round runs every live thread up to its next barrier, or its end */
#define GRAPHC_SHARED(type, name, count) static type name[count]
static const unsigned gc_stack_bytes = 1 << 16;
static ucontext_t gc_scheduler;
static std::vector<ucontext_t> gc_fibers;
static std::vector<char> gc_stacks;
static std::vector<char> gc_done;
static unsigned gc_running, gc_block, gc_blocks, gc_per_block;
static void* gc_function;
static void** gc_args;
inline void __syncthreads() { swapcontext(&gc_fibers[gc_running], &gc_scheduler); }
/* a warp shuffle, called by every thread of the block at the same point (as the rendered reductions do): each
   thread posts its value, all meet, each reads lane + delta of its own warp (its own value past the warp's
   end), all meet again before the slots are reused */
template <typename T> T __shfl_down_sync(unsigned, T value, int delta) {
  static std::vector<T> slots;
  slots.resize(blockDim.x);
  slots[threadIdx.x] = value;
  __syncthreads();
  const unsigned lane = threadIdx.x % 32, source = threadIdx.x + delta;
  const T result = lane + delta < 32 && source < blockDim.x ? slots[source] : value;
  __syncthreads();
  return result;
}
static void gc_fiber(int thread) {
  GC_CALL(gc_function, gc_args);
  gc_done[thread] = 1;
}
/* every launched function takes only pointers: called with ARGUMENTS (emulate.py) of them, the extra ones
   ignored (in the host ABIs, x86-64 and AArch64, the caller passes and removes them; the callee reads its own) */
/* a grid whose threads never synchronize: every thread in turn, the last first */
extern "C" void gc_run_grid(void* function, void** args, unsigned blocks, unsigned per_block) {
  gc_function = function; gc_args = args;
  for (long long t = (long long)blocks * per_block - 1; t >= 0; --t) {
    gc_set_thread((unsigned)(t / per_block), (unsigned)(t % per_block), blocks, per_block);
    GC_CALL(gc_function, gc_args);
  }
}
/* a grid whose blocks synchronize: block after block, each block's threads as fibers */
extern "C" void gc_run_blocks(void* function, void** args, unsigned blocks, unsigned per_block) {
  gc_function = function; gc_args = args;
  gc_fibers.resize(per_block);
  gc_stacks.resize((size_t)per_block * gc_stack_bytes);
  gc_done.assign(per_block, 0);
  for (unsigned block = 0; block < blocks; ++block) {
    for (unsigned thread = 0; thread < per_block; ++thread) {
      ucontext_t& fiber = gc_fibers[thread];
      getcontext(&fiber);
      fiber.uc_stack.ss_sp = &gc_stacks[(size_t)thread * gc_stack_bytes];
      fiber.uc_stack.ss_size = gc_stack_bytes;
      fiber.uc_link = &gc_scheduler;
      makecontext(&fiber, (void (*)())gc_fiber, 1, (int)thread);
      gc_done[thread] = 0;
    }
    for (unsigned live = per_block; live > 0;) {
      for (unsigned thread = 0; thread < per_block; ++thread) {
        if (gc_done[thread]) continue;
        gc_running = thread;
        gc_set_thread(block, thread, blocks, per_block);
        swapcontext(&gc_scheduler, &gc_fibers[thread]);
        if (gc_done[thread]) --live;
      }
    }
  }
}
"""

ARGUMENTS = 64  # GC_ARGUMENTS: the most pointers a launched function may take in emulation
HOST_SHIMS = HOST_SHIMS.replace("GC_CALL(gc_function, gc_args);", "((void (*)({}))gc_function)({});".format(
    ", ".join(["void*"] * ARGUMENTS), ", ".join(f"gc_args[{k}]" for k in range(ARGUMENTS))))


def compile_host(source: str, path: Path) -> ctypes.CDLL:
    """``source`` (CUDA C behind ``HOST_SHIMS``) written to ``path`` and compiled as a host shared library: g++
    -O1 with no contraction and no fast math, so each operation rounds as the GPU's IEEE intrinsics do."""
    if GXX is None:
        raise RuntimeError("emulate: g++ is not on PATH")
    path.write_text(source)
    library = path.with_suffix(".so")
    result = subprocess.run([GXX, "-std=c++17", "-O1", "-ffp-contract=off", "-fno-fast-math", "-shared",
                             "-fPIC", "-w", "-o", str(library), str(path)], capture_output=True, text=True, timeout=300)
    if result.returncode:
        raise AssertionError(f"emulate: g++ failed:\n{result.stderr[:4000]}")
    return ctypes.CDLL(str(library))


BLOCK, BLOCKS = 4, 2  # the simulated grid: threads per block, most blocks
GARBAGE = 0xFF  # the byte uninitialized memory holds: NaN in float32 and float64


class EmulatedExecutable:
    """One run signature as the CUDA backend compiles it (lowered, rendered), run on the host once ``library``
    is set (by ``build``). It follows the backend contract under a monitor: ``run`` works on copies of the
    variables and returns their new values (the Session's arrays are left untouched)."""

    def __init__(self, plan: Plan, prefix: str) -> None:
        self.plan = plan
        self.partition, self.lowered = lower_plan(plan)
        self.module: CudaModule = render(self.lowered.program, prefix=prefix)
        self.library: ctypes.CDLL | None = None
        self.steps_run = {"launches": 0, "gemms": 0, "block launches": 0}  # what runs did (what tests covered)
        self.synchronizing = synchronizing(self.module.source)

    @property
    def program(self) -> ir.Program:
        """The loop-nest program rendered."""
        return self.lowered.program

    def run(self, feeds: dict[Node, np.ndarray], variables: dict[Node, np.ndarray], run_count: int = 0,
            monitor: Any = None) -> tuple[list[Any], dict[Node, np.ndarray]]:
        """(fetched values in plan order, new values of the updated variables) of one run."""
        if self.library is None:
            raise RuntimeError("emulate: build() the library before running")
        if monitor is not None:
            raise NotImplementedError("emulate: monitors are not emulated")
        feeds = {n: contiguous(a) for n, a in feeds.items()}
        lowered = self.lowered
        dims, shapes = ShapeResolver(lowered.shapes).resolve({n: a.shape for n, a in feeds.items()})
        check_extents(self.partition, shapes)
        check_sizes(lowered.program, dims)
        dims[0] = run_count
        dims = np.ascontiguousarray(dims, dtype=np.int64)
        arrays = self._buffers(feeds, variables, dims)
        before = {node: np.array(variables[node]) for node in fetched_variables(self.plan)}
        status = np.zeros(1, np.int32)
        for step in self.module.steps:
            if isinstance(step, Launch):
                self._launch(step, arrays, dims, status)
            else:
                self._gemms(step, arrays, dims)
            if status[0]:
                raise ShapeError(lowered.program.failures[status[0] - 1])
        outputs = {t: arrays[b].view(b.dtype).reshape(shapes[t]).copy() for t, b in lowered.outputs.items()}
        hosts = {n: arrays[b].view(b.dtype).reshape(variables[n].shape) for n, b in lowered.variables.items()}
        values = [fetch_value(t, feeds, {**variables, **hosts}, before, outputs) for t in self.plan.targets]
        return values, {n: hosts[n].copy() for n in lowered.updated}

    def _buffers(self, feeds: dict[Node, np.ndarray], variables: dict[Node, np.ndarray],
                 dims: np.ndarray) -> dict[ir.Buffer, np.ndarray]:
        """Every buffer's bytes (uint8, flat): feeds, variables and constants copied, outputs and temps (in one
        arena, placed as on the GPU) garbage."""
        lowered = self.lowered
        arrays: dict[ir.Buffer, np.ndarray] = {}
        for node, buffer in lowered.feeds.items():
            arrays[buffer] = _bytes(np.asarray(feeds[node], buffer.dtype))
        for node, buffer in lowered.variables.items():
            arrays[buffer] = _bytes(np.asarray(variables[node], buffer.dtype))
        offsets, total = plan_arena(lowered.temps, lowered.lifetimes, dims)
        arena = np.full(total, GARBAGE, np.uint8)
        for buffer, offset in zip(lowered.temps, offsets):
            arrays[buffer] = arena[offset:offset + _nbytes(buffer, dims)]
        for buffer in lowered.program.buffers:
            if buffer.role == "constant":
                arrays[buffer] = _bytes(np.asarray(buffer.value, buffer.dtype))
            elif buffer.role == "output":
                arrays[buffer] = np.full(_nbytes(buffer, dims), GARBAGE, np.uint8)
        missing = [b.name for b in lowered.program.buffers if b not in arrays]
        assert not missing, f"emulate: buffers with no memory: {missing}"
        return arrays

    def _launch(self, step: Launch, arrays: dict[ir.Buffer, np.ndarray], dims: np.ndarray,
                status: np.ndarray) -> None:
        """``step`` run as every thread of its grid, the last thread first (executable.py's grid, scaled down)."""
        threads = ir.evaluate_size(step.threads, dims)
        if threads <= 0:
            return
        block = min(BLOCK, threads)
        grid = min(-(-threads // block), BLOCKS)
        buffers = self.program.buffers
        pointers = [_pointer(arrays[buffers[b]]) for b in step.buffers] + [_pointer(dims), _pointer(status)]
        function = getattr(self.library, step.function)
        if step.function in self.synchronizing:  # blocks of render.BLOCK threads, as the runtime launches them
            assert len(pointers) <= ARGUMENTS, f"emulate: {step.function} takes more than {ARGUMENTS} pointers"
            arguments = (ctypes.c_void_p * ARGUMENTS)(*pointers)
            grid = min(-(-threads // RENDER_BLOCK), BLOCKS)
            self.library.gc_run_blocks(ctypes.cast(function, ctypes.c_void_p), arguments, grid, RENDER_BLOCK)
            self.steps_run["launches"] += 1
            self.steps_run["block launches"] += 1
            return
        for thread in reversed(range(grid * block)):
            self.library.gc_set_thread(thread // block, thread % block, grid, block)
            function(*pointers)
        self.steps_run["launches"] += 1

    def _gemms(self, call: GemmCall, arrays: dict[ir.Buffer, np.ndarray], dims: np.ndarray) -> None:
        """The cuBLAS calls executable.py issues for ``call`` (offsets in elements in place of addresses; the
        column-major call's A is the row-major B and its B the row-major A), a batched call's members one by one."""
        g = call.gemm
        for first, batch in gemm_batches(call, dims):
            for member in batch_members(first, batch):
                column_major_gemm(member, arrays[g.b].view(g.dtype), arrays[g.a].view(g.dtype),
                                  arrays[g.c].view(g.dtype), g.alpha, g.beta)
            self.steps_run["gemms"] += 1


def batch_members(call: ColumnMajorGemm, batch: Batch, unit: int = 1) -> list[ColumnMajorGemm]:
    """The GEMMs of a (strided) batched cuBLAS call, one by one: ``call`` moved by ``i·batch.strides`` elements
    of ``unit`` (1: offsets in elements; the itemsize: addresses)."""
    return [dataclasses.replace(call, a=call.a + i * batch.strides[0] * unit, b=call.b + i * batch.strides[1] * unit,
                                c=call.c + i * batch.strides[2] * unit) for i in range(batch.count)]


def synchronizing(source: str) -> set[str]:
    """The names of the functions of ``source`` (CUDA C) whose threads meet at barriers (run as fibers in
    emulation)."""
    chunks = source.split('extern "C" __global__ void ')[1:]
    return {chunk.split("(", 1)[0] for chunk in chunks if "__syncthreads()" in chunk.split("\n}", 1)[0]}


def column_major_gemm(call: ColumnMajorGemm, a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float,
                      beta: float) -> None:
    """cuBLAS's gemm on flat host arrays, ``call.a``/``b``/``c`` being element offsets into ``a``/``b``/``c``:
    C = alpha·op(A)·op(B) + beta·C, column-major; C is not read when beta is 0 (as cuBLAS)."""

    def matrix(flat: np.ndarray, offset: int, rows: int, columns: int, ld: int) -> np.ndarray:
        if rows == 0 or columns == 0:
            return np.zeros((rows, columns), flat.dtype)
        assert offset >= 0 and offset + (columns - 1) * ld + rows <= flat.size, "emulate: GEMM out of bounds"
        return np.lib.stride_tricks.as_strided(flat[offset:], (rows, columns), (flat.itemsize, ld * flat.itemsize))

    a_rows, a_columns = (call.k, call.m) if call.transa == OP_T else (call.m, call.k)
    b_rows, b_columns = (call.n, call.k) if call.transb == OP_T else (call.k, call.n)
    op_a = matrix(a, call.a, a_rows, a_columns, call.lda)
    op_b = matrix(b, call.b, b_rows, b_columns, call.ldb)
    op_a, op_b = (op_a.T if call.transa == OP_T else op_a), (op_b.T if call.transb == OP_T else op_b)
    target = matrix(c, call.c, call.m, call.n, call.ldc)
    product = (np.asarray(alpha, c.dtype) * (op_a @ op_b)).astype(c.dtype)
    target[...] = product if beta == 0 else product + np.asarray(beta, c.dtype) * target


def _nbytes(buffer: ir.Buffer, dims: np.ndarray) -> int:
    return ir.evaluate_size(buffer.size, dims) * np.dtype(buffer.dtype).itemsize


def _bytes(array: np.ndarray) -> np.ndarray:
    """A fresh flat uint8 copy of ``array``'s C-order bytes (a bool is one byte, as on the GPU)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).copy()


def _pointer(array: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(array.ctypes.data)


# -- compiling for the Session's signature, and building the host library -----------------------------------
class _Backend:
    """A backend module for ``OptimizedExecutable``: its ``compile`` makes an ``EmulatedExecutable``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def compile(self, plan: Plan) -> EmulatedExecutable:
        return EmulatedExecutable(plan, self.prefix)


class Emulated:
    """One ``sess.run(fetches, feed_dict)`` signature as a Session on the cuda backend compiles it (the graph
    optimized at level 2; when a run's sizes break the assumption that unknown sizes are equal, the general
    version, compiled then, as the Session does), run in emulation with the user's placeholders and variables."""

    def __init__(self, graph: gc.Graph, fetches: list, feed_dict: dict, prefix: str,
                 exclude: tuple[str, ...] = ()) -> None:
        targets, _ = flatten_fetches(graph, fetches)
        feeds = check_feeds(graph, feed_dict)
        plan = make_plan(graph, tuple(targets), frozenset(feeds))
        first = {n.outputs[0]: v for n, v in feeds.items()}
        optimized = optimize_graph(tuple(targets), level=2, feed_dict=first, exclude=exclude)
        self.graph, self.prefix = graph, prefix
        self.directory: Path | None = None  # where ``build`` compiled it
        general = None if exclude else lambda: self._general(fetches, feed_dict)
        self.outer = OptimizedExecutable(plan, optimized, _Backend(prefix), general=general)
        self.executable: EmulatedExecutable = self.outer.inner

    def _general(self, fetches: list, feed_dict: dict) -> OptimizedExecutable:
        version = Emulated(self.graph, fetches, feed_dict, f"{self.prefix}_general", ("assume_equal_unknown_dims",))
        build([version], self.directory, chunks=1)
        return version.outer

    def run(self, feed_dict: dict, variables: dict[Node, np.ndarray] | None = None,
            run_count: int = 0) -> tuple[list[Any], dict[Node, np.ndarray]]:
        """(fetched values, new values of the updated variables) of ``feed_dict`` (as ``sess.run`` takes it)
        and the variables' values (``{variable node: array}``), keyed by the user's nodes."""
        return self.outer.run(check_feeds(self.graph, feed_dict), variables or {}, run_count)


def emulated(graph: gc.Graph, fetches: list, feed_dict: dict, number: int) -> Emulated:
    """The emulated signature of ``fetches`` fed ``feed_dict`` (``{placeholder: array}``); ``number`` makes its
    function names unique in a shared library."""
    return Emulated(graph, fetches, feed_dict, f"p{number}")


def build(programs: list[Emulated], directory: Path, chunks: int = 2) -> None:
    """Compile every program's CUDA C as host C++ (g++ -O1, no contraction), ``chunks`` shared libraries
    built in parallel, and attach each program's library."""
    groups = [programs[i::chunks] for i in range(chunks)]
    groups = [g for g in groups if g]

    def compile_group(number: int) -> ctypes.CDLL:
        bodies = []
        for program in groups[number]:
            source = program.executable.module.source
            assert source.startswith(PRELUDE)
            bodies.append(source[len(PRELUDE):])
        return compile_host(HOST_SHIMS + PRELUDE + "\n".join(bodies),
                            directory / f"emulated_{groups[number][0].prefix}.cpp")

    with ThreadPoolExecutor(len(groups)) as pool:
        libraries = list(pool.map(compile_group, range(len(groups))))
    for group, library in zip(groups, libraries):
        library.gc_set_thread.argtypes = [ctypes.c_uint] * 4
        library.gc_run_blocks.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        for program in group:
            program.executable.library, program.directory = library, directory
