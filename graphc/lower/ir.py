"""The loop-nest IR: what every launched kernel of the partition becomes, for any backend to render.

A ``Program`` is a list of buffers and a list of ``LoopKernel``s run in order. A kernel's body is a list of
statements: ``Loop`` (a counted loop, optionally parallel), ``Store`` (one element into a buffer), ``Declare``
and ``Assign`` (scalar locals: accumulators), ``If``, ``Fail`` (stop the run with an error, e.g. an index out
of range) and ``Gemm`` (a library call: C = alpha·op(A)·op(B) + beta·C, row-major).

Values are expressions of the scalar IR (``graphc.ops.scalar``: ``Const`` and ``Call`` of its primitives)
with four more leaves: ``Load`` (one element of a buffer), ``Index`` (a loop variable), ``Dim`` (a run-time
dimension: entry ``slot`` of the program's dims argument) and ``Local`` (a scalar local). Index arithmetic
is int64 expressions built from the same primitives plus the integer ones defined here (floor division,
remainder, shifts, bitwise ops: what index maps and the Philox generator need). Every index is a flat
element offset into a buffer, and buffers are dense and row-major, so a strided or broadcast read is an
affine index with stride 0 for a broadcast dimension.

Dimensions declared ``None`` stay symbolic (``Dim``): one program serves every batch size, and a buffer's
size is an expression the runtime evaluates from the dims before the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from graphc.graph.dtypes import INTS
from graphc.ops import scalar
from graphc.ops.scalar import Call, Const, Expr, Primitive

_INTEGERS = frozenset(INTS)
INDEX = "int64"  # the dtype of every index, size and dimension


def _shift_right(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Logical shift right: the bits of a as unsigned."""
    a = np.asarray(a)
    unsigned = a.astype(np.uint64 if a.dtype == np.int64 else np.uint32)
    return (unsigned >> np.asarray(b).astype(unsigned.dtype)).astype(a.dtype)


def _shift_left(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    unsigned = a.astype(np.uint64 if a.dtype == np.int64 else np.uint32)
    return (unsigned << np.asarray(b).astype(unsigned.dtype)).astype(a.dtype)


# integer primitives (operands of one integer dtype; arithmetic wraps modulo 2^bits like the hardware)
FLOORDIV = Primitive("floordiv", 2, _INTEGERS, np.floor_divide, symbol="//", precedence=5)
MOD = Primitive("mod", 2, _INTEGERS, np.remainder, symbol="%", precedence=5)  # operands >= 0 in lowered code
SHL = Primitive("shl", 2, _INTEGERS, _shift_left, symbol="<<", precedence=3)
SHR = Primitive("shr", 2, _INTEGERS, _shift_right, symbol=">>", precedence=3)  # logical (unsigned) shift
BITAND = Primitive("bitand", 2, _INTEGERS, np.bitwise_and, symbol="&", precedence=2)
BITOR = Primitive("bitor", 2, _INTEGERS, np.bitwise_or, symbol="|", precedence=1)
BITXOR = Primitive("bitxor", 2, _INTEGERS, np.bitwise_xor, symbol="^", precedence=1)
INTEGER_PRIMITIVES = (FLOORDIV, MOD, SHL, SHR, BITAND, BITOR, BITXOR)


# -- leaves ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, repr=False)
class Buffer:
    """A dense row-major array: a feed, a variable, a constant, a fetched output or a temporary.

    ``shape`` holds int64 expressions (``Const`` or expressions of ``Dim``s). Buffers compare by identity.
    ``role`` is one of ``ROLES``; ``value`` holds a constant's data.
    """

    name: str
    dtype: str
    shape: tuple[Expr, ...]
    role: str
    value: np.ndarray | None = None

    ROLES = ("feed", "variable", "constant", "output", "temp", "shape-only")  # shape-only: never read or written

    @property
    def size(self) -> Expr:
        """The number of elements, as an int64 expression."""
        return product(self.shape)

    @property
    def strides(self) -> tuple[Expr, ...]:
        """Row-major element strides of each dimension."""
        return row_major_strides(self.shape)

    def __repr__(self) -> str:
        return f"<Buffer {self.name}: {self.dtype}[{', '.join(map(text, self.shape))}] {self.role}>"


@dataclass(frozen=True, repr=False)
class Load(Expr):
    """Element ``index`` (a flat int64 offset) of ``buffer``."""

    buffer: Buffer
    index: Expr
    dtype: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", self.buffer.dtype)


@dataclass(frozen=True, repr=False)
class Index(Expr):
    """A loop variable (int64)."""

    name: str
    dtype: str = field(default=INDEX, init=False)


@dataclass(frozen=True, repr=False)
class Dim(Expr):
    """A run-time dimension: entry ``slot`` of the program's dims (int64)."""

    slot: int
    dtype: str = field(default=INDEX, init=False)


@dataclass(frozen=True, repr=False)
class Local(Expr):
    """A scalar local variable of a kernel (declared by ``Declare``, updated by ``Assign``)."""

    name: str
    dtype: str


# -- statements -----------------------------------------------------------------------------------------
class Stmt:
    """Base of the statements."""

    __slots__ = ()


@dataclass(frozen=True)
class Loop(Stmt):
    """``for index in range(extent): body``. ``parallel``: iterations are independent and write disjoint
    elements, so a backend may split them across threads (when the work is large enough to pay)."""

    index: Index
    extent: Expr
    body: tuple[Stmt, ...]
    parallel: bool = False


@dataclass(frozen=True)
class Store(Stmt):
    """``buffer[index] = value``. ``reassociate``: the store accumulates (``value`` combines the element's
    current value with another by a reassociable fold: a column sum's ``acc[j] = acc[j] + x[i, j]``), so a
    backend may split the accumulation into partial ones combined in another order (as ``Assign``'s)."""

    buffer: Buffer
    index: Expr
    value: Expr
    reassociate: bool = False


@dataclass(frozen=True)
class Declare(Stmt):
    """A new scalar local with its first value."""

    local: Local
    value: Expr


@dataclass(frozen=True)
class Assign(Stmt):
    """``local = value``. ``reassociate``: the update is an accumulation a backend may reorder (split into
    partial sums so the loop vectorizes): float sums then differ from a serial sum in the last bits."""

    local: Local
    value: Expr
    reassociate: bool = False


@dataclass(frozen=True)
class If(Stmt):
    """``if condition: then else: orelse`` (a bool condition)."""

    condition: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] = ()


@dataclass(frozen=True)
class Fail(Stmt):
    """Stop the run: the program returns error ``code`` (1-based into ``Program.failures``)."""

    code: int


@dataclass(frozen=True)
class Gemm(Stmt):
    """C[m×n] = alpha · op(A) · op(B) + beta · C on row-major matrices at element offsets of their buffers;
    op(X) is X or its transpose (``trans_*``); ``ld*`` are the row strides as stored."""

    dtype: str
    trans_a: bool
    trans_b: bool
    m: Expr
    n: Expr
    k: Expr
    a: Buffer
    a_offset: Expr
    lda: Expr
    b: Buffer
    b_offset: Expr
    ldb: Expr
    c: Buffer
    c_offset: Expr
    ldc: Expr
    alpha: float = 1.0
    beta: float = 0.0


@dataclass(frozen=True, eq=False)
class LoopKernel:
    """One launched kernel: its statements, and what it is for (the partition kernel it lowers, for dumps and
    profiles; its output buffers, for monitors)."""

    name: str
    body: tuple[Stmt, ...]
    origin: object = None  # the graphc.passes.partition.Kernel lowered here
    outputs: tuple = ()  # (Tensor, Buffer) pairs this kernel writes


@dataclass(eq=False)
class Program:
    """Buffers, kernels in run order, the meaning of each dims slot, and the failure messages."""

    buffers: list[Buffer]
    kernels: list[LoopKernel]
    dims: list[str]  # slot -> what it measures, e.g. "x.shape[0]"
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        from graphc.lower.text import program_text

        return program_text(self)


# -- building index expressions (folding constants keeps the IR small and readable) ----------------------
def const(value: int) -> Const:
    """An int64 constant."""
    return Const(int(value), INDEX)


def as_expr(value: int | Expr) -> Expr:
    return value if isinstance(value, Expr) else const(value)


def _value(e: Expr) -> int | None:
    return e.value if isinstance(e, Const) else None


def add(a: int | Expr, b: int | Expr) -> Expr:
    a, b = as_expr(a), as_expr(b)
    if _value(a) == 0:
        return b
    if _value(b) == 0:
        return a
    if _value(a) is not None and _value(b) is not None:
        return const(a.value + b.value)
    return scalar.add(a, b)


def mul(a: int | Expr, b: int | Expr) -> Expr:
    a, b = as_expr(a), as_expr(b)
    if _value(a) == 0 or _value(b) == 0:
        return const(0)
    if _value(a) == 1:
        return b
    if _value(b) == 1:
        return a
    if _value(a) is not None and _value(b) is not None:
        return const(a.value * b.value)
    return scalar.mul(a, b)


def sub(a: int | Expr, b: int | Expr) -> Expr:
    a, b = as_expr(a), as_expr(b)
    if _value(b) == 0:
        return a
    if _value(a) is not None and _value(b) is not None:
        return const(a.value - b.value)
    return scalar.sub(a, b)


def integer(primitive: Primitive, a: int | Expr, b: int | Expr) -> Expr:
    """An integer primitive (FLOORDIV, MOD, shifts, bitwise) on int64 or int32 operands."""
    a, b = as_expr(a), as_expr(b)
    if isinstance(a, Const) and not isinstance(b, Const):
        a = Const(a.value, b.dtype)
    if isinstance(b, Const) and not isinstance(a, Const):
        b = Const(b.value, a.dtype)
    if primitive is FLOORDIV and _value(b) == 1:
        return a
    return Call(primitive, (a, b))


def product(values: Iterable[int | Expr]) -> Expr:
    result: Expr = const(1)
    for v in values:
        result = mul(result, v)
    return result


def row_major_strides(shape: Sequence[Expr]) -> tuple[Expr, ...]:
    strides, step = [], const(1)
    for extent in reversed(shape):
        strides.append(step)
        step = mul(step, extent)
    return tuple(reversed(strides))


def flat_index(indices: Sequence[Expr], strides: Sequence[Expr]) -> Expr:
    """sum(index · stride): the flat offset of a multi-index."""
    offset: Expr = const(0)
    for i, s in zip(indices, strides, strict=True):
        offset = add(offset, mul(i, s))
    return offset


def static_value(e: Expr) -> int | None:
    """The value of an int64 expression known at compile time (None if it depends on run-time dims)."""
    return _value(e)


class Namer:
    """Fresh names for loop indices and locals within one kernel."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}{n}"


def loop_nest(names: Namer, extents: Sequence[Expr], body: Callable[[tuple[Index, ...]], Sequence[Stmt]],
              parallel: bool = False) -> tuple[Stmt, ...]:
    """Loops over ``extents`` (outermost first) around ``body(indices)``; the outermost loop is parallel
    when asked (and there is one). No extents: the body runs once."""
    indices = tuple(Index(names("i")) for _ in extents)
    statements: tuple[Stmt, ...] = tuple(body(indices))
    for depth in reversed(range(len(extents))):
        statements = (Loop(indices[depth], as_expr(extents[depth]), statements, parallel and depth == 0),)
    return statements


def walk_expr(e: Expr) -> Iterable[Expr]:
    """``e`` and every subexpression (loads' indices included), operands first."""
    if isinstance(e, Call):
        for arg in e.args:
            yield from walk_expr(arg)
    elif isinstance(e, Load):
        yield from walk_expr(e.index)
    yield e


def on_dims(e: Expr) -> bool:
    """Whether ``e`` depends on the run-time sizes only (constants and dims: no data, index or local)."""
    return all(isinstance(x, Const | Dim | Call) for x in walk_expr(e))


def size_check(s: Stmt) -> Fail | None:
    """The ``Fail`` of ``s`` when ``s`` is a check of the run-time sizes alone (``if <dims condition>: fail``,
    as shape-checking lowerings emit): the runtime evaluates those on the host before anything runs."""
    if isinstance(s, If) and not s.orelse and len(s.then) == 1 and isinstance(s.then[0], Fail) \
            and on_dims(s.condition):
        return s.then[0]
    return None


def walk_statements(body: Sequence[Stmt]) -> Iterable[Stmt]:
    """Every statement of ``body``, nested ones included, in program order."""
    for s in body:
        yield s
        if isinstance(s, Loop):
            yield from walk_statements(s.body)
        elif isinstance(s, If):
            yield from walk_statements(s.then)
            yield from walk_statements(s.orelse)


def text(e: Expr) -> str:
    from graphc.lower.text import expr_text

    return expr_text(e)


def evaluate_size(e: Expr, dims: Sequence[int]) -> int:
    """An int64 expression of dims evaluated with Python integers (sizes and offsets on the host)."""
    if isinstance(e, Const):
        return int(e.value)
    if isinstance(e, Dim):
        return int(dims[e.slot])
    if isinstance(e, Call):
        args = [evaluate_size(a, dims) for a in e.args]
        return _HOST_INTEGER[e.primitive.name](*args)
    raise TypeError(f"not a size expression: {text(e)}")


_HOST_INTEGER: dict[str, Callable[..., int]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "floordiv": lambda a, b: a // b, "mod": lambda a, b: a % b,
    "maximum": max, "minimum": min, "neg": lambda a: -a,
    # a GEMM's offsets under broadcasting: select(size == 1, 0, stride) (evaluated on the host by the cuda backend)
    "eq": lambda a, b: int(a == b), "ne": lambda a, b: int(a != b), "lt": lambda a, b: int(a < b),
    "le": lambda a, b: int(a <= b), "gt": lambda a, b: int(a > b), "ge": lambda a, b: int(a >= b),
    "and": lambda a, b: int(bool(a) and bool(b)), "or": lambda a, b: int(bool(a) or bool(b)),
    "not": lambda a: int(not a), "select": lambda c, a, b: a if c else b,
}

