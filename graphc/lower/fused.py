"""Lowering a fused kernel — elementwise, reduction, or a matmul's epilogue — to one loop nest.

A kernel iterates over ``Kernel.shape`` and reduces ``Kernel.axes`` of it (none for an elementwise kernel).
The lowering loops over the kept axes (the outermost loop parallel: rows are independent); per kept index it
computes, in the order of the kernel's nodes, every *row value* (a node that does not vary along a reduced
axis: a sum, a max, a per-row scale, or, without reduced axes, every node) as a local, and runs each
reduction as an inner loop nest over the reduced axes with an accumulator. Values that vary along the reduced
axes are recomputed inside each inner loop that needs them (an exp of a softmax is computed twice rather than
stored: memory traffic costs more than arithmetic), and the kernel's full-shape outputs are stored by one
last inner loop. Reductions and nn ops (softmax, the cross-entropies, ...) are row algorithms
(graphc/lower/rows.py) written with the same few steps.

Reading a buffer: an operand's placement in the kernel (``Kernel.index_maps``, as the fusion planner set it)
gives its index: an axis of the kernel per dim, nothing for a size-1 dim (stride 0). A dim of unknown size
may turn out to be 1 at run time and broadcast: its stride is then chosen at run time (a loop-invariant
select). Views (expand_dims, squeeze, broadcasts) are placements; a transpose reads with permuted strides
and a reshape by the flat row-major position in its output.
"""

from __future__ import annotations

import functools
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from graphc.errors import CompileError
from graphc.graph.node import Node, Tensor
from graphc.lower import ir
from graphc.lower.context import LowerContext, Operand
from graphc.lower.ir import Declare, Dim, Expr, Index, Load, Local, Stmt, Store
from graphc.lower.shapes import SymbolicShapes
from graphc.ops import broadcast, elementwise, reduce, scalar, shape, state
from graphc.ops.scalar import Call, Const, Input
from graphc.passes.fusion import ROW_LABELS, input_place, role
from graphc.passes.partition import Kernel, Kind

_PASS_THROUGH = {shape.EXPAND_DIMS, shape.SQUEEZE, shape.BROADCAST_TO, broadcast.BROADCAST_LIKE, broadcast.MATCH_SHAPE}
_REORDERS = {shape.TRANSPOSE, shape.RESHAPE, shape.RESHAPE_LIKE}


@dataclass
class Scope:
    """Where values are computed: the index of each kernel axis in scope (kept axes at row level, every axis
    inside an inner loop), the statements emitted there, and the nodes already computed there."""

    index: dict[int, Expr]
    statements: list[Stmt]
    values: ChainMap = field(default_factory=ChainMap)
    full: bool = False

    def inner(self, index: dict[int, Expr]) -> Scope:
        """A scope nested in this one (an inner loop body): it sees this scope's values."""
        return Scope({**self.index, **index}, [], self.values.new_child(), full=True)


FullValue = Callable[[Scope], Expr]


@dataclass(frozen=True)
class RowCache:
    """A buffer a row algorithm may keep full-shape values in, and the offset of a scope's element there."""

    buffer: ir.Buffer
    at: Callable[[Scope], Expr]  # a full-shape value of a row algorithm (softmax): built per inner scope


class FusedLowering:
    """Lowers one elementwise or reduction kernel; ``memory[tensor]`` gives the operands it reads,
    ``outputs[tensor]`` those it writes; ``stored`` nodes are read from memory instead of computed
    (a matmul's product in its epilogue)."""

    def __init__(self, ctx: LowerContext, kernel: Kernel, shapes: SymbolicShapes, memory: Mapping[Tensor, Operand],
                 outputs: Mapping[Tensor, Operand], stored: Mapping[Node, Operand] | None = None,
                 scratch: Callable[[str, tuple[Expr, ...]], ir.Buffer] | None = None) -> None:
        """``scratch(dtype, shape)`` gives a temporary buffer private to the kernel (for accumulators)."""
        self.ctx, self.kernel, self.shapes = ctx, kernel, shapes
        self.scratch = scratch
        self.memory, self.outputs, self.stored = memory, outputs, dict(stored or {})
        self.maps = kernel.index_maps
        self.nodes = [n for n in kernel.nodes if self.maps.get(n) is not None]
        self.inside = set(self.nodes)
        self.rank = len(kernel.shape)
        self.reduced = tuple(kernel.axes)
        self.kept = tuple(a for a in range(self.rank) if a not in self.reduced)
        self.extent = self._extents()
        self.full_values: dict[Node, FullValue] = {}
        # state of one build of the statements (lower() builds them once, or twice: see there)
        self._broadcasts: list[tuple[Expr, Expr]] = []  # (operand size, kernel extent) that may broadcast
        self._plain_strides = False  # the usual-case version: every such size equals the extent
        self._cache_lent = False  # the kernel's full output lent to a row algorithm (row_cache)
        self.row_shared: dict[Tensor, tuple] = {}  # row values several row algorithms share (rows.py)

    # -- the kernel's loops ------------------------------------------------------------------------------
    def _extents(self) -> list[Expr]:
        """The run-time size of each axis of the kernel's iteration space."""
        root = self.kernel.root
        tensor = root.inputs[0] if self.kernel.kind == Kind.REDUCTION else root.outputs[0]
        sizes = self.shapes[tensor]
        if len(sizes) != self.rank:
            raise CompileError(f"internal: kernel k{self.kernel.id} runs over {self.kernel.shape} but its root "
                               f"{root.name} has shape {tensor.shape}")
        return list(sizes)

    def lower(self) -> list[Stmt]:
        """The kernel's statements. When an operand's unknown size might be 1 where the kernel's is larger
        (broadcast at run time), its stride is chosen at run time, which keeps loops from vectorizing; so the
        kernel comes in two versions: one for the usual case, every such size equal to the kernel's, with
        plain strides, and the general one, chosen between by one test before the loops."""
        general = self._body()
        if not self._broadcasts:
            return general
        checks = list(dict.fromkeys(self._broadcasts))
        self._plain_strides = True
        usual = self._body()
        condition = functools.reduce(scalar.logical_and, [scalar.eq(size, extent) for size, extent in checks])
        return [ir.If(condition, tuple(usual), tuple(general))]

    def _body(self) -> list[Stmt]:
        self._cache_lent = False
        if self.scratch is not None and self._columnar():
            return self._column_body()
        return list(ir.loop_nest(self.ctx.names, [self.extent[a] for a in self.kept], self._row_body,
                                 parallel=True))

    # -- reductions along a column: accumulate whole rows at a time ---------------------------------------
    def _columnar(self) -> bool:
        """Whether to reduce column-wise: the innermost axis is kept (so a row loop would read with a stride
        and vectorize badly: a bias gradient sums a [batch, n] value over the batch), every reduction is one
        fold, and nothing the folds read, nor any full-shape output, depends on a reduction of this kernel."""
        if not self.reduced or self.rank - 1 in self.reduced:
            return False
        reductions = [n for n in self.nodes if role(n) == Kind.REDUCTION]
        if not all(fold(n) is not None for n in reductions):
            return False
        full_outputs = [t.node for t in self.outputs if self.is_full(t.node)]
        return not any(self._after_reduction(n) for n in [*full_outputs, *(r.inputs[0].node for r in reductions)])

    def _after_reduction(self, node: Node) -> bool:
        stack, seen = [node], set()
        while stack:
            current = stack.pop()
            if current in seen or current not in self.inside:
                continue
            seen.add(current)
            if role(current) == Kind.REDUCTION:
                return True
            stack += [t.node for t in current.inputs]
        return False

    def _column_body(self) -> list[Stmt]:
        """Accumulators (one scratch row per reduction) set to their initial value, then the reduced axes
        outermost and the kept axes innermost (contiguous, vectorized) folding each element in, then the
        row values and outputs per kept index."""
        kept_extents = [self.extent[a] for a in self.kept]
        reductions = [n for n in self.nodes if role(n) == Kind.REDUCTION]
        accumulators = {r: self.scratch(r.outputs[0].dtype, tuple(kept_extents)) for r in reductions}
        strides = ir.row_major_strides(kept_extents)

        def row_offset(index: dict[int, Expr]) -> Expr:
            return ir.flat_index([index[a] for a in self.kept], strides)

        def initialize(indices: tuple[Index, ...]) -> list[Stmt]:
            at = row_offset(dict(zip(self.kept, indices)))
            return [Store(acc, at, fold(r).initial) for r, acc in accumulators.items()]

        def element(scope: Scope) -> list[Stmt]:
            at = row_offset(scope.index)
            statements = []
            for r, acc in accumulators.items():
                value = scalar.cast(self.operand(r, 0, scope), acc.dtype)
                statements.append(Store(acc, at, fold(r).combine(Load(acc, at), value), reassociate=True))
            for tensor, operand in self.outputs.items():
                if self.is_full(tensor.node):
                    statements.append(self._store(tensor, operand, scope))
            return statements

        def accumulate(outer: tuple[Index, ...]) -> list[Stmt]:
            def inner(indices: tuple[Index, ...]) -> list[Stmt]:
                scope = Scope({}, []).inner({**dict(zip(self.reduced, outer)), **dict(zip(self.kept, indices))})
                statements = element(scope)
                return scope.statements + statements
            return list(ir.loop_nest(self.ctx.names, kept_extents, inner))

        def finish(indices: tuple[Index, ...]) -> list[Stmt]:
            row = Scope(dict(zip(self.kept, indices)), [])
            at = row_offset(row.index)
            for r, acc in accumulators.items():
                row.values[r] = self._bind(fold(r).finish(Load(acc, at), self._count(r.outputs[0].dtype)), row, r)
            for node in self.nodes:
                if node not in row.values and not self.is_full(node):
                    row.values[node] = self._bind(self._compute(node, row), row, node)
            row.statements += [self._store(t, o, row) for t, o in self.outputs.items() if not self.is_full(t.node)]
            return row.statements

        return [*ir.loop_nest(self.ctx.names, kept_extents, initialize, parallel=True),
                *ir.loop_nest(self.ctx.names, [self.extent[a] for a in self.reduced], accumulate),
                *ir.loop_nest(self.ctx.names, kept_extents, finish, parallel=True)]

    def _count(self, dtype: str) -> Expr:
        return scalar.cast(ir.product(self.extent[a] for a in self.reduced), dtype)

    def _row_body(self, indices: tuple[Index, ...]) -> list[Stmt]:
        row = Scope(dict(zip(self.kept, indices)), [])
        self.row_shared = {}
        for node in self.nodes:
            if node in self.stored or self.is_full(node) and role(node) != Kind.REDUCTION:
                continue  # full-shape values are computed inside the inner loops that need them
            if role(node) == Kind.REDUCTION:
                from graphc.lower.rows import row_algorithm

                result = row_algorithm(self, node, row)
                if callable(result):
                    self.full_values[node] = result
                else:
                    row.values[node] = self._bind(result, row, node)
            else:
                row.values[node] = self._bind(self._compute(node, row), row, node)
        full_outputs = []
        for tensor, operand in self.outputs.items():
            if self.is_full(tensor.node):
                full_outputs.append((tensor, operand))
            else:
                row.statements.append(self._store(tensor, operand, row))
        if full_outputs:
            row.statements += self.inner_loops(row, lambda scope: [self._store(t, o, scope) for t, o in full_outputs])
        return row.statements

    def inner_loops(self, row: Scope, body: Callable[[Scope], list[Stmt]]) -> list[Stmt]:
        """Loops over the reduced axes around ``body(scope)`` (nothing to loop over: the body runs once)."""
        def build(indices: tuple[Index, ...]) -> list[Stmt]:
            scope = row.inner(dict(zip(self.reduced, indices)))
            statements = body(scope)
            return scope.statements + statements

        return list(ir.loop_nest(self.ctx.names, [self.extent[a] for a in self.reduced], build))

    def row_cache(self, source: Tensor) -> RowCache | None:
        """The kernel's one full-shape output, lent as scratch for a value of each element of ``source`` (read
        over the whole iteration space) that a row algorithm would otherwise compute twice (softmax's
        exponentials): the last inner loop reads each element back before it stores the output there. Only
        when that output is laid out exactly like the iteration space and of ``source``'s dtype, once a row."""
        full = [(t, o) for t, o in self.outputs.items() if self.is_full(t.node)]
        identity = tuple(range(self.rank))
        if self._cache_lent or len(full) != 1:
            return None
        tensor, operand = full[0]
        if self.maps[tensor.node] != identity or operand.dtype != source.dtype:
            return None
        self._cache_lent = True
        # the output's own strides (its shape's dims), the same expressions its final store uses: equal to the
        # iteration space's at run time, and visibly the same offsets to a backend checking independence
        return RowCache(operand.buffer, lambda scope: operand.offset([scope.index[a] for a in identity]))

    def is_full(self, node: Node) -> bool:
        """Whether ``node`` varies along a reduced axis (so it lives inside the inner loops)."""
        return any(a in self.reduced for a in self.maps[node] if a is not None)

    # -- values --------------------------------------------------------------------------------------------
    def value(self, node: Node, scope: Scope) -> Expr:
        """The value of an in-kernel node at the scope's index."""
        if node in scope.values:
            return scope.values[node]
        if node in self.stored:
            return self._load(self.stored[node], self.maps[node], scope)
        if node in self.full_values:
            result = self.full_values[node](scope)
        elif self.is_full(node) and not scope.full:
            raise CompileError(f"internal: {node.name} varies along reduced axes and is read at row level")
        else:
            result = self._compute(node, scope)
        scope.values[node] = self._bind(result, scope, node)
        return scope.values[node]

    def _bind(self, value: Expr, scope: Scope, node: Node) -> Expr:
        """A local holding ``value`` (so each node is computed once per scope, and expressions stay small)."""
        if isinstance(value, Local | Const | Index | Dim):
            return value
        local = Local(self.ctx.names("v"), value.dtype)
        scope.statements.append(Declare(local, value))
        return local

    def operand(self, node: Node, position: int, scope: Scope) -> Expr:
        """Input ``position`` of ``node`` at the scope's index: computed in the kernel, or loaded."""
        t = node.inputs[position]
        if t.node in self.inside:
            return self.value(t.node, scope)
        fill = fill_value(t)
        if fill is not None:
            return fill
        return self._load(self.memory[t], self.operand_place(node, position), scope)

    def operand_place(self, node: Node, position: int) -> tuple:
        """Where input ``position`` of ``node`` lies in the kernel's iteration space (as the planner placed it)."""
        if role(node) == Kind.REDUCTION:
            return self.kept if node.op in ROW_LABELS and position == 1 else tuple(range(self.rank))
        return input_place(node, position, self.maps[node])

    def _load(self, operand: Operand, place: tuple, scope: Scope) -> Load:
        offset: Expr = ir.const(0)
        for size, stride, axis in zip(operand.shape, operand.strides, place, strict=True):
            if axis is None or ir.static_value(size) == 1:
                continue
            if ir.static_value(size) is None and size != self.extent[axis]:  # may broadcast at run time
                self._broadcasts.append((size, self.extent[axis]))
                if not self._plain_strides:
                    stride = scalar.select(scalar.eq(size, ir.const(1)), ir.const(0), stride)
            offset = ir.add(offset, ir.mul(scope.index[axis], stride))
        return Load(operand.buffer, offset)

    def _store(self, tensor: Tensor, operand: Operand, scope: Scope) -> Store:
        value = self.value(tensor.node, scope)
        offset = ir.flat_index([ir.const(0) if a is None else scope.index[a] for a in self.maps[tensor.node]],
                               operand.strides)
        return Store(operand.buffer, offset, scalar.cast(value, operand.dtype))

    def _compute(self, node: Node, scope: Scope) -> Expr:
        op = node.op
        if op is state.ASSIGN:
            return self.operand(node, 1, scope)
        if op is state.ASSIGN_ADD:
            return scalar.add(self.operand(node, 0, scope), self.operand(node, 1, scope))
        if op in _FILLS:  # its input is read for its shape only
            return Const(_FILLS[op], node.outputs[0].dtype)
        if op in _PASS_THROUGH:
            return self.operand(node, 0, scope)
        if op in _REORDERS:
            return self._reordered(node, scope)
        if op.scalar is None:
            raise CompileError(f"{op.name} node '{node.name}' (created at {node.source}) cannot be lowered in a "
                               f"{self.kernel.kind} kernel")
        args = [self.operand(node, i, scope) for i in range(len(node.inputs))]
        return substitute(op.scalar(*(Input(i, a.dtype) for i, a in enumerate(args)), **node.attrs), args)

    def _reordered(self, node: Node, scope: Scope) -> Expr:
        """A transpose or reshape of a buffer, read at the scope's index."""
        fill = fill_value(node.inputs[0])
        if fill is not None:
            return fill
        source = self.memory[node.inputs[0]]
        here = self.maps[node]
        out_index = [ir.const(0) if a is None else scope.index[a] for a in here]
        if node.op is shape.TRANSPOSE:
            perm = node.attrs["perm"]
            index = [out_index[perm.index(d)] for d in range(len(perm))]
            return source.load(index)
        out_shape = self.shapes[node.outputs[0]]
        return source.load_flat(ir.flat_index(out_index, ir.row_major_strides(out_shape)))


@dataclass(frozen=True)
class Fold:
    """A reduction done as one pass: acc = initial; acc = combine(acc, x) per element; finish(acc, count)."""

    initial: Const
    combine: Callable[[Expr, Expr], Expr]
    finish: Callable[[Expr, Expr], Expr]


def fold(node: Node) -> Fold | None:
    """The one-pass fold of a reduction node (None for the nn row ops, logsumexp, argmax, ...)."""
    dtype = node.outputs[0].dtype
    same = lambda acc, count: acc  # noqa: E731 - a table of small lambdas reads best
    if node.op in (reduce.SUM, broadcast.SUM_TO):
        return Fold(Const(0, dtype), scalar.add, same)
    if node.op is reduce.MEAN:
        return Fold(Const(0, dtype), scalar.add, lambda acc, count: acc / count)
    if node.op is reduce.PROD:
        return Fold(Const(1, dtype), scalar.mul, same)
    if node.op in (reduce.MAX, reduce.MIN):
        highest = node.op is reduce.MIN
        if dtype == "bool":
            return Fold(Const(highest, dtype), scalar.logical_and if highest else scalar.logical_or, same)
        limit = np.inf if dtype.startswith("float") else (np.iinfo(dtype).max if highest else np.iinfo(dtype).min)
        return Fold(Const(limit if highest or not dtype.startswith("float") else -limit, dtype),
                    scalar.minimum if highest else scalar.maximum, same)
    return None


_FILLS = {elementwise.ONES_LIKE: 1, elementwise.ZEROS_LIKE: 0}


def fill_value(t: Tensor) -> Const | None:
    """The one value every element of ``t`` holds when that is known without data (a ones_like or zeros_like,
    through views): fused kernels use the constant instead of reading a buffer of it, so no kernel needs to
    store a gradient's seed of ones (the program builder does not materialize it)."""
    node = t.node
    while node.op in _PASS_THROUGH or node.op in _REORDERS:
        node = node.inputs[0].node
    return Const(_FILLS[node.op], t.dtype) if node.op in _FILLS else None


def substitute(expr: Expr, args: list[Expr]) -> Expr:
    """``expr`` (a scalar-IR expression over ``Input``s) with operand i replaced by ``args[i]``."""
    memo: dict[Expr, Expr] = {}

    def visit(e: Expr) -> Expr:
        if e in memo:
            return memo[e]
        if isinstance(e, Input):
            result = args[e.index]
        elif isinstance(e, Call):
            result = Call(e.primitive, tuple(visit(a) for a in e.args), e.to)
        else:
            result = e
        memo[e] = result
        return result

    return visit(expr)

