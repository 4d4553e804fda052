"""The IR: default graphs, names and scopes, source lines, immutability, dtype promotion, shape rules."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import DTypeError, GraphcError, GraphError, ShapeError
from tests.helpers import line_of


def test_default_graph_and_as_default():
    g = gc.Graph()
    outer = gc.get_default_graph()
    with g.as_default():
        assert gc.get_default_graph() is g
        x = gc.placeholder("float32", (2,))
    assert gc.get_default_graph() is outer
    assert x.graph is g and g.nodes == [x.node]


def test_reset_default_graph():
    old = gc.get_default_graph()
    new = gc.reset_default_graph()
    assert new is gc.get_default_graph() and new is not old
    with gc.Graph().as_default(), pytest.raises(GraphError, match="reset_default_graph"):
        gc.reset_default_graph()


def test_unique_names_and_scopes():
    with gc.Graph().as_default() as g:
        x = gc.placeholder("float32", (), name="x")
        assert (x + 1).name == "add" and (x + 1).name == "add_1"
        with gc.name_scope("layer1"):
            assert (x * 2).name == "layer1/mul"
            with gc.name_scope("inner"):
                assert gc.exp(x, name="e").name == "layer1/inner/e"
        assert gc.placeholder("float32", (), name="x").name == "x_1"
        assert g.get("layer1/inner/e").node.op.name == "exp"
        with pytest.raises(GraphError, match="no node named"):
            g.get("nope")
        with pytest.raises(GraphError, match="invalid name"):
            gc.exp(x, name="a b")


def test_get_by_output_index():
    with gc.Graph().as_default() as g:
        first, second = gc.split(gc.placeholder("float32", (4,), name="x"), 2)
        assert g.get("split:1") is second and g.get("x:0").name == "x"
        for wrong in ("split:2", "split:-1", "split:one", "x:1"):  # were IndexError / ValueError
            with pytest.raises(GraphError, match=f"'{wrong}' names no output: node '{wrong.split(':')[0]}'"):
                g.get(wrong)


def test_source_line_is_the_users():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (3,))
        y = gc.sigmoid(x)  # SOURCE-MARK
    assert y.node.source.file == __file__
    assert y.node.source.line == line_of("SOURCE-MARK")
    assert "gc.sigmoid(x)" in y.node.source.code


def test_tensor_properties_and_immutability():
    with gc.Graph().as_default() as g:
        x = gc.placeholder("int64", (None, 3), name="labels")
    assert (x.dtype, x.shape, x.name, x.op.op.name, x.graph, x.ndim) == ("int64", (None, 3), "labels",
                                                                       "placeholder", g, 2)
    with pytest.raises(AttributeError, match="immutable"):
        x.node.name = "other"
    with pytest.raises(TypeError, match="truth value"):
        bool(x)
    with pytest.raises(TypeError, match="not iterable"):
        list(x)
    with pytest.raises(TypeError, match="len"):
        len(x)


def test_tensors_hash_by_identity():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", ())
        y = gc.placeholder("float32", ())
    assert {x: 1, y: 2}[x] == 1
    assert (x == y) is False  # identity, not elementwise: that is gc.equal


@pytest.mark.parametrize("left, right, expected", [
    (("int32", ()), ("float32", ()), "float32"),
    (("float32", ()), ("float64", ()), "float64"),
    (("int32", ()), ("int64", ()), "int64"),
    (("bool", ()), ("int32", ()), "int32"),
    (("float32", ()), 2.0, "float32"),
    (("int32", ()), 1, "int32"),
    (("int64", ()), 2.5, "float32"),
    (("float32", ()), np.float64(2.0), "float64"),
    (("float32", ()), np.ones(3, np.float64), "float64"),
])
def test_dtype_promotion(left, right, expected):
    with gc.Graph().as_default():
        x = gc.placeholder(*left)
        y = gc.placeholder(*right) if isinstance(right, tuple) else right
        assert (x + y).dtype == expected
        assert (y + x).dtype == expected


def test_promotion_inserts_visible_casts():
    with gc.Graph().as_default() as g:
        i = gc.placeholder("int32", (2,))
        f = gc.placeholder("float32", (2,))
        z = i * f
    assert z.node.inputs[0].node.op.name == "cast"
    assert [n.op.name for n in g.nodes].count("cast") == 1


@pytest.mark.parametrize("a, b, expected", [
    ((None, 3), (4, 1), (4, 3)),
    ((None, 3), (None, 1), (None, 3)),
    ((None, 1), (5,), (None, 5)),
    ((1, None), (7, 1), (7, None)),
    ((), (2, 3), (2, 3)),
])
def test_broadcast_shape_inference(a, b, expected):
    with gc.Graph().as_default():
        assert (gc.placeholder("float32", a) + gc.placeholder("float32", b)).shape == expected


def test_broadcast_error_names_node_shapes_and_line():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (3, 4), name="x")
        y = gc.placeholder("float32", (5,), name="y")
        with pytest.raises(ShapeError) as error:
            gc.add(x, y, name="total")  # BROADCAST-MARK
    message = str(error.value)
    assert "total" in message and "[3,4]" in message and "[5]" in message
    assert f"test_graph.py:{line_of('BROADCAST-MARK')}" in message
    assert isinstance(error.value, GraphcError)


def test_dtype_errors():
    with gc.Graph().as_default():
        i = gc.placeholder("int32", (2,))
        b = gc.placeholder("bool", (2,))
        with pytest.raises(DTypeError, match="exp does not accept int32"):
            gc.exp(i)
        with pytest.raises(DTypeError, match="logical_and"):
            gc.logical_and(i, i)
        with pytest.raises(DTypeError, match="condition must be bool"):
            gc.where(i, i, i)
        assert gc.where(b, i, 1.5).dtype == "float32"


def test_placeholder_needs_a_rank():
    with pytest.raises(ShapeError, match="needs a shape"):
        gc.placeholder("float32")
    with pytest.raises(ShapeError, match="non-negative"):
        gc.placeholder("float32", (-1, 3))
    with pytest.raises(ShapeError, match="non-negative"):
        gc.placeholder("float32", (True, 3))
    # numpy integers (np.prod(...), a size taken from data) are sizes too, stored as Python ints
    x = gc.placeholder("float32", (None, np.int64(3)))
    assert x.shape == (None, 3) and type(x.shape[1]) is int
    assert gc.placeholder("float32", np.int32(4)).shape == (4,)
    with pytest.raises(DTypeError, match="unsupported dtype"):
        gc.placeholder("complex64", (3,))


def test_inputs_from_two_graphs_are_rejected():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2,), name="x")
    with gc.Graph().as_default():
        y = gc.placeholder("float32", (2,), name="y")
        with pytest.raises(GraphError, match="different graphs"):
            x + y


def test_constants():
    with gc.Graph().as_default():
        assert gc.constant(1.5).dtype == "float32"
        assert gc.constant([1, 2]).dtype == "int64"
        assert gc.constant(np.arange(3.0)).dtype == "float64"
        assert gc.constant(True).dtype == "bool"
        assert gc.constant(2, dtype="float64").shape == ()
        with pytest.raises(DTypeError, match="without losing"):
            gc.constant(2.5, dtype="int32")
        x = gc.placeholder("float32", (2, 2))
        for make in (lambda: gc.constant([[1, 2], [3]]), lambda: gc.constant([[1, 2], [3]], dtype="float32"),
                     lambda: x + [[1, 2], [3]]):  # ragged lists were a raw ValueError from numpy
            with pytest.raises(ShapeError, match="not a rectangular array"):
                make()


def test_public_namespaces():
    import graphc.nn
    import graphc.ops.random

    assert gc.nn is graphc.nn and gc.random is graphc.ops.random
    assert gc.nn.relu is gc.relu and callable(gc.nn.softmax) and callable(gc.random.uniform)
    assert not hasattr(gc, "elementwise")  # family modules are not part of the top-level API


def test_constant_value_errors_name_the_users_line():
    here = "test_graph.py:{}"
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2, 2))
        cases = [
            (DTypeError, "without losing", lambda: gc.constant(2.5, dtype="int32")),
            (DTypeError, "cannot make a constant of", lambda: gc.constant([object()], dtype="float32")),
            (DTypeError, "cannot make a tensor of", lambda: gc.constant({"a": 1})),
            (ShapeError, "not a rectangular array", lambda: gc.constant([[1, 2], [3]])),
            (ShapeError, "not a rectangular array", lambda: x + [[1, 2], [3]]),
        ]
        for error, match, make in cases:
            with pytest.raises(error, match=match) as caught:
                make()
            line = make.__code__.co_firstlineno
            assert here.format(line) in str(caught.value), (str(caught.value), line)
