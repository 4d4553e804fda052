"""Neural-network ops: softmax, log_softmax and the losses (``gc.nn.<name>``).

Each op is one ``OpDef`` plus its public function. The references use the numerically stable forms (shift
by the max before ``exp``; ``log1p(exp(−|x|))`` for the sigmoid loss), so logits near ±1000 give finite,
exact results. Every loss is its own op rather than a composition of elementwise and reduction ops: a
stabilizing pass recognizes and fuses them, and their gradients are short closed forms.

Derivatives: every op has a vjp and a jvp in closed form — the "simple fused gradients" (softmax − onehot,
σ(x) − z, 2(p − t)/n), built from the stable forward ops (softmax, log_softmax, sigmoid) rather than from
exp and sums by hand, so gradients at logits of ±1000 are finite and exact too. They are graph ops, so they
can be differentiated again. The sparse loss's softmax − onehot(labels) is one internal op of its own,
``sparse_softmax_cross_entropy_grad`` (not exported): one row kernel, no one_hot, and no need to know the
number of classes when the graph is built.

Losses take float operands only: the labels are converted to the logits' dtype (``common_operands``), and
integer logits are a ``DTypeError``. Paired operands must have the same shape (no broadcasting: a loss of
logits (N, 1) against labels (N,) silently broadcasting to (N, N) is a classic bug); dimensions that are
``None`` at build time are checked again at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.dtypes import FLOATS, INTS
from graphc.graph.node import Node, Tensor
from graphc.graph.types import Shape, TensorType, format_shape
from graphc.ops import scalar
from graphc.ops.axes import canonical, normalize_axis
from graphc.ops.chain import add_all
from graphc.ops.convert import as_tensor, common_operands
from graphc.ops.elementwise import cast, mul_no_nan, ones_like, sigmoid
from graphc.ops.reduce import reduce_sum
from graphc.ops.registry import OpDef, apply, register
from graphc.ops.shape import expand_dims

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


def _sparse_infer(op_name: str, keep_classes: bool):
    """Rule for (logits (..., C), labels (...,)); the result drops the class axis unless ``keep_classes``."""

    def infer(logits: TensorType, labels: TensorType) -> TensorType:
        _check_float(op_name, "logits", logits)
        if labels.dtype not in INTS:
            raise DTypeError(f"{op_name}: labels must be int32 or int64 class indices, got {labels.dtype}")
        if logits.rank == 0:
            raise ShapeError(f"{op_name}: logits need a class axis (rank >= 1), got a scalar")
        shape = _same_shape(op_name, "labels and logits without their class axis", labels.shape,
                            logits.shape[:-1])
        return TensorType(logits.dtype, shape + logits.shape[-1:] if keep_classes else shape)

    return infer


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
    # −z·log σ(x) − (1 − z)·log(1 − σ(x)) rewritten so that exp never overflows: max(x, 0) − x·z + log1p(exp(−|x|)),
    # with max(x, 0) − x·z taken as x·(1 − z) or −x·z, which do not cancel for x near 1000 and z near 1
    linear = np.where(x >= 0, x * (x.dtype.type(1) - z), -x * z)
    return linear + np.log1p(np.exp(-np.abs(x)))


def _softmax_cross_entropy(logits: np.ndarray, onehot: np.ndarray, *, axis: int) -> np.ndarray:
    _require_same_shape(logits, onehot)
    return -np.sum(onehot * _log_softmax(logits, axis=axis), axis=axis)


def _label_index(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """labels (...,) checked against logits (..., C) at run time, as an index (..., 1) along the class axis."""
    classes = logits.shape[-1]
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels of shape {format_shape(labels.shape)} do not match logits of shape "
                         f"{format_shape(logits.shape)} without their class axis")
    outside = (labels < 0) | (labels >= classes)
    if np.any(outside):
        raise ValueError(f"label {labels[outside].flat[0]} is outside the class range [0, {classes})")
    return labels[..., None].astype(np.intp)


def _sparse_softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    index = _label_index(logits, labels)
    s = _shifted(logits, -1)
    picked = np.take_along_axis(s, index, axis=-1)[..., 0]
    # −log softmax(x)[label] = log Σ exp(s) − s[label], both from the shifted logits (no cancellation)
    return np.log(np.sum(np.exp(s), axis=-1)) - picked


def _sparse_softmax_cross_entropy_grad(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    index = _label_index(logits, labels)
    grad = _softmax(logits, axis=-1)
    # softmax − onehot(labels): 1 subtracted at each row's label, in the logits' dtype
    np.put_along_axis(grad, index, np.take_along_axis(grad, index, axis=-1) - logits.dtype.type(1), axis=-1)
    return grad


def _mse(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    _require_same_shape(predictions, targets)
    return np.mean(np.square(predictions - targets), axis=-1)


def _hinge(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    _require_same_shape(labels, logits)
    one = logits.dtype.type(1)
    return np.mean(np.maximum(one - labels * logits, logits.dtype.type(0)), axis=-1)


# -- the ops and their derivatives ---------------------------------------------------------------------
LossPartials = Callable[[Node], tuple[Tensor | None, ...]]


def _loss_rules(partials: LossPartials, reduces: bool) -> dict[str, Callable[..., Any]]:
    """The vjp and jvp (as OpDef keywords) of a loss from its partial derivatives.

    ``partials(node)`` gives ∂loss/∂operand per operand (None: no derivative), each of the operands' shape.
    A loss that ``reduces`` over its ``axis`` attribute (default the last) spreads a cotangent along that
    axis and sums a tangent over it. Operands share one shape (no broadcasting), so nothing is summed back.
    Partials meet cotangents through ``mul_no_nan`` (the safety rule of graphc.ops.chain: a zero cotangent
    gives zero even where a partial is infinite).
    """

    def vjp(node: Node, cotangent: Tensor) -> tuple[Tensor | None, ...]:
        spread = expand_dims(cotangent, node.attrs.get("axis", -1)) if reduces else cotangent
        return tuple(None if d is None else mul_no_nan(d, spread) for d in partials(node))

    def jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor:
        total = add_all([mul_no_nan(d, t) for d, t in zip(partials(node), tangents) if d is not None and t is not None])
        if total is None or not reduces:
            return total
        return reduce_sum(total, node.attrs.get("axis", -1))

    return {"vjp": vjp, "jvp": jvp}


def _last_axis_size(x: Tensor) -> int | Tensor:
    """n, the size of x's last axis: an int when known when the graph is built, else counted when it runs."""
    n = x.shape[-1]
    return n if n is not None else reduce_sum(ones_like(x), -1, keepdims=True)


def _softmax_jacobian_times(s: Tensor, g: Tensor, axis: int) -> Tensor:
    # ∂s_i/∂x_j = s_i·(δ_ij − s_j) along the axis, so Jᵀg = s·(g − Σ g·s); J is symmetric, so J·t alike
    return s * (g - reduce_sum(g * s, axis, keepdims=True))


def _softmax_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor]:
    return (_softmax_jacobian_times(node.outputs[0], cotangent, node.attrs["axis"]),)


SOFTMAX = register(OpDef(
    "softmax", "nn", _softmax_infer("softmax"), _softmax,
    vjp=_softmax_vjp, jvp=lambda node, tangents: _softmax_vjp(node, tangents[0])[0],
    doc="exp(x) / Σ exp(x) along an axis, shifted by the max for stability."))


def _log_softmax_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor]:
    # ∂ log_softmax(x)_i/∂x_j = δ_ij − softmax(x)_j, so Jᵀg = g − softmax(x)·Σg
    x, axis = node.inputs[0], node.attrs["axis"]
    return (cotangent - softmax(x, axis) * reduce_sum(cotangent, axis, keepdims=True),)


def _log_softmax_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor:
    x, axis = node.inputs[0], node.attrs["axis"]
    return tangents[0] - reduce_sum(softmax(x, axis) * tangents[0], axis, keepdims=True)


LOG_SOFTMAX = register(OpDef(
    "log_softmax", "nn", _softmax_infer("log_softmax"), _log_softmax, vjp=_log_softmax_vjp, jvp=_log_softmax_jvp,
    doc="x − logsumexp(x) along an axis, shifted by the max for stability."))


def _sigmoid_cross_entropy_partials(node: Node) -> tuple[Tensor, Tensor]:
    # max(x, 0) − x·z + log1p(exp(−|x|)): ∂/∂x = σ(x) − z, ∂/∂z = −x
    logits, labels = node.inputs
    return sigmoid(logits) - labels, -logits


SIGMOID_CROSS_ENTROPY = register(OpDef(
    "sigmoid_cross_entropy", "nn", _pair_infer("sigmoid_cross_entropy", "logits and labels", "logits", False),
    _sigmoid_cross_entropy, elementwise=True, **_loss_rules(_sigmoid_cross_entropy_partials, reduces=False),
    scalar=lambda x, z: (scalar.select(x >= 0, x * (1 - z), -x * z) + scalar.log1p(scalar.exp(-abs(x)))),
    doc="Elementwise max(x, 0) − x·z + log1p(exp(−|x|)) (TF's sigmoid_cross_entropy_with_logits)."))


def _softmax_cross_entropy_partials(node: Node) -> tuple[Tensor, Tensor]:
    # −Σ q·log_softmax(x): ∂/∂x = softmax(x)·Σq − q, which is softmax − onehot when q sums to 1 (and stays
    # exact for weighted or unnormalized targets); ∂/∂q = −log_softmax(x)
    logits, onehot = node.inputs
    axis = node.attrs["axis"]
    return softmax(logits, axis) * reduce_sum(onehot, axis, keepdims=True) - onehot, -log_softmax(logits, axis)


SOFTMAX_CROSS_ENTROPY = register(OpDef(
    "softmax_cross_entropy", "nn", _softmax_cross_entropy_infer, _softmax_cross_entropy,
    **_loss_rules(_softmax_cross_entropy_partials, reduces=True),
    doc="−Σ onehot · log_softmax(logits) over the class axis: one loss per example."))


def _sparse_grad_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, None]:
    # the onehot term is constant in the logits: the derivative is softmax's; integer labels have none
    return _softmax_jacobian_times(softmax(node.inputs[0]), cotangent, -1), None


def _sparse_grad_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
    if tangents[0] is None:
        return None
    return _softmax_jacobian_times(softmax(node.inputs[0]), tangents[0], -1)


SPARSE_SOFTMAX_CROSS_ENTROPY_GRAD = register(OpDef(
    "sparse_softmax_cross_entropy_grad", "nn", _sparse_infer("sparse_softmax_cross_entropy_grad", True),
    _sparse_softmax_cross_entropy_grad, vjp=_sparse_grad_vjp, jvp=_sparse_grad_jvp,
    doc="softmax(logits) − onehot(labels) over the last axis: the derivative of sparse_softmax_cross_entropy."))


def _sparse_softmax_cross_entropy_partials(node: Node) -> tuple[Tensor, None]:
    # softmax − onehot(labels), one op; integer labels have no derivative
    logits, labels = node.inputs
    return sparse_softmax_cross_entropy_grad(logits, labels), None


SPARSE_SOFTMAX_CROSS_ENTROPY = register(OpDef(
    "sparse_softmax_cross_entropy", "nn", _sparse_infer("sparse_softmax_cross_entropy", False),
    _sparse_softmax_cross_entropy, **_loss_rules(_sparse_softmax_cross_entropy_partials, reduces=True),
    doc="−log_softmax(logits)[label] with integer labels; the class axis is the last one."))


def _mse_partials(node: Node) -> tuple[Tensor, Tensor]:
    # mean over the last axis of (p − t)²: ∂/∂p = 2(p − t)/n = −∂/∂t
    predictions, targets = node.inputs
    d = 2 * (predictions - targets) / _last_axis_size(predictions)
    return d, -d


MSE = register(OpDef(
    "mse", "nn", _pair_infer("mse", "predictions and targets", "operands", True), _mse,
    **_loss_rules(_mse_partials, reduces=True),
    doc="mean((predictions − targets)²) over the last axis."))


def _hinge_partials(node: Node) -> tuple[Tensor, Tensor]:
    # mean over the last axis of max(0, 1 − y·f): ∂/∂y = −f/n and ∂/∂f = −y/n where 1 − y·f > 0, else 0
    labels, logits = node.inputs
    active = cast(1 - labels * logits > 0, logits.dtype) / _last_axis_size(logits)
    return -logits * active, -labels * active


HINGE = register(OpDef(
    "hinge", "nn", _pair_infer("hinge", "labels and logits", "logits", True), _hinge,
    **_loss_rules(_hinge_partials, reduces=True),
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


def sparse_softmax_cross_entropy_grad(logits: Any, labels: Any, name: str | None = None) -> Tensor:
    """softmax(logits) − onehot(labels) over the last axis: the gradient of ``sparse_softmax_cross_entropy``
    with respect to its logits (per example, for a cotangent of 1). Internal (not in ``gc.nn``).

    Same operands and run-time label check as the loss; the result has the logits' shape and dtype.
    """
    return apply(SPARSE_SOFTMAX_CROSS_ENTROPY_GRAD, [as_tensor(logits), as_tensor(labels)], name)


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
