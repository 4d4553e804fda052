"""Cases for the elementwise family: every op on several shapes, broadcasting, size-1 and zero-size dims,
float32 and float64, and ints and bools where the op takes them."""

import math

import numpy as np

import graphc as gc
from graphc.ops import elementwise as ew
from tests.ops.harness import OpCase, positive, uniform

SHAPES = [(3, 4), (1,), (), (0, 5), (2, 1, 3)]
PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((0, 3), (1, 3)), ((), (5,))]
FLOATS = ["float32", "float64"]
INTS = ["int32", "int64"]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _same(dtype_of):
    """Wrap a float64 formula so the expected value has the input's dtype (numpy computes it wider)."""
    return lambda formula: (lambda *xs: formula(*[x.astype(np.float64) for x in xs]).astype(dtype_of(*xs)))


_as_input = _same(lambda *xs: xs[0].dtype)

# op -> (numpy formula, input generator)
UNARY_FLOAT = {
    ew.EXP: (np.exp, uniform), ew.LOG: (np.log, positive), ew.LOG1P: (np.log1p, positive),
    ew.EXPM1: (np.expm1, uniform), ew.SQRT: (np.sqrt, positive), ew.RSQRT: (lambda x: 1 / np.sqrt(x), positive),
    ew.SIN: (np.sin, uniform), ew.COS: (np.cos, uniform), ew.TAN: (np.tan, uniform), ew.TANH: (np.tanh, uniform),
    ew.SIGMOID: (lambda x: 1 / (1 + np.exp(-x)), uniform), ew.SOFTPLUS: (lambda x: np.log1p(np.exp(x)), uniform),
    ew.GELU: (lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), uniform), ew.ERF: (_erf, uniform),
}
UNARY_NUMERIC = {
    ew.NEG: lambda x: -x, ew.ABS: np.abs, ew.SIGN: np.sign, ew.SQUARE: lambda x: x * x,
    ew.RELU: lambda x: np.where(x > 0, x, 0).astype(x.dtype),
}
BINARY_NUMERIC = {
    ew.ADD: lambda x, y: x + y, ew.SUB: lambda x, y: x - y, ew.MUL: lambda x, y: x * y,
    ew.MAXIMUM: np.maximum, ew.MINIMUM: np.minimum,
}
COMPARISONS = {
    ew.EQUAL: lambda x, y: x == y, ew.NOT_EQUAL: lambda x, y: x != y, ew.LESS: lambda x, y: x < y,
    ew.LESS_EQUAL: lambda x, y: x <= y, ew.GREATER: lambda x, y: x > y, ew.GREATER_EQUAL: lambda x, y: x >= y,
}


def _function(op):
    return getattr(gc, op.name)


def _unary_cases():
    for op, (formula, make) in UNARY_FLOAT.items():
        for dtype in FLOATS:
            for shape in SHAPES:
                yield OpCase(op, _function(op), lambda rng, s=shape, d=dtype, m=make: [m(rng, s, d)],
                             _as_input(formula), f"{dtype}-{shape}", rtol=1e-6 if dtype == "float32" else 1e-13)
    for op, formula in UNARY_NUMERIC.items():
        for dtype in FLOATS + INTS:
            for shape in SHAPES[:3]:
                yield OpCase(op, _function(op), lambda rng, s=shape, d=dtype: [uniform(rng, s, d, -5, 5)],
                             formula, f"{dtype}-{shape}")


def _binary_cases():
    for op, formula in {**BINARY_NUMERIC, **COMPARISONS}.items():
        for dtype in FLOATS + INTS:
            for a, b in PAIRS:
                yield OpCase(op, _function(op),
                             lambda rng, a=a, b=b, d=dtype: [uniform(rng, a, d, -3, 3), uniform(rng, b, d, -3, 3)],
                             formula, f"{dtype}-{a}-{b}")
    for dtype in FLOATS:
        for a, b in PAIRS:
            yield OpCase(ew.DIV, gc.div, lambda rng, a=a, b=b, d=dtype: [uniform(rng, a, d), uniform(rng, b, d)],
                         _as_input(np.divide), f"{dtype}-{a}-{b}", rtol=1e-6 if dtype == "float32" else 1e-15)
            yield OpCase(ew.POW, gc.pow, lambda rng, a=a, b=b, d=dtype: [positive(rng, a, d), uniform(rng, b, d)],
                         _as_input(np.power), f"{dtype}-{a}-{b}", rtol=1e-6 if dtype == "float32" else 1e-14)
    for a, b in PAIRS:
        yield OpCase(ew.MUL_NO_NAN, gc.mul_no_nan,
                     lambda rng, a=a, b=b: [np.where(rng.random(a) < 0.3, np.inf, uniform(rng, a, "float64")),
                                            np.where(rng.random(b) < 0.5, 0.0, uniform(rng, b, "float64"))],
                     lambda x, y: np.where(y == 0, 0.0, np.where(y == 0, 1.0, x) * y), f"{a}-{b}",
                     extra={"derivatives": False})  # inf inputs: a test of values, not of derivatives
        yield OpCase(ew.MUL_NO_NAN, gc.mul_no_nan,
                     lambda rng, a=a, b=b: [uniform(rng, a, "float64"),
                                            np.where(rng.random(b) < 0.3, 0.0, uniform(rng, b, "float64"))],
                     lambda x, y: x * y, f"finite-{a}-{b}")
    for dtype in INTS:
        yield OpCase(ew.DIV, gc.div, lambda rng, d=dtype: [uniform(rng, (3, 4), d, -9, 9), uniform(rng, (4,), d, 1, 4)],
                     lambda x, y: x / y, f"{dtype}-true-division")
        yield OpCase(ew.POW, gc.pow, lambda rng, d=dtype: [uniform(rng, (3, 4), d, -4, 4), uniform(rng, (4,), d, 1, 3)],
                     lambda x, y: x**y, f"{dtype}")
    for op, formula in {ew.LOGICAL_AND: np.logical_and, ew.LOGICAL_OR: np.logical_or}.items():
        for a, b in PAIRS:
            yield OpCase(op, _function(op), lambda rng, a=a, b=b: [uniform(rng, a, "bool"), uniform(rng, b, "bool")],
                         formula, f"{a}-{b}")
    for op in (ew.EQUAL, ew.NOT_EQUAL):
        yield OpCase(op, _function(op), lambda rng: [uniform(rng, (4, 3), "bool"), uniform(rng, (3,), "bool")],
                     COMPARISONS[op], "bool")
    yield OpCase(ew.LOGICAL_NOT, gc.logical_not, lambda rng: [uniform(rng, (3, 4), "bool")], np.logical_not)


def _other_cases():
    for dtype in FLOATS:
        yield OpCase(ew.LEAKY_RELU, lambda x: gc.leaky_relu(x, alpha=0.1),
                     lambda rng, d=dtype: [uniform(rng, (4, 5), d)],
                     lambda x: np.where(x > 0, x, x * x.dtype.type(0.1)), dtype)
        yield OpCase(ew.ELU, lambda x: gc.elu(x, alpha=1.5), lambda rng, d=dtype: [uniform(rng, (4, 5), d)],
                     _as_input(lambda x: np.where(x > 0, x, 1.5 * (np.exp(x) - 1))), dtype, rtol=1e-6)
        yield OpCase(ew.CLIP, lambda x: gc.clip(x, -0.5, 1.0), lambda rng, d=dtype: [uniform(rng, (3, 0, 2), d)],
                     lambda x: np.clip(x, -0.5, 1.0).astype(x.dtype), f"{dtype}-empty")
    for dtype in FLOATS:
        yield OpCase(ew.CLIP, gc.clip, lambda rng, d=dtype: [uniform(rng, (3, 4), d), uniform(rng, (4,), d, -2, -1),
                                                             uniform(rng, (3, 1), d, 1, 2)],
                     lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), f"tensor-bounds-{dtype}")
    yield OpCase(ew.CLIP, lambda x: gc.clip(x, 0, 3), lambda rng: [uniform(rng, (5,), "int32", -6, 6)],
                 lambda x: np.clip(x, 0, 3).astype(np.int32), "int32")
    for dtype in FLOATS + INTS + ["bool"]:
        yield OpCase(ew.WHERE, gc.where, lambda rng, d=dtype: [uniform(rng, (3, 1), "bool"), uniform(rng, (3, 4), d),
                                                               uniform(rng, (4,), d)],
                     np.where, dtype)
        for op, formula in {ew.STOP_GRADIENT: lambda x: x, ew.ZEROS_LIKE: np.zeros_like,
                            ew.ONES_LIKE: np.ones_like}.items():
            yield OpCase(op, _function(op), lambda rng, d=dtype: [uniform(rng, (2, 3), d)], formula, dtype)
    for source, target in [("float32", "int32"), ("float64", "float32"), ("int64", "float64"), ("bool", "float32"),
                           ("int32", "bool"), ("float32", "float64"), ("int64", "int32"), ("float64", "float64")]:
        yield OpCase(ew.CAST, lambda x, t=target: gc.cast(x, t), lambda rng, s=source: [uniform(rng, (3, 4), s, -7, 7)],
                     lambda x, t=target: x.astype(t), f"{source}-{target}")


CASES = [*_unary_cases(), *_binary_cases(), *_other_cases()]
