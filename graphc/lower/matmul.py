"""Lowering a matmul kernel: a BLAS GEMM per matrix of the batch, then its elementwise epilogue.

``matmul`` follows numpy (batch dims broadcast, 1-D operands promoted to a row or column); ``tensordot``
becomes one GEMM when its contracted axes are contiguous at one end of each operand (the layout
differentiation produces), and otherwise runs as its own loop nest. A transposed operand computed in the
kernel (a matrix transpose of a buffer: the planner keeps it as a layout flag) becomes the GEMM's transpose
flag. The epilogue (bias, activation, an SGD update) is a fused loop over the product, which is read back
from memory while it is still in cache; a plain SGD step ``W ← W − c·P`` needs none: the GEMM adds −c·P to W.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from graphc.errors import CompileError
from graphc.graph.node import Node, Tensor
from graphc.lower import ir
from graphc.lower.context import LOWERINGS, LowerContext, Operand
from graphc.lower.fused import FusedLowering
from graphc.lower.ir import Assign, Declare, Expr, Gemm, Load, Local, Stmt, Store
from graphc.lower.shapes import SymbolicShapes
from graphc.ops import elementwise, linalg, scalar, shape, sources, state
from graphc.ops.scalar import Const
from graphc.passes.partition import Kernel

BLAS_DTYPES = ("float32", "float64")


def lower_matmul_kernel(ctx: LowerContext, kernel: Kernel, shapes: SymbolicShapes, memory: Mapping[Tensor, Operand],
                        outputs: Mapping[Tensor, Operand], product: Operand) -> list[Stmt]:
    """The product into ``product`` (an output of the kernel, or a scratch buffer), then the epilogue — or,
    for a plain SGD step on the product, one GEMM into the variable (``_sgd_step``)."""
    root = kernel.root
    step = _sgd_step(kernel, memory, outputs)
    if step is not None:
        statements = _product(ctx, root, memory, step[0])
        if len(statements) == 1 and isinstance(statements[0], Gemm):
            return [dataclasses.replace(statements[0], alpha=-step[1], beta=1.0)]
    statements = _product(ctx, root, memory, product)
    if kernel.epilogue:
        epilogue_outputs = {t: o for t, o in outputs.items() if t.node is not root}
        fused = FusedLowering(ctx, kernel, shapes, memory, epilogue_outputs, stored={root: product})
        statements += fused.lower()
    return statements


def _sgd_step(kernel: Kernel, memory: Mapping[Tensor, Operand],
              outputs: Mapping[Tensor, Operand]) -> tuple[Operand, float] | None:
    """(the variable, c) when the kernel's epilogue is exactly ``W ← W − c·P`` on its product P (a weight's
    SGD step: c a constant learning rate, W as P's shape) and W is updated in place, nothing else stored: the
    GEMM then computes it, C = W with alpha = −c and beta = 1 (``W + (−c)·P``: the same value, since negation
    is exact), and no loop reads the product back."""
    if len(kernel.epilogue) != 3 or kernel.root.outputs[0].dtype not in BLAS_DTYPES:
        return None
    by_op = {node.op: node for node in kernel.epilogue}
    scale, difference, update = by_op.get(elementwise.MUL), by_op.get(elementwise.SUB), by_op.get(state.ASSIGN)
    if scale is None or difference is None or update is None:
        return None
    product, variable = kernel.root.outputs[0], update.inputs[0]
    factors = [t for t in scale.inputs if t is not product]
    if len(factors) != 1 or len(scale.inputs) != 2 or factors[0].node.op is not sources.CONSTANT:
        return None
    value = np.asarray(factors[0].node.attrs["value"])
    if value.size != 1 or tuple(difference.inputs) != (variable, scale.outputs[0]) \
            or update.inputs[1] != difference.outputs[0]:
        return None
    if product.shape != variable.shape or len(variable.shape) != 2 or set(outputs) != {update.outputs[0]}:
        return None
    target = outputs[update.outputs[0]]
    if variable not in memory or target.buffer is not memory[variable].buffer:
        return None  # not in place: the new value goes to a temporary, which holds no W to add to
    return target, float(value.reshape(()))


def _operand(node: Node, position: int, memory: Mapping[Tensor, Operand]) -> tuple[Operand, bool]:
    """The buffer a GEMM reads for input ``position``, and whether it reads it transposed."""
    t = node.inputs[position]
    if t not in memory and t.node.op is shape.TRANSPOSE:  # a matrix transpose inside the kernel: a flag
        return memory[t.node.inputs[0]], True
    return memory[t], False


def _product(ctx: LowerContext, node: Node, memory: Mapping[Tensor, Operand], out: Operand) -> list[Stmt]:
    (a, trans_a), (b, trans_b) = _operand(node, 0, memory), _operand(node, 1, memory)
    if node.op is linalg.TENSORDOT:
        a_axes, b_axes = _stored_axes(node, 0, trans_a), _stored_axes(node, 1, trans_b)
        layout = _tensordot_layout(a_axes, b_axes, len(a.shape), len(b.shape))
        if layout is not None:
            return _gemm(ctx, _tensordot_gemm(a, b, out, len(a_axes), layout))
        if trans_a or trans_b:
            raise CompileError(f"tensordot '{node.name}' (created at {node.source}) reads a transposed operand in "
                               "an order no GEMM layout fits")
        return LOWERINGS[node.op](ctx, node, [a, b], [out])
    return _batched_gemm(ctx, a, trans_a, b, trans_b, out)


def _stored_axes(node: Node, position: int, transposed: bool) -> list[int]:
    """The tensordot's contracted axes of operand ``position``, numbered as the operand is stored."""
    axes = list(node.attrs["axes"][position])
    if not transposed:
        return axes
    perm = node.inputs[position].node.attrs["perm"]
    return [perm[i] for i in axes]


def _gemm(ctx: LowerContext, g: Gemm) -> list[Stmt]:
    """``g`` as a BLAS call, or for dtypes BLAS has no routine for (integers), as a loop nest."""
    if g.dtype in BLAS_DTYPES:
        return [g]

    def element(indices: tuple) -> list[Stmt]:
        i, j = indices
        acc = Local(ctx.names("acc"), g.dtype)

        def term(inner: tuple) -> list[Stmt]:
            (p,) = inner
            a = Load(g.a, ir.add(g.a_offset, ir.add(ir.mul(p, g.lda), i) if g.trans_a else ir.add(ir.mul(i, g.lda), p)))
            b = Load(g.b, ir.add(g.b_offset, ir.add(ir.mul(j, g.ldb), p) if g.trans_b else ir.add(ir.mul(p, g.ldb), j)))
            return [Assign(acc, scalar.add(acc, scalar.mul(a, b)))]

        store = Store(g.c, ir.add(g.c_offset, ir.add(ir.mul(i, g.ldc), j)), acc)
        return [Declare(acc, Const(0, g.dtype)), *ir.loop_nest(ctx.names, [g.k], term), store]

    return list(ir.loop_nest(ctx.names, [g.m, g.n], element))


def _at_least_one(e: Expr) -> Expr:
    """A leading dimension for BLAS, which requires >= 1 even for empty matrices."""
    value = ir.static_value(e)
    if value is not None:
        return ir.const(max(value, 1))
    return scalar.maximum(e, ir.const(1))


def _matrix(operand: Operand, transposed: bool) -> tuple[list[Expr], Expr, Expr, Expr]:
    """(batch sizes, rows, cols of op(X), the row stride as stored) of a GEMM operand; 1-D: one row."""
    sizes = list(operand.shape)
    if len(sizes) == 1:
        return [], ir.const(1), sizes[0], sizes[0]
    rows, cols = sizes[-2], sizes[-1]
    ld = cols
    if transposed:
        rows, cols = cols, rows
    return sizes[:-2], rows, cols, ld


def _batched_gemm(ctx: LowerContext, a: Operand, trans_a: bool, b: Operand, trans_b: bool,
                  out: Operand) -> list[Stmt]:
    a_batch, m, k, lda = _matrix(a, trans_a)
    if len(b.shape) == 1:  # a column vector: k x 1, stored as one column (row stride 1)
        b_batch, n, ldb = [], ir.const(1), ir.const(1)
    else:
        b_batch, _, n, ldb = _matrix(b, trans_b)
    out_rank = len(out.shape)
    ldc = n if len(b.shape) > 1 else ir.const(1)
    batch = list(out.shape[:out_rank - (2 if len(a.shape) > 1 and len(b.shape) > 1 else 1)])
    if len(a.shape) == 1 and len(b.shape) == 1:
        batch = []
    if a_batch and not b_batch and not trans_a:  # a's batch of matrices, row after row, is one tall matrix
        m, a_batch, batch = ir.mul(ir.product(a_batch), m), [], []

    def offset(operand_batch: list[Expr], operand: Operand, indices: tuple) -> Expr:
        """The element offset of the operand's matrix at the output's batch index (broadcast: stride 0)."""
        strides = operand.strides[:len(operand_batch)]
        lead = len(batch) - len(operand_batch)
        total: Expr = ir.const(0)
        for size, stride, index in zip(operand_batch, strides, indices[lead:]):
            if ir.static_value(size) == 1:
                continue
            if ir.static_value(size) is None:
                stride = scalar.select(scalar.eq(size, ir.const(1)), ir.const(0), stride)
            total = ir.add(total, ir.mul(index, stride))
        return total

    def gemm(indices: tuple) -> list[Stmt]:
        c_offset = ir.mul(ir.flat_index(indices, ir.row_major_strides(batch)), ir.mul(m, n))
        return _gemm(ctx, Gemm(out.dtype, trans_a, trans_b, m, n, k, a.buffer, offset(a_batch, a, indices),
                                _at_least_one(lda), b.buffer, offset(b_batch, b, indices), _at_least_one(ldb),
                                out.buffer, c_offset, _at_least_one(ldc)))

    return list(ir.loop_nest(ctx.names, batch, gemm))


def _tensordot_layout(a_axes: list[int], b_axes: list[int], a_rank: int, b_rank: int) -> tuple[bool, bool] | None:
    """(trans_a, trans_b) when one GEMM computes the tensordot: a's contracted axes are its last (or first)
    axes and b's its first (or last), paired in order; None otherwise."""
    n = len(a_axes)
    a_last, a_first = a_axes == list(range(a_rank - n, a_rank)), a_axes == list(range(n))
    b_first, b_last = b_axes == list(range(n)), b_axes == list(range(b_rank - n, b_rank))
    if not (a_last or a_first) or not (b_first or b_last):
        return None
    return (not a_last, not b_first)


def _tensordot_gemm(a: Operand, b: Operand, out: Operand, n_axes: int, layout: tuple[bool, bool]) -> Gemm:
    trans_a, trans_b = layout
    a_free = a.shape[:len(a.shape) - n_axes] if not trans_a else a.shape[n_axes:]
    b_free = b.shape[n_axes:] if not trans_b else b.shape[:len(b.shape) - n_axes]
    contracted = a.shape[len(a.shape) - n_axes:] if not trans_a else a.shape[:n_axes]
    m, n, k = ir.product(a_free), ir.product(b_free), ir.product(contracted)
    lda, ldb = (k if not trans_a else m), (n if not trans_b else k)
    zero = ir.const(0)
    return Gemm(out.dtype, trans_a, trans_b, m, n, k, a.buffer, zero, _at_least_one(lda), b.buffer, zero,
                _at_least_one(ldb), out.buffer, zero, _at_least_one(n))
