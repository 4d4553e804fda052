"""Walking a graph: what some outputs depend on, and which nodes nothing consumes.

Creation order is topological (a node's inputs exist before it), so sorting by ``Node.index`` orders any
set of nodes for evaluation. The walks are iterative: training graphs can be deeper than Python's stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor


def ancestors(targets: Iterable[Tensor | Node], control: bool = True) -> list[Node]:
    """Every node the targets depend on, themselves included, in topological order. ``control=False``
    follows data inputs only (what values depend on, e.g. for differentiation)."""
    seen: set[Node] = set()
    stack = [t.node if isinstance(t, Tensor) else t for t in targets]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(t.node for t in node.inputs)
            if control:
                stack.extend(node.control_inputs)
    return sorted(seen, key=lambda n: n.index)


def sinks(nodes: Sequence[Node] | Graph) -> list[Tensor | Node]:
    """The nodes nothing among ``nodes`` consumes, as tensors (nodes for ops without one output)."""
    members = nodes.nodes if isinstance(nodes, Graph) else nodes
    consumed = {t.node for n in members for t in n.inputs} | {c for n in members for c in n.control_inputs}
    return [n.outputs[0] if len(n.outputs) == 1 else n for n in members if n not in consumed]
