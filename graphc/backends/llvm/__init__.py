"""The LLVM backend: loop-nest programs rendered to LLVM IR, optimized for the host CPU and run as native code.

``compile(plan)`` partitions and lowers the plan (graphc/lower), renders the program (render.py), optimizes
and emits machine code for the host (jit.py), or loads it from the disk cache, and returns an executable
(executable.py) whose ``run`` is one native call per ``Session.run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphc.backends.llvm.executable import LLVMExecutable
    from graphc.runtime.plan import Plan


def compile(plan: Plan) -> LLVMExecutable:  # noqa: A001 - the backend interface's name
    """The native executable of ``plan`` (imports llvmlite on first use only)."""
    from graphc.backends.llvm.executable import LLVMExecutable
    from graphc.backends.llvm.native import build_native

    return LLVMExecutable(plan, build_native)
