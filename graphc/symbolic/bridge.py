"""The sympy bridge: an elementwise graph as a sympy expression, and a sympy expression as graph ops.

``to_sympy`` translates each op through its ``scalar`` expression (graphc.ops.scalar), so the bridge knows
primitives, not ops: a new elementwise op is picked up through its registry entry. Tensors are treated
elementwise — a placeholder of any shape is one real symbol standing for one of its elements. Symbols are
declared real (graph values are), which also keeps sympy's assumption queries, and so ``diff``, fast.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy

from graphc.errors import GraphcError
from graphc.graph.dtypes import FLOATS, promote
from graphc.graph.node import Node, Tensor
from graphc.graph.walk import ancestors
from graphc.ops import elementwise as ew
from graphc.ops import scalar as sc
from graphc.ops.sources import CONSTANT, PLACEHOLDER, constant
from graphc.ops.state import VARIABLE

__all__ = ["SymbolicError", "from_sympy", "numpy_function", "symbol", "to_sympy"]


class SymbolicError(GraphcError):
    """A graph or a sympy expression the bridge cannot translate (it names the op or function)."""


def symbol(tensor: Tensor) -> sympy.Symbol:
    """The sympy symbol ``to_sympy`` uses for a placeholder or variable: its name, and real (float
    tensors), integer (int tensors) or without assumptions (bool tensors)."""
    assumptions = {"bool": {}, "int32": {"integer": True}, "int64": {"integer": True}}
    return sympy.Symbol(tensor.name, **assumptions.get(tensor.dtype, {"real": True}))


def numpy_function(symbols: Sequence[Any], expr: Any, **options: Any) -> Callable[..., Any]:
    """``sympy.lambdify`` to numpy, elementwise: arguments are broadcast together first (sympy writes
    ``And`` as a reduction over stacked arguments) and erf is numpy's. ``options`` go to lambdify."""
    function = sympy.lambdify(symbols, expr, [{"erf": _numpy_erf}, "numpy"], **options)
    return lambda *arrays: function(*np.broadcast_arrays(*arrays))


_numpy_erf = np.vectorize(math.erf, otypes=[np.float64])


# -- graph -> sympy -----------------------------------------------------------------------------------------
_SYMPY_OF: dict[sc.Primitive, Callable[..., Any]] = {
    sc.ADD: operator.add, sc.SUB: operator.sub, sc.MUL: operator.mul, sc.DIV: operator.truediv,
    sc.NEG: operator.neg, sc.EXP: sympy.exp, sc.LOG: sympy.log, sc.LOG1P: lambda a: sympy.log(1 + a),
    sc.EXPM1: lambda a: sympy.exp(a) - 1, sc.SQRT: sympy.sqrt, sc.SIN: sympy.sin, sc.COS: sympy.cos,
    sc.TAN: sympy.tan, sc.TANH: sympy.tanh, sc.ERF: sympy.erf, sc.POW: sympy.Pow, sc.ABS: sympy.Abs,
    sc.MAXIMUM: sympy.Max, sc.MINIMUM: sympy.Min,
    sc.SELECT: lambda condition, a, b: sympy.Piecewise((a, condition), (b, True)),
    sc.LT: sympy.Lt, sc.LE: sympy.Le, sc.GT: sympy.Gt, sc.GE: sympy.Ge, sc.EQ: sympy.Eq, sc.NE: sympy.Ne,
    sc.AND: sympy.And, sc.OR: sympy.Or, sc.NOT: sympy.Not,
}


def to_sympy(tensor: Tensor) -> sympy.Expr:
    """The sympy expression of one element of ``tensor``, an elementwise function of placeholders,
    variables and constants (placeholders and variables become ``symbol(t)``; constants numbers)."""
    translated: dict[tuple[Node, int], Any] = {}
    for node in ancestors([tensor], control=False):
        for index, out in enumerate(node.outputs):
            translated[(node, index)] = _node_to_sympy(node, out, translated)
    return translated[(tensor.node, tensor.index)]


def _node_to_sympy(node: Node, out: Tensor, translated: dict[tuple[Node, int], Any]) -> Any:
    if node.op in (PLACEHOLDER, VARIABLE):
        return symbol(out)
    if node.op is CONSTANT:
        return _constant_to_sympy(node)
    if not node.op.elementwise:
        raise SymbolicError(f"to_sympy translates elementwise graphs only; {node.describe()} is not elementwise")
    if node.op.scalar is None:
        raise SymbolicError(f"to_sympy: {node.describe()} has no scalar expression yet")
    expr = sc.op_expression(node.op, [t.dtype for t in node.inputs], node.attrs)
    operands = [translated[(t.node, t.index)] for t in node.inputs]
    return _scalar_to_sympy(expr, operands)


def _constant_to_sympy(node: Node) -> Any:
    value = node.attrs["value"]
    distinct = np.unique(value)
    if distinct.size != 1:
        raise SymbolicError(f"to_sympy treats tensors elementwise, so a constant must hold one value; "
                            f"{node.describe()} holds {distinct.size} different values")
    return _number(distinct.item())


def _number(value: bool | int | float) -> Any:
    if isinstance(value, bool):
        return sympy.true if value else sympy.false
    if float(value).is_integer():
        return sympy.Integer(int(value))
    return sympy.Float(value)  # exactly the binary float (53 bits)


def _scalar_to_sympy(expr: sc.Expr, operands: list[Any]) -> Any:
    done: dict[sc.Expr, Any] = {}
    for e in sc.walk(expr):
        if isinstance(e, sc.Input):
            done[e] = operands[e.index]
        elif isinstance(e, sc.Const):
            done[e] = _number(e.value)
        elif e.primitive is sc.CAST:
            done[e] = _cast_to_sympy(done[e.args[0]], e.args[0].dtype, e.to)
        else:
            done[e] = _SYMPY_OF[e.primitive](*(done[a] for a in e.args))
    return done[expr]


def _cast_to_sympy(value: Any, source: str, target: str) -> Any:
    if target == "bool":
        return value if source == "bool" else sympy.Ne(value, 0)
    if source == "bool":
        return sympy.Piecewise((1, value), (0, True))
    if target in FLOATS or source not in FLOATS:
        return value
    return sympy.Piecewise((sympy.floor(value), value >= 0), (sympy.ceiling(value), True))  # toward zero


# -- sympy -> graph -----------------------------------------------------------------------------------------
def from_sympy(expr: Any, inputs: Mapping[Any, Tensor] | Sequence[Tensor]) -> Tensor:
    """Graph ops computing ``expr`` elementwise; ``inputs`` maps each symbol (or its name) to a tensor, or
    lists tensors whose names are the symbols' names. Numbers take the inputs' (float) dtype."""
    tensors = _by_name(inputs)
    dtype = promote(*(t.dtype for t in tensors.values())) if tensors else "float32"
    translator = _FromSympy(tensors, dtype if dtype in FLOATS else "float32")
    result = translator.translate(sympy.sympify(expr))
    return result if isinstance(result, Tensor) else translator.tensor(result)


def _by_name(inputs: Mapping[Any, Tensor] | Sequence[Tensor]) -> dict[str, Tensor]:
    if isinstance(inputs, Mapping):
        return {str(key): tensor for key, tensor in inputs.items()}
    return {tensor.name: tensor for tensor in inputs}


class _FromSympy:
    """One translation: sympy subexpressions already translated are reused, so shared terms stay shared."""

    def __init__(self, tensors: dict[str, Tensor], dtype: str) -> None:
        self.tensors, self.dtype = tensors, dtype
        self.done: dict[Any, Any] = {}

    def tensor(self, value: Any) -> Tensor:
        """A Python number (what a constant subexpression becomes) as a constant of the working dtype."""
        if isinstance(value, Tensor):
            return value
        return constant(value, "bool" if isinstance(value, bool) else self.dtype)

    def translate(self, expr: Any) -> Any:
        if expr not in self.done:
            self.done[expr] = self._translate(expr)
        return self.done[expr]

    def _translate(self, expr: Any) -> Any:
        if isinstance(expr, sympy.logic.boolalg.BooleanAtom):
            return bool(expr)
        if isinstance(expr, sympy.Symbol):
            return self._symbol(expr)
        if not expr.free_symbols:
            return float(expr)
        builder = _builder_of(expr)
        if builder is None:
            raise SymbolicError(f"from_sympy: no graph op for sympy's {type(expr).__name__} (in {expr})")
        return builder(self, expr)

    def _symbol(self, expr: sympy.Symbol) -> Tensor:
        if expr.name not in self.tensors:
            raise SymbolicError(f"from_sympy: no tensor for symbol {expr.name!r}; inputs are "
                                f"{sorted(self.tensors)}")
        return self.tensors[expr.name]

    def tensor_of(self, expr: Any) -> Tensor:
        """``expr`` translated, as a tensor (a number becomes a constant)."""
        return self.tensor(self.translate(expr))

    def args(self, expr: Any) -> list[Any]:
        return [self.translate(a) for a in expr.args]

    def fold(self, function: Callable[[Any, Any], Tensor], values: Sequence[Any]) -> Tensor:
        """``function`` applied left to right; a number never meets a number (sympy folds those)."""
        total = values[0] if isinstance(values[0], Tensor) or len(values) > 1 else self.tensor(values[0])
        for value in values[1:]:
            total = function(total, value)
        return total


def _mul(translator: _FromSympy, expr: sympy.Mul) -> Tensor:
    # a product over a product: factors with a negative exponent go to the denominator
    numerator, denominator = [], []
    for factor in expr.args:
        if factor.is_Pow and factor.exp.is_number and factor.exp.is_negative:
            denominator.append(translator.translate(factor.base ** -factor.exp))
        else:
            numerator.append(translator.translate(factor))
    if len(numerator) > 1 and numerator[0] == -1.0:  # sympy writes -x as -1 * x: a negation, not a product
        numerator = [ew.neg(translator.fold(ew.mul, numerator[1:]))]
    top = translator.fold(ew.mul, numerator) if numerator else 1.0
    return top if not denominator else ew.div(top, translator.fold(ew.mul, denominator))


def _pow(translator: _FromSympy, expr: sympy.Pow) -> Tensor:
    base, exponent = expr.args
    special = {sympy.Rational(1, 2): ew.sqrt, sympy.Rational(-1, 2): ew.rsqrt, sympy.Integer(2): ew.square}
    if exponent in special:
        return special[exponent](translator.translate(base))
    if exponent.is_number and exponent.is_negative:
        return ew.div(1.0, translator.translate(base ** -exponent))
    return ew.pow(translator.tensor_of(base), translator.translate(exponent))


def _piecewise(translator: _FromSympy, expr: sympy.Piecewise) -> Tensor:
    *pieces, (value, condition) = expr.args
    if condition is not sympy.true:
        raise SymbolicError(f"from_sympy: a Piecewise needs a last piece for 'otherwise' (in {expr})")
    result = translator.tensor_of(value)
    for value, condition in reversed(pieces):
        result = ew.where(translator.tensor_of(condition), translator.tensor_of(value), result)
    return result


def _if_then_else(translator: _FromSympy, expr: Any) -> Tensor:
    condition, then, otherwise = (translator.tensor_of(a) for a in expr.args)
    return ew.where(condition, then, otherwise)


def _heaviside(translator: _FromSympy, expr: Any) -> Tensor:
    x = translator.translate(expr.args[0])
    at_zero = float(expr.args[1]) if len(expr.args) > 1 else 0.5
    return ew.where(ew.greater(x, 0), 1.0, ew.where(ew.less(x, 0), 0.0, translator.tensor(at_zero)))


def _floor(translator: _FromSympy, expr: Any) -> Tensor:
    x = translator.translate(expr.args[0])
    truncated = ew.cast(ew.cast(x, "int64"), x.dtype)  # toward zero: one too high below zero
    return ew.where(ew.greater(truncated, x), truncated - 1.0, truncated)


def _ceiling(translator: _FromSympy, expr: Any) -> Tensor:
    x = translator.translate(expr.args[0])
    truncated = ew.cast(ew.cast(x, "int64"), x.dtype)
    return ew.where(ew.less(truncated, x), truncated + 1.0, truncated)


def _unary(function: Callable[[Tensor], Tensor]) -> Callable[[_FromSympy, Any], Tensor]:
    return lambda translator, expr: function(translator.tensor_of(expr.args[0]))


def _nary(function: Callable[[Any, Any], Tensor]) -> Callable[[_FromSympy, Any], Tensor]:
    return lambda translator, expr: translator.fold(function, translator.args(expr))


def _binary(function: Callable[[Any, Any], Tensor]) -> Callable[[_FromSympy, Any], Tensor]:
    return lambda translator, expr: function(*_tensor_first(translator, translator.args(expr)))


def _tensor_first(translator: _FromSympy, values: list[Any]) -> list[Any]:
    return values if any(isinstance(v, Tensor) for v in values) else [translator.tensor(values[0]), *values[1:]]


_BUILDERS: dict[type, Callable[[_FromSympy, Any], Any]] = {
    sympy.Add: _nary(ew.add), sympy.Mul: _mul, sympy.Pow: _pow,
    sympy.exp: _unary(ew.exp), sympy.log: _unary(ew.log), sympy.sin: _unary(ew.sin), sympy.cos: _unary(ew.cos),
    sympy.tan: _unary(ew.tan), sympy.tanh: _unary(ew.tanh), sympy.erf: _unary(ew.erf),
    sympy.Abs: _unary(ew.abs), sympy.sign: _unary(ew.sign), sympy.Heaviside: _heaviside,
    sympy.floor: _floor, sympy.ceiling: _ceiling,
    sympy.Max: _nary(ew.maximum), sympy.Min: _nary(ew.minimum), sympy.Piecewise: _piecewise,
    sympy.ITE: _if_then_else,
    sympy.StrictLessThan: _binary(ew.less), sympy.LessThan: _binary(ew.less_equal),
    sympy.StrictGreaterThan: _binary(ew.greater), sympy.GreaterThan: _binary(ew.greater_equal),
    sympy.Equality: _binary(ew.equal), sympy.Unequality: _binary(ew.not_equal),
    sympy.And: _nary(ew.logical_and), sympy.Or: _nary(ew.logical_or), sympy.Not: _unary(ew.logical_not),
}


def _builder_of(expr: Any) -> Callable[[_FromSympy, Any], Any] | None:
    return next((builder for kind, builder in _BUILDERS.items() if isinstance(expr, kind)), None)
