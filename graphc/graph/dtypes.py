"""The dtypes graphc knows, how Python values map to them, and how two dtypes combine.

Promotion follows the lattice an ML user expects (JAX and TF rather than numpy value rules):
bool < int32 < int64 < float32 < float64, so an int tensor combined with a float tensor takes the
float's dtype (int64 + float32 -> float32, not numpy's float64). Python scalars are *weak*: they take the
dtype of the tensor they meet (``x * 2.0`` stays float32; ``i + 1`` stays int32), except that a Python
float meeting an integer tensor gives the default float, float32.
"""

from __future__ import annotations

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.source import user_source_line

DTYPES = ("bool", "int32", "int64", "float32", "float64")
FLOATS = frozenset({"float32", "float64"})
INTS = frozenset({"int32", "int64"})
NUMERIC = FLOATS | INTS
ALL = frozenset(DTYPES)
DEFAULT_FLOAT = "float32"
DEFAULT_INT = "int64"

_RANK = {name: rank for rank, name in enumerate(DTYPES)}


def as_dtype(value: object) -> str:
    """Return the canonical dtype name of a name, numpy dtype or Python type; raise DTypeError otherwise."""
    if value is float:
        return DEFAULT_FLOAT
    if value is int:
        return DEFAULT_INT
    if value is bool:
        return "bool"
    try:
        name = np.dtype(value).name  # type: ignore[call-overload]
    except TypeError:
        name = None
    if name not in _RANK:
        raise DTypeError(f"unsupported dtype {value!r}; graphc supports {', '.join(DTYPES)}")
    return name


def promote(*dtypes: str) -> str:
    """The dtype two or more operands combine to (the highest on bool < int32 < int64 < float32 < float64)."""
    return max(dtypes, key=_RANK.__getitem__)


def python_scalar_dtype(value: object, partner: str | None) -> str:
    """The dtype of a weakly typed Python scalar combined with a tensor of dtype ``partner``."""
    if isinstance(value, bool):
        return partner if partner is not None else "bool"
    if isinstance(value, int):
        return partner if partner is not None and partner != "bool" else DEFAULT_INT
    if isinstance(value, float):
        return partner if partner in FLOATS else DEFAULT_FLOAT
    raise DTypeError(f"cannot use {type(value).__name__} {value!r} as a tensor value")


def as_array(value: object) -> np.ndarray:
    """``np.asarray(value)``, with a ShapeError instead of numpy's ValueError for a ragged nested list."""
    try:
        return np.asarray(value)
    except ValueError as error:
        raise ShapeError(f"cannot make a tensor of {value!r} (at {user_source_line()}): it is not a rectangular "
                         f"array ({error})") from None


def infer_value_dtype(value: object) -> str:
    """The dtype ``gc.constant(value)`` gets without an explicit dtype.

    numpy arrays keep their dtype (float64 stays float64, as in TF1); Python floats and nested lists of them
    become float32, Python ints int64, Python bools bool.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        return as_dtype(value.dtype)
    array = as_array(value)
    if array.dtype.kind == "f":
        return DEFAULT_FLOAT
    if array.dtype.kind in "iu":
        return DEFAULT_INT
    if array.dtype.kind == "b":
        return "bool"
    raise DTypeError(f"cannot make a tensor of {type(value).__name__} {value!r} (at {user_source_line()})")
