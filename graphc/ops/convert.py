"""Turning user operands (tensors, Python scalars, numpy arrays) into tensors of one dtype.

Elementwise ops see operands of a single dtype: the builders insert explicit ``cast`` nodes, so every
backend only implements same-dtype arithmetic and the cast is visible in dumps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.graph.dtypes import as_array, as_dtype, promote, python_scalar_dtype
from graphc.graph.graph import Graph, get_default_graph
from graphc.graph.node import Tensor
from graphc.ops.sources import constant


def as_tensor(value: Any, dtype: Any = None, graph: Graph | None = None) -> Tensor:
    """``value`` itself if it is a tensor (cast to ``dtype`` when given), else a new constant."""
    if isinstance(value, Tensor):
        return cast(value, dtype) if dtype is not None else value
    with (graph or get_default_graph()).as_default():
        return constant(value, dtype)


def cast(x: Tensor, dtype: Any) -> Tensor:
    """``x`` converted to ``dtype``; no node is built when it already has that dtype."""
    from graphc.ops.elementwise import cast as cast_op

    return x if x.dtype == as_dtype(dtype) else cast_op(x, dtype)


def is_weak(value: Any) -> bool:
    """Python scalars are weakly typed: they adopt the dtype of the tensors they meet."""
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def common_operands(*values: Any, dtype: Any = None) -> list[Tensor]:
    """Convert operands to tensors of one dtype (``dtype`` if given, else the promoted dtype)."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    graph = tensors[0].graph if tensors else get_default_graph()
    strong = [v.dtype if isinstance(v, Tensor) else as_dtype(as_array(v).dtype.name
                                                             if not is_weak(v) else type(v))
              for v in values if not is_weak(v)]
    if dtype is not None:
        target = as_dtype(dtype)
    elif strong:
        target = promote(*strong)
    else:
        target = promote(*(python_scalar_dtype(v, None) for v in values))
    converted = []
    for value in values:
        if is_weak(value):
            value = as_tensor(value, python_scalar_dtype(value, target), graph)
        converted.append(as_tensor(value, graph=graph))
    if dtype is None:
        target = promote(*(t.dtype for t in converted))
    return [cast(t, target) for t in converted]
