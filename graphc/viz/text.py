"""``gc.viz.text``: the canonical text form of a graph, one equation per node (debugprint / jaxpr style).

    graph: 5 nodes; outputs: y
      x1 : float32[?] = placeholder[dtype=float32, shape=(None,)]   # lecture.py:3
      ...
      y  : float32[?] = sub(add, sin)                               # lecture.py:7

Why one fixed form: it is what golden tests compare and what before/after-pass diffs show, so it must be
deterministic — nodes in creation order (which is topological, since a node's inputs exist before it),
node names (never ``id()``), attributes sorted by key, types inline. Later stages (gradients, optimized
graphs, kernels) print through the same pieces: ``select_nodes`` (the walk), ``equation`` (one row) and
``format_attr`` (one attribute value), so DOT and HTML views can reuse them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from graphc.errors import GraphError
from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor

SMALL_ARRAY = 6  # arrays with at most this many elements print in full; larger ones as a summary


class TextDump(str):
    """The dump as a ``str`` whose ``repr`` is the text itself, so a REPL shows the table, not a quoted
    one-line string with ``\\n`` escapes; tests still compare it as an ordinary string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def text(target: Any, *, sources: bool = True, kernels: bool = False) -> TextDump:
    """Print ``target`` one node per line: ``name : type = op[attrs](inputs)   # file:line``.

    ``target`` is a Graph (all its nodes), or a Tensor, Node, or list/tuple/dict of them (only the
    nodes they depend on). ``sources=False`` drops the source column, for tests that must not depend on
    line numbers. ``kernels=True`` (automatic for a ``Partition`` or the result of ``gc.optimize``) groups
    the lines by kernel and says why each value leaves its kernel (see ``kernel_text``).
    """
    from graphc.viz.stages import Stage

    if isinstance(target, Stage):
        if target.partition is not None:
            return kernel_text(target.partition, sources=sources)
        named = {_name(o): o for o in target.outputs}
        lines = [f"stage {target.name}: " + _header(target.graph, list(target.nodes), named)]
        nodes = list(target.nodes)
        lines += _table([equation(n) for n in nodes], [str(n.source) for n in nodes], sources)
        return TextDump("\n".join(lines))
    partition = _partition(target, kernels)
    if partition is not None:
        return kernel_text(partition, sources=sources)
    graph, outputs = _outputs(target)
    nodes = select_nodes(graph, outputs)
    lines = [_header(graph, nodes, outputs)]
    lines += _table([equation(node) for node in nodes], [str(node.source) for node in nodes], sources)
    return TextDump("\n".join(lines))


def kernel_text(partition: Any, *, sources: bool = True) -> TextDump:
    """The dump grouped by kernel: a header per launched kernel (id, kind, iteration space, root), its
    nodes, and one ``cut`` line per value that leaves it, with the reason; then sources and controls.

    graph: 6 nodes in 2 kernels; outputs: y
      k0 reduction [?,10] axes=(1,) root=reduce_max
        m  : float32[?,1]  = reduce_max[axis=(1,), keepdims=True](z)
        ...
        cut y → out: fetched (an output of the run)
      sources
        z  : float32[?,10] = placeholder[dtype=float32, shape=(None, 10)]
    """
    launched = partition.launched()
    blocks = [(k.describe(), list(k.nodes), [f"cut {b}" for b in partition.cuts(k)]) for k in launched]
    for kind, title in (("source", "sources"), ("control", "control")):
        nodes = [n for k in partition.kernels if k.kind == kind for n in k.nodes]
        if nodes:
            blocks.append((title, sorted(nodes, key=lambda n: n.index), []))
    nodes = [n for _, members, _ in blocks for n in members]
    rows = _table([equation(n) for n in nodes], [str(n.source) for n in nodes], sources)
    total = len(partition.graph.nodes) if partition.graph is not None else len(nodes)
    shown = f"{len(nodes)} of {total}" if len(nodes) != total else str(total)
    names = ", ".join(_name(o) for o in partition.outputs)
    lines = [f"graph: {shown} nodes in {len(launched)} kernels; outputs: {names}"]
    for header, members, cuts in blocks:
        lines.append(f"  {header}")
        lines += ["  " + row for row in rows[:len(members)]]
        lines += [f"    {cut}" for cut in cuts]
        rows = rows[len(members):]
    return TextDump("\n".join(lines))


def _partition(target: Any, kernels: bool) -> Any:
    """The kernel partition to print: the target itself, an ``Optimized``'s, or (``kernels=True``) one
    planned for a graph or tensors; None to print the plain dump."""
    from graphc.passes.fusion import plan_kernels
    from graphc.passes.partition import Partition
    from graphc.passes.pipeline import Optimized

    if isinstance(target, Partition):
        return target
    if isinstance(target, Optimized):
        return target.partition or plan_kernels(target.graph, target.outputs)
    if not kernels:
        return None
    graph, outputs = _outputs(target)
    return plan_kernels(graph, None if outputs is None else list(outputs.values()))


# -- which nodes ---------------------------------------------------------------------------------------
def _outputs(target: Any) -> tuple[Graph | None, dict[str, Tensor | Node] | None]:
    """The graph and the named outputs asked for (None for a whole graph); keys are what the header shows."""
    if isinstance(target, Graph):
        return target, None
    if isinstance(target, (Tensor, Node)):
        items = [(_name(target), target)]
    elif isinstance(target, Mapping):
        items = [(f"{key}={_name(value)}", value) for key, value in target.items()]
    elif isinstance(target, (list, tuple)):
        items = [(_name(value), value) for value in target]
    else:
        raise TypeError(f"gc.viz.text: expected a Graph, Tensor, Node, or a list/tuple/dict of tensors, "
                        f"got {type(target).__name__}")
    for _, value in items:
        if not isinstance(value, (Tensor, Node)):
            raise TypeError(f"gc.viz.text: expected tensors or nodes, got {value!r}")
    graphs = {id(value.graph): value.graph for _, value in items}
    if len(graphs) > 1:
        raise GraphError("gc.viz.text: the tensors come from different graphs; print one graph at a time")
    return next(iter(graphs.values()), None), dict(items)


def _name(value: Any) -> str:
    return value.name if isinstance(value, (Tensor, Node)) else repr(value)


def select_nodes(graph: Graph | None, outputs: Mapping[str, Tensor | Node] | None) -> list[Node]:
    """All nodes of ``graph`` when ``outputs`` is None, else the outputs' ancestors, in creation order.

    A node depends on its inputs, its control inputs and the tensors among its attributes (a variable's
    initial value is evaluated on first use), so every name a printed line mentions is printed above it.
    """
    if graph is None:
        return []
    if outputs is None:
        return list(graph.nodes)
    seen: dict[int, Node] = {}
    stack = [value.node if isinstance(value, Tensor) else value for value in outputs.values()]
    while stack:  # iterative: deep graphs (long training loops) would overflow a recursive walk
        node = stack.pop()
        if node.index in seen:
            continue
        seen[node.index] = node
        stack += [t.node for t in node.inputs] + list(node.control_inputs)
        stack += [t.node for t in _attr_tensors(node.attrs.values())]
    return [seen[index] for index in sorted(seen)]


def _attr_tensors(values: Iterable[Any]) -> list[Tensor]:
    found = []
    for value in values:
        if isinstance(value, Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += _attr_tensors(value)
    return found


# -- one line per node ---------------------------------------------------------------------------------
def equation(node: Node) -> tuple[str, str, str]:
    """The three columns of a node's line: name, output type(s), and ``op[attrs](inputs, ^controls)``."""
    if len(node.types) == 1:
        types = str(node.types[0])
    else:  # several outputs, or none (a group): always a tuple, so the arity is visible
        types = "(" + ", ".join(str(t) for t in node.types) + ")"
    attrs = ", ".join(f"{key}={format_attr(node.attrs[key])}" for key in sorted(node.attrs))
    expr = node.op.name + (f"[{attrs}]" if attrs else "")
    operands = [t.name for t in node.inputs] + [f"^{n.name}" for n in node.control_inputs]
    if operands:
        expr += "(" + ", ".join(operands) + ")"
    return node.name, types, expr


def format_attr(value: Any) -> str:
    """An attribute value, plainly: ``2.0``, ``(None, 784)``, ``float32``; a tensor by its name; a
    large array by a summary, so a 784×10 constant takes one line, not a screenful."""
    if isinstance(value, (Tensor, Node)):
        return value.name
    if isinstance(value, np.ndarray):
        return _format_array(value)
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)  # ints, bools, strings (dtype names), numpy scalars


def _format_array(array: np.ndarray) -> str:
    if array.size <= SMALL_ARRAY:
        return _nested(array)
    mean = float(np.mean(array, dtype=np.float64))
    return f"{array.dtype.name}[{','.join(str(d) for d in array.shape)}] mean={mean:.3g}"


def _nested(array: np.ndarray) -> str:
    """Elements printed by numpy's shortest round-trip form of their own dtype (float32 0.1 is ``0.1``,
    not ``0.10000000149011612`` as ``tolist()`` would give)."""
    if array.ndim == 0:
        return str(array[()])
    return "[" + ", ".join(_nested(row) for row in array) + "]"


# -- layout ----------------------------------------------------------------------------------------------
def _header(graph: Graph | None, nodes: list[Node], outputs: Mapping[str, Any] | None) -> str:
    total = len(graph.nodes) if graph is not None else 0
    if outputs is None:
        return f"graph: {total} nodes"
    shown = f"{len(nodes)} of {total}" if len(nodes) != total else str(total)
    return f"graph: {shown} nodes; outputs: {', '.join(outputs)}"


def _table(rows: list[tuple[str, str, str]], source_lines: list[str], sources: bool) -> list[str]:
    """Rows aligned in columns so the dump reads as a table; the last column is not padded (no trailing
    spaces), so the source comments line up only when they are shown."""
    if not rows:
        return []
    name_width = max(len(row[0]) for row in rows)
    type_width = max(len(row[1]) for row in rows)
    expr_width = max(len(row[2]) for row in rows) if sources else 0
    lines = []
    for (name, types, expr), source in zip(rows, source_lines, strict=True):
        line = f"  {name:<{name_width}} : {types:<{type_width}} = {expr:<{expr_width}}"
        lines.append(f"{line}   # {source}" if sources else line.rstrip())
    return lines
