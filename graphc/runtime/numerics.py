"""check_numerics: stop a run at the first node whose value holds NaN or Inf, and say where it came from.

The check is a run monitor (see graphc/runtime/profile.py): a backend calls ``node_done(node, outputs,
seconds)`` after each node in execution order, and the first float output holding NaN or Inf raises
``NumericsError`` before any variable is updated. The message names the user's node (through
``Optimized.origin`` when the Session runs an optimized copy), its op, the value's dtype, shape and NaN/Inf
counts, its inputs' ranges, the user's line, and for a gradient node the forward node it differentiates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graphc import environment
from graphc.errors import NumericsError
from graphc.graph.node import Node
from graphc.graph.types import format_shape
from graphc.ops.sources import PLACEHOLDER
from graphc.ops.state import VARIABLE


def check_numerics_requested(argument: bool | None) -> bool:
    """The ``check_numerics=`` argument of a run, or GRAPHC_CHECK_NUMERICS (any value but empty or ``0``)
    when the argument is None."""
    if argument is None:
        return environment.check_numerics()
    return bool(argument)


class NumericsChecker:
    """A run monitor that raises ``NumericsError`` at the first float value holding NaN or Inf.

    ``origin`` maps the nodes that run (an optimized copy's) to the user's nodes; empty when they are the
    user's own. ``optimize`` is the Session's level, for the message. The checker keeps a reference to
    each value it is shown (no copy), so the error can give the ranges of the failing node's inputs.
    """

    def __init__(self, origin: Mapping[Node, Node] | None = None, optimize: int = 0) -> None:
        self.origin = origin or {}
        self.optimize = optimize
        self._values: dict[Node, Sequence[np.ndarray]] = {}

    def node_done(self, node: Node, outputs: Sequence[np.ndarray], seconds: float) -> None:
        self._values[node] = outputs
        for index, value in enumerate(outputs):
            if _is_float(value) and not np.isfinite(value).all():
                raise self._error(node, index, value)

    def _error(self, node: Node, index: int, value: np.ndarray) -> NumericsError:
        user = self.origin.get(node, node)
        forward = user.graph.derivative_of.get(user) or node.graph.derivative_of.get(node)
        fed = node.op in (PLACEHOLDER, VARIABLE)
        lines = [_headline(node, user, index, value, self.optimize)]
        lines += [_fed_line(node)] if fed else _input_lines(node, self._values)
        if forward is not None:
            lines.append(f"  '{user.name}' is part of the derivative of {forward.op.name} node "
                         f"'{forward.name}' created at {forward.source}{_code(forward)}")
        return NumericsError("\n".join(lines), node=user, forward=forward, fed=fed)


def _is_float(value: np.ndarray) -> bool:
    return np.issubdtype(value.dtype, np.floating)


def _code(node: Node) -> str:
    return f": {node.source.code}" if node.source.code else ""


def _headline(node: Node, user: Node, index: int, value: np.ndarray, optimize: int) -> str:
    """``log node 'log' created at model.py:7: y = gc.log(x)`` and what its value holds."""
    output = f" output {index}" if len(node.outputs) > 1 else ""
    head = (f"check_numerics: {user.op.name} node '{user.name}' created at {user.source}{_code(user)}\n"
            f"  its value{output} ({value.dtype}{format_shape(value.shape)}) holds {_bad_counts(value)} "
            f"of {value.size} elements; it is the first value holding NaN or Inf in this run")
    if node is not user and (node.op is not user.op or node.name != user.name):
        head += (f"\n  (with optimize={optimize} it is computed as {node.op.name} node '{node.name}' of the "
                 f"optimized graph)")
    return head


def _bad_counts(value: np.ndarray) -> str:
    counts = {"NaN": np.isnan(value).sum(), "+Inf": np.isposinf(value).sum(), "-Inf": np.isneginf(value).sum()}
    return ", ".join(f"{int(n)} {label}" for label, n in counts.items() if n)


def _fed_line(node: Node) -> str:
    if node.op is PLACEHOLDER:
        return f"  placeholder '{node.name}' was fed this value: the NaN or Inf comes from your feed_dict"
    return (f"  variable '{node.name}' holds this value: it comes from its initial value or an earlier update "
            "of the variable")


def _input_lines(node: Node, values: Mapping[Node, Sequence[np.ndarray]]) -> list[str]:
    if not node.inputs:
        return ["  it has no inputs"]
    lines = ["  its inputs:"]
    for tensor in node.inputs:
        value = values.get(tensor.node)
        summary = "(value not seen)" if value is None else _range(value[tensor.index])
        origin = " (fed)" if tensor.node.op is PLACEHOLDER else ""
        lines.append(f"    {tensor.name}{origin}: {tensor.type} {summary}")
    return lines


def _range(value: np.ndarray) -> str:
    """``= [0 .. 2], finite`` / ``= [-inf .. 3], 1 -Inf`` / ``empty``: what an input held."""
    array = np.asarray(value)
    if array.size == 0:
        return "empty"
    if not _is_float(array):  # ints and bools
        return f"in [{array.min()} .. {array.max()}]"
    bad = _bad_counts(array)
    numbers = array[~np.isnan(array)]
    span = f"in [{numbers.min():.6g} .. {numbers.max():.6g}]" if numbers.size else "all NaN"
    return f"{span}, {bad}" if bad else f"{span}, finite"
