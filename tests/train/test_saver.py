"""Checkpoints: round trips, every kind of bad file rejected before any variable changes, atomic saves."""

import os
import zipfile

import numpy as np
import pytest

import graphc as gc
from graphc.errors import DTypeError, ShapeError
from graphc.train import CheckpointError


def model(w_shape=(3, 2), b_dtype="float32", extra=False):
    """(graph, x, train, variables) of a small regression trained with Adam (its slots are variables too)."""
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, 3), name="x")
        W = gc.Variable(np.arange(np.prod(w_shape), dtype=np.float32).reshape(w_shape) / 10, name="W")
        b = gc.Variable(np.zeros(w_shape[-1], b_dtype), name="b")
        if extra:
            gc.Variable(np.zeros(1, np.float32), name="extra")
        train = gc.train.Adam(0.1).minimize(gc.reduce_mean(gc.square(x @ W + gc.cast(b, "float32") - 1.0)))
    return graph, x, train, gc.global_variables(graph)


FEED = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], np.float32)


@pytest.fixture
def trained(tmp_path):
    """A checkpoint of the model after two steps: (path, saved values by name)."""
    graph, x, train, variables = model()
    with gc.Session(graph, backend="numpy") as sess:
        sess.run(train, {x: FEED})
        sess.run(train, {x: FEED})
        path = gc.train.Saver(variables).save(sess, tmp_path / "ckpt")
        return path, {v.name: value for v, value in zip(variables, sess.run(variables))}


def test_round_trip_and_training_continues_identically(trained):
    path, saved = trained
    assert path.endswith("ckpt.npz") and sorted(saved) == ["Adam/iterations", "W", "W/m", "W/v", "b", "b/m", "b/v"]
    with np.load(path, allow_pickle=False) as archive:
        assert archive["__graphc_checkpoint__"].dtype == np.uint8
    runs = []
    for _ in range(2):
        graph, x, train, variables = model()
        with graph.as_default(), gc.Session(graph, backend="llvm") as sess:
            gc.train.Saver().restore(sess, path)
            assert all(np.array_equal(sess.run(v), saved[v.name]) for v in variables)
            sess.run(train, {x: FEED})
            runs.append(sess.run(variables))
    graph, x, train, variables = model()
    with gc.Session(graph, backend="llvm") as sess:  # the same three steps without a checkpoint
        for _ in range(3):
            sess.run(train, {x: FEED})
        uninterrupted = sess.run(variables)
    for a, b, c in zip(*runs, uninterrupted):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-6)


def rejected(path, build=model, match=None, **options):
    """Restoring ``path`` into a model built by ``build(**options)`` raises CheckpointError and changes nothing."""
    graph, x, train, variables = build(**options)
    with gc.Session(graph, backend="numpy") as sess:
        sess.run(train, {x: FEED})
        before = sess.run(variables)
        with pytest.raises(CheckpointError, match=match) as info:
            gc.train.Saver(variables).restore(sess, path)
        for value, after in zip(before, sess.run(variables)):
            np.testing.assert_array_equal(value, after)
    return str(info.value)


def test_damaged_files_are_rejected(trained, tmp_path):
    path, _ = trained
    data = open(path, "rb").read()
    truncated, flipped, foreign, npy = (tmp_path / name for name in ("t.npz", "f.npz", "n.npz", "a.npz"))
    truncated.write_bytes(data[: len(data) // 2])
    end_of_w_m = data.index(b"PK\x03\x04", data.index(b"W/m.npy"))
    position = end_of_w_m - 2  # the last bytes of W/m's array data: only the CRC notices
    flipped.write_bytes(data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:])
    foreign.write_text("not a checkpoint")
    with open(npy, "wb") as file:
        np.save(file, np.zeros(3))
    assert "damaged" in rejected(truncated)
    assert "CRC" in rejected(flipped)
    assert "damaged" in rejected(foreign)
    assert "not an .npz" in rejected(npy)
    assert "no checkpoint at" in rejected(tmp_path / "missing.npz")


def test_pickles_and_bad_metadata_are_rejected(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, W=np.array([object()], dtype=object))
    assert "pickle" in rejected(pickled)
    plain = tmp_path / "plain.npz"
    np.savez(plain, W=np.zeros((3, 2), np.float32))
    assert "no '__graphc_checkpoint__' entry" in rejected(plain)
    bad_json = tmp_path / "json.npz"
    np.savez(bad_json, __graphc_checkpoint__=np.frombuffer(b"{not json", np.uint8))
    assert "metadata is damaged" in rejected(bad_json)


def test_mismatched_variables_are_rejected(trained):
    path, _ = trained
    assert "'W' has shape [3,3] but the saved value has [3,2]" in rejected(path, w_shape=(3, 3))
    assert "'b' is float64 but the saved value is float32" in rejected(path, b_dtype="float64")
    assert "no value for variable(s) ['extra']" in rejected(path, extra=True)

    def without_b():
        graph, x, train, variables = model()
        return graph, x, train, [v for v in variables if v.name != "b"]
    assert "match no variable of this Saver: ['b']" in rejected(path, build=without_b)


def test_save_is_atomic(trained, monkeypatch):
    path, saved = trained
    original = open(path, "rb").read()
    graph, x, train, variables = model()
    with gc.Session(graph, backend="numpy") as sess:
        sess.run(train, {x: FEED})
        for target in ("os.replace", "numpy.lib.format.write_array"):
            with monkeypatch.context() as patch:
                patch.setattr(target, _fail)
                with pytest.raises(OSError, match="disk full"):
                    gc.train.Saver(variables).save(sess, path)
            assert open(path, "rb").read() == original
            assert os.listdir(os.path.dirname(path)) == ["ckpt.npz"]
        gc.train.Saver(variables).save(sess, path)  # a good save replaces it
        with zipfile.ZipFile(path) as archive:
            assert "W/m.npy" in archive.namelist()
        assert open(path, "rb").read() != original


def _fail(*args, **kwargs):
    raise OSError("disk full")


def test_load_variables_checks_everything_before_setting_anything():
    graph, x, train, variables = model()
    W, b = variables[:2]
    with gc.Session(graph, backend="numpy") as sess:
        with pytest.raises(ShapeError, match="'b' has shape \\[2\\], the value \\[3\\]"):
            sess.load_variables({W: np.ones((3, 2), np.float32), b: np.ones(3, np.float32)})
        with pytest.raises(DTypeError, match="'W' is float32, the value is float64"):
            sess.load_variables({W: np.ones((3, 2))})
        with pytest.raises(gc.errors.GraphError, match="not a variable"):
            sess.load_variables({x: np.ones((1, 3), np.float32)})
        assert sess.run(W).sum() == pytest.approx(1.5)
        value = np.full((3, 2), 7.0, np.float32)
        sess.load_variables({W: value, b: [1.0, 2.0]})
        value[:] = 0  # copied, not aliased
        assert sess.run(W).tolist() == [[7.0, 7.0]] * 3 and sess.run(b).tolist() == [1.0, 2.0]
