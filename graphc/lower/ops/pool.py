"""Lowerings of max/avg pooling and their gradients (graphc/ops/pool.py).

Every kernel visits each window through its in-bounds rows and columns only: along an axis, window o starts
at o·s − before and its loop runs over max(start, 0) .. min(start + k, size), so padded positions are never
read (they never win a max and are not counted in an average) and no padded copy of x is made. Sizes are
run-time expressions: "same" padding's ``before`` is computed in the IR from the input and output sizes, so
one program serves every H and W. The max-based kernels keep a running best with a strict ``>``, so the
first max in row-major window order wins ties, as the numpy references' argmax.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.context import LowerContext, Operand, lowering
from graphc.lower.ir import FLOORDIV, Assign, Declare, Expr, Load, Local, Stmt, Store
from graphc.lower.ops.shape import differs, guard, where
from graphc.ops import pool, scalar


# -- window geometry ---------------------------------------------------------------------------------------
def _static(*values: Expr) -> list[int] | None:
    known = [ir.static_value(v) for v in values]
    return None if None in known else known


@dataclass(frozen=True)
class _Axis:
    """The windows along one spatial axis: input ``size``, output ``out``, window ``k``, stride ``s``."""

    size: Expr
    out: Expr
    k: int
    s: int
    padding: str

    @property
    def before(self) -> Expr:
        """The padding before the first element (TF: the smaller half of the total)."""
        if self.padding == "valid":
            return ir.const(0)
        static = _static(self.size, self.out)
        if static is not None:
            return ir.const(max((static[1] - 1) * self.s + self.k - static[0], 0) // 2)
        total = scalar.maximum(ir.sub(ir.add(ir.mul(ir.sub(self.out, 1), self.s), self.k), self.size), ir.const(0))
        return ir.integer(FLOORDIV, total, 2)

    @property
    def expected_out(self) -> Expr:
        """The output size the padding rule gives for ``size`` (checked against the operand's)."""
        static = _static(self.size)
        if static is not None:
            return ir.const(pool.window_extent(static[0], self.k, self.s, self.padding)[0])
        if self.padding == "valid":
            return ir.add(ir.integer(FLOORDIV, ir.sub(self.size, self.k), self.s), 1)
        return ir.integer(FLOORDIV, ir.add(self.size, self.s - 1), self.s)

    def window(self, o: Expr) -> tuple[Expr, Expr]:
        """(first in-bounds position, number of in-bounds positions) of window ``o``."""
        start = ir.mul(o, self.s)
        if self.padding == "valid":
            return start, ir.const(self.k)
        start = ir.sub(start, self.before)
        first = scalar.maximum(start, ir.const(0))
        return first, ir.sub(scalar.minimum(ir.add(start, self.k), self.size), first)

    def covering(self, p: Expr) -> tuple[Expr, Expr]:
        """(first window, number of windows) that hold input position ``p`` (operands kept >= 0 for FLOORDIV)."""
        shifted = ir.add(p, self.before)
        lowest = scalar.maximum(ir.sub(shifted, self.k - 1), ir.const(0))
        first = ir.integer(FLOORDIV, ir.add(lowest, self.s - 1), self.s)
        end = scalar.minimum(ir.add(ir.integer(FLOORDIV, shifted, self.s), 1), self.out)
        return first, scalar.maximum(ir.sub(end, first), ir.const(0))


def _axes(node: Node, x: Operand, pooled: Operand) -> tuple[_Axis, _Axis]:
    ksize, stride, padding = node.attrs["ksize"], node.attrs["stride"], node.attrs["padding"]
    return tuple(_Axis(x.shape[a], pooled.shape[a], ksize[a - 1], stride[a - 1], padding) for a in (1, 2))


def _check_shapes(ctx: LowerContext, node: Node, x: Operand, pooled: Operand, others: Sequence[Operand] = (),
                  ) -> list[Stmt]:
    """Fail unless ``pooled`` has the pooled shape of x, and ``others`` x's shape (so no read leaves a buffer)."""
    rows, cols = _axes(node, x, pooled)
    expected = [x.shape[0], rows.expected_out, cols.expected_out, x.shape[3]]
    mismatches = [differs(a, b) for a, b in zip(pooled.shape, expected)]
    mismatches += [differs(a, b) for other in others for a, b in zip(other.shape, x.shape)]
    return guard(ctx, mismatches, f"{where(node)}: the operands' run-time shapes do not fit the pooling windows")


WindowBody = Callable[[Sequence[Expr]], list[Stmt]]


def _over_window(ctx: LowerContext, rows: _Axis, cols: _Axis, oh: Expr, ow: Expr, body: WindowBody) -> list[Stmt]:
    """Loops over the in-bounds positions (h, w) of window (oh, ow), row-major; ``body((h, w))``."""
    (h0, h_count), (w0, w_count) = rows.window(oh), cols.window(ow)
    return list(ir.loop_nest(ctx.names, [h_count, w_count], lambda a: body((ir.add(h0, a[0]), ir.add(w0, a[1])))))


def _lowest(dtype: str) -> Expr:
    return scalar.constant(float("-inf") if dtype.startswith("float") else -(2 ** (int(dtype[3:]) - 1)), dtype)


def _first_max(ctx: LowerContext, x: Operand, rows: _Axis, cols: _Axis, n: Expr, oh: Expr, ow: Expr, c: Expr,
               track: Callable[[Expr, Sequence[Expr]], Sequence[tuple[Local, Expr]]]) -> list[Stmt]:
    """A running max of x over window (oh, ow); at each strictly greater element (the first max wins ties),
    every (local, value) of ``track(better, (h, w))`` is assigned ``value``."""
    best = Local(ctx.names("best"), x.dtype)

    def step(at: Sequence[Expr]) -> list[Stmt]:
        value = x.load([n, *at, c])
        better = scalar.gt(value, best)
        return [*(Assign(local, scalar.select(better, v, local)) for local, v in track(better, at)),
                Assign(best, scalar.select(better, value, best))]

    return [Declare(best, _lowest(x.dtype)), *_over_window(ctx, rows, cols, oh, ow, step)]


# -- forward --------------------------------------------------------------------------------------------
@lowering(pool.MAX_POOL2D)
def _max_pool2d(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """One parallel nest over (n, oh, ow, c); ``maximum`` over the window (NaN propagates, as numpy's max)."""
    (x,), (out,) = inputs, outputs
    rows, cols = _axes(node, x, out)

    def element(i: Sequence[Expr]) -> list[Stmt]:
        n, oh, ow, c = i
        best = Local(ctx.names("best"), x.dtype)
        step = _over_window(ctx, rows, cols, oh, ow,
                            lambda at: [Assign(best, scalar.maximum(best, x.load([n, *at, c])))])
        return [Declare(best, _lowest(x.dtype)), *step, out.store(i, best)]

    return [*_check_shapes(ctx, node, x, out), *ir.loop_nest(ctx.names, out.shape, element, parallel=True)]


@lowering(pool.AVG_POOL2D)
def _avg_pool2d(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """One parallel nest over (n, oh, ow, c): the window's sum over its in-bounds count."""
    (x,), (out,) = inputs, outputs
    rows, cols = _axes(node, x, out)

    def element(i: Sequence[Expr]) -> list[Stmt]:
        n, oh, ow, c = i
        total = Local(ctx.names("sum"), x.dtype)
        step = _over_window(ctx, rows, cols, oh, ow, lambda at: [
            Assign(total, scalar.add(total, x.load([n, *at, c])), reassociate=True)])
        count = ir.mul(rows.window(oh)[1], cols.window(ow)[1])
        return [Declare(total, scalar.constant(0, x.dtype)), *step,
                out.store(i, scalar.div(total, scalar.cast(count, x.dtype)))]

    return [*_check_shapes(ctx, node, x, out), *ir.loop_nest(ctx.names, out.shape, element, parallel=True)]


# -- derivatives ------------------------------------------------------------------------------------------
@lowering(pool.MAX_POOL2D_SELECT)
def _max_pool2d_select(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """As max_pool2d, carrying t's element at the running max along (t at the window's first in-bounds
    position when no element beats −inf)."""
    (x, t), (out,) = inputs, outputs
    rows, cols = _axes(node, x, out)

    def element(i: Sequence[Expr]) -> list[Stmt]:
        n, oh, ow, c = i
        picked = Local(ctx.names("picked"), t.dtype)
        first = (rows.window(oh)[0], cols.window(ow)[0])
        search = _first_max(ctx, x, rows, cols, n, oh, ow, c, lambda better, at: [(picked, t.load([n, *at, c]))])
        return [Declare(picked, t.load([n, *first, c])), *search, out.store(i, picked)]

    return [*_check_shapes(ctx, node, x, out, [t]), *ir.loop_nest(ctx.names, out.shape, element, parallel=True)]


@lowering(pool.MAX_POOL2D_GRAD)
def _max_pool2d_grad(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """Scatter form, parallel over the images n (windows of different images never share an element, so no
    two threads write one element): zero dx[n], then for each window find its first max and add dy there.

    The search runs with the channels innermost (contiguous in NHWC, so it vectorizes), keeping each
    channel's running max and its position in scratch rows of image n; then each channel's dy is added at
    its position. Every window's argmax is found once. The gather form (each dx element sums the dy of the
    windows whose argmax it is) redoes the argmax of every window that holds the element: about kh·kw times
    the comparisons when windows overlap.
    """
    (x, dy), (dx,) = inputs, outputs
    rows, cols = _axes(node, x, dy)
    n_size, channels = x.shape[0], x.shape[3]
    best, place = ctx.scratch(x.dtype, (n_size, channels)), ctx.scratch(ir.INDEX, (n_size, channels))

    def cell(n: Expr, c: Expr) -> Expr:  # (n, c) of the scratch rows
        return ir.add(ir.mul(n, channels), c)

    def window(n: Expr, oh: Expr, ow: Expr) -> list[Stmt]:
        (h0, _), (w0, _) = rows.window(oh), cols.window(ow)
        start = ir.add(ir.mul(h0, x.shape[2]), w0)
        reset = ir.loop_nest(ctx.names, [channels], lambda c: [Store(best, cell(n, c[0]), _lowest(x.dtype)),
                                                               Store(place, cell(n, c[0]), start)])

        def step(at: Sequence[Expr]) -> list[Stmt]:
            def channel(c: Sequence[Expr]) -> list[Stmt]:
                value, known, here = x.load([n, *at, c[0]]), Load(best, cell(n, c[0])), Load(place, cell(n, c[0]))
                better = scalar.gt(value, known)
                position = ir.add(ir.mul(at[0], x.shape[2]), at[1])
                return [Store(place, cell(n, c[0]), scalar.select(better, position, here)),
                        Store(best, cell(n, c[0]), scalar.select(better, value, known))]

            return list(ir.loop_nest(ctx.names, [channels], channel))

        def add(c: Sequence[Expr]) -> list[Stmt]:
            target = ir.add(ir.mul(ir.add(ir.mul(n, ir.mul(x.shape[1], x.shape[2])), Load(place, cell(n, c[0]))),
                                   channels), c[0])
            return [dx.store_flat(target, scalar.add(dx.load_flat(target), dy.load([n, oh, ow, c[0]])))]

        return [*reset, *_over_window(ctx, rows, cols, oh, ow, step), *ir.loop_nest(ctx.names, [channels], add)]

    def image(n: Sequence[Expr]) -> list[Stmt]:
        zero = ir.loop_nest(ctx.names, dx.shape[1:], lambda i: [dx.store([n[0], *i], scalar.constant(0, dx.dtype))])
        return [*zero, *ir.loop_nest(ctx.names, dy.shape[1:3], lambda i: window(n[0], *i))]

    return [*_check_shapes(ctx, node, x, dy), *ir.loop_nest(ctx.names, x.shape[:1], image, parallel=True)]


@lowering(pool.AVG_POOL2D_GRAD)
def _avg_pool2d_grad(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    """Gather form, parallel over the elements of dx: each sums dy / count over the windows that hold it."""
    (dy, _), (dx,) = inputs, outputs
    rows, cols = _axes(node, dx, dy)

    def element(i: Sequence[Expr]) -> list[Stmt]:
        n, h, w, c = i
        total = Local(ctx.names("sum"), dx.dtype)
        (oh0, oh_count), (ow0, ow_count) = rows.covering(h), cols.covering(w)

        def add(a: Sequence[Expr]) -> list[Stmt]:
            oh, ow = ir.add(oh0, a[0]), ir.add(ow0, a[1])
            count = scalar.cast(ir.mul(rows.window(oh)[1], cols.window(ow)[1]), dx.dtype)
            return [Assign(total, scalar.add(total, scalar.div(dy.load([n, oh, ow, c]), count)), reassociate=True)]

        return [Declare(total, scalar.constant(0, dx.dtype)),
                *ir.loop_nest(ctx.names, [oh_count, ow_count], add), dx.store(i, total)]

    return [*_check_shapes(ctx, node, dx, dy), *ir.loop_nest(ctx.names, dx.shape, element, parallel=True)]
