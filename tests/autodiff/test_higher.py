"""gc.jacobian and gc.hessian against closed forms; their modes, shapes and errors."""

import warnings

import numpy as np
import pytest

import graphc as gc
from tests.helpers import run


def _graph():
    g = gc.Graph()
    return g, g.as_default()


@pytest.mark.parametrize("mode", ["auto", "reverse", "forward"])
def test_jacobian_of_an_elementwise_map_times_a_sum(mode, rng):
    # f_i = sin(x_i) · Σ x²  →  ∂f_i/∂x_j = δ_ij cos(x_i) Σx² + sin(x_i) 2 x_j
    point = rng.uniform(-1, 1, size=3)
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (3,), name="x")
        J = gc.jacobian(gc.sin(x) * gc.reduce_sum(x * x), x, mode=mode)
    assert J.shape == (3, 3)
    expected = np.diag(np.cos(point)) * np.sum(point**2) + np.outer(np.sin(point), 2 * point)
    np.testing.assert_allclose(run(J, {x: point}, g), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_jacobian_shape_is_y_shape_then_x_shape(mode, rng):
    # y = W x for a (2, 3) matrix W: ∂y_i/∂W_jk = δ_ij x_k
    x_value = rng.uniform(-1, 1, size=3)
    g, scope = _graph()
    with scope:
        W = gc.placeholder("float64", (2, 3), name="W")
        y = gc.reduce_sum(W * gc.constant(x_value), axis=1)
        J = gc.jacobian(y, W, mode=mode)
    assert J.shape == (2, 2, 3)
    expected = np.einsum("ij,k->ijk", np.eye(2), x_value)
    np.testing.assert_allclose(run(J, {W: rng.uniform(size=(2, 3))}, g), expected, atol=1e-15)


def test_jacobian_with_matmul_and_tanh(rng):
    # h = tanh(A x): ∂h/∂x = diag(1 − h²) A
    A_value, point = rng.uniform(-1, 1, size=(4, 3)), rng.uniform(-1, 1, size=(3, 1))
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (3, 1), name="x")
        h = gc.tanh(gc.matmul(gc.constant(A_value), x))
        J_rev, J_fwd = gc.jacobian(h, x, mode="reverse"), gc.jacobian(h, x, mode="forward")
    h_value = np.tanh(A_value @ point)
    expected = ((1 - h_value**2) * A_value).reshape(4, 1, 3, 1)
    rev, fwd = run([J_rev, J_fwd], {x: point}, g)
    np.testing.assert_allclose(rev, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fwd, expected, rtol=1e-12, atol=1e-14)


def _scopes_built(build) -> set[str]:
    g, scope = _graph()
    with scope:
        build()
    return {node.name.split("/")[1] for node in g.nodes if node.name.startswith("jacobian/")}


def test_auto_mode_uses_fewer_passes():
    def tall():  # 1 output, 5 inputs: one reverse pass
        x = gc.placeholder("float64", (5,), name="x")
        gc.jacobian(gc.reduce_sum(gc.exp(x)), x)

    def wide():  # 5 outputs, 1 input: one forward pass
        s = gc.placeholder("float64", (), name="s")
        gc.jacobian(gc.exp(s * gc.constant(np.ones(5))), s)

    assert "gradients" in _scopes_built(tall) and "jvp" not in _scopes_built(tall)
    assert "jvp" in _scopes_built(wide) and "gradients" not in _scopes_built(wide)


def test_scalar_jacobian_is_the_derivative():
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (), name="x")
        J = gc.jacobian(x * x * x, x)
    assert J.shape == ()
    assert run(J, {x: 2.0}, g) == pytest.approx(12.0)


@pytest.mark.parametrize("mode", ["auto", "reverse", "forward"])
def test_hessian_of_a_cubic_and_a_square_of_a_sum(mode, rng):
    # s = Σx³/3 + (Σx)²/2  →  H = diag(2x) + 1
    point = rng.uniform(-2, 2, size=4)
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (4,), name="x")
        H = gc.hessian(gc.reduce_sum(x * x * x) / 3 + gc.square(gc.reduce_sum(x)) / 2, x, mode=mode)
    assert H.shape == (4, 4)
    np.testing.assert_allclose(run(H, {x: point}, g), np.diag(2 * point) + 1, rtol=1e-12, atol=1e-12)


def test_hessian_of_transcendental_functions(rng):
    # s = Σ exp(x) · Σ x  →  H_ij = δ_ij e_i Σx + e_i + e_j
    point = rng.uniform(-1, 1, size=3)
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (3,), name="x")
        H = gc.hessian(gc.reduce_sum(gc.exp(x)) * gc.reduce_sum(x), x)
    e = np.exp(point)
    expected = np.diag(e * point.sum()) + e[:, None] + e[None, :]
    np.testing.assert_allclose(run(H, {x: point}, g), expected, rtol=1e-12)


def test_hessian_of_a_quadratic_form_with_matmul(rng):
    # s = xᵀ A x  →  H = A + Aᵀ (for a (3, 1) column x, H has shape (3, 1, 3, 1))
    A_value = rng.uniform(-1, 1, size=(3, 3))
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (3, 1), name="x")
        s = gc.reduce_sum(gc.matmul(gc.transpose(x), gc.matmul(gc.constant(A_value), x)))
        H = gc.hessian(s, x)
    result = run(H, {x: rng.uniform(size=(3, 1))}, g)
    np.testing.assert_allclose(result.reshape(3, 3), A_value + A_value.T, rtol=1e-12, atol=1e-14)


def test_hessian_of_a_linear_function_is_zero_without_a_warning():
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (2,), name="x")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            H = gc.hessian(gc.reduce_sum(3.0 * x), x)
    np.testing.assert_array_equal(run(H, {x: [1.0, 2.0]}, g), np.zeros((2, 2)))


def test_hessian_needs_a_scalar():
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (2,), name="x")
        with pytest.raises(gc.errors.ShapeError, match=r"needs a scalar y.*shape \[2\]"):
            gc.hessian(x * x, x)


def test_unknown_shapes_are_named():
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (None, 3), name="batch")
        named = r"x 'batch' \(created at .*test_higher.py:\d+\) has shape \[\?,3\]"
        with pytest.raises(gc.errors.ShapeError, match=named):
            gc.jacobian(gc.reduce_sum(x), x)
        with pytest.raises(gc.errors.ShapeError, match=r"y 'exp' .* has shape \[\?,3\]"):
            gc.jacobian(gc.exp(x), gc.placeholder("float64", (), name="s"))


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_unconnected_jacobian_follows_gradients_conventions(mode):
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (2,), name="x")
        other = gc.placeholder("float64", (3,), name="other")
        y = gc.exp(other)
        with pytest.warns(gc.autodiff.UnconnectedGradientWarning, match="'x' .* is not an input of 'exp'"):
            J = gc.jacobian(y, x, mode=mode)
        assert J.shape == (3, 2)
        assert gc.jacobian(y, x, mode=mode, unconnected="none") is None
        with pytest.raises(gc.errors.GradientError, match="no path leads from it"):
            gc.jacobian(y, x, mode=mode, unconnected="raise")
    np.testing.assert_array_equal(run(J, {other: np.ones(3)}, g), np.zeros((3, 2)))


def test_jacobian_through_a_stop_gradient_names_it():
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (2,), name="x")
        with pytest.raises(gc.errors.GradientError, match="stop_gradient"):
            gc.jacobian(gc.exp(gc.stop_gradient(x)), x, mode="reverse", unconnected="raise")


def test_empty_tensors_have_empty_jacobians():
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (0, 2), name="x")
        J = gc.jacobian(gc.exp(x), x)
    assert J.shape == (0, 2, 0, 2) and run(J, {x: np.zeros((0, 2))}, g).shape == (0, 2, 0, 2)


def test_bad_arguments():
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (2,), name="x")
        with pytest.raises(ValueError, match="mode must be one of"):
            gc.jacobian(x, x, mode="sideways")
        with pytest.raises(ValueError, match="unconnected must be one of"):
            gc.hessian(gc.reduce_sum(x), x, unconnected="maybe")
        with pytest.raises(gc.errors.GradientError, match="must be one tensor"):
            gc.jacobian([x, x], x)
        with pytest.raises(gc.errors.GradientError, match="float tensors only"):
            gc.jacobian(x, gc.placeholder("int64", (2,), name="n"))


def test_bad_arguments_are_argument_errors():
    g, scope = _graph()
    with scope:
        x = gc.placeholder("float64", (2,), name="x")
        for call, match in ((lambda: gc.jacobian(x, x, mode="sideways"), "mode must be one of"),
                            (lambda: gc.jacobian(x, x, unconnected="maybe"), "unconnected must be one of"),
                            (lambda: gc.hessian(gc.reduce_sum(x), x, unconnected="maybe"), "unconnected must be"),
                            (lambda: gc.gradients(gc.reduce_sum(x), x, unconnected="maybe"), "unconnected must")):
            with pytest.raises(gc.errors.ArgumentError, match=match) as caught:
                call()
            assert isinstance(caught.value, ValueError)
