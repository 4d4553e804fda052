"""The CUDA renderer without a GPU: every op's and every example graph's program compiles with nvcc to PTX for
sm_80 and sm_90 with warnings as errors; the launches have the shape the runtime expects; and the scalar
arithmetic, compiled as host C++, agrees with numpy on the edge cases (NaN, infinities, negative operands), and
launches run on a simulated grid (collapsed nests, column reductions interchanged) give numpy's results."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.backends.cuda import render as render_module
from graphc.backends.cuda.render import PRELUDE, CudaModule, GemmCall, Launch, render
from graphc.errors import CompileError
from graphc.graph.node import Tensor
from graphc.lower import ir
from graphc.lower.program import lower
from graphc.ops import scalar
from graphc.passes.fusion import plan_kernels
from graphc.passes.partition import Kind
from graphc.passes.pipeline import optimize as optimize_graph
from graphc.runtime.feeds import check_feeds
from graphc.runtime.fetches import flatten_fetches
from graphc.runtime.optimized import OptimizedExecutable
from graphc.runtime.plan import make_plan
from tests.backends.cuda.emulate import GXX, HOST_SHIMS, compile_host
from tests.ops.harness import _as_tuple
from tests.ops.test_ops import ALL_CASES

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not on PATH")
ARCHITECTURES = ("sm_80", "sm_90")
BENCH = Path(__file__).resolve().parents[3] / "tools" / "bench"


# -- programs as the backends get them ---------------------------------------------------------------------
class _Lowering:
    """A backend module whose ``compile`` stops at the lowered program (what the llvm and cuda backends render)."""

    @staticmethod
    def compile(plan: object) -> ir.Program:
        partition = plan_kernels(plan.graph, plan.targets)
        fetched = [t for t in plan.targets if isinstance(t, Tensor)
                   and partition.kernel_of[t.node].kind != Kind.SOURCE]
        return lower(partition, fetched).program


def program_of(graph: gc.Graph, fetches: list, feed_dict: dict) -> ir.Program:
    """The program a Session compiles for ``fetches`` with ``feed_dict`` (optimized at level 2, as on llvm)."""
    targets, _ = flatten_fetches(graph, fetches)
    feeds = check_feeds(graph, feed_dict)
    plan = make_plan(graph, tuple(targets), frozenset(feeds))
    optimized = optimize_graph(tuple(targets), level=2, feed_dict={n.outputs[0]: v for n, v in feeds.items()})
    return OptimizedExecutable(plan, optimized, _Lowering).inner


def case_programs() -> list[tuple[str, ir.Program]]:
    """Every op case's program, with static and with all-None placeholder shapes."""
    rng = np.random.default_rng(0)
    programs = []
    for case in ALL_CASES:
        arrays = [np.asarray(a) for a in case.make_inputs(rng)]
        for unknown in ([False, True] if case.unknown_dims else [False]):
            graph = gc.Graph()
            with graph.as_default():
                placeholders = [gc.placeholder(a.dtype.name, (None,) * a.ndim if unknown else a.shape, name=f"in{i}")
                                for i, a in enumerate(arrays)]
                outputs = _as_tuple(case.build(*placeholders))
            label = f"{case.id}{' (None dims)' if unknown else ''}"
            programs.append((label, program_of(graph, list(outputs), dict(zip(placeholders, arrays)))))
    return programs


def bench_workloads(names: tuple[str, ...] = ("W1", "W5", "W6")) -> dict[str, object]:
    """The benchmark's workloads (tools/bench/run.py ``Workload``s: graph, fetches, feeds, ops) by name, built
    from seed 0; by default the training steps of W1 (MLP), W5 (CNN) and W6 (transformer block)."""
    sys.path.insert(0, str(BENCH))
    try:
        run = importlib.import_module("run")
        return {name: run.WORKLOADS[name](np.random.default_rng(0)) for name in names}
    finally:
        sys.path.remove(str(BENCH))


def example_programs() -> list[tuple[str, ir.Program]]:
    """The training steps of the benchmark's W1 (MLP), W5 (CNN) and W6 (transformer block)."""
    return [(name, program_of(w.graph, [*w.fetches, *w.ops], w.feeds)) for name, w in bench_workloads().items()]


# -- compiling with nvcc -----------------------------------------------------------------------------------
def translation_unit(programs: list[tuple[str, ir.Program]]) -> tuple[str, list[tuple[int, str]]]:
    """One CUDA source holding every program (function prefixes ``p<n>``), and the first line of each."""
    parts, starts, line = [PRELUDE], [], PRELUDE.count("\n") + 1
    for n, (label, program) in enumerate(programs):
        source = render(program, prefix=f"p{n}").source
        assert source.startswith(PRELUDE)
        body = source[len(PRELUDE):]  # the prelude once for all
        starts.append((line, label))
        parts.append(body)
        line += body.count("\n") + 1
    return "\n".join(parts), starts


def nvcc(source: str, directory: Path, architecture: str, optimize: bool) -> subprocess.CompletedProcess:
    """``source`` compiled to PTX for ``architecture``, warnings as errors (unoptimized: much faster, and every
    diagnostic comes from the front end)."""
    path = directory / f"unit_{architecture}.cu"
    path.write_text(source)
    flags = [] if optimize else ["-Xcicc", "-O0"]
    command = [NVCC, "-ptx", f"-arch={architecture}", "--Werror", "all-warnings", *flags,
               "-o", str(path.with_suffix(".ptx")), str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def check_compiles(programs: list[tuple[str, ir.Program]], directory: Path, optimize: bool) -> None:
    source, starts = translation_unit(programs)
    with ThreadPoolExecutor(len(ARCHITECTURES)) as pool:
        results = list(pool.map(lambda arch: nvcc(source, directory, arch, optimize), ARCHITECTURES))
    for architecture, result in zip(ARCHITECTURES, results):
        if result.returncode != 0:
            raise AssertionError(f"nvcc for {architecture} failed:\n{_blame(result.stderr, starts)}")
        assert (directory / f"unit_{architecture}.ptx").stat().st_size > 0


def _blame(stderr: str, starts: list[tuple[int, str]]) -> str:
    """nvcc's messages, each line number followed by the program it falls in."""
    lines = []
    for message in stderr.splitlines()[:60]:
        marker = message.split("(", 1)[1].split(")", 1)[0] if ".cu(" in message else ""
        if marker.isdigit():
            owner = [label for start, label in starts if start <= int(marker)]
            message += f"    <- {owner[-1] if owner else 'prelude'}"
        lines.append(message)
    return "\n".join(lines)


@needs_nvcc
def test_every_op_case_compiles_to_ptx(tmp_path):
    check_compiles(case_programs(), tmp_path, optimize=False)


@needs_nvcc
def test_example_training_steps_compile_to_optimized_ptx(tmp_path):
    check_compiles(example_programs(), tmp_path, optimize=True)


# -- the structure the runtime relies on -------------------------------------------------------------------
def _buffer(name: str, dtype: str, *shape: int | ir.Expr, role: str = "temp") -> ir.Buffer:
    return ir.Buffer(name, dtype, tuple(ir.as_expr(s) for s in shape), role)


def _functions(module: CudaModule) -> dict[str, str]:
    """Each ``__global__`` function's text, by name."""
    chunks = module.source.split('extern "C" __global__ void ')[1:]
    return {chunk.split("(", 1)[0]: chunk.split("\n}", 1)[0] for chunk in chunks}


def _row_sum(start: float) -> ir.Program:
    """``out[i] = start + sum_j exp(x[i, j])`` over run-time rows of 8 columns, as the lowering builds it."""
    x, out = _buffer("x", "float32", ir.Dim(1), 8, role="feed"), _buffer("out", "float32", ir.Dim(1))
    i, j, total = ir.Index("i0"), ir.Index("i1"), ir.Local("acc0", "float32")
    row = (ir.Declare(total, scalar.constant(start, "float32")), ir.Loop(j, ir.const(8), (
        ir.Assign(total, scalar.add(total, scalar.exp(ir.Load(x, ir.add(ir.mul(i, 8), j)))), reassociate=True),)),
        ir.Store(out, i, total))
    return ir.Program([x, out], [ir.LoopKernel("k0", (ir.Loop(i, ir.Dim(1), row, parallel=True),))],
                      ["run count", "x.shape[0]"])


def test_row_reduction_is_a_launch_of_one_block_per_row_reducing_by_warp_shuffles():
    module = render(_row_sum(0.0))
    (launch,) = module.steps
    assert launch == Launch("graphc_k0_0", (0, 1), ir.mul(ir.Dim(1), ir.const(render_module.BLOCK)))
    assert render_module.BLOCK == 256 and module.kernel_of_step == (0,)
    text = _functions(module)["graphc_k0_0"]
    assert "const float* __restrict__ b0, float* __restrict__ b1, const long long* __restrict__ dims" in text
    assert "for (long long i0 = blockIdx.x; i0 < n_i0; i0 += gridDim.x)" in text  # blocks stride over rows
    assert "for (long long i1 = threadIdx.x, n_i1 = 8LL; i1 < n_i1; i1 += blockDim.x)" in text
    assert "GRAPHC_SHARED(float, partial_float32, 8);" in text and "acc0 = partial_float32[0];" in text
    assert text.count("__shfl_down_sync(0xffffffffu, acc0, offset)") == 2  # within the warps, then across them
    assert text.index("__syncthreads();") < text.index("if (failed[0]) return;")  # the status, block-wide
    # a sum that starts from a value other than 0 would add it once per thread: a thread per row, as before
    (serial,) = render(_row_sum(1.0)).steps
    assert serial.threads == ir.Dim(1)
    text = _functions(render(_row_sum(1.0)))["graphc_k0_0"]
    assert "for (long long i0 = (long long)blockIdx.x * blockDim.x + threadIdx.x; i0 < n_i0; " \
           "i0 += (long long)gridDim.x * blockDim.x)" in text
    assert "for (long long i1 = 0, n_i1 = 8LL; i1 < n_i1; ++i1)" in text and "__syncthreads" not in text


def test_softmax_and_cross_entropy_rows_become_block_per_row_launches():
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, 1000), name="x")
        labels = gc.placeholder("int64", (None,), name="labels")
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(x, labels))
        fetches = [gc.nn.softmax(x), gc.reduce_sum(x, axis=1), loss, gc.gradients(loss, [x])[0]]
    module = render(program_of(graph, fetches, {x: np.zeros((4, 1000), np.float32), labels: np.zeros(4, np.int64)}))
    def unguarded(launch: Launch) -> ir.Expr:
        guarded = isinstance(launch.threads, scalar.Call) and launch.threads.primitive.name == "select"
        return launch.threads.args[1] if guarded else launch.threads

    launches = [s for s in module.steps if isinstance(s, Launch)]
    rows = [s for s in launches if isinstance(unguarded(s), scalar.Call) and unguarded(s).primitive.name == "mul"]
    assert rows and all(unguarded(s).args[1] == ir.const(256) for s in rows)
    # the mean over the rows' losses is one block, or a grid for many rows (test_full_reduction_...); nothing is
    # serial
    assert all(s in rows or unguarded(s) == ir.const(256) or unguarded(s).primitive.name == "minimum"
               for s in launches)
    functions = _functions(module)
    for launch in rows:
        text = functions[launch.function]
        assert "blockIdx.x; " in text and text.count("= partial_float32[0];") >= 2  # a max, then a sum


def _elementwise(shape: tuple[int | ir.Expr, ...], value: object, transposed: bool = False) -> ir.Program:
    """``out = value(x element, y element)`` over ``shape`` as the lowering builds it: a parallel nest over the
    output with row-major indices, x read in the same order (or, ``transposed``, with its two axes swapped:
    a 2-D x of the transposed shape) and y broadcast along every axis but the middle (or only) one."""
    shape = tuple(ir.as_expr(s) for s in shape)
    x_shape = shape[::-1] if transposed else shape
    x, y = _buffer("x", "float64", *x_shape, role="feed"), _buffer("y", "float64", shape[len(shape) // 2], role="feed")
    out = _buffer("out", "float64", *shape, role="output")
    names = ir.Namer()

    def element(i: tuple[ir.Index, ...]) -> list[ir.Stmt]:
        at = i[::-1] if transposed else i
        load_x = ir.Load(x, ir.flat_index(at, ir.row_major_strides(x_shape)))
        return [ir.Store(out, ir.flat_index(i, ir.row_major_strides(shape)),
                         value(load_x, ir.Load(y, i[len(shape) // 2])))]

    body = ir.loop_nest(names, shape, element, parallel=True)
    return ir.Program([x, y, out], [ir.LoopKernel("k0", body)], ["run count", "n", "m", "k"])


def test_perfect_nest_collapses_into_one_launch_of_the_product_of_its_extents():
    module = render(_elementwise((128, 512), scalar.add))
    (launch,) = module.steps
    assert launch.threads == ir.const(128 * 512)
    text = _functions(module)["graphc_k0_0"]
    assert "for (long long flat_i0 = (long long)blockIdx.x * blockDim.x + threadIdx.x; flat_i0 < n_flat_i0;" in text
    assert "const long long i1 = flat_i0 % n_i1;" in text and "const long long i0 = flat_i0 / n_i1;" in text
    symbolic = render(_elementwise((ir.Dim(1), ir.Dim(2), ir.Dim(3)), scalar.mul))
    assert symbolic.steps[0].threads == ir.product([ir.Dim(1), scalar.maximum(ir.Dim(2), ir.const(0)),
                                                    scalar.maximum(ir.Dim(3), ir.const(0))])
    assert ir.evaluate_size(symbolic.steps[0].threads, [1, 2, 3, 4]) == 24
    assert ir.evaluate_size(symbolic.steps[0].threads, [1, 2, -3, -4]) == 0  # empty loops: no threads
    assert render(_elementwise((5, 3), scalar.add, transposed=True)).steps[0].threads == ir.const(15)


def test_nests_whose_inner_iterations_may_collide_stay_one_thread_per_outer_iteration():
    x, out = _buffer("x", "float32", 4, 8, role="feed"), _buffer("out", "float32", 4, 8)
    i, j = ir.Index("i0"), ir.Index("i1")

    def nest(*body: ir.Stmt) -> tuple[Launch, ...]:
        loop = ir.Loop(i, ir.const(4), (ir.Loop(j, ir.const(8), body),), parallel=True)
        return render(ir.Program([x, out], [ir.LoopKernel("k0", (loop,))], ["run count"])).steps

    at = ir.add(ir.mul(i, 8), j)
    previous = ir.Load(out, ir.sub(at, 1))  # a running sum along the row reads the element before
    assert nest(ir.Store(out, at, scalar.add(previous, ir.Load(x, at))))[0].threads == ir.const(4)
    assert nest(ir.Store(out, ir.mul(i, 8), ir.Load(x, at)))[0].threads == ir.const(4)  # one element per row
    scatter = ir.add(ir.mul(i, 8), scalar.cast(ir.Load(x, at), "int64"))  # an index read from memory
    assert nest(ir.Store(out, scatter, ir.Load(x, at)))[0].threads == ir.const(4)
    overlapping = ir.add(ir.mul(i, 8), ir.integer(ir.FLOORDIV, j, 2))
    assert nest(ir.Store(out, overlapping, ir.Load(x, at)))[0].threads == ir.const(4)
    assert nest(ir.Store(out, at, ir.Load(x, at)))[0].threads == ir.const(32)  # each element its own
    k, v = ir.Index("i2"), ir.Local("v0", "float32")  # a loop below each (i0, i1) iteration's statements

    def below(index: ir.Expr) -> tuple[ir.Stmt, ...]:
        return ir.Declare(v, ir.Load(x, at)), ir.Loop(k, ir.const(2), (ir.Store(out, index, v),))

    assert nest(*below(ir.add(ir.mul(i, 8), ir.add(j, k))))[0].threads == ir.const(4)  # interleaves: 1 < 8·1
    spaced = nest(*below(ir.add(ir.mul(i, 16), ir.add(ir.mul(j, 2), k))))
    assert spaced[0].threads == ir.const(32)


def test_serial_statements_share_one_launch_and_fail_sets_the_status():
    x, out = _buffer("x", "int64", 4, role="feed"), _buffer("out", "int64", 4)
    i = ir.Index("i0")
    check = ir.If(scalar.ne(ir.Dim(1), ir.const(4)), (ir.Fail(2),))
    copy = ir.Loop(i, ir.const(4), (ir.Store(out, i, ir.Load(x, i)),), parallel=True)
    total = ir.Local("acc0", "int64")
    reduce = [ir.Declare(total, ir.const(0)), ir.Loop(ir.Index("i1"), ir.const(4), (
        ir.Assign(total, scalar.add(total, ir.Load(x, ir.Index("i1"))), reassociate=True),)),
        ir.Store(out, ir.const(0), total)]
    program = ir.Program([x, out], [ir.LoopKernel("k0", (check, copy, *reduce))], ["run count", "n"], ["bad", "size"])
    module = render(program)  # the sum to one value is one block (test_full_reduction_...)
    assert [s.threads for s in module.steps] == [ir.const(1), ir.const(4), ir.const(render_module.BLOCK)]
    functions = _functions(module)
    assert list(functions) == ["graphc_k0_0", "graphc_k0_1", "graphc_k0_2"]
    for name in ("graphc_k0_0", "graphc_k0_1"):  # nothing runs after a failure
        assert functions[name].split("{", 1)[1].lstrip().startswith("if (*status) return;")
    assert "  __syncthreads();\n  if (failed[0]) return;" in functions["graphc_k0_2"]  # the status, block-wide
    assert "{ atomicCAS(status, 0, 2); return; }" in functions["graphc_k0_0"]
    assert "acc0 = gc_add(acc0, b0[i1]);" in functions["graphc_k0_2"]
    assert render(program).source == module.source  # deterministic: the source is a cache key


def _full_sum(start: float = 0.0, reassociate: bool = True, *extra: ir.Stmt, rows: int | ir.Expr = 100,
              columns: int = 8) -> ir.Program:
    """``out[0] = start + sum(x)`` over x of [rows, columns] in float32 as the lowering builds a full reduction (a
    nest of two sequential loops accumulating into one local), ``extra`` statements in the inner loop."""
    x, out = _buffer("x", "float32", rows, columns, role="feed"), _buffer("out", "float32", role="output")
    i, j, total = ir.Index("i0"), ir.Index("i1"), ir.Local("acc0", "float32")
    add = ir.Assign(total, scalar.add(total, ir.Load(x, ir.add(ir.mul(i, columns), j))), reassociate=reassociate)
    body = (ir.Declare(total, scalar.constant(start, "float32")),
            ir.Loop(i, ir.as_expr(rows), (ir.Loop(j, ir.const(columns), (add, *extra)),)),
            ir.Store(out, ir.const(0), total))
    stored = [s.buffer for s in extra if isinstance(s, ir.Store)]
    return ir.Program([x, out, *stored], [ir.LoopKernel("k0", body)], ["run count", "x.shape[0]"], ["bad"])


def test_full_reduction_to_one_value_is_one_launch_of_one_block():
    """A sum into one local (a mean, a loss) runs as a block per row of a single row: the block's threads split
    the collapsed nest of element loops and combine their partial sums in shared memory."""
    module = render(_full_sum())
    (launch,) = module.steps
    assert launch == Launch("graphc_k0_0", (0, 1), ir.const(render_module.BLOCK))
    text = _functions(module)["graphc_k0_0"]
    assert "for (long long row = blockIdx.x; row < n_row; row += gridDim.x)" in text  # one block does the work
    assert "for (long long flat_i0 = threadIdx.x; flat_i0 < n_flat_i0; flat_i0 += blockDim.x)" in text
    assert "const long long n_flat_i0 = n_i0 * n_i1;" in text and "acc0 = partial_float32[0];" in text
    assert text.index("acc0 = partial_float32[0];") < text.index("b1[0LL] = acc0;")  # every thread stores the sum
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, 1000), name="x")
        mean = gc.reduce_mean(x)
    # the number of elements is known at run time only: one block for up to GRID_REDUCTION_MIN of them, else
    # a grid of blocks then one block (test_full_reduction_over_many_elements_...); the host runs one or two
    small, first, second = render(program_of(graph, [mean], {x: np.zeros((4, 1000), np.float32)})).steps
    few, many = np.array([0, 4, 4, 4], np.int64), np.array([0, 1000, 1000, 1000], np.int64)
    assert [ir.evaluate_size(s.threads, few) for s in (small, first, second)] == [256, 0, 0]
    most = render_module.GRID_MAX * render_module.BLOCK  # pass 1's threads, at most
    assert [ir.evaluate_size(s.threads, many) for s in (small, first, second)] == [0, most, 256]


def test_full_reduction_over_many_elements_runs_on_a_grid_then_one_block():
    """Past GRID_REDUCTION_MIN known elements: pass 1 strides the grid (at most GRID_MAX blocks) over them, each
    block storing its partial sum in its slot; pass 2 is one block folding the slots and finishing."""
    assert render_module.GRID_REDUCTION_MIN < 300 * 1000
    module = render(_full_sum(rows=300, columns=1000))
    first, second = module.steps
    assert ir.evaluate_size(first.threads, [0]) == render_module.GRID_MAX * render_module.BLOCK  # the most
    assert second.threads == ir.const(render_module.BLOCK)
    one, two = _functions(module).values()
    assert "__device__ float graphc_k0_partial_acc0[1024];" in module.source
    assert "for (long long flat_i0 = (long long)blockIdx.x * blockDim.x + threadIdx.x;" in one
    assert "graphc_k0_partial_acc0[blockIdx.x] = acc0;" in one and "graphc_k0_blocks_acc0 = gridDim.x" in one
    assert "b1[0LL]" not in one  # the sum is stored by pass 2 only
    assert "slot < graphc_k0_blocks_acc0" in two and "acc0 = (acc0 + graphc_k0_partial_acc0[slot]);" in two
    assert "b1[0LL] = acc0;" in two


def test_full_reductions_the_block_cannot_combine_stay_serial():
    i1 = ir.Index("i1")
    fail = ir.If(scalar.gt(i1, ir.const(9)), (ir.Fail(1),))  # which failure is reported must stay the serial one
    total = ir.Local("acc0", "float32")
    prefix = ir.Store(_buffer("scan", "float32", 8), i1, total)  # reads the running sum: a scan, not a reduction
    for program in (_full_sum(1.0), _full_sum(0.0, False), _full_sum(0.0, True, fail), _full_sum(0.0, True, prefix)):
        (launch,) = render(program).steps
        assert launch.threads == ir.const(1)


def test_size_test_around_parallel_loops_becomes_guarded_launches():
    out = _buffer("out", "float32", ir.Dim(1))
    i = ir.Index("i0")
    fill = ir.Loop(i, ir.Dim(1), (ir.Store(out, i, scalar.constant(1.5, "float32")),), parallel=True)
    other = ir.Loop(i, ir.Dim(1), (ir.Store(out, i, scalar.constant(-2.0, "float32")),), parallel=True)
    choice = ir.If(scalar.eq(ir.Dim(1), ir.const(3)), (fill,), (other,))
    module = render(ir.Program([out], [ir.LoopKernel("k0", (choice,))], ["run count", "n"]))
    dims = [np.array([0, n], np.int64) for n in (3, 5)]
    assert [[ir.evaluate_size(s.threads, d) for s in module.steps] for d in dims] == [[3, 0], [0, 5]]
    first, second = _functions(module).values()
    assert "if (!(dim_1 == 3LL)) return;" in first and "b0[i0] = 1.5f;" in first
    assert "if (!(!(dim_1 == 3LL))) return;" in second and "b0[i0] = (-2.0f);" in second


def test_gemm_in_a_batch_loop_is_a_host_gemm_call_with_its_loop():
    a, b, c = (_buffer(n, "float32", 3, 4, 4) for n in "abc")
    batch = ir.Index("i0")
    at = ir.mul(batch, 16)
    gemm = ir.Gemm("float32", False, True, ir.const(4), ir.const(4), ir.const(4), a, at, ir.const(4), b, at,
                   ir.const(4), c, at, ir.const(4))
    program = ir.Program([a, b, c], [ir.LoopKernel("k0", (ir.Loop(batch, ir.const(3), (gemm,)),))], ["run count"])
    module = render(program)
    assert module.steps == (GemmCall(gemm, ((batch, ir.const(3)),)),) and module.kernel_of_step == (0,)
    guarded = ir.If(scalar.eq(ir.Dim(0), ir.const(1)), (gemm,))
    with pytest.raises(CompileError, match="k0"):
        render(ir.Program([a, b, c], [ir.LoopKernel("k0", (ir.Loop(batch, ir.const(3), (guarded,)),))], ["n"]))


def test_constants_are_exact_literals():
    assert render_module.constant(0.1, "float64") == "0.1"
    assert render_module.constant(float(np.float32(0.1)), "float32") == "0.1f"
    assert render_module.constant(-3.0, "float64") == "(-3.0)"
    assert render_module.constant(float("-inf"), "float32") == "(-__builtin_huge_valf())"
    assert render_module.constant(-2**63, "int64") == "(-9223372036854775807LL - 1LL)"
    assert render_module.constant(-5, "int32") == "(-5)" and render_module.constant(True, "bool") == "true"


# -- the arithmetic, compiled as host C++ -----------------------------------------------------------------
INTS = {"int32": np.array([0, 1, -1, 7, -7, 3, -3, 2**31 - 1, -2**31, 100], np.int32),
        "int64": np.array([0, 1, -1, 7, -7, 3, -3, 2**63 - 1, -2**63, 100], np.int64)}
COUNTS = {"int32": np.array([0, 1, 5, 31, 32, 33, -1, 64, 3, 31], np.int32),
          "int64": np.array([0, 1, 5, 63, 64, 65, -1, 32, 3, 200], np.int64)}
SPECIAL = [0.0, -0.0, 1.5, -1.5, 2.5, -2.7, np.nan, np.inf, -np.inf, 3e9, -3e9, 1e20, 0.1, 7.0]
FLOATS = {d: np.array(SPECIAL, d) for d in ("float32", "float64")}


def _host_cases() -> list[tuple[str, object, list[np.ndarray], np.ndarray]]:
    """(label, expression of operands, operand arrays, expected result) of the edge cases."""
    cases = []
    for dtype, x in INTS.items():
        y = np.roll(x, 3)
        for name in ("floordiv", "mod", "bitand", "bitor", "bitxor"):
            primitive = getattr(ir, name.upper())
            cases.append((f"{name}-{dtype}", lambda a, b, p=primitive: ir.integer(p, a, b), [x, y],
                          primitive.numpy(x, y)))
        for name, primitive in (("shl", ir.SHL), ("shr", ir.SHR)):
            cases.append((f"{name}-{dtype}", lambda a, b, p=primitive: ir.integer(p, a, b), [x, COUNTS[dtype]],
                          np.where((COUNTS[dtype] >= 0) & (COUNTS[dtype] < x.itemsize * 8),
                                   primitive.numpy(x, np.clip(COUNTS[dtype], 0, x.itemsize * 8 - 1)), 0)))
        for name in ("add", "sub", "mul", "maximum", "minimum"):  # integer arithmetic wraps
            numpy = {"sub": np.subtract, "mul": np.multiply}.get(name) or getattr(np, name)
            cases.append((f"{name}-{dtype}", getattr(scalar, name), [x, y], numpy(x, y)))
        cases.append((f"neg-abs-{dtype}", lambda a: scalar.abs(-a), [x], np.abs(-x)))
        exponent = np.array([0, 1, 2, 3, 5, -1, -4, 63, 2, 0], x.dtype)
        cases.append((f"pow-{dtype}", scalar.pow, [x, exponent],
                      np.where(exponent < 0, 0, np.power(x, np.maximum(exponent, 0)))))
        cases.append((f"cast-{dtype}-bool", lambda a: scalar.cast(a, "bool"), [x], x.astype(bool)))
    for dtype, x in FLOATS.items():
        y = np.roll(x, 5)
        for name in ("maximum", "minimum", "add", "sub", "mul", "div", "lt", "le", "gt", "ge", "eq", "ne"):
            cases.append((f"{name}-{dtype}", getattr(scalar, name), [x, y], getattr(scalar, name.upper()).numpy(x, y)))
        for target in ("int32", "int64"):
            info = np.iinfo(target)  # truncated, saturated, NaN gives 0 (Python integers: exact)
            expected = np.array([0 if np.isnan(v) else info.max if v >= -info.min else info.min if v <= info.min
                                 else int(v) for v in x.tolist()], target)
            cases.append((f"cast-{dtype}-{target}", lambda a, t=target: scalar.cast(a, t), [x], expected))
        other = "float32" if dtype == "float64" else "float64"
        cases.append((f"cast-{dtype}-{other}", lambda a, t=other: scalar.cast(a, t), [x], x.astype(other)))
        cases.append((f"cast-{dtype}-bool", lambda a: scalar.cast(a, "bool"), [x], x.astype(bool)))
        cases.append((f"select-{dtype}", lambda a, b: scalar.select(a > b, a, b * 2), [x, y],
                      np.where(x > y, x, y * 2)))
    return cases


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_scalar_semantics_compiled_as_host_code_match_numpy(tmp_path):
    import ctypes

    with np.errstate(all="ignore"):
        cases = _host_cases()
    programs = []
    for label, build, operands, expected in cases:
        size = ir.const(len(operands[0]))
        inputs = [_buffer(f"in{k}", a.dtype.name, size, role="feed") for k, a in enumerate(operands)]
        i = ir.Index("i0")
        value = build(*(ir.Load(b, i) for b in inputs))
        out = _buffer("out", value.dtype, size, role="output")
        assert value.dtype == expected.dtype.name, label
        programs.append((label, ir.Program([*inputs, out], [ir.LoopKernel("k0", (
            ir.Loop(i, size, (ir.Store(out, i, value),)),))], ["run count"])))
    loaded = _host_library(programs, tmp_path)
    loaded.gc_set_thread(0, 0, 1, 1)  # the loops, provably independent, are grid-stride launches: one thread
    dims, failures = np.zeros(1, np.int64), []
    for n, (label, _, operands, expected) in enumerate(cases):
        got = np.zeros_like(expected)
        status = np.zeros(1, np.int32)
        getattr(loaded, f"p{n}_k0_0")(*(a.ctypes.data_as(ctypes.c_void_p) for a in (*operands, got, dims, status)))
        same = (got == expected) | (np.isnan(got) & np.isnan(expected) if got.dtype.kind == "f" else False)
        if not same.all() or status[0]:
            failures.append(f"{label}: {operands} gave {got}, numpy {expected}")
    assert not failures, "\n".join(failures)


def _host_library(programs: list[tuple[str, ir.Program]], directory: Path) -> object:
    """The programs' rendered functions compiled as host C++ (the prelude once, CUDA's intrinsics shimmed)."""
    source, _ = translation_unit(programs)
    return compile_host(HOST_SHIMS + source, directory / "host.cpp")


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_collapsed_nests_run_on_a_simulated_grid_match_numpy(tmp_path):
    """Each launch runs as every thread of a grid of 2 blocks of 3 threads (fewer threads than elements: the
    grid-stride loop and the index recovery are exercised), the threads in reverse order."""
    import ctypes

    rng = np.random.default_rng(0)
    n, m, k = ir.Dim(1), ir.Dim(2), ir.Dim(3)
    cases = [  # (program, dims, x, y, expected)
        ((3, 4), lambda a, b: scalar.add(scalar.mul(a, 2.0), b), False, lambda x, y: x * 2 + y[None, :]),
        ((n, 5), lambda a, b: scalar.sub(scalar.exp(a), b), False, lambda x, y: np.exp(x) - y[None, :]),
        ((2, 3, 4), lambda a, b: scalar.mul(a, b), False, lambda x, y: x * y[None, :, None]),
        ((n, m, k), lambda a, b: scalar.maximum(a, b), False, lambda x, y: np.maximum(x, y[None, :, None])),
        ((n, 7), lambda a, b: scalar.add(a, b), True, lambda x, y: x.T + y[None, :]),
    ]
    programs, runs = [], []
    for shape, value, transposed, numpy in cases:
        program = _elementwise(shape, value, transposed)
        dims = np.array([1, 3, 2, 5], np.int64)
        sizes = tuple(ir.evaluate_size(ir.as_expr(s), dims) for s in shape)
        x = rng.standard_normal(sizes[::-1] if transposed else sizes)
        y = rng.standard_normal(sizes[len(sizes) // 2])
        programs.append((str(shape), program))
        runs.append((dims, x, y, numpy(x, y)))
    library = _host_library(programs, tmp_path)
    for number, ((label, program), (dims, x, y, expected)) in enumerate(zip(programs, runs)):
        (launch,) = render(program).steps
        assert ir.evaluate_size(launch.threads, dims) == expected.size, label  # one thread per element
        got, status = np.full(expected.shape, np.nan), np.zeros(1, np.int32)
        arguments = [a.ctypes.data_as(ctypes.c_void_p) for a in (x, y, got, dims, status)]
        for thread in reversed(range(6)):
            library.gc_set_thread(thread // 3, thread % 3, 2, 3)
            getattr(library, f"p{number}_{launch.function.removeprefix('graphc_')}")(*arguments)
        np.testing.assert_array_equal(got, expected, err_msg=label)
        assert status[0] == 0


# -- column reductions: the row loop interchanged under one thread per column ------------------------------
def _column_sum(rows: ir.Expr, columns: ir.Expr, extra: Callable | None = None, extent: ir.Expr | None = None,
                read: ir.Expr | None = None, reassociate: bool = False) -> ir.Program:
    """``acc[c] += x[r, c]`` over ``rows`` × ``columns`` as the lowering builds a column reduction (zero the
    accumulators, accumulate row by row, store them), the column loop's ``extent`` and the accumulator
    element ``read`` replaceable (to build unsafe variants), ``extra(x, acc)``'s statements in the column
    body (the buffers they store to join the program); ``reassociate``: the accumulation may be reordered."""
    x = _buffer("x", "float32", rows, columns, role="feed")
    acc, out = _buffer("acc", "float32", columns), _buffer("out", "float32", columns, role="output")
    i, r, c, k = (ir.Index(f"i{n}") for n in range(4))
    at = ir.add(ir.mul(r, columns), c)
    more = () if extra is None else tuple(extra(x, acc))
    body = (ir.Store(acc, c, scalar.add(ir.Load(acc, c if read is None else read), ir.Load(x, at)),
                     reassociate=reassociate), *more)
    kernel = ir.LoopKernel("k0", (
        ir.Loop(i, columns, (ir.Store(acc, i, scalar.constant(0.0, "float32")),), parallel=True),
        ir.Loop(r, rows, (ir.Loop(c, columns if extent is None else extent, body),)),
        ir.Loop(k, columns, (ir.Store(out, k, ir.Load(acc, k)),), parallel=True)))
    stored = [s.buffer for s in ir.walk_statements(more) if isinstance(s, ir.Store) and s.buffer is not acc]
    return ir.Program([x, acc, out, *dict.fromkeys(stored)], [kernel], ["run count", "rows", "columns"], ["bad"])


def test_column_reduction_runs_one_thread_per_column_over_the_rows_in_order():
    for columns in (ir.const(64), ir.Dim(2)):
        module = render(_column_sum(ir.Dim(1), columns))
        assert [s.threads for s in module.steps] == [columns] * 3  # zero, accumulate, store: all parallel
        text = _functions(module)["graphc_k0_1"]
        assert "for (long long i2 = (long long)blockIdx.x * blockDim.x + threadIdx.x; i2 < n_i2;" in text
        assert text.index("for (long long i1 = 0, n_i1 = dim_1; i1 < n_i1; ++i1)") > text.index("blockIdx")
    n, f = ir.Dim(1), ir.Dim(2)
    full = _buffer("full", "float32", n, f, role="output")  # a bias gradient's kernel also stores the gradient

    def gradient(x: ir.Buffer, acc: ir.Buffer) -> list[ir.Stmt]:
        at = ir.add(ir.mul(ir.Index("i1"), f), ir.Index("i2"))
        return [ir.Store(full, at, ir.Load(x, at))]

    assert render(_column_sum(n, f, gradient)).steps[1].threads == f
    graph = gc.Graph()  # the real lowering, the columns known at run time only
    with graph.as_default():
        x = gc.placeholder("float32", (None, None), name="x")
        total = gc.reduce_sum(x, axis=0)
    module = render(program_of(graph, [total], {x: np.ones((5, 64), np.float32)}))
    assert [s.threads for s in module.steps] == [ir.Dim(2)] * 3


def test_column_reduction_of_few_known_columns_runs_a_block_per_column():
    """A bias gradient's few channels over many rows: each column a block whose threads split the rows (the
    lowering marks the accumulation reassociable); the full-shape gradient stored beside it stays disjoint."""
    n, f = ir.Dim(1), ir.const(16)
    module = render(_column_sum(n, f, reassociate=True))
    # one launch: the block of each column also zeroes its accumulator and stores the column's result
    assert [s.threads for s in module.steps] == [ir.mul(f, ir.const(render_module.BLOCK))]
    text = _functions(module)["graphc_k0_0"]
    assert "for (long long i2 = blockIdx.x; i2 < n_i2; i2 += gridDim.x)" in text  # blocks over the columns
    assert "for (long long i1 = threadIdx.x, n_i1 = dim_1; i1 < n_i1; i1 += blockDim.x)" in text  # threads: rows
    assert "colacc0 = (colacc0 + b0[" in text and text.count("__shfl_down_sync") == 2
    assert "if (threadIdx.x == 0) {\n      b1[i2] = (0.0f + colacc0);\n      const long long i3 = i2;" in text
    assert "b2[i3] = b1[i3];" in text  # the result stored by the same thread, from its column's accumulator

    def gradient(x: ir.Buffer, acc: ir.Buffer) -> list[ir.Stmt]:
        at = ir.add(ir.mul(ir.Index("i1"), f), ir.Index("i2"))
        return [ir.Store(_buffer("full", "float32", n, f, role="output"), at, ir.Load(x, at))]

    def column_only(x: ir.Buffer, acc: ir.Buffer) -> list[ir.Stmt]:  # every row writes the same element
        return [ir.Store(_buffer("last", "float32", f, role="output"), ir.Index("i2"), ir.Load(x, ir.Index("i2")))]

    assert [s.threads for s in render(_column_sum(n, f, gradient, reassociate=True)).steps] == [ir.const(16 * 256)]
    for unsafe in (render(_column_sum(n, f, column_only, reassociate=True)),  # rows would race on it
                   render(_column_sum(n, ir.Dim(2), reassociate=True)),  # columns not known: maybe many
                   render(_column_sum(n, ir.const(5000), reassociate=True)),  # too many to need it
                   render(_column_sum(n, f))):  # an accumulation the IR does not let reorder
        assert len(unsafe.steps) == 3 and unsafe.steps[1].threads in (f, ir.Dim(2), ir.const(5000))
    graph = gc.Graph()  # the real lowering: a known number of columns
    with graph.as_default():
        x = gc.placeholder("float32", (None, 64), name="x")
        total = gc.reduce_sum(x, axis=0)
    module = render(program_of(graph, [total], {x: np.ones((5, 64), np.float32)}))
    assert [s.threads for s in module.steps] == [ir.const(64 * 256)]


def test_column_loops_that_may_share_elements_or_depend_on_the_row_stay_serial():
    n, f = ir.Dim(1), ir.const(8)
    r, c = ir.Index("i1"), ir.Index("i2")
    serial = [f, ir.const(1), f]  # the accumulation alone stays one thread
    assert [s.threads for s in render(_column_sum(n, f, read=ir.sub(c, 1))).steps] == serial  # a neighbour's
    assert [s.threads for s in render(_column_sum(n, f, read=ir.const(0))).steps] == serial
    assert [s.threads for s in render(_column_sum(n, f, extent=ir.add(r, 1))).steps] == serial  # a triangle

    def check(x: ir.Buffer, acc: ir.Buffer) -> list[ir.Stmt]:  # which failure is reported must stay the same
        return [ir.If(scalar.gt(ir.Load(x, ir.add(ir.mul(r, f), c)), scalar.constant(0.0, "float32")), (ir.Fail(1),))]

    def halves(x: ir.Buffer, acc: ir.Buffer) -> list[ir.Stmt]:  # two columns, one element
        return [ir.Store(acc, ir.integer(ir.FLOORDIV, c, 2), scalar.constant(0.0, "float32"))]

    def interleaved(x: ir.Buffer, acc: ir.Buffer) -> list[ir.Stmt]:  # row r writes element r + c: columns meet
        return [ir.Store(x, ir.add(r, c), scalar.constant(0.0, "float32"))]

    for extra in (check, halves, interleaved):
        assert [s.threads for s in render(_column_sum(n, f, extra)).steps] == serial, extra.__name__


def _row_order_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """The sum over ``axis`` one row after another in ``a``'s dtype (each addition rounded: the serial order)."""
    total = np.zeros_like(np.take(a, 0, axis))
    for row in range(a.shape[axis]):
        total = total + np.take(a, row, axis)
    return total


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_column_reductions_on_a_simulated_grid_are_bit_identical_to_the_row_order_sum(tmp_path):
    """Column reductions as the lowering builds them (run-time sizes; a bias gradient's kernel, storing the
    gradient too) run launch after launch on a grid of 2 blocks of 3 threads, fewer than the columns, the
    threads in reverse order. Each column still adds its rows in row order, so the float32 results equal the
    serial order's exactly (a float64 sum rounded once differs: checked, so the comparison can tell)."""
    import ctypes

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((37, 11)) * np.exp(rng.uniform(-6, 6, (37, 11)))).astype(np.float32)
    cube = rng.standard_normal((3, 37, 4)).astype(np.float32)
    gradient = np.maximum(x, 0) * x
    cases = [  # (build from the placeholder, feed, expected fetches)
        (lambda p: [gc.reduce_sum(p, axis=0)], x, [_row_order_sum(x, 0)]),
        (lambda p: [gc.relu(p) * p, gc.reduce_sum(gc.relu(p) * p, axis=0)], x, [gradient, _row_order_sum(gradient, 0)]),
        (lambda p: [gc.reduce_sum(p, axis=1)], cube, [_row_order_sum(cube, 1)]),
    ]
    assert not np.array_equal(x.astype(np.float64).sum(0).astype(np.float32), cases[0][2][0])
    programs, runs = [], []
    for number, (build, feed, expected) in enumerate(cases):
        graph = gc.Graph()
        with graph.as_default():
            placeholder = gc.placeholder("float32", (None,) * feed.ndim, name="x")
            fetches = build(placeholder)
        program = program_of(graph, fetches, {placeholder: feed})
        shapes = {t.name: a.shape for t, a in zip(fetches, expected)} | {placeholder.name: feed.shape}
        shapes |= {t.name: feed.shape for t in fetches[0].node.inputs}  # (the relu's: the feed's shape)
        slots = [re.fullmatch(r"(.+)\.shape\[(\d+)\]", meaning) for meaning in program.dims[1:]]
        dims = np.array([1, *(shapes[m[1]][int(m[2])] for m in slots)], np.int64)
        programs.append((str(number), program))
        runs.append((dims, feed, expected))
    library = _host_library(programs, tmp_path)
    for number, ((label, program), (dims, feed, expected)) in enumerate(zip(programs, runs)):
        module = render(program)
        threads = [ir.evaluate_size(s.threads, dims) for s in module.steps]
        assert set(threads) - {0} == {expected[-1].size} and threads.count(0) in (0, len(threads) // 2), label
        # every launch one thread per column, but those of a size test's branch not taken (no threads)
        arrays = {b: feed if b.role == "feed" else np.full([ir.evaluate_size(s, dims) for s in b.shape], np.nan,
                                                            b.dtype) for b in program.buffers}
        status = np.zeros(1, np.int32)
        for step, count in zip(module.steps, threads):
            if not count:
                continue
            arguments = [arrays[program.buffers[b]].ctypes.data_as(ctypes.c_void_p) for b in step.buffers]
            arguments += [a.ctypes.data_as(ctypes.c_void_p) for a in (dims, status)]
            for thread in reversed(range(6)):
                library.gc_set_thread(thread // 3, thread % 3, 2, 3)
                getattr(library, f"p{number}_{step.function.removeprefix('graphc_')}")(*arguments)
        outputs = [b for b in program.buffers if b.role == "output"]
        assert len(outputs) == len(expected) and status[0] == 0
        for buffer, want in zip(outputs, expected):
            np.testing.assert_array_equal(arrays[buffer], want, err_msg=label)


def test_a_launch_whose_condition_on_the_dims_fails_has_no_threads():
    """Both branches of a size test (assumed-equal unknown sizes, or not) are launches; the host evaluates the
    condition with the dims and skips the launch of the branch not taken (0 threads), instead of launching
    threads that return at once."""
    graph = gc.Graph()
    with graph.as_default():
        x, y = gc.placeholder("float32", (None, 8), name="x"), gc.placeholder("float32", (None, 8), name="y")
        total = gc.reduce_sum(gc.exp(x) * y, axis=1)
    module = render(program_of(graph, [total], {x: np.ones((4, 8), np.float32), y: np.ones((4, 8), np.float32)}))
    guarded = [s for s in module.steps if isinstance(s, Launch) and s.threads.primitive.name == "select"]
    assert len(guarded) == 2
    equal, broadcast = (np.array([0, 4, 4, 4, 4, 4, 4, 4], np.int64), np.array([0, 4, 1, 4, 4, 4, 4, 4], np.int64))
    assert sorted(ir.evaluate_size(s.threads, equal) for s in guarded) == [0, 4 * 256]
    assert sorted(ir.evaluate_size(s.threads, broadcast) for s in guarded) == [0, 4 * 256]


def test_a_column_finish_reading_what_other_columns_write_is_not_absorbed():
    """Thread 0 of a column's block may finish its column only from that column's accumulator and from
    buffers the reduction does not write: a finish that reads the full-shape gradient (written by every
    column's block) keeps its own launch, as does one reading another column's accumulator."""
    n, f = ir.Dim(1), ir.const(16)
    x, full = _buffer("x", "float32", n, f, role="feed"), _buffer("full", "float32", n, f, role="output")
    acc, out = _buffer("acc", "float32", f), _buffer("out", "float32", f, role="output")
    i, r, c, k = (ir.Index(f"i{m}") for m in range(4))
    at = ir.add(ir.mul(r, f), c)
    accumulate = ir.Loop(r, n, (ir.Loop(c, f, (
        ir.Store(acc, c, scalar.add(ir.Load(acc, c), ir.Load(x, at)), reassociate=True),
        ir.Store(full, at, ir.Load(x, at)))),))

    def steps(finish_value: ir.Expr) -> list:
        kernel = ir.LoopKernel("k0", (
            ir.Loop(i, f, (ir.Store(acc, i, scalar.constant(0.0, "float32")),), parallel=True), accumulate,
            ir.Loop(k, f, (ir.Store(out, k, finish_value),), parallel=True)))
        return render(ir.Program([x, full, acc, out], [kernel], ["run count", "rows"])).steps

    assert len(steps(scalar.add(ir.Load(acc, k), ir.Load(x, k)))) == 1  # its own column, and a feed
    assert len(steps(scalar.add(ir.Load(acc, k), ir.Load(full, k)))) == 2  # what other blocks write
    neighbour = ir.integer(ir.MOD, ir.add(k, 1), 16)
    assert len(steps(ir.Load(acc, neighbour))) == 2  # another column's total
