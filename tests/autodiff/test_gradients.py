"""gc.gradients and gc.jvp semantics: the lecture's numbers, summing over paths and broadcasting (also at
run time), where-safety, grad_ys, unconnected gradients and their explanations, errors."""

import warnings

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GradientError, ShapeError
from graphc.graph.types import TensorType
from graphc.ops.registry import OpDef, apply
from tests.helpers import lecture, line_of


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph


def run(fetches, feeds=None):
    with gc.Session() as sess:
        return sess.run(fetches, feeds or {})


def test_lecture_gradient_and_tangent():
    x1, x2, y = lecture()
    dx1, dx2 = gc.gradients(y, [x1, x2])
    (dot_y,) = gc.jvp(y, [x1, x2], [1.0, 0.0])
    values = run([dx1, dx2, dot_y], {x1: 2.0, x2: 5.0})
    assert values[0] == 5.5 and round(float(values[1]), 3) == 1.716 and values[2] == 5.5
    assert values[1] == pytest.approx(2.0 - np.cos(5.0), abs=1e-15)
    assert dx1.name.startswith("gradients/") and dot_y.name.startswith("jvp/")


def test_paths_are_summed_and_intermediates_can_be_inputs():
    x = gc.placeholder("float64", (3,), name="x")
    h = x * x
    y = gc.reduce_sum(h + x)
    dx, dh = gc.gradients(y, [x, h])
    value = np.array([1.0, -2.0, 0.5])
    got_dx, got_dh = run([dx, dh], {x: value})
    np.testing.assert_array_equal(got_dx, 2 * value + 1)
    np.testing.assert_array_equal(got_dh, np.ones(3))


def test_broadcasting_is_undone_statically_and_at_run_time():
    x = gc.placeholder("float64", (None, 3), name="x")
    b = gc.Variable(np.array([0.1, 0.2, 0.3]), name="b")
    (db,) = gc.gradients(gc.reduce_sum(x + b), [b])
    np.testing.assert_array_equal(run(db, {x: np.ones((4, 3))}), [4.0, 4.0, 4.0])
    # both operands have an unknown first axis: which one broadcasts is only known when fed
    u = gc.placeholder("float64", (None, 3), name="u")
    v = gc.placeholder("float64", (None, 3), name="v")
    du, dv = gc.gradients(gc.reduce_sum(u * v), [u, v])
    got_du, got_dv = run([du, dv], {u: [[1.0, 2.0, 3.0]], v: np.full((5, 3), 2.0)})
    np.testing.assert_array_equal(got_du, [[10.0, 10.0, 10.0]])
    np.testing.assert_array_equal(got_dv, np.tile([1.0, 2.0, 3.0], (5, 1)))


def test_grad_ys_and_several_ys():
    x = gc.placeholder("float64", (2,), name="x")
    a, b = x * 3.0, gc.square(x)
    (weighted,) = gc.gradients(a, x, grad_ys=[np.array([1.0, 10.0])])
    (both,) = gc.gradients([a, b], x)
    got = run([weighted, both], {x: [1.0, 2.0]})
    np.testing.assert_array_equal(got[0], [3.0, 30.0])
    np.testing.assert_array_equal(got[1], [5.0, 7.0])
    with pytest.raises(GradientError, match="grad_ys has 2 entries for 1 ys"):
        gc.gradients(a, x, grad_ys=[1.0, 2.0])


def test_grad_ys_must_have_the_shape_of_its_y():
    x = gc.placeholder("float64", (2,), name="x")
    y = x * 3.0  # Y-MARK
    for wrong in (2.0, np.ones((4, 2))):  # used to give a gradient of shape () or (4, 2) for x of shape (2,)
        with pytest.raises(ShapeError, match=r"grad_ys of 'mul' .* must have its shape \[2\]") as error:
            gc.gradients(y, x, grad_ys=[wrong])
        assert f"test_gradients.py:{line_of('Y-MARK')}" in str(error.value)
    batch = gc.placeholder("float64", (None,), name="batch")
    (grad,) = gc.gradients(batch * 2.0, batch, grad_ys=[np.array([1.0, 5.0])])  # None matches any size
    np.testing.assert_array_equal(run(grad, {batch: [1.0, 1.0]}), [2.0, 10.0])


def test_empty_ys_is_an_error():
    x = gc.placeholder("float64", (2,), name="x")
    with pytest.raises(GradientError, match="ys is empty"):
        gc.gradients([], x)
    with pytest.raises(GradientError, match="ys is empty"):
        gc.jvp([], x, [np.ones(2)])


@pytest.mark.parametrize("value", [-1.0, 0.0])
def test_where_branch_not_taken_contributes_exactly_zero(value):
    x = gc.placeholder("float64", (3,), name="x")
    zero = gc.zeros_like(x)
    y = gc.reduce_sum(gc.where(x > 0, gc.sqrt(x), zero) + gc.where(x > 0, gc.log(x), zero))
    (dx,) = gc.gradients(y, x)
    (tangent,) = gc.jvp(y, x, [np.ones(3)])
    (second,) = gc.gradients(gc.reduce_sum(dx), x)
    feed = {x: [value, 1.0, 4.0]}
    got_dx, got_tangent, got_second = run([dx, tangent, second], feed)
    expected = [0.0, 0.5 + 1.0, 0.25 + 0.25]
    np.testing.assert_allclose(got_dx, expected, rtol=1e-15)
    assert got_tangent == pytest.approx(sum(expected), rel=1e-15)
    assert np.isfinite(got_second).all() and got_second[0] == 0.0


def test_unconnected_modes_and_explanations():
    x = gc.placeholder("float64", (3,), name="x")
    other = gc.placeholder("float64", (3,), name="other")
    y = gc.reduce_sum(x * 2.0)
    with pytest.warns(gc.autodiff.UnconnectedGradientWarning, match="'other' .* is not an input"):
        (zeros,) = gc.gradients(y, other)
    np.testing.assert_array_equal(run(zeros, {other: np.ones(3)}), np.zeros(3))
    assert gc.gradients(y, other, unconnected="none") == [None]
    with pytest.raises(GradientError, match="is not an input"):
        gc.gradients(y, other, unconnected="raise")
    with pytest.raises(ValueError, match="unconnected must be"):
        gc.gradients(y, x, unconnected="ignore")


def test_unconnected_through_argmax_names_it_and_its_line():
    logits = gc.placeholder("float64", (4, 3), name="logits")
    picked = gc.argmax(logits, axis=1)  # ARGMAX-MARK
    y = gc.reduce_sum(gc.cast(picked, "float64"))
    with pytest.raises(GradientError) as error:
        gc.gradients(y, logits, unconnected="raise")
    message = str(error.value)
    assert "argmax 'argmax'" in message and "int64 output carries no derivative" in message
    assert f"test_gradients.py:{line_of('ARGMAX-MARK')}" in message


def test_unconnected_through_stop_gradient():
    x = gc.placeholder("float64", (), name="x")
    frozen = gc.stop_gradient(x * 3.0)  # STOP-MARK
    with pytest.raises(GradientError) as error:
        gc.gradients(frozen * 2.0, x, unconnected="raise")
    assert "stop_gradient 'stop_gradient'" in str(error.value)
    assert f"test_gradients.py:{line_of('STOP-MARK')}" in str(error.value)
    (partly,) = gc.gradients(frozen * x, x)  # the stopped path is a constant, the direct one counts
    assert run(partly, {x: 2.0}) == 6.0


def test_gradient_through_an_op_without_rule_is_an_error():
    opaque = OpDef("opaque", "test", lambda x: x, lambda x: x)  # unregistered: a float op with no vjp
    x = gc.placeholder("float64", (2,), name="x")
    hidden = apply(opaque, [x])  # OPAQUE-MARK
    with pytest.raises(GradientError) as error:
        gc.gradients(gc.reduce_sum(hidden), x)
    assert "opaque has no gradient" in str(error.value)
    assert f"test_gradients.py:{line_of('OPAQUE-MARK')}" in str(error.value)
    with pytest.raises(GradientError, match="opaque has no forward-mode derivative"):
        gc.jvp(hidden, x, [np.ones(2)])


def test_integer_inputs_and_outputs_are_rejected():
    i = gc.placeholder("int32", (2,), name="i")
    f = gc.placeholder("float32", (2,), name="f")
    with pytest.raises(GradientError, match="cannot differentiate with respect to 'i'.*float tensors only"):
        gc.gradients(gc.reduce_sum(f), i)
    with pytest.raises(GradientError, match="cannot differentiate 'i'"):
        gc.gradients(i, f)


def test_variables_and_float32():
    w = gc.Variable(np.array([1.0, 2.0], np.float32), name="w")
    x = gc.placeholder("float32", (None, 2), name="x")
    loss = gc.reduce_mean(gc.square(x * w - 1.0))
    (dw,) = gc.gradients(loss, w)
    assert dw.dtype == "float32" and dw.shape == (2,)
    data = np.array([[1.0, 1.0], [2.0, 0.5]], np.float32)
    expected = np.sum(2 * (data * [1.0, 2.0] - 1.0) * data, axis=0) / data.size  # the mean is over 4 elements
    np.testing.assert_allclose(run(dw, {x: data}), expected, rtol=1e-6)


def test_jvp_arguments_are_checked():
    x = gc.placeholder("float64", (3,), name="x")
    with pytest.raises(ShapeError, match="tangent of 'x' must be float64\\[3\\]"):
        gc.jvp(x * 2.0, x, [np.ones(4)])
    with pytest.raises(GradientError, match="2 tangents for 1 xs"):
        gc.jvp(x * 2.0, x, [np.ones(3), np.ones(3)])
    (unrelated,) = gc.jvp(gc.placeholder("float64", (2,)), x, [np.ones(3)])
    assert unrelated.node.op.name == "zeros_like"


def test_gradient_graphs_differentiate_again():
    x = gc.placeholder("float64", (), name="x")
    y = gc.sin(x) * x
    (first,) = gc.gradients(y, x)
    (second,) = gc.gradients(first, x)
    (third,) = gc.gradients(second, x)
    v = 0.7
    got = run([first, second, third], {x: v})
    np.testing.assert_allclose(got, [np.cos(v) * v + np.sin(v), -np.sin(v) * v + 2 * np.cos(v),
                                     -np.cos(v) * v - 3 * np.sin(v)], rtol=1e-14)


def test_no_warning_when_connected():
    x = gc.placeholder("float64", (), name="x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.gradients(x * x, x)
    assert TensorType("float64", ()) == x.type


def test_gradient_nodes_remember_the_forward_node():
    x1, x2, y = lecture()
    dx1, _ = gc.gradients(y, [x1, x2])
    graph = x1.graph
    log_node = next(n for n in graph.nodes if n.op.name == "log")
    derived = [n for n, origin in graph.derivative_of.items() if origin is log_node]
    assert derived and all(n.name.startswith("gradients/log_grad/") for n in derived)


def test_jvp_tangent_of_the_wrong_dtype_is_a_dtype_error():
    x = gc.placeholder("float64", (3,), name="x")
    tangent = gc.constant(np.ones(3, np.float32))
    with pytest.raises(gc.errors.DTypeError, match="tangent of 'x' must be float64\\[3\\], got float32\\[3\\]"):
        gc.jvp(x * 2.0, x, [tangent])
    with pytest.raises(ShapeError, match="tangent of 'x' must be float64\\[3\\], got float64\\[4\\]"):
        gc.jvp(x * 2.0, x, [gc.constant(np.ones(4))])
