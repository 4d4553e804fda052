"""simplify: each algebraic rule fires on its form and not where NaN/Inf semantics, integer vs float dtypes
or broadcasting forbid it; optimized graphs compute what the graphs as built compute. Also the issue's
done-when: the lecture's gradients optimize to 1/x1 + x2 and x1 − cos x2."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.ops.broadcast import broadcast_like, sum_to
from graphc.passes import optimize
from tests.helpers import lecture
from tests.passes.evaluate import assert_same_values
from tests.passes.test_canonicalize import ops_of, run

SPECIAL = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan])


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph


def special(shape=(7,)):
    """A float64 placeholder and a feed of zeros, ±inf and NaN among ordinary values."""
    x = gc.placeholder("float64", shape, name="x")
    return x, {x: np.broadcast_to(SPECIAL, shape).copy()}


# -- fills -----------------------------------------------------------------------------------------------
def test_ones_like_and_zeros_like_of_a_known_shape_are_constants():
    x = gc.placeholder("float32", (2, 3), name="x")
    out, fired = run(gc.ones_like(x), level=1)
    assert fired["ones_like_static"] == 1 and out.node.op.name == "constant"
    assert out.dtype == "float32" and np.array_equal(out.node.attrs["value"], np.ones((2, 3)))
    out, fired = run(gc.zeros_like(x), level=1)
    assert fired["zeros_like_static"] == 1 and not out.node.attrs["value"].any()


def test_ones_like_of_an_unknown_shape_stays():
    x = gc.placeholder("float32", (None, 3), name="x")
    out, fired = run(gc.ones_like(x))
    assert fired["ones_like_static"] == 0 and out.node.op.name == "ones_like"


def test_a_large_fill_is_a_broadcast_scalar():
    x = gc.placeholder("float32", (1000, 1000), name="x")
    out, _ = run(gc.zeros_like(x), level=1)
    assert out.node.op.name == "broadcast_to" and out.node.inputs[0].node.attrs["value"].shape == ()


# -- identities ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("build", [lambda x: x * 1.0, lambda x: 1.0 * x, lambda x: x * gc.ones_like(x),
                                   lambda x: x + 0.0, lambda x: gc.zeros_like(x) + x, lambda x: x - 0.0,
                                   lambda x: x / 1.0, lambda x: x ** 1.0])
def test_identities_leave_x(build):
    x, feeds = special()
    y = gc.exp(build(x))
    out, _ = run(y)
    assert ops_of(out) == ["exp", "placeholder"]
    assert_same_values(y, feeds)


@pytest.mark.parametrize(("build", "rule"), [(lambda x: x * 2.0, "mul_one"), (lambda x: x + 1.0, "add_zero"),
                                             (lambda x: x - 1.0, "sub_zero"), (lambda x: x / 2.0, "div_one"),
                                             (lambda x: x ** 3.0, "pow_one")])
def test_identities_need_the_identity(build, rule):
    x, _ = special()
    _, fired = run(build(x))
    assert fired[rule] == 0


def test_an_identity_that_enlarges_the_result_broadcasts_x(rng):
    x = gc.placeholder("float64", (3,), name="x")
    like = gc.placeholder("float64", (2, 3), name="like")
    y = x * gc.ones_like(like)
    out, fired = run(y)
    assert fired["mul_one"] == 1 and out.node.op.name == "broadcast_to" and out.shape == (2, 3)
    assert_same_values(y, {x: rng.normal(size=3), like: rng.normal(size=(2, 3))})


def test_an_identity_of_unknown_larger_shape_broadcasts_like_it(rng):
    x = gc.placeholder("float64", (1, 3), name="x")
    big = gc.placeholder("float64", (None, 3), name="big")
    y = x + gc.zeros_like(big)
    out, fired = run(y)
    assert fired["add_zero"] == 1 and out.node.op.name == "broadcast_like" and out.shape == (None, 3)
    assert_same_values(y, {x: rng.normal(size=(1, 3)), big: rng.normal(size=(4, 3))})


def test_integer_division_by_one_is_a_cast():
    i = gc.placeholder("int64", (3,), name="i")
    y = i / 1
    out, fired = run(y)
    assert fired["div_one"] == 1 and ops_of(out) == ["cast", "placeholder"] and out.dtype == "float64"
    assert_same_values(y, {i: np.array([-3, 0, 2**40])})


# -- zeros: integers only ----------------------------------------------------------------------------------
def test_integer_times_zero_is_zeros():
    i = gc.placeholder("int32", (None,), name="i")
    y = i * 0
    out, fired = run(y)
    assert fired["mul_zero_int"] == 1 and out.node.op.name == "zeros_like" and out.dtype == "int32"
    assert_same_values(y, {i: np.array([5, -7, 0], np.int32)})


def test_float_times_zero_is_kept_because_inf_times_zero_is_nan():
    x, feeds = special()
    y = x * 0.0
    out, fired = run(y)
    assert fired["mul_zero_int"] == 0 and out.node.op.name == "mul"
    assert_same_values(y, feeds)


def test_x_minus_x_is_zeros_for_integers_only():
    i = gc.placeholder("int64", (2, 2), name="i")
    out, fired = run(i - i)
    assert fired["sub_self_int"] == 1 and out.node.op.name == "constant" and not out.node.attrs["value"].any()
    x, feeds = special()
    out, fired = run(x - x)
    assert fired["sub_self_int"] == 0 and out.node.op.name == "sub"
    assert_same_values(x - x, feeds)


def test_x_to_the_zero_is_one_even_for_nan_and_inf():
    x, feeds = special()
    y = x ** 0.0
    out, fired = run(y)
    assert fired["pow_zero"] == 1 and out.node.op.name == "constant"
    assert_same_values(y, feeds)


def test_x_squared_by_pow_is_square():
    x, feeds = special()
    y = x ** 2.0
    out, fired = run(y)
    assert fired["pow_two"] == 1 and ops_of(out) == ["placeholder", "square"]
    assert_same_values(y, feeds)
    _, fired = run(x ** 3.0)
    assert fired["pow_two"] == 0


# -- negations ---------------------------------------------------------------------------------------------
def test_times_minus_one_is_neg():
    x, feeds = special()
    y = x * -1.0
    out, fired = run(y)
    assert fired["mul_minus_one"] == 1 and ops_of(out) == ["neg", "placeholder"]
    assert_same_values(y, feeds)


def test_neg_times_a_constant_negates_the_constant():
    x, feeds = special()
    y = -x * 3.0
    out, fired = run(y)
    assert fired["mul_neg_constant"] == 1 and ops_of(out) == ["constant", "mul", "placeholder"]
    assert out.node.inputs[1].node.attrs["value"] == -3.0
    assert_same_values(y, feeds)


def test_integer_neg_times_a_constant_wraps_alike():
    i = gc.placeholder("int32", (3,), name="i")
    y = -i * np.int32(-2**31)
    _, fired = run(y)
    assert fired["mul_neg_constant"] == 1
    assert_same_values(y, {i: np.array([1, -1, 3], np.int32)})


def test_plus_and_minus_a_negation(rng):
    x = gc.placeholder("float64", (3,), name="x")
    y = gc.placeholder("float64", (2, 3), name="y")
    sums = [x + -y, -y + x, x - -y]
    expected = [("sub", ["x", "y"]), ("sub", ["x", "y"]), ("add", ["x", "y"])]
    for total, (op, names) in zip(sums, expected):
        out, _ = run(total)
        assert out.node.op.name == op and [t.node.name for t in out.node.inputs] == names
    result = optimize(sums)
    assert result.fired()["add_neg"] == 2 and result.fired()["sub_neg"] == 1
    assert_same_values(sums, {x: rng.normal(size=3), y: rng.normal(size=(2, 3))})


def test_zero_minus_x_is_neg():
    x, feeds = special()
    y = 0.0 - x
    out, fired = run(y)
    assert fired["zero_sub"] == 1 and ops_of(out) == ["neg", "placeholder"]
    assert_same_values(y, feeds)
    _, fired = run(1.0 - x)
    assert fired["zero_sub"] == 0


# -- exp and log -------------------------------------------------------------------------------------------
def test_log_of_exp_is_x_and_exact_where_exp_overflows():
    x, feeds = special()
    y = gc.log(gc.exp(x))
    out, fired = run(y)
    assert fired["log_exp"] == 1 and out.node.name == "x"
    assert_same_values(y, feeds)
    with gc.Session(optimize=2) as session:
        assert session.run(y, {x: np.full(7, 1000.0)})[0] == 1000.0  # the graph as built gives inf


def test_exp_of_log_is_kept_because_log_of_a_negative_is_nan():
    x, feeds = special()
    y = gc.exp(gc.log(x))
    out, _ = run(y)
    assert ops_of(out) == ["exp", "log", "placeholder"]
    assert_same_values(y, feeds)


# -- mul_no_nan ------------------------------------------------------------------------------------------
def test_mul_no_nan_by_zeros_is_zeros_even_for_nan_and_inf():
    x, feeds = special()
    y = gc.mul_no_nan(x, gc.zeros_like(x))
    out, fired = run(y)
    assert fired["mul_no_nan_zero"] == 1 and out.node.op.name == "constant"
    assert_same_values(y, feeds)


def test_mul_no_nan_by_ones_is_x_broadcast():
    x, feeds = special()
    like = gc.placeholder("float64", (2, 7), name="like")
    y = gc.mul_no_nan(x, gc.ones_like(like))
    out, fired = run(y)
    assert fired["mul_no_nan_one"] == 1 and ops_of(out) == ["broadcast_to", "placeholder"]
    assert_same_values(y, {**feeds, like: np.ones((2, 7))})


def test_mul_no_nan_by_a_constant_without_zeros_is_a_product():
    x, feeds = special()
    y = gc.mul_no_nan(x, gc.constant(np.array([2.0, -1.0, 3.0, 0.5, 4.0, 1.0, np.nan])))
    out, fired = run(y)
    assert fired["mul_no_nan_nonzero_constant"] == 1 and out.node.op.name == "mul"
    assert_same_values(y, feeds)


def test_mul_no_nan_by_a_constant_with_a_zero_is_kept():
    x, feeds = special()
    y = gc.mul_no_nan(x, gc.constant(np.array([2.0, 0.0, 3.0, 0.5, 0.0, 1.0, 1.0])))
    out, fired = run(y)
    assert fired["mul_no_nan_nonzero_constant"] == 0 and out.node.op.name == "mul_no_nan"
    assert_same_values(y, feeds)


def test_a_finite_constant_partial_times_a_cotangent_is_a_product():
    g, feeds = special()
    y = gc.mul_no_nan(gc.constant(np.array([2.0, 0.0, -3.0, 1.0, 0.0, 5.0, 0.0])), g)
    out, fired = run(y)
    assert fired["mul_no_nan_finite_partial"] == 1 and out.node.op.name == "mul"
    assert_same_values(y, feeds)
    _, fired = run(gc.mul_no_nan(gc.constant(np.array([np.inf] * 7)), g))  # inf·0 would be NaN, not 0
    assert fired["mul_no_nan_finite_partial"] == 0


# -- sums and broadcasts -----------------------------------------------------------------------------------
def test_sum_to_with_known_axes_is_a_reduce_sum(rng):
    x = gc.placeholder("float64", (None, 4, 3), name="x")
    b = gc.placeholder("float64", (3,), name="b")
    c = gc.placeholder("float64", (1, 3), name="c")
    rows, kept = sum_to(x, b), sum_to(x, c)
    results = optimize([rows, kept])
    assert results.fired()["sum_to_reduce_sum"] == 2
    (r, k) = results.outputs
    assert r.node.op.name == "reduce_sum" and r.node.attrs == {"axis": (0, 1), "keepdims": False}
    assert ops_of(k) == ["placeholder", "reduce_sum", "squeeze"] and k.shape == (1, 3)
    assert_same_values([rows, kept], {x: rng.normal(size=(2, 4, 3)), b: np.zeros(3), c: np.zeros((1, 3))})


def test_sum_to_an_unknown_size_is_assumed_equal_and_checked(rng):
    x = gc.placeholder("float64", (None, 3), name="x")
    like = gc.placeholder("float64", (None, 3), name="like")  # 1 or not at run time
    out, fired = run(sum_to(x, like))
    assert fired["sum_to_reduce_sum"] == 0 and fired["assume_equal_unknown_dims"] == 1
    assert out.node.op.name == "match_shape" and out.shape == (None, 3)
    assert_same_values([sum_to(x, like)], {x: rng.normal(size=(4, 3)), like: rng.normal(size=(4, 3))})
    with gc.Session(out.graph, backend="numpy") as sess, pytest.raises(gc.errors.AssumptionError):
        sess.run(out, {out.graph.get("x"): np.ones((4, 3)), out.graph.get("like"): np.ones((1, 3))})
    kept, fired = run(sum_to(x, like), exclude=["assume_equal_unknown_dims"])
    assert fired["assume_equal_unknown_dims"] == 0 and kept.node.op.name == "sum_to"


def test_sum_to_over_known_axes_and_unknown_equal_sizes_is_a_checked_reduction(rng):
    # a layer norm's gradient: g (None, 3, 4) summed to (None, 3, 1), the batch sizes assumed equal
    x = gc.placeholder("float64", (None, 3, 4), name="x")
    like = gc.placeholder("float64", (None, 3, 1), name="like")
    out, fired = run(sum_to(x, like))
    assert fired["assume_equal_unknown_dims"] == 1 and set(ops_of(out)) == {"match_shape", "placeholder", "reduce_sum"}
    assert_same_values([sum_to(x, like)], {x: rng.normal(size=(2, 3, 4)), like: rng.normal(size=(2, 3, 1))})
    with gc.Session(out.graph, backend="numpy") as sess, pytest.raises(gc.errors.AssumptionError):
        sess.run(out, {out.graph.get("x"): np.ones((2, 3, 4)), out.graph.get("like"): np.ones((1, 3, 1))})
    # a Session falls back to the version compiled without the assumption: the batch is summed too
    with gc.Session(backend="llvm") as sess:
        value = sess.run(sum_to(x, like), {x: np.ones((2, 3, 4)), like: np.ones((1, 3, 1))})
    np.testing.assert_array_equal(value, np.full((1, 3, 1), 8.0))


def test_sum_to_the_same_run_time_shape_is_x(rng):
    x = gc.placeholder("float64", (None, 3), name="x")
    y = sum_to(gc.exp(x), gc.neg(x))
    out, fired = run(y)
    assert fired["sum_to_reduce_sum"] == 1 and ops_of(out) == ["exp", "placeholder"]
    assert_same_values(y, {x: rng.normal(size=(4, 3))})


def test_sum_of_a_broadcast_is_a_product(rng):
    x = gc.placeholder("float64", (3, 1), name="x")
    y = gc.reduce_sum(gc.broadcast_to(x, (5, 3, 4)), (0, 2))
    out, fired = run(y)
    assert fired["sum_of_broadcast"] == 1 and ops_of(out) == ["constant", "mul", "placeholder", "reshape"]
    assert out.shape == (3,)
    assert_same_values(y, {x: np.array([[1.5], [np.inf], [np.nan]])})


def test_sum_of_a_broadcast_keeping_dims(rng):
    x = gc.placeholder("float32", (None, 1), name="x")
    like = gc.placeholder("float32", (2, 1, 4), name="like")
    y = gc.reduce_sum(broadcast_like(x, like), (0, 2), keepdims=True)
    out, fired = run(y)
    assert fired["sum_of_broadcast"] == 1 and out.shape == (1, None, 1)
    assert_same_values(y, {x: rng.normal(size=(3, 1)).astype(np.float32), like: np.zeros((2, 1, 4), np.float32)},
                       rtol=1e-6)


def test_sum_over_real_elements_or_an_empty_broadcast_is_kept():
    x = gc.placeholder("float64", (3,), name="x")
    _, fired = run(gc.reduce_sum(gc.broadcast_to(x, (5, 3)), 1))  # sums x's own elements
    assert fired["sum_of_broadcast"] == 0
    _, fired = run(gc.reduce_sum(gc.broadcast_to(x, (5, 3)), 0, keepdims=False) * 1.0)
    assert fired["sum_of_broadcast"] == 1
    empty = gc.reduce_sum(gc.broadcast_to(x, (0, 3)), 0)  # 0 copies: the sum is 0, inf·0 would be NaN
    out, fired = run(empty)
    assert fired["sum_of_broadcast"] == 0
    assert_same_values(empty, {x: np.array([np.inf, 1.0, np.nan])})


def test_sum_over_no_axes_is_x():
    x = gc.placeholder("float64", (3,), name="x")
    out, fired = run(gc.reduce_sum(x, ()))
    assert fired["sum_no_axes"] == 1 and out.node.name == "x"


# -- random chains of the forms these rules (and canonicalize's) rewrite ---------------------------------
# each keeps a (2, 3) float64 tensor (2, 3); ``other`` is a second placeholder of that shape
FORMS = {
    "neg": lambda t, other: -t, "times one": lambda t, other: t * 1.0, "one times": lambda t, other: 1.0 * t,
    "times minus one": lambda t, other: t * -1.0, "plus zero": lambda t, other: t + 0.0,
    "zero minus": lambda t, other: 0.0 - t, "over one": lambda t, other: t / 1.0,
    "to the one": lambda t, other: t ** 1.0,
    "times zero": lambda t, other: t * 0.0, "minus itself": lambda t, other: t - t,
    "times ones_like": lambda t, other: gc.mul_no_nan(t, gc.ones_like(other)),
    "mul_no_nan zero": lambda t, other: gc.mul_no_nan(t, gc.zeros_like(other)),
    "constant partial": lambda t, other: gc.mul_no_nan(gc.constant(np.full((2, 3), 2.0)), t),
    "neg times three": lambda t, other: -t * 3.0, "plus neg": lambda t, other: t + -other,
    "minus neg": lambda t, other: t - -other, "log exp": lambda t, other: gc.log(gc.exp(t)),
    "reshapes": lambda t, other: gc.reshape(gc.reshape(t, (6,)), (2, 3)),
    "transposes": lambda t, other: gc.transpose(gc.transpose(t)),
    "expand squeeze": lambda t, other: gc.squeeze(gc.expand_dims(t, 0), 0),
    "casts": lambda t, other: gc.cast(gc.cast(t, "float64"), "float64"),
    "sum of broadcast": lambda t, other: gc.reduce_sum(gc.broadcast_to(t, (4, 2, 3)), 0) / 4.0,
    "sum_to": lambda t, other: sum_to(broadcast_like(t, gc.ones_like(gc.broadcast_to(other, (2, 2, 3)))), other),
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(FORMS)), min_size=1, max_size=6))
def test_random_chains_of_rewritten_forms_keep_their_values(names):
    with gc.Graph().as_default():
        x = gc.placeholder("float64", (2, 3), name="x")
        other = gc.placeholder("float64", (2, 3), name="other")
        t = x
        for name in names:
            t = FORMS[name](t, other)
        feeds = {x: np.array([[0.0, -0.0, 1.5], [np.nan, np.inf, -np.inf]]),
                 other: np.array([[0.5, -1.0, 0.0], [np.inf, 2.0, np.nan]])}
        assert_same_values(t, feeds)


# -- the lecture ---------------------------------------------------------------------------------------------
def lecture_gradients():
    x1, x2, y = lecture()
    return x1, x2, gc.gradients(y, [x1, x2])


def expression(t) -> str:
    """A gradient's subgraph as one expression: placeholders by name, constants by value."""
    node = t.node
    if node.op.name == "placeholder":
        return node.name
    if node.op.name == "constant":
        return f"{node.attrs['value'].item():g}"
    return f"{node.op.name}({', '.join(expression(i) for i in node.inputs)})"


def test_lecture_gradients_optimize_to_the_hand_derived_ones():
    """y = ln x1 + x1·x2 − sin x2: ∂y/∂x1 = 1/x1 + x2 and ∂y/∂x2 = x1 − cos x2, node for node."""
    x1, x2, (d1, d2) = lecture_gradients()
    result = optimize([d1, d2], level=2)
    o1, o2 = result.outputs
    assert expression(o1) == "add(x2, div(1, x1))"
    assert expression(o2) == "sub(x1, cos(x2))"
    assert len(ops_of(o1)) == 5 and len(ops_of(o2)) == 4
    assert len(result.graph.nodes) == 7  # x1, x2, 1, cos, div and the two results: the constant 1 is shared
    text = gc.viz.text(result.outputs, sources=False)
    assert "mul_no_nan" not in text and "ones_like" not in text and "neg" not in text
    assert_same_values([d1, d2], {x1: 0.7, x2: -1.3})
