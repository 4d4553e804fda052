"""``compare``: five ways to get ∂y/∂x of an elementwise graph, side by side.

For each x: sympy's closed-form derivative (raw, and after ``sympy.cse``), graphc's reverse mode
(``gc.gradients``), graphc's forward mode (``gc.jvp``) and central finite differences — each with its value,
its largest error against an exact reference (sympy's derivative evaluated with mpmath at 50 digits), its
size (sympy's ``count_ops``; for graphs the op nodes the derivative depends on, placeholders and constants
not counted) and its build and evaluation times. Every method computes ∂(sum of y)/∂x, in x's shape, as
``gc.gradients`` does; the derivative nodes are added to y's graph.
"""

from __future__ import annotations

import functools
import gc as python_gc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import mpmath
import numpy as np
import sympy

from graphc.autodiff import gradients, jvp
from graphc.errors import NotFoundError
from graphc.graph.node import Tensor
from graphc.graph.walk import ancestors
from graphc.ops.elementwise import ones_like
from graphc.ops.sources import CONSTANT, PLACEHOLDER
from graphc.ops.state import VARIABLE
from graphc.runtime import Session
from graphc.symbolic.bridge import SymbolicError, numpy_function, symbol, to_sympy

__all__ = ["METHODS", "CompareReport", "CompareRow", "compare", "graph_size"]

METHODS = ("sympy", "sympy+cse", "reverse", "forward", "finite differences")
_SOURCES = (PLACEHOLDER, CONSTANT, VARIABLE)


@dataclass(frozen=True)
class CompareRow:
    """One method's derivative of y with respect to one x."""

    x: str
    method: str
    value: np.ndarray  # ∂(sum of y)/∂x, in x's shape
    max_error: float  # the largest |value - exact| over x's elements
    size: int  # sympy: count_ops; graphs: op nodes the derivative depends on, as built (before passes)
    build_s: float  # seconds to build the derivative (sympy: diff [+ cse] + lambdify; graphc: new nodes)
    eval_s: float  # seconds for one evaluation (best of a few, after a first, compiling run)


@dataclass(frozen=True)
class CompareReport:
    """The rows of ``compare``, x by x in the order given, each x with the methods in ``METHODS`` order."""

    y: str  # the sympy expression of y
    rows: tuple[CompareRow, ...]
    exact: Mapping[str, np.ndarray]  # x's name -> the reference, rounded to float64
    sympy_y_ops: int
    graph_y_nodes: int

    def row(self, x: Tensor | str, method: str) -> CompareRow:
        """The row of one x (tensor or name) and method."""
        name = x.name if isinstance(x, Tensor) else x
        found = [r for r in self.rows if r.x == name and r.method == method]
        if not found:
            raise NotFoundError(f"no row for x={name!r}, method={method!r}; rows: "
                                f"{', '.join(f'x={r.x!r}, method={r.method!r}' for r in self.rows)}")
        return found[0]

    def __str__(self) -> str:
        header = ["x", "method", "value", "max |error|", "size", "build ms", "eval ms"]
        lines = [[r.x, r.method, _short(r.value), f"{r.max_error:.1e}", str(r.size), f"{r.build_s * 1e3:.2f}",
                  f"{r.eval_s * 1e3:.3f}"] for r in self.rows]
        title = (f"∂/∂x of {_clip(self.y, 100)}\n"
                 f"(that is {self.sympy_y_ops} sympy ops, {self.graph_y_nodes} graph nodes; size = sympy ops or graph "
                 "nodes; error against sympy at 50 digits)")
        return title + "\n" + format_table(header, lines)


def format_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    """Aligned columns: a column of numbers to the right, any other to the left."""
    columns = range(len(header))
    widths = [max(len(row[i]) for row in [header, *lines]) for i in columns]
    numeric = [all(_is_number(row[i]) for row in lines) for i in columns]
    rows = [header, ["-" * w for w in widths], *lines]
    return "\n".join("  ".join(text.rjust(widths[i]) if numeric[i] else text.ljust(widths[i])
                                for i, text in enumerate(row)).rstrip() for row in rows)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _short(value: np.ndarray) -> str:
    if value.ndim == 0:
        return f"{value.item():.12g}"
    first = f"{value.flat[0]:.12g}" if value.size else "(empty)"
    return f"{first} … {value.shape}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def graph_size(tensors: Tensor | Sequence[Tensor]) -> int:
    """The number of op nodes ``tensors`` depend on (placeholders, constants and variables not counted)."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    nodes = {node for t in tensors for node in ancestors([t], control=False)}
    return sum(node.op not in _SOURCES for node in nodes)


# -- compare ------------------------------------------------------------------------------------------------
def compare(y: Tensor, xs: Tensor | Sequence[Tensor], feed_dict: Mapping[Any, Any], *, digits: int = 50,
            repeats: int = 3) -> CompareReport:
    """∂(sum of y)/∂x for each placeholder x in ``xs`` by the five ``METHODS``, at the point ``feed_dict``.

    ``y`` must be an elementwise function of placeholders, variables and constants (``to_sympy``).
    """
    xs = [xs] if isinstance(xs, Tensor) else list(xs)
    for x in xs:
        if x.node.op is not PLACEHOLDER:
            raise SymbolicError(f"compare differentiates with respect to placeholders; '{x.name}' is a "
                                f"{x.node.op.name} node (created at {x.node.source})")
    expr = to_sympy(y)
    _warm_up_lambdify()
    with Session(y.graph, backend="numpy") as session:
        point = _Point(y, expr, session, dict(feed_dict))
        rows = [row for x in xs for row in _rows(point, x, digits, repeats)]
    exact = {x.name: point.exact[x.name] for x in xs}
    return CompareReport(str(expr), tuple(rows), exact, sympy.count_ops(expr), graph_size(y))


@functools.cache
def _warm_up_lambdify() -> None:
    # the first lambdify of a process imports its printers (tens of ms): keep that out of the build times
    numpy_function([sympy.Symbol("x")], sympy.Symbol("x") + 1)


class _Point:
    """y, its sympy expression, and the values of its leaves at the point: what every method shares."""

    def __init__(self, y: Tensor, expr: Any, session: Session, feed_dict: dict[Any, Any]) -> None:
        self.y, self.expr, self.session, self.feed_dict = y, expr, session, feed_dict
        self.leaves = [node.outputs[0] for node in ancestors([y], control=False) if node.op in (PLACEHOLDER, VARIABLE)]
        self.symbols = [symbol(t) for t in self.leaves]
        self.values = [np.asarray(v) for v in session.run(self.leaves, feed_dict)]
        self.y_value = np.asarray(session.run(y, feed_dict))
        self.exact: dict[str, np.ndarray] = {}

    def sympy_value(self, function: Callable[..., Any], x: Tensor) -> np.ndarray:
        """A lambdified derivative evaluated elementwise over y's shape, summed to x's shape."""
        with np.errstate(all="ignore"):  # numpy's select evaluates the branches it does not take
            value = np.asarray(function(*self.values), dtype=np.float64)
        return _sum_to(np.broadcast_to(value, self.y_value.shape), self.value_of(x).shape)

    def value_of(self, x: Tensor) -> np.ndarray:
        return self.values[self.leaves.index(x)] if x in self.leaves else np.asarray(self.feed_dict[x])


class _Measured(NamedTuple):
    value: np.ndarray
    size: int
    build_s: float
    eval_s: float


def _rows(point: _Point, x: Tensor, digits: int, repeats: int) -> list[CompareRow]:
    derivative, diff_s = _timed(lambda: sympy.diff(point.expr, symbol(x)))
    (replacements, reduced), cse_s = _timed(lambda: sympy.cse(derivative, list=False))
    cse_ops = sum(sympy.count_ops(e) for _, e in replacements) + sympy.count_ops(reduced)
    point.exact[x.name] = reference = _exact(point, x, replacements, reduced, digits)
    measured = {
        "sympy": _sympy_method(point, x, derivative, None, sympy.count_ops(derivative), diff_s, repeats),
        "sympy+cse": _sympy_method(point, x, derivative, (replacements, reduced), cse_ops, diff_s + cse_s, repeats),
        "reverse": _graph_method(point, x, lambda: gradients(point.y, x)[0], repeats),
        "forward": _graph_method(point, x, lambda: jvp(point.y, x, ones_like(x))[0], repeats),
        "finite differences": _finite_differences(point, x, repeats),
    }
    return [CompareRow(x.name, method, m.value, float(np.max(np.abs(m.value - reference), initial=0.0)), m.size,
                       m.build_s, m.eval_s) for method, m in measured.items()]


def _sympy_method(point: _Point, x: Tensor, derivative: Any, cse: tuple | None, size: int, diff_s: float,
                  repeats: int) -> _Measured:
    """A sympy derivative (in its cse form when ``cse`` is given), lambdified to numpy."""
    options = {"cse": (lambda _: cse)} if cse is not None else {}
    function, lambdify_s = _timed(lambda: numpy_function(point.symbols, derivative, **options))
    value, eval_s = _best_time(lambda: point.sympy_value(function, x), repeats)
    return _Measured(value, size, diff_s + lambdify_s, eval_s)


def _graph_method(point: _Point, x: Tensor, build: Callable[[], Tensor], repeats: int) -> _Measured:
    """A derivative built with graph ops, run by the session (its result summed to x's shape)."""
    tensor, build_s = _timed(build)
    shape = point.value_of(x).shape
    value, eval_s = _best_time(lambda: _sum_to(point.session.run(tensor, point.feed_dict), shape), repeats)
    return _Measured(value, graph_size(tensor), build_s, eval_s)


def _finite_differences(point: _Point, x: Tensor, repeats: int) -> _Measured:
    """Central differences, every element of x moved at once: y is elementwise, so output element j
    depends only on the element of x that broadcasts to it. Its size is y's (run twice)."""
    at = point.value_of(x).astype(np.float64)
    step = np.cbrt(np.finfo(x.dtype).eps) * np.maximum(1.0, np.abs(at))
    above, below = (at + step).astype(x.dtype), (at - step).astype(x.dtype)
    width = above.astype(np.float64) - below  # the step as x's dtype rounds it

    def evaluate() -> np.ndarray:
        up = point.session.run(point.y, {**point.feed_dict, x: above})
        down = point.session.run(point.y, {**point.feed_dict, x: below})
        return _sum_to((np.asarray(up, np.float64) - down) / width, at.shape)

    value, eval_s = _best_time(evaluate, repeats)
    return _Measured(value, graph_size(point.y), 0.0, eval_s)


def _exact(point: _Point, x: Tensor, replacements: list, reduced: Any, digits: int) -> np.ndarray:
    """The derivative at ``digits`` significant digits with mpmath (its cse form: the same function,
    evaluated faster), summed over y's elements to x's shape, then rounded to float64."""
    function = sympy.lambdify(point.symbols, reduced, "mpmath", cse=lambda _: (replacements, reduced))
    grid = [np.broadcast_to(v, point.y_value.shape) for v in point.values]
    exact = np.empty(point.y_value.shape, dtype=object)
    with mpmath.workdps(digits):
        for index in np.ndindex(point.y_value.shape):
            exact[index] = mpmath.mpf(function(*(mpmath.mpf(float(v[index])) for v in grid)))
        summed = _sum_to(exact, point.value_of(x).shape)
        return np.vectorize(float, otypes=[np.float64])(summed).reshape(summed.shape)


def _sum_to(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` summed over the dimensions broadcasting added to an array of ``shape``."""
    value = np.asarray(value)
    value = value.sum(axis=tuple(range(value.ndim - len(shape)))) if value.ndim > len(shape) else value
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and value.shape[i] != 1)
    return value.sum(axis=axes, keepdims=True) if axes else value


def _timed(function: Callable[[], Any]) -> tuple[Any, float]:
    """The result and the seconds of one call, without garbage collection pauses (as ``timeit``)."""
    collecting = python_gc.isenabled()
    python_gc.disable()
    try:
        start = time.perf_counter()
        result = function()
        return result, time.perf_counter() - start
    finally:
        if collecting:
            python_gc.enable()


def _best_time(function: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """The result and the fastest of ``repeats`` timed calls, after one untimed (compiling) call."""
    result = function()
    return result, min(_timed(function)[1] for _ in range(max(1, repeats)))
