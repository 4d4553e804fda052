"""Why a requested gradient is unconnected — the question TF1 and Theano users ask most.

Either x is not an ancestor of y at all, or every path from x to y is cut: by a value with no derivative
(an int or bool output such as argmax or a comparison), by ``stop_gradient``, or by an op whose derivative
with respect to that input is zero by definition (``zeros_like``, ``sign``, a random draw's shape input).
"""

from __future__ import annotations

from dataclasses import dataclass

from graphc.autodiff.paths import ancestors, between
from graphc.graph.dtypes import FLOATS
from graphc.graph.node import Node, Tensor


@dataclass(frozen=True)
class Blocked:
    """A cotangent reached ``node`` but none was passed to its input at ``position``."""

    node: Node
    position: int

    def describe(self) -> str:
        source = self.node.inputs[self.position]
        if source.dtype not in FLOATS:
            producer = source.node
            return (f"{producer.op.name} '{producer.name}' (created at {producer.source}), whose {source.dtype} "
                    "output carries no derivative")
        return f"{self.node.op.name} '{self.node.name}' (created at {self.node.source}), which passes no gradient"


def explain_unconnected(x: Tensor, ys: list[Tensor], blocked: list[Blocked]) -> str:
    names = ", ".join(f"'{y.name}'" for y in ys)
    if x.node not in ancestors(ys):
        return f"'{x.name}' (created at {x.node.source}) is not an input of {names}: no path leads from it to them"
    on_paths = set(between([x], ys))
    cuts = [b for b in blocked if b.node in on_paths and b.node.inputs[b.position].node in on_paths]
    shown = "; ".join(dict.fromkeys(b.describe() for b in cuts)) or "ops without a float path"
    return f"every path from '{x.name}' to {names} passes through {shown}"
