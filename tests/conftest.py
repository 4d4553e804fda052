"""Test-wide settings: a fresh random seed per test session, overridable for reproducing a failure."""

import os
import random

import numpy as np
import pytest

SEED = int(os.environ.get("GRAPHC_TEST_SEED", random.SystemRandom().randrange(2**31)))


def pytest_report_header(config):
    return f"graphc random inputs: GRAPHC_TEST_SEED={SEED} (set it to reproduce this run)"


@pytest.fixture
def rng(request):
    """A generator seeded from the session seed and the test's id: fresh inputs each run, reproducible."""
    return np.random.default_rng([SEED, abs(hash(request.node.nodeid)) % 2**31])
