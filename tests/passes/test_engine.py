"""The rewrite engine: patterns, sweeps (CSE, DCE, names, source lines, origins), the pipeline's fixed point
and log, exclusion by name, and Sessions running optimized graphs with the user's feeds and variables."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphError
from graphc.ops import elementwise as ew
from graphc.passes import Const, Op, Rule, RuleTable, Var, optimize
from graphc.passes.rewrite import Sweep
from tests.helpers import line_of


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph


def test_patterns_bind_and_check_repeated_names():
    x = gc.placeholder("float64", (3,), name="x")
    y = gc.placeholder("float64", (3,), name="y")
    same = Op(ew.ADD, Var("a"), Var("a"))
    bindings = {}
    assert same.match(x + x, bindings) and bindings["a"] is x
    assert not same.match(x + y, {})
    assert Op(ew.MUL, Var("a"), Const(2.0)).match(x * 2.0, {})
    assert not Op(ew.MUL, Var("a"), Const(3.0)).match(x * 2.0, {})
    assert Op(ew.LEAKY_RELU, Var("a"), alpha=0.5).match(gc.leaky_relu(x, 0.5), {})
    assert not Op(ew.LEAKY_RELU, Var("a"), alpha=0.5).match(gc.leaky_relu(x, 0.1), {})


def test_rules_record_where_they_are_defined():
    rule = Rule("noop", Op(ew.EXP, Var("x")), lambda x: None)  # RULE-MARK
    assert rule.where.endswith(f"test_engine.py:{line_of('RULE-MARK')}")


def test_sweep_merges_duplicates_drops_dead_nodes_and_keeps_names_and_lines():
    x = gc.placeholder("float64", (3,), name="x")
    with gc.name_scope("layer"):
        a = gc.exp(x)  # A-MARK
        b = gc.exp(x)
        gc.sin(x)  # dead: nothing below needs it
        total = gc.add(a, b, name="total")
    sweep = Sweep(x.graph, {}, None, merge=True)
    (new_total,) = sweep.run([total])
    ops = [n.op.name for n in sweep.graph.nodes]
    assert ops == ["placeholder", "exp", "add"] and sweep.fired["cse"] == 1
    assert new_total.name == "layer/total" and new_total.graph is sweep.graph
    exp_node = new_total.node.inputs[0].node
    assert exp_node.name == "layer/exp" and exp_node.source.line == line_of("A-MARK")
    assert sweep.origin[exp_node] is a.node


def test_placeholders_and_variables_are_never_merged():
    x = gc.placeholder("float64", (3,), name="x")
    y = gc.placeholder("float64", (3,), name="y")
    v = gc.Variable(np.ones(3), name="v")
    w = gc.Variable(np.ones(3), name="w")
    result = optimize((x + y) * (v + w), level=2)
    assert sorted(n.name for n in result.graph.nodes if not n.inputs) == ["v", "w", "x", "y"]
    assert {n.name: u.name for n, u in result.sources().items()} == {"x": "x", "y": "y", "v": "v", "w": "w"}


def test_rules_apply_until_none_matches_and_the_log_counts_them(monkeypatch):
    from graphc.passes import pipeline as pipeline_module

    x = Var("x")
    table = RuleTable("test", [Rule("double_neg", Op(ew.NEG, Op(ew.NEG, x)), lambda x: x)])
    monkeypatch.setattr(pipeline_module, "pipeline", lambda: [pipeline_module.Pass("strip", table, level=1)])
    p = gc.placeholder("float64", (), name="p")
    y = gc.sin(gc.neg(gc.neg(gc.neg(gc.neg(p)))))
    result = optimize(y)
    assert [n.op.name for n in result.graph.nodes] == ["placeholder", "sin"]
    assert result.fired()["double_neg"] == 2 and result.log[0].nodes_before == 6
    assert result.log[0].nodes_after == 2 and "double_neg×2" in str(result)
    excluded = optimize(y, exclude=["double_neg"])
    assert excluded.fired()["double_neg"] == 0 and len(excluded.graph.nodes) == 6
    assert len(optimize(y, exclude=["strip"]).log) == 0


def test_level_zero_copies_without_merging():
    x = gc.placeholder("float64", (), name="x")
    y = gc.exp(x) + gc.exp(x)
    assert [n.op.name for n in optimize(y, level=0).graph.nodes] == ["placeholder", "exp", "exp", "add"]


def test_optimize_a_whole_graph_keeps_every_sink():
    x = gc.placeholder("float64", (), name="x")
    a, b = gc.exp(x), gc.sin(x)
    result = optimize(x.graph)
    assert sorted(t.name for t in result.outputs) == sorted([a.name, b.name])


def test_optimize_rejects_what_it_cannot_optimize():
    x = gc.placeholder("float64", (), name="x")
    with gc.Graph().as_default():
        stranger = gc.placeholder("float64", (), name="stranger")
    cases = [([], "nothing to optimize"), (gc.Graph(), "nothing to optimize"), (3, "got 3"),
             ([gc.exp(x), "y"], "got 'y'"), ([gc.exp(x), stranger], "different graphs")]
    for target, message in cases:  # were IndexError, TypeError, or one graph silently mixing two
        with pytest.raises(GraphError, match=message):
            optimize(target)


def test_session_runs_the_optimized_graph_with_user_feeds_variables_and_updates():
    x = gc.placeholder("float32", (None, 2), name="x")
    w = gc.Variable(np.array([1.0, 2.0], np.float32), name="w")
    loss = gc.reduce_sum(gc.square(x * w) * 1.0)
    (dw,) = gc.gradients(loss, w)
    step = gc.assign(w, w - 0.01 * dw)
    noise = gc.random.uniform((3,), seed=4)
    feed = {x: np.array([[1.0, 1.0], [0.5, -1.0]], np.float32)}
    plain, optimized = gc.Session(optimize=0), gc.Session(optimize=2)
    for _ in range(3):
        a, b = plain.run([loss, step, noise], feed), optimized.run([loss, step, noise], feed)
        np.testing.assert_allclose(b[0], a[0], rtol=1e-6)
        np.testing.assert_array_equal(b[2], a[2])  # random draws do not depend on optimization
    np.testing.assert_allclose(optimized.run(w), plain.run(w), rtol=1e-6)


def test_unknown_names_and_levels_are_errors():
    x = gc.placeholder("float64", (), name="x")
    with pytest.raises(ValueError, match="cannot exclude 'stabilise'"):
        optimize(gc.exp(x), exclude=["stabilise"])
    with pytest.raises(ValueError, match="optimize must be 0, 1 or 2"):
        gc.Session(optimize=5)


def test_unknown_names_and_levels_are_argument_errors():
    x = gc.placeholder("float64", (), name="x")
    with pytest.raises(gc.errors.ArgumentError, match="cannot exclude 'stabilise'"):
        optimize(gc.exp(x), exclude=["stabilise"])
    with pytest.raises(gc.errors.ArgumentError, match="optimize must be 0, 1 or 2"):
        gc.Session(optimize=5)
