"""``gc.optimize``: the pass pipeline, run to a fixed point, with a log of what every pass did.

The pipeline is one ordered list, read top to bottom. Each pass is a sweep (graphc/passes/rewrite.py) with
its rule table; every sweep also merges common subexpressions and drops dead nodes. The whole list is
repeated until a round changes nothing, so a pattern that only appears after a later pass (a hand-written
softmax that canonicalization exposes, a log(softmax) inside a gradient graph) is still rewritten.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphc.errors import ArgumentError, GraphError
from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor
from graphc.graph.walk import ancestors, sinks
from graphc.passes.options import OptimizeOptions
from graphc.passes.partition import Partition
from graphc.passes.patterns import RuleTable
from graphc.passes.rewrite import Sweep

MAX_ROUNDS = 8


@dataclass(frozen=True)
class Pass:
    """A named sweep with a rule table (None: only merge duplicates and drop dead nodes)."""

    name: str
    rules: RuleTable | None
    level: int  # the lowest optimization level that runs it


@dataclass
class PassRecord:
    """What one pass did over all rounds: rules fired (by name), node counts, time."""

    name: str
    fired: Counter = field(default_factory=Counter)
    nodes_before: int = 0
    nodes_after: int = 0
    seconds: float = 0.0
    runs: int = 0


@dataclass
class Optimized:
    """The optimized graph, the tensors standing for the requested outputs, the log, and the kernel
    partition (graphc/passes/fusion.py): fused at level 2, one kernel per node below it or when
    ``"fusion"`` is excluded, so a backend always has a partition to lower."""

    graph: Graph
    outputs: list[Tensor | Node]
    origin: dict[Node, Node]  # each node of ``graph`` -> the user's node it stands for
    log: list[PassRecord]
    rounds: int
    partition: Partition | None = None

    def sources(self) -> dict[Node, Node]:
        """Placeholders and variables of the optimized graph -> the user's placeholders and variables."""
        return {n: self.origin[n] for n in self.graph.nodes if not n.inputs and n.op.reference is None}

    def fired(self) -> Counter:
        return sum((record.fired for record in self.log), Counter())

    def __str__(self) -> str:
        return format_log(self)


def pipeline() -> list[Pass]:
    """The passes in the order they run (imported late: rule modules import the op families)."""
    from graphc.passes import canonicalize, fold, simplify, stabilize

    return [
        Pass("canonicalize", canonicalize.RULES, level=1),
        Pass("simplify", simplify.RULES, level=1),
        Pass("stabilize", stabilize.RULES, level=2),
        Pass("fold_constants", fold.RULES, level=2),
        Pass("cse", None, level=1),
    ]


def optimize(target: Any, level: int = 2, exclude: Sequence[str] = (), verify: bool | None = None,
             feed_dict: Mapping[Any, Any] | None = None) -> Optimized:
    """Optimize the graph (all its nodes without consumers) or the given tensors/ops; returns ``Optimized``.

    ``exclude`` switches off passes or rules by name (also ``GRAPHC_OPT_EXCLUDE``); ``verify`` (also
    ``GRAPHC_VERIFY=1``) re-runs the graph after every pass, on ``feed_dict`` (placeholders to values) or on
    random inputs, and names the pass that changed a result.
    """
    options = OptimizeOptions.from_environment(level, tuple(exclude), verify)
    _check_names(options.exclude)
    targets = _targets(target)
    source = _graph_of(targets)
    passes = [p for p in pipeline() if p.level <= options.level and p.name not in options.exclude]
    records = {p.name: PassRecord(p.name) for p in passes}
    checker = _verifier(targets, feed_dict) if options.verify else None
    current, origin, rounds, changed = targets, {}, 0, True
    while changed and rounds < MAX_ROUNDS and passes:
        rounds += 1
        changed = False
        for p in passes:
            rules = p.rules.without(options.exclude) if p.rules is not None else None
            started = time.perf_counter()
            sweep = Sweep(_graph_of(current), origin, rules, merge=options.level > 0)
            new = sweep.run(current)
            _record(records[p.name], sweep, current, new, time.perf_counter() - started)
            changed |= bool(sweep.fired) or _size(new) != _size(current)
            current, origin = new, {n: origin.get(o, o) for n, o in sweep.origin.items()}
            if checker is not None:
                checker.check(p.name, sweep.fired, Optimized(sweep.graph, list(current), origin, [], rounds))
        changed &= options.level > 0
    if not passes:
        sweep = Sweep(source, {}, None, merge=False)
        current, origin = sweep.run(targets), sweep.origin
    graph = _graph_of(current) if current else Graph()
    return Optimized(graph, list(current), origin, list(records.values()), rounds, _plan(graph, current, options))


def _plan(graph: Graph, outputs: Sequence[Tensor | Node], options: OptimizeOptions) -> Partition:
    """Fusion planning, after the pipeline: level 2 fuses, a lower level (or excluding "fusion") does not."""
    from graphc.passes.fusion import plan_kernels

    return plan_kernels(graph, list(outputs), fuse=options.level >= 2 and "fusion" not in options.exclude)


def known_names() -> set[str]:
    """Everything ``exclude`` can name: passes, rules, and the fusion planner."""
    names = {"fusion"}
    for p in pipeline():
        names.add(p.name)
        names.update(rule.name for rule in (p.rules or []))
    return names


def _check_names(excluded: frozenset[str]) -> None:
    unknown = sorted(excluded - known_names())
    if unknown:
        raise ArgumentError(f"cannot exclude {', '.join(map(repr, unknown))}: no pass or rule has that name "
                            "(see docs/passes.md for the list)")


def _targets(target: Any) -> list[Tensor | Node]:
    if isinstance(target, Graph):  # every result nothing consumes; variables' initial values are not results
        initial = {t.node for t in target.initializers.values()}
        targets = [s for s in sinks(target) if (s.node if isinstance(s, Tensor) else s) not in initial]
    elif isinstance(target, (Tensor, Node)):
        targets = [target]
    else:
        targets = list(target) if isinstance(target, (list, tuple)) else [target]
    for item in targets:
        if not isinstance(item, (Tensor, Node)):
            raise GraphError(f"gc.optimize takes a graph, a tensor or op, or a list of them; got {item!r}")
    if not targets:
        raise GraphError("gc.optimize: nothing to optimize (an empty graph or an empty list)")
    if len({id(t.graph) for t in targets}) > 1:
        raise GraphError("gc.optimize: the tensors come from different graphs; optimize each graph on its own")
    return targets


def _graph_of(targets: Sequence[Tensor | Node]) -> Graph:
    first = targets[0]
    return first.graph


def _size(targets: Sequence[Tensor | Node]) -> int:
    return len(ancestors(targets))


def _record(record: PassRecord, sweep: Sweep, before: Sequence, after: Sequence, seconds: float) -> None:
    if record.runs == 0:
        record.nodes_before = _size(before)
    record.fired.update(sweep.fired)
    record.nodes_after = _size(after)
    record.seconds += seconds
    record.runs += 1


def _verifier(targets: Sequence[Tensor | Node], feed_dict: Mapping[Any, Any] | None):
    from graphc.passes.verify import Verifier
    from graphc.runtime.feeds import check_feeds

    return Verifier(targets, check_feeds(_graph_of(targets), feed_dict) if feed_dict else None)


def format_log(result: Optimized) -> str:
    """One line per pass: nodes before → after, time, and the rules that fired with their counts."""
    lines = [f"optimized in {result.rounds} round(s): {len(result.graph.nodes)} nodes"]
    for r in result.log:
        fired = ", ".join(f"{name}×{count}" for name, count in sorted(r.fired.items())) or "nothing fired"
        lines.append(f"  {r.name:<15} {r.nodes_before:>6} → {r.nodes_after:<6} {r.seconds * 1e3:7.2f} ms  {fired}")
    return "\n".join(lines)
