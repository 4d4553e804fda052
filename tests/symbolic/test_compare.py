"""compare: the five methods agree on the lecture's function and on a broadcasting tensor graph; the report
is readable field by field and prints as a table."""

import math

import numpy as np
import pytest

import graphc as gc
from graphc.symbolic import METHODS, SymbolicError, compare, graph_size
from tests.helpers import lecture

# finite differences are accurate to about eps^(2/3); the others to a few ulps
TOLERANCE = {"finite differences": 1e-8}


def test_lecture_derivatives_agree_across_methods():
    x1, x2, y = lecture()
    report = compare(y, [x1, x2], {x1: 2.0, x2: 5.0})
    assert [(r.x, r.method) for r in report.rows] == [(x, m) for x in ("x1", "x2") for m in METHODS]
    expected = {"x1": 1 / 2.0 + 5.0, "x2": 2.0 - math.cos(5.0)}  # 1/x1 + x2 and x1 − cos x2
    for row in report.rows:
        tolerance = TOLERANCE.get(row.method, 1e-14)
        assert row.value.shape == ()
        assert row.value == pytest.approx(expected[row.x], abs=tolerance), row
        assert row.max_error <= tolerance, row
        assert row.size > 0 and row.eval_s > 0 and row.build_s >= 0
    assert report.exact["x1"] == 5.5 and report.exact["x2"] == pytest.approx(1.7163378145367738, rel=1e-15)
    assert report.row(x2, "reverse").value == pytest.approx(1.716, abs=1e-3)


def test_report_prints_a_table():
    x1, x2, y = lecture()
    text = str(compare(y, [x1, x2], {x1: 2.0, x2: 5.0}))
    assert "x1*x2 + log(x1) - sin(x2)" in text
    lines = text.splitlines()
    assert lines[2].split() == ["x", "method", "value", "max", "|error|", "size", "build", "ms", "eval", "ms"]
    assert len(lines) == 4 + 2 * len(METHODS)
    assert any(line.startswith("x2  finite differences  1.71633781") for line in lines)


def test_tensors_with_broadcasting_agree_across_methods(rng):
    x = gc.placeholder("float64", (3, 1), name="x")
    w = gc.placeholder("float64", (None,), name="w")
    y = gc.tanh(x * w) + gc.sigmoid(w) * gc.square(x) - gc.softplus(x - 2.0)
    feeds = {x: rng.uniform(-1, 1, (3, 1)), w: rng.uniform(-1, 1, 4)}
    report = compare(y, [x, w], feeds)
    for row in report.rows:
        assert row.value.shape == feeds[x if row.x == "x" else w].shape, row
        np.testing.assert_allclose(row.value, report.exact[row.x], atol=TOLERANCE.get(row.method, 1e-13),
                                   err_msg=f"{row.x} {row.method}")
    # reverse mode's gradient of sum(y), computed independently
    (gx,) = gc.gradients(gc.reduce_sum(y), [x])
    with gc.Session() as sess:
        np.testing.assert_allclose(report.row(x, "sympy").value, sess.run(gx, feeds), rtol=1e-12)


def test_graph_size_counts_op_nodes_only():
    x1, x2, y = lecture()
    assert graph_size(y) == 5  # log, mul, add, sin, sub
    assert graph_size([x1, x2]) == 0


def test_compare_needs_placeholders():
    x1, x2, y = lecture()
    with pytest.raises(SymbolicError, match="with respect to placeholders; 'log' is a log node"):
        compare(y, [gc.get_default_graph().get("log")], {x1: 2.0, x2: 5.0})


def test_unknown_row_is_a_not_found_error():
    x1, x2, y = lecture()
    report = compare(y, [x1, x2], {x1: 2.0, x2: 5.0})
    with pytest.raises(gc.errors.NotFoundError, match="no row for x='x3'.*; rows: x='x1', method=") as caught:
        report.row("x3", "reverse")
    assert isinstance(caught.value, KeyError)
