"""simplify: algebraic identities, written for the canonical forms (constants second) and for what gradient
graphs are full of: ``mul_no_nan(partial, cotangent)`` with cotangents of ones, ``ones_like`` seeds,
``sum_to``/``broadcast_like`` that undo broadcasting, and negations.

Every rule gives the value the original computes, for every input (NaN and ±inf included), except for the
sign of some zero results (−0 and +0 compare equal; only 1/±0 tells them apart), which these rules ignore
as XLA's and TF's simplifiers do:
- ``x + 0 → x`` and ``x − (−0) → x`` keep x = −0 where the original gives +0;
- ``0 − x → −x`` gives −0 where the original gives +0 (x = +0);
- ``mul_no_nan(c, y) → y·c`` for a finite constant c gives c·(±0) = ∓0 where the original gives +0.

Deliberately not done:
- ``x·0 → 0`` and ``x − x → 0`` for floats: inf·0 and inf − inf are NaN. Done for integers only.
- ``exp(log(x)) → x``: log of a negative x is NaN, so this holds for x ≥ 0 only.
- ``x ** 0.5 → sqrt(x)``: pow(−0, 0.5) = +0 but sqrt(−0) = −0, and pow(−inf, 0.5) = inf, sqrt(−inf) = NaN.

``log(exp(x)) → x`` is exact in real arithmetic and more accurate than the original, which overflows to inf
above x ≈ 88.7 (float32) or 709.8 (float64) and loses x near 0 (exp(x) rounds to 1); it is a
stabilization as much as a simplification.

Broadcasting is respected everywhere: x·1 is x only when the 1 does not enlarge the result; otherwise x is
broadcast to the result's shape (``as_result`` in graphc.passes.canonicalize).
"""

from __future__ import annotations

import numpy as np

from graphc.graph.dtypes import INTS
from graphc.graph.node import Tensor
from graphc.ops import elementwise as ew
from graphc.ops.broadcast import BROADCAST_LIKE, MATCH_SHAPE, SUM_TO, match_shape, may_broadcast
from graphc.ops.reduce import SUM, reduce_sum
from graphc.ops.shape import BROADCAST_TO, reshape, squeeze
from graphc.ops.sources import constant
from graphc.passes.canonicalize import as_result, compatible, filled, is_constant, same_shape, static
from graphc.passes.patterns import Const, Op, Rule, RuleTable, Var

x, y, a, b, c = Var("x"), Var("y"), Var("a"), Var("b"), Const(name="c")


# -- recognizing fills --------------------------------------------------------------------------------------
def is_filled(t: Tensor, value: float) -> bool:
    """Whether every element of ``t`` is ``value``: a constant, ones_like/zeros_like, or a broadcast of one."""
    node = t.node
    if is_constant(t):
        array = node.attrs["value"]
        return bool(array.size) and bool(np.all(array == value))
    if node.op is ew.ONES_LIKE or node.op is ew.ZEROS_LIKE:
        return value == (1 if node.op is ew.ONES_LIKE else 0)
    if node.op in (BROADCAST_TO, BROADCAST_LIKE, MATCH_SHAPE):
        return is_filled(node.inputs[0], value)
    return False


def _fill_like(value: float, node) -> Tensor | None:
    """node's output filled with ``value`` (0 or 1): a constant when its shape is known, else a fill of an
    operand that has the output's run-time shape."""
    out = node.outputs[0]
    if static(out.shape):
        return filled(value, out.dtype, out.shape)
    make = ew.ones_like if value == 1 else ew.zeros_like
    for operand in node.inputs:
        fill = as_result(operand, node, [i for i in node.inputs if i is not operand], make)
        if fill is not None:
            return fill
    return None


# -- identities --------------------------------------------------------------------------------------------
def _drop(keep: Tensor, drop: Tensor, value: float, node) -> Tensor | None:
    """``keep`` standing for node's output, when ``drop`` is filled with the identity ``value``."""
    return as_result(keep, node, [drop]) if is_filled(drop, value) else None


def _drop_either(a: Tensor, b: Tensor, value: float, node) -> Tensor | None:
    """For a commutative op: drop whichever operand is filled with the identity ``value``."""
    kept = _drop(a, b, value, node)
    return kept if kept is not None else _drop(b, a, value, node)


def _zeros(zero: Tensor, other: Tensor, node) -> Tensor | None:
    """node's output, known to be zeros: the zero operand itself where it has the output's shape, else a new
    fill (zeros_like of an operand that has it), else the zero operand broadcast."""
    if not may_broadcast(zero, [zero, other]):
        return as_result(zero, node, [other])
    fill = _fill_like(0, node)
    return fill if fill is not None else as_result(zero, node, [other])


def _int_zeros(a: Tensor, b: Tensor, node) -> Tensor | None:
    """x·0 → 0, for integers only (inf·0 is NaN)."""
    if node.outputs[0].dtype not in INTS:
        return None
    return _zeros(b, a, node) if is_filled(b, 0) else _zeros(a, b, node) if is_filled(a, 0) else None


def _negated(x: Tensor, c: Tensor, node) -> Tensor | None:
    """x·(−1) → −x: exact (a sign flip), for NaN, inf and zeros too."""
    return as_result(x, node, [c], ew.neg) if is_filled(c, -1) else None


def _zero_minus(y: Tensor, x: Tensor, node) -> Tensor | None:
    """0 − x → −x (−0 instead of +0 at x = +0)."""
    return as_result(x, node, [y], ew.neg) if is_filled(y, 0) else None


# -- mul_no_nan: how partial derivatives meet cotangents ------------------------------------------------
def _mul_no_nan_constant(x: Tensor, c: Tensor) -> Tensor | None:
    """mul_no_nan(x, c) = x·c when c has no zero (the only place the two differ)."""
    return ew.mul(x, c) if np.all(c.node.attrs["value"] != 0) else None


def _finite_partial(c: Tensor, y: Tensor) -> Tensor | None:
    """mul_no_nan(c, y) = y·c for a finite c: where y = 0, c·0 is a zero too (its sign may differ)."""
    return ew.mul(y, c) if np.all(np.isfinite(c.node.attrs["value"])) else None


# -- negations ---------------------------------------------------------------------------------------------
def _neg_times_constant(x: Tensor, c: Tensor) -> Tensor:
    """(−x)·c → x·(−c): exact; the constant is negated here (ints wrap as the product would)."""
    return ew.mul(x, constant(np.negative(c.node.attrs["value"])))


# -- reductions and broadcasts -----------------------------------------------------------------------------
def _sum_to_axes(x: Tensor, like: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(leading axes, other axes) of x that sum_to(x, like) sums, when they are known statically."""
    lead = x.ndim - like.ndim
    summed = []
    for i, (target, size) in enumerate(zip(like.shape, x.shape[lead:])):
        if target == 1 and size != 1:
            summed.append(lead + i)
        elif target is None and size != 1:
            return None  # like may be 1 there at run time, or not
    return tuple(range(lead)), tuple(summed)


def _assume_equal(x: Tensor, like: Tensor, sums: bool) -> Tensor | None:
    """sum_to/broadcast_like between shapes that differ by unknown sizes → x, assuming those sizes equal.

    ``x * y`` of two ``(None,)`` placeholders has gradients ``sum_to(g, x)``: at run time x may be 1 and y
    n (summed) or both n (nothing to do). Assuming the common case keeps the gradient fused; ``match_shape``
    checks the assumption when the sizes are known, and a run that breaks it (AssumptionError) makes the
    Session use a version compiled without this rule. A ``sum_to`` (``sums``) may also sum axes that are 1 in
    ``like``: g (None, 16, 64) to (None, 16, 1), a layer norm's gradient, becomes a row reduction.
    """
    if x.ndim != like.ndim or not any(a is None and b is None for a, b in zip(x.shape, like.shape)):
        return None
    summed = []
    for axis, (a, b) in enumerate(zip(x.shape, like.shape)):
        if a == b:  # the same known size, or both unknown: assumed equal
            continue
        if not (sums and b == 1):
            return None
        summed.append(axis)
    return match_shape(reduce_sum(x, tuple(summed), keepdims=True) if summed else x, like)


def _sum_to(x: Tensor, like: Tensor, node) -> Tensor | None:
    """sum_to with statically known axes → a plain reduce_sum (x itself when nothing is summed)."""
    if same_shape(x, like):
        return x
    axes = _sum_to_axes(x, like)
    if axes is None or x.dtype == "bool":
        return None
    lead, kept = axes
    after = tuple(1 if axis in kept else d for axis, d in enumerate(x.shape) if axis >= len(lead))
    if not compatible(after, node.outputs[0].shape):
        return None
    if not kept:
        return reduce_sum(x, lead) if lead else x
    total = reduce_sum(x, lead + kept, keepdims=True)
    return squeeze(total, lead) if lead else total


def _sum_of_broadcast(node) -> Tensor | None:
    """reduce_sum over exactly the axes a broadcast stretched (and size-1 axes) → x times their count.

    Each output element then sums ``count`` copies of one element of x. A count of 0 is left alone (the
    sum is 0, but inf·0 would be NaN).
    """
    spread, axes = node.inputs[0], node.attrs["axis"]
    x = spread.node.inputs[0]
    # the shape x is stretched to: broadcast_to's target, or broadcast_like's like (of spread's rank)
    target = spread.shape if spread.node.op is BROADCAST_TO else spread.node.inputs[1].shape
    lead = spread.ndim - x.ndim
    for axis, size in enumerate(spread.shape):
        source = x.shape[axis - lead] if axis >= lead else 1
        if axis in axes and (source != 1 or size is None):
            return None  # summing elements of x, or an unknown count of copies
        if axis not in axes and not (target[axis] == 1 or (source is not None and source == target[axis])):
            return None  # an axis that is (or may be) stretched is kept
    count = int(np.prod([spread.shape[a] for a in axes], dtype=np.int64))
    if count == 0 or x.dtype == "bool":
        return None
    kept = _reshaped(x, node.outputs[0].shape)
    if kept is None:
        return None
    return kept if count == 1 else ew.mul(kept, constant(np.asarray(count, dtype=x.dtype)))


def _reshaped(x: Tensor, target: tuple) -> Tensor | None:
    """x reshaped to ``target`` (which only drops or adds size-1 axes), if a reshape can say that shape."""
    if x.shape == target:
        return x
    if target.count(None) > 1 or (None in target and 0 in target):
        return None
    return reshape(x, tuple(-1 if d is None else d for d in target))


RULES = RuleTable("simplify", [
    Rule("ones_like_static", Op(ew.ONES_LIKE, x), lambda x: filled(1, x.dtype, x.shape) if static(x.shape) else None),
    Rule("zeros_like_static", Op(ew.ZEROS_LIKE, x),
         lambda x: filled(0, x.dtype, x.shape) if static(x.shape) else None),
    Rule("mul_one", Op(ew.MUL, a, b), lambda a, b, node: _drop_either(a, b, 1, node)),
    Rule("mul_zero_int", Op(ew.MUL, a, b), _int_zeros),
    Rule("mul_neg_constant", Op(ew.MUL, Op(ew.NEG, x), c), _neg_times_constant),
    Rule("mul_minus_one", Op(ew.MUL, x, c), _negated),
    Rule("add_zero", Op(ew.ADD, a, b), lambda a, b, node: _drop_either(a, b, 0, node)),
    Rule("add_neg", Op(ew.ADD, x, Op(ew.NEG, y)), ew.sub),
    Rule("add_neg", Op(ew.ADD, Op(ew.NEG, y), x), ew.sub),
    Rule("sub_zero", Op(ew.SUB, x, y), lambda x, y, node: _drop(x, y, 0, node)),
    Rule("sub_neg", Op(ew.SUB, x, Op(ew.NEG, y)), ew.add),
    Rule("zero_sub", Op(ew.SUB, y, x), _zero_minus),
    Rule("sub_self_int", Op(ew.SUB, x, x), lambda x, node: _fill_like(0, node) if x.dtype in INTS else None),
    Rule("div_one", Op(ew.DIV, x, y), lambda x, y, node: _drop(x, y, 1, node)),
    Rule("pow_one", Op(ew.POW, x, y), lambda x, y, node: _drop(x, y, 1, node)),
    Rule("pow_zero", Op(ew.POW, x, y), lambda x, y, node: _fill_like(1, node) if is_filled(y, 0) else None),
    Rule("pow_two", Op(ew.POW, x, Const(2, name="two")),
         lambda x, two, node: as_result(x, node, [two], ew.square)),
    Rule("log_exp", Op(ew.LOG, Op(ew.EXP, x)), lambda x: x),
    Rule("mul_no_nan_zero", Op(ew.MUL_NO_NAN, x, y),
         lambda x, y, node: _zeros(y, x, node) if is_filled(y, 0) else None),
    Rule("mul_no_nan_one", Op(ew.MUL_NO_NAN, x, y), lambda x, y, node: _drop(x, y, 1, node)),
    Rule("mul_no_nan_nonzero_constant", Op(ew.MUL_NO_NAN, x, c), _mul_no_nan_constant),
    Rule("mul_no_nan_finite_partial", Op(ew.MUL_NO_NAN, c, y), _finite_partial),
    Rule("sum_to_reduce_sum", Op(SUM_TO, x, Var("like")), _sum_to),
    Rule("assume_equal_unknown_dims", Op(SUM_TO, x, Var("like")), lambda x, like: _assume_equal(x, like, True)),
    Rule("assume_equal_unknown_dims", Op(BROADCAST_LIKE, x, Var("like")),
         lambda x, like: _assume_equal(x, like, False)),
    Rule("sum_of_broadcast", Op(SUM, Op(BROADCAST_TO, x)), lambda x, node: _sum_of_broadcast(node)),
    Rule("sum_of_broadcast", Op(SUM, Op(BROADCAST_LIKE, x, y)), lambda x, y, node: _sum_of_broadcast(node)),
    Rule("sum_no_axes", Op(SUM, x, axis=()), lambda x, node: x if x.dtype == node.outputs[0].dtype else None),
])
