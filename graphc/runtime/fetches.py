"""Flattening a fetch structure (tensor, op, list, tuple, dict, nested) and rebuilding it with values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphc.errors import GraphError
from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor


def flatten_fetches(graph: Graph, fetches: Any) -> tuple[list[Tensor | Node], Callable[[list], Any]]:
    """Return the leaves (tensors and nodes) in order, and a function that puts values back in place."""
    leaves: list[Tensor | Node] = []

    def walk(item: Any) -> Callable[[list], Any]:
        if isinstance(item, str):
            item = graph.get(item)
        if isinstance(item, (Tensor, Node)):
            _check_graph(graph, item)
            position = len(leaves)
            leaves.append(item)
            return lambda values: values[position]
        if isinstance(item, dict):
            parts = {key: walk(value) for key, value in item.items()}
            return lambda values: type(item)((key, part(values)) for key, part in parts.items())
        if isinstance(item, (list, tuple)):
            parts = [walk(value) for value in item]
            if hasattr(item, "_fields"):  # namedtuple
                return lambda values: type(item)(*(part(values) for part in parts))
            return lambda values: type(item)(part(values) for part in parts)
        raise GraphError(f"cannot fetch {item!r}: fetch tensors, ops, or lists/tuples/dicts of them")

    return leaves, walk(fetches)


def _check_graph(graph: Graph, item: Tensor | Node) -> None:
    node = item.node if isinstance(item, Tensor) else item
    if node.graph is not graph:
        raise GraphError(f"cannot fetch '{item.name}' (created at {node.source}): it belongs to another "
                         "graph than the session's; pass graph= to the Session or build it in the "
                         "session's graph")
