"""``gc.data``: minibatches of in-memory arrays.

``for xb, yb in gc.data.batches((x, y), 32, seed=0):`` is one epoch: consecutive slices of a permutation of the
rows, the last (short) batch kept, so every row is seen exactly once. A graph whose placeholders have a None
batch dimension runs every batch, the short one included, with one compiled executable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, ShapeError

__all__ = ["batches", "num_batches"]


def num_batches(n: int, batch_size: int) -> int:
    """How many batches ``batches`` yields for ``n`` rows: the last short batch counts."""
    _check_batch_size(batch_size)
    return -(-int(n) // batch_size)


def batches(arrays: np.ndarray | Sequence[np.ndarray], batch_size: int, shuffle: bool = True,
            seed: int | np.random.Generator | None = None) -> Iterator[Any]:
    """One epoch of minibatches of ``arrays`` (one array, or a tuple/list of arrays with equal first dimension).

    Yields a tuple of batch arrays (a single array when given one array). ``shuffle`` permutes the rows with
    ``np.random.default_rng(seed)``: an int gives the same order every call, a Generator a new order each call
    (what a training loop wants from epoch to epoch).
    """
    _check_batch_size(batch_size)  # checked now, not at the first batch: the error points at the call
    single = not isinstance(arrays, (tuple, list))
    columns = [np.asarray(arrays)] if single else [np.asarray(a) for a in arrays]
    n = _common_length(columns)
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    return _slices(columns, n, batch_size, order, single)


def _slices(columns: list[np.ndarray], n: int, batch_size: int, order: np.ndarray | None,
            single: bool) -> Iterator[Any]:
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
        batch = tuple(column[rows] for column in columns)
        yield batch[0] if single else batch


def _common_length(columns: list[np.ndarray]) -> int:
    if not columns:
        raise ArgumentError("batches: give at least one array")
    lengths = [len(c) if c.ndim else None for c in columns]
    if None in lengths or len(set(lengths)) != 1:
        shapes = ", ".join(str(c.shape) for c in columns)
        raise ShapeError(f"batches: the arrays must have the same first dimension (one row per example); "
                         f"got shapes {shapes}")
    return lengths[0]


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
