"""Run a lowered program through the IR interpreter with a Session's kind of inputs (test helper)."""

from __future__ import annotations

import numpy as np

from graphc.graph.node import Node, Tensor
from graphc.lower import ir
from graphc.lower.interpret import interpret
from graphc.lower.program import Lowered
from graphc.lower.shapes import ShapeResolver


def run_lowered(lowered: Lowered, feeds: dict[Node, np.ndarray], variables: dict[Node, np.ndarray],
                run_count: int = 0) -> tuple[dict[Tensor, np.ndarray], dict[Node, np.ndarray]]:
    """(fetched outputs, new variable values) of one run; ``variables`` are not modified."""
    dims, concrete = ShapeResolver(lowered.shapes).resolve({n: a.shape for n, a in feeds.items()})
    dims[0] = run_count
    arrays = {}
    for buffer in lowered.program.buffers:
        if buffer.role == "feed":
            node = next(n for n, b in lowered.feeds.items() if b is buffer)
            arrays[buffer] = np.array(feeds[node], dtype=buffer.dtype).reshape(-1)
        elif buffer.role == "variable":
            node = next(n for n, b in lowered.variables.items() if b is buffer)
            arrays[buffer] = np.array(variables[node], dtype=buffer.dtype).reshape(-1)
        elif buffer.role == "constant":
            arrays[buffer] = np.array(buffer.value, dtype=buffer.dtype).reshape(-1)
        else:
            size = ir.evaluate_size(buffer.size, dims)
            arrays[buffer] = np.full(size, np.nan if buffer.dtype.startswith("float") else 7, dtype=buffer.dtype)
    interpret(lowered.program, arrays, dims)
    fetched = {t: arrays[b].reshape(concrete[t]) for t, b in lowered.outputs.items()}
    updated = {n: arrays[lowered.variables[n]].reshape(variables[n].shape) for n in lowered.updated}
    return fetched, updated
