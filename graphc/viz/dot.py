"""``gc.viz.dot``: a graph as Graphviz DOT source, for ``gc.viz.render`` and any Graphviz tool.

    digraph graphc {
      subgraph "cluster_dense" {          # a name scope is a cluster; scopes nest
        label="dense";
        n3 [id="n3", label="matmul\\nlogits", ...];
      }
      n0 -> n3 [id="e0", label="float32[?,784]"];
    }

A node is labelled with its op and its name within its scope (the scope is the cluster around it); an
edge with the type of the tensor it carries. In the kernel view (a ``Partition``, an ``Optimized`` result
or the ``kernels`` stage) each launched kernel is a coloured cluster holding its nodes, with the name scopes
nested inside it. The output is deterministic: nodes in creation order, clusters in order of first member,
ids from node indices (``n<index>``, edges ``e<k>``), so the same graph gives the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from graphc.errors import ArgumentError
from graphc.graph.node import Node, Tensor
from graphc.viz.stages import Stage
from graphc.viz.stages import stage as make_stage
from graphc.viz.text import select_nodes

# fill colours of launched kernels, by kind (light enough for black text)
KERNEL_COLOURS = {"elementwise": "#dbeafe", "reduction": "#fde68a", "matmul": "#bbf7d0", "opaque": "#fbcfe8"}
SOURCE_COLOUR = "#fef9c3"  # placeholders and variables
FONT = "Helvetica"


def dot(target: Any, stage: str | None = None) -> str:
    """DOT source for ``target``: a Graph, a Tensor/Node or list/tuple/dict of them, a ``Stage``, an
    ``Optimized`` result or a ``Partition``. ``stage`` ("raw", "grad", "optimized", "kernels") picks a
    stage of a graph or tensors first; without it they are drawn as they are."""
    return dot_source(as_stage(target, stage))


def as_stage(target: Any, stage: str | None = None) -> Stage:
    """The nodes to draw, as a ``Stage``: the stage asked for, or the target as it is (a graph or tensors
    as built; an ``Optimized`` result or ``Partition`` as its kernels)."""
    from graphc.passes.fusion import plan_kernels
    from graphc.passes.partition import Partition
    from graphc.passes.pipeline import Optimized

    if isinstance(target, (Stage, Partition, Optimized)):
        if stage is not None:
            raise ArgumentError(f"stage={stage!r} applies to a Graph or tensors, not to a {type(target).__name__}")
        if isinstance(target, Stage):
            return target
        partition = target
        if isinstance(target, Optimized):
            partition = target.partition or plan_kernels(target.graph, target.outputs)
        nodes = tuple(sorted(partition.kernel_of, key=lambda n: n.index))
        return Stage("kernels", partition.graph, nodes, tuple(partition.outputs), partition)
    if stage is not None:
        return make_stage(target, stage)
    from graphc.viz.text import _outputs

    graph, outputs = _outputs(target)
    if graph is None:
        raise ArgumentError("nothing to draw: no tensors given")
    nodes = select_nodes(graph, outputs)
    shown = tuple(outputs.values()) if outputs is not None else ()
    return Stage("graph", graph, tuple(nodes), shown)


def dot_source(view: Stage, prefix: str = "") -> str:
    """The DOT text of a stage. ``prefix`` goes before every id, so that several drawings can share one
    HTML page."""
    # newrank: rank the nodes as one graph, then draw the clusters (else each cluster is ranked on its own
    # and a chain through several scopes zigzags)
    lines = ["digraph graphc {",
             f'  graph [rankdir=TB, newrank=true, fontname="{FONT}", fontsize=11, labelloc=t, '
             f'label={quote(title(view))}];',
             f'  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="{FONT}", fontsize=10];',
             f'  edge [fontname="{FONT}", fontsize=8, color="#64748b", fontcolor="#475569"];']
    lines += _cluster_lines(cluster_tree(view, prefix), _output_nodes(view.outputs), prefix, depth=1)
    lines += ["  " + line for line in edge_lines(view, prefix)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def title(view: Stage) -> str:
    count = f"{len(view.nodes)} nodes"
    if view.partition is not None:
        count += f" in {len(view.partition.launched())} kernels"
    return count if view.name == "graph" else f"stage {view.name}: {count}"


# -- clusters: kernels, then name scopes inside them ------------------------------------------------------
@dataclass
class Cluster:
    """A box in the drawing: a launched kernel or a name scope, with its nodes and the clusters inside."""

    id: str
    label: str
    kind: str  # "kernel" or "scope"
    colour: str = ""
    nodes: list[Node] = field(default_factory=list)
    children: dict[str, Cluster] = field(default_factory=dict)

    def members(self) -> list[Node]:
        """Every node inside, nested clusters included."""
        return self.nodes + [n for child in self.children.values() for n in child.members()]


def cluster_tree(view: Stage, prefix: str = "") -> Cluster:
    """The root cluster (the whole drawing): each node filed under its kernel (if launched) and then under
    each part of its name scope."""
    root = Cluster(prefix + "root", "", "root")
    kernel_of = view.partition.kernel_of if view.partition is not None else {}
    for node in view.nodes:
        box = root
        kernel = kernel_of.get(node)
        if kernel is not None and kernel.launched:
            key = f"{prefix}k{kernel.id}"
            box = box.children.setdefault(key, Cluster(key, kernel.describe(), "kernel",
                                                       KERNEL_COLOURS.get(kernel.kind, "#e5e7eb")))
        for scope in node.name.split("/")[:-1]:
            key = f"{box.id}/{scope}" if box is not root else f"{prefix}scope:{scope}"
            box = box.children.setdefault(key, Cluster(key, scope, "scope"))
        box.nodes.append(node)
    return root


def _cluster_lines(box: Cluster, outputs: set[Node], prefix: str, depth: int) -> list[str]:
    pad = "  " * depth
    lines = []
    for child in box.children.values():
        style = ('style="filled,rounded", color="#94a3b8", fillcolor=' + quote(child.colour)
                 if child.kind == "kernel" else 'style="dashed,rounded", color="#94a3b8"')
        lines.append(f"{pad}subgraph {quote('cluster_' + child.id)} {{")
        lines.append(f"{pad}  graph [id={quote(child.id)}, label={quote(child.label)}, {style}];")
        lines += _cluster_lines(child, outputs, prefix, depth + 1)
        lines.append(f"{pad}}}")
    lines += [pad + node_line(node, node in outputs, prefix) for node in box.nodes]
    return lines


# -- nodes and edges ---------------------------------------------------------------------------------------
def node_id(node: Node, prefix: str = "") -> str:
    return f"{prefix}n{node.index}"


def node_line(node: Node, is_output: bool = False, prefix: str = "") -> str:
    """``n3 [id="n3", label="matmul\\nlogits", tooltip="dense/logits"]``: op, then the name in its scope
    (left out when it is the op's name).
    Placeholders and variables are yellow ellipses; the outputs asked for have a thick border."""
    short = node.name.rsplit("/", 1)[-1]
    label = node.op.name if short == node.op.name else f"{node.op.name}\n{short}"
    attrs = [f"id={quote(node_id(node, prefix))}", f"label={quote(label)}", f"tooltip={quote(node.name)}"]
    if not node.inputs and node.op.reference is None:
        attrs.append(f'shape=ellipse, fillcolor="{SOURCE_COLOUR}"')
    if is_output:
        attrs.append("penwidth=2")
    return f"{node_id(node, prefix)} [{', '.join(attrs)}];"


def edges(view: Stage) -> list[tuple[Node, Node, str]]:
    """(producer, consumer, kind) for every edge between drawn nodes: kind "data" for an input, "control"
    for a control input, "init" from a variable's initial value (evaluated when the variable is first
    read)."""
    shown = set(view.nodes)
    initializers = view.graph.initializers if view.graph is not None else {}
    found: list[tuple[Node, Node, str]] = []
    for node in view.nodes:
        found += [(t.node, node, "data") for t in node.inputs if t.node in shown]
        found += [(c, node, "control") for c in node.control_inputs if c in shown]
        if node in initializers and initializers[node].node in shown:
            found.append((initializers[node].node, node, "init"))
    return found


EDGE_STYLES = {"control": "style=dashed", "init": 'style=dotted, label="initial value"'}


def edge_lines(view: Stage, prefix: str = "") -> list[str]:
    """One line per edge, labelled with the type of the tensor it carries (``float32[?,10]``); control
    edges dashed, initial values dotted."""
    lines = []
    for k, (tail, head, kind) in enumerate(edges(view)):
        if kind == "data":
            types = {str(t.type) for t in head.inputs if t.node is tail}
            style = f"label={quote(', '.join(sorted(types)))}"
        else:
            style = EDGE_STYLES[kind]
        lines.append(f"{node_id(tail, prefix)} -> {node_id(head, prefix)} [id={quote(f'{prefix}e{k}')}, {style}];")
    return lines


def _output_nodes(outputs: Iterable[Tensor | Node]) -> set[Node]:
    return {o.node if isinstance(o, Tensor) else o for o in outputs}


def quote(text: str) -> str:
    """A DOT string literal; a newline becomes DOT's ``\\n`` (a centred line break)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
