"""Random ops: the Philox generator, the run-count and seed contract, the like= form, and the moments."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.errors import DTypeError, GradientError, ShapeError
from graphc.ops.random import RANDOM_NORMAL, RANDOM_UNIFORM, derived_seed, philox4x32
from tests.helpers import raising_line
from tests.ops.cases_random import expected_normal, expected_uniform, philox_reference

# Random123's known-answer vectors for philox4x32-10 (kat_vectors): counter, key, output
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
WORD = st.integers(0, 2**32 - 1)


def _run(fetches, graph, runs=1, feed_dict=None):
    with gc.Session(graph, backend="numpy") as sess:
        return [sess.run(fetches, feed_dict) for _ in range(runs)]


@pytest.mark.parametrize("counter, key, output", KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, output):
    assert philox_reference(counter, key) == output
    assert tuple(int(w) for w in philox4x32(counter, key)) == output


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(WORD, WORD, WORD, WORD), min_size=1, max_size=8), st.tuples(WORD, WORD))
def test_vectorized_philox_matches_pure_python(counters, key):
    columns = [np.array(column, dtype=np.uint32) for column in zip(*counters)]
    words = philox4x32(columns, key)
    assert all(w.dtype == np.uint32 for w in words)
    assert [tuple(int(w[i]) for w in words) for i in range(len(counters))] == [
        philox_reference(c, key) for c in counters]


def test_high_counter_words_are_used():
    # run counts past 2**32 exercise the counter's last word (the cases only see run_count 0)
    arguments = {"shape": (6,), "seed": 2**50 + 1, "dtype": "float64", "run_count": 2**32 + 7}
    uniform = RANDOM_UNIFORM.reference(minval=0.0, maxval=1.0, **arguments)
    np.testing.assert_array_equal(uniform, expected_uniform((6,), 2**50 + 1, "float64", run_count=2**32 + 7))
    normal = RANDOM_NORMAL.reference(mean=0.0, stddev=1.0, **arguments)
    np.testing.assert_allclose(normal, expected_normal((6,), 2**50 + 1, "float64", run_count=2**32 + 7),
                               rtol=1e-12, atol=1e-12)


def test_new_values_each_run_and_same_sequence_in_a_fresh_session():
    graph = gc.Graph()
    with graph.as_default():
        draws = [gc.random.uniform((4, 3), seed=1), gc.random.normal((5,), seed=2),
                 gc.random.bernoulli((64,), seed=3)]
    first, second = _run(draws, graph, runs=2), _run(draws, graph, runs=2)
    for a, b in zip(first[0], first[1]):
        assert not np.array_equal(a, b)
    for run_a, run_b in zip(first, second):
        for a, b in zip(run_a, run_b):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[1][0], expected_uniform((4, 3), 1, run_count=1))


def test_like_follows_the_run_time_shape():
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, 784), name="x")
        keep = gc.random.bernoulli(p=0.9, seed=4, like=x)
        dropped = x * keep / 0.9
        noise = gc.random.normal(seed=5, like=x)
    assert keep.shape == (None, 784) and noise.shape == (None, 784)
    big, small = np.ones((5, 784), np.float32), np.ones((3, 784), np.float32)
    [(keep5, dropped5, noise5)] = _run([keep, dropped, noise], graph, feed_dict={x: big})
    [(keep3, noise3)] = _run([keep, noise], graph, feed_dict={x: small})
    assert keep5.shape == (5, 784) and keep3.shape == (3, 784)
    assert set(np.unique(dropped5)) <= {np.float32(0), np.float32(1 / 0.9)}
    # element i depends on (seed, run_count, i) only: a smaller batch is a prefix in C order
    np.testing.assert_array_equal(keep3, keep5[:3])
    np.testing.assert_array_equal(noise3, noise5[:3])


def _build_unseeded(graph_seed):
    graph = gc.Graph(seed=graph_seed)
    with graph.as_default():
        a = gc.random.uniform((8,))
        b = gc.random.uniform((8,))
    return graph, [a, b]


def _run_unseeded(graph_seed):
    graph, draws = _build_unseeded(graph_seed)
    return _run(draws, graph)[0]


def test_unseeded_ops_are_reproducible_when_the_script_is_rebuilt():
    a1, b1 = _run_unseeded(0)
    a2, b2 = _run_unseeded(0)
    a3, _ = _run_unseeded(1)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(a1, b1), "two unseeded ops of one graph must draw different numbers"
    assert not np.array_equal(a1, a3), "the graph seed must change the numbers"
    graph, (a, _) = _build_unseeded(0)
    assert a.op.attrs["seed"] == derived_seed(0, a.op.index)


def test_an_explicit_seed_does_not_depend_on_the_node_position():
    graph = gc.Graph()
    with graph.as_default():
        first = gc.random.normal((3, 2), seed=42)
        gc.constant(1.0)
        second = gc.random.normal((3, 2), seed=42)
    [(a, b)] = _run([first, second], graph)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_and_normal_moments(dtype):
    n = 200_000
    graph = gc.Graph()
    with graph.as_default():
        u = gc.random.uniform((n,), -1.0, 3.0, dtype=dtype, seed=10)
        z = gc.random.normal((n,), 2.0, 0.5, dtype=dtype, seed=11)
    [(u_value, z_value)] = _run([u, z], graph)
    assert u_value.dtype == dtype and z_value.dtype == dtype
    assert u_value.min() >= -1.0 and u_value.max() < 3.0
    assert np.isfinite(z_value).all()
    # mean within 5 standard errors; variance of a sample variance is (mu4 − sigma⁴) / n
    u_var, z_var = 16 / 12, 0.25
    assert abs(u_value.mean() - 1.0) < 5 * np.sqrt(u_var / n)
    assert abs(u_value.var() - u_var) < 5 * np.sqrt((16**2 / 80 - u_var**2) / n)
    assert abs(z_value.mean() - 2.0) < 5 * np.sqrt(z_var / n)
    assert abs(z_value.var() - z_var) < 5 * np.sqrt(2 * z_var**2 / n)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_bernoulli_rate(p):
    n = 100_000
    graph = gc.Graph()
    with graph.as_default():
        mask = gc.random.bernoulli((n,), p=p, dtype="int32", seed=12)
    [value] = _run(mask, graph)
    assert value.dtype == np.int32 and set(np.unique(value)) <= {0, 1}
    assert abs(value.mean() - p) <= 5 * np.sqrt(p * (1 - p) / n)


def test_an_unknown_static_dimension_names_the_node_and_line():
    graph = gc.Graph()
    with graph.as_default(), pytest.raises(ShapeError) as info:
        gc.random.uniform((None, 3), seed=0, name="noise")
    message = str(info.value)
    assert "'noise'" in message and "like=" in message
    assert f"test_random.py:{raising_line(info)}" in message


@pytest.mark.parametrize("build, error, words", [
    (lambda x: gc.random.uniform((2,), like=x), ShapeError, "not both"),
    (lambda x: gc.random.normal(), ShapeError, "shape="),
    (lambda x: gc.random.normal((2,), dtype="int32"), DTypeError, "int32"),
    (lambda x: gc.random.uniform((2,), dtype="bool"), DTypeError, "bool"),
    (lambda x: gc.random.bernoulli((2,), p=1.5), ValueError, "[0, 1]"),
    (lambda x: gc.random.uniform((2,), seed=1.5), TypeError, "seed"),
])
def test_bad_arguments(build, error, words):
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, 2))
        with pytest.raises(error) as info:
            build(x)
    assert words in str(info.value)


# -- derivatives: a draw is a constant -------------------------------------------------------------------
def test_gradients_stop_cleanly_at_a_draw():
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float64", (None, 3), name="x")
        mask = gc.random.bernoulli(p=0.5, dtype="float64", seed=4, like=x)
        noisy = x * mask / 0.5 + gc.random.normal(dtype="float64", seed=5, like=x)
        (d_x,) = gc.gradients(gc.reduce_sum(noisy), x)
        (tangent,) = gc.jvp(noisy, x, gc.ones_like(x))
    [(got_mask, got_gradient, got_tangent)] = _run([mask, d_x, tangent], graph, feed_dict={x: np.ones((4, 3))})
    # the derivative uses the same draw as the value of that run (one node, one run_count)
    np.testing.assert_array_equal(got_gradient, got_mask / 0.5)
    np.testing.assert_array_equal(got_tangent, got_mask / 0.5)


@pytest.mark.parametrize("draw", [gc.random.uniform, gc.random.normal, gc.random.bernoulli])
def test_a_gradient_only_through_a_draw_is_unconnected_and_names_it(draw):
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, 3), name="x")
        y = gc.reduce_sum(draw(like=x, name="noise"))
        with pytest.warns(gc.autodiff.UnconnectedGradientWarning, match="'noise'"):
            (d_x,) = gc.gradients(y, x)
        with pytest.raises(GradientError, match="'noise'"):
            gc.gradients(y, x, unconnected="raise")
        (tangent,) = gc.jvp(y, x, gc.ones_like(x))
    [(got_gradient, got_tangent)] = _run([d_x, tangent], graph, feed_dict={x: np.ones((2, 3), np.float32)})
    np.testing.assert_array_equal(got_gradient, np.zeros((2, 3)))
    assert got_tangent == 0.0
