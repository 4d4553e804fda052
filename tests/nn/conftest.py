"""Every test of tests/nn builds into a new, empty default graph: layer names and ``update_ops`` are per graph."""

import pytest

import graphc as gc


@pytest.fixture(autouse=True)
def fresh_graph():
    with gc.Graph().as_default() as graph:
        yield graph
