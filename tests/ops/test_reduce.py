"""Reductions beyond the registry cases: build-time errors, axis normalization, dtype rules, unknown dims,
logsumexp stability, empty identities and the Tensor methods."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import DTypeError, ShapeError
from tests.helpers import assert_build_error, run

# -- errors ---------------------------------------------------------------------------------------------------
AXIS_ERRORS = [
    (lambda x: gc.reduce_sum(x, axis=3, name="total"), ["'total'", "axis 3", "rank 3"]),
    (lambda x: gc.reduce_mean(x, axis=-4, name="avg"), ["'avg'", "axis -4", "rank 3", "-3..2"]),
    (lambda x: gc.reduce_max(x, axis=(0, 5), name="peak"), ["'peak'", "axis 5", "rank 3"]),
    (lambda x: gc.reduce_min(x, axis=(1, -2), name="low"), ["'low'", "axis -2 repeats axis 1", "rank 3"]),
    (lambda x: gc.reduce_prod(x, axis=(2, 2), name="p"), ["'p'", "axis 2 repeats axis 2"]),
    (lambda x: gc.reduce_logsumexp(x, axis=1.5, name="lse"), ["'lse'", "an axis must be an int", "1.5"]),
    (lambda x: gc.reduce_sum(x, axis="rows", name="s"), ["'s'", "'rows'"]),
    (lambda x: gc.reduce_sum(x, axis=True, name="s"), ["'s'", "True"]),
    (lambda x: gc.argmax(x, axis=3, name="am"), ["'am'", "axis 3", "rank 3"]),
    (lambda x: gc.argmin(x, axis=(0, 1), name="ai"), ["'ai'", "one axis or None"]),
    (lambda x: x.sum(axis=7), ["reduce_sum", "axis 7"]),
]


@pytest.mark.parametrize("build, fragments", AXIS_ERRORS)
def test_bad_axes_are_shape_errors_at_the_users_line(build, fragments):
    x = gc.placeholder("float32", (2, None, 4), name="x")
    message = assert_build_error(ShapeError, build, x, fragments=fragments)
    assert "x: float32[2,?,4]" in message


def test_a_scalar_has_no_axes():
    s = gc.placeholder("float64", (), name="s")
    assert_build_error(ShapeError, lambda: gc.reduce_sum(s, axis=0), fragments=["a scalar has no axes"])
    assert gc.reduce_sum(s).shape == () and gc.argmax(s).shape == ()


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_logsumexp_takes_floats_only(dtype):
    x = gc.placeholder(dtype, (3,), name="counts")
    assert_build_error(DTypeError, lambda: gc.reduce_logsumexp(x, name="lse"),
                       fragments=["'lse'", f"does not accept {dtype}", "float32"])


def test_argmax_of_a_known_empty_axis_is_a_build_error():
    x = gc.placeholder("float32", (3, 0), name="x")
    assert_build_error(ShapeError, lambda: gc.argmax(x, axis=1, name="best"), fragments=["'best'", "size 0"])
    assert_build_error(ShapeError, lambda: gc.argmin(x), fragments=["argmin", "empty"])
    assert gc.argmax(x, axis=0).shape == (0,)  # reducing a non-empty axis of an empty tensor is fine


def test_argmax_of_an_empty_axis_fed_at_run_time_is_a_run_time_error():
    x = gc.placeholder("float32", (3, None), name="x")
    best = gc.argmax(x, axis=1, name="best")
    with pytest.raises(ShapeError, match="best"):
        run(best, {x: np.zeros((3, 0), np.float32)})


# -- attributes, dtypes and static shapes ---------------------------------------------------------------------
def test_axes_are_normalized_to_a_sorted_tuple():
    x = gc.placeholder("float32", (2, 3, 4))
    assert gc.reduce_sum(x, axis=(-1, 0)).node.attrs["axis"] == (0, 2)
    assert gc.reduce_sum(x, axis=np.int64(-2)).node.attrs["axis"] == (1,)
    assert gc.reduce_mean(x, axis=[2, 1]).node.attrs["axis"] == (1, 2)
    assert gc.reduce_max(x).node.attrs == {"axis": (0, 1, 2), "keepdims": False}
    assert gc.reduce_min(x, axis=()).shape == (2, 3, 4)
    assert gc.argmax(x, axis=-1).node.attrs == {"axis": 2, "keepdims": False}
    assert gc.argmin(x).node.attrs["axis"] is None


@pytest.mark.parametrize("op, dtype, result", [
    (gc.reduce_sum, "bool", "int64"), (gc.reduce_sum, "int32", "int32"), (gc.reduce_sum, "float32", "float32"),
    (gc.reduce_prod, "bool", "int64"), (gc.reduce_prod, "int64", "int64"),
    (gc.reduce_mean, "int32", "float64"), (gc.reduce_mean, "bool", "float64"),
    (gc.reduce_mean, "float32", "float32"), (gc.reduce_max, "bool", "bool"), (gc.reduce_min, "int32", "int32"),
    (gc.reduce_logsumexp, "float64", "float64"), (gc.argmax, "float32", "int64"), (gc.argmin, "bool", "int64"),
])
def test_result_dtypes(op, dtype, result):
    assert op(gc.placeholder(dtype, (2, 3)), axis=1).dtype == result


def test_unknown_dims_flow_through():
    x = gc.placeholder("float32", (None, 3, None), name="x")
    assert gc.reduce_sum(x, axis=1).shape == (None, None)
    assert gc.reduce_mean(x, axis=0).shape == (3, None)
    assert gc.reduce_max(x, axis=(0, 2), keepdims=True).shape == (1, 3, 1)
    assert gc.reduce_logsumexp(x, axis=-1).shape == (None, 3)
    assert gc.argmax(x, axis=2).shape == (None, 3)
    assert gc.argmin(x, keepdims=True).shape == (1, 1, 1)
    value = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_allclose(run(gc.reduce_sum(x, axis=1), {x: value}), value.sum(axis=1))


# -- values -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_is_stable_at_large_magnitudes(dtype):
    rows = np.array([[1000, 1000], [-1000, -1000], [1000, -1000], [-np.inf, -np.inf], [np.inf, 1.0],
                     [-np.inf, 0.0]], dtype)
    x = gc.placeholder(dtype, (None, 2))
    got = run(gc.reduce_logsumexp(x, axis=1), {x: rows})
    want = np.array([1000 + np.log(2), -1000 + np.log(2), 1000, -np.inf, np.inf, 0.0])
    assert got.dtype == dtype and not np.isnan(got).any()
    np.testing.assert_allclose(got, want.astype(dtype), rtol=1e-6)


def test_logsumexp_keepdims_and_nan():
    x = gc.placeholder("float64", (2, 3))
    value = np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 2.0]])
    got = run(gc.reduce_logsumexp(x, axis=1, keepdims=True), {x: value})
    assert got.shape == (2, 1) and np.isnan(got[0, 0])
    np.testing.assert_allclose(got[1, 0], np.log(np.exp(value[1]).sum()))


@pytest.mark.parametrize("dtype, lowest, highest", [
    ("float32", -np.inf, np.inf), ("int32", np.iinfo(np.int32).min, np.iinfo(np.int32).max),
    ("int64", np.iinfo(np.int64).min, np.iinfo(np.int64).max), ("bool", False, True),
])
def test_empty_reductions_give_the_identity(dtype, lowest, highest):
    x = gc.placeholder(dtype, (None, 2))
    fetches = [gc.reduce_max(x, 0), gc.reduce_min(x, 0), gc.reduce_sum(x, 0), gc.reduce_prod(x, 0),
               gc.reduce_mean(x, 0)]
    peak, low, total, product, mean = run(fetches, {x: np.zeros((0, 2), dtype)})
    assert peak.tolist() == [lowest] * 2 and low.tolist() == [highest] * 2
    assert total.tolist() == [0, 0] and product.tolist() == [1, 1] and np.isnan(mean).all()


def test_empty_logsumexp_is_minus_infinity():
    x = gc.placeholder("float32", (0, 3))
    assert run(gc.reduce_logsumexp(x, axis=0), {x: np.zeros((0, 3), np.float32)}).tolist() == [-np.inf] * 3


def test_max_and_min_propagate_nan():
    x = gc.placeholder("float64", (3,))
    got = run([gc.reduce_max(x), gc.reduce_min(x), gc.argmax(x)], {x: np.array([1.0, np.nan, 3.0])})
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == 1


def test_int_mean_divides_in_float64():
    x = gc.placeholder("int64", (4,))
    assert run(gc.reduce_mean(x), {x: np.array([1, 2, 3, 5])}) == 2.75


def test_python_values_are_accepted():
    assert run(gc.reduce_sum([[1, 2], [3, 4]], axis=0)).tolist() == [4, 6]
    assert run(gc.argmax([3.0, 7.0, 5.0])) == 1


# -- Tensor methods --------------------------------------------------------------------------------------------
def test_tensor_methods():
    x = gc.placeholder("float64", (None, 3), name="x")
    value = np.array([[1.0, -2.0, 3.0], [4.0, 0.5, -6.0]])
    fetches = [x.sum(axis=1), x.mean(), x.max(0, keepdims=True), x.min(axis=-1), x.argmax(axis=1), x.argmin()]
    assert [f.node.op.name for f in fetches] == ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min",
                                                  "argmax", "argmin"]
    got = run(fetches, {x: value})
    want = [value.sum(axis=1), value.mean(), value.max(0, keepdims=True), value.min(axis=-1),
            value.argmax(axis=1), value.argmin()]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)
        assert np.shape(g) == np.shape(w)


# -- derivatives beyond the registry's finite differences: run-time counts, ties, zeros, stability -------------
def test_mean_gradient_counts_unknown_dims_when_run():
    x = gc.placeholder("float64", (None, 3, None), name="x")
    (grad,) = gc.gradients(gc.reduce_mean(x, axis=(0, 2)), x)
    (tangent,) = gc.jvp(gc.reduce_mean(x, axis=(0, 2)), x, [gc.ones_like(x)])
    for shape in [(2, 3, 5), (1, 3, 1)]:  # one graph, two feeds: the count comes from the fed shape
        got, got_tangent = run([grad, tangent], {x: np.zeros(shape)})
        np.testing.assert_allclose(got, np.full(shape, 1 / (shape[0] * shape[2])), rtol=1e-15)
        np.testing.assert_allclose(got_tangent, np.ones(3), rtol=1e-15)


def test_mean_gradient_of_int_input_builds_and_is_dropped():
    x = gc.placeholder("float64", (2, 3), name="x")
    y = gc.reduce_mean(gc.cast(x, "int32"), axis=1)  # a float64 mean of ints: no derivative reaches x
    assert gc.gradients(y, x, unconnected="none") == [None]


@pytest.mark.parametrize("op, value, share", [
    (gc.reduce_max, [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], [[0.0, 0.5, 0.5], [1 / 3] * 3]),
    (gc.reduce_min, [[1.0, 3.0, 1.0], [2.0, -2.0, 0.0]], [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]),
])
def test_max_and_min_split_the_derivative_evenly_among_ties(op, value, share):
    x = gc.placeholder("float64", (None, 3), name="x")
    y = op(x, axis=1)
    (grad,) = gc.gradients(y, x, grad_ys=[np.array([1.0, 6.0])])
    direction = np.array([[5.0, 1.0, 3.0], [1.0, 2.0, 6.0]])
    (tangent,) = gc.jvp(y, x, [direction])
    got, got_tangent = run([grad, tangent], {x: np.array(value)})
    share = np.array(share)
    np.testing.assert_allclose(got, share * [[1.0], [6.0]], rtol=1e-15)
    np.testing.assert_allclose(got_tangent, np.sum(share * direction, axis=1), rtol=1e-15)


@pytest.mark.parametrize("value, expected", [
    ([1.0, 2.0, 3.0], [6.0, 3.0, 2.0]),
    ([2.0, 0.0, 3.0], [0.0, 6.0, 0.0]),   # a lone zero: its partial is the product of the rest
    ([0.0, 2.0, 0.0], [0.0, 0.0, 0.0]),   # two zeros: every partial is 0
])
def test_prod_gradient_is_exact_at_zeros(value, expected):
    x = gc.placeholder("float64", (3,), name="x")
    y = gc.reduce_prod(x)
    (grad,) = gc.gradients(y, x)
    (tangent,) = gc.jvp(y, x, [np.array([1.0, 10.0, 100.0])])
    got, got_tangent = run([grad, tangent], {x: np.array(value)})
    np.testing.assert_array_equal(got, expected)
    assert got_tangent == np.dot(expected, [1.0, 10.0, 100.0])


def test_prod_second_derivative_with_one_zero():
    x = gc.placeholder("float64", (3,), name="x")
    (grad,) = gc.gradients(gc.reduce_prod(x), x)
    (column,) = gc.gradients(gc.reduce_sum(grad * np.array([1.0, 0.0, 0.0])), x)  # the Hessian's column 0
    np.testing.assert_array_equal(run(column, {x: np.array([0.0, 2.0, 3.0])}), [0.0, 3.0, 2.0])


def test_logsumexp_gradient_is_the_softmax_and_stable():
    x = gc.placeholder("float64", (None, 2), name="x")
    y = gc.reduce_logsumexp(x, axis=1)
    # an all −inf row has the derivative NaN, but a zero cotangent reaching it stays zero (mul_no_nan)
    (grad,) = gc.gradients(gc.reduce_sum(gc.where(y > -1e300, y, gc.zeros_like(y))), x)
    value = np.array([[1000.0, 1000.0], [-1000.0, -1001.0], [-np.inf, -np.inf]])
    got = run(grad, {x: value})
    np.testing.assert_allclose(got[:2], [[0.5, 0.5], [1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))]], rtol=1e-12)
    np.testing.assert_array_equal(got[2], [0.0, 0.0])


def test_argmax_and_argmin_have_no_derivative_rules():
    assert gc.argmax.opdef.vjp is None and gc.argmin.opdef.jvp is None
