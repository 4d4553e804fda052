"""One rewrite sweep: copy the part of a graph that outputs need into a new graph, applying rules.

The copy walks the needed nodes in topological order. Each node is rebuilt from its already-rewritten
inputs; identical nodes (same op, inputs and attributes) are built once (hash-consing: common
subexpressions merge for free), and nodes no output needs are never copied (dead code disappears). Then
the rules whose pattern is rooted at the node's op are tried; a replacement is tried again, so each node
leaves the sweep in a form no rule matches at its root. Every new node keeps the user's source line and
remembers the user's node it came from (``Sweep.origin``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor
from graphc.graph.source import source_override
from graphc.graph.walk import ancestors
from graphc.ops.registry import apply
from graphc.ops.sources import PLACEHOLDER
from graphc.ops.state import VARIABLE, Variable
from graphc.passes.patterns import RuleTable

MAX_REWRITES_PER_NODE = 32  # a guard against two rules undoing each other forever
_SMALL_ARRAY = 64  # constants up to this size are compared by value when merging


class Sweep:
    """The result of a sweep: the new graph, where each old tensor went, and each new node's origin."""

    def __init__(self, source: Graph, origin: dict[Node, Node], rules: RuleTable | None, merge: bool) -> None:
        self.graph = Graph(seed=source.seed)
        self.rules = rules
        self.merge = merge
        self.fired: Counter[str] = Counter()
        self.mapping: dict[Node, Any] = {}  # old node -> its new outputs (a tuple) or new node (no outputs)
        self.origin: dict[Node, Node] = {}  # new node -> the user's node it stands for
        self._previous_origin = origin
        self._built: dict[tuple, Node] = {}

    # -- public -----------------------------------------------------------------------------------------
    def run(self, targets: Sequence[Tensor | Node]) -> list[Tensor | Node]:
        for node in ancestors(targets):
            self._copy(node)
        return [self.translate(t) for t in targets]

    def translate(self, target: Tensor | Node) -> Tensor | Node:
        if isinstance(target, Tensor):
            return self.mapping[target.node][target.index]
        new = self.mapping[target]
        return new if isinstance(new, Node) else new[0].node

    # -- copying ----------------------------------------------------------------------------------------
    def _copy(self, node: Node) -> None:
        origin = self._previous_origin.get(node, node)
        first = len(self.graph.nodes)
        inputs = [self.mapping[t.node][t.index] for t in node.inputs]
        controls = [self.translate(n) for n in node.control_inputs]
        with self.graph.as_default(), source_override(node.source), _scopes(self.graph, node.name) as base:
            new = self._build(node, inputs, controls, base)
            if isinstance(new, Tensor) and self.rules is not None:
                new = self._rewrite(new)
        self.mapping[node] = new if isinstance(new, (tuple, Node)) else (new,)
        forward = node.graph.derivative_of.get(node)  # gradient nodes keep naming their forward node
        for created in self.graph.nodes[first:]:
            self.origin.setdefault(created, origin)
            if forward is not None:
                self.graph.derivative_of.setdefault(created, forward)

    def _build(self, node: Node, inputs: list[Tensor], controls: list[Node], name: str) -> Any:
        key = _key(node, inputs, controls)
        if self.merge and key in self._built:
            self.fired["cse"] += 1
            existing = self._built[key]
            return existing.outputs[0] if len(existing.outputs) == 1 else existing.outputs or existing
        output_class = Variable if node.op is VARIABLE else None
        result = apply(node.op, inputs, name, control_inputs=controls, output_class=output_class, **node.attrs)
        built = result.node if isinstance(result, Tensor) else result[0].node if isinstance(result, tuple) else result
        self._built[key] = built
        return result

    def _rewrite(self, tensor: Tensor) -> Tensor:
        for _ in range(MAX_REWRITES_PER_NODE):
            for rule in self.rules.for_node(tensor.node):
                replacement = rule.apply(tensor)
                if replacement is not None and replacement is not tensor:
                    self.fired[rule.name] += 1
                    tensor = replacement
                    break
            else:
                return tensor
        return tensor


@contextlib.contextmanager
def _scopes(graph: Graph, full_name: str) -> Iterator[str]:
    """Re-enter the old node's name scopes so the copy keeps its name (``layer1/add`` stays ``layer1/add``)."""
    *scopes, base = full_name.split("/")
    with contextlib.ExitStack() as stack:
        for scope in scopes:
            stack.enter_context(graph.name_scope(scope))
        yield base.rsplit(":", 1)[0]


def _key(node: Node, inputs: list[Tensor], controls: list[Node]) -> tuple:
    """What makes two nodes interchangeable; placeholders and variables are never merged."""
    identity = (id(node),) if node.op in (PLACEHOLDER, VARIABLE) else ()
    return (node.op, tuple((id(t.node), t.index) for t in inputs), tuple(id(n) for n in controls),
            tuple(sorted((k, _freeze(v)) for k, v in node.attrs.items())), identity)


def _freeze(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.size <= _SMALL_ARRAY:
            return ("array", value.dtype.str, value.shape, value.tobytes())
        return ("array-object", id(value))
    if isinstance(value, (tuple, list)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Tensor):
        return ("tensor", id(value.node), value.index)
    return value
