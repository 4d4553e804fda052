"""Cases for the random ops, with expected values from a pure-Python-int Philox-4x32-10.

``philox_reference`` below is written from the paper and Random123's ``philox.h`` with plain Python ints,
independently of graphc's vectorized numpy version, so the cases check the vectorized generator, the
counter layout (index, run_count) and the key layout (seed) together. ``check_case`` runs each op once in
a fresh Session, so run_count is 0.
"""

import math

import numpy as np

import graphc as gc
from graphc.ops import random
from tests.ops.harness import OpCase

MASK32 = 0xFFFFFFFF
MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
WEYL = (0x9E3779B9, 0xBB67AE85)


def philox_reference(counter, key, rounds=10):
    """Philox-4x32 on Python ints: returns the four 32-bit output words."""
    x0, x1, x2, x3 = counter
    k0, k1 = key
    for round_index in range(rounds):
        if round_index > 0:
            k0, k1 = (k0 + WEYL[0]) & MASK32, (k1 + WEYL[1]) & MASK32
        product0, product1 = MULTIPLIERS[0] * x0, MULTIPLIERS[1] * x2
        x0, x1, x2, x3 = ((product1 >> 32) ^ x1 ^ k0, product1 & MASK32,
                          (product0 >> 32) ^ x3 ^ k1, product0 & MASK32)
    return x0, x1, x2, x3


def element_words(seed, run_count, index):
    """The words of element ``index``: counter (index lo, index hi, run lo, run hi), key (seed lo, hi)."""
    counter = (index & MASK32, index >> 32, run_count & MASK32, run_count >> 32)
    return philox_reference(counter, (seed & MASK32, seed >> 32))


def unit32(w0):
    return (w0 >> 8) / 2**24  # exact in float32


def unit64(high, low):
    return (((high << 32) | low) >> 11) / 2**53  # exact in float64


def expected_uniform(shape, seed, dtype="float32", minval=0.0, maxval=1.0, run_count=0):
    scalar = np.dtype(dtype).type
    values = []
    for index in range(math.prod(shape)):
        w = element_words(seed, run_count, index)
        u = unit32(w[0]) if dtype == "float32" else unit64(w[0], w[1])
        # two roundings in the dtype, as the module docstring specifies (no fused multiply-add)
        values.append(scalar(minval) + (scalar(maxval) - scalar(minval)) * scalar(u))
    return np.array(values, dtype=dtype).reshape(shape)


def expected_normal(shape, seed, dtype="float32", mean=0.0, stddev=1.0, run_count=0):
    values = []
    for index in range(math.prod(shape)):
        w = element_words(seed, run_count, index)
        u1, u2 = (unit32(w[0]), unit32(w[1])) if dtype == "float32" else (unit64(w[0], w[1]), unit64(w[2], w[3]))
        values.append(mean + stddev * math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2))
    return np.array(values, dtype=np.float64).reshape(shape).astype(dtype)


def expected_bernoulli(shape, seed, p, dtype="float32", run_count=0):
    values = [unit32(element_words(seed, run_count, i)[0]) < p for i in range(math.prod(shape))]
    return np.array(values).reshape(shape).astype(dtype)


EXACT = {"rtol": 0.0, "atol": 0.0}
# the reference computes Box–Muller in float32; a float32 angle 2π·u2 is off by up to ~1e-6
NORMAL32 = {"rtol": 1e-5, "atol": 1e-5}
NORMAL64 = {"rtol": 1e-12, "atol": 1e-12}


def _zeros(shape, dtype="float32"):
    return lambda rng: [np.zeros(shape, dtype)]


CASES: list = [
    OpCase(random.RANDOM_UNIFORM, build=lambda: gc.random.uniform((3, 4), seed=7), make_inputs=lambda rng: [],
           expected=lambda: expected_uniform((3, 4), 7), label="f32", **EXACT),
    OpCase(random.RANDOM_UNIFORM,
           build=lambda: gc.random.uniform((5,), -2.0, 3.0, dtype="float64", seed=2**40 + 3),
           make_inputs=lambda rng: [],
           expected=lambda: expected_uniform((5,), 2**40 + 3, "float64", -2.0, 3.0), label="f64-range", **EXACT),
    OpCase(random.RANDOM_UNIFORM, build=lambda: gc.random.uniform((), seed=1), make_inputs=lambda rng: [],
           expected=lambda: expected_uniform((), 1), label="scalar", **EXACT),
    OpCase(random.RANDOM_UNIFORM,
           build=lambda x: gc.random.uniform(minval=-1.5, maxval=0.25, seed=99, like=x),
           make_inputs=_zeros((3, 5), "int64"),
           expected=lambda x: expected_uniform(x.shape, 99, "float32", -1.5, 0.25), label="like", **EXACT),
    OpCase(random.RANDOM_NORMAL, build=lambda: gc.random.normal((4, 3), 1.0, 2.0, seed=11),
           make_inputs=lambda rng: [],
           expected=lambda: expected_normal((4, 3), 11, "float32", 1.0, 2.0), label="f32", **NORMAL32),
    OpCase(random.RANDOM_NORMAL, build=lambda x: gc.random.normal(dtype="float64", seed=2**63 + 5, like=x),
           make_inputs=_zeros((2, 3)),
           expected=lambda x: expected_normal(x.shape, 2**63 + 5, "float64"), label="f64-like", **NORMAL64),
    OpCase(random.RANDOM_BERNOULLI, build=lambda: gc.random.bernoulli((10,), p=0.3, seed=5),
           make_inputs=lambda rng: [],
           expected=lambda: expected_bernoulli((10,), 5, 0.3), label="f32", **EXACT),
    OpCase(random.RANDOM_BERNOULLI, build=lambda x: gc.random.bernoulli(p=0.8, dtype="bool", seed=3, like=x),
           make_inputs=_zeros((4, 6)),
           expected=lambda x: expected_bernoulli(x.shape, 3, 0.8, "bool"), label="bool-like", **EXACT),
    OpCase(random.RANDOM_BERNOULLI, build=lambda: gc.random.bernoulli((3, 3), p=0.5, dtype="int32", seed=0),
           make_inputs=lambda rng: [],
           expected=lambda: expected_bernoulli((3, 3), 0, 0.5, "int32"), label="int32", **EXACT),
]
