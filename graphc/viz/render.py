"""``gc.viz.render``: a graph drawn to a file — ``.svg`` or ``.png`` (laid out by Graphviz's ``dot``
program), ``.html`` (the interactive page of graphc/viz/html.py), or ``.dot``/``.gv`` (the DOT source).

Graphviz does the layout: the Python ``graphviz`` package (a dependency of graphc) runs the ``dot``
program, which is a system package (``apt-get install graphviz``, ``brew install graphviz``). When it is
missing, ``render`` raises ``GraphvizNotFound`` saying how to install it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from graphc.errors import ArgumentError, GraphcError
from graphc.viz.dot import as_stage, dot_source

FORMATS = (".svg", ".png", ".html", ".dot", ".gv")
INSTALL_HINT = ("install Graphviz: `apt-get install graphviz` on Debian/Ubuntu, `brew install graphviz` on "
                "macOS, or see https://graphviz.org/download/; the .dot source needs no Graphviz: "
                "gc.viz.dot(...) or render(..., 'graph.dot')")


class GraphvizNotFound(GraphcError, RuntimeError):
    """Graphviz's ``dot`` program, which lays graphs out, is not installed (or not on PATH)."""


class GraphvizFailed(GraphcError, RuntimeError):
    """The ``dot`` program ran but failed (a graph too large for it, or a Graphviz bug)."""


def render(target: Any, path: str | os.PathLike, stage: str | tuple[str, ...] | None = None) -> Path:
    """Draw ``target`` (as for ``gc.viz.dot``) to ``path``; the suffix picks the format.

    ``stage`` picks a stage of a graph or tensors ("raw", "grad", "optimized", "kernels"). For ``.html`` it
    may be a tuple of stages, e.g. ``("grad", "optimized")``: one page holding each, with a toggle between
    them. Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ArgumentError(f"gc.viz.render: cannot write {path.name!r}; the formats are {', '.join(FORMATS)}")
    stages = stage if isinstance(stage, (tuple, list)) else (stage,)
    if len(stages) != 1 and suffix != ".html":
        raise ArgumentError(f"gc.viz.render: several stages {tuple(stages)} need an .html page (with a toggle); "
                         f"{suffix} holds one drawing")
    views = [as_stage(target, name) for name in stages]
    if suffix == ".html":
        from graphc.viz.html import page

        path.write_text(page(views), encoding="utf-8")
    elif suffix in (".dot", ".gv"):
        path.write_text(dot_source(views[0]), encoding="utf-8")
    else:
        path.write_bytes(layout(dot_source(views[0]), suffix[1:]))
    return path


def layout(source: str, fmt: str = "svg") -> bytes:
    """``dot -T<fmt>`` of ``source``: the drawing, laid out by Graphviz."""
    import graphviz

    try:
        return graphviz.pipe("dot", fmt, source.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFound(f"gc.viz.render needs Graphviz's `dot` program to lay graphs out, and it is "
                               f"not on PATH; {INSTALL_HINT}") from None
    except graphviz.CalledProcessError as error:
        stderr = (error.stderr or b"").decode("utf-8", "replace").strip()
        raise GraphvizFailed(f"Graphviz's `dot -T{fmt}` failed (exit status {error.returncode}): {stderr}") from None
