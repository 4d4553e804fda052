"""Seeded random ops: ``gc.random.uniform``, ``gc.random.normal`` and ``gc.random.bernoulli``.

A random op's value is a pure function of (seed, run_count, element index) — never of the backend, the
batch of other ops, or the order kernels run in. Element ``i`` (C order) of the output at the Session's
``run_count``-th run is drawn from the counter-based generator Philox-4x32-10 (Salmon et al. 2011,
"Parallel random numbers: as easy as 1, 2, 3"; the generator of JAX, cuRAND and TF) with

    key     = (seed mod 2³², seed div 2³²)                  (seed taken mod 2⁶⁴)
    counter = (i mod 2³², i div 2³², run_count mod 2³², run_count div 2³²)

giving four 32-bit words w0 w1 w2 w3 per element. From them:

- uniform float32: u = (w0 >> 8) · 2⁻²⁴, in [0, 1); float64: u = (((w0 << 32) | w1) >> 11) · 2⁻⁵³, the
  top 53 bits of the 64-bit word w0:w1. Both are exact. Then minval + (maxval − minval) · u in the dtype,
  as two separately rounded operations (a backend must not contract them into a fused multiply-add).
- normal: Box–Muller from two uniforms of the same counter (float32: u1 from w0, u2 from w1; float64:
  u1 from w0:w1, u2 from w2:w3): z = sqrt(−2·log(1 − u1)) · cos(2π·u2), every step in the dtype (2π
  rounded to it); 1 − u1 is in (0, 1], so the log is never log 0. Then mean + stddev · z.
- bernoulli: 1 where the float32 uniform u < p, else 0 (in the dtype; True/False for bool). Since
  u = k · 2⁻²⁴ with k = w0 >> 8, this is the integer test k < ceil(p · 2²⁴).

**uniform and bernoulli are bit-identical on every backend; normal is equal up to the rounding of log,
cos and sqrt** (libm versions differ in the last ulp). ``philox4x32`` below is written so that the LLVM
and CUDA backends can mirror it line by line.

Derivatives: a random draw is treated as a constant (as in TF). Its ``like`` input supplies a shape, never
values, so the vjp gives that input no cotangent and the jvp is zero: gradients stop cleanly at a draw
instead of raising. ``x + normal(like=x)`` has derivative 1 with respect to x, and a gradient that could
only arrive through a draw is reported as unconnected (``gc.gradients``' warning names the random op).

Seeds: ``seed=None`` derives one from the graph's seed (``Graph.seed``) and the node's position in the
graph, so rebuilding the same script gives the same numbers. Each ``Session.run`` advances ``run_count``:
a random op draws new numbers every run, and a new Session replays the same sequence. Two ops with the
same explicit seed and shape draw the same numbers.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.graph.dtypes import FLOATS, as_dtype
from graphc.graph.graph import get_default_graph
from graphc.graph.node import Tensor
from graphc.graph.types import TensorType, as_shape, format_shape
from graphc.ops.convert import as_tensor
from graphc.ops.registry import OpDef, apply, register

__all__ = ["uniform", "normal", "bernoulli", "philox4x32"]

# Philox-4x32 constants (Random123): round multipliers and the Weyl key increments
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
PHILOX_ROUNDS = 10
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


# -- the generator -----------------------------------------------------------------------------------
def philox4x32(counter: tuple, key: tuple) -> tuple[np.ndarray, ...]:
    """Philox-4x32-10 of counters ``(c0, c1, c2, c3)`` under ``key`` ``(k0, k1)``; all 32-bit words.

    The words are numpy integer arrays (or ints) that broadcast together; the result is four uint32
    arrays. The 32×32 → 64-bit products are computed in uint64, split into high and low halves.
    """
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _MASK32 for c in counter)
    k0, k1 = (np.uint64(int(k) & 0xFFFFFFFF) for k in key)
    for round_index in range(PHILOX_ROUNDS):
        if round_index:  # bump the key between rounds
            k0 = (k0 + np.uint64(PHILOX_W0)) & _MASK32
            k1 = (k1 + np.uint64(PHILOX_W1)) & _MASK32
        product0 = np.uint64(PHILOX_M0) * c0
        product1 = np.uint64(PHILOX_M1) * c2
        c0, c1, c2, c3 = ((product1 >> _SHIFT32) ^ c1 ^ k0, product1 & _MASK32,
                          (product0 >> _SHIFT32) ^ c3 ^ k1, product0 & _MASK32)
    return tuple(np.asarray(c, dtype=np.uint32) for c in (c0, c1, c2, c3))


def random_words(shape: tuple[int, ...], seed: int, run_count: int) -> tuple[np.ndarray, ...]:
    """The four Philox words of every element of an array of ``shape`` (C order), as uint32 arrays."""
    index = np.arange(math.prod(shape), dtype=np.uint64).reshape(shape)
    seed, run_count = int(seed) % 2**64, int(run_count)
    counter = (index & _MASK32, index >> _SHIFT32, run_count & 0xFFFFFFFF, run_count >> 32)
    return philox4x32(counter, (seed & 0xFFFFFFFF, seed >> 32))


def unit_float32(w0: np.ndarray) -> np.ndarray:
    """Uniform float32 in [0, 1) from the top 24 bits of a word: (w0 >> 8) · 2⁻²⁴ (exact)."""
    return ((w0 >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)


def unit_float64(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Uniform float64 in [0, 1) from the top 53 bits of the 64-bit word high:low (exact)."""
    bits = (high.astype(np.uint64) << _SHIFT32) | low.astype(np.uint64)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _unit_pair(words: tuple[np.ndarray, ...], dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Two independent uniforms of ``dtype`` from one counter's words (for Box–Muller)."""
    if dtype == "float32":
        return unit_float32(words[0]), unit_float32(words[1])
    return unit_float64(words[0], words[1]), unit_float64(words[2], words[3])


def bernoulli_threshold(p: float) -> int:
    """The integer k0 with (w0 >> 8) < k0  ⇔  (w0 >> 8) · 2⁻²⁴ < p: ceil(p · 2²⁴), exact in float64."""
    return math.ceil(p * 2**24)


# -- numpy references ----------------------------------------------------------------------------------
def _draw_shape(like: tuple[np.ndarray, ...], shape: tuple | None) -> tuple[int, ...]:
    return like[0].shape if like else shape


def _uniform(*like: np.ndarray, shape: tuple | None, seed: int, dtype: str, minval: float, maxval: float,
             run_count: int) -> np.ndarray:
    words = random_words(_draw_shape(like, shape), seed, run_count)
    u = unit_float32(words[0]) if dtype == "float32" else unit_float64(words[0], words[1])
    scalar = np.dtype(dtype).type
    span = scalar(maxval) - scalar(minval)
    return scalar(minval) + span * u


def _normal(*like: np.ndarray, shape: tuple | None, seed: int, dtype: str, mean: float, stddev: float,
            run_count: int) -> np.ndarray:
    u1, u2 = _unit_pair(random_words(_draw_shape(like, shape), seed, run_count), dtype)
    scalar = np.dtype(dtype).type
    radius = np.sqrt(scalar(-2) * np.log(scalar(1) - u1))
    z = radius * np.cos(scalar(2 * math.pi) * u2)
    return scalar(mean) + scalar(stddev) * z


def _bernoulli(*like: np.ndarray, shape: tuple | None, seed: int, dtype: str, p: float,
               run_count: int) -> np.ndarray:
    w0 = random_words(_draw_shape(like, shape), seed, run_count)[0]
    return ((w0 >> np.uint32(8)) < bernoulli_threshold(p)).astype(dtype)


# -- shape and dtype rule --------------------------------------------------------------------------------
def _random_infer(op_name: str, dtypes: frozenset | None):
    """Rule shared by the random ops: output of ``dtype`` and the static ``shape`` or the ``like`` shape."""

    def infer(*like: TensorType, shape: tuple | None, dtype: str, **params: Any) -> TensorType:
        if dtypes is not None and dtype not in dtypes:
            raise DTypeError(f"{op_name} draws {' or '.join(sorted(dtypes))} values, not {dtype}")
        if like and shape is not None:
            raise ShapeError(f"{op_name}: give shape= or like=, not both")
        if like:
            return TensorType(dtype, like[0].shape)
        if shape is None:
            raise ShapeError(f"{op_name} needs shape= (a tuple of ints) or like= (a tensor)")
        if None in shape:
            raise ShapeError(f"{op_name}: shape {format_shape(shape)} has an unknown dimension; pass "
                             "like=tensor to draw an array of that tensor's run-time shape")
        return TensorType(dtype, shape)

    return infer


# a draw is a constant (module docstring): no cotangent for ``like``, whose shape only is used; a zero tangent
_CONSTANT_DRAW = {"vjp": lambda node, cotangent: (None,) * len(node.inputs), "jvp": lambda node, tangents: None}

RANDOM_UNIFORM = register(OpDef(
    "random_uniform", "random", _random_infer("random_uniform", FLOATS), _uniform, random=True, **_CONSTANT_DRAW,
    doc="Uniform values in [minval, maxval) from Philox-4x32-10 of (seed, run_count, index)."))
RANDOM_NORMAL = register(OpDef(
    "random_normal", "random", _random_infer("random_normal", FLOATS), _normal, random=True, **_CONSTANT_DRAW,
    doc="Normal values (Box–Muller) from Philox-4x32-10 of (seed, run_count, index)."))
RANDOM_BERNOULLI = register(OpDef(
    "random_bernoulli", "random", _random_infer("random_bernoulli", None), _bernoulli, random=True, **_CONSTANT_DRAW,
    doc="1 with probability p, else 0, from Philox-4x32-10 of (seed, run_count, index)."))


# -- public functions ------------------------------------------------------------------------------------
def _build(op: OpDef, shape: Any, like: Any, seed: int | None, dtype: Any, name: str | None,
           **params: float) -> Tensor:
    inputs = [as_tensor(like)] if like is not None else []
    graph = inputs[0].graph if inputs else get_default_graph()
    if seed is None:
        seed = derived_seed(graph.seed, len(graph.nodes))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return apply(op, inputs, name, shape=None if shape is None else as_shape(shape),
                 seed=int(seed) % 2**64, dtype=as_dtype(dtype), **params)


def derived_seed(graph_seed: int, position: int) -> int:
    """The seed of a random op built without one: a 64-bit hash of (graph seed, node position).

    A stable hash (not Python's ``hash``), so the same script gives the same numbers in every process.
    """
    digest = hashlib.blake2b(f"graphc.random:{graph_seed}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def uniform(shape: Any = None, minval: float = 0.0, maxval: float = 1.0, dtype: Any = "float32",
            seed: int | None = None, like: Any = None, name: str | None = None) -> Tensor:
    """Uniform random values in [minval, maxval): new ones each ``Session.run``, reproducible per seed.

    Give exactly one of ``shape`` (a static tuple of ints) or ``like`` (a tensor whose run-time shape the
    result takes, e.g. a batch of shape (None, 784)). ``dtype`` is float32 or float64. Bit-identical on
    every backend (see the module docstring for the exact recipe). Rounding of minval + span·u may give
    maxval itself when the span is not a power of two.
    """
    return _build(RANDOM_UNIFORM, shape, like, seed, dtype, name, minval=float(minval), maxval=float(maxval))


def normal(shape: Any = None, mean: float = 0.0, stddev: float = 1.0, dtype: Any = "float32",
           seed: int | None = None, like: Any = None, name: str | None = None) -> Tensor:
    """Normal random values mean + stddev·z (Box–Muller); new ones each run, reproducible per seed.

    Give exactly one of ``shape`` or ``like`` (as in ``uniform``). ``dtype`` is float32 or float64.
    Equal on every backend up to the rounding of log, cos and sqrt.
    """
    return _build(RANDOM_NORMAL, shape, like, seed, dtype, name, mean=float(mean), stddev=float(stddev))


def bernoulli(shape: Any = None, p: float = 0.5, dtype: Any = "float32", seed: int | None = None,
              like: Any = None, name: str | None = None) -> Tensor:
    """1 with probability ``p``, else 0, in ``dtype`` (any dtype; bool gives True/False).

    Give exactly one of ``shape`` or ``like`` (as in ``uniform``): ``bernoulli(like=x, p=0.9)`` is a
    dropout keep-mask for a batch ``x`` of any size. Bit-identical on every backend.
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ArgumentError(f"gc.random.bernoulli: p must be in [0, 1], got {p}")
    return _build(RANDOM_BERNOULLI, shape, like, seed, dtype, name, p=p)
