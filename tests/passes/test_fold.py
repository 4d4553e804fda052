"""fold_constants: a node of constants becomes a constant holding what its op's reference computes, in the
node's exact dtype, except for random and update ops, control dependencies, failures and large results."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import GraphcError
from graphc.ops.elementwise import ADD
from graphc.ops.registry import apply
from graphc.passes import Const, Op, Rule, RuleTable, Var, optimize
from graphc.passes.fold import FOLD_LIMIT, RULES, SMALL_RESULT
from tests.passes.evaluate import assert_same_values


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph


def run(tensor, **kwargs):
    """The optimized tensor and the counts of the rules that fired."""
    result = optimize(tensor, **kwargs)
    return result.outputs[0], result.fired()


def value_of(tensor) -> np.ndarray:
    assert tensor.node.op.name == "constant", tensor.node.op.name
    return tensor.node.attrs["value"]


# -- what folds -------------------------------------------------------------------------------------------
def test_a_chain_of_constants_becomes_one_constant_of_the_exact_dtype():
    two = gc.constant(np.float32(2.0))
    y = gc.sqrt(two) * 3 + gc.constant(np.arange(3, dtype=np.float32))
    out, fired = run(y)
    assert fired["fold_constant_inputs"] >= 3
    assert value_of(out).dtype == np.float32
    expected = np.sqrt(np.float32(2)) * np.float32(3) + np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(value_of(out), expected)
    assert_same_values(y, rtol=0)


@pytest.mark.parametrize("build, dtype", [
    (lambda: gc.cast(gc.constant([1.7, -2.5]), "int32"), "int32"),
    (lambda: gc.reduce_mean(gc.constant(np.arange(6, dtype=np.int32).reshape(2, 3)), axis=1), "float64"),
    (lambda: gc.constant(np.array([3, 1, 2])) > 1, "bool"),
    (lambda: gc.matmul(gc.constant(np.eye(2)), gc.constant(np.ones((2, 3)))), "float64"),
    (lambda: gc.reshape(gc.transpose(gc.constant(np.arange(6.0).reshape(2, 3))), (6,)), "float64"),
    (lambda: gc.one_hot(gc.constant(np.array([0, 2])), 3), "float32"),
])
def test_ops_of_every_family_fold_to_their_reference_value(build, dtype):
    y = build()
    out, fired = run(y)
    assert fired["fold_constant_inputs"] >= 1 and value_of(out).dtype == dtype
    assert_same_values(y, rtol=0)


def test_a_fold_happens_where_some_inputs_are_not_constant(rng):
    x = gc.placeholder("float64", (3,), name="x")
    y = x * (gc.constant(2.0, "float64") + 1)
    out, fired = run(y)
    assert fired["fold_constant_inputs"] == 1
    assert out.node.op.name == "mul" and value_of(out.node.inputs[1]) == 3.0
    assert_same_values(y, {x: rng.normal(size=3)})


def test_ieee_results_fold_silently():
    y = gc.log(gc.constant([0.0, -1.0]))
    out, _ = run(y)
    np.testing.assert_array_equal(value_of(out), [-np.inf, np.nan])


# -- what does not fold -----------------------------------------------------------------------------------
def test_random_ops_do_not_fold_even_with_constant_inputs():
    for draw in (gc.random.uniform((3,), seed=1), gc.random.normal(like=gc.constant(np.zeros(2)), seed=2)):
        out, fired = run(draw)
        assert fired["fold_constant_inputs"] == 0 and out.node.op.random


def test_updates_placeholders_and_variables_do_not_fold():
    v = gc.Variable(np.zeros(2), name="v")
    update = gc.assign(v, gc.constant(np.ones(2)))
    out, fired = run(update)
    assert fired["fold_constant_inputs"] == 0 and out.node.op.name == "assign"
    for source in (gc.placeholder("float64", (2,), name="x"), v):
        out, fired = run(gc.exp(source))
        assert fired["fold_constant_inputs"] == 0 and out.node.op.name == "exp"
        assert out.node.inputs[0].node.op.name == source.node.op.name


def test_a_node_with_control_inputs_does_not_fold():
    v = gc.Variable(np.zeros(2), name="v")
    update = gc.assign(v, gc.constant(np.ones(2)))
    y = apply(ADD, [gc.constant(1.0), gc.constant(2.0)], control_inputs=[update.node])
    out, fired = run(y)
    assert fired["fold_constant_inputs"] == 0 and out.node.op is ADD


def test_results_larger_than_the_limit_stay_ops():
    assert FOLD_LIMIT == 100_000
    out, fired = run(gc.constant(np.arange(FOLD_LIMIT + 1.0)) * 2)
    assert fired["fold_constant_inputs"] == 0 and out.node.op.name == "mul"
    out, fired = run(gc.constant(np.arange(float(FOLD_LIMIT))) * 2)
    assert fired["fold_constant_inputs"] == 1 and value_of(out).shape == (FOLD_LIMIT,)


def test_results_that_grow_their_inputs_stay_ops_beyond_a_small_size():
    assert SMALL_RESULT == 1024
    out, fired = run(gc.broadcast_to(gc.constant(1.0), (SMALL_RESULT + 1,)))
    assert fired["fold_constant_inputs"] == 0 and out.node.op.name == "broadcast_to"
    out, fired = run(gc.broadcast_to(gc.constant(1.0), (SMALL_RESULT,)))
    assert fired["fold_constant_inputs"] == 1 and value_of(out).shape == (SMALL_RESULT,)
    grown = gc.one_hot(gc.constant(np.arange(40)), 40)  # 1600 elements from 40
    out, fired = run(grown)
    assert fired["fold_constant_inputs"] == 0 and out.node.op.name == "one_hot"


def test_a_reference_that_fails_is_left_for_the_run():
    y = gc.gather(gc.constant(np.arange(3.0)), gc.constant(np.array([5])))
    out, fired = run(y)
    assert fired["fold_constant_inputs"] == 0 and out.node.op.name == "gather"
    with gc.Session(optimize=2) as session, pytest.raises(GraphcError, match="gather"):
        session.run(y)


def test_the_pass_can_be_switched_off():
    y = gc.constant(1.0) + 2
    out, fired = run(y, exclude=["fold_constants"])
    assert fired["fold_constant_inputs"] == 0 and out.node.op is ADD
    out, fired = run(y, level=1)
    assert out.node.op is ADD


# -- the engine's catch-all rules ---------------------------------------------------------------------
def test_a_rule_rooted_at_a_var_is_tried_at_every_node_after_the_op_rules():
    specific = Rule("specific", Op(ADD, Var("x"), Const(0)), lambda x: x)
    table = RuleTable("t", [specific]) + RULES
    x = gc.placeholder("float64", (2,), name="x")
    assert table.for_node((x + 0).node)[0] is specific
    assert [r.name for r in table.for_node(gc.exp(x).node)] == ["fold_constant_inputs"]
    assert [r.name for r in table.without(["fold_constant_inputs"]).for_node(gc.exp(x).node)] == []
