"""graphc.ops.axes, where every op family checks and normalizes its axis arguments."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ShapeError
from graphc.ops.axes import canonical, distinct_axes, is_int, normalize_axes, normalize_axis
from tests.helpers import assert_build_error


def test_is_int():
    assert is_int(3) and is_int(np.int32(-1)) and is_int(np.uint8(0))
    assert not any(is_int(v) for v in [True, np.bool_(True), 1.0, "1", None, (1,)])


@pytest.mark.parametrize("axis, rank, want", [(0, 1, 0), (-1, 3, 2), (np.int64(-3), 3, 0), (2, 3, 2)])
def test_normalize_axis(axis, rank, want):
    got = normalize_axis(axis, rank)
    assert got == want and type(got) is int


@pytest.mark.parametrize("axis, rank, fragment", [
    (3, 3, "axis 3 is out of range for rank 3 (valid axes are -3..2)"),
    (-4, 3, "axis -4 is out of range for rank 3"),
    (0, 0, "axis 0 is out of range for rank 0 (a scalar has no axes)"),
    (True, 3, "an axis must be an int, got True"),
    (1.0, 3, "an axis must be an int, got 1.0"),
    ((0,), 3, "an axis must be an int, got (0,)"),
])
def test_normalize_axis_errors(axis, rank, fragment):
    with pytest.raises(ShapeError) as info:
        normalize_axis(axis, rank)
    assert fragment in str(info.value)


def test_normalize_axes_and_distinct_axes():
    assert normalize_axes(None, 3) == (0, 1, 2)
    assert normalize_axes(-1, 3) == (2,)
    assert normalize_axes([2, -3], 3) == (0, 2)
    assert normalize_axes((), 3) == ()
    assert distinct_axes([2, -3], 3) == (2, 0)  # the given order is kept
    with pytest.raises(ShapeError, match=r"axis -2 repeats axis 1 \(rank 3\)"):
        normalize_axes((1, -2), 3)


def test_canonical_leaves_an_invalid_value_for_the_shape_rule():
    assert canonical(normalize_axis, -1, 2) == 1
    assert canonical(normalize_axis, 5, 2) == 5
    assert canonical(normalize_axes, (0, 0), 2) == (0, 0)


BAD_AXIS = [
    lambda x: gc.expand_dims(x, 4, name="op"),
    lambda x: gc.squeeze(x, 3, name="op"),
    lambda x: gc.concat([x, x], -4, name="op"),
    lambda x: gc.stack([x, x], 4, name="op"),
    lambda x: gc.split(x, 1, axis=3, name="op"),
    lambda x: gc.gather(x, [0], axis=3, name="op"),
    lambda x: gc.reduce_sum(x, axis=3, name="op"),
    lambda x: gc.argmax(x, axis=3, name="op"),
    lambda x: gc.nn.softmax(x, axis=3, name="op"),
    lambda x: gc.tensordot(x, x, ([3], [0]), name="op"),
]


@pytest.mark.parametrize("build", BAD_AXIS, ids=range(len(BAD_AXIS)))
def test_every_family_reports_a_bad_axis_at_the_users_line(build):
    x = gc.placeholder("float32", (1, 2, 3), name="x")
    assert_build_error(ShapeError, build, x, fragments=["'op'", "is out of range for rank", "valid axes are"])


@pytest.mark.parametrize("build, attr, want", [
    (lambda x, a: gc.expand_dims(x, a), "axis", 3),
    (lambda x, a: gc.concat([x, x], a), "axis", 2),
    (lambda x, a: gc.gather(x, [0], axis=a), "axis", 2),
    (lambda x, a: gc.reduce_sum(x, axis=a), "axis", (2,)),
    (lambda x, a: gc.argmax(x, axis=a), "axis", 2),
    (lambda x, a: gc.nn.softmax(x, axis=a), "axis", 2),
    (lambda x, a: gc.nn.log_softmax(x, axis=a), "axis", 2),
])
def test_every_family_stores_a_numpy_int_axis_as_a_plain_non_negative_int(build, attr, want):
    x = gc.placeholder("float32", (1, 2, 3), name="x")
    stored = build(x, np.int64(-1)).node.attrs[attr]
    assert stored == want and repr(stored) == repr(want)
