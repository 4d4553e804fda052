"""The CUDA backend: loop-nest programs rendered to CUDA C, compiled for the GPU present, run through pycuda.

``compile(plan)`` partitions and lowers the plan exactly as the llvm backend does (graphc/lower), renders
the program to CUDA C (render.py), compiles it with nvcc for this GPU or loads it from the disk cache
(nvcc.py) and returns an executable (executable.py) whose ``run`` replays a precomputed list of kernel
launches and cuBLAS GEMMs (cublas.py). Nothing here imports pycuda until a Session asks for this backend:
``check_available`` says what is missing on a machine without pycuda, a driver or a GPU. Variables stay on the
GPU between runs: ``host_written`` is how the Session says it changed their host arrays itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from graphc.backends.cuda.executable import CUDAExecutable
    from graphc.runtime.plan import Plan


def check_available() -> None:
    """Raise ``BackendUnavailableError`` naming what this machine lacks for CUDA (pycuda, a driver, a GPU)
    and how to install it; called by ``Session(backend="cuda")``."""
    from graphc.backends.cuda.executable import gpu

    gpu()


def host_written(arrays: Iterable[np.ndarray]) -> None:
    """The Session wrote these variable arrays itself (``load_variables``, a monitored run's commit): the next
    run uploads them (their GPU copies were the current values until now)."""
    from graphc.backends.cuda.executable import host_written as written

    written(arrays)


def compile(plan: Plan) -> CUDAExecutable:  # noqa: A001 - the backend interface's name
    """The CUDA executable of ``plan``."""
    from graphc.backends.cuda.executable import CUDAExecutable

    return CUDAExecutable(plan)
