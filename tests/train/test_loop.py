"""gc.data.batches and the training loop: fit, History, early stopping, evaluate, one executable per step."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ArgumentError, ShapeError


def test_batches_cover_every_row_once_per_epoch():
    x, y = np.arange(10).reshape(10, 1), np.arange(10) * 10
    epoch = list(gc.data.batches((x, y), 4, seed=3))
    assert [len(xb) for xb, _ in epoch] == [4, 4, 2] == [len(yb) for _, yb in epoch]
    assert gc.data.num_batches(10, 4) == 3 and gc.data.num_batches(8, 4) == 2
    rows = np.concatenate([xb[:, 0] for xb, _ in epoch])
    assert sorted(rows) == list(range(10)) and rows.tolist() != list(range(10))
    assert all((yb == xb[:, 0] * 10).all() for xb, yb in epoch)  # rows stay paired
    again = np.concatenate([xb[:, 0] for xb, _ in gc.data.batches([x, y], 4, seed=3)])
    assert again.tolist() == rows.tolist()  # the same seed, the same order
    rng = np.random.default_rng(3)
    first, second = ([b.tolist() for b in gc.data.batches(y, 5, seed=rng)] for _ in range(2))
    assert first != second  # a generator: a new order each epoch
    ordered = list(gc.data.batches(y, 3, shuffle=False))
    assert isinstance(ordered[0], np.ndarray) and [b.tolist() for b in ordered][-1] == [90]


def test_batches_reject_mismatched_arrays():
    with pytest.raises(ShapeError, match=r"same first dimension.*\(3,\), \(4, 2\)"):
        gc.data.batches((np.zeros(3), np.zeros((4, 2))), 2)
    with pytest.raises(ArgumentError, match="batch_size"):
        gc.data.batches(np.zeros(3), 0)


def logistic_regression():
    """Two separable blobs and a logistic regression on them: (graph, parts, train and validation data)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    points = (rng.normal(size=(200, 2)) + 2.0 * (2 * labels[:, None] - 1)).astype(np.float32)
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, 2), name="x")
        y = gc.placeholder("int64", (None,), name="y")
        training = gc.placeholder("bool", (), name="training")
        W = gc.Variable(np.array([[1.0, -1.0], [1.0, -1.0]], np.float32), name="W")  # starts wrong
        logits = x @ W
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(logits, y))
        # a term that is zero in training only, so the test sees which value 'training' was fed
        loss = loss + gc.where(training, 0.0, 100.0)
        accuracy = gc.reduce_mean(gc.cast(gc.equal(gc.argmax(logits, axis=1), y), "float32"))
        train = gc.train.SGD(0.5).minimize(loss)
    parts = dict(x=x, y=y, training=training, W=W, loss=loss, accuracy=accuracy, train=train)
    return graph, parts, (points[:150], labels[:150]), (points[150:], labels[150:])


def test_fit_improves_accuracy_and_records_history(capsys):
    graph, p, data, validation = logistic_regression()
    with gc.Session(graph, backend="llvm") as sess:
        before = gc.train.evaluate(sess, {"acc": p["accuracy"]}, (p["x"], p["y"]), validation)
        history = gc.train.fit(sess, p["train"], (p["x"], p["y"]), data, epochs=3, batch_size=32, loss=p["loss"],
                               metrics={"acc": p["accuracy"]}, validation_data=validation, training=p["training"])
        steps = [key for key in sess._executables if p["train"] in key[0]]
        assert len(steps) == 1  # batches of 32 and the short one of 22: one compiled step
    assert before["acc"] < 0.2
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    last = history.epochs[-1]
    assert set(last) == {"epoch", "loss", "acc", "examples_per_s", "val_loss", "val_acc"}
    assert last["val_acc"] > 0.95 and last["loss"] < 1.0 < last["val_loss"] - 99  # training fed True, val False
    assert history["val_acc"] == [e["val_acc"] for e in history.epochs]
    assert history.best is min(history.epochs, key=lambda e: e["val_loss"]) and not history.stopped_early
    out = capsys.readouterr()
    assert "examples/s" in out.err and "loss=" in out.err and "epoch 3: loss" in out.out


def test_early_stopping_stops_and_restores_the_best_weights(capsys):
    graph, p, data, validation = logistic_regression()
    with graph.as_default():
        steps = gc.Variable(np.float32(0), name="steps", trainable=False)
        train = gc.group(p["train"], gc.assign_add(steps, 1.0))
        score = -gc.square(steps / 5.0 - 2.0)  # 5 steps per epoch: peaks after the second epoch
    options = dict(loss=p["loss"], metrics={"score": score}, validation_data=validation, training=p["training"],
                   verbose=False)
    with gc.Session(graph, backend="numpy") as sess:
        gc.train.fit(sess, train, (p["x"], p["y"]), data, epochs=2, **options)
        best_weights = sess.run(p["W"])
    with gc.Session(graph, backend="numpy") as sess:
        monitor = gc.train.EarlyStopping(monitor="val_score", mode="max", patience=2)
        history = gc.train.fit(sess, train, (p["x"], p["y"]), data, epochs=10, early_stopping=monitor, **options)
        assert [e["val_score"] for e in history.epochs] == [-1.0, 0.0, -1.0, -4.0]
        assert history.stopped_early and history.best["epoch"] == 2
        assert sess.run(steps) == 10.0  # every variable is back at its value after epoch 2
        np.testing.assert_array_equal(sess.run(p["W"]), best_weights)
    assert capsys.readouterr() == ("", "")  # verbose=False: silent


def test_evaluate_weights_batches_by_their_size():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None,), name="x")
        training = gc.placeholder("bool", (), name="training")
        mean = gc.reduce_mean(x) + gc.where(training, 1000.0, 0.0)
        data = np.array([1.0, 1.0, 1.0, 1.0, 9.0], np.float32)  # batches of 4 and 1: means 1 and 9
        with gc.Session(backend="numpy") as sess:
            result = gc.train.evaluate(sess, {"mean": mean}, x, data, batch_size=4, training=training)
    assert result == {"mean": pytest.approx(13 / 5)}


def test_fit_rejects_mismatched_inputs_and_unknown_monitors():
    graph, p, data, validation = logistic_regression()
    with gc.Session(graph, backend="numpy") as sess:
        with pytest.raises(ArgumentError, match="2 input placeholder"):
            gc.train.fit(sess, p["train"], (p["x"], p["y"]), data[0], verbose=False)
        with pytest.raises(ArgumentError, match="'val_acc'"):
            gc.train.fit(sess, p["train"], (p["x"], p["y"]), data, loss=p["loss"], training=p["training"],
                         early_stopping=gc.train.EarlyStopping(monitor="val_acc"), verbose=False)
