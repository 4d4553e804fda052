"""The GRAPHC_* environment variables, read in this one place and turned into values.

API.md lists them: GRAPHC_OPT_EXCLUDE (comma-separated passes or rules to switch off), GRAPHC_VERIFY=1
(verify every optimization pass), GRAPHC_CHECK_NUMERICS=1 (check every run for NaN/Inf). They are read when
asked for, not at import, so a program (or a test) may set them at any time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Environment:
    opt_exclude: frozenset[str]
    verify: bool
    check_numerics: bool


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def current() -> Environment:
    """The settings the environment holds now."""
    excluded = frozenset(n.strip() for n in os.environ.get("GRAPHC_OPT_EXCLUDE", "").split(",") if n.strip())
    return Environment(excluded, _flag("GRAPHC_VERIFY"), _flag("GRAPHC_CHECK_NUMERICS"))
