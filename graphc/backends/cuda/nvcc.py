"""CUDA C to a GPU binary with nvcc, for one architecture — or loaded from the disk cache.

The cache key holds everything the binary depends on: the CUDA C source (a complete description of the
program: constants' values are passed at run time, not compiled in), the GPU architecture (``sm_90``), the
toolkit (``nvcc --version``), the nvcc flags and graphc's version; entries go through the same
``graphc.runtime.cache.DiskCache`` as the llvm backend's (atomic writes, checked on load, never executed).

Flags: ``-O3`` and ``--fmad=false``, so a*b+c is rounded twice as the llvm backend and numpy round it (nvcc's
default contracts it into an FMA), and no fast math (IEEE division and square root, denormals kept).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from graphc.errors import BackendUnavailableError, CompileError
from graphc.runtime.cache import DiskCache

FORMAT = "graphc-cuda-1"  # bump when the meaning of a cache entry changes
FLAGS = ("-O3", "--fmad=false")
OUTPUTS = ("cubin", "ptx")


@dataclass(frozen=True)
class Compiled:
    """A compiled module: the cubin or PTX bytes, and what nvcc printed (warnings) when it was built."""

    binary: bytes
    warnings: str


def find_nvcc() -> str:
    """The nvcc to run: on PATH, else under $CUDA_HOME, $CUDA_PATH or /usr/local/cuda; a
    BackendUnavailableError saying how to get one when there is none."""
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    raise BackendUnavailableError("the cuda backend compiles CUDA C with nvcc, which was not found on PATH nor under "
                                  "$CUDA_HOME, $CUDA_PATH or /usr/local/cuda: install a CUDA toolkit (it ships nvcc) "
                                  "and put its bin directory on PATH or set CUDA_HOME")


@functools.cache
def toolkit_version(nvcc: str) -> str:
    """``nvcc --version``'s release line (e.g. "Cuda compilation tools, release 13.0, V13.0.48"): part of
    every cache key, so a toolkit upgrade rebuilds."""
    result = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if "release" in line]
    return lines[-1].strip() if lines else result.stdout.strip()


def graphc_version() -> str:
    """The installed graphc's version ("dev" when run from a checkout that is not installed)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("graphc")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def cache_key(source: str, arch: str, toolkit: str, output: str = "cubin") -> str:
    """The disk-cache key of ``source`` compiled to ``output`` for ``arch`` by ``toolkit``."""
    return DiskCache.key(FORMAT, f"arch={arch}", f"output={output}", f"toolkit={toolkit}", f"flags={' '.join(FLAGS)}",
                         f"graphc={graphc_version()}", source)


def nvcc_compile(source: str, arch: str, output: str = "cubin", nvcc: str | None = None) -> Compiled:
    """``source`` compiled by nvcc to a cubin (loadable on GPUs of ``arch``, e.g. "sm_90") or PTX; a
    CompileError with nvcc's messages when it rejects the source."""
    if output not in OUTPUTS:
        raise CompileError(f"nvcc output must be one of {OUTPUTS}, got {output!r}")
    nvcc = nvcc or find_nvcc()
    with tempfile.TemporaryDirectory(prefix="graphc-cuda-") as directory:
        path = Path(directory) / "module.cu"
        path.write_text(source)
        target = path.with_suffix(f".{output}")
        command = [nvcc, f"--{output}", f"-arch={arch}", *FLAGS, "-o", str(target), str(path)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CompileError(f"nvcc rejected the generated CUDA C (arch {arch}); this is a graphc bug, please "
                               f"report it with the source (sess.compiled(...).cuda_source):\n{result.stderr.strip()}")
        return Compiled(target.read_bytes(), (result.stdout + result.stderr).strip())


def compile_module(source: str, arch: str, report: object | None = None, output: str = "cubin",
                   cache_dir: Path | str | None = None) -> Compiled:
    """``source`` compiled for ``arch``, from the disk cache (``cache_dir``, default: graphc's, see
    DiskCache) when it holds it, stored there otherwise; ``report`` (a CompileReport) records the stage
    times and the cache outcome."""
    nvcc = find_nvcc()
    events: list[str] = []
    cache = DiskCache(cache_dir, on_event=lambda event: events.append(str(event)))
    key = cache_key(source, arch, toolkit_version(nvcc), output)
    started = time.perf_counter()
    entry = cache.get(key)
    if report is not None:
        report.stages["cache lookup"] = time.perf_counter() - started
    if entry is not None:
        if report is not None:
            report.cache = "hit"
        return Compiled(entry.payload, entry.meta.get("warnings", ""))
    started = time.perf_counter()
    compiled = nvcc_compile(source, arch, output, nvcc)
    stored = cache.put(key, {"arch": arch, "output": output, "warnings": compiled.warnings}, compiled.binary)
    if report is not None:
        report.stages["nvcc"] = time.perf_counter() - started
        report.cache = "; ".join(events + ["miss, stored" if stored else ("off" if not cache.enabled else "miss")])
    return compiled
