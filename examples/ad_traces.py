"""The lecture notes' automatic-differentiation traces, computed by graphc, then a jacobian and a hessian.

y = ln(x1) + x1·x2 − sin(x2) at (x1, x2) = (2, 5):

1. the forward primal trace (v₋₁ = x₁ = 2, …, y = 11.652);
2. the forward tangent trace for ∂/∂x1 (ẏ = 5.5), from gc.jvp;
3. the reverse adjoint trace (x̄₁ = 5.5, x̄₂ = 1.716), from gc.gradients and each op's vjp;
4. gc.jacobian and gc.hessian of small functions next to their closed forms, and gc.check_gradients.
"""

import numpy as np

import graphc as gc


def lecture_traces() -> None:
    g = gc.Graph()
    with g.as_default():
        x1 = gc.placeholder("float64", shape=(), name="x1")
        x2 = gc.placeholder("float64", shape=(), name="x2")
        y = gc.log(x1) + x1 * x2 - gc.sin(x2)
    at = {x1: 2.0, x2: 5.0}

    forward = gc.trace(y, at, mode="forward", wrt=x1)
    reverse = gc.trace(y, at, mode="reverse")
    print("== y = ln(x1) + x1*x2 - sin(x2) at (x1, x2) = (2, 5) ==\n")
    print(forward.primal_text(), end="\n\n")
    print(forward.tangent_text(), end="\n\n")
    print(reverse.adjoint_text(), end="\n\n")
    print(f"dy/dx1 = {forward.tangent('y'):.3f} (forward), {reverse.adjoint('x1'):.3f} (reverse); "
          f"dy/dx2 = {reverse.adjoint('x2'):.3f}")
    assert np.isclose(forward.tangent("y"), 0.5 + 5.0) and np.isclose(reverse.adjoint("x2"), 2.0 - np.cos(5.0))


def jacobian_and_hessian() -> None:
    point = np.array([0.5, -1.0, 2.0])
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", shape=(3,), name="x")
        f = gc.exp(x) * gc.reduce_sum(x)  # f: R³ → R³, f_i = exp(x_i) · Σx
        s = gc.reduce_sum(x * x * x) / 3 + gc.square(gc.reduce_sum(x)) / 2  # s: R³ → R
        jacobian, hessian = gc.jacobian(f, x), gc.hessian(s, x)
    with gc.Session(g) as sess:
        J, H = sess.run([jacobian, hessian], {x: point})
    J_exact = np.diag(np.exp(point)) * point.sum() + np.exp(point)[:, None]
    H_exact = np.diag(2 * point) + 1
    print("\n== gc.jacobian(f, x), f_i(x) = exp(x_i)·Σx, at x = (0.5, -1, 2) ==")
    print(f"graphc (3 reverse passes, one per element of f):\n{np.round(J, 6)}")
    print(f"closed form diag(exp x)·Σx + exp(x_i) in every column j:\n{np.round(J_exact, 6)}")
    print("\n== gc.hessian(s, x), s(x) = Σx³/3 + (Σx)²/2, at x = (0.5, -1, 2) ==")
    print(f"graphc (reverse over reverse):\n{np.round(H, 6)}\nclosed form diag(2x) + 1:\n{np.round(H_exact, 6)}")
    assert np.allclose(J, J_exact) and np.allclose(H, H_exact)

    print("\n== gc.check_gradients(f, x): reverse mode against central differences ==")
    report = gc.check_gradients(f, x, {x: point})
    print(report)
    assert report.ok


if __name__ == "__main__":
    lecture_traces()
    jacobian_and_hessian()
