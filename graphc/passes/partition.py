"""The kernel partition of a graph as data: ``Kernel``, ``Boundary``, ``Partition``, and their assembly.

The fusion planner (graphc/passes/fusion.py) decides which nodes share a kernel and why each cut is made;
this module turns its groups into the ``Partition`` that backends lower and dumps print. Kernel ids number
the launched kernels first, in an order a backend can run them (topological, ties by first node; a kernel
that updates a variable runs after every kernel that reads its old value, where the data allow it, so the
update may be written in place), then sources, then control kernels.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor
from graphc.graph.types import format_shape
from graphc.ops import broadcast, conv, elementwise, indexing, linalg, pool, shape


class Kind:
    """What a kernel is (``Kernel.kind``)."""

    SOURCE = "source"  # a placeholder, variable or constant: a buffer, no code
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    MATMUL = "matmul"  # a GEMM, with an optional elementwise epilogue
    OPAQUE = "opaque"  # an op lowered on its own
    CONTROL = "control"  # a group: runs nothing
    LAUNCHED = ("elementwise", "reduction", "matmul", "opaque")  # the kinds that run code


class Reason:
    """Why a value leaves its kernel (``Boundary.reason``)."""

    REDUCTION_BROADCAST = "reduction feeds a broadcast"
    SHARED = "value used by two kernels"
    MATMUL = "matmul"
    SHAPE_MISMATCH = "shape mismatch"
    SIZE_LIMIT = "size limit"
    FETCHED = "fetched"
    OPAQUE = "opaque op"
    UPDATE = "variable update"
    UNFUSED = "fusion off"
    ALL = (REDUCTION_BROADCAST, SHARED, MATMUL, SHAPE_MISMATCH, SIZE_LIMIT, FETCHED, OPAQUE, UPDATE, UNFUSED)


# operands read only for their run-time shape: no data flows, so they neither force a value into memory nor
# order kernels (a backend knows every run-time shape from the feeds' dims before it runs any kernel)
_SHAPE_ONLY = {elementwise.ONES_LIKE: (0,), elementwise.ZEROS_LIKE: (0,), broadcast.BROADCAST_LIKE: (1,),
               broadcast.SUM_TO: (1,), broadcast.MATCH_SHAPE: (1,), shape.RESHAPE_LIKE: (1,), linalg.EYE_LIKE: (0,),
               indexing.GETITEM_GRAD: (1,), pool.AVG_POOL2D_GRAD: (1,), conv.CONV2D_BACKPROP_INPUT: (2,)}


def shape_only(node: Node, position: int) -> bool:
    """Whether input ``position`` of ``node`` is read for its shape only."""
    if node.op is shape.SPLIT_LIKE:
        return position > 0
    return position in _SHAPE_ONLY.get(node.op, ())


@dataclass(frozen=True, eq=False, repr=False)
class Kernel:
    """One kernel: its nodes (topological), the tensors it reads and writes, and its iteration space.

    ``index_maps[node]``: for each dim of the node's output, the axis of ``shape`` it runs along (None for
    a size-1 dim); None for a matmul operand view (a GEMM layout flag) and in unlaunched kernels.
    """

    id: int
    kind: str
    nodes: tuple[Node, ...]
    inputs: tuple[Tensor, ...]  # tensors read from other kernels or sources, by first use
    outputs: tuple[Tensor, ...]  # tensors read by other kernels, fetched, or written to a variable
    root: Node  # what sets the iteration space: the matmul, the first reduction, or the last node
    shape: tuple = ()
    axes: tuple[int, ...] = ()  # the reduced axes of ``shape``
    epilogue: tuple[Node, ...] = ()  # matmul kernels: the elementwise nodes computed after the product
    shape_inputs: tuple[Tensor, ...] = ()  # tensors whose run-time shape (only) the kernel needs
    index_maps: Mapping[Node, tuple | None] = field(default_factory=dict)

    @property
    def launched(self) -> bool:
        """Whether the kernel runs code (sources are buffers, control kernels run nothing)."""
        return self.kind in Kind.LAUNCHED

    @property
    def updates(self) -> tuple[Node, ...]:
        """The variables this kernel writes."""
        return tuple(n.inputs[0].node for n in self.nodes if n.op.updates_variable)

    def __repr__(self) -> str:
        return f"<Kernel {self.describe()}>"

    def describe(self) -> str:
        """``k3 reduction [?,10] axes=(1,) root=reduce_max``: the header line of the kernel in dumps."""
        parts = [f"k{self.id} {self.kind}"]
        if self.kind in (Kind.ELEMENTWISE, Kind.REDUCTION, Kind.MATMUL):
            parts.append(format_shape(self.shape))
        if self.axes:
            parts.append(f"axes={self.axes}")
        parts.append(f"root={self.root.name}")
        if self.epilogue:
            parts.append("epilogue=(" + ", ".join(n.name for n in self.epilogue) + ")")
        return " ".join(parts)


@dataclass(frozen=True, eq=False)
class Boundary:
    """Why ``tensor`` leaves kernel ``producer``: it is read by kernel ``consumer`` (None: it is fetched or
    written to a variable). ``reason`` is one of ``Reason.ALL``; ``detail`` names the nodes involved."""

    producer: int
    consumer: int | None
    tensor: Tensor
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        target = "out" if self.consumer is None else f"k{self.consumer}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.tensor.name} → {target}: {self.reason}{detail}"


@dataclass(eq=False, repr=False)
class Partition:
    """The kernels (indexed by id) and the boundaries between them, for ``outputs`` of ``graph``."""

    graph: Graph | None
    outputs: list[Tensor | Node]
    kernels: list[Kernel]
    boundaries: list[Boundary]
    kernel_of: dict[Node, Kernel]

    def __repr__(self) -> str:
        return f"<Partition of {len(self.kernel_of)} nodes into {len(self.launched())} kernels>"

    def launched(self) -> list[Kernel]:
        """The kernels that run code, in the order a backend runs them."""
        return [k for k in self.kernels if k.launched]

    def cuts(self, kernel: Kernel) -> list[Boundary]:
        """The boundaries of the values that leave ``kernel``."""
        return [b for b in self.boundaries if b.producer == kernel.id]

    def reasons(self) -> Counter:
        """How many boundaries each reason explains."""
        return Counter(b.reason for b in self.boundaries)

    def __str__(self) -> str:
        launched = self.launched()
        others = Counter(k.kind for k in self.kernels if not k.launched)
        lines = [f"{len(launched)} kernels" + "".join(f", {n} {kind}" for kind, n in sorted(others.items()))]
        for k in launched:
            lines.append(f"  {k.describe()}: " + ", ".join(n.name for n in k.nodes))
            lines += [f"    cut {b}" for b in self.cuts(k)]
        return "\n".join(lines)


# -- assembly ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cut:
    """Why the planner kept a producer out of a consumer's kernel: one of ``Reason.ALL``, and a message."""

    reason: str
    detail: str


@dataclass(eq=False)
class Group:
    """A kernel as the planner forms it. ``axes`` is None until a reduction joins; ``pending`` (planner
    state) holds the axes along which provisional row values are broadcast until a reduction confirms them."""

    kind: str
    root: Node
    shape: tuple
    axes: tuple | None = None
    pending: tuple | None = None
    maps: dict[Node, tuple | None] = field(default_factory=dict)


def data_users(nodes: Sequence[Node]) -> dict[Node, list[tuple[Node, int]]]:
    """Each node -> (consumer, input position) for every input that reads its data (not only its shape)."""
    users: dict[Node, list[tuple[Node, int]]] = {n: [] for n in nodes}
    for node in nodes:
        for i, t in enumerate(node.inputs):
            if not shape_only(node, i):
                users[t.node].append((node, i))
    return users


def assemble(graph: Graph | None, outputs: list, nodes: list[Node], group_of: dict[Node, Group],
             cuts: dict[tuple[Tensor, Node], Cut]) -> Partition:
    """The Partition of ``nodes`` into the planner's groups, with a Boundary for every value that leaves one."""
    users = data_users(nodes)
    members: dict[int, list[Node]] = {}
    for node in nodes:
        members.setdefault(id(group_of[node]), []).append(node)
    groups = {id(g): g for g in group_of.values()}
    fetched = {t for o in outputs for t in ([o] if isinstance(o, Tensor) else o.outputs)}
    controlled = {c for n in nodes for c in n.control_inputs}
    kernels = [_kernel(k, groups[key], members[key], users, fetched, controlled)
               for k, key in enumerate(_order(groups, members, group_of, users))]
    kernel_of = {n: k for k in kernels for n in k.nodes}
    boundaries = [b for k in kernels if k.launched for b in _boundaries(k, kernel_of, users, cuts, fetched)]
    return Partition(graph, outputs, kernels, boundaries, kernel_of)


def _order(groups: dict[int, Group], members: dict[int, list[Node]], group_of: dict[Node, Group],
           users: dict[Node, list[tuple[Node, int]]]) -> list[int]:
    """Launched groups in a runnable order (variable updates after the reads of the old value where the
    data allow it, else only topological), then sources, then control groups."""
    launched = [key for key, g in groups.items() if g.kind in Kind.LAUNCHED]
    edges = set()
    for key in launched:
        for node in members[key]:
            for c, _ in users[node]:
                if group_of[c].kind in Kind.LAUNCHED and id(group_of[c]) != key:
                    edges.add((key, id(group_of[c])))
    for node in group_of:
        for control in node.control_inputs:
            if group_of[node].kind in Kind.LAUNCHED and group_of[control].kind in Kind.LAUNCHED:
                edges.add((id(group_of[control]), id(group_of[node])))
    writers = {n.inputs[0].node: id(group_of[n]) for n in group_of if n.op.updates_variable}
    hazards = {(id(group_of[c]), writer) for variable, writer in writers.items() for c, _ in users[variable]
               if group_of[c].kind in Kind.LAUNCHED and id(group_of[c]) != writer}
    first = {key: members[key][0].index for key in launched}
    order = _topological(first, edges | hazards) or _topological(first, edges) or []
    rest = sorted((key for key, g in groups.items() if g.kind not in Kind.LAUNCHED),
                  key=lambda key: (groups[key].kind == Kind.CONTROL, members[key][0].index))
    return order + rest


def _topological(first: dict[int, int], edges: set[tuple[int, int]]) -> list[int] | None:
    """Kahn's algorithm, ties broken by first node; None if ``edges`` has a cycle."""
    waiting = dict.fromkeys(first, 0)
    after: dict[int, list[int]] = {key: [] for key in first}
    for a, b in edges:
        after[a].append(b)
        waiting[b] += 1
    ready = [(first[key], key) for key, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, key = heapq.heappop(ready)
        order.append(key)
        for successor in after[key]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, (first[successor], successor))
    return order if len(order) == len(first) else None


def _kernel(k: int, group: Group, nodes: list[Node], users: dict, fetched: set[Tensor],
            controlled: set[Node]) -> Kernel:
    inside = set(nodes)
    inputs: dict[Tensor, None] = {}
    shape_inputs: dict[Tensor, None] = {}
    outputs: dict[Tensor, None] = {}
    for node in nodes:
        for i, t in enumerate(node.inputs):
            if t.node not in inside:
                (shape_inputs if shape_only(node, i) else inputs).setdefault(t, None)
        for t in node.outputs:
            leaves = any(c not in inside for c, i in users[node] if c.inputs[i] is t)
            if leaves or t in fetched or node in controlled or node.op.updates_variable:
                outputs.setdefault(t, None)
    launched = group.kind in Kind.LAUNCHED
    root = nodes[-1] if group.kind == Kind.ELEMENTWISE else group.root
    epilogue = () if group.kind != Kind.MATMUL else tuple(
        n for n in nodes if n is not root and group.maps[n] is not None)
    return Kernel(k, group.kind, tuple(nodes), tuple(inputs), tuple(outputs), root,
                  group.shape if launched else (), (group.axes or ()) if launched else (), epilogue,
                  tuple(t for t in shape_inputs if t not in inputs), dict(group.maps) if launched else {})


def _boundaries(kernel: Kernel, kernel_of: dict[Node, Kernel], users: dict, cuts: dict,
                fetched: set[Tensor]) -> list[Boundary]:
    found = []
    for t in kernel.outputs:
        readers: set[int] = set()
        for consumer, i in sorted(users[t.node], key=lambda edge: edge[0].index):
            target = kernel_of[consumer]
            if consumer.inputs[i] is t and target is not kernel and target.id not in readers:
                readers.add(target.id)
                cut = cuts[(t, consumer)]
                found.append(Boundary(kernel.id, target.id, t, cut.reason, cut.detail))
        if t.node.op.updates_variable:
            found.append(Boundary(kernel.id, None, t, Reason.UPDATE, f"written to {t.node.inputs[0].name}"))
        elif t in fetched or not readers:
            found.append(Boundary(kernel.id, None, t, Reason.FETCHED, "an output of the run"))
    return found
