"""Where values enter a graph: placeholders (fed at run time) and constants (stored in the node).

Neither has inputs, so neither needs a derivative rule: a gradient stops at a source, which may itself be
one of the ``xs`` of ``gc.gradients`` (its cotangent is the result).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.dtypes import as_array, as_dtype, infer_value_dtype
from graphc.graph.node import Tensor
from graphc.graph.source import user_source_line
from graphc.graph.types import TensorType, as_shape
from graphc.ops.registry import OpDef, apply, register

PLACEHOLDER = register(OpDef(
    "placeholder", "sources",
    infer=lambda *, dtype, shape: TensorType(dtype, shape),
    reference=None,
    doc="A value fed through feed_dict at run time; None dimensions take any size."))

CONSTANT = register(OpDef(
    "constant", "sources",
    infer=lambda *, value: TensorType(value.dtype.name, value.shape),
    reference=lambda *, value: value,
    doc="A value stored in the graph (a read-only numpy array)."))


def placeholder(dtype: Any = "float32", shape: Any = None, name: str | None = None) -> Tensor:
    """A tensor whose value is fed at run time: ``gc.placeholder("float32", shape=(None, 784))``.

    ``None`` entries are dimensions of any size (the batch); the rank must be known, so ``shape=None``
    is rejected — graphc compiles loop nests whose depth is fixed when the graph is built.
    """
    if shape is None:
        raise ShapeError("gc.placeholder needs a shape: use () for a scalar and None for a dimension of "
                         "any size, e.g. shape=(None, 784)")
    return apply(PLACEHOLDER, [], name, dtype=as_dtype(dtype), shape=as_shape(shape))


def constant(value: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    """A tensor holding ``value``. Python floats become float32, ints int64; numpy arrays keep their dtype."""
    return apply(CONSTANT, [], name, value=constant_array(value, dtype))


def constant_array(value: Any, dtype: Any = None) -> np.ndarray:
    """``value`` as a read-only numpy array of graphc's dtype for it; a value that does not fit is an error."""
    target = as_dtype(dtype) if dtype is not None else infer_value_dtype(value)
    source = as_array(value)
    if source.dtype == object:
        raise DTypeError(f"cannot make a constant of {type(value).__name__} {value!r} (at {user_source_line()})")
    array = source.astype(target)
    if source.dtype.kind == "f" and array.dtype.kind in "iub" and not np.array_equal(array, source):
        raise DTypeError(f"constant {value!r} (at {user_source_line()}) does not fit dtype {target} without losing "
                         "its value")
    array.flags.writeable = False
    return array
