"""Neural-network ops: softmax, log_softmax and the losses (``gc.nn.<name>``).

Each op is one ``OpDef`` plus its public function. The references use the numerically stable forms (shift
by the max before ``exp``; ``log1p(exp(−|x|))`` for the sigmoid loss), so logits near ±1000 give finite,
exact results. Every loss is its own op rather than a composition of elementwise and reduction ops: a
stabilizing pass recognizes and fuses them, and their gradients are short closed forms.

Losses take float operands only: the labels are converted to the logits' dtype (``common_operands``), and
integer logits are a ``DTypeError``. Paired operands must have the same shape (no broadcasting: a loss of
logits (N, 1) against labels (N,) silently broadcasting to (N, N) is a classic bug); dimensions that are
``None`` at build time are checked again at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.dtypes import FLOATS, INTS
from graphc.graph.node import Tensor
from graphc.graph.types import Shape, TensorType, format_shape
from graphc.ops.axes import canonical, normalize_axis
from graphc.ops.convert import as_tensor, common_operands
from graphc.ops.registry import OpDef, apply, register

__all__ = ["softmax", "log_softmax", "sigmoid_cross_entropy", "softmax_cross_entropy",
           "sparse_softmax_cross_entropy", "mse", "hinge"]


# -- shape and dtype rules ---------------------------------------------------------------------------------
def _check_float(op_name: str, role: str, t: TensorType) -> None:
    if t.dtype not in FLOATS:
        raise DTypeError(f"{op_name} needs floating-point {role}, got {t.dtype} "
                         f"(convert with gc.cast(x, 'float32'))")


def _same_shape(op_name: str, roles: str, a: Shape, b: Shape) -> Shape:
    """The shape two operands share, merging unknown dims with known ones; ShapeError if they differ."""
    mismatch = len(a) != len(b) or any(x is not None and y is not None and x != y for x, y in zip(a, b))
    if mismatch:
        raise ShapeError(f"{op_name}: {roles} must have the same shape, got {format_shape(a)} and "
                         f"{format_shape(b)}")
    return tuple(x if x is not None else y for x, y in zip(a, b))


def _drop_axis(shape: Shape, axis: int) -> Shape:
    return shape[:axis] + shape[axis + 1:]


def _softmax_infer(op_name: str):
    def infer(x: TensorType, *, axis: int) -> TensorType:
        _check_float(op_name, "input", x)
        normalize_axis(axis, x.rank)
        return x

    return infer


def _pair_infer(op_name: str, roles: str, float_role: str, reduce_last: bool):
    """Rule for two operands of one dtype and shape; ``reduce_last`` drops the last axis."""

    def infer(a: TensorType, b: TensorType) -> TensorType:
        _check_float(op_name, float_role, a)  # the builders gave both operands one dtype
        shape = _same_shape(op_name, roles, a.shape, b.shape)
        if reduce_last:
            if not shape:
                raise ShapeError(f"{op_name} averages over the last axis: it needs rank >= 1, got a scalar")
            shape = shape[:-1]
        return TensorType(a.dtype, shape)

    return infer


def _softmax_cross_entropy_infer(logits: TensorType, onehot: TensorType, *, axis: int) -> TensorType:
    _check_float("softmax_cross_entropy", "logits", logits)
    shape = _same_shape("softmax_cross_entropy", "logits and onehot", logits.shape, onehot.shape)
    return TensorType(logits.dtype, _drop_axis(shape, normalize_axis(axis, len(shape))))


def _sparse_infer(logits: TensorType, labels: TensorType) -> TensorType:
    op_name = "sparse_softmax_cross_entropy"
    _check_float(op_name, "logits", logits)
    if labels.dtype not in INTS:
        raise DTypeError(f"{op_name}: labels must be int32 or int64 class indices, got {labels.dtype}")
    if logits.rank == 0:
        raise ShapeError(f"{op_name}: logits need a class axis (rank >= 1), got a scalar")
    shape = _same_shape(op_name, "labels and logits without their class axis", labels.shape, logits.shape[:-1])
    return TensorType(logits.dtype, shape)


# -- numpy references ----------------------------------------------------------------------------------
def _require_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    # build time saw None dims; the run-time sizes must agree exactly (no broadcasting)
    if a.shape != b.shape:
        raise ValueError(f"operand shapes {format_shape(a.shape)} and {format_shape(b.shape)} differ")


def _shifted(x: np.ndarray, axis: int) -> np.ndarray:
    # subtracting the max makes every exp argument <= 0: no overflow, and one term is exactly exp(0) = 1
    return x - np.max(x, axis=axis, keepdims=True)


def _softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    e = np.exp(_shifted(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    s = _shifted(x, axis)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def _sigmoid_cross_entropy(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    _require_same_shape(x, z)
    # −z·log σ(x) − (1 − z)·log(1 − σ(x)) rewritten so that exp never overflows
    return np.maximum(x, x.dtype.type(0)) - x * z + np.log1p(np.exp(-np.abs(x)))


def _softmax_cross_entropy(logits: np.ndarray, onehot: np.ndarray, *, axis: int) -> np.ndarray:
    _require_same_shape(logits, onehot)
    return -np.sum(onehot * _log_softmax(logits, axis=axis), axis=axis)


def _sparse_softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    classes = logits.shape[-1]
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels of shape {format_shape(labels.shape)} do not match logits of shape "
                         f"{format_shape(logits.shape)} without their class axis")
    outside = (labels < 0) | (labels >= classes)
    if np.any(outside):
        raise ValueError(f"label {labels[outside].flat[0]} is outside the class range [0, {classes})")
    s = _shifted(logits, -1)
    picked = np.take_along_axis(s, labels[..., None].astype(np.intp), axis=-1)[..., 0]
    # −log softmax(x)[label] = log Σ exp(s) − s[label], both from the shifted logits (no cancellation)
    return np.log(np.sum(np.exp(s), axis=-1)) - picked


def _mse(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    _require_same_shape(predictions, targets)
    return np.mean(np.square(predictions - targets), axis=-1)


def _hinge(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    _require_same_shape(labels, logits)
    one = logits.dtype.type(1)
    return np.mean(np.maximum(one - labels * logits, logits.dtype.type(0)), axis=-1)


# -- the ops -------------------------------------------------------------------------------------------
SOFTMAX = register(OpDef(
    "softmax", "nn", _softmax_infer("softmax"), _softmax,
    doc="exp(x) / Σ exp(x) along an axis, shifted by the max for stability."))
LOG_SOFTMAX = register(OpDef(
    "log_softmax", "nn", _softmax_infer("log_softmax"), _log_softmax,
    doc="x − logsumexp(x) along an axis, shifted by the max for stability."))
SIGMOID_CROSS_ENTROPY = register(OpDef(
    "sigmoid_cross_entropy", "nn", _pair_infer("sigmoid_cross_entropy", "logits and labels", "logits", False),
    _sigmoid_cross_entropy, elementwise=True,
    doc="Elementwise max(x, 0) − x·z + log1p(exp(−|x|)) (TF's sigmoid_cross_entropy_with_logits)."))
SOFTMAX_CROSS_ENTROPY = register(OpDef(
    "softmax_cross_entropy", "nn", _softmax_cross_entropy_infer, _softmax_cross_entropy,
    doc="−Σ onehot · log_softmax(logits) over the class axis: one loss per example."))
SPARSE_SOFTMAX_CROSS_ENTROPY = register(OpDef(
    "sparse_softmax_cross_entropy", "nn", _sparse_infer, _sparse_softmax_cross_entropy,
    doc="−log_softmax(logits)[label] with integer labels; the class axis is the last one."))
MSE = register(OpDef(
    "mse", "nn", _pair_infer("mse", "predictions and targets", "operands", True), _mse,
    doc="mean((predictions − targets)²) over the last axis."))
HINGE = register(OpDef(
    "hinge", "nn", _pair_infer("hinge", "labels and logits", "logits", True), _hinge,
    doc="mean(max(0, 1 − labels·logits)) over the last axis; labels in {−1, +1}."))


# -- public functions ------------------------------------------------------------------------------------
def softmax(x: Any, axis: int = -1, name: str | None = None) -> Tensor:
    """exp(x) / Σ exp(x) along ``axis`` (default the last): probabilities that sum to 1 along it.

    Computed from x − max(x), so large logits do not overflow.
    """
    x = as_tensor(x)
    return apply(SOFTMAX, [x], name, axis=canonical(normalize_axis, axis, x.ndim))


def log_softmax(x: Any, axis: int = -1, name: str | None = None) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably as s − log Σ exp(s) with s = x − max(x).

    Finite and exact where the naive form gives −inf or NaN (e.g. logits of ±1000).
    """
    x = as_tensor(x)
    return apply(LOG_SOFTMAX, [x], name, axis=canonical(normalize_axis, axis, x.ndim))


def sigmoid_cross_entropy(logits: Any, labels: Any, name: str | None = None) -> Tensor:
    """Elementwise −z·log σ(x) − (1 − z)·log(1 − σ(x)) for logits x and labels z in [0, 1].

    TF's ``sigmoid_cross_entropy_with_logits``, in its stable form max(x, 0) − x·z + log1p(exp(−|x|)).
    ``labels`` take the logits' dtype and must have the same shape; the result has that shape.
    """
    logits = as_tensor(logits)
    return apply(SIGMOID_CROSS_ENTROPY, common_operands(logits, labels, dtype=logits.dtype), name)


def softmax_cross_entropy(logits: Any, onehot: Any, axis: int = -1, name: str | None = None) -> Tensor:
    """Per-example cross-entropy −Σ onehot · log_softmax(logits) over the class ``axis``.

    ``onehot`` (one-hot or any probability distribution) takes the logits' dtype and must have the same
    shape; the result drops the class axis: logits (N, C) give (N,).
    """
    logits = as_tensor(logits)
    operands = common_operands(logits, onehot, dtype=logits.dtype)
    return apply(SOFTMAX_CROSS_ENTROPY, operands, name, axis=canonical(normalize_axis, axis, logits.ndim))


def sparse_softmax_cross_entropy(logits: Any, labels: Any, name: str | None = None) -> Tensor:
    """Per-example cross-entropy −log_softmax(logits)[label] with integer class indices.

    ``logits`` have the classes on the last axis, shape (..., C); ``labels`` are int32 or int64 of shape
    (...,) with values in [0, C); a label outside that range is an error when the graph runs. Result:
    shape (...,), the logits' dtype.
    """
    return apply(SPARSE_SOFTMAX_CROSS_ENTROPY, [as_tensor(logits), as_tensor(labels)], name)


def mse(predictions: Any, targets: Any, name: str | None = None) -> Tensor:
    """Mean squared error, averaged over the last axis only (the Keras convention).

    predictions and targets of shape (N, D) give (N,); of shape (N,) give a scalar. Reduce the rest
    yourself (``gc.reduce_mean``). The operands are brought to one (float) dtype and must share a shape.
    """
    return apply(MSE, common_operands(predictions, targets), name)


def hinge(labels: Any, logits: Any, name: str | None = None) -> Tensor:
    """Hinge loss mean(max(0, 1 − labels·logits)), averaged over the last axis only (Keras convention).

    ``labels`` are −1 or +1 (not 0/1) and take the logits' dtype; both must share a shape. Shapes
    (N, D) give (N,); (N,) give a scalar.
    """
    logits = as_tensor(logits)
    return apply(HINGE, common_operands(labels, logits, dtype=logits.dtype), name)
