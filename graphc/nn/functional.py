"""Composite nn functions: moments, batch and layer normalization, dropout, attention, embeddings, maxout.

Each function is a **composition of registry ops** (reduce_mean, rsqrt, matmul, softmax, where,
gc.random.bernoulli, gather, reduce_max, ...), not an op of its own: normalizing by a batch's mean and
standard deviation is ordinary computation in the graph, and the chain rule applies to it. Shape rules, numpy
references, vjp/jvp and LLVM lowerings all come from the parts, and the fusion planner fuses them
(layer_norm's two reductions and its elementwise tail become row kernels; an
attention is two batched matmuls around a softmax row kernel).

What is added here is argument checking at build time: a bad rank, a parameter of the wrong shape, a dtype
that is not float or a rate outside [0, 1) is a ShapeError / DTypeError / ArgumentError that names the
function, the shapes and values, and the user's line.

``training`` arguments are a Python bool (the graph is built for one mode) or a bool scalar tensor — a
placeholder — so that one graph serves training and inference, choosing between the two values with
``gc.where`` when it runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import ArgumentError, DTypeError, ShapeError
from graphc.graph.dtypes import FLOATS, INTS
from graphc.graph.node import Tensor
from graphc.graph.source import user_source_line
from graphc.graph.types import broadcast_shapes, format_shape
from graphc.ops import random
from graphc.ops.axes import distinct_axes
from graphc.ops.convert import as_tensor
from graphc.ops.elementwise import logical_and, maximum, ones_like, rsqrt, square, where
from graphc.ops.indexing import gather
from graphc.ops.linalg import matmul
from graphc.ops.nn import softmax
from graphc.ops.reduce import reduce_max, reduce_mean, reduce_sum
from graphc.ops.shape import reshape, squeeze, transpose
from graphc.ops.sources import constant
from graphc.ops.state import Variable, assign

__all__ = ["moments", "batch_norm", "layer_norm", "dropout", "embedding_lookup", "attention", "maxout"]


# -- argument checks -------------------------------------------------------------------------------------
def _error(kind: type[Exception], function: str, message: str) -> Exception:
    """An error for a bad argument of ``gc.nn.<function>``, naming the user's line."""
    return kind(f"gc.nn.{function} (at {user_source_line()}): {message}")


def _float_tensor(function: str, role: str, value: Any) -> Tensor:
    tensor = as_tensor(value)
    if tensor.dtype not in FLOATS:
        raise _error(DTypeError, function, f"{role} must be float32 or float64, got {tensor.dtype} "
                                           f"('{tensor.name}')")
    return tensor


def _axes(function: str, axis: Any, x: Tensor) -> tuple[int, ...]:
    try:
        return distinct_axes(axis, x.ndim)
    except ShapeError as error:
        raise _error(ShapeError, function, f"{error} (x '{x.name}' has shape {format_shape(x.shape)})") from None


def _param(function: str, role: str, value: Any, x: Tensor, axes: tuple[int, ...]) -> Tensor:
    """A per-feature parameter (gamma, beta, moving statistics) of shape x.shape[axes], in x's dtype,
    reshaped to broadcast against x (size 1 on every other axis)."""
    param = as_tensor(value, graph=x.graph)
    if param.dtype != x.dtype:
        raise _error(DTypeError, function, f"{role} '{param.name}' is {param.dtype}, x is {x.dtype}")
    expected = tuple(x.shape[a] for a in axes)
    if param.ndim != len(axes) or any(p is not None and e is not None and p != e
                                      for p, e in zip(param.shape, expected)):
        raise _error(ShapeError, function, f"{role} '{param.name}' has shape {format_shape(param.shape)}, but x "
                                           f"{format_shape(x.shape)} needs {format_shape(expected)}")
    if axes == tuple(range(x.ndim - len(axes), x.ndim)):
        return param  # trailing axes: numpy broadcasting lines it up already
    sizes = iter(p if p is not None else e for p, e in zip(param.shape, expected))
    target = tuple(next(sizes) if i in axes else 1 for i in range(x.ndim))
    if target.count(None) > 1:
        raise _error(ShapeError, function, f"{role} '{param.name}' has several unknown sizes "
                                           f"{format_shape(param.shape)}")
    return reshape(param, tuple(-1 if d is None else d for d in target))


def _training_flag(function: str, training: Any) -> bool | Tensor:
    """``training`` as a Python bool or a bool scalar tensor."""
    if isinstance(training, (bool, np.bool_)):
        return bool(training)
    if isinstance(training, Tensor) and training.dtype == "bool" and training.ndim == 0:
        return training
    shown = f"{training.type} '{training.name}'" if isinstance(training, Tensor) else repr(training)
    raise _error(ArgumentError, function, f"training must be a Python bool or a bool scalar tensor "
                                          f"(e.g. gc.placeholder('bool', ())), got {shown}")


def _count(x: Tensor, axes: tuple[int, ...]) -> Tensor | float:
    """How many elements of x each reduction over ``axes`` sees: a number when known when built, else counted
    when run (keeping the reduced axes)."""
    sizes = [x.shape[a] for a in axes]
    if None not in sizes:
        return float(math.prod(sizes))
    return reduce_sum(ones_like(x), axes, keepdims=True)


# -- normalization ---------------------------------------------------------------------------------------
def moments(x: Any, axes: int | Sequence[int], keepdims: bool = False) -> tuple[Tensor, Tensor]:
    """(mean, variance) of x over ``axes``; the variance is the biased one, mean((x − mean)²), with which
    batch and layer normalization normalize."""
    x = _float_tensor("moments", "x", x)
    axes = tuple(sorted(_axes("moments", axes, x)))
    mean = reduce_mean(x, axes, keepdims=True)
    variance = reduce_mean(square(x - mean), axes, keepdims=keepdims)
    return (mean if keepdims else squeeze(mean, axes)), variance


def _normalize(x: Tensor, mean: Tensor, variance: Tensor, gamma: Tensor | None, beta: Tensor | None,
               epsilon: float) -> Tensor:
    y = (x - mean) * rsqrt(variance + epsilon)
    if gamma is not None:
        y = y * gamma
    return y + beta if beta is not None else y


def _check_epsilon(function: str, epsilon: float) -> None:
    if not epsilon >= 0:
        raise _error(ArgumentError, function, f"epsilon must be >= 0, got {epsilon}")


def layer_norm(x: Any, gamma: Any = None, beta: Any = None, axis: int | Sequence[int] = -1,
               epsilon: float = 1e-5) -> Tensor:
    """Layer normalization (Ba et al. 2016): each example normalized over ``axis`` (an int or a tuple), then
    scaled by ``gamma`` and shifted by ``beta`` of shape x.shape[axis] (both optional)."""
    x = _float_tensor("layer_norm", "x", x)
    axes = tuple(sorted(_axes("layer_norm", axis, x)))
    _check_epsilon("layer_norm", epsilon)
    gamma, beta = (None if p is None else _param("layer_norm", role, p, x, axes)
                   for role, p in (("gamma", gamma), ("beta", beta)))
    mean, variance = moments(x, axes, keepdims=True)
    return _normalize(x, mean, variance, gamma, beta, epsilon)


def batch_norm(x: Any, gamma: Any = None, beta: Any = None, *, training: bool | Tensor = True,
               moving_mean: Variable | None = None, moving_variance: Variable | None = None,
               momentum: float = 0.9, epsilon: float = 1e-5, axis: int = -1) -> Tensor:
    """Batch normalization (Ioffe & Szegedy 2015) of each feature along ``axis`` over all other axes (for NHWC
    convolution features, axis −1 over N, H and W), scaled by ``gamma`` and shifted by ``beta`` (shape (C,)).

    At training the batch's mean and biased variance normalize, and the chain rule runs through them. At
    inference (``training`` False) the moving statistics do. ``training`` may be a bool scalar tensor: one
    graph then serves both, selecting the statistics when run.

    When ``moving_mean`` and ``moving_variance`` (gc.Variables of shape (C,)) are given and ``training`` is
    not the constant False, their updates moving ← momentum·moving + (1 − momentum)·batch are appended to
    ``x.graph.update_ops`` (an optimizer's ``minimize`` runs them; with a tensor ``training`` they keep the
    old value when it is False). As torch does, the moving variance averages the UNBIASED batch variance
    (times n/(n − 1), n the number of values per feature; a batch of one value counts as n − 1 = 1).
    """
    x = _float_tensor("batch_norm", "x", x)
    if x.ndim < 1:
        raise _error(ShapeError, "batch_norm", f"x '{x.name}' is a scalar; it needs a feature axis")
    feature = _axes("batch_norm", axis, x)[0]
    others = tuple(a for a in range(x.ndim) if a != feature)
    training = _training_flag("batch_norm", training)
    _check_epsilon("batch_norm", epsilon)
    if not 0.0 <= momentum <= 1.0:
        raise _error(ArgumentError, "batch_norm", f"momentum must be in [0, 1], got {momentum}")
    gamma, beta = (None if p is None else _param("batch_norm", role, p, x, (feature,))
                   for role, p in (("gamma", gamma), ("beta", beta)))
    if (moving_mean is None) != (moving_variance is None):
        raise _error(ArgumentError, "batch_norm", "give both moving_mean and moving_variance, or neither")
    if training is True:
        mean, variance = moments(x, others, keepdims=True)
    elif moving_mean is None:
        raise _error(ArgumentError, "batch_norm", "inference (training False or a tensor) normalizes with the "
                                                  "moving statistics: pass moving_mean and moving_variance")
    if moving_mean is None:
        return _normalize(x, mean, variance, gamma, beta, epsilon)
    moving = [_param("batch_norm", role, v, x, (feature,)) for role, v in
              (("moving_mean", moving_mean), ("moving_variance", moving_variance))]
    if training is False:
        return _normalize(x, moving[0], moving[1], gamma, beta, epsilon)
    if training is not True:
        batch_mean, batch_variance = moments(x, others, keepdims=True)
        mean, variance = (where(training, b, m) for b, m in zip((batch_mean, batch_variance), moving))
    else:
        batch_mean, batch_variance = mean, variance
    _append_moving_updates(x, others, training, (moving_mean, moving_variance), batch_mean, batch_variance,
                           momentum)
    return _normalize(x, mean, variance, gamma, beta, epsilon)


def _append_moving_updates(x: Tensor, axes: tuple[int, ...], training: bool | Tensor,
                           variables: tuple[Variable, Variable], batch_mean: Tensor, batch_variance: Tensor,
                           momentum: float) -> None:
    """Append to x.graph.update_ops the moving-average assigns of batch_norm (see its docstring)."""
    n = _count(x, axes)
    unbiased = batch_variance * (n / maximum(n - 1.0, 1.0) if isinstance(n, Tensor) else n / max(n - 1.0, 1.0))
    for variable, statistic in zip(variables, (batch_mean, unbiased)):
        if not isinstance(variable, Variable):
            raise _error(ArgumentError, "batch_norm", f"moving statistics must be gc.Variables, got {variable!r}")
        new = momentum * variable + (1.0 - momentum) * reshape(statistic, variable.shape)
        if training is not True:
            new = where(training, new, variable)
        x.graph.update_ops.append(assign(variable, new))


# -- dropout ---------------------------------------------------------------------------------------------
def dropout(x: Any, rate: float, training: bool | Tensor = True, seed: int | None = None) -> Tensor:
    """Inverted dropout: at training each element is zeroed with probability ``rate`` and the kept ones are
    divided by 1 − rate (so the expected value is unchanged and inference is the identity).

    ``training`` False returns x itself; True always drops; a bool scalar tensor chooses when run. The mask
    is ``gc.random.bernoulli(like=x, p=1 − rate, seed=seed)``: a new one every run, the same sequence for the
    same seed (None derives one from the graph).
    """
    x = _float_tensor("dropout", "x", x)
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.floating, np.integer)) \
            or not 0.0 <= rate < 1.0:
        raise _error(ArgumentError, "dropout", f"rate (the probability of dropping) must be a number in [0, 1), "
                                               f"got {rate!r}")
    training = _training_flag("dropout", training)
    if training is False or rate == 0:
        return x
    keep = random.bernoulli(like=x, p=1.0 - float(rate), dtype=x.dtype, seed=seed)
    dropped = x * keep / (1.0 - float(rate))
    return dropped if training is True else where(training, dropped, x)


# -- embeddings ------------------------------------------------------------------------------------------
def embedding_lookup(params: Any, ids: Any) -> Tensor:
    """Rows ``params[ids]`` of an embedding matrix (vocab, dim): shape ids.shape + (dim,).

    A gather: its gradient is a scatter-add into the rows used, never a dense (ids, vocab) one-hot product.
    """
    params = as_tensor(params)
    ids = as_tensor(ids, graph=params.graph)
    if ids.dtype not in INTS:
        raise _error(DTypeError, "embedding_lookup", f"ids must be int32 or int64, got {ids.dtype} ('{ids.name}')")
    if params.ndim < 1:
        raise _error(ShapeError, "embedding_lookup", f"params '{params.name}' is a scalar; it needs (vocab, ...)")
    return gather(params, ids, axis=0)


# -- attention -------------------------------------------------------------------------------------------
def _swap_last(x: Tensor) -> Tensor:
    perm = (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2)
    return transpose(x, perm)


def _check_attention_shapes(q: Tensor, k: Tensor, v: Tensor) -> None:
    for role, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2:
            raise _error(ShapeError, "attention", f"{role} '{t.name}' has shape {format_shape(t.shape)}; it needs "
                                                  "(..., T, d) with rank >= 2")
    if None not in (q.shape[-1], k.shape[-1]) and q.shape[-1] != k.shape[-1]:
        raise _error(ShapeError, "attention", f"q {format_shape(q.shape)} and k {format_shape(k.shape)} need the "
                                              "same key size (last axis)")
    if None not in (k.shape[-2], v.shape[-2]) and k.shape[-2] != v.shape[-2]:
        raise _error(ShapeError, "attention", f"k {format_shape(k.shape)} and v {format_shape(v.shape)} need the "
                                              "same length Tk (second to last axis)")
    if q.shape[-1] is None:
        raise _error(ShapeError, "attention", f"q {format_shape(q.shape)}: the key size d (last axis) must be "
                                              "known when the graph is built (it sets the 1/√d scale)")


def _attention_mask(q: Tensor, k: Tensor, logits: Tensor, mask: Any, causal: bool) -> Tensor | None:
    """The bool mask (True = may attend) broadcastable to the logits, with the causal one folded in."""
    if mask is not None:
        mask = as_tensor(mask, graph=q.graph)
        if mask.dtype != "bool":
            raise _error(DTypeError, "attention", f"mask must be bool (True = may attend), got {mask.dtype}")
        try:
            broadcast_shapes(mask.shape, logits.shape)
        except ShapeError:
            raise _error(ShapeError, "attention", f"mask {format_shape(mask.shape)} does not broadcast to the "
                                                  f"logits (..., Tq, Tk) {format_shape(logits.shape)}") from None
    if not causal:
        return mask
    tq, tk = q.shape[-2], k.shape[-2]
    if tq is None or tk is None:
        raise _error(ShapeError, "attention", f"causal=True needs Tq and Tk known when the graph is built, got q "
                                              f"{format_shape(q.shape)} and k {format_shape(k.shape)}")
    # query i attends to keys 0..i (top-left aligned, as torch's is_causal)
    lower = constant(np.tril(np.ones((tq, tk), dtype=bool)), name="causal_mask")
    return lower if mask is None else logical_and(mask, lower)


def attention(q: Any, k: Any, v: Any, mask: Any = None, causal: bool = False) -> Tensor:
    """Scaled dot-product attention softmax(q·kᵀ/√d + masking)·v over the last two axes.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv); leading batch/head axes broadcast; the result is
    (..., Tq, dv). ``mask``: bool, broadcastable to (..., Tq, Tk), True where a query may attend to a key.
    ``causal``: query i attends to keys 0..i only (needs Tq and Tk known when built). Masked logits are set to
    the dtype's lowest finite value, so a row stays finite (a fully masked row averages all values evenly).
    """
    q, k, v = (_float_tensor("attention", role, t) for role, t in (("q", q), ("k", k), ("v", v)))
    if len({q.dtype, k.dtype, v.dtype}) > 1:
        raise _error(DTypeError, "attention", f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    _check_attention_shapes(q, k, v)
    logits = matmul(q, _swap_last(k)) * (1.0 / math.sqrt(q.shape[-1]))
    mask = _attention_mask(q, k, logits, mask, causal)
    if mask is not None:
        logits = where(mask, logits, float(np.finfo(logits.dtype).min))
    return matmul(softmax(logits, axis=-1), v)


# -- maxout ----------------------------------------------------------------------------------------------
def maxout(x: Any, num_units: int, axis: int = -1) -> Tensor:
    """Maxout (Goodfellow et al. 2013), as TF: the C features along ``axis`` are split into ``num_units``
    groups of C / num_units consecutive features, and each unit is the max of its group.

    With a Dense of 2·units before it, unit i is max(w1ᵀx + b1, w2ᵀx + b2) (Goodfellow et al. 2013).
    """
    x = _float_tensor("maxout", "x", x)
    axis = _axes("maxout", axis, x)[0]
    size = x.shape[axis]
    if isinstance(num_units, bool) or not isinstance(num_units, (int, np.integer)) or num_units < 1:
        raise _error(ArgumentError, "maxout", f"num_units must be a positive int, got {num_units!r}")
    if size is None or size % num_units:
        raise _error(ShapeError, "maxout", f"x {format_shape(x.shape)} has {size} features on axis {axis}, which "
                                           f"must be known and a multiple of num_units={num_units}")
    if x.shape.count(None) > 1:
        raise _error(ShapeError, "maxout", f"x {format_shape(x.shape)} has several unknown sizes; give all but one")
    split = (*x.shape[:axis], int(num_units), size // int(num_units), *x.shape[axis + 1:])
    return reduce_max(reshape(x, tuple(-1 if d is None else d for d in split)), axis + 1)

