"""The llvm backend end to end through Session.run: training against the numpy reference, one executable for
every batch size, update semantics, run-time data errors, feed validation, strided feeds, profile and
check_numerics, sess.compiled, GRAPHC_LOG=compile and ops without a lowering."""

import os
import re
from types import SimpleNamespace

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ArgumentError, CompileError, DTypeError, FeedError, NumericsError, ShapeError
from graphc.ops.registry import OpDef, apply
from tests.helpers import line_of

# this file as graphc's messages show it: relative to the working directory unless that climbs out of it
HERE = os.path.relpath(__file__) if not os.path.relpath(__file__).startswith("..") else __file__
TOLERANCE = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-12, "atol": 1e-14}}


@pytest.fixture(autouse=True)
def _environment(tmp_path, monkeypatch):
    """Compiled code goes to a cache of this test's own (never the user's home); no stray GRAPHC_* settings."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("GRAPHC_LOG", "GRAPHC_CHECK_NUMERICS", "GRAPHC_VERIFY", "GRAPHC_OPT_EXCLUDE"):
        monkeypatch.delenv(name, raising=False)


def mlp(dtype="float32", seed=0):
    """A 6-8-3 ReLU classifier with sparse softmax cross-entropy and one SGD step, in a graph of its own."""
    rng = np.random.default_rng(seed)
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(dtype, (None, 6), name="x")
        labels = gc.placeholder("int32", (None,), name="labels")
        w1 = gc.Variable(rng.normal(0.0, 0.6, (6, 8)).astype(dtype), name="w1")
        b1 = gc.Variable(rng.normal(0.0, 0.1, 8).astype(dtype), name="b1")
        w2 = gc.Variable(rng.normal(0.0, 0.6, (8, 3)).astype(dtype), name="w2")
        b2 = gc.Variable(np.zeros(3, dtype), name="b2")
        logits = gc.add(gc.matmul(gc.nn.relu(x @ w1 + b1), w2), b2, name="logits")
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(logits, labels), name="loss")
        params = [w1, b1, w2, b2]
        grads = gc.gradients(loss, params)
        train = gc.group(*[gc.assign(p, p - 0.2 * g) for p, g in zip(params, grads)], name="train")
    return SimpleNamespace(graph=graph, x=x, labels=labels, logits=logits, loss=loss, params=params, train=train,
                           dtype=dtype)


def batch(net, rng, rows):
    return {net.x: rng.normal(size=(rows, 6)).astype(net.dtype), net.labels: rng.integers(0, 3, rows)}


def compile_lines(text, names):
    """The GRAPHC_LOG=compile lines of llvm compilations (numpy's have no disk cache) of the fetches ``names``."""
    start = f"graphc: compiled [{names}]"
    return [line for line in text.splitlines() if line.startswith(start) and "disk cache" in line]


# -- 1. training ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_training_matches_numpy(dtype, rng):
    data = [(rng.normal(size=(rows, 6)).astype(dtype), rng.integers(0, 3, rows)) for rows in rng.integers(1, 40, 20)]
    results = {}
    for backend in ("numpy", "llvm"):
        net = mlp(dtype)
        with gc.Session(net.graph, backend=backend) as sess:
            losses = [sess.run([net.loss, net.train], {net.x: x, net.labels: y})[0] for x, y in data]
            results[backend] = losses, sess.run(net.params)
    (losses, weights), (expected_losses, expected_weights) = results["llvm"], results["numpy"]
    assert all(np.asarray(loss).dtype == np.dtype(dtype) for loss in losses)
    np.testing.assert_allclose(losses, expected_losses, **TOLERANCE[dtype])
    assert not np.allclose(losses[0], losses[-1])  # it trained: the test would see a step that did nothing
    for value, expected in zip(weights, expected_weights):
        assert value.dtype == expected.dtype and value.shape == expected.shape
        np.testing.assert_allclose(value, expected, **TOLERANCE[dtype])


# -- 2. one executable for every batch size ---------------------------------------------------------------------
def test_one_executable_serves_every_batch_size(rng, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHC_LOG", "compile")
    net = mlp()
    fetches = [net.loss, net.logits, net.train]
    with gc.Session(net.graph, backend="llvm") as sess, gc.Session(net.graph, backend="numpy") as reference:
        for rows in (1, 7, 128, 0, 7):
            feed = batch(net, rng, rows)
            loss, logits, _ = sess.run(fetches, feed)
            expected_loss, expected_logits, _ = reference.run(fetches, feed)
            assert logits.shape == (rows, 3)
            np.testing.assert_allclose(logits, expected_logits, **TOLERANCE["float32"])
            np.testing.assert_allclose(loss, expected_loss, **TOLERANCE["float32"])  # NaN (mean of nothing) at 0
            for value, expected in zip(sess.run(net.params), reference.run(net.params)):
                np.testing.assert_allclose(value, expected, **TOLERANCE["float32"])
        train_signatures = [key for key in sess._executables if net.train in key[0]]
    assert len(train_signatures) == 1
    assert len(compile_lines(capsys.readouterr().err, "loss, logits, train")) == 1


# -- 3. update semantics ----------------------------------------------------------------------------------------
def test_fetched_variable_is_the_value_before_the_run():
    with gc.Graph().as_default():
        v = gc.Variable(np.array([1.0, 2.0], np.float32), name="v")
        bump = gc.assign_add(v, [1.0, 1.0])
        doubled = v * 2.0
        with gc.Session(backend="llvm") as sess:
            before, after = sess.run([v, bump])
            assert before.tolist() == [1.0, 2.0] and after.tolist() == [2.0, 3.0]
            assert sess.run(v).tolist() == [2.0, 3.0]  # committed for the next run
            after, before, twice = sess.run([bump, v, doubled])  # the order of fetches does not matter
            assert after.tolist() == [3.0, 4.0] and before.tolist() == [2.0, 3.0] and twice.tolist() == [4.0, 6.0]
            before[:] = 99  # fetched arrays are copies, not the session's buffer
            assert sess.run(v).tolist() == [3.0, 4.0]


def test_updates_read_the_values_from_before_the_run():
    """In-place updates must not be seen by other reads of the same run (a swap; a transpose and a product
    written onto their own input)."""
    with gc.Graph().as_default():
        a = gc.Variable(np.array([1.0, 2.0]), name="a")
        b = gc.Variable(np.array([10.0, 20.0]), name="b")
        square = np.arange(9.0).reshape(3, 3) / 10
        t = gc.Variable(square, name="t")
        m = gc.Variable(square, name="m")
        step = gc.group(gc.assign(a, b), gc.assign(b, a), gc.assign(t, gc.transpose(t)), gc.assign(m, m @ m))
        with gc.Session(backend="llvm") as sess:
            sess.run(step)
            values = sess.run([a, b, t, m])
    assert values[0].tolist() == [10.0, 20.0] and values[1].tolist() == [1.0, 2.0]
    np.testing.assert_array_equal(values[2], square.T)
    np.testing.assert_allclose(values[3], square @ square, rtol=1e-12)


# -- 4. run-time data errors ------------------------------------------------------------------------------------
def test_gather_index_out_of_range_raises_shape_error_and_session_still_works():
    with gc.Graph().as_default():
        table = gc.placeholder("float32", (None, 3), name="table")
        index = gc.placeholder("int32", (None,), name="index")
        picked = gc.gather(table, index) * 2.0  # the gather
        values = np.arange(12, dtype=np.float32).reshape(4, 3)
        with gc.Session(backend="llvm") as sess:
            for bad in ([0, 4], [7], [1, -5]):
                with pytest.raises(ShapeError) as info:
                    sess.run(picked, {table: values, index: bad})
                message = str(info.value)
                assert "gather" in message and f"{HERE}:{line_of('# the gather')}" in message, message
            np.testing.assert_array_equal(sess.run(picked, {table: values, index: [3, 0, -1]}),
                                          values[[3, 0, -1]] * 2)


def test_label_out_of_range_raises_shape_error_and_session_still_works(rng):
    net = mlp()
    feed = batch(net, rng, 5)
    with gc.Session(net.graph, backend="llvm") as sess:
        initial = sess.run(net.params)
        for bad in (3, -1):
            labels = feed[net.labels].copy()
            labels[2] = bad
            with pytest.raises(ShapeError) as info:
                sess.run([net.loss, net.train], {net.x: feed[net.x], net.labels: labels})
            message = str(info.value)
            assert "sparse_softmax_cross_entropy" in message, message
            assert f"{HERE}:{line_of('gc.nn.sparse_softmax_cross_entropy(logits, labels)')}" in message, message
        for value, expected in zip(sess.run(net.params), initial):  # the failed runs changed nothing
            np.testing.assert_array_equal(value, expected)
        loss, _ = sess.run([net.loss, net.train], feed)
    with gc.Session(net.graph, backend="numpy") as reference:
        np.testing.assert_allclose(loss, reference.run([net.loss, net.train], feed)[0], **TOLERANCE["float32"])


def test_a_failed_run_updates_no_variable():
    """docs/guide.md: "a failing run changes nothing: if any node fails, no variable is updated"."""
    with gc.Graph().as_default():
        table = gc.placeholder("float32", (None,), name="table")
        index = gc.placeholder("int32", (None,), name="index")
        count = gc.Variable(0.0, name="count")
        bump = gc.assign_add(count, 1.0)
        picked = gc.gather(table, index) * 2.0
        with gc.Session(backend="llvm") as sess:
            for fetches in ([bump, picked], [picked, bump]):
                with pytest.raises(ShapeError, match="gather"):
                    sess.run(fetches, {table: [1.0, 2.0], index: [0, 9]})
            # updates before a kernel that can fail go through end-of-program commits: nothing was written
            assert float(sess.run(count)) == 0.0


# -- 5. feeds are validated before any native call --------------------------------------------------------------
def test_bad_feeds_are_reported_before_running():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None,), name="x")
        y = gc.placeholder("float32", (None,), name="y")
        total = x + y  # the add
        m = gc.placeholder("float32", (None, 4), name="m")
        n = gc.placeholder("float32", (None, 2), name="n")
        product = gc.exp(gc.matmul(gc.transpose(m), n))  # the matmul
        with gc.Session(backend="llvm") as sess:
            with pytest.raises(FeedError, match="'x'.*fed shape \\[5,2\\]"):
                sess.run(total, {x: np.ones((5, 2)), y: np.ones(5)})
            with pytest.raises(DTypeError, match="'y'.*complex64"):
                sess.run(total, {x: np.ones(5), y: np.ones(5, np.complex64)})
            with pytest.raises(DTypeError, match="'y'"):
                sess.run(total + 0.0, {x: np.ones(5), y: "text"})
            with pytest.raises(FeedError, match="'y' .*must be fed"):
                sess.run(total, {x: np.ones(5)})
            with pytest.raises(ShapeError) as info:
                sess.run(total, {x: np.ones(5), y: np.ones(7)})
            assert f"add 'add' (created at {HERE}:{line_of('# the add')})" in str(info.value), str(info.value)
            with pytest.raises(ShapeError) as info:  # rows of m and n meet in the matmul
                sess.run(product, {m: np.ones((3, 4)), n: np.ones((5, 2))})
            assert f"{HERE}:{line_of('# the matmul')}" in str(info.value), str(info.value)
            assert sess.run(total, {x: np.arange(5.0), y: np.ones(5)}).tolist() == [1, 2, 3, 4, 5]
            assert sess.run(total, {x: np.arange(3.0), y: [10.0]}).tolist() == [10, 11, 12]  # 1 broadcasts
            np.testing.assert_allclose(sess.run(product, {m: np.ones((3, 4)), n: np.ones((3, 2))}),
                                       np.full((4, 2), np.exp(3.0)), rtol=1e-6)


# -- 6. strided feeds -------------------------------------------------------------------------------------------
def test_non_contiguous_feeds_give_the_contiguous_results(rng):
    data = rng.normal(size=(64, 12)).astype(np.float32)
    labels = rng.integers(0, 3, 64).astype(np.int32)
    original = data.copy()
    views = [
        (data[:20, :6].T.copy().T, labels[:20]),  # Fortran order
        (data.T.copy()[:6, :20].T, labels[:20]),  # a transposed view
        (data[::3, 1:12:2], labels[::3]),  # row and column strides
        (data[::-2, :6], labels[::-2]),  # negative strides
        (data[5:6, ::2], labels[5:6]),  # one strided row of a larger array
        (np.broadcast_to(data[0, :6], (9, 6)), np.broadcast_to(labels[:1], (9,))),  # zero strides
    ]
    views = [(a, b) for a, b in views if not (a.flags.c_contiguous and b.flags.c_contiguous)]
    assert len(views) == 6
    strided, contiguous = mlp(), mlp()
    with gc.Session(strided.graph, backend="llvm") as left, gc.Session(contiguous.graph, backend="llvm") as right:
        for x_value, label_value in views:
            got = left.run([strided.loss, strided.logits, strided.x, strided.train],
                           {strided.x: x_value, strided.labels: label_value})
            want = right.run([contiguous.loss, contiguous.logits, contiguous.x, contiguous.train],
                             {contiguous.x: np.ascontiguousarray(x_value),
                              contiguous.labels: np.ascontiguousarray(label_value)})
            for value, expected in zip(got[:3], want[:3]):
                np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
        for value, expected in zip(left.run(strided.params), right.run(contiguous.params)):
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(data, original)  # the user's arrays were left alone


# -- 7. profile and check_numerics ------------------------------------------------------------------------------
def fused_log_graph():
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, 4), name="x")
        w = gc.Variable(np.ones(4, np.float32), name="w")
        rows = gc.reduce_sum(gc.exp(x) * 2.0 + gc.log(x) * w, axis=1)  # the log
        step = gc.assign(w, w + 0.01 * gc.reduce_sum(rows))
    return graph, x, w, rows, step


def test_profile_has_one_row_per_launched_kernel(rng):
    feeds = [batch(mlp(), rng, rows) for rows in (5, 5)]
    plain, profiled = mlp(), mlp()
    fetches = [plain.loss, plain.logits, plain.train]
    with gc.Session(plain.graph, backend="llvm") as reference, gc.Session(profiled.graph, backend="llvm") as sess:
        assert sess.last_profile is None
        for feed in feeds:
            x, labels = feed.values()
            expected = reference.run(fetches, {plain.x: x, plain.labels: labels})
            got = sess.run([profiled.loss, profiled.logits, profiled.train], {profiled.x: x, profiled.labels: labels},
                           profile=True)
            for value, want in zip(got[:2], expected[:2]):
                np.testing.assert_allclose(value, want, rtol=1e-6, atol=1e-7)
            table = sess.last_profile
        for value, want in zip(sess.run(profiled.params), reference.run(plain.params)):
            np.testing.assert_allclose(value, want, rtol=1e-6, atol=1e-7)  # profiled runs commit their updates
        feed = {profiled.x: x, profiled.labels: labels}
        launched = sess.compiled([profiled.loss, profiled.logits, profiled.train], feed).partition.launched()
        sess.run(profiled.loss, feed)
        assert sess.last_profile is table  # kept until the next profiled run
    assert table.backend == "llvm" and table.by == "kernel"
    assert sorted(row.name for row in table.rows) == sorted(f"k{kernel.id}" for kernel in launched)
    assert {row.name: row.root for row in table.rows} == {f"k{k.id}": k.root.name for k in launched}
    assert all(row.seconds >= 0 for row in table.rows) and table.total <= table.wall
    assert "backend llvm" in str(table)


def test_profile_counts_the_nodes_of_each_kernel(rng):
    """docs/debugging.md: each kernel row shows "how many nodes it computes", as the numpy backend's does."""
    graph, x, _, rows, step = fused_log_graph()
    feed = {x: rng.uniform(0.5, 2.0, (6, 4)).astype(np.float32)}
    tables = {}
    for backend in ("numpy", "llvm"):
        with gc.Session(graph, backend=backend, optimize=2) as sess:
            sess.run([rows, step], feed, profile=True)
            tables[backend] = [(row.name, row.kind, row.root, row.nodes) for row in sess.last_profile.rows]
    # the llvm backend reports kernel outputs only; the profile counts the nodes each kernel computes
    assert tables["llvm"] == [row for row in tables["numpy"] if row[1] != "sources"]


def test_check_numerics_names_the_node_inside_a_fused_kernel(rng):
    graph, x, w, rows, step = fused_log_graph()
    good = rng.uniform(0.5, 2.0, (3, 4)).astype(np.float32)
    bad = good.copy()
    bad[1, 2] = -1.0
    with gc.Session(graph, backend="llvm") as sess:
        sess.run([rows, step], {x: good})
        before = sess.run(w)
        with pytest.raises(NumericsError) as info:
            sess.run([rows, step], {x: bad}, check_numerics=True)
        message = str(info.value)
        assert f"log node 'log' created at {HERE}:{line_of('# the log')}" in message, message
        np.testing.assert_array_equal(sess.run(w), before)  # the failed check committed nothing
        result, _ = sess.run([rows, step], {x: good}, check_numerics=True)
        np.testing.assert_array_equal(sess.run(w), before + 0.01 * result.sum())
        assert np.all(np.isfinite(result))


# -- 8. sess.compiled -------------------------------------------------------------------------------------------
def test_compiled_shows_kernels_loops_and_llvm_ir(rng):
    net = mlp()
    feed = batch(net, rng, 4)
    with gc.Session(net.graph, backend="llvm") as sess:
        sess.run([net.loss, net.train], feed)
        count = len(sess._executables)
        compiled = sess.compiled([net.loss, net.train], feed)
        assert len(sess._executables) == count  # the executable the run used, not a new one
        assert len(compiled.partition.launched()) >= 3
        assert "for" in str(compiled.program) and str(compiled.program) == compiled.loops
        assert {k.name for k in compiled.program.kernels} >= {f"k{k.id}" for k in compiled.partition.launched()}
        assert re.search(r"^define ", compiled.llvm_ir, re.M) and compiled.llvm_ir == compiled.native.llvm_ir
        assert "disk cache: miss, stored" in str(compiled.report) and "LLVM optimize" in str(compiled.report)
        other = sess.compiled(net.logits, {net.x: feed[net.x]})  # compiled now: never run
        assert "for" in other.loops and len(sess._executables) == count + 1
    with gc.Session(net.graph, backend="numpy") as sess, pytest.raises(ArgumentError, match="compiled backend"):
        sess.compiled([net.loss, net.train], feed)


# -- 9. GRAPHC_LOG=compile ---------------------------------------------------------------------------------------
def test_compile_log_gives_reason_stage_times_and_cache_outcome(rng, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHC_LOG", "compile")
    net = mlp()
    feed = batch(net, rng, 4)
    with gc.Session(net.graph, backend="llvm") as sess:
        sess.run([net.loss, net.train], feed)
        sess.run([net.loss, net.train], batch(net, rng, 9))
        sess.run(net.loss, feed)
    err = capsys.readouterr().err
    [first] = compile_lines(err, "loss, train")
    [second] = compile_lines(err, "loss")
    assert "(first use)" in first and "(new fetches)" in second
    for line in (first, second):
        for stage in ("optimize", "lower", "render", "LLVM optimize", "machine code", "load"):
            assert re.search(rf"{stage} \d+\.\d ms", line), line
        assert line.endswith("disk cache: miss, stored"), line
    with gc.Session(net.graph, backend="llvm") as sess:  # a new session finds it on disk
        sess.run([net.loss, net.train], feed)
    [again] = compile_lines(capsys.readouterr().err, "loss, train")
    assert "(first use)" in again and again.endswith("disk cache: hit") and "machine code" not in again
    monkeypatch.delenv("GRAPHC_LOG")
    with gc.Session(net.graph, backend="llvm") as sess:
        sess.run(net.loss, feed)
    assert "graphc:" not in capsys.readouterr().err


# -- 10. ops without a lowering ---------------------------------------------------------------------------------
def test_op_without_lowering_is_a_compile_error_at_first_run():
    mystery = OpDef("mystery", "test", infer=lambda t: t, reference=lambda a: a + 1.0)  # not registered
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None,), name="x")
        y = apply(mystery, [x]) * 2.0  # the mystery op
        feed = {x: np.array([1.0, 2.0], np.float32)}
        with gc.Session(backend="numpy") as reference:
            assert reference.run(y, feed).tolist() == [4.0, 6.0]
        with gc.Session(backend="llvm") as sess:
            with pytest.raises(CompileError) as info:
                sess.run(y, feed)
            message = str(info.value)
            assert f"mystery node 'mystery' (created at {HERE}:{line_of('# the mystery op')})" in message, message
            assert "lowering" in message
            assert sess.run(x * 3.0, feed).tolist() == [3.0, 6.0]  # the session still runs what it can


def test_dropped_outputs_are_reused_and_held_ones_never_overwritten():
    g = gc.Graph()
    with g.as_default():
        a = gc.placeholder("float32", (None,))
        y = a * 2
    with gc.Session(g, backend="llvm") as sess:
        addresses = {sess.run(y, {a: np.ones(4, "float32")}).ctypes.data for _ in range(3)}
        assert len(addresses) == 1  # nobody kept the result: its memory serves the next run
        kept = [sess.run(y, {a: np.full(4, i, "float32")}) for i in range(3)]
        assert [k[0] for k in kept] == [0.0, 2.0, 4.0]
        view = sess.run(y, {a: np.ones(4, "float32")})[1:]  # a view keeps its base alive
        sess.run(y, {a: np.full(4, 5, "float32")})
        np.testing.assert_array_equal(view, [2.0, 2.0, 2.0])


def test_a_sum_of_inf_minus_inf_stays_nan_at_every_level():
    """Reassociable sums once carried nsz, which let LLVM fold the sum of x − x to 0 for x = inf."""
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (2, 3))
        t = x - x
        for _ in range(2):
            t = gc.reduce_sum(gc.broadcast_to(t, (4, 2, 3)), 0) / 4.0
    feeds = {x: np.array([[0.0, -0.0, 1.5], [np.nan, np.inf, -np.inf]])}
    for level in (0, 1, 2):
        with gc.Session(g, backend="llvm", optimize=level) as sess:
            np.testing.assert_array_equal(sess.run(t, feeds), [[0.0, 0.0, 0.0], [np.nan] * 3])


def test_runs_that_broadcast_unknown_sizes_use_a_version_compiled_without_the_assumption(capfd, monkeypatch, rng):
    """x*y of two (None,) tensors is compiled assuming equal sizes (the gradients fuse); sizes 1 against 5
    break that at run time, and the Session runs a general version instead, logged once, with right values."""
    monkeypatch.setenv("GRAPHC_LOG", "compile")
    g = gc.Graph()
    with g.as_default():
        a, b = gc.placeholder("float64", (None,)), gc.placeholder("float64", (None,))
        y = gc.log(a) + a * b - gc.sin(b)
        fetches = [y, *gc.gradients(y, [a, b])]
    with gc.Session(g, backend="llvm") as sess, gc.Session(g, backend="numpy") as reference:
        for sizes in [(5, 5), (1, 5), (5, 1), (1, 5), (4, 4)]:
            feeds = {a: rng.uniform(0.5, 2.0, sizes[0]), b: rng.uniform(-2.0, 2.0, sizes[1])}
            for got, want in zip(sess.run(fetches, feeds), reference.run(fetches, feeds)):
                np.testing.assert_allclose(got, want, rtol=1e-12)
    log = capfd.readouterr().err
    assert log.count("(unknown sizes broadcast at run time)") == 1
