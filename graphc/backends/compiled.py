"""What every compiled backend (llvm, cuda) does around its code: lower a plan, check run-time sizes, check
the Session's variable buffers, and turn a run's buffers into the fetched values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.errors import GraphcError, ShapeError
from graphc.graph.node import Node, Tensor
from graphc.lower import ir
from graphc.lower.ir import Program
from graphc.lower.program import Lowered, lower
from graphc.ops import sources, state
from graphc.passes.fusion import plan_kernels
from graphc.passes.partition import Kind, Partition
from graphc.runtime.plan import Plan


@dataclass
class CompileReport:
    """How long each compilation stage took (seconds) and where the machine code came from."""

    stages: dict[str, float] = field(default_factory=dict)
    cache: str = "off"

    def __str__(self) -> str:
        stages = ", ".join(f"{name} {seconds * 1e3:.1f} ms" for name, seconds in self.stages.items())
        return f"{stages}; disk cache: {self.cache}"


class ShowsProgram:
    """What ``sess.compiled(...)`` shows of any compiled backend's executable (which sets ``lowered``): the
    loop-nest program it runs, and that program printed."""

    lowered: Lowered

    @property
    def program(self) -> Program:
        """The loop-nest program (buffers, kernels) this executable runs."""
        return self.lowered.program

    @property
    def loops(self) -> str:
        """The program's loop nests, printed."""
        return str(self.lowered.program)


def lower_plan(plan: Plan) -> tuple[Partition, Lowered]:
    """The plan's kernels (partitioned here, so a compiled backend fuses at every optimize level) and their
    program; fetched values that are sources (feeds, variables, constants) get no output buffer."""
    partition = plan_kernels(plan.graph, plan.targets)
    fetched = [t for t in plan.targets if isinstance(t, Tensor) and partition.kernel_of[t.node].kind != Kind.SOURCE]
    return partition, lower(partition, fetched)


def fetched_variables(plan: Plan) -> set[Node]:
    """The variables the plan fetches: their values from before the run are copied before it."""
    return {t.node for t in plan.targets if isinstance(t, Tensor) and t.node.op is state.VARIABLE}


def check_sizes(program: Program, dims: np.ndarray) -> None:
    """The program's checks of the run-time sizes alone (``ir.size_check``: a convolution's operands that do
    not fit), evaluated here before compiled code runs — the lowering lets kernels before them update
    variables in place, so they must not fail halfway through a run. The kernels check them again."""
    for kernel in program.kernels:
        for s in kernel.body:
            fail = ir.size_check(s)
            if fail is not None and ir.evaluate_size(s.condition, dims):
                raise ShapeError(program.failures[fail.code - 1])


def check_extents(partition: Partition, shapes: dict[Tensor, tuple[int, ...]]) -> None:
    """Every value a fused kernel stores spans the kernel's run-time extent along each axis it runs on (two
    unknown sizes that broadcast at run time, 1 against n, cannot share one loop): checked before compiled
    code writes anything."""
    for kernel in partition.launched():
        if kernel.kind not in (Kind.ELEMENTWISE, Kind.REDUCTION, Kind.MATMUL):
            continue
        root = kernel.root
        extent = shapes[root.inputs[0] if kernel.kind == Kind.REDUCTION else root.outputs[0]]
        for tensor in kernel.outputs:
            place = kernel.index_maps.get(tensor.node)
            sizes = shapes[tensor]
            if place is None or all(a is None or sizes[j] == extent[a] for j, a in enumerate(place)):
                continue
            raise ShapeError(f"{tensor.node.describe()} has run-time shape {list(sizes)}, but the fused kernel "
                             f"computing it runs over {list(extent)}: unknown (None) sizes broadcast against each "
                             "other at run time here; give the size-1 dimension a static size of 1")


def fetch_value(target: Tensor | Node, feeds: dict, variables: dict, before: dict, outputs: dict) -> Any:
    """The value a run returns for ``target``: a kernel output, a copy of a feed, a fetched variable's value
    from before the run, a constant, or an update op's new value (None for an op without a value)."""
    if isinstance(target, Node):
        return None
    node = target.node
    if target in outputs:
        return outputs[target]
    if node.op is sources.PLACEHOLDER:
        return np.array(feeds[node])
    if node.op is state.VARIABLE:
        return before[node]
    if node.op is sources.CONSTANT:
        return np.array(node.attrs["value"])
    if node.op.updates_variable:
        return np.array(variables[node.inputs[0].node])
    raise GraphcError(f"internal: fetched tensor {target.name} has no buffer")


def contiguous(array: np.ndarray) -> np.ndarray:
    """``array`` in C order (copied only if it is not; np.ascontiguousarray would make a 0-d array 1-d)."""
    array = np.asarray(array)
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def checked_variable(node: Node, value: np.ndarray) -> np.ndarray:
    """The Session's buffer of a variable, which compiled code writes in place: it must be exactly as declared."""
    expected = node.types[0]
    if value.dtype != np.dtype(expected.dtype) or value.shape != expected.shape or not value.flags.c_contiguous:
        raise GraphcError(f"internal: variable '{node.name}' holds {value.dtype}{list(value.shape)}, declared "
                          f"{expected}")
    if not value.flags.writeable:
        raise GraphcError(f"internal: variable '{node.name}' is read-only")
    return value
