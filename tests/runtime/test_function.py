"""gc.function: Theano-style callables with updates; functions of one graph share variables."""

import numpy as np
import pytest

import graphc as gc


def test_function_with_updates_minimizes_a_quadratic():
    with gc.Graph().as_default():
        w = gc.Variable(np.array([0.0, 10.0]), name="w")
        target = gc.placeholder("float64", (2,), name="target")
        loss = gc.reduce_sum(gc.square(w - target))
        (grad,) = gc.gradients(loss, w)
        train = gc.function([target], loss, updates=[(w, w - 0.25 * grad)])
        predict = gc.function([], w)
        losses = [float(train([3.0, -1.0])) for _ in range(40)]
    assert losses[0] == 9.0 + 121.0  # the loss is computed before the step's update
    assert losses == sorted(losses, reverse=True)
    np.testing.assert_allclose(predict(), [3.0, -1.0], atol=1e-6)  # predict sees train's updates


def test_function_outputs_and_arguments():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None,))
        f = gc.function([x], [x + 1, x * 2])
        a, b = f(np.arange(3, dtype=np.float32))
        assert a.tolist() == [1, 2, 3] and b.tolist() == [0, 2, 4]
        with pytest.raises(TypeError, match="takes 1 inputs"):
            f()
        updates = gc.function([x], gc.reduce_sum(x), updates={gc.Variable(0.0, name="total"): gc.reduce_sum(x)})
        assert updates([1.0, 2.0]) == 3.0


def test_a_closed_shared_session_is_replaced():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2,))
        first = gc.function([x], x + 1)
        first.session.close()
        second = gc.function([x], x * 2)  # used to share the closed session: "this Session is closed"
        assert second.session is not first.session and not second.session.closed
        assert second(np.ones(2, np.float32)).tolist() == [2.0, 2.0]
        assert gc.function([x], x).session is second.session


def test_a_single_update_pair_gets_a_clear_error():
    with gc.Graph().as_default():
        v = gc.Variable(1.0, name="v")
        with pytest.raises(gc.errors.GraphError, match="got a single pair"):
            gc.function([], v, updates=(v, v * 2.0))
