"""gc.init: shapes, dtypes, bounds, empirical statistics, orthogonality and seeding of the initializers."""

import math

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ArgumentError, DTypeError

SCALED = {  # name: (distribution, numerator, fan) — U[±√(num/n)] or N(0, num/n)
    "glorot_uniform": ("uniform", 6.0, "in+out"), "glorot_normal": ("normal", 2.0, "in+out"),
    "he_uniform": ("uniform", 6.0, "in"), "he_normal": ("normal", 2.0, "in"),
}


def test_constant_initializers():
    np.testing.assert_array_equal(gc.init.zeros((2, 3)), np.zeros((2, 3), np.float32))
    assert gc.init.zeros(4, "int64").dtype == np.int64
    np.testing.assert_array_equal(gc.init.ones((3,), "float64"), np.ones(3))
    filled = gc.init.constant(0.5, (2, 2), "float64")
    assert filled.dtype == np.float64 and np.all(filled == 0.5)


def test_fans_follow_keras():
    assert gc.init.fans((784, 10)) == (784, 10)
    assert gc.init.fans((3, 5, 16, 32)) == (3 * 5 * 16, 3 * 5 * 32)  # HWIO conv kernel
    assert gc.init.fans((7,)) == (7, 7)


@pytest.mark.parametrize("name", SCALED)
@pytest.mark.parametrize("shape", [(400, 300), (3, 3, 64, 32)])
def test_scaled_initializers_bounds_and_std(name, shape):
    distribution, numerator, fan = SCALED[name]
    fan_in, fan_out = gc.init.fans(shape)
    n = fan_in if fan == "in" else fan_in + fan_out
    values = getattr(gc.init, name)(shape, seed=1)
    assert values.shape == shape and values.dtype == np.float32
    if distribution == "uniform":
        limit = math.sqrt(numerator / n)
        assert values.min() >= -limit and values.max() <= limit
        assert values.max() > 0.99 * limit and values.min() < -0.99 * limit
        want_std = limit / math.sqrt(3)
    else:
        want_std = math.sqrt(numerator / n)
    assert abs(values.std() / want_std - 1) < 0.03
    assert abs(values.mean()) < 0.05 * want_std


def test_uniform_and_normal():
    u = gc.init.uniform((200, 200), -0.5, 0.25, seed=0, dtype="float64")
    assert u.dtype == np.float64 and u.min() >= -0.5 and u.max() < 0.25
    z = gc.init.normal((200, 200), mean=1.0, stddev=0.1, seed=0)
    assert abs(z.mean() - 1.0) < 0.005 and abs(z.std() / 0.1 - 1) < 0.03


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (3, 3, 8, 16)])
def test_orthogonal(shape):
    q = gc.init.orthogonal(shape, gain=2.0, seed=4, dtype="float64")
    assert q.shape == shape
    matrix = q.reshape(-1, shape[-1]) / 2.0
    gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
    np.testing.assert_allclose(gram, np.eye(min(matrix.shape)), atol=1e-12)


@pytest.mark.parametrize("name", [*SCALED, "uniform", "normal", "orthogonal"])
def test_seeds_reproduce_and_generators_continue(name):
    make = getattr(gc.init, name)
    np.testing.assert_array_equal(make((8, 8), seed=3), make((8, 8), seed=3))
    assert not np.array_equal(make((8, 8), seed=3), make((8, 8), seed=4))
    assert not np.array_equal(make((8, 8)), make((8, 8)))  # None: fresh entropy
    generator = np.random.default_rng(5)
    first, second = make((8, 8), seed=generator), make((8, 8), seed=generator)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, make((8, 8), seed=np.random.default_rng(5)))


def test_usable_as_variable_initial_values():
    with gc.Graph().as_default():
        w = gc.Variable(gc.init.glorot_uniform((4, 3), seed=0), name="w")
        assert w.shape == (4, 3) and w.dtype == "float32"


def test_argument_errors():
    with pytest.raises(DTypeError, match="he_normal.*int32"):
        gc.init.he_normal((3, 3), dtype="int32")
    with pytest.raises(ArgumentError, match="glorot_uniform: shape"):
        gc.init.glorot_uniform((3, None))
    with pytest.raises(ArgumentError, match="seed"):
        gc.init.normal((3,), seed="abc")
    with pytest.raises(ArgumentError, match="rank >= 2"):
        gc.init.orthogonal((3,))
