"""Backends turn a run plan into something that executes it.

A backend module provides ``compile(plan) -> executable``; the executable's
``run(feeds, variables, run_count, monitor=None) -> (fetched values, {variable node: new value})`` must
not modify ``feeds`` or ``variables`` (the Session commits updates). When the Session profiles or checks
numerics it passes a ``monitor``: the backend calls ``monitor.node_done(node, outputs, seconds)`` after each
value it computes (a compiled backend: per kernel output); without one, it runs with no per-node cost.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from graphc.errors import CompileError

DEFAULT_BACKEND = "numpy"  # becomes "llvm" once the LLVM backend lands
_MODULES = {"numpy": "graphc.backends.numpy"}
# the numpy backend is the oracle: by default it runs graphs exactly as the user built them
DEFAULT_OPTIMIZE = {"numpy": 0}


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name``; a clear error for one that does not exist (yet)."""
    if name not in _MODULES:
        raise CompileError(f"unknown backend {name!r}; available: {', '.join(sorted(_MODULES))}")
    return importlib.import_module(_MODULES[name])
