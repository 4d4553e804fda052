"""What a lowering function sees: operands in memory, fresh names, failure messages, the run count.

An op that is not fused (an "opaque" kernel of the partition: concat, gather, a random draw, ...) is
lowered by one function registered for it with ``@lowering(op, ...)``::

    @lowering(shape.TRANSPOSE)
    def _transpose(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
        (x,), (out,) = inputs, outputs
        perm = node.attrs["perm"]
        return loop_nest(ctx.names, out.shape, lambda i: [out.store(i, x.load([i[perm.index(a)] ...]))])

Operands are dense row-major buffers with their run-time shapes as int64 expressions (``Const`` for static
sizes, expressions of ``Dim`` for sizes known at run time), so a lowering writes index arithmetic once and
it serves every batch size. Lowering functions live in graphc/lower/ops/, one module per op family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graphc.graph.node import Node, Tensor
from graphc.lower.ir import Buffer, Dim, Expr, Fail, Load, Namer, Stmt, Store, flat_index, product
from graphc.ops.registry import OpDef

RUN_COUNT_SLOT = 0  # dims slot 0 holds the Session's run count (random ops draw from it)


@dataclass(frozen=True, eq=False)
class Operand:
    """A tensor stored in ``buffer`` (dense, row-major) with run-time ``shape``."""

    tensor: Tensor
    buffer: Buffer
    shape: tuple[Expr, ...]

    @property
    def dtype(self) -> str:
        return self.buffer.dtype

    @property
    def size(self) -> Expr:
        return product(self.shape)

    @property
    def strides(self) -> tuple[Expr, ...]:
        return self.buffer.strides

    def offset(self, indices: Sequence[Expr]) -> Expr:
        """The flat offset of a multi-index (one index per dim)."""
        return flat_index(indices, self.strides)

    def load(self, indices: Sequence[Expr]) -> Load:
        return Load(self.buffer, self.offset(indices))

    def load_flat(self, offset: Expr) -> Load:
        return Load(self.buffer, offset)

    def store(self, indices: Sequence[Expr], value: Expr) -> Store:
        return Store(self.buffer, self.offset(indices), value)

    def store_flat(self, offset: Expr, value: Expr) -> Store:
        return Store(self.buffer, offset, value)


class LowerContext:
    """Per-kernel lowering state: fresh loop/local names, the program's failure messages, and which index
    buffers earlier kernels have checked already (a check they passed need not run again)."""

    def __init__(self, failures: list[str], scratch: Callable[[str, tuple[Expr, ...]], Buffer] | None = None,
                 checked: frozenset[tuple[Buffer, Expr]] = frozenset()) -> None:
        self.names = Namer()
        self._failures = failures
        self._scratch = scratch
        self.checked = checked  # (indices, bound) pairs an earlier kernel of the run has range-checked
        self.newly_checked: set[tuple[Buffer, Expr]] = set()  # the pairs this kernel checks

    def scratch(self, dtype: str, shape: Sequence[Expr]) -> Buffer:
        """A temporary buffer that lives within this kernel only (an im2col matrix, accumulators)."""
        if self._scratch is None:
            raise RuntimeError("this lowering context has no scratch memory")
        return self._scratch(dtype, tuple(shape))

    @property
    def run_count(self) -> Expr:
        """The Session's run count (int64), for random ops."""
        return Dim(RUN_COUNT_SLOT)

    def fail(self, message: str) -> Fail:
        """A statement that stops the run with ``message`` (name the node and the user's line in it)."""
        if message not in self._failures:
            self._failures.append(message)
        return Fail(self._failures.index(message) + 1)


Lowering = Callable[[LowerContext, Node, list[Operand], list[Operand]], list[Stmt]]
LOWERINGS: dict[OpDef, Lowering] = {}


def lowering(*ops: OpDef) -> Callable[[Lowering], Lowering]:
    """Register the decorated function as the lowering of ``ops`` (each op at most once)."""

    def register(function: Lowering) -> Lowering:
        for op in ops:
            if op in LOWERINGS:
                raise ValueError(f"op {op.name} has two lowerings")
            LOWERINGS[op] = function
        return function

    return register
