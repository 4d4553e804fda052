"""What one ``Session.run`` signature must compute: the backend-neutral input to every backend.

A plan is built once per (fetches, fed placeholders) and cached by the Session. It lists the nodes to
evaluate in dependency order (creation order is topological: a node's inputs always exist before it),
the variables read, the update ops, and checks that every placeholder needed is fed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from graphc.errors import FeedError, GraphError
from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor
from graphc.ops.sources import PLACEHOLDER
from graphc.ops.state import VARIABLE


@dataclass(frozen=True)
class Plan:
    """The nodes one run evaluates (``schedule``, dependency order) and what it reads and updates."""

    graph: Graph
    targets: tuple[Tensor | Node, ...]  # what the user fetched, flattened
    fed: frozenset[Node]  # placeholder nodes given in the feed_dict
    schedule: tuple[Node, ...]
    variables: tuple[Node, ...]  # variable nodes read
    updates: tuple[Node, ...]  # update nodes, at most one per variable


def make_plan(graph: Graph, targets: Sequence[Tensor | Node], fed: frozenset[Node]) -> Plan:
    """Collect the ancestors of ``targets`` (stopping at fed placeholders) and check feeds and updates."""
    needed: dict[Node, Tensor | Node] = {}  # node -> the target that needs it (for error messages)
    stack = [(_node_of(t), t) for t in targets]
    while stack:
        node, target = stack.pop()
        if node in needed:
            continue
        needed[node] = target
        stack.extend((t.node, target) for t in node.inputs)
        stack.extend((n, target) for n in node.control_inputs)
    schedule = tuple(sorted(needed, key=lambda n: n.index))
    missing = [n for n in schedule if n.op is PLACEHOLDER and n not in fed]
    if missing:
        raise FeedError("\n".join(_missing_feed_message(n, needed[n]) for n in missing))
    return Plan(graph, tuple(targets), fed, schedule,
                variables=tuple(n for n in schedule if n.op is VARIABLE),
                updates=_check_updates(schedule))


def _node_of(target: Tensor | Node) -> Node:
    return target.node if isinstance(target, Tensor) else target


def _missing_feed_message(placeholder: Node, target: Tensor | Node) -> str:
    needed_by = target.name
    return (f"placeholder '{placeholder.name}' ({placeholder.types[0]}, created at {placeholder.source}) "
            f"must be fed: fetching '{needed_by}' depends on it; add it to feed_dict")


def _check_updates(schedule: tuple[Node, ...]) -> tuple[Node, ...]:
    updates = [n for n in schedule if n.op.updates_variable]
    by_variable: dict[Node, Node] = {}
    for update in updates:
        variable = update.inputs[0].node
        if variable in by_variable:
            first = by_variable[variable]
            raise GraphError(f"variable '{variable.name}' is updated twice in one run: by '{first.name}' "
                             f"(created at {first.source}) and by '{update.name}' (created at "
                             f"{update.source}); fetch them in separate runs or combine the updates")
        by_variable[variable] = update
    return tuple(updates)
