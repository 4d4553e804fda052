"""One compiled run signature of the CUDA backend: feeds copied in, a precomputed list of launches, fetches out.

``run`` validates on the host what the GPU cannot (the run-time sizes of every tensor, from the feeds' shapes,
as the llvm backend does, and the program's checks of sizes alone — cached per set of feed shapes), copies
each host feed to the GPU once (a feed already in GPU memory, a ``DeviceArray``, is read where it is), uploads
the dims (their buffer's last slot is the 4-byte failure status, cleared by that upload), replays the
signature's launch list (each step a bound ``prepared_call`` of a kernel or a cuBLAS GEMM: no argument
parsing, no Python work per kernel beyond one call; a launch whose size test fails has no threads and is
left out; rebound when a run's feeds, outputs or variables lie at other addresses than the last run's), reads
the status (which waits for the GPU) and copies the fetched outputs back — or, ``on_device``, hands them over
as ``DeviceArray``s in fresh memory from a pool.
One grid per launch: ``ceil(threads / 256)`` blocks of 256 threads (capped at 32 blocks per multiprocessor:
the kernels loop grid-stride), a serial part on one thread.

Variables live on the GPU across runs, and the GPU's copy is the current value: a run updates variables on
the GPU only and copies nothing back. The Session owns the host arrays (``Session._values``); each has one
resident device copy, shared by every executable of the process (keyed by the array), and a flag saying which
side is newer:

* a run uploads a variable whose host array is newer (made since, or written by the Session, which says so
  through ``host_written``: ``load_variables``, the commit of a monitored run), and leaves the variables it
  updates newer on the device;
* a fetched variable (its value from before the run) and the new value of a fetched update op are
  downloaded by the run that fetches them; ``read_back`` brings the host arrays up to date where something
  else must read them (a monitored run starts with it: the numpy reference reruns a run that made a NaN);
* a run that fails (a ``Fail`` in a kernel) leaves the device copies as they were: every kernel returns at
  once once the status word is set, and the lowering (graphc/lower/program.py) updates variables in place
  only after the last kernel that can fail.

Under a monitor (profiling, check_numerics) the kernels run one at a time, synchronized and timed, on
fresh device copies of the variables, and the updates are returned for the Session to commit.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import itertools
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
from graphc.backends.cuda.arrays import DeviceArray, to_device
from graphc.backends.cuda.cublas import SINGLE, Batch, ColumnMajorGemm, Cublas, batched, column_major
from graphc.backends.cuda.nvcc import Compiled, compile_module
from graphc.backends.cuda.render import BLOCK, CudaModule, GemmCall, Launch, render  # BLOCK: threads per block
from graphc.errors import BackendUnavailableError, ShapeError
from graphc.graph.node import Node, Tensor
from graphc.lower import ir
from graphc.lower.memory import plan_arena
from graphc.lower.shapes import ShapeResolver
from graphc.ops.scalar import Call, Expr
from graphc.runtime.plan import Plan

BLOCKS_PER_MULTIPROCESSOR = 32  # the grid cap: more blocks than this only add scheduling
INSTALL = ("install it with `pip install 'graphc[cuda]'` (pycuda builds against a CUDA toolkit: install one that "
           "ships nvcc and cuBLAS, and an NVIDIA driver)")


@dataclass(frozen=True)
class Gpu:
    """The GPU the backend runs on: pycuda's driver module, device 0, its context (current in this process),
    its architecture for nvcc (``sm_90``) and its multiprocessor count."""

    driver: Any
    device: Any
    context: Any
    arch: str
    multiprocessors: int

    @functools.cached_property
    def cublas(self) -> Cublas:
        """The process's cuBLAS handle on this context (made on first use)."""
        return Cublas()

    @functools.cached_property
    def pool(self) -> Any:
        """pycuda's memory pool: fetched DeviceArrays' memory, reused once they are dropped (no cuMemFree)."""
        from pycuda.tools import DeviceMemoryPool

        return DeviceMemoryPool()

    def allocate(self, nbytes: int) -> Any:
        """``nbytes`` of device memory from the pool (freed back to it with the returned object)."""
        return self.pool.allocate(max(nbytes, 1))

    def compile(self, source: str, report: CompileReport) -> Compiled:
        """``source`` compiled with nvcc for this GPU (or found in the disk cache)."""
        return compile_module(source, self.arch, report)


@functools.cache
def gpu() -> Gpu:
    """Device 0 with a current context (the one already current, e.g. pycuda.autoinit's, else its primary
    context, pushed once); BackendUnavailableError saying what is missing: pycuda, a driver or a GPU."""
    try:
        import pycuda.driver as driver
    except ImportError as error:
        raise BackendUnavailableError(f"backend 'cuda' needs pycuda, which cannot be imported ({error}): {INSTALL}") \
            from None
    try:
        driver.init()
        count = driver.Device.count()
    except driver.Error as error:
        raise BackendUnavailableError(f"backend 'cuda' found no usable NVIDIA driver ({error}): install the NVIDIA "
                                      "driver for this machine's GPU") from None
    if count == 0:
        raise BackendUnavailableError("backend 'cuda' found no CUDA GPU on this machine (the driver sees none); use "
                                      "backend='llvm' here")
    context = driver.Context.get_current()
    if context is None:
        context = driver.Device(0).retain_primary_context()
        context.push()
        atexit.register(context.pop)
    device = driver.Context.get_device()
    major, minor = device.compute_capability()
    processors = device.get_attribute(driver.device_attribute.MULTIPROCESSOR_COUNT)
    return Gpu(driver, device, context, f"sm_{major}{minor}", processors)


# -- variables resident on the GPU (see the module docstring) ---------------------------------------------
class _Resident:
    """The device copy of one host array, and which of the two is newer (neither: they are equal)."""

    def __init__(self, driver: Any, host: np.ndarray) -> None:
        self.host = weakref.ref(host)
        self.memory = _upload(driver, host)
        self.device_newer = False
        self.host_newer = False


_RESIDENT: dict[int, _Resident] = {}  # id(host array) -> its device copy


def _resident(driver: Any, host: np.ndarray) -> _Resident:
    """The up-to-date device copy of the Session's array ``host`` (made, or uploaded again, when needed)."""
    entry = _RESIDENT.get(id(host))
    if entry is None or entry.host() is not host:
        entry = _RESIDENT[id(host)] = _Resident(driver, host)
        weakref.finalize(host, _forget, id(host), entry)
    elif entry.host_newer:
        if host.nbytes:
            driver.memcpy_htod(entry.memory, host)
        entry.host_newer = False
    return entry


def _forget(key: int, entry: _Resident) -> None:
    if _RESIDENT.get(key) is entry:
        del _RESIDENT[key]


def _entry(host: np.ndarray) -> _Resident | None:
    entry = _RESIDENT.get(id(host))
    return entry if entry is not None and entry.host() is host else None


def host_written(arrays: Iterable[np.ndarray]) -> None:
    """The Session wrote these host arrays: their device copies are stale (uploaded by the next run)."""
    for host in arrays:
        if (entry := _entry(host)) is not None:
            entry.host_newer, entry.device_newer = True, False


def read_back(driver: Any, arrays: Iterable[np.ndarray]) -> None:
    """Bring each host array whose device copy is newer up to date (one device-to-host copy each)."""
    for host in arrays:
        if (entry := _entry(host)) is not None and entry.device_newer:
            if host.nbytes:
                driver.memcpy_dtoh(host, entry.memory)
            entry.device_newer = False


# -- run-time values of index expressions on the host ------------------------------------------------------
def _bind(e: Expr, values: dict[ir.Index, int]) -> Expr:
    """``e`` with the loop indices of ``values`` replaced by their values (for ``ir.evaluate_size``)."""
    if isinstance(e, ir.Index):
        return ir.const(values[e])
    if isinstance(e, Call):
        return Call(e.primitive, tuple(_bind(a, values) for a in e.args), e.to)
    return e


def gemm_batches(call: GemmCall, dims: np.ndarray) -> list[tuple[ColumnMajorGemm, Batch]]:
    """The column-major cuBLAS calls of ``call`` (operands as element offsets into the row-major B, A and C
    buffers), in loop order, runs of one shape at constant strides batched (``cublas.batched``) unless C shares
    a buffer with A or B (a later GEMM could read what an earlier one wrote)."""
    g, calls = call.gemm, []
    for values in gemm_iterations(call, dims):
        def size(e: Expr, values: dict = values) -> int:
            return ir.evaluate_size(_bind(e, values), dims)

        m, n, k = size(g.m), size(g.n), size(g.k)
        if m == 0 or n == 0:
            continue
        ldc = size(g.ldc)
        calls.append((column_major(g.trans_a, g.trans_b, m, n, k, size(g.a_offset), size(g.lda), size(g.b_offset),
                                   size(g.ldb), size(g.c_offset), ldc), ldc * (m - 1) + n))
    if g.c is g.a or g.c is g.b:
        return [(gemm, SINGLE) for gemm, _ in calls]
    return batched(calls)


def gemm_iterations(call: GemmCall, dims: np.ndarray) -> list[dict[ir.Index, int]]:
    """The values of ``call``'s enclosing loop indices, one dict per GEMM the host issues, in loop order."""
    iterations: list[dict[ir.Index, int]] = [{}]
    for index, extent in call.loops:
        iterations = [{**outer, index: i} for outer in iterations
                      for i in range(ir.evaluate_size(_bind(extent, outer), dims))]
    return iterations


@dataclass(eq=False)
class _Sized:
    """What depends on the run-time sizes only: dims, shapes, device memory and the launch list (bound to the
    addresses of the last run: rebuilt when a run's variables, GPU feeds or fresh outputs lie elsewhere)."""

    dims: np.ndarray  # the run-time sizes, then a 0: uploaded together, the 0 clears the status word
    device_dims: Any
    shapes: dict[Tensor, tuple[int, ...]]
    table: list[int]  # device address of each temp (in `arena`) and constant; the rest are bound per run
    arena: Any
    nbytes: dict[int, int]  # the size of each feed and output buffer
    owned: dict[int, Any] = field(default_factory=dict)  # the executable's own feed and output memory
    steps: list[tuple[int, Callable[[], Any]]] = field(default_factory=list)  # (kernel, launch), for `bound`
    bound: tuple[tuple[int, int], ...] = ()  # the run-bound addresses (variables, feeds, outputs) of `steps`


class CUDAExecutable(ShowsProgram):
    """A plan compiled to CUDA kernels and cuBLAS calls (see the module docstring)."""

    def __init__(self, plan: Plan) -> None:
        self.gpu = gpu()
        driver = self.gpu.driver
        self.plan = plan
        self.report = CompileReport()
        started = time.perf_counter()
        self.partition, self.lowered = lower_plan(plan)
        self.report.stages["lower"] = time.perf_counter() - started
        started = time.perf_counter()
        self.module: CudaModule = render(self.lowered.program)
        self.report.stages["render"] = time.perf_counter() - started
        compiled = self.gpu.compile(self.module.source, self.report)
        self.nvcc_warnings = compiled.warnings
        started = time.perf_counter()
        self._loaded = driver.module_from_buffer(compiled.binary)
        self._functions = {}
        for step in self.module.steps:
            if isinstance(step, Launch) and step.function not in self._functions:
                function = self._loaded.get_function(step.function)
                function.prepare("P" * (len(step.buffers) + 2))
                self._functions[step.function] = function
        self.report.stages["load"] = time.perf_counter() - started
        buffers = self.lowered.program.buffers
        self._index = {id(b): i for i, b in enumerate(buffers)}
        self._feeds = [(self._index[id(b)], n) for n, b in self.lowered.feeds.items()]
        self._variables = [(self._index[id(b)], n) for n, b in self.lowered.variables.items()]
        self._outputs = [(self._index[id(b)], t, b.dtype) for t, b in self.lowered.outputs.items()]
        self._constants = {self._index[id(b)]: _upload(driver, contiguous(b.value))
                           for b in buffers if b.role == "constant"}
        self._fetched_variables = fetched_variables(plan)
        self._fetched_updates = {t.node.inputs[0].node for t in plan.targets
                                 if isinstance(t, Tensor) and t.node.op.updates_variable}
        # every variable a run touches: the program's, and those it only fetches
        self._read_variables = list(dict.fromkeys([n for _, n in self._variables] + sorted(
            self._fetched_variables | self._fetched_updates, key=lambda n: n.index)))
        self._resolver = ShapeResolver(self.lowered.shapes)
        self._sized: dict[tuple, _Sized] = {}
        self._status_host = np.zeros(1, dtype=np.int32)

    # -- what ``sess.compiled(...)`` shows -------------------------------------------------------------------
    @property
    def cuda_source(self) -> str:
        """The CUDA C translation unit compiled for this GPU."""
        return self.module.source

    # -- running -------------------------------------------------------------------------------------------
    def run(self, feeds: dict[Node, np.ndarray], variables: dict[Node, np.ndarray], run_count: int,
            monitor: Any = None, on_device: bool = False) -> tuple[list[Any], dict[Node, np.ndarray]]:
        """The backend contract (graphc/backends/__init__.py): fetched values and, under a monitor, updates;
        ``on_device``: the fetched values as ``DeviceArray``s (kernel outputs in fresh memory of the pool)."""
        driver = self.gpu.driver
        feeds = {n: a if isinstance(a, DeviceArray) else contiguous(a) for n, a in feeds.items()}
        sized = self._sized_for(feeds)
        sized.dims[0] = run_count
        driver.memcpy_htod(sized.device_dims, sized.dims)
        bound: dict[int, int] = {}  # buffer -> address for the feeds, outputs and variables of this run
        for i, node in self._feeds:
            if isinstance(feeds[node], DeviceArray):
                bound[i] = feeds[node].address  # read in place
            else:
                bound[i] = self._owned(sized, i)
                if feeds[node].nbytes:
                    driver.memcpy_htod(bound[i], feeds[node])
        fresh = {i: self.gpu.allocate(sized.nbytes[i]) for i, _, _ in self._outputs} if on_device else {}
        for i, _, _ in self._outputs:
            bound[i] = int(fresh[i]) if on_device else self._owned(sized, i)
        hosts = {node: checked_variable(node, variables[node]) for node in self._read_variables}
        if monitor is None:
            resident = {node: _resident(driver, host) for node, host in hosts.items()}
            before = {node: _download(driver, resident[node].memory, hosts[node].shape, hosts[node].dtype)
                      for node in self._fetched_variables}
            bound.update({i: int(resident[node].memory) for i, node in self._variables})
            key = tuple(bound.items())
            if sized.bound != key or not sized.steps:
                sized.steps, sized.bound = self._steps(sized, self._table(sized, bound)), key
            for _, launch in sized.steps:
                launch()
            self._check_status(sized)
            for node in self.lowered.updated:
                resident[node].device_newer = True
            after = {node: _download(driver, resident[node].memory, hosts[node].shape, hosts[node].dtype)
                     for node in self._fetched_updates}
            updates = {}
        else:
            read_back(driver, hosts.values())
            before = {node: np.array(hosts[node]) for node in self._fetched_variables}
            copies = {node: _upload(driver, hosts[node]) for _, node in self._variables}
            bound.update({i: int(copies[node]) for i, node in self._variables})
            table = self._table(sized, bound)
            self._run_monitored(sized, table, self._steps(sized, table), monitor)
            after = {**hosts, **{node: _download(driver, copies[node], hosts[node].shape, hosts[node].dtype)
                                 for node in copies}}
            updates = {node: after[node] for node in self.lowered.updated}
        if on_device:
            outputs = {t: DeviceArray(int(fresh[i]), sized.shapes[t], dtype, owner=fresh[i])
                       for i, t, dtype in self._outputs}
            values = [fetch_value(t, feeds, after, before, outputs) for t in self.plan.targets]
            return [self._on_device(v) for v in values], updates
        outputs = {t: _download(driver, bound[i], sized.shapes[t], dtype) for i, t, dtype in self._outputs}
        return [fetch_value(t, feeds, after, before, outputs) for t in self.plan.targets], updates

    @staticmethod
    def _on_device(value: Any) -> Any:
        """A fetched value as a DeviceArray (a host value — a variable's, a feed's copy — uploaded)."""
        return value if value is None or isinstance(value, DeviceArray) else to_device(value)

    def _table(self, sized: _Sized, bound: dict[int, int]) -> list[int]:
        """The device address of every buffer: ``sized.table``'s and ``bound``'s."""
        table = list(sized.table)
        for i, address in bound.items():
            table[i] = address
        return table

    def _steps(self, sized: _Sized, table: list[int]) -> list[tuple[int, Callable[[], Any]]]:
        """Every launch and GEMM of a run, bound to its grid and device addresses: (kernel number, call)."""
        dims, cap = sized.dims, self.gpu.multiprocessors * BLOCKS_PER_MULTIPROCESSOR
        steps: list[tuple[int, Callable[[], Any]]] = []
        for kernel, step in zip(self.module.kernel_of_step, self.module.steps):
            if isinstance(step, Launch):
                threads = ir.evaluate_size(step.threads, dims)
                if threads <= 0:
                    continue
                block = min(BLOCK, threads)
                grid = min(-(-threads // block), cap)
                args = [table[b] for b in step.buffers] + [sized.device_dims, _status(sized)]
                steps.append((kernel, functools.partial(self._functions[step.function].prepared_call,
                                                        (grid, 1), (block, 1, 1), *args)))
            else:
                steps += [(kernel, call) for call in self._gemms(step, table, dims)]
        return steps

    def _gemms(self, call: GemmCall, table: list[int], dims: np.ndarray) -> list[Callable[[], Any]]:
        """The cuBLAS calls of ``call``: its iterations' GEMMs (none for an empty product), runs of them at
        constant strides as one batched call each (``gemm_batches``)."""
        g, cublas = call.gemm, self.gpu.cublas
        itemsize = np.dtype(g.dtype).itemsize
        bases = [table[self._index[id(b)]] for b in (g.b, g.a, g.c)]  # the column-major a, b, c: B, A, C
        calls = []
        for first, batch in gemm_batches(call, dims):
            at = dataclasses.replace(first, a=bases[0] + first.a * itemsize, b=bases[1] + first.b * itemsize,
                                     c=bases[2] + first.c * itemsize)
            calls.append(functools.partial(cublas.gemm, g.dtype, at, g.alpha, g.beta, batch))
        return calls

    def _run_monitored(self, sized: _Sized, table: list[int], steps: list[tuple[int, Callable[[], Any]]],
                       monitor: Any) -> None:
        driver, clock = self.gpu.driver, time.perf_counter
        kernels = self.lowered.program.kernels
        by_kernel = {k: [launch for _, launch in group] for k, group in itertools.groupby(steps, lambda s: s[0])}
        for number, kernel in enumerate(kernels):
            started = clock()
            for launch in by_kernel.get(number, ()):
                launch()
            driver.Context.synchronize()
            seconds = clock() - started
            self._check_status(sized)
            for tensor, buffer in kernel.outputs:
                value = _download(driver, table[self._index[id(buffer)]], sized.shapes[tensor], buffer.dtype)
                monitor.node_done(tensor.node, (value,), seconds)
                seconds = 0.0  # a kernel's time is counted once

    def _check_status(self, sized: _Sized) -> None:
        """Wait for the GPU; a nonzero status is a ``Fail`` (an index out of range in the data): its message,
        as a ShapeError (the variables are as they were: see the module docstring)."""
        self.gpu.driver.memcpy_dtoh(self._status_host, _status(sized))
        code = int(self._status_host[0])
        if code:
            raise ShapeError(self.lowered.program.failures[code - 1])

    def _sized_for(self, feeds: dict[Node, np.ndarray]) -> _Sized:
        feed_shapes = {n: a.shape for n, a in feeds.items()}
        key = tuple(feed_shapes.get(n, ()) for n in self.lowered.feeds)
        sized = self._sized.get(key)
        if sized is None:
            driver = self.gpu.driver
            dims, shapes = self._resolver.resolve(feed_shapes)
            check_extents(self.partition, shapes)
            check_sizes(self.lowered.program, dims)
            dims = np.append(dims, 0).astype(np.int64)  # the status word's slot
            buffers = self.lowered.program.buffers
            table = [0] * len(buffers)
            offsets, total = plan_arena(self.lowered.temps, self.lowered.lifetimes, dims)
            arena = driver.mem_alloc(max(total, 1))
            for buffer, offset in zip(self.lowered.temps, offsets):
                table[self._index[id(buffer)]] = int(arena) + offset
            for i, constant in self._constants.items():
                table[i] = int(constant)
            nbytes = {i: ir.evaluate_size(buffers[i].size, dims) * np.dtype(buffers[i].dtype).itemsize
                      for i in [i for i, _ in self._feeds] + [i for i, _, _ in self._outputs]}
            device_dims = driver.mem_alloc(dims.nbytes)
            sized = self._sized[key] = _Sized(dims, device_dims, shapes, table, arena, nbytes)
        return sized

    def _owned(self, sized: _Sized, i: int) -> int:
        """The address of the executable's own memory for feed or output buffer ``i`` (allocated on first use:
        a run fed from GPU memory, or fetching to it, needs none)."""
        if i not in sized.owned:
            sized.owned[i] = self.gpu.driver.mem_alloc(max(sized.nbytes[i], 1))
        return int(sized.owned[i])


def _status(sized: _Sized) -> int:
    """The address of the 4-byte failure status: the dims' last slot, zeroed by each run's upload of them."""
    return int(sized.device_dims) + 8 * (len(sized.dims) - 1)


def _upload(driver: Any, array: np.ndarray) -> Any:
    """A new device allocation holding ``array``'s bytes."""
    memory = driver.mem_alloc(max(array.nbytes, 1))
    if array.nbytes:
        driver.memcpy_htod(memory, array)
    return memory


def _download(driver: Any, address: Any, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A new host array of ``shape`` copied from device ``address``."""
    array = np.empty(shape, dtype=dtype)
    if array.nbytes:
        driver.memcpy_dtoh(array, address)
    return array
