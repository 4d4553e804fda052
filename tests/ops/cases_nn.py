"""Cases for the nn ops: softmax, log_softmax and the losses, against plain float64 numpy.

Expected values are computed in float64 from the same inputs and rounded to the input dtype once. The
float32 tolerances allow a few ulps of the op's float32 arithmetic; ``atol`` covers results near zero
(a loss of a confident correct prediction), where relative error is meaningless.
"""

import numpy as np

import graphc as gc
from graphc.ops import nn
from tests.ops.harness import OpCase, uniform

F32 = {"rtol": 1e-5, "atol": 1e-6}
F64 = {"rtol": 1e-12, "atol": 1e-13}


def _tolerance(dtype: str) -> dict:
    return F32 if dtype == "float32" else F64


# -- plain numpy, float64 --------------------------------------------------------------------------------
def _log_softmax64(x, axis):
    x = x.astype(np.float64)
    top = x.max(axis=axis, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=axis, keepdims=True))


def _softmax64(x, axis):
    return np.exp(_log_softmax64(x, axis))


def _huge(rng, shape, dtype):
    """Logits near ±1000: exp overflows or underflows unless the op shifts by the max."""
    signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (signs * 1000 + rng.uniform(-3, 3, shape)).astype(dtype)


def _probabilities(rng, shape, dtype, axis=-1):
    weights = rng.uniform(0.1, 1.0, shape)
    return (weights / weights.sum(axis=axis, keepdims=True)).astype(dtype)


def _onehot(rng, shape, dtype, axis=-1):
    classes = shape[axis]
    labels = rng.integers(0, classes, size=np.delete(shape, axis % len(shape)))
    return np.moveaxis(np.eye(classes, dtype=dtype)[labels], -1, axis)


def _weighted(rng, shape, dtype, axis=-1):
    """One-hot rows scaled by per-example weights in [0.5, 2]: targets that do not sum to 1 (class weights)."""
    weights = np.expand_dims(rng.uniform(0.5, 2.0, np.delete(shape, axis % len(shape))), axis)
    return (weights * _onehot(rng, shape, "float64", axis)).astype(dtype)


def _pm_one(rng, shape, dtype):
    return np.where(rng.random(shape) < 0.5, -1, 1).astype(dtype)


# -- cases -----------------------------------------------------------------------------------------------
def _softmax_cases(op, function, numpy_function):
    cases = []
    for label, shape, dtype, axis, make in [
        ("2d", (4, 5), "float32", -1, uniform),
        ("3d-axis1", (3, 4, 5), "float64", 1, uniform),
        ("axis0", (6, 2), "float32", 0, uniform),
        ("vector", (7,), "float64", -1, uniform),
        ("huge", (5, 4), "float32", -1, _huge),
        ("huge64", (3, 6), "float64", -1, _huge),
        ("axis0-64", (3, 4), "float64", 0, uniform),  # small float64 cases: derivatives along each axis
        ("3d-axis1-64", (2, 3, 4), "float64", 1, uniform),
    ]:
        cases.append(OpCase(
            op, build=lambda x, axis=axis: function(x, axis=axis),
            make_inputs=lambda rng, shape=shape, dtype=dtype, make=make: [make(rng, shape, dtype)],
            expected=lambda x, axis=axis: numpy_function(x, axis).astype(x.dtype),
            label=label, **_tolerance(dtype)))
    return cases


def _sigmoid_cross_entropy64(x, z):
    x, z = x.astype(np.float64), z.astype(np.float64)
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_cross_entropy_cases():
    cases = []
    for label, shape, dtype, make in [("2d", (3, 4), "float32", uniform), ("vector", (5,), "float64", uniform),
                                      ("huge", (4, 3), "float32", _huge), ("scalar", (), "float64", uniform),
                                      ("huge64", (2, 3), "float64", _huge)]:
        cases.append(OpCase(
            nn.SIGMOID_CROSS_ENTROPY, build=gc.nn.sigmoid_cross_entropy,
            make_inputs=lambda rng, shape=shape, dtype=dtype, make=make: [
                make(rng, shape, dtype), rng.uniform(0, 1, shape).astype(dtype)],
            expected=lambda x, z: _sigmoid_cross_entropy64(x, z).astype(x.dtype),
            label=label, **_tolerance(dtype)))
    return cases


def _softmax_cross_entropy_cases():
    cases = []
    for label, shape, dtype, axis, logits, target in [
        ("onehot", (4, 5), "float32", -1, uniform, _onehot),
        ("soft-labels", (3, 4), "float64", -1, uniform, _probabilities),
        ("axis0", (5, 3), "float32", 0, uniform, _onehot),
        ("3d-axis1", (2, 4, 3), "float64", 1, uniform, _probabilities),
        ("huge", (6, 4), "float32", -1, _huge, _onehot),
        ("axis0-64", (3, 2), "float64", 0, uniform, _probabilities),
        ("weighted", (3, 4), "float64", -1, uniform, _weighted),
        ("huge64", (2, 4), "float64", -1, _huge, _onehot),
    ]:
        cases.append(OpCase(
            nn.SOFTMAX_CROSS_ENTROPY,
            build=lambda x, t, axis=axis: gc.nn.softmax_cross_entropy(x, t, axis=axis),
            make_inputs=lambda rng, shape=shape, dtype=dtype, axis=axis, logits=logits, target=target: [
                logits(rng, shape, dtype), target(rng, shape, dtype, axis)],
            expected=lambda x, t, axis=axis: (-(t * _log_softmax64(x, axis)).sum(axis=axis)).astype(x.dtype),
            label=label, **_tolerance(dtype)))
    return cases


def _sparse_expected(x, labels):
    picked = np.take_along_axis(_log_softmax64(x, -1), labels[..., None].astype(np.int64), axis=-1)
    return (-picked[..., 0]).astype(x.dtype)


# (label, logits shape, logits dtype, labels dtype, logits generator) for the two sparse ops
SPARSE_INPUTS = [
    ("2d", (6, 5), "float32", "int64", uniform),
    ("3d-int32", (2, 3, 4), "float64", "int32", uniform),
    ("one-example", (5,), "float32", "int64", uniform),
    ("huge", (4, 3), "float32", "int32", _huge),
    ("2d64", (3, 4), "float64", "int64", uniform),
    ("one-example64", (6,), "float64", "int32", uniform),
    ("huge64", (2, 5), "float64", "int64", _huge),
]


def _sparse_grad_expected(x, labels):
    return (_softmax64(x, -1) - np.eye(x.shape[-1])[labels]).astype(x.dtype)


def _sparse_cases(op, build, expected):
    """Cases of an op taking logits and integer labels over the last axis."""
    return [OpCase(op, build=build,
                   make_inputs=lambda rng, shape=shape, dtype=dtype, label_dtype=label_dtype, logits=logits: [
                       logits(rng, shape, dtype), rng.integers(0, shape[-1], size=shape[:-1]).astype(label_dtype)],
                   expected=expected, label=label, **_tolerance(dtype))
            for label, shape, dtype, label_dtype, logits in SPARSE_INPUTS]


def _mse_and_hinge_cases():
    cases = []
    for label, shape, dtype in [("2d", (4, 3), "float32"), ("vector", (6,), "float64"),
                                ("3d", (2, 3, 4), "float32"), ("2d64", (3, 4), "float64")]:
        tolerance = _tolerance(dtype)
        cases.append(OpCase(
            nn.MSE, build=gc.nn.mse,
            make_inputs=lambda rng, shape=shape, dtype=dtype: [uniform(rng, shape, dtype), uniform(rng, shape, dtype)],
            expected=lambda p, t: np.mean((p.astype(np.float64) - t) ** 2, axis=-1).astype(p.dtype),
            label=label, **tolerance))
        cases.append(OpCase(
            nn.HINGE, build=gc.nn.hinge,
            make_inputs=lambda rng, shape=shape, dtype=dtype: [_pm_one(rng, shape, dtype), uniform(rng, shape, dtype)],
            expected=lambda y, f: np.mean(np.maximum(0, 1 - y.astype(np.float64) * f), axis=-1).astype(f.dtype),
            label=label, **tolerance))
    cases.append(OpCase(  # integer ±1 labels are converted to the logits' dtype
        nn.HINGE, build=gc.nn.hinge,
        make_inputs=lambda rng: [_pm_one(rng, (5, 2), "int32"), uniform(rng, (5, 2), "float32")],
        expected=lambda y, f: np.mean(np.maximum(0, 1 - y * f.astype(np.float64)), axis=-1).astype(f.dtype),
        label="int-labels", **F32))
    return cases


CASES: list = [
    *_softmax_cases(nn.SOFTMAX, gc.nn.softmax, _softmax64),
    *_softmax_cases(nn.LOG_SOFTMAX, gc.nn.log_softmax, _log_softmax64),
    *_sigmoid_cross_entropy_cases(),
    *_softmax_cross_entropy_cases(),
    *_sparse_cases(nn.SPARSE_SOFTMAX_CROSS_ENTROPY, gc.nn.sparse_softmax_cross_entropy, _sparse_expected),
    # softmax − onehot(labels), the loss's gradient as one op (internal: built with nn's module function)
    *_sparse_cases(nn.SPARSE_SOFTMAX_CROSS_ENTROPY_GRAD, nn.sparse_softmax_cross_entropy_grad,
                   _sparse_grad_expected),
    *_mse_and_hinge_cases(),
]
