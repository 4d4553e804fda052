"""Registry-driven derivative tests: every differentiable op's vjp, jvp and second derivatives against
float64 finite differences, on the float64 cases of tests/ops (random inputs, broadcasting included)."""

import numpy as np
import pytest

from graphc.ops.registry import REGISTRY
from tests.autodiff.derivative_checks import check_jvp, check_second_order, check_vjp
from tests.ops.harness import _as_tuple
from tests.ops.test_ops import ALL_CASES

# ops whose derivative cannot be checked by finite differences of a reference, with the reason
NOT_FINITE_DIFFERENCED = {
    "random_uniform": "a new draw every run", "random_normal": "a new draw every run",
    "random_bernoulli": "a new draw every run",
    "stop_gradient": "its derivative is 0 by definition (tests/autodiff/test_gradients.py)",
    "one_hot": "no float input: an index has no derivative (tests/ops/test_shape.py)",
}
# differentiable ops whose vjp is not itself differentiable everywhere the cases go
NO_SECOND_ORDER: set[str] = set()
MAX_ELEMENTS = 40  # finite differences cost two runs per element


def _differentiable(case) -> bool:
    return case.op.vjp is not None and case.op.name not in NOT_FINITE_DIFFERENCED


def _float64_cases():
    for case in ALL_CASES:
        if not _differentiable(case):
            continue
        arrays = case.make_inputs(np.random.default_rng(0))
        floats = [a for a in arrays if np.asarray(a).dtype == np.float64]
        outputs = [np.asarray(o) for o in _as_tuple(case.expected(*arrays))]
        wide = all(o.dtype != np.float32 for o in outputs)  # float32 rounding swamps a 1e-6 difference
        small = 0 < sum(np.size(a) for a in floats) <= MAX_ELEMENTS  # empty inputs have nothing to perturb
        if floats and wide and small and case.extra.get("derivatives", True):
            yield case


CASES = list(_float64_cases())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_vjp_matches_finite_differences(case, rng):
    check_vjp(case, rng)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_jvp_matches_finite_differences_and_vjp(case, rng):
    check_jvp(case, rng)


@pytest.mark.parametrize("case", [c for c in CASES if c.op.name not in NO_SECOND_ORDER], ids=lambda c: c.id)
def test_second_derivatives(case, rng):
    check_second_order(case, rng)


def test_every_differentiable_op_is_checked():
    checked = {case.op.name for case in CASES}
    differentiable = {name for name, op in REGISTRY.items() if op.vjp is not None}
    assert sorted(differentiable - checked - set(NOT_FINITE_DIFFERENCED)) == []
