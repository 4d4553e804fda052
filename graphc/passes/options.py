"""Optimization settings as one value; the environment is read here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OptimizeOptions:
    """``level`` 0 (copy only), 1 (cheap cleanups) or 2 (the full pipeline and fusion planning);
    ``exclude``: names of passes or rules to switch off; ``verify``: check every pass on random inputs."""

    level: int = 2
    exclude: frozenset[str] = field(default_factory=frozenset)
    verify: bool = False

    @classmethod
    def from_environment(cls, level: int = 2, exclude: tuple[str, ...] | list[str] = (),
                         verify: bool | None = None) -> OptimizeOptions:
        """Merge the arguments with GRAPHC_OPT_EXCLUDE (comma-separated names) and GRAPHC_VERIFY=1."""
        if level not in (0, 1, 2):
            raise ValueError(f"optimization level must be 0, 1 or 2, got {level!r}")
        from_env = {n.strip() for n in os.environ.get("GRAPHC_OPT_EXCLUDE", "").split(",") if n.strip()}
        if verify is None:
            verify = os.environ.get("GRAPHC_VERIFY", "") not in ("", "0")
        return cls(level, frozenset(exclude) | from_env, bool(verify))
