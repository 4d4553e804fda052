"""Derivatives of the nn ops beyond the registry's finite differences: the lecture's cross-entropy numbers
worked by hand, exact and finite gradients at logits of ±1000, run-time (None) dimensions, and the
GradientError for a gradient whose path goes through an assignment."""

import math

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GradientError, GraphcError
from tests.helpers import line_of, run


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph


# -- the lecture's numbers ----------------------------------------------------------------------------------
# Two examples, three classes. Logits ln(1, 2, 5) give softmax (1/8, 2/8, 5/8); logits ln(3, 1, 1) give
# (3/5, 1/5, 1/5). With labels 2 and 0 and the mean over the batch, d loss / d logits = (softmax − onehot) / 2.
LOGITS = np.log([[1.0, 2.0, 5.0], [3.0, 1.0, 1.0]])
LABELS = np.array([2, 0])
ONEHOT = np.eye(3)[LABELS]
SOFTMAX_BY_HAND = np.array([[1 / 8, 2 / 8, 5 / 8], [3 / 5, 1 / 5, 1 / 5]])
GRADIENT_BY_HAND = np.array([[1 / 8, 2 / 8, 5 / 8 - 1], [3 / 5 - 1, 1 / 5, 1 / 5]]) / 2
CLOSE = {"rtol": 1e-14, "atol": 1e-15}


def _batch():
    return gc.placeholder("float64", (None, 3), name="logits"), gc.placeholder("int64", (None,), name="labels")


def test_sparse_softmax_cross_entropy_gradient_is_softmax_minus_onehot():
    logits, labels = _batch()
    loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(logits, labels))
    (d_logits,) = gc.gradients(loss, logits)
    value, gradient = run([loss, d_logits], {logits: LOGITS, labels: LABELS})
    assert value == pytest.approx((math.log(8 / 5) + math.log(5 / 3)) / 2, rel=1e-15)
    np.testing.assert_allclose(gradient, GRADIENT_BY_HAND, **CLOSE)


def test_softmax_cross_entropy_gradients_of_logits_and_onehot():
    logits, _ = _batch()
    onehot = gc.placeholder("float64", (None, 3), name="onehot")
    loss = gc.reduce_mean(gc.nn.softmax_cross_entropy(logits, onehot))
    d_logits, d_onehot = gc.gradients(loss, [logits, onehot])
    got_logits, got_onehot = run([d_logits, d_onehot], {logits: LOGITS, onehot: ONEHOT})
    np.testing.assert_allclose(got_logits, GRADIENT_BY_HAND, **CLOSE)
    # d/d onehot = −log_softmax(logits) / 2 = −log(softmax) / 2
    np.testing.assert_allclose(got_onehot, -np.log(SOFTMAX_BY_HAND) / 2, **CLOSE)


def test_weighted_targets_scale_the_gradient():
    # a target w·onehot (a class weight) gives w·(softmax − onehot): the rule is softmax·Σq − q, exact also
    # for targets that do not sum to 1
    logits, _ = _batch()
    onehot = gc.placeholder("float64", (None, 3), name="onehot")
    (d_logits,) = gc.gradients(gc.reduce_mean(gc.nn.softmax_cross_entropy(logits, onehot)), logits)
    weights = np.array([[3.0], [0.5]])
    got = run(d_logits, {logits: LOGITS, onehot: weights * ONEHOT})
    np.testing.assert_allclose(got, weights * GRADIENT_BY_HAND, **CLOSE)


def test_the_fused_gradient_equals_the_composed_one():
    # −Σ onehot·log_softmax built from separate ops differentiates to the same numbers as the fused loss
    logits, _ = _batch()
    composed = gc.reduce_mean(-gc.reduce_sum(ONEHOT * gc.nn.log_softmax(logits), axis=1))
    fused = gc.reduce_mean(gc.nn.softmax_cross_entropy(logits, ONEHOT))
    (d_composed,) = gc.gradients(composed, logits)
    (d_fused,) = gc.gradients(fused, logits)
    got_composed, got_fused = run([d_composed, d_fused], {logits: LOGITS})
    np.testing.assert_allclose(got_composed, GRADIENT_BY_HAND, **CLOSE)
    np.testing.assert_allclose(got_fused, got_composed, **CLOSE)


def test_softmax_vjp_and_jvp_by_hand():
    # J = diag(s) − s sᵀ: with s = (1/8, 2/8, 5/8) and direction e₃, J e₃ = s₃ (e₃ − s) = 5/8 · (−1/8, −2/8, 3/8)
    x = gc.placeholder("float64", (3,), name="x")
    s = gc.nn.softmax(x)
    (d_x,) = gc.gradients(s, x, grad_ys=np.array([0.0, 0.0, 1.0]))
    (tangent,) = gc.jvp(s, x, np.array([0.0, 0.0, 1.0]))
    expected = 5 / 8 * np.array([-1 / 8, -2 / 8, 3 / 8])
    for got in run([d_x, tangent], {x: LOGITS[0]}):
        np.testing.assert_allclose(got, expected, **CLOSE)


def test_sigmoid_cross_entropy_gradients_by_hand():
    # σ(0, ln 3, −ln 3) = (1/2, 3/4, 1/4): d/dx = σ(x) − z and d/dz = −x
    x = gc.placeholder("float64", (3,), name="x")
    z = gc.placeholder("float64", (3,), name="z")
    d_x, d_z = gc.gradients(gc.nn.sigmoid_cross_entropy(x, z), [x, z])
    x_value = np.array([0.0, math.log(3), -math.log(3)])
    got_x, got_z = run([d_x, d_z], {x: x_value, z: np.array([1.0, 0.25, 0.5])})
    np.testing.assert_allclose(got_x, [-1 / 2, 3 / 4 - 1 / 4, 1 / 4 - 1 / 2], **CLOSE)
    np.testing.assert_array_equal(got_z, -x_value)


def test_mse_and_hinge_gradients_by_hand():
    p = gc.placeholder("float64", (1, 3), name="p")
    t = gc.placeholder("float64", (1, 3), name="t")
    d_p, d_t = gc.gradients(gc.nn.mse(p, t), [p, t])
    got_p, got_t = run([d_p, d_t], {p: [[1.0, 2.0, 3.0]], t: [[0.0, 0.0, 0.0]]})
    np.testing.assert_allclose(got_p, [[2 / 3, 4 / 3, 2.0]], **CLOSE)  # 2(p − t)/n
    np.testing.assert_allclose(got_t, -got_p, **CLOSE)
    # margins 1 − y·f = (0.5, 3, −2, 0): the last two are flat (the kink counts as flat)
    y = gc.placeholder("float64", (4,), name="y")
    f = gc.placeholder("float64", (4,), name="f")
    d_y, d_f = gc.gradients(gc.nn.hinge(y, f), [y, f])
    got_y, got_f = run([d_y, d_f], {y: [1.0, -1.0, 1.0, -1.0], f: [0.5, 2.0, 3.0, -1.0]})
    np.testing.assert_array_equal(got_f, [-1 / 4, 1 / 4, 0.0, 0.0])  # −y/n where active
    np.testing.assert_array_equal(got_y, [-1 / 8, -2 / 4, 0.0, 0.0])  # −f/n where active


# -- stability at ±1000 ---------------------------------------------------------------------------------------
# Row 0: softmax (1, 0, 0, 0) exactly (exp(−1000) underflows to 0); row 1: (1/4, 1/4, 1/4, 1/4) exactly.
HUGE = np.array([[1000.0, -1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0, -1000.0]])
HUGE_LABELS = np.array([1, 0])
HUGE_GRADIENT = np.array([[1.0, -1.0, 0.0, 0.0], [-3 / 4, 1 / 4, 1 / 4, 1 / 4]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_gradients_at_1000_are_finite_and_exact(dtype):
    logits = gc.placeholder(dtype, (None, 4), name="logits")
    labels = gc.placeholder("int64", (None,), name="labels")
    onehot = gc.placeholder(dtype, (None, 4), name="onehot")
    sparse = gc.reduce_sum(gc.nn.sparse_softmax_cross_entropy(logits, labels))
    dense = gc.reduce_sum(gc.nn.softmax_cross_entropy(logits, onehot))
    (d_sparse,) = gc.gradients(sparse, logits)
    d_dense, d_onehot = gc.gradients(dense, [logits, onehot])
    (tangent,) = gc.jvp(dense, logits, gc.ones_like(logits))
    feeds = {logits: HUGE.astype(dtype), labels: HUGE_LABELS, onehot: np.eye(4, dtype=dtype)[HUGE_LABELS]}
    got_sparse, got_dense, got_onehot, got_tangent = run([d_sparse, d_dense, d_onehot, tangent], feeds)
    np.testing.assert_array_equal(got_sparse, HUGE_GRADIENT)
    np.testing.assert_array_equal(got_dense, HUGE_GRADIENT)
    # d/d onehot = −log_softmax: 2000 and 1000 below the max in row 0, log 4 in row 1
    np.testing.assert_allclose(got_onehot, [[0.0, 2000.0, 1000.0, 2000.0], [math.log(4)] * 4], rtol=1e-7)
    assert got_tangent == 0.0  # each row of softmax − onehot sums to 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_second_derivatives_at_1000_are_finite_and_exact(dtype):
    # the Hessian of cross-entropy in each row is diag(s) − s sᵀ: 0 for row 0, I/4 − 1/16 for row 1
    logits = gc.placeholder(dtype, (2, 4), name="logits")
    labels = gc.placeholder("int64", (2,), name="labels")
    (gradient,) = gc.gradients(gc.reduce_sum(gc.nn.sparse_softmax_cross_entropy(logits, labels)), logits)
    direction = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]], dtype)
    (hessian_direction,) = gc.gradients(gc.reduce_sum(gradient * direction), logits)
    got = run(hessian_direction, {logits: HUGE.astype(dtype), labels: HUGE_LABELS})
    np.testing.assert_array_equal(got, [[0.0] * 4, direction[1] / 4 - direction[1].sum() / 16])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_sigmoid_and_log_softmax_gradients_at_1000(dtype):
    x = gc.placeholder(dtype, (2, 4), name="x")
    z = gc.placeholder(dtype, (2, 4), name="z")
    weights = np.arange(8, dtype=dtype).reshape(2, 4)
    (d_softmax,) = gc.gradients(gc.reduce_sum(gc.nn.softmax(x) * weights), x)
    (d_log_softmax,) = gc.gradients(gc.reduce_sum(gc.nn.log_softmax(x) * weights), x)
    (d_sigmoid,) = gc.gradients(gc.reduce_sum(gc.nn.sigmoid_cross_entropy(x, z)), x)
    got = run([d_softmax, d_log_softmax, d_sigmoid], {x: HUGE.astype(dtype), z: np.full((2, 4), 0.25, dtype)})
    softmax = HUGE_GRADIENT + np.eye(4)[HUGE_LABELS]
    sums = weights.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(got[0], softmax * (weights - (weights * softmax).sum(axis=1, keepdims=True)))
    np.testing.assert_array_equal(got[1], weights - softmax * sums)
    # σ(1000) = 1, σ(−1000) = 0 and σ(0) = 1/2: σ(x) − z exactly
    np.testing.assert_array_equal(got[2], (HUGE > 0) + 0.5 * (HUGE == 0) - 0.25)


# -- dimensions known only at run time ----------------------------------------------------------------------
BUILDS = {
    "softmax_cross_entropy": lambda a, b: gc.nn.softmax_cross_entropy(a, b),
    "softmax_cross_entropy-axis0": lambda a, b: gc.nn.softmax_cross_entropy(a, b, axis=0),
    "sigmoid_cross_entropy": gc.nn.sigmoid_cross_entropy,
    "mse": gc.nn.mse,
    "hinge": lambda a, b: gc.nn.hinge(b, a),
    "log_softmax-axis0": lambda a, b: gc.nn.log_softmax(a, axis=0) * b,
    "softmax": lambda a, b: gc.nn.softmax(a) * b,
}


def _derivatives(build, shape, a_value, b_value):
    """Gradient (reverse) and directional derivative (forward) of sum(build(a, b)) with a and b of ``shape``."""
    a = gc.placeholder("float64", shape, name="a")
    b = gc.placeholder("float64", shape, name="b")
    loss = gc.reduce_sum(build(a, b))
    (tangent,) = gc.jvp(loss, [a, b], [gc.ones_like(a), -gc.ones_like(b)])
    return run([*gc.gradients(loss, [a, b]), tangent], {a: a_value, b: b_value})


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_unknown_dimensions_give_the_same_derivatives_as_known_ones(name, rng):
    # the mean losses count their last axis when the graph runs; cotangents are spread with expand_dims
    for size in [(5, 4), (2, 3)]:
        a_value, b_value = rng.uniform(-2, 2, size), rng.uniform(0.1, 1, size)
        known = _derivatives(BUILDS[name], size, a_value, b_value)
        unknown = _derivatives(BUILDS[name], (None, None), a_value, b_value)
        for got, want in zip(unknown, known):
            np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_sparse_cross_entropy_derivatives_need_no_static_class_axis(rng):
    # the gradient is one op, softmax − onehot(labels), which counts the classes when it runs: logits of
    # shape (None, None) give the same gradient, tangent and Hessian-vector product as (None, 4)
    value, label_value = rng.uniform(-2, 2, (3, 4)), np.array([0, 3, 1], np.int32)
    direction = rng.uniform(-1, 1, (3, 4))
    softmax = np.exp(value) / np.exp(value).sum(axis=1, keepdims=True)
    labels = gc.placeholder("int32", (None,), name="labels")
    results = []
    for shape in [(None, 4), (None, None)]:
        logits = gc.placeholder("float64", shape, name="logits")
        loss = gc.reduce_sum(gc.nn.sparse_softmax_cross_entropy(logits, labels))
        (d_logits,) = gc.gradients(loss, logits)
        (tangent,) = gc.jvp(loss, logits, direction)
        (hessian_direction,) = gc.gradients(gc.reduce_sum(d_logits * direction), logits)
        assert not any(n.op.name == "one_hot" for n in logits.graph.nodes)
        results.append(run([d_logits, tangent, hessian_direction], {logits: value, labels: label_value}))
    for got in results:
        np.testing.assert_allclose(got[0], softmax - np.eye(4)[label_value], rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(got[1], ((softmax - np.eye(4)[label_value]) * direction).sum(), rtol=1e-13)
        # each row's Hessian is diag(s) − s sᵀ
        want = softmax * (direction - (softmax * direction).sum(axis=1, keepdims=True))
        np.testing.assert_allclose(got[2], want, rtol=1e-13, atol=1e-15)
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


def test_a_label_outside_the_classes_fails_the_gradient_at_run_time(rng):
    logits = gc.placeholder("float64", (None, None), name="logits")
    labels = gc.placeholder("int64", (None,), name="labels")
    (d_logits,) = gc.gradients(gc.reduce_sum(gc.nn.sparse_softmax_cross_entropy(logits, labels)), logits)
    with pytest.raises(GraphcError, match=r"label 3 is outside the class range \[0, 3\)"):
        run(d_logits, {logits: rng.uniform(-1, 1, (2, 3)), labels: np.array([0, 3])})


# -- assignments are not differentiated -------------------------------------------------------------------------
def test_a_gradient_through_an_assignment_is_a_gradient_error():
    x = gc.placeholder("float64", (3,), name="x")
    v = gc.Variable(np.zeros(3), name="v")
    update = gc.assign(v, x * 2.0, name="update")  # ASSIGN-MARK
    with pytest.raises(GradientError) as info:
        gc.gradients(gc.reduce_sum(update), x)
    message = str(info.value)
    assert "assign node 'update'" in message and "has no gradient" in message, message
    assert f"test_nn_gradients.py:{line_of('ASSIGN-MARK')}" in message, message
    with pytest.raises(GradientError) as info:
        gc.gradients(gc.reduce_sum(update), v)  # the variable's own path goes through the update too
    assert "assign node 'update'" in str(info.value)
    step = gc.assign_add(v, x, name="step")  # STEP-MARK
    with pytest.raises(GradientError) as info:
        gc.jvp(step, x, np.ones(3))
    message = str(info.value)
    assert "assign_add node 'step'" in message and "no forward-mode derivative" in message, message
    assert f"test_nn_gradients.py:{line_of('STEP-MARK')}" in message, message


def test_reading_a_variable_is_differentiable_next_to_its_updates():
    x = gc.placeholder("float64", (3,), name="x")
    v = gc.Variable(np.array([1.0, 2.0, 3.0]), name="v")
    loss = gc.reduce_sum(v * x)
    train = gc.group(gc.assign_add(v, -0.5 * x))
    d_v, d_x = gc.gradients(loss, [v, x])
    with gc.Session(backend="numpy") as sess:
        got_v, got_x, _ = sess.run([d_v, d_x, train], {x: np.array([4.0, 5.0, 6.0])})
    np.testing.assert_array_equal(got_v, [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(got_x, [1.0, 2.0, 3.0])  # the value before the step
