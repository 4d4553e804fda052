"""``gc.trace``: the evaluation trace of the lecture notes — primal values, tangents, adjoints — as a table.

Numbering, as in Griewank & Walther and the lecture notes: the n inputs y depends on (placeholders and
variables, in order of creation) are v₁₋ₙ … v₀; then every op node y depends on is v₁ … vₘ, in topological
(creation) order. Constants are not numbered: they appear as literals in the expressions (``2 × v₀``).
Each row holds the v's name, its defining expression over earlier v's (``ln v₋₁``, ``v₋₁ × v₀``), its
value, and its tangent (forward mode) or adjoint (reverse mode):

- tangents v̇ are ``gc.jvp`` of every v along ``wrt`` (seed ones: v̇ of wrt is 1, of other inputs 0);
- adjoints v̄ are ``gc.gradients`` of y (seed ȳ = 1) with respect to every v;
- the reverse trace's steps v̄ᵢ (+)= v̄ₖ ∂vₖ/∂vᵢ, in the order reverse mode takes them, are each op's own
  vjp applied to v̄ₖ. In graphs of scalars the local partials ∂vₖ/∂vᵢ (the vjp of a cotangent 1) are
  shown too, so the printed trace reads as the lecture's: ``v̄₀ = v̄₀ + v̄₂ ∂v₂/∂v₀ = -0.284 + 1 × 2 = 1.716``.

All values come from one run of a Session (the one given, or a new one); the derivative nodes are added
to the graph under the name scope ``trace``. Tensors print their values elementwise on one line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphc.autodiff.forward import jvp
from graphc.autodiff.paths import ancestors
from graphc.autodiff.reverse import _call_vjp, gradients
from graphc.errors import ArgumentError, GradientError, NotFoundError
from graphc.graph.dtypes import FLOATS
from graphc.graph.node import Tensor
from graphc.ops import elementwise as ew
from graphc.ops.sources import CONSTANT, PLACEHOLDER
from graphc.ops.state import VARIABLE

MODES = ("forward", "reverse")
DOT, BAR = "\u0307", "\u0304"  # combining dot (tangent) and bar (adjoint) above
_SUBSCRIPTS = str.maketrans("-0123456789", "₋₀₁₂₃₄₅₆₇₈₉")
_PLAIN = str.maketrans("₋₀₁₂₃₄₅₆₇₈₉", "-0123456789")

# how an op's defining expression prints, keyed by the op (others print as name(operands, attrs))
_FORMATS = {
    ew.ADD: "{0} + {1}", ew.SUB: "{0} − {1}", ew.MUL: "{0} × {1}", ew.DIV: "{0} / {1}", ew.POW: "{0}^{1}",
    ew.NEG: "−{0}", ew.SQUARE: "{0}²", ew.SQRT: "√{0}", ew.LOG: "ln {0}", ew.EXP: "exp {0}", ew.SIN: "sin {0}",
    ew.COS: "cos {0}", ew.TAN: "tan {0}", ew.TANH: "tanh {0}", ew.ABS: "|{0}|",
}


@dataclass(frozen=True)
class TraceRow:
    """One v: its name (``v-1``), defining expression, value, and tangent or adjoint (None where absent).

    ``operands`` names the v each input of the op is (None for a constant); ``partials`` holds ∂v/∂operand
    per input, in graphs of scalars only.
    """

    name: str
    tensor: Tensor
    expression: str
    value: np.ndarray
    operands: tuple[str | None, ...] = ()
    tangent: np.ndarray | None = None
    adjoint: np.ndarray | None = None
    partials: tuple[np.ndarray | None, ...] = ()

    @property
    def is_input(self) -> bool:
        return self.tensor.node.op in (PLACEHOLDER, VARIABLE)


@dataclass(frozen=True)
class AdjointStep:
    """One step of the reverse sweep: ``target``'s adjoint grows by v̄_source · ∂source/∂target."""

    target: str
    source: str
    contribution: np.ndarray
    total: np.ndarray  # target's adjoint after this step
    first: bool  # the first contribution to target (printed "=", later ones "= v̄ + …")
    partial: np.ndarray | None = None  # ∂source/∂target, in graphs of scalars


@dataclass
class Trace:
    """The table ``gc.trace`` returns: rows in v order, the reverse sweep's steps, and lookups by name.

    ``trace["v1"]``, ``trace["v₋₁"]``, ``trace["x1"]`` (an input's name), ``trace["y"]`` (the output) or
    ``trace[tensor]`` give a TraceRow; ``trace.value(key)``, ``.tangent(key)``, ``.adjoint(key)`` its numbers.
    """

    mode: str
    output: Tensor
    rows: list[TraceRow]
    wrt: Tensor | None = None
    steps: list[AdjointStep] = field(default_factory=list)

    def __getitem__(self, key: Tensor | str) -> TraceRow:
        if isinstance(key, Tensor):
            key = self._row_of(key).name
        plain = str(key).translate(_PLAIN)
        if plain == "y":
            return self._row_of(self.output)
        for row in self.rows:
            if row.name == plain or row.tensor.name == key:
                return row
        raise NotFoundError(f"the trace has no row {key!r}; rows: {', '.join(r.name for r in self.rows)}")

    def __iter__(self) -> Iterator[TraceRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def value(self, key: Tensor | str) -> np.ndarray:
        return self[key].value

    def tangent(self, key: Tensor | str) -> np.ndarray | None:
        return self[key].tangent

    def adjoint(self, key: Tensor | str) -> np.ndarray | None:
        return self[key].adjoint

    @property
    def inputs(self) -> list[TraceRow]:
        return [row for row in self.rows if row.is_input]

    def _row_of(self, tensor: Tensor) -> TraceRow:
        for row in self.rows:
            if row.tensor is tensor:
                return row
        raise NotFoundError(f"'{tensor.name}' is not in the trace of '{self.output.name}'; "
                            f"rows: {', '.join(r.name for r in self.rows)}")

    def primal_text(self) -> str:
        """The forward primal trace, as printed."""
        return _primal_section(self)

    def tangent_text(self) -> str:
        """The forward tangent trace (mode="forward" with wrt), as printed."""
        if self.mode != "forward" or self.wrt is None:
            raise ArgumentError("this trace has no tangents: use gc.trace(y, feed_dict, mode='forward', wrt=x)")
        return _tangent_section(self)

    def adjoint_text(self) -> str:
        """The reverse adjoint trace (mode="reverse"), as printed."""
        if self.mode != "reverse":
            raise ArgumentError("this trace has no adjoints: use gc.trace(y, feed_dict, mode='reverse')")
        return _adjoint_section(self)

    def __str__(self) -> str:
        sections = [self.primal_text()]
        if self.mode == "forward" and self.wrt is not None:
            sections.append(self.tangent_text())
        if self.mode == "reverse":
            sections.append(self.adjoint_text())
        return "\n\n".join(sections)

    __repr__ = __str__


def trace(y: Tensor, feed_dict: Mapping[Any, Any] | None = None, mode: str = "forward", wrt: Tensor | None = None,
          session: Any = None) -> Trace:
    """The evaluation trace of ``y`` at the fed values, as a printable, indexable table.

    ``mode="forward"``: the primal trace, and with ``wrt=x`` (an input or any tensor y depends on) the
    tangent trace of ∂/∂x. ``mode="reverse"``: the primal trace and the adjoint trace of ȳ = 1, with the
    sweep's steps. ``session`` (default: a new Session) supplies variables' values.
    """
    if not isinstance(y, Tensor):
        raise GradientError(f"gc.trace: y must be a tensor, got {y!r}")
    if mode not in MODES:
        raise ArgumentError(f"gc.trace: mode must be one of {MODES}, got {mode!r}")
    tensors, names = _number(y)
    if wrt is not None and wrt not in names:
        raise GradientError(f"gc.trace: wrt '{getattr(wrt, 'name', wrt)}' is not a tensor that "
                            f"'{y.name}' depends on")
    if wrt is not None and wrt.dtype not in FLOATS:
        raise GradientError(f"gc.trace: wrt '{wrt.name}' is {wrt.type}; derivatives need a float tensor")
    builder = _Builder(y, tensors, names)
    with y.graph.as_default(), y.graph.name_scope("trace"):
        if mode == "forward" and wrt is not None:
            builder.add_tangents(wrt)
            builder.add_partials()
        if mode == "reverse":
            builder.add_adjoints()
            builder.add_partials()
    results = builder.run(feed_dict, session)
    return Trace(mode, y, builder.rows(results), wrt, builder.steps(results))


def _number(y: Tensor) -> tuple[list[Tensor], dict[Tensor, str]]:
    """Every tensor of the trace in v order, and its name: inputs v₁₋ₙ … v₀, then op outputs v₁ … vₘ.

    Ops are ordered by depth (the longest path from an input or constant), ties in creation order — a
    topological order that numbers ``ln x1 + x1*x2 - sin x2`` as the lecture does (sin before the +).
    """
    nodes = sorted(ancestors([y]), key=lambda n: n.index)
    depth: dict = {}
    for node in nodes:
        depth[node] = 1 + max((depth[t.node] for t in node.inputs), default=-1)
    inputs = [n.outputs[0] for n in nodes if n.op in (PLACEHOLDER, VARIABLE)]
    ops = sorted((n for n in nodes if n.op not in (PLACEHOLDER, VARIABLE, CONSTANT)), key=lambda n: (depth[n], n.index))
    tensors = inputs + [t for n in ops for t in n.outputs]
    first = 1 - len(inputs)
    return tensors, {t: f"v{first + i}" for i, t in enumerate(tensors)}


class _Builder:
    """Adds the derivative nodes a trace needs and remembers where each value sits in one fetch list."""

    def __init__(self, y: Tensor, tensors: list[Tensor], names: dict[Tensor, str]) -> None:
        self.y, self.tensors, self.names = y, tensors, names
        self.fetches: list[Tensor] = list(tensors)
        self.tangents: dict[Tensor, int] | None = None  # tensor -> slot of its tangent, once asked for
        self.adjoints: dict[Tensor, int] | None = None
        self.partials: dict[tuple[Tensor, int], int] = {}  # (tensor, input position) -> slot of ∂t/∂input
        self.contributions: list[tuple[Tensor, int, int]] = []  # (source, input position, slot), sweep order
        self.scalar = all(t.shape == () for t in tensors)

    def _slot(self, tensor: Tensor) -> int:
        self.fetches.append(tensor)
        return len(self.fetches) - 1

    def _floats(self) -> list[Tensor]:
        return [t for t in self.tensors if t.dtype in FLOATS]

    def add_tangents(self, wrt: Tensor) -> None:
        floats = self._floats()
        self.tangents = {t: self._slot(tangent) for t, tangent in zip(floats, jvp(floats, [wrt], [ew.ones_like(wrt)]))}

    def add_adjoints(self) -> None:
        floats = self._floats()
        totals = dict(zip(floats, gradients(self.y, floats, unconnected="none")))
        self.adjoints = {t: self._slot(total) for t, total in totals.items() if total is not None}
        for source in reversed(floats):  # the sweep: each op's vjp applied to its output's adjoint
            if totals[source] is None or source.node.op in (PLACEHOLDER, VARIABLE) or len(source.node.outputs) > 1:
                continue
            for position, part in enumerate(_call_vjp(source.node, [totals[source]])):
                target = source.node.inputs[position]
                if part is not None and target in self.names and target.dtype in FLOATS:
                    self.contributions.append((source, position, self._slot(part)))

    def add_partials(self) -> None:
        """∂v/∂operand for every op input that is a float v, from the vjp of a cotangent 1 (scalar graphs)."""
        if not self.scalar:
            return
        for t in self._floats():
            node = t.node
            if node.op in (PLACEHOLDER, VARIABLE) or len(node.outputs) > 1 or node.op.vjp is None:
                continue
            for position, part in enumerate(_call_vjp(node, [ew.ones_like(t)])):
                if part is not None and node.inputs[position] in self.names and node.inputs[position].dtype in FLOATS:
                    self.partials[(t, position)] = self._slot(part)

    def run(self, feed_dict: Mapping[Any, Any] | None, session: Any) -> list[np.ndarray]:
        if session is not None:
            return session.run(self.fetches, feed_dict)
        from graphc.runtime.session import Session  # the runtime runs graphs; it does not import autodiff

        with Session(self.y.graph) as own:
            return own.run(self.fetches, feed_dict)

    def rows(self, results: list[np.ndarray]) -> list[TraceRow]:
        rows = []
        for i, t in enumerate(self.tensors):
            operands = () if t.node.op in (PLACEHOLDER, VARIABLE) else tuple(self.names.get(x) for x in t.node.inputs)
            partials = tuple(results[self.partials[(t, k)]] if (t, k) in self.partials else None
                             for k in range(len(operands))) if self.partials else ()
            value = np.asarray(results[i])
            rows.append(TraceRow(self.names[t], t, _expression(t, self.names), value, operands,
                                 _at(results, self.tangents, t, value), _at(results, self.adjoints, t, value),
                                 partials))
        return rows

    def steps(self, results: list[np.ndarray]) -> list[AdjointStep]:
        steps, totals = [], {}
        for source, position, slot in self.contributions:
            target = source.node.inputs[position]
            contribution = np.asarray(results[slot])
            first = target not in totals
            totals[target] = contribution if first else totals[target] + contribution
            partial = results[self.partials[(source, position)]] if (source, position) in self.partials else None
            steps.append(AdjointStep(self.names[target], self.names[source], contribution, totals[target], first,
                                     partial))
        return steps


def _at(results: list, slots: dict[Tensor, int] | None, t: Tensor, value: np.ndarray) -> np.ndarray | None:
    """The fetched derivative of t; zeros for a float t that received none; None when the mode has none."""
    if slots is None or t.dtype not in FLOATS:
        return None
    return np.asarray(results[slots[t]]) if t in slots else np.zeros_like(value)


def _expression(t: Tensor, names: dict[Tensor, str]) -> str:
    """``ln v₋₁``, ``v₋₁ × v₀``, ``reduce_sum(v₁, axis=(0,))``; an input's expression is its own name."""
    node = t.node
    if node.op in (PLACEHOLDER, VARIABLE):
        return pretty(node.name)
    operands = [pretty(names[x]) if x in names else _literal(x) for x in node.inputs]
    template = _FORMATS.get(node.op)
    if template is not None:
        text = template.format(*operands)
    else:
        attrs = [f"{k}={_attr(v)}" for k, v in sorted(node.attrs.items()) if _attr(v) is not None]
        text = f"{node.op.name}({', '.join(operands + attrs)})"
    return text if len(node.outputs) == 1 else f"{text}[{t.index}]"


def _literal(x: Tensor) -> str:
    """A constant as it appears in an expression: its value when scalar, else its name."""
    if x.node.op is CONSTANT and x.shape == ():
        text = format_number(x.node.attrs["value"])
        return f"({text})" if text.startswith("-") else text
    return x.name


def _attr(value: Any) -> str | None:
    if isinstance(value, (bool, int, float, str)) or (isinstance(value, tuple) and len(value) <= 8):
        return repr(value)
    return None


def pretty(name: str) -> str:
    """``v-1`` → ``v₋₁``, ``x1`` → ``x₁``: a name of letters then digits gets its digits as subscripts."""
    match = re.fullmatch(r"([A-Za-z]+)(-?\d+)", name)
    return match.group(1) + match.group(2).translate(_SUBSCRIPTS) if match else name


def marked(name: str, mark: str) -> str:
    """The pretty name with a combining mark over its letter: ``v̇₋₁``, ``x̄₁``, ``ȳ`` (long names: last letter)."""
    shown = pretty(name)
    match = re.fullmatch(r"(.*?)([₋₀₁₂₃₄₅₆₇₈₉]*)", shown)
    return unicodedata.normalize("NFC", match.group(1) + mark + match.group(2))  # ẋ, ȳ precomposed


def format_number(value: Any) -> str:
    """A value as the lecture prints it: 3 decimals, trailing zeros dropped (``0.693``, ``10``, ``5.5``);
    a tensor elementwise (``[2, -0.959]``)."""
    array = np.asarray(value)
    if array.shape != ():
        return np.array2string(array, separator=", ", threshold=64, max_line_width=10**6,
                               formatter={"all": format_number})
    if array.dtype == bool or array.dtype.kind in "iu":
        return str(array.item())
    number = float(array)
    if not np.isfinite(number):
        return str(number)
    text = f"{number:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# -- printing ---------------------------------------------------------------------------------------------
def _table(title: str, blocks: list[list[tuple[str, ...]]]) -> str:
    """Rows of (left side, expression, values…) aligned on their ``=`` signs; a rule between blocks."""
    rows = [row for block in blocks for row in block]
    widths = [max((_width(row[i]) for row in rows if len(row) > i), default=0) for i in range(2)]
    texts = [[_line(row, widths) for row in block] for block in blocks if block]
    rule = "  " + "─" * max(_width(line) - 2 for block in texts for line in block)
    lines = [title]
    for number, block in enumerate(texts):
        lines += [rule] * bool(number) + block
    return "\n".join(lines)


def _width(text: str) -> int:
    """Columns on screen: combining marks (the dot and bar over v) take none."""
    return sum(not unicodedata.combining(c) for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _line(row: tuple[str, ...], widths: list[int]) -> str:
    left = f"  {_pad(row[0], widths[0])} = {_pad(row[1], widths[1])}"
    return " = ".join([left, *(cell for cell in row[2:] if cell)]).rstrip()


def _operand_text(value: np.ndarray) -> str:
    text = format_number(value)
    return f"({text})" if text.startswith("-") else text


def _substituted(trace: Trace, row: TraceRow) -> str:
    """The expression with operand values in place of the v's (graphs of scalars, known templates only)."""
    template = _FORMATS.get(row.tensor.node.op)
    if template is None or row.value.shape != () or len(row.tensor.node.outputs) > 1:
        return ""
    values = [_operand_text(trace[name].value) if name else _literal(x)
              for name, x in zip(row.operands, row.tensor.node.inputs)]
    return template.format(*values)


def _primal_section(trace: Trace) -> str:
    inputs = [(pretty(r.name), r.expression, format_number(r.value)) for r in trace.inputs]
    ops = [(pretty(r.name), r.expression, _substituted(trace, r), format_number(r.value))
           for r in trace.rows if not r.is_input]
    output = trace["y"]
    return _table("Forward primal trace", [inputs, ops, [("y", pretty(output.name), format_number(output.value))]])


def _tangent_section(trace: Trace) -> str:
    inputs = [(marked(r.name, DOT), marked(r.tensor.node.name, DOT), format_number(r.tangent))
              for r in trace.inputs]
    ops = []
    for r in trace.rows:
        if r.is_input or r.tangent is None:
            continue
        positions = _derivative_positions(r)
        symbols = " + ".join(f"{marked(r.operands[k], DOT)} ∂{pretty(r.name)}/∂{pretty(r.operands[k])}"
                             for k in positions) or "0"
        numbers = " + ".join(f"{format_number(trace[r.operands[k]].tangent)} × {_operand_text(r.partials[k])}"
                             for k in positions) if r.partials and positions else ""
        ops.append((marked(r.name, DOT), symbols, numbers, format_number(r.tangent)))
    output = trace["y"]
    title = f"Forward tangent trace (∂/∂{pretty(trace[trace.wrt].tensor.node.name)})"
    return _table(title, [inputs, ops, [(marked("y", DOT), marked(output.name, DOT), format_number(output.tangent))]])


def _derivative_positions(row: TraceRow) -> list[int]:
    """The inputs of row's op through which a derivative flows: float v's (with a partial, when known)."""
    return [k for k, name in enumerate(row.operands) if name is not None and row.tensor.node.inputs[k].dtype in FLOATS
            and (not row.partials or row.partials[k] is not None)]


def _adjoint_section(trace: Trace) -> str:
    output = trace["y"]
    seed = [(marked(output.name, BAR), marked("y", BAR), format_number(output.adjoint))]
    sweep, running = [], {}
    for step in trace.steps:
        target, source = marked(step.target, BAR), marked(step.source, BAR)
        partial = f"∂{pretty(step.source)}/∂{pretty(step.target)}"
        symbols = f"{source} {partial}" if step.first else f"{target} + {source} {partial}"
        numbers = ""
        if step.partial is not None:
            numbers = f"{format_number(trace[step.source].adjoint)} × {_operand_text(step.partial)}"
            numbers = numbers if step.first else f"{format_number(running[step.target])} + {numbers}"
        running[step.target] = step.total
        sweep.append((target, symbols, numbers, format_number(step.total)))
    inputs = [(marked(r.tensor.node.name, BAR), marked(r.name, BAR), format_number(r.adjoint)) for r in trace.inputs]
    return _table(f"Reverse adjoint trace (ȳ = {format_number(output.adjoint)})", [seed, sweep, inputs])
