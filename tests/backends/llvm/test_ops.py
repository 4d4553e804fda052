"""Every op case of the registry on the llvm backend, against plain numpy: static and unknown (None) dims,
contiguous and strided feeds."""

import pytest

from tests.ops.harness import check_case
from tests.ops.test_ops import ALL_CASES


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_op_matches_numpy_on_llvm(case, rng):
    check_case(case, rng, backend="llvm")


@pytest.mark.parametrize("case", ALL_CASES[::7], ids=lambda c: c.id)
def test_op_with_strided_feeds(case, rng):
    check_case(case, rng, backend="llvm", strided=True)
