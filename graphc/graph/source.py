"""Capture the user's source line that created a node, so errors can point at the user's code."""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class SourceLine:
    """A file, a line number and the text of that line."""

    file: str
    line: int
    code: str = ""

    def __str__(self) -> str:
        try:
            shown = os.path.relpath(self.file)
        except ValueError:  # another drive on Windows
            shown = self.file
        if shown.startswith(".." + os.sep):
            shown = self.file
        return f"{shown}:{self.line}"


UNKNOWN = SourceLine("<unknown>", 0)


class _Override(threading.local):
    def __init__(self) -> None:
        self.stack: list[SourceLine] = []


_override = _Override()


@contextlib.contextmanager
def source_override(source: SourceLine) -> Iterator[None]:
    """Attribute the nodes built in the block to ``source``: a pass that rebuilds or rewrites a user's node
    keeps pointing at the user's line, not at the pass."""
    _override.stack.append(source)
    try:
        yield
    finally:
        _override.stack.pop()


def user_source_line() -> SourceLine:
    """The innermost stack frame outside the graphc package: where the user's code called into graphc."""
    if _override.stack:
        return _override.stack[-1]
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE_DIR + os.sep):
            code = linecache.getline(filename, frame.f_lineno).strip()
            return SourceLine(filename, frame.f_lineno, code)
        frame = frame.f_back
    return UNKNOWN
