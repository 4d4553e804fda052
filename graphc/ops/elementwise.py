"""Elementwise ops: arithmetic, math functions, activations, comparisons, logic, where, cast, clip.

Every op here maps input element i (after numpy broadcasting) to output element i. Operands are brought
to one dtype by the builders (``common_operands``), so the shape rule only broadcasts and checks the dtype
family. Each op is one ``OpDef`` plus its public function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.errors import DTypeError
from graphc.graph.dtypes import ALL, FLOATS, NUMERIC, as_dtype
from graphc.graph.node import Tensor
from graphc.graph.types import TensorType, broadcast_shapes
from graphc.ops.convert import as_tensor, common_operands
from graphc.ops.registry import OpDef, apply, register

__all__ = [
    "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "sigmoid", "softplus",
    "gelu", "neg", "abs", "sign", "square", "relu", "logical_not", "stop_gradient", "zeros_like",
    "ones_like", "add", "sub", "mul", "div", "pow", "maximum", "minimum", "equal", "not_equal", "less",
    "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "leaky_relu", "elu", "where",
    "clip", "cast",
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
                 doc: str = "") -> OpDef:
    return register(OpDef(name, "elementwise", _elementwise_rule(name, accepted, result), reference,
                          elementwise=True, doc=doc))


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


_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray) -> np.ndarray:
    # exact GELU, x * Phi(x), evaluated in float64 then rounded once
    wide = x.astype(np.float64)
    erf = np.asarray(_erf(wide / math.sqrt(2)), dtype=np.float64)
    return (0.5 * wide * (1 + erf)).astype(x.dtype)


def _div_infer(x: TensorType, y: TensorType) -> TensorType:
    same = _elementwise_rule("div", NUMERIC, None)(x, y)
    return TensorType(same.dtype if same.dtype in FLOATS else "float64", same.shape)


# -- unary math (floats) ---------------------------------------------------------------------------------
EXP = _elementwise("exp", np.exp, doc="e to the power x.")
LOG = _elementwise("log", np.log, doc="Natural logarithm (−inf at 0, NaN below).")
LOG1P = _elementwise("log1p", np.log1p, doc="log(1 + x), accurate for small x.")
EXPM1 = _elementwise("expm1", np.expm1, doc="exp(x) − 1, accurate for small x.")
SQRT = _elementwise("sqrt", np.sqrt, doc="Square root.")
RSQRT = _elementwise("rsqrt", lambda x: 1 / np.sqrt(x), doc="1 / sqrt(x).")
SIN = _elementwise("sin", np.sin, doc="Sine.")
COS = _elementwise("cos", np.cos, doc="Cosine.")
TAN = _elementwise("tan", np.tan, doc="Tangent.")
TANH = _elementwise("tanh", np.tanh, doc="Hyperbolic tangent.")
SIGMOID = _elementwise("sigmoid", _sigmoid, doc="Logistic sigmoid 1 / (1 + exp(−x)), overflow-free.")
SOFTPLUS = _elementwise("softplus", lambda x: np.logaddexp(0, x), doc="log(1 + exp(x)), overflow-free.")
GELU = _elementwise("gelu", _gelu, doc="Exact GELU: x·Φ(x) with Φ the standard normal CDF.")

# -- unary arithmetic (ints and floats) -------------------------------------------------------------------
NEG = _elementwise("neg", np.negative, NUMERIC, doc="−x.")
ABS = _elementwise("abs", np.abs, NUMERIC, doc="|x|.")
SIGN = _elementwise("sign", np.sign, NUMERIC, doc="−1, 0 or 1 (NaN stays NaN).")
SQUARE = _elementwise("square", np.square, NUMERIC, doc="x².")
RELU = _elementwise("relu", lambda x: np.maximum(x, 0).astype(x.dtype), NUMERIC, doc="max(x, 0).")

# -- parametrized activations ----------------------------------------------------------------------------
LEAKY_RELU = _elementwise("leaky_relu", lambda x, *, alpha: np.where(x > 0, x, x * x.dtype.type(alpha)),
                          doc="x for x > 0, alpha·x otherwise.")
ELU = _elementwise("elu", lambda x, *, alpha: np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(x)),
                   doc="x for x > 0, alpha·(exp(x) − 1) otherwise.")

# -- binary arithmetic ------------------------------------------------------------------------------------
ADD = _elementwise("add", np.add, NUMERIC, doc="x + y.")
SUB = _elementwise("sub", np.subtract, NUMERIC, doc="x − y.")
MUL = _elementwise("mul", np.multiply, NUMERIC, doc="x · y.")
DIV = register(OpDef(
    "div", "elementwise",
    infer=_div_infer, reference=np.true_divide, elementwise=True,
    doc="True division x / y; integer operands give float64 (as TF1's truediv)."))
POW = _elementwise("pow", np.power, NUMERIC, doc="x to the power y.")
MAXIMUM = _elementwise("maximum", np.maximum, NUMERIC, doc="Elementwise max (NaN propagates).")
MINIMUM = _elementwise("minimum", np.minimum, NUMERIC, doc="Elementwise min (NaN propagates).")

# -- comparisons and logic --------------------------------------------------------------------------------
EQUAL = _elementwise("equal", np.equal, ALL, "bool", doc="x == y.")
NOT_EQUAL = _elementwise("not_equal", np.not_equal, ALL, "bool", doc="x != y.")
LESS = _elementwise("less", np.less, NUMERIC, "bool", doc="x < y.")
LESS_EQUAL = _elementwise("less_equal", np.less_equal, NUMERIC, "bool", doc="x <= y.")
GREATER = _elementwise("greater", np.greater, NUMERIC, "bool", doc="x > y.")
GREATER_EQUAL = _elementwise("greater_equal", np.greater_equal, NUMERIC, "bool", doc="x >= y.")
LOGICAL_AND = _elementwise("logical_and", np.logical_and, _BOOL, doc="x and y.")
LOGICAL_OR = _elementwise("logical_or", np.logical_or, _BOOL, doc="x or y.")
LOGICAL_NOT = _elementwise("logical_not", np.logical_not, _BOOL, doc="not x.")


def _where_infer(cond: TensorType, x: TensorType, y: TensorType) -> TensorType:
    _check_dtypes("where", _BOOL, cond)
    if x.dtype != y.dtype:
        raise DTypeError(f"where branches must share a dtype, got {x.dtype} and {y.dtype}")
    return TensorType(x.dtype, broadcast_shapes(cond.shape, x.shape, y.shape))


WHERE = register(OpDef("where", "elementwise", _where_infer, np.where, elementwise=True,
                       doc="x where cond is true, else y (broadcasting all three)."))

CLIP = register(OpDef(
    "clip", "elementwise", _elementwise_rule("clip", NUMERIC, None),
    lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), elementwise=True,
    doc="min(max(x, lo), hi), broadcasting the bounds."))

CAST = register(OpDef(
    "cast", "elementwise",
    infer=lambda x, *, dtype: TensorType(dtype, x.shape),
    reference=lambda x, *, dtype: x.astype(dtype),
    elementwise=True,
    doc="x converted to dtype (floats to ints truncate toward zero, as C and numpy do)."))

STOP_GRADIENT = _elementwise("stop_gradient", lambda x: x, ALL,
                             doc="Identity in value; gradients do not flow through it.")
ZEROS_LIKE = _elementwise("zeros_like", np.zeros_like, ALL, doc="Zeros of x's shape and dtype.")
ONES_LIKE = _elementwise("ones_like", np.ones_like, ALL, doc="Ones of x's shape and dtype.")

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
