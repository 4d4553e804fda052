"""Elementwise ops: arithmetic, math functions, activations, comparisons, logic, where, cast, clip.

Every op here maps input element i (after numpy broadcasting) to output element i. Operands are brought
to one dtype by the builders (``common_operands``), so the shape rule only broadcasts and checks the dtype
family. Each op is one ``OpDef`` plus its public function; its ``scalar`` (``sc``: graphc.ops.scalar) says
what one output element is, for the compiled backends and the sympy bridge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.errors import DTypeError
from graphc.graph.dtypes import ALL, FLOATS, NUMERIC, as_dtype
from graphc.graph.node import Node, Tensor
from graphc.graph.types import TensorType, broadcast_shapes
from graphc.ops import scalar as sc
from graphc.ops.broadcast import unbroadcast
from graphc.ops.chain import Partial, partials_rules
from graphc.ops.convert import as_tensor, common_operands
from graphc.ops.registry import OpDef, apply, register

__all__ = [
    "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "softplus",
    "gelu", "erf", "neg", "abs", "sign", "square", "relu", "logical_not", "stop_gradient", "zeros_like",
    "ones_like", "add", "sub", "mul", "mul_no_nan", "div", "pow", "maximum", "minimum", "equal", "not_equal",
    "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "leaky_relu", "elu",
    "where", "clip", "cast",
]

_BOOL = frozenset({"bool"})


def _check_dtypes(op_name: str, accepted: frozenset, *types: TensorType) -> None:
    for t in types:
        if t.dtype not in accepted:
            raise DTypeError(f"{op_name} does not accept {t.dtype} (accepts {', '.join(sorted(accepted))})")


def _elementwise_rule(op_name: str, accepted: frozenset, result: str | None) -> Callable[..., TensorType]:
    """Shape rule shared by elementwise ops: broadcast the shapes, check dtypes, pick the result dtype."""

    def infer(*types: TensorType, **attrs: Any) -> TensorType:
        _check_dtypes(op_name, accepted, *types)
        if len({t.dtype for t in types}) > 1:
            raise DTypeError(f"{op_name} operands must share a dtype, got {[t.dtype for t in types]}")
        return TensorType(result or types[0].dtype, broadcast_shapes(*(t.shape for t in types)))

    return infer


def _elementwise(name: str, reference: Callable, accepted: frozenset = FLOATS, result: str | None = None,
                 doc: str = "", partials: Sequence[Partial] | None = None,
                 infer: Callable[..., TensorType] | None = None, scalar: Callable[..., sc.Expr] | None = None
                 ) -> OpDef:
    """Register an elementwise op; ``partials`` (one per input, see graphc.ops.chain) give its vjp and jvp,
    ``scalar`` its expression in the scalar IR."""
    vjp, jvp = partials_rules(partials) if partials is not None else (None, None)
    return register(OpDef(name, "elementwise", infer or _elementwise_rule(name, accepted, result), reference,
                          elementwise=True, vjp=vjp, jvp=jvp, scalar=scalar, doc=doc))


def _as(dtype_of: Tensor, condition: Tensor) -> Tensor:
    """A bool condition as 1/0 in the dtype of ``dtype_of`` (a derivative that is 1 where it holds)."""
    return cast(condition, dtype_of.dtype)


def _unary_function(op: OpDef) -> Callable[..., Tensor]:
    def function(x: Any, name: str | None = None) -> Tensor:
        return apply(op, [as_tensor(x)], name)

    function.__name__ = function.__qualname__ = op.name
    function.__doc__ = op.doc
    function.opdef = op
    return function


def _binary_function(op: OpDef) -> Callable[..., Tensor]:
    def function(x: Any, y: Any, name: str | None = None) -> Tensor:
        return apply(op, common_operands(x, y), name)

    function.__name__ = function.__qualname__ = op.name
    function.__doc__ = op.doc
    function.opdef = op
    return function


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive argument only: no overflow for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _sigmoid_scalar(e: sc.Expr, x: sc.Expr) -> sc.Expr:
    # the reference's formula, with e = exp(−|x|) computed once
    return sc.select(x >= 0, 1 / (1 + e), e / (1 + e))


_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


def _erf_reference(x: np.ndarray) -> np.ndarray:
    return np.asarray(_erf(x.astype(np.float64)), dtype=np.float64).astype(x.dtype)


def _gelu(x: np.ndarray) -> np.ndarray:
    # exact GELU, x * Phi(x), evaluated in float64 then rounded once
    wide = x.astype(np.float64)
    erf = np.asarray(_erf(wide * _SQRT_HALF), dtype=np.float64)
    return (0.5 * wide * (1 + erf)).astype(x.dtype)


def _div_infer(x: TensorType, y: TensorType) -> TensorType:
    same = _elementwise_rule("div", NUMERIC, None)(x, y)
    return TensorType(same.dtype if same.dtype in FLOATS else "float64", same.shape)


def _div_scalar(x: sc.Expr, y: sc.Expr) -> sc.Expr:
    # integer operands divide as float64, the dtype _div_infer gives them
    return x / y if x.dtype in FLOATS else sc.cast(x, "float64") / sc.cast(y, "float64")


# -- unary math (floats) ---------------------------------------------------------------------------------
EXP = _elementwise("exp", np.exp, doc="e to the power x.", partials=[lambda x, out: out], scalar=sc.exp)
LOG = _elementwise("log", np.log, doc="Natural logarithm (−inf at 0, NaN below).", partials=[lambda x, out: 1 / x],
                   scalar=sc.log)
LOG1P = _elementwise("log1p", np.log1p, doc="log(1 + x), accurate for small x.",
                     partials=[lambda x, out: 1 / (1 + x)], scalar=sc.log1p)
EXPM1 = _elementwise("expm1", np.expm1, doc="exp(x) − 1, accurate for small x.",
                     partials=[lambda x, out: exp(x)], scalar=sc.expm1)
SQRT = _elementwise("sqrt", np.sqrt, doc="Square root.", partials=[lambda x, out: 0.5 / out], scalar=sc.sqrt)
RSQRT = _elementwise("rsqrt", lambda x: 1 / np.sqrt(x), doc="1 / sqrt(x).",
                     partials=[lambda x, out: -0.5 * out / x], scalar=lambda x: 1 / sc.sqrt(x))
SIN = _elementwise("sin", np.sin, doc="Sine.", partials=[lambda x, out: cos(x)], scalar=sc.sin)
COS = _elementwise("cos", np.cos, doc="Cosine.", partials=[lambda x, out: -sin(x)], scalar=sc.cos)
TAN = _elementwise("tan", np.tan, doc="Tangent.", partials=[lambda x, out: 1 + square(out)], scalar=sc.tan)
TANH = _elementwise("tanh", np.tanh, doc="Hyperbolic tangent.", partials=[lambda x, out: 1 - square(out)],
                    scalar=sc.tanh)
SIGMOID = _elementwise("sigmoid", _sigmoid, doc="Logistic sigmoid 1 / (1 + exp(−x)), overflow-free.",
                       partials=[lambda x, out: out * (1 - out)],
                       scalar=lambda x: _sigmoid_scalar(sc.exp(-sc.abs(x)), x))
SOFTPLUS = _elementwise("softplus", lambda x: np.logaddexp(0, x), doc="log(1 + exp(x)), overflow-free.",
                        partials=[lambda x, out: sigmoid(x)],
                        scalar=lambda x: sc.maximum(x, 0) + sc.log1p(sc.exp(-sc.abs(x))))
GELU = _elementwise("gelu", _gelu, doc="Exact GELU: x·Φ(x) with Φ the standard normal CDF.",
                    partials=[lambda x, out: 0.5 * (1 + erf(x * _SQRT_HALF))
                              + x * exp(-0.5 * square(x)) * _INV_SQRT_2PI],
                    scalar=lambda x: 0.5 * x * (1 + sc.erf(x * sc.SQRT_HALF)))
ERF = _elementwise("erf", _erf_reference, doc="The error function 2/√π ∫₀ˣ exp(−t²) dt.",
                   partials=[lambda x, out: _TWO_OVER_SQRT_PI * exp(-square(x))], scalar=sc.erf)

# -- unary arithmetic (ints and floats) -------------------------------------------------------------------
NEG = _elementwise("neg", np.negative, NUMERIC, doc="−x.", partials=[-1], scalar=sc.neg)
ABS = _elementwise("abs", np.abs, NUMERIC, doc="|x| (derivative sign(x), 0 at 0).", partials=[lambda x, out: sign(x)],
                   scalar=sc.abs)
SIGN = _elementwise("sign", np.sign, NUMERIC, doc="−1, 0 or 1 (NaN stays NaN); its derivative is 0.",
                    partials=[None], scalar=lambda x: sc.select(x > 0, 1, sc.select(x < 0, -1, x)))
SQUARE = _elementwise("square", np.square, NUMERIC, doc="x².", partials=[lambda x, out: 2 * x],
                      scalar=lambda x: x * x)
RELU = _elementwise("relu", lambda x: np.maximum(x, 0).astype(x.dtype), NUMERIC,
                    doc="max(x, 0) (derivative 0 at 0).", partials=[lambda x, out: _as(x, x > 0)],
                    scalar=lambda x: sc.maximum(x, 0))

# -- parametrized activations ----------------------------------------------------------------------------
LEAKY_RELU = _elementwise("leaky_relu", lambda x, *, alpha: np.where(x > 0, x, x * x.dtype.type(alpha)),
                          doc="x for x > 0, alpha·x otherwise.",
                          partials=[lambda x, out, *, alpha: where(x > 0, ones_like(x), alpha * ones_like(x))],
                          scalar=lambda x, *, alpha: sc.select(x > 0, x, x * alpha))
ELU = _elementwise("elu", lambda x, *, alpha: np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(x)),
                   doc="x for x > 0, alpha·(exp(x) − 1) otherwise.",
                   partials=[lambda x, out, *, alpha: where(x > 0, ones_like(x), out + alpha)],
                   scalar=lambda x, *, alpha: sc.select(x > 0, x, alpha * sc.expm1(x)))

# -- binary arithmetic ------------------------------------------------------------------------------------
ADD = _elementwise("add", np.add, NUMERIC, doc="x + y.", partials=[1, 1], scalar=sc.add)
SUB = _elementwise("sub", np.subtract, NUMERIC, doc="x − y.", partials=[1, -1], scalar=sc.sub)
MUL = _elementwise("mul", np.multiply, NUMERIC, doc="x · y.", partials=[lambda x, y, out: y, lambda x, y, out: x],
                   scalar=sc.mul)
MUL_NO_NAN = _elementwise(
    "mul_no_nan", lambda x, y: np.where(y == 0, np.zeros_like(x * y), x * y), FLOATS,
    doc="x · y, but 0 wherever y is 0 (even where x is inf or NaN): how derivatives meet cotangents.",
    partials=[lambda x, y, out: y, lambda x, y, out: x], scalar=lambda x, y: sc.select(sc.eq(y, 0), 0, x * y))
DIV = _elementwise("div", np.true_divide, NUMERIC, infer=_div_infer,
                   doc="True division x / y; integer operands give float64 (as TF1's truediv).",
                   partials=[lambda x, y, out: 1 / y, lambda x, y, out: -out / y], scalar=_div_scalar)
POW = _elementwise("pow", np.power, NUMERIC, doc="x to the power y (∂/∂y taken as 0 where x is 0).",
                   partials=[lambda x, y, out: y * pow(x, y - 1),
                             lambda x, y, out: where(equal(x, 0), zeros_like(out), out * log(x))],
                   scalar=sc.pow)
MAXIMUM = _elementwise("maximum", np.maximum, NUMERIC,
                       doc="Elementwise max (NaN propagates; on a tie the derivative goes to x).",
                       partials=[lambda x, y, out: _as(x, x >= y), lambda x, y, out: _as(x, x < y)],
                       scalar=sc.maximum)
MINIMUM = _elementwise("minimum", np.minimum, NUMERIC,
                       doc="Elementwise min (NaN propagates; on a tie the derivative goes to x).",
                       partials=[lambda x, y, out: _as(x, x <= y), lambda x, y, out: _as(x, x > y)],
                       scalar=sc.minimum)

# -- comparisons and logic --------------------------------------------------------------------------------
EQUAL = _elementwise("equal", np.equal, ALL, "bool", doc="x == y.", scalar=sc.eq)
NOT_EQUAL = _elementwise("not_equal", np.not_equal, ALL, "bool", doc="x != y.", scalar=sc.ne)
LESS = _elementwise("less", np.less, NUMERIC, "bool", doc="x < y.", scalar=sc.lt)
LESS_EQUAL = _elementwise("less_equal", np.less_equal, NUMERIC, "bool", doc="x <= y.", scalar=sc.le)
GREATER = _elementwise("greater", np.greater, NUMERIC, "bool", doc="x > y.", scalar=sc.gt)
GREATER_EQUAL = _elementwise("greater_equal", np.greater_equal, NUMERIC, "bool", doc="x >= y.", scalar=sc.ge)
LOGICAL_AND = _elementwise("logical_and", np.logical_and, _BOOL, doc="x and y.", scalar=sc.logical_and)
LOGICAL_OR = _elementwise("logical_or", np.logical_or, _BOOL, doc="x or y.", scalar=sc.logical_or)
LOGICAL_NOT = _elementwise("logical_not", np.logical_not, _BOOL, doc="not x.", scalar=sc.logical_not)


def _where_infer(cond: TensorType, x: TensorType, y: TensorType) -> TensorType:
    _check_dtypes("where", _BOOL, cond)
    if x.dtype != y.dtype:
        raise DTypeError(f"where branches must share a dtype, got {x.dtype} and {y.dtype}")
    return TensorType(x.dtype, broadcast_shapes(cond.shape, x.shape, y.shape))


def _where_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor | None, ...]:
    # the branch not taken gets an exact 0, which the chain rule keeps 0 (see graphc.ops.chain)
    condition, x, y = node.inputs
    zero = zeros_like(cotangent)
    return (None, unbroadcast(where(condition, cotangent, zero), x, node.inputs),
            unbroadcast(where(condition, zero, cotangent), y, node.inputs))


def _where_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
    condition, x, y = node.inputs
    _, tx, ty = tangents
    if tx is None and ty is None:
        return None
    return where(condition, zeros_like(x) if tx is None else tx, zeros_like(y) if ty is None else ty)


WHERE = register(OpDef("where", "elementwise", _where_infer, np.where, elementwise=True, vjp=_where_vjp,
                       jvp=_where_jvp, scalar=sc.select, doc="x where cond is true, else y (broadcasting all three)."))

CLIP = _elementwise("clip", lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), NUMERIC,
                    doc="min(max(x, lo), hi), broadcasting the bounds.",
                    partials=[lambda x, lo, hi, out: _as(x, logical_and(x >= lo, x <= hi)),
                              lambda x, lo, hi, out: _as(x, x < lo),
                              lambda x, lo, hi, out: _as(x, x > hi)],
                    scalar=lambda x, lo, hi: sc.minimum(sc.maximum(x, lo), hi))

CAST = register(OpDef(
    "cast", "elementwise",
    infer=lambda x, *, dtype: TensorType(dtype, x.shape),
    reference=lambda x, *, dtype: x.astype(dtype),
    elementwise=True,
    vjp=lambda node, cotangent: (cast(cotangent, node.inputs[0].dtype),),
    jvp=lambda node, tangents: None if tangents[0] is None else cast(tangents[0], node.attrs["dtype"]),
    scalar=sc.cast,
    doc="x converted to dtype (floats to ints truncate toward zero, as C and numpy do)."))

STOP_GRADIENT = _elementwise("stop_gradient", lambda x: x, ALL, partials=[None], scalar=lambda x: x,
                             doc="Identity in value; gradients do not flow through it.")
ZEROS_LIKE = _elementwise("zeros_like", np.zeros_like, ALL, doc="Zeros of x's shape and dtype.", partials=[None],
                          scalar=lambda x: sc.constant(0, x.dtype))
ONES_LIKE = _elementwise("ones_like", np.ones_like, ALL, doc="Ones of x's shape and dtype.", partials=[None],
                         scalar=lambda x: sc.constant(1, x.dtype))

exp = _unary_function(EXP)
log = _unary_function(LOG)
log1p = _unary_function(LOG1P)
expm1 = _unary_function(EXPM1)
sqrt = _unary_function(SQRT)
rsqrt = _unary_function(RSQRT)
sin = _unary_function(SIN)
cos = _unary_function(COS)
tan = _unary_function(TAN)
tanh = _unary_function(TANH)
sigmoid = _unary_function(SIGMOID)
softplus = _unary_function(SOFTPLUS)
gelu = _unary_function(GELU)
erf = _unary_function(ERF)
neg = _unary_function(NEG)
abs = _unary_function(ABS)  # noqa: A001 - the API name; the builtin is shadowed only in this module
sign = _unary_function(SIGN)
square = _unary_function(SQUARE)
relu = _unary_function(RELU)
logical_not = _unary_function(LOGICAL_NOT)
stop_gradient = _unary_function(STOP_GRADIENT)
zeros_like = _unary_function(ZEROS_LIKE)
ones_like = _unary_function(ONES_LIKE)

add = _binary_function(ADD)
sub = _binary_function(SUB)
mul = _binary_function(MUL)
mul_no_nan = _binary_function(MUL_NO_NAN)
div = _binary_function(DIV)
pow = _binary_function(POW)  # noqa: A001
maximum = _binary_function(MAXIMUM)
minimum = _binary_function(MINIMUM)
equal = _binary_function(EQUAL)
not_equal = _binary_function(NOT_EQUAL)
less = _binary_function(LESS)
less_equal = _binary_function(LESS_EQUAL)
greater = _binary_function(GREATER)
greater_equal = _binary_function(GREATER_EQUAL)
logical_and = _binary_function(LOGICAL_AND)
logical_or = _binary_function(LOGICAL_OR)


def leaky_relu(x: Any, alpha: float = 0.2, name: str | None = None) -> Tensor:
    """x for x > 0, alpha·x otherwise (alpha defaults to 0.2, as TF)."""
    return apply(LEAKY_RELU, [as_tensor(x)], name, alpha=float(alpha))


def elu(x: Any, alpha: float = 1.0, name: str | None = None) -> Tensor:
    """x for x > 0, alpha·(exp(x) − 1) otherwise."""
    return apply(ELU, [as_tensor(x)], name, alpha=float(alpha))


def where(cond: Any, x: Any, y: Any, name: str | None = None) -> Tensor:
    """x where ``cond`` is true, else y; all three broadcast."""
    cond = as_tensor(cond)
    if cond.dtype != "bool":
        raise DTypeError(f"where: the condition must be bool, got {cond.dtype} ('{cond.name}')")
    x, y = common_operands(x, y)
    return apply(WHERE, [cond, x, y], name)


def clip(x: Any, lo: Any, hi: Any, name: str | None = None) -> Tensor:
    """x limited to [lo, hi]; the bounds broadcast against x and take x's dtype."""
    x = as_tensor(x)
    return apply(CLIP, common_operands(x, lo, hi, dtype=x.dtype), name)


def cast(x: Any, dtype: Any, name: str | None = None) -> Tensor:
    """x converted to ``dtype`` (always builds a node, so a cast shows where the user wrote it)."""
    return apply(CAST, [as_tensor(x)], name, dtype=as_dtype(dtype))
