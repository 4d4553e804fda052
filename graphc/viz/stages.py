"""The stages a graph goes through, as views every printer (text, DOT, HTML) and the CLI share.

``raw``: the graph as the user built it, without the nodes differentiation added; ``grad``: with them;
``optimized``: after ``gc.optimize``; ``kernels``: the optimized graph partitioned into fused kernels.
The loop nests each kernel is lowered to are text only: ``graphc dump --stage loops`` or
``sess.compiled(...).loops``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphc.errors import ArgumentError
from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor
from graphc.graph.walk import ancestors, sinks

STAGES = ("raw", "grad", "optimized", "kernels")


@dataclass(frozen=True)
class Stage:
    """One stage of a graph: the nodes to show (topological order), the outputs asked for, and for the
    ``kernels`` stage the partition."""

    name: str
    graph: Graph
    nodes: tuple[Node, ...]
    outputs: tuple[Tensor | Node, ...]
    partition: Any = None


def stage(target: Any, name: str = "grad", level: int = 2) -> Stage:
    """The ``name`` stage of ``target`` (a Graph — all its sink nodes — or tensors/ops)."""
    from graphc.passes.pipeline import _targets, optimize

    if name not in STAGES:
        raise ArgumentError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    outputs = _targets(target)
    if not outputs:
        raise ArgumentError("nothing to show: the graph is empty")
    if name in ("raw", "grad"):
        nodes = ancestors(outputs)
        graph = nodes[0].graph
        if name == "raw":
            derived = graph.derivative_of
            nodes = [n for n in nodes if n not in derived]
            outputs = [o for o in outputs if _node(o) not in derived] or sinks(nodes)
        return Stage(name, graph, tuple(nodes), tuple(outputs))
    result = optimize(outputs, level=level)
    nodes = ancestors(result.outputs)
    return Stage(name, result.graph, tuple(nodes), tuple(result.outputs),
                 result.partition if name == "kernels" else None)


def _node(target: Tensor | Node) -> Node:
    return target.node if isinstance(target, Tensor) else target
