"""Verify mode: after every pass, run the optimized graph on fixed random inputs and compare it with the
graph as the user built it, so a wrong rewrite is caught at the pass (and rules) that made it.

Inputs: the values the caller gives (a Session in verify mode passes the run's own feeds), else random
ones (unknown dims take size 3; floats uniform in [−2, 2], ints in {0, 1} so they are valid labels and
indices, bools random); variables get their initial values. When the graph as built cannot run on
generated inputs (say a reshape needs a multiple of 4), verification is skipped with a warning that asks
for real inputs. A result may improve (the original is inf or NaN where the optimized one is finite: a
stabilization) but not change.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from graphc.backends import numpy as numpy_backend
from graphc.errors import GraphcError, VerificationError
from graphc.graph.node import Node, Tensor
from graphc.ops.sources import PLACEHOLDER
from graphc.runtime.plan import make_plan

UNKNOWN_DIM = 3
TOLERANCE = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-12)}  # (rtol, atol)


class Verifier:
    """Holds the inputs and the original results; ``check`` compares an optimized graph against them."""

    def __init__(self, targets: Sequence[Tensor | Node], feeds: Mapping[Node, np.ndarray] | None = None) -> None:
        from graphc.runtime.session import Session

        graph = _node(targets[0]).graph
        rng = np.random.default_rng(0)
        needed = make_plan(graph, list(targets), frozenset(n for n in graph.nodes if n.op is PLACEHOLDER))
        given = feeds or {}
        self.feeds = {n: given[n] if n in given else _random(n, rng) for n in needed.schedule if n.op is PLACEHOLDER}
        with Session(graph, backend="numpy", optimize=0) as session:
            values = session.run([n.outputs[0] for n in needed.variables]) if needed.variables else []
        self.variables = dict(zip(needed.variables, values))
        self.plan = make_plan(graph, list(targets), frozenset(self.feeds))
        try:
            self.expected = numpy_backend.compile(self.plan).run(self.feeds, self.variables, 0)[0]
        except GraphcError as error:
            warnings.warn(f"verify mode skipped: the graph as built does not run on generated inputs ({error}); "
                          "pass feed_dict= to gc.optimize, or verify through a Session run", stacklevel=4)
            self.expected = None

    def check(self, pass_name: str, fired: Counter, optimized) -> None:
        from graphc.runtime.optimized import OptimizedExecutable

        if self.expected is None:
            return

        executable = OptimizedExecutable(self.plan, optimized, numpy_backend)
        got = executable.run(self.feeds, self.variables, 0)[0]
        for target, want, have in zip(self.plan.targets, self.expected, got):
            if want is not None and not _same(np.asarray(want), np.asarray(have)):
                rules = ", ".join(f"{name}×{n}" for name, n in sorted(fired.items())) or "no rule (a sweep)"
                raise VerificationError(
                    f"pass '{pass_name}' changed the value of '{target.name}' (created at {_node(target).source}); "
                    f"rules that fired in it: {rules}. Largest difference: {_difference(want, have)}. Switch the "
                    "pass or a rule off with gc.optimize(..., exclude=[...]) or GRAPHC_OPT_EXCLUDE to confirm")


def _node(target: Tensor | Node) -> Node:
    return target.node if isinstance(target, Tensor) else target


def _random(node: Node, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(node.types[0].dtype)
    shape = tuple(UNKNOWN_DIM if d is None else d for d in node.types[0].shape)
    if dtype.kind == "f":
        return rng.uniform(-2, 2, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 2, size=shape).astype(dtype)


def _same(want: np.ndarray, have: np.ndarray) -> bool:
    if want.shape != have.shape or want.dtype != have.dtype:
        return False
    if want.dtype.kind != "f":
        return bool(np.array_equal(want, have))
    rtol, atol = TOLERANCE.get(want.dtype.name, (1e-6, 0.0))
    close = np.isclose(have, want, rtol=rtol, atol=atol, equal_nan=True)
    improved = ~np.isfinite(want) & np.isfinite(have)  # the original overflowed or was NaN: finite is better
    return bool(np.all(close | improved))


def _difference(want: np.ndarray, have: np.ndarray) -> str:
    want, have = np.asarray(want), np.asarray(have)
    if want.shape != have.shape:
        return f"shape {have.shape} instead of {want.shape}"
    if want.dtype != have.dtype:
        return f"dtype {have.dtype} instead of {want.dtype}"
    want, have = want.astype(np.float64), have.astype(np.float64)
    gap = np.abs(want - have)
    gap[np.isnan(gap)] = np.inf
    gap[(want == have) | (np.isnan(want) & np.isnan(have))] = 0.0  # equal infinities, NaN for NaN
    index = np.unravel_index(int(np.argmax(gap)), gap.shape) if gap.size else ()
    return f"{float(have[index])!r} instead of {float(want[index])!r} at index {tuple(int(i) for i in index)}"
