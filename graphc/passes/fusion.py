"""Fusion planning: the optimized graph partitioned into kernels, with the reason for every cut.

``plan_kernels(graph, outputs)`` returns a ``Partition``, data the backends lower (each kernel becomes one
loop nest or one library call) and the dumps print (``gc.viz.text(partition)``). Every node of the graph
lies in exactly one ``Kernel``:

  elementwise  fused elementwise ops (and views: broadcasts, expand_dims, squeeze, transposes of buffers)
  reduction    reductions over the same axes of the same shape, with their elementwise prologue and their
               epilogue (softmax, layer norm and mse written by hand; one nn op such as log_softmax)
  matmul       a GEMM (matmul, tensordot) with an optional elementwise epilogue (bias, activation, an SGD
               update) listed in ``Kernel.epilogue``: a backend may fuse it or loop over the product;
               ``matmul_epilogues=False`` plans the epilogue as a kernel of its own instead
  opaque       an op lowered on its own (gather, concat, einsum, random draws, ...)
  source       a placeholder, variable or constant: a buffer, no code
  control      a group: runs nothing

Iteration space. A kernel iterates over ``Kernel.shape``; a reduction kernel also reduces ``Kernel.axes``
of it. ``Kernel.index_maps[node]`` places each node: for each dim of its output, the axis of the kernel's
shape it runs along (None: a size-1 dim). A node runs over the whole shape, or, in a reduction kernel, over
the kept axes only (a row value: a max, a sum, a per-row scale), which may be broadcast back over the row
inside the kernel — if some axis is kept, so rows are independent. Matmul operand views have no place
(None): a backend passes them as GEMM layout flags.

Rules. Nodes are visited from the outputs back; a producer joins the kernel of its consumers when
  - it is elementwise, a view or a reduction (opaque ops, sources, and matmuls other than as the product
    under an elementwise epilogue never join; a matmul reads its operands from memory, except a transposed
    operand, which is a GEMM flag),
  - its consumers there read it along the kernel's axes: the same shape (size-1 dims aside), or a row value
    of a reduction over the same axes of the same shape; a smaller producer would be recomputed for every
    element it is broadcast to, so it is cut ("shape mismatch"), and so is a reduction over every axis whose
    result the kernel broadcasts ("reduction feeds a broadcast"),
  - it does not read a row reduction of its own shape (softmax, layer norm) while the kernel reduces other
    axes: it stays with that reduction,
  - the kernel stays within ``max_nodes`` ops and ``max_inputs`` inputs ("size limit"), and kernels acyclic.
A value whose consumers lie in several kernels joins the first one and is materialized for the others
("value used by two kernels"). Row values wait for their reduction: an elementwise node broadcast in its
consumer's kernel joins provisionally, and if no reduction over the axes it is broadcast along joins that
kernel, the plan is redone with that node cut. Finally, reductions over the same axes of the same shape
that read a common value and do not depend on each other merge into one kernel (a cross-entropy's loss
and its gradient). A ``sum_to`` whose summed axes depend on run-time sizes
(a None dim summed to a None dim) is opaque. Each cut records a ``Boundary`` with one of ``Reason.ALL`` and
a message naming the nodes involved.

Order. Kernel ids number the launched kernels first, in an order a backend can run them (topological,
ties by first node; a kernel that updates a variable after every kernel that reads the old value, where
the data allow it), then sources and control kernels.

For a backend. An elementwise kernel is one loop nest over ``shape`` evaluating the scalar expressions of
its nodes (views are index maps of loads). A reduction kernel loops over the kept axes; per kept index it
computes the row values and runs each reduction as an inner loop with an accumulator, its prologue inlined,
then the full-shape nodes read those row values (a backend may store or recompute full-shape values between
passes); an nn op inside (softmax, a cross-entropy) is one such row algorithm. A matmul kernel is a GEMM
(transposed operands as flags) and, if the backend takes it, its epilogue applied to the product; otherwise
the epilogue is a loop over the product's buffer. Elementwise ops without a scalar expression are opaque.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor
from graphc.graph.types import format_shape
from graphc.graph.walk import ancestors, sinks
from graphc.ops import broadcast, linalg, nn, reduce, shape, sources, state
from graphc.passes.partition import Cut, Group, Kind, Partition, Reason, assemble, data_users, shape_only

MAX_NODES = 64  # ops in one kernel
MAX_INPUTS = 32  # distinct input buffers of one kernel
_VIEW = "view"  # a node role (not a kernel kind): views live in elementwise, reduction and matmul kernels

_SOURCES = {sources.PLACEHOLDER, sources.CONSTANT, state.VARIABLE}
_UPDATES = {state.ASSIGN, state.ASSIGN_ADD}
_MATMULS = {linalg.MATMUL, linalg.TENSORDOT}
_REDUCTIONS = {reduce.SUM, reduce.MEAN, reduce.MAX, reduce.MIN, reduce.PROD, reduce.LOGSUMEXP}
_ARG_REDUCTIONS = {reduce.ARGMAX, reduce.ARGMIN}
_ROW_OPS = {nn.SOFTMAX, nn.LOG_SOFTMAX, nn.SOFTMAX_CROSS_ENTROPY, nn.SPARSE_SOFTMAX_CROSS_ENTROPY,
            nn.SPARSE_SOFTMAX_CROSS_ENTROPY_GRAD, nn.MSE, nn.HINGE}  # one nn op reduces one axis (default the last)
_ROW_OUTPUTS = {nn.SOFTMAX, nn.LOG_SOFTMAX, nn.SPARSE_SOFTMAX_CROSS_ENTROPY_GRAD}  # output of the input's shape
ROW_LABELS = {nn.SPARSE_SOFTMAX_CROSS_ENTROPY, nn.SPARSE_SOFTMAX_CROSS_ENTROPY_GRAD}  # input 1: one label a row
_BROADCASTS = {shape.BROADCAST_TO, broadcast.BROADCAST_LIKE, broadcast.MATCH_SHAPE}
_REORDERS = {shape.TRANSPOSE, shape.RESHAPE, shape.RESHAPE_LIKE}  # read their input in another order
_VIEWS = _BROADCASTS | _REORDERS | {shape.EXPAND_DIMS, shape.SQUEEZE}


# -- node roles and iteration spaces ---------------------------------------------------------------------
def role(node: Node) -> str:
    """What a node is to the planner: a kernel kind, or ``"view"`` (moves data, computes nothing)."""
    op = node.op
    if op in _SOURCES:
        return Kind.SOURCE
    if op is state.GROUP:
        return Kind.CONTROL
    if op in _MATMULS:
        return Kind.MATMUL
    if domain(node) is not None:
        return Kind.REDUCTION
    if (op.elementwise and op.scalar is not None) or op in _UPDATES:
        return Kind.ELEMENTWISE
    return _VIEW if op in _VIEWS else Kind.OPAQUE


def domain(node: Node) -> tuple[tuple, tuple[int, ...]] | None:
    """(shape, reduced axes) of a reduction: the input's shape and the axes it sums, maxes, ... over.
    None for other nodes, and for a ``sum_to`` whose axes are known only at run time (it is opaque)."""
    op = node.op
    if not node.inputs:
        return None
    x = node.inputs[0].shape
    if op in _REDUCTIONS:
        return x, tuple(node.attrs["axis"])
    if op in _ARG_REDUCTIONS:
        axis = node.attrs["axis"]
        return x, tuple(range(len(x))) if axis is None else (axis,)
    if op in _ROW_OPS:
        return x, (node.attrs.get("axis", -1) % len(x),)
    if op is broadcast.SUM_TO:
        return _sum_to_domain(x, node.inputs[1].shape)
    return None


def _sum_to_domain(x: tuple, like: tuple) -> tuple[tuple, tuple[int, ...]] | None:
    lead = len(x) - len(like)
    axes = list(range(lead))
    for i, (d, target) in enumerate(zip(x[lead:], like)):
        if target is None and d != 1:
            return None  # summed or not depending on the run-time sizes
        if target == 1 and d != 1:
            axes.append(lead + i)
    return x, tuple(axes)


def _full(rank: int) -> tuple:
    return tuple(range(rank))


def _kept(shape_: tuple, axes: tuple) -> tuple:
    return tuple(a for a in range(len(shape_)) if a not in axes)


def output_map(node: Node, dims: tuple, axes: tuple) -> tuple:
    """Where a reduction's output lies in its own iteration space (dims, axes)."""
    out = node.outputs[0].shape
    if node.op in _ROW_OUTPUTS:
        return _full(len(dims))
    if node.op is broadcast.SUM_TO:  # its output is aligned to the right of its input
        lead = len(dims) - len(out)
        return tuple(None if lead + i in axes else lead + i for i in range(len(out)))
    if node.attrs.get("keepdims", False):
        return tuple(None if a in axes else a for a in range(len(dims)))
    return _kept(dims, axes)


def _varying(dims: tuple, axes: tuple | None = None) -> tuple:
    """The axes of ``dims`` not reduced (``axes``) and not of size 1: what a value varies along."""
    return tuple(a for a in range(len(dims)) if dims[a] != 1 and a not in (axes or ()))


def _along(place: tuple, dims: tuple) -> tuple:
    """The axes a node placed at ``place`` varies along (its size-1 dims do not count)."""
    return tuple(a for a in place if a is not None and dims[a] != 1)


def input_place(node: Node, position: int, here: tuple) -> tuple:
    """Where input ``position`` of an elementwise op or a view placed at ``here`` lies in its kernel's space."""
    if node.op is shape.EXPAND_DIMS:
        axis = node.attrs["axis"]
        return here[:axis] + here[axis + 1:]
    if node.op is shape.SQUEEZE:
        place = list(here)
        for axis in sorted(node.attrs["axis"]):
            place.insert(axis, None)
        return tuple(place)
    return broadcast_map(node.inputs[position].shape, node.outputs[0].shape, here)


def broadcast_map(operand: tuple, result: tuple, result_map: tuple) -> tuple:
    """The placement of an operand broadcast (numpy rules) against a result placed at ``result_map``."""
    offset = len(result) - len(operand)
    return tuple(None if d == 1 and result[j + offset] != 1 else result_map[j + offset]
                 for j, d in enumerate(operand))


# -- planning --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Join:
    """How a node joins a group: its placement and the group's new iteration space."""

    group: Group
    place: tuple | None
    kind: str | None = None  # the group's new kind (and the node its root)
    shape: tuple | None = None  # a new iteration space (a reduction joined) ...
    axes: tuple | None = None
    remap: tuple | None = None  # ... into which the group's old axes map like this
    pending: tuple | None = None


@dataclass(frozen=True)
class _Options:
    fuse: bool
    matmul_epilogues: bool
    max_nodes: int
    max_inputs: int


class _Planner:
    """One greedy pass from the outputs back; ``forbidden`` nodes may not be provisional row values."""

    def __init__(self, nodes: list[Node], options: _Options, forbidden: frozenset[Node]) -> None:
        self.nodes = nodes
        self.options = options
        self.forbidden = forbidden
        self.group_of: dict[Node, Group] = {}
        self.cuts: dict[tuple[Tensor, Node], Cut] = {}
        self.users = data_users(nodes)
        self.successors: dict[Node, list[Node]] = {n: [c for c, _ in self.users[n]] for n in nodes}
        for node in nodes:
            for control in node.control_inputs:
                self.successors[control].append(node)  # data and control edges: what orders kernels

    def run(self) -> None:
        for node in reversed(self.nodes):
            self._place(node)

    def _place(self, p: Node) -> None:
        kind = role(p)
        candidates = self._consumer_groups(p)
        if kind in (Kind.SOURCE, Kind.CONTROL, Kind.OPAQUE) or not self.options.fuse:
            alone = Cut(Reason.OPAQUE, f"{p.op.name} '{p.name}' is lowered on its own") if kind == Kind.OPAQUE \
                else Cut(Reason.UNFUSED, "each node is its own kernel")
            for edges in candidates.values():
                self._cut(p, edges, alone)
            return self._seed(p, kind)
        joined = None
        for group, edges in candidates.items():
            outcome = self._join(p, kind, group, edges)
            if isinstance(outcome, _Join) and joined is None and not self._makes_cycle(p, group):
                self._apply(p, outcome)
                joined = group
                continue
            if isinstance(outcome, _Join):
                readers = ", ".join(sorted({c.name for c, _ in edges}))
                outcome = Cut(Reason.SHARED, f"also read by {readers}")
            self._cut(p, edges, outcome)
        if joined is None:
            self._seed(p, kind)

    def _consumer_groups(self, p: Node) -> dict[Group, list[tuple[Node, int]]]:
        found: dict[int, tuple[Group, list]] = {}
        for consumer, i in sorted(self.users[p], key=lambda edge: (edge[0].index, edge[1])):
            group = self.group_of[consumer]
            found.setdefault(id(group), (group, []))[1].append((consumer, i))
        return {group: edges for group, edges in found.values()}

    def _cut(self, p: Node, edges: list[tuple[Node, int]], cut: Cut) -> None:
        for consumer, i in edges:
            self.cuts.setdefault((consumer.inputs[i], consumer), cut)

    def _seed(self, p: Node, kind: str) -> None:
        out = p.outputs[0].shape if p.outputs else ()
        if kind == Kind.REDUCTION:
            dims, axes = domain(p)
            group = Group(Kind.REDUCTION, p, dims, axes)
            group.maps[p] = output_map(p, dims, axes)
        else:
            group = Group(Kind.ELEMENTWISE if kind == _VIEW else kind, p, out)
            group.maps[p] = _full(len(out)) if kind in (Kind.ELEMENTWISE, _VIEW, Kind.MATMUL) else None
        self.group_of[p] = group

    def _apply(self, p: Node, join: _Join) -> None:
        group = join.group
        if join.remap is not None:
            group.maps = {n: None if m is None else tuple(None if a is None else join.remap[a] for a in m)
                          for n, m in group.maps.items()}
        if join.shape is not None:
            group.shape, group.axes = join.shape, join.axes
        group.pending = join.pending
        if join.kind is not None:
            group.kind, group.root = join.kind, p
        group.maps[p] = join.place
        self.group_of[p] = group

    # -- may p join this group? ------------------------------------------------------------------------
    def _join(self, p: Node, kind: str, group: Group, edges: list[tuple[Node, int]]) -> _Join | Cut:
        if group.kind in (Kind.OPAQUE, Kind.CONTROL):
            return Cut(Reason.OPAQUE, f"{group.root.op.name} '{group.root.name}' is lowered on its own")
        limit = self._size_limit(p, group)
        if limit is not None:
            return limit
        places = {self._operand_place(c, i, group) for c, i in edges}
        if len(places) > 1:
            cut = next((place for place in places if isinstance(place, Cut)), None)
            return cut or Cut(Reason.SHAPE_MISMATCH, f"{p.name} is read along different axes in one kernel")
        place = places.pop()
        if isinstance(place, Cut):
            return place
        if kind == Kind.MATMUL:
            return self._join_as_product(p, group, place)
        if group.kind == Kind.MATMUL:
            return self._join_matmul_kernel(p, kind, group, place, edges)
        if kind == Kind.REDUCTION:
            return self._join_reduction(p, group, place, edges)
        return self._join_elementwise(p, group, place, edges)

    def _operand_place(self, c: Node, i: int, group: Group) -> tuple | str | Cut:
        """Where input ``i`` of ``c`` lies in the group's iteration space, if it can be computed there."""
        here, kind = group.maps[c], role(c)
        if kind == Kind.MATMUL:
            if _is_matrix_transpose(c.inputs[i].node):
                return "operand"
            return Cut(Reason.MATMUL, f"{c.name} reads its operands from memory")
        if here is None:
            return Cut(Reason.MATMUL, f"{c.name} is a matmul operand read from memory")
        if kind == Kind.REDUCTION:
            kept = _kept(group.shape, group.axes)
            return kept if c.op in ROW_LABELS and i == 1 else _full(len(group.shape))
        if c.op in _REORDERS:
            return Cut(Reason.SHAPE_MISMATCH, f"{c.op.name} '{c.name}' reads its input in another order")
        return input_place(c, i, here)

    def _join_as_product(self, p: Node, group: Group, place: Any) -> _Join | Cut:
        if not self.options.matmul_epilogues:
            return Cut(Reason.MATMUL, "matmul epilogues are off")
        if group.kind != Kind.ELEMENTWISE or group.axes is not None or group.pending is not None:
            return Cut(Reason.MATMUL, f"a matmul takes an elementwise epilogue only; {group.root.name} is not")
        if _along(place, group.shape) != _varying(group.shape) or p.outputs[0].shape != group.shape:
            return Cut(Reason.MATMUL, f"{p.name} {format_shape(p.outputs[0].shape)} is broadcast in its epilogue")
        return _Join(group, place, kind=Kind.MATMUL)

    def _join_matmul_kernel(self, p: Node, kind: str, group: Group, place: Any, edges: list) -> _Join | Cut:
        if place == "operand":
            if len(edges) < len(self.users[p]):  # a flag computes nothing: other kernels need it stored
                return Cut(Reason.SHARED, f"{p.name} is also read outside {group.root.name}'s kernel")
            return _Join(group, None)  # a transposed operand: a GEMM flag, no data movement
        if kind in (Kind.ELEMENTWISE, _VIEW) and _along(place, group.shape) == _varying(group.shape):
            return _Join(group, place)  # computed in the epilogue
        return Cut(Reason.MATMUL, f"{p.name} cannot be computed in the epilogue of {group.root.name}")

    def _join_reduction(self, p: Node, group: Group, place: Any, edges: list) -> _Join | Cut:
        dims, axes = domain(p)
        own = output_map(p, dims, axes)
        if not _varying(dims, axes):  # a total: broadcasting it back needs the whole reduction first
            mismatch = Cut(Reason.REDUCTION_BROADCAST, f"{p.name} reduces every axis; {group.root.name}'s kernel "
                                                       f"broadcasts it over {format_shape(group.shape)}")
        else:
            mismatch = Cut(Reason.SHAPE_MISMATCH, f"{p.name} reduces axes {axes} of {format_shape(dims)}; "
                                                  f"{group.root.name}'s kernel runs over {_space(group)}")
        if group.axes is not None:  # the group already reduces: the same axes of the same shape only
            if (dims, axes) != (group.shape, group.axes) or _along(place, dims) != _along(own, dims):
                return mismatch
            return self._broadcast_check(p, group, place, edges, kind=Kind.REDUCTION)
        if dims == group.shape and _along(place, dims) == _along(own, dims):  # the kernel runs over its input
            if not _varying(dims, axes) or group.pending not in (None, tuple(a for a in axes if dims[a] != 1)):
                return mismatch
            return _Join(group, place, kind=Kind.REDUCTION, shape=dims, axes=axes)
        if p.outputs[0].shape == group.shape and group.pending is None and \
                _along(place, group.shape) == _varying(group.shape):
            # the kernel is an epilogue at the reduced shape: its nodes become row values
            return _Join(group, own, kind=Kind.REDUCTION, shape=dims, axes=axes, remap=own)
        return mismatch

    def _join_elementwise(self, p: Node, group: Group, place: Any, edges: list) -> _Join | Cut:
        if [a for a in place if a is not None] != sorted({a for a in place if a is not None}):
            return Cut(Reason.SHAPE_MISMATCH, f"{p.name} is read in another axis order")
        placed = _along(place, group.shape)
        if placed == _varying(group.shape):
            owner = _row_reduction_read_by(p) if group.axes is not None else None
            if owner is not None and domain(owner) != (group.shape, group.axes):
                return Cut(Reason.SHAPE_MISMATCH, f"{p.name} reads {owner.name} and stays in its kernel; "
                                                  f"{group.root.name}'s kernel reduces other axes")
            return _Join(group, place, pending=group.pending)
        recomputed = Cut(Reason.SHAPE_MISMATCH, f"{p.name} {format_shape(p.outputs[0].shape)} would be "
                                                f"recomputed for every element of {_space(group)} it is broadcast to")
        if group.axes is not None:
            if placed != _varying(group.shape, group.axes):
                return recomputed
            return self._broadcast_check(p, group, place, edges, kind=None)
        if p in self.forbidden:
            return recomputed
        broadcast_axes = tuple(a for a in _varying(group.shape) if a not in placed)
        if group.pending not in (None, broadcast_axes):
            return recomputed
        return _Join(group, place, pending=broadcast_axes)  # a row value, if a reduction comes to confirm it

    def _broadcast_check(self, p: Node, group: Group, place: tuple, edges: list, kind: str | None) -> _Join | Cut:
        """A row value may be broadcast back over the row only while rows are independent."""
        full = _varying(group.shape)
        broadcast_back = _along(place, group.shape) != full and any(
            _along(group.maps[c], group.shape) == full and role(c) != Kind.REDUCTION for c, _ in edges)
        if broadcast_back and not _varying(group.shape, group.axes):
            return Cut(Reason.REDUCTION_BROADCAST, f"{p.name} is reduced over every axis and broadcast back by "
                                                   f"{', '.join(c.name for c, _ in edges)}")
        return _Join(group, place, kind=kind)

    def _size_limit(self, p: Node, group: Group) -> Cut | None:
        if len(group.maps) + 1 > self.options.max_nodes:
            return Cut(Reason.SIZE_LIMIT, f"the kernel of {group.root.name} has {self.options.max_nodes} ops")
        members = set(group.maps) | {p}
        inputs = {t for n in members for i, t in enumerate(n.inputs)
                  if t.node not in members and not shape_only(n, i)}
        if len(inputs) > self.options.max_inputs:
            return Cut(Reason.SIZE_LIMIT, f"the kernel of {group.root.name} would read {len(inputs)} buffers")
        return None

    def _makes_cycle(self, p: Node, group: Group) -> bool:
        """Whether p joining ``group`` lets a kernel outside reach back into it."""
        others = {id(self.group_of[s]): self.group_of[s] for s in self.successors[p]
                  if self.group_of[s] is not group}
        seen, stack = set(others), list(others.values())
        while stack:
            current = stack.pop()
            for node in current.maps:
                for successor in self.successors[node]:
                    target = self.group_of.get(successor)
                    if target is group:
                        return True
                    if target is not None and id(target) not in seen:
                        seen.add(id(target))
                        stack.append(target)
        return False


def _row_reduction_read_by(p: Node, depth: int = 3) -> Node | None:
    """A reduction over ``p``'s own shape whose result ``p`` reads, looking back through a few elementwise
    ops: a row value broadcast back (the division of a softmax, the scale of a layer norm) or the output of
    a softmax. ``p`` belongs in that reduction's kernel rather than in one reducing other axes."""
    out = p.outputs[0].shape
    stack = [(t.node, depth) for i, t in enumerate(p.inputs) if not shape_only(p, i)]
    while stack:
        node, left = stack.pop()
        found = domain(node)
        if found is not None and found[0] == out:
            return node
        if left > 0 and role(node) in (Kind.ELEMENTWISE, _VIEW):
            stack += [(t.node, left - 1) for i, t in enumerate(node.inputs) if not shape_only(node, i)]
    return None


def _is_matrix_transpose(node: Node) -> bool:
    perm = node.attrs.get("perm") if node.op is shape.TRANSPOSE else None
    return perm is not None and len(perm) >= 2 and tuple(perm) == (*range(len(perm) - 2), len(perm) - 1,
                                                                      len(perm) - 2)


def _space(group: Group) -> str:
    shown = format_shape(group.shape)
    return shown if not group.axes else f"{shown} reducing axes {group.axes}"


def _merge_siblings(planner: _Planner) -> None:
    """Reductions over the same axes of the same shape that read a common value share one kernel when neither
    needs the other: a softmax cross-entropy's loss and its gradient then read the logits once, and compute
    the row's max and sum of exponentials once (graphc/lower/rows.py shares them)."""
    group_of = planner.group_of
    while True:
        groups = list({id(g): g for g in group_of.values() if g.kind == Kind.REDUCTION and g.pending is None}
                      .values())
        members = {id(g): [n for n, h in group_of.items() if h is g] for g in groups}
        reads = {id(g): {t for n in members[id(g)] for i, t in enumerate(n.inputs)
                         if not shape_only(n, i) and group_of[t.node] is not g} for g in groups}
        pair = next(((a, b) for i, a in enumerate(groups) for b in groups[i + 1:]
                     if (a.shape, a.axes) == (b.shape, b.axes) and reads[id(a)] & reads[id(b)]
                     and len(members[id(a)]) + len(members[id(b)]) <= planner.options.max_nodes
                     and not _reaches(planner, a, b) and not _reaches(planner, b, a)), None)
        if pair is None:
            return
        a, b = pair
        a.maps.update(b.maps)
        for node in members[id(b)]:
            group_of[node] = a


def _reaches(planner: _Planner, start: Group, target: Group) -> bool:
    """Whether a value of ``start``'s kernel flows, through any kernels, into ``target``'s."""
    seen, stack = {id(start)}, [start]
    while stack:
        group = stack.pop()
        for node in [n for n, g in planner.group_of.items() if g is group]:
            for successor in planner.successors[node]:
                following = planner.group_of[successor]
                if following is target:
                    return True
                if id(following) not in seen:
                    seen.add(id(following))
                    stack.append(following)
    return False


# -- the public entry point -------------------------------------------------------------------------------
def plan_kernels(graph: Graph | None, outputs: Sequence[Tensor | Node] | None = None, *, fuse: bool = True,
                 matmul_epilogues: bool = True, max_nodes: int = MAX_NODES,
                 max_inputs: int = MAX_INPUTS) -> Partition:
    """Partition the nodes ``outputs`` need (all of ``graph`` when None) into kernels.

    ``fuse=False`` gives one kernel per node (every cut: "fusion off"); ``matmul_epilogues=False`` keeps
    elementwise epilogues out of matmul kernels; ``max_nodes`` and ``max_inputs`` bound a kernel.
    """
    outputs = list(sinks(graph) if outputs is None else outputs)
    nodes = ancestors(outputs)
    options = _Options(fuse, matmul_epilogues, max_nodes, max_inputs)
    forbidden: frozenset[Node] = frozenset()
    while True:  # provisional row values that no reduction confirmed are cut, and the plan redone
        planner = _Planner(nodes, options, forbidden)
        planner.run()
        unconfirmed = {n for n, g in planner.group_of.items() if g.axes is None and g.pending is not None
                       and g.maps[n] is not None and _along(g.maps[n], g.shape) != _varying(g.shape)}
        if unconfirmed <= forbidden:
            if fuse:
                _merge_siblings(planner)
            return assemble(graph, outputs, nodes, planner.group_of, planner.cuts)
        forbidden |= unconfirmed

