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
from dataclasses import dataclass

from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.context import LowerContext, Operand, lowering
from graphc.lower.ir import Assign, Declare, Expr, Gemm, If, Local, Stmt
from graphc.lower.matmul import BLAS_DTYPES, _at_least_one
from graphc.ops import linalg, scalar
from graphc.ops.linalg import ELLIPSIS, parse_einsum

Label = Hashable


def contraction(ctx: LowerContext, node: Node, what: str, terms: Sequence[tuple[Label, ...]],
                output: tuple[Label, ...], inputs: list[Operand], out: Operand,
                broadcast: frozenset[Label] = frozenset()) -> list[Stmt]:
    """out[output labels] = Σ over the other labels of Π_k inputs[k][terms[k]].

    ``terms[k]`` labels each dim of ``inputs[k]``; ``broadcast`` labels (all in ``output``) may have size 1 in
    an operand. ``what`` names the op in failure messages (with the node's name and the user's line). A
    product of two operands runs as BLAS GEMMs when it is one (see ``gemm_contraction``).
    """
    extents, checks = _label_extents(ctx, node, what, terms, output, inputs, out, broadcast)
    if not broadcast:
        gemms = gemm_contraction(ctx, terms, output, inputs, out, extents)
        if gemms is not None:
            return checks + gemms
    summed = [label for label in extents if label not in output]

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


def _label_extents(ctx: LowerContext, node: Node, what: str, terms: Sequence[tuple[Label, ...]],
                   output: tuple[Label, ...], inputs: list[Operand], out: Operand,
                   broadcast: frozenset[Label]) -> tuple[dict[Label, tuple[Expr, str]], list[Stmt]]:
    """Each label's size (with where it was read, for messages), and the run-time checks that every operand
    agrees with it."""
    extents: dict[Label, tuple[Expr, str]] = {label: (size, f"the output's axis {axis}")
                                              for axis, (label, size) in enumerate(zip(output, out.shape))}
    for k, (term, x) in enumerate(zip(terms, inputs)):
        for axis, (label, size) in enumerate(zip(term, x.shape)):
            extents.setdefault(label, (size, f"operand {k}'s axis {axis}"))
    checks = [check for k, (term, x) in enumerate(zip(terms, inputs))
              for axis, label in enumerate(term)
              for check in _size_check(ctx, node, what, k, axis, x.shape[axis], extents[label], label in broadcast)]
    return extents, checks


# -- two operands as GEMMs -----------------------------------------------------------------------------------
UNKNOWN_SIZE_GUESS = 64  # how large a run-time size is assumed when choosing the GEMM's dims
MIN_GEMM_WORK = 256  # m·n·k below this (all sizes static): the loop nest beats a BLAS call's overhead


@dataclass(frozen=True)
class _Side:
    """One GEMM operand: its labels, buffer, and which label is its row / column dim (None: size 1)."""

    term: tuple[Label, ...]
    x: Operand

    def stride(self, label: Label | None) -> Expr | None:
        return None if label is None else self.x.strides[self.term.index(label)]

    def is_inner(self, label: Label | None) -> bool:
        """Whether ``label`` is the operand's last axis (stride 1 in a dense row-major buffer)."""
        return label is not None and self.term[-1] == label


def gemm_contraction(ctx: LowerContext, terms: Sequence[tuple[Label, ...]], output: tuple[Label, ...],
                     inputs: list[Operand], out: Operand,
                     extents: dict[Label, tuple[Expr, str]]) -> list[Stmt] | None:
    """A two-operand contraction as a loop nest of BLAS GEMMs, or None when it is not one (or too small).

    out[batch, M, N] = Σ_K left[batch, M, K]·right[batch, K, N], with the labels sorted into groups: in both
    operands and the output (batch), in one operand and the output (M from the left, N from the right), in
    both operands only (K). One label of each of M, N and K becomes a GEMM dim (N: the output's last axis,
    so the result is a row-major matrix with stride-1 columns); every other label is a loop around the GEMM,
    its index moving the three matrices' offsets by its strides. Looped K labels accumulate (the output is
    zeroed first, then beta = 1). ``btd,dhk->bhtk`` is thus B·H GEMMs (T×D)·(D×K) with no data movement.
    """
    if len(inputs) != 2 or out.dtype not in BLAS_DTYPES or not output:
        return None
    if any(len(set(t)) != len(t) for t in (*terms, output)):
        return None  # a repeated label reads a diagonal: not a GEMM
    (ta, tb), (a, b) = terms, inputs
    if any(label not in output and not (label in ta and label in tb) for label in (*ta, *tb)):
        return None  # a label summed within one operand only
    column = output[-1]
    if column in ta and column in tb:
        return None  # the output's last axis is a batch label: no stride-1 GEMM column
    left, right = (_Side(ta, a), _Side(tb, b)) if column in tb else (_Side(tb, b), _Side(ta, a))
    rows = [label for label in left.term if label in output and label not in right.term]
    summed = [label for label in left.term if label in right.term and label not in output]
    choice = _choose_dims(left, right, rows, summed, column, extents)
    if choice is None:
        return None
    m, k = choice
    size = {label: extents[label][0] for label in extents}
    work = [ir.static_value(size[d]) if d is not None else 1 for d in (m, column, k)]
    if None not in work and work[0] * work[1] * work[2] < MIN_GEMM_WORK:
        return None
    (trans_a, lda), (trans_b, ldb) = _left_layout(left, m, k, size), _right_layout(right, k, column, size)
    looped = [label for label in extents if label not in (m, column, k)]
    accumulates = any(label not in output for label in looped)
    out_side = _Side(output, out)
    one = ir.const(1)
    ldc = out_side.stride(m) if m is not None else size[column]

    def gemm(indices: tuple[ir.Index, ...]) -> list[Stmt]:
        at = dict(zip(looped, indices))

        def offset(side: _Side) -> Expr:
            return ir.flat_index([at[label] for label in side.term if label in at],
                                 [side.stride(label) for label in side.term if label in at])

        return [Gemm(out.dtype, trans_a, trans_b, size[m] if m is not None else one, size[column],
                     size[k] if k is not None else one, left.x.buffer, offset(left), _at_least_one(lda),
                     right.x.buffer, offset(right), _at_least_one(ldb), out.buffer, offset(out_side),
                     _at_least_one(ldc), beta=1.0 if accumulates else 0.0)]

    zero = ir.loop_nest(ctx.names, [out.size], lambda i: [out.store_flat(i[0], scalar.constant(0, out.dtype))],
                        parallel=True) if accumulates else ()
    return [*zero, *ir.loop_nest(ctx.names, [size[label] for label in looped], gemm)]


def _left_layout(side: _Side, m: Label | None, k: Label | None,
                 size: dict[Label, Expr]) -> tuple[bool, Expr] | None:
    """(transposed, leading dim) of the left matrix M×K as stored, or None when BLAS cannot read it."""
    if side.is_inner(k) or k is None:  # rows of K contiguous elements (or one element) at M's stride
        return False, side.stride(m) if m is not None else (size[k] if k is not None else ir.const(1))
    if side.is_inner(m) or m is None:  # stored K×M: rows at K's stride
        return True, side.stride(k)
    return None


def _right_layout(side: _Side, k: Label | None, n: Label, size: dict[Label, Expr]) -> tuple[bool, Expr] | None:
    """(transposed, leading dim) of the right matrix K×N as stored, or None when BLAS cannot read it."""
    if side.is_inner(n):
        return False, side.stride(k) if k is not None else size[n]
    if side.is_inner(k) or k is None:  # stored N×K: rows at N's stride
        return True, side.stride(n)
    return None


def _choose_dims(left: _Side, right: _Side, rows: list[Label], summed: list[Label], column: Label,
                 extents: dict[Label, tuple[Expr, str]]) -> tuple[Label | None, Label | None] | None:
    """The (M, K) labels of the largest GEMM BLAS can run on these buffers as they are, or None.

    BLAS reads each matrix with one stride-1 dim (``_left_layout``, ``_right_layout``); the output's is N
    (``column``), its last axis.
    """
    def size(label: Label | None) -> int:
        if label is None:
            return 1
        known = ir.static_value(extents[label][0])
        return UNKNOWN_SIZE_GUESS if known is None else known

    best = None
    sizes = {label: extent for label, (extent, _) in extents.items()}
    for m in [*rows, None]:
        for k in [*summed, None]:
            fits = _left_layout(left, m, k, sizes) is not None and _right_layout(right, k, column, sizes) is not None
            if fits and (best is None or size(m) * size(k) > size(best[0]) * size(best[1])):
                best = (m, k)
    return best


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
