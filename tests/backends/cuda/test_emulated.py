"""The CUDA backend's values without a GPU: every op case of the registry (static and all-None placeholder
shapes), an MLP training step and the benchmark's W1, W5 and W6 training steps, lowered and rendered as
``CUDAExecutable`` does it, compiled as host C++ and run launch by launch on a simulated grid, GEMMs as the cuBLAS
calls the runtime issues (emulate.py), against the cases' numpy values (check_case's tolerances) and the numpy
backend. The case and MLP programs share two g++ runs, the benchmark's three more."""

from __future__ import annotations

import os

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ShapeError
from graphc.ops.state import VARIABLE
from tests.backends.cuda.emulate import GXX, Emulated, build, emulated
from tests.backends.cuda.test_render import bench_workloads
from tests.ops.harness import OpCase, _as_tuple, check_outputs, default_rtol
from tests.ops.test_ops import ALL_CASES

pytestmark = pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
SEED = int(os.environ.get("GRAPHC_TEST_SEED", "0"))

BENCH_PROGRAMS = 10_000  # the benchmark programs' numbers (function prefixes) start here
VARIANTS = [(case, unknown) for case in ALL_CASES for unknown in ([False, True] if case.unknown_dims else [False])]


def _param(number: int, case: OpCase, unknown: bool) -> object:
    return pytest.param(number, id=f"{case.id}{'-none-dims' if unknown else ''}")


def _case_program(number: int) -> tuple[Emulated, list, list[np.ndarray]]:
    """The emulated program of variant ``number`` (its case built on placeholders), its placeholders and inputs."""
    case, unknown = VARIANTS[number]
    arrays = [np.asarray(a) for a in case.make_inputs(np.random.default_rng([SEED, number]))]
    graph = gc.Graph()
    with graph.as_default():
        placeholders = [gc.placeholder(a.dtype.name, (None,) * a.ndim if unknown else a.shape, name=f"in{i}")
                        for i, a in enumerate(arrays)]
        outputs = _as_tuple(case.build(*placeholders))
    return emulated(graph, list(outputs), dict(zip(placeholders, arrays)), number), placeholders, arrays


def _mlp(dtype: str) -> dict:
    """A 6-8-3 ReLU MLP training step (sparse softmax cross-entropy, SGD 0.1) and a batch of 5."""
    rng = np.random.default_rng(SEED)
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(dtype, (None, 6), name="x")
        y = gc.placeholder("int64", (None,), name="y")
        weights = [gc.Variable(rng.standard_normal(shape).astype(dtype), name=name)
                   for name, shape in (("W1", (6, 8)), ("b1", (8,)), ("W2", (8, 3)), ("b2", (3,)))]
        hidden = gc.relu(x @ weights[0] + weights[1])
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(hidden @ weights[2] + weights[3], y))
        train = gc.train.SGD(0.1).minimize(loss)
    feeds = {x: rng.standard_normal((5, 6)).astype(dtype), y: rng.integers(0, 3, 5)}
    return {"graph": graph, "weights": weights, "loss": loss, "train": train, "feeds": feeds}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every program of this module, compiled once: the case variants, the MLP steps, a failing gather."""
    cases = [_case_program(number) for number in range(len(VARIANTS))]
    mlps = {dtype: _mlp(dtype) for dtype in ("float32", "float64")}
    for offset, model in enumerate(mlps.values()):
        model["program"] = emulated(model["graph"], [model["loss"], model["train"]], model["feeds"],
                                    len(VARIANTS) + offset)
    graph = gc.Graph()
    with graph.as_default():
        params, indices = gc.placeholder("float32", (None,), name="params"), gc.placeholder("int64", (None,))
        gathered = gc.gather(params, indices) * 2.0
    gather = {"graph": graph, "fetch": gathered, "feeds": {params: np.arange(3, dtype=np.float32),
                                                           indices: np.array([2, 0], np.int64)}}
    gather["program"] = emulated(graph, [gathered], gather["feeds"], len(VARIANTS) + len(mlps))
    build([c[0] for c in cases] + [m["program"] for m in mlps.values()] + [gather["program"]],
          tmp_path_factory.mktemp("emulated"))
    return {"cases": cases, "mlps": mlps, "gather": gather}


@pytest.mark.parametrize("number", [_param(n, case, unknown) for n, (case, unknown) in enumerate(VARIANTS)])
def test_op_case_matches_numpy_on_emulated_cuda(built, number):
    case, unknown = VARIANTS[number]
    program, placeholders, arrays = built["cases"][number]
    expected = [np.asarray(e) for e in _as_tuple(case.expected(*[a.copy() for a in arrays]))]
    before = [a.copy() for a in arrays]
    got, updates = program.run(dict(zip(placeholders, arrays)))
    assert updates == {}
    check_outputs(case, arrays, before, got, expected, f"unknown dims: {unknown}, on emulated cuda")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_training_steps_match_the_numpy_backend(built, dtype):
    """Two SGD steps (the second from the first's variables, run count 1): losses and updated variables."""
    model = built["mlps"][dtype]
    program = model["program"]
    variables = [n.outputs[0] for n in model["graph"].nodes if n.op is VARIABLE]  # the weights, SGD's count
    rtol = default_rtol(dtype) * 5
    with gc.Session(model["graph"], backend="numpy") as sess:
        values = {v.node: value for v, value in zip(variables, sess.run(variables))}
        for step in range(2):
            expected_loss, _ = sess.run([model["loss"], model["train"]], model["feeds"])
            (loss, fetched_train), updates = program.run(model["feeds"], values, run_count=step)
            assert fetched_train is None
            np.testing.assert_allclose(loss, expected_loss, rtol=rtol, err_msg=f"loss of step {step}")
            assert {w.node for w in model["weights"]} <= set(updates)
            for v, want in zip(variables, sess.run(variables)):
                if v.node in updates:
                    assert not np.array_equal(updates[v.node], values[v.node]), f"{v.name} was not updated"
                    np.testing.assert_allclose(updates[v.node], want, rtol=rtol, atol=rtol,
                                               err_msg=f"{v.name}, step {step}")
                else:
                    np.testing.assert_array_equal(values[v.node], want, err_msg=f"{v.name}, step {step}")
            values |= updates
    counts = program.executable.steps_run
    assert counts["gemms"] > 0 and counts["launches"] > 0  # both kinds of step were emulated


def test_a_failing_kernel_raises_the_programs_message_as_on_llvm(built):
    gather = built["gather"]
    params, indices = gather["feeds"]
    program = gather["program"]
    (value,), _ = program.run(gather["feeds"])
    np.testing.assert_array_equal(value, [4.0, 0.0])
    bad = {params: gather["feeds"][params], indices: np.array([1, 3], np.int64)}
    with gc.Session(gather["graph"], backend="llvm") as sess, pytest.raises(ShapeError) as on_llvm:
        sess.run(gather["fetch"], bad)
    with pytest.raises(ShapeError) as emulated_error:
        program.run(bad)
    assert str(emulated_error.value) == str(on_llvm.value)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """The benchmark's W1 (MLP), W5 (CNN) and W6 (transformer block) training steps at their own sizes (batches
    of 128, 128 and 32 × 16 tokens), each emulated for its loss and update ops, built in three g++ runs."""
    workloads = bench_workloads(("W1", "W5", "W6"))
    programs = {name: emulated(w.graph, [*w.fetches, *w.ops], w.feeds, BENCH_PROGRAMS + number)
                for number, (name, w) in enumerate(workloads.items())}
    build(list(programs.values()), tmp_path_factory.mktemp("bench"), chunks=len(programs))
    return {name: (workloads[name], programs[name]) for name in workloads}


@pytest.mark.parametrize("name", ["W1", "W5", "W6"])
def test_benchmark_training_steps_match_the_numpy_backend(bench, name):
    """Two SGD steps (the second from the first's variables, run count 1) against the numpy backend from the
    same initial values: the loss within the bench's rtol (1e-4), every variable updated, each new value
    within rtol 1e-4 and an atol of 1e-4 of the step's largest update (numpy's). The atol is what makes W6's
    key bias comparable: its gradient is zero but for rounding (softmax ignores a shift of every score of a
    query), so its ~1e-11 updates are noise in both backends; real errors would be of the update's size."""
    workload, program = bench[name]
    variables = [n.outputs[0] for n in workload.graph.nodes if n.op is VARIABLE]
    with gc.Session(workload.graph, backend="numpy") as sess:
        values = {v.node: value for v, value in zip(variables, sess.run(variables))}
        for step in range(2):
            expected = sess.run([*workload.fetches, *workload.ops], workload.feeds)
            got, updates = program.run(workload.feeds, values, run_count=step)
            assert len(got) == len(expected) and got[len(workload.fetches):] == [None] * len(workload.ops)
            for k, (value, want) in enumerate(zip(got[:len(workload.fetches)], expected)):
                np.testing.assert_allclose(value, want, rtol=1e-4, err_msg=f"{name} fetch {k}, step {step}")
            assert set(updates) == {v.node for v in variables}, f"{name}: not every variable was updated"
            wanted = dict(zip(variables, sess.run(variables)))
            atol = 1e-4 * max(np.abs(wanted[v] - values[v.node]).max() for v in variables)
            for v, want in wanted.items():
                np.testing.assert_allclose(updates[v.node], want, rtol=1e-4, atol=atol,
                                           err_msg=f"{name}: {v.name}, step {step}")
            values |= updates
    counts = program.executable.steps_run
    assert counts["gemms"] > 0 and counts["launches"] > 0


# -- row reductions: a block of threads per row, its partial results combined in shared memory --------------
ROW_PROGRAMS = 20_000  # the row programs' numbers start here
COLUMNS = 601  # the rows' length: more than a block's 256 threads (each takes 2 or 3), not a power of two


def _numpy_layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * gamma + beta


def _numpy_cross_entropy(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean sparse softmax cross-entropy of ``x``'s rows and its gradient with respect to ``x``."""
    shifted = x - x.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    rows = np.arange(len(x))
    gradient = np.exp(log_p)
    gradient[rows, labels] -= 1
    return -log_p[rows, labels].mean(), gradient / len(x)


ROWS = {  # name: (build from x (and labels), numpy of x (and labels))
    "sum": (lambda x, y: [gc.reduce_sum(x, axis=1)], lambda x, y: [x.sum(1)]),
    "max-min": (lambda x, y: [gc.reduce_max(x, axis=1), gc.reduce_min(x, axis=1)], lambda x, y: [x.max(1), x.min(1)]),
    "logsumexp": (lambda x, y: [gc.reduce_logsumexp(x, axis=1)],
                  lambda x, y: [np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)]),
    "softmax": (lambda x, y: [gc.nn.softmax(x)], lambda x, y: [np.exp(x) / np.exp(x).sum(1, keepdims=True)]),
    "log_softmax": (lambda x, y: [gc.nn.log_softmax(x)],
                    lambda x, y: [x - x.max(1, keepdims=True) - np.log(np.exp(x - x.max(1, keepdims=True))
                                                                         .sum(1, keepdims=True))]),
    "layer_norm": (lambda x, y: [gc.nn.layer_norm(x, gc.constant(np.linspace(0.5, 2, COLUMNS, dtype=x.dtype)),
                                                  gc.constant(np.full(COLUMNS, 0.25, x.dtype)))],
                   lambda x, y: [_numpy_layer_norm(x, np.linspace(0.5, 2, COLUMNS, dtype=x.dtype), 0.25)]),
    "cross_entropy": (lambda x, y: [loss := gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(x, y)),
                                    gc.gradients(loss, [x])[0]],
                      lambda x, y: list(_numpy_cross_entropy(x, y))),
}
ROW_VARIANTS = [(name, dtype, unknown) for name in ROWS for dtype in ("float32", "float64")
                for unknown in (False, True)]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """Every row variant's program (5 rows of 601 columns: more rows than the 2 emulated blocks, more columns
    than their 256 threads, neither a power of two), built in one g++ run."""
    rng = np.random.default_rng([SEED, 7])
    programs = []
    for number, (name, dtype, unknown) in enumerate(ROW_VARIANTS):
        x_value = (rng.standard_normal((5, COLUMNS)) * 3).astype(dtype)
        y_value = rng.integers(0, COLUMNS, 5)
        graph = gc.Graph()
        with graph.as_default():
            x = gc.placeholder(dtype, (None, None) if unknown else (5, COLUMNS), name="x")
            y = gc.placeholder("int64", (None,) if unknown else (5,), name="labels")
            fetches = ROWS[name][0](x, y)
        feeds = {x: x_value} | ({y: y_value} if name == "cross_entropy" else {})
        program = emulated(graph, fetches, feeds, ROW_PROGRAMS + number)
        programs.append((program, feeds, ROWS[name][1](x_value, y_value)))
    build([p for p, _, _ in programs], tmp_path_factory.mktemp("rows"), chunks=1)
    return programs


@pytest.mark.parametrize("number", [pytest.param(n, id=f"{name}-{dtype}{'-none-dims' if unknown else ''}")
                                    for n, (name, dtype, unknown) in enumerate(ROW_VARIANTS)])
def test_row_reductions_on_blocks_of_threads_match_numpy(rows, number):
    """Each row on a block of 256 threads (fibers switched at each barrier and shuffle): the threads' partial
    sums and extrema combined by warp shuffles and shared memory differ from the serial order by reassociation only
    (allowed by the IR), so the tolerance is a few roundings of the dtype."""
    program, feeds, expected = rows[number]
    got, _ = program.run(feeds)
    rtol = 1e-5 if ROW_VARIANTS[number][1] == "float32" else 1e-12
    for value, want in zip(got, expected, strict=True):
        np.testing.assert_allclose(value, want, rtol=rtol, atol=rtol)
    name, _, unknown = ROW_VARIANTS[number]
    blocks = program.executable.steps_run["block launches"]
    assert blocks > 0  # the rows did run on blocks of threads (softmax's cached exponentials included)


# -- full reductions to one value: one block of threads, or a grid of blocks and then one -------------------
FULL_PROGRAMS = 30_000  # the full reductions' numbers start here
FULL = {"sum": (gc.reduce_sum, np.sum), "mean": (gc.reduce_mean, np.mean), "max": (gc.reduce_max, np.max)}
BIG = (3, 25_001)  # more elements than render.GRID_REDUCTION_MIN: two passes
FULL_VARIANTS = [(name, shape, dtype, unknown) for name in FULL for shape in ((3, 337), (601,), BIG)
                 for dtype in ("float32", "float64") for unknown in (False, True)]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Every full reduction variant's program (1011 or 601 elements: more than the block's 256 threads, not a
    power of two; 75,003 for the grid), built in one g++ run."""
    rng = np.random.default_rng([SEED, 11])
    programs = []
    for number, (name, shape, dtype, unknown) in enumerate(FULL_VARIANTS):
        x_value = rng.uniform(0.5, 2.0, shape).astype(dtype)  # positive: a sum is far from 0 (a relative check)
        graph = gc.Graph()
        with graph.as_default():
            x = gc.placeholder(dtype, (None,) * len(shape) if unknown else shape, name="x")
            fetch = FULL[name][0](x)
        programs.append((emulated(graph, [fetch], {x: x_value}, FULL_PROGRAMS + number), {x: x_value},
                         FULL[name][1](x_value)))
    build([p for p, _, _ in programs], tmp_path_factory.mktemp("full"), chunks=1)
    return programs


@pytest.mark.parametrize("number", [
    pytest.param(n, id=f"{name}-{'x'.join(map(str, shape))}-{dtype}{'-none-dims' if unknown else ''}")
    for n, (name, shape, dtype, unknown) in enumerate(FULL_VARIANTS)])
def test_full_reductions_on_blocks_of_threads_match_numpy(full, number):
    """The reduction to one value on a block of 256 threads (fibers) (the grid's second block finds no row),
    or, past GRID_REDUCTION_MIN elements, on a grid of such blocks (2 here) whose partial values one block then
    combines: the same value as numpy's up to reassociation, every launch a block's (nothing left serial)."""
    program, feeds, expected = full[number]
    (value,), _ = program.run(feeds)
    rtol = 1e-5 if FULL_VARIANTS[number][2] == "float32" else 1e-12
    assert value.dtype == expected.dtype and value.shape == ()
    np.testing.assert_allclose(value, expected, rtol=rtol)
    counts = program.executable.steps_run
    assert counts["block launches"] == counts["launches"] == (2 if FULL_VARIANTS[number][1] == BIG else 1)
