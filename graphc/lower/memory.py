"""The memory plan: temporaries packed into one arena, sized at run time from the dims.

Every temporary has a lifetime (the first and last kernel that touch it, both inclusive, so a kernel's inputs
and outputs never share memory); two temporaries may share bytes when their lifetimes do not overlap. Sizes
depend on run-time dims, so the plan is made per dims signature (by first fit, largest first) and cached by
the executable: a training loop plans once per distinct batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.lower.ir import Buffer, evaluate_size

ALIGNMENT = 64  # bytes: a cache line, and the widest vector load


def _aligned(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_arena(temps: Sequence[Buffer], lifetimes: dict[Buffer, tuple[int, int]],
               dims: Sequence[int]) -> tuple[list[int], int]:
    """Byte offsets of ``temps`` in one arena, and the arena's size."""
    sizes = [_aligned(evaluate_size(b.size, dims) * np.dtype(b.dtype).itemsize) for b in temps]
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets = [0] * len(temps)
    for i in sorted(range(len(temps)), key=lambda i: -sizes[i]):
        first, last = lifetimes[temps[i]]
        busy = sorted((start, end) for start, end, f, l in placed if f <= last and first <= l)
        offset = 0
        for start, end in busy:
            if offset + sizes[i] <= start:
                break
            offset = max(offset, end)
        offsets[i] = offset
        placed.append((offset, offset + sizes[i], first, last))
    return offsets, max((end for _, end, _, _ in placed), default=0)
