"""Optimizers against an independent numpy implementation of torch.optim's formulas (both backends), against
torch.optim itself, and the graph they build: slots, the step counter, update ops, one executable per step."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ArgumentError, DTypeError, GradientError

BACKENDS = ["numpy", "llvm"]
X = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 1.1], [1.0, 1.0, -1.0]], np.float32)
Y = np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
W0 = np.array([[0.3], [-0.2], [0.1]], np.float32)
B0 = np.array([0.05], np.float32)


def regression(dtype="float32"):
    """A linear regression in a new default graph: (graph, x, y, W, b, loss)."""
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(dtype, (None, 3), name="x")
        y = gc.placeholder(dtype, (None, 1), name="y")
        W = gc.Variable(W0.astype(dtype), name="W")
        b = gc.Variable(B0.astype(dtype), name="b")
        loss = gc.reduce_mean(gc.square(x @ W + b - y))
    return graph, x, y, W, b, loss


def numpy_gradients(params):
    W, b = params
    residual = X @ W + b - Y
    return [2 * X.T @ residual / len(X), 2 * residual.sum(0) / len(X)]


def numpy_steps(kind, steps, lr=0.1, clip_norm=None, weight_decay=0.0, **hp):
    """The parameters after ``steps`` steps of torch.optim's ``kind`` (lr: a float or a function of t)."""
    params = [W0.astype(np.float64), B0.astype(np.float64)]
    state = [{} for _ in params]
    for t in range(1, steps + 1):
        rate = lr(t) if callable(lr) else lr
        grads = numpy_gradients(params)
        if clip_norm is not None:
            norm = np.sqrt(sum((g ** 2).sum() for g in grads))
            grads = [g * clip_norm / max(norm, clip_norm) for g in grads]
        params = [_numpy_update(kind, p, g, s, t, rate, weight_decay, hp) for p, g, s in zip(params, grads, state)]
    return params


def _numpy_update(kind, p, g, s, t, lr, wd, hp):
    if kind != "adam":
        g = g + wd * p
    if kind == "sgd":
        mu = hp.get("momentum", 0.0)
        if not mu:
            return p - lr * g
        s["buf"] = mu * s.get("buf", 0.0) + g
        return p - lr * (g + mu * s["buf"] if hp.get("nesterov") else s["buf"])
    if kind == "adam":
        b1, b2, eps = 0.9, 0.999, 1e-8
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        denom = np.sqrt(s["v"]) / np.sqrt(1 - b2 ** t) + eps
        return p * (1 - lr * wd) - lr / (1 - b1 ** t) * s["m"] / denom
    if kind == "rmsprop":
        rho, mu = 0.99, hp.get("momentum", 0.0)
        s["sq"] = rho * s.get("sq", 0.0) + (1 - rho) * g * g
        direction = g / (np.sqrt(s["sq"]) + 1e-8)
        if mu:
            s["buf"] = mu * s.get("buf", 0.0) + direction
            direction = s["buf"]
        return p - lr * direction
    assert kind == "adagrad"
    s["sum"] = s.get("sum", hp.get("initial_accumulator_value", 0.0)) + g * g
    return p - lr * g / (np.sqrt(s["sum"]) + 1e-10)


def schedule(t):
    return 0.1 * 0.5 ** ((t - 1) / 2)


CASES = {  # name: (optimizer factory, numpy_steps arguments)
    "sgd": (lambda: gc.train.SGD(0.1), dict(kind="sgd")),
    "sgd-wd": (lambda: gc.train.SGD(0.1, weight_decay=0.05), dict(kind="sgd", weight_decay=0.05)),
    "momentum": (lambda: gc.train.Momentum(0.1), dict(kind="sgd", momentum=0.9)),
    "nesterov": (lambda: gc.train.SGD(0.1, momentum=0.8, nesterov=True), dict(kind="sgd", momentum=0.8, nesterov=True)),
    "sgd-clip": (lambda: gc.train.SGD(0.1, clip_norm=0.5), dict(kind="sgd", clip_norm=0.5)),
    "adam": (lambda: gc.train.Adam(0.1), dict(kind="adam")),
    "adamw-clip": (lambda: gc.train.Adam(0.1, weight_decay=0.1, clip_norm=1.0),
                   dict(kind="adam", weight_decay=0.1, clip_norm=1.0)),
    "rmsprop": (lambda: gc.train.RMSProp(0.01), dict(kind="rmsprop", lr=0.01)),
    "rmsprop-momentum-wd": (lambda: gc.train.RMSProp(0.01, momentum=0.5, weight_decay=0.1),
                            dict(kind="rmsprop", lr=0.01, momentum=0.5, weight_decay=0.1)),
    "adagrad": (lambda: gc.train.Adagrad(0.1, initial_accumulator_value=0.1),
                dict(kind="adagrad", initial_accumulator_value=0.1)),
    "schedule": (lambda: gc.train.Adam(lambda step: gc.train.exponential_decay(0.1, step, 2, 0.5)),
                 dict(kind="adam", lr=schedule)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_steps_match_numpy_reference(case, backend):
    factory, reference = CASES[case]
    graph, x, y, W, b, loss = regression()
    with graph.as_default():
        optimizer = factory()
        train = optimizer.minimize(loss)
    with gc.Session(graph, backend=backend) as sess:
        for steps in (1, 3):
            while sess.run(optimizer.iterations) < steps:
                sess.run(train, {x: X, y: Y})
            expected = numpy_steps(steps=steps, **reference)
            for got, want in zip(sess.run([W, b]), expected):
                np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_learning_rate_fed_per_step_float64(backend):
    graph, x, y, W, b, loss = regression("float64")
    with graph.as_default():
        rate = gc.placeholder("float32", (), name="rate")  # a float32 rate for float64 variables is cast
        train = gc.train.Momentum(rate, momentum=0.5).minimize(loss)
    rates = [0.1, 0.05, 0.2]
    with gc.Session(graph, backend=backend) as sess:
        for value in rates:
            sess.run(train, {x: X, y: Y, rate: value})
        got = sess.run([W, b])
    expected = numpy_steps("sgd", 3, lr=lambda t: np.float32(rates[t - 1]), momentum=0.5)
    for g, want in zip(got, expected):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, want, rtol=1e-6)


def test_schedules_follow_their_formulas():
    with gc.Graph().as_default():
        step = gc.placeholder("int64", (), name="step")
        rates = [gc.train.exponential_decay(0.1, step, 4, 0.5, staircase=True),
                 gc.train.cosine_decay(0.1, step, 10, alpha=0.1),
                 gc.train.piecewise_constant(step, [3, 6], [1.0, 0.5, 0.1])]
        with gc.Session(backend="numpy") as sess:
            for t in (0, 3, 5, 6, 12):
                got = sess.run(rates, {step: t})
                cosine = 0.5 * (1 + np.cos(np.pi * min(t, 10) / 10))
                expected = [0.1 * 0.5 ** (t // 4), 0.1 * (0.9 * cosine + 0.1), 1.0 if t < 3 else 0.5 if t < 6 else 0.1]
                np.testing.assert_allclose(got, expected, rtol=1e-6)
        with pytest.raises(ArgumentError, match="one value more"):
            gc.train.piecewise_constant(step, [3], [1.0])


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Adam", "AdamW", "RMSProp", "Adagrad"])
def test_three_steps_agree_with_torch(name):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    graph, x, y, W, b, loss = regression()
    ours, theirs = {
        "SGD": (lambda: gc.train.SGD(0.1, weight_decay=0.01), lambda p: torch.optim.SGD(p, 0.1, weight_decay=0.01)),
        "Momentum": (lambda: gc.train.Momentum(0.05, nesterov=True),
                     lambda p: torch.optim.SGD(p, 0.05, momentum=0.9, nesterov=True)),
        "Adam": (lambda: gc.train.Adam(0.01), lambda p: torch.optim.Adam(p, 0.01)),
        "AdamW": (lambda: gc.train.Adam(0.01, weight_decay=0.1),
                  lambda p: torch.optim.AdamW(p, 0.01, weight_decay=0.1)),
        "RMSProp": (lambda: gc.train.RMSProp(0.01, momentum=0.3), lambda p: torch.optim.RMSprop(p, 0.01, momentum=0.3)),
        "Adagrad": (lambda: gc.train.Adagrad(0.1), lambda p: torch.optim.Adagrad(p, 0.1)),
    }[name]
    with graph.as_default():
        train = ours().minimize(loss)
    params = [torch.tensor(W0, requires_grad=True), torch.tensor(B0, requires_grad=True)]
    optimizer = theirs(params)
    with gc.Session(graph, backend="llvm") as sess:
        for _ in range(3):
            sess.run(train, {x: X, y: Y})
            optimizer.zero_grad()
            ((torch.tensor(X) @ params[0] + params[1] - torch.tensor(Y)) ** 2).mean().backward()
            optimizer.step()
        for got, want in zip(sess.run([W, b]), params):
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_minimize_converges_and_compiles_one_step_for_every_batch_size():
    rng = np.random.default_rng(0)
    x_data = rng.normal(size=(64, 3)).astype(np.float32)
    y_data = x_data @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3
    graph, x, y, W, b, loss = regression()
    with graph.as_default():
        train = gc.train.SGD(0.1).minimize(loss)
    with gc.Session(graph, backend="llvm") as sess:
        for epoch in range(30):  # batches of 24 rows, then a short one of 16
            for xb, yb in gc.data.batches((x_data, y_data), 24, seed=epoch):
                sess.run(train, {x: xb, y: yb})
        steps = [key for key in sess._executables if train in key[0]]
        assert len(steps) == 1
        assert "define" in sess.compiled(train, {x: x_data, y: y_data}).llvm_ir
        assert sess.run(loss, {x: x_data, y: y_data}) < 1e-6
        np.testing.assert_allclose(sess.run(W).ravel(), [1.0, -2.0, 0.5], atol=1e-3)


def test_slots_are_named_after_their_variable_and_made_once():
    with gc.Graph().as_default() as graph:
        with gc.name_scope("dense"):
            W = gc.Variable(np.ones((2, 2), np.float32), name="W")
        loss = gc.reduce_sum(gc.square(W))
        optimizer = gc.train.Adam(0.1)
        first, second = optimizer.minimize(loss), optimizer.minimize(2 * loss)
        names = [v.name for v in gc.global_variables(graph)]
        assert names == ["dense/W", "Adam/iterations", "dense/W/m", "dense/W/v"]
        slot = optimizer.get_slot(W, "m")
        assert not slot.trainable and slot.dtype == "float32" and slot.shape == (2, 2)
        assert optimizer.iterations.dtype == "int64" and not optimizer.iterations.trainable
        with gc.Session() as sess:
            sess.run(first)
            sess.run(second)
            assert sess.run(optimizer.iterations) == 2
        with pytest.raises(gc.errors.GraphError, match="no slot 'x'"):
            optimizer.get_slot(W, "x")


def test_minimize_adds_the_update_ops_of_its_batch_only():
    with gc.Graph().as_default() as graph:
        x = gc.placeholder("float32", (None, 2), name="x")
        other = gc.placeholder("float32", (None, 2), name="other")
        W = gc.Variable(np.ones((2, 1), np.float32), name="W")
        mean_x = gc.Variable(np.zeros(2, np.float32), name="mean_x", trainable=False)
        mean_other = gc.Variable(np.zeros(2, np.float32), name="mean_other", trainable=False)
        batch_mean = gc.reduce_mean(x, axis=0)  # shared by the loss and the moving average
        loss = gc.reduce_sum(gc.square((x - batch_mean) @ W))
        graph.update_ops += [gc.assign(mean_x, batch_mean), gc.assign(mean_other, gc.reduce_mean(other, axis=0))]
        train = gc.train.SGD(0.01).minimize(loss)
        with gc.Session(backend="numpy") as sess:
            sess.run(train, {x: [[1.0, 2.0], [3.0, 4.0]]})  # 'other' is not needed: its update is not included
            assert sess.run(mean_x).tolist() == [2.0, 3.0] and sess.run(mean_other).tolist() == [0.0, 0.0]


def test_mistakes_are_reported():
    graph, x, y, W, b, loss = regression()
    with graph.as_default():
        unused = gc.Variable(np.zeros(2, np.float32), name="unused")
        count = gc.Variable(np.int64(0), name="count")
        with pytest.raises(GradientError, match="'unused'"):
            gc.train.SGD(0.1).minimize(loss, var_list=[unused])
        with pytest.raises(DTypeError, match="int64 variable 'count'"):
            gc.train.SGD(0.1).minimize(loss, var_list=[W, count])
        with pytest.raises(DTypeError, match="scalar float"):
            gc.train.SGD(gc.placeholder("float32", (2,))).minimize(loss)
        with pytest.raises(ArgumentError, match="nesterov"):
            gc.train.SGD(0.1, nesterov=True)
        with pytest.raises(ArgumentError, match="beta2"):
            gc.train.Adam(beta2=1.0)
        with pytest.raises(ArgumentError, match="clip_norm"):
            gc.train.SGD(0.1, clip_norm=0.0)
        train = gc.train.SGD(0.1).minimize(loss)  # 'unused' gets no gradient: skipped, as in TF1
    with gc.Session(graph, backend="numpy") as sess:
        sess.run(train, {x: X, y: Y})
        assert sess.run(unused).tolist() == [0.0, 0.0]
