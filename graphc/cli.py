"""The ``graphc`` command: inspect the graph a Python script builds, from the shell.

    graphc dump SCRIPT.py [--stage raw|grad|optimized|kernels|loops] [--no-sources]
    graphc viz SCRIPT.py -o out.html [--stage ...]
    graphc compare SCRIPT.py
    graphc bench [--quick]

A script gives its graph in one of two ways: a ``build()`` function returning the tensors of interest (a
tensor, or a list, tuple or dict of them), or by leaving its nodes in the default graph (then every sink
node is shown). The script runs as a module named ``graphc_script``, not ``__main__``, so code under
``if __name__ == "__main__":`` (a training loop, say) does not run; it runs on a fresh default graph.

Exit codes: 0 success; 1 the script (or its build()) raised — its traceback is printed, starting at the
script's own frames; 2 a usage error: a missing file, no graph, a build() result graphc cannot use.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPT_MODULE = "graphc_script"
_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep
LOOPS = "loops"  # a dump-only stage: the kernels' loop nests (graphc/lower), as text
BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "bench" / "run.py"
COMPARE_CONTRACT = ("build() must return (y, xs, feed_dict) or a dict with the keys 'y', 'xs' and 'feed_dict': "
                    "y a tensor, xs a placeholder or a list of them, feed_dict the point to differentiate at")


class UsageError(Exception):
    """A mistake in how graphc was called or what the script provides (exit code 2)."""


class ScriptError(Exception):
    """The user's script raised while running or in build() (exit code 1); ``error`` is its exception."""

    def __init__(self, where: str, error: BaseException, path: Path) -> None:
        super().__init__(where)
        self.where, self.error, self.path = where, error, path

    def report(self) -> str:
        """The traceback from the script's first frame on (graphc's own frames that called it left out).

        A ``GraphcError`` is graphc refusing what the script built, and its message names the script's
        line: the graphc frames under the script's last one are left out too, and counted."""
        from graphc.errors import GraphcError

        tb = self.error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != str(self.path):
            tb = tb.tb_next
        header = f"graphc: {self.where} raised {type(self.error).__name__}:\n"
        if not isinstance(self.error, GraphcError):
            return header + "".join(traceback.format_exception(type(self.error), self.error, tb)).rstrip("\n")
        frames = traceback.extract_tb(tb)
        shown = [f for f in frames if not f.filename.startswith(_PACKAGE_DIR)] or frames
        hidden = f"  ({len(frames) - len(shown)} frames inside graphc not shown)\n" if len(shown) < len(frames) else ""
        lines = ["Traceback (most recent call last):\n", *traceback.StackSummary.from_list(shown).format(), hidden,
                 *traceback.format_exception_only(type(self.error), self.error)]
        return header + "".join(lines).rstrip("\n")


@dataclass(frozen=True)
class Script:
    """A script after it ran: its module, what its build() returned (None without one), the default graph."""

    path: Path
    module: ModuleType
    built: Any
    has_build: bool
    graph: Any


# -- running the user's script ------------------------------------------------------------------------------
def load_script(path: str | Path) -> Script:
    """Run the script at ``path`` on a fresh default graph, then its ``build()`` if it defines one."""
    import graphc as gc

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such script: {path}")
    path = path.resolve()
    gc.reset_default_graph()
    with _importable(path):
        module = _run_file(path, SCRIPT_MODULE, f"running {path.name}")
        build = getattr(module, "build", None)
        if build is not None and not callable(build):
            raise UsageError(f"{path.name}: 'build' is a {type(build).__name__}, not a function")
        built = _call(build, f"{path.name}: build()", path) if build is not None else None
    return Script(path, module, built, build is not None, gc.get_default_graph())


@contextmanager
def _importable(path: Path) -> Iterator[None]:
    """While the script runs: its directory first on sys.path (as ``python SCRIPT.py`` does) and the
    script in sys.modules (dataclasses and pickling look a module up there)."""
    sys.path.insert(0, str(path.parent))
    try:
        yield
    finally:
        sys.path.remove(str(path.parent))
        sys.modules.pop(SCRIPT_MODULE, None)


def _run_file(path: Path, name: str, where: str) -> ModuleType:
    """Execute a Python file as the module ``name``; its exceptions become a ScriptError."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path} as Python (does its name end in .py?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _call(lambda: spec.loader.exec_module(module), where, path)
    return module


def _call(function: Callable[[], Any], where: str, path: Path) -> Any:
    try:
        return function()
    except Exception as error:  # the user's error: reported with its traceback by main()
        raise ScriptError(where, error, path) from error


def graph_target(script: Script) -> Any:
    """What to show: the tensors build() returned (a dict's values), else the default graph's sinks."""
    from graphc.graph.node import Node, Tensor

    built = script.built
    if built is None:
        if not script.graph.nodes:
            how = "its build() returned None and " if script.has_build else "it defines no build() function and "
            raise UsageError(f"{script.path.name} gives no graph: {how}the default graph is empty. Define "
                             "build() returning the tensors to show, or build the graph in the default graph.")
        return script.graph
    items = list(built.values()) if isinstance(built, dict) else built
    items = list(items) if isinstance(items, (list, tuple)) else [items]
    wrong = [type(item).__name__ for item in items if not isinstance(item, (Tensor, Node))]
    if wrong or not items:
        raise UsageError(f"{script.path.name}: build() must return a tensor or a list, tuple or dict of tensors; "
                         f"it returned {_describe(built)}")
    return items


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        inner = value.values() if isinstance(value, dict) else value
        return f"a {type(value).__name__} of {', '.join(type(v).__name__ for v in inner) or 'nothing'}"
    return f"a {type(value).__name__}"


def compare_arguments(script: Script) -> tuple[Any, Any, Any]:
    """(y, xs, feed_dict) from build()'s result, per ``COMPARE_CONTRACT``."""
    built = script.built
    if isinstance(built, dict):
        missing = {"y", "xs", "feed_dict"} - set(built)
        if missing:
            raise UsageError(f"{script.path.name}: build() returned a dict without {sorted(missing)}; "
                             + COMPARE_CONTRACT)
        return built["y"], built["xs"], built["feed_dict"]
    if isinstance(built, (tuple, list)) and len(built) == 3:
        return tuple(built)
    how = "has no build() function" if not script.has_build else f"build() returned {_describe(built)}"
    raise UsageError(f"{script.path.name} {how}; graphc compare needs one: {COMPARE_CONTRACT}")


# -- subcommands ------------------------------------------------------------------------------------------
def dump(args: argparse.Namespace) -> int:
    """Print the canonical text form of the script's graph at one stage."""
    import graphc as gc

    target = graph_target(load_script(args.script))
    if args.stage == LOOPS:  # after the kernels: the loop nests the compiled backends render
        from graphc.lower.program import lower

        kernels = gc.viz.stage(target, "kernels")
        print(lower(kernels.partition, [t for t in kernels.outputs if isinstance(t, gc.Tensor)]).program)
        return 0
    print(gc.viz.text(gc.viz.stage(target, args.stage), sources=args.sources))
    return 0


def viz(args: argparse.Namespace) -> int:
    """Draw the script's graph to a file with gc.viz.render: .html (interactive), .svg, .png or .dot."""
    import graphc as gc
    from graphc.viz.render import FORMATS

    output = Path(args.output)
    if output.suffix.lower() not in FORMATS:
        raise UsageError(f"cannot write {output.name!r}: the output's suffix picks the format, one of "
                         f"{', '.join(FORMATS)}")
    stages = tuple(args.stage or ())
    if len(stages) > 1 and output.suffix.lower() != ".html":
        raise UsageError(f"several stages ({', '.join(stages)}) need an .html page, which toggles between them")
    target = graph_target(load_script(args.script))
    if len(stages) > 1:
        stage = stages  # one page, a toggle between them
    else:
        stage = stages[0] if stages else None
    written = gc.viz.render(target, output, stage=stage)
    print(f"wrote {written}")
    return 0


def compare(args: argparse.Namespace) -> int:
    """Print gc.symbolic.compare's report for the (y, xs, feed_dict) the script's build() returns."""
    from graphc.symbolic import compare as compare_derivatives

    y, xs, feed_dict = compare_arguments(load_script(args.script))
    print(compare_derivatives(y, xs, feed_dict))
    return 0


def bench(args: argparse.Namespace) -> int:
    """Run tools/bench/run.py of this checkout (it is not installed with the package)."""
    if not BENCH_SCRIPT.is_file():
        raise UsageError(f"graphc bench runs tools/bench/run.py from a graphc source checkout; there is none at "
                         f"{BENCH_SCRIPT} (graphc was installed without its source tree)")
    with _importable(BENCH_SCRIPT):
        module = _run_file(BENCH_SCRIPT, SCRIPT_MODULE, "loading tools/bench/run.py")
        options = ["--quick"] * args.quick + [f"--only={name}" for name in args.only or []] \
            + ([f"--json={args.json}"] if args.json else [])
        try:
            return _call(lambda: module.main(options), "tools/bench/run.py", BENCH_SCRIPT)
        except SystemExit as exit_:  # its own argument errors
            return exit_.code if isinstance(exit_.code, int) else 2


# -- the command line -------------------------------------------------------------------------------------
def _dump_arguments(sub: argparse.ArgumentParser, stages: Sequence[str]) -> None:
    stages = (*stages, LOOPS)
    sub.add_argument("script", metavar="SCRIPT.py")
    sub.add_argument("--stage", choices=stages, default="grad",
                     help="the stage to show: " + ", ".join(stages) + " (default %(default)s)")
    sub.add_argument("--no-sources", dest="sources", action="store_false",
                     help="leave out the file:line column (for diffs that must not depend on line numbers)")


def _viz_arguments(sub: argparse.ArgumentParser, stages: Sequence[str]) -> None:
    sub.add_argument("script", metavar="SCRIPT.py")
    sub.add_argument("-o", "--output", required=True, metavar="OUT",
                     help="the file to write; its suffix picks the format: .html, .svg, .png, .dot")
    sub.add_argument("--stage", choices=stages, action="append",
                     help="the stage to draw (default: gc.viz.render's); give it twice, e.g. --stage grad "
                          "--stage optimized, for an .html page that toggles between the two")


def _compare_arguments(sub: argparse.ArgumentParser, stages: Sequence[str]) -> None:
    sub.add_argument("script", metavar="SCRIPT.py", help=COMPARE_CONTRACT)


def _bench_arguments(sub: argparse.ArgumentParser, stages: Sequence[str]) -> None:
    sub.add_argument("--quick", action="store_true", help="fewer repeats: a few seconds")
    sub.add_argument("--only", metavar="W", action="append", help="run only this workload (W1 to W4; repeatable)")
    sub.add_argument("--json", metavar="PATH", help="also write every number to PATH, as JSON")


# name, what it does, the arguments it takes, whether it runs a script (then its help says how)
COMMANDS = (
    ("dump", dump, "Print the script's graph, one node per line (gc.viz.text).", _dump_arguments, True),
    ("viz", viz, "Draw the script's graph to a file: .html (interactive), .svg, .png or .dot (gc.viz.render).",
     _viz_arguments, True),
    ("compare", compare, "Symbolic (sympy) vs automatic derivatives: gc.symbolic.compare's report.\n"
     + COMPARE_CONTRACT + ".", _compare_arguments, True),
    ("bench", bench, "Time graphc against numpy (and PyTorch, JAX): tools/bench/run.py.", _bench_arguments, False),
)


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``graphc`` and its subcommands."""
    from graphc.viz import STAGES

    raw = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(prog="graphc", description="Inspect, render and benchmark graphc graphs.",
                                  epilog=_SCRIPT_HELP, formatter_class=raw)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, function, summary, add_arguments, runs_script in COMMANDS:
        description = f"{summary}\n\n{_SCRIPT_HELP}" if runs_script else summary
        sub = commands.add_parser(name, help=summary.split("\n")[0], description=description, formatter_class=raw)
        sub.set_defaults(run=function)
        add_arguments(sub, STAGES)
    return top


_SCRIPT_HELP = """\
SCRIPT.py runs as a module named graphc_script (so `if __name__ == "__main__":` blocks do not run) on a
fresh default graph. It gives its graph by defining build(), returning the tensors to show (a tensor, or a
list, tuple or dict of them), or by leaving the nodes in the default graph (all its sinks are shown).
Exit codes: 1 when the script raises (its traceback is printed), 2 for a missing file or no graph."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``graphc`` with ``argv`` (default: the command line); returns the exit code."""
    from graphc.errors import GraphcError

    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a bad argument (argparse printed why)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.run(args)
    except ScriptError as error:
        print(error.report(), file=sys.stderr)
        return 1
    except UsageError as error:
        print(f"graphc {args.command}: error: {error}", file=sys.stderr)
        return 2
    except GraphcError as error:  # graphc refused what the script built (e.g. compare on a matmul)
        print(f"graphc {args.command}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
