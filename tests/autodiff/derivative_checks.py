"""Finite-difference checks of an op case's vjp, jvp and second derivatives (float64).

For a case with outputs y_k and float inputs x_i, the scalar L = Σ_k ⟨w_k, y_k⟩ with fixed random w_k
turns every vjp check into a gradient check: gc.gradients(L, x_i) must equal central differences of L.
The jvp along random directions u_i must equal the directional difference of L (and ⟨∇L, u⟩), and the
gradient of ⟨∇L, v⟩ (second derivatives) must equal central differences of that scalar.
"""

from __future__ import annotations

import warnings

import numpy as np

import graphc as gc
from tests.ops.harness import OpCase, _as_tuple

EPS = 1e-6


def _float(arrays):
    return [i for i, a in enumerate(arrays) if a.dtype == np.float64]


class Problem:
    """One case built in float64: placeholders, outputs, the scalar L, and a session to evaluate with."""

    def __init__(self, case: OpCase, rng: np.random.Generator):
        self.arrays = [np.asarray(a) for a in case.make_inputs(rng)]
        self.graph = gc.Graph()
        with self.graph.as_default():
            self.inputs = [gc.placeholder(a.dtype.name, a.shape, name=f"in{i}") for i, a in enumerate(self.arrays)]
            outputs = [t for t in _as_tuple(case.build(*self.inputs)) if t.dtype in ("float32", "float64")]
            self.weights = [rng.uniform(-1, 1, size=t.shape) for t in outputs]
            self.loss = _sum([gc.reduce_sum(gc.cast(t, "float64") * w) for t, w in zip(outputs, self.weights)])
            self.outputs = outputs
        self.wrt = _float(self.arrays)
        self.session = gc.Session(self.graph)

    def evaluate(self, tensor, arrays) -> np.ndarray:
        return self.session.run(tensor, dict(zip(self.inputs, arrays)))

    def numeric_gradient(self, scalar) -> list[np.ndarray]:
        """Central differences of a scalar tensor with respect to every float input."""
        result = []
        for i in self.wrt:
            grad = np.zeros_like(self.arrays[i])
            for j in np.ndindex(self.arrays[i].shape):
                values = [a.copy() for a in self.arrays]
                values[i][j] += EPS
                up = self.evaluate(scalar, values)
                values[i][j] -= 2 * EPS
                down = self.evaluate(scalar, values)
                grad[j] = (up - down) / (2 * EPS)
            result.append(grad)
        return result

    def gradients(self, scalar) -> list:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gc.autodiff.UnconnectedGradientWarning)
            return gc.gradients(scalar, [self.inputs[i] for i in self.wrt])


def _sum(terms):
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def assert_close(actual, expected, what: str, scale: float = 1.0) -> None:
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-6 * max(1.0, scale), err_msg=what)


def check_vjp(case: OpCase, rng: np.random.Generator) -> None:
    problem = Problem(case, rng)
    symbolic = problem.evaluate(problem.gradients(problem.loss), problem.arrays)
    numeric = problem.numeric_gradient(problem.loss)
    for i, got, want in zip(problem.wrt, symbolic, numeric):
        assert got.shape == problem.arrays[i].shape, f"{case.id}: gradient of in{i} has shape {got.shape}"
        assert_close(got, want, f"{case.id}: d/d in{i}", np.abs(want).max(initial=0))


def check_jvp(case: OpCase, rng: np.random.Generator) -> None:
    problem = Problem(case, rng)
    directions = [rng.uniform(-1, 1, size=problem.arrays[i].shape) for i in problem.wrt]
    with problem.graph.as_default():
        tangents = gc.jvp(problem.outputs, [problem.inputs[i] for i in problem.wrt], directions)
        along = _sum([gc.reduce_sum(gc.cast(t, "float64") * w) for t, w in zip(tangents, problem.weights)])
    forward = problem.evaluate(along, problem.arrays)
    reverse = problem.evaluate(problem.gradients(problem.loss), problem.arrays)
    assert_close(forward, sum(np.sum(g * u) for g, u in zip(reverse, directions)), f"{case.id}: <w, J u> = <J^T w, u>")
    up = [a.copy() for a in problem.arrays]
    down = [a.copy() for a in problem.arrays]
    for i, u in zip(problem.wrt, directions):
        up[i] = up[i] + EPS * u
        down[i] = down[i] - EPS * u
    numeric = (problem.evaluate(problem.loss, up) - problem.evaluate(problem.loss, down)) / (2 * EPS)
    assert_close(forward, numeric, f"{case.id}: jvp vs finite differences", abs(numeric))


def check_second_order(case: OpCase, rng: np.random.Generator) -> None:
    problem = Problem(case, rng)
    with problem.graph.as_default():
        first = problem.gradients(problem.loss)
        probe = _sum([gc.reduce_sum(g * rng.uniform(-1, 1, size=g.shape)) for g in first])
    symbolic = problem.evaluate(problem.gradients(probe), problem.arrays)
    numeric = problem.numeric_gradient(probe)
    for i, got, want in zip(problem.wrt, symbolic, numeric):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(want).max(initial=0)),
                                   err_msg=f"{case.id}: second derivative d/d in{i}")
