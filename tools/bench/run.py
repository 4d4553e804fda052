"""graphc's benchmark: each workload run by graphc's Session and written directly in numpy, in one process.

    python tools/bench/run.py                    # about 40 s on 2 cores, 20 s with --quick
    python tools/bench/run.py --quick            # fewer repeats: a smoke test of the numbers
    python tools/bench/run.py --json bench.json  # also every number, for a note to quote
    graphc bench [--quick] [--only W]            # the same, through the graphc command

Every cell is the median of several timed calls after one untimed call (which builds the Session's plan and
compiles); a ratio is that cell's median over plain numpy's, measured in the same run, so a ratio below 1
means faster than numpy. Before timing, every implementation's result is checked against numpy's.

The workloads are those of the LLVM backend issue, at its sizes:
  W1  an MLP training step, 784-512-256-10 with ReLU, sparse softmax cross-entropy (mean over the batch) and
      plain SGD (lr 0.1) on every weight and bias, batch 128, float32; the graphc graph updates gc.Variables
      with gc.assign, grouped, fetched with the loss. Each column starts from the same weights and the losses
      of its first two steps must match numpy's within 1e-4 relative (the second shows the update was right);
      the steps are then timed on the same batch, the weights training on
  W2  out = tanh(a·b + c)·sigmoid(a − c) + exp(−b·b) on 2^22 float32 elements (elementwise),
      with its memory-bandwidth floor: its 16 bytes per element (3 read, 1 written) at the bandwidth of
      np.copyto on 256 MiB arrays, far larger than the last-level cache, measured in the same run
  W3  softmax cross-entropy (sparse labels), its mean and its gradient on (4096, 1000) float32 logits
  W4  the lecture's y = ln x1 + x1·x2 − sin x2 and both gradients on 2^20 float32 elements
and two model training steps (models.py; each checked over its first two steps, as W1, plain SGD lr 0.05):
  W5  the digits CNN, batch 128 of 8×8×1 (random stand-ins): conv 3×3×16 "same" + bias, ReLU, 2×2 max pool,
      conv 3×3×32 the same, pool, dense 64 ReLU, dense 10, mean sparse softmax cross-entropy; numpy by hand
      with im2col convolutions (col2im backward) and argmax-routed pooling; torch NCHW inside, jax NHWC
  W6  a pre-LN transformer block on 32 sequences of 16 tokens (vocabulary 16): token and learned position
      embeddings (64 wide), x + MHA(LN x) with 4 causal heads of 16, x + FFN(LN x) 64-256-64 ReLU, LN, dense to
      16 logits, mean sparse softmax cross-entropy; numpy by hand down to the embeddings' np.add.at
The columns: numpy by hand; graphc's numpy backend, the reference interpreter (one numpy call per node, so
never faster than numpy: it is the oracle, not a contender); graphc's llvm backend (fused native kernels,
``Session(backend="llvm")``) and cuda backend (on a machine with pycuda and a GPU), each when it can run a
tiny graph; PyTorch eager and JAX ``jit`` when importable.
With W1 and the llvm column comes W1's compile time on llvm, in fresh processes (compile_time.py): cold, on an
empty disk cache, and warm, a second process on the same cache, next to the import time of graphc.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

import graphc as gc

MLP_SIZES = (784, 512, 256, 10)
MLP_BATCH = 128
LEARNING_RATE = 0.1
W2_ELEMENTS = 2**22
W3_SHAPE = (4096, 1000)
W4_ELEMENTS = 2**20
W2_BYTES_PER_ELEMENT = 16  # three float32 inputs read, one float32 output written
COPY_BYTES = 256 * 2**20  # per array: far beyond any last-level cache, so the copy runs at memory bandwidth
REPEATS, QUICK_REPEATS = 25, 3
COPY_REPEATS, QUICK_COPY_REPEATS = 9, 3
COMPILE_RUNS, QUICK_COMPILE_RUNS = 3, 1
BUSY_LOAD = 0.5  # a 1-minute load average above this: something else runs here and the threaded columns suffer
COMPILED_BACKENDS = ("llvm", "cuda")  # a backend that cannot run here gets a note, not a column
FRAMEWORK_TITLES = {"torch": "torch eager", "jax": "jax jit"}
COMPILE_CHILD = Path(__file__).with_name("compile_time.py")

Step = Callable[[], Sequence[Any]]  # one call of an implementation: its outputs, in numpy's order


@dataclass(frozen=True)
class Workload:
    """One benchmark: a graph with its fetches and feeds, and the same computation in numpy and friends.

    ``numpy`` is the reference step; ``torch`` and ``jax`` take their module and return a step starting from
    the workload's initial state (W1 trains, so each column needs weights of its own). The outputs of the
    first ``checked_calls`` calls of each column are compared with numpy's, within ``rtol`` and ``atol``.
    """

    name: str
    what: str
    graph: gc.Graph
    fetches: list[gc.Tensor]
    feeds: dict[gc.Tensor, np.ndarray]
    numpy: Step
    torch: Callable[[Any], Step]
    jax: Callable[[Any], Step]
    ops: list[gc.Node] = field(default_factory=list)  # run with the fetches for their effect: W1's updates
    checked_calls: int = 1
    rtol: float = 2e-4
    atol: float = 2e-5


def numpy_softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[np.float32, np.ndarray]:
    """The mean sparse softmax cross-entropy of ``logits`` (rows of classes) and its gradient, by hand."""
    rows = np.arange(len(labels))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(sums[:, 0]) - shifted[rows, labels])
    grad = exps / sums
    grad[rows, labels] -= 1
    grad /= len(labels)
    return loss, grad


# -- W1: an MLP training step ----------------------------------------------------------------------------
def mlp_logits(x: Any, params: Sequence[Any], relu: Callable[[Any], Any]) -> Any:
    """x @ W + b, ReLU, ..., x @ W + b: the forward pass every W1 column spells the same way, whatever its arrays."""
    *hidden, (weight, bias) = zip(params[::2], params[1::2])
    for w, b in hidden:
        x = relu(x @ w + b)
    return x @ weight + bias


def mlp(rng: np.random.Generator, batch: int = MLP_BATCH) -> Workload:
    initial = []  # He-normal weights and zero biases, so the loss falls from the first step on
    for fan_in, fan_out in pairwise(MLP_SIZES):
        initial += [(rng.normal(size=(fan_in, fan_out)) * np.sqrt(2 / fan_in)).astype(np.float32),
                    np.zeros(fan_out, np.float32)]
    x = rng.normal(size=(batch, MLP_SIZES[0])).astype(np.float32)
    labels = rng.integers(0, MLP_SIZES[-1], batch)
    g = gc.Graph()
    with g.as_default():
        px = gc.placeholder("float32", (None, MLP_SIZES[0]), name="x")
        py = gc.placeholder("int64", (None,), name="labels")
        params = [gc.Variable(value, name=f"{'Wb'[i % 2]}{i // 2 + 1}") for i, value in enumerate(initial)]
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(mlp_logits(px, params, gc.relu), py))
        train = gc.group(*(gc.assign(v, v - LEARNING_RATE * grad)
                           for v, grad in zip(params, gc.gradients(loss, params), strict=True)))

    w1, b1, w2, b2, w3, b3 = (value.copy() for value in initial)

    def numpy() -> list[Any]:
        h1 = x @ w1 + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2 + b2
        a2 = np.maximum(h2, 0)
        loss, dz = numpy_softmax_cross_entropy(a2 @ w3 + b3, labels)
        dh2 = (dz @ w3.T) * (h2 > 0)
        dh1 = (dh2 @ w2.T) * (h1 > 0)
        # every gradient is computed (from the old weights) before the first update
        for param, grad in ((w3, a2.T @ dz), (b3, dz.sum(axis=0)), (w2, a1.T @ dh2), (b2, dh2.sum(axis=0)),
                            (w1, x.T @ dh1), (b1, dh1.sum(axis=0))):
            param -= LEARNING_RATE * grad
        return [loss]

    def torch(t: Any) -> Step:
        weights = [t.tensor(value, requires_grad=True) for value in initial]
        tx, ty = t.from_numpy(x), t.from_numpy(labels)

        def step() -> list[Any]:
            loss = t.nn.functional.cross_entropy(mlp_logits(tx, weights, t.relu), ty)
            grads = t.autograd.grad(loss, weights)
            with t.no_grad():
                for weight, grad in zip(weights, grads, strict=True):
                    weight.sub_(grad, alpha=LEARNING_RATE)
            return [loss]
        return step

    def jax(j: Any) -> Step:
        def loss(weights: list[Any], x: Any, labels: Any) -> Any:
            log_p = j.nn.log_softmax(mlp_logits(x, weights, j.nn.relu), axis=1)
            return -j.numpy.take_along_axis(log_p, labels[:, None], axis=1).mean()

        def train_step(weights: list[Any], x: Any, labels: Any) -> tuple[Any, list[Any]]:
            value, grads = j.value_and_grad(loss)(weights, x, labels)
            return value, j.tree.map(lambda weight, grad: weight - LEARNING_RATE * grad, weights, grads)

        f = j.jit(train_step, donate_argnums=0)  # the old weights' buffers take the new ones, as in place
        weights = [j.numpy.array(value) for value in initial]
        jx, jy = j.device_put(x), j.device_put(labels.astype(np.int32))

        def step() -> list[Any]:
            nonlocal weights
            value, weights = j.block_until_ready(f(weights, jx, jy))
            return [value]
        return step

    return Workload("W1", f"MLP 784-512-256-10 SGD step, batch {batch} f32", g, [loss], {px: x, py: labels},
                    numpy, torch, jax, ops=[train], checked_calls=2, rtol=1e-4, atol=0.0)


# -- W2: elementwise --------------------------------------------------------------------------------------
def elementwise(rng: np.random.Generator, elements: int = W2_ELEMENTS) -> Workload:
    a, b, c = (rng.uniform(-2, 2, elements).astype(np.float32) for _ in range(3))
    g = gc.Graph()
    with g.as_default():
        pa, pb, pc = (gc.placeholder("float32", (None,), name=n) for n in "abc")
        out = gc.tanh(pa * pb + pc) * gc.sigmoid(pa - pc) + gc.exp(-pb * pb)

    def numpy() -> list[np.ndarray]:
        return [np.tanh(a * b + c) * (1 / (1 + np.exp(c - a))) + np.exp(-b * b)]

    def torch(t: Any) -> Step:
        ta, tb, tc = (t.from_numpy(v) for v in (a, b, c))
        return lambda: [t.tanh(ta * tb + tc) * t.sigmoid(ta - tc) + t.exp(-tb * tb)]

    def jax(j: Any) -> Step:
        jnp = j.numpy
        f = j.jit(lambda a, b, c: [jnp.tanh(a * b + c) * j.nn.sigmoid(a - c) + jnp.exp(-b * b)])
        ja, jb, jc = (j.device_put(v) for v in (a, b, c))
        return lambda: j.block_until_ready(f(ja, jb, jc))

    return Workload("W2", f"tanh(a·b+c)·sigmoid(a−c)+exp(−b·b), 2^{elements.bit_length() - 1} f32", g, [out],
                    {pa: a, pb: b, pc: c}, numpy, torch, jax)


# -- W3: softmax cross-entropy forward and gradient --------------------------------------------------------
def softmax_cross_entropy(rng: np.random.Generator, shape: tuple[int, int] = W3_SHAPE) -> Workload:
    logits = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, shape[1], shape[0])
    g = gc.Graph()
    with g.as_default():
        z = gc.placeholder("float32", (None, shape[1]), name="logits")
        y = gc.placeholder("int64", (None,), name="labels")
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(z, y))
        (dz,) = gc.gradients(loss, [z])

    def numpy() -> list[Any]:
        return list(numpy_softmax_cross_entropy(logits, labels))

    def torch(t: Any) -> Step:
        tz, ty = t.from_numpy(logits), t.from_numpy(labels)

        def step() -> list[Any]:
            z = tz.detach().requires_grad_()
            loss = t.nn.functional.cross_entropy(z, ty)
            (grad,) = t.autograd.grad(loss, [z])
            return [loss, grad]
        return step

    def jax(j: Any) -> Step:
        def loss(z: Any, labels: Any) -> Any:
            log_p = j.nn.log_softmax(z, axis=1)
            return -j.numpy.take_along_axis(log_p, labels[:, None], axis=1).mean()
        f = j.jit(j.value_and_grad(loss))
        jz, jy = j.device_put(logits), j.device_put(labels.astype(np.int32))
        return lambda: j.block_until_ready(list(f(jz, jy)))

    return Workload("W3", f"softmax cross-entropy + gradient, {shape} f32", g, [loss, dz],
                    {z: logits, y: labels}, numpy, torch, jax)


# -- W4: the lecture function and its gradients ------------------------------------------------------------
def lecture_function(rng: np.random.Generator) -> Workload:
    x1 = rng.uniform(0.5, 4, W4_ELEMENTS).astype(np.float32)  # ln needs x1 > 0
    x2 = rng.uniform(-4, 4, W4_ELEMENTS).astype(np.float32)
    g = gc.Graph()
    with g.as_default():
        p1, p2 = gc.placeholder("float32", (None,), name="x1"), gc.placeholder("float32", (None,), name="x2")
        y = gc.log(p1) + p1 * p2 - gc.sin(p2)
        d1, d2 = gc.gradients(y, [p1, p2])  # of sum(y): elementwise, the partial derivatives

    def numpy() -> list[np.ndarray]:
        return [np.log(x1) + x1 * x2 - np.sin(x2), 1 / x1 + x2, x1 - np.cos(x2)]

    def torch(t: Any) -> Step:
        t1, t2 = t.from_numpy(x1), t.from_numpy(x2)

        def step() -> list[Any]:
            a, b = t1.detach().requires_grad_(), t2.detach().requires_grad_()
            y = t.log(a) + a * b - t.sin(b)
            return [y, *t.autograd.grad(y.sum(), [a, b])]
        return step

    def jax(j: Any) -> Step:
        jnp = j.numpy

        def function(a: Any, b: Any) -> Any:
            return jnp.log(a) + a * b - jnp.sin(b)

        def step(a: Any, b: Any) -> list[Any]:
            y, pullback = j.vjp(function, a, b)
            return [y, *pullback(jnp.ones_like(y))]
        f = j.jit(step)
        j1, j2 = j.device_put(x1), j.device_put(x2)
        return lambda: j.block_until_ready(f(j1, j2))

    return Workload("W4", "ln x1 + x1·x2 − sin x2 + both gradients, 2^20 f32", g, [y, d1, d2],
                    {p1: x1, p2: x2}, numpy, torch, jax)


# -- W5 and W6: models.py's CNN and transformer block training steps --------------------------------------
def from_models(function: str) -> Callable[[np.random.Generator], Workload]:
    """A workload of models.py, imported when it is first built (models.py imports this module's Workload)."""
    return lambda rng: getattr(importlib.import_module("models"), function)(rng)


WORKLOADS = {"W1": mlp, "W2": elementwise, "W3": softmax_cross_entropy, "W4": lecture_function,
             "W5": from_models("convnet"), "W6": from_models("transformer")}


# -- measuring -------------------------------------------------------------------------------------------
def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    """The median of ``repeats`` timed calls, after one untimed call (plan building, jit compiling)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class MismatchError(Exception):
    """An implementation's result differs from numpy's: its time would mean nothing."""


def check_close(name: str, column: str, got: Sequence[Any], expected: Sequence[np.ndarray], *,
                rtol: float = 2e-4, atol: float = 2e-5) -> None:
    """A benchmark of wrong results is worthless: compare every output with numpy's first."""
    for i, (value, reference) in enumerate(zip(got, expected, strict=True)):
        value = np.asarray(value.detach() if hasattr(value, "detach") else value, dtype=np.float64)
        if not np.allclose(value, reference, rtol=rtol, atol=atol):
            worst = np.max(np.abs(value - reference))
            raise MismatchError(f"bench: {name} output {i} from {column} differs from numpy by up to {worst:.3g}")


def first_outputs(step: Step, calls: int) -> list[Any]:
    """The outputs of ``calls`` calls of ``step``, one after the other (W1's second loss shows its update)."""
    return [value for _ in range(calls) for value in step()]


def graphc_step(workload: Workload, options: dict[str, Any]) -> Step:
    """A fresh Session's run of the workload's fetches (with its ops): new variables start from their initial values."""
    session = gc.Session(graph=workload.graph, **options)
    targets = [*workload.fetches, *workload.ops]
    return lambda: session.run(targets, feed_dict=workload.feeds)[:len(workload.fetches)]


def backend_problem(backend: str) -> str | None:
    """None when ``backend`` runs a tiny graph right; otherwise what went wrong, for the note that explains
    its missing column (a backend being built can fail in any way, so any exception counts)."""
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", (None,), name="x")
        y = gc.tanh(x) * 2.0 + 1.0
    values = np.linspace(-2, 2, 5, dtype=np.float32)
    try:
        with gc.Session(graph=g, backend=backend) as session:
            got = session.run(y, feed_dict={x: values})
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    if not np.allclose(got, np.tanh(values) * 2 + 1, rtol=1e-5, atol=1e-6):
        return f"tanh(x)·2 + 1 on {values.tolist()} gave {np.asarray(got).tolist()}"
    return None


@dataclass(frozen=True)
class Column:
    """A column of the table: its title and how to make a fresh step of a workload."""

    title: str
    make_step: Callable[[Workload], Step]


def available_columns(frameworks: dict[str, Any]) -> tuple[list[Column], list[str]]:
    """The columns after numpy's that can run here, and a note for each one that cannot, saying why."""
    columns = [Column("graphc numpy", lambda w: graphc_step(w, {"backend": "numpy"}))]
    notes = []
    for backend in COMPILED_BACKENDS:
        problem = backend_problem(backend)
        if problem is None:
            columns.append(Column(f"graphc {backend}", lambda w, b=backend: graphc_step(w, {"backend": b})))
        else:
            notes.append(f"no graphc {backend} column: gc.Session(backend={backend!r}) cannot run a tiny graph "
                         f"({problem.splitlines()[0]})")
    for name, title in FRAMEWORK_TITLES.items():
        if name in frameworks:
            columns.append(Column(title, lambda w, n=name: getattr(w, n)(frameworks[n])))
        else:
            notes.append(f"no {title} column: {name} is not installed")
    return columns, notes


def other_frameworks() -> dict[str, Any]:
    """torch and jax when importable (jax on the CPU, without its GPU probing messages); torch told to use
    every CPU this process may run on, as numpy's BLAS, XLA and graphc's llvm threads do."""
    found = {}
    for name in FRAMEWORK_TITLES:
        if importlib.util.find_spec(name) is not None:
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
            found[name] = importlib.import_module(name)
    if "torch" in found:
        found["torch"].set_num_threads(len(os.sched_getaffinity(0)))
    return found


@dataclass
class Row:
    """One workload's medians (seconds, by column title) and the columns that failed, with why."""

    workload: Workload
    medians: dict[str, float]
    failures: dict[str, str]


def measure(workload: Workload, repeats: int, columns: Sequence[Column]) -> Row:
    """Every column's median for one workload, numpy first; a column that fails is reported, not timed."""
    expected = [np.asarray(v, np.float64) for v in first_outputs(workload.numpy, workload.checked_calls)]
    row = Row(workload, {"numpy": median_seconds(workload.numpy, repeats)}, {})
    for column in columns:
        try:
            step = column.make_step(workload)
            check_close(workload.name, column.title, first_outputs(step, workload.checked_calls), expected,
                        rtol=workload.rtol, atol=workload.atol)
            row.medians[column.title] = median_seconds(step, repeats)
        except MismatchError as error:
            row.failures[column.title] = str(error)
        except Exception as error:  # one column crashing (a backend being built) must not hide the others
            row.failures[column.title] = (f"bench: {workload.name} on {column.title} raised "
                                          f"{type(error).__name__}: {error}")
    return row


# -- the memory-bandwidth floor of W2 --------------------------------------------------------------------
def copy_bandwidth(repeats: int) -> float:
    """Bytes per second of ``np.copyto`` between two 256 MiB float32 arrays: a copy reads and writes its bytes."""
    source = np.ones(COPY_BYTES // 4, np.float32)
    destination = np.empty_like(source)  # its pages are faulted in by median_seconds's untimed first copy
    return 2 * COPY_BYTES / median_seconds(lambda: np.copyto(destination, source), repeats)


def bandwidth_floor(w2_medians: dict[str, float], copies: int) -> dict[str, Any]:
    """W2's bytes over the copy bandwidth (``copies`` copies' median): no implementation can beat that time."""
    bandwidth = copy_bandwidth(copies)
    moved = W2_BYTES_PER_ELEMENT * W2_ELEMENTS
    return {"bytes": moved, "copy_gb_per_s": bandwidth / 1e9, "copies": copies, "floor_ms": moved / bandwidth * 1e3,
            "ratio_to_floor": {title: seconds * bandwidth / moved for title, seconds in w2_medians.items()}}


# -- W1's compile time on llvm, in fresh processes -------------------------------------------------------
def compile_child(cache: str) -> dict[str, Any]:
    """compile_time.py's JSON, run in a fresh process on the disk cache ``cache``, with its compile log lines."""
    env = {**os.environ, "GRAPHC_CACHE_DIR": cache, "GRAPHC_LOG": "compile"}
    done = subprocess.run([sys.executable, str(COMPILE_CHILD)], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{COMPILE_CHILD.name} exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    result["log"] = [line for line in done.stderr.splitlines() if line.startswith("graphc: compiled")]
    return result


def compile_times(runs: int) -> dict[str, Any]:
    """Cold (empty cache) and warm (the cold run's cache) first-run seconds of W1 on llvm, ``runs`` of each."""
    cold, warm, entries = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as cache:
            cold.append(compile_child(cache))
            entries.append(sum(1 for _ in Path(cache).rglob("*.gcc")))
            warm.append(compile_child(cache))
    times = {"cold_s": [r["first_run_s"] for r in cold], "warm_s": [r["first_run_s"] for r in warm],
             "import_graphc_s": [r["import_s"] for r in cold + warm]}
    return {"runs": runs, **times, **{f"{key[:-2]}_median_s": statistics.median(v) for key, v in times.items()},
            "cache_entries": entries, "cold_log": cold[-1]["log"], "warm_log": warm[-1]["log"]}


# -- the report ------------------------------------------------------------------------------------------
def table(rows: list[Row], titles: Sequence[str]) -> str:
    """One row per workload: each column's median in ms and, after the numpy column, its ratio to numpy."""
    header = ["workload", *titles]
    lines = []
    for row in rows:
        cells = [_cell(row.medians.get(t), None if t == "numpy" else row.medians["numpy"]) for t in titles]
        lines.append([f"{row.workload.name} {row.workload.what}", *cells])
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    rendered = [header, ["-" * w for w in widths], *lines]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(line, widths))).rstrip() for line in rendered)


def _cell(seconds: float | None, numpy_seconds: float | None) -> str:
    """A median in milliseconds, with its ratio to numpy's median unless it is numpy's; None: the column failed."""
    if seconds is None:
        return "failed"
    milliseconds = f"{seconds * 1e3:.2f} ms"
    return milliseconds if numpy_seconds is None else f"{milliseconds} ({seconds / numpy_seconds:.2f}×)"


def floor_line(floor: dict[str, Any]) -> str:
    """W2's bandwidth floor and each W2 column's time over it."""
    ratios = ", ".join(f"{title} {ratio:.2f}×" for title, ratio in floor["ratio_to_floor"].items())
    return (f"bandwidth floor of W2: {W2_BYTES_PER_ELEMENT} B/element × {W2_ELEMENTS:,} = "
            f"{floor['bytes'] / 2**20:.0f} MiB at {floor['copy_gb_per_s']:.1f} GB/s (np.copyto of "
            f"{COPY_BYTES // 2**20} MiB, one thread, median of {floor['copies']}) = {floor['floor_ms']:.2f} ms; "
            f"time ÷ floor: {ratios}")


def compile_lines(times: dict[str, Any]) -> list[str]:
    """W1's cold and warm compile times, the import time beside them, and the compile log lines."""
    lines = [f"compile time of W1 on llvm, Session built to first result, fresh processes (median of "
             f"{times['runs']}): cold {times['cold_median_s']:.3f} s (empty GRAPHC_CACHE_DIR), warm "
             f"{times['warm_median_s']:.3f} s (the same cache: disk hit); import graphc "
             f"{times['import_graphc_median_s']:.3f} s before that, not included"]
    if min(times["cache_entries"]) == 0:
        lines.append("  a cold run left no entry in its cache directory: the warm time is not a disk-cache hit")
    lines += [f"  cold: {line}" for line in times["cold_log"]] + [f"  warm: {line}" for line in times["warm_log"]]
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="graphc bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_REPEATS} timed calls per cell, not {REPEATS}; {QUICK_COPY_REPEATS} copies "
                             f"for the bandwidth floor, {QUICK_COMPILE_RUNS} compile of each kind (same sizes)")
    parser.add_argument("--only", metavar="W", action="append", choices=sorted(WORKLOADS),
                        help="run only this workload (repeatable): " + ", ".join(WORKLOADS))
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write every number to PATH, as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the workloads, print the table and the reference lines; 0 when every column ran and agreed."""
    args = parse_args(argv)
    repeats = QUICK_REPEATS if args.quick else REPEATS
    names = [name for name in WORKLOADS if name in (args.only or WORKLOADS)]
    frameworks = other_frameworks()
    columns, notes = available_columns(frameworks)
    cpus = len(os.sched_getaffinity(0))
    torch_threads = frameworks["torch"].get_num_threads() if "torch" in frameworks else None
    versions = {"numpy": np.__version__, **{name: module.__version__ for name, module in frameworks.items()}}
    print(f"graphc bench: median of {repeats} calls after a first untimed one; (×) = time / numpy's time, "
          f"measured in this run")
    load = os.getloadavg()[0]
    print(f"threads: CPUs usable {cpus} (os.sched_getaffinity; of {os.cpu_count()}), load average {load:.2f} "
          f"before this run; torch {torch_threads if torch_threads is not None else '-'} (torch.get_num_threads()); "
          + ", ".join(f"{name} {version}" for name, version in versions.items()))
    if load >= BUSY_LOAD:
        print("(other processes are running on these CPUs: a threaded column (torch, graphc llvm, BLAS) waits for its "
              "slowest thread at every join, so it can be many times slower than on an idle machine; "
              "`taskset -c 0` measures every column on one CPU)")
    rows = [measure(WORKLOADS[name](np.random.default_rng(0)), repeats, columns) for name in names]
    print(table(rows, ["numpy", *(column.title for column in columns)]))

    report: dict[str, Any] = {
        "repeats": repeats, "cpus": cpus, "cpu_count": os.cpu_count(), "torch_threads": torch_threads,
        "load_average": load, "versions": versions, "notes": notes,
        "workloads": {row.workload.name: {
            "what": row.workload.what, "median_ms": {t: s * 1e3 for t, s in row.medians.items()},
            "ratio_vs_numpy": {t: s / row.medians["numpy"] for t, s in row.medians.items()},
            "failures": row.failures} for row in rows}}
    if "W2" in names:
        copies = QUICK_COPY_REPEATS if args.quick else COPY_REPEATS
        report["w2_floor"] = bandwidth_floor(rows[names.index("W2")].medians, copies)
        print(floor_line(report["w2_floor"]))
    if "W1" in names and any(column.title == "graphc llvm" for column in columns):
        try:
            report["w1_compile"] = compile_times(QUICK_COMPILE_RUNS if args.quick else COMPILE_RUNS)
            print("\n".join(compile_lines(report["w1_compile"])))
        except RuntimeError as error:
            report["w1_compile"] = {"failure": str(error)}
            rows[names.index("W1")].failures["compile time"] = f"bench: W1 compile time: {error}"
    for note in notes:
        print(f"({note})")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    failures = [message for row in rows for message in row.failures.values()]
    for message in failures:
        print(message, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
