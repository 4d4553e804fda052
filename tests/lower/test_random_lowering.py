"""The random ops' lowerings reproduce the numpy reference: bit for bit for uniform and bernoulli, to a few
ulp for normal, for every dtype, several seeds and run counts (beyond 2³², so the counter's high word is
used), zero-size and size-1 shapes, ``like=`` inputs and run-time (symbolic) shapes."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.lower.ops.random  # noqa: F401 - registers the lowerings
from graphc.lower import ir
from graphc.lower.context import LOWERINGS, LowerContext, Operand
from graphc.lower.interpret import interpret
from graphc.lower.ops.random import Body, philox
from graphc.ops.random import philox4x32
from graphc.ops.scalar import Call
from tests.lower.harness import run_lowering

SEEDS = (0, 7, 2**40 + 3, 2**64 - 1)
RUN_COUNTS = (0, 1, 2**32 + 5)
SHAPES = ((3, 4), (), (1, 1), (0,), (2, 0, 3), (2, 1, 3))


def _draw(builder, shape, **params):
    with gc.Graph().as_default():
        return builder(shape, **params).node


def _like_node(builder, like_shape, **params):
    with gc.Graph().as_default():
        x = gc.placeholder("float32", like_shape)
        return builder(like=x, **params).node


def _check_exact(node, arrays=(), run_count=0):
    for symbolic in (False, True):
        (got,) = run_lowering(node, list(arrays), run_count=run_count, symbolic=symbolic)
        want = node.op.reference(*arrays, **node.attrs, run_count=run_count)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want, err_msg=f"{node.op.name} {node.attrs} run {run_count} "
                                                          f"symbolic={symbolic}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("run_count", RUN_COUNTS)
def test_uniform_is_bit_exact(dtype, seed, run_count):
    _check_exact(_draw(gc.random.uniform, (3, 4), minval=-1.5, maxval=0.3, dtype=dtype, seed=seed),
                 run_count=run_count)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_shapes(shape, dtype):
    _check_exact(_draw(gc.random.uniform, shape, dtype=dtype, seed=11), run_count=2)


@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "float32", "float64"])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("run_count", RUN_COUNTS)
def test_bernoulli_is_bit_exact(dtype, p, run_count):
    node = _draw(gc.random.bernoulli, (4, 5), p=p, dtype=dtype, seed=2**33 + 17)
    _check_exact(node, run_count=run_count)


def test_bernoulli_draws_both_values():
    """p = 0.5 over 20 elements gives ones and zeros: the test above compares something non-trivial."""
    node = _draw(gc.random.bernoulli, (20,), p=0.5, dtype="int32", seed=3)
    (got,) = run_lowering(node, [], run_count=1)
    assert 0 < got.sum() < 20


@pytest.mark.parametrize("shape", SHAPES)
def test_bernoulli_shapes(shape):
    _check_exact(_draw(gc.random.bernoulli, shape, p=0.7, dtype="float32", seed=5), run_count=1)


def _assert_within_ulps(got, want, ulps):
    spacing = np.spacing(np.maximum(np.abs(got), np.abs(want)))
    assert np.all(np.abs(got.astype(np.float64) - want.astype(np.float64)) <= ulps * spacing), (got, want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("run_count", RUN_COUNTS)
def test_normal_within_4_ulp(dtype, seed, run_count):
    node = _draw(gc.random.normal, (3, 4), mean=0.5, stddev=2.0, dtype=dtype, seed=seed)
    for symbolic in (False, True):
        (got,) = run_lowering(node, [], run_count=run_count, symbolic=symbolic)
        want = node.op.reference(**node.attrs, run_count=run_count)
        assert got.dtype == want.dtype and got.shape == want.shape
        _assert_within_ulps(got, want, 4)


@pytest.mark.parametrize("shape", SHAPES)
def test_normal_shapes(shape):
    node = _draw(gc.random.normal, shape, dtype="float64", seed=13)
    (got,) = run_lowering(node, [], run_count=3, symbolic=True)
    _assert_within_ulps(got, node.op.reference(**node.attrs, run_count=3), 4)


@pytest.mark.parametrize("like_shape", [(3, 5), (0, 4), (1,)])
@pytest.mark.parametrize("builder, params", [
    (gc.random.uniform, {"minval": 2.0, "maxval": 3.0, "dtype": "float64"}),
    (gc.random.bernoulli, {"p": 0.4, "dtype": "bool"}),
])
def test_like_input_gives_only_the_shape(like_shape, builder, params):
    node = _like_node(builder, like_shape, seed=99, **params)
    like = np.random.default_rng(0).uniform(1, 2, like_shape).astype("float32")
    _check_exact(node, [like], run_count=4)


def test_normal_like_input():
    node = _like_node(gc.random.normal, (2, 3), dtype="float32", seed=2**63 + 5)
    like = np.random.default_rng(1).uniform(1, 2, (2, 3)).astype("float32")
    (got,) = run_lowering(node, [like], run_count=0, symbolic=True)
    _assert_within_ulps(got, node.op.reference(like, **node.attrs, run_count=0), 4)


def test_one_symbolic_program_serves_every_size():
    """The same statements (shape d1) run for sizes 0, 1 and 7 and give the reference's first elements."""
    node = _like_node(gc.random.uniform, (None,), seed=21)
    shape = (ir.Dim(1),)
    out = Operand(node.outputs[0], ir.Buffer("o", "float32", shape, "output"), shape)
    body = LOWERINGS[node.op](LowerContext([]), node, [], [out])
    program = ir.Program([out.buffer], [ir.LoopKernel("k0", tuple(body))], ["run count", "size"])
    for size in (0, 1, 7):
        values = np.full(size, 7, "float32")
        interpret(program, {out.buffer: values}, dims=[2**32 + 5, size])
        want = node.op.reference(np.zeros(size), **node.attrs, run_count=2**32 + 5)
        np.testing.assert_array_equal(values, want)


def test_philox_matches_the_numpy_generator_on_extreme_words():
    """``philox`` run by the interpreter equals ``philox4x32`` on counters with all-ones and zero words."""
    rng = np.random.default_rng(5)
    counters = rng.integers(0, 2**32, size=(16, 4), dtype=np.int64)
    counters[0], counters[1], counters[2] = 0, 2**32 - 1, [2**32 - 1, 0, 2**32 - 1, 0]
    key0, key1 = 0xFFFFFFFF, 0x12345678
    n = ir.const(len(counters))
    feed = ir.Buffer("c", "int64", (n, ir.const(4)), "feed")
    out = ir.Buffer("w", "int64", (n, ir.const(4)), "output")
    names = ir.Namer()

    def element(indices):
        (i,) = indices
        body = Body(names)
        words = philox(body, key0, key1, *(ir.Load(feed, ir.add(ir.mul(i, 4), k)) for k in range(4)))
        return body.statements + [ir.Store(out, ir.add(ir.mul(i, 4), k), w) for k, w in enumerate(words)]

    program = ir.Program([feed, out], [ir.LoopKernel("k0", ir.loop_nest(names, [n], element))], ["run count"])
    values = np.zeros(counters.size, np.int64)
    interpret(program, {feed: counters.reshape(-1), out: values}, dims=[0])
    want = philox4x32(tuple(counters.T.astype(np.uint64)), (key0, key1))
    np.testing.assert_array_equal(values.reshape(-1, 4), np.stack(want, axis=1).astype(np.int64))


def _size(e) -> int:
    return 1 + sum(_size(a) for a in e.args) if isinstance(e, Call) else 1


@pytest.mark.parametrize("builder, params", [
    (gc.random.uniform, {"dtype": "float64"}), (gc.random.normal, {"dtype": "float64"}),
    (gc.random.bernoulli, {"p": 0.5}),
])
def test_body_is_one_parallel_loop_of_small_statements(builder, params):
    node = _draw(builder, (4, 5), seed=1, **params)
    shape = (ir.const(4), ir.const(5))
    out = Operand(node.outputs[0], ir.Buffer("o", node.outputs[0].dtype, shape, "output"), shape)
    (loop,) = LOWERINGS[node.op](LowerContext([]), node, [], [out])
    assert isinstance(loop, ir.Loop) and loop.parallel and ir.static_value(loop.extent) == 20
    # 10 rounds: two products each, four words for all but the last; then the store
    assert len(loop.body) == 10 * 2 + 9 * 4 + 1
    assert all(not isinstance(s, ir.Loop) for s in loop.body)
    assert max(_size(s.value) for s in loop.body) < 60
