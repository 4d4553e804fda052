"""Session: holds variable values, validates feeds, compiles each run signature once, commits updates.

The Session is the same for every backend; a backend only compiles a plan and runs it. A run can be
observed (``profile=``, ``check_numerics=``) through a run monitor (graphc/runtime/profile.py) that the
backend calls after each node; an unobserved run gets none.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from graphc.backends import DEFAULT_BACKEND, DEFAULT_OPTIMIZE, get_backend
from graphc.errors import ArgumentError, DTypeError, GraphcError, GraphError, NumericsError, ShapeError
from graphc.graph.graph import Graph, get_default_graph
from graphc.graph.node import Node, Tensor
from graphc.graph.types import format_shape
from graphc.passes.pipeline import optimize as optimize_graph
from graphc.runtime.compile_log import log_compile
from graphc.runtime.feeds import check_feeds
from graphc.runtime.fetches import flatten_fetches
from graphc.runtime.numerics import NumericsChecker, check_numerics_requested
from graphc.runtime.optimized import OptimizedExecutable
from graphc.runtime.plan import make_plan
from graphc.runtime.profile import MonitorGroup, Profile, Profiler


class Session:
    """Runs fetches of one graph: ``with gc.Session() as sess: sess.run(loss, feed_dict={x: xb})``."""

    def __init__(self, graph: Graph | None = None, backend: str = DEFAULT_BACKEND, optimize: int | None = None) -> None:
        """``optimize``: 0 runs the graph as built, 1 cheap cleanups, 2 the full pass pipeline (gc.optimize);
        the default is 0 on the numpy backend (the reference runs the graph exactly as written) and 2 on
        compiled backends."""
        self.graph = graph or get_default_graph()
        self.backend_name = backend
        self._backend = get_backend(backend)
        self.optimize = DEFAULT_OPTIMIZE.get(backend, 2) if optimize is None else optimize
        if self.optimize not in (0, 1, 2):
            raise ArgumentError(f"optimize must be 0, 1 or 2, got {optimize!r}")
        self._executables: dict[tuple, Any] = {}
        self._values: dict[Node, np.ndarray] = {}  # variable node -> its current value (owned buffer)
        self._run_count = 0  # advances once per run; random ops draw from (seed, run_count)
        self._closed = False
        self.last_profile: Profile | None = None  # the table of the latest run with profile=True

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called (a closed session cannot run)."""
        return self._closed

    def close(self) -> None:
        """Release variable buffers and compiled code; the session cannot run afterwards."""
        self._values.clear()
        self._executables.clear()
        self._closed = True

    def run(self, fetches: Any, feed_dict: Mapping[Any, Any] | None = None, profile: bool | str = False,
            check_numerics: bool | None = None, on_device: bool = False) -> Any:
        """Evaluate ``fetches`` (tensor, op, or list/tuple/dict of them) and apply the update ops among them.

        Returns numpy arrays (None for ops without a value) in the structure of ``fetches``. Variables read
        in this run see their values from before it; updates commit together at its end.
        ``profile=True`` times the run into ``sess.last_profile`` (``"print"`` prints it too);
        ``check_numerics=True`` (None: GRAPHC_CHECK_NUMERICS) raises ``NumericsError`` at the first value
        holding NaN or Inf, before any variable is updated. See docs/debugging.md.
        ``on_device=True`` (backend "cuda") returns ``DeviceArray``s in GPU memory instead of numpy arrays; feeds
        may be GPU arrays on that backend in any case (docs/backends.md).
        """
        if self._closed:
            raise GraphcError("this Session is closed")
        if profile not in (False, True, "print"):
            raise ArgumentError(f"profile must be True, False or 'print', got {profile!r}")
        if on_device and self.backend_name != "cuda":
            raise ArgumentError(f"on_device=True keeps fetched values in GPU memory: it needs backend 'cuda', this "
                                f"session runs on {self.backend_name!r}")
        targets, rebuild = flatten_fetches(self.graph, fetches)
        check = check_numerics_requested(check_numerics)
        observed = _Observed(bool(profile), check, self.backend_name, self.optimize) if profile or check else None
        options = {"on_device": True} if on_device else {}
        fetched = self._execute(tuple(targets), check_feeds(self.graph, feed_dict), observed, options)
        self._run_count += 1
        if observed is not None and profile:
            self.last_profile = observed.profile()
            if profile == "print":
                print(self.last_profile)
        return rebuild(fetched)

    def _execute(self, targets: tuple[Tensor | Node, ...], feeds: dict[Node, np.ndarray],
                 observed: _Observed | None = None, options: dict[str, Any] | None = None) -> list[Any]:
        """One run at the current run count: initialize what it reads, evaluate, commit its updates."""
        executable = self._executable(targets, feeds)
        self._initialize(executable.plan.variables)  # the user's plan: the variables as the user made them
        if observed is None:
            values, updates = executable.run(feeds, self._values, self._run_count, **(options or {}))
        else:
            values, updates = observed.run(executable, feeds, self._values, self._run_count, options or {})
        self._commit(updates)  # fetched arrays are copies already: a fetched variable shows its value before the run
        return values

    def _executable(self, targets: tuple[Tensor | Node, ...], feeds: dict[Node, np.ndarray]) -> Any:
        fed = frozenset(feeds)
        key = (targets, fed)
        if key not in self._executables:
            reason = self._compile_reason(targets, fed)
            plan = make_plan(self.graph, targets, fed)  # checks feeds and updates on the user's graph
            started = time.perf_counter()
            if self.optimize > 0:
                # verify mode (GRAPHC_VERIFY=1) checks every pass on this first run's own feeds
                first_feeds = {n.outputs[0]: value for n, value in feeds.items()}
                optimized = optimize_graph(targets, level=self.optimize, feed_dict=first_feeds)
                optimizing = time.perf_counter() - started
                self._executables[key] = OptimizedExecutable(plan, optimized, self._backend,
                                                             general=lambda: self._general(plan, targets, first_feeds))
            else:
                optimizing = 0.0
                self._executables[key] = self._backend.compile(plan)
            log_compile(self._executables[key], targets, reason, optimizing)
        return self._executables[key]

    def _general(self, plan: Any, targets: tuple, first_feeds: dict) -> OptimizedExecutable:
        """The run signature compiled without assuming unknown sizes equal (a run's sizes broke that)."""
        started = time.perf_counter()
        optimized = optimize_graph(targets, level=self.optimize, feed_dict=first_feeds,
                                   exclude=("assume_equal_unknown_dims",))
        executable = OptimizedExecutable(plan, optimized, self._backend)
        log_compile(executable, targets, "unknown sizes broadcast at run time", time.perf_counter() - started)
        return executable

    def _compile_reason(self, targets: tuple, fed: frozenset) -> str:
        """Why a run signature needs a new executable (what GRAPHC_LOG=compile prints)."""
        if not self._executables:
            return "first use"
        if any(known_fed == fed for _, known_fed in self._executables):
            return "new fetches"
        if any(known == targets for known, _ in self._executables):
            return "new set of fed placeholders"
        return "new fetches and fed placeholders"

    def compiled(self, fetches: Any, feed_dict: Mapping[Any, Any] | None = None) -> Any:
        """The compiled form of running ``fetches`` with ``feed_dict``'s placeholders fed (compiled now if it
        was not yet): on a compiled backend, with ``partition`` (the kernels), ``program`` and ``loops`` (the
        loop nests) and ``report`` (compile times, disk cache), and the generated code: ``llvm_ir`` (optimized
        for this CPU) on llvm, ``cuda_source`` (CUDA C) on cuda."""
        if self._closed:
            raise GraphcError("this Session is closed")
        targets, _ = flatten_fetches(self.graph, fetches)
        executable = self._executable(tuple(targets), check_feeds(self.graph, feed_dict))
        inner = executable.inner if isinstance(executable, OptimizedExecutable) else executable
        if not hasattr(inner, "program"):
            raise ArgumentError(f"the {self.backend_name} backend compiles nothing; sess.compiled needs a compiled "
                                "backend such as 'llvm'")
        return inner

    def load_variables(self, values: Mapping[Tensor, Any]) -> None:
        """Set variables of this session's graph to ``values`` ({variable: array}), as a checkpoint restore or
        early stopping's "put back the best weights" needs: every value is checked against its variable's
        dtype and shape and copied first, then all are set, so a rejected call changes no variable."""
        if self._closed:
            raise GraphcError("this Session is closed")
        staged = {}
        for variable, value in values.items():
            node = _variable_node(variable, self.graph)
            expected = node.types[0]
            array = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=expected.dtype)
            if array.dtype != np.dtype(expected.dtype):
                raise DTypeError(f"load_variables: variable '{node.name}' is {expected.dtype}, the value is "
                                 f"{array.dtype}")
            if array.shape != expected.shape:
                raise ShapeError(f"load_variables: variable '{node.name}' has shape {format_shape(expected.shape)}, "
                                 f"the value {format_shape(array.shape)}")
            staged[node] = np.array(array, copy=True)
        for node, array in staged.items():
            if node in self._values:  # in place: compiled code may hold the buffer
                np.copyto(self._values[node], array)
            else:
                self._values[node] = array
        self._host_written(staged)

    def _initialize(self, variables: tuple[Node, ...]) -> None:
        """Give each variable that has no value yet its initial value, evaluated as part of the current run
        (same run count), so initializing does not shift the random draws the user's runs see."""
        missing = [node for node in variables if node not in self._values]
        if missing:  # one run for all of them: one compilation, not one per variable
            initial = self._execute(tuple(self.graph.initializers[node] for node in missing), {})
            for node, value in zip(missing, initial):
                self._values[node] = np.array(value, dtype=node.types[0].dtype)

    def _commit(self, updates: dict[Node, np.ndarray]) -> None:
        # every new value was computed before any is written: a failed run leaves all variables untouched
        staged = {node: np.array(value, dtype=node.types[0].dtype) for node, value in updates.items()}
        for node, value in staged.items():
            np.copyto(self._values[node], value)
        self._host_written(staged)

    def _host_written(self, nodes: Collection[Node]) -> None:
        """Tell a backend that keeps copies of the variables (cuda) that the Session wrote these itself."""
        host_written = getattr(self._backend, "host_written", None)
        if host_written is not None and nodes:
            host_written([self._values[node] for node in nodes])


def _variable_node(variable: Any, graph: Graph) -> Node:
    """The node of ``variable`` (a gc.Variable of ``graph``), or a GraphError saying what it is instead."""
    node = variable.node if isinstance(variable, Tensor) else None
    if node is None or node.graph is not graph or node not in graph.initializers:
        raise GraphError(f"load_variables: {variable!r} is not a variable of this session's graph")
    return node


class _Observed:
    """What observes one run (a profiler, a numerics checker, or nothing) and the table it leaves."""

    def __init__(self, profile: bool, check_numerics: bool, backend: str, optimize: int) -> None:
        self._profile, self._check = profile, check_numerics
        self._backend, self._optimize = backend, optimize
        self._profiler: Profiler | None = None
        self._wall = 0.0

    def run(self, executable: Any, feeds: dict, variables: dict, run_count: int, options: dict) -> tuple:
        """Run ``executable`` with a monitor; an optimized copy's nodes map back through its origin and
        are grouped by its partition."""
        optimized = executable.optimized if isinstance(executable, OptimizedExecutable) else None
        monitors: list[Any] = []
        if self._profile:
            partition = optimized.partition if optimized is not None else None
            self._profiler = Profiler(partition, self._backend, self._optimize)
            monitors.append(self._profiler)
        if self._check:
            monitors.append(NumericsChecker(optimized.origin if optimized else None, self._optimize))
        monitor = monitors[0] if len(monitors) == 1 else MonitorGroup(monitors)
        started = time.perf_counter()
        try:
            result = executable.run(feeds, variables, run_count, monitor=monitor, **options)
        except NumericsError as error:
            if self._backend == "numpy":
                raise
            raise self._located(executable, feeds, variables, run_count) or error from None
        self._wall = time.perf_counter() - started
        return result

    @staticmethod
    def _located(executable: Any, feeds: dict, variables: dict, run_count: int) -> NumericsError | None:
        """A compiled backend sees kernel outputs only (a NaN made inside a fused kernel shows up where the
        kernel stores): the same run on the numpy reference, node by node, names the op that made it."""
        try:
            get_backend("numpy").compile(executable.plan).run(feeds, variables, run_count,
                                                              monitor=NumericsChecker(None, 0))
        except NumericsError as error:
            return error
        return None

    def profile(self) -> Profile:
        return self._profiler.profile(self._wall)
