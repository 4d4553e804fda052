"""Graph: the nodes a user built, in creation order, with unique names and name scopes.

A default graph always exists; ``with g.as_default():`` makes another one current for the ops built in
the block (per thread, as in TF1).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from graphc.errors import GraphError
from graphc.graph.node import Node, Tensor
from graphc.graph.source import SourceLine
from graphc.graph.types import TensorType

if TYPE_CHECKING:
    from graphc.ops.registry import OpDef

_VALID_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class Graph:
    """A growing list of immutable nodes; names are unique within the graph."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[Node] = []
        self.seed = seed  # graph-level seed: random ops without their own seed derive one from it
        # for each node built by differentiation, the forward node whose derivative it helps compute
        # (so errors and dumps about a gradient node can name the user's node and line it came from)
        self.derivative_of: dict[Node, Node] = {}
        # each variable node's initial value: evaluated by a Session the first time it reads the variable
        self.initializers: dict[Node, Tensor] = {}
        # update ops a training step runs besides the optimizer's (a BatchNorm's moving averages): an
        # optimizer's ``minimize`` adds the ones computed from the same batch as its loss
        self.update_ops: list[Tensor] = []
        self._by_name: dict[str, Node] = {}
        self._name_counts: dict[str, int] = {}
        self._scopes: list[str] = []

    def __repr__(self) -> str:
        return f"<Graph with {len(self.nodes)} nodes>"

    # -- default graph ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        """Make this graph the one new ops go into, for the duration of the ``with`` block."""
        _state.stack.append(self)
        try:
            yield self
        finally:
            _state.stack.pop()

    # -- names ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def name_scope(self, name: str) -> Iterator[str]:
        """Prefix the names of nodes built inside the block with ``name/`` (scopes nest)."""
        _check_name(name)
        self._scopes.append(name)
        try:
            yield "/".join(self._scopes)
        finally:
            self._scopes.pop()

    def unique_name(self, base: str) -> str:
        """``base`` inside the current scope, suffixed ``_1``, ``_2``, … if already taken."""
        _check_name(base)
        full = "/".join([*self._scopes, base])
        name, count = full, self._name_counts.get(full, 0)
        while name in self._by_name:
            count += 1
            name = f"{full}_{count}"
        self._name_counts[full] = count
        return name

    def get(self, name: str) -> Tensor | Node:
        """The node called ``name`` (its tensor when it has exactly one output), or ``name:i``'s tensor."""
        base, _, index = name.partition(":")
        node = self._by_name.get(base)
        if node is None:
            raise GraphError(f"graph has no node named {base!r}")
        if index:
            if not index.isdigit() or int(index) >= len(node.outputs):
                raise GraphError(f"{name!r} names no output: node {base!r} (created at {node.source}) has "
                                 f"{len(node.outputs)}, numbered from 0")
            return node.outputs[int(index)]
        return node.outputs[0] if len(node.outputs) == 1 else node

    # -- building -------------------------------------------------------------------------------------
    def add_node(self, op: OpDef, inputs: tuple[Tensor, ...], attrs: Mapping[str, Any],
                 types: tuple[TensorType, ...], name: str, source: SourceLine,
                 control_inputs: tuple[Node, ...] = (), output_class: type[Tensor] | None = None) -> Node:
        """Append a node whose name has already been made unique; called by ``graphc.ops.registry``."""
        node = Node(op, inputs, attrs, types, name, source, self, len(self.nodes), control_inputs,
                    output_class)
        self.nodes.append(node)
        self._by_name[name] = node
        return node


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _VALID_NAME.match(name):
        raise GraphError(f"invalid name {name!r}: use letters, digits, '_', '.', '-'")


class _DefaultGraphState(threading.local):
    def __init__(self) -> None:
        self.stack: list[Graph] = []


_state = _DefaultGraphState()
_global_default = Graph()


def get_default_graph() -> Graph:
    """The graph new ops go into: the innermost ``as_default()`` graph, else the global default graph."""
    return _state.stack[-1] if _state.stack else _global_default


def reset_default_graph() -> Graph:
    """Replace the global default graph with a new empty one (not allowed inside ``as_default()``)."""
    global _global_default
    if _state.stack:
        raise GraphError("reset_default_graph() inside a `with graph.as_default():` block")
    _global_default = Graph()
    return _global_default


def name_scope(name: str) -> contextlib.AbstractContextManager[str]:
    """``with gc.name_scope("layer1"):`` prefixes names of ops built in the default graph."""
    return get_default_graph().name_scope(name)
