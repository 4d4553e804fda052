"""stabilize: each rule fires on its form (however it arose) and not on a near miss; the optimized graph
computes what the graph as built computes on ordinary inputs, and the exact value where the graph as built
overflows, underflows or cancels (logits of ±1000, log(1 + 1e-12), log(sigmoid(−100))), gradients included."""

import numpy as np
import pytest

import graphc as gc
from graphc.passes import optimize
from tests.passes.evaluate import assert_same_values, run_both


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph


def ops_of(*tensors) -> list[str]:
    """The op names of the nodes the tensors depend on, sorted (placeholders and constants included)."""
    seen, stack = {}, [t.node for t in tensors]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen[node] = node.op.name
            stack.extend(t.node for t in node.inputs)
    return sorted(seen.values())


def run(*tensors, **kwargs):
    """The optimized tensors (one, or a list) and the counts of the rules that fired."""
    result = optimize(list(tensors), **kwargs)
    return (result.outputs[0] if len(tensors) == 1 else result.outputs), result.fired()


def feed(rng, *placeholders, scale=1.0):
    return {p: (scale * rng.normal(size=tuple(3 if d is None else d for d in p.shape))).astype(p.dtype)
            for p in placeholders}


def evaluate(fetches, feeds):
    """The values with the full pipeline (gc.Session(optimize=2)) on the numpy backend."""
    graph = (fetches[0] if isinstance(fetches, list) else fetches).graph
    with gc.Session(graph, optimize=2) as session:
        return session.run(fetches, feeds)


# -- exact float64 references, by stable formulas ---------------------------------------------------------
def exact_log_softmax(z, axis=-1):
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def exact_softmax(z, axis=-1):
    return np.exp(exact_log_softmax(z, axis))


def exact_sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


LOGITS = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 999.0, 1000.0], [0.5, -0.25, 2.0]])
ONEHOT = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # row 0: confidently wrong


def hand_softmax(z, axis=-1):
    e = gc.exp(z)
    return e / gc.reduce_sum(e, axis=axis, keepdims=True)


# -- softmax written by hand ----------------------------------------------------------------------------
def test_softmax_by_hand_becomes_softmax(rng):
    z = gc.placeholder("float64", (None, 4), name="z")
    p = hand_softmax(z)
    out, fired = run(p)
    assert fired["softmax_by_hand"] == 1 and ops_of(out) == ["placeholder", "softmax"]
    assert out.node.attrs["axis"] == 1
    assert_same_values(p, feed(rng, z))


def test_softmax_by_hand_with_a_plain_sum_and_expand_dims(rng):
    z = gc.placeholder("float64", (2, 4, 3), name="z")
    e = gc.exp(z)
    p = e / gc.expand_dims(gc.reduce_sum(e, axis=1), 1)
    out, fired = run(p)
    assert fired["softmax_by_hand"] == 1 and ops_of(out) == ["placeholder", "softmax"]
    assert out.node.attrs["axis"] == 1
    assert_same_values(p, feed(rng, z))


def test_softmax_shifted_by_its_max_by_hand_becomes_softmax_of_the_logits(rng):
    z = gc.placeholder("float64", (2, 5), name="z")
    for m in (gc.reduce_max(z, axis=1, keepdims=True), gc.expand_dims(gc.reduce_max(z, axis=1), 1),
              gc.stop_gradient(gc.reduce_max(z, axis=-1, keepdims=True))):
        p = hand_softmax(z - m)
        out, fired = run(p)
        assert fired["softmax_by_hand"] == 1 and fired["softmax_unshift"] == 1
        assert ops_of(out) == ["placeholder", "softmax"]
        assert_same_values(p, feed(rng, z))


def test_softmax_by_hand_not_over_two_axes_nor_another_exp_nor_a_moved_sum(rng):
    z = gc.placeholder("float64", (3, 3), name="z")
    w = gc.placeholder("float64", (3, 3), name="w")
    over_all = gc.exp(z) / gc.reduce_sum(gc.exp(z), keepdims=True)
    other = gc.exp(z) / gc.reduce_sum(gc.exp(w), axis=1, keepdims=True)
    moved = gc.exp(z) / gc.expand_dims(gc.reduce_sum(gc.exp(z), axis=1), 0)  # row sums laid out as a row
    for p in (over_all, other, moved):
        out, fired = run(p)
        assert fired["softmax_by_hand"] == 0 and "softmax" not in ops_of(out)
        assert_same_values(p, feed(rng, z, w))


def test_a_shift_by_another_axis_max_is_kept(rng):
    z = gc.placeholder("float64", (3, 4), name="z")
    p = hand_softmax(z - gc.reduce_max(z, axis=0, keepdims=True))
    out, fired = run(p)
    assert fired["softmax_by_hand"] == 1 and fired["softmax_unshift"] == 0
    assert ops_of(out).count("reduce_max") == 1
    assert_same_values(p, feed(rng, z))


# -- log_softmax ------------------------------------------------------------------------------------------
def test_log_of_softmax_becomes_log_softmax(rng):
    z = gc.placeholder("float32", (None, 4), name="z")
    y = gc.log(gc.nn.softmax(z, axis=0))
    out, fired = run(y)
    assert fired["log_softmax"] == 1 and ops_of(out) == ["log_softmax", "placeholder"]
    assert out.node.attrs["axis"] == 0 and out.dtype == "float32"
    assert_same_values(y, feed(rng, z), rtol=1e-5, atol=1e-6)


def test_log_of_softmax_plus_epsilon_is_left(rng):
    z = gc.placeholder("float64", (2, 4), name="z")
    y = gc.log(gc.nn.softmax(z) + 1e-9)
    out, fired = run(y)
    assert fired["log_softmax"] == 0 and "log_softmax" not in ops_of(out)


def test_log_of_a_softmax_by_hand_becomes_log_softmax_exact_at_1000():
    z = gc.placeholder("float64", (3, 3), name="z")
    y = gc.log(hand_softmax(z))
    out, fired = run(y)
    assert fired["softmax_by_hand"] == 1 and fired["log_softmax"] == 1
    assert ops_of(out) == ["log_softmax", "placeholder"]
    before, after = run_both(y, {z: LOGITS})
    assert not np.all(np.isfinite(before))  # the graph as built gives NaN and −inf here
    np.testing.assert_allclose(after, exact_log_softmax(LOGITS), rtol=1e-15)


def test_log_softmax_by_hand_spellings(rng):
    z = gc.placeholder("float64", (None, 3), name="z")
    m = gc.reduce_max(z, axis=1, keepdims=True)
    spellings = [
        z - gc.log(gc.reduce_sum(gc.exp(z), axis=1, keepdims=True)),
        z - gc.expand_dims(gc.log(gc.reduce_sum(gc.exp(z), axis=1)), 1),  # log of a plain sum: not matched
        z - gc.reduce_logsumexp(z, axis=-1, keepdims=True),
        z - gc.expand_dims(gc.reduce_logsumexp(z, axis=1), 1),
        (z - m) - gc.log(gc.reduce_sum(gc.exp(z - m), axis=1, keepdims=True)),
    ]
    for i, y in enumerate(spellings):
        out, fired = run(y)
        if i == 1:
            assert fired["log_softmax_by_hand"] == 0 and "log_softmax" not in ops_of(out)
        else:
            assert fired["log_softmax_by_hand"] == 1 and ops_of(out) == ["log_softmax", "placeholder"], i
        assert_same_values(y, feed(rng, z, scale=3))
    assert evaluate(spellings[0], {z: LOGITS}) == pytest.approx(exact_log_softmax(LOGITS), rel=1e-15)


def test_log_softmax_by_hand_not_of_other_logits(rng):
    z = gc.placeholder("float64", (2, 3), name="z")
    w = gc.placeholder("float64", (2, 3), name="w")
    y = w - gc.reduce_logsumexp(z, axis=1, keepdims=True)
    out, fired = run(y)
    assert fired["log_softmax_by_hand"] == 0 and "log_softmax" not in ops_of(out)
    assert_same_values(y, feed(rng, z, w))


# -- log1p and expm1 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["1 + x", "x + 1", "1 - x"])
def test_log_of_one_plus_x_becomes_log1p(rng, spelling):
    x = gc.placeholder("float64", (None,), name="x")
    inner = {"1 + x": 1 + x, "x + 1": x + 1, "1 - x": 1 - x}[spelling]
    y = gc.log(inner)
    out, fired = run(y)
    assert fired["log1p"] == 1 and "log" not in ops_of(out) and "log1p" in ops_of(out)
    assert_same_values(y, {x: rng.uniform(-0.9, 3, size=6)}, rtol=1e-12)


def test_log1p_is_exact_for_tiny_x_and_so_is_its_gradient():
    x = gc.placeholder("float64", (2,), name="x")
    y = gc.log(1 + x)
    (dx,) = gc.gradients(y, [x])
    value = np.array([1e-12, -1e-17])
    before, after = run_both([y, dx], {x: value})
    assert before[0][1] == 0.0  # 1 − 1e-17 rounds to 1
    np.testing.assert_allclose(after[0], np.log1p(value), rtol=1e-15)
    np.testing.assert_allclose(after[1], 1 / (1 + value), rtol=1e-15)


def test_log1p_not_for_other_constants_or_a_broadcasting_one():
    x = gc.placeholder("float64", (3,), name="x")
    for y in (gc.log(x + 2), gc.log(np.ones((2, 3)) + x), gc.log(x - 1)):
        out, fired = run(y)
        assert fired["log1p"] == 0 and "log1p" not in ops_of(out)


@pytest.mark.parametrize("spelling", ["exp(x) - 1", "exp(x) + (-1)"])
def test_exp_minus_one_becomes_expm1(rng, spelling):
    x = gc.placeholder("float32", (2, 3), name="x")
    y = gc.exp(x) - 1 if spelling == "exp(x) - 1" else gc.exp(x) + (-1.0)
    out, fired = run(y)
    assert fired["expm1"] == 1 and ops_of(out) == ["expm1", "placeholder"] and out.dtype == "float32"
    assert_same_values(y, feed(rng, x), rtol=1e-5, atol=1e-6)


def test_expm1_is_exact_for_tiny_x_and_not_for_other_constants():
    x = gc.placeholder("float64", (1,), name="x")
    y = gc.exp(x) - 1
    (dx,) = gc.gradients(y, [x])
    before, after = run_both([y, dx], {x: np.array([1e-10])})
    assert abs(before[0][0] / 1e-10 - 1) > 1e-9  # exp(x) − 1 keeps 7 digits of x
    np.testing.assert_allclose(after[0], np.expm1([1e-10]), rtol=1e-15)
    np.testing.assert_allclose(after[1], np.exp([1e-10]), rtol=1e-15)
    out, fired = run(gc.exp(x) - 2)
    assert fired["expm1"] == 0 and "expm1" not in ops_of(out)


# -- log of sigmoid ---------------------------------------------------------------------------------------
def test_log_sigmoid_becomes_minus_softplus(rng):
    x = gc.placeholder("float64", (None, 2), name="x")
    y = gc.log(gc.sigmoid(x))
    out, fired = run(y)
    assert fired["log_sigmoid"] == 1 and ops_of(out) == ["neg", "neg", "placeholder", "softplus"]
    assert_same_values(y, feed(rng, x, scale=3), rtol=1e-8)  # log(σ(x)) near 0 has rounding error


def test_log_sigmoid_and_its_gradient_are_exact_far_out():
    x = gc.placeholder("float64", (4,), name="x")
    y = gc.log(gc.sigmoid(x))
    (dx,) = gc.gradients(gc.reduce_sum(y), [x])
    value = np.array([-100.0, -1000.0, 40.0, 1000.0])
    before, after = run_both([y, dx], {x: value})
    assert before[0][1] == -np.inf and np.isnan(before[1][1])
    np.testing.assert_allclose(after[0], -np.logaddexp(0, -value), rtol=1e-15)
    np.testing.assert_allclose(after[1], exact_sigmoid(-value), rtol=1e-15)


def test_log_one_minus_sigmoid_becomes_minus_softplus_and_is_exact(rng):
    x = gc.placeholder("float64", (3,), name="x")
    y = gc.log(1 - gc.sigmoid(x))
    (dx,) = gc.gradients(gc.reduce_sum(y), [x])
    out, fired = run(y)
    assert fired["log1p"] == 1 and fired["log_one_minus_sigmoid"] == 1
    assert ops_of(out) == ["neg", "placeholder", "softplus"]
    assert_same_values(y, feed(rng, x, scale=4), rtol=1e-12)
    value = np.array([1000.0, 100.0, -30.0])
    after = evaluate([y, dx], {x: value})
    np.testing.assert_allclose(after[0], -np.logaddexp(0, value), rtol=1e-15)
    np.testing.assert_allclose(after[1], -exact_sigmoid(value), rtol=1e-15)


def test_log_of_another_function_is_left():
    x = gc.placeholder("float64", (3,), name="x")
    out, fired = run(gc.log(gc.tanh(x)))
    assert fired["log_sigmoid"] == 0 and ops_of(out) == ["log", "placeholder", "tanh"]


# -- softmax cross-entropy --------------------------------------------------------------------------------
def test_cross_entropy_by_hand_becomes_the_fused_op(rng):
    z = gc.placeholder("float64", (4, 3), name="z")
    y = gc.placeholder("float64", (4, 3), name="y")
    loss = -gc.reduce_sum(y * gc.log(gc.nn.softmax(z)), axis=1)
    out, fired = run(loss)
    assert fired["log_softmax"] == 1 and fired["softmax_cross_entropy"] == 1
    assert ops_of(out) == ["placeholder", "placeholder", "softmax_cross_entropy"]
    assert_same_values(loss, feed(rng, z, y), rtol=1e-12)


@pytest.mark.parametrize("spelling", ["sum", "mean", "mean of negated", "negated onehot", "log_softmax first"])
def test_cross_entropy_totals(rng, spelling):
    z = gc.placeholder("float64", (None, 3), name="z")
    y = gc.placeholder("float64", (None, 3), name="y")
    ls = gc.nn.log_softmax(z)
    loss = {"sum": lambda: -gc.reduce_sum(y * gc.log(gc.nn.softmax(z))),
            "mean": lambda: -gc.reduce_mean(gc.reduce_sum(y * ls, axis=1)),
            "mean of negated": lambda: gc.reduce_mean(-gc.reduce_sum(y * ls, axis=-1)),
            "negated onehot": lambda: gc.reduce_sum(-y * ls),
            "log_softmax first": lambda: -gc.reduce_sum(ls * y, axis=[0, 1])}[spelling]()
    out, fired = run(loss)
    assert fired["softmax_cross_entropy"] == 1 and "softmax_cross_entropy" in ops_of(out)
    assert "log_softmax" not in ops_of(out) and out.shape == ()
    assert_same_values(loss, feed(rng, z, y), rtol=1e-12)


def test_cross_entropy_of_confident_predictions_and_its_gradient_are_exact():
    z = gc.placeholder("float64", (3, 3), name="z")
    y = gc.placeholder("float64", (3, 3), name="y")
    loss = -gc.reduce_mean(gc.reduce_sum(y * gc.log(gc.nn.softmax(z)), axis=1))
    (dz,) = gc.gradients(loss, [z])
    before, after = run_both([loss, dz], {z: LOGITS, y: ONEHOT})
    assert np.isnan(before[1]).any()
    expected = -np.mean(np.sum(ONEHOT * exact_log_softmax(LOGITS), axis=1))
    np.testing.assert_allclose(after[0], expected, rtol=1e-15)
    np.testing.assert_allclose(after[1], (exact_softmax(LOGITS) - ONEHOT) / 3, rtol=1e-15, atol=1e-300)


def test_cross_entropy_with_a_broadcast_label_is_still_right(rng):
    z = gc.placeholder("float64", (None, 3), name="z")
    y = gc.placeholder("float64", (None, 3), name="y")
    loss = -gc.reduce_sum(y * gc.nn.log_softmax(z), axis=1)
    out, fired = run(loss)
    assert fired["softmax_cross_entropy"] == 1
    feeds = {z: rng.normal(size=(4, 3)), y: rng.uniform(size=(1, 3))}  # one label row for every example
    assert_same_values(loss, feeds, rtol=1e-12)


def test_cross_entropy_not_over_the_batch_axis_nor_a_broadcast_class_axis(rng):
    z = gc.placeholder("float64", (4, 3), name="z")
    y = gc.placeholder("float64", (4, 3), name="y")
    column = gc.placeholder("float64", (4, 1), name="column")
    for loss in (-gc.reduce_sum(y * gc.nn.log_softmax(z), axis=0),
                 -gc.reduce_sum(column * gc.nn.log_softmax(z), axis=1),
                 -gc.reduce_sum(y * gc.nn.log_softmax(z, axis=0), axis=1)):
        out, fired = run(loss)
        assert fired["softmax_cross_entropy"] == 0 and "softmax_cross_entropy" not in ops_of(out)
        assert_same_values(loss, feed(rng, z, y, column), rtol=1e-12)


# -- gradient graphs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["exp / sum", "exp / expand_dims(sum)", "shifted by max", "softmax op"])
def test_hand_written_log_softmax_loss_and_its_gradient_at_1000(spelling):
    z = gc.placeholder("float64", (3, 3), name="z")
    y = gc.placeholder("float64", (3, 3), name="y")
    e = gc.exp(z)
    p = {"exp / sum": lambda: hand_softmax(z),
         "exp / expand_dims(sum)": lambda: e / gc.expand_dims(gc.reduce_sum(e, axis=1), 1),
         "shifted by max": lambda: hand_softmax(z - gc.reduce_max(z, axis=1, keepdims=True)),
         "softmax op": lambda: gc.nn.softmax(z)}[spelling]()
    log_p = gc.log(p)
    loss = -gc.reduce_sum(y * log_p)
    (dz,) = gc.gradients(loss, [z])
    (out_log_p, out_loss, out_dz), fired = run(log_p, loss, dz)
    assert fired["log_softmax"] >= 1 and fired["log_softmax_grad"] == 1
    assert fired["softmax_grad_by_hand"] == (0 if spelling == "softmax op" else 1)
    # the forward part is log_softmax, and the loss the fused op; no exp, log or division is left but the
    # max's derivative (1/k among k tied maxima) when the logits were shifted by their max
    assert ops_of(out_log_p) == ["log_softmax", "placeholder"]
    assert "softmax_cross_entropy" in ops_of(out_loss)
    assert not {"exp", "log"} & set(ops_of(out_loss, out_dz))
    assert ops_of(out_dz).count("div") == (1 if spelling == "shifted by max" else 0)
    before, after = run_both([log_p, loss, dz], {z: LOGITS, y: ONEHOT})
    assert not np.isfinite(before[2]).all()
    np.testing.assert_allclose(after[0], exact_log_softmax(LOGITS), rtol=1e-15)
    np.testing.assert_allclose(after[1], -np.sum(ONEHOT * exact_log_softmax(LOGITS)), rtol=1e-15)
    np.testing.assert_allclose(after[2], exact_softmax(LOGITS) - ONEHOT, rtol=1e-15, atol=1e-300)


def test_gradient_rules_keep_values_on_ordinary_inputs(rng):
    z = gc.placeholder("float64", (None, 4), name="z")
    y = gc.placeholder("float64", (None, 4), name="y")
    x = gc.placeholder("float64", (None, 4), name="x")
    loss = (-gc.reduce_sum(y * gc.log(hand_softmax(z))) + gc.reduce_sum(y * gc.log(gc.sigmoid(x)))
            + gc.reduce_sum(y * gc.log(1 - gc.sigmoid(x))))
    grads = gc.gradients(loss, [z, x])
    _, fired = run(*grads)
    for name in ("softmax_grad_by_hand", "log_softmax_grad", "log_sigmoid_grad", "log_one_minus_sigmoid_grad"):
        assert fired[name] == 1, name
    assert_same_values(grads, feed(rng, z, y, x, scale=2), rtol=1e-9, atol=1e-12)


def test_softmax_gradient_without_a_log_is_left(rng):
    z = gc.placeholder("float64", (2, 3), name="z")
    y = gc.placeholder("float64", (2, 3), name="y")
    (dz,) = gc.gradients(gc.reduce_sum(y * gc.nn.softmax(z)), [z])
    _, fired = run(dz)
    assert fired["log_softmax_grad"] == 0
    (dz,) = gc.gradients(gc.reduce_sum(y * hand_softmax(z)), [z])
    out, fired = run(dz)
    assert fired["softmax_grad_by_hand"] == 1 and fired["log_softmax_grad"] == 0 and "exp" not in ops_of(out)
    assert_same_values(dz, feed(rng, z, y), rtol=1e-12, atol=1e-15)


def test_sigmoid_gradient_without_a_log_is_left():
    x = gc.placeholder("float64", (3,), name="x")
    (dx,) = gc.gradients(gc.reduce_sum(gc.square(gc.sigmoid(x))), [x])
    _, fired = run(dx)
    assert fired["log_sigmoid_grad"] == 0 and fired["log_one_minus_sigmoid_grad"] == 0


def test_rules_can_be_switched_off_by_name():
    z = gc.placeholder("float64", (2, 3), name="z")
    out, fired = run(gc.log(gc.nn.softmax(z)), exclude=["log_softmax"])
    assert fired["log_softmax"] == 0 and ops_of(out) == ["log", "placeholder", "softmax"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_verify_mode_accepts_every_stabilization_and_its_gradients(dtype):
    z = gc.placeholder(dtype, (None, 4), name="z")
    y = gc.placeholder(dtype, (None, 4), name="y")
    x = gc.placeholder(dtype, (None, 4), name="x")
    loss = (-gc.reduce_mean(gc.reduce_sum(y * gc.log(hand_softmax(z)), axis=1))
            + gc.reduce_sum(gc.log(gc.sigmoid(x)) + gc.log(1 - gc.sigmoid(x)) + gc.log(1 + x * x))
            + gc.reduce_sum(gc.exp(x) - 1) + gc.reduce_sum(z - gc.reduce_logsumexp(z, axis=1, keepdims=True)))
    grads = gc.gradients(loss, [z, x])
    result = optimize([loss, *grads], verify=True)
    fired = result.fired()
    for name in ("softmax_by_hand", "log_softmax", "softmax_cross_entropy", "log_sigmoid", "log1p", "expm1",
                 "log_one_minus_sigmoid", "log_softmax_by_hand", "softmax_grad_by_hand", "log_softmax_grad",
                 "log_sigmoid_grad", "log_one_minus_sigmoid_grad"):
        assert fired[name] >= 1, name


def test_hand_written_loss_in_float32_is_finite_and_right_at_1000():
    z = gc.placeholder("float32", (None, 3), name="z")
    y = gc.placeholder("float32", (None, 3), name="y")
    loss = -gc.reduce_mean(gc.reduce_sum(y * gc.log(hand_softmax(z)), axis=1))
    (dz,) = gc.gradients(loss, [z])
    after = evaluate([loss, dz], {z: LOGITS.astype(np.float32), y: ONEHOT.astype(np.float32)})
    expected = -np.mean(np.sum(ONEHOT * exact_log_softmax(LOGITS), axis=1))
    np.testing.assert_allclose(after[0], expected, rtol=1e-6)
    np.testing.assert_allclose(after[1], (exact_softmax(LOGITS) - ONEHOT) / 3, rtol=1e-6, atol=1e-7)
    assert after[1].dtype == np.float32
