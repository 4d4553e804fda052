"""Patterns and rules: a rewrite rule is a pattern plus a function of what the pattern bound.

    Rule("log_softmax", Op(LOG, Op(SOFTMAX, x, axis=axis)), lambda x, axis: log_softmax(x, axis))

``Var`` binds any tensor (the same name twice must bind the same tensor), ``Op`` matches a tensor made by
an op with matching inputs and attributes (an attribute pattern is a value or a ``Var``), ``Const`` matches
a constant node, optionally only one whose every element equals a value. The builder gets the bindings
as keyword arguments, plus ``node`` (the matched root) if it asks for it, and returns the replacement
tensor, or None to decline. Rules live in named tables that compose with ``+``. A rule whose pattern is
not rooted at an ``Op`` (e.g. a bare ``Var``) is tried at every node, after the rules of the node's op.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.graph.node import Node, Tensor
from graphc.ops.registry import OpDef
from graphc.ops.sources import CONSTANT

Bindings = dict[str, Any]


class Pattern:
    def match(self, value: Any, bindings: Bindings) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Var(Pattern):
    """Matches anything; binds it to ``name`` (a repeated name must match the same tensor or value)."""

    name: str

    def match(self, value: Any, bindings: Bindings) -> bool:
        if self.name in bindings:
            bound = bindings[self.name]
            return bound is value or (not isinstance(value, Tensor) and _same_value(bound, value))
        bindings[self.name] = value
        return True


@dataclass(frozen=True)
class Const(Pattern):
    """A constant tensor; with ``value``, only one whose every element equals it (e.g. ``Const(1)``)."""

    value: float | None = None
    name: str | None = None

    def match(self, value: Any, bindings: Bindings) -> bool:
        if not isinstance(value, Tensor) or value.node.op is not CONSTANT:
            return False
        array = value.node.attrs["value"]
        if self.value is not None and not (array.size and np.all(array == self.value)):
            return False
        if self.name is not None:
            bindings[self.name] = value
        return True


@dataclass(frozen=True)
class Op(Pattern):
    """A tensor made by ``op`` whose inputs match ``inputs`` and whose attributes match ``attrs``."""

    op: OpDef
    inputs: tuple[Pattern, ...]
    attrs: dict[str, Any]

    def __init__(self, op: OpDef, *inputs: Pattern, **attrs: Any) -> None:
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "attrs", attrs)

    def __hash__(self) -> int:
        return hash((self.op.name, self.inputs))

    def match(self, value: Any, bindings: Bindings) -> bool:
        if not isinstance(value, Tensor) or value.node.op is not self.op:
            return False
        node = value.node
        if len(node.inputs) != len(self.inputs):
            return False
        for key, expected in self.attrs.items():
            actual = node.attrs.get(key)
            if isinstance(expected, Pattern):
                if not expected.match(actual, bindings):
                    return False
            elif not _same_value(actual, expected):
                return False
        return all(p.match(t, bindings) for p, t in zip(self.inputs, node.inputs))


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and bool(
            np.array_equal(a, b))
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Rule:
    """``build(**bindings)`` replaces what ``pattern`` matched; ``where`` is the file:line defining the rule."""

    name: str
    pattern: Pattern  # an Op, or e.g. a Var for a rule tried at every node
    build: Callable[..., Tensor | None]
    where: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.where:
            caller = sys._getframe(2)  # __post_init__ <- __init__ <- the line defining the rule
            object.__setattr__(self, "where", f"{caller.f_code.co_filename}:{caller.f_lineno}")
        # looked up once: a rule tried at every node would otherwise pay for inspect.signature at each
        object.__setattr__(self, "_wants_node", "node" in inspect.signature(self.build).parameters)

    def apply(self, tensor: Tensor) -> Tensor | None:
        """The replacement of ``tensor`` if the pattern matches and the builder accepts, else None."""
        bindings: Bindings = {}
        if not self.pattern.match(tensor, bindings):
            return None
        if self._wants_node:
            bindings["node"] = tensor.node
        return self.build(**bindings)


class RuleTable:
    """A named, ordered collection of rules, indexed by the op at the pattern's root."""

    def __init__(self, name: str, rules: Iterable[Rule]) -> None:
        self.name = name
        self.rules = list(rules)
        self._by_op: dict[OpDef, list[Rule]] = {}
        self._any_op: list[Rule] = []  # rules not rooted at an Op: tried at every node
        for rule in self.rules:
            if isinstance(rule.pattern, Op):
                self._by_op.setdefault(rule.pattern.op, []).append(rule)
            else:
                self._any_op.append(rule)

    def __add__(self, other: RuleTable) -> RuleTable:
        return RuleTable(f"{self.name}+{other.name}", self.rules + other.rules)

    def __iter__(self):
        return iter(self.rules)

    def for_node(self, node: Node) -> list[Rule]:
        specific = self._by_op.get(node.op, [])
        return specific + self._any_op if self._any_op else specific

    def without(self, names: Iterable[str]) -> RuleTable:
        excluded = set(names)
        return RuleTable(self.name, [r for r in self.rules if r.name not in excluded])
