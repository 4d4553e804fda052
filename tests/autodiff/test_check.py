"""gc.check_gradients: passes on correct float64 gradients, reports wrong ones, refuses what it cannot check."""

import numpy as np
import pytest

import graphc as gc
from graphc.ops import scalar as sc
from graphc.ops.registry import OpDef, apply


def _mlp(rng):
    """A two-layer tanh network with a squared-error loss: placeholders x, t and variables W1, b1, W2."""
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (4, 3), name="x")
        t = gc.placeholder("float64", (4, 2), name="t")
        W1 = gc.Variable(rng.normal(size=(3, 5)), name="W1")
        b1 = gc.Variable(rng.normal(size=(5,)), name="b1")
        W2 = gc.Variable(rng.normal(size=(5, 2)), name="W2")
        hidden = gc.tanh(gc.matmul(x, W1) + b1)
        loss = gc.reduce_sum(gc.square(gc.matmul(hidden, W2) - t))
    feeds = {x: rng.normal(size=(4, 3)), t: rng.normal(size=(4, 2))}
    return g, loss, hidden, (x, W1, b1, W2), feeds


def test_a_small_mlp_passes_and_variables_are_restored(rng):
    g, loss, hidden, (x, W1, b1, W2), feeds = _mlp(rng)
    with gc.Session(g) as sess:
        before = sess.run([W1, b1, W2])
        report = gc.check_gradients(loss, [x, W1, b1, W2], feeds, session=sess)
        after = sess.run([W1, b1, W2])
    assert report.ok, str(report)
    assert len(report) == 4
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert report[W1].max_abs_error < 1e-6
    assert report["b1"].analytic.shape == (5,)
    assert report[0].tensor is x


def test_a_non_scalar_output_is_checked_through_its_whole_vjp(rng):
    g, loss, hidden, (x, W1, b1, W2), feeds = _mlp(rng)
    report = gc.check_gradients([hidden, loss], [x, W1], feeds)
    assert report.ok, str(report)


def _wrong_sin():
    """sin with a vjp that is off by a factor of 2: a rule with a deliberate mistake, not registered (its scalar
    expression lets it compile like any elementwise op)."""
    return OpDef("wrong_sin", "test", lambda x: x, np.sin, elementwise=True, scalar=sc.sin,
                 vjp=lambda node, cotangent: (2 * cotangent * gc.cos(node.inputs[0]),))


def test_a_wrong_gradient_makes_ok_false_and_is_reported(rng):
    point = rng.uniform(0.2, 1.0, size=(2, 3))
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (2, 3), name="x")
        y = apply(_wrong_sin(), [x])
    report = gc.check_gradients(y, x, {x: point})
    assert not report.ok and not report[x].ok and not report
    check = report[x]
    worst = check.worst_index
    assert len(worst) == 2
    assert check.worst_analytic == pytest.approx(2 * check.worst_numeric, rel=1e-6)
    assert check.worst_rel_error == pytest.approx(0.5, rel=1e-6)
    assert check.max_abs_error == pytest.approx(np.max(np.abs(check.analytic - check.numeric)))
    text = str(report)
    assert "FAILED (1 of 1 inputs wrong)" in text and "FAIL" in text.splitlines()[-1]
    assert str(worst) in text


def test_a_vjp_only_right_for_a_cotangent_of_ones_is_caught():
    """ys are weighted by random w: a rule that only works when the cotangent is all ones fails."""
    doubling = OpDef("lazy_double", "test", lambda x: x, lambda x: 2 * x, elementwise=True, scalar=lambda x: 2 * x,
                     vjp=lambda node, cotangent: (2 * gc.reduce_mean(cotangent) * gc.ones_like(cotangent),))
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (3,), name="x")
        y = apply(doubling, [x])
        right = gc.gradients(y, x)[0]
    with gc.Session(g) as sess:
        np.testing.assert_allclose(sess.run(right, {x: np.ones(3)}), [2, 2, 2])  # looks right with ȳ = 1
    assert not gc.check_gradients(y, x, {x: np.ones(3)}).ok


def test_nan_gradients_fail_instead_of_raising():
    nan_vjp = OpDef("nan_grad", "test", lambda x: x, np.exp, elementwise=True, scalar=sc.exp,
                    vjp=lambda node, cotangent: (cotangent * (gc.zeros_like(cotangent) / 0.0),))
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (2,), name="x")
        y = apply(nan_vjp, [x])
    report = gc.check_gradients(y, x, {x: [0.1, 0.2]})
    assert not report.ok and report[x].max_abs_error == np.inf


def test_an_unconnected_input_checks_as_zero():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (2,), name="x")
        unused = gc.placeholder("float64", (), name="unused")
        y = gc.exp(x)
    report = gc.check_gradients(y, [x, unused], {x: [0.1, 0.2], unused: 3.0})
    assert report.ok and report["unused"].analytic == 0


def test_a_seed_fixes_the_weights():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (3,), name="x")
        y = gc.sin(x)
    first = gc.check_gradients(y, x, {x: [0.1, 0.2, 0.3]}, seed=1)[x].analytic
    again = gc.check_gradients(y, x, {x: [0.1, 0.2, 0.3]}, seed=1)[x].analytic
    other = gc.check_gradients(y, x, {x: [0.1, 0.2, 0.3]}, seed=2)[x].analytic
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_float32_graphs_are_refused_with_the_reason():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (2,), name="x")
        narrow = gc.cast(x, "float32")
        y = gc.cast(gc.exp(narrow), "float64")
        with pytest.raises(gc.errors.DTypeError, match=r"needs float64 .* '(cast|exp)' is float32.*rounding"):
            gc.check_gradients(y, x, {x: [0.1, 0.2]})
        x32 = gc.placeholder("float32", (2,), name="x32")
        with pytest.raises(gc.errors.DTypeError, match="x32"):
            gc.check_gradients(gc.exp(x32), x32, {x32: [0.1, 0.2]})


def test_only_placeholders_and_variables_can_be_perturbed():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (2,), name="x")
        h = gc.exp(x)
        with pytest.raises(gc.errors.GradientError, match="'exp' is a exp node .* only placeholders and variables"):
            gc.check_gradients(gc.sin(h), h, {x: [0.1, 0.2]})
        with pytest.raises(gc.errors.GradientError, match="placeholder 'x' is checked but not in feed_dict"):
            gc.check_gradients(h, x, {})


def test_random_ops_are_refused():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (2,), name="x")
        noise = gc.random.normal((2,), dtype="float64", seed=1)
        with pytest.raises(gc.errors.GradientError, match="draws new numbers every run"):
            gc.check_gradients(x * noise, x, {x: [0.1, 0.2]})


def test_report_lookup_errors_list_the_checked_inputs():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (), name="x")
    report = gc.check_gradients(x * x, x, {"x": 1.5})
    assert report.ok and report[x].worst_index == ()
    with pytest.raises(KeyError, match="checked: x"):
        report["y"]



def test_unknown_input_is_a_not_found_error():
    with gc.Graph().as_default():
        x = gc.placeholder("float64", (), name="x")
    report = gc.check_gradients(x * x, x, {"x": 1.5})
    with pytest.raises(gc.errors.NotFoundError, match="no input 'y' was checked; checked: x") as caught:
        report["y"]
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, gc.errors.GraphcError)
