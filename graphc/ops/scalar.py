"""The scalar IR of elementwise ops: one output element as a tiny, typed expression.

An elementwise op's ``scalar`` (see ``OpDef``) maps its operands, given as ``Input`` expressions, to the
expression of one output element. Expressions have three kinds of node: ``Input`` (an operand by
position), ``Const`` (a constant of a fixed dtype) and ``Call`` (a primitive applied to expressions). The
primitives are a fixed, small set: exactly what a backend (the LLVM and CUDA renderers) has to implement
and what the sympy bridge translates, so keep it small — write an op from primitives rather than add one.

Expressions are immutable values with structural equality (``==`` compares structure; the elementwise
comparison is ``eq``), typed when built (a mistake fails where it is made), and written with operators so
an op's scalar reads like math::

    sigmoid = select(x >= 0, 1 / (1 + exp(-x)), exp(x) / (1 + exp(x)))

A Python number meeting an expression becomes a ``Const`` of that expression's dtype (weak typing, as
graphc's operands). ``evaluate`` runs an expression with numpy — the IR's own oracle, checked against every
op's reference — and ``to_text`` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.errors import DTypeError
from graphc.graph.dtypes import ALL, FLOATS, NUMERIC, as_dtype

SQRT_HALF = math.sqrt(0.5)
_BOOL = frozenset({"bool"})


@dataclass(frozen=True, eq=False)
class Primitive:
    """One primitive of the scalar IR: its arity, the operand dtypes it accepts, and its numpy meaning.

    ``result`` is the result dtype (None: the operands' dtype); ``symbol`` and ``precedence`` print an
    infix (or, for one operand, prefix) primitive; the others print as calls.
    """

    name: str
    arity: int
    accepts: frozenset
    numpy: Callable[..., Any]
    result: str | None = None
    symbol: str | None = None
    precedence: int = 0

    def __repr__(self) -> str:
        return f"<Primitive {self.name}>"


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def _cast(x: np.ndarray, dtype: str) -> np.ndarray:
    return x.astype(dtype)


# -- the primitives ------------------------------------------------------------------------------------
ADD = Primitive("add", 2, NUMERIC, np.add, symbol="+", precedence=4)
SUB = Primitive("sub", 2, NUMERIC, np.subtract, symbol="-", precedence=4)
MUL = Primitive("mul", 2, NUMERIC, np.multiply, symbol="*", precedence=5)
DIV = Primitive("div", 2, FLOATS, np.true_divide, symbol="/", precedence=5)
NEG = Primitive("neg", 1, NUMERIC, np.negative, symbol="-", precedence=6)
EXP = Primitive("exp", 1, FLOATS, np.exp)
LOG = Primitive("log", 1, FLOATS, np.log)
LOG1P = Primitive("log1p", 1, FLOATS, np.log1p)
EXPM1 = Primitive("expm1", 1, FLOATS, np.expm1)
SQRT = Primitive("sqrt", 1, FLOATS, np.sqrt)
SIN = Primitive("sin", 1, FLOATS, np.sin)
COS = Primitive("cos", 1, FLOATS, np.cos)
TAN = Primitive("tan", 1, FLOATS, np.tan)
TANH = Primitive("tanh", 1, FLOATS, np.tanh)
ERF = Primitive("erf", 1, FLOATS, _erf)
POW = Primitive("pow", 2, NUMERIC, np.power)
ABS = Primitive("abs", 1, NUMERIC, np.abs)
MAXIMUM = Primitive("maximum", 2, NUMERIC, np.maximum)  # NaN propagates, as numpy (and IEEE maximum)
MINIMUM = Primitive("minimum", 2, NUMERIC, np.minimum)
SELECT = Primitive("select", 3, ALL, np.where)  # (bool condition, a, b): a where it holds, else b
LT = Primitive("lt", 2, NUMERIC, np.less, "bool", "<", 3)
LE = Primitive("le", 2, NUMERIC, np.less_equal, "bool", "<=", 3)
GT = Primitive("gt", 2, NUMERIC, np.greater, "bool", ">", 3)
GE = Primitive("ge", 2, NUMERIC, np.greater_equal, "bool", ">=", 3)
EQ = Primitive("eq", 2, ALL, np.equal, "bool", "==", 3)
NE = Primitive("ne", 2, ALL, np.not_equal, "bool", "!=", 3)
AND = Primitive("and", 2, _BOOL, np.logical_and, "bool", "&", 2)
OR = Primitive("or", 2, _BOOL, np.logical_or, "bool", "|", 1)
NOT = Primitive("not", 1, _BOOL, np.logical_not, "bool", "~", 6)
CAST = Primitive("cast", 1, ALL, _cast)  # numpy's astype: floats to ints truncate toward zero

PRIMITIVES = (ADD, SUB, MUL, DIV, NEG, EXP, LOG, LOG1P, EXPM1, SQRT, SIN, COS, TAN, TANH, ERF, POW, ABS,
              MAXIMUM, MINIMUM, SELECT, LT, LE, GT, GE, EQ, NE, AND, OR, NOT, CAST)


# -- expressions ---------------------------------------------------------------------------------------
class Expr:
    """Base of the three expression kinds; every expression has a ``dtype``. Operators build ``Call``s."""

    __slots__ = ()
    dtype: str

    def __add__(self, other: Any) -> Expr: return add(self, other)
    def __radd__(self, other: Any) -> Expr: return add(other, self)
    def __sub__(self, other: Any) -> Expr: return sub(self, other)
    def __rsub__(self, other: Any) -> Expr: return sub(other, self)
    def __mul__(self, other: Any) -> Expr: return mul(self, other)
    def __rmul__(self, other: Any) -> Expr: return mul(other, self)
    def __truediv__(self, other: Any) -> Expr: return div(self, other)
    def __rtruediv__(self, other: Any) -> Expr: return div(other, self)
    def __pow__(self, other: Any) -> Expr: return pow(self, other)
    def __rpow__(self, other: Any) -> Expr: return pow(other, self)
    def __neg__(self) -> Expr: return neg(self)
    def __abs__(self) -> Expr: return abs(self)
    def __lt__(self, other: Any) -> Expr: return lt(self, other)
    def __le__(self, other: Any) -> Expr: return le(self, other)
    def __gt__(self, other: Any) -> Expr: return gt(self, other)
    def __ge__(self, other: Any) -> Expr: return ge(self, other)
    def __and__(self, other: Any) -> Expr: return logical_and(self, other)
    def __or__(self, other: Any) -> Expr: return logical_or(self, other)
    def __invert__(self) -> Expr: return logical_not(self)

    def __str__(self) -> str:
        return to_text(self)


@dataclass(frozen=True, repr=False)
class Input(Expr):
    """Operand number ``index`` of the op, one element of it, of dtype ``dtype``."""

    index: int
    dtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", as_dtype(self.dtype))

    def __repr__(self) -> str:
        return f"Input({self.index}, {self.dtype!r})"


@dataclass(frozen=True, repr=False)
class Const(Expr):
    """A constant of dtype ``dtype``; ``value`` is stored already rounded to it (a bool, int or float)."""

    value: bool | int | float
    dtype: str

    def __post_init__(self) -> None:
        dtype = as_dtype(self.dtype)
        rounded = np.asarray(self.value).astype(dtype).item()
        if dtype not in FLOATS and rounded != self.value:
            raise DTypeError(f"scalar constant {self.value!r} does not fit dtype {dtype}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "value", rounded)

    def __repr__(self) -> str:
        return f"Const({self.value!r}, {self.dtype!r})"


@dataclass(frozen=True, repr=False)
class Call(Expr):
    """``primitive`` applied to ``args``; ``to`` is the target dtype of a cast (None for the others)."""

    primitive: Primitive
    args: tuple[Expr, ...]
    to: str | None = None
    dtype: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", _result_dtype(self.primitive, self.args, self.to))

    def __repr__(self) -> str:
        extra = f", to={self.to!r}" if self.to is not None else ""
        return f"Call({self.primitive.name}, {self.args!r}{extra})"


def _result_dtype(primitive: Primitive, args: tuple[Expr, ...], to: str | None) -> str:
    """The dtype rule of the primitives; a wrong arity or dtype is a DTypeError naming the primitive."""
    if len(args) != primitive.arity or not all(isinstance(a, Expr) for a in args):
        raise DTypeError(f"scalar {primitive.name} takes {primitive.arity} expressions, got {args!r}")
    if primitive is CAST:
        return as_dtype(to)
    operands = args[1:] if primitive is SELECT else args
    if primitive is SELECT and args[0].dtype != "bool":
        raise DTypeError(f"scalar select needs a bool condition, got {args[0].dtype}")
    dtypes = {a.dtype for a in operands}
    if len(dtypes) > 1:
        raise DTypeError(f"scalar {primitive.name} operands must share a dtype, got {sorted(dtypes)}")
    (dtype,) = dtypes
    if dtype not in primitive.accepts:
        raise DTypeError(f"scalar {primitive.name} does not accept {dtype} (accepts "
                         f"{', '.join(sorted(primitive.accepts))})")
    return primitive.result or dtype


# -- building expressions ------------------------------------------------------------------------------
def inputs(*dtypes: str) -> tuple[Input, ...]:
    """One ``Input`` per dtype, numbered from 0."""
    return tuple(Input(i, d) for i, d in enumerate(dtypes))


def constant(value: Any, dtype: str) -> Const:
    """A typed constant."""
    return Const(value, dtype)


def _operands(*values: Any) -> tuple[Expr, ...]:
    """Python numbers become constants of the dtype of the first expression among ``values``."""
    partner = next((v for v in values if isinstance(v, Expr)), None)
    if partner is None:
        raise DTypeError(f"a scalar primitive needs at least one expression operand, got {values!r}")
    return tuple(v if isinstance(v, Expr) else Const(v, partner.dtype) for v in values)


def _call(primitive: Primitive) -> Callable[..., Call]:
    def build(*values: Any) -> Call:
        return Call(primitive, _operands(*values))

    build.__name__ = build.__qualname__ = primitive.name
    build.__doc__ = f"The scalar primitive {primitive.name}."
    return build


add, sub, mul, div, neg = _call(ADD), _call(SUB), _call(MUL), _call(DIV), _call(NEG)
exp, log, log1p, expm1, sqrt = _call(EXP), _call(LOG), _call(LOG1P), _call(EXPM1), _call(SQRT)
sin, cos, tan, tanh, erf = _call(SIN), _call(COS), _call(TAN), _call(TANH), _call(ERF)
pow, abs = _call(POW), _call(ABS)  # noqa: A001 - the primitives' names; builtins shadowed in this module only
maximum, minimum = _call(MAXIMUM), _call(MINIMUM)
lt, le, gt, ge, eq, ne = _call(LT), _call(LE), _call(GT), _call(GE), _call(EQ), _call(NE)
logical_and, logical_or, logical_not = _call(AND), _call(OR), _call(NOT)


def select(condition: Expr, a: Any, b: Any) -> Call:
    """``a`` where ``condition`` holds, else ``b`` (a number branch takes the other branch's dtype)."""
    return Call(SELECT, (condition, *_operands(a, b)))


def cast(x: Expr, dtype: str) -> Expr:
    """``x`` converted to ``dtype`` (``x`` itself when it already has it)."""
    dtype = as_dtype(dtype)
    return x if x.dtype == dtype else Call(CAST, (x,), dtype)


def op_expression(op: Any, dtypes: Sequence[str], attrs: Mapping[str, Any] | None = None) -> Expr:
    """The scalar expression of ``op`` (an OpDef with a ``scalar``) on operands of ``dtypes``."""
    if op.scalar is None:
        raise DTypeError(f"op {op.name} has no scalar expression")
    return op.scalar(*inputs(*dtypes), **(attrs or {}))


# -- walking, evaluating, printing ---------------------------------------------------------------------
def primitive_table(table: dict[str, Any]) -> Callable[..., Callable[[Any], Any]]:
    """A decorator filling ``table`` (primitive name -> function): how a renderer (LLVM IR, CUDA C) registers
    its translation of each primitive, ``@primitive("add", "sub")``."""

    def primitive(*names: str) -> Callable[[Any], Any]:
        def register(fn: Any) -> Any:
            for name in names:
                table[name] = fn
            return fn

        return register

    return primitive


def walk(expr: Expr) -> list[Expr]:
    """Every distinct subexpression of ``expr``, operands before their calls (each once)."""
    seen: dict[Expr, None] = {}

    def visit(e: Expr) -> None:
        if e in seen:
            return
        for arg in getattr(e, "args", ()):
            visit(arg)
        seen[e] = None

    visit(expr)
    return list(seen)


def evaluate(expr: Expr, *arrays: Any) -> np.ndarray:
    """``expr`` computed with numpy on ``arrays`` (operand i is ``arrays[i]``, of the Input's dtype).

    The result has the expression's dtype and the broadcast shape of all the arrays, as the op's output.
    Invalid values (NaN in a branch ``select`` does not take, overflow) are not warned about.
    """
    values = [np.asarray(a) for a in arrays]
    computed: dict[Expr, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for e in walk(expr):
            computed[e] = _evaluate_one(e, values, computed)
    shape = np.broadcast_shapes(*(v.shape for v in values)) if values else ()
    return np.array(np.broadcast_to(computed[expr], shape), dtype=expr.dtype)


def _evaluate_one(e: Expr, values: list[np.ndarray], computed: dict[Expr, np.ndarray]) -> np.ndarray:
    if isinstance(e, Input):
        if e.index >= len(values) or values[e.index].dtype != e.dtype:
            given = values[e.index].dtype if e.index < len(values) else "nothing"
            raise DTypeError(f"scalar evaluate: operand {e.index} must be a {e.dtype} array, got {given}")
        return values[e.index]
    if isinstance(e, Const):
        return np.asarray(e.value, dtype=e.dtype)
    args = [computed[a] for a in e.args]
    if e.primitive is CAST:
        return _cast(args[0], e.to)
    return np.asarray(e.primitive.numpy(*args), dtype=e.dtype)


def to_text(expr: Expr, names: Sequence[str] | None = None,
            leaf: Callable[[Expr], str] | None = None) -> str:
    """``expr`` as one line of math: operands are ``x0, x1, …`` (or ``names``), casts ``cast<dtype>(…)``.
    ``leaf`` prints other kinds of leaf (the loop-nest IR's loads, indices and locals)."""
    return _text(expr, names, leaf)[0]


def _text(e: Expr, names: Sequence[str] | None, leaf: Callable[[Expr], str] | None = None) -> tuple[str, int]:
    """The text of ``e`` and its precedence (10 for atoms and calls)."""
    if isinstance(e, Input):
        return (names[e.index] if names else f"x{e.index}"), 10
    if isinstance(e, Const):
        text = ("true" if e.value else "false") if e.dtype == "bool" else str(np.dtype(e.dtype).type(e.value))
        return text, (10 if not text.startswith("-") else 6)
    if not isinstance(e, Call):
        return leaf(e), 10
    p = e.primitive
    parts = [_text(a, names, leaf) for a in e.args]
    if p.symbol and p.arity == 1:
        return f"{p.symbol}{_wrap(parts[0], p.precedence, strict=True)}", p.precedence
    if p.symbol:
        left, right = _wrap(parts[0], p.precedence, False), _wrap(parts[1], p.precedence, True)
        return f"{left} {p.symbol} {right}", p.precedence
    name = f"cast<{e.to}>" if p is CAST else p.name
    return f"{name}({', '.join(text for text, _ in parts)})", 10


def _wrap(part: tuple[str, int], precedence: int, strict: bool) -> str:
    # the right operand of a left-associative operator needs parentheses at equal precedence too
    text, inner = part
    return f"({text})" if inner < precedence or (strict and inner == precedence) else text
