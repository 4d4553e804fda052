"""Feed validation: missing feeds, shapes, dtypes and conversion, feeding what is not a placeholder."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import DTypeError, FeedError, GraphcError
from tests.helpers import line_of


@pytest.fixture
def graph():
    with gc.Graph().as_default() as g:
        x = gc.placeholder("float32", (None, 3), name="x")  # X-MARK
        labels = gc.placeholder("int32", (None,), name="labels")
        y = gc.reduce_sum(x, axis=1) + gc.cast(labels, "float32")
        yield g, x, labels, y


def test_missing_feed_names_the_placeholder_and_its_line(graph):
    g, x, labels, y = graph
    with gc.Session(g) as sess, pytest.raises(FeedError) as error:
        sess.run(y, {x: np.ones((2, 3))})
    message = str(error.value)
    assert "'labels'" in message and "must be fed" in message and "int32[?]" in message
    assert f"test_feeds.py:{line_of('labels = gc.placeholder')}" in message


def test_wrong_shape(graph):
    g, x, labels, y = graph
    with gc.Session(g) as sess, pytest.raises(FeedError) as error:
        sess.run(y, {x: np.ones((2, 4)), labels: [1, 2]})
    message = str(error.value)
    assert "'x'" in message and "[2,4]" in message and "[?,3]" in message
    assert f"test_feeds.py:{line_of('X-MARK')}" in message
    with gc.Session(g) as sess, pytest.raises(FeedError, match="rank|shape"):
        sess.run(y, {x: np.ones(3), labels: [1]})


def test_dtype_conversion_rules(graph):
    g, x, labels, y = graph
    with gc.Session(g) as sess:
        # float64 data into float32, Python lists, int64 labels that fit into int32: accepted
        value = sess.run(y, {x: np.ones((2, 3), np.float64), labels: np.array([1, 2], np.int64)})
        assert value.tolist() == [4.0, 5.0]
        assert sess.run(y, {x: [[1, 2, 3]], labels: [0]}).tolist() == [6.0]
        with pytest.raises(DTypeError, match="does not convert"):
            sess.run(y, {x: np.ones((1, 3)), labels: [0.5]})
        with pytest.raises(DTypeError, match="outside the range"):
            sess.run(y, {x: np.ones((1, 3)), labels: np.array([2**40])})
        with pytest.raises(DTypeError, match="does not convert"):
            sess.run(y, {x: np.array([["a", "b", "c"]]), labels: [0]})


def test_ragged_values_and_a_feed_dict_that_is_not_a_dict(graph):
    g, x, labels, y = graph
    with gc.Session(g) as sess:
        with pytest.raises(FeedError, match="placeholder 'x' .* not a rectangular array"):  # was ValueError
            sess.run(y, {x: [[1, 2, 3], [1, 2]], labels: [0, 1]})
        with pytest.raises(FeedError, match="feed_dict must be a dict .* got list"):  # was AttributeError
            sess.run(y, [(x, np.ones((1, 3))), (labels, [0])])


def test_feeding_what_is_not_a_placeholder(graph):
    g, x, labels, y = graph
    with gc.Session(g) as sess:
        with pytest.raises(FeedError, match="only placeholders can be fed"):
            sess.run(y, {x: np.ones((1, 3)), labels: [0], y: [1.0]})
        with pytest.raises(FeedError, match="keys must be placeholders"):
            sess.run(y, {3: 1.0})
        with gc.Graph().as_default():
            stranger = gc.placeholder("float32", ())
        with pytest.raises(FeedError, match="another graph"):
            sess.run(y, {stranger: 1.0})
        assert sess.run(y, {"x": np.ones((1, 3)), "labels": [1]}).tolist() == [4.0]


def test_errors_share_a_base_class():
    for cls in (gc.errors.ShapeError, gc.errors.DTypeError, gc.errors.FeedError, gc.errors.GradientError,
                gc.errors.CompileError, gc.errors.GraphError):
        assert issubclass(cls, GraphcError)
