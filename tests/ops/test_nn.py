"""nn ops beyond the registry cases: build-time errors that point at the user's line, run-time label and
shape checks, numerical stability at ±1000, and the shape conventions of the losses."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphc as gc
from graphc.errors import DTypeError, GraphcError, ShapeError
from graphc.ops import nn
from tests.helpers import raising_line, run


def _assert_names_node_and_line(info, node_name):
    message = str(info.value)
    assert f"'{node_name}'" in message, message
    assert f"test_nn.py:{raising_line(info)}" in message, message


# -- build-time errors -----------------------------------------------------------------------------------
def test_integer_logits_are_a_dtype_error():
    graph = gc.Graph()
    with graph.as_default():
        logits = gc.placeholder("int32", (None, 10), name="logits")
        labels = gc.placeholder("int64", (None,), name="labels")
        with pytest.raises(DTypeError) as info:
            gc.nn.sparse_softmax_cross_entropy(logits, labels, name="loss")
        _assert_names_node_and_line(info, "loss")
        assert "int32" in str(info.value)
        with pytest.raises(DTypeError) as info:
            gc.nn.softmax(logits, name="probs")
        _assert_names_node_and_line(info, "probs")
        with pytest.raises(DTypeError) as info:
            gc.nn.softmax_cross_entropy(logits, np.eye(10, dtype=np.float32)[:3], name="xent")
        _assert_names_node_and_line(info, "xent")


def test_mismatched_label_shape_is_a_shape_error():
    graph = gc.Graph()
    with graph.as_default():
        logits = gc.placeholder("float32", (32, 10), name="logits")
        labels = gc.placeholder("int64", (16,), name="labels")
        with pytest.raises(ShapeError) as info:
            gc.nn.sparse_softmax_cross_entropy(logits, labels, name="loss")
        _assert_names_node_and_line(info, "loss")
        assert "[16]" in str(info.value) and "[32]" in str(info.value)
        column = gc.placeholder("float32", (32, 1))
        with pytest.raises(ShapeError) as info:  # (32, 1) against (32,) must not broadcast to (32, 32)
            gc.nn.sigmoid_cross_entropy(column, gc.placeholder("float32", (32,)), name="bce")
        _assert_names_node_and_line(info, "bce")


def test_wrong_onehot_shape_is_a_shape_error():
    graph = gc.Graph()
    with graph.as_default():
        logits = gc.placeholder("float32", (None, 10), name="logits")
        onehot = gc.placeholder("float32", (None, 9), name="onehot")
        with pytest.raises(ShapeError) as info:
            gc.nn.softmax_cross_entropy(logits, onehot, name="xent")
        _assert_names_node_and_line(info, "xent")
        assert "[?,10]" in str(info.value) and "[?,9]" in str(info.value)


@pytest.mark.parametrize("build, error", [
    (lambda x, y: gc.nn.softmax(x, axis=2, name="bad"), ShapeError),
    (lambda x, y: gc.nn.log_softmax(x, axis=1.0, name="bad"), ShapeError),
    (lambda x, y: gc.nn.sparse_softmax_cross_entropy(x, gc.cast(y, "float32"), name="bad"), DTypeError),
    (lambda x, y: nn.sparse_softmax_cross_entropy_grad(x, gc.cast(y, "float32"), name="bad"), DTypeError),
    (lambda x, y: nn.sparse_softmax_cross_entropy_grad(gc.cast(x, "int32"), y, name="bad"), DTypeError),
    (lambda x, y: nn.sparse_softmax_cross_entropy_grad(x, y[:2], name="bad"), ShapeError),
    (lambda x, y: nn.sparse_softmax_cross_entropy_grad(gc.constant(1.0), y, name="bad"), ShapeError),
    (lambda x, y: gc.nn.mse(gc.cast(y, "int32"), gc.cast(y, "int64"), name="bad"), DTypeError),
    (lambda x, y: gc.nn.mse(x, y, name="bad"), ShapeError),
    (lambda x, y: gc.nn.hinge(gc.constant(1.0), gc.constant(2.0), name="bad"), ShapeError),
])
def test_other_build_errors(build, error):
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (4, 3))
        y = gc.placeholder("int64", (4,))
        with pytest.raises(error) as info:
            build(x, y)
    assert "'bad'" in str(info.value)


# -- run-time checks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("function", [gc.nn.sparse_softmax_cross_entropy, nn.sparse_softmax_cross_entropy_grad])
@pytest.mark.parametrize("bad_label", [3, -1])
def test_a_label_outside_the_classes_fails_at_run_time_naming_the_node(bad_label, function):
    graph = gc.Graph()
    with graph.as_default():
        logits = gc.placeholder("float32", (None, 3))
        labels = gc.placeholder("int32", (None,))
        loss = function(logits, labels, name="loss")
    feed = {logits: np.zeros((2, 3), np.float32), labels: np.array([0, bad_label], np.int32)}
    with pytest.raises(GraphcError, match=r"'loss'.*test_nn\.py:\d+") as info:
        run(loss, feed, graph=graph)
    assert f"label {bad_label} is outside the class range [0, 3)" in str(info.value)


def test_unknown_dims_do_not_broadcast_at_run_time():
    graph = gc.Graph()
    with graph.as_default():
        predictions = gc.placeholder("float32", (None, 4))
        targets = gc.placeholder("float32", (None, 4))
        loss = gc.nn.mse(predictions, targets, name="loss")
    feed = {predictions: np.zeros((3, 4), np.float32), targets: np.zeros((1, 4), np.float32)}
    with pytest.raises(GraphcError, match="'loss'"):
        run(loss, feed, graph=graph)


# -- stability -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stable_at_plus_minus_1000(dtype):
    graph = gc.Graph()
    logits_value = np.array([[1000, -1000, 0], [-1000, -1000, 1000]], dtype)
    with graph.as_default():
        logits = gc.constant(logits_value)
        fetches = {
            "log_softmax": gc.nn.log_softmax(logits),
            "softmax": gc.nn.softmax(logits),
            "sparse": gc.nn.sparse_softmax_cross_entropy(logits, np.array([1, 2])),
            "sparse_grad": nn.sparse_softmax_cross_entropy_grad(logits, np.array([1, 2])),
            "dense": gc.nn.softmax_cross_entropy(logits, np.eye(3, dtype=dtype)[[1, 2]]),
            "sigmoid": gc.nn.sigmoid_cross_entropy(logits, np.array([[1, 0, 1], [0, 1, 0]], dtype)),
        }
    got = run(fetches, graph=graph)
    for value in got.values():
        assert value.dtype == dtype and np.isfinite(value).all()
    np.testing.assert_array_equal(got["log_softmax"], [[0, -2000, -1000], [-2000, -2000, 0]])
    np.testing.assert_array_equal(got["softmax"], [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(got["sparse"], [2000, 0])
    np.testing.assert_array_equal(got["sparse_grad"], [[1, -1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(got["dense"], [2000, 0])
    log2 = np.log1p(np.exp(np.array(0, dtype)))  # the middle logit 0 contributes log 2
    np.testing.assert_array_equal(got["sigmoid"], np.array([[0, 0, log2], [0, 1000, 1000]], dtype))


def test_sigmoid_cross_entropy_keeps_its_digits_for_confident_logits():
    # max(x, 0) − x·z cancels for x near 1000 and z near 1 (float32 x·z is off by ~3e-5, the loss is ~5e-3);
    # the reference takes x·(1 − z) there, with 1 − z exact
    x = np.array([998.6, -999.3, 1000.0], np.float32)
    z = np.array([0.9999949, 2.5e-6, 0.99], np.float32)
    wide_x, wide_z = x.astype(np.float64), z.astype(np.float64)
    want = np.maximum(wide_x, 0) - wide_x * wide_z + np.log1p(np.exp(-np.abs(wide_x)))
    got = run(gc.nn.sigmoid_cross_entropy(gc.constant(x), gc.constant(z)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                  elements=st.floats(-50, 50)), st.integers(0, 2))
def test_softmax_sums_to_one_and_log_softmax_is_its_log(x, axis):
    axis = min(axis, x.ndim - 1)
    graph = gc.Graph()
    with graph.as_default():
        probs, log_probs = gc.nn.softmax(x, axis=axis), gc.nn.log_softmax(x, axis=axis)
    assert probs.op.attrs["axis"] == axis
    p, log_p = run([probs, log_probs], graph=graph)
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_p), p, rtol=1e-12, atol=1e-300)


# -- conventions -----------------------------------------------------------------------------------------
def test_mse_and_hinge_average_the_last_axis_only():
    graph = gc.Graph()
    with graph.as_default():
        matrix = gc.placeholder("float32", (None, 5))
        vector = gc.placeholder("float32", (None,))
        shapes = [gc.nn.mse(matrix, matrix).shape, gc.nn.hinge(matrix, matrix).shape,
                  gc.nn.mse(vector, vector).shape, gc.nn.hinge(vector, vector).shape]
    assert shapes == [(None,), (None,), (), ()]


def test_softmax_cross_entropy_with_onehot_equals_the_sparse_form():
    rng = np.random.default_rng(0)
    logits_value, labels_value = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    graph = gc.Graph()
    with graph.as_default():
        dense = gc.nn.softmax_cross_entropy(logits_value, np.eye(4)[labels_value])
        sparse = gc.nn.sparse_softmax_cross_entropy(logits_value, labels_value)
    a, b = run([dense, sparse], graph=graph)
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_the_sparse_gradient_op_is_internal_and_keeps_the_logits_shape():
    assert not hasattr(gc.nn, "sparse_softmax_cross_entropy_grad")
    assert "sparse_softmax_cross_entropy_grad" not in nn.__all__
    graph = gc.Graph()
    with graph.as_default():
        logits = gc.placeholder("float32", (None, None, 7))
        labels = gc.placeholder("int64", (2, None))
        grad = nn.sparse_softmax_cross_entropy_grad(logits, labels)
    assert grad.dtype == "float32" and grad.shape == (2, None, 7)  # the labels' known dim merged in
    feed = {logits: np.zeros((2, 3, 7), np.float32), labels: np.zeros((2, 3), np.int64)}
    got = run(grad, feed, graph=graph)
    np.testing.assert_allclose(got.sum(axis=-1), np.zeros((2, 3)), atol=1e-6)  # rows of softmax − onehot sum to 0
    np.testing.assert_allclose(got[..., 0], 1 / 7 - 1, rtol=1e-6)
    with pytest.raises(GraphcError, match="do not match logits"):  # (2, 4) labels against (2, 3, 7) logits
        run(grad, {logits: feed[logits], labels: np.zeros((2, 4), np.int64)}, graph=graph)
