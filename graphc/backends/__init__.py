"""Backends turn a run plan into something that executes it.

A backend module provides ``compile(plan) -> executable``; the executable's
``run(feeds, variables, run_count, monitor=None) -> (fetched values, {variable node: new value})`` returns
fetched arrays the caller owns (never views of feeds or variables). It must not modify ``feeds``; a compiled
backend writes variable updates in place (into the ``variables`` arrays, or its own copies of them: see
``host_written`` below) and returns no update for them,
except under a monitor, where it works on copies and returns the new values for the Session to commit.
When the Session profiles or checks numerics it passes a ``monitor``: the backend calls
``monitor.node_done(node, outputs, seconds)`` after each value it computes (a compiled backend: per kernel
output); without one, it runs with no per-node cost.

A backend that keeps variables elsewhere between runs (cuda: on the GPU, where its runs update them) provides
``host_written(arrays)``: the Session calls it after writing variable arrays itself (``load_variables``, the
commit of a monitored run), and such a backend returns fetched variables' values from its own copies.

A backend module may also provide ``check_available()``, which ``get_backend`` calls: it raises
``BackendUnavailableError`` when this machine lacks what the backend needs (cuda: pycuda, a GPU and its driver),
so ``Session(backend=...)`` fails at once with what to install, not at the first run.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from graphc.errors import CompileError

DEFAULT_BACKEND = "llvm"
_MODULES = {"numpy": "graphc.backends.numpy", "llvm": "graphc.backends.llvm", "cuda": "graphc.backends.cuda"}
# the numpy backend is the oracle: by default it runs graphs exactly as the user built them
DEFAULT_OPTIMIZE = {"numpy": 0, "llvm": 2, "cuda": 2}


def get_backend(name: str) -> ModuleType:
    """The backend module called ``name``; a clear error for one that does not exist, or that this machine
    cannot run (``BackendUnavailableError``: what is missing and how to install it)."""
    if name not in _MODULES:
        raise CompileError(f"unknown backend {name!r}; available: {', '.join(sorted(_MODULES))}")
    module = importlib.import_module(_MODULES[name])
    check_available = getattr(module, "check_available", None)
    if check_available is not None:
        check_available()
    return module
