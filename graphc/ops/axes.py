"""Axis arguments, checked and normalized in one place for every op family.

An axis attribute is handled in two steps, with the same function:

1. The public function (``gc.reduce_sum``, ``gc.concat``, ``gc.nn.softmax``, ...) stores the attribute
   through ``canonical(normalize, value, ...)``: a valid value is normalized (negative axes made
   non-negative, a set of axes sorted), so equal nodes have equal attributes and dumps are canonical; an
   invalid value is stored unchanged, because an error raised there would name neither the node nor the
   user's source line.
2. The op's shape rule (``infer``) calls ``normalize`` again. ``apply`` runs it and re-raises its error with
   the node's name, its input types and the user's line; on an already normalized value it is idempotent.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from graphc.errors import GraphcError, ShapeError
from graphc.graph.types import is_int

__all__ = ["is_int", "normalize_axis", "distinct_axes", "normalize_axes", "canonical"]


def normalize_axis(axis: Any, rank: int) -> int:
    """One axis of a rank-``rank`` tensor as a non-negative Python int (negative counts from the end).

    ShapeError when ``axis`` is not an integer (bools are not) or is out of range; the message shows the
    valid range.
    """
    if isinstance(axis, (bool, np.bool_)):
        raise ShapeError(f"an axis must be an int, got {axis!r}")
    try:
        index = operator.index(axis)
    except TypeError:
        raise ShapeError(f"an axis must be an int, got {axis!r}") from None
    if not -rank <= index < rank:
        valid = f"valid axes are {-rank}..{rank - 1}" if rank else "a scalar has no axes"
        raise ShapeError(f"axis {index} is out of range for rank {rank} ({valid})")
    return index % rank


def distinct_axes(axes: Any, rank: int) -> tuple[int, ...]:
    """An axis or a tuple or list of axes as a tuple of non-negative axes in the given order; an axis given
    twice (also as 1 and -2 of rank 3) is a ShapeError."""
    given = tuple(axes) if isinstance(axes, (tuple, list)) else (axes,)
    normalized = tuple(normalize_axis(a, rank) for a in given)
    for position, axis in enumerate(normalized):
        first = normalized.index(axis)
        if first != position:
            raise ShapeError(f"axis {given[position]} repeats axis {given[first]} (rank {rank})")
    return normalized


def normalize_axes(axis: Any, rank: int) -> tuple[int, ...]:
    """``axis`` (None for all axes, an int or a sequence of ints) as a sorted tuple of distinct axes."""
    return tuple(range(rank)) if axis is None else tuple(sorted(distinct_axes(axis, rank)))


def canonical(normalize: Callable[..., Any], value: Any, *args: Any) -> Any:
    """``normalize(value, *args)`` when ``value`` is valid, else ``value`` unchanged (step 1 above).

    The shape rule normalizes again (step 2): on a bad value it raises inside ``apply``, so the message
    names the node and the user's line. No node ever stores an unnormalized valid value.
    """
    try:
        return normalize(value, *args)
    except GraphcError:
        return value
