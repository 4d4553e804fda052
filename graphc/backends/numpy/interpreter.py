"""Evaluate a plan with the ops' numpy references: the oracle other backends are tested against.

Floating-point exceptions follow IEEE semantics (log(0) = -inf, 0/0 = NaN) silently, as compiled code
does. Each result is checked against the node's static type, so a reference that disagrees with its
shape rule, or a run-time size that contradicts a static one, is reported at the node that caused it.

``run(..., monitor=...)`` is the backends' optional observation hook (profiling, check_numerics): after each
node the interpreter calls ``monitor.node_done(node, outputs, seconds)``. Without a monitor the loop is the
plain one; the choice is made once per run, not per node.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from graphc.errors import GraphcError, ShapeError
from graphc.graph.node import Node
from graphc.graph.types import TensorType, format_shape, shape_matches
from graphc.ops.sources import PLACEHOLDER
from graphc.ops.state import VARIABLE
from graphc.runtime.plan import Plan


class Interpreter:
    """A compiled plan for the numpy backend: just the plan, walked at run time."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def run(self, feeds: dict[Node, np.ndarray], variables: dict[Node, np.ndarray], run_count: int,
            monitor: Any = None) -> tuple[list[Any], dict[Node, np.ndarray]]:
        results: dict[Node, tuple[np.ndarray, ...]] = {}
        with np.errstate(all="ignore"):
            if monitor is None:
                for node in self.plan.schedule:
                    results[node] = self._evaluate(node, results, feeds, variables, run_count)
            else:
                self._run_monitored(results, feeds, variables, run_count, monitor)
        updates = {node.inputs[0].node: results[node][0] for node in self.plan.updates}
        # fetched arrays are the caller's own: copies, never views of feeds, variables or constants
        fetched = [np.array(results[t.node][t.index]) if not isinstance(t, Node) else None for t in self.plan.targets]
        return fetched, updates

    def _run_monitored(self, results: dict, feeds: dict, variables: dict, run_count: int, monitor: Any) -> None:
        clock = time.perf_counter
        for node in self.plan.schedule:
            started = clock()
            results[node] = self._evaluate(node, results, feeds, variables, run_count)
            monitor.node_done(node, results[node], clock() - started)

    def _evaluate(self, node: Node, results: dict, feeds: dict, variables: dict,
                  run_count: int) -> tuple[np.ndarray, ...]:
        if node.op is PLACEHOLDER:
            return (feeds[node],)
        if node.op is VARIABLE:
            return (variables[node],)
        args = [results[t.node][t.index] for t in node.inputs]
        attrs = dict(node.attrs)
        if node.op.random:
            attrs["run_count"] = run_count
        try:
            output = node.op.reference(*args, **attrs)
        except GraphcError:
            raise
        except Exception as error:  # a run-time size conflict, an index out of range, ...
            shapes = ", ".join(f"{t.name}: {a.dtype}{format_shape(a.shape)}" for t, a in zip(node.inputs, args))
            raise ShapeError(f"{node.op.name} node '{node.name}' (created at {node.source}) failed at run "
                             f"time on inputs {shapes}: {error}") from error
        outputs = output if isinstance(output, tuple) else (output,)
        return tuple(_checked(node, t, o) for t, o in zip(node.types, outputs, strict=True))


def _checked(node: Node, expected: TensorType, value: Any) -> np.ndarray:
    """``value`` as an array of the node's dtype; an error if its shape contradicts the static shape."""
    array = np.asarray(value)
    if array.dtype != expected.dtype:
        if not np.can_cast(array.dtype, expected.dtype, "same_kind"):
            raise GraphcError(f"internal: the reference of {node.op.name} returned {array.dtype} for node "
                              f"'{node.name}' whose type is {expected}")
        array = array.astype(expected.dtype)
    if not shape_matches(expected.shape, array.shape):
        raise ShapeError(f"{node.describe()} produced shape {format_shape(array.shape)} at run time, but its "
                         f"static shape is {format_shape(expected.shape)}")
    return array


def compile(plan: Plan) -> Interpreter:  # noqa: A001 - the backend interface's name
    return Interpreter(plan)
