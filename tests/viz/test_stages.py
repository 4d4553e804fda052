"""Stages: raw (as built), grad (with derivative nodes), optimized, kernels."""

import pytest

import graphc as gc
from tests.helpers import lecture


@pytest.fixture
def lecture_targets():
    with gc.Graph().as_default():
        x1, x2, y = lecture()
        yield [y, *gc.gradients(y, [x1, x2])]


def test_raw_leaves_out_every_node_differentiation_added(lecture_targets):
    raw = gc.viz.stage(lecture_targets, "raw")
    assert [n.op.name for n in raw.nodes] == ["placeholder", "placeholder", "log", "mul", "add", "sin", "sub"]
    assert [t.name for t in raw.outputs] == ["sub"]
    assert gc.viz.text(raw, sources=False).startswith("stage raw: graph: 7 of 18 nodes; outputs: sub")


def test_grad_optimized_and_kernels(lecture_targets):
    grad = gc.viz.stage(lecture_targets, "grad")
    optimized = gc.viz.stage(lecture_targets, "optimized")
    kernels = gc.viz.stage(lecture_targets, "kernels")
    assert len(grad.nodes) == 18 and len(optimized.nodes) == 12
    assert optimized.graph is not grad.graph and optimized.partition is None
    assert "in 3 kernels" in gc.viz.text(kernels, sources=False).splitlines()[0]
    with pytest.raises(ValueError, match="unknown stage 'lowered'"):
        gc.viz.stage(lecture_targets, "lowered")
