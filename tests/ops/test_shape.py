"""Shape and indexing ops: build-time errors, static shapes with unknown dims, normalized attributes,
run-time behaviour with unknown dims, and the Tensor methods (x[...], x.reshape, x.T).

Values for many shapes and dtypes are checked against numpy in cases_shape.py.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.errors import DTypeError, ShapeError
from graphc.ops.indexing import getitem_grad, scatter_add
from graphc.ops.shape import reshape_like, split_like
from tests.helpers import assert_build_error, run


def ph(shape, dtype="float32", name="x"):
    return gc.placeholder(dtype, shape, name=name)


# -- build-time errors: class, message, node name and the user's line -----------------------------------
ERRORS = [
    # (error class, node name, words the message must hold, builder)
    (ShapeError, "reshape", ["more than one -1"], lambda: gc.reshape(ph((2, 3)), (-1, -1))),
    (ShapeError, "reshape", ["6 elements", "8"], lambda: gc.reshape(ph((2, 3)), (4, 2))),
    (ShapeError, "reshape", ["not a multiple of 4"], lambda: gc.reshape(ph((2, 3)), (4, -1))),
    (ShapeError, "reshape", ["ambiguous"], lambda: gc.reshape(ph((0, 3)), (0, -1))),
    (ShapeError, "reshape", ["non-negative ints"], lambda: gc.reshape(ph((None, 3)), (None, 3))),
    (ShapeError, "reshape", ["not a multiple of the known 3"], lambda: gc.reshape(ph((None, 3)), (4,))),
    (ShapeError, "transpose", ["perm (0, 0)", "permutation"], lambda: gc.transpose(ph((2, 3)), (0, 0))),
    (ShapeError, "transpose", ["permutation of the 2 axes"], lambda: ph((2, 3)).transpose((1, 0, 2))),
    (ShapeError, "expand_dims", ["axis 3", "rank 2"], lambda: gc.expand_dims(ph((2,)), 3)),
    (ShapeError, "squeeze", ["axis 1 of size 3"], lambda: gc.squeeze(ph((1, 3)), 1)),
    (ShapeError, "squeeze", ["axis -3", "rank 2"], lambda: gc.squeeze(ph((1, 1)), -3)),
    (ShapeError, "concat", ["axis 1", "sizes 3 and 4"],
     lambda: gc.concat([ph((2, 3)), ph((2, 4), name="y")], axis=0)),
    (ShapeError, "concat", ["same rank"], lambda: gc.concat([ph((2, 3)), ph((2,), name="y")], 0)),
    (ShapeError, "concat", ["axis 2", "rank 2"], lambda: gc.concat([ph((2, 3)), ph((2, 3), name="y")], 2)),
    (ShapeError, "concat", ["scalar has no axes"], lambda: gc.concat([ph(()), ph((), name="y")], 0)),
    (ShapeError, "stack", ["sizes 3 and 4"], lambda: gc.stack([ph((3,)), ph((4,), name="y")])),
    (ShapeError, "stack", ["axis 3", "rank 2"], lambda: gc.stack([ph((3,)), ph((3,), name="y")], axis=3)),
    (ShapeError, "split", ["size 5 into 2 equal pieces"], lambda: gc.split(ph((5, 2)), 2)),
    (ShapeError, "split", ["(2, 2)", "axis size 5"], lambda: gc.split(ph((2, 5)), [2, 2], axis=1)),
    (ShapeError, "split", ["(4, -1)", "axis size 3"], lambda: gc.split(ph((3,)), [4, -1])),
    (ShapeError, "split", ["at least 1"], lambda: gc.split(ph((3,)), 0)),
    (ShapeError, "split", ["axis 2", "rank 1"], lambda: gc.split(ph((4,)), 2, axis=2)),
    (ShapeError, "broadcast_to", ["axis 0: size 3 is neither 1 nor 4"],
     lambda: gc.broadcast_to(ph((3, 1)), (4, 2))),
    (ShapeError, "broadcast_to", ["lower-rank"], lambda: gc.broadcast_to(ph((3, 1)), (3,))),
    (ShapeError, "broadcast_to", ["non-negative ints"], lambda: gc.broadcast_to(ph((3,)), (None, 3))),
    (ShapeError, "pad", ["2 (before, after) pairs"], lambda: gc.pad(ph((2, 3)), [(1, 1)])),
    (ShapeError, "pad", ["non-negative"], lambda: gc.pad(ph((2,)), [(-1, 0)])),
    (DTypeError, "pad", ["0.5", "int32"], lambda: gc.pad(ph((2,), "int32"), [(1, 0)], 0.5)),
    (ShapeError, "getitem", ["index 3", "axis 0 of size 3"], lambda: ph((3, 2))[3]),
    (ShapeError, "getitem", ["index -4", "axis 1 of size 3"], lambda: ph((2, 3))[:, -4]),
    (ShapeError, "getitem", ["too many indices: 3", "rank 2"], lambda: ph((2, 3))[0, 0, 0]),
    (ShapeError, "getitem", ["step cannot be zero"], lambda: ph((4,))[::0]),
    (ShapeError, "getitem", ["one ellipsis"], lambda: ph((2, 3))[..., 0, ...]),
    (DTypeError, "getitem", ["float 1.5", "gc.gather"], lambda: ph((4,))[1.5]),
    (DTypeError, "getitem", ["list", "gc.gather"], lambda: ph((4,))[[0, 1]]),
    (DTypeError, "getitem", ["Tensor", "gc.gather"], lambda: ph((4,))[ph((), "int64", "i")]),
    (DTypeError, "getitem", ["slice bounds"], lambda: ph((4,))[0.5:]),
    (ShapeError, "slice", ["from 1 to 4", "axis 0 (size 3)"], lambda: gc.slice(ph((3,)), [1], [3])),
    (ShapeError, "slice", ["from 4 to the end"], lambda: gc.slice(ph((3,)), [4], [-1])),
    (ShapeError, "slice", ["one entry per axis"], lambda: gc.slice(ph((3, 2)), [0], [1])),
    (ShapeError, "slice", ["non-negative"], lambda: gc.slice(ph((3,)), [-1], [1])),
    (DTypeError, "gather", ["indices must be int32 or int64", "float32"],
     lambda: gc.gather(ph((3,)), ph((2,), name="i"))),
    (ShapeError, "gather", ["axis 1", "rank 1"], lambda: gc.gather(ph((3,)), [0], axis=1)),
    (DTypeError, "one_hot", ["indices must be int32 or int64", "float32"], lambda: gc.one_hot([0.0, 1.0], 3)),
    (ShapeError, "one_hot", ["depth", "-1"], lambda: gc.one_hot([0], -1)),
    (ShapeError, "reshape_like", ["numbers of elements", "6 and 4"], lambda: reshape_like(ph((2, 3)), ph((4,)))),
    (ShapeError, "split_like", ["axis 1", "sizes 4 and 3"],
     lambda: split_like(ph((2, 4)), [ph((2, 1)), ph((2, 2))], 1)),
    (ShapeError, "getitem_grad", ["expected shape [3]", "got [2]"],
     lambda: getitem_grad(ph((2,)), ph((3, 4), name="like"), (slice(None), 1))),
    (ShapeError, "scatter_add", ["expected shape [2,3]", "got [3,2]"],
     lambda: scatter_add(ph((3, 2)), [0, 0], ph((4, 3), name="like"))),
    (DTypeError, "scatter_add", ["indices must be int32 or int64", "float32"],
     lambda: scatter_add(ph((2,)), ph((2,), name="i"), ph((4,), name="like"))),
    (DTypeError, "one_hot", ["on_value 0.5", "int64"], lambda: gc.one_hot([0], 2, 0.5, dtype="int64")),
]


@pytest.mark.parametrize("error_class, node_name, words, build", ERRORS,
                         ids=[f"{e[1]}-{i}" for i, e in enumerate(ERRORS)])
def test_build_error(error_class, node_name, words, build):
    assert_build_error(error_class, build, fragments=[f"{node_name} '{node_name}' created at", *words])


@pytest.mark.parametrize("build", [lambda: gc.concat([], 0), lambda: gc.stack(ph((2,)))])
def test_concat_and_stack_need_a_list(build):
    with pytest.raises(ShapeError, match="non-empty list of tensors"):
        build()


# -- static shapes with unknown dims ---------------------------------------------------------------------
STATIC = [
    (lambda: gc.reshape(ph((None, 3, 4)), (-1, 12)), (None, 12)),
    (lambda: gc.reshape(ph((None, 4)), (2, -1)), (2, None)),
    (lambda: gc.reshape(ph((None, 3)), (6, 3)), (6, 3)),
    (lambda: gc.reshape(ph((None, 0)), (-1,)), (0,)),  # any batch of zero-size rows is empty
    (lambda: gc.transpose(ph((None, 3))), (3, None)),
    (lambda: gc.expand_dims(ph((None,)), 0), (1, None)),
    (lambda: gc.squeeze(ph((None, 1, 3))), (None, 3)),  # an unknown dim is kept unless listed
    (lambda: gc.squeeze(ph((None, 1, 3)), 0), (1, 3)),
    (lambda: gc.concat([ph((None, 3)), ph((2, 3), name="y")], 0), (None, 3)),
    (lambda: gc.concat([ph((None, 3)), ph((2, 4), name="y")], 1), (2, 7)),
    (lambda: gc.stack([ph((None, 3)), ph((2, None), name="y")], 1), (2, 2, 3)),
    (lambda: gc.split(ph((None, 4)), 2)[1], (None, 4)),
    (lambda: gc.split(ph((None, 4)), [1, -1])[1], (None, 4)),
    (lambda: gc.split(ph((None, 4)), [1, 1]), None),  # checked at run time only
    (lambda: gc.broadcast_to(ph((None, 1)), (2, 3, 4)), (2, 3, 4)),
    (lambda: gc.pad(ph((None, 2)), [(1, 1), (0, 3)]), (None, 5)),
    (lambda: ph((None, 5))[1:], (None, 5)),
    (lambda: ph((None, 5))[:, ::-2], (None, 3)),
    (lambda: ph((None, 5))[-1, None, 3:1:-1], (1, 2)),
    (lambda: ph((None, None, 5))[..., 1], (None, None)),
    (lambda: gc.slice(ph((None, 5)), [1, 2], [-1, -1]), (None, 3)),
    (lambda: gc.gather(ph((4, None)), ph((None, 2), "int32", "i"), axis=0), (None, 2, None)),
    (lambda: gc.one_hot(ph((None,), "int64"), 5), (None, 5)),
]


@pytest.mark.parametrize("build, shape", STATIC, ids=[str(i) for i in range(len(STATIC))])
def test_static_shape(build, shape):
    result = build()
    if shape is not None:
        assert result.shape == shape


# -- normalized, hashable attributes ---------------------------------------------------------------------
def test_equivalent_keys_normalize_to_the_same_attrs():
    x = ph((3, 4))
    assert x[-1].node.attrs == x[2].node.attrs == x[2, ...].node.attrs == x[2, :].node.attrs
    assert x[::-1].node.attrs == x[2::-1].node.attrs == x[-1:-4:-1].node.attrs
    assert x[5:].node.attrs == x[3:1].node.attrs  # both empty
    assert dict(x[None, 1:].node.attrs) == {"key": (("newaxis",), ("slice", 1, 3, 1), ("slice", 0, 4, 1))}


def test_axes_are_stored_non_negative():
    x = ph((2, 3, 1))
    assert gc.transpose(x, (-1, 0, -2)).node.attrs["perm"] == (2, 0, 1)
    assert x.T.node.attrs["perm"] == (2, 1, 0)
    assert gc.expand_dims(x, -1).node.attrs["axis"] == 3
    assert gc.squeeze(x, -1).node.attrs["axis"] == (2,)
    assert gc.squeeze(x).node.attrs["axis"] == (2,)
    assert gc.concat([x, x], -2).node.attrs["axis"] == 1
    assert gc.stack([x, x], -1).node.attrs["axis"] == 3
    assert gc.gather(x, [0], axis=-2).node.attrs["axis"] == 1
    assert gc.split(x, 3, axis=-2)[0].node.attrs == {"sections": (1, 1, 1), "axis": 1}
    assert gc.slice(x, [0, 1, 0], [-1, -1, 1]).node.attrs == {"begin": (0, 1, 0), "size": (2, 2, 1)}


def test_attrs_are_hashable_and_plain():
    x = ph((2, 3))
    i = ph((2,), "int64", "i")
    built = [gc.reshape(x, np.array([3, 2])), gc.transpose(x, np.array([1, 0])),
             gc.expand_dims(x, np.int64(0)), gc.squeeze(gc.expand_dims(x, 0)), gc.concat([x, x], np.int32(1)),
             gc.stack([x, x]), gc.split(x, np.array([1, 2]), 1)[0], gc.broadcast_to(x, [4, 2, 3]),
             gc.pad(x, np.array([[1, 0], [0, 2]]), np.float32(1.5)), x[np.int64(1), 1:],
             gc.slice(x, [0, 0], [1, 1]), gc.gather(x, i), gc.one_hot(i, 3, np.int64(2), 0)]
    for tensor in built:
        hash(tuple(sorted(tensor.node.attrs.items())))
        assert tensor.node.attrs == eval(repr(dict(tensor.node.attrs)))  # Python values only, no numpy types
    assert {n.op.name for n in gc.get_default_graph().nodes} >= {
        "reshape", "transpose", "expand_dims", "squeeze", "concat", "stack", "split", "broadcast_to", "pad",
        "getitem", "slice", "gather", "one_hot"}


# -- run time with unknown dims ----------------------------------------------------------------------------
def test_reshape_infers_minus_one_at_run_time():
    x = ph((None, 3, 4))
    y = gc.reshape(x, (-1, 2))
    assert y.shape == (None, 2)
    value = np.arange(48, dtype=np.float32).reshape(4, 3, 4)
    np.testing.assert_array_equal(run(y, {x: value}), value.reshape(24, 2))


def test_indexing_unknown_dims_at_run_time():
    x = ph((None, None))
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = run([x[-1], x[:, -2:], x[::-2, 1]], {x: value})
    for a, b in zip(got, [value[-1], value[:, -2:], value[::-2, 1]]):
        np.testing.assert_array_equal(a, b)


RUNTIME_ERRORS = [
    (lambda x: x[5], np.zeros((3, 2), np.float32), "getitem"),
    (lambda x: gc.slice(x, [1, 0], [3, -1]), np.zeros((3, 2), np.float32), "slice"),
    (lambda x: gc.slice(x, [4, 0], [-1, -1]), np.zeros((3, 2), np.float32), "slice"),
    (lambda x: gc.gather(x, [0, 3]), np.zeros((3, 2), np.float32), "gather"),
    (lambda x: gc.split(x, 2)[0], np.zeros((3, 2), np.float32), "split"),
    (lambda x: gc.split(x, [1, 1])[0], np.zeros((3, 2), np.float32), "split"),
    (lambda x: gc.squeeze(x, 0), np.zeros((3, 2), np.float32), "squeeze"),
    (lambda x: gc.reshape(x, (4, -1)), np.zeros((3, 2), np.float32), "reshape"),
    (lambda x: gc.broadcast_to(x, (3, 5)), np.zeros((3, 2), np.float32), "broadcast_to"),
    (lambda x: split_like(x, [x, x], 0)[0], np.zeros((3, 2), np.float32), "split_like"),
    (lambda x: reshape_like(x, x[1:]), np.zeros((3, 2), np.float32), "reshape_like"),
    (lambda x: scatter_add(x, [0, 0, 3], x), np.zeros((3, 2), np.float32), "scatter_add"),
    (lambda x: getitem_grad(x, x, np.s_[1:]), np.zeros((3, 2), np.float32), "getitem_grad"),
]


@pytest.mark.parametrize("build, value, node_name", RUNTIME_ERRORS, ids=[e[2] for e in RUNTIME_ERRORS])
def test_run_time_errors_name_the_node(build, value, node_name):
    x = ph((None, None))
    y = build(x)
    with pytest.raises(ShapeError) as info:
        run(y, {x: value})
    assert f"'{node_name}'" in str(info.value)
    assert "test_shape.py:" in str(info.value)


def test_split_returns_a_tuple_of_tensors():
    x = ph((4, 6))
    pieces = gc.split(x, [1, 2, -1], axis=1)
    assert isinstance(pieces, tuple) and [p.shape for p in pieces] == [(4, 1), (4, 2), (4, 3)]
    assert len({p.node for p in pieces}) == 1
    single = gc.split(x, 1)
    assert isinstance(single, tuple) and len(single) == 1


# -- Tensor methods ----------------------------------------------------------------------------------------
def test_tensor_methods():
    x = ph((2, 3, 4))
    value = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    fetches = [x[1, ::-1, None], x[..., -1], x.reshape(6, 4), x.reshape((4, 6)), x.reshape([-1]),
               x.reshape(-1), x.T, x.transpose((1, 0, 2)), x.transpose()]
    wanted = [value[1, ::-1, None], value[..., -1], value.reshape(6, 4), value.reshape(4, 6), value.ravel(),
              value.ravel(), value.T, value.transpose(1, 0, 2), value.T]
    assert [t.shape for t in fetches] == [w.shape for w in wanted]
    assert [t.op.op.name for t in fetches] == ["getitem"] * 2 + ["reshape"] * 4 + ["transpose"] * 3
    for got, want in zip(run(fetches, {x: value}), wanted):
        np.testing.assert_array_equal(got, want)


def test_public_names():
    for name in ["reshape", "transpose", "expand_dims", "squeeze", "concat", "stack", "split", "slice",
                 "getitem", "gather", "one_hot", "broadcast_to", "pad"]:
        assert callable(getattr(gc, name)) and getattr(gc, name).__doc__


# -- x[key] against numpy, for random shapes and keys -------------------------------------------------------
@st.composite
def shapes_and_keys(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    axes = draw(st.lists(st.sampled_from(["int", "slice"]), max_size=len(shape)))
    ellipsis_at = draw(st.none() | st.integers(0, len(axes)))
    # items before the ellipsis index the first axes, items after it the last ones
    positions = list(range(len(axes))) if ellipsis_at is None else \
        list(range(ellipsis_at)) + list(range(len(shape) - len(axes) + ellipsis_at, len(shape)))
    bound = st.none() | st.integers(-6, 6)
    step = st.none() | st.sampled_from([-3, -2, -1, 1, 2, 3])
    items = []
    for kind, axis in zip(axes, positions):
        if kind == "int" and shape[axis] > 0:
            items.append(draw(st.integers(-shape[axis], shape[axis] - 1)))
        else:
            items.append(slice(draw(bound), draw(bound), draw(step)))
    if ellipsis_at is not None:
        items.insert(ellipsis_at, Ellipsis)
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    key = tuple(items) if len(items) != 1 or draw(st.booleans()) else items[0]
    return shape, key


@settings(max_examples=150, deadline=None)
@given(shapes_and_keys())
def test_getitem_matches_numpy(shape_and_key):
    shape, key = shape_and_key
    value = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    want = value[key]
    for static in [shape, (None,) * len(shape)]:
        g = gc.Graph()
        with g.as_default():
            x = gc.placeholder("float64", static)
            y = x[key]
        assert len(y.shape) == want.ndim
        assert all(s is None or s == w for s, w in zip(y.shape, want.shape))
        if static == shape:
            assert y.shape == want.shape
        np.testing.assert_array_equal(run(y, {x: value}, graph=g), want)


# -- derivatives with sizes known only at run time ----------------------------------------------------------
# (builder, run-time input shapes, static shapes with unknown sizes); values are checked against finite
# differences by tests/autodiff on known shapes, so here the unknown-size graphs must give the same numbers
UNKNOWN_SIZE_DERIVATIVES = [
    (lambda x: gc.reshape(x, (-1,)), [(2, 3, 4)], [(None, 3, None)]),
    (lambda x: gc.reshape(x, (4, -1)), [(2, 3, 4)], [(None, 3, 4)]),
    (lambda x: gc.transpose(x, (1, 2, 0)), [(2, 3, 4)], [(None, None, 4)]),
    (lambda x: gc.expand_dims(x, 1), [(2, 3)], [(None, None)]),
    (lambda x: gc.squeeze(x, (0, 2)), [(1, 3, 1)], [(None, None, None)]),
    (lambda x, y, z: gc.concat([x, y, z], 1), [(2, 1), (2, 3), (2, 2)], [(None, None), (2, None), (None, 2)]),
    (lambda x, y: gc.concat([x, y], 0), [(3, 2), (1, 2)], [(None, 2), (1, 2)]),
    (lambda x, y: gc.stack([x, y], 1), [(2, 3), (2, 3)], [(None, None), (2, None)]),
    (lambda x: gc.split(x, [1, -1], axis=1)[1], [(2, 4)], [(None, None)]),
    (lambda x: gc.broadcast_to(x, (2, 3)), [(1, 3)], [(None, None)]),
    (lambda x: gc.pad(x, [(1, 2), (0, 1)]), [(2, 3)], [(None, None)]),
    (lambda x: x[::-2, None, 1], [(5, 3)], [(None, None)]),
    (lambda x: gc.slice(x, [1, 0], [2, -1]), [(4, 3)], [(None, None)]),
    (lambda x: gc.gather(x, [0, -1, 0], axis=1), [(2, 3)], [(None, None)]),
]


def _derivative_values(build, static_shapes, values, directions, probes):
    """Gradient, jvp and second derivative of sum(sin(build(xs))), built with the given static shapes."""
    graph = gc.Graph()
    with graph.as_default():
        xs = [gc.placeholder("float64", s, name=f"in{i}") for i, s in enumerate(static_shapes)]
        loss = gc.reduce_sum(gc.sin(build(*xs)))
        grads = gc.gradients(loss, xs)
        (along,) = gc.jvp(loss, xs, directions)
        second = gc.gradients(sum(gc.reduce_sum(g * p) for g, p in zip(grads, probes)), xs)
    return run([*grads, along, *second], dict(zip(xs, values)), graph=graph)


@pytest.mark.parametrize("build, shapes, static", UNKNOWN_SIZE_DERIVATIVES,
                         ids=[str(i) for i in range(len(UNKNOWN_SIZE_DERIVATIVES))])
def test_derivatives_with_unknown_sizes(build, shapes, static, rng):
    values, directions, probes = ([rng.uniform(-1, 1, s) for s in shapes] for _ in range(3))
    want = _derivative_values(build, shapes, values, directions, probes)
    got = _derivative_values(build, static, values, directions, probes)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _gradient_ops(build, *static_shapes):
    """The names of the ops that gc.gradients adds for sum(build(xs)) with the given static shapes."""
    graph = gc.Graph()
    with graph.as_default():
        xs = [ph(s, "float64", f"in{i}") for i, s in enumerate(static_shapes)]
        loss = gc.reduce_sum(build(*xs))
        known = set(graph.nodes)
        gc.gradients(loss, xs)
    return {n.op.name for n in graph.nodes if n not in known}


def test_like_ops_only_where_more_than_one_size_is_unknown():
    concat, flatten = (lambda x, y: gc.concat([x, y], 1)), (lambda x: gc.reshape(x, (-1,)))
    assert _gradient_ops(concat, (2, None), (2, 3)) & {"split", "split_like"} == {"split"}
    assert _gradient_ops(concat, (2, None), (None, None)) & {"split", "split_like"} == {"split_like"}
    assert _gradient_ops(flatten, (None, 3)) & {"reshape", "reshape_like"} == {"reshape"}
    assert _gradient_ops(flatten, (None, None)) & {"reshape", "reshape_like"} == {"reshape_like"}
    assert "reshape_like" in _gradient_ops(flatten, (None, 0))  # -1 would be ambiguous among zero sizes


def test_no_gradient_flows_through_an_index():
    x = ph((3,), "float64")
    y = gc.reduce_sum(gc.one_hot(gc.cast(x, "int64"), 4, dtype="float64"))
    with pytest.raises(gc.errors.GradientError, match="cast 'cast'.*int64 output carries no derivative"):
        gc.gradients(y, x, unconnected="raise")
    assert gc.gradients(y, x, unconnected="none") == [None]
