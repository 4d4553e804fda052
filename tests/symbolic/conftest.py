"""Fixtures for the gc.symbolic tests."""

import pytest

import graphc as gc


@pytest.fixture(autouse=True)
def fresh_graph():
    """Each test builds into a new, empty default graph."""
    with gc.Graph().as_default() as graph:
        yield graph
