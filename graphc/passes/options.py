"""Optimization settings as one value (the environment's part comes from graphc.environment)."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphc import environment
from graphc.errors import ArgumentError


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
            raise ArgumentError(f"optimization level must be 0, 1 or 2, got {level!r}")
        settings = environment.current()
        verify = settings.verify if verify is None else bool(verify)
        return cls(level, frozenset(exclude) | settings.opt_exclude, verify)
