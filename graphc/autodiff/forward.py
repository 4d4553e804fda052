"""Forward mode: ``gc.jvp`` adds the nodes of the directional derivative J·t, walking the graph forwards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphc.autodiff.paths import between, derivative_scope, differentiating
from graphc.autodiff.reverse import _as_list, _check_float, _check_graph, as_ys
from graphc.errors import DTypeError, GradientError, ShapeError
from graphc.graph.dtypes import FLOATS
from graphc.graph.node import Node, Tensor
from graphc.graph.types import format_shape
from graphc.ops.convert import as_tensor
from graphc.ops.elementwise import zeros_like


def jvp(ys: Tensor | Sequence[Tensor], xs: Tensor | Sequence[Tensor], tangents: Any) -> list[Tensor]:
    """The tangents of ``ys`` when each x in ``xs`` moves along its tangent (same shape as x).

    ``tangents`` are tensors or array-likes, one per x. A y that does not depend on any x gets zeros.
    """
    ys, xs = as_ys(ys), _as_list(xs, "xs")
    given = list(tangents) if isinstance(tangents, (list, tuple)) else [tangents]
    if len(given) != len(xs):
        raise GradientError(f"jvp got {len(given)} tangents for {len(xs)} xs")
    _check_graph(ys + xs)
    _check_float(xs, "differentiate with respect to")
    with derivative_scope("jvp", ys[0].node):
        known = {(x.node, x.index): _tangent(x, t) for x, t in zip(xs, given)}
        sources = {x.node for x in xs}
        for node in between(xs, ys):
            if node not in sources:
                _push_forward(node, known)
        return [known[(y.node, y.index)] if (y.node, y.index) in known else zeros_like(y) for y in ys]


def _tangent(x: Tensor, value: Any) -> Tensor:
    tangent = as_tensor(value, x.dtype, x.graph) if not isinstance(value, Tensor) else value
    expected = f"the tangent of '{x.name}' must be {x.dtype}{format_shape(x.shape)}, got {tangent.type}"
    if tangent.dtype != x.dtype:
        raise DTypeError(f"{expected}: cast it")
    if len(tangent.shape) != len(x.shape) or any(
            a is not None and b is not None and a != b for a, b in zip(tangent.shape, x.shape)):
        raise ShapeError(expected)
    return tangent


def _push_forward(node: Node, known: dict[tuple[Node, int], Tensor]) -> None:
    inputs = tuple(known.get((t.node, t.index)) if t.dtype in FLOATS else None for t in node.inputs)
    if all(t is None for t in inputs) or not any(t.dtype in FLOATS for t in node.types):
        return
    if node.op.jvp is None:
        raise GradientError(f"{node.op.name} has no forward-mode derivative: {node.describe()} lies on the path "
                            "of a requested jvp")
    with differentiating(node, "jvp"):
        result = node.op.jvp(node, inputs)
    outputs = result if isinstance(result, tuple) else (result,)
    for index, tangent in enumerate(outputs):
        if tangent is not None and node.types[index].dtype in FLOATS:
            known[(node, index)] = tangent
