"""Which nodes lie between inputs and outputs: the part of a graph a derivative has to walk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from graphc.graph import walk
from graphc.graph.node import Node, Tensor


def ancestors(outputs: Iterable[Tensor]) -> set[Node]:
    """Every node the outputs' values depend on (data inputs only: control inputs carry no values)."""
    return set(walk.ancestors(outputs, control=False))


def between(inputs: Iterable[Tensor], outputs: Iterable[Tensor]) -> list[Node]:
    """The nodes on some path from an input to an output, in creation (topological) order."""
    upstream = ancestors(outputs)
    starts = {t.node for t in inputs} & upstream
    if not starts:
        return []
    first = min(n.index for n in starts)
    candidates = sorted((n for n in upstream if n.index >= first), key=lambda n: n.index)
    downstream = set(starts)
    for node in candidates:
        if any(t.node in downstream for t in node.inputs):
            downstream.add(node)
    return [n for n in candidates if n in downstream]


@contextlib.contextmanager
def derivative_scope(scope: str, forward: Node) -> Iterator[None]:
    """A whole ``gradients``/``jvp`` call: its name scope, and every node it builds that no single op's rule
    claimed (seeds, sums of contributions, zeros) recorded as a derivative of ``forward``."""
    graph = forward.graph
    first = len(graph.nodes)
    with graph.as_default(), graph.name_scope(scope):
        yield
    for new in graph.nodes[first:]:
        graph.derivative_of.setdefault(new, forward)


@contextlib.contextmanager
def differentiating(node: Node, suffix: str) -> Iterator[None]:
    """Build a derivative of ``node``: in the name scope ``<node>_<suffix>``, and recorded in
    ``graph.derivative_of`` so every new node can be traced back to the forward node (and user line)."""
    graph = node.graph
    first = len(graph.nodes)
    with graph.name_scope(f"{node.name.rsplit('/', 1)[-1]}_{suffix}"):
        yield
    for new in graph.nodes[first:]:
        graph.derivative_of.setdefault(new, node)
