"""Running an optimized copy of a graph with the user's feeds and variables.

``gc.optimize`` returns a new graph whose placeholders and variables are copies of the user's. This
wrapper translates feeds and variable values from the user's nodes to the copies before a backend runs
the optimized plan, and translates the variable updates back, so the Session keeps all state keyed by the
user's own nodes. A run monitor (profiling, check_numerics) is passed on as is: it sees the optimized
graph's nodes, and maps them back itself through ``optimized.origin`` and ``optimized.partition``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from graphc.errors import AssumptionError
from graphc.graph.node import Node
from graphc.ops.state import VARIABLE
from graphc.passes.pipeline import Optimized
from graphc.runtime.plan import Plan, make_plan


class OptimizedExecutable:
    """A backend executable of ``optimized``, called with the user's feeds and variables.

    ``general`` builds, when first needed, the executable of a version optimized without assuming unknown
    sizes equal (graphc.passes.simplify ``assume_equal_unknown_dims``): runs whose sizes break the assumption
    (an ``AssumptionError`` before any code runs) use it, and their feed shapes are remembered.
    """

    def __init__(self, plan: Plan, optimized: Optimized, backend: ModuleType,
                 general: Callable[[], OptimizedExecutable] | None = None) -> None:
        self.plan = plan  # the user's plan: what is fed, which variables are read
        self.optimized = optimized
        self._make_general = general
        self._general: OptimizedExecutable | None = None
        self._broken: set[tuple] = set()  # feed shapes that break the assumption
        self._to_user = optimized.sources()
        to_copy = {user: copy for copy, user in self._to_user.items()}
        self._fed = {user: to_copy[user] for user in plan.fed if user in to_copy}
        self._variables = {copy: user for copy, user in self._to_user.items() if copy.op is VARIABLE}
        inner_plan = make_plan(optimized.graph, optimized.outputs, frozenset(self._fed.values()))
        self.inner = backend.compile(inner_plan)

    def run(self, feeds: dict[Node, np.ndarray], variables: dict[Node, np.ndarray], run_count: int,
            monitor: Any = None, **options: Any) -> tuple[list[Any], dict[Node, np.ndarray]]:
        """The backend contract; ``options`` (cuda's ``on_device``) are passed on to the backend."""
        if self._make_general is None:
            return self._run(feeds, variables, run_count, monitor, options)
        if not self._broken or _shapes(feeds) not in self._broken:  # the usual run builds no key
            try:
                return self._run(feeds, variables, run_count, monitor, options)
            except AssumptionError:
                self._broken.add(_shapes(feeds))
        if self._general is None:
            self._general = self._make_general()
        return self._general.run(feeds, variables, run_count, monitor, **options)

    def _run(self, feeds: dict[Node, np.ndarray], variables: dict[Node, np.ndarray], run_count: int,
             monitor: Any, options: dict[str, Any]) -> tuple[list[Any], dict[Node, np.ndarray]]:
        copied_feeds = {copy: feeds[user] for user, copy in self._fed.items()}
        copied_variables = {copy: variables[user] for copy, user in self._variables.items()}
        if monitor is not None:
            options = {**options, "monitor": monitor}
        values, updates = self.inner.run(copied_feeds, copied_variables, run_count, **options)
        return values, {self._variables[copy]: value for copy, value in updates.items()}


def _shapes(feeds: dict[Node, np.ndarray]) -> tuple:
    return tuple(sorted((n.index, np.shape(a)) for n, a in feeds.items()))
