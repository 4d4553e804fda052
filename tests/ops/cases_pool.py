"""Cases for the pooling ops and their gradient ops, against plain numpy.

The expected values loop over the windows explicitly (no padding, no sliding views): each window is the
list of its in-bounds positions in row-major order, so "padded positions never win" and "average over the
in-bounds elements" hold by construction, and the first max is the first of that list. Sums are taken in
float64 and rounded to the input dtype once. Max-pool inputs are random uniform (no ties) except in the
cases labelled "ties", whose values come from a few integers.
"""

import math

import numpy as np

import graphc as gc
from graphc.ops import pool
from tests.ops.harness import OpCase, uniform

F32 = {"rtol": 1e-5, "atol": 1e-6}
F64 = {"rtol": 1e-12, "atol": 1e-13}


def _tolerance(dtype: str) -> dict:
    return F64 if dtype == "float64" else F32 if dtype == "float32" else {}


# -- plain numpy -----------------------------------------------------------------------------------------
def _axis(size: int, k: int, s: int, padding: str) -> list[list[int]]:
    """For one spatial axis: the in-bounds input positions of each window, window by window."""
    if padding == "valid":
        starts = list(range(0, size - k + 1, s))
    else:
        out = math.ceil(size / s)
        before = max((out - 1) * s + k - size, 0) // 2
        starts = [o * s - before for o in range(out)]
    return [[p for p in range(start, start + k) if 0 <= p < size] for start in starts]


def _windows(shape, ksize, stride, padding):
    """(oh, ow, [(h, w), ...]) for every window of x of ``shape``, positions in row-major window order."""
    rows = _axis(shape[1], ksize[0], stride[0], padding)
    cols = _axis(shape[2], ksize[1], stride[1], padding)
    for oh, hs in enumerate(rows):
        for ow, ws in enumerate(cols):
            yield oh, ow, [(h, w) for h in hs for w in ws]


def _pooled(shape, ksize, stride, padding):
    return (shape[0], len(_axis(shape[1], ksize[0], stride[0], padding)),
            len(_axis(shape[2], ksize[1], stride[1], padding)), shape[3])


def _first_max(x, positions):
    """(N, C) index into ``positions`` of each (n, c)'s first max."""
    values = np.stack([x[:, h, w, :] for h, w in positions])
    return np.argmax(values, axis=0)


def np_max_pool(x, ksize, stride, padding):
    out = np.zeros(_pooled(x.shape, ksize, stride, padding), x.dtype)
    for oh, ow, positions in _windows(x.shape, ksize, stride, padding):
        out[:, oh, ow, :] = np.max(np.stack([x[:, h, w, :] for h, w in positions]), axis=0)
    return out


def np_max_pool_grad(x, dy, ksize, stride, padding):
    dx = np.zeros(x.shape, np.float64)
    n, c = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[3]), indexing="ij")
    for oh, ow, positions in _windows(x.shape, ksize, stride, padding):
        where = np.array(positions)[_first_max(x, positions)]  # (N, C, 2)
        np.add.at(dx, (n, where[..., 0], where[..., 1], c), dy[:, oh, ow, :])
    return dx.astype(x.dtype)


def np_max_pool_select(x, t, ksize, stride, padding):
    out = np.zeros(_pooled(x.shape, ksize, stride, padding), t.dtype)
    n, c = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[3]), indexing="ij")
    for oh, ow, positions in _windows(x.shape, ksize, stride, padding):
        where = np.array(positions)[_first_max(x, positions)]
        out[:, oh, ow, :] = t[n, where[..., 0], where[..., 1], c]
    return out


def np_avg_pool(x, ksize, stride, padding):
    out = np.zeros(_pooled(x.shape, ksize, stride, padding), np.float64)
    for oh, ow, positions in _windows(x.shape, ksize, stride, padding):
        out[:, oh, ow, :] = sum(x[:, h, w, :].astype(np.float64) for h, w in positions) / len(positions)
    return out.astype(x.dtype)


def np_avg_pool_grad(dy, like, ksize, stride, padding):
    dx = np.zeros(like.shape, np.float64)
    for oh, ow, positions in _windows(like.shape, ksize, stride, padding):
        for h, w in positions:
            dx[:, h, w, :] += dy[:, oh, ow, :] / len(positions)
    return dx.astype(dy.dtype)


# -- cases -----------------------------------------------------------------------------------------------
def _ties(rng, shape, dtype):
    """Values from {-1, 0, 1}: most windows hold several equal maxima."""
    return rng.integers(-1, 2, size=shape).astype(dtype)


def _window(ksize, stride, padding) -> dict:
    ksize = (ksize, ksize) if isinstance(ksize, int) else ksize
    stride = (stride, stride) if isinstance(stride, int) else stride
    return {"ksize": ksize, "stride": stride, "padding": padding}


# (label, x shape, dtype, ksize, stride, padding)
_GEOMETRIES = [
    ("2x2s2", (2, 4, 6, 3), "float32", 2, 2, "valid"),
    ("3x3s1-overlap", (2, 5, 5, 1), "float32", 3, 1, "valid"),
    ("3x3s2-same", (2, 5, 6, 3), "float32", 3, 2, "same"),
    ("2x3s1x2-same", (2, 5, 7, 2), "float64", (2, 3), (1, 2), "same"),
    ("small-2x2s2", (1, 4, 4, 2), "float64", 2, 2, "valid"),
    ("small-3x3s2-same", (1, 3, 3, 2), "float64", 3, 2, "same"),
    ("small-2x3s1", (1, 3, 4, 1), "float64", (2, 3), 1, "valid"),
]
_SMALL = [g for g in _GEOMETRIES if g[0].startswith("small")]


def _max_pool_case(label, shape, dtype, ksize, stride, padding, make=uniform):
    w = _window(ksize, stride, padding)
    return OpCase(pool.MAX_POOL2D, lambda x: gc.nn.max_pool2d(x, ksize, stride, padding),
                  lambda rng: [make(rng, shape, dtype)], lambda x: np_max_pool(x, **w),
                  label=f"{label}-{dtype}", **_tolerance(dtype))


def _avg_pool_case(label, shape, dtype, ksize, stride, padding):
    w = _window(ksize, stride, padding)
    return OpCase(pool.AVG_POOL2D, lambda x: gc.nn.avg_pool2d(x, ksize, stride, padding),
                  lambda rng: [uniform(rng, shape, dtype)], lambda x: np_avg_pool(x, **w),
                  label=f"{label}-{dtype}", **_tolerance(dtype))


def _max_pool_grad_case(label, shape, dtype, ksize, stride, padding, make=uniform):
    w = _window(ksize, stride, padding)
    pooled = _pooled(shape, **w)
    return OpCase(pool.MAX_POOL2D_GRAD, lambda x, dy: pool.max_pool2d_grad(x, dy, **w),
                  lambda rng: [make(rng, shape, dtype), uniform(rng, pooled, dtype)],
                  lambda x, dy: np_max_pool_grad(x, dy, **w), label=f"{label}-{dtype}", **_tolerance(dtype))


def _max_pool_select_case(label, shape, dtype, ksize, stride, padding, make=uniform):
    w = _window(ksize, stride, padding)
    return OpCase(pool.MAX_POOL2D_SELECT, lambda x, t: pool.max_pool2d_select(x, t, **w),
                  lambda rng: [make(rng, shape, dtype), uniform(rng, shape, dtype)],
                  lambda x, t: np_max_pool_select(x, t, **w), label=f"{label}-{dtype}", **_tolerance(dtype))


def _avg_pool_grad_case(label, shape, dtype, ksize, stride, padding):
    w = _window(ksize, stride, padding)
    pooled = _pooled(shape, **w)
    return OpCase(pool.AVG_POOL2D_GRAD, lambda dy, like: pool.avg_pool2d_grad(dy, like, **w),
                  lambda rng: [uniform(rng, pooled, dtype), uniform(rng, shape, dtype)],
                  lambda dy, like: np_avg_pool_grad(dy, like, **w), label=f"{label}-{dtype}", **_tolerance(dtype))


CASES = [
    *(_max_pool_case(*g) for g in _GEOMETRIES),
    _max_pool_case("2x2s2", (2, 4, 6, 3), "int32", 2, 2, "valid"),
    _max_pool_case("3x3s2-same", (2, 5, 6, 1), "int32", 3, 2, "same"),
    _max_pool_case("ties-3x3s1-same", (2, 4, 5, 3), "float32", 3, 1, "same", make=_ties),
    *(_avg_pool_case(*g) for g in _GEOMETRIES),
    *(_max_pool_grad_case(*g) for g in _GEOMETRIES),
    _max_pool_grad_case("ties-3x3s1-same", (2, 4, 5, 3), "float32", 3, 1, "same", make=_ties),
    *(_max_pool_select_case(*g) for g in _GEOMETRIES[:3] + _SMALL),
    _max_pool_select_case("ties-3x3s2-same", (2, 5, 5, 2), "float32", 3, 2, "same", make=_ties),
    *(_avg_pool_grad_case(*g) for g in _GEOMETRIES[:3] + _SMALL),
]
