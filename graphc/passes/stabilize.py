"""Stabilization: numerically fragile spellings become the stable ops that compute the same function.

Forward rules (each fires wherever its local form appears: written by the user, exposed by another pass,
or inside a gradient graph; the pipeline repeats to a fixed point, so rules chain across rounds):

- ``softmax_by_hand``: exp(z) / Σ exp(z) over one axis (keepdims, or expand_dims of the sum) → softmax(z);
  ``softmax_unshift`` / ``log_softmax_unshift``: softmax(z − max z) → softmax(z) (the op shifts itself, so
  exp(z − max z) / Σ exp(z − max z) ends as softmax(z) too);
- ``log_softmax``: log(softmax(z)) → log_softmax(z), so log(exp(z)/Σ exp(z)) ends as log_softmax(z);
  ``log_softmax_by_hand``: z − log Σ exp(z) and z − logsumexp(z) → log_softmax(z);
- ``log1p``: log(1 + x), log(x + 1) → log1p(x), and log(1 − x) → log1p(−x); ``expm1``: exp(x) − 1 → expm1(x);
- ``log_sigmoid``: log(sigmoid(x)) → −softplus(−x); ``log_one_minus_sigmoid``: log1p(−sigmoid(x)) (which
  log(1 − sigmoid(x)) becomes) → −softplus(x);
- ``softmax_cross_entropy``: Σ onehot·log_softmax(z) over the class axis (alone or with more axes) →
  −softmax_cross_entropy(z, onehot) (summed over the other axes), whose sign cancels the user's minus in a
  later round (canonicalize's neg_neg), also through a mean (``cross_entropy_mean_sign``: mean(−loss) →
  −mean(loss)); Σ(−onehot)·log_softmax(z) → softmax_cross_entropy(z, onehot) directly. Rooted at the sum,
  not at the minus, because simplify folds a minus into a subtraction (a − Σ… stays a − Σ…).

Gradient rules: a gradient built from a fragile forward spelling is fragile too (1/softmax(z) is inf where
the softmax underflows, exp(z) is inf at z = 1000), and the forward rewrite does not reach it, because the
gradient nodes use the forward's inputs, not its output. These rules match the vjp spellings of
graphc/ops (the chain rule's ``mul_no_nan(partial, cotangent)``) and give the stable op's gradient:

- ``softmax_grad_by_hand``: the vjp of exp(z)/Σ exp(z) → the softmax vjp s·(g − Σ g·s);
- ``log_softmax_grad``: the softmax vjp of the log's cotangent g/s → g − s·Σ g (log_softmax's vjp);
- ``log_sigmoid_grad``: σ(1 − σ)·(g/σ) → σ(−x)·g; ``log_one_minus_sigmoid_grad``: σ(1 − σ)·(−g/(1 − σ)) → −σ·g.

The gradient rules follow the vjp spellings of graphc/ops and the canonical forms of canonicalize and
simplify (constants second, sum_to → reduce_sum, broadcast_like → broadcast_to where shapes are known, a
cotangent times a constant as a plain product); a change there stops them firing, which the gradient tests
in tests/passes/test_stabilize.py catch.

Semantics: each replacement equals the original in exact arithmetic for every input, and gives the same
NaN and ±inf where the original's fragility is not involved (a NaN or inf input propagates alike); it
differs where the original overflowed, underflowed or cancelled (inf/inf = NaN, log(0) = −inf, 1 + 1e-17
= 1), giving the exact value instead: that is the point of the pass (verify mode accepts such
improvements). A builder declines (None) when its result would not have the matched tensor's dtype and
static shape.

Not done: hand-written *sparse* cross-entropy (onehot = one_hot(labels)) stays a dense
softmax_cross_entropy: sparse_softmax_cross_entropy raises on a label outside [0, classes), where one_hot
gives a row of zeros (loss 0), so the rewrite would change behaviour on such inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from graphc.graph.node import Tensor
from graphc.ops.broadcast import BROADCAST_LIKE, MATCH_SHAPE, SUM_TO, broadcast_like, may_broadcast
from graphc.ops.elementwise import (
    ADD,
    DIV,
    EXP,
    LOG,
    LOG1P,
    MUL,
    MUL_NO_NAN,
    NEG,
    SIGMOID,
    STOP_GRADIENT,
    SUB,
    expm1,
    log1p,
    mul_no_nan,
    neg,
    sigmoid,
    softplus,
)
from graphc.ops.nn import LOG_SOFTMAX, SOFTMAX, SOFTMAX_CROSS_ENTROPY, log_softmax, softmax, softmax_cross_entropy
from graphc.ops.reduce import LOGSUMEXP, MAX, MEAN, SUM, reduce_mean, reduce_sum
from graphc.ops.registry import OpDef
from graphc.ops.shape import BROADCAST_TO, EXPAND_DIMS, SQUEEZE
from graphc.passes.patterns import Bindings, Const, Op, Pattern, Rule, RuleTable, Var


# -- pattern helpers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Either(Pattern):
    """Matches when one of ``alternatives`` does (the first that does binds; a failed one binds nothing)."""

    alternatives: tuple[Pattern, ...]

    def match(self, value: Any, bindings: Bindings) -> bool:
        for alternative in self.alternatives:
            trial = dict(bindings)
            if alternative.match(value, trial):
                bindings.update(trial)
                return True
        return False


@dataclass(frozen=True)
class Named(Pattern):
    """Matches ``pattern`` and binds the matched tensor to ``name`` (a later ``Var(name)`` is that tensor)."""

    name: str
    pattern: Pattern

    def match(self, value: Any, bindings: Bindings) -> bool:
        return self.pattern.match(value, bindings) and Var(self.name).match(value, bindings)


def _swapped(op: OpDef, a: Pattern, b: Pattern) -> list[Op]:
    """Both operand orders of a commutative binary op (canonicalization may have reordered them)."""
    return [Op(op, a, b), Op(op, b, a)]


def _plus(a: Pattern, b: Pattern) -> list[Op]:
    return _swapped(ADD, a, b)


def _times(a: Pattern, b: Pattern) -> list[Op]:
    return _swapped(MUL, a, b)


def _either(patterns: Sequence[Pattern]) -> Either:
    return Either(tuple(patterns))


def _axis_sum(x: Pattern, axis: str) -> Either:
    """Σ x over the axes bound to ``axis``, keeping them: keepdims=True, or expand_dims of the plain sum."""
    return Either((Op(SUM, x, axis=Var(axis), keepdims=True),
                   Op(EXPAND_DIMS, Op(SUM, x, axis=Var(axis), keepdims=False), axis=Var(axis + "_kept"))))


def _reciprocal(x: Pattern) -> Op:
    return Op(DIV, Const(1), x)


def _rules(name: str, patterns: Sequence[Pattern], build: Callable[..., Tensor | None]) -> list[Rule]:
    """One rule per root pattern, all named ``name``, whose results are checked against the matched tensor."""
    caller = sys._getframe(1)
    where = f"{caller.f_code.co_filename}:{caller.f_lineno}"

    def checked(node, **bindings: Any) -> Tensor | None:
        return _fits(build(**bindings), node.outputs[0])

    checked.__name__ = getattr(build, "__name__", name)
    return [Rule(name, pattern, checked, where=where) for pattern in patterns]


def _fits(new: Tensor | None, old: Tensor) -> Tensor | None:
    """``new`` if it can replace ``old``: same dtype and rank, and the same size wherever ``old``'s is known."""
    if new is None or new.dtype != old.dtype or new.ndim != old.ndim:
        return None
    same = all(o is None or n == o for n, o in zip(new.shape, old.shape))
    return new if same else None


# -- checks shared by the builders ----------------------------------------------------------------------
def _one_axis(axes: tuple, kept: int | None = None) -> int | None:
    """The axis of a reduction over exactly one axis (whose expand_dims, if any, put it back in place)."""
    if len(axes) != 1 or (kept is not None and kept != axes[0]):
        return None
    return axes[0]


def _unshifted(shifted: Tensor, axis: int) -> Tensor | None:
    """z, if ``shifted`` is z − max(z) over ``axis`` (keepdims or expand_dims; maybe under stop_gradient).

    (simplify spells z + (−m) as z − m, so only sub is looked at.)
    """
    if shifted.node.op is not SUB:
        return None
    z, m = shifted.node.inputs
    if m.node.op is STOP_GRADIENT:
        m = m.node.inputs[0]
    kept = m.node.op is MAX and m.node.attrs["keepdims"]
    if m.node.op is EXPAND_DIMS and m.node.attrs["axis"] == axis:
        m = m.node.inputs[0]
        kept = m.node.op is MAX and not m.node.attrs["keepdims"]
    return z if kept and m.node.inputs[0] is z and m.node.attrs["axis"] == (axis,) else None


# -- softmax and log_softmax ------------------------------------------------------------------------------
def _softmax_by_hand(z: Tensor, axis: tuple, axis_kept: int | None = None, **_: Any) -> Tensor | None:
    a = _one_axis(axis, axis_kept)
    return None if a is None else softmax(z, a)


def _unshift(op: Callable[..., Tensor]) -> Callable[..., Tensor | None]:
    def build(shifted: Tensor, axis: int) -> Tensor | None:
        z = _unshifted(shifted, axis)
        return None if z is None else op(z, axis)

    return build


def _log_softmax_by_hand(z: Tensor, axis: tuple, axis_kept: int | None = None) -> Tensor | None:
    a = _one_axis(axis, axis_kept)
    return None if a is None else log_softmax(z, a)


_EXP_Z = Named("e", Op(EXP, Var("z")))
_LOGSUMEXP = Either((Op(LOG, _axis_sum(Op(EXP, Var("z")), "axis")),
                     Op(LOGSUMEXP, Var("z"), axis=Var("axis"), keepdims=True),
                     Op(EXPAND_DIMS, Op(LOGSUMEXP, Var("z"), axis=Var("axis"), keepdims=False),
                        axis=Var("axis_kept"))))

SOFTMAX_RULES = [
    *_rules("softmax_by_hand", [Op(DIV, _EXP_Z, _axis_sum(Var("e"), "axis"))], _softmax_by_hand),
    *_rules("softmax_unshift", [Op(SOFTMAX, Var("shifted"), axis=Var("axis"))], _unshift(softmax)),
    *_rules("log_softmax", [Op(LOG, Op(SOFTMAX, Var("z"), axis=Var("axis")))],
            lambda z, axis: log_softmax(z, axis)),
    *_rules("log_softmax_by_hand", [Op(SUB, Var("z"), _LOGSUMEXP)], _log_softmax_by_hand),
    *_rules("log_softmax_unshift", [Op(LOG_SOFTMAX, Var("shifted"), axis=Var("axis"))], _unshift(log_softmax)),
]


# -- log1p, expm1, log of sigmoid -------------------------------------------------------------------------
ELEMENTWISE_RULES = [
    *_rules("log_sigmoid", [Op(LOG, Op(SIGMOID, Var("x")))], lambda x: neg(softplus(neg(x)))),
    *_rules("log1p", [Op(LOG, _either(_plus(Var("x"), Const(1))))], log1p),
    *_rules("log1p", [Op(LOG, Op(SUB, Const(1), Var("x")))], lambda x: log1p(neg(x))),
    *_rules("log_one_minus_sigmoid", [Op(LOG1P, Op(NEG, Op(SIGMOID, Var("x"))))], lambda x: neg(softplus(x))),
    *_rules("expm1", [Op(SUB, Op(EXP, Var("x")), Const(1)), *_plus(Op(EXP, Var("x")), Const(-1))], expm1),
]


# -- softmax cross-entropy --------------------------------------------------------------------------------
def _cross_entropy(z: Tensor, onehot: Tensor, axis: int) -> Tensor | None:
    """softmax_cross_entropy(z, onehot) for Σ onehot·log_softmax(z) over ``axis``, or None.

    The op takes operands of one shape while the product broadcasts: broadcasting z along the other axes
    repeats whole softmax slices, so it is done explicitly; along the class axis it would change the softmax,
    so the class sizes must be known and equal.
    """
    if z.ndim != onehot.ndim or z.shape[axis] is None or z.shape[axis] != onehot.shape[axis]:
        return None
    if may_broadcast(z, [z, onehot]):
        z = broadcast_like(z, onehot)
    if may_broadcast(onehot, [z, onehot]):
        onehot = broadcast_like(onehot, z)
    return softmax_cross_entropy(z, onehot, axis)


def _other_axes(axes: tuple, axis: int) -> tuple:
    """``axes`` without ``axis``, renumbered for a tensor that lost ``axis``."""
    return tuple(b - (b > axis) for b in axes if b != axis)


def _cross_entropy_sum(z: Tensor, onehot: Tensor, softmax_axis: int, axes: tuple, negated: bool) -> Tensor | None:
    """Σ ±onehot·log_softmax(z) over ``axes`` (the class axis among them) as ∓softmax_cross_entropy."""
    loss = _cross_entropy(z, onehot, softmax_axis) if softmax_axis in axes else None
    if loss is None:
        return None
    rest = _other_axes(axes, softmax_axis)
    total = reduce_sum(loss, rest) if rest else loss
    return total if negated else neg(total)


_LOG_SOFTMAX_Z = Op(LOG_SOFTMAX, Var("z"), axis=Var("softmax_axis"))


def _summed(onehot: Pattern) -> Op:
    return Op(SUM, _either(_times(onehot, _LOG_SOFTMAX_Z)), axis=Var("axes"), keepdims=False)


CROSS_ENTROPY_RULES = [
    *_rules("softmax_cross_entropy", [_summed(Var("onehot"))],
            lambda **bound: _cross_entropy_sum(**bound, negated=False)),
    *_rules("softmax_cross_entropy", [_summed(Op(NEG, Var("onehot")))],
            lambda **bound: _cross_entropy_sum(**bound, negated=True)),
    # −mean(Σ onehot·log_softmax) has become −mean(−loss): the mean takes the sign out, so the two cancel
    *_rules("cross_entropy_mean_sign",
            [Op(MEAN, Op(NEG, Named("loss", Op(SOFTMAX_CROSS_ENTROPY, Var("z"), Var("onehot"), axis=Var("a")))),
                axis=Var("axes"), keepdims=Var("keepdims"))],
            lambda loss, axes, keepdims, **_: neg(reduce_mean(loss, axes, keepdims))),
]


# -- gradient graphs --------------------------------------------------------------------------------------
def _softmax_vjp(s: Tensor, cotangent: Tensor, axis: int) -> Tensor:
    """s·(g − Σ g·s): the vjp of softmax, spelled as graphc.ops.nn builds it (so ``log_softmax_grad`` sees it)."""
    return s * (cotangent - reduce_sum(cotangent * s, axis, keepdims=True))


def _log_softmax_grad(s: Tensor, g: Tensor, softmax_axis: int, axis: tuple, **_: Any) -> Tensor | None:
    # s·(g/s − Σ (g/s)·s) = g − s·Σ g: no division by a softmax that underflowed to 0
    return g - s * reduce_sum(g, softmax_axis, keepdims=True) if axis == (softmax_axis,) else None


def _softmax_grad_by_hand(e: Tensor, s: Tensor, w: Tensor, cotangent: Tensor, softmax_axis: int, axis: tuple,
                          axis_kept: int | None = None, **attrs: Any) -> Tensor | None:
    # e·(A/S − Σ(s·A)/S) with S = Σ e and s = e/S is s·(A − Σ A·s): exp(z) and S (inf at z = 1000) drop out
    a, z = _one_axis(axis, axis_kept), e.node.inputs[0]
    moved_back = attrs.get("squeezed", (a,)) == (a,) and attrs.get("expanded", a) == a
    if a != softmax_axis or e.node.op is not EXP or not moved_back or attrs.get("shape", e.shape) != e.shape:
        return None
    if z is not w and _unshifted(z, a) is not w:
        return None
    return _softmax_vjp(s, cotangent, a)


_SOFTMAX_S = Named("s", Op(SOFTMAX, Var("w"), axis=Var("softmax_axis")))


def _over(x: Pattern) -> Either:
    """g·(1/x), the vjp of log(x): mul_no_nan(1/x, g), or a plain product once simplify made it one."""
    return _either([Op(MUL_NO_NAN, _reciprocal(x), Var("g")), *_times(_reciprocal(x), Var("g"))])


# s·(c − Σ c·s), the softmax vjp, of the cotangent c = g/s that log(s) sends back
_LOG_COTANGENT = Named("c", _over(_SOFTMAX_S))
_PROJECTED = Op(SUB, _LOG_COTANGENT, Op(SUM, _either(_times(Var("c"), Var("s"))), axis=Var("axis"), keepdims=True))

# the cotangent of e = exp(z) in e/S with S = Σ e (kept axis): A/S from the quotient, plus −Σ(s·A)/S spread
# back from S's, where s = e/S has become softmax(z) by the time this is seen
_SUM_E = Named("S", _axis_sum(Var("e"), "axis"))
_FROM_QUOTIENT = Op(MUL_NO_NAN, _reciprocal(_SUM_E), Var("cotangent"))
_SUMMAND = Op(MUL_NO_NAN, _either([Op(DIV, Op(NEG, _SOFTMAX_S), Var("S")), Op(NEG, Op(DIV, _SOFTMAX_S, Var("S")))]),
              Var("cotangent"))
_SUMMED = Op(SUM, _SUMMAND, axis=Var("axis"), keepdims=True)
# summed to S's shape: by sum_to, a reduce_sum, or (unknown sizes assumed equal by simplify) a checked one
_TO_SUM = _either([Op(SUM_TO, _SUMMAND, Var("S")), _SUMMED, Op(MATCH_SHAPE, _SUMMED, Var("S"))])
_KEPT_BACK = _either([_TO_SUM, Op(EXPAND_DIMS, Op(SQUEEZE, _TO_SUM, axis=Var("squeezed")), axis=Var("expanded"))])
_FROM_SUM = _either([Op(BROADCAST_LIKE, _KEPT_BACK, Var("e")), Op(BROADCAST_TO, _KEPT_BACK, shape=Var("shape"))])
# A/S summed back to e's shape where e may have been broadcast (unknown sizes): an identity at run time
# (match_shape once simplify assumed the unknown sizes equal)
_FROM_QUOTIENT_BACK = _either([_FROM_QUOTIENT, Op(SUM_TO, _FROM_QUOTIENT, Var("e")),
                               Op(MATCH_SHAPE, _FROM_QUOTIENT, Var("e"))])


def _by_hand_softmax_grad_patterns() -> list[Op]:
    """e·(both parts), or e·(one part) + e·(the other) when the user wrote exp(z) twice (CSE merged them)."""
    both = [Op(MUL_NO_NAN, Var("e"), _either(_plus(_FROM_QUOTIENT_BACK, _FROM_SUM)))]
    split = _plus(Op(MUL_NO_NAN, Var("e"), _FROM_QUOTIENT_BACK), Op(MUL_NO_NAN, Var("e"), _FROM_SUM))
    return both + split


_SIGMOID = Named("s", Op(SIGMOID, Var("x")))
_SIGMOID_PARTIAL = _either(_times(_SIGMOID, Op(SUB, Const(1), Var("s"))))  # σ·(1 − σ)

GRADIENT_RULES = [
    *_rules("softmax_grad_by_hand", _by_hand_softmax_grad_patterns(), _softmax_grad_by_hand),
    *_rules("log_softmax_grad", _times(Var("s"), _PROJECTED), _log_softmax_grad),
    *_rules("log_sigmoid_grad", [Op(MUL_NO_NAN, _SIGMOID_PARTIAL, _over(Var("s")))],
            lambda x, g, s: mul_no_nan(sigmoid(neg(x)), g)),
    *_rules("log_one_minus_sigmoid_grad",
            [Op(MUL_NO_NAN, _SIGMOID_PARTIAL, Op(NEG, _over(Op(SUB, Const(1), Var("s")))))],
            lambda x, g, s: neg(mul_no_nan(s, g))),
]

RULES = RuleTable("stabilize", SOFTMAX_RULES + ELEMENTWISE_RULES + CROSS_ENTROPY_RULES + GRADIENT_RULES)
