"""TensorType: a dtype and a shape whose entries are ints or None (known only when fed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from graphc.errors import ShapeError
from graphc.graph.dtypes import as_dtype

Shape = tuple  # tuple[int | None, ...]


def as_shape(shape: Iterable[int | None] | int) -> Shape:
    """Normalize a user's shape to a tuple of non-negative ints and Nones."""
    if is_int(shape):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"a shape must be a tuple of ints and None, got {shape!r}") from None
    for dim in dims:
        if dim is not None and (not is_int(dim) or dim < 0):
            raise ShapeError(f"a shape must be a tuple of non-negative ints and None, got {shape!r}")
    return tuple(int(d) if d is not None else None for d in dims)


def is_int(value: object) -> bool:
    """A Python or numpy integer (``x.shape[1]``, ``np.prod(...)``), but not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def format_shape(shape: Shape) -> str:
    """`[?,784]` style: compact, and `?` for a dimension known only at run time."""
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def shape_matches(static: Shape, concrete: tuple[int, ...]) -> bool:
    """Whether a concrete array shape fits a static shape (None matches any size)."""
    return len(static) == len(concrete) and all(s is None or s == c for s, c in zip(static, concrete))


def broadcast_shapes(*shapes: Shape) -> Shape:
    """numpy broadcasting on static shapes; an unknown dim meeting a known one takes the known size
    (unless that is 1). Raises ShapeError when two known sizes differ and neither is 1."""
    rank = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(rank):
        dims = [s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            listed = " and ".join(format_shape(s) for s in shapes)
            raise ShapeError(f"shapes {listed} do not broadcast (axis {axis - rank}: sizes {sorted(known)})")
        if known:
            result.append(known.pop())
        elif None in dims:
            result.append(None)
        else:
            result.append(1)
    return tuple(result)


@dataclass(frozen=True)
class TensorType:
    """The static type of a tensor: dtype name and shape (None entries are unknown until fed)."""

    dtype: str
    shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", as_dtype(self.dtype))
        object.__setattr__(self, "shape", as_shape(self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{format_shape(self.shape)}"
