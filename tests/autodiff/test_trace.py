"""gc.trace reproduces the lecture notes' traces of y = ln x1 + x1·x2 − sin x2 at (2, 5), number by number."""

import re
import unicodedata

import numpy as np
import pytest

import graphc as gc


@pytest.fixture
def lecture():
    g = gc.Graph()
    with g.as_default():
        x1 = gc.placeholder("float64", (), name="x1")
        x2 = gc.placeholder("float64", (), name="x2")
        y = gc.log(x1) + x1 * x2 - gc.sin(x2)
    return y, x1, x2, {x1: 2.0, x2: 5.0}


def _rounded(value):
    return round(float(value), 3)


def _lines(text):
    """The printed lines with runs of spaces collapsed, so tests do not depend on column widths (and in NFC,
    so a ȳ typed as one character matches)."""
    return [unicodedata.normalize("NFC", re.sub(" +", " ", line.strip())) for line in text.splitlines()]


PRIMAL = [  # (v, expression, value as the lecture prints it)
    ("v-1", "x₁", 2), ("v0", "x₂", 5), ("v1", "ln v₋₁", 0.693), ("v2", "v₋₁ × v₀", 10), ("v3", "sin v₀", -0.959),
    ("v4", "v₁ + v₂", 10.693), ("v5", "v₄ − v₃", 11.652),
]


def test_forward_primal_trace(lecture):
    y, x1, x2, at = lecture
    table = gc.trace(y, at)
    assert [row.name for row in table] == [name for name, _, _ in PRIMAL]
    for name, expression, value in PRIMAL:
        assert table[name].expression == expression
        assert _rounded(table[name].value) == value
    assert _rounded(table["y"].value) == 11.652 and table["y"] is table["v5"]
    assert table["x1"] is table["v-1"] is table["v₋₁"] is table[x1]
    assert table["v1"].operands == ("v-1",) and table["v2"].operands == ("v-1", "v0")
    lines = _lines(str(table))
    assert lines[0] == "Forward primal trace"
    assert "v₋₁ = x₁ = 2" in lines and "v₀ = x₂ = 5" in lines
    assert "v₁ = ln v₋₁ = ln 2 = 0.693" in lines
    assert "v₂ = v₋₁ × v₀ = 2 × 5 = 10" in lines
    assert "v₃ = sin v₀ = sin 5 = -0.959" in lines
    assert "v₄ = v₁ + v₂ = 0.693 + 10 = 10.693" in lines
    assert "v₅ = v₄ − v₃ = 10.693 − (-0.959) = 11.652" in lines
    assert lines[-1] == "y = v₅ = 11.652"
    assert table["v3"].tangent is None and table["v3"].adjoint is None


def test_forward_tangent_trace(lecture):
    y, x1, x2, at = lecture
    table = gc.trace(y, at, mode="forward", wrt=x1)
    tangents = {"v-1": 1, "v0": 0, "v1": 0.5, "v2": 5, "v3": 0, "v4": 5.5, "v5": 5.5}
    for name, tangent in tangents.items():
        assert _rounded(table.tangent(name)) == tangent, name
    assert table.tangent("y") == pytest.approx(0.5 + 5.0)
    assert table["v2"].partials == (5.0, 2.0)  # ∂v₂/∂v₋₁ = v₀, ∂v₂/∂v₀ = v₋₁
    lines = _lines(table.tangent_text())
    assert lines[0] == "Forward tangent trace (∂/∂x₁)"
    assert "v̇₋₁ = ẋ₁ = 1" in lines and "v̇₀ = ẋ₂ = 0" in lines
    assert "v̇₁ = v̇₋₁ ∂v₁/∂v₋₁ = 1 × 0.5 = 0.5" in lines
    assert "v̇₂ = v̇₋₁ ∂v₂/∂v₋₁ + v̇₀ ∂v₂/∂v₀ = 1 × 5 + 0 × 2 = 5" in lines
    assert "v̇₃ = v̇₀ ∂v₃/∂v₀ = 0 × 0.284 = 0" in lines
    assert "v̇₅ = v̇₄ ∂v₅/∂v₄ + v̇₃ ∂v₅/∂v₃ = 5.5 × 1 + 0 × (-1) = 5.5" in lines
    assert lines[-1] == "ẏ = v̇₅ = 5.5"
    assert str(table) == table.primal_text() + "\n\n" + table.tangent_text()


def test_tangent_with_respect_to_x2(lecture):
    y, x1, x2, at = lecture
    table = gc.trace(y, at, mode="forward", wrt=x2)
    assert table.tangent("x1") == 0 and table.tangent("x2") == 1
    assert _rounded(table.tangent("y")) == 1.716


def test_reverse_adjoint_trace(lecture):
    y, x1, x2, at = lecture
    table = gc.trace(y, at, mode="reverse")
    adjoints = {"v5": 1, "v4": 1, "v3": -1, "v2": 1, "v1": 1, "v0": 1.716, "v-1": 5.5}
    for name, adjoint in adjoints.items():
        assert _rounded(table.adjoint(name)) == adjoint, name
    assert table.adjoint("x1") == pytest.approx(2 * 0 + 5 + 0.5)
    assert table.adjoint("x2") == pytest.approx(2 - np.cos(5.0))
    # the sweep in the lecture's order: v̄ᵢ (+)= v̄ₖ ∂vₖ/∂vᵢ, with each contribution and running total
    steps = [(s.target, s.source, _rounded(s.contribution), _rounded(s.total), s.first) for s in table.steps]
    assert steps == [
        ("v4", "v5", 1, 1, True), ("v3", "v5", -1, -1, True), ("v1", "v4", 1, 1, True), ("v2", "v4", 1, 1, True),
        ("v0", "v3", -0.284, -0.284, True), ("v-1", "v2", 5, 5, True), ("v0", "v2", 2, 1.716, False),
        ("v-1", "v1", 0.5, 5.5, False),
    ]
    lines = _lines(table.adjoint_text())
    assert lines[0] == "Reverse adjoint trace (ȳ = 1)"
    assert "v̄₅ = ȳ = 1" in lines
    assert "v̄₃ = v̄₅ ∂v₅/∂v₃ = 1 × (-1) = -1" in lines
    assert "v̄₀ = v̄₃ ∂v₃/∂v₀ = -1 × 0.284 = -0.284" in lines
    assert "v̄₋₁ = v̄₂ ∂v₂/∂v₋₁ = 1 × 5 = 5" in lines
    assert "v̄₀ = v̄₀ + v̄₂ ∂v₂/∂v₀ = -0.284 + 1 × 2 = 1.716" in lines
    assert "v̄₋₁ = v̄₋₁ + v̄₁ ∂v₁/∂v₋₁ = 5 + 1 × 0.5 = 5.5" in lines
    assert lines[-2:] == ["x̄₁ = v̄₋₁ = 5.5", "x̄₂ = v̄₀ = 1.716"]


def test_derivatives_come_from_graphc_passes(lecture):
    y, x1, x2, at = lecture
    gc.trace(y, at, mode="forward", wrt=x1)
    gc.trace(y, at, mode="reverse")
    scopes = {node.name.split("/")[1] for node in y.graph.nodes if node.name.startswith("trace/")}
    assert {"jvp", "gradients"} <= scopes


def test_tangent_with_respect_to_an_intermediate(lecture):
    y, x1, x2, at = lecture
    v2 = y.node.inputs[0].node.inputs[1]  # x1 * x2
    table = gc.trace(y, at, mode="forward", wrt=v2)
    assert table.tangent("x1") == 0 and table.tangent("v2") == 1 and table.tangent("y") == 1


def test_variables_and_a_given_session():
    g = gc.Graph()
    with g.as_default():
        w = gc.Variable(np.float64(3.0), name="w")
        x = gc.placeholder("float64", (), name="x")
        y = w * x * x
        with gc.Session(g) as sess:
            sess.run(gc.assign(w, 4.0))
            table = gc.trace(y, {x: 2.0}, mode="reverse", session=sess)
    assert [row.name for row in table.inputs] == ["v-1", "v0"] and table["w"].value == 4.0
    assert table.adjoint("w") == 4.0 and table.adjoint("x") == 16.0  # x², 2wx


def test_constants_print_as_literals_and_where_stays_safe():
    g = gc.Graph()
    with g.as_default():
        s = gc.placeholder("float64", (), name="s")
        y = gc.where(s > 0, gc.log(s), 0.0) * 3.0 - 1.5
    table = gc.trace(y, {s: 0.0}, mode="reverse")
    assert table["v4"].expression == "v₃ × 3" and table["v5"].expression == "v₄ − 1.5"
    assert table["v1"].expression == "greater(v₀, 0)" and table["v1"].value == np.False_
    assert table.adjoint("s") == 0  # the untaken log branch contributes exactly 0, not NaN
    assert "v̄₀ = v̄₂ ∂v₂/∂v₀ = 0 × inf = 0" in _lines(str(table))


def test_tensors_trace_elementwise():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (2,), name="x")
        y = gc.reduce_sum(gc.sin(x) * x)
    table = gc.trace(y, {x: [0.5, 2.0]}, mode="reverse")
    np.testing.assert_allclose(table.adjoint("x"), np.cos([0.5, 2.0]) * [0.5, 2.0] + np.sin([0.5, 2.0]))
    assert table["v1"].value.shape == (2,) and table["v2"].partials == ()
    text = str(table)
    assert "v₁ = sin v₀ = [0.479, 0.909]" in _lines(text)
    assert "x̄ = v̄₀ = [0.918, 0.077]" in _lines(text)


def test_errors(lecture):
    y, x1, x2, at = lecture
    with pytest.raises(ValueError, match="mode must be one of"):
        gc.trace(y, at, mode="sideways")
    with y.graph.as_default():
        elsewhere = gc.placeholder("float64", (), name="elsewhere")
    with pytest.raises(gc.errors.GradientError, match="'elsewhere' is not a tensor that"):
        gc.trace(y, at, mode="forward", wrt=elsewhere)
    table = gc.trace(y, at)
    with pytest.raises(KeyError, match="no row 'v9'"):
        table["v9"]
    with pytest.raises(ValueError, match="no tangents"):
        table.tangent_text()
    with pytest.raises(ValueError, match="no adjoints"):
        table.adjoint_text()


def test_an_input_used_twice_by_one_op_gets_two_steps():
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", (), name="x")
        y = x * x
    table = gc.trace(y, {x: 3.0}, mode="reverse")
    assert [(s.target, s.source, float(s.contribution), float(s.partial), float(s.total)) for s in table.steps] == [
        ("v0", "v1", 3.0, 3.0, 3.0), ("v0", "v1", 3.0, 3.0, 6.0)]
    assert "v̄₀ = v̄₀ + v̄₁ ∂v₁/∂v₀ = 3 + 1 × 3 = 6" in _lines(str(table))
    forward = gc.trace(y, {x: 3.0}, mode="forward", wrt=x)
    assert "v̇₁ = v̇₀ ∂v₁/∂v₀ + v̇₀ ∂v₁/∂v₀ = 1 × 3 + 1 × 3 = 6" in _lines(str(forward))


def test_lookups_and_bad_arguments_are_graphc_errors(lecture):
    y, x1, x2, at = lecture
    table = gc.trace(y, at)
    with pytest.raises(gc.errors.NotFoundError, match="no row 'v9'; rows: v") as caught:
        table["v9"]
    assert isinstance(caught.value, KeyError) and not str(caught.value).startswith('"')  # not a quoted repr
    with y.graph.as_default():
        elsewhere = gc.placeholder("float64", (), name="elsewhere")
    with pytest.raises(gc.errors.NotFoundError, match="'elsewhere' is not in the trace of .*; rows: v"):
        table[elsewhere]
    for call, match in ((table.tangent_text, "no tangents"), (table.adjoint_text, "no adjoints"),
                        (lambda: gc.trace(y, at, mode="sideways"), "mode must be one of")):
        with pytest.raises(gc.errors.ArgumentError, match=match) as caught:
            call()
        assert isinstance(caught.value, ValueError)
