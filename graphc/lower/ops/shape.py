"""Lowerings of the shape ops (graphc/ops/shape.py) and of ``sum_to``/``broadcast_like`` (graphc/ops/broadcast.py).

These ops move elements without computing on them, so each lowering is a loop nest of loads and stores with
index arithmetic; only ``sum_to`` adds. The fused-kernel lowering usually turns reshape, transpose and the
broadcasts into views of their consumer; these lowerings serve the op when it runs as a kernel of its own.

Every operand's run-time shape arrives as its own expression (a ``Dim`` per unknown size), so a lowering that
reads one operand at positions derived from another's shape first checks that the shapes agree (``guard``):
native code then never reads or writes outside a buffer, whatever sizes are fed. With static shapes the checks
fold away and no statement is emitted. The helpers here are shared with graphc/lower/ops/indexing.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.context import LowerContext, Operand, lowering
from graphc.lower.ir import Assign, Declare, Expr, If, Local, Stmt
from graphc.ops import broadcast, scalar
from graphc.ops import shape as shape_ops

TRUE = scalar.constant(True, "bool")


# -- helpers shared with the indexing lowerings ------------------------------------------------------------
def where(node: Node) -> str:
    """The start of a failure message: the op, the node's name and the user's line."""
    return f"{node.op.name} node '{node.name}' (created at {node.source})"


def differs(a: Expr, b: Expr) -> Expr | None:
    """A bool expression true when sizes ``a`` and ``b`` differ at run time; None when both are static and
    equal (nothing to check)."""
    va, vb = ir.static_value(a), ir.static_value(b)
    if va is not None and vb is not None:
        return None if va == vb else TRUE
    return scalar.ne(a, b)


def stretch_mismatch(size: Expr, target: Expr) -> Expr | None:
    """True when ``size`` is neither 1 nor ``target`` (so it cannot broadcast to it); None when it cannot be."""
    if ir.static_value(size) == 1:
        return None
    mismatch = differs(size, target)
    if mismatch is None or ir.static_value(size) is not None:
        return mismatch
    return scalar.logical_and(scalar.ne(size, ir.const(1)), mismatch)


def guard(ctx: LowerContext, conditions: Iterable[Expr | None], message: str) -> list[Stmt]:
    """A statement that fails with ``message`` when any condition holds (none when every condition is None)."""
    live = [c for c in conditions if c is not None]
    if not live:
        return []
    return [If(functools.reduce(scalar.logical_or, live), (ctx.fail(message),))]


def select_size(condition_size: Expr, when_one: Expr, otherwise: Expr) -> Expr:
    """``when_one`` if ``condition_size`` is 1 at run time, else ``otherwise``: folded when it is static."""
    value = ir.static_value(condition_size)
    if value is not None:
        return when_one if value == 1 else otherwise
    return scalar.select(scalar.eq(condition_size, ir.const(1)), when_one, otherwise)


def fill(ctx: LowerContext, out: Operand, value: Expr) -> tuple[Stmt, ...]:
    """Every element of ``out`` set to ``value`` (one flat parallel loop)."""
    return ir.loop_nest(ctx.names, [out.size], lambda i: [out.store_flat(i[0], value)], parallel=True)


def flat_copy(ctx: LowerContext, x: Operand, out: Operand) -> tuple[Stmt, ...]:
    """``out`` = ``x`` element for element in row-major order (equal sizes checked by the caller)."""
    return ir.loop_nest(ctx.names, [out.size], lambda i: [out.store_flat(i[0], x.load_flat(i[0]))], parallel=True)


def _shape_mismatches(shape: Sequence[Expr], expected: Sequence[Expr]) -> list[Expr | None]:
    return [differs(a, b) for a, b in zip(shape, expected, strict=True)]


# -- flat copies: reshape, reshape_like, expand_dims, squeeze -----------------------------------------------
@lowering(shape_ops.RESHAPE, shape_ops.RESHAPE_LIKE, shape_ops.EXPAND_DIMS, broadcast.MATCH_SHAPE)
def _reshape(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """The same elements in the same row-major order: a flat copy (reshape_like's ``like`` is not read)."""
    x, (out,) = inputs[0], outputs
    return [*guard(ctx, [differs(x.size, out.size)], f"{where(node)}: the input's number of elements differs "
                                                      "from the output's at run time"),
            *flat_copy(ctx, x, out)]


@lowering(shape_ops.SQUEEZE)
def _squeeze(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (x,), (out,) = inputs, outputs
    axes = node.attrs["axis"]
    kept = [d for a, d in enumerate(x.shape) if a not in axes]
    return [*guard(ctx, [differs(x.shape[a], ir.const(1)) for a in axes],
                   f"{where(node)}: cannot squeeze axes {axes}: their run-time sizes must be 1"),
            *guard(ctx, _shape_mismatches(out.shape, kept), f"{where(node)}: the output's run-time shape is not "
                                                             "the input's without the squeezed axes"),
            *flat_copy(ctx, x, out)]


# -- transpose and broadcasts ------------------------------------------------------------------------------
@lowering(shape_ops.TRANSPOSE)
def _transpose(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (x,), (out,) = inputs, outputs
    perm = node.attrs["perm"]

    def body(i: tuple[Expr, ...]) -> list[Stmt]:
        source: list[Expr] = [ir.const(0)] * len(perm)
        for k, axis in enumerate(perm):
            source[axis] = i[k]
        return [out.store(i, x.load(source))]

    return [*guard(ctx, _shape_mismatches(out.shape, [x.shape[a] for a in perm]),
                   f"{where(node)}: the output's run-time shape is not the input's permuted by {perm}"),
            *ir.loop_nest(ctx.names, out.shape, body, parallel=True)]


@lowering(shape_ops.BROADCAST_TO, broadcast.BROADCAST_LIKE)
def _broadcast(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """A stride-0 read along every axis where x has size 1 (known at run time or not)."""
    x, (out,) = inputs[0], outputs
    lead = len(out.shape) - len(x.shape)

    def body(i: tuple[Expr, ...]) -> list[Stmt]:
        return [out.store(i, x.load([select_size(d, ir.const(0), i[lead + a]) for a, d in enumerate(x.shape)]))]

    checks = [stretch_mismatch(d, out.shape[lead + a]) for a, d in enumerate(x.shape)]
    return [*guard(ctx, checks, f"{where(node)}: the input's run-time shape does not broadcast to the output's "
                                "(each size must be 1 or the output's)"),
            *ir.loop_nest(ctx.names, out.shape, body, parallel=True)]


@lowering(broadcast.SUM_TO)
def _sum_to(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """Each output element sums its own block of x: on an aligned axis where the output's run-time size is 1
    the block spans x's whole axis, elsewhere one position; x's extra leading axes are summed whole. So the
    output loop is parallel and no element is read-modified-written, for every combination of sizes."""
    x, (out,) = inputs[0], outputs
    lead = len(x.shape) - len(out.shape)
    extents = [*x.shape[:lead], *(select_size(o, x.shape[lead + a], ir.const(1)) for a, o in enumerate(out.shape))]
    summed = [a for a, e in enumerate(extents) if ir.static_value(e) != 1]  # the others run once: position 0
    combine = scalar.logical_or if out.dtype == "bool" else scalar.add

    def element(o: tuple[Expr, ...]) -> list[Stmt]:
        total = Local(ctx.names("acc"), out.dtype)

        def accumulate(j: tuple[Expr, ...]) -> list[Stmt]:
            at = dict(zip(summed, j))
            source = [at.get(a, ir.const(0)) for a in range(lead)]
            source += [ir.add(o[a], at.get(lead + a, ir.const(0))) for a in range(len(out.shape))]
            return [Assign(total, combine(total, x.load(source)), reassociate=out.dtype != "bool")]

        loops = ir.loop_nest(ctx.names, [extents[a] for a in summed], accumulate)
        return [Declare(total, scalar.constant(0, out.dtype)), *loops, out.store(o, total)]

    checks = [stretch_mismatch(o, x.shape[lead + a]) for a, o in enumerate(out.shape)]
    return [*guard(ctx, checks, f"{where(node)}: x's run-time shape is not a broadcast of like's (each of like's "
                                "sizes must be 1 or x's)"),
            *ir.loop_nest(ctx.names, out.shape, element, parallel=True)]


# -- concat, stack, split, split_like ----------------------------------------------------------------------
def _along(i: Sequence[Expr], axis: int, offset: Expr) -> list[Expr]:
    """Multi-index ``i`` moved by ``offset`` along ``axis``."""
    return [ir.add(e, offset) if a == axis else e for a, e in enumerate(i)]


def _pieces(ctx: LowerContext, node: Node, whole: Operand, pieces: Sequence[Operand], axis: int,
            into_whole: bool) -> list[Stmt]:
    """Copy each piece into (``into_whole``) or out of ``whole``, the pieces laid end to end along ``axis``."""
    statements: list[Stmt] = []
    checks: list[Expr | None] = []
    offset: Expr = ir.const(0)
    for piece in pieces:
        checks += [differs(p, w) for a, (p, w) in enumerate(zip(piece.shape, whole.shape)) if a != axis]

        def body(i: tuple[Expr, ...], piece: Operand = piece, offset: Expr = offset) -> list[Stmt]:
            at = _along(i, axis, offset)
            return [whole.store(at, piece.load(i))] if into_whole else [piece.store(i, whole.load(at))]

        statements += ir.loop_nest(ctx.names, piece.shape, body, parallel=True)
        offset = ir.add(offset, piece.shape[axis])
    checks.append(differs(offset, whole.shape[axis]))
    message = f"{where(node)}: the pieces' run-time shapes do not tile the whole along axis {axis}"
    return [*guard(ctx, checks, message), *statements]


@lowering(shape_ops.CONCAT)
def _concat(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    return _pieces(ctx, node, outputs[0], inputs, node.attrs["axis"], into_whole=True)


@lowering(shape_ops.SPLIT)
def _split(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """The pieces' sizes are the outputs' run-time sizes (the attribute may say "equal" or hold a -1)."""
    return _pieces(ctx, node, inputs[0], outputs, node.attrs["axis"], into_whole=False)


@lowering(shape_ops.SPLIT_LIKE)
def _split_like(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    axis = node.attrs["axis"]
    lengths = guard(ctx, [differs(out.shape[axis], like.shape[axis]) for out, like in zip(outputs, inputs[1:])],
                    f"{where(node)}: a piece's run-time size on axis {axis} differs from its like's")
    return [*lengths, *_pieces(ctx, node, inputs[0], outputs, axis, into_whole=False)]


@lowering(shape_ops.STACK)
def _stack(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (out,), axis = outputs, node.attrs["axis"]
    each = [*out.shape[:axis], *out.shape[axis + 1:]]
    checks = [differs(out.shape[axis], ir.const(len(inputs)))]
    statements: list[Stmt] = []
    for position, x in enumerate(inputs):
        checks += _shape_mismatches(x.shape, each)

        def body(i: tuple[Expr, ...], x: Operand = x, position: int = position) -> list[Stmt]:
            return [out.store([*i[:axis], ir.const(position), *i[axis:]], x.load(i))]

        statements += ir.loop_nest(ctx.names, x.shape, body, parallel=True)
    return [*guard(ctx, checks, f"{where(node)}: the inputs' run-time shapes differ from the output's without "
                                f"axis {axis}"),
            *statements]


# -- pad ---------------------------------------------------------------------------------------------------
@lowering(shape_ops.PAD)
def _pad(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """The constant everywhere, then x over the interior: two passes, so no element of x is loaded at a
    position outside it (a select would evaluate the load on the border too)."""
    (x,), (out,) = inputs, outputs
    paddings = node.attrs["paddings"]
    padded = [ir.add(d, before + after) for d, (before, after) in zip(x.shape, paddings)]

    def interior(i: tuple[Expr, ...]) -> list[Stmt]:
        return [out.store([ir.add(e, before) for e, (before, _) in zip(i, paddings)], x.load(i))]

    return [*guard(ctx, _shape_mismatches(out.shape, padded),
                   f"{where(node)}: the output's run-time shape is not the input's plus the paddings {paddings}"),
            *fill(ctx, out, scalar.constant(node.attrs["constant_values"], out.dtype)),
            *ir.loop_nest(ctx.names, x.shape, interior, parallel=True)]
