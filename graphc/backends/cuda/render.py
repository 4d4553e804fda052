"""The loop-nest IR (graphc.lower.ir) rendered to CUDA C: launches of ``__global__`` functions and cuBLAS GEMMs.

The interface with the runtime:

* ``render(program)`` returns a ``CudaModule``: the CUDA C translation unit (``source``) and the ``steps`` the
  host issues in program order, each a ``Launch`` of one ``extern "C" __global__`` function or a ``GemmCall``;
* every launched function takes its buffers as ``T* __restrict__ b<i>`` (``i``: the buffer's index in
  ``Program.buffers``; ``const`` when the launch only reads it) in ``Launch.buffers`` order, then
  ``const long long* __restrict__ dims`` (``Dim(slot)`` reads ``dims[slot]``) and ``int* __restrict__ status``;
  a ``Fail(code)`` sets ``*status`` to ``code`` (the first failure wins) and the thread returns; every function
  first returns when ``*status`` is already set, so nothing runs after a failure;
* a top-level ``Loop(parallel=True)`` of a kernel is one launch of ``Launch.threads`` threads in a
  grid-stride loop. The perfect nest under it — each lone loop in the body above, with an extent of dims — is
  collapsed into one flat index when the inner iterations provably touch disjoint elements of the buffers
  they write (affine indices giving each thread its own elements: ``_disjoint``): ``threads`` is then the
  product of the extents (a [128, 512] elementwise kernel: 65,536 threads) and each thread recovers the
  loops' indices by int64 division and remainder; otherwise it is the parallel loop's extent. The loops
  below the collapsed nest (a reduction's, say) run serially in each thread;
* a top-level sequential loop whose perfect nest splits into rows (outer loops) and columns (a run of inner
  ones) is interchanged (``_interchanged``) when the columns' iterations provably touch disjoint elements
  across all rows (``_disjoint``, with every extent a function of the dims): one thread per column
  (``threads``: the product of the column extents, collapsed as above) runs the rows in order. A column
  reduction (a bias gradient: zero ``F`` accumulators, add each of ``N`` rows into them, store them) is then
  three launches of ``F`` threads, and each column's results are bit-identical to the serial order's (the
  same additions in the same order); a nest whose iterations are all independent runs with no rows at all.
  With few columns (at most ``COLUMN_BLOCKS_MAX``, known: a conv bias gradient's channels over a batch of
  pixels) and accumulations the IR marks reassociable (``Store.reassociate``), each column runs on a block
  instead (``_block_columns``): its threads split the rows and combine their partial sums as a row's;
* a parallel loop over rows whose body is row statements and column loops that reduce (sum, max, softmax,
  log-softmax, layer norm, cross-entropy: ``_block_rows`` says what is proved) runs a block of threads per
  row, the blocks striding over the rows: ``threads`` is the rows times ``BLOCK`` (256, which must be the
  runtime's block size, so that its blocks give one per row). Each column loop is split across the block's
  threads (thread t takes columns t, t + blockDim, …), a barrier follows it, and each reassociable
  accumulation is combined by warp shuffles, then across the block's warps through shared memory
  (``GRAPHC_SHARED``, a macro a host build can define), into the value every thread then reads. Sums and
  extrema thus differ from the serial order's by reassociation only, which the IR allows for these
  accumulations (``Assign.reassociate``). A column loop whose lone inner loops touch disjoint elements is
  collapsed into one index split across the block;
* serial top-level statements that reduce whole loops into locals (a full reduction to one value: a mean's
  sum, a loss) run the same way as a single row (``_one_block``): one block of ``BLOCK`` threads splits the
  collapsed nest of element loops, and every thread runs the statements after it (storing the same values);
  past ``GRID_REDUCTION_MIN`` elements, two passes (``_full_reduction``): a grid of blocks storing partial
  values in module-scope slots, then one block combining them and running the statements after;
* the other top-level statements (size checks, loops that cannot be proved independent, declarations) run
  in a launch of one thread; a ``Gemm`` is a ``GemmCall`` whose enclosing sequential loops the host runs.

Only correctness is checked so far (nvcc compiles every program to PTX; host C++ runs the launches on a
simulated grid, a block's threads as fibers): the speed on a GPU is not measured yet, the column interchange's
and the block per row included. Not done: a warp rather than a block for short rows, 32-bit index arithmetic
where sizes allow, and parallelizing what stays serial (a scatter-add through
indices read from memory).

The semantics are the LLVM renderer's (graphc/backends/llvm/render.py), primitive by primitive: IEEE float
arithmetic with no contraction into fused multiply-adds (products are ``__fmul_rn``/``__dmul_rn``, which nvcc
never fuses) whatever nvcc's flags; integer arithmetic wraps (done on unsigned values, since a signed overflow
is undefined in C); floor division and remainder as numpy's with 0 for a zero divisor; shifts of the bits as
unsigned with 0 for a count outside [0, bits); float to int truncates and saturates with NaN giving 0 (the
``__float2int_rz`` family); maximum/minimum propagate NaN and give the second operand on ties; a bool is one
byte in memory. The helpers live in a prelude under an include guard, so sources can be concatenated into one
translation unit. The text is deterministic: it is a cache key.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from graphc.errors import CompileError
from graphc.graph.dtypes import FLOATS
from graphc.lower import ir
from graphc.ops import scalar
from graphc.ops.scalar import Call, Const, Expr

BLOCK = 256  # threads per block of a block-per-row launch: executable.py's block size must equal it
WARP = 32  # threads of a warp: the width of __shfl_down_sync
WARPS = BLOCK // WARP  # warps per block: a power of two, at most a warp's lanes
assert WARPS & (WARPS - 1) == 0 and WARPS <= WARP and BLOCK % WARP == 0
C_TYPE = {"bool": "bool", "int32": "int", "int64": "long long", "float32": "float", "float64": "double"}
MEMORY_TYPE = {**C_TYPE, "bool": "unsigned char"}  # numpy stores a bool in one byte

PRELUDE = r"""#ifndef GRAPHC_CUDA_PRELUDE
#define GRAPHC_CUDA_PRELUDE
#ifndef GRAPHC_FN
#define GRAPHC_FN __device__ __forceinline__
#endif
/* an array shared by a block's threads (a host build defines its own) */
#ifndef GRAPHC_SHARED
#define GRAPHC_SHARED(type, name, count) __shared__ type name[count]
#endif
/* integer arithmetic wraps modulo 2^bits (on unsigned values: a signed overflow is undefined in C) */
GRAPHC_FN int gc_add(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
GRAPHC_FN int gc_sub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
GRAPHC_FN int gc_mul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
GRAPHC_FN int gc_neg(int a) { return (int)(0u - (unsigned)a); }
GRAPHC_FN long long gc_add(long long a, long long b) {
  return (long long)((unsigned long long)a + (unsigned long long)b); }
GRAPHC_FN long long gc_sub(long long a, long long b) {
  return (long long)((unsigned long long)a - (unsigned long long)b); }
GRAPHC_FN long long gc_mul(long long a, long long b) {
  return (long long)((unsigned long long)a * (unsigned long long)b); }
GRAPHC_FN long long gc_neg(long long a) { return (long long)(0ull - (unsigned long long)a); }
GRAPHC_FN int gc_abs(int a) { return a < 0 ? gc_neg(a) : a; }
GRAPHC_FN long long gc_abs(long long a) { return a < 0 ? gc_neg(a) : a; }
/* numpy's floor division and remainder; a zero divisor gives 0, and -1 is a negation (no trap) */
template <typename T> GRAPHC_FN T gc_floordiv(T x, T y) {
  if (y == 0) return 0;
  if (y == -1) return gc_neg(x);
  T q = x / y, r = x % y;
  return (r != 0 && ((r ^ y) < 0)) ? q - 1 : q;
}
template <typename T> GRAPHC_FN T gc_mod(T x, T y) {
  if (y == 0 || y == -1) return 0;
  T r = x % y;
  return (r != 0 && ((r ^ y) < 0)) ? r + y : r;
}
/* shifts of the bits as unsigned; a count outside [0, bits) gives 0 */
GRAPHC_FN int gc_shl(int x, int n) { return (unsigned)n < 32u ? (int)((unsigned)x << n) : 0; }
GRAPHC_FN int gc_shr(int x, int n) { return (unsigned)n < 32u ? (int)((unsigned)x >> n) : 0; }
GRAPHC_FN long long gc_shl(long long x, long long n) {
  return (unsigned long long)n < 64ull ? (long long)((unsigned long long)x << n) : 0; }
GRAPHC_FN long long gc_shr(long long x, long long n) {
  return (unsigned long long)n < 64ull ? (long long)((unsigned long long)x >> n) : 0; }
/* integer power by squaring, wrapping; a negative exponent gives 0 */
template <typename T> GRAPHC_FN T gc_ipow(T base, T exponent) {
  if (exponent <= 0) return exponent == 0 ? 1 : 0;
  T result = 1;
  while (exponent != 0) {
    if (exponent & 1) result = gc_mul(result, base);
    base = gc_mul(base, base);
    exponent = gc_shr(exponent, (T)1);
  }
  return result;
}
/* numpy's maximum/minimum: NaN if either is NaN, else the larger (smaller), the second one on ties */
template <typename T> GRAPHC_FN T gc_fmax(T a, T b) { return (a > b || a != a) ? a : b; }
template <typename T> GRAPHC_FN T gc_fmin(T a, T b) { return (a < b || a != a) ? a : b; }
template <typename T> GRAPHC_FN T gc_imax(T a, T b) { return a > b ? a : b; }
template <typename T> GRAPHC_FN T gc_imin(T a, T b) { return a < b ? a : b; }
#endif
"""


@dataclass(frozen=True)
class Launch:
    """One ``__global__`` function launch: ``threads`` threads (an int64 expression of dims; 0 when the launch's
    condition on the dims fails, so the host skips it)."""

    function: str  # its name in CudaModule.source (extern "C": not mangled)
    buffers: tuple[int, ...]  # indices into Program.buffers of its pointer parameters, in order
    threads: ir.Expr  # Const(1) for a serial part


@dataclass(frozen=True)
class GemmCall:
    """A cuBLAS GEMM the host issues between launches, once per iteration of its enclosing ``loops``
    ((index, extent) pairs, outermost first): offsets are int64 expressions of dims and these indices."""

    gemm: ir.Gemm
    loops: tuple[tuple[ir.Index, ir.Expr], ...] = ()


@dataclass(frozen=True)
class CudaModule:
    """A program as CUDA C and the steps that run it, in program order."""

    source: str
    steps: tuple[Launch | GemmCall, ...]
    kernel_of_step: tuple[int, ...]  # index into Program.kernels of each step


def render(program: ir.Program, prefix: str = "graphc") -> CudaModule:
    """``program`` as a CUDA C translation unit whose functions are named ``<prefix>_k<kernel>_<launch>``
    (a distinct ``prefix`` per program lets several modules share one translation unit)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ValueError(f"render: prefix {prefix!r} is not a C identifier")
    position = {b: i for i, b in enumerate(program.buffers)}
    parts, steps, kernel_of_step = [PRELUDE], [], []
    for number, kernel in enumerate(program.kernels):
        parts.append(_header(number, kernel))
        launches = 0
        for step in _split(kernel):
            if isinstance(step, _Part):
                text, step = _launch(f"{prefix}_k{number}_{launches}", step, position, kernel.name)
                parts.append(text)
                launches += 1
            steps.append(step)
            kernel_of_step.append(number)
    return CudaModule("\n".join(parts), tuple(steps), tuple(kernel_of_step))


def _header(number: int, kernel: ir.LoopKernel) -> str:
    describe = getattr(kernel.origin, "describe", None)
    what = describe() if describe is not None else ""
    text = f"kernel {number}: {kernel.name}" + (f" ({what})" if what else "")
    return f"/* {text.replace('*/', '* /')} */"


# -- splitting a kernel into launches and GEMMs ------------------------------------------------------------
@dataclass
class _Part:
    """Top-level statements run by one launch: a parallel loop (``parallel``) or serial statements, run when
    every condition of ``guard`` holds (conditions on dims: a top-level ``If`` split around parallel loops)."""

    body: list[ir.Stmt] = field(default_factory=list)
    parallel: ir.Loop | None = None
    guard: tuple[Expr, ...] = ()
    interchange: tuple[list[ir.Loop], list[ir.Loop]] | None = None  # (rows, columns) of a sequential nest
    block: dict[int, list[tuple[ir.Local, Call]]] | None = None  # block per row: _block_rows
    column_blocks: _ColumnBlocks | None = None  # block per column: _block_columns
    grid_pass: _GridPass | None = None  # a pass of a full reduction over a grid of blocks (_grid_passes)


def _split(kernel: ir.LoopKernel) -> list[_Part | GemmCall]:
    """The launches and GEMMs of ``kernel`` in order: consecutive serial statements share one launch."""
    steps = _absorbed(_steps(kernel.body, (), kernel.name))
    parts = [step for step in steps if isinstance(step, _Part)]
    if len(parts) > 1 and any(_outside_locals(part.body) for part in parts):
        # a local crosses launches (which cannot share one): the kernel runs as a single serial launch
        if len(parts) < len(steps):
            raise CompileError(f"cuda: kernel {kernel.name} shares locals between code around a GEMM")
        return _full_reduction(_one_block(_Part(list(kernel.body))))
    return [launch for step in steps
            for launch in (_full_reduction(_one_block(step)) if isinstance(step, _Part) else [step])]


def _one_block(part: _Part) -> _Part:
    """``part`` as one block of threads when it is serial statements reducing whole loops into locals (a full
    reduction: a mean's sum, a loss): a block-per-row launch of a single row (``_block_rows`` says what is
    proved), whose ``threads`` are one block's; else ``part`` unchanged (one thread)."""
    if part.parallel is not None or part.interchange is not None or _outside_locals(part.body):
        return part
    row = ir.Loop(ir.Index("row"), ir.const(1), tuple(part.body), parallel=True)  # no kernel index is "row"
    block = _block_rows(row)
    return part if block is None else _Part(part.body, row, part.guard, block=block)


GRID_REDUCTION_MIN = 1 << 16  # a full reduction over more elements than this runs on a grid of blocks
GRID_MAX = 1024  # the most blocks of its first pass (the partial values' slots)


@dataclass(frozen=True)
class _GridPass:
    """Pass ``number`` (1 or 2) of a full reduction over a grid: the row's statements ``before`` its reducing
    loop (declarations) and ``after`` it, the loops one index runs over (``_column_nest``) and the
    accumulators the loop reduces."""

    number: int
    before: tuple[ir.Stmt, ...]
    nest: tuple[ir.Loop, ...]
    after: tuple[ir.Stmt, ...]
    reductions: tuple[tuple[ir.Local, Call], ...]


def _full_reduction(part: _Part) -> list[_Part]:
    """``part``, or — when it is a full reduction (``_one_block``) whose row is declarations, one reducing loop
    and statements after it, over more than ``GRID_REDUCTION_MIN`` elements (or a number known only when it
    runs) — its two passes over a grid (``_grid_passes``), each launch guarded by the count when it is not
    known (the one-block launch then serves the small counts)."""
    row = part.parallel
    if part.block is None or row is None or row.index.name != "row":
        return [part]
    loops = [s for s in row.body if isinstance(s, ir.Loop)]
    if len(loops) != 1:
        return [part]
    at = row.body.index(loops[0])
    before, after = tuple(row.body[:at]), tuple(row.body[at + 1:])
    if any(not isinstance(s, ir.Declare) for s in before):
        return [part]
    nest = tuple(_column_nest(loops[0], row.index))
    count = ir.product(loop.extent for loop in nest)
    known = ir.static_value(count)
    if known is not None and known <= GRID_REDUCTION_MIN:
        return [part]
    small = scalar.le(count, ir.const(GRID_REDUCTION_MIN))
    large = () if known is not None else (scalar.logical_not(small),)
    passes = []
    for number, body in ((1, [*before, loops[0]]), (2, [*before, *after])):
        grid = _GridPass(number, before, nest, after, tuple(part.block[id(loops[0])]))
        passes.append(_Part(body, row, (*part.guard, *large), block=part.block, grid_pass=grid))
    return passes if known is not None else [dataclasses.replace(part, guard=(*part.guard, small)), *passes]


def _column_nest(loop: ir.Loop, row: ir.Index) -> list[ir.Loop]:
    """The loops one index of a block-per-row launch runs over for the column loop ``loop``: its lone loops
    collapsed when their iterations touch disjoint elements, else ``loop`` alone."""
    nest = _lone_loops(loop)
    return nest if len(nest) > 1 and _divisible(nest) and _disjoint(nest, row) else [loop]


def _steps(body: Sequence[ir.Stmt], guard: tuple[Expr, ...], where: str) -> list[_Part | GemmCall]:
    steps: list[_Part | GemmCall] = []
    for s in body:
        if any(isinstance(x, ir.Gemm) for x in ir.walk_statements([s])):
            if guard:
                raise CompileError(f"cuda: kernel {where} has a GEMM under a condition; the CUDA backend issues "
                                   "GEMMs from the host unconditionally")
            steps += _gemm_calls(s, (), where)
        elif isinstance(s, ir.Loop) and s.parallel and _independent(s):
            steps.append(_Part([s], s, guard, block=_block_rows(s) if len(_collapsed(s)) == 1 else None))
        elif isinstance(s, ir.Loop) and (swapped := _interchanged(s)) is not None:
            steps.append(_Part([s], None, guard, swapped, column_blocks=_block_columns(*swapped)))
        elif (isinstance(s, ir.If) and ir.on_dims(s.condition)
              and (any(isinstance(x, ir.Loop) and x.parallel for x in ir.walk_statements([s]))
                   or any(isinstance(x, ir.Loop) and _interchanged(x) for x in (*s.then, *s.orelse)))):
            # a size test choosing between parallel loops: each branch's launches test it themselves
            steps += _steps(s.then, (*guard, s.condition), where)
            steps += _steps(s.orelse, (*guard, scalar.logical_not(s.condition)), where)
        elif steps and isinstance(steps[-1], _Part) and steps[-1].parallel is None and steps[-1].guard == guard:
            steps[-1].body.append(s)
        else:
            steps.append(_Part([s], None, guard))
    return steps


def _outside_locals(body: Sequence[ir.Stmt]) -> set[str]:
    """The locals ``body`` reads or assigns without declaring them."""
    declared = {s.local.name for s in ir.walk_statements(body) if isinstance(s, ir.Declare)}
    assigned = {s.local.name for s in ir.walk_statements(body) if isinstance(s, ir.Assign)}
    read = {e.name for s in ir.walk_statements(body) for e in _expressions(s) if isinstance(e, ir.Local)}
    return (assigned | read) - declared


def _independent(loop: ir.Loop) -> bool:
    """Whether the iterations may run on threads: the body neither reads nor assigns a local declared outside
    it (locals live in one launch; an assigned one makes the iterations dependent)."""
    return not _outside_locals(loop.body)


def _gemm_calls(s: ir.Stmt, loops: tuple[tuple[ir.Index, ir.Expr], ...], where: str) -> list[GemmCall]:
    """The GEMMs of ``s``: a Gemm, or loops around nothing but Gemms (the host runs those loops)."""
    if isinstance(s, ir.Gemm):
        return [GemmCall(s, loops)]
    if isinstance(s, ir.Loop) and len(s.body) == 1:
        return _gemm_calls(s.body[0], (*loops, (s.index, s.extent)), where)
    raise CompileError(f"cuda: kernel {where} has a GEMM inside code other than loops around it alone; the CUDA "
                       "backend issues GEMMs from the host")


def _expressions(s: ir.Stmt) -> list[Expr]:
    """Every expression node a statement (not its nested statements) evaluates."""
    roots: list[Expr] = []
    if isinstance(s, ir.Loop):
        roots = [s.extent]
    elif isinstance(s, ir.Store):
        roots = [s.index, s.value]
    elif isinstance(s, ir.Declare | ir.Assign):
        roots = [s.value]
    elif isinstance(s, ir.If):
        roots = [s.condition]
    return [e for root in roots for e in ir.walk_expr(root)]


# -- one launch ----------------------------------------------------------------------------------------------
def _launch(name: str, part: _Part, position: dict[ir.Buffer, int], where: str) -> tuple[str, Launch]:
    """The ``__global__`` function running ``part`` and its launch."""
    read, written, dims = set(), set(), set()
    for s in ir.walk_statements([*part.body, *(ir.If(condition, ()) for condition in part.guard)]):
        if isinstance(s, ir.Store):
            written.add(s.buffer)
        for e in _expressions(s):
            if isinstance(e, ir.Load):
                read.add(e.buffer)
            elif isinstance(e, ir.Dim):
                dims.add(e.slot)
    missing = sorted(b.name for b in read | written if b not in position)
    if missing:
        raise ValueError(f"render: kernel {where} uses buffers missing from the program: {', '.join(missing)}")
    buffers = sorted(read | written, key=position.__getitem__)
    params = [f"{'' if b in written else 'const '}{MEMORY_TYPE[b.dtype]}* __restrict__ b{position[b]}"
              for b in buffers]
    params += ["const long long* __restrict__ dims", "int* __restrict__ status"]
    # a grid pass's accumulators go through the slots between the passes
    read_locals = _live_locals(part.body, [local.name for local, _ in part.grid_pass.reductions]
                               if part.grid_pass is not None else ())
    if part.column_blocks is not None:  # the partial accumulators stand for stores
        read_locals |= {local.name for local, _ in part.column_blocks.accumulators}
    writer = _Writer({b: f"b{position[b]}" for b in buffers}, read_locals)
    lines = [f'extern "C" __global__ void {name}({", ".join(params)}) {{']
    if part.block is None and part.column_blocks is None:
        lines.append("  if (*status) return;")
    else:  # every thread of a block sees one value, so all of them reach the same barriers
        lines += ["  GRAPHC_SHARED(int, failed, 1);", "  if (threadIdx.x == 0) failed[0] = *status;",
                  "  __syncthreads();", "  if (failed[0]) return;"]
        if part.block is not None:
            dtypes = {local.dtype for reductions in part.block.values() for local, _ in reductions
                      if local.name in read_locals}
        else:
            dtypes = {local.dtype for local, _ in part.column_blocks.accumulators}
        lines += [f"  GRAPHC_SHARED({C_TYPE[d]}, partial_{d}, {WARPS});" for d in sorted(dtypes)]
    lines += [f"  const long long dim_{slot} = dims[{slot}];" for slot in sorted(dims)]
    lines += [f"  {C_TYPE[dtype]} {local} = {_zero(dtype)};" for local, dtype in _locals(part.body)
              if local in read_locals]
    if part.guard:
        condition = part.guard[0] if len(part.guard) == 1 else scalar.logical_and(*part.guard[:2])
        for more in part.guard[2:]:
            condition = scalar.logical_and(condition, more)
        lines.append(f"  if (!{writer.inline(condition, lines, 1)}) return;")
    if part.grid_pass is not None:
        threads, declarations = _grid_passes(name, part.grid_pass, writer, lines)
        lines[:0] = declarations
    elif part.block is not None:
        threads = _block_per_row(part.parallel, part.block, writer, lines)
    elif part.column_blocks is not None:
        threads = _block_per_column(part.column_blocks, writer, lines)
    elif part.parallel is not None:
        nest = _collapsed(part.parallel)
        threads = _grid_stride(nest, writer, lines)
        writer.statements(nest[-1].body, lines, 2)
        lines.append("  }")
    elif part.interchange is not None:
        rows, columns = part.interchange
        threads = _grid_stride(columns, writer, lines)
        body = tuple(columns[-1].body)
        for row in reversed(rows):  # each thread runs the rows in order around its column's body
            body = (ir.Loop(row.index, row.extent, body),)
        writer.statements(body, lines, 2)
        lines.append("  }")
    else:
        writer.statements(part.body, lines, 1)
        threads = ir.const(1)
    lines.append("}")
    if part.guard:  # the condition is on the dims: the host skips the launch when it fails (no threads)
        threads = scalar.select(condition, threads, ir.const(0))
    return "\n".join(lines), Launch(name, tuple(position[b] for b in buffers), threads)


# -- a block of threads per row: row reductions -------------------------------------------------------------
_REDUCERS = ("add", "maximum", "minimum")  # combined across a block's threads in any order (reassociable)


def _block_rows(loop: ir.Loop) -> dict[int, list[tuple[ir.Local, Call]]] | None:
    """The column loops of the parallel ``loop``'s body by ``id``, each with the accumulators it reduces
    ((local, combining primitive)), when each row may run on a block of threads that split every column loop
    (a row reduction: sum, max, softmax, layer norm, cross-entropy); else None.

    The body is row statements (no loops; the same values on every thread of the block) and column loops
    (its top-level loops) whose iterations provably touch disjoint elements of what they write
    (``_disjoint``), with no ``Fail`` (a thread leaving early would miss the barriers). A column loop assigns
    the locals declared outside it only by reassociable updates ``acc = op(acc, value)`` (op: add with a 0
    start, maximum or minimum), reading ``acc`` nowhere else: after the loop the block combines the threads'
    partial values, so the statements after it read the row's result. Row stores go to buffers nothing else in
    the body touches (every thread stores the same value), and row statements read no local a column loop
    declares. At least one column loop reduces something (else the collapsed nests serve)."""
    rows = [s for s in loop.body if not isinstance(s, ir.Loop)]
    columns = [s for s in loop.body if isinstance(s, ir.Loop)]
    if not columns or any(isinstance(x, ir.Loop) for x in ir.walk_statements(rows)):
        return None
    assigned_in_rows = {s.local.name for s in ir.walk_statements(rows) if isinstance(s, ir.Assign)}
    starts = {s.local.name: s.value for s in rows if isinstance(s, ir.Declare)}
    found: dict[int, list[tuple[ir.Local, Call]]] = {}
    for column in columns:
        inner = list(ir.walk_statements(column.body))
        if not ir.on_dims(column.extent) or any(isinstance(x, ir.Fail) for x in inner):
            return None
        if not _disjoint([column], loop.index):
            return None
        reductions = []
        for name in sorted(_outside_locals(column.body)):
            assigns = [s for s in inner if isinstance(s, ir.Assign) and s.local.name == name]
            if not assigns:
                continue  # only read: a row value, the same on every thread
            reduction = _reduction(name, assigns, inner, starts.get(name))
            reduced = {local.name for r in found.values() for local, _ in r}
            if reduction is None or name in assigned_in_rows or name in reduced:
                return None
            reductions.append(reduction)
        found[id(column)] = reductions
    if not any(found.values()):
        return None
    row_stores = {s.buffer for s in ir.walk_statements(rows) if isinstance(s, ir.Store)}
    touched = [s.buffer for s in ir.walk_statements(columns) if isinstance(s, ir.Store)]
    touched += [e.buffer for s in ir.walk_statements(loop.body) for e in _expressions(s) if isinstance(e, ir.Load)]
    if row_stores & set(touched):
        return None
    column_locals = {s.local.name for s in ir.walk_statements(columns) if isinstance(s, ir.Declare)}
    read_in_rows = {e.name for s in ir.walk_statements(rows) for e in _expressions(s) if isinstance(e, ir.Local)}
    if any(_outside_locals(column.body) & column_locals for column in columns):
        return None  # a column loop reads a local of another one: each thread's last value, not the loop's
    return None if read_in_rows & column_locals else found


def _reduction(name: str, assigns: list[ir.Assign], inner: list[ir.Stmt],
               start: Expr | None) -> tuple[ir.Local, Call] | None:
    """(local, its first update) when every assignment of local ``name`` in a column loop (``inner``: its statements)
    is the same reassociable ``acc = op(acc, value)`` with ``acc`` read nowhere else, from a ``start``
    declared in the row that the block may combine once per thread (0 for a sum); else None."""
    local = assigns[0].local
    if local.dtype == "bool":
        return None  # __shfl_down_sync has no bool form
    kinds = {a.value.primitive.name if isinstance(a.value, Call) else None for a in assigns}
    if start is None or not all(a.reassociate for a in assigns) or len(kinds) != 1 or None in kinds:
        return None
    (kind,) = kinds
    if kind not in _REDUCERS or kind == "add" and not (isinstance(start, Const) and start.value == 0):
        return None
    if any(local not in a.value.args for a in assigns):
        return None
    reads = sum(1 for s in inner for e in _expressions(s) if isinstance(e, ir.Local) and e.name == name)
    return (local, assigns[0].value) if reads == len(assigns) else None


def _block_per_row(loop: ir.Loop, reductions: dict[int, list[tuple[ir.Local, Call]]], writer: _Writer,
                   lines: list[str]) -> ir.Expr:
    """Renders ``loop`` (see ``_block_rows``) as one block per row, blocks striding over the rows: the row
    statements run on every thread, thread t takes the columns t, t + blockDim, … of each column loop, a
    barrier follows each column loop (what it stored is then visible to the whole block), and each
    accumulator's partial values are combined (``_block_combine``) into the value every thread reads.
    Returns the threads to launch: ``BLOCK`` per row, so that the runtime's blocks of ``BLOCK`` give a block
    per row. The sums and extrema are the serial loop's up to reassociation, which the IR allows."""
    head = loop.index.name
    lines.append(f"  const long long n_{head} = {writer.inline(loop.extent, lines, 1)};")
    lines.append(f"  for (long long {head} = blockIdx.x; {head} < n_{head}; {head} += gridDim.x) {{")
    for s in loop.body:
        if not isinstance(s, ir.Loop):
            writer.statement(s, lines, 2)
            continue
        nest = _column_nest(s, loop.index)
        _grid_stride(nest, writer, lines, block=True)
        writer.statements(nest[-1].body, lines, 3)
        lines += ["    }", "    __syncthreads();"]
        for local, update in reductions[id(s)]:
            if local.name not in writer.read_locals:
                continue
            lines += _block_combine(local, update)
    lines.append("  }")
    return ir.mul(loop.extent, ir.const(BLOCK))


def _grid_passes(name: str, grid: _GridPass, writer: _Writer, lines: list[str]) -> tuple[ir.Expr, list[str]]:
    """Renders pass ``grid.number`` of a full reduction over a grid (``_full_reduction``); returns its threads
    and the module-scope declarations it needs. Pass 1: the grid strides over the elements (at most
    ``GRID_MAX`` blocks), each block combines its threads' partial values and its thread 0 stores them in the
    block's slot (block 0 also stores how many blocks ran). Pass 2: one block folds the slots (every
    accumulator starts as declared: 0 for a sum, so folding it once per block changes nothing) and runs the
    statements after the loop."""
    kernel = name.rsplit("_", 1)[0]  # both passes' names begin so; the kernel's locals are unique in it
    slots = {local.name: f"{kernel}_partial_{local.name}" for local, _ in grid.reductions}
    blocks = f"{kernel}_blocks_{grid.reductions[0][0].name}"
    writer.statements(grid.before, lines, 1)
    if grid.number == 1:
        threads = _grid_stride(list(grid.nest), writer, lines)
        writer.statements(grid.nest[-1].body, lines, 2)
        lines.append("  }")
        for local, update in grid.reductions:
            lines += _block_combine(local, update)
        lines.append("  if (threadIdx.x == 0) {")
        lines += [f"    {slots[local.name]}[blockIdx.x] = {local.name};" for local, _ in grid.reductions]
        lines += [f"    if (blockIdx.x == 0) {blocks} = gridDim.x;", "  }"]
        declarations = [f"__device__ {C_TYPE[local.dtype]} {slots[local.name]}[{GRID_MAX}];"
                        for local, _ in grid.reductions] + [f"__device__ unsigned {blocks};"]
        return scalar.minimum(threads, ir.const(GRID_MAX * BLOCK)), declarations
    lines.append(f"  for (unsigned slot = threadIdx.x; slot < {blocks}; slot += blockDim.x) {{")
    for local, update in grid.reductions:
        combine = _PRIMITIVES[update.primitive.name](update, [local.name, f"{slots[local.name]}[slot]"])
        lines.append(f"    {local.name} = {combine};")
    lines.append("  }")
    for local, update in grid.reductions:
        lines += _block_combine(local, update)
    writer.statements(grid.after, lines, 1)
    return ir.const(BLOCK), []


def _block_combine(local: ir.Local, update: Call) -> list[str]:
    """Lines combining every thread's partial value of ``local`` (by ``update``'s reassociable operation) into
    the block's, which every thread then holds: each warp folds its 32 values with shuffles (lane 0 ends with
    the warp's), lane 0 of each warp puts it in shared memory, and each warp folds those ``WARPS`` values
    again; one barrier between, one after (the shared slots are reused by the next reduction)."""
    name, partial = local.name, f"partial_{local.dtype}"
    combine = _PRIMITIVES[update.primitive.name](update, [name, "other"])

    def fold(first_offset: int) -> list[str]:
        return [f"    for (int offset = {first_offset}; offset > 0; offset >>= 1) {{",
                f"      const {C_TYPE[local.dtype]} other = __shfl_down_sync(0xffffffffu, {name}, offset);",
                f"      {name} = {combine};", "    }"]
    return [*fold(WARP // 2),
            f"    if ((threadIdx.x & {WARP - 1}) == 0) {partial}[threadIdx.x / {WARP}] = {name};",
            "    __syncthreads();",
            f"    {name} = {partial}[threadIdx.x & {WARPS - 1}];",
            *fold(WARPS // 2),
            f"    if (threadIdx.x == 0) {partial}[0] = {name};",
            "    __syncthreads();",
            f"    {name} = {partial}[0];",
            "    __syncthreads();"]


# -- a block of threads per column: column reductions with few columns ----------------------------------------
COLUMN_BLOCKS_MAX = 4096  # a column reduction of at most this many columns (known) runs a block per column


@dataclass(frozen=True)
class _ColumnBlocks:
    """A column reduction run as a block per column (``_block_columns``): the ``rows`` and ``columns`` loops of
    the interchanged nest, the element ``body`` with each accumulating store replaced by an update of a partial
    local, and each partial with the store it stands for."""

    rows: list[ir.Loop]
    columns: list[ir.Loop]
    body: tuple[ir.Stmt, ...]
    accumulators: list[tuple[ir.Local, ir.Store]]
    initial: dict[ir.Buffer, Expr] = field(default_factory=dict)  # the accumulators' start, absorbed: _absorbed
    finish: list[ir.Loop] = field(default_factory=list)  # the per-column nest after it, absorbed: _absorbed


def _block_columns(rows: list[ir.Loop], columns: list[ir.Loop]) -> _ColumnBlocks | None:
    """A block of threads per column of the interchanged nest ``(rows, columns)``, when it is a column
    reduction of few columns (a bias gradient: ``acc[j] = acc[j] + x[i, j]``, a few channels over a batch of
    pixels) — one thread per column would leave the GPU nearly idle, each thread adding thousands of rows.

    Each block takes a column (blocks striding over them), its threads split the rows, each thread folds its
    rows into a partial value; the block combines the partials (``_block_combine``) and one thread folds the
    total into the accumulator. Required: at most ``COLUMN_BLOCKS_MAX`` columns, known; the element body is
    declarations, assignments and stores only; every accumulating store (``Store.reassociate``: the IR allows
    its reordering) is ``acc[at] = op(acc[at], value)`` with op add, maximum or minimum (not of bools), ``at``
    depending on the columns only, and nothing else in the body reads or writes an accumulator; the other
    stores (a full-shape output stored beside a sum) write disjoint elements across rows and columns."""
    if not rows:
        return None
    count = ir.static_value(ir.product([loop.extent for loop in columns]))
    if count is None or count > COLUMN_BLOCKS_MAX:
        return None
    body = columns[-1].body
    if any(not isinstance(x, ir.Declare | ir.Assign | ir.Store) for x in body):
        return None
    column_indices = {loop.index.name for loop in columns}
    accumulators: list[tuple[ir.Local, ir.Store]] = []
    rewritten: list[ir.Stmt] = []
    for x in body:
        if isinstance(x, ir.Store) and x.reassociate:
            update = x.value
            if not (isinstance(update, Call) and update.primitive.name in _REDUCERS and x.buffer.dtype != "bool"
                    and len(update.args) == 2 and update.args[0] == ir.Load(x.buffer, x.index)):
                return None
            if {e.name for e in ir.walk_expr(x.index) if isinstance(e, ir.Index)} - column_indices:
                return None
            local = ir.Local(f"colacc{len(accumulators)}", x.buffer.dtype)
            accumulators.append((local, x))
            rewritten.append(ir.Assign(local, Call(update.primitive, (local, update.args[1]), update.to)))
        else:
            rewritten.append(x)
    accumulated = [x.buffer for _, x in accumulators]
    if not accumulators or len(set(accumulated)) < len(accumulated):
        return None
    touched = [e.buffer for x in rewritten for e in _expressions(x) if isinstance(e, ir.Load)]
    touched += [x.buffer for x in rewritten if isinstance(x, ir.Store)]
    if set(touched) & set(accumulated):
        return None
    others: ir.Stmt | tuple[ir.Stmt, ...] = tuple(x for x in body if not (isinstance(x, ir.Store) and x.reassociate))
    for loop in reversed(rows + columns):  # the nest without the accumulating stores
        others = ir.Loop(loop.index, loop.extent, others if isinstance(others, tuple) else (others,))
    if not _disjoint(_lone_loops(others)):
        return None
    return _ColumnBlocks(rows, columns, tuple(rewritten), accumulators)


def _block_per_column(plan: _ColumnBlocks, writer: _Writer, lines: list[str]) -> ir.Expr:
    """Renders a column reduction as a block per column (``_block_columns``); returns the threads to launch:
    ``BLOCK`` per column."""
    columns = _grid_stride(plan.columns, writer, lines, over="blocks")
    for local, store in plan.accumulators:
        lines.append(f"    {C_TYPE[local.dtype]} {local.name} = {_identity(store.value, local.dtype)};")
    _grid_stride(plan.rows, writer, lines, over="block")
    writer.statements(plan.body, lines, 3)
    lines.append("    }")
    for local, store in plan.accumulators:
        lines += _block_combine(local, store.value)
    lines.append("    if (threadIdx.x == 0) {")  # the column's total, then what follows it per column
    for local, store in plan.accumulators:
        update, start = store.value, plan.initial.get(store.buffer, store.value.args[0])
        writer.statement(ir.Store(store.buffer, store.index, Call(update.primitive, (start, local), update.to)),
                         lines, 3)
    lines += [f"      const long long {loop.index.name} = {column.index.name};"
              for loop, column in zip(plan.finish, plan.columns)]
    if plan.finish:
        writer.statements(plan.finish[-1].body, lines, 3)
    lines += ["    }", "  }"]
    return ir.mul(columns, ir.const(BLOCK))


def _absorbed(steps: list[_Part | GemmCall]) -> list[_Part | GemmCall]:
    """``steps`` with each block-per-column launch absorbing the launches around it that only serve it: the
    one before that sets its accumulators to a constant start, the one after that finishes each column (a
    bias gradient's mean, the variable update that reads it) — two launches fewer per column reduction."""
    merged: list[_Part | GemmCall] = []
    for step in steps:
        previous = merged[-1] if merged else None
        if isinstance(previous, _Part) and previous.column_blocks is not None and isinstance(step, _Part) \
                and not previous.column_blocks.finish and step.guard == previous.guard \
                and (finish := _finish(previous.column_blocks, step)) is not None:
            merged[-1] = _Part([*previous.body, *step.body], None, step.guard, previous.interchange,
                               column_blocks=dataclasses.replace(previous.column_blocks, finish=finish))
            continue
        if isinstance(step, _Part) and step.column_blocks is not None and isinstance(previous, _Part) \
                and previous.guard == step.guard and (initial := _initial(step.column_blocks, previous)):
            merged[-1] = _Part([*previous.body, *step.body], None, step.guard, step.interchange,
                               column_blocks=dataclasses.replace(step.column_blocks, initial=initial))
            continue
        merged.append(step)
    return merged


def _matching_nest(plan: _ColumnBlocks, part: _Part) -> list[ir.Loop] | None:
    """``part``'s parallel nest when it runs over the same columns as ``plan`` (same extents, a body of
    declarations, assignments and stores only); else None."""
    if part.parallel is None or part.block is not None:
        return None
    nest = _lone_loops(part.parallel)
    nest = nest[:len(plan.columns)]
    if [loop.extent for loop in nest] != [loop.extent for loop in plan.columns]:
        return None
    if any(not isinstance(x, ir.Declare | ir.Assign | ir.Store) for x in nest[-1].body) or len(part.body) != 1:
        return None
    return nest


def _renamed(e: Expr, names: dict[str, ir.Index]) -> Expr:
    """``e`` with the loop indices named in ``names`` replaced."""
    if isinstance(e, ir.Index):
        return names.get(e.name, e)
    if isinstance(e, Call):
        return Call(e.primitive, tuple(_renamed(a, names) for a in e.args), e.to)
    if isinstance(e, ir.Load):
        return ir.Load(e.buffer, _renamed(e.index, names))
    return e


def _initial(plan: _ColumnBlocks, part: _Part) -> dict[ir.Buffer, Expr] | None:
    """Each accumulator's constant start when ``part`` does nothing but store it, for the same columns."""
    nest = _matching_nest(plan, part)
    if nest is None:
        return None
    names = {loop.index.name: column.index for loop, column in zip(nest, plan.columns)}
    stores = {store.buffer: store for _, store in plan.accumulators}
    initial = {}
    for x in nest[-1].body:
        if not (isinstance(x, ir.Store) and x.buffer in stores and isinstance(x.value, Const)
                and _renamed(x.index, names) == stores[x.buffer].index and x.buffer not in initial):
            return None
        initial[x.buffer] = x.value
    return initial


def _finish(plan: _ColumnBlocks, part: _Part) -> list[ir.Loop] | None:
    """``part``'s nest when it finishes each column on its own (thread 0 of the column's block may run it once
    the column is reduced): it reads the accumulators at its own column only, reads nothing else the
    reduction writes, and writes nothing the reduction reads (the other columns' blocks may still run)."""
    nest = _matching_nest(plan, part)
    if nest is None or not _independent(part.parallel):
        return None
    names = {loop.index.name: column.index for loop, column in zip(nest, plan.columns)}
    at = {store.buffer: store.index for _, store in plan.accumulators}
    written = {x.buffer for x in ir.walk_statements(plan.body) if isinstance(x, ir.Store)}
    read = {e.buffer for x in ir.walk_statements(plan.body) for e in _expressions(x) if isinstance(e, ir.Load)}
    for x in nest[-1].body:
        for e in _expressions(x):
            if isinstance(e, ir.Load) and (e.buffer in written or e.buffer in at and _renamed(e.index, names)
                                           != at[e.buffer]):
                return None
        if isinstance(x, ir.Store) and (x.buffer in read or x.buffer in written or x.buffer in at):
            return None
    return nest


def _identity(update: Call, dtype: str) -> str:
    """The value that ``update``'s operation (add, maximum or minimum) leaves any value unchanged with."""
    name = update.primitive.name
    if name == "add":
        return constant(0, dtype)
    if dtype in FLOATS:
        return constant(-math.inf if name == "maximum" else math.inf, dtype)
    info = np.iinfo(dtype)
    return constant(int(info.min if name == "maximum" else info.max), dtype)


# -- collapsing a perfect loop nest into one grid-stride index ----------------------------------------------
def _lone_loops(loop: ir.Loop) -> list[ir.Loop]:
    """``loop`` and the lone loops nested in it whose extents are functions of the dims, outermost first, down
    to the first body that is more than one loop."""
    nest = [loop]
    while len(nest[-1].body) == 1 and isinstance(nest[-1].body[0], ir.Loop) and ir.on_dims(nest[-1].body[0].extent):
        nest.append(nest[-1].body[0])
    return nest


def _divisible(nest: Sequence[ir.Loop]) -> bool:
    """Whether a flat index can be split into the indices of ``nest``'s loops (nvcc rejects a division by a
    constant 0: an extent below the outermost known to be empty)."""
    sizes = [ir.static_value(loop.extent) for loop in nest[1:]]
    return not any(size is not None and size <= 0 for size in sizes)


def _collapsed(loop: ir.Loop) -> list[ir.Loop]:
    """The loops one grid-stride index runs over, outermost first: the parallel ``loop`` and its lone loops
    (``_lone_loops``; a reduction's loops below stay sequential per thread) — when their iterations provably
    write disjoint elements (``_disjoint``); else ``loop`` alone."""
    nest = _lone_loops(loop)
    return nest if len(nest) > 1 and _divisible(nest) and _disjoint(nest[1:], nest[0].index) else [loop]


def _interchanged(loop: ir.Loop) -> tuple[list[ir.Loop], list[ir.Loop]] | None:
    """(rows, columns) when the sequential ``loop`` may run as one thread per iteration of the columns, each
    thread running the rows around its column's body in order; else None. ``loop`` and the lone loops under it
    (``_lone_loops``) split into the rows (the outer ones, maybe none: a column reduction's reduced axes) and
    the columns (a run of the next ones: its kept axes). Every extent is a function of the dims (so no
    column's extent depends on a row), the body neither fails nor shares locals with code around it, and the
    columns' iterations provably touch disjoint elements of what they write across all rows (``_disjoint``).
    Each element is then read and written by one thread only, in the serial order, so the results are
    bit-identical to the serial loop's (a column's float sum adds its rows in row order). The most columns
    win (the fewest rows, then the longest run)."""
    if loop.parallel or not ir.on_dims(loop.extent) or _outside_locals(loop.body):
        return None
    if any(isinstance(s, ir.Fail) for s in ir.walk_statements(loop.body)):
        return None  # which failure is reported, and what was written before it, must stay the serial ones
    nest = _lone_loops(loop)
    for split in range(len(nest)):
        for end in range(len(nest), split, -1):
            rows, columns = nest[:split], nest[split:end]
            if _divisible(columns) and _disjoint(columns, around=rows):
                return rows, columns
    return None


def _disjoint(inner: Sequence[ir.Loop], shared: ir.Index | None = None, around: Sequence[ir.Loop] = ()) -> bool:
    """Whether the iterations of ``inner`` (a perfect nest, outermost first, only known to be
    ``parallel=False``) touch disjoint elements of every buffer they write: then they may run on different
    threads, each running the loops below them and the sequential loops ``around`` them (all of them, for every
    thread). ``shared`` is an index with one value for all these threads (the parallel loop around a collapsed
    nest, whose iterations the IR already declares independent).

    Proved from the indices of every access (store or load) to a written buffer: each is affine in the indices
    of ``inner``, of ``around`` and of the loops below (extents of dims), with one offset of dims and ``shared``
    and the same strides for the indices of ``inner``. Then either they also share the strides and extents of
    the other indices and that affine map is one-to-one (``_one_to_one``), or the part of ``inner`` alone
    determines its indices from the address whatever the other indices (``_separable``). Each thread then
    touches only elements no other thread touches."""
    statements = list(ir.walk_statements(inner[-1].body))
    below = {s.index.name: s.extent for s in statements if isinstance(s, ir.Loop) and ir.on_dims(s.extent)}
    below |= {loop.index.name: loop.extent for loop in around}
    accesses: dict[ir.Buffer, list[Expr]] = {}
    for s in statements:
        if isinstance(s, ir.Store):
            accesses.setdefault(s.buffer, []).append(s.index)
    for s in statements:
        for e in _expressions(s):
            if isinstance(e, ir.Load) and e.buffer in accesses:
                accesses[e.buffer].append(e.index)
    names = [loop.index.name for loop in inner]
    extents = {loop.index.name: loop.extent for loop in inner} | below
    for indices in accesses.values():
        forms = [_affine(index, {*names, *below}) for index in indices]
        if any(form is None for form in forms):
            return False
        (first, offset), *others = forms
        if any(o != offset or any(c.get(n) != first.get(n) for n in names) for c, o in others):
            return False
        if any(not isinstance(x, Const | ir.Dim | Call) and x != shared for x in ir.walk_expr(offset)):
            return False  # a load, a local or another index in the offset: not provably distinct
        strides, sizes = [first.get(n) for n in names], [extents[n] for n in names]
        terms = [sorted(((c, extents[n]) for n, c in coefficients.items() if n not in names), key=_text)
                 for coefficients, _ in forms]
        if all(t == terms[0] for t in terms[1:]) and _one_to_one(strides, sizes, terms[0]):
            continue
        if not _separable(strides, sizes, [stride for t in terms for stride, _ in t]):
            return False
    return True


def _one_to_one(strides: list[Expr | None], extents: list[Expr], below: list[tuple[Expr, Expr]]) -> bool:
    """Whether ``sum(index·stride)`` takes distinct values over the box of ``extents`` (the inner indices of a
    nest, outermost first) and ``below`` ((stride, extent) of loops under them). With constant strides and
    extents: each stride, taken by increasing size, exceeds in size the largest size of the sum of the
    smaller terms. Otherwise only the row-major form: no loops below, the innermost stride a positive
    constant, and each other one the next one times its extent (the expressions the lowering builds strides
    with)."""
    sizes = [ir.static_value(e) for e in extents]
    if any(size is not None and size <= 0 for size in sizes):
        return True  # no iterations
    if any(s is None and size != 1 for s, size in zip(strides, sizes)):
        return False  # an index the access does not depend on: its iterations collide
    strides = [ir.const(0) if s is None else s for s in strides]  # (an index that is always 0)
    values = [(ir.static_value(s), ir.static_value(e)) for s, e in [*zip(strides, extents), *below]]
    if all(s is not None and e is not None for s, e in values):
        reach = 0  # the largest sum of the smaller terms
        for stride, extent in sorted(values, key=lambda value: abs(value[0])):
            if extent <= 0:
                return True  # an empty loop: nothing is touched
            if extent > 1 and abs(stride) <= reach:
                return False
            reach += abs(stride) * (extent - 1)
        return True
    last = ir.static_value(strides[-1])
    if below or last is None or last <= 0:
        return False
    return all(strides[m] == ir.mul(strides[m + 1], extents[m + 1]) for m in range(len(strides) - 1))


def _separable(strides: list[Expr | None], extents: list[Expr], others: list[Expr]) -> bool:
    """Whether an address ``sum(index·stride) + sum(other index·other stride)`` (one offset aside) determines
    the indices over the box of ``extents``, whatever the other indices (of loops each thread runs in full):
    the first sum is one-to-one and spans less than a modulus that divides every other stride, so the address
    modulo it gives the first sum back. With constant strides and extents the modulus is the greatest common
    divisor of the constant other strides or the span plus one; otherwise the first sum is in row-major form
    (``_one_to_one``) and the modulus is its outermost stride times its extent (a bias gradient's
    ``x[row·n + column]``: columns modulo n)."""
    if not _one_to_one(strides, extents, []):
        return False
    sizes = [ir.static_value(e) for e in extents]
    if any(size is not None and size <= 0 for size in sizes):
        return True  # no iterations
    steps = [0 if s is None else ir.static_value(s) for s in strides]
    if all(v is not None for v in [*steps, *sizes]):
        span = sum(abs(step) * (size - 1) for step, size in zip(steps, sizes))
        fixed = [abs(v) for v in map(ir.static_value, others) if v]
        moduli = [m for m in ([math.gcd(*fixed)] if fixed else []) + [span + 1] if m > span]
        return any(all(_multiple(other, ir.const(m)) for other in others) for m in moduli)
    modulus = ir.mul(strides[0], extents[0])
    return all(_multiple(other, modulus) for other in others)


def _multiple(e: Expr, factor: Expr) -> bool:
    """Whether the int64 expression of dims ``e`` is provably a multiple of ``factor``: constants that divide,
    or ``e`` a product with a factor (or a factor of each of ``factor``'s two) that is."""
    value, divisor = ir.static_value(e), ir.static_value(factor)
    if value == 0 or divisor == 1 or e == factor:
        return True
    if value is not None and divisor is not None:
        return divisor != 0 and value % divisor == 0
    if not isinstance(e, Call) or e.primitive.name != "mul":
        return False
    a, b = e.args
    if _multiple(a, factor) or _multiple(b, factor):
        return True
    if isinstance(factor, Call) and factor.primitive.name == "mul":
        x, y = factor.args
        return _multiple(a, x) and _multiple(b, y) or _multiple(a, y) and _multiple(b, x)
    return False


def _text(pair: tuple[Expr, Expr]) -> tuple[str, str]:
    return ir.text(pair[0]), ir.text(pair[1])


def _affine(e: Expr, names: set[str]) -> tuple[dict[str, Expr], Expr] | None:
    """``e`` as (coefficient of each index in ``names``, offset): sums and products by factors free of those
    indices only; None when it is not of that form."""
    if isinstance(e, ir.Index) and e.name in names:
        return {e.name: ir.const(1)}, ir.const(0)
    if not any(isinstance(x, ir.Index) and x.name in names for x in ir.walk_expr(e)):
        return {}, e
    if not isinstance(e, Call) or e.primitive.name not in ("add", "sub", "mul") or e.dtype != ir.INDEX:
        return None
    parts = [_affine(a, names) for a in e.args]
    if any(p is None for p in parts):
        return None
    (left, left_offset), (right, right_offset) = parts
    if e.primitive.name == "mul":
        if left and right:
            return None  # a product of two indices
        factor, (coefficients, offset) = (e.args[1], parts[0]) if left else (e.args[0], parts[1])
        return {n: ir.mul(c, factor) for n, c in coefficients.items()}, ir.mul(offset, factor)
    combine = ir.add if e.primitive.name == "add" else ir.sub
    coefficients = {n: combine(left.get(n, ir.const(0)), right.get(n, ir.const(0))) for n in {*left, *right}}
    return coefficients, combine(left_offset, right_offset)


_STRIDES = {  # what a grid-stride loop strides over: (its first index, its step, its depth)
    "grid": ("(long long)blockIdx.x * blockDim.x + threadIdx.x", "{} += (long long)gridDim.x * blockDim.x", 1),
    "block": ("threadIdx.x", "{} += blockDim.x", 2),  # the threads of one block: a block per row's columns
    "blocks": ("blockIdx.x", "{} += gridDim.x", 1),  # the blocks: a block per column's columns
}


def _grid_stride(nest: list[ir.Loop], writer: _Writer, lines: list[str], block: bool = False,
                 over: str = "grid") -> ir.Expr:
    """Opens the grid-stride loop over the iterations of ``nest`` (each thread recovers the loops' indices
    from its flat index by division and remainder, the innermost fastest) and returns how many threads it
    wants: the product of the extents (the inner ones clamped at 0, so two negative ones give no work).
    ``over`` says what the loop strides over (``_STRIDES``; ``block=True`` is ``over="block"``)."""
    first, step, level = _STRIDES["block" if block else over]
    head, pad = nest[0].index.name, "  " * level
    block = block or over == "block"
    if len(nest) == 1 and block:
        extent = writer.inline(nest[0].extent, lines, level)
        bounds = f"{head} = {first}, n_{head} = {extent}; {head} < n_{head}"
        lines.append(f"{pad}for (long long {bounds}; {step.format(head)}) {{")
        return nest[0].extent
    if len(nest) == 1:
        lines.append(f"{pad}const long long n_{head} = {writer.inline(nest[0].extent, lines, level)};")
        lines.append(f"{pad}for (long long {head} = {first}; {head} < n_{head}; {step.format(head)}) {{")
        return nest[0].extent
    extents = [nest[0].extent] + [_clamped(loop.extent) for loop in nest[1:]]
    for loop, extent in zip(nest, extents):
        lines.append(f"{pad}const long long n_{loop.index.name} = {writer.inline(extent, lines, level)};")
    threads = ir.product(extents)
    flat = f"flat_{head}"
    lines.append(f"{pad}const long long n_{flat} = {' * '.join(f'n_{loop.index.name}' for loop in nest)};")
    lines.append(f"{pad}for (long long {flat} = {first}; {flat} < n_{flat}; {step.format(flat)}) {{")
    used = {e.name for s in ir.walk_statements(nest[-1].body) for e in _expressions(s) if isinstance(e, ir.Index)}
    rest = flat
    for depth in range(len(nest) - 1, 0, -1):  # the indices the body uses (nvcc warns of unused variables)
        i = nest[depth].index.name
        if i in used:
            lines.append(f"{pad}  const long long {i} = {rest} % n_{i};")
        if not any(loop.index.name in used for loop in nest[:depth]):
            break
        if depth == 1:
            lines.append(f"{pad}  const long long {head} = {rest} / n_{i};")
        else:
            lines.append(f"{pad}  const long long rest_{i} = {rest} / n_{i};")
            rest = f"rest_{i}"
    return threads


def _clamped(extent: Expr) -> Expr:
    """``max(extent, 0)``: a loop's trip count."""
    value = ir.static_value(extent)
    return ir.const(max(value, 0)) if value is not None else scalar.maximum(extent, ir.const(0))


def _locals(body: Sequence[ir.Stmt]) -> list[tuple[str, str]]:
    """Every local of ``body`` once (declared at the top of the function: per thread, visible everywhere)."""
    found: dict[str, str] = {}
    for s in ir.walk_statements(body):
        if isinstance(s, ir.Declare):
            found.setdefault(s.local.name, s.local.dtype)
    return sorted(found.items())


def _live_locals(body: Sequence[ir.Stmt], read_elsewhere: Iterable[str] = ()) -> set[str]:
    """The locals whose values reach a store, a condition, a loop extent or ``read_elsewhere`` (locals the
    renderer reads itself: a grid pass's accumulators); the others are not computed."""
    statements = list(ir.walk_statements(body))

    def reads(s: ir.Stmt) -> set[str]:
        return {e.name for e in _expressions(s) if isinstance(e, ir.Local)}

    live = set(read_elsewhere).union(*(reads(s) for s in statements if not isinstance(s, ir.Declare | ir.Assign)))
    while True:
        more = live.union(*(reads(s) for s in statements if isinstance(s, ir.Declare | ir.Assign)
                            and s.local.name in live))
        if more == live:
            return live
        live = more


def _zero(dtype: str) -> str:
    return {"bool": "false", "float32": "0.0f", "float64": "0.0"}.get(dtype, "0")


class _Writer:
    """Renders statements and expressions as C lines; ``buffers`` names each buffer's parameter."""

    def __init__(self, buffers: dict[ir.Buffer, str], read_locals: set[str]) -> None:
        self.buffers = buffers
        self.read_locals = read_locals  # a local never read is not computed
        self._temps = 0

    def statements(self, body: Sequence[ir.Stmt], lines: list[str], depth: int) -> None:
        for s in body:
            self.statement(s, lines, depth)

    def statement(self, s: ir.Stmt, lines: list[str], depth: int) -> None:
        pad = "  " * depth
        if isinstance(s, ir.Loop):
            i = s.index.name
            extent = self.inline(s.extent, lines, depth)
            lines.append(f"{pad}for (long long {i} = 0, n_{i} = {extent}; {i} < n_{i}; ++{i}) {{")
            self.statements(s.body, lines, depth + 1)
            lines.append(pad + "}")
        elif isinstance(s, ir.Store):
            index, value = self.inline_many([s.index, s.value], lines, depth)
            if s.buffer.dtype == "bool":
                value = f"(unsigned char)({value})"
            lines.append(f"{pad}{self.buffers[s.buffer]}[{index}] = {value};")
        elif isinstance(s, ir.Declare | ir.Assign):
            if s.local.name in self.read_locals:
                lines.append(f"{pad}{s.local.name} = {self.inline(s.value, lines, depth)};")
        elif isinstance(s, ir.If):
            lines.append(f"{pad}if ({self.inline(s.condition, lines, depth)}) {{")
            self.statements(s.then, lines, depth + 1)
            if s.orelse:
                lines.append(pad + "} else {")
                self.statements(s.orelse, lines, depth + 1)
            lines.append(pad + "}")
        elif isinstance(s, ir.Fail):
            lines.append(f"{pad}{{ atomicCAS(status, 0, {s.code}); return; }}")
        else:
            raise TypeError(f"render: unknown statement {s!r}")

    def inline(self, e: Expr, lines: list[str], depth: int) -> str:
        return self.inline_many([e], lines, depth)[0]

    def inline_many(self, roots: Sequence[Expr], lines: list[str], depth: int) -> list[str]:
        """C text of ``roots``; a subexpression used more than once is computed once into a ``const`` temp
        (expressions are DAGs: Philox rounds share operands)."""
        uses: Counter[int] = Counter()
        seen: set[int] = set()

        def count(x: Expr) -> None:
            uses[id(x)] += 1
            if id(x) in seen:
                return
            seen.add(id(x))
            for child in _children(x):
                count(child)

        for root in roots:
            count(root)
        text: dict[int, str] = {}

        def render_one(x: Expr) -> str:
            if id(x) not in text:
                args = [render_one(a) for a in _children(x)]
                code = self.expression(x, args)
                if uses[id(x)] > 1 and isinstance(x, Call | ir.Load):
                    name = f"x_{self._temps}"
                    self._temps += 1
                    lines.append(f"{'  ' * depth}const {C_TYPE[x.dtype]} {name} = {code};")
                    code = name
                text[id(x)] = code
            return text[id(x)]

        return [render_one(root) for root in roots]

    def expression(self, e: Expr, args: list[str]) -> str:
        """One node as C, its operands already rendered."""
        if isinstance(e, Call):
            return _PRIMITIVES[e.primitive.name](e, args)
        if isinstance(e, ir.Load):
            element = f"{self.buffers[e.buffer]}[{args[0]}]"
            return f"({element} != 0)" if e.dtype == "bool" else element
        if isinstance(e, Const):
            return constant(e.value, e.dtype)
        if isinstance(e, ir.Dim):
            return f"dim_{e.slot}"
        if isinstance(e, ir.Index | ir.Local):
            return e.name
        raise TypeError(f"render: unknown expression {e!r}")


def _children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Call):
        return e.args
    if isinstance(e, ir.Load):
        return (e.index,)
    return ()


def constant(value: bool | int | float, dtype: str) -> str:
    """A C literal of ``dtype`` holding exactly ``value`` (infinities and NaN as builtins)."""
    if dtype == "bool":
        return "true" if value else "false"
    if dtype in FLOATS:
        single = dtype == "float32"
        if math.isnan(value):
            return "__builtin_nanf(\"\")" if single else "__builtin_nan(\"\")"
        if math.isinf(value):
            text = "__builtin_huge_valf()" if single else "__builtin_huge_val()"
            return text if value > 0 else f"(-{text})"
        digits = str(np.float32(value)) if single else repr(float(value))  # shortest text that round-trips
        if "e" not in digits and "." not in digits:
            digits += ".0"
        text = digits + ("f" if single else "")
        return f"({text})" if text.startswith("-") else text
    bits = 32 if dtype == "int32" else 64
    suffix = "" if bits == 32 else "LL"
    if value == -(1 << (bits - 1)):
        return f"({-(1 << (bits - 1)) + 1}{suffix} - 1{suffix})"
    return f"({value}{suffix})" if value < 0 else f"{value}{suffix}"


# -- the primitives ------------------------------------------------------------------------------------------
# each takes the call and its operands' C text and returns the C text of its value
Emit = Callable[[Call, list[str]], str]
_PRIMITIVES: dict[str, Emit] = {}


_primitive = scalar.primitive_table(_PRIMITIVES)


def _float(call: Call) -> bool:
    return call.dtype in FLOATS


@_primitive("add", "sub")
def _add_sub(call: Call, args: list[str]) -> str:
    if _float(call):
        return f"({args[0]} {'+' if call.primitive.name == 'add' else '-'} {args[1]})"
    return f"gc_{call.primitive.name}({args[0]}, {args[1]})"


@_primitive("mul")
def _mul(call: Call, args: list[str]) -> str:
    """Float products are never contracted into an fma (random ops depend on separately rounded products)."""
    if _float(call):
        return f"{'__fmul_rn' if call.dtype == 'float32' else '__dmul_rn'}({args[0]}, {args[1]})"
    return f"gc_mul({args[0]}, {args[1]})"


@_primitive("div")
def _div(call: Call, args: list[str]) -> str:
    return f"{'__fdiv_rn' if call.dtype == 'float32' else '__ddiv_rn'}({args[0]}, {args[1]})"


@_primitive("neg")
def _neg(call: Call, args: list[str]) -> str:
    return f"(-{args[0]})" if _float(call) else f"gc_neg({args[0]})"


@_primitive("exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "erf", "pow")
def _math(call: Call, args: list[str]) -> str:
    """CUDA's math library; integer pow by squaring."""
    name = call.primitive.name
    if not _float(call):
        return f"gc_ipow({args[0]}, {args[1]})"
    return f"{name}{'f' if call.dtype == 'float32' else ''}({', '.join(args)})"


@_primitive("sqrt")
def _sqrt(call: Call, args: list[str]) -> str:
    return f"{'__fsqrt_rn' if call.dtype == 'float32' else '__dsqrt_rn'}({args[0]})"


@_primitive("abs")
def _abs(call: Call, args: list[str]) -> str:
    if _float(call):
        return f"{'fabsf' if call.dtype == 'float32' else 'fabs'}({args[0]})"
    return f"gc_abs({args[0]})"


@_primitive("maximum", "minimum")
def _extremum(call: Call, args: list[str]) -> str:
    kind = "f" if _float(call) else "i"
    return f"gc_{kind}{call.primitive.name[:3]}({args[0]}, {args[1]})"


@_primitive("select")
def _select(call: Call, args: list[str]) -> str:
    return f"({args[0]} ? {args[1]} : {args[2]})"


_COMPARISON = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


@_primitive(*_COMPARISON)
def _compare(call: Call, args: list[str]) -> str:
    """C's float comparisons are ordered (false with a NaN) except ``!=``, as the LLVM renderer's."""
    return f"({args[0]} {_COMPARISON[call.primitive.name]} {args[1]})"


@_primitive("and", "or", "not")
def _logical(call: Call, args: list[str]) -> str:
    if call.primitive.name == "not":
        return f"(!{args[0]})"
    return f"({args[0]} {'&&' if call.primitive.name == 'and' else '||'} {args[1]})"


_FLOAT_TO_INT = {("float32", "int32"): "__float2int_rz", ("float32", "int64"): "__float2ll_rz",
                 ("float64", "int32"): "__double2int_rz", ("float64", "int64"): "__double2ll_rz"}


@_primitive("cast")
def _cast(call: Call, args: list[str]) -> str:
    """numpy's astype: to bool is != 0 (NaN is true), float to int truncates and saturates (NaN gives 0),
    int to int wraps, float64 to float32 rounds to nearest."""
    (x,), source, target = args, call.args[0].dtype, call.to
    if source == target:
        return x
    if target == "bool":
        return f"({x} != {_zero(source)})"
    if source in FLOATS and target not in FLOATS:
        return f"{_FLOAT_TO_INT[source, target]}({x})"
    return f"(({C_TYPE[target]})({x}))"


@_primitive("floordiv", "mod", "shl", "shr")
def _integer(call: Call, args: list[str]) -> str:
    return f"gc_{call.primitive.name}({args[0]}, {args[1]})"


@_primitive("bitand", "bitor", "bitxor")
def _bitwise(call: Call, args: list[str]) -> str:
    symbol = {"bitand": "&", "bitor": "|", "bitxor": "^"}[call.primitive.name]
    return f"({args[0]} {symbol} {args[1]})"
