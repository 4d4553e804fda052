"""The GRAPHC_* environment variables, read in this one place and turned into values.

API.md lists them: GRAPHC_OPT_EXCLUDE (comma-separated passes or rules to switch off), GRAPHC_VERIFY=1
(verify every optimization pass), GRAPHC_CHECK_NUMERICS=1 (check every run for NaN/Inf), GRAPHC_CACHE_DIR
(where compiled code is cached on disk; ``off``, ``0`` or ``none`` switches the disk cache off), GRAPHC_LOG
(comma-separated topics to print to stderr: ``compile`` reports every compilation, why and how long each stage
took). They are read
when asked for, not at import, so a program (or a test) may set them at any time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_CACHE_OFF = ("off", "0", "none")


@dataclass(frozen=True)
class Environment:
    opt_exclude: frozenset[str]
    verify: bool
    check_numerics: bool
    cache_dir: Path | None  # None: the disk cache is off
    log: frozenset[str]  # GRAPHC_LOG topics


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _cache_dir() -> Path | None:
    """GRAPHC_CACHE_DIR, else $XDG_CACHE_HOME/graphc (the XDG spec ignores a relative one), else
    ~/.cache/graphc; None when GRAPHC_CACHE_DIR says off or there is no home to put the cache in."""
    value = os.environ.get("GRAPHC_CACHE_DIR", "").strip()
    if value.lower() in _CACHE_OFF:
        return None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    try:
        if value:
            return Path(value).expanduser()
        if xdg and Path(xdg).is_absolute():
            return Path(xdg) / "graphc"
        return Path.home() / ".cache" / "graphc"
    except RuntimeError:  # "~" with no HOME and no passwd entry
        return None


def _names(variable: str) -> frozenset[str]:
    return frozenset(n.strip() for n in os.environ.get(variable, "").split(",") if n.strip())


def check_numerics() -> bool:
    """GRAPHC_CHECK_NUMERICS alone: read on every Session.run, so without building the whole Environment."""
    return _flag("GRAPHC_CHECK_NUMERICS")


def current() -> Environment:
    """The settings the environment holds now."""
    return Environment(_names("GRAPHC_OPT_EXCLUDE"), _flag("GRAPHC_VERIFY"), check_numerics(),
                       _cache_dir(), _names("GRAPHC_LOG"))
