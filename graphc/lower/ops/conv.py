"""Lowerings of conv2d and its two gradient ops (graphc/ops/conv.py): im2col into scratch memory, then one GEMM.

The convolution of x (N, H, W, C) with w (KH, KW, C, F) is the matrix product cols · w, where cols (M × K,
M = N·OH·OW, K = KH·KW·C) holds one input window per row (``_im2col``, zeros where a window lies in the
padding) and w is read as its row-major K × F matrix; the product's M × F rows are the output itself. The
gradients are the two other products: dw = colsᵀ · dy, and dx from dcols = dy · wᵀ, whose rows are added
back where each window read (``_col2im``, written in gather form: each dx element sums the few dcols entries
that read it, so the parallel loop has no write races). A 1×1 kernel with stride 1 and no padding needs no
im2col: x is already cols.

Every size may be known only at run time (``Dim``), "same" padding included: its pads are computed here from
the run-time H and W, as ``graphc.ops.conv.axis_geometry`` computes them. Shape inference re-runs on the
concrete shapes before native code does, and each kernel also checks that its operands' sizes fit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.context import LowerContext, Operand, lowering
from graphc.lower.ir import FLOORDIV, MOD, Buffer, Declare, Expr, Gemm, If, Local, Stmt, Store
from graphc.lower.ops.shape import differs, guard, where
from graphc.ops import conv, scalar


@dataclass(frozen=True)
class _Geometry:
    """The sizes of one convolution as int64 expressions, and where its windows start (``before``)."""

    batch: Expr
    size: tuple[Expr, Expr]  # H, W
    channels: Expr
    kernel: tuple[Expr, Expr]  # KH, KW
    filters: Expr
    out: tuple[Expr, Expr]  # OH, OW as the operands hold them
    before: tuple[Expr, Expr]  # the top and left pads
    stride: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def rows(self) -> Expr:
        """M = N·OH·OW: one row of the im2col matrix per output position."""
        return ir.product([self.batch, *self.out])

    @property
    def depth(self) -> Expr:
        """K = KH·KW·C: one column per (kernel offset, channel)."""
        return ir.product([*self.kernel, self.channels])


def _axis(size: Expr, kernel: Expr, stride: int, dilation: int, pad: Any) -> tuple[Expr, Expr]:
    """(pad before, output size) along one axis, as ``axis_geometry`` computes them, for run-time sizes."""
    known_size, known_kernel = ir.static_value(size), ir.static_value(kernel)
    if known_size is not None and known_kernel is not None:
        before, _, out = conv.axis_geometry(known_size, known_kernel, stride, dilation, pad)
        return ir.const(before), ir.const(out)
    span = ir.add(ir.mul(ir.sub(kernel, 1), dilation), 1)
    if pad == "same":
        out = ir.integer(FLOORDIV, ir.add(size, stride - 1), stride)
        total = scalar.maximum(ir.sub(ir.add(ir.mul(ir.sub(out, 1), stride), span), size), ir.const(0))
        return ir.integer(FLOORDIV, total, 2), out
    before, after = pad
    return ir.const(before), ir.add(ir.integer(FLOORDIV, ir.sub(ir.add(size, before + after), span), stride), 1)


def _geometry(ctx: LowerContext, node: Node, x_shape: Sequence[Expr], kernel: Sequence[Expr], filters: Expr,
              out_shape: Sequence[Expr], w_channels: Expr) -> tuple[_Geometry, list[Stmt]]:
    """The convolution of an input of ``x_shape`` (NHWC) whose output has ``out_shape`` (NHWF), and a check
    that the operands' run-time sizes fit together (no statement when that is known statically)."""
    stride, dilation = node.attrs["stride"], node.attrs["dilation"]
    pads = ("same", "same") if node.attrs["padding"] == "same" else node.attrs["padding"]
    axes = [_axis(x_shape[1 + a], kernel[a], stride[a], dilation[a], pads[a]) for a in range(2)]
    mismatches = [differs(out_shape[0], x_shape[0]), differs(out_shape[3], filters), differs(x_shape[3], w_channels),
                  *(differs(out_shape[1 + a], axes[a][1]) for a in range(2))]
    check = guard(ctx, mismatches, f"{where(node)}: the operands' run-time shapes do not fit one convolution "
                                   "(batch, channels, filters or output size)")
    geometry = _Geometry(x_shape[0], (x_shape[1], x_shape[2]), x_shape[3], (kernel[0], kernel[1]), filters,
                         (out_shape[1], out_shape[2]), (axes[0][0], axes[1][0]), stride, dilation)
    return geometry, check


def _is_pointwise(node: Node, g: _Geometry) -> bool:
    """A 1×1 kernel read with stride 1 and no padding: x (N·H·W × C) is its own im2col matrix."""
    no_pads = node.attrs["padding"] in ("same", ((0, 0), (0, 0)))  # "same" pads nothing for a 1×1 kernel at stride 1
    return (no_pads and node.attrs["stride"] == (1, 1)
            and all(ir.static_value(k) == 1 for k in g.kernel))


def _leading(e: Expr) -> Expr:
    """A leading dimension for BLAS, which requires >= 1 even for empty matrices."""
    value = ir.static_value(e)
    return ir.const(max(value, 1)) if value is not None else scalar.maximum(e, ir.const(1))


def _gemm(dtype: str, a: Buffer, trans_a: bool, b: Buffer, trans_b: bool, c: Buffer,
          m: Expr, n: Expr, k: Expr) -> Gemm:
    """c (m × n) = op(a) · op(b) on whole dense row-major matrices (op(a) is m × k, op(b) k × n)."""
    lda, ldb = (m if trans_a else k), (k if trans_b else n)
    zero = ir.const(0)
    return Gemm(dtype, trans_a, trans_b, m, n, k, a, zero, _leading(lda), b, zero, _leading(ldb), c, zero,
                _leading(n))


def _inside(position: Expr, size: Expr) -> Expr:
    return scalar.logical_and(scalar.ge(position, ir.const(0)), scalar.lt(position, size))


def _im2col(ctx: LowerContext, g: _Geometry, x: Operand, cols: Buffer) -> list[Stmt]:
    """cols[(n, oh, ow), (kh, kw, c)] = x[n, oh·sh − top + kh·dh, ow·sw − left + kw·dw, c], or 0 in the padding.

    Parallel over the rows (n, oh); the channels of one kernel offset are contiguous in both x and cols."""
    oh_size, ow_size = g.out
    h_size, w_size = g.size

    def window(i: tuple[ir.Index, ...]) -> list[Stmt]:
        row, ow, kh, kw = i  # row = n·OH + oh
        n, oh = ir.integer(FLOORDIV, row, oh_size), ir.integer(MOD, row, oh_size)
        h, w = Local(ctx.names("h"), ir.INDEX), Local(ctx.names("w"), ir.INDEX)
        window = ir.add(ir.mul(row, ow_size), ow)
        start = ir.add(ir.mul(window, g.depth), ir.mul(ir.add(ir.mul(kh, g.kernel[1]), kw), g.channels))
        x_start = ir.mul(ir.add(ir.mul(ir.add(ir.mul(n, h_size), h), w_size), w), g.channels)
        copy = ir.loop_nest(ctx.names, [g.channels], lambda c: [Store(cols, ir.add(start, c[0]),
                                                                       x.load_flat(ir.add(x_start, c[0])))])
        zero = ir.loop_nest(ctx.names, [g.channels],
                            lambda c: [Store(cols, ir.add(start, c[0]), scalar.constant(0, x.dtype))])
        return [Declare(h, ir.add(ir.sub(ir.mul(oh, g.stride[0]), g.before[0]), ir.mul(kh, g.dilation[0]))),
                Declare(w, ir.add(ir.sub(ir.mul(ow, g.stride[1]), g.before[1]), ir.mul(kw, g.dilation[1]))),
                If(scalar.logical_and(_inside(h, h_size), _inside(w, w_size)), copy, zero)]

    extents = [ir.mul(g.batch, oh_size), ow_size, *g.kernel]
    return list(ir.loop_nest(ctx.names, extents, window, parallel=True))


def _source(position: Expr, stride: int, size: Expr) -> tuple[Expr, Expr]:
    """(o, valid): the output position o with o·stride = ``position`` (an input position plus its pad minus
    the kernel offset), and whether there is one within [0, size)."""
    if stride == 1:
        return position, _inside(position, size)
    quotient = ir.integer(FLOORDIV, position, stride)
    exact = scalar.eq(ir.integer(MOD, position, stride), ir.const(0))
    valid = scalar.logical_and(scalar.ge(position, ir.const(0)), scalar.logical_and(exact, scalar.lt(quotient, size)))
    return quotient, valid


def _col2im(ctx: LowerContext, g: _Geometry, dcols: Buffer, dx: Operand) -> list[Stmt]:
    """dx[n, h, w, c] = Σ over the kernel offsets (kh, kw) whose window (oh, ow) read (h, w) of
    dcols[(n, oh, ow), (kh, kw, c)]: each element gathers its own sum, so rows run in parallel."""
    h_size, w_size = g.size

    def pixel(i: tuple[ir.Index, ...]) -> list[Stmt]:
        row, w = i  # row = n·H + h
        n, h = ir.integer(FLOORDIV, row, h_size), ir.integer(MOD, row, h_size)
        x_start = ir.mul(ir.add(ir.mul(row, w_size), w), g.channels)
        clear = ir.loop_nest(ctx.names, [g.channels],
                             lambda c: [dx.store_flat(ir.add(x_start, c[0]), scalar.constant(0, dx.dtype))])

        def offset(k: tuple[ir.Index, ...]) -> list[Stmt]:
            kh, kw = k
            oh, oh_valid = _source(ir.sub(ir.add(h, g.before[0]), ir.mul(kh, g.dilation[0])), g.stride[0], g.out[0])
            ow, ow_valid = _source(ir.sub(ir.add(w, g.before[1]), ir.mul(kw, g.dilation[1])), g.stride[1], g.out[1])
            window = ir.add(ir.mul(ir.add(ir.mul(n, g.out[0]), oh), g.out[1]), ow)
            start = ir.add(ir.mul(window, g.depth), ir.mul(ir.add(ir.mul(kh, g.kernel[1]), kw), g.channels))

            def add(c: tuple[ir.Index, ...]) -> list[Stmt]:
                at = ir.add(x_start, c[0])
                return [dx.store_flat(at, scalar.add(dx.load_flat(at), ir.Load(dcols, ir.add(start, c[0]))))]

            return [If(scalar.logical_and(oh_valid, ow_valid), ir.loop_nest(ctx.names, [g.channels], add))]

        return [*clear, *ir.loop_nest(ctx.names, g.kernel, offset)]

    return list(ir.loop_nest(ctx.names, [ir.mul(g.batch, h_size), w_size], pixel, parallel=True))


@lowering(conv.CONV2D)
def _conv2d(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """out (M × F) = cols (M × K) · w (K × F)."""
    (x, w), (out,) = inputs, outputs
    g, check = _geometry(ctx, node, x.shape, w.shape[:2], w.shape[3], out.shape, w.shape[2])
    if _is_pointwise(node, g):
        return [*check, _gemm(out.dtype, x.buffer, False, w.buffer, False, out.buffer, g.rows, g.filters, g.channels)]
    cols = ctx.scratch(x.dtype, (g.rows, g.depth))
    return [*check, *_im2col(ctx, g, x, cols),
            _gemm(out.dtype, cols, False, w.buffer, False, out.buffer, g.rows, g.filters, g.depth)]


@lowering(conv.CONV2D_BACKPROP_FILTER)
def _conv2d_backprop_filter(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """dw (K × F) = colsᵀ (K × M) · dy (M × F)."""
    (x, dy), (out,) = inputs, outputs
    kernel = tuple(ir.const(k) for k in node.attrs["kernel_size"])
    g, check = _geometry(ctx, node, x.shape, kernel, dy.shape[3], dy.shape, out.shape[2])
    sizes = [differs(a, b) for a, b in zip(out.shape, (*kernel, out.shape[2], dy.shape[3]))]
    check += guard(ctx, sizes, f"{where(node)}: dw's run-time shape is not (KH, KW) {node.attrs['kernel_size']} "
                               "by x's channels by dy's")
    if _is_pointwise(node, g):
        return [*check, _gemm(out.dtype, x.buffer, True, dy.buffer, False, out.buffer, g.channels, g.filters, g.rows)]
    cols = ctx.scratch(x.dtype, (g.rows, g.depth))
    return [*check, *_im2col(ctx, g, x, cols),
            _gemm(out.dtype, cols, True, dy.buffer, False, out.buffer, g.depth, g.filters, g.rows)]


@lowering(conv.CONV2D_BACKPROP_INPUT)
def _conv2d_backprop_input(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """dcols (M × K) = dy (M × F) · wᵀ (F × K), then each dx element gathers the dcols entries that read it."""
    (dy, w, _), (out,) = inputs, outputs  # the output has like's shape
    g, check = _geometry(ctx, node, out.shape, w.shape[:2], w.shape[3], dy.shape, w.shape[2])
    if _is_pointwise(node, g):
        return [*check, _gemm(out.dtype, dy.buffer, False, w.buffer, True, out.buffer, g.rows, g.channels, g.filters)]
    dcols = ctx.scratch(out.dtype, (g.rows, g.depth))
    return [*check, _gemm(out.dtype, dy.buffer, False, w.buffer, True, dcols, g.rows, g.depth, g.filters),
            *_col2im(ctx, g, dcols, out)]
