"""A partition lowered to a ``Program``: a buffer for every value that crosses a kernel boundary, a loop
nest (or GEMM) per launched kernel, and what the runtime needs to call it.

Buffers. Fed placeholders, variables and constants are buffers the runtime passes in; a value fetched by
the run gets an output buffer; every other value that leaves its kernel is a temporary, which the memory
plan (graphc/lower/memory.py) packs into one arena, reusing space whose lifetimes do not overlap.

Variable updates are written in place — the kernel that computes a variable's new value stores it straight
into the variable's buffer — when nothing reads the old value afterwards (the partition orders updates after
the reads where it can) and the kernel itself reads the old value only at the element it writes. Otherwise
the new value goes to a temporary and a copy kernel at the end of the program commits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from graphc.errors import CompileError
from graphc.graph.node import Node, Tensor
from graphc.lower import ir
from graphc.lower import ops as _registered_lowerings  # noqa: F401 - fills LOWERINGS
from graphc.lower.context import LOWERINGS, LowerContext, Operand
from graphc.lower.fused import FusedLowering, fill_value
from graphc.lower.ir import Buffer, LoopKernel, Program, Stmt
from graphc.lower.matmul import lower_matmul_kernel
from graphc.lower.shapes import SymbolicShapes
from graphc.ops import sources, state
from graphc.passes.fusion import role
from graphc.passes.partition import Kernel, Kind, Partition


@dataclass(eq=False)
class Lowered:
    """A program and the maps between its buffers and the graph."""

    program: Program
    shapes: SymbolicShapes
    feeds: dict[Node, Buffer]  # placeholder -> its buffer
    variables: dict[Node, Buffer]  # variable -> its buffer (updated in place)
    outputs: dict[Tensor, Buffer]  # fetched kernel outputs
    temps: list[Buffer]
    lifetimes: dict[Buffer, tuple[int, int]]  # temp -> (first kernel, last kernel) using it
    updated: list[Node] = field(default_factory=list)  # variables this program writes


_PREFIX = {"feed": "in", "variable": "var", "constant": "const", "output": "out", "temp": "tmp"}


class _Builder:
    def __init__(self, partition: Partition, fetched: Sequence[Tensor], in_place_after: int = -1) -> None:
        self.partition = partition
        self.in_place_after = in_place_after  # updates of kernels up to this position go through commits
        self.fetched = set(fetched)
        self.shapes = SymbolicShapes(partition.kernel_of)
        self.launched = partition.launched()
        self.position = {k.id: p for p, k in enumerate(self.launched)}
        self.operands: dict[Tensor, Operand] = {}
        self.feeds: dict[Node, Buffer] = {}
        self.variables: dict[Node, Buffer] = {}
        self.outputs: dict[Tensor, Buffer] = {}
        self.temps: list[Buffer] = []
        self.lifetimes: dict[Buffer, tuple[int, int]] = {}
        self.buffers: list[Buffer] = []
        self.commits: list[tuple[Operand, Buffer]] = []  # (temporary new value, variable buffer)
        self.updated: list[Node] = []
        self.failures: list[str] = []
        self.checked: set[tuple[Buffer, ir.Expr]] = set()  # index buffers range-checked by the kernels so far

    # -- buffers -------------------------------------------------------------------------------------------
    def _buffer(self, tensor: Tensor, role: str, value: object = None) -> Operand:
        shape = self.shapes[tensor]
        buffer = Buffer(f"{_PREFIX[role]}{len(self.buffers)}", tensor.dtype, shape, role, value)
        self.buffers.append(buffer)
        return Operand(tensor, buffer, shape)

    def _sources(self) -> None:
        for node in self.partition.kernel_of:
            if node.op is sources.PLACEHOLDER:
                self.operands[node.outputs[0]] = operand = self._buffer(node.outputs[0], "feed")
                self.feeds[node] = operand.buffer
            elif node.op is state.VARIABLE:
                self.operands[node.outputs[0]] = operand = self._buffer(node.outputs[0], "variable")
                self.variables[node] = operand.buffer
            elif node.op is sources.CONSTANT:
                self.operands[node.outputs[0]] = self._buffer(node.outputs[0], "constant", node.attrs["value"])

    def _kernel_outputs(self, kernel: Kernel) -> dict[Tensor, Operand]:
        written: dict[Tensor, Operand] = {}
        for t in kernel.outputs:
            if t.node.op.updates_variable:
                variable = t.node.inputs[0].node
                self.updated.append(variable)
                target = self.operands[variable.outputs[0]]
                if self._in_place(kernel, t.node, variable):
                    written[t] = Operand(t, target.buffer, target.shape)
                else:
                    written[t] = self._temp(t, kernel, last=len(self.launched))
                    self.commits.append((written[t], target.buffer))
            elif t in self.fetched:
                written[t] = self._buffer(t, "output")
                self.outputs[t] = written[t].buffer
            elif fill_value(t) is not None and all(k.kind in (Kind.ELEMENTWISE, Kind.REDUCTION)
                                                   for k in self.launched if t in k.inputs):
                continue  # a fill its readers use as a constant: never stored
            else:
                written[t] = self._temp(t, kernel)
        self.operands.update(written)
        return written

    def _temp(self, t: Tensor, kernel: Kernel, last: int | None = None) -> Operand:
        operand = self._buffer(t, "temp")
        position = self.position[kernel.id]
        readers = [self.position[k.id] for k in self.launched if t in k.inputs]
        self.lifetimes[operand.buffer] = (position, max([position, *readers] if last is None else [last]))
        self.temps.append(operand.buffer)
        return operand

    def _scratch(self, kernel: Kernel, dtype: str, shape: tuple[ir.Expr, ...]) -> Buffer:
        """A temporary that lives within ``kernel`` only (a reduction's accumulators)."""
        buffer = Buffer(f"{_PREFIX['temp']}{len(self.buffers)}", dtype, shape, "temp")
        self.buffers.append(buffer)
        position = self.position[kernel.id]
        self.lifetimes[buffer] = (position, position)
        self.temps.append(buffer)
        return buffer

    def _in_place(self, kernel: Kernel, update: Node, variable: Node) -> bool:
        """Whether ``update`` may store straight into ``variable``'s buffer (see the module docstring)."""
        old = variable.outputs[0]
        if self.position[kernel.id] <= self.in_place_after:
            return False
        if any(old in k.inputs for k in self.launched[self.position[kernel.id] + 1:]):
            return False
        if kernel.kind not in (Kind.ELEMENTWISE, Kind.MATMUL, Kind.REDUCTION) or update.outputs[0].shape != old.shape:
            return False
        # a reduction kernel's update is a value per kept index (a bias's new value from its gradient's sum),
        # stored after the reduction: in place when every read of the old value is at that index, as here
        elementwise = kernel.kind in (Kind.ELEMENTWISE, Kind.REDUCTION)
        epilogue = set(kernel.epilogue) | ({update} if elementwise else set())
        for node in kernel.nodes:
            reads = old in node.inputs and (elementwise or node in epilogue)
            if reads and (role(node) != Kind.ELEMENTWISE or node.outputs[0].shape != old.shape
                          or kernel.index_maps.get(node) != kernel.index_maps.get(update)):
                return False
        return True

    # -- kernels -------------------------------------------------------------------------------------------
    def build(self) -> Lowered:
        self._sources()
        kernels = []
        for kernel in self.launched:
            lowered, checked = self._lower(kernel)
            if lowered.body:  # a kernel left with no output: none (and none of its checks ran)
                kernels.append(lowered)
                self.checked |= checked
        for n, (new_value, variable) in enumerate(self.commits):
            kernels.append(LoopKernel(f"commit{n}", _copy(new_value.buffer, variable, new_value.size)))
        program = Program(self.buffers, kernels, self.shapes.descriptions(), self.failures)
        return Lowered(program, self.shapes, self.feeds, self.variables, self.outputs, self.temps, self.lifetimes,
                       self.updated)

    def _lower(self, kernel: Kernel) -> tuple[LoopKernel, set[tuple[Buffer, ir.Expr]]]:
        """The kernel's loop nest, and the (indices, bound) pairs it range-checks (see ``LowerContext``)."""
        ctx = LowerContext(self.failures, scratch=lambda dtype, shape: self._scratch(kernel, dtype, shape),
                           checked=frozenset(self.checked))
        memory = {t: self.operands[t] for t in (*kernel.inputs, *kernel.shape_inputs) if t in self.operands}
        for t in kernel.shape_inputs:  # read for its run-time shape only: no buffer needed
            if t not in memory:
                shape = self.shapes[t]
                memory[t] = Operand(t, Buffer(f"shape_of_{t.name}", t.dtype, shape, "shape-only"), shape)
        outputs = self._kernel_outputs(kernel)
        body = self._body(ctx, kernel, memory, outputs)
        lowered = LoopKernel(f"k{kernel.id}", tuple(body), kernel, tuple((t, o.buffer) for t, o in outputs.items()))
        return lowered, ctx.newly_checked

    def _body(self, ctx: LowerContext, kernel: Kernel, memory: dict[Tensor, Operand],
              outputs: dict[Tensor, Operand]) -> list[Stmt]:
        if kernel.kind in (Kind.ELEMENTWISE, Kind.REDUCTION):
            if not outputs:
                return []
            return FusedLowering(ctx, kernel, self.shapes, memory, outputs, scratch=ctx.scratch).lower()
        if kernel.kind == Kind.MATMUL:
            product = kernel.root.outputs[0]
            scratch = outputs.get(product) or self._temp(product, kernel)
            return lower_matmul_kernel(ctx, kernel, self.shapes, memory, outputs, scratch)
        (node,) = kernel.nodes
        lowering = LOWERINGS.get(node.op)
        if lowering is None:
            raise CompileError(f"{node.op.name} node '{node.name}' (created at {node.source}) has no lowering on "
                               "compiled backends")
        written = [outputs.get(t) or self._temp(t, kernel) for t in node.outputs]  # unread outputs: scratch
        return lowering(ctx, node, [memory[t] for t in node.inputs], written)


def _copy(source: Buffer, target: Buffer, size: ir.Expr) -> tuple[Stmt, ...]:
    return ir.loop_nest(ir.Namer(), [size], lambda i: [ir.Store(target, i[0], ir.Load(source, i[0]))], parallel=True)


def lower(partition: Partition, fetched: Sequence[Tensor]) -> Lowered:
    """Lower every launched kernel of ``partition``; ``fetched`` are the tensors the run returns.

    A run that fails (a ``Fail``: an index out of range in the data) must leave the variables as they were,
    so no kernel before the last one that can fail updates a variable in place: those updates are lowered
    again to go through commits at the end of the program. A check of the run-time sizes alone
    (``ir.size_check``) does not count: the runtime evaluates it on the host before running anything
    (graphc/backends/compiled.py ``check_sizes``).
    """
    lowered = _Builder(partition, fetched).build()
    kernels = lowered.program.kernels
    checked = [{id(s.then[0]) for s in k.body if ir.size_check(s)} for k in kernels]  # on the host, first
    can_fail = [p for p, k in enumerate(kernels)
                if any(isinstance(s, ir.Fail) and id(s) not in checked[p] for s in ir.walk_statements(k.body))]
    variables = set(lowered.variables.values())
    updates_in_place = [p for p, k in enumerate(kernels) if k.origin is not None
                        and any(b in variables for _, b in k.outputs)]
    if can_fail and updates_in_place and min(updates_in_place) < max(can_fail):
        lowered = _Builder(partition, fetched, in_place_after=max(can_fail)).build()
    return lowered
