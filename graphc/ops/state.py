"""State: variables, the update ops that change them, and ``group`` to run several ops together.

Update semantics (as Theano's ``updates``): every read of a variable within one ``Session.run`` sees the
value it had when the run started; the updates of a run are computed first and committed together at
its end, in place. So ``run([loss, train])`` returns the loss before the step, whatever the order of the
fetches, and a failing run changes no variable. Two updates of one variable in the same run are an error.

Derivatives: a variable has no inputs (its initial value is an attribute, evaluated once), so a gradient
stops there, as at a placeholder. ``assign``, ``assign_add`` and ``group`` have no derivative, on purpose:
as in TF1, gradients do not flow through assignments (an update is a side effect committed at the end of a
run, not a function of the loss). A gradient or jvp whose path goes through one is a GradientError naming
the update node and the line that built it; differentiate the value instead (``gc.gradients(f(x), x)``, not
``gc.gradients(assign(v, f(x)), x)``) or read the variable itself.
"""

from __future__ import annotations

from typing import Any

from graphc.errors import DTypeError, GraphError, ShapeError
from graphc.graph.graph import Graph, get_default_graph
from graphc.graph.node import Node, Tensor
from graphc.graph.types import TensorType, format_shape
from graphc.ops.convert import as_tensor
from graphc.ops.registry import OpDef, apply, register
from graphc.ops.sources import constant


class Variable(Tensor):
    """A tensor whose value persists across runs of a Session and is changed by update ops.

    ``gc.Variable(np.zeros(10, np.float32), name="b")`` builds one in the default graph (see ``variable``).
    """

    __slots__ = ()

    def __new__(cls, initial_value: Any, name: str | None = None, trainable: bool = True,
                dtype: Any = None) -> Variable:
        return variable(initial_value, name, trainable, dtype)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Construction happens in ``__new__``; nothing is left to do here."""

    @property
    def trainable(self) -> bool:
        return self.node.attrs["trainable"]

    @property
    def initial_value(self) -> Tensor:
        """The tensor evaluated to initialize the variable on first use."""
        return self.graph.initializers[self.node]

    def assign(self, value: Any, name: str | None = None) -> Tensor:
        return assign(self, value, name)

    def assign_add(self, value: Any, name: str | None = None) -> Tensor:
        return assign_add(self, value, name)

    def __repr__(self) -> str:
        return f"<Variable {self.name!r} {self.type}>"


def _variable_infer(*, dtype: str, shape: tuple, trainable: bool) -> TensorType:
    return TensorType(dtype, shape)


def _update_infer(variable: TensorType, value: TensorType) -> TensorType:
    if value.dtype != variable.dtype:
        raise DTypeError(f"cannot update a {variable.dtype} variable with a {value.dtype} value; cast it")
    if len(value.shape) != len(variable.shape) or any(
            v is not None and v != w for v, w in zip(value.shape, variable.shape)):
        raise ShapeError(f"the value's shape {format_shape(value.shape)} is not the variable's "
                         f"{format_shape(variable.shape)}")
    return variable


VARIABLE = register(OpDef("variable", "state", _variable_infer, reference=None,
                          doc="A value held by the Session across runs."))
ASSIGN = register(OpDef("assign", "state", _update_infer, lambda variable, value: value,
                        updates_variable=True, doc="Set a variable; the result is the new value."))
ASSIGN_ADD = register(OpDef("assign_add", "state", _update_infer, lambda variable, value: variable + value,
                            updates_variable=True, doc="Add to a variable; the result is the new value."))
GROUP = register(OpDef("group", "state", lambda: (), lambda: (),
                       doc="Runs its control inputs; has no value."))


def variable(initial_value: Any, name: str | None = None, trainable: bool = True,
             dtype: Any = None) -> Variable:
    """``gc.Variable(np.zeros(10, np.float32), name="b")``: a variable initialized on first use.

    ``initial_value`` is an array-like (stored as a constant ``<name>/initial_value``) or a tensor with a
    fully known shape (evaluated when the variable is first used, e.g. a random draw).
    """
    graph = initial_value.graph if isinstance(initial_value, Tensor) else get_default_graph()
    base = graph.unique_name(name or "Variable").rsplit("/", 1)[-1]
    with graph.as_default():
        if isinstance(initial_value, Tensor):
            initial = as_tensor(initial_value, dtype)
        else:
            with graph.name_scope(base):
                initial = constant(initial_value, dtype, name="initial_value")
        if any(d is None for d in initial.shape):
            raise ShapeError(f"a variable needs a fully known shape; its initial value '{initial.name}' (created "
                             f"at {initial.node.source}) has shape {format_shape(initial.shape)}")
        result = apply(VARIABLE, [], base, output_class=Variable, dtype=initial.dtype, shape=initial.shape,
                       trainable=bool(trainable))
        graph.initializers[result.node] = initial
        return result


def _check_variable(target: Any, op_name: str) -> Variable:
    if not isinstance(target, Variable):
        raise GraphError(f"{op_name}: the target must be a gc.Variable, got {target!r}")
    return target


def _update(op: OpDef, target: Any, value: Any, name: str | None) -> Tensor:
    target = _check_variable(target, op.name)
    if not isinstance(value, Tensor):
        value = as_tensor(value, target.dtype, target.graph)
    return apply(op, [target, value], name)


def assign(variable: Variable, value: Any, name: str | None = None) -> Tensor:
    """An op that sets ``variable`` to ``value`` when run; its result is the new value."""
    return _update(ASSIGN, variable, value, name)


def assign_add(variable: Variable, value: Any, name: str | None = None) -> Tensor:
    """An op that adds ``value`` to ``variable`` when run; its result is the new value."""
    return _update(ASSIGN_ADD, variable, value, name)


def group(*ops: Tensor | Node, name: str | None = None) -> Node:
    """One op that runs all of ``ops`` (tensors or nodes); fetching it returns None."""
    nodes = []
    for op in ops:
        if isinstance(op, (list, tuple)):
            nodes.extend(o.node if isinstance(o, Tensor) else o for o in op)
        else:
            nodes.append(op.node if isinstance(op, Tensor) else op)
    for node in nodes:
        if not isinstance(node, Node):
            raise GraphError(f"group: expected tensors or ops, got {node!r}")
    return apply(GROUP, [], name, control_inputs=tuple(nodes))


def global_variables(graph: Graph | None = None) -> list[Variable]:
    """Every variable of ``graph`` (default: the default graph), in creation order."""
    graph = graph or get_default_graph()
    return [node.outputs[0] for node in graph.nodes if node.op is VARIABLE]


def trainable_variables(graph: Graph | None = None) -> list[Variable]:
    """The variables created with ``trainable=True`` (what optimizers update by default)."""
    return [v for v in global_variables(graph) if v.trainable]


def global_variables_initializer(graph: Graph | None = None) -> Node:
    """An op that (re)initializes every variable of the graph from its initial value."""
    graph = graph or get_default_graph()
    with graph.as_default():
        return group(*(assign(v, v.initial_value) for v in global_variables(graph)), name="init")
