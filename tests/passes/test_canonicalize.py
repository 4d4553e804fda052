"""canonicalize: each rule fires on its form and not on a near miss, and the optimized graph computes what
the graph as built computes."""

import numpy as np
import pytest

import graphc as gc
from graphc.ops.broadcast import broadcast_like
from graphc.passes import optimize
from graphc.passes.pipeline import MAX_ROUNDS
from tests.passes.evaluate import assert_same_values


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph


def needed(*tensors) -> set:
    """The nodes the tensors depend on, themselves included."""
    seen, stack = set(), [t.node for t in tensors]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(t.node for t in node.inputs)
    return seen


def ops_of(tensor) -> list[str]:
    """The op names of the nodes ``tensor`` depends on, sorted (placeholders and constants included)."""
    return sorted(node.op.name for node in needed(tensor))


def run(tensor, **kwargs):
    """The optimized tensor and the counts of the rules that fired; checks that the pipeline reached its fixed
    point and that no builder left a node nothing needs (one that built and then declined)."""
    result = optimize(tensor, **kwargs)
    assert result.rounds < MAX_ROUNDS
    assert len(needed(*result.outputs)) == len(result.graph.nodes)
    return result.outputs[0], result.fired()


def feed(rng, *placeholders):
    return {p: rng.normal(size=tuple(3 if d is None else d for d in p.shape)).astype(p.dtype)
            for p in placeholders}


# -- operand order ---------------------------------------------------------------------------------------
COMMUTATIVE = [("add", "float64"), ("mul", "float64"), ("maximum", "float64"), ("minimum", "float64"),
               ("equal", "float64"), ("not_equal", "float64"), ("logical_and", "bool"), ("logical_or", "bool")]


@pytest.mark.parametrize(("name", "dtype"), COMMUTATIVE)
def test_constants_go_second(name, dtype, rng):
    x = gc.placeholder(dtype, (4,), name="x")
    value = np.array([True, False, True, True]) if dtype == "bool" else np.array([0.5, 2.0, -1.0, 0.0])
    out, fired = run(getattr(gc, name)(gc.constant(value), x), level=1)
    assert fired[f"{name}_constant_second"] == 1
    assert [t.node.op.name for t in out.node.inputs] == ["placeholder", "constant"]
    feeds = {x: rng.random(4) < 0.5} if dtype == "bool" else {x: np.array([0.5, 1.0, np.nan, -0.0])}
    assert_same_values(getattr(gc, name)(gc.constant(value), x), feeds)


@pytest.mark.parametrize(("name", "dtype"), COMMUTATIVE)
def test_operand_order_is_kept_without_a_leading_constant(name, dtype):
    x = gc.placeholder(dtype, (4,), name="x")
    y = gc.placeholder(dtype, (4,), name="y")
    out, fired = run(getattr(gc, name)(y, x), level=1)
    assert fired[f"{name}_constant_second"] == 0
    assert [t.node.name for t in out.node.inputs] == ["y", "x"]


def test_constant_second_respects_broadcasting(rng):
    x = gc.placeholder("float64", (3, 1), name="x")
    total = gc.constant(np.arange(4.0)) + x
    out, fired = run(total, level=1)
    assert fired["add_constant_second"] == 1 and out.shape == (3, 4)
    assert_same_values(total, feed(rng, x))


# -- reshape ---------------------------------------------------------------------------------------------
def test_reshape_of_reshape_is_one_reshape(rng):
    x = gc.placeholder("float64", (2, 3, 4), name="x")
    y = gc.reshape(gc.reshape(x, (6, 4)), (4, -1))
    out, fired = run(y)
    assert fired["reshape_reshape"] == 1 and ops_of(out) == ["placeholder", "reshape"]
    assert out.node.inputs[0].node.name == "x" and out.shape == (4, 6)
    assert_same_values(y, feed(rng, x))


def test_reshape_chain_keeps_the_static_shape_the_middle_knew(rng):
    x = gc.placeholder("float64", (None,), name="x")
    y = gc.reshape(gc.reshape(x, (3, 1)), (-1,))  # (3,) statically, though x is (?,)
    out, fired = run(y)
    assert fired["reshape_reshape"] == 1 and out.shape == (3,)
    assert_same_values(y, {x: rng.normal(size=3)})


def test_reshape_after_other_ops_is_left_alone():
    x = gc.placeholder("float64", (2, 3), name="x")
    out, fired = run(gc.reshape(gc.exp(gc.reshape(x, (6,))), (3, 2)))
    assert fired["reshape_reshape"] == 0 and ops_of(out).count("reshape") == 2


def test_reshape_to_the_same_shape_is_x(rng):
    x = gc.placeholder("float64", (None, 3), name="x")
    y = gc.reshape(x, (-1, 3)) * 2.0
    out, fired = run(y)
    assert fired["reshape_same_shape"] == 1 and "reshape" not in ops_of(out)
    assert_same_values(y, feed(rng, x))


def test_reshape_with_two_unknown_sizes_is_kept():
    x = gc.placeholder("float64", (None, None), name="x")
    _, fired = run(gc.reshape(x, (-1, 3)))
    assert fired["reshape_same_shape"] == 0


# -- transpose -------------------------------------------------------------------------------------------
def test_transpose_of_transpose_composes(rng):
    x = gc.placeholder("float64", (2, 3, 4), name="x")
    y = gc.transpose(gc.transpose(x, (1, 2, 0)), (0, 2, 1))
    out, fired = run(y)
    assert fired["transpose_transpose"] == 1 and ops_of(out) == ["placeholder", "transpose"]
    assert out.node.attrs["perm"] == (1, 0, 2) and out.shape == (3, 2, 4)
    assert_same_values(y, feed(rng, x))


def test_transposes_that_cancel_leave_x(rng):
    x = gc.placeholder("float64", (2, 3), name="x")
    y = gc.exp(x.T.T)
    out, fired = run(y)
    assert fired["transpose_transpose"] == 1 and ops_of(out) == ["exp", "placeholder"]
    assert_same_values(y, feed(rng, x))


def test_identity_transpose_is_x_and_a_single_transpose_stays():
    x = gc.placeholder("float64", (2, 3), name="x")
    out, fired = run(gc.transpose(x, (0, 1)))
    assert fired["transpose_identity"] == 1 and out.node.name == "x"
    out, fired = run(gc.transpose(x))
    assert fired["transpose_identity"] == 0 and out.node.op.name == "transpose"


# -- broadcasts ------------------------------------------------------------------------------------------
def test_broadcast_to_the_same_shape_is_x_but_not_from_an_unknown_size():
    x = gc.placeholder("float64", (2, 3), name="x")
    out, fired = run(gc.broadcast_to(x, (2, 3)))
    assert fired["broadcast_to_same_shape"] == 1 and out.node.name == "x"
    z = gc.placeholder("float64", (None, 3), name="z")  # may be 1 at run time
    out, fired = run(gc.broadcast_to(z, (3, 3)))
    assert fired["broadcast_to_same_shape"] == 0 and out.node.op.name == "broadcast_to"


def test_broadcast_of_broadcast_is_one_broadcast(rng):
    x = gc.placeholder("float64", (3,), name="x")
    y = gc.broadcast_to(gc.broadcast_to(x, (1, 3)), (4, 2, 3))
    out, fired = run(y)
    assert fired["broadcast_broadcast"] == 1 and ops_of(out) == ["broadcast_to", "placeholder"]
    assert_same_values(y, feed(rng, x))


def test_broadcast_like_chain_only_when_the_middle_adds_nothing(rng):
    x = gc.placeholder("float64", (1, 3), name="x")
    a = gc.placeholder("float64", (None, 3), name="a")  # the middle stretches to a's unknown rows
    b = gc.placeholder("float64", (None, 3), name="b")
    kept = broadcast_like(broadcast_like(x, a), b)
    _, fired = run(kept)
    assert fired["broadcast_broadcast"] == 0
    x1 = gc.placeholder("float64", (3,), name="x1")
    merged = broadcast_like(gc.broadcast_to(x1, (1, 3)), b)
    out, fired = run(merged)
    assert fired["broadcast_broadcast"] == 1 and ops_of(out) == ["broadcast_like", "placeholder", "placeholder"]
    assert_same_values([kept, merged], {x: rng.normal(size=(1, 3)), a: rng.normal(size=(5, 3)),
                                        b: rng.normal(size=(5, 3)), x1: rng.normal(size=3)})


def test_broadcast_like_chain_is_kept_when_only_the_middle_stretches(rng):
    x = gc.placeholder("float64", (1, 3), name="x")
    like = gc.placeholder("float64", (1, None), name="like")
    y = broadcast_like(gc.broadcast_to(x, (5, 3)), like)  # (5, 3): like alone would give (1, 3)
    out, fired = run(y)
    assert fired["broadcast_broadcast"] == 0 and out.shape == (5, 3)
    assert_same_values(y, {x: rng.normal(size=(1, 3)), like: rng.normal(size=(1, 3))})


def test_broadcast_like_a_known_shape_becomes_broadcast_to(rng):
    x = gc.placeholder("float64", (3,), name="x")
    like = gc.exp(gc.placeholder("float64", (2, 3), name="like"))
    y = broadcast_like(x, like)
    out, fired = run(y)
    assert fired["broadcast_like_static"] == 1 and ops_of(out) == ["broadcast_to", "placeholder"]
    assert_same_values(y, feed(rng, x, like.node.inputs[0]))


def test_broadcast_like_of_the_same_run_time_shape_is_x(rng):
    x = gc.placeholder("float64", (None, 3), name="x")
    y = broadcast_like(gc.neg(x), gc.exp(x))  # both shaped as x, whatever it is fed
    out, fired = run(y)
    assert fired["broadcast_like_same_shape"] == 1 and ops_of(out) == ["neg", "placeholder"]
    assert_same_values(y, feed(rng, x))
    other = gc.placeholder("float64", (None, 3), name="other")
    _, fired = run(broadcast_like(x, other))
    assert fired["broadcast_like_same_shape"] == 0


# -- expand_dims and squeeze -----------------------------------------------------------------------------
def test_squeeze_of_expand_dims_cancels(rng):
    x = gc.placeholder("float64", (None, 3), name="x")
    y = gc.squeeze(gc.expand_dims(gc.expand_dims(x, 0), 2), (0, 2))
    out, fired = run(y)
    assert fired["squeeze_expand_dims"] == 2 and out.node.name == "x"
    assert_same_values(y, feed(rng, x))


def test_squeeze_of_another_axis_is_kept():
    x = gc.placeholder("float64", (1, 3), name="x")
    out, fired = run(gc.squeeze(gc.expand_dims(x, 2), 0))
    assert fired["squeeze_expand_dims"] == 0 and out.shape == (3, 1)


def test_expand_dims_of_squeeze_cancels_only_on_a_known_size_one(rng):
    x = gc.placeholder("float64", (2, 1, 1, 3), name="x")
    y = gc.expand_dims(gc.squeeze(x, (1, 2)), 1)
    out, fired = run(y)
    assert fired["expand_dims_squeeze"] == 1 and ops_of(out) == ["placeholder", "squeeze"]
    assert out.shape == (2, 1, 3)
    assert_same_values(y, feed(rng, x))
    z = gc.placeholder("float64", (2, None), name="z")
    _, fired = run(gc.expand_dims(gc.squeeze(z, 1), 1), verify=False)  # verify would feed z 3 columns

    assert fired["expand_dims_squeeze"] == 0


def test_squeeze_of_no_axis_is_x():
    x = gc.placeholder("float64", (2, 3), name="x")
    out, fired = run(gc.squeeze(x, ()))
    assert fired["squeeze_nothing"] == 1 and out.node.name == "x"


# -- casts and negation ----------------------------------------------------------------------------------
def test_cast_to_its_own_dtype_is_x():
    x = gc.placeholder("float32", (3,), name="x")
    out, fired = run(gc.cast(x, "float32"))
    assert fired["cast_same_dtype"] == 1 and out.node.name == "x"
    out, fired = run(gc.cast(x, "float64"))
    assert fired["cast_same_dtype"] == 0 and out.dtype == "float64"


def test_cast_through_a_wider_dtype_is_one_cast(rng):
    x = gc.placeholder("float32", (4,), name="x")
    y = gc.cast(gc.cast(x, "float64"), "int32")
    out, fired = run(y)
    assert fired["cast_cast"] == 1 and ops_of(out) == ["cast", "placeholder"] and out.dtype == "int32"
    assert_same_values(y, {x: np.array([1.7, -2.5, 0.0, 3e4], np.float32)})


def test_cast_through_a_narrower_dtype_is_kept(rng):
    x = gc.placeholder("float64", (3,), name="x")
    y = gc.cast(gc.cast(x, "float32"), "float64")  # rounds to float32
    _, fired = run(y)
    assert fired["cast_cast"] == 0
    assert_same_values(y, {x: np.array([0.1, 1e-50, 1e300])})


def test_double_negation_is_x(rng):
    x = gc.placeholder("float64", (3,), name="x")
    out, fired = run(gc.exp(gc.neg(gc.neg(x))))
    assert fired["neg_neg"] == 1 and ops_of(out) == ["exp", "placeholder"]
    out, fired = run(-x)
    assert fired["neg_neg"] == 0 and out.node.op.name == "neg"
