"""Row algorithms: every op that reduces (reductions, sum_to, argmax, and the nn ops that reduce one axis)
written as a few accumulations over a row of its kernel.

``row_algorithm(lowering, node, row)`` emits, into the row scope, the inner loops that a node needs and
returns its value: an expression for a row value (a sum, a loss per example), or a function that builds the
full-shape value inside an inner loop (softmax: ``exp(x − max) / sum``, using the row's locals). Reductions
accumulate serially per row; float sums are marked reassociable, so a backend may keep several partial sums
(vector lanes), which is both faster and more accurate than one running sum.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graphc.errors import CompileError
from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.fused import FullValue, FusedLowering, Scope, fold
from graphc.lower.ir import Assign, Declare, Expr, If, Local
from graphc.ops import broadcast, nn, reduce, scalar
from graphc.ops.scalar import Const


class Row:
    """The steps a row algorithm is written with, for one node at one row."""

    def __init__(self, lowering: FusedLowering, node: Node, row: Scope) -> None:
        self.lowering, self.node, self.row = lowering, node, row
        self.dtype = node.outputs[0].dtype

    def input(self, position: int = 0) -> FullValue:
        """Input ``position`` as a full-shape value (computed or loaded inside an inner loop)."""
        return lambda scope: self.lowering.operand(self.node, position, scope)

    def local(self, value: Expr, prefix: str = "r") -> Local:
        local = Local(self.lowering.ctx.names(prefix), value.dtype)
        self.row.statements.append(Declare(local, value))
        return local

    def accumulate(self, initial: Expr, update: Callable[[Local, Scope], list[ir.Stmt]]) -> Local:
        """A local starting at ``initial``, updated once per element of the row by ``update(acc, scope)``."""
        acc = self.local(initial, "acc")
        self.row.statements += self.lowering.inner_loops(self.row, lambda scope: update(acc, scope))
        return acc

    def fold(self, combine: Callable[[Expr, Expr], Expr], initial: Expr, value: FullValue) -> Local:
        """combine(...combine(initial, v0)..., vn) over the row, reassociable (sums, maxima, products)."""
        return self.accumulate(initial, lambda acc, scope: [
            Assign(acc, combine(acc, scalar.cast(value(scope), acc.dtype)), reassociate=True)])

    def sum(self, value: FullValue, dtype: str) -> Local:
        return self.fold(scalar.add, Const(0, dtype), value)

    def max(self, value: FullValue, dtype: str) -> Local:
        """The row's maximum of a float value (NaN if any element is NaN)."""
        return self.fold(scalar.maximum, Const(-np.inf, dtype), value)

    def count(self, dtype: str) -> Expr:
        """The number of elements in a row, as ``dtype``."""
        return scalar.cast(ir.product(self.lowering.extent[a] for a in self.lowering.reduced), dtype)

    def position(self, scope: Scope) -> Expr:
        """The row-major position of the scope's element within its row (over the reduced axes)."""
        extents = [self.lowering.extent[a] for a in self.lowering.reduced]
        return ir.flat_index([scope.index[a] for a in self.lowering.reduced], ir.row_major_strides(extents))

    def at(self, position: int, index: Expr) -> Expr:
        """Input ``position`` at element ``index`` of the row (one reduced axis): computed at that point."""
        (axis,) = self.lowering.reduced
        point = self.row.inner({axis: index})
        value = self.lowering.operand(self.node, position, point)
        self.row.statements += point.statements
        return value

    def label(self) -> Local:
        """The row's class label (input 1), checked to lie in [0, classes): else the run fails, naming the node."""
        label = self.local(scalar.cast(self.lowering.operand(self.node, 1, self.row), ir.INDEX), "label")
        (axis,) = self.lowering.reduced
        classes = self.lowering.extent[axis]
        node = self.node
        fail = self.lowering.ctx.fail(f"{node.op.name} '{node.name}' (created at {node.source}): a label is outside "
                                      f"the class range [0, number of classes)")
        self.row.statements.append(If(scalar.logical_or(label < 0, scalar.ge(label, classes)), (fail,)))
        return label


def _lowest(dtype: str) -> float | int:
    return -np.inf if dtype.startswith("float") else int(np.iinfo(dtype).min)


def _highest(dtype: str) -> float | int:
    return np.inf if dtype.startswith("float") else int(np.iinfo(dtype).max)


def _is_nan(x: Expr) -> Expr:
    return scalar.ne(x, x)


# -- the algorithms -------------------------------------------------------------------------------------
def _folded(r: Row) -> Expr:
    """A one-pass reduction (sum, mean, prod, max, min, sum_to): its fold over the row."""
    steps = fold(r.node)
    return steps.finish(r.fold(steps.combine, steps.initial, r.input()), r.count(r.dtype))


def _logsumexp(r: Row) -> Expr:
    x = r.input()
    peak = r.max(x, r.dtype)
    shift = r.local(scalar.select(scalar.abs(peak) < np.inf, peak, 0))  # inf or NaN peaks: no shift
    total = r.sum(lambda scope: scalar.exp(x(scope) - shift), r.dtype)
    return scalar.log(total) + shift


def _arg(better: Callable[[Expr, Expr], Expr], start: Callable[[str], float | int]) -> Callable[[Row], Expr]:
    """argmax/argmin: the first position of the best value; a NaN beats every number (numpy's rule)."""
    def algorithm(r: Row) -> Expr:
        x = r.input()
        dtype = r.node.inputs[0].dtype
        dtype = "int32" if dtype == "bool" else dtype
        best = r.local(Const(start(dtype), dtype), "best")
        where = r.local(ir.const(0), "where")

        def update(scope: Scope) -> list[ir.Stmt]:
            value = scalar.cast(x(scope), dtype)
            wins = better(value, best)
            if dtype.startswith("float"):
                wins = scalar.logical_or(wins, scalar.logical_and(_is_nan(value), scalar.logical_not(_is_nan(best))))
            taken = Local(r.lowering.ctx.names("wins"), "bool")
            return [Declare(taken, wins), Assign(where, scalar.select(taken, r.position(scope), where)),
                    Assign(best, scalar.select(taken, value, best))]

        r.row.statements += r.lowering.inner_loops(r.row, update)
        return where

    return algorithm


def _exponentials(r: Row) -> tuple[FullValue, Local, FullValue, Local]:
    """(x, max x, e, Σe) of the row, with e = exp(x − max x), computed once per row for every row algorithm of
    the kernel that reads the same x (a cross-entropy's loss and gradient). The summing loop stores e into the
    kernel's output when the kernel lends it (``row_cache``), and e is read back later instead of recomputed."""
    x_tensor = r.node.inputs[0]
    shared = r.lowering.row_shared.get(x_tensor)
    if shared is not None:
        return shared
    x = r.input()
    peak = r.max(x, r.dtype)
    cache = r.lowering.row_cache(x_tensor)
    if cache is None:
        total = r.sum(lambda scope: scalar.exp(x(scope) - peak), r.dtype)
        result = (x, peak, lambda scope: scalar.exp(x(scope) - peak), total)
    else:
        def add_and_keep(acc: Local, scope: Scope) -> list[ir.Stmt]:
            e = Local(r.lowering.ctx.names("e"), r.dtype)
            return [Declare(e, scalar.exp(x(scope) - peak)), ir.Store(cache.buffer, cache.at(scope), e),
                    Assign(acc, acc + e, reassociate=True)]

        total = r.accumulate(Const(0, r.dtype), add_and_keep)
        result = (x, peak, lambda scope: ir.Load(cache.buffer, cache.at(scope)), total)
    r.lowering.row_shared[x_tensor] = result
    return result


def _softmax(r: Row) -> FullValue:
    _, _, e, total = _exponentials(r)
    return lambda scope: e(scope) / total


def _log_softmax(r: Row) -> FullValue:
    x, peak, _, total = _exponentials(r)
    log_total = r.local(scalar.log(total))
    return lambda scope: (x(scope) - peak) - log_total


def _softmax_cross_entropy(r: Row) -> Expr:
    x, peak, _, total = _exponentials(r)
    log_total = r.local(scalar.log(total))
    labels = r.input(1)
    return -r.sum(lambda scope: labels(scope) * ((x(scope) - peak) - log_total), r.dtype)


def _sparse_softmax_cross_entropy(r: Row) -> Expr:
    label = r.label()
    _, peak, _, total = _exponentials(r)
    return scalar.log(total) - (r.at(0, label) - peak)


def _sparse_softmax_cross_entropy_grad(r: Row) -> FullValue:
    label = r.label()
    _, _, e, total = _exponentials(r)
    (axis,) = r.lowering.reduced
    return lambda scope: scalar.select(scalar.eq(scope.index[axis], label), e(scope) / total - 1, e(scope) / total)


def _mse(r: Row) -> Expr:
    p, t = r.input(0), r.input(1)

    def squared_error(scope: Scope) -> Expr:
        difference = p(scope) - t(scope)
        return difference * difference

    return r.sum(squared_error, r.dtype) / r.count(r.dtype)


def _hinge(r: Row) -> Expr:
    y, x = r.input(0), r.input(1)
    return r.sum(lambda scope: scalar.maximum(1 - y(scope) * x(scope), 0), r.dtype) / r.count(r.dtype)


ALGORITHMS: dict = {
    **dict.fromkeys((reduce.SUM, reduce.MEAN, reduce.PROD, reduce.MAX, reduce.MIN, broadcast.SUM_TO), _folded),
    reduce.LOGSUMEXP: _logsumexp, reduce.ARGMAX: _arg(scalar.gt, _lowest), reduce.ARGMIN: _arg(scalar.lt, _highest),
    nn.SOFTMAX: _softmax, nn.LOG_SOFTMAX: _log_softmax, nn.SOFTMAX_CROSS_ENTROPY: _softmax_cross_entropy,
    nn.SPARSE_SOFTMAX_CROSS_ENTROPY: _sparse_softmax_cross_entropy,
    nn.SPARSE_SOFTMAX_CROSS_ENTROPY_GRAD: _sparse_softmax_cross_entropy_grad, nn.MSE: _mse, nn.HINGE: _hinge,
}


def row_algorithm(lowering: FusedLowering, node: Node, row: Scope) -> Expr | FullValue:
    """Emit ``node``'s accumulations into ``row``; its row value, or a builder of its full-shape value."""
    algorithm = ALGORITHMS.get(node.op)
    if algorithm is None:
        raise CompileError(f"{node.op.name} node '{node.name}' (created at {node.source}) has no row algorithm")
    return algorithm(Row(lowering, node, row))
