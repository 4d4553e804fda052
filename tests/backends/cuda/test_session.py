"""``gc.Session(backend="cuda")`` end to end against the numpy reference: op cases, MLP training, one executable
for every batch size, variables resident on the device, run-time failures and monitored runs.

On a machine with pycuda and a GPU these run on the GPU (every op case). Elsewhere, as in CI, the same tests run
the backend's own runtime (executable.py) on the host GPU of host_gpu.py: the CUDA C built as host C++, device
memory in host memory with every copy and kernel argument checked against the live allocations — every line
of the runtime runs, only the GPU is simulated (one op case in ``HOST_SAMPLE``: the rest of the registry's
programs run under emulate.py, in test_emulated.py)."""

import os
import types

import numpy as np
import pytest

import graphc as gc
from graphc.backends.cuda.executable import gpu
from graphc.errors import BackendUnavailableError, ShapeError
from tests.backends.cuda.emulate import GXX
from tests.backends.cuda.host_gpu import use_host_gpu
from tests.backends.llvm.test_session import TOLERANCE, batch, compile_lines, mlp
from tests.ops.harness import check_case
from tests.ops.test_ops import ALL_CASES

try:
    DEVICE = gpu().device
except BackendUnavailableError:
    DEVICE = None
    gpu.cache_clear()
    if GXX is None:
        pytest.skip("neither a GPU nor g++ (for the host GPU) is here", allow_module_level=True)
HOST_SAMPLE = 40  # on the host GPU, every 40th op case (about 22)
# on a GPU every case, or every GRAPHC_GPU_CASE_STEP-th (tools/gpu-check: a device call's time is short)
CASE_STEP = int(os.environ.get("GRAPHC_GPU_CASE_STEP", "1")) if DEVICE is not None else HOST_SAMPLE
CASES = ALL_CASES[::CASE_STEP]


@pytest.fixture(scope="module")
def host_modules(tmp_path_factory):
    """Where the host GPU builds its modules: shared by this module's tests (equal sources, one build)."""
    return tmp_path_factory.mktemp("host_gpu")


@pytest.fixture(autouse=True)
def _environment(tmp_path, monkeypatch, host_modules):
    """Compiled code goes to a cache of this test's own; no stray GRAPHC_* settings; the host GPU without a GPU."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("GRAPHC_LOG", "GRAPHC_CHECK_NUMERICS", "GRAPHC_VERIFY", "GRAPHC_OPT_EXCLUDE"):
        monkeypatch.delenv(name, raising=False)
    return use_host_gpu(monkeypatch, host_modules) if DEVICE is None else None


@pytest.fixture
def host(_environment):
    """The host GPU of this test (its copy counters), where no GPU is."""
    if _environment is None:
        pytest.skip("counts the host GPU's copies")
    return _environment


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op_matches_numpy_on_cuda(case, rng):
    check_case(case, rng, backend="cuda")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_training_matches_numpy(dtype, rng):
    data = [(rng.normal(size=(rows, 6)).astype(dtype), rng.integers(0, 3, rows)) for rows in rng.integers(1, 40, 20)]
    results = {}
    for backend in ("numpy", "cuda"):
        net = mlp(dtype)
        with gc.Session(net.graph, backend=backend) as sess:
            losses = [sess.run([net.loss, net.train], {net.x: x, net.labels: y})[0] for x, y in data]
            results[backend] = losses, sess.run(net.params)
    (losses, weights), (expected_losses, expected_weights) = results["cuda"], results["numpy"]
    np.testing.assert_allclose(losses, expected_losses, **TOLERANCE[dtype])
    assert not np.allclose(losses[0], losses[-1])
    for value, expected in zip(weights, expected_weights):
        np.testing.assert_allclose(value, expected, **TOLERANCE[dtype])


def test_one_executable_serves_every_batch_size(rng, capsys, monkeypatch):
    monkeypatch.setenv("GRAPHC_LOG", "compile")
    net = mlp()
    fetches = [net.loss, net.logits, net.train]
    with gc.Session(net.graph, backend="cuda") as sess, gc.Session(net.graph, backend="numpy") as reference:
        for rows in (1, 7, 300, 0, 7):
            feed = batch(net, rng, rows)
            loss, logits, _ = sess.run(fetches, feed)
            expected_loss, expected_logits, _ = reference.run(fetches, feed)
            np.testing.assert_allclose(logits, expected_logits, **TOLERANCE["float32"])
            np.testing.assert_allclose(loss, expected_loss, **TOLERANCE["float32"])
    assert len(compile_lines(capsys.readouterr().err, "loss, logits, train")) == 1


def test_variables_stay_in_step_with_the_session(rng):
    """Device copies follow the Session's arrays: updates come back after each run, and a value set by
    load_variables is what the next run reads."""
    net = mlp()
    feed = batch(net, rng, 5)
    with gc.Session(net.graph, backend="cuda") as sess, gc.Session(net.graph, backend="numpy") as reference:
        for session in (sess, reference):
            session.run(net.train, feed)
            session.load_variables({net.params[0]: np.ones((6, 8), np.float32)})
            session.run(net.train, feed)
        for value, expected in zip(sess.run(net.params), reference.run(net.params)):
            np.testing.assert_allclose(value, expected, **TOLERANCE["float32"])


def test_a_failed_run_changes_no_variable():
    with gc.Graph().as_default():
        table = gc.placeholder("float32", shape=(None,), name="table")
        index = gc.placeholder("int32", shape=(None,), name="index")
        count = gc.Variable(0.0, name="count")
        picked = gc.gather(table, index)
        step = gc.assign_add(count, 1.0)
        with gc.Session(backend="cuda") as sess:
            with pytest.raises(ShapeError, match="out of range"):
                sess.run([step, picked], {table: [1.0, 2.0], index: [0, 9]})
            assert sess.run(count) == 0.0
            sess.run([step, picked], {table: [1.0, 2.0], index: [0, 1]})
            assert sess.run(count) == 1.0


def test_profile_and_check_numerics_see_every_kernel(rng):
    net = mlp()
    feed = batch(net, rng, 5)
    with gc.Session(net.graph, backend="cuda") as sess, gc.Session(net.graph, backend="numpy") as reference:
        for session in (sess, reference):  # the monitored run starts from values that live on the device only
            session.run(net.train, feed)
        profiled = sess.run([net.loss, net.train], feed, profile=True, check_numerics=True)[0]
        expected = reference.run([net.loss, net.train], feed)[0]
        np.testing.assert_allclose(profiled, expected, **TOLERANCE["float32"])
        assert sess.last_profile is not None
        for value, want in zip(sess.run(net.params), reference.run(net.params)):
            np.testing.assert_allclose(value, want, **TOLERANCE["float32"])


def test_compiled_shows_the_cuda_source(rng):
    net = mlp()
    with gc.Session(net.graph, backend="cuda") as sess:
        compiled = sess.compiled(net.loss, batch(net, rng, 3))
        assert "__global__" in compiled.cuda_source and "for i0 <" in compiled.loops


def test_training_copies_no_variable_back(rng, host):
    """Variables stay on the device: a training step fetching its loss copies the feeds in, and the loss and
    the status word out — nothing else — until a variable is fetched."""
    net = mlp()
    feed = batch(net, rng, 5)
    with gc.Session(net.graph, backend="cuda") as sess, gc.Session(net.graph, backend="numpy") as reference:
        sess.run([net.loss, net.train], feed)
        reference.run([net.loss, net.train], feed)
        host.driver.copies.update(htod=0, dtoh=0)
        for _ in range(3):
            loss = sess.run([net.loss, net.train], feed)[0]
            expected = reference.run([net.loss, net.train], feed)[0]
        np.testing.assert_allclose(loss, expected, **TOLERANCE["float32"])
        fed = sum(a.nbytes for a in feed.values())
        assert host.driver.copies["dtoh"] == 3 * (loss.nbytes + 4)
        assert fed * 3 <= host.driver.copies["htod"] <= (fed + 8 * 32) * 3  # the feeds and the dims (int64 each)
        for value, want in zip(sess.run(net.params), reference.run(net.params)):
            np.testing.assert_allclose(value, want, **TOLERANCE["float32"])


def test_update_ops_and_variables_fetched_in_one_run():
    """A fetched variable shows its value from before the run, a fetched update op the value after it, from
    the device's copy (the Session's array is not current)."""
    with gc.Graph().as_default():
        count = gc.Variable(np.float32(1.0), name="count")
        doubled = gc.assign(count, count * 2.0)
        with gc.Session(backend="cuda") as sess:
            assert sess.run([count, doubled]) == [1.0, 2.0]
            assert sess.run([count, doubled]) == [2.0, 4.0]
            sess.load_variables({count: np.float32(10.0)})
            assert sess.run([doubled, count]) == [20.0, 10.0]
            assert sess.run(count) == 20.0


class Foreign:
    """Another library's GPU array: only its ``__cuda_array_interface__`` (a DeviceArray's, edited)."""

    def __init__(self, array: gc.DeviceArray, **changes) -> None:
        self.array = array  # keeps the memory alive
        self.__cuda_array_interface__ = {**array.__cuda_array_interface__, **changes}


def elementwise():
    graph = gc.Graph()
    with graph.as_default():
        a, b = gc.placeholder("float32", (None,), name="a"), gc.placeholder("float32", (None,), name="b")
        out = gc.tanh(a * b) + gc.exp(-b * b)
    return graph, a, b, out


def test_gpu_feeds_are_read_in_place_and_fetches_stay_on_the_gpu(rng, _environment):
    """W2 on the GPU: inputs already there, the output left there — per run, nothing crosses the bus but the
    dims (host to device) and the status word (back; counted on the host GPU); every output is new memory,
    kept across runs."""
    host = _environment or types.SimpleNamespace(driver=types.SimpleNamespace(copies={}))
    graph, a, b, out = elementwise()
    x, y = (rng.normal(size=1000).astype(np.float32) for _ in range(2))
    with gc.Session(graph, backend="cuda") as sess:
        on_gpu = sess.run([a, b], {a: x, b: y}, on_device=True)  # a feed fetched: uploaded
        assert all(isinstance(v, gc.DeviceArray) for v in on_gpu)
        host.driver.copies.update(htod=0, dtoh=0)
        first = sess.run(out, {a: on_gpu[0], b: on_gpu[1]}, on_device=True)
        second = sess.run(out, {a: on_gpu[1], b: on_gpu[0]}, on_device=True)
        if _environment is not None:
            assert host.driver.copies["dtoh"] == 2 * 4 and host.driver.copies["htod"] <= 2 * 8 * 16  # status; dims
        assert isinstance(first, gc.DeviceArray) and first.shape == (1000,) and first.dtype == np.float32
        assert first.address != second.address
        expected = np.tanh(x * y) + np.exp(-y * y)
        np.testing.assert_allclose(first.get(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(second), np.tanh(x * y) + np.exp(-x * x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sess.run(out, {a: Foreign(on_gpu[0]), b: y}), expected, rtol=1e-5, atol=1e-6)
        uploaded = gc.to_device(y)
        assert uploaded.shape == (1000,) and uploaded.nbytes == 4000 and np.array_equal(uploaded.get(), y)
        np.testing.assert_allclose(sess.run(out, {a: x, b: uploaded}), expected, rtol=1e-5, atol=1e-6)


def test_a_device_array_fed_to_a_cpu_backend_is_copied_to_the_host(rng):
    graph, a, b, out = elementwise()
    x, y = (rng.normal(size=10).astype(np.float32) for _ in range(2))
    with gc.Session(graph, backend="cuda") as sess:
        on_gpu = sess.run(a, {a: x}, on_device=True)
    with gc.Session(graph, backend="llvm") as cpu:
        expected = np.tanh(x * y) + np.exp(-y * y)
        np.testing.assert_allclose(cpu.run(out, {a: on_gpu, b: y}), expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(gc.errors.ArgumentError, match="on_device=True .* needs backend 'cuda'"):
            cpu.run(out, {a: x, b: y}, on_device=True)


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"typestr": "<f8"}, gc.errors.DTypeError, "GPU array of dtype float64; GPU feeds are not converted"),
    ({"shape": (2, 5)}, gc.errors.FeedError, r"was fed shape \[2,5\]; expected \[\?\]"),
    ({"shape": (5,), "strides": (8,)}, gc.errors.FeedError, r"strides \(8,\): GPU feeds must be C-contiguous"),
    ({"mask": object()}, gc.errors.FeedError, "masked GPU array"),
    ({"data": (0, False)}, gc.errors.FeedError, "null data pointer"),
    ({"typestr": None}, gc.errors.FeedError, "__cuda_array_interface__ is malformed"),
])
def test_gpu_feeds_the_kernels_cannot_read_in_place_are_rejected(rng, changes, error, message):
    graph, a, b, out = elementwise()
    with gc.Session(graph, backend="cuda") as sess:
        on_gpu = sess.run(a, {a: rng.normal(size=10).astype(np.float32)}, on_device=True)
        with pytest.raises(error, match=f"placeholder 'a' .*test_session.py.*{message}"):
            sess.run(out, {a: Foreign(on_gpu, **changes), b: np.ones(10, np.float32)})


def test_check_numerics_names_the_op_after_training_on_the_device():
    """A NaN found under check_numerics is located by rerunning on the numpy reference, which reads the
    Session's arrays: the monitored run first brings them up to date from the device, where the steps before
    it left the current values. Here only the trained weights (negative by then) make the log's NaN: a rerun
    on stale arrays would find none and could not name the op."""
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None, 3), name="x")
        w = gc.Variable(np.ones(3, np.float32), name="w")
        rows = gc.reduce_sum(gc.log(x * w), axis=1)
        step = gc.assign_add(w, -0.4 * gc.reduce_sum(x, axis=0))
        feed = {x: np.ones((2, 3), np.float32)}
        with gc.Session(backend="cuda") as sess:
            sess.run(step, feed)  # w = 0.2 (on the device)
            assert np.all(np.isfinite(sess.run(rows, feed)))
            sess.run(step, feed)  # w = -0.6: every log is now of a negative number
            with pytest.raises(gc.errors.NumericsError) as info:
                sess.run([rows, step], feed, check_numerics=True)
            assert "log node 'log'" in str(info.value), str(info.value)
            np.testing.assert_allclose(sess.run(w), np.full(3, -0.6, np.float32), rtol=1e-6)


def test_a_loop_of_small_products_is_one_batched_cublas_call(rng, host):
    """Attention's scores per sequence (a matmul of [b, t, d] by [b, d, t]): the GEMM per sequence that the
    loop issues runs as one strided batched call, and its values are numpy's."""
    with gc.Graph().as_default():
        q = gc.placeholder("float32", (None, 5, 4), name="q")
        k = gc.placeholder("float32", (None, 4, 6), name="k")
        scores = q @ k
        feed = {q: rng.normal(size=(7, 5, 4)).astype(np.float32), k: rng.normal(size=(7, 4, 6)).astype(np.float32)}
        with gc.Session(backend="cuda") as sess:
            np.testing.assert_allclose(sess.run(scores, feed), feed[q] @ feed[k], rtol=1e-5, atol=1e-6)
    assert host.cublas.batches == [7] and host.cublas.calls == 7
