"""Machine code for a program: rendered, optimized and compiled for this CPU — or loaded from the disk cache.

The cache key is the program's printed loop nests (a complete description of the code: buffers, loops,
expressions, library calls; constants' values are passed at run time, not compiled in) together with the
target description (CPU name and features, graphc, llvmlite and LLVM versions) and the thread count, so an
entry built for AVX-512 is never loaded on a CPU without it. A cache entry holds the object code and the
optimized LLVM IR (compressed) for ``sess.compiled(...).llvm_ir``.
"""

from __future__ import annotations

import functools
import os
import time
import zlib
from dataclasses import dataclass

from graphc.backends.llvm import jit
from graphc.backends.llvm.render import render
from graphc.lower.ir import Gemm, Program, walk_statements
from graphc.lower.text import program_text
from graphc.runtime.cache import DiskCache

FORMAT = "graphc-llvm-1"  # bump when the meaning of a cache entry changes


@dataclass(eq=False)
class Native:
    """Loaded machine code: the entry's and each kernel's address (kept alive by ``loaded``)."""

    entry: int
    kernels: list[int]
    llvm_ir: str
    loaded: object


def threads(program: Program) -> int:
    """How many threads the program's parallel loops may use: the CPUs this process may run on — or one when
    the program calls GEMMs. OpenBLAS's threads keep spinning for a while after each GEMM; a loop split onto
    those cores waits for them (measured: the SGD epilogue after a 784x128x512 GEMM took 780 us on two of
    our threads, 500 us on one), so where there are GEMMs the BLAS owns the cores."""
    if any(isinstance(s, Gemm) for kernel in program.kernels for s in walk_statements(kernel.body)):
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.cache
def blas_library() -> str:
    """The path of the OpenBLAS shared library (scipy-openblas32) whose GEMMs the kernels call."""
    import scipy_openblas32

    return os.path.join(scipy_openblas32.get_lib_dir(), f"lib{scipy_openblas32.get_library()}.so")


def build_native(program: Program, report: object) -> Native:
    """Compile ``program`` (or load it from the disk cache), recording stage times and the cache outcome."""
    target = jit.host_target()
    events: list[str] = []
    cache = DiskCache(on_event=lambda event: events.append(str(event)))
    count = threads(program)
    key = cache.key(FORMAT, target.description, f"threads={count}", program_text(program))
    started = time.perf_counter()
    entry = cache.get(key)
    report.stages["cache lookup"] = time.perf_counter() - started
    if entry is not None:
        meta, payload = entry.meta, entry.payload
        obj, ir_text = payload[:meta["object_bytes"]], zlib.decompress(payload[meta["object_bytes"]:]).decode()
        report.cache = "hit"
    else:
        started = time.perf_counter()
        rendered = render(program, count)
        report.stages["render"] = time.perf_counter() - started
        compiled = jit.compile_object(rendered.llvm_ir, target)
        report.stages.update(compiled.timings)
        obj, ir_text = compiled.object_code, compiled.optimized_ir
        meta = {"object_bytes": len(obj), "entry": rendered.entry, "kernels": list(rendered.kernels)}
        stored = cache.put(key, meta, bytes(obj) + zlib.compress(ir_text.encode(), 1))
        report.cache = "; ".join(events + ["miss, stored" if stored else ("off" if not cache.enabled else "miss")])
    started = time.perf_counter()
    loaded = jit.load_object(obj, target, libraries=[blas_library()])
    addresses = [loaded.address(name) for name in [meta["entry"], *meta["kernels"]]]
    report.stages["load"] = time.perf_counter() - started
    return Native(addresses[0], addresses[1:], ir_text, loaded)
