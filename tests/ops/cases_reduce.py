"""Cases for the reductions and argmax / argmin; expected values are plain numpy."""

from __future__ import annotations

import warnings

import numpy as np

import graphc as gc
from graphc.ops import reduce as R
from tests.ops.harness import OpCase, uniform

F32_SUM_RTOL = 1e-5  # float32 accumulation: numpy's pairwise sum and a plain loop differ in the last bits
ATOL = {"float32": 1e-5, "float64": 1e-12}  # sums of random signs can cancel to almost 0


def _inputs(shape, dtype="float32", low=-2.0, high=2.0):
    return lambda rng: [uniform(rng, shape, dtype, low, high)]


def _label(shape, dtype, axis, keepdims, note=""):
    dims = "x".join(map(str, shape)) or "scalar"
    axis_text = "all" if axis is None else str(axis).replace(" ", "")
    return f"{dtype}-{dims}-axis{axis_text}" + ("-keep" if keepdims else "") + (f"-{note}" if note else "")


def _case(op, function, expected, shape, dtype="float32", axis=None, keepdims=False, rtol=None, note="",
          low=-2.0, high=2.0):
    return OpCase(op, lambda x: function(x, axis=axis, keepdims=keepdims), _inputs(shape, dtype, low, high),
                  expected(axis, keepdims), label=_label(shape, dtype, axis, keepdims, note), rtol=rtol,
                  atol=ATOL.get(dtype, 0.0))


# -- expected values, written with numpy's own functions ----------------------------------------------------
def _np_sum(axis, keepdims):
    def expected(x):
        total = np.sum(x, axis=axis, keepdims=keepdims)
        return np.asarray(total).astype("int64" if x.dtype == bool else x.dtype)
    return expected


def _np_prod(axis, keepdims):
    def expected(x):
        return np.asarray(np.prod(x, axis=axis, keepdims=keepdims)).astype("int64" if x.dtype == bool
                                                                          else x.dtype)
    return expected


def _np_mean(axis, keepdims):
    def expected(x):
        with warnings.catch_warnings():  # numpy warns about the mean of an empty slice, which is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.asarray(np.mean(x, axis=axis, keepdims=keepdims))
    return expected


def _np_extreme(function, empty_value):
    def make(axis, keepdims):
        def expected(x):
            shape = np.sum(x, axis=axis, keepdims=keepdims).shape
            if x.size == 0:
                return np.full(shape, empty_value(x.dtype), x.dtype)
            return np.asarray(function(x, axis=axis, keepdims=keepdims))
        return expected
    return make


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else (False if dtype.kind == "b" else np.iinfo(dtype).min)


def _highest(dtype):
    return np.inf if dtype.kind == "f" else (True if dtype.kind == "b" else np.iinfo(dtype).max)


def _np_logsumexp(axis, keepdims):
    def expected(x):
        if x.size == 0:
            return np.full(np.sum(x, axis=axis, keepdims=keepdims).shape, -np.inf, x.dtype)
        peak = np.max(x, axis=axis, keepdims=True)
        result = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
        return result if keepdims else np.squeeze(result, axis=axis)
    return expected


def _np_arg(function):
    def make(axis, keepdims):
        return lambda x: np.asarray(function(x, axis=axis, keepdims=keepdims)).astype("int64")
    return make


_np_max = _np_extreme(np.max, _lowest)
_np_min = _np_extreme(np.min, _highest)

CASES = [
    # reduce_sum: every dtype, axes of every spelling, keepdims, size-1 and zero-size dims
    _case(R.SUM, gc.reduce_sum, _np_sum, (3, 4), rtol=F32_SUM_RTOL),
    _case(R.SUM, gc.reduce_sum, _np_sum, (3, 4), axis=1, rtol=F32_SUM_RTOL),
    _case(R.SUM, gc.reduce_sum, _np_sum, (2, 3, 4), axis=-1, keepdims=True, rtol=F32_SUM_RTOL),
    _case(R.SUM, gc.reduce_sum, _np_sum, (2, 3, 4), "float64", axis=(0, -1)),
    _case(R.SUM, gc.reduce_sum, _np_sum, (2, 3, 4), "float64", axis=(2, 0), keepdims=True),
    _case(R.SUM, gc.reduce_sum, _np_sum, (2, 3, 4), "float64", axis=()),
    _case(R.SUM, gc.reduce_sum, _np_sum, (1, 5, 1), axis=(0, 2), rtol=F32_SUM_RTOL),
    _case(R.SUM, gc.reduce_sum, _np_sum, (), "float64"),
    _case(R.SUM, gc.reduce_sum, _np_sum, (0, 3), axis=0),
    _case(R.SUM, gc.reduce_sum, _np_sum, (2, 0), "float64"),
    _case(R.SUM, gc.reduce_sum, _np_sum, (3, 4), "int32", axis=0, low=-9, high=9),
    _case(R.SUM, gc.reduce_sum, _np_sum, (3, 4), "int64", axis=-1, keepdims=True, low=-9, high=9),
    _case(R.SUM, gc.reduce_sum, _np_sum, (5, 6), "bool", axis=1),
    _case(R.SUM, gc.reduce_sum, _np_sum, (1000,), rtol=F32_SUM_RTOL, note="long"),
    # reduce_mean: float keeps its dtype, ints and bools give float64, empty gives NaN
    _case(R.MEAN, gc.reduce_mean, _np_mean, (4, 5), rtol=F32_SUM_RTOL),
    _case(R.MEAN, gc.reduce_mean, _np_mean, (2, 3, 4), axis=(-2, -1), rtol=F32_SUM_RTOL),
    _case(R.MEAN, gc.reduce_mean, _np_mean, (2, 3, 4), "float64", axis=1, keepdims=True),
    _case(R.MEAN, gc.reduce_mean, _np_mean, (3, 4), "int32", axis=0, low=-9, high=9),
    _case(R.MEAN, gc.reduce_mean, _np_mean, (3, 4), "int64"),
    _case(R.MEAN, gc.reduce_mean, _np_mean, (4, 3), "bool", axis=-1),
    _case(R.MEAN, gc.reduce_mean, _np_mean, (3, 4), "float64", note="all"),
    # empty float cases are float32: their NaN / inf outputs have no finite differences to check against
    _case(R.MEAN, gc.reduce_mean, _np_mean, (0, 3), "float32", axis=0),
    _case(R.MEAN, gc.reduce_mean, _np_mean, (0, 3), "int32"),
    # reduce_max / reduce_min: every dtype, empty gives the identity
    _case(R.MAX, gc.reduce_max, _np_max, (3, 4)),
    _case(R.MAX, gc.reduce_max, _np_max, (2, 3, 4), "float64", axis=(0, 2), keepdims=True),
    _case(R.MAX, gc.reduce_max, _np_max, (3, 4), "float64", axis=-1),
    _case(R.MAX, gc.reduce_max, _np_max, (3, 4), "int32", axis=-1),
    _case(R.MAX, gc.reduce_max, _np_max, (3, 1), "int64", axis=1),
    _case(R.MAX, gc.reduce_max, _np_max, (4, 5), "bool", axis=0),
    _case(R.MAX, gc.reduce_max, _np_max, (0, 4), axis=0),
    _case(R.MAX, gc.reduce_max, _np_max, (0, 4), "int32", axis=0),
    _case(R.MAX, gc.reduce_max, _np_max, (0,), "bool"),
    _case(R.MIN, gc.reduce_min, _np_min, (3, 4)),
    _case(R.MIN, gc.reduce_min, _np_min, (2, 3, 4), "float64", axis=-2),
    _case(R.MIN, gc.reduce_min, _np_min, (3, 4), "int64", axis=(0, 1), keepdims=True),
    _case(R.MIN, gc.reduce_min, _np_min, (4, 5), "bool", axis=1),
    _case(R.MIN, gc.reduce_min, _np_min, (3, 0), "float32", axis=1),
    _case(R.MIN, gc.reduce_min, _np_min, (4, 5), "float64", axis=(0, 1), keepdims=True),
    _case(R.MIN, gc.reduce_min, _np_min, (3, 0), "int64", axis=-1),
    # reduce_prod: values near 1 keep float32 products well conditioned
    _case(R.PROD, gc.reduce_prod, _np_prod, (3, 4), axis=1, rtol=F32_SUM_RTOL, low=0.5, high=1.5),
    _case(R.PROD, gc.reduce_prod, _np_prod, (2, 3, 4), "float64", axis=(0, -1), keepdims=True),
    _case(R.PROD, gc.reduce_prod, _np_prod, (3, 4), "float64", axis=1, low=-1.5, high=1.5),
    _case(R.PROD, gc.reduce_prod, _np_prod, (5,), "float64", low=0.5, high=2.0),
    _case(R.PROD, gc.reduce_prod, _np_prod, (3, 4), "int32", axis=0, low=-3, high=3),
    _case(R.PROD, gc.reduce_prod, _np_prod, (3, 4), "int64", low=-2, high=2),
    _case(R.PROD, gc.reduce_prod, _np_prod, (3, 4), "bool", axis=1),
    _case(R.PROD, gc.reduce_prod, _np_prod, (0, 2), "float64", axis=0),
    # reduce_logsumexp: floats only
    _case(R.LOGSUMEXP, gc.reduce_logsumexp, _np_logsumexp, (3, 4), axis=-1, rtol=F32_SUM_RTOL),
    _case(R.LOGSUMEXP, gc.reduce_logsumexp, _np_logsumexp, (3, 4), rtol=F32_SUM_RTOL),
    _case(R.LOGSUMEXP, gc.reduce_logsumexp, _np_logsumexp, (2, 3, 4), "float64", axis=(0, 2),
          keepdims=True),
    _case(R.LOGSUMEXP, gc.reduce_logsumexp, _np_logsumexp, (4, 1), "float64", axis=1),
    _case(R.LOGSUMEXP, gc.reduce_logsumexp, _np_logsumexp, (5, 3), "float64", axis=0, low=-30, high=30,
          note="wide"),
    _case(R.LOGSUMEXP, gc.reduce_logsumexp, _np_logsumexp, (0, 3), axis=0),
    # argmax / argmin: int64 result, axis=None flattens
    _case(R.ARGMAX, gc.argmax, _np_arg(np.argmax), (3, 4)),
    _case(R.ARGMAX, gc.argmax, _np_arg(np.argmax), (3, 4), axis=1),
    _case(R.ARGMAX, gc.argmax, _np_arg(np.argmax), (2, 3, 4), "float64", axis=-2, keepdims=True),
    _case(R.ARGMAX, gc.argmax, _np_arg(np.argmax), (3, 4), "int32", axis=0, low=-50, high=50),
    _case(R.ARGMAX, gc.argmax, _np_arg(np.argmax), (4, 5), "bool", axis=-1),
    _case(R.ARGMAX, gc.argmax, _np_arg(np.argmax), (1, 6), "int64", axis=0),
    _case(R.ARGMIN, gc.argmin, _np_arg(np.argmin), (3, 4)),
    _case(R.ARGMIN, gc.argmin, _np_arg(np.argmin), (2, 3, 4), axis=2),
    _case(R.ARGMIN, gc.argmin, _np_arg(np.argmin), (3, 4), "int64", axis=-1, low=-50, high=50),
    _case(R.ARGMIN, gc.argmin, _np_arg(np.argmin), (5,), "float64", keepdims=True),
    _case(R.ARGMIN, gc.argmin, _np_arg(np.argmin), (4, 5), "bool", axis=0),
]
