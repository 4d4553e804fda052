"""Small helpers shared by tests."""

import inspect
import os
from pathlib import Path

import pytest

import graphc as gc


def line_of(marker: str) -> int:
    """The line number, in the calling test file, of the line that contains ``marker``."""
    path = inspect.stack()[1].filename
    with open(path) as source:
        return next(i for i, line in enumerate(source, 1) if marker in line and "line_of(" not in line)


def raising_line(info: pytest.ExceptionInfo) -> int:
    """The line of the calling test file from which the failing call into graphc was made."""
    path = Path(inspect.stack()[1].filename)
    return next(entry.lineno + 1 for entry in info.traceback if Path(entry.path) == path)


def run(fetches, feeds=None, graph=None):
    """``fetches`` evaluated once by a new numpy-backend Session of ``graph`` (default: the default graph)."""
    with gc.Session(graph, backend="numpy") as sess:
        return sess.run(fetches, feeds or {})


def placeholders(*shapes, dtype="float32"):
    """One placeholder per shape, named in0, in1, ..."""
    return [gc.placeholder(dtype, shape, name=f"in{i}") for i, shape in enumerate(shapes)]


def assert_build_error(error, build, *args, fragments=()):
    """``build(*args)`` (a one-line lambda) raises ``error`` whose message names the lambda's line, in the
    test file that defines it, and holds every fragment; returns the message."""
    with pytest.raises(error) as info:
        build(*args)
    message = str(info.value)
    code = build.__code__
    assert f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def lecture():
    """The lecture notes' y = ln x1 + x1·x2 − sin x2 in the default graph: (x1, x2, y), float64 scalars."""
    import graphc as gc

    x1 = gc.placeholder("float64", (), name="x1")
    x2 = gc.placeholder("float64", (), name="x2")
    return x1, x2, gc.log(x1) + x1 * x2 - gc.sin(x2)
