"""``GRAPHC_LOG=compile``: one line on stderr per compilation, saying why it happened and where time went.

    graphc: compiled [loss, train] (first use): optimize 41.2 ms, lower 4.0 ms, render 6.1 ms,
            LLVM optimize 38.5 ms, machine code 52.3 ms; disk cache: miss, stored
"""

from __future__ import annotations

import sys
from typing import Any

from graphc import environment


def log_compile(executable: Any, targets: tuple, reason: str, optimizing: float) -> None:
    """Print the compile report of ``executable`` when GRAPHC_LOG includes ``compile``."""
    if "compile" not in environment.current().log:
        return
    inner = getattr(executable, "inner", executable)
    report = getattr(inner, "report", None)
    if report is None and not optimizing:
        return  # the numpy backend as written: nothing was compiled
    names = ", ".join(t.name for t in targets)
    stages = f"optimize {optimizing * 1e3:.1f} ms" + (f", {report}" if report is not None else "")
    print(f"graphc: compiled [{names}] ({reason}): {stages}", file=sys.stderr)
