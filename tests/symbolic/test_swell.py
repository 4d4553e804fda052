"""Expression swell on the lecture's nested tanh: sympy's raw derivative grows superlinearly with the
depth, the AD graphs (and sympy's derivative after cse) grow linearly."""

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.symbolic import nested_tanh, swell_table, symbol, to_sympy

DEPTHS = range(1, 8)


@pytest.fixture(scope="module")
def table():
    return swell_table(DEPTHS, repeats=1)


def test_depth_one_is_the_lecture_function():
    x = gc.placeholder("float64", (), name="x")
    y = gc.placeholder("float64", (), name="y")
    sx, sy = symbol(x), symbol(y)
    lecture = 0.2 * sympy.tanh(3 * sx + 2 * sy) - 0.3 * sympy.tanh(5 * sx - 3 * sy)
    assert sympy.simplify(to_sympy(nested_tanh(x, y, 1)) - lecture) == 0


def test_sympy_raw_size_grows_superlinearly(table):
    raw = table.sizes("sympy")
    growth = np.diff(raw)
    assert all(np.diff(growth) > 0), raw  # convex: every level adds more than the last
    assert all(b / a > 2 for a, b in zip(raw[1:], raw[2:])), raw  # at least doubling from depth 2 on
    assert raw[-1] > 50 * table.sizes("reverse")[-1]


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_ad_graph_grows_linearly(table, method):
    sizes = table.sizes(method)
    assert len(set(np.diff(sizes))) == 1, sizes  # the same number of nodes per level


def test_sympy_after_cse_grows_about_linearly(table):
    steps = np.diff(table.sizes("sympy+cse"))
    assert steps.max() <= 1.2 * steps.min(), steps


def test_every_depth_agrees_with_the_exact_derivative(table):
    for report in table.reports:
        for row in report.rows:
            assert row.max_error < (1e-8 if row.method == "finite differences" else 1e-14), row


def test_table_prints_sizes_times_and_errors(table):
    text = str(table)
    assert text.count("depth") == 3
    sizes = text.split("\n\n")[0].splitlines()
    assert sizes[1].split()[:3] == ["depth", "z:", "sympy"]
    assert sizes[3].split()[:1] == ["1"] and len(sizes) == 3 + len(DEPTHS)
