"""Helpers for pass tests: run a graph as built and optimized, and compare."""

from __future__ import annotations

import numpy as np

import graphc as gc


def run_both(fetches, feed_dict=None, level: int = 2):
    """(values as built, on the numpy reference; values after gc.optimize at ``level``, compiled by the default
    backend), fresh sessions: every pass test also checks the optimized graph's native code."""
    graph = (fetches[0] if isinstance(fetches, (list, tuple)) else fetches).graph
    with gc.Session(graph, backend="numpy", optimize=0) as plain, gc.Session(graph, optimize=level) as optimized:
        return plain.run(fetches, feed_dict or {}), optimized.run(fetches, feed_dict or {})


def assert_same_values(fetches, feed_dict=None, level: int = 2, rtol: float = 1e-6, atol: float = 0.0) -> None:
    """The optimized graph computes what the graph as built computes (NaN where it has NaN)."""
    before, after = run_both(fetches, feed_dict, level)
    for b, a in zip(before if isinstance(before, list) else [before], after if isinstance(after, list) else [after]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
