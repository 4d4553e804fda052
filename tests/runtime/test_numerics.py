"""check_numerics: the first node whose value holds NaN or Inf, named with its op, inputs and the user's line."""

import os

import numpy as np
import pytest

import graphc as gc
from graphc.errors import NumericsError
from tests.helpers import line_of

LEVELS = [0, 2]
HERE = os.path.relpath(__file__)  # how messages show this file


def failure(fetches, feed_dict, optimize, graph=None, **kwargs):
    """The NumericsError a checked run of ``fetches`` raises."""
    with gc.Session(graph, backend="numpy", optimize=optimize) as sess:
        with pytest.raises(NumericsError) as info:
            sess.run(fetches, feed_dict, check_numerics=True, **kwargs)
    return info.value


@pytest.mark.parametrize("optimize", LEVELS)
def test_log_of_zero_names_the_log_node(optimize):
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (3,), name="x")
        y = gc.log(x)  # the log
        z = gc.exp(y) * 2.0 + y  # later nodes hold -inf too, but log made it
        error = failure(z, {x: [0.0, 1.0, 2.0]}, optimize)
    assert error.node is y.node and error.forward is None and not error.fed
    message = str(error)
    assert f"log node 'log' created at {HERE}:{line_of('# the log')}: y = gc.log(x)" in message
    assert "float32[3]) holds 1 -Inf of 3 elements" in message
    assert "x (fed): float32[3] in [0 .. 2], finite" in message


@pytest.mark.parametrize("optimize", LEVELS)
def test_zero_over_zero_names_the_division(optimize):
    with gc.Graph().as_default():
        a = gc.placeholder("float64", (2,), name="a")
        b = gc.placeholder("float64", (2,), name="b")
        ratio = gc.div(a, b, name="ratio")
        total = gc.reduce_sum(ratio + 1.0)
        error = failure(total, {a: [0.0, 1.0], b: [0.0, 4.0]}, optimize)
    assert error.node is ratio.node
    message = str(error)
    assert "div node 'ratio'" in message and "holds 1 NaN of 2 elements" in message
    assert "a (fed): float64[2] in [0 .. 1], finite" in message
    assert "b (fed): float64[2] in [0 .. 4], finite" in message


@pytest.mark.parametrize("optimize", LEVELS)
def test_nan_only_in_the_gradient_names_the_forward_node(optimize):
    with gc.Graph().as_default():
        x = gc.placeholder("float64", (2,), name="x")
        root = gc.sqrt(x)  # the forward sqrt
        loss = gc.reduce_sum(root)
        (dx,) = gc.gradients(loss, [x])
        with gc.Session(backend="numpy", optimize=optimize) as sess:
            assert np.isfinite(sess.run(loss, {x: [0.0, 4.0]}, check_numerics=True))  # the forward is fine
        error = failure(dx, {x: [0.0, 4.0]}, optimize)
    assert error.forward is root.node
    assert error.node in x.graph.derivative_of and error.node.name.startswith("gradients/sqrt_grad/")
    assert "+Inf" in str(error)
    assert (f"is part of the derivative of sqrt node 'sqrt' created at {HERE}:"
            f"{line_of('# the forward sqrt')}: root = gc.sqrt(x)" in str(error))


def test_optimized_node_is_mapped_back_to_the_users_node():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2,), name="x")
        y = gc.log(1.0 + x)  # becomes log1p(x) at optimize=2
        error = failure(y, {x: [-1.0, 0.0]}, optimize=2)
    assert error.node is y.node
    assert "log node 'log'" in str(error) and "with optimize=2 it is computed as log1p node" in str(error)


@pytest.mark.parametrize("optimize", LEVELS)
def test_a_fed_nan_is_reported_as_fed(optimize):
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (3,), name="x")
        y = gc.log(x)
        error = failure(y, {x: [np.nan, 1.0, np.inf]}, optimize)
    assert error.node is x.node and error.fed
    assert "holds 1 NaN, 1 +Inf of 3 elements" in str(error) and "comes from your feed_dict" in str(error)


def test_variables_are_untouched_after_the_error_and_the_session_goes_on():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2,), name="x")
        w = gc.Variable(np.array([1.0, 2.0], np.float32), name="w")
        step = gc.assign(w, w * gc.log(x))
        with gc.Session(backend="numpy", optimize=2) as sess:
            with pytest.raises(NumericsError):
                sess.run(step, {x: [0.0, 1.0]}, check_numerics=True)
            assert sess.run(w).tolist() == [1.0, 2.0]
            sess.run(step, {x: [np.e, 1.0]}, check_numerics=True)
            assert np.allclose(sess.run(w), [1.0, 0.0])


def test_a_variable_holding_nan_is_reported_as_the_variable():
    with gc.Graph().as_default():
        w = gc.Variable(np.array([1.0, 2.0]), name="w")
        poison = gc.assign(w, w * np.nan)
        with gc.Session(backend="numpy") as sess:
            sess.run(poison)  # unchecked: the NaN goes into the variable
            with pytest.raises(NumericsError, match="variable 'w' holds this value") as info:
                sess.run(w + 1.0, check_numerics=True)
    assert info.value.node is w.node and info.value.fed


def test_off_by_default_and_integers_are_not_checked():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2,), name="x")
        n = gc.argmax(gc.log(x) * 0.0)  # int64 output
        with gc.Session(backend="numpy") as sess:
            assert np.isneginf(sess.run(gc.log(x), {x: [0.0, 1.0]})[0])  # unchecked: IEEE semantics
            assert sess.run(n, {x: [1.0, 1.0]}, check_numerics=True) == 0


def test_environment_variable(monkeypatch):
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (1,), name="x")
        y = gc.log(x)
        with gc.Session(backend="numpy") as sess:
            monkeypatch.setenv("GRAPHC_CHECK_NUMERICS", "1")
            with pytest.raises(NumericsError, match="log node 'log'"):
                sess.run(y, {x: [0.0]})
            assert np.isneginf(sess.run(y, {x: [0.0]}, check_numerics=False))  # the argument wins
            monkeypatch.setenv("GRAPHC_CHECK_NUMERICS", "0")
            assert np.isneginf(sess.run(y, {x: [0.0]}))


def test_checked_and_profiled_together():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (1,), name="x")
        y = gc.sqrt(x) + 1.0
        with gc.Session(backend="numpy") as sess:
            assert sess.run(y, {x: [4.0]}, check_numerics=True, profile=True).tolist() == [3.0]
            assert {row.name for row in sess.last_profile.rows} == {"x", "sqrt", "constant", "add"}
            with pytest.raises(NumericsError, match="sqrt node 'sqrt'"):
                sess.run(y, {x: [-1.0]}, check_numerics=True, profile=True)
