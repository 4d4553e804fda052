"""Profiling a run: per node at optimize=0, per kernel of the partition when the Session optimizes."""

import numpy as np
import pytest

import graphc as gc
from graphc.backends.numpy.interpreter import Interpreter
from graphc.runtime.plan import make_plan


def classifier():
    """A small training step: fetches and a feed."""
    x = gc.placeholder("float32", (None, 4), name="x")
    labels = gc.placeholder("float32", (None, 3), name="labels")
    W = gc.Variable(np.full((4, 3), 0.1, np.float32), name="W")
    loss = gc.reduce_mean(gc.nn.softmax_cross_entropy(gc.tanh(x @ W), labels))
    (dW,) = gc.gradients(loss, [W])
    feed = {x: np.ones((5, 4), np.float32), labels: np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]}
    return [loss, gc.assign(W, W - 0.1 * dW)], feed


def test_per_node_at_optimize_0_and_the_fetches_unchanged():
    with gc.Graph().as_default() as g:
        fetches, feed = classifier()
        with gc.Session(backend="numpy", optimize=0) as sess:
            assert sess.last_profile is None
            loss, _ = sess.run(fetches, feed, profile=True)
            profile = sess.last_profile
            assert sess.run(fetches[0], feed) < loss  # a step was taken, as without profiling
    assert profile.by == "node" and profile.optimize == 0 and profile.backend == "numpy"
    schedule = make_plan(g, fetches, frozenset(t.node for t in feed)).schedule  # every node the run computes, in order
    assert [row.name for row in profile.rows] == [node.name for node in schedule]
    assert [row.kind for row in profile.rows] == [node.op.name for node in schedule]
    assert all(row.nodes == 1 and row.seconds >= 0 for row in profile.rows)
    assert 0 < profile.total <= profile.wall
    assert sum(profile.share(row) for row in profile.rows) == pytest.approx(1.0)


@pytest.mark.parametrize("level", [1, 2])
def test_per_kernel_when_the_session_optimizes(level):
    with gc.Graph().as_default():
        fetches, feed = classifier()
        partition = gc.optimize(fetches, level=level).partition
        with gc.Session(backend="numpy", optimize=level) as sess:
            sess.run(fetches, feed, profile=True)
            profile = sess.last_profile
    *kernels, sources = profile.rows
    expected = [(f"k{k.id}", k.kind, k.root.name, len(k.nodes)) for k in partition.launched()]
    assert [(r.name, r.kind, r.root, r.nodes) for r in kernels] == expected
    assert sources.kind == "sources" and sources.nodes == len([k for k in partition.kernels if k.kind == "source"])
    assert profile.by == "kernel" and profile.optimize == level
    assert len(kernels) < sum(r.nodes for r in kernels) if level == 2 else all(r.nodes == 1 for r in kernels)


def test_printed_table(capsys):
    with gc.Graph().as_default():
        fetches, feed = classifier()
        with gc.Session(backend="numpy", optimize=2) as sess:
            sess.run(fetches, feed, profile="print")
            printed = capsys.readouterr().out
            assert printed.strip() == str(sess.last_profile)
            sess.run(fetches, feed)  # an unprofiled run keeps the last table
            assert sess.last_profile is not None
    lines = printed.splitlines()
    assert lines[0].startswith("profile: ") and "kernels" in lines[0] and "optimize=2" in lines[0]
    assert lines[1].split() == ["kernel", "kind", "root", "nodes", "time", "share", "source"]
    slowest = sess.last_profile.slowest(1)[0]
    assert lines[2].split()[:2] == [slowest.name, slowest.kind]


def test_long_tables_are_cut_with_a_summary_line():
    with gc.Graph().as_default():
        x = gc.placeholder("float64", (2,), name="x")
        y = x
        for _ in range(30):
            y = gc.sin(y)
        with gc.Session(backend="numpy") as sess:
            sess.run(y, {x: [1.0, 2.0]}, profile=True)
    profile = sess.last_profile
    assert len(profile.rows) == 31
    short = str(profile).splitlines()
    assert len(short) == 2 + 20 + 1 and short[-1].startswith("  … 11 more nodes: ")
    assert len(profile.format(limit=None).splitlines()) == 2 + 31


def test_no_monitor_reaches_the_backend_when_nothing_observes(monkeypatch):
    seen = []
    original = Interpreter.run

    def spy(self, feeds, variables, run_count, monitor=None):
        seen.append(monitor)
        return original(self, feeds, variables, run_count, monitor)

    monkeypatch.setattr(Interpreter, "run", spy)
    monkeypatch.delenv("GRAPHC_CHECK_NUMERICS", raising=False)
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2,), name="x")
        with gc.Session(backend="numpy", optimize=2) as sess:
            sess.run(x * 2.0, {x: [1.0, 2.0]})
            sess.run(x * 2.0, {x: [1.0, 2.0]}, profile=True)
    assert seen[0] is None and seen[1] is not None


def test_bad_profile_argument():
    with gc.Graph().as_default():
        x = gc.constant(1.0)
        with gc.Session(backend="numpy") as sess, pytest.raises(ValueError, match="profile must be"):
            sess.run(x, profile="yes")


def test_bad_profile_argument_is_an_argument_error():
    with gc.Graph().as_default():
        x = gc.constant(1.0)
        with gc.Session(backend="numpy") as sess, pytest.raises(gc.errors.ArgumentError, match="profile must be"):
            sess.run(x, profile="yes")
