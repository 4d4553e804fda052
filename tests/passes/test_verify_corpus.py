"""The whole pipeline in verify mode over a corpus: every op case of the registry, the gradient graph of
every differentiable float64 case, the lecture's and the examples' graphs, and random graphs."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from tests.autodiff.test_op_derivatives import CASES as DERIVATIVE_CASES
from tests.ops.harness import _as_tuple
from tests.ops.test_ops import ALL_CASES
from tests.runtime.test_random_graphs import BINARY, SHAPES, UNARY, step


def _build(case, rng):
    arrays = [np.asarray(a) for a in case.make_inputs(rng)]
    graph = gc.Graph()
    with graph.as_default():
        inputs = [gc.placeholder(a.dtype.name, a.shape, name=f"in{i}") for i, a in enumerate(arrays)]
        outputs = list(_as_tuple(case.build(*inputs)))
    return graph, inputs, outputs, dict(zip(inputs, arrays))


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_every_op_case_survives_the_pipeline(case, rng):
    graph, _, outputs, feed = _build(case, rng)
    with graph.as_default():
        gc.optimize(outputs, level=2, verify=True, feed_dict=feed)


@pytest.mark.parametrize("case", DERIVATIVE_CASES, ids=lambda c: c.id)
def test_every_gradient_graph_survives_the_pipeline(case, rng):
    graph, inputs, outputs, feed = _build(case, rng)
    with graph.as_default(), warnings.catch_warnings():
        warnings.simplefilter("ignore", gc.autodiff.UnconnectedGradientWarning)
        weights = [rng.uniform(-1, 1, size=o.shape) for o in outputs if o.dtype == "float64"]
        loss = sum(gc.reduce_sum(o * w) for o, w in zip([o for o in outputs if o.dtype == "float64"], weights))
        floats = [x for x in inputs if x.dtype == "float64"]
        grads = [g for g in gc.gradients(loss, floats) if g is not None]
        gc.optimize([loss, *grads], level=2, verify=True, feed_dict=feed)


def test_lecture_and_example_graphs_survive_the_pipeline():
    with gc.Graph().as_default():
        x1 = gc.placeholder("float64", (), name="x1")
        x2 = gc.placeholder("float64", (), name="x2")
        y = gc.log(x1) + x1 * x2 - gc.sin(x2)
        gc.optimize([y, *gc.gradients(y, [x1, x2])], verify=True, feed_dict={x1: 2.0, x2: 5.0})
    with gc.Graph().as_default():
        u = gc.placeholder("float64", (3,), name="u")
        v = gc.placeholder("float64", (3,), name="v")
        z = gc.symbolic.nested_tanh(u, v, 4)
        gc.optimize([z, *gc.gradients(gc.reduce_sum(z), [u, v])], verify=True,
                    feed_dict={u: [0.3, -0.1, 0.2], v: [-0.2, 0.4, 0.1]})


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3),
       steps=st.lists(step, min_size=1, max_size=8), seed=st.integers(0, 2**32 - 1))
def test_random_graphs_and_their_gradients_survive_the_pipeline(shapes, steps, seed):
    rng = np.random.default_rng(seed)
    with gc.Graph().as_default():
        inputs = [gc.placeholder("float64", s) for s in shapes]
        values = list(inputs)
        for arity, name, i, j in steps:
            a, b = values[i % len(values)], values[j % len(values)]
            if arity == 1 and (a.ndim > 0 or name not in ("sum_last", "max_first")):
                values.append(UNARY[name][0](a))
            elif arity == 2:
                values.append(BINARY[name][0](a, b))
        loss = gc.reduce_sum(values[-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gc.autodiff.UnconnectedGradientWarning)
            grads = gc.gradients(loss, inputs)
        feed = {x: rng.uniform(-2, 2, size=s) for x, s in zip(inputs, shapes)}
        gc.optimize([*values, *grads], verify=True, feed_dict=feed)
