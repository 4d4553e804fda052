"""Checking and converting a feed_dict before anything runs.

A value may be converted to the placeholder's dtype when that keeps its kind (float64 data into a
float32 placeholder, a Python list into any placeholder, int64 labels that fit into int32); a float into
an int or bool placeholder is an error. The arrays handed to backends are read-only views, so nothing a
backend does can change the user's data. A GPU array (``__cuda_array_interface__``) stays where it is, as a
``DeviceArray`` of exactly the placeholder's dtype (graphc/backends/cuda/arrays.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from graphc.backends.cuda.arrays import DeviceArray, device_feed
from graphc.errors import DTypeError, FeedError
from graphc.graph.graph import Graph
from graphc.graph.node import Node, Tensor
from graphc.graph.types import format_shape, shape_matches
from graphc.ops.sources import PLACEHOLDER


def check_feeds(graph: Graph, feed_dict: Mapping[Any, Any] | None) -> dict[Node, np.ndarray]:
    """Validate every feed; return placeholder node -> read-only array of the placeholder's dtype (or a
    DeviceArray of it)."""
    if feed_dict is not None and not isinstance(feed_dict, Mapping):
        raise FeedError(f"feed_dict must be a dict from placeholders to values, got {type(feed_dict).__name__}")
    feeds: dict[Node, np.ndarray] = {}
    for key, value in (feed_dict or {}).items():
        tensor = _feed_target(graph, key)
        feeds[tensor.node] = _convert(tensor, value)
    return feeds


def _feed_target(graph: Graph, key: Any) -> Tensor:
    if isinstance(key, str):
        key = graph.get(key)
    if not isinstance(key, Tensor):
        raise FeedError(f"feed_dict keys must be placeholders, got {key!r}")
    if key.graph is not graph:
        raise FeedError(f"cannot feed '{key.name}' (created at {key.node.source}): it belongs to another "
                        "graph than the session's")
    if key.node.op is not PLACEHOLDER:
        raise FeedError(f"cannot feed '{key.name}': it is a {key.node.op.name} node (created at "
                        f"{key.node.source}), and only placeholders can be fed")
    return key


def _convert(placeholder: Tensor, value: Any) -> np.ndarray:
    def where() -> str:  # built only for an error: it formats the user's source line
        return f"placeholder '{placeholder.name}' ({placeholder.type}, created at {placeholder.node.source})"

    if isinstance(value, DeviceArray) or hasattr(value, "__cuda_array_interface__"):  # GPU memory, read in place
        feed = device_feed(value, np.dtype(placeholder.dtype), where)
        _check_shape(placeholder, feed.shape, where)
        return feed
    try:
        source = np.asarray(value)
    except ValueError as error:  # a ragged nested list
        raise FeedError(f"{where()} was fed a value that is not a rectangular array: {error}") from None
    target = np.dtype(placeholder.dtype)
    if source.dtype == object or not np.can_cast(source.dtype, target, "same_kind"):
        raise DTypeError(f"{where()} was fed a value of dtype {source.dtype}, which does not convert to "
                         f"{target} without changing its kind; cast it first")
    if target.kind == "i" and source.dtype.kind in "iu" and not np.can_cast(source.dtype, target) \
            and source.size and not _fits(source, target):
        raise DTypeError(f"{where()} was fed {source.dtype} values outside the range of {target}")
    _check_shape(placeholder, source.shape, where)
    array = source.astype(target, copy=False).view()
    array.flags.writeable = False
    return array


def _check_shape(placeholder: Tensor, shape: tuple[int, ...], where: Callable[[], str]) -> None:
    if not shape_matches(placeholder.shape, shape):
        raise FeedError(f"{where()} was fed shape {format_shape(shape)}; expected "
                        f"{format_shape(placeholder.shape)} (? = any size)")


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return bool(values.min() >= info.min and values.max() <= info.max)
