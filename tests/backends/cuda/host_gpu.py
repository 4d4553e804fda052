"""A GPU made of host memory and a host thread, so that the cuda backend's own runtime (executable.py: the launch
lists, the resident variables, the dims, the status word, monitored runs, ``Session(backend="cuda")`` end to
end) runs and is tested without a GPU (test helper).

``HostGpu`` stands in for ``executable.Gpu``: its ``compile`` builds the rendered CUDA C as host C++ (emulate.py's
shim and g++ build, one shared library per module, cached by source in a directory of the test's), and its
``driver`` answers the pycuda calls executable.py makes:

* device memory is host memory: ``mem_alloc`` returns an allocation filled with 0xff bytes (NaN in every float,
  so a value read before it is written shows) whose ``int()`` is its host address; every copy, memset and
  kernel pointer argument must lie inside a live allocation (an address of freed memory or a copy past an
  allocation's end fails the test — what would be an illegal address, or silent corruption, on a GPU);
* ``prepared_call`` runs the launched function as every thread of the grid it is given (the runtime's own
  grid: blocks of up to 256 threads), one after the other, the last first; a function whose threads meet at
  ``__syncthreads`` runs each block's threads as fibers switched at every barrier, and must be launched with blocks of
  ``BLOCK`` threads, as render.py requires;
* cuBLAS's GEMM is computed by numpy (emulate.column_major_gemm) on the memory the addresses point into.

``use_host_gpu(monkeypatch, directory)`` makes ``gc.Session(backend="cuda")`` run on it for one test.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graphc.backends.compiled import CompileReport
from graphc.backends.cuda import executable
from graphc.backends.cuda.cublas import SINGLE, Batch, ColumnMajorGemm
from graphc.backends.cuda.nvcc import Compiled
from graphc.backends.cuda.render import BLOCK
from tests.backends.cuda.emulate import (
    ARGUMENTS,
    GARBAGE,
    HOST_SHIMS,
    batch_members,
    column_major_gemm,
    compile_host,
    synchronizing,
)

MAX_THREADS_PER_BLOCK = 1024


class HostAllocation:
    """``nbytes`` of "device" memory (pycuda's DeviceAllocation: ``int()`` is its address)."""

    def __init__(self, nbytes: int) -> None:
        self.array = np.full(nbytes, GARBAGE, np.uint8)
        self.address = self.array.ctypes.data

    def __int__(self) -> int:
        return self.address


class HostFunction:
    """A launched function of a host module (pycuda's Function: ``prepare``, then ``prepared_call``)."""

    def __init__(self, driver: HostDriver, library: ctypes.CDLL, name: str, synchronizes: bool) -> None:
        self.driver, self.library, self.name, self.synchronizes = driver, library, name, synchronizes
        self.address = ctypes.cast(getattr(library, name), ctypes.c_void_p)
        self.arguments: int | None = None

    def prepare(self, argument_types: str) -> None:
        assert set(argument_types) <= {"P"}, f"{self.name}: the launched functions take pointers only"
        assert len(argument_types) <= ARGUMENTS, f"{self.name} takes more than {ARGUMENTS} pointers"
        self.arguments = len(argument_types)

    def prepared_call(self, grid: tuple[int, ...], block: tuple[int, ...], *args: Any) -> None:
        assert self.arguments is not None, f"{self.name} launched before prepare()"
        assert len(args) == self.arguments, f"{self.name}: {len(args)} arguments, prepared for {self.arguments}"
        (blocks, *grid_rest), (threads, *block_rest) = grid, block
        assert all(n == 1 for n in grid_rest + block_rest), f"{self.name}: a grid or block beyond x"
        assert 1 <= threads <= MAX_THREADS_PER_BLOCK and blocks >= 1, f"{self.name}: grid {grid}, block {block}"
        if self.synchronizes:
            assert threads == BLOCK, f"{self.name} synchronizes: its blocks must have {BLOCK} threads, not {threads}"
        pointers = [int(a) for a in args]
        for pointer in pointers:
            self.driver.span(pointer, 0, f"argument of {self.name}")
        values = (ctypes.c_void_p * ARGUMENTS)(*pointers)
        run = self.library.gc_run_blocks if self.synchronizes else self.library.gc_run_grid
        run(self.address, values, blocks, threads)
        self.driver.launches += 1


class HostModule:
    """A loaded module: the host shared library built from its CUDA C."""

    def __init__(self, driver: HostDriver, binary: bytes) -> None:
        description = json.loads(binary)
        self.driver = driver
        self.library = ctypes.CDLL(description["library"])
        for name in ("gc_run_grid", "gc_run_blocks"):
            getattr(self.library, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        self.synchronizing = set(description["synchronizing"])

    def get_function(self, name: str) -> HostFunction:
        return HostFunction(self.driver, self.library, name, name in self.synchronizing)


class HostDriver:
    """The part of ``pycuda.driver`` the cuda runtime uses, on host memory; it counts launches and copies."""

    class Context:
        @staticmethod
        def synchronize() -> None:
            """Every host launch has finished when it returns."""

    def __init__(self) -> None:
        self._live: weakref.WeakValueDictionary[int, HostAllocation] = weakref.WeakValueDictionary()
        self.launches = 0
        self.copies = {"htod": 0, "dtoh": 0}  # bytes copied each way

    def mem_alloc(self, nbytes: int) -> HostAllocation:
        assert nbytes >= 1, "pycuda cannot allocate 0 bytes"
        allocation = HostAllocation(nbytes)
        self._live[allocation.address] = allocation
        return allocation

    def span(self, address: int, nbytes: int, what: str) -> np.ndarray:
        """The bytes [address, address + nbytes) of one live allocation (a test failure otherwise)."""
        for start, allocation in list(self._live.items()):
            if start <= address and address + nbytes <= start + allocation.array.size:
                return allocation.array[address - start:address - start + nbytes]
        raise AssertionError(f"{what}: {nbytes} bytes at {address:#x} are not inside a live device allocation")

    def rest(self, address: int) -> np.ndarray:
        """The bytes from ``address`` to the end of its allocation."""
        for start, allocation in list(self._live.items()):
            if start <= address < start + allocation.array.size:
                return allocation.array[address - start:]
        raise AssertionError(f"{address:#x} is not inside a live device allocation")

    def memcpy_htod(self, destination: Any, source: np.ndarray) -> None:
        assert source.flags.c_contiguous
        self.span(int(destination), source.nbytes, "memcpy_htod")[:] = source.reshape(-1).view(np.uint8)
        self.copies["htod"] += source.nbytes

    def memcpy_dtoh(self, destination: np.ndarray, source: Any) -> None:
        assert destination.flags.c_contiguous and destination.flags.writeable
        destination.reshape(-1).view(np.uint8)[:] = self.span(int(source), destination.nbytes, "memcpy_dtoh")
        self.copies["dtoh"] += destination.nbytes

    def memcpy_dtod(self, destination: Any, source: Any, nbytes: int) -> None:
        self.span(int(destination), nbytes, "memcpy_dtod")[:] = self.span(int(source), nbytes, "memcpy_dtod")

    def memset_d32(self, destination: Any, value: int, count: int) -> None:
        self.span(int(destination), 4 * count, "memset_d32").view(np.uint32)[:] = value

    def module_from_buffer(self, binary: bytes) -> HostModule:
        return HostModule(self, binary)


class HostCublas:
    """cuBLAS's GEMM computed by numpy on the host memory its addresses point into."""

    def __init__(self, driver: HostDriver) -> None:
        self.driver = driver
        self.calls = 0  # GEMMs computed (a batched call's members each)
        self.batches: list[int] = []  # the size of each batched call

    def gemm(self, dtype: str, call: ColumnMajorGemm, alpha: float, beta: float, batch: Batch = SINGLE) -> None:
        itemsize = np.dtype(dtype).itemsize
        if batch.count > 1:
            self.batches.append(batch.count)
        for member in batch_members(call, batch, itemsize):
            a, b, c = (self.driver.rest(address) for address in (member.a, member.b, member.c))
            a, b, c = (flat[:flat.size // itemsize * itemsize].view(dtype) for flat in (a, b, c))
            column_major_gemm(dataclasses.replace(member, a=0, b=0, c=0), a, b, c, alpha, beta)
            self.calls += 1


@dataclasses.dataclass(frozen=True)
class HostGpu(executable.Gpu):
    """``executable.Gpu`` on the host: modules built with g++ into ``directory`` (see the module docstring)."""

    directory: Path = Path(".")

    @functools.cached_property
    def cublas(self) -> HostCublas:
        return HostCublas(self.driver)

    def allocate(self, nbytes: int) -> HostAllocation:
        return self.driver.mem_alloc(max(nbytes, 1))

    def compile(self, source: str, report: CompileReport) -> Compiled:
        digest = hashlib.sha256(source.encode()).hexdigest()[:24]
        library = self.directory / f"module_{digest}.so"
        if not library.exists():
            compile_host(HOST_SHIMS + source, library.with_suffix(".cpp"))
        report.cache = "host build"
        return Compiled(json.dumps({"library": str(library), "synchronizing": sorted(synchronizing(source))}).encode(),
                        "")


def host_gpu(directory: Path) -> HostGpu:
    """A host GPU with two multiprocessors (grids of at most 64 blocks) building its modules in ``directory``."""
    return HostGpu(HostDriver(), device=None, context=None, arch="host", multiprocessors=2, directory=directory)


def use_host_gpu(monkeypatch: pytest.MonkeyPatch, directory: Path) -> HostGpu:
    """Make the cuda backend run on a new host GPU until the test ends."""
    device = host_gpu(directory)
    monkeypatch.setattr(executable, "gpu", lambda: device)
    return device
