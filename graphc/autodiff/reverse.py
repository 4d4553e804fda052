"""Reverse mode: ``gc.gradients`` adds the nodes of ∂ys/∂xs to the graph, walking it backwards once.

Cotangents flow only through float tensors: an integer or bool value (argmax, a comparison, a cast to int)
carries no derivative, as in TF and JAX, and a gradient that can only arrive through one is reported as
unconnected, with the op that blocked it. An op on a float path without a ``vjp`` is a GradientError.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from graphc.autodiff.paths import between, derivative_scope, differentiating
from graphc.autodiff.unconnected import Blocked, explain_unconnected
from graphc.errors import ArgumentError, GradientError, GraphError, ShapeError
from graphc.graph.dtypes import FLOATS
from graphc.graph.node import Node, Tensor
from graphc.graph.types import format_shape
from graphc.ops.chain import add_all
from graphc.ops.convert import as_tensor
from graphc.ops.elementwise import ones_like, zeros_like

UNCONNECTED = ("zero", "none", "raise")


class UnconnectedGradientWarning(UserWarning):
    """A requested gradient does not depend on the input; it is returned as zeros."""


def gradients(ys: Tensor | Sequence[Tensor], xs: Tensor | Sequence[Tensor],
              grad_ys: Any = None, unconnected: str = "zero") -> list[Tensor | None]:
    """∂(sum of ys weighted by grad_ys)/∂x for each x in ``xs``, as new nodes of the same graph.

    ``grad_ys`` (default: ones) are the cotangents of ``ys``. Contributions over all paths are summed and
    broadcasting is undone, so each gradient has its x's shape. A gradient that does not depend on x is
    zeros with a warning saying why (``unconnected="zero"``), None (``"none"``), or a GradientError
    (``"raise"``).
    """
    ys, xs = as_ys(ys), _as_list(xs, "xs")
    if unconnected not in UNCONNECTED:
        raise ArgumentError(f"unconnected must be one of {UNCONNECTED}, got {unconnected!r}")
    _check_graph(ys + xs)
    _check_float(xs, "differentiate with respect to")
    _check_float(ys, "differentiate")
    with derivative_scope("gradients", ys[0].node):
        seeds = _seed_cotangents(ys, grad_ys)
        totals, blocked = _backpropagate(seeds, xs)
        return [_finish(totals.get((x.node, x.index)), x, ys, blocked, unconnected) for x in xs]


def _as_list(value: Any, what: str) -> list[Tensor]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, Tensor):
            raise GradientError(f"{what} must be tensors, got {item!r}")
    return items


def as_ys(value: Any) -> list[Tensor]:
    """The ``ys`` of a derivative as a non-empty list of tensors."""
    ys = _as_list(value, "ys")
    if not ys:
        raise GradientError("ys is empty: give at least one tensor to differentiate")
    return ys


def _check_like(value: Tensor, like: Tensor, what: str) -> None:
    """Raise ShapeError unless ``value`` has ``like``'s shape (a None dim on either side matches any size)."""
    if len(value.shape) != len(like.shape) or any(
            a is not None and b is not None and a != b for a, b in zip(value.shape, like.shape)):
        raise ShapeError(f"{what} of '{like.name}' (created at {like.node.source}) must have its shape "
                         f"{format_shape(like.shape)}, got {value.type}")


def _check_graph(tensors: list[Tensor]):
    graphs = {id(t.graph): t.graph for t in tensors}
    if len(graphs) > 1:
        raise GraphError("gc.gradients: ys and xs come from different graphs")
    return tensors[0].graph


def _check_float(tensors: list[Tensor], verb: str) -> None:
    for t in tensors:
        if t.dtype not in FLOATS:
            raise GradientError(f"cannot {verb} '{t.name}' ({t.type}, created at {t.node.source}): derivatives "
                                "are defined for float tensors only")


def _seed_cotangents(ys: list[Tensor], grad_ys: Any) -> dict[tuple[Node, int], list[Tensor]]:
    given = grad_ys if isinstance(grad_ys, (list, tuple)) else [grad_ys] * len(ys) if grad_ys is None else [grad_ys]
    if len(given) != len(ys):
        raise GradientError(f"grad_ys has {len(given)} entries for {len(ys)} ys")
    seeds: dict[tuple[Node, int], list[Tensor]] = {}
    for y, g in zip(ys, given):
        cotangent = ones_like(y) if g is None else as_tensor(g, y.dtype, y.graph)
        _check_like(cotangent, y, "grad_ys")
        seeds.setdefault((y.node, y.index), []).append(cotangent)
    return seeds


def _backpropagate(seeds: dict, xs: list[Tensor]) -> tuple[dict[tuple[Node, int], Tensor], list[Blocked]]:
    """Walk the nodes between xs and ys backwards, calling each vjp once; return each tensor's total."""
    ys = [node.outputs[index] for node, index in seeds]
    pending: dict[tuple[Node, int], list[Tensor]] = {key: list(v) for key, v in seeds.items()}
    totals: dict[tuple[Node, int], Tensor] = {}
    blocked: list[Blocked] = []
    for node in reversed(between(xs, ys)):
        cotangents = [add_all(pending.pop((node, i), [])) for i in range(len(node.outputs))]
        for i, total in enumerate(cotangents):
            if total is not None:
                totals[(node, i)] = total
        if all(c is None for c in cotangents) or not node.inputs:
            continue
        for position, contribution in enumerate(_call_vjp(node, cotangents)):
            source = node.inputs[position]
            if contribution is not None and source.dtype in FLOATS:
                pending.setdefault((source.node, source.index), []).append(contribution)
            else:
                blocked.append(Blocked(node, position))
    return totals, blocked


def _call_vjp(node: Node, cotangents: list[Tensor | None]) -> tuple[Tensor | None, ...]:
    if node.op.vjp is None:
        raise GradientError(f"{node.op.name} has no gradient: {node.describe()} lies on the path of a "
                            "requested gradient; wrap its input in gc.stop_gradient if that is intended")
    with differentiating(node, "grad"):
        if len(node.outputs) == 1:
            return node.op.vjp(node, cotangents[0])
        return node.op.vjp(node, tuple(cotangents))


def _finish(total: Tensor | None, x: Tensor, ys: list[Tensor], blocked: list[Blocked],
            unconnected: str) -> Tensor | None:
    if total is not None:
        return total
    if unconnected == "none":
        return None
    reason = explain_unconnected(x, ys, blocked)
    if unconnected == "raise":
        raise GradientError(reason)
    warnings.warn(f"{reason}; its gradient is zeros", UnconnectedGradientWarning, stacklevel=3)
    return zeros_like(x)
