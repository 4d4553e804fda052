"""Symbolic differentiation (sympy) versus graphc's automatic differentiation.

1. The lecture's y = ln x1 + x1·x2 − sin x2 as a sympy expression, its closed-form derivatives, and a graph
   built back from one of them.
2. gc.symbolic.compare: sympy raw and after cse, reverse mode, forward mode and finite differences side
   by side — value, error against sympy at 50 digits, size, build and evaluation time — on the lecture's
   function and on the nested tanh of tensors.
3. Expression swell on the lecture's nested tanh, depth 1…8: sympy's raw derivative roughly doubles per
   level, the AD graph grows by a constant number of nodes.
"""

import numpy as np
import sympy

import graphc as gc
from graphc import symbolic


def lecture_function() -> None:
    x1 = gc.placeholder("float64", (), name="x1")
    x2 = gc.placeholder("float64", (), name="x2")
    y = gc.log(x1) + x1 * x2 - gc.sin(x2)
    expr = symbolic.to_sympy(y)
    d1, d2 = (sympy.diff(expr, symbolic.symbol(x)) for x in (x1, x2))
    print(f"y = {expr}\n∂y/∂x1 = {d1}\n∂y/∂x2 = {d2}")
    dy_dx2 = symbolic.from_sympy(d2, [x1, x2])  # sympy's derivative as graph ops
    with gc.Session() as sess:
        print(f"y(2, 5) = {sess.run(y, {x1: 2.0, x2: 5.0}):.3f}; "
              f"∂y/∂x2 from the sympy graph = {sess.run(dy_dx2, {x1: 2.0, x2: 5.0}):.3f}\n")
    print(symbolic.compare(y, [x1, x2], {x1: 2.0, x2: 5.0}), end="\n\n")


def nested_tanh() -> None:
    # tensors are treated elementwise: u and v broadcast to a 2×3 z; each method gives ∂(sum z)/∂u and ∂/∂v
    u = gc.placeholder("float64", (3,), name="u")
    v = gc.placeholder("float64", (2, 1), name="v")
    z = symbolic.nested_tanh(u, v, depth=2)
    print(symbolic.compare(z, [u, v], {u: np.array([0.3, -0.1, 0.8]), v: np.array([[-0.2], [0.5]])}), end="\n\n")
    print(symbolic.swell_table(range(1, 9)))


if __name__ == "__main__":
    lecture_function()
    nested_tanh()
