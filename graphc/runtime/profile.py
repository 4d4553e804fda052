"""Profiling a run: time per kernel (optimized Sessions) or per node (optimize=0), as a printable table.

Run monitors are the backends' one observation hook, shared by profiling and check_numerics: a backend's
``run(feeds, variables, run_count, monitor=...)`` calls ``monitor.node_done(node, outputs, seconds)`` after
each node it computes, in execution order, and is given no monitor at all when nothing observes the run
(so an unobserved run pays one branch, not one per node). The numpy interpreter times every node; the
``Profiler`` sums node times into the kernels of ``Optimized.partition``, so the table has the shape a
compiled backend, timing its kernels natively, will report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graphc.graph.node import Node
from graphc.graph.source import SourceLine
from graphc.passes.partition import Kernel, Partition

TABLE_ROWS = 20  # rows ``str(profile)`` shows; ``profile.format(limit=None)`` shows all


@dataclass(frozen=True)
class ProfileRow:
    """One kernel (``name`` "k3", ``kind`` its kind) or one node (``name`` its name, ``kind`` its op)."""

    name: str
    kind: str
    root: str  # the kernel's root node (what sets its iteration space); a node row: the node itself
    nodes: int  # how many nodes it computes
    seconds: float
    source: SourceLine | None  # the user's line that made the root node (None: the sources row)


@dataclass(frozen=True)
class Profile:
    """The time of one run, by ``"kernel"`` or by ``"node"``; ``rows`` in execution order.

    ``total`` is the sum of the rows; ``wall`` the time of the whole backend run (with the monitor's own
    cost), so ``total / wall`` says how much of a run the table accounts for.
    """

    by: str
    rows: tuple[ProfileRow, ...]
    wall: float
    backend: str
    optimize: int

    @property
    def total(self) -> float:
        return sum(row.seconds for row in self.rows)

    def share(self, row: ProfileRow) -> float:
        """The row's fraction of ``total`` (0 when nothing took measurable time)."""
        return row.seconds / self.total if self.total > 0 else 0.0

    def slowest(self, count: int | None = None) -> list[ProfileRow]:
        """The rows by decreasing time (ties in execution order)."""
        ranked = sorted(self.rows, key=lambda row: -row.seconds)
        return ranked if count is None else ranked[:count]

    def __str__(self) -> str:
        return self.format()

    def format(self, limit: int | None = TABLE_ROWS) -> str:
        """The table, slowest first; ``limit`` rows at most (None: all) and a line for the rest."""
        units = "kernels" if self.by == "kernel" else "nodes"
        nodes = sum(row.nodes for row in self.rows)
        size = f"{nodes} nodes in {len(self.rows)} kernels" if self.by == "kernel" else f"{nodes} nodes"
        lines = [f"profile: {size}, {_ms(self.total)} "
                 f"({_ms(self.wall)} wall; backend {self.backend}, optimize={self.optimize})"]
        shown = self.slowest(limit)
        lines += _table(self, shown)
        hidden = self.slowest()[len(shown):]
        if hidden:
            seconds = sum(row.seconds for row in hidden)
            lines.append(f"  … {len(hidden)} more {units}: {_ms(seconds)} in all")
        return "\n".join(lines)


def _table(profile: Profile, rows: Sequence[ProfileRow]) -> list[str]:
    first = "kernel" if profile.by == "kernel" else "node"
    second = "kind" if profile.by == "kernel" else "op"
    header = [first, second, "root", "nodes", "time", "share", "source"]
    body = [[row.name, row.kind, row.root, str(row.nodes), _ms(row.seconds),
             f"{100 * profile.share(row):.1f}%", str(row.source or "-")] for row in rows]
    if profile.by == "node":  # a node row's root is the node itself, and it computes one node
        header, body = _without(header, 2, 3), [_without(line, 2, 3) for line in body]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    right = {i for i, name in enumerate(header) if name in ("nodes", "time", "share")}
    return ["  " + "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
            for line in [header, *body]]


def _without(line: list[str], *indices: int) -> list[str]:
    return [cell for i, cell in enumerate(line) if i not in indices]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


class Profiler:
    """A run monitor that records each node's time; ``profile()`` turns them into a ``Profile``."""

    def __init__(self, partition: Partition | None, backend: str, optimize: int) -> None:
        self.partition = partition
        self.backend = backend
        self.optimize = optimize
        self.times: dict[Node, float] = {}

    def node_done(self, node: Node, outputs: Sequence[np.ndarray], seconds: float) -> None:
        self.times[node] = seconds

    def profile(self, wall: float) -> Profile:
        """By kernel when the run had a partition (an optimizing Session), else by node."""
        if self.partition is None:
            rows = tuple(_node_row(node, seconds) for node, seconds in self.times.items())
            return Profile("node", rows, wall, self.backend, self.optimize)
        return Profile("kernel", self._kernel_rows(), wall, self.backend, self.optimize)

    def _kernel_rows(self) -> tuple[ProfileRow, ...]:
        seconds: dict[int, float] = {}
        members: dict[int, int] = {}
        for node, time in self.times.items():
            kernel = self.partition.kernel_of[node]
            seconds[kernel.id] = seconds.get(kernel.id, 0.0) + time
            members[kernel.id] = members.get(kernel.id, 0) + 1
        # a compiled backend reports a kernel's outputs only: count the nodes the kernel computes
        rows = [_kernel_row(kernel, len(kernel.nodes), seconds[kernel.id])
                for kernel in self.partition.launched() if kernel.id in seconds]
        others = [k for k in self.partition.kernels if not k.launched and k.id in seconds]
        if others:  # sources (buffers) and control kernels run no code: one row for all of them
            rows.append(ProfileRow("-", "sources", "-", sum(members[k.id] for k in others),
                                   sum(seconds[k.id] for k in others), None))
        return tuple(rows)


def _node_row(node: Node, seconds: float) -> ProfileRow:
    return ProfileRow(node.name, node.op.name, node.name, 1, seconds, node.source)


def _kernel_row(kernel: Kernel, nodes: int, seconds: float) -> ProfileRow:
    return ProfileRow(f"k{kernel.id}", kernel.kind, kernel.root.name, nodes, seconds, kernel.root.source)


class MonitorGroup:
    """Several run monitors shown the same nodes, in order (profiling and check_numerics together)."""

    def __init__(self, monitors: Sequence[object]) -> None:
        self.monitors = tuple(monitors)

    def node_done(self, node: Node, outputs: Sequence[np.ndarray], seconds: float) -> None:
        for monitor in self.monitors:
            monitor.node_done(node, outputs, seconds)
