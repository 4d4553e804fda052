"""``gc.init``: initial values for variables, as numpy arrays (``gc.Variable(gc.init.he_normal((3, 3, 16, 32)))``).

Initial values are computed once, on the host, when the graph is built, so they are plain numpy arrays
rather than random ops: a Variable stores its initial value as a constant and a Session reads it on first
use. ``seed`` is an int (reproducible), a ``numpy.random.Generator`` (draws continue from it), or None (fresh
entropy each call).

Fans follow Keras: a Dense kernel (in, out) has fan_in = in, fan_out = out; a convolution kernel in HWIO
layout (KH, KW, C, F) has fan_in = KH·KW·C and fan_out = KH·KW·F (every axis before the last two is a
receptive-field axis). A vector (n,) counts as fan_in = fan_out = n, a scalar as 1.

Scaled initializers (Glorot & Bengio 2010, "Xavier"; He et al. 2015):

    glorot_uniform  U[−limit, limit], limit = √(6 / (fan_in + fan_out))   (Glorot & Bengio 2010, "Xavier")
    glorot_normal   N(0, σ²), σ = √(2 / (fan_in + fan_out))                (plain, not truncated, normal)
    he_uniform      U[−limit, limit], limit = √(6 / fan_in)
    he_normal       N(0, σ²), σ = √(2 / fan_in)                            (plain, not truncated, normal)

The normal variants draw a plain normal (as torch's ``xavier_normal_``/``kaiming_normal_``), so σ is exactly
the standard deviation of the values; Keras truncates at 2σ and rescales instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, DTypeError
from graphc.graph.dtypes import FLOATS, as_dtype
from graphc.graph.types import is_int

__all__ = ["zeros", "ones", "constant", "uniform", "normal", "glorot_uniform", "glorot_normal", "he_uniform",
           "he_normal", "orthogonal", "fans"]

Seed = int | np.random.Generator | None


def _shape(shape: Any, initializer: str) -> tuple[int, ...]:
    """``shape`` (an int or a sequence of non-negative ints) as a tuple; ArgumentError naming the initializer."""
    dims = (shape,) if is_int(shape) else tuple(shape) if isinstance(shape, (tuple, list)) else None
    if dims is None or not all(is_int(d) and d >= 0 for d in dims):
        raise ArgumentError(f"gc.init.{initializer}: shape must be a tuple of non-negative ints (a variable's "
                            f"shape is fully known), got {shape!r}")
    return tuple(int(d) for d in dims)


def _float_dtype(dtype: Any, initializer: str) -> str:
    name = as_dtype(dtype)
    if name not in FLOATS:
        raise DTypeError(f"gc.init.{initializer} draws floating-point values: dtype must be float32 or float64, "
                         f"got {name}")
    return name


def _generator(seed: Seed) -> np.random.Generator:
    if isinstance(seed, bool) or not (seed is None or is_int(seed) or isinstance(seed, np.random.Generator)):
        raise ArgumentError(f"gc.init: seed must be an int, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(seed)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel: Dense (in, out), or HWIO conv (KH, KW, C, F) → (KH·KW·C, KH·KW·F)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(shape: Any, dtype: Any = "float32") -> np.ndarray:
    """An array of zeros (the usual bias initializer)."""
    return np.zeros(_shape(shape, "zeros"), as_dtype(dtype))


def ones(shape: Any, dtype: Any = "float32") -> np.ndarray:
    """An array of ones (a normalization layer's initial scale gamma)."""
    return np.ones(_shape(shape, "ones"), as_dtype(dtype))


def constant(value: Any, shape: Any, dtype: Any = "float32") -> np.ndarray:
    """An array of ``shape`` filled with ``value`` (e.g. a forget-gate bias of 1)."""
    return np.full(_shape(shape, "constant"), value, as_dtype(dtype))


def uniform(shape: Any, minval: float = -0.05, maxval: float = 0.05, seed: Seed = None,
            dtype: Any = "float32") -> np.ndarray:
    """Values drawn uniformly from [minval, maxval)."""
    if not minval <= maxval:
        raise ArgumentError(f"gc.init.uniform: minval {minval} is above maxval {maxval}")
    dims, dtype = _shape(shape, "uniform"), _float_dtype(dtype, "uniform")
    return _generator(seed).uniform(minval, maxval, dims).astype(dtype)


def normal(shape: Any, mean: float = 0.0, stddev: float = 0.05, seed: Seed = None,
           dtype: Any = "float32") -> np.ndarray:
    """Values drawn from the normal distribution N(mean, stddev²)."""
    if not stddev >= 0:
        raise ArgumentError(f"gc.init.normal: stddev must be >= 0, got {stddev}")
    dims, dtype = _shape(shape, "normal"), _float_dtype(dtype, "normal")
    return _generator(seed).normal(mean, stddev, dims).astype(dtype)


def _scaled(name: str, shape: Any, numerator: float, fan: str, distribution: str, seed: Seed,
            dtype: Any) -> np.ndarray:
    """U[−√(numerator/n), +√(numerator/n)] or N(0, numerator/n), n = fan_in or fan_in + fan_out."""
    dims, dtype = _shape(shape, name), _float_dtype(dtype, name)
    fan_in, fan_out = fans(dims)
    n = fan_in if fan == "in" else fan_in + fan_out
    scale = math.sqrt(numerator / max(n, 1))
    rng = _generator(seed)
    values = rng.uniform(-scale, scale, dims) if distribution == "uniform" else rng.normal(0.0, scale, dims)
    return values.astype(dtype)


def glorot_uniform(shape: Any, seed: Seed = None, dtype: Any = "float32") -> np.ndarray:
    """Xavier uniform: U[−√(6/(fan_in+fan_out)), +√(6/(fan_in+fan_out))]; keeps activation variance steady
    forward and backward through tanh/linear layers."""
    return _scaled("glorot_uniform", shape, 6.0, "in+out", "uniform", seed, dtype)


def glorot_normal(shape: Any, seed: Seed = None, dtype: Any = "float32") -> np.ndarray:
    """Xavier normal: a plain (not truncated) normal with standard deviation √(2/(fan_in+fan_out))."""
    return _scaled("glorot_normal", shape, 2.0, "in+out", "normal", seed, dtype)


def he_uniform(shape: Any, seed: Seed = None, dtype: Any = "float32") -> np.ndarray:
    """He uniform: U[−√(6/fan_in), +√(6/fan_in)]; the variance ReLU layers need (half the units are zero)."""
    return _scaled("he_uniform", shape, 6.0, "in", "uniform", seed, dtype)


def he_normal(shape: Any, seed: Seed = None, dtype: Any = "float32") -> np.ndarray:
    """He normal: a plain (not truncated) normal with standard deviation √(2/fan_in), for ReLU layers."""
    return _scaled("he_normal", shape, 2.0, "in", "normal", seed, dtype)


def orthogonal(shape: Any, gain: float = 1.0, seed: Seed = None, dtype: Any = "float32") -> np.ndarray:
    """A (semi-)orthogonal matrix times ``gain``: keeps the norm of signals through deep or recurrent stacks.

    The shape is viewed as a matrix (prod(shape[:-1]), shape[-1]); its columns are orthonormal when it has at
    least as many rows as columns (QᵀQ = I), else its rows are (QQᵀ = I). Q comes from the QR decomposition of
    a normal matrix, with the signs of R's diagonal moved into Q so that Q is uniformly (Haar) distributed.
    """
    dims, dtype = _shape(shape, "orthogonal"), _float_dtype(dtype, "orthogonal")
    if len(dims) < 2:
        raise ArgumentError(f"gc.init.orthogonal needs a shape of rank >= 2, got {dims}")
    rows, cols = math.prod(dims[:-1]), dims[-1]
    matrix = _generator(seed).normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(matrix)
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # sign correction: without it Q is biased, not Haar
    if rows < cols:
        q = q.T
    return (gain * q).reshape(dims).astype(dtype)

