"""graphc's benchmark: each workload run by graphc's Session and written directly in numpy, in one process.

    python tools/bench/run.py            # about 20 s on 2 cores
    python tools/bench/run.py --quick    # fewer repeats, a few seconds: a smoke test of the numbers
    graphc bench [--quick]               # the same, through the graphc command

Every cell is the median of several timed calls after one untimed call (which builds the Session's plan);
a ratio is that cell's median over plain numpy's, measured in the same run, so a ratio below 1 means faster
than numpy. Before timing, every implementation's result is checked against numpy's.

The workloads are those of the LLVM backend issue, at the sizes that fit a short run:
  W2  out = tanh(a·b + c)·sigmoid(a − c) + exp(−b·b) on 2^20 float32 elements (memory-bound elementwise)
  W3  softmax cross-entropy (sparse labels), its mean and its gradient on (4096, 1000) float32 logits
  W4  the lecture's y = ln x1 + x1·x2 − sin x2 and both gradients on 2^20 float32 elements
Today graphc has one backend, ``numpy``: an interpreter that calls one numpy function per node, so it can
only be as fast as numpy plus its per-node overhead (and slower where numpy's temporaries are not
reused). The ``-O2`` column runs the same interpreter on the optimized graph (``Session(optimize=2)``).
Columns for compiled backends (``llvm``, from issue 6) appear by themselves once the backend exists; PyTorch
(eager) and JAX (``jit``) columns appear when those packages are importable.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import graphc as gc
from graphc.errors import CompileError

N_ELEMENTS = 2**20
W3_SHAPE = (4096, 1000)
REPEATS = 25
QUICK_REPEATS = 3
COMPILED_BACKENDS = ("llvm",)  # measured when graphc.backends has them


@dataclass(frozen=True)
class Workload:
    """One benchmark: a graph with its fetches and feeds, and the same computation in numpy and friends."""

    name: str
    what: str
    graph: gc.Graph
    fetches: list[gc.Tensor]
    feeds: dict[gc.Tensor, np.ndarray]
    numpy: Callable[[], Sequence[np.ndarray]]
    torch: Callable[[Any], Callable[[], Any]]  # given the torch module, a function to time
    jax: Callable[[Any], Callable[[], Any]]  # given the jax module, a function to time


# -- W2: elementwise --------------------------------------------------------------------------------------
def elementwise(rng: np.random.Generator) -> Workload:
    a, b, c = (rng.uniform(-2, 2, N_ELEMENTS).astype(np.float32) for _ in range(3))
    g = gc.Graph()
    with g.as_default():
        pa, pb, pc = (gc.placeholder("float32", (None,), name=n) for n in "abc")
        out = gc.tanh(pa * pb + pc) * gc.sigmoid(pa - pc) + gc.exp(-pb * pb)

    def numpy() -> list[np.ndarray]:
        return [np.tanh(a * b + c) * (1 / (1 + np.exp(c - a))) + np.exp(-b * b)]

    def torch(t: Any) -> Callable[[], Any]:
        ta, tb, tc = (t.from_numpy(v) for v in (a, b, c))
        return lambda: [t.tanh(ta * tb + tc) * t.sigmoid(ta - tc) + t.exp(-tb * tb)]

    def jax(j: Any) -> Callable[[], Any]:
        jnp = j.numpy
        f = j.jit(lambda a, b, c: [jnp.tanh(a * b + c) * j.nn.sigmoid(a - c) + jnp.exp(-b * b)])
        return lambda: j.block_until_ready(f(a, b, c))

    return Workload("W2", "tanh(a·b+c)·sigmoid(a−c)+exp(−b·b), 2^20 f32", g, [out], {pa: a, pb: b, pc: c},
                    numpy, torch, jax)


# -- W3: softmax cross-entropy forward and gradient --------------------------------------------------------
def softmax_cross_entropy(rng: np.random.Generator) -> Workload:
    logits = rng.normal(size=W3_SHAPE).astype(np.float32)
    labels = rng.integers(0, W3_SHAPE[1], W3_SHAPE[0])
    rows = np.arange(W3_SHAPE[0])
    g = gc.Graph()
    with g.as_default():
        z = gc.placeholder("float32", (None, W3_SHAPE[1]), name="logits")
        y = gc.placeholder("int64", (None,), name="labels")
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(z, y))
        (dz,) = gc.gradients(loss, [z])

    def numpy() -> list[np.ndarray]:
        shifted = logits - logits.max(axis=1, keepdims=True)
        exps = np.exp(shifted)
        sums = exps.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(sums[:, 0]) - shifted[rows, labels])
        grad = exps / sums
        grad[rows, labels] -= 1
        return [loss, grad / W3_SHAPE[0]]

    def torch(t: Any) -> Callable[[], Any]:
        tz, ty = t.from_numpy(logits), t.from_numpy(labels)

        def step() -> list[Any]:
            z = tz.detach().requires_grad_()
            loss = t.nn.functional.cross_entropy(z, ty)
            (grad,) = t.autograd.grad(loss, [z])
            return [loss, grad]
        return step

    def jax(j: Any) -> Callable[[], Any]:
        def loss(z: Any) -> Any:
            log_p = j.nn.log_softmax(z, axis=1)
            return -j.numpy.take_along_axis(log_p, labels[:, None], axis=1).mean()
        f = j.jit(j.value_and_grad(loss))
        return lambda: j.block_until_ready(list(f(logits)))

    return Workload("W3", "softmax cross-entropy + gradient, (4096, 1000) f32", g, [loss, dz],
                    {z: logits, y: labels}, numpy, torch, jax)


# -- W4: the lecture function and its gradients ------------------------------------------------------------
def lecture_function(rng: np.random.Generator) -> Workload:
    x1 = rng.uniform(0.5, 4, N_ELEMENTS).astype(np.float32)  # ln needs x1 > 0
    x2 = rng.uniform(-4, 4, N_ELEMENTS).astype(np.float32)
    g = gc.Graph()
    with g.as_default():
        p1, p2 = gc.placeholder("float32", (None,), name="x1"), gc.placeholder("float32", (None,), name="x2")
        y = gc.log(p1) + p1 * p2 - gc.sin(p2)
        d1, d2 = gc.gradients(y, [p1, p2])  # of sum(y): elementwise, the partial derivatives

    def numpy() -> list[np.ndarray]:
        return [np.log(x1) + x1 * x2 - np.sin(x2), 1 / x1 + x2, x1 - np.cos(x2)]

    def torch(t: Any) -> Callable[[], Any]:
        t1, t2 = t.from_numpy(x1), t.from_numpy(x2)

        def step() -> list[Any]:
            a, b = t1.detach().requires_grad_(), t2.detach().requires_grad_()
            y = t.log(a) + a * b - t.sin(b)
            return [y, *t.autograd.grad(y.sum(), [a, b])]
        return step

    def jax(j: Any) -> Callable[[], Any]:
        jnp = j.numpy

        def function(a: Any, b: Any) -> Any:
            return jnp.log(a) + a * b - jnp.sin(b)

        def step(a: Any, b: Any) -> list[Any]:
            y, pullback = j.vjp(function, a, b)
            return [y, *pullback(jnp.ones_like(y))]
        f = j.jit(step)
        return lambda: j.block_until_ready(f(x1, x2))

    return Workload("W4", "ln x1 + x1·x2 − sin x2 + both gradients, 2^20 f32", g, [y, d1, d2],
                    {p1: x1, p2: x2}, numpy, torch, jax)


WORKLOADS = {"W2": elementwise, "W3": softmax_cross_entropy, "W4": lecture_function}


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


def check_close(name: str, column: str, got: Sequence[Any], expected: Sequence[np.ndarray]) -> None:
    """A benchmark of wrong results is worthless: compare every output with numpy's first."""
    for i, (value, reference) in enumerate(zip(got, expected, strict=True)):
        value = np.asarray(value.detach() if hasattr(value, "detach") else value, dtype=np.float64)
        if not np.allclose(value, reference, rtol=2e-4, atol=2e-5):
            worst = np.max(np.abs(value - reference))
            raise MismatchError(f"bench: {name} output {i} from {column} differs from numpy by up to {worst:.3g}")


def graphc_columns() -> list[tuple[str, dict[str, Any]]]:
    """(column title, Session arguments) for every graphc backend that exists in this checkout."""
    columns = [("graphc numpy", {"backend": "numpy"}), ("graphc numpy -O2", {"backend": "numpy", "optimize": 2})]
    for backend in COMPILED_BACKENDS:
        try:
            gc.Session(backend=backend).close()
        except CompileError:  # not built yet
            continue
        columns.append((f"graphc {backend}", {"backend": backend}))
    return columns


def other_frameworks() -> dict[str, Any]:
    """torch and jax when importable (jax on the CPU, without its GPU probing messages)."""
    found = {}
    for name in ("torch", "jax"):
        if importlib.util.find_spec(name) is not None:
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
            found[name] = importlib.import_module(name)
    if "torch" in found:
        found["torch"].set_num_threads(os.cpu_count() or 1)
    return found


def measure(workload: Workload, repeats: int, frameworks: dict[str, Any]) -> dict[str, float]:
    """Column title → median seconds for one workload, numpy first."""
    expected = [np.asarray(v, np.float64) for v in workload.numpy()]
    medians = {"numpy": median_seconds(workload.numpy, repeats)}
    for title, options in graphc_columns():
        with gc.Session(graph=workload.graph, **options) as session:
            def step(session: gc.Session = session) -> Any:
                return session.run(workload.fetches, feed_dict=workload.feeds)
            check_close(workload.name, title, step(), expected)
            medians[title] = median_seconds(step, repeats)
    for name, module in frameworks.items():
        step = getattr(workload, name)(module)
        check_close(workload.name, name, step(), expected)
        medians["torch eager" if name == "torch" else "jax jit"] = median_seconds(step, repeats)
    return medians


# -- the table -------------------------------------------------------------------------------------------
def table(rows: list[tuple[Workload, dict[str, float]]]) -> str:
    """One row per workload: each column's median in ms and, after the numpy column, its ratio to numpy."""
    columns = list(rows[0][1])
    header = ["workload", *columns]
    lines = []
    for workload, medians in rows:
        cells = [_cell(medians[c], None if c == "numpy" else medians["numpy"]) for c in columns]
        lines.append([f"{workload.name} {workload.what}", *cells])
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    rendered = [header, ["-" * w for w in widths], *lines]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))).rstrip() for row in rendered)


def _cell(seconds: float, numpy_seconds: float | None) -> str:
    """A median in milliseconds, with its ratio to numpy's median unless it is numpy's."""
    milliseconds = f"{seconds * 1e3:.2f} ms"
    return milliseconds if numpy_seconds is None else f"{milliseconds} ({seconds / numpy_seconds:.2f}×)"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="graphc bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPEATS} timed calls per cell, not {REPEATS}")
    parser.add_argument("--only", metavar="W", action="append", choices=sorted(WORKLOADS),
                        help="run only this workload (repeatable): " + ", ".join(WORKLOADS))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the workloads and print the table; 0 on success."""
    args = parse_args(argv)
    repeats = QUICK_REPEATS if args.quick else REPEATS
    frameworks = other_frameworks()
    rng = np.random.default_rng(0)
    names = args.only or list(WORKLOADS)
    print(f"graphc bench: median of {repeats} calls after a first untimed one; (×) = time / numpy's time, "
          f"measured in this run; {os.cpu_count()} CPUs, numpy {np.__version__}")
    if not frameworks:
        print("(PyTorch and JAX are not installed: no columns for them)")
    rows = []
    for name in names:
        workload = WORKLOADS[name](rng)
        try:
            rows.append((workload, measure(workload, repeats, frameworks)))
        except MismatchError as error:
            print(error, file=sys.stderr)
            return 1
    print(table(rows))
    print("graphc numpy: the reference interpreter, one numpy call per node of the graph as built; -O2: the same "
          "on gc.optimize's graph.\nIt is graphc's only backend today; compiled backends (llvm) get a column here "
          "once they exist.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
