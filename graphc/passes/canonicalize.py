"""canonicalize: one spelling for things that can be written several ways, so later rules match one form.

- Operand order: a commutative op (add, mul, maximum, minimum, equal, not_equal, logical_and, logical_or)
  with a constant first and a non-constant second is swapped, so every other rule (and every other pass)
  matches ``Op(ADD, x, Const(0))`` only. Non-constant operands keep the order the user (or autodiff) wrote:
  sorting them would hide patterns written in that order from other passes. (maximum and minimum are
  commutative in value; only the side a tie's derivative goes to depends on the order, and optimized graphs
  are not differentiated again.)
- Chains of shape ops collapse: reshape of reshape, transpose of transpose (composed permutation; the
  identity permutation is no node at all), broadcast of broadcast, expand_dims/squeeze pairs that cancel.
- No-op conversions and moves disappear: a reshape or broadcast_to to the shape x already has, a cast to
  x's own dtype, a cast through a dtype that holds every value of x's (float32 → float64 → int32 is
  float32 → int32), neg(neg(x)).
- broadcast_like to a fully known shape becomes broadcast_to, which no longer depends on the ``like``
  tensor (so what computed it can disappear).

Not done: sub of a constant stays a sub. ``x − c → x + (−c)`` is exact, but no rule here needs it (x − 0 is
simplified directly, and nothing reassociates float sums, which is inexact) while stabilize matches
``exp(x) − 1``, which that rewrite would hide.

The helpers at the top (about static shapes and run-time shapes) are shared with graphc.passes.simplify.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from graphc.graph.node import Tensor
from graphc.graph.types import broadcast_shapes
from graphc.ops import elementwise as ew
from graphc.ops.broadcast import BROADCAST_LIKE, broadcast_like, may_broadcast
from graphc.ops.shape import (
    BROADCAST_TO,
    EXPAND_DIMS,
    RESHAPE,
    RESHAPE_LIKE,
    SQUEEZE,
    TRANSPOSE,
    broadcast_to,
    reshape,
    reshape_like,
    squeeze,
    transpose,
)
from graphc.ops.sources import CONSTANT, constant
from graphc.passes.patterns import Const, Op, Rule, RuleTable, Var

x, like, shape, perm, axis, dtype = (Var(n) for n in ("x", "like", "shape", "perm", "axis", "dtype"))

LARGE_CONSTANT = 1 << 16  # a fill of more elements stays broadcast_to(scalar): no big array in the graph


# -- helpers about shapes (shared with simplify) -----------------------------------------------------------
def is_constant(t: Tensor) -> bool:
    return t.node.op is CONSTANT


def static(shape_: Sequence[int | None]) -> bool:
    """Every size known."""
    return None not in shape_


def shape_root(t: Tensor) -> Tensor:
    """A tensor with the same run-time shape as ``t``, found by following elementwise ops back through an
    operand they do not broadcast (neg(x), cast(x), x * b with b not stretching x: all shaped as x)."""
    while t.node.op.elementwise:
        inputs = t.node.inputs
        kept = [i for i in inputs if not may_broadcast(i, inputs)]
        if not kept or len(t.node.outputs) != 1:
            return t
        t = kept[0]
    return t


def same_shape(a: Tensor, b: Tensor) -> bool:
    """Whether a and b certainly have equal shapes when run (equal known shapes, or one shape root)."""
    if a.shape == b.shape and static(a.shape):
        return True
    return a.ndim == b.ndim and shape_root(a) is shape_root(b)


def filled(value: float, dtype: str, shape_: tuple) -> Tensor:
    """A constant of ``shape_`` holding ``value``; a large one as a broadcast of a scalar constant."""
    if int(np.prod(shape_, dtype=np.int64)) > LARGE_CONSTANT:
        return broadcast_to(constant(np.asarray(value, dtype)), shape_)
    return constant(np.full(shape_, value, dtype=dtype))


def compatible(new: Sequence[int | None], old: Sequence[int | None]) -> bool:
    """Whether a static shape ``new`` may stand for ``old``: the same rank, equal sizes where old's is known."""
    return len(new) == len(old) and all(o is None or n == o for n, o in zip(new, old))


def as_result(t: Tensor, node, others: Sequence[Tensor], then: Callable[[Tensor], Tensor] | None = None
              ) -> Tensor | None:
    """``t``, standing for an operand combined with ``others`` in ``node`` (after ``then``, a unary op that
    keeps t's shape, such as neg), made to stand for node's output: cast to its dtype and broadcast to its
    shape where the others may stretch it. None, building nothing, where no broadcast can say that shape.

    (Builders decide before they build: a node built and then not used would stay in the sweep's graph.)
    """
    out = node.outputs[0]
    if not may_broadcast(t, [t, *others]):
        spread, after = None, t.shape
    elif static(out.shape):
        spread, after = "to", out.shape
    elif len(others) == 1 and t.ndim <= others[0].ndim:
        spread, after = "like", broadcast_shapes(t.shape, others[0].shape)
    else:
        return None
    if not compatible(after, out.shape):
        return None
    t = then(t) if then is not None else t
    t = ew.cast(t, out.dtype) if t.dtype != out.dtype else t
    if spread == "to":
        return broadcast_to(t, out.shape)
    return broadcast_like(t, others[0]) if spread == "like" else t


# -- reshape ---------------------------------------------------------------------------------------------
def _reshape_chain(x: Tensor, shape: tuple, node) -> Tensor:
    """reshape(reshape(x, ·), shape): one reshape, to the outer node's shape where that is fully known."""
    out = node.outputs[0]
    return reshape(x, out.shape if static(out.shape) else shape)


def _reshape_noop(x: Tensor, shape: tuple) -> Tensor | None:
    """x itself when reshape(x, shape) keeps x's shape: equal known sizes, and at most one unknown size,
    where shape has its -1 (the element count then fixes it, unless a known size is 0)."""
    unknown = x.shape.count(None)
    same = tuple(None if d == -1 else d for d in shape) == x.shape
    return x if same and (unknown == 0 or (unknown == 1 and 0 not in x.shape)) else None


# -- transpose -------------------------------------------------------------------------------------------
def _permuted(x: Tensor, perm: tuple) -> Tensor:
    return x if perm == tuple(range(len(perm))) else transpose(x, perm)


def _transpose_chain(x: Tensor, inner: tuple, perm: tuple) -> Tensor:
    # output axis i of the outer transpose is inner axis perm[i], which is x's axis inner[perm[i]]
    return _permuted(x, tuple(inner[i] for i in perm))


# -- broadcasts ------------------------------------------------------------------------------------------
def _covered(small: Sequence[int | None], large: Sequence[int | None]) -> bool:
    """Whether stretching to ``small`` adds nothing that stretching to ``large`` does not: each size of small
    (aligned to the right) is 1 or the same known size as large's."""
    if len(small) > len(large):
        return False
    tail = large[len(large) - len(small):]
    return all(s == 1 or (s is not None and s == t) for s, t in zip(small, tail))


def _broadcast_like_static(x: Tensor, node) -> Tensor | None:
    out = node.outputs[0]
    return broadcast_to(x, out.shape) if static(out.shape) else None


def _broadcast_like_noop(x: Tensor, like: Tensor) -> Tensor | None:
    """x when x is not stretched: like lacks or has size 1 on every axis where x might be 1, or both are one
    run-time shape."""
    return x if not may_broadcast(x, [x, like]) or same_shape(x, like) else None


def _broadcast_chain(x: Tensor, middle: tuple, node) -> Tensor | None:
    """A broadcast of a broadcast of x: one broadcast of x, when the middle shape adds nothing that the outer
    broadcast's own target (broadcast_to's shape, broadcast_like's like) does not."""
    if node.op is BROADCAST_TO:
        target = node.attrs["shape"]
        return broadcast_to(x, target) if _covered(middle, target) else None
    like = node.inputs[1]
    return broadcast_like(x, like) if _covered(middle, like.shape) and x.ndim <= like.ndim else None


# -- expand_dims and squeeze -----------------------------------------------------------------------------
def _squeeze_expand_dims(x: Tensor, inserted: int, axis: tuple) -> Tensor | None:
    """squeeze(expand_dims(x, a), axes) with a among axes: the new axis is not made; the rest still go."""
    if inserted not in axis:
        return None
    rest = tuple(a if a < inserted else a - 1 for a in axis if a != inserted)
    return squeeze(x, rest) if rest else x


def _expand_dims_squeeze(x: Tensor, removed: tuple, axis: int) -> Tensor | None:
    """expand_dims(squeeze(x, axes), a) where a puts back one of the removed size-1 axes: that one is kept."""
    for s in removed:
        if x.shape[s] == 1 and s - sum(1 for t in removed if t < s) == axis:
            rest = tuple(t for t in removed if t != s)
            return squeeze(x, rest) if rest else x
    return None


# -- casts -----------------------------------------------------------------------------------------------
# dtype -> the dtypes that hold every one of its values exactly
_LOSSLESS = {
    "bool": {"bool", "int32", "int64", "float32", "float64"},
    "int32": {"int32", "int64", "float64"},
    "int64": {"int64"},
    "float32": {"float32", "float64"},
    "float64": {"float64"},
}


def _cast_chain(x: Tensor, middle: str, dtype: str) -> Tensor | None:
    if middle not in _LOSSLESS[x.dtype]:
        return None
    return x if dtype == x.dtype else ew.cast(x, dtype)


_COMMUTATIVE = (ew.add, ew.mul, ew.maximum, ew.minimum, ew.equal, ew.not_equal, ew.logical_and, ew.logical_or)


def _constant_second(op_function) -> Rule:
    """``op(c, x) → op(x, c)`` for a constant c and a non-constant x (two constants are left to folding)."""
    return Rule(f"{op_function.opdef.name}_constant_second", Op(op_function.opdef, Const(name="c"), x),
                lambda x, c: None if is_constant(x) else op_function(x, c))


middle, inner = Var("middle"), Var("inner")

RULES = RuleTable("canonicalize", [
    *(_constant_second(f) for f in _COMMUTATIVE),
    Rule("reshape_reshape", Op(RESHAPE, Op(RESHAPE, x), shape=shape), _reshape_chain),
    Rule("reshape_reshape", Op(RESHAPE, Op(RESHAPE_LIKE, x, inner), shape=shape),
         lambda x, inner, shape, node: _reshape_chain(x, shape, node)),
    Rule("reshape_reshape", Op(RESHAPE_LIKE, Op(RESHAPE, x), like), reshape_like),
    Rule("reshape_reshape", Op(RESHAPE_LIKE, Op(RESHAPE_LIKE, x, inner), like),
         lambda x, inner, like: reshape_like(x, like)),
    Rule("reshape_same_shape", Op(RESHAPE, x, shape=shape), _reshape_noop),
    Rule("reshape_same_shape", Op(RESHAPE_LIKE, x, like), lambda x, like: x if same_shape(x, like) else None),
    Rule("transpose_transpose", Op(TRANSPOSE, Op(TRANSPOSE, x, perm=inner), perm=perm), _transpose_chain),
    Rule("transpose_identity", Op(TRANSPOSE, x, perm=perm),
         lambda x, perm: x if perm == tuple(range(len(perm))) else None),
    Rule("broadcast_to_same_shape", Op(BROADCAST_TO, x, shape=shape),
         lambda x, shape: x if x.shape == shape else None),
    Rule("broadcast_like_same_shape", Op(BROADCAST_LIKE, x, like), _broadcast_like_noop),
    Rule("broadcast_like_static", Op(BROADCAST_LIKE, x, like), lambda x, like, node: _broadcast_like_static(x, node)),
    Rule("broadcast_broadcast", Op(BROADCAST_TO, Op(BROADCAST_TO, x, shape=middle)),
         lambda x, middle, node: _broadcast_chain(x, middle, node)),
    Rule("broadcast_broadcast", Op(BROADCAST_TO, Op(BROADCAST_LIKE, x, inner)),
         lambda x, inner, node: _broadcast_chain(x, node.inputs[0].shape, node)),
    Rule("broadcast_broadcast", Op(BROADCAST_LIKE, Op(BROADCAST_TO, x, shape=middle), like),
         lambda x, middle, like, node: _broadcast_chain(x, middle, node)),
    Rule("broadcast_broadcast", Op(BROADCAST_LIKE, Op(BROADCAST_LIKE, x, inner), like),
         lambda x, inner, like, node: _broadcast_chain(x, node.inputs[0].shape, node)),
    Rule("squeeze_expand_dims", Op(SQUEEZE, Op(EXPAND_DIMS, x, axis=inner), axis=axis),
         lambda x, inner, axis: _squeeze_expand_dims(x, inner, axis)),
    Rule("expand_dims_squeeze", Op(EXPAND_DIMS, Op(SQUEEZE, x, axis=inner), axis=axis),
         lambda x, inner, axis: _expand_dims_squeeze(x, inner, axis)),
    Rule("squeeze_nothing", Op(SQUEEZE, x, axis=()), lambda x: x),
    Rule("cast_same_dtype", Op(ew.CAST, x, dtype=dtype), lambda x, dtype: x if x.dtype == dtype else None),
    Rule("cast_cast", Op(ew.CAST, Op(ew.CAST, x, dtype=middle), dtype=dtype), _cast_chain),
    Rule("neg_neg", Op(ew.NEG, Op(ew.NEG, x)), lambda x: x),
])
