"""Verify mode names the pass and rule that changed a result; correct pipelines pass it."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import VerificationError
from graphc.ops import elementwise as ew
from graphc.passes import Op, Rule, RuleTable, Var, optimize
from graphc.passes import pipeline as pipeline_module


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph


def test_verify_passes_on_a_training_step():
    x = gc.placeholder("float32", (None, 4), name="x")
    labels = gc.placeholder("int64", (None,), name="labels")
    w = gc.Variable(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), name="w")
    loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(x @ w, labels))
    (dw,) = gc.gradients(loss, w)
    step = gc.assign(w, w - 0.1 * dw)
    result = optimize([loss, step], level=2, verify=True)
    assert len(result.graph.nodes) > 0


def test_verify_names_the_pass_and_rule_that_broke_a_result(monkeypatch):
    x = Var("x")
    wrong = RuleTable("wrong", [Rule("exp_is_identity", Op(ew.EXP, x), lambda x: x)])
    original = pipeline_module.pipeline

    def with_a_wrong_pass():
        return [*original(), pipeline_module.Pass("bad_pass", wrong, level=1)]

    monkeypatch.setattr(pipeline_module, "pipeline", with_a_wrong_pass)
    y = gc.exp(gc.placeholder("float64", (3,), name="p")) * 2.0  # Y-LINE
    with pytest.raises(VerificationError) as error:
        optimize(y, verify=True)
    message = str(error.value)
    assert "pass 'bad_pass'" in message and "exp_is_identity×1" in message and "test_verify.py" in message
    assert optimize(y, verify=True, exclude=["exp_is_identity"]).fired()["exp_is_identity"] == 0


def _install(monkeypatch, rule):
    original = pipeline_module.pipeline
    wrong = RuleTable("wrong", [rule])
    monkeypatch.setattr(pipeline_module, "pipeline",
                        lambda: [*original(), pipeline_module.Pass("bad_pass", wrong, level=1)])


def test_verify_catches_a_changed_dtype(monkeypatch):
    x = Var("x")
    _install(monkeypatch, Rule("drop_cast", Op(ew.CAST, x), lambda x: x))  # float64 result for a float32 one
    y = gc.exp(gc.cast(gc.placeholder("float64", (3,), name="p"), "float32"))
    with pytest.raises(VerificationError, match="bad_pass.*dtype float64 instead of float32"):
        optimize(y, verify=True)


def test_verify_catches_an_infinity_that_changed_sign(monkeypatch):
    x = Var("x")
    _install(monkeypatch, Rule("negate_log", Op(ew.LOG, x), lambda x: ew.neg(ew.log(x, name="log_again"))))
    p = gc.placeholder("float64", (2,), name="p")
    with pytest.raises(VerificationError, match="bad_pass.*inf instead of -inf at index \\(0,\\)"):
        optimize(gc.log(p), verify=True, feed_dict={p: np.array([0.0, 1.0])})


def test_verify_from_the_environment(monkeypatch):
    monkeypatch.setenv("GRAPHC_VERIFY", "1")
    monkeypatch.setenv("GRAPHC_OPT_EXCLUDE", "stabilize")
    y = gc.log(gc.placeholder("float64", (2,), name="q") + 1.0)
    result = optimize(y)
    assert "stabilize" not in [record.name for record in result.log]


def test_verify_uses_given_feeds_and_skips_graphs_random_inputs_cannot_run():
    x = gc.placeholder("float64", (None,), name="x")
    y = gc.reshape(x, (-1, 4)) * 1.0  # needs a multiple of 4 elements: random size-3 inputs cannot run it
    with pytest.warns(UserWarning, match="verify mode skipped"):
        optimize(y, verify=True)
    assert optimize(y, verify=True, feed_dict={x: np.arange(8.0)}).fired()["mul_one"] == 1


def test_session_verifies_on_its_own_feeds(monkeypatch):
    monkeypatch.setenv("GRAPHC_VERIFY", "1")
    x = gc.placeholder("float64", (None,), name="x")
    y = gc.reduce_sum(gc.reshape(x, (-1, 4)) * 1.0, axis=1)
    with gc.Session(optimize=2) as sess:
        np.testing.assert_array_equal(sess.run(y, {x: np.arange(8.0)}), [6.0, 22.0])


def test_optimize_is_public():
    assert gc.optimize is optimize
