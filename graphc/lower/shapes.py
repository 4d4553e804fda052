"""Run-time shapes: every ``None`` dimension of a graph is a slot of the program's dims argument.

Lowering gives each unknown dimension of each tensor its own slot (``Dim(slot)``; slot 0 is the run count),
so the native code never assumes two unknown sizes are equal. At run time ``ShapeResolver`` computes every
tensor's concrete shape from the feeds' shapes by re-running each op's shape rule (``infer``) on concrete
types — which also rejects feeds whose sizes do not fit together (x fed 5 rows and y 7) before any native
code runs — and fills the slots. The result is cached per signature of feed shapes, so a training loop
pays this once per distinct batch size, and never recompiles.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from graphc.errors import AssumptionError, GraphcError, ShapeError
from graphc.graph.node import Node, Tensor
from graphc.graph.types import TensorType, format_shape
from graphc.lower.ir import Dim, Expr, const
from graphc.ops.sources import PLACEHOLDER


class SymbolicShapes:
    """The int64 shape expression of every tensor of ``nodes``: static sizes as constants, ``None`` sizes as
    slots; ``slots[k]`` = (tensor, axis) measured by slot k (slot 0: the run count)."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes = sorted(nodes, key=lambda n: n.index)  # creation order is topological
        self.slots: list[tuple[Tensor, int] | None] = [None]
        self._shapes: dict[Tensor, tuple[Expr, ...]] = {}
        for node in self.nodes:
            for t in node.outputs:
                self._shapes[t] = tuple(self._dim(t, axis, d) for axis, d in enumerate(t.shape))

    def _dim(self, t: Tensor, axis: int, size: int | None) -> Expr:
        if size is not None:
            return const(size)
        self.slots.append((t, axis))
        return Dim(len(self.slots) - 1)

    def __getitem__(self, t: Tensor) -> tuple[Expr, ...]:
        return self._shapes[t]

    def items(self) -> Iterable[tuple[Tensor, tuple[Expr, ...]]]:
        return self._shapes.items()

    def descriptions(self) -> list[str]:
        """What each slot measures, e.g. ``x.shape[0]``."""
        return ["run count" if s is None else f"{s[0].name}.shape[{s[1]}]" for s in self.slots]


class ShapeResolver:
    """Concrete sizes for one set of feed shapes: ``resolve(feed_shapes)`` -> (the int64 dims argument, every
    tensor's concrete shape). Not cached here: the executable caches what it derives per set of feed shapes."""

    def __init__(self, shapes: SymbolicShapes) -> None:
        # every node that touches an unknown size: its shape rule rejects run-time sizes that do not fit it
        self.nodes = [n for n in shapes.nodes if n.op is PLACEHOLDER
                      or any(None in t.shape for t in (*n.outputs, *n.inputs))]
        self.shapes = shapes

    def resolve(self, feed_shapes: dict[Node, tuple[int, ...]]) -> tuple[np.ndarray, dict[Tensor, tuple]]:
        """(dims with the run count slot 0, each tensor's concrete shape — static ones as declared)."""
        dims = self._resolve(feed_shapes)
        shapes = {t: tuple(int(dims[e.slot]) if isinstance(e, Dim) else int(e.value) for e in shape)
                  for t, shape in self.shapes.items()}
        return dims, shapes

    def _resolve(self, feed_shapes: dict[Node, tuple[int, ...]]) -> np.ndarray:
        known: dict[Tensor, TensorType] = {}
        for node in self.nodes:
            if node.op is PLACEHOLDER:
                known[node.outputs[0]] = TensorType(node.types[0].dtype, tuple(feed_shapes[node]))
                continue
            types = [known.get(t, t.type) for t in node.inputs]
            try:
                inferred = node.op.infer(*types, **node.attrs)
            except GraphcError as error:
                shown = ", ".join(f"{t.name}: {ty.dtype}{format_shape(ty.shape)}" for t, ty in zip(node.inputs, types))
                kind = AssumptionError if isinstance(error, AssumptionError) else ShapeError
                raise kind(f"{node.op.name} '{node.name}' (created at {node.source}) cannot run on the fed sizes "
                           f"({shown}): {error}") from None
            for t, ty in zip(node.outputs, inferred if isinstance(inferred, tuple) else (inferred,)):
                known[t] = ty
        dims = np.zeros(len(self.shapes.slots), dtype=np.int64)
        for slot, measured in enumerate(self.shapes.slots):
            if measured is None:
                continue
            tensor, axis = measured
            size = known[tensor].shape[axis]
            if size is None:
                raise ShapeError(f"internal: the size of {tensor.name}.shape[{axis}] is unknown after shape "
                                 "inference on the fed sizes")
            dims[slot] = size
        return dims
