"""to_sympy / from_sympy: the lecture's function and its derivatives, every elementwise op through its
scalar expression, round trips of random elementwise graphs, and the errors."""

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.symbolic import SymbolicError, from_sympy, numpy_function, symbol, to_sympy
from tests.helpers import lecture, run
from tests.ops.test_ops import ALL_CASES


def test_lecture_function_and_its_derivatives():
    x1, x2, y = lecture()
    s1, s2 = symbol(x1), symbol(x2)
    expr = to_sympy(y)
    assert expr == sympy.log(s1) + s1 * s2 - sympy.sin(s2)
    assert sympy.simplify(sympy.diff(expr, s1) - (1 / s1 + s2)) == 0
    assert sympy.simplify(sympy.diff(expr, s2) - (s1 - sympy.cos(s2))) == 0


def test_a_gradient_graph_translates_to_sympys_derivative():
    x1, x2, y = lecture()
    for x, gradient in zip((x1, x2), gc.gradients(y, [x1, x2])):
        assert sympy.simplify(to_sympy(gradient) - sympy.diff(to_sympy(y), symbol(x))) == 0


def test_symbols_are_real_and_named_after_the_tensors():
    x = gc.placeholder("float32", (None, 3), name="x")
    v = gc.Variable(np.ones(3, np.float32), name="v")
    expr = to_sympy(x * v + 1.5)
    assert expr.free_symbols == {sympy.Symbol("x", real=True), sympy.Symbol("v", real=True)}
    assert expr == sympy.Symbol("x", real=True) * sympy.Symbol("v", real=True) + sympy.Float(1.5)


def test_int_and_bool_placeholders():
    i = gc.placeholder("int32", (3,), name="i")
    b = gc.placeholder("bool", (3,), name="b")
    x = gc.placeholder("float64", (3,), name="x")
    out = gc.where(b, gc.cast(i, "float64") * x, gc.cast(i * 2 + 1, "float64"))
    expr = to_sympy(out)
    assert symbol(i).is_integer and symbol(x).is_real and symbol(b).is_real is None
    feeds = {i: np.array([1, -2, 3], np.int32), b: np.array([True, False, True]), x: np.array([0.5, 1.5, 2.5])}
    got = numpy_function([symbol(i), symbol(b), symbol(x)], expr)(*feeds.values())
    np.testing.assert_allclose(got, [0.5, -3.0, 7.5])
    np.testing.assert_allclose(run(from_sympy(expr, [i, b, x]), feeds), [0.5, -3.0, 7.5])


# every op with a scalar, on its float64 registry cases: sympy (lambdified) agrees with the graph, and
# from_sympy rebuilds a graph that computes the same values
FLOAT64_CASES = [case for case in ALL_CASES if case.op.scalar is not None and all(
    np.asarray(a).dtype.name in ("float64", "bool") for a in case.make_inputs(np.random.default_rng(0)))
    and "bool" not in case.label]


@pytest.mark.parametrize("case", FLOAT64_CASES, ids=lambda c: c.id)
def test_every_elementwise_op_translates(case, rng):
    arrays = [np.asarray(a) for a in case.make_inputs(rng)]
    placeholders = [gc.placeholder(a.dtype.name, a.shape, name=f"in{i}") for i, a in enumerate(arrays)]
    out = case.build(*placeholders)
    expr = to_sympy(out)
    feeds = dict(zip(placeholders, arrays))
    want = run(out, feeds)
    function = numpy_function([symbol(p) for p in placeholders], expr)
    with np.errstate(all="ignore"):
        got = np.broadcast_to(np.asarray(function(*arrays), dtype=want.dtype), want.shape)
    rtol = 1e-6 if want.dtype == np.float32 else 1e-12  # a cast to float32 is the identity in sympy
    np.testing.assert_allclose(got, want, rtol=rtol, equal_nan=True, err_msg=str(expr))
    rebuilt = from_sympy(expr, placeholders)
    np.testing.assert_allclose(np.broadcast_to(run(rebuilt, feeds), want.shape), want, rtol=rtol,
                               equal_nan=True, err_msg=str(expr))


def test_every_op_with_a_scalar_translates():
    with_scalar = {name for name, op in gc.REGISTRY.items() if op.scalar is not None}
    assert sorted(with_scalar - {case.op.name for case in FLOAT64_CASES}) == []


def test_comparisons_logic_and_casts():
    x = gc.placeholder("float64", (4,), name="x")
    y = gc.placeholder("float64", (4,), name="y")
    inside = gc.logical_and(x >= -1, gc.less_equal(x, 1)) | gc.logical_not(gc.not_equal(x, y))
    out = (gc.cast(inside, "float64") + gc.cast(gc.greater(x, y), "float64") * 2
           + gc.cast(gc.cast(x * 3, "int32"), "float64") + gc.cast(gc.equal(x, 0.5), "float64") * 10
           + gc.cast(gc.less(y, x), "float64") * 100)
    feeds = {x: np.array([-2.7, 0.5, 1.5, 3.0]), y: np.array([1.0, 2.0, 1.5, -3.0])}
    expr = to_sympy(out)
    got = numpy_function([symbol(x), symbol(y)], expr)(*feeds.values())
    np.testing.assert_allclose(got, run(out, feeds))
    np.testing.assert_allclose(run(from_sympy(expr, [x, y]), feeds), run(out, feeds))


# -- round trips of random elementwise graphs ---------------------------------------------------------------
UNARY = [gc.sin, gc.cos, gc.tanh, gc.sigmoid, gc.softplus, gc.gelu, gc.erf, gc.neg, gc.abs, gc.relu, gc.square,
         gc.elu, lambda a: gc.exp(gc.tanh(a)), lambda a: gc.log(1 + gc.square(a)),
         lambda a: gc.sqrt(gc.abs(a) + 0.5), lambda a: gc.leaky_relu(a, 0.1), lambda a: gc.clip(a, -1.0, 0.5)]
BINARY = [gc.add, gc.sub, gc.mul, gc.maximum, gc.minimum, lambda a, b: a / (1 + gc.square(b)),
          lambda a, b: gc.where(a > b, a, 0.5 * b), lambda a, b: gc.pow(gc.abs(a) + 0.5, gc.tanh(b)),
          lambda a, b: 2.5 * a - b]


def _random_graph(rng, leaves, size):
    values = list(leaves)
    for _ in range(size):
        if rng.random() < 0.5:
            values.append(UNARY[rng.integers(len(UNARY))](values[rng.integers(len(values))]))
        else:
            a, b = (values[i] for i in rng.integers(len(values), size=2))
            values.append(BINARY[rng.integers(len(BINARY))](a, b))
    return values[-1]


@pytest.mark.parametrize("trial", range(20))
def test_round_trip_of_random_elementwise_graphs(trial, rng):
    leaves = [gc.placeholder("float64", shape, name=name) for name, shape in
              [("a", (3, 1)), ("b", (4,)), ("c", ())]]
    out = _random_graph(rng, leaves, size=int(rng.integers(3, 12)))
    expr = to_sympy(out)
    rebuilt = from_sympy(expr, leaves)
    feeds = {leaf: rng.uniform(-2, 2, leaf.shape) for leaf in leaves}
    want, got = run([out, rebuilt], feeds)
    np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, rtol=1e-9, atol=1e-12, err_msg=str(expr))


def test_from_sympy_of_a_derivative_matches_reverse_mode():
    x1, x2, y = lecture()
    derivative = from_sympy(sympy.diff(to_sympy(gc.tanh(y) * gc.sigmoid(x1)), symbol(x2)), [x1, x2])
    (gradient,) = gc.gradients(gc.tanh(y) * gc.sigmoid(x1), [x2])
    feeds = {x1: 0.7, x2: 1.3}
    np.testing.assert_allclose(run(derivative, feeds), run(gradient, feeds), rtol=1e-12)


def test_from_sympy_inputs_by_symbol_by_name_or_as_a_list():
    x1, x2, _ = lecture()
    expr = sympy.exp(symbol(x1)) / symbol(x2) - sympy.Rational(1, 3)
    feeds = {x1: 0.5, x2: 2.0}
    want = np.exp(0.5) / 2.0 - 1 / 3
    for inputs in ({symbol(x1): x1, symbol(x2): x2}, {"x1": x1, "x2": x2}, [x1, x2]):
        np.testing.assert_allclose(run(from_sympy(expr, inputs), feeds), want, rtol=1e-15)


def test_from_sympy_of_a_number_has_the_inputs_dtype():
    x1, _, _ = lecture()
    out = from_sympy(sympy.pi, [x1])
    assert out.dtype == "float64" and run(out) == np.pi


def test_from_sympy_builds_shared_terms_once():
    x1, x2, _ = lecture()
    s1 = symbol(x1)
    out = from_sympy(sympy.tanh(s1) ** 2 + sympy.tanh(s1) * symbol(x2), [x1, x2])
    assert sum(node.op.name == "tanh" for node in out.graph.nodes) == 1


# -- errors ---------------------------------------------------------------------------------------------------
def test_to_sympy_rejects_a_non_elementwise_op_by_name():
    x = gc.placeholder("float64", (3,), name="x")
    total = gc.reduce_sum(gc.exp(x), name="total")
    with pytest.raises(SymbolicError, match=r"reduce_sum node 'total' .* is not elementwise"):
        to_sympy(total * 2)


def test_to_sympy_rejects_a_constant_with_several_values():
    x = gc.placeholder("float64", (3,), name="x")
    with pytest.raises(SymbolicError, match="holds 3 different values"):
        to_sympy(x * np.array([1.0, 2.0, 3.0]))


def test_from_sympy_errors_name_the_symbol_or_function():
    x1, _, _ = lecture()
    with pytest.raises(SymbolicError, match=r"no tensor for symbol 'z'"):
        from_sympy(symbol(x1) + sympy.Symbol("z", real=True), [x1])
    with pytest.raises(SymbolicError, match="no graph op for sympy's gamma"):
        from_sympy(sympy.gamma(symbol(x1)), [x1])
