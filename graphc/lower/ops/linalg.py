"""Lowerings of einsum and tensordot as one generic loop nest: a contraction written with labels.

Both ops are a sum of products: every dim of every operand carries a label, the output's labels are looped
over (the outermost loop parallel: each iteration writes its own element), and the other labels are summed
by an inner loop nest into an accumulator. A label repeated within an operand reads its diagonal (the same
loop index for both dims: ``'ii->'`` is a trace); einsum's '...' dims get one label per broadcast dim,
right-aligned, and an operand dim of size 1 there is read at index 0 (a stride-0 broadcast).

This is the fallback every such node can take; the matmul lowering turns the common products into GEMMs.
Sizes that shape inference could not tie together statically (run-time dims) are checked once before the
loops, so a mismatched feed fails with a message instead of reading outside an operand.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.context import LowerContext, Operand, lowering
from graphc.lower.ir import Assign, Declare, Expr, If, Local, Stmt
from graphc.ops import linalg, scalar
from graphc.ops.linalg import ELLIPSIS, parse_einsum

Label = Hashable


def contraction(ctx: LowerContext, node: Node, what: str, terms: Sequence[tuple[Label, ...]],
                output: tuple[Label, ...], inputs: list[Operand], out: Operand,
                broadcast: frozenset[Label] = frozenset()) -> list[Stmt]:
    """out[output labels] = Σ over the other labels of Π_k inputs[k][terms[k]].

    ``terms[k]`` labels each dim of ``inputs[k]``; ``broadcast`` labels (all in ``output``) may have size 1 in
    an operand. ``what`` names the op in failure messages (with the node's name and the user's line).
    """
    extents: dict[Label, tuple[Expr, str]] = {label: (size, f"the output's axis {axis}")
                                              for axis, (label, size) in enumerate(zip(output, out.shape))}
    for k, (term, x) in enumerate(zip(terms, inputs)):
        for axis, (label, size) in enumerate(zip(term, x.shape)):
            extents.setdefault(label, (size, f"operand {k}'s axis {axis}"))
    summed = [label for label in extents if label not in output]
    checks = [check for k, (term, x) in enumerate(zip(terms, inputs))
              for axis, label in enumerate(term)
              for check in _size_check(ctx, node, what, k, axis, x.shape[axis], extents[label], label in broadcast)]

    def product(index: dict[Label, Expr]) -> Expr:
        loads = [x.load([_broadcast_index(index[label], size) if label in broadcast else index[label]
                         for label, size in zip(term, x.shape)]) for term, x in zip(terms, inputs)]
        value = loads[0]
        for load in loads[1:]:
            value = scalar.mul(value, load)
        return value

    def element(out_indices: tuple[ir.Index, ...]) -> list[Stmt]:
        at = dict(zip(output, out_indices))
        if not summed:
            return [out.store(out_indices, product(at))]
        total = Local(ctx.names("acc"), out.dtype)

        def accumulate(sum_indices: tuple[ir.Index, ...]) -> list[Stmt]:
            value = product({**at, **dict(zip(summed, sum_indices))})
            return [Assign(total, scalar.add(total, value), reassociate=True)]

        sums = ir.loop_nest(ctx.names, [extents[label][0] for label in summed], accumulate)
        return [Declare(total, scalar.constant(0, out.dtype)), *sums, out.store(out_indices, total)]

    return checks + list(ir.loop_nest(ctx.names, out.shape, element, parallel=True))


def _size_check(ctx: LowerContext, node: Node, what: str, k: int, axis: int, size: Expr,
                extent: tuple[Expr, str], stretches: bool) -> list[Stmt]:
    """A failure unless operand ``k``'s ``axis`` has the label's size (or 1 where it ``stretches``); nothing
    when that is known statically."""
    expected, source = extent
    known, wanted = ir.static_value(size), ir.static_value(expected)
    if size == expected or (known is not None and (known == wanted or (stretches and known == 1))):
        return []
    mismatch = scalar.ne(size, expected)
    if stretches:
        mismatch = scalar.logical_and(mismatch, scalar.ne(size, ir.const(1)))
    allowed = f"size 1 or the size of {source}" if stretches else f"the size of {source}"
    message = (f"{what} node '{node.name}' (created at {node.source}): operand {k}'s axis {axis} must have "
               f"{allowed}")
    return [If(mismatch, (ctx.fail(message),))]


def _broadcast_index(index: Expr, size: Expr) -> Expr:
    """The index into a '...' dim of an operand, which is 1 (read at 0) or the loop's full extent."""
    known = ir.static_value(size)
    if known is not None:
        return ir.const(0) if known == 1 else index
    return scalar.select(scalar.eq(size, ir.const(1)), ir.const(0), index)


def einsum_labels(spec: str, ranks: Sequence[int], out_rank: int) -> tuple[list[tuple], tuple, frozenset]:
    """The per-dim labels of an einsum's operands and output: letters, and ``('...', j)`` for the j-th
    broadcast dim (operands' '...' dims right-aligned with the output's), plus the set of the latter."""
    terms, output = parse_einsum(spec, len(ranks))
    dots = out_rank - (len(output) - 1 if ELLIPSIS in output else len(output))

    def expand(term: tuple[str, ...], rank: int) -> tuple:
        if ELLIPSIS not in term:
            return term
        covered = rank - (len(term) - 1)
        start = term.index(ELLIPSIS)
        labels = tuple((ELLIPSIS, dots - covered + j) for j in range(covered))
        return term[:start] + labels + term[start + 1:]

    broadcast = frozenset((ELLIPSIS, j) for j in range(dots))
    return [expand(t, r) for t, r in zip(terms, ranks)], expand(output, out_rank), broadcast


@lowering(linalg.EINSUM)
def _einsum(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (out,), spec = outputs, node.attrs["spec"]
    terms, output, broadcast = einsum_labels(spec, [len(x.shape) for x in inputs], len(out.shape))
    return contraction(ctx, node, f"einsum '{spec}'", terms, output, inputs, out, broadcast)


@lowering(linalg.TENSORDOT)
def _tensordot(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (a, b), (out,) = inputs, outputs
    a_axes, b_axes = node.attrs["axes"]
    # a's axes are labelled 0..rank-1; b's paired axes take their partner's label, its free axes new ones
    a_term = tuple(range(len(a.shape)))
    b_term = tuple(a_axes[b_axes.index(j)] if j in b_axes else len(a.shape) + j for j in range(len(b.shape)))
    output = tuple(i for i in a_term if i not in a_axes) + tuple(label for label in b_term if label not in a_axes)
    what = f"tensordot over axes {a_axes} of a and {b_axes} of b"
    return contraction(ctx, node, what, [a_term, b_term], output, inputs, out)
