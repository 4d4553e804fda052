"""Expression swell: sympy's derivative of the lecture's nested tanh grows much faster than the AD graph.

The lecture notes' "vanishing gradients" example is z = 0.2 tanh(3x + 2y) − 0.3 tanh(5x − 3y). Depth d
nests the same pattern d times, z₀ = x and z_k = 0.2 tanh(3 z_{k−1} + 2y) − 0.3 tanh(5 z_{k−1} − 3y), so
z₁ is the lecture's z. Written out as a tree, z_d holds z_{d−1} twice, and its derivative holds both
z_{d−1} and ∂z_{d−1}: sympy's raw derivative roughly doubles per level, while the graph (which shares
z_{d−1}) and the AD graph built on it grow by a constant number of nodes per level — as does sympy's
derivative after ``cse``, which recovers the sharing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from graphc.graph.graph import Graph
from graphc.graph.node import Tensor
from graphc.ops.elementwise import tanh
from graphc.ops.sources import placeholder
from graphc.symbolic.compare import METHODS, CompareReport, compare, format_table

__all__ = ["SwellTable", "nested_tanh", "swell_table"]


def nested_tanh(x: Tensor, y: Tensor, depth: int) -> Tensor:
    """The lecture's z = 0.2 tanh(3x + 2y) − 0.3 tanh(5x − 3y), with x replaced by z itself depth − 1 times."""
    z = x
    for _ in range(depth):
        z = 0.2 * tanh(3 * z + 2 * y) - 0.3 * tanh(5 * z - 3 * y)
    return z


@dataclass(frozen=True)
class SwellTable:
    """``compare``'s report of ∂z/∂x for each depth (``reports[i]`` is depth ``depths[i]``)."""

    depths: tuple[int, ...]
    reports: tuple[CompareReport, ...]
    point: tuple[float, float]  # the values of x and y

    def sizes(self, method: str) -> list[int]:
        """The derivative's size by depth: sympy ops or graph nodes (``method`` from ``METHODS``)."""
        return [report.row("x", method).size for report in self.reports]

    def column(self, method: str, field: str) -> list[float]:
        """One field of ``CompareRow`` (``build_s``, ``eval_s``, ``max_error``) by depth."""
        return [getattr(report.row("x", method), field) for report in self.reports]

    def __str__(self) -> str:
        return "\n\n".join([self._sizes(), self._times(), self._errors()])

    def _rows(self) -> list[tuple[int, CompareReport, dict]]:
        return [(d, r, {m: r.row("x", m) for m in METHODS}) for d, r in zip(self.depths, self.reports)]

    def _sizes(self) -> str:
        header = ["depth", "z: sympy ops", "z: graph nodes", "∂ sympy raw", "∂ sympy cse", "∂ reverse nodes",
                  "∂ forward nodes", "raw / reverse"]
        lines = [[str(d), str(r.sympy_y_ops), str(r.graph_y_nodes), *(str(rows[m].size) for m in METHODS[:4]),
                  f"{rows['sympy'].size / rows['reverse'].size:.1f}"] for d, r, rows in self._rows()]
        return "Sizes of ∂z/∂x (sympy: count_ops; graphs: op nodes)\n" + format_table(header, lines)

    def _times(self) -> str:
        header = ["depth", *(f"build ms {_SHORT[m]}" for m in METHODS[:4]), *(f"eval µs {_SHORT[m]}" for m in METHODS)]
        lines = [[str(d), *(f"{rows[m].build_s * 1e3:.1f}" for m in METHODS[:4]),
                  *(f"{rows[m].eval_s * 1e6:.0f}" for m in METHODS)] for d, _, rows in self._rows()]
        return "Times (build: sympy diff [+ cse] + lambdify, or new graph nodes; eval: one run)\n" + \
            format_table(header, lines)

    def _errors(self) -> str:
        header = ["depth", "∂z/∂x", *(f"max err {_SHORT[m]}" for m in METHODS)]
        lines = [[str(d), f"{r.exact['x'].item():.15g}", *(f"{rows[m].max_error:.1e}" for m in METHODS)]
                 for d, r, rows in self._rows()]
        x, y = self.point
        return f"Errors against sympy's derivative at 50 digits (x = {x}, y = {y})\n" + format_table(header, lines)


_SHORT = {"sympy": "sympy", "sympy+cse": "cse", "reverse": "rev", "forward": "fwd", "finite differences": "fd"}


def swell_table(depths: Iterable[int] = range(1, 9), x_value: float = 0.3, y_value: float = -0.2,
                repeats: int = 3) -> SwellTable:
    """``compare`` on ∂z/∂x of ``nested_tanh`` at each depth, each in a new float64 graph."""
    depths = tuple(depths)
    reports = []
    for depth in depths:
        with Graph().as_default():
            x, y = placeholder("float64", (), name="x"), placeholder("float64", (), name="y")
            z = nested_tanh(x, y, depth)
            reports.append(compare(z, [x], {x: x_value, y: y_value}, repeats=repeats))
    return SwellTable(depths, tuple(reports), (x_value, y_value))
