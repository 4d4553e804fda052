"""Property test: random graphs of elementwise ops and reductions, run by a Session, equal a direct numpy
evaluation of the same expression (written here with plain numpy, not the ops' references)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc

UNARY = {
    "neg": (gc.neg, np.negative), "abs": (gc.abs, np.abs), "tanh": (gc.tanh, np.tanh),
    "sin": (gc.sin, np.sin), "cos": (gc.cos, np.cos), "relu": (gc.relu, lambda x: np.maximum(x, 0)),
    "sigmoid": (gc.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "sum_last": (lambda x: gc.reduce_sum(x, axis=-1, keepdims=True), lambda x: x.sum(-1, keepdims=True)),
    "max_first": (lambda x: gc.reduce_max(x, axis=0, keepdims=True), lambda x: x.max(0, keepdims=True)),
}
BINARY = {
    "add": (gc.add, np.add), "sub": (gc.sub, np.subtract), "mul": (gc.mul, np.multiply),
    "maximum": (gc.maximum, np.maximum), "minimum": (gc.minimum, np.minimum),
    "select": (lambda a, b: gc.where(a > b, a, b * 0.5), lambda a, b: np.where(a > b, a, b * 0.5)),
}
SHAPES = [(3, 4), (4,), (1, 4), (3, 1), ()]

step = st.one_of(
    st.tuples(st.just(1), st.sampled_from(sorted(UNARY)), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just(2), st.sampled_from(sorted(BINARY)), st.integers(0, 99), st.integers(0, 99)),
)


@settings(max_examples=60, deadline=None)
@given(shapes=st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3), steps=st.lists(step, min_size=1,
       max_size=8), seed=st.integers(0, 2**32 - 1), unknown=st.booleans())
def test_random_graph_matches_numpy(shapes, steps, seed, unknown):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-2, 2, size=shape) for shape in shapes]
    with gc.Graph().as_default() as graph:
        placeholders = [gc.placeholder("float64", (None,) * len(s) if unknown else s) for s in shapes]
        symbolic, numeric = list(placeholders), list(arrays)
        for arity, name, i, j in steps:
            a, b = i % len(symbolic), j % len(symbolic)
            if arity == 1:
                build, direct = UNARY[name]
                if name != "sum_last" and name != "max_first" or numeric[a].ndim > 0:
                    symbolic.append(build(symbolic[a]))
                    numeric.append(direct(numeric[a]))
            else:
                build, direct = BINARY[name]
                symbolic.append(build(symbolic[a], symbolic[b]))
                numeric.append(direct(numeric[a], numeric[b]))
    with gc.Session(graph, backend="numpy") as sess:
        got = sess.run(symbolic, dict(zip(placeholders, arrays)))
    for value, want, tensor in zip(got, numeric, symbolic):
        assert value.shape == np.shape(want)
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-300, err_msg=tensor.name)
