"""Runs every op case of every family, and checks that every registered op has cases."""

import pytest

from graphc.ops.registry import REGISTRY
from tests.ops import (
    cases_broadcast,
    cases_conv,
    cases_elementwise,
    cases_linalg,
    cases_nn,
    cases_pool,
    cases_random,
    cases_reduce,
    cases_shape,
)
from tests.ops.harness import check_case

FAMILIES = [cases_elementwise, cases_broadcast, cases_reduce, cases_shape, cases_linalg, cases_nn, cases_conv,
            cases_pool, cases_random]
ALL_CASES = [case for family in FAMILIES for case in family.CASES]

# ops whose value does not come from a reference applied to inputs: tested in tests/runtime
TESTED_ELSEWHERE = {"placeholder", "constant", "variable", "assign", "assign_add", "group"}


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_op_matches_numpy(case, rng):
    check_case(case, rng)


def test_every_op_has_cases():
    covered = {case.op.name for case in ALL_CASES} | TESTED_ELSEWHERE
    assert sorted(set(REGISTRY) - covered) == []
