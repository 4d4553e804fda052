"""Derivative rules of elementwise ops from their partial derivatives (the chain rule, once).

An elementwise op lists one *partial* per input: ``1`` or ``-1`` (the input passes through, maybe
negated), ``None`` (no derivative: the input is an index, a condition, or the op is flat), or a function
``(*inputs, output, **attrs) -> Tensor`` building the local derivative ∂out/∂input with graph ops. From that list
this module builds both the vjp (each cotangent times its partial, summed back to the input's shape) and
the jvp (the sum of each tangent times its partial).

**The safety rule.** Local derivatives are applied with ``mul_no_nan(partial, cotangent)``, which is 0
wherever the cotangent (or tangent) is 0, even when the partial is inf or NaN there. So a branch that
``where`` did not take contributes exactly 0: ``where(x > 0, sqrt(x), 0)`` at x = −1 and
``where(x > 0, log(x), 0)`` at x = 0 have gradient 0, not NaN. The rule is linear-algebra-correct (a zero
cotangent times any finite partial is zero) and only differs from plain multiplication where the plain
product would be NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from graphc.graph.dtypes import FLOATS
from graphc.graph.node import Node, Tensor
from graphc.ops.broadcast import expand_to, unbroadcast

Partial = int | None | Callable[..., Tensor]


def add_all(terms: Sequence[Tensor | None]) -> Tensor | None:
    """The sum of the terms that are not None (None when all are)."""
    from graphc.ops.elementwise import add

    present = [t for t in terms if t is not None]
    if not present:
        return None
    total = present[0]
    for term in present[1:]:
        total = add(total, term)
    return total


def apply_partial(partial: Partial, node: Node, value: Tensor) -> Tensor:
    """``value`` (a cotangent or tangent) times the partial derivative, zero wherever ``value`` is zero."""
    from graphc.ops.elementwise import mul_no_nan, neg

    if partial == 1:
        return value
    if partial == -1:
        return neg(value)
    return mul_no_nan(partial(*node.inputs, node.outputs[0], **node.attrs), value)


def partials_rules(partials: Sequence[Partial]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(vjp, jvp) of an elementwise op with the given partial derivatives, one per input."""

    def vjp(node: Node, cotangent: Tensor) -> tuple[Tensor | None, ...]:
        return tuple(
            None if partial is None or x.dtype not in FLOATS
            else unbroadcast(apply_partial(partial, node, cotangent), x, node.inputs)
            for x, partial in zip(node.inputs, partials, strict=True))

    def jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
        out = node.outputs[0]
        return add_all([
            expand_to(apply_partial(partial, node, tangent), out, node.inputs, x)
            for x, partial, tangent in zip(node.inputs, partials, tangents, strict=True)
            if partial is not None and tangent is not None])

    return vjp, jvp
