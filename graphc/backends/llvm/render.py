"""The loop-nest IR (graphc.lower.ir) rendered to LLVM IR: one native function per kernel, one entry for all.

The ABI, fixed for the runtime that calls the code:

* each kernel is an exported ``i32 @graphc_<name>(ptr buffers, ptr dims)``: ``buffers`` is an array of one
  pointer per entry of ``Program.buffers``, in order (dense row-major data; a bool is one byte, as numpy's),
  ``dims`` an array of int64 (``Dim(slot)`` reads ``dims[slot]``). It returns 0, or the code of the ``Fail``
  statement that ran, and stops there;
* ``i32 @graphc_entry(ptr buffers, ptr dims)`` calls every kernel in program order and returns the first
  nonzero code: a whole training step is one native call;
* the module declares, and ``Rendered.symbols`` lists, the external functions it calls: the CBLAS gemms of
  scipy-openblas32 (``scipy_cblas_sgemm``/``scipy_cblas_dgemm``, from ``libscipy_openblas.so``), ``pthread_create``
  and ``pthread_join`` (from libc) when a loop may run on threads, and libm functions for the transcendentals
  ``vmath`` does not provide. The optimizer may add calls to libc's ``memset``/``memcpy`` as well; the loader
  resolves all of them by name (MCJIT finds what the Python process has loaded: libc, libm; the BLAS library
  must be loaded with ``llvmlite.binding.load_library_permanently``). The module has no triple or data layout:
  the loader sets the host's before optimizing.

Why the code looks the way it does (what LLVM needs to make it fast):

* a kernel's body is an internal function taking the buffers it uses as ``noalias`` pointers (distinct
  ``Buffer``s never overlap) and the dims it reads as values, so the loop vectorizer needs no run-time alias
  checks; the exported function only unpacks the two arrays and calls it;
* loop variables are i64 phis counting up from 0 with the extent evaluated once before the loop; addresses are
  ``getelementptr inbounds`` at the flat element offset; locals are allocas in the entry block (mem2reg makes
  them registers, and accumulators become reduction phis);
* float arithmetic is IEEE with no fast-math flags, except the update of ``Assign(reassociate=True)``, whose
  add/sub/mul on the path to the accumulator carry ``reassoc`` (and whose maximum/minimum there are LLVM's
  NaN-propagating intrinsics) so the reduction vectorizes into partial results; not ``nsz``, which lets LLVM
  fold the sum of (x − x) to 0 when x is inf; nothing is contracted into an fma (random ops depend on
  separately rounded products);
* every primitive is branch-free (selects guard division by zero and oversized shifts instead of branches),
  so any elementwise loop can vectorize; the transcendentals come from ``vmath`` for the same reason;
* a ``Loop(parallel=True)`` is outlined into a function of its captured values and an iteration range
  [begin, end), and split across up to ``threads`` pthreads when the run-time work (trip count times the
  nested loops' extents) reaches ``PARALLEL_WORK`` elements, each thread getting at least ``THREAD_WORK``;
  smaller loops call the outlined function once, on the calling thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llvmlite import ir as ll

from graphc.backends.llvm import vmath
from graphc.graph.dtypes import FLOATS
from graphc.lower import ir
from graphc.ops import scalar
from graphc.ops.scalar import Call, Const, Expr

ENTRY = "graphc_entry"
PARALLEL_WORK = 1 << 18  # a parallel loop runs on threads from this many elements of work (below, thread start-up
# and contention with BLAS threads still spinning after a GEMM cost more than a second core gains)
THREAD_WORK = 1 << 17  # and gives each thread at least this many

I1, I8, I32, I64 = ll.IntType(1), ll.IntType(8), ll.IntType(32), ll.IntType(64)
F32, F64 = ll.FloatType(), ll.DoubleType()
PTR = ll.PointerType()
REGISTER = {"bool": I1, "int32": I32, "int64": I64, "float32": F32, "float64": F64}
MEMORY = {**REGISTER, "bool": I8}  # numpy stores a bool in one byte
SIZE = {"bool": 1, "int32": 4, "int64": 8, "float32": 4, "float64": 8}
REASSOCIATE = ("reassoc",)  # not nsz: with it LLVM folds (x − x)·4 to 0 even when x is inf
TASK = ll.LiteralStructType([PTR, I64, I64, I32, I32])  # a thread's task: context, begin, end, code, started
CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS = 101, 111, 112
GEMM = {"float32": "scipy_cblas_sgemm", "float64": "scipy_cblas_dgemm"}


@dataclass(frozen=True)
class Rendered:
    """A program as LLVM IR text, with the names the loader and the runtime need."""

    llvm_ir: str
    entry: str  # the exported function that runs every kernel
    kernels: tuple[str, ...]  # the exported function of each kernel, in program order
    symbols: tuple[str, ...]  # external functions the module calls, which the loader must resolve by name


def render(program: ir.Program, threads: int) -> Rendered:
    """``program`` as an LLVM module whose parallel loops may use up to ``threads`` threads."""
    if threads < 1:
        raise ValueError(f"render: threads must be at least 1, got {threads}")
    unit = _Module(program, threads)
    kernels = tuple(unit.kernel(k) for k in program.kernels)
    unit.entry(kernels)
    return Rendered(str(unit.module), ENTRY, kernels, tuple(sorted(unit.symbols)))


# -- what a body uses --------------------------------------------------------------------------------------
@dataclass
class _Uses:
    """The buffers, dims, loop variables and locals a list of statements refers to (expressions included)."""

    buffers: set[ir.Buffer] = field(default_factory=set)
    dims: set[int] = field(default_factory=set)
    indices: set[str] = field(default_factory=set)  # loop variables read
    bound: set[str] = field(default_factory=set)  # loop variables of loops inside
    reads: dict[str, str] = field(default_factory=dict)  # locals read: name -> dtype
    declared: set[str] = field(default_factory=set)
    assigned: set[str] = field(default_factory=set)
    _seen: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, body: Sequence[ir.Stmt]) -> _Uses:
        uses = cls()
        for s in ir.walk_statements(body):
            uses.statement(s)
        return uses

    def statement(self, s: ir.Stmt) -> None:
        if isinstance(s, ir.Loop):
            self.bound.add(s.index.name)
            self.expr(s.extent)
        elif isinstance(s, ir.Store):
            self.buffers.add(s.buffer)
            self.expr(s.index)
            self.expr(s.value)
        elif isinstance(s, ir.Declare | ir.Assign):
            (self.declared if isinstance(s, ir.Declare) else self.assigned).add(s.local.name)
            self.expr(s.value)
        elif isinstance(s, ir.If):
            self.expr(s.condition)
        elif isinstance(s, ir.Gemm):
            self.buffers.update((s.a, s.b, s.c))
            for e in (s.m, s.n, s.k, s.a_offset, s.lda, s.b_offset, s.ldb, s.c_offset, s.ldc):
                self.expr(e)

    def expr(self, e: Expr) -> None:
        if id(e) in self._seen:  # expressions are DAGs (Philox rounds share operands): visit each node once
            return
        self._seen.add(id(e))
        if isinstance(e, ir.Load):
            self.buffers.add(e.buffer)
            self.expr(e.index)
        elif isinstance(e, ir.Dim):
            self.dims.add(e.slot)
        elif isinstance(e, ir.Index):
            self.indices.add(e.name)
        elif isinstance(e, ir.Local):
            self.reads[e.name] = e.dtype
        elif isinstance(e, Call):
            for a in e.args:
                self.expr(a)


def _leaves_known(e: Expr, indices: dict, locals_: dict) -> bool:
    """Whether ``e`` can be evaluated with the loop variables and locals in scope and without loading."""
    seen: set[int] = set()

    def known(x: Expr) -> bool:
        if id(x) in seen:
            return True
        seen.add(id(x))
        if isinstance(x, ir.Index):
            return x.name in indices
        if isinstance(x, ir.Local):
            return x.name in locals_
        if isinstance(x, Call):
            return all(known(a) for a in x.args)
        return isinstance(x, Const | ir.Dim)

    return known(e)


def _accumulator_path(e: Expr, name: str) -> set[int]:
    """The ids of the calls in ``e`` whose operands lead to local ``name``: the ops an accumulation may reorder."""
    found: dict[int, bool] = {}

    def reaches(x: Expr) -> bool:
        if id(x) not in found:
            if isinstance(x, ir.Local):
                found[id(x)] = x.name == name
            else:
                found[id(x)] = isinstance(x, Call) and any([reaches(a) for a in x.args])
        return found[id(x)]

    reaches(e)
    return {key for key, hit in found.items() if hit}


# -- the module ------------------------------------------------------------------------------------------
class _Module:
    """The LLVM module being built: kernels, their outlined parallel loops, and the declarations they share."""

    def __init__(self, program: ir.Program, threads: int) -> None:
        self.threads = threads
        self.module = ll.Module(name="graphc")
        self.symbols: set[str] = set()  # external functions declared
        self.position = {b: i for i, b in enumerate(program.buffers)}
        self._names = {ENTRY}

    def symbol(self, name: str) -> str:
        """A fresh exported name for kernel ``name``: ``graphc_`` and the name with LLVM-safe characters."""
        base = "graphc_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        symbol, n = base, 1
        while symbol in self._names:
            n += 1
            symbol = f"{base}_{n}"
        self._names.add(symbol)
        return symbol

    def function(self, name: str, ret: ll.Type, args: Sequence[ll.Type], internal: bool = True) -> ll.Function:
        fn = ll.Function(self.module, ll.FunctionType(ret, list(args)), name=name)
        fn.attributes.add("nounwind")
        if internal:
            fn.linkage = "internal"
        return fn

    def declare(self, name: str, ret: ll.Type, args: Sequence[ll.Type], external: bool = False) -> ll.Function:
        """An LLVM intrinsic or, when ``external``, a library function the loader must supply."""
        if name in self.module.globals:
            return self.module.globals[name]
        if external:
            self.symbols.add(name)
        fn = ll.Function(self.module, ll.FunctionType(ret, list(args)), name=name)
        fn.attributes.add("nounwind")
        return fn

    def intrinsic(self, name: str, dtype: str, arity: int = 1) -> ll.Function:
        t = REGISTER[dtype]
        return self.declare(f"{name}.{t.intrinsic_name}", t, [t] * arity)

    def kernel(self, kernel: ir.LoopKernel) -> str:
        """The body of ``kernel`` as an internal function of its buffers and dims, and its exported wrapper."""
        symbol = self.symbol(kernel.name)
        uses = _Uses.of(kernel.body)
        buffers = self.ordered(uses.buffers, kernel.name)
        dims = sorted(uses.dims)
        body = self.function(f"{symbol}.body", I32, [PTR] * len(buffers) + [I64] * len(dims))
        _mark_noalias(body, len(buffers))
        emitter = _Emitter(self, body, symbol, dict(zip(buffers, body.args)), dict(zip(dims, body.args[len(buffers):])))
        emitter.statements(kernel.body)
        emitter.finish()

        wrapper = self.function(symbol, I32, [PTR, PTR], internal=False)
        b = ll.IRBuilder(wrapper.append_basic_block("entry"))
        table, dim_table = wrapper.args
        args = [b.load(b.gep(table, [I64(self.position[buf])], inbounds=True, source_etype=PTR), typ=PTR, align=8)
                for buf in buffers]
        args += [b.load(b.gep(dim_table, [I64(d)], inbounds=True, source_etype=I64), typ=I64, align=8) for d in dims]
        b.ret(b.call(body, args))
        return symbol

    def ordered(self, buffers: set[ir.Buffer], where: str) -> list[ir.Buffer]:
        """``buffers`` in program order (a buffer missing from the program is an error in the program)."""
        missing = [b.name for b in buffers if b not in self.position]
        if missing:
            raise ValueError(f"kernel {where} uses buffers missing from the program: {', '.join(sorted(missing))}")
        return sorted(buffers, key=self.position.__getitem__)

    def entry(self, kernels: Sequence[str]) -> None:
        """``graphc_entry``: every kernel in order, stopping at the first nonzero code."""
        fn = self.function(ENTRY, I32, [PTR, PTR], internal=False)
        b = ll.IRBuilder(fn.append_basic_block("entry"))
        for symbol in kernels:
            code = b.call(self.module.globals[symbol], list(fn.args))
            with b.if_then(b.icmp_signed("!=", code, I32(0)), likely=False):
                b.ret(code)
        b.ret(I32(0))


def _mark_noalias(fn: ll.Function, count: int) -> None:
    for arg in fn.args[:count]:
        arg.add_attribute("noalias")


# -- statements and expressions ------------------------------------------------------------------------
class _Emitter:
    """Emits statements into one function. ``fork``: its parallel loops may run on threads (the kernel body;
    an outlined parallel loop runs its own nested parallel loops serially)."""

    def __init__(self, unit: _Module, function: ll.Function, symbol: str, buffers: dict[ir.Buffer, ll.Value],
                 dims: dict[int, ll.Value], indices: dict[str, ll.Value] | None = None, fork: bool = True) -> None:
        self.unit, self.function, self.symbol = unit, function, symbol
        self.allocas = ll.IRBuilder(function.append_basic_block("entry"))
        self.start = function.append_basic_block("start")
        self.builder = ll.IRBuilder(self.start)
        self.buffers, self.dims = buffers, dims
        self.indices: dict[str, ll.Value] = dict(indices or {})
        self.locals: dict[str, tuple[ll.Value, str]] = {}  # name -> (alloca, dtype)
        self.fork = fork and unit.threads > 1
        self._outlined = 0

    def finish(self) -> None:
        self.builder.ret(I32(0))
        self.allocas.branch(self.start)

    def alloca(self, t: ll.Type, name: str) -> ll.Value:
        """A stack slot in the entry block (where mem2reg promotes it), as an opaque pointer like every other
        pointer of the module (llvmlite would type it)."""
        slot = self.allocas.alloca(t, name=name)
        slot.type = PTR
        return slot

    def local(self, name: str, dtype: str) -> ll.Value:
        if name not in self.locals:
            self.locals[name] = (self.alloca(REGISTER[dtype], name), dtype)
        return self.locals[name][0]

    # statements
    def statements(self, body: Sequence[ir.Stmt]) -> None:
        for s in body:
            self.statement(s)

    def statement(self, s: ir.Stmt) -> None:
        b = self.builder
        if isinstance(s, ir.Loop):
            self.loop(s)
        elif isinstance(s, ir.Store):
            offset = self.value(s.index)
            self.store(s.buffer, offset, self.value(s.value))
        elif isinstance(s, ir.Declare):
            b.store(self.value(s.value), self.local(s.local.name, s.local.dtype))
        elif isinstance(s, ir.Assign):
            value = self.value(s.value, accumulate=s.local.name if s.reassociate else None)
            b.store(value, self.local(s.local.name, s.local.dtype))
        elif isinstance(s, ir.If):
            with b.if_else(self.value(s.condition)) as (then, orelse):
                with then:
                    self.statements(s.then)
                with orelse:
                    self.statements(s.orelse)
        elif isinstance(s, ir.Fail):
            self.ret(I32(s.code))
        elif isinstance(s, ir.Gemm):
            self.gemm(s)
        else:
            raise TypeError(f"render: unknown statement {s!r}")

    def ret(self, code: ll.Value) -> None:
        """Return ``code``; what follows in the same statement list is unreachable, and goes to a fresh block."""
        self.builder.ret(code)
        self.builder.position_at_end(self.function.append_basic_block("unreachable"))

    def element(self, buffer: ir.Buffer, offset: ll.Value) -> ll.Value:
        return self.builder.gep(self.buffers[buffer], [offset], inbounds=True, source_etype=MEMORY[buffer.dtype])

    def load(self, buffer: ir.Buffer, offset: ll.Value) -> ll.Value:
        value = self.builder.load(self.element(buffer, offset), typ=MEMORY[buffer.dtype], align=SIZE[buffer.dtype])
        return self.builder.icmp_unsigned("!=", value, I8(0)) if buffer.dtype == "bool" else value

    def store(self, buffer: ir.Buffer, offset: ll.Value, value: ll.Value) -> None:
        if buffer.dtype == "bool":
            value = self.builder.zext(value, I8)
        self.builder.store(value, self.element(buffer, offset), align=SIZE[buffer.dtype])

    def for_range(self, start: ll.Value, stop: ll.Value, body: Callable[[ll.Value], None], name: str = "i") -> None:
        """``for i in range(start, stop): body(i)``: an i64 phi, the bounds evaluated once, tested at the latch."""
        b = self.builder
        loop = self.function.append_basic_block(f"{name}.loop")
        done = self.function.append_basic_block(f"{name}.done")
        b.cbranch(b.icmp_signed("<", start, stop), loop, done)
        before = b.block
        b.position_at_end(loop)
        i = b.phi(I64, name=name)
        i.add_incoming(start, before)
        body(i)
        following = b.add(i, I64(1), flags=("nuw", "nsw"))  # i < stop, so i + 1 cannot overflow
        i.add_incoming(following, b.block)
        b.cbranch(b.icmp_signed("<", following, stop), loop, done)
        b.position_at_end(done)

    def counted(self, loop: ir.Loop, start: ll.Value, stop: ll.Value) -> None:
        def body(i: ll.Value) -> None:
            self.indices[loop.index.name] = i
            self.statements(loop.body)

        self.for_range(start, stop, body, loop.index.name)
        del self.indices[loop.index.name]

    def loop(self, s: ir.Loop) -> None:
        uses = _Uses.of(s.body) if s.parallel and self.fork else None
        # a body that assigns a local of the enclosing code is not independent: it runs serially
        if uses is None or uses.assigned - uses.declared:
            self.counted(s, I64(0), self.value(s.extent))
        else:
            self.parallel(s, uses)

    # parallel loops
    def parallel(self, s: ir.Loop, uses: _Uses) -> None:
        """Run ``s`` through an outlined function: on up to ``threads`` threads when the work is large enough,
        else once on this thread; a nonzero code from any chunk is returned."""
        b = self.builder
        buffers = self.unit.ordered(uses.buffers, self.symbol)
        dims = sorted(uses.dims)
        indices = sorted(uses.indices - uses.bound - {s.index.name})
        captured = sorted(name for name in uses.reads if name not in uses.declared)
        for name in captured:
            if name not in self.locals:
                raise ValueError(f"render: local {name} is read in {self.symbol} before it is declared")
        values = ([self.buffers[x] for x in buffers] + [self.dims[d] for d in dims]
                  + [self.indices[i] for i in indices]
                  + [b.load(self.locals[name][0], typ=REGISTER[self.locals[name][1]]) for name in captured])
        outlined, thread = self.outline(s, buffers, dims, indices, [(n, self.locals[n][1]) for n in captured])

        extent = self.value(s.extent)
        count = self.thread_count(s, extent)
        with b.if_else(b.icmp_signed(">=", count, I64(2))) as (threaded, serial):
            with threaded:
                code_threaded = self.fork_join(thread, values, extent, count)
                threaded_block = b.block
            with serial:
                code_serial = b.call(outlined, [*values, I64(0), extent])
                serial_block = b.block
        code = b.phi(I32, name="code")
        code.add_incoming(code_threaded, threaded_block)
        code.add_incoming(code_serial, serial_block)
        with b.if_then(b.icmp_signed("!=", code, I32(0)), likely=False):
            self.builder.ret(code)

    def outline(self, s: ir.Loop, buffers: list[ir.Buffer], dims: list[int], indices: list[str],
                captured: list[tuple[str, str]]) -> tuple[ll.Function, ll.Function]:
        """The loop over [begin, end) as a function of its captured values, and a pthread start routine running
        it on a ``TASK`` whose context holds those values."""
        name = f"{self.symbol}.parallel{self._outlined}"
        self._outlined += 1
        types = [PTR] * len(buffers) + [I64] * (len(dims) + len(indices)) + [REGISTER[d] for _, d in captured]
        fn = self.unit.function(name, I32, [*types, I64, I64])
        _mark_noalias(fn, len(buffers))
        args = list(fn.args)
        n_b, n_d, n_i = len(buffers), len(dims), len(indices)
        inner = _Emitter(self.unit, fn, self.symbol, dict(zip(buffers, args[:n_b])),
                         dict(zip(dims, args[n_b:n_b + n_d])), dict(zip(indices, args[n_b + n_d:n_b + n_d + n_i])),
                         fork=False)
        for (local, dtype), value in zip(captured, args[n_b + n_d + n_i:-2]):
            inner.builder.store(value, inner.local(local, dtype))
        inner.counted(s, args[-2], args[-1])
        inner.finish()

        context = ll.LiteralStructType(types)
        thread = self.unit.function(f"{name}.thread", PTR, [PTR])
        b = ll.IRBuilder(thread.append_basic_block("entry"))
        (task,) = thread.args
        ctx, begin, end = (b.load(_field(b, TASK, task, k), typ=TASK.elements[k]) for k in range(3))
        values = [b.load(_field(b, context, ctx, k), typ=t) for k, t in enumerate(types)]
        b.store(b.call(fn, [*values, begin, end]), _field(b, TASK, task, 3))
        b.ret(ll.Constant(PTR, None))
        return fn, thread

    def thread_count(self, s: ir.Loop, extent: ll.Value) -> ll.Value:
        """How many threads the loop gets: min(threads, extent, work // THREAD_WORK), or 0 below PARALLEL_WORK."""
        b = self.builder
        work = b.mul(self.smax(extent, I64(0)), self.work(s.body))
        count = self.smin(self.smin(b.sdiv(work, I64(THREAD_WORK)), extent), I64(self.unit.threads))
        return b.select(b.icmp_signed(">=", work, I64(PARALLEL_WORK)), count, I64(0))

    def work(self, body: Sequence[ir.Stmt]) -> ll.Value:
        """Elements of work of one run of ``body``: the sum over its loops of extent × their bodies' work (at
        least 1); an extent that depends on variables bound inside counts as 1."""
        b = self.builder
        total: ll.Value = I64(0)
        for s in body:
            if isinstance(s, ir.Loop):
                inner = self.work(s.body)
                if _leaves_known(s.extent, self.indices, self.locals):
                    inner = b.mul(self.smax(self.value(s.extent), I64(0)), inner)
                total = b.add(total, inner)
            elif isinstance(s, ir.If):
                total = b.add(total, b.add(self.work(s.then), self.work(s.orelse)))
        return self.smax(total, I64(1))

    def fork_join(self, thread: ll.Function, values: list[ll.Value], extent: ll.Value, count: ll.Value) -> ll.Value:
        """Split [0, extent) into ``count`` chunks; threads run chunks 1.., this thread chunk 0 (and any chunk
        whose thread could not start); the first nonzero code in chunk order is the result."""
        b, unit = self.builder, self.unit
        context_type = ll.LiteralStructType([v.type for v in values])
        context = self.alloca(context_type, "context")
        for k, v in enumerate(values):
            b.store(v, _field(b, context_type, context, k))
        tasks_type, ids_type = ll.ArrayType(TASK, unit.threads), ll.ArrayType(I64, unit.threads)
        tasks = self.alloca(tasks_type, "tasks")
        ids = self.alloca(ids_type, "threads")  # pthread_t: 8 bytes on Linux
        create = unit.declare("pthread_create", I32, [PTR, PTR, PTR, PTR], external=True)
        join = unit.declare("pthread_join", I32, [I64, PTR], external=True)
        per, extra = b.sdiv(extent, count), b.srem(extent, count)

        def task(t: ll.Value, k: int) -> ll.Value:
            return b.gep(tasks, [I64(0), t, I32(k)], inbounds=True, source_etype=tasks_type)

        def begin(t: ll.Value) -> ll.Value:  # chunk t starts at t·per + min(t, extra)
            return b.add(b.mul(t, per), self.smin(t, extra))

        def prepare(t: ll.Value) -> None:
            for k, v in enumerate((context, begin(t), begin(b.add(t, I64(1))), I32(0), I32(0))):
                b.store(v, task(t, k))

        def start(t: ll.Value) -> None:
            slot = b.gep(ids, [I64(0), t], inbounds=True, source_etype=ids_type)
            started = b.icmp_signed("==", b.call(create, [slot, ll.Constant(PTR, None), thread, task(t, 0)]), I32(0))
            b.store(b.zext(started, I32), task(t, 4))
            with b.if_then(b.not_(started), likely=False):
                b.call(thread, [task(t, 0)])

        def finish(t: ll.Value) -> None:
            started = b.icmp_signed("!=", b.load(task(t, 4), typ=I32), I32(0))
            with b.if_then(started):
                thread_id = b.load(b.gep(ids, [I64(0), t], inbounds=True, source_etype=ids_type), typ=I64)
                b.call(join, [thread_id, ll.Constant(PTR, None)])

        self.for_range(I64(0), count, prepare, "prepare")
        self.for_range(I64(1), count, start, "start")
        b.call(thread, [task(I64(0), 0)])
        self.for_range(I64(1), count, finish, "join")
        code = self.alloca(I32, "first_code")
        b.store(I32(0), code)

        def first(t: ll.Value) -> None:
            so_far = b.load(code, typ=I32)
            chunk = b.load(task(t, 3), typ=I32)
            b.store(b.select(b.icmp_signed("!=", so_far, I32(0)), so_far, chunk), code)

        self.for_range(I64(0), count, first, "code")
        return b.load(code, typ=I32)

    # gemm
    def gemm(self, g: ir.Gemm) -> None:
        """C = alpha·op(A)·op(B) + beta·C through CBLAS; nothing when m or n is 0, and C = beta·C computed here
        when k is 0 (BLAS libraries differ there, and beta = 0 must give zeros even over NaN)."""
        if g.dtype not in GEMM:
            raise ValueError(f"render: gemm of {g.dtype} is not supported (float32 and float64 are)")
        b, t = self.builder, REGISTER[g.dtype]
        m, n, k = self.value(g.m), self.value(g.n), self.value(g.k)
        c_offset, ldc = self.value(g.c_offset), self.value(g.ldc)
        empty = b.or_(b.icmp_signed("<=", m, I64(0)), b.icmp_signed("<=", n, I64(0)))
        with b.if_then(b.not_(empty)):
            with b.if_else(b.icmp_signed("<=", k, I64(0))) as (no_products, products):
                with no_products:
                    if g.beta != 1.0:
                        self.scale(g, m, n, c_offset, ldc)
                with products:
                    blas = self.unit.declare(GEMM[g.dtype], ll.VoidType(),
                                              [I32] * 6 + [t, PTR, I32, PTR, I32, t, PTR, I32], external=True)
                    a_at, b_at = self.element(g.a, self.value(g.a_offset)), self.element(g.b, self.value(g.b_offset))
                    c_at = self.element(g.c, c_offset)
                    flag = {False: I32(CBLAS_NO_TRANS), True: I32(CBLAS_TRANS)}
                    lda, ldb = self.value(g.lda), self.value(g.ldb)
                    narrow = [b.trunc(x, I32) for x in (m, n, k, lda, ldb, ldc)]
                    b.call(blas, [I32(CBLAS_ROW_MAJOR), flag[g.trans_a], flag[g.trans_b], *narrow[:3],
                                   ll.Constant(t, g.alpha), a_at, narrow[3], b_at, narrow[4],
                                   ll.Constant(t, g.beta), c_at, narrow[5]])

    def scale(self, g: ir.Gemm, m: ll.Value, n: ll.Value, c_offset: ll.Value, ldc: ll.Value) -> None:
        """C = beta·C over the m×n block (zeros when beta is 0)."""
        b, t = self.builder, REGISTER[g.dtype]

        def row(i: ll.Value) -> None:
            start = b.add(c_offset, b.mul(i, ldc))

            def column(j: ll.Value) -> None:
                at = b.add(start, j)
                scaled = (ll.Constant(t, 0.0) if g.beta == 0.0
                          else b.fmul(self.load(g.c, at), ll.Constant(t, g.beta)))
                self.store(g.c, at, scaled)

            self.for_range(I64(0), n, column, "j")

        self.for_range(I64(0), m, row, "i")

    # expressions
    def value(self, e: Expr, accumulate: str | None = None) -> ll.Value:
        """``e`` computed at the current point (each shared subexpression once). ``accumulate``: the local an
        ``Assign(reassociate=True)`` updates, whose path in ``e`` may be reordered."""
        path = _accumulator_path(e, accumulate) if accumulate else set()
        memo: dict[int, ll.Value] = {}

        def compute(x: Expr) -> ll.Value:
            key = id(x)
            if key not in memo:
                if isinstance(x, Call):
                    memo[key] = _PRIMITIVES[x.primitive.name](self, x, [compute(a) for a in x.args], key in path)
                elif isinstance(x, ir.Load):
                    memo[key] = self.load(x.buffer, compute(x.index))
                else:
                    memo[key] = self.leaf(x)
            return memo[key]

        return compute(e)

    def leaf(self, e: Expr) -> ll.Value:
        if isinstance(e, Const):
            return ll.Constant(REGISTER[e.dtype], e.value)
        if isinstance(e, ir.Index):
            return self.indices[e.name]
        if isinstance(e, ir.Dim):
            return self.dims[e.slot]
        if isinstance(e, ir.Local):
            if e.name not in self.locals:
                raise ValueError(f"render: local {e.name} is read in {self.symbol} before it is declared")
            return self.builder.load(self.locals[e.name][0], typ=REGISTER[e.dtype])
        raise TypeError(f"render: unknown expression {e!r}")

    def smax(self, a: ll.Value, b: ll.Value) -> ll.Value:
        return self.builder.call(self.unit.intrinsic("llvm.smax", _dtype_of(a.type), 2), [a, b])

    def smin(self, a: ll.Value, b: ll.Value) -> ll.Value:
        return self.builder.call(self.unit.intrinsic("llvm.smin", _dtype_of(a.type), 2), [a, b])


def _field(b: ll.IRBuilder, struct: ll.Type, pointer: ll.Value, k: int) -> ll.Value:
    return b.gep(pointer, [I32(0), I32(k)], inbounds=True, source_etype=struct)


def _dtype_of(t: ll.Type) -> str:
    return next(name for name, register in REGISTER.items() if register == t)


# -- the primitives ----------------------------------------------------------------------------------------
# each takes the emitter, the call, its operands' values and whether it is on an accumulator's path
Emit = Callable[[_Emitter, Call, list[ll.Value], bool], ll.Value]
_PRIMITIVES: dict[str, Emit] = {}


_primitive = scalar.primitive_table(_PRIMITIVES)


def _is_float(e: Expr) -> bool:
    return e.dtype in FLOATS


_ARITHMETIC = {"add": ("add", "fadd"), "sub": ("sub", "fsub"), "mul": ("mul", "fmul")}


@_primitive("add", "sub", "mul")
def _arithmetic(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    """Integers wrap (no nsw: int32 overflow is defined, as numpy's); floats are IEEE unless accumulating."""
    integer, floating = _ARITHMETIC[call.primitive.name]
    if _is_float(call):
        return getattr(em.builder, floating)(*args, flags=REASSOCIATE if reorder else ())
    return getattr(em.builder, integer)(*args)


@_primitive("div")
def _div(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    return em.builder.fdiv(*args)


@_primitive("neg")
def _neg(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    if _is_float(call):
        return em.builder.fneg(args[0])
    return em.builder.sub(ll.Constant(args[0].type, 0), args[0])


@_primitive("exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "erf")
def _transcendental(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    return _math(em, call.primitive.name, call.dtype, args)


def _math(em: _Emitter, name: str, dtype: str, args: list[ll.Value]) -> ll.Value:
    """``vmath``'s branch-free code (vectorizable), or libm's function for a name vmath lacks."""
    if name in vmath.NAMES:
        return vmath.emit(em.builder, name, args)
    t = REGISTER[dtype]
    fn = em.unit.declare(name + ("f" if dtype == "float32" else ""), t, [t] * len(args), external=True)
    return em.builder.call(fn, args)


@_primitive("sqrt")
def _sqrt(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    return em.builder.call(em.unit.intrinsic("llvm.sqrt", call.dtype), args)


@_primitive("pow")
def _pow(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    """Float pow from vmath; integer pow by repeated squaring, wrapping like numpy's. A negative integer exponent
    (an error in numpy) gives 0."""
    if _is_float(call):
        return _math(em, "pow", call.dtype, args)
    return em.builder.call(_integer_power(em.unit, call.dtype), args)


def _integer_power(unit: _Module, dtype: str) -> ll.Function:
    name = f"graphc.ipow.{dtype}"
    if name in unit.module.globals:
        return unit.module.globals[name]
    t = REGISTER[dtype]
    fn = unit.function(name, t, [t, t])
    base, exponent = fn.args
    entry, loop, done, trivial = (fn.append_basic_block(n) for n in ("entry", "loop", "done", "trivial"))
    b = ll.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", exponent, t(0)), loop, trivial)
    b.position_at_end(trivial)  # x**0 = 1; a negative exponent gives 0
    b.ret(b.select(b.icmp_signed("==", exponent, t(0)), t(1), t(0)))
    b.position_at_end(loop)
    result, square, rest = b.phi(t), b.phi(t), b.phi(t)
    odd = b.trunc(rest, I1)
    result_next = b.select(odd, b.mul(result, square), result)
    square_next, rest_next = b.mul(square, square), b.lshr(rest, t(1))
    incoming = ((result, t(1), result_next), (square, base, square_next), (rest, exponent, rest_next))
    for phi, first, following in incoming:
        phi.add_incoming(first, entry)
        phi.add_incoming(following, loop)
    b.cbranch(b.icmp_signed("!=", rest_next, t(0)), loop, done)
    b.position_at_end(done)
    b.ret(result_next)
    return fn


@_primitive("abs")
def _abs(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    if _is_float(call):
        return em.builder.call(em.unit.intrinsic("llvm.fabs", call.dtype), args)
    t = REGISTER[call.dtype]  # abs of the most negative integer is itself, as numpy's
    return em.builder.call(em.unit.declare(f"llvm.abs.{t.intrinsic_name}", t, [t, I1]), [args[0], I1(0)])


@_primitive("maximum", "minimum")
def _extremum(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    """numpy's: NaN if either is NaN, else the larger (smaller) one, the second operand when they compare equal
    (so maximum(-0.0, 0.0) is 0.0 and maximum(0.0, -0.0) is -0.0). On an accumulator's path it is LLVM's
    maximum (minimum), NaN-propagating too but with -0.0 < 0.0: a max reduction then vectorizes, and only the
    sign of a zero result can differ, as it does in numpy between two orders of the same elements."""
    larger = call.primitive.name == "maximum"
    if not _is_float(call):
        return em.smax(*args) if larger else em.smin(*args)
    if reorder:
        return em.builder.call(em.unit.intrinsic("llvm.maximum" if larger else "llvm.minimum", call.dtype, 2), args)
    b = em.builder
    a, other = args
    first = b.or_(b.fcmp_ordered(">" if larger else "<", a, other), b.fcmp_unordered("uno", a, a))
    return b.select(first, a, other)


@_primitive("select")
def _select(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    return em.builder.select(*args)


_COMPARISON = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


@_primitive(*_COMPARISON)
def _compare(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    """Ordered float comparisons (false with a NaN) except ``ne``, unordered (NaN != NaN holds)."""
    b, op, dtype = em.builder, _COMPARISON[call.primitive.name], call.args[0].dtype
    if dtype in FLOATS:
        return (b.fcmp_unordered if op == "!=" else b.fcmp_ordered)(op, *args)
    return (b.icmp_unsigned if dtype == "bool" else b.icmp_signed)(op, *args)


@_primitive("and", "or", "not")
def _logical(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    b = em.builder
    return {"and": b.and_, "or": b.or_}[call.primitive.name](*args) if len(args) == 2 else b.not_(args[0])


@_primitive("cast")
def _cast(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    """numpy's astype: to bool is != 0 (NaN is true), from bool is 0/1, float to int truncates toward zero and
    saturates (NaN gives 0: numpy's result there is unspecified), int to int wraps, float64 to float32 rounds."""
    b, (x,), source, target = em.builder, args, call.args[0].dtype, call.to
    t = REGISTER[target]
    if source == target:
        return x
    if target == "bool":
        if source in FLOATS:
            return b.fcmp_unordered("!=", x, ll.Constant(x.type, 0.0))
        return b.icmp_unsigned("!=", x, ll.Constant(x.type, 0))
    if source == "bool":
        return b.uitofp(x, t) if target in FLOATS else b.zext(x, t)
    if source in FLOATS and target in FLOATS:
        return b.fpext(x, t) if SIZE[target] > SIZE[source] else b.fptrunc(x, t)
    if source in FLOATS:
        saturating = em.unit.declare(f"llvm.fptosi.sat.{t.intrinsic_name}.{x.type.intrinsic_name}", t, [x.type])
        return b.call(saturating, [x])
    if target in FLOATS:
        return b.sitofp(x, t)
    return b.sext(x, t) if SIZE[target] > SIZE[source] else b.trunc(x, t)


@_primitive("floordiv", "mod")
def _floor_division(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    """numpy's floor division and remainder (the remainder takes the divisor's sign), branch-free: a divisor of
    0 gives 0, and of -1 is done as negation (the quotient of the most negative integer by -1 traps natively)."""
    b, (x, y) = em.builder, args
    zero, one = ll.Constant(x.type, 0), ll.Constant(x.type, 1)
    by_zero, by_minus_one = b.icmp_signed("==", y, zero), b.icmp_signed("==", y, ll.Constant(x.type, -1))
    divisor = b.select(b.or_(by_zero, by_minus_one), one, y)
    remainder = b.srem(x, divisor)
    # truncation rounded toward zero; floor differs when the remainder is nonzero and its sign differs from y's
    adjust = b.and_(b.icmp_signed("!=", remainder, zero), b.icmp_signed("<", b.xor(remainder, y), zero))
    if call.primitive.name == "mod":
        return b.select(adjust, b.add(remainder, y), remainder)
    quotient = b.sub(b.sdiv(x, divisor), b.zext(adjust, x.type))
    quotient = b.select(by_minus_one, b.sub(zero, x), quotient)
    return b.select(by_zero, zero, quotient)


@_primitive("shl", "shr")
def _shift(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    """Shifts of the bits as unsigned; a count outside [0, bits) gives 0 (as numpy's; LLVM's would be poison)."""
    b, (x, count) = em.builder, args
    shifted = (b.shl if call.primitive.name == "shl" else b.lshr)(x, count)
    in_range = b.icmp_unsigned("<", count, ll.Constant(x.type, x.type.width))
    return b.select(in_range, shifted, ll.Constant(x.type, 0))


@_primitive("bitand", "bitor", "bitxor")
def _bitwise(em: _Emitter, call: Call, args: list[ll.Value], reorder: bool) -> ll.Value:
    b = em.builder
    return {"bitand": b.and_, "bitor": b.or_, "bitxor": b.xor}[call.primitive.name](*args)

