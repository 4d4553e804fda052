"""The op registry: one ``OpDef`` record per op, and ``apply`` which turns an op application into a node.

An ``OpDef`` holds everything a stage needs to know about an op. The shape/dtype rule (``infer``) runs when
a node is built, so a mistake is reported at the user's line; the numpy ``reference`` is the oracle every
backend and pass is tested against. Tests iterate ``REGISTRY`` so a new op is picked up automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graphc.errors import GraphcError, GraphError
from graphc.graph.graph import get_default_graph
from graphc.graph.node import Node, Tensor
from graphc.graph.source import user_source_line
from graphc.graph.types import TensorType


@dataclass(frozen=True, eq=False)
class OpDef:
    """Everything about one op.

    infer(*input_types, **attrs) -> TensorType, or a tuple of them for several outputs (``()`` for none).
    reference(*arrays, **attrs) -> array (or tuple); None for ops whose value comes from outside the graph
    (placeholders are fed, variables are held by the Session).
    Flags: ``elementwise`` (output element i depends on input elements i only, after broadcasting),
    ``random`` (reference also takes ``run_count``, the Session's count of runs), ``updates_variable``
    (input 0 is a variable that receives the result when the run commits).

    Differentiation (graph ops in, graph ops out, so gradients can be differentiated again):
    vjp(node, cotangent) -> one cotangent (Tensor or None for "no contribution") per input; ``cotangent``
    is a Tensor, or for a multi-output node a tuple with None for outputs that received none.
    jvp(node, tangents) -> the output's tangent (a tuple for several outputs; None for zero), given one
    tangent per input with None for zero.
    An op with ``vjp``/``jvp`` None has no derivative: reaching it with a float cotangent (tangent) is a
    GradientError. Rules may return cotangents for non-float inputs; they are dropped.

    scalar(*operands, **attrs) -> the expression of one output element in the scalar IR
    (``graphc.ops.scalar``), given one typed ``Input`` expression per operand (its dtype is the node's
    input dtype): what the LLVM and CUDA renderers and the sympy bridge translate. Elementwise ops have
    one; None for every other op.
    """

    name: str
    family: str
    infer: Callable[..., TensorType | tuple[TensorType, ...]]
    reference: Callable[..., Any] | None
    elementwise: bool = False
    random: bool = False
    updates_variable: bool = False
    vjp: Callable[..., tuple[Any, ...]] | None = None
    jvp: Callable[..., Any] | None = None
    scalar: Callable[..., Any] | None = None
    doc: str = ""

    def __repr__(self) -> str:
        return f"<OpDef {self.name}>"


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add an op to the registry; names are unique."""
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} registered twice")
    REGISTRY[op.name] = op
    return op


def apply(op: OpDef, inputs: Sequence[Tensor], name: str | None = None, *,
          control_inputs: Sequence[Node] = (), output_class: type[Tensor] | None = None,
          **attrs: Any) -> Any:
    """Build a node applying ``op``; return its tensor (one output), tuple of tensors, or the node (none).

    The shape/dtype rule runs here; its error is re-raised with the node's name, input types and the
    user's source line.
    """
    graph = _common_graph(inputs, control_inputs)
    node_name = graph.unique_name(name or op.name)
    source = user_source_line()
    try:
        inferred = op.infer(*(t.type for t in inputs), **attrs)
    except GraphcError as error:
        shown = ", ".join(f"{t.name}: {t.type}" for t in inputs) or "no inputs"
        message = f"{op.name} '{node_name}' created at {source} ({shown}): {error}"
        raise type(error)(message) from None
    types = inferred if isinstance(inferred, tuple) else (inferred,)
    node = graph.add_node(op, tuple(inputs), attrs, types, node_name, source, tuple(control_inputs),
                          output_class)
    if len(node.outputs) == 1 and not isinstance(inferred, tuple):
        return node.outputs[0]
    return node.outputs if node.outputs else node


def _common_graph(inputs: Sequence[Tensor], control_inputs: Sequence[Node]):
    graphs = {id(t.graph): t.graph for t in inputs} | {id(n.graph): n.graph for n in control_inputs}
    if len(graphs) > 1:
        names = ", ".join(f"'{t.name}'" for t in inputs)
        raise GraphError(f"inputs {names} come from different graphs (at {user_source_line()}); "
                         "build an op from tensors of one graph")
    return next(iter(graphs.values())) if graphs else get_default_graph()
