"""gc.viz.dot (checked structurally: no Graphviz needed) and gc.viz.render (.svg, .png, .html need `dot`)."""

import json
import re
import shutil

import numpy as np
import pytest

import graphc as gc
from graphc.passes.fusion import plan_kernels
from graphc.viz.dot import quote
from graphc.viz.render import GraphvizNotFound

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` is not installed "
                               "(apt-get install graphviz)")
NODE = re.compile(r"^\s*(n\d+) \[id=", re.MULTILINE)
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+) \[id=\"e\d+\"(?:, label=\"([^\"]*)\"|, style=dashed)\];$", re.MULTILINE)


def dense_layer():
    """x -> dense/(matmul, add, tanh) -> loss, with the gradients of W and b."""
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", (None, 4), name="x")
        with gc.name_scope("dense"):
            W = gc.Variable(np.ones((4, 10), np.float32), name="W")
            b = gc.Variable(np.zeros(10, np.float32), name="b")
            h = gc.tanh(x @ W + b, name="h")
        loss = gc.reduce_mean(gc.square(h), name="loss")
        dW, db = gc.gradients(loss, [W, b])
    return g, x, h, loss, dW, db


def clusters(source: str) -> list[str]:
    return re.findall(r'subgraph "cluster_([^"]+)"', source)


def test_nodes_edges_and_labels():
    _, x, h, loss, _, _ = dense_layer()
    source = gc.viz.dot(loss)
    assert source.startswith("digraph graphc {") and source.rstrip().endswith("}")
    assert len(NODE.findall(source)) == len(gc.viz.stage(loss, "raw").nodes) == 8
    matmul, square = h.node.inputs[0].node.inputs[0].node, loss.node.inputs[0].node
    edges = EDGE.findall(source)
    assert (f"n{x.node.index}", f"n{matmul.index}", "float32[?,4]") in edges
    assert (f"n{h.node.index}", f"n{square.index}", "float32[?,10]") in edges
    assert len(edges) == 7  # x, W -> matmul; matmul, b -> add; add -> h; h -> square; square -> loss
    assert 'label="tanh\\nh", tooltip="dense/h"' in source  # op, then the name within its scope
    assert 'label="matmul", tooltip="dense/matmul"' in source  # the name left out when it is the op's
    assert f'n{loss.node.index} [id="n{loss.node.index}", label="reduce_mean\\nloss", tooltip="loss", ' \
           'penwidth=2]' in source  # the output asked for: a thick border
    assert 'label="placeholder\\nx", tooltip="x", shape=ellipse' in source


def test_name_scopes_are_nested_clusters():
    g, *_ = dense_layer()
    source = gc.viz.dot(g)
    assert clusters(source) == ["scope:dense", "scope:dense/W", "scope:dense/b", "scope:gradients",
                                "scope:gradients/loss_grad", "scope:gradients/square_grad",
                                "scope:gradients/h_grad", "scope:gradients/add_grad", "scope:gradients/matmul_grad"]
    dense = source.split('subgraph "cluster_scope:dense" {', 1)[1].split("\n  }\n", 1)[0]
    assert '"cluster_scope:dense/W" {' in dense  # nested: the W scope (its initial value) inside dense
    assert re.findall(r'tooltip="([^"]+)"', dense) == ["dense/W/initial_value", "dense/b/initial_value", "dense/W",
                                                        "dense/b", "dense/matmul", "dense/add", "dense/h"]
    assert len(NODE.findall(source)) == len(g.nodes)


def test_kernels_are_coloured_clusters_holding_their_scopes():
    _, _, _, loss, dW, db = dense_layer()
    result = gc.optimize([loss, dW, db])
    source = gc.viz.dot(result)
    launched = result.partition.launched()
    kernel_clusters = [c for c in clusters(source) if re.fullmatch(r"k\d+", c)]
    assert sorted(kernel_clusters) == sorted(f"k{k.id}" for k in launched)
    first = launched[0]
    assert f'label="{first.describe()}", style="filled,rounded"' in source
    assert 'fillcolor="#bbf7d0"' in source  # a matmul kernel's colour
    assert f'"cluster_k{first.id}/dense"' in source  # the dense scope inside the first kernel
    assert len(NODE.findall(source)) == len(result.partition.kernel_of)
    assert source == gc.viz.dot(gc.viz.stage([loss, dW, db], "kernels"))  # the stage draws the same


def test_a_partition_and_stages_draw():
    g, _, _, loss, dW, db = dense_layer()
    partition = plan_kernels(g, [loss])
    assert "cluster_k0" in gc.viz.dot(partition)
    raw = gc.viz.dot([loss, dW, db], stage="raw")
    grad = gc.viz.dot([loss, dW, db], stage="grad")
    assert 'label="stage raw: 8 nodes"' in raw and "gradients" not in raw
    assert len(NODE.findall(grad)) == len(gc.viz.stage([loss, dW, db], "grad").nodes) > 8
    with pytest.raises(ValueError, match="applies to a Graph or tensors"):
        gc.viz.dot(partition, stage="raw")


def test_initial_values_and_control_inputs_are_edges_too():
    g = gc.Graph()
    with g.as_default():
        v = gc.Variable([1.0, 2.0], name="v")
        double = gc.assign(v, v * 2.0, name="double")
        step = gc.group(double, name="step")
    source = gc.viz.dot(g)
    init = g.initializers[v.node].node
    assert f'n{init.index} -> n{v.node.index} [id="e0", style=dotted, label="initial value"];' in source
    assert re.search(rf'n{double.node.index} -> n{step.index} \[id="e\d+", style=dashed\];', source)


def test_the_output_is_deterministic():
    first = gc.viz.dot(dense_layer()[0])
    second = gc.viz.dot(dense_layer()[0])
    assert first == second


def test_strings_are_quoted_for_dot():
    # graph names cannot hold quotes or backslashes, but kernel descriptions and future labels might
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_a_missing_dot_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere
    _, _, _, loss, _, _ = dense_layer()
    for name in ("g.svg", "g.png", "g.html"):
        with pytest.raises(GraphvizNotFound, match="apt-get install graphviz"):
            gc.viz.render(loss, tmp_path / name)
    assert gc.viz.render(loss, tmp_path / "g.dot").read_text() == gc.viz.dot(loss)  # needs no Graphviz


def test_bad_formats_and_stage_pairs_are_refused(tmp_path):
    _, _, _, loss, _, _ = dense_layer()
    with pytest.raises(ValueError, match="the formats are .svg, .png, .html"):
        gc.viz.render(loss, tmp_path / "g.pdf")
    with pytest.raises(ValueError, match="need an .html page"):
        gc.viz.render(loss, tmp_path / "g.svg", stage=("raw", "grad"))


@needs_dot
def test_render_svg_and_png(tmp_path):
    _, _, _, loss, dW, db = dense_layer()
    svg = gc.viz.render([loss, dW, db], tmp_path / "g.svg", stage="kernels").read_text()
    assert svg.count('class="node"') == len(gc.viz.stage([loss, dW, db], "kernels").nodes)
    assert 'id="k0" class="cluster"' in svg
    png = gc.viz.render(loss, tmp_path / "g.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
def test_the_html_page_is_self_contained(tmp_path):
    _, _, _, loss, dW, db = dense_layer()
    page = gc.viz.render([loss, dW, db], tmp_path / "g.html", stage=("grad", "optimized")).read_text()
    assert "<script src" not in page and "<link" not in page and "url(" not in page and "@import" not in page
    assert page.count("<svg") == 2 and "<?xml" not in page and "<!DOCTYPE svg" not in page
    data = json.loads(re.search(r'<script type="application/json" id="graphc-data">(.*?)</script>', page,
                                re.DOTALL).group(1))
    grad, optimized = data["stages"]
    assert (grad["name"], optimized["name"]) == ("grad", "optimized")
    assert grad["nodeCount"] == len(grad["nodes"]) == len(gc.viz.stage([loss, dW, db], "grad").nodes)
    h = next(record for record in grad["nodes"].values() if record["name"] == "dense/h")
    assert (h["op"], h["dtype"], h["shape"]) == ("tanh", "float32", "[?,10]")
    assert re.fullmatch(r".*test_dot\.py:\d+", h["source"]) and h["code"] == 'h = gc.tanh(x @ W + b, name="h")'
    assert h["attrs"] == {} and h["inputs"] == ["dense/add"]
    dense = grad["clusters"]["s0_scope:dense"]
    assert dense["kind"] == "scope" and len(dense["members"]) == 5
    assert grad["clusters"]["s0_scope:gradients/loss_grad"]["parent"] == "s0_scope:gradients"
    assert any("derivativeOf" in record for record in grad["nodes"].values())
