"""The LLVM renderer against the IR interpreter (the oracle) and numpy, compiled and loaded by jit.py."""

from __future__ import annotations

import ctypes
import math
import os

import llvmlite.binding as llvm
import numpy as np
import pytest
import scipy_openblas32

from graphc.backends.llvm import jit, vmath
from graphc.backends.llvm import render as render_module
from graphc.backends.llvm.render import Rendered, render
from graphc.lower import ir
from graphc.lower.interpret import ProgramFailed, interpret
from graphc.ops import scalar
from graphc.ops.scalar import Call, Const

FLOAT_TYPES = ("float32", "float64")
TRANSCENDENTAL = {"exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "erf"}
BLAS = os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so")
KERNEL = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)


# -- compiling and running --------------------------------------------------------------------------------
class Native:
    """A rendered program optimized at O3 for this machine and loaded: ``run`` calls a function on numpy arrays."""

    def __init__(self, rendered: Rendered) -> None:
        target = jit.host_target()
        compiled = jit.compile_object(rendered.llvm_ir, target)
        self.rendered, self.optimized = rendered, compiled.optimized_ir
        self.loaded = jit.load_object(compiled.object_code, target, libraries=[BLAS])
        self.functions = {name: KERNEL(self.loaded.address(name)) for name in (rendered.entry, *rendered.kernels)}

    def run(self, arrays: list[np.ndarray], dims: list[int], name: str | None = None) -> int:
        pointers = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
        sizes = (ctypes.c_int64 * max(len(dims), 1))(*dims)
        return self.functions[name or self.rendered.entry](ctypes.addressof(pointers), ctypes.addressof(sizes))


def compile_program(program: ir.Program, threads: int = 4) -> Native:
    return Native(render(program, threads))


def buffer(name: str, dtype: str, *shape: int | ir.Expr, role: str = "feed") -> ir.Buffer:
    return ir.Buffer(name, dtype, tuple(ir.as_expr(d) for d in shape), role)


def program(buffers: list[ir.Buffer], *kernels: tuple[ir.Stmt, ...], failures: tuple[str, ...] = ()) -> ir.Program:
    return ir.Program(buffers, [ir.LoopKernel(f"k{i}", tuple(body)) for i, body in enumerate(kernels)],
                      ["run count", "d1", "d2"], list(failures))


def oracle(p: ir.Program, arrays: list[np.ndarray], dims: list[int]) -> tuple[list[np.ndarray], int]:
    """The interpreter's outputs and code on copies of ``arrays``."""
    copies = [a.copy() for a in arrays]
    try:
        interpret(p, dict(zip(p.buffers, copies)), dims)
    except ProgramFailed as failed:
        return copies, failed.code
    return copies, 0


def native(compiled: Native, arrays: list[np.ndarray], dims: list[int]) -> tuple[list[np.ndarray], int]:
    copies = [a.copy() for a in arrays]
    return copies, compiled.run(copies, dims)


def assert_same(actual: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    """Equal bit for bit (signed zeros included), NaN where NaN."""
    assert actual.dtype == expected.dtype, what
    if actual.dtype.kind == "f":
        nan = np.isnan(expected)
        np.testing.assert_array_equal(np.isnan(actual), nan, err_msg=what)
        bits = {4: np.int32, 8: np.int64}[actual.itemsize]
        np.testing.assert_array_equal(actual[~nan].view(bits), expected[~nan].view(bits), err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def check(p: ir.Program, arrays: list[np.ndarray], dims: list[int] = (0,), threads: int = 4) -> list[np.ndarray]:
    """Native and interpreter agree exactly (outputs and code); returns the native outputs."""
    expected, code = oracle(p, arrays, list(dims))
    actual, native_code = native(compile_program(p, threads), arrays, list(dims))
    assert native_code == code
    for b, a, e in zip(p.buffers, actual, expected):
        assert_same(a, e, b.name)
    return actual


def elementwise(n: int | ir.Expr, outputs: list[tuple[ir.Buffer, object]]) -> tuple[ir.Stmt, ...]:
    """One loop over i < n storing ``make(i)`` into each output buffer."""
    i = ir.Index("i")
    return (ir.Loop(i, ir.as_expr(n), tuple(ir.Store(out, i, make(i)) for out, make in outputs)),)


# -- inputs ------------------------------------------------------------------------------------------------
FLOAT_SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e-30, -2.5, 3.0]


def pairs(dtype: str, rng: np.random.Generator, count: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two operand arrays: every pair of special values, then random values."""
    if dtype in FLOAT_TYPES:
        specials, random = FLOAT_SPECIALS, rng.normal(0, 10, (2, count))
    elif dtype == "bool":
        specials, random = [False, True], rng.integers(0, 2, (2, count))
    else:
        info = np.iinfo(dtype)
        specials, random = [info.min, info.max, -1, 0, 1, 7, -7], rng.integers(-100, 100, (2, count))
    x, y = np.meshgrid(np.array(specials, dtype=dtype), np.array(specials, dtype=dtype))
    return (np.concatenate([x.ravel(), random[0].astype(dtype)]),
            np.concatenate([y.ravel(), random[1].astype(dtype)]))


# -- primitives --------------------------------------------------------------------------------------------
def test_every_primitive_is_implemented():
    names = {p.name for p in (*scalar.PRIMITIVES, *ir.INTEGER_PRIMITIVES)}
    assert names <= set(render_module._PRIMITIVES)


@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "float32", "float64"])
def test_exact_primitives_match_the_interpreter(dtype, rng):
    """Every primitive but the transcendentals (and float pow), bit for bit, on all pairs of special values."""
    x_values, y_values = pairs(dtype, rng)
    n = x_values.size
    x, y, condition = buffer("x", dtype, n), buffer("y", dtype, n), buffer("c", "bool", n)
    exponent, count = buffer("e", dtype, n), buffer("s", dtype, n)  # integer pow's and the shifts' right operands
    arrays = [x_values, y_values, rng.integers(0, 2, n).astype(bool),
              rng.integers(0, 12, n).astype(dtype), rng.integers(-3, 70, n).astype(dtype)]  # counts outside [0, bits)

    def operands(p: scalar.Primitive, i: ir.Index) -> tuple[ir.Expr, ...]:
        if p.name == "pow":
            return ir.Load(x, i), ir.Load(exponent, i)
        if p.name in ("shl", "shr"):
            return ir.Load(x, i), ir.Load(count, i)
        return {1: (ir.Load(x, i),), 2: (ir.Load(x, i), ir.Load(y, i)),
                3: (ir.Load(condition, i), ir.Load(x, i), ir.Load(y, i))}[p.arity]

    skip = TRANSCENDENTAL | {"cast"} | ({"pow"} if dtype in FLOAT_TYPES else set())  # tested below
    exact = [p for p in (*scalar.PRIMITIVES, *ir.INTEGER_PRIMITIVES) if dtype in p.accepts and p.name not in skip]
    outputs = [(buffer(p.name, Call(p, operands(p, ir.Index("i"))).dtype, n, role="output"),
                lambda i, p=p: Call(p, operands(p, i))) for p in exact]
    check(program([x, y, condition, exponent, count] + [out for out, _ in outputs], elementwise(n, outputs)),
          arrays + [np.zeros(n, out.dtype) for out, _ in outputs])


def test_negative_integer_exponents_give_zero():
    x, e, out = buffer("x", "int64", 4), buffer("e", "int64", 4), buffer("out", "int64", 4, role="output")
    arrays = [np.array([2, 1, -1, 0]), np.array([-1, -2, -3, 0]), np.full(4, 9)]
    compiled = compile_program(program([x, e, out], elementwise(4, [(out, lambda i: ir.Load(x, i) ** ir.Load(e, i))])))
    assert compiled.run(arrays, [0]) == 0
    np.testing.assert_array_equal(arrays[2], [0, 0, 0, 1])


def ulps(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Distance in units of the last place of ``expected`` (0 where both are the same NaN, inf or value)."""
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    with np.errstate(all="ignore"):
        distance = np.abs(actual.astype(np.float64) - expected.astype(np.float64)) / np.spacing(np.abs(expected))
    return np.where(same, 0.0, np.nan_to_num(distance, nan=np.inf))


TRANSCENDENTAL_INPUTS = {
    "exp": (-90, 90), "expm1": (-20, 20), "log": (0, 1e6), "log1p": (-1, 1e3), "sin": (-20, 20),
    "cos": (-20, 20), "tan": (-20, 20), "tanh": (-12, 12), "erf": (-5, 5), "pow": (0, 10),
}
TRANSCENDENTAL_SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e-6, -1e-6, 0.5]


def reference(name: str, dtype: str, *args: np.ndarray) -> np.ndarray:
    """numpy's function in float64 (math.erf for erf), rounded to ``dtype``: within half an ulp of exact."""
    wide = [a.astype(np.float64) for a in args]
    with np.errstate(all="ignore"):
        if name == "erf":
            return np.array([math.erf(v) if not np.isnan(v) else np.nan for v in wide[0]]).astype(dtype)
        return {"pow": np.power}.get(name, getattr(np, name))(*wide).astype(dtype)


def transcendental_program(dtype: str, n: int) -> tuple[ir.Program, list[str]]:
    x, y = buffer("x", dtype, n), buffer("y", dtype, n)
    names = sorted(TRANSCENDENTAL | {"pow"})
    outputs = [(buffer(name, dtype, n, role="output"),
                lambda i, name=name: (scalar.pow(ir.Load(x, i), ir.Load(y, i)) if name == "pow"
                                      else getattr(scalar, name)(ir.Load(x, i)))) for name in names]
    return program([x, y] + [out for out, _ in outputs], elementwise(n, outputs)), names


def transcendental_inputs(name: str, dtype: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    low, high = TRANSCENDENTAL_INPUTS[name]
    x = np.concatenate([TRANSCENDENTAL_SPECIALS, rng.uniform(low, high, 200)]).astype(dtype)
    y = np.concatenate([TRANSCENDENTAL_SPECIALS[::-1], rng.uniform(-4, 4, 200)]).astype(dtype)
    return x, y


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("source", ["vmath", "libm"])
def test_transcendentals_within_two_ulps_of_numpy(dtype, source, rng, monkeypatch):
    """vmath's branch-free code where it has the function; libm's when it does not (forced here)."""
    if source == "libm":
        monkeypatch.setattr(vmath, "NAMES", frozenset())
    elif not vmath.NAMES:
        pytest.skip("vmath provides no functions yet")
    n = len(TRANSCENDENTAL_SPECIALS) + 200
    p, names = transcendental_program(dtype, n)
    compiled = compile_program(p)
    suffix = "f" if dtype == "float32" else ""
    assert {name + suffix for name in names if name not in vmath.NAMES} <= set(compiled.rendered.symbols)
    for name in names:
        x, y = transcendental_inputs(name, dtype, rng)
        arrays = [x, y] + [np.zeros(n, dtype) for _ in names]
        assert compiled.run(arrays, [0]) == 0
        expected = reference(name, dtype, x, y) if name == "pow" else reference(name, dtype, x)
        error = ulps(arrays[2 + names.index(name)], expected)
        worst = int(np.argmax(error))
        assert error[worst] <= 2, f"{name}({x[worst]}, {y[worst]}) = {arrays[2 + names.index(name)][worst]}, " \
                                  f"expected {expected[worst]} ({source})"


# -- casts ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["bool", "int32", "int64", "float32", "float64"])
def test_casts_match_numpy_astype(source, rng):
    if source in FLOAT_TYPES:  # in range of every integer type (outside it numpy's result is unspecified)
        values = np.concatenate([[0.0, -0.0, 0.5, -0.5, 1.99, -1.99, 2.0**31 - 128, -2.0**31, np.nan, np.inf],
                                 rng.normal(0, 1e4, 64)]).astype(source)
        ints_ok = np.isfinite(values)
    else:
        values = pairs(source, rng)[0]
        ints_ok = np.ones(values.size, bool)
    n = values.size
    x = buffer("x", source, n)
    targets = ["bool", "int32", "int64", "float32", "float64"]
    outputs = [(buffer(t, t, n, role="output"), lambda i, t=t: scalar.cast(ir.Load(x, i), t)) for t in targets]
    actual, _ = native(compile_program(program([x] + [out for out, _ in outputs], elementwise(n, outputs))),
                       [values] + [np.zeros(n, t) for t in targets], [0])
    for t, result in zip(targets, actual[1:]):
        with np.errstate(all="ignore"):
            expected = values.astype(t)
        keep = ints_ok if t in ("int32", "int64") else np.ones(n, bool)
        assert_same(result[keep], expected[keep], f"{source} -> {t}")


def test_float_to_int_saturates():
    x = buffer("x", "float64", 6)
    values = np.array([np.nan, np.inf, -np.inf, 1e20, -1e20, 3.7])
    out32, out64 = buffer("i32", "int32", 6, role="output"), buffer("i64", "int64", 6, role="output")
    arrays = [values, np.full(6, 5, np.int32), np.full(6, 5, np.int64)]
    outputs = [(out, lambda i, t=out.dtype: scalar.cast(ir.Load(x, i), t)) for out in (out32, out64)]
    compiled = compile_program(program([x, out32, out64], elementwise(6, outputs)))
    assert compiled.run(arrays, [0]) == 0
    for result, info in ((arrays[1], np.iinfo(np.int32)), (arrays[2], np.iinfo(np.int64))):
        np.testing.assert_array_equal(result, [0, info.max, info.min, info.max, info.min, 3])


# -- loops, locals, control ---------------------------------------------------------------------------------
def broadcast_program(rows: ir.Expr, cols: ir.Expr, dtype: str) -> ir.Program:
    """out[i, j] = x[i, j] * b[j] + c[i]: b and c read with stride 0 along the other axis."""
    x, b, c = buffer("x", dtype, rows, cols), buffer("b", dtype, 1, cols), buffer("c", dtype, rows, 1)
    out = buffer("out", dtype, rows, cols, role="output")

    def body(idx):
        i, j = idx
        value = (ir.Load(x, ir.flat_index((i, j), x.strides))
                 * ir.Load(b, ir.flat_index((i, j), (ir.const(0), ir.const(1))))
                 + ir.Load(c, ir.flat_index((i, j), (ir.const(1), ir.const(0)))))
        return [ir.Store(out, ir.flat_index((i, j), out.strides), value)]

    return program([x, b, c, out], ir.loop_nest(ir.Namer(), (rows, cols), body))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_nested_loops_with_broadcast_loads(dtype, rng):
    for rows, cols in ((3, 5), (1, 1), (4, 17)):
        x, b, c = (rng.normal(0, 5, size).astype(dtype) for size in (rows * cols, cols, rows))
        check(broadcast_program(ir.const(rows), ir.const(cols), dtype), [x, b, c, np.zeros(rows * cols, dtype)])


def test_symbolic_dims_one_function_every_size(rng):
    p = broadcast_program(ir.Dim(1), ir.Dim(2), "float32")
    compiled = compile_program(p)
    for rows, cols in ((3, 5), (1, 1), (0, 4), (4, 0), (7, 33), (0, 0)):
        arrays = [rng.normal(size=rows * cols).astype(np.float32), rng.normal(size=cols).astype(np.float32),
                  rng.normal(size=rows).astype(np.float32), np.zeros(rows * cols, np.float32)]
        expected, _ = oracle(p, arrays, [0, rows, cols])
        actual, code = native(compiled, arrays, [0, rows, cols])
        assert code == 0
        assert_same(actual[3], expected[3], f"{rows}x{cols}")


def test_sequential_accumulation_rounds_every_step(rng):
    """acc = acc * 0.5 + x[i] without reassociate: exactly the interpreter's (no fma contraction)."""
    n = 257
    x, out = buffer("x", "float32", n), buffer("out", "float32", n, role="output")
    acc, i = ir.Local("acc", "float32"), ir.Index("i")
    body = (ir.Declare(acc, Const(0.0, "float32")),
            ir.Loop(i, ir.const(n), (ir.Assign(acc, acc * 0.5 + ir.Load(x, i) * 1.1), ir.Store(out, i, acc))))
    check(program([x, out], body), [rng.normal(size=n).astype(np.float32), np.zeros(n, np.float32)])



def test_shared_subexpressions_are_computed_once(rng):
    """Expressions are DAGs (Philox rounds reuse their operands): 60 levels of v = v*v + v render 60 multiplies,
    not 2^60."""
    n = 33
    x, out = buffer("x", "int32", n), buffer("out", "int32", n, role="output")

    def deep(i):
        v = ir.Load(x, i)
        for _ in range(60):
            v = v * v + v
        return v

    compiled = compile_program(program([x, out], elementwise(n, [(out, deep)])))
    assert compiled.rendered.llvm_ir.count("mul i32") == 60
    values = rng.integers(-1000, 1000, n).astype(np.int32)
    expected = values.copy()
    for _ in range(60):
        expected = expected * expected + expected
    outputs = [values, np.zeros(n, np.int32)]
    assert compiled.run(outputs, [0]) == 0
    np.testing.assert_array_equal(outputs[1], expected)


def reduction_program(n: int | ir.Expr, dtype: str = "float32", kind: str = "sum") -> ir.Program:
    """out[0] = the sum (or max, or min) of x, accumulated with ``reassociate=True``."""
    x, out = buffer("x", dtype, n), buffer("out", dtype, 1, role="output")
    acc, i = ir.Local("acc", dtype), ir.Index("i")
    start = {"sum": 0.0, "max": -np.inf, "min": np.inf}[kind]
    update = {"sum": scalar.add, "max": scalar.maximum, "min": scalar.minimum}[kind](acc, ir.Load(x, i))
    return program([x, out], (ir.Declare(acc, Const(start, dtype)),
                              ir.Loop(i, ir.as_expr(n), (ir.Assign(acc, update, reassociate=True),)),
                              ir.Store(out, ir.const(0), acc)))


def test_reassociated_float32_sum_is_accurate(rng):
    n = 100_000
    x = rng.uniform(0, 1, n).astype(np.float32)
    out = np.zeros(1, np.float32)
    assert compile_program(reduction_program(n)).run([x, out], [0]) == 0
    exact = x.astype(np.float64).sum()
    assert abs(out[0] - exact) <= 1e-5 * exact


def failing_program(n: int) -> ir.Program:
    """k0 copies x to out and fails at the first negative element; k1 marks that it ran."""
    x, out, mark = buffer("x", "float64", n), buffer("out", "float64", n, role="output"), buffer("m", "int32", 1)
    i = ir.Index("i")
    k0 = (ir.Loop(i, ir.const(n), (ir.If(ir.Load(x, i) < 0.0, (ir.Fail(2), ir.Store(out, i, Const(-1.0, "float64"))),
                                         (ir.Store(out, i, ir.Load(x, i)),)),)),)
    k1 = (ir.Store(mark, ir.const(0), Const(1, "int32")),)
    return program([x, out, mark], k0, k1, failures=("one", "x is negative"))


def test_fail_returns_its_code_and_nothing_after_it_runs():
    x = np.array([1.0, 2.0, -3.0, 4.0, -5.0])
    arrays = [x, np.zeros(5), np.zeros(1, np.int32)]
    actual = check(failing_program(5), arrays)
    np.testing.assert_array_equal(actual[1], [1.0, 2.0, 0.0, 0.0, 0.0])
    assert actual[2][0] == 0
    compiled = compile_program(failing_program(5))
    fine = [np.abs(x), np.zeros(5), np.zeros(1, np.int32)]
    assert compiled.run(fine, [0]) == 0
    assert fine[2][0] == 1
    arrays = [x.copy(), np.zeros(5), np.zeros(1, np.int32)]
    assert compiled.run(arrays, [0], compiled.rendered.kernels[1]) == 0  # each kernel is callable on its own
    np.testing.assert_array_equal(arrays[1], 0.0)
    assert arrays[2][0] == 1


def test_if_else_and_bool_buffers(rng):
    n = 50
    x, flags, out = buffer("x", "int32", n), buffer("f", "bool", n), buffer("out", "int32", n, role="output")
    i = ir.Index("i")
    body = (ir.Loop(i, ir.const(n), (
        ir.Store(flags, i, ir.Load(x, i) > 0),
        ir.If(ir.Load(flags, i), (ir.Store(out, i, ir.Load(x, i) * 2),), (ir.Store(out, i, -ir.Load(x, i)),)),
        ir.If(scalar.eq(ir.Load(x, i), 0), (ir.Store(out, i, Const(100, "int32")),)))),)
    check(program([x, flags, out], body), [rng.integers(-5, 5, n).astype(np.int32), np.zeros(n, bool),
                                           np.zeros(n, np.int32)])


# -- gemm ------------------------------------------------------------------------------------------------
def gemm_case(dtype: str, trans_a: bool, trans_b: bool, m: int, n: int, k: int, alpha: float, beta: float,
              batch: int = 1) -> ir.Program:
    """C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] on padded matrices (ld > their width) at nonzero offsets."""
    a_rows, a_cols = (k, m) if trans_a else (m, k)
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    lda, ldb, ldc = a_cols + 3, b_cols + 2, n + 1
    a_size, b_size, c_size = a_rows * lda + 5, b_rows * ldb + 4, m * ldc + 3
    a, b, c = buffer("a", dtype, batch * a_size), buffer("b", dtype, batch * b_size), buffer("c", dtype, batch * c_size)
    index = ir.Index("batch")

    def at(size: int, pad: int) -> ir.Expr:
        return ir.add(ir.mul(index, size), pad)

    gemm = ir.Gemm(dtype, trans_a, trans_b, ir.const(m), ir.const(n), ir.const(k), a, at(a_size, 5), ir.const(lda),
                   b, at(b_size, 4), ir.const(ldb), c, at(c_size, 3), ir.const(ldc), alpha, beta)
    return program([a, b, c], (ir.Loop(index, ir.const(batch), (gemm,)),))


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, rng):
    tolerance = {"float32": 1e-5, "float64": 1e-12}[dtype]
    for m, n, k, alpha, beta, batch in ((3, 4, 5, 1.0, 0.0, 1), (7, 2, 9, 0.5, 2.0, 3), (1, 6, 1, -1.0, 1.0, 2)):
        p = gemm_case(dtype, trans_a, trans_b, m, n, k, alpha, beta, batch)
        arrays = [rng.normal(size=int(ir.static_value(b.size))).astype(dtype) for b in p.buffers]
        expected, _ = oracle(p, arrays, [0])
        actual, code = native(compile_program(p), arrays, [0])
        assert code == 0
        np.testing.assert_allclose(actual[2], expected[2], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_gemm_with_empty_dimensions(dtype, rng):
    for m, n, beta in ((3, 4, 0.0), (3, 4, 2.5), (3, 4, 1.0), (0, 4, 0.0), (3, 0, 0.0)):
        p = gemm_case(dtype, False, True, m, n, 0, 1.0, beta, batch=2)
        arrays = [rng.normal(size=int(ir.static_value(b.size))).astype(dtype) for b in p.buffers]
        arrays[2][::7] = np.nan  # beta = 0 must overwrite NaN with zeros
        check(p, arrays)


def test_gemm_symbolic_sizes(rng):
    a, b, c = buffer("a", "float64", ir.Dim(1), 4), buffer("b", "float64", 4, ir.Dim(2)), buffer("c", "float64", 99)
    gemm = ir.Gemm("float64", False, False, ir.Dim(1), ir.Dim(2), ir.const(4), a, ir.const(0), ir.const(4),
                   b, ir.const(0), ir.Dim(2), c, ir.const(0), ir.Dim(2), 1.0, 0.0)
    compiled = compile_program(program([a, b, c], (gemm,)))
    for m, n in ((3, 5), (0, 5), (2, 0), (1, 1)):
        arrays = [rng.normal(size=m * 4), rng.normal(size=4 * n), np.full(99, 7.0)]
        assert compiled.run(arrays, [0, m, n]) == 0
        np.testing.assert_allclose(arrays[2][:m * n], (arrays[0].reshape(m, 4) @ arrays[1].reshape(4, n)).ravel())
        assert np.all(arrays[2][m * n:] == 7.0)


# -- parallel loops ------------------------------------------------------------------------------------------
class CountingThreads:
    """pthread_create resolved, for the modules compiled meanwhile, to a counter that forwards to libc's (or
    pretends the system is out of threads)."""

    PTHREAD_CREATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

    def __init__(self, refuse: bool = False) -> None:
        self.refuse, self.calls = refuse, 0
        libc = ctypes.CDLL(None)
        self.real = self.PTHREAD_CREATE(ctypes.cast(libc.pthread_create, ctypes.c_void_p).value)

        def create(thread, attr, start, arg):
            self.calls += 1
            return 11 if self.refuse else self.real(thread, attr, start, arg)  # 11: EAGAIN

        self.callback = self.PTHREAD_CREATE(create)

    def __enter__(self) -> CountingThreads:
        llvm.add_symbol("pthread_create", ctypes.cast(self.callback, ctypes.c_void_p).value)
        return self

    def __exit__(self, *exc) -> None:
        llvm.add_symbol("pthread_create", ctypes.cast(self.real, ctypes.c_void_p).value)


def parallel_program(rows: ir.Expr, cols: ir.Expr, batch: int = 2) -> ir.Program:
    """out[b, i, j] = x[b, i, j] * s + b for an outer serial loop over b, a parallel loop over i (capturing b and
    the local s) and an inner loop over j (itself marked parallel: it runs serially inside a thread)."""
    x = buffer("x", "float32", batch, rows, cols)
    out = buffer("out", "float32", batch, rows, cols, role="output")
    s, b, i, j = ir.Local("s", "float32"), ir.Index("b"), ir.Index("i"), ir.Index("j")
    at = ir.flat_index((b, i, j), x.strides)
    inner = ir.Loop(j, cols, (ir.Store(out, at, ir.Load(x, at) * s + scalar.cast(b, "float32")),), parallel=True)
    return program([x, out], (ir.Declare(s, Const(1.5, "float32")),
                              ir.Loop(b, ir.const(batch), (ir.Loop(i, rows, (inner,), parallel=True),))))


def scaled(x: np.ndarray) -> np.ndarray:
    """What ``parallel_program`` computes, by numpy."""
    return x.reshape(2, -1) * np.float32(1.5) + np.array([[0], [1]], np.float32)


def test_large_parallel_loop_uses_threads_and_equals_serial(rng):
    rows, cols = 1024, 512  # 524288 elements per parallel loop: 4 threads of at least THREAD_WORK
    p = parallel_program(ir.Dim(1), ir.Dim(2))
    x = rng.normal(size=2 * rows * cols).astype(np.float32)
    with CountingThreads() as threads:
        threaded = compile_program(p, threads=4)
        assert {"pthread_create", "pthread_join"} <= set(threaded.rendered.symbols)
        outputs = [x, np.zeros_like(x)]
        assert threaded.run(outputs, [0, rows, cols]) == 0
    assert threads.calls == 2 * 3  # two parallel loops (one per b), each on 4 threads
    serial = compile_program(p, threads=1)
    assert "pthread_create" not in serial.rendered.llvm_ir
    expected = [x, np.zeros_like(x)]
    assert serial.run(expected, [0, rows, cols]) == 0
    assert_same(outputs[1], expected[1])
    np.testing.assert_array_equal(expected[1].reshape(2, -1), scaled(x))


def test_small_parallel_loop_runs_serially(rng):
    p = parallel_program(ir.Dim(1), ir.Dim(2))
    with CountingThreads() as threads:
        compiled = compile_program(p, threads=4)
        for rows, cols in ((3, 7), (0, 5), (100, 300), (1, 40000)):  # 100·300 < PARALLEL_WORK; one row can't split
            x = rng.normal(size=2 * rows * cols).astype(np.float32)
            if rows * cols < 100:
                check(p, [x, np.zeros_like(x)], [0, rows, cols])
            outputs = [x, np.zeros_like(x)]
            assert compiled.run(outputs, [0, rows, cols]) == 0
            np.testing.assert_array_equal(outputs[1].reshape(2, -1), scaled(x))
    assert threads.calls == 0


def test_parallel_loop_when_threads_cannot_start(rng):
    rows, cols = 1600, 256  # enough work for 3 threads of THREAD_WORK
    x = rng.normal(size=2 * rows * cols).astype(np.float32)
    with CountingThreads(refuse=True) as threads:
        compiled = compile_program(parallel_program(ir.const(rows), ir.const(cols)), threads=3)
        outputs = [x, np.zeros_like(x)]
        assert compiled.run(outputs, [0]) == 0
    assert threads.calls == 2 * 2
    np.testing.assert_array_equal(outputs[1].reshape(2, -1), scaled(x))


def test_fail_inside_a_parallel_loop_returns_its_code():
    n = 200_000
    x, out = buffer("x", "float64", n), buffer("out", "float64", n, role="output")
    i = ir.Index("i")
    body = (ir.Loop(i, ir.const(n), (ir.If(ir.Load(x, i) < 0.0, (ir.Fail(1),)), ir.Store(out, i, ir.Load(x, i))),
                    parallel=True),)
    compiled = compile_program(program([x, out], body, failures=("negative",)), threads=4)
    for bad in (n - 1, 0, n // 2):
        values = np.ones(n)
        values[bad] = -1.0
        outputs = [values, np.zeros(n)]
        assert compiled.run(outputs, [0]) == 1
        assert outputs[1][bad] == 0.0
    outputs = [np.ones(n), np.zeros(n)]
    assert compiled.run(outputs, [0]) == 0
    assert np.all(outputs[1] == 1.0)


def test_parallel_loop_assigning_an_outer_local_runs_serially(rng):
    """Its iterations are not independent: the renderer keeps them in order on one thread."""
    n = 50_000
    x, out = buffer("x", "int64", n), buffer("out", "int64", n, role="output")
    total, i = ir.Local("total", "int64"), ir.Index("i")
    body = (ir.Declare(total, Const(0, "int64")),
            ir.Loop(i, ir.const(n), (ir.Assign(total, total + ir.Load(x, i)), ir.Store(out, i, total)), parallel=True))
    x_values = rng.integers(-9, 9, n)
    with CountingThreads() as threads:
        outputs = [x_values, np.zeros(n, np.int64)]
        assert compile_program(program([x, out], body), threads=4).run(outputs, [0]) == 0
    assert threads.calls == 0
    np.testing.assert_array_equal(outputs[1], np.cumsum(x_values))


def test_triangular_parallel_loop(rng):
    """A nested extent depending on the parallel index counts as 1 in the work estimate; results stay exact."""
    n = 300
    x, out = buffer("x", "float64", n, n), buffer("out", "float64", n, role="output")
    i, j, acc = ir.Index("i"), ir.Index("j"), ir.Local("acc", "float64")
    row = ir.Loop(j, ir.add(i, 1), (ir.Assign(acc, acc + ir.Load(x, ir.add(ir.mul(i, n), j))),))
    body = (ir.Loop(i, ir.const(n), (ir.Declare(acc, Const(0.0, "float64")), row, ir.Store(out, i, acc)),
                    parallel=True),)
    values = rng.normal(size=n * n)
    outputs = [values, np.zeros(n)]
    assert compile_program(program([x, out], body)).run(outputs, [0]) == 0
    np.testing.assert_allclose(outputs[1], np.tril(values.reshape(n, n)).sum(axis=1), rtol=1e-12, atol=1e-12)


# -- what the optimizer makes of it ----------------------------------------------------------------------------
def vector_widths(optimized: str) -> bool:
    return "<8 x float>" in optimized or "<16 x float>" in optimized


def test_elementwise_float32_loop_vectorizes_without_contraction():
    a, b, c = (buffer(name, "float32", ir.Dim(1)) for name in "abc")
    out = buffer("out", "float32", ir.Dim(1), role="output")
    compiled = compile_program(program([a, b, c, out], elementwise(
        ir.Dim(1), [(out, lambda i: ir.Load(a, i) * ir.Load(b, i) + ir.Load(c, i))])))
    assert vector_widths(compiled.optimized)
    assert "fma" not in compiled.optimized and "contract" not in compiled.optimized
    assert "reassoc" not in compiled.rendered.llvm_ir


def test_reassociated_float32_sum_vectorizes():
    compiled = compile_program(reduction_program(ir.Dim(1)))
    assert vector_widths(compiled.optimized)
    assert "fadd reassoc " in compiled.rendered.llvm_ir and "nsz" not in compiled.rendered.llvm_ir


@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_reassociated_extremum_vectorizes_and_propagates_nan(kind, dtype, rng):
    compiled = compile_program(reduction_program(ir.Dim(1), dtype, kind))
    assert ("<8 x float>" in compiled.optimized or "<16 x float>" in compiled.optimized if dtype == "float32"
            else "<8 x double>" in compiled.optimized or "<4 x double>" in compiled.optimized)
    reduce = {"max": np.max, "min": np.min}[kind]
    for n in (1, 7, 1000):
        x = rng.normal(size=n).astype(dtype)
        out = np.zeros(1, dtype)
        assert compiled.run([x, out], [0, n]) == 0
        assert out[0] == reduce(x)
        x[rng.integers(n)] = np.nan
        assert compiled.run([x, out], [0, n]) == 0
        assert np.isnan(out[0])


@pytest.mark.parametrize("name", sorted(vmath.NAMES))
def test_vmath_loops_vectorize(name):
    x, out = buffer("x", "float32", ir.Dim(1)), buffer("out", "float32", ir.Dim(1), role="output")
    compiled = compile_program(program([x, out], elementwise(ir.Dim(1), [(out, lambda i: (
        scalar.pow(ir.Load(x, i), ir.Load(x, i)) if name == "pow" else getattr(scalar, name)(ir.Load(x, i))))])))
    assert "x float>" in compiled.optimized
    assert not compiled.rendered.symbols


# -- the module's names and the renderer's errors ------------------------------------------------------------------
def test_names_are_llvm_safe_unique_and_listed():
    x = buffer("x", "int32", 1)
    store = (ir.Store(x, ir.const(0), Const(3, "int32")),)
    kernels = [ir.LoopKernel(name, store) for name in ("k 0", "k_0", "entry", "dense/matmul")]
    rendered = render(ir.Program([x], kernels, []), threads=2)
    assert rendered.entry == "graphc_entry"
    assert rendered.kernels == ("graphc_k_0", "graphc_k_0_2", "graphc_entry_2", "graphc_dense_matmul")
    assert rendered.symbols == ()
    compiled = Native(rendered)
    for symbol in rendered.kernels:
        value = np.zeros(1, np.int32)
        assert compiled.run([value], [0], symbol) == 0
        assert value[0] == 3


def test_gemm_symbols_are_listed():
    p = gemm_case("float32", False, False, 2, 2, 2, 1.0, 0.0)
    assert render(p, threads=1).symbols == ("scipy_cblas_sgemm",)


def test_render_errors():
    x, y = buffer("x", "float32", 2), buffer("y", "float32", 2)
    store = (ir.Store(x, ir.const(0), ir.Load(y, ir.const(0))),)
    with pytest.raises(ValueError, match="threads"):
        render(program([x, y], store), threads=0)
    with pytest.raises(ValueError, match="missing from the program: y"):
        render(program([x], store), threads=1)
    with pytest.raises(ValueError, match="before it is declared"):
        render(program([x], (ir.Store(x, ir.const(0), ir.Local("ghost", "float32")),)), threads=1)
    i = ir.Index("i")
    parallel = ir.Loop(i, ir.const(2), (ir.Store(x, i, ir.Local("ghost", "float32")),), parallel=True)
    with pytest.raises(ValueError, match="before it is declared"):
        render(program([x], (parallel,)), threads=2)
    n = buffer("n", "int32", 4)
    gemm = ir.Gemm("int32", False, False, ir.const(2), ir.const(2), ir.const(2), n, ir.const(0), ir.const(2),
                   n, ir.const(0), ir.const(2), n, ir.const(0), ir.const(2))
    with pytest.raises(ValueError, match="gemm of int32"):
        render(program([n], (gemm,)), threads=1)
