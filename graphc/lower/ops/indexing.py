"""Lowerings of the indexing ops (graphc/ops/indexing.py) and of ``eye_like`` (graphc/ops/linalg.py).

``x[key]``, TF's ``slice`` and ``getitem_grad`` read or write x along each axis at ``start + step·i``. A key
entry on an axis of static size was made canonical when the node was built; on an axis known only at run
time it is kept as written (negative, open, out-of-range bounds), so start and length are computed here
as Python's ``slice.indices`` computes them, with int64 ``minimum``/``maximum`` of the run-time size.

``gather`` and ``scatter_add`` take positions from data: each index is checked against the axis's run-time
size before it is used (negative ones count from the end, as numpy's ``take`` and ``add.at``), and an index
out of range stops the run with a message naming the node, since native code must not read or write
outside a buffer. ``one_hot`` needs no check: an index outside [0, depth) just matches no position.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field

from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.context import LowerContext, Operand, lowering
from graphc.lower.ir import FLOORDIV, Declare, Expr, If, Local, Stmt
from graphc.lower.ops.shape import TRUE, differs, fill, guard, where
from graphc.ops import indexing, linalg, scalar


# -- where a key reads -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Read:
    """How one axis of x is read: at ``start + step·i``, ``i`` the index of output axis ``out_axis`` (None:
    at the fixed position ``start``, an int index)."""

    start: Expr
    step: int
    out_axis: int | None


@dataclass
class _Selection:
    """What a key picks from an array of given run-time shape."""

    reads: list[_Read] = field(default_factory=list)  # one per axis of the indexed array
    lengths: dict[int, Expr] = field(default_factory=dict)  # output axis of a slice -> its run-time length
    newaxes: list[int] = field(default_factory=list)  # output axes of size 1 that read no axis
    bad_indices: list[tuple[str, Expr | None]] = field(default_factory=list)  # (message, condition) per int

    def source(self, i: Sequence[Expr]) -> list[Expr]:
        """The multi-index read for output multi-index ``i``."""
        return [r.start if r.out_axis is None else ir.add(r.start, ir.mul(r.step, i[r.out_axis]))
                for r in self.reads]

    def checks(self, ctx: LowerContext) -> list[Stmt]:
        return [s for message, condition in self.bad_indices for s in guard(ctx, [condition], message)]


def _range_text(dim: Expr) -> str:
    n = ir.static_value(dim)
    return f"{-n}..{n - 1}" if n is not None else "-n..n-1 for its run-time size n"


def _index(index: int, dim: Expr) -> tuple[Expr, Expr | None]:
    """An int index resolved against ``dim`` (negative counts from the end), and when it is out of range."""
    n = ir.static_value(dim)
    if n is not None:
        inside = -n <= index < n
        return ir.const(index % n if inside else 0), None if inside else TRUE
    if index >= 0:
        return ir.const(index), scalar.ge(ir.const(index), dim)
    resolved = ir.add(dim, index)
    return resolved, scalar.lt(resolved, ir.const(0))


def _bound(value: int | None, dim: Expr, lowest: Expr, highest: Expr, default: Expr) -> Expr:
    """One bound of a slice as ``slice.indices`` resolves it: from the end if negative, then clamped."""
    if value is None:
        return default
    if value < 0:
        return scalar.maximum(ir.add(dim, value), lowest)
    return scalar.minimum(ir.const(value), highest)


def _slice(start: int | None, stop: int | None, step: int, dim: Expr) -> tuple[Expr, Expr]:
    """The first position and the number of positions of ``start:stop:step`` on an axis of size ``dim``."""
    n = ir.static_value(dim)
    if n is not None:
        positions = range(*builtins.slice(start, stop, step).indices(n))
        return ir.const(positions.start), ir.const(len(positions))
    lowest, highest = (ir.const(0), dim) if step > 0 else (ir.const(-1), ir.sub(dim, 1))
    first = _bound(start, dim, lowest, highest, lowest if step > 0 else highest)
    last = _bound(stop, dim, lowest, highest, highest if step > 0 else lowest)
    span = ir.sub(last, first) if step > 0 else ir.sub(first, last)
    stride = builtins.abs(step)
    return first, ir.integer(FLOORDIV, ir.add(scalar.maximum(span, ir.const(0)), stride - 1), stride)


def _select(node: Node, key: tuple, dims: Sequence[Expr]) -> _Selection:
    """The reads of a normalized key (graphc/ops/indexing.py) on an array of run-time shape ``dims``."""
    selection, axis, out_axis = _Selection(), 0, 0
    for entry in key:
        if entry[0] == "newaxis":
            selection.newaxes.append(out_axis)
            out_axis += 1
            continue
        if entry[0] == "index":
            start, bad = _index(entry[1], dims[axis])
            selection.reads.append(_Read(start, 0, None))
            selection.bad_indices.append((f"{where(node)}: index {entry[1]} is out of range for axis {axis} "
                                          f"(valid: {_range_text(dims[axis])})", bad))
        else:
            start, length = _slice(*entry[1:], dims[axis])
            selection.reads.append(_Read(start, entry[3], out_axis))
            selection.lengths[out_axis] = length
            out_axis += 1
        axis += 1
    return selection


@lowering(indexing.GETITEM)
def _getitem(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (x,), (out,) = inputs, outputs
    selection = _select(node, node.attrs["key"], x.shape)
    lengths = [differs(out.shape[k], length) for k, length in selection.lengths.items()]
    return [*selection.checks(ctx),
            *guard(ctx, lengths, f"{where(node)}: the output's run-time shape is not what the key selects"),
            *ir.loop_nest(ctx.names, out.shape, lambda i: [out.store(i, x.load(selection.source(i)))],
                          parallel=True)]


@lowering(indexing.GETITEM_GRAD)
def _getitem_grad(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """Zeros, then x written where ``like[key]`` reads (basic indexing never selects a position twice)."""
    x, (out,) = inputs[0], outputs
    selection = _select(node, node.attrs["key"], out.shape)
    fits = [differs(x.shape[k], length) for k, length in selection.lengths.items()]
    fits += [differs(x.shape[k], ir.const(1)) for k in selection.newaxes]
    return [*selection.checks(ctx),
            *guard(ctx, fits, f"{where(node)}: x's run-time shape is not the shape of like[key]"),
            *fill(ctx, out, scalar.constant(0, out.dtype)),
            *ir.loop_nest(ctx.names, x.shape, lambda i: [out.store(selection.source(i), x.load(i))], parallel=True)]


@lowering(indexing.SLICE)
def _tf_slice(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """Unlike a Python slice nothing is clamped: running past the end of an axis is an error."""
    (x,), (out,) = inputs, outputs
    selection, past_end = _Selection(), []
    for axis, (dim, begin, size) in enumerate(zip(x.shape, node.attrs["begin"], node.attrs["size"])):
        end = begin if size == -1 else begin + size
        n = ir.static_value(dim)
        past_end.append(scalar.gt(ir.const(end), dim) if n is None else TRUE if end > n else None)
        selection.reads.append(_Read(ir.const(begin), 1, axis))
        selection.lengths[axis] = ir.sub(dim, begin) if size == -1 else ir.const(size)
    lengths = [differs(out.shape[k], length) for k, length in selection.lengths.items()]
    return [*guard(ctx, past_end, f"{where(node)}: begin {node.attrs['begin']} size {node.attrs['size']} runs "
                                  "past the end of the input's run-time shape"),
            *guard(ctx, lengths, f"{where(node)}: the output's run-time shape is not the slice's size"),
            *ir.loop_nest(ctx.names, out.shape, lambda i: [out.store(i, x.load(selection.source(i)))],
                          parallel=True)]


# -- indices from data: gather, scatter_add, one_hot --------------------------------------------------------
def _position(ctx: LowerContext, node: Node, indices: Operand, at: Sequence[Expr], dim: Expr, axis: int,
              what: str) -> tuple[Local, list[Stmt]]:
    """Index ``indices[at]`` checked against an axis of size ``dim`` and made non-negative: a local holding
    it and the statements that compute it (a failure when it is outside -dim..dim-1). Indices an earlier
    kernel checked against the same size (an embedding's gather, then its gradient's scatter-add of the same
    tokens) are not checked again: that kernel finished, and passed, before this one runs; a variable's
    indices are always checked (an update between the kernels could change them)."""
    raw, resolved = Local(ctx.names("j"), ir.INDEX), Local(ctx.names("j"), ir.INDEX)
    outside = scalar.logical_or(scalar.lt(raw, ir.sub(0, dim)), scalar.ge(raw, dim))
    message = f"{where(node)}: an index is out of range for axis {axis} of {what} (valid: {_range_text(dim)})"
    key = (indices.buffer, dim)
    check = [] if key in ctx.checked else [If(outside, (ctx.fail(message),))]
    if indices.buffer.role != "variable":
        ctx.newly_checked.add(key)
    return resolved, [Declare(raw, scalar.cast(indices.load(at), ir.INDEX)), *check,
                      Declare(resolved, scalar.select(scalar.lt(raw, ir.const(0)), ir.add(raw, dim), raw))]


@lowering(indexing.GATHER)
def _gather(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """Each index is loaded and checked once, then its slice of params is copied (numpy's ``take``: no index
    is checked when the axes before ``axis`` are empty)."""
    (params, indices), (out,), axis = inputs, outputs, node.attrs["axis"]
    outer, inner = [*params.shape[:axis], *indices.shape], params.shape[axis + 1:]

    def body(i: tuple[Expr, ...]) -> list[Stmt]:
        j, statements = _position(ctx, node, indices, i[axis:], params.shape[axis], axis, "params")
        copy = ir.loop_nest(ctx.names, inner,
                            lambda k: [out.store([*i, *k], params.load([*i[:axis], j, *k]))])
        return [*statements, *copy]

    return [*guard(ctx, [differs(a, b) for a, b in zip(out.shape, [*outer, *inner], strict=True)],
                   f"{where(node)}: the output's run-time shape is not params' with indices' shape at axis {axis}"),
            *ir.loop_nest(ctx.names, outer, body, parallel=True)]


@lowering(indexing.SCATTER_ADD)
def _scatter_add(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """Zeros, then each slice of updates added at its index, serially: repeated indices add up."""
    (updates, indices, _), (out,), axis = inputs, outputs, node.attrs["axis"]
    outer, inner = [*out.shape[:axis], *indices.shape], out.shape[axis + 1:]

    def body(i: tuple[Expr, ...]) -> list[Stmt]:
        j, statements = _position(ctx, node, indices, i[axis:], out.shape[axis], axis, "like")

        def add(k: tuple[Expr, ...]) -> list[Stmt]:
            at = [*i[:axis], j, *k]
            return [out.store(at, scalar.add(out.load(at), updates.load([*i, *k])))]

        return [*statements, *ir.loop_nest(ctx.names, inner, add)]

    return [*guard(ctx, [differs(a, b) for a, b in zip(updates.shape, [*outer, *inner], strict=True)],
                   f"{where(node)}: updates' run-time shape is not like's with indices' shape at axis {axis}"),
            *fill(ctx, out, scalar.constant(0, out.dtype)),
            *ir.loop_nest(ctx.names, outer, body)]


@lowering(indexing.ONE_HOT)
def _one_hot(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (indices,), (out,) = inputs, outputs
    on, off = (scalar.constant(node.attrs[name], out.dtype) for name in ("on_value", "off_value"))

    def row(i: tuple[Expr, ...]) -> list[Stmt]:
        hot = Local(ctx.names("j"), ir.INDEX)
        cells = ir.loop_nest(ctx.names, out.shape[-1:],
                             lambda k: [out.store([*i, k[0]], scalar.select(scalar.eq(hot, k[0]), on, off))])
        return [Declare(hot, scalar.cast(indices.load(i), ir.INDEX)), *cells]

    expected = [*indices.shape, ir.const(node.attrs["depth"])]
    return [*guard(ctx, [differs(a, b) for a, b in zip(out.shape, expected, strict=True)],
                   f"{where(node)}: the output's run-time shape is not indices' shape plus the depth"),
            *ir.loop_nest(ctx.names, indices.shape, row, parallel=True)]


@lowering(linalg.EYE_LIKE)
def _eye_like(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """Ones where the two indices are equal; x is not read (its size along axis is the output's)."""
    (out,) = outputs
    return list(ir.loop_nest(ctx.names, out.shape,
                             lambda i: [out.store(i, scalar.cast(scalar.eq(i[0], i[1]), out.dtype))], parallel=True))
