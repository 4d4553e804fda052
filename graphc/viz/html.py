"""The interactive HTML view that ``gc.viz.render(..., "graph.html")`` writes: one self-contained file.

The page holds, for each stage drawn, the SVG that Graphviz laid out from ``gc.viz.dot``'s source, and a
JSON record of every node (op, dtype, shape, attributes, inputs, source line, kernel), cluster (kernel or
name scope, with its members) and edge. A small script (assets/view.js, inlined with assets/view.css) adds
pan (drag), zoom (wheel), collapsing a cluster (click its title), node details (hover, or click to pin) and
a toggle between stages. Nothing is fetched over the network: the file opens anywhere, offline.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

from graphc.graph.node import Node
from graphc.graph.types import format_shape
from graphc.viz.dot import Cluster, cluster_tree, dot_source, edges, node_id, title
from graphc.viz.stages import Stage
from graphc.viz.text import format_attr

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>graphc: {title}</title>
<style>
{css}
</style>
</head>
<body>
<header>
  <strong>graphc</strong>
  <nav id="stages">{buttons}</nav>
  <span id="count"></span>
  <span class="hint">drag: pan · wheel: zoom · double-click: all · click a box's title: fold it ·
    hover or click a node: details</span>
</header>
<main>
  <div id="views">
{views}
  </div>
  <aside id="details"></aside>
</main>
<script type="application/json" id="graphc-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


def page(views: list[Stage]) -> str:
    """The HTML page for ``views`` (the first shown; a button per view switches between them)."""
    from graphc.viz.render import layout

    sections, records = [], []
    for i, view in enumerate(views):
        prefix = f"s{i}_"
        svg = layout(dot_source(view, prefix), "svg").decode("utf-8")
        sections.append(f'    <section class="view" id="{prefix}view"{"" if i == 0 else " hidden"}>'
                        f"{inline_svg(svg)}</section>")
        records.append(stage_record(view, prefix))
    buttons = "".join(f'<button type="button" data-stage="{i}">{html.escape(v.name)}</button>'
                      for i, v in enumerate(views))
    return TEMPLATE.format(title=html.escape(" / ".join(v.name for v in views)), css=_asset("view.css"),
                           buttons=buttons, views="\n".join(sections), js=_asset("view.js"),
                           data=_script_json({"stages": records}))


def inline_svg(svg: str) -> str:
    """Graphviz's SVG document without its XML prolog, doctype and comments, to sit inside the HTML."""
    svg = svg[svg.index("<svg"):]
    return re.sub(r"<!--.*?-->\n?", "", svg, flags=re.DOTALL).strip()


def stage_record(view: Stage, prefix: str) -> dict[str, Any]:
    """What the script needs about one stage: its title, nodes, clusters and edges, keyed by SVG id."""
    clusters: dict[str, Any] = {}
    _collect_clusters(cluster_tree(view, prefix), None, prefix, clusters)
    return {
        "name": view.name,
        "title": title(view),
        "nodeCount": len(view.nodes),
        "nodes": {node_id(n, prefix): node_record(n, view) for n in view.nodes},
        "clusters": clusters,
        "edges": [[f"{prefix}e{k}", node_id(tail, prefix), node_id(head, prefix)]
                  for k, (tail, head, _) in enumerate(edges(view))],
    }


def node_record(node: Node, view: Stage) -> dict[str, Any]:
    """The details panel of one node."""
    record: dict[str, Any] = {
        "name": node.name,
        "op": node.op.name,
        "dtype": ", ".join(t.dtype for t in node.types) or "(none: no outputs)",
        "shape": ", ".join(format_shape(t.shape) for t in node.types) or "(none)",
        "attrs": {key: format_attr(node.attrs[key]) for key in sorted(node.attrs)},
        "inputs": [t.name for t in node.inputs] + [f"^{c.name}" for c in node.control_inputs],
        "source": str(node.source),
        "code": node.source.code,
    }
    forward = view.graph.derivative_of.get(node) if view.graph is not None else None
    if forward is not None:
        record["derivativeOf"] = f"{forward.name} ({forward.op.name}, {forward.source})"
    kernel = view.partition.kernel_of.get(node) if view.partition is not None else None
    if kernel is not None:
        record["kernel"] = kernel.describe() if kernel.launched else kernel.kind
    return record


def _collect_clusters(box: Cluster, parent: str | None, prefix: str, into: dict[str, Any]) -> None:
    for child in box.children.values():
        into[child.id] = {"label": child.label, "kind": child.kind, "parent": parent,
                          "members": [node_id(n, prefix) for n in child.members()]}
        _collect_clusters(child, child.id, prefix, into)


def _asset(name: str) -> str:
    return resources.files("graphc.viz").joinpath("assets", name).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: ``</`` cannot close it early."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
