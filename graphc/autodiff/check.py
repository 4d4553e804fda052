"""``gc.check_gradients``: symbolic gradients against float64 central differences, with a readable report.

For outputs y_k and inputs x, the check differentiates the scalar L = Σ_k ⟨w_k, y_k⟩ with fixed random
weights w_k (uniform in [−1, 1), drawn from ``seed``), so a non-scalar y checks its whole vjp, not only
the gradient of its sum. For every element j of every x:

    numeric_j = (L(x + eps·e_j) − L(x − eps·e_j)) / (2·eps)        analytic = gc.gradients(L, x)

and the element passes when |analytic − numeric| ≤ tol · max(1, |numeric|) (NaN never passes).

Inputs are placeholders (perturbed in the feed) or variables (perturbed by running an ``assign`` op the
check adds to the graph, fed through a placeholder; the variable's value is restored afterwards, even if
a run fails). The check adds its nodes (L, its gradient, the assign ops) to the graph, under the name
scope ``check_gradients``, as ``gc.gradients`` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graphc.autodiff.paths import ancestors, between
from graphc.autodiff.reverse import UnconnectedGradientWarning, _as_list, _check_graph, gradients
from graphc.errors import DTypeError, GradientError, NotFoundError
from graphc.graph.dtypes import FLOATS
from graphc.graph.node import Tensor
from graphc.ops.elementwise import add, mul
from graphc.ops.reduce import reduce_sum
from graphc.ops.sources import PLACEHOLDER, constant, placeholder
from graphc.ops.state import VARIABLE, assign


@dataclass(frozen=True)
class InputCheck:
    """The check of one input: both gradients, elementwise errors, and the worst element (the one with the
    largest |a − n| / max(1, |n|), which the printed table shows)."""

    name: str
    tensor: Tensor
    analytic: np.ndarray
    numeric: np.ndarray
    tol: float

    @property
    def abs_error(self) -> np.ndarray:
        return np.abs(self.analytic - self.numeric)

    @property
    def rel_error(self) -> np.ndarray:
        """|a − n| / max(|a|, |n|), 0 where both are 0."""
        scale = np.maximum(np.abs(self.analytic), np.abs(self.numeric))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(scale > 0, self.abs_error / np.where(scale > 0, scale, 1), 0.0)

    @property
    def scaled_error(self) -> np.ndarray:
        """What the tolerance applies to: |a − n| / max(1, |n|), with NaN counted as infinite."""
        scaled = self.abs_error / np.maximum(1.0, np.abs(self.numeric))
        return np.where(np.isnan(scaled), np.inf, scaled)

    @property
    def worst_index(self) -> tuple | None:
        """The index of the element furthest outside (or nearest to) the tolerance; None for no elements."""
        if self.analytic.size == 0:
            return None
        return tuple(int(i) for i in np.unravel_index(np.argmax(self.scaled_error), self.analytic.shape))

    @property
    def worst_analytic(self) -> float | None:
        return None if self.worst_index is None else float(self.analytic[self.worst_index])

    @property
    def worst_numeric(self) -> float | None:
        return None if self.worst_index is None else float(self.numeric[self.worst_index])

    @property
    def worst_abs_error(self) -> float | None:
        return None if self.worst_index is None else float(self.abs_error[self.worst_index])

    @property
    def worst_rel_error(self) -> float | None:
        return None if self.worst_index is None else float(self.rel_error[self.worst_index])

    @property
    def max_abs_error(self) -> float:
        return float(np.max(np.where(np.isnan(self.abs_error), np.inf, self.abs_error), initial=0.0))

    @property
    def max_rel_error(self) -> float:
        return float(np.max(np.where(np.isnan(self.rel_error), np.inf, self.rel_error), initial=0.0))

    @property
    def ok(self) -> bool:
        return bool(np.all(self.scaled_error <= self.tol))


class GradientCheckReport:
    """The result of ``gc.check_gradients``: ``report.ok``, ``report[x]`` (an InputCheck), and a table."""

    def __init__(self, checks: list[InputCheck], eps: float, tol: float) -> None:
        self.checks = checks
        self.eps = eps
        self.tol = tol

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def __bool__(self) -> bool:
        return self.ok

    def __len__(self) -> int:
        return len(self.checks)

    def __iter__(self) -> Iterator[InputCheck]:
        return iter(self.checks)

    def __getitem__(self, key: Tensor | str | int) -> InputCheck:
        """The check of an input, given as its tensor, its name, or its position in ``xs``."""
        if isinstance(key, int):
            return self.checks[key]
        for check in self.checks:
            if check.tensor is key or check.name == key:
                return check
        raise NotFoundError(f"no input {getattr(key, 'name', key)!r} was checked; "
                            f"checked: {', '.join(c.name for c in self.checks)}")

    def __str__(self) -> str:
        failed = sum(not c.ok for c in self.checks)
        verdict = "ok" if not failed else f"FAILED ({failed} of {len(self.checks)} inputs wrong)"
        header = f"check_gradients: eps={self.eps:g}, tol={self.tol:g}: {verdict}"
        columns = ("input", "shape", "worst index", "analytic", "numeric", "abs error", "rel error", "result")
        rows = [columns] + [_row(c) for c in self.checks]
        widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
        lines = ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join([header, *lines])

    __repr__ = __str__


def _row(check: InputCheck) -> tuple[str, ...]:
    shape = str(tuple(check.analytic.shape))
    if check.worst_index is None:
        return (check.name, shape, "-", "-", "-", "-", "-", "ok")
    return (check.name, shape, str(check.worst_index), f"{check.worst_analytic:.10g}", f"{check.worst_numeric:.10g}",
            f"{check.worst_abs_error:.2e}", f"{check.worst_rel_error:.2e}", "ok" if check.ok else "FAIL")


def check_gradients(ys: Tensor | Sequence[Tensor], xs: Tensor | Sequence[Tensor], feed_dict: Mapping[Any, Any],
                    eps: float = 1e-6, tol: float = 1e-5, session: Any = None, seed: int = 0) -> GradientCheckReport:
    """Compare ``gc.gradients`` with float64 central differences for each x in ``xs``; return a report.

    ``xs`` are placeholders fed in ``feed_dict`` or variables (read from and restored in ``session``, by
    default a new Session of the graph). Every float tensor between xs and ys must be float64.
    A wrong gradient makes ``report.ok`` False; it does not raise.
    """
    ys, xs = _as_list(ys, "ys"), _as_list(xs, "xs")
    graph = _check_graph(ys + xs)
    _check_checkable(ys, xs)
    feeds = {graph.get(k) if isinstance(k, str) else k: v for k, v in (feed_dict or {}).items()}
    for x in xs:
        if x.node.op is PLACEHOLDER and x not in feeds:
            raise GradientError(f"check_gradients: placeholder '{x.name}' is checked but not in feed_dict")
    own_session = session is None
    if own_session:
        from graphc.runtime.session import Session  # the runtime runs graphs; it does not import autodiff

        session = Session(graph)
    try:
        return _run_check(session, ys, xs, feeds, eps, tol, np.random.default_rng(seed))
    finally:
        if own_session:
            session.close()


def _run_check(session, ys, xs, feeds, eps, tol, rng) -> GradientCheckReport:
    graph = ys[0].graph
    values = session.run(ys, feeds)
    with graph.as_default(), graph.name_scope("check_gradients"):
        terms = [reduce_sum(mul(y, constant(rng.uniform(-1, 1, np.shape(v))))) for y, v in zip(ys, values)]
        loss = terms[0]
        for term in terms[1:]:
            loss = add(loss, term)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnconnectedGradientWarning)  # zeros are the right answer there
            analytic = session.run(gradients(loss, xs), feeds)
        movers = [_Mover(session, x, feeds) for x in xs]
    checks = []
    for x, gradient, mover in zip(xs, analytic, movers):
        numeric = mover.central_differences(lambda: session.run(loss, feeds), eps)
        checks.append(InputCheck(x.name, x, np.asarray(gradient, dtype=np.float64), numeric, tol))
    return GradientCheckReport(checks, eps, tol)


class _Mover:
    """Moves one input's value element by element: in the feed (placeholder) or by an assign op (variable)."""

    def __init__(self, session, x: Tensor, feeds: dict) -> None:
        self.session, self.x, self.feeds = session, x, feeds
        if x.node.op is VARIABLE:
            self.value_in = placeholder("float64", x.shape, name=f"{x.node.name.replace('/', '_')}_value")
            self.setter = assign(x, self.value_in)
            self.original = np.array(session.run(x), dtype=np.float64)
        else:
            self.original = np.array(feeds[x], dtype=np.float64)

    def set(self, value: np.ndarray) -> None:
        if self.x.node.op is VARIABLE:
            self.session.run(self.setter, {self.value_in: value})
        else:
            self.feeds[self.x] = value

    def central_differences(self, evaluate, eps: float) -> np.ndarray:
        result = np.zeros_like(self.original)
        try:
            for index in np.ndindex(self.original.shape):
                moved = self.original.copy()
                moved[index] += eps
                self.set(moved)
                up = evaluate()
                moved[index] -= 2 * eps
                self.set(moved)
                result[index] = (up - evaluate()) / (2 * eps)
        finally:
            self.set(self.original)
        return result


def _check_checkable(ys: list[Tensor], xs: list[Tensor]) -> None:
    for x in xs:
        if x.node.op not in (PLACEHOLDER, VARIABLE):
            raise GradientError(f"check_gradients: '{x.name}' is a {x.node.op.name} node (created at "
                                f"{x.node.source}); only placeholders and variables can be perturbed")
    for y in ys:
        if y.dtype not in FLOATS:
            raise DTypeError(f"check_gradients: '{y.name}' is {y.type} (created at {y.node.source}); only float "
                             "tensors have derivatives")
    for t in xs + ys + [t for node in between(xs, ys) for t in node.outputs if t.dtype in FLOATS]:
        if t.dtype != "float64":
            raise DTypeError(
                f"check_gradients needs float64 between xs and ys, but '{t.name}' is {t.type} (created at "
                f"{t.node.source}): central differences divide a change in y by 2·eps, so float32 rounding "
                f"(about 1e-7 of |y|) would give errors near |y|·1e-7/eps — larger than the tolerance — and "
                "hide the mistakes the check is for; build the graph (placeholders, variables, constants) in "
                "float64")
    for node in ancestors(ys):
        if node.op.random:
            raise GradientError(f"check_gradients: the ys depend on {node.op.name} '{node.name}' (created at "
                                f"{node.source}), which draws new numbers every run, so finite differences "
                                "would measure the noise; feed the random values through a placeholder")
