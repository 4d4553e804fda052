"""Node (one application of an op) and Tensor (one output of a node).

Nodes are immutable once built: a graph only ever grows, and passes build new nodes instead of editing
old ones. Tensors compare by identity, so they can be keys of a ``feed_dict``; elementwise equality is
``gc.equal``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from graphc.graph.source import SourceLine
from graphc.graph.types import TensorType

if TYPE_CHECKING:
    from graphc.graph.graph import Graph
    from graphc.ops.registry import OpDef


class Node:
    """One application of an op: its inputs, attributes, output types, name and the user's source line."""

    __slots__ = ("op", "inputs", "attrs", "name", "source", "graph", "types", "outputs",
                 "control_inputs", "index")

    def __init__(self, op: OpDef, inputs: tuple[Tensor, ...], attrs: Mapping[str, Any],
                 types: tuple[TensorType, ...], name: str, source: SourceLine, graph: Graph,
                 index: int, control_inputs: tuple[Node, ...] = (),
                 output_class: type[Tensor] | None = None) -> None:
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "attrs", MappingProxyType(dict(attrs)))
        object.__setattr__(self, "types", tuple(types))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "graph", graph)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "control_inputs", tuple(control_inputs))
        cls = output_class or Tensor
        object.__setattr__(self, "outputs", tuple(cls._make(self, i) for i in range(len(types))))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("graph nodes are immutable; build a new node instead")

    def __repr__(self) -> str:
        return f"<Node {self.name!r} op={self.op.name} at {self.source}>"

    def describe(self) -> str:
        """One line for error messages: op, name, input types and the user's line."""
        inputs = ", ".join(f"{t.name}: {t.type}" for t in self.inputs)
        return f"{self.op.name} node '{self.name}' ({inputs}) created at {self.source}"


class Tensor:
    """One output of a node: what users pass to ops, fetch and feed."""

    __slots__ = ("node", "index")
    __array_ufunc__ = None  # make `numpy_array + tensor` call Tensor.__radd__ instead of numpy's loop

    @classmethod
    def _make(cls, node: Node, index: int) -> Tensor:
        """Tensors are made by their node only (users get them from ops)."""
        tensor = object.__new__(cls)
        tensor.node = node
        tensor.index = index
        return tensor

    # -- identity and type ------------------------------------------------------------------------
    @property
    def type(self) -> TensorType:
        return self.node.types[self.index]

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def ndim(self) -> int:
        return len(self.type.shape)

    @property
    def op(self) -> Node:
        """The node that produces this tensor (TF1's ``tensor.op``)."""
        return self.node

    @property
    def graph(self) -> Graph:
        return self.node.graph

    @property
    def name(self) -> str:
        return self.node.name if len(self.node.outputs) == 1 else f"{self.node.name}:{self.index}"

    def __repr__(self) -> str:
        return f"<Tensor {self.name!r} {self.type} op={self.node.op.name}>"

    def __bool__(self) -> bool:
        raise TypeError(f"the truth value of symbolic tensor {self.name!r} is unknown until the graph runs; "
                        "use gc.where / gc.logical_and instead of `if`, `and`, `or`")

    def __iter__(self):
        raise TypeError(f"symbolic tensor {self.name!r} is not iterable; use gc.split or indexing")

    def __array__(self, *args, **kwargs):
        raise TypeError(f"symbolic tensor {self.name!r} has no value until a Session runs it")

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError(f"len() of scalar tensor {self.name!r}")
        if self.shape[0] is None:
            raise TypeError(f"len() of tensor {self.name!r}: its first dimension is known only at run time")
        return self.shape[0]

    # -- operators (the functions live in graphc.ops; imported late to keep graph/ free of ops/) ----------
    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().sub(self, other)
    def __rsub__(self, other): return _ops().sub(other, self)
    def __mul__(self, other): return _ops().mul(self, other)
    def __rmul__(self, other): return _ops().mul(other, self)
    def __truediv__(self, other): return _ops().div(self, other)
    def __rtruediv__(self, other): return _ops().div(other, self)
    def __pow__(self, other): return _ops().pow(self, other)
    def __rpow__(self, other): return _ops().pow(other, self)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __neg__(self): return _ops().neg(self)
    def __pos__(self): return self
    def __abs__(self): return _ops().abs(self)
    def __lt__(self, other): return _ops().less(self, other)
    def __le__(self, other): return _ops().less_equal(self, other)
    def __gt__(self, other): return _ops().greater(self, other)
    def __ge__(self, other): return _ops().greater_equal(self, other)
    def __and__(self, other): return _ops().logical_and(self, other)
    def __rand__(self, other): return _ops().logical_and(other, self)
    def __or__(self, other): return _ops().logical_or(self, other)
    def __ror__(self, other): return _ops().logical_or(other, self)
    def __invert__(self): return _ops().logical_not(self)
    def __getitem__(self, key): return _ops().getitem(self, key)
    __hash__ = object.__hash__

    # -- methods where natural ------------------------------------------------------------------------
    def reshape(self, *shape):
        return _ops().reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    def transpose(self, perm=None): return _ops().transpose(self, perm)

    @property
    def T(self): return _ops().transpose(self)

    def astype(self, dtype): return _ops().cast(self, dtype)
    def sum(self, axis=None, keepdims=False): return _ops().reduce_sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops().reduce_mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops().reduce_max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _ops().reduce_min(self, axis, keepdims)
    def argmax(self, axis=None): return _ops().argmax(self, axis)
    def argmin(self, axis=None): return _ops().argmin(self, axis)


def _ops():
    import graphc.ops as ops

    return ops
