"""Layers: Keras-like objects that create their variables on first call (``gc.nn.Dense(10)(x)``).

A layer is called like a function on tensors. Its first call builds its variables from the input's static
shape (a None feature size is a ShapeError naming the layer), inside ``name_scope(layer.name)``; later calls
reuse them, so a layer called twice shares its weights. Default names are unique per graph (dense,
dense_1, ...). Initial values come from ``gc.init`` (a name) or a callable ``(shape, seed) -> array``;
``seed=None`` derives the seed from the graph's seed and size, so a script gives the same weights every run.

Everything a layer computes is built from gc ops and the gc.nn functions (batch_norm, attention, ...): a
layer adds variables and bookkeeping, no computation of its own.
"""

from __future__ import annotations

import inspect
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc import init
from graphc.errors import ArgumentError, ShapeError
from graphc.graph.dtypes import as_dtype
from graphc.graph.graph import Graph
from graphc.graph.node import Tensor
from graphc.graph.source import user_source_line
from graphc.graph.types import format_shape
from graphc.nn import functional
from graphc.ops import conv, elementwise, nn, pool
from graphc.ops.axes import normalize_axis
from graphc.ops.convert import as_tensor
from graphc.ops.linalg import einsum, matmul
from graphc.ops.random import derived_seed
from graphc.ops.shape import expand_dims, reshape
from graphc.ops.state import Variable

__all__ = ["Layer", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "BatchNorm", "LayerNorm", "Dropout",
           "Embedding", "MultiHeadAttention", "Sequential", "Residual", "residual"]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": elementwise.relu, "tanh": elementwise.tanh, "sigmoid": elementwise.sigmoid, "gelu": elementwise.gelu,
    "elu": elementwise.elu, "leaky_relu": elementwise.leaky_relu, "softplus": elementwise.softplus,
    "softmax": nn.softmax,
}
_RANDOM_INITIALIZERS = ("uniform", "normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                        "orthogonal")
# layer names taken in each graph (the variables are named <layer>/<variable>, so the graph's own node
# names do not show that a layer name is in use)
_LAYER_NAMES: weakref.WeakKeyDictionary[Graph, set[str]] = weakref.WeakKeyDictionary()


def _activation(spec: Any) -> Callable[[Tensor], Tensor] | None:
    if spec is None or callable(spec):
        return spec
    if spec in ACTIVATIONS:
        return ACTIVATIONS[spec]
    raise ArgumentError(f"unknown activation {spec!r} (at {user_source_line()}): give a callable or one of "
                        f"{', '.join(ACTIVATIONS)}")


def _initializer(spec: Any) -> Callable[[tuple, int], np.ndarray]:
    """A gc.init name or a callable as a function (shape, seed) -> array."""
    if callable(spec):
        return spec
    if spec in _RANDOM_INITIALIZERS:
        return lambda shape, seed: getattr(init, spec)(shape, seed=seed, dtype="float64")
    if spec in ("zeros", "ones"):
        return lambda shape, seed: getattr(init, spec)(shape, dtype="float64")
    raise ArgumentError(f"unknown initializer {spec!r} (at {user_source_line()}): give a callable "
                        f"(shape, seed) -> array or one of zeros, ones, {', '.join(_RANDOM_INITIALIZERS)}")


def _unique_layer_name(graph: Graph, base: str) -> str:
    """``base``, or ``base_1``, ``base_2``, ... : the first not yet used by a layer or node in the current scope."""
    used = _LAYER_NAMES.setdefault(graph, set())
    name, count = base, 0
    while True:
        full = graph.unique_name(name)  # the scoped name, suffixed when a node already has it
        if full.rsplit("/", 1)[-1] == name and full not in used:
            used.add(full)
            return name
        count += 1
        name = f"{base}_{count}"


def _accepts_training(fn: Callable[..., Any]) -> bool:
    target = fn.call if isinstance(fn, Layer) else fn
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return "training" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class Layer:
    """The base of the layers: names, variables built on first call, sublayers.

    A subclass implements ``build(x)`` (create variables with ``add_variable``; x is the first input) and
    ``call(x, ...)`` (the computation).
    """

    default_name = "layer"

    def __init__(self, name: str | None = None, dtype: Any = "float32", seed: int | None = None) -> None:
        self.name = name
        self.dtype = as_dtype(dtype)
        self.seed = seed
        self.built = False
        self._variables: list[Variable] = []
        self._sublayers: list[Layer] = []
        self._seed_base: int | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or '(not built)'}>"

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Build the variables on the first call (in the layer's name scope), then apply ``call``."""
        x = as_tensor(x)
        graph = x.graph
        if self.name is None:
            self.name = _unique_layer_name(graph, self.default_name)
        with graph.as_default(), graph.name_scope(self.name):
            if not self.built:
                self._seed_base = self.seed if self.seed is not None else derived_seed(graph.seed, len(graph.nodes))
                self.build(x)
                self.built = True
            return self.call(x, *args, **kwargs)

    def build(self, x: Tensor) -> None:
        """Create the layer's variables for input ``x``; layers without variables keep this default."""

    def call(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        """The layer's computation; every subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} defines no call()")

    @property
    def variables(self) -> list[Variable]:
        """Every variable of the layer and its sublayers, in creation order (empty before the first call)."""
        return self._variables + [v for layer in self._sublayers for v in layer.variables]

    @property
    def trainable_variables(self) -> list[Variable]:
        """The variables an optimizer updates (not a BatchNorm's moving statistics)."""
        return [v for v in self.variables if v.trainable]

    def add_variable(self, name: str, shape: tuple[int, ...], initializer: Any,
                     trainable: bool = True) -> Variable:
        """A new variable of the layer, of ``shape`` and the layer's dtype, from ``initializer``."""
        seed = derived_seed(self._seed_base, len(self._variables))
        value = np.asarray(_initializer(initializer)(shape, seed), dtype=self.dtype)
        if value.shape != tuple(shape):
            raise ShapeError(f"{self.name}: the initializer of '{name}' returned shape {value.shape}, not {shape}")
        variable = Variable(value, name=name, trainable=trainable)
        self._variables.append(variable)
        return variable

    def feature_size(self, x: Tensor, axis: int = -1) -> int:
        """x's static size along ``axis``, which the layer's variables need (ShapeError when None)."""
        try:
            axis = normalize_axis(axis, x.ndim)
        except ShapeError as error:
            raise ShapeError(f"{type(self).__name__} '{self.name}' (at {user_source_line()}): {error}, input "
                             f"'{x.name}' {format_shape(x.shape)}") from None
        if x.shape[axis] is None:
            raise ShapeError(f"{type(self).__name__} '{self.name}' (at {user_source_line()}) needs the size of axis "
                             f"{axis} of its input '{x.name}' {format_shape(x.shape)} when the graph is built, to "
                             "create its variables")
        return x.shape[axis]

    def check_rank(self, x: Tensor, ranks: str, ok: bool) -> None:
        """ShapeError naming the layer unless ``ok`` (x's rank is one ``ranks`` describes)."""
        if not ok:
            raise ShapeError(f"{type(self).__name__} '{self.name}' (at {user_source_line()}) needs an input of rank "
                             f"{ranks}, got '{x.name}' {format_shape(x.shape)}")


class Dense(Layer):
    """activation(x @ kernel + bias): a fully connected layer over the last axis of an input of rank >= 2."""

    default_name = "dense"

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros", seed: int | None = None,
                 dtype: Any = "float32", name: str | None = None) -> None:
        super().__init__(name, dtype, seed)
        self.units, self.use_bias = int(units), use_bias
        self.activation = _activation(activation)
        self.kernel_initializer = _initializer(kernel_initializer)
        self.bias_initializer = _initializer(bias_initializer)

    def build(self, x: Tensor) -> None:
        self.check_rank(x, ">= 2", x.ndim >= 2)
        self.kernel = self.add_variable("kernel", (self.feature_size(x), self.units), self.kernel_initializer)
        self.bias = self.add_variable("bias", (self.units,), self.bias_initializer) if self.use_bias else None

    def call(self, x: Tensor) -> Tensor:
        y = matmul(x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y


class Conv2D(Layer):
    """activation(conv2d(x, kernel) + bias) on NHWC inputs with an HWIO kernel (KH, KW, C, filters)."""

    default_name = "conv2d"

    def __init__(self, filters: int, kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                 padding: Any = "same", dilation: int | Sequence[int] = 1, activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 seed: int | None = None, dtype: Any = "float32", name: str | None = None) -> None:
        super().__init__(name, dtype, seed)
        self.filters, self.use_bias = int(filters), use_bias
        self.kernel_size = pool.pair(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.activation = _activation(activation)
        self.kernel_initializer = _initializer(kernel_initializer)
        self.bias_initializer = _initializer(bias_initializer)

    def build(self, x: Tensor) -> None:
        self.check_rank(x, "4 (N, H, W, C)", x.ndim == 4)
        shape = (*self.kernel_size, self.feature_size(x), self.filters)
        self.kernel = self.add_variable("kernel", shape, self.kernel_initializer)
        self.bias = self.add_variable("bias", (self.filters,), self.bias_initializer) if self.use_bias else None

    def call(self, x: Tensor) -> Tensor:
        y = conv.conv2d(x, self.kernel, stride=self.stride, padding=self.padding, dilation=self.dilation)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y


class MaxPool2D(Layer):
    """gc.nn.max_pool2d as a layer (no variables)."""

    default_name = "max_pool2d"

    def __init__(self, ksize: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: str = "valid", name: str | None = None) -> None:
        super().__init__(name)
        self.ksize, self.stride, self.padding = ksize, stride, padding

    def call(self, x: Tensor) -> Tensor:
        return pool.max_pool2d(x, self.ksize, self.stride, self.padding)


class AvgPool2D(MaxPool2D):
    """gc.nn.avg_pool2d as a layer (no variables)."""

    default_name = "avg_pool2d"

    def call(self, x: Tensor) -> Tensor:
        return pool.avg_pool2d(x, self.ksize, self.stride, self.padding)


class Flatten(Layer):
    """(N, ...) → (N, features): every axis but the first (the batch, which may be None) merged into one."""

    default_name = "flatten"

    def call(self, x: Tensor) -> Tensor:
        self.check_rank(x, ">= 1", x.ndim >= 1)
        if None in x.shape[1:]:
            raise ShapeError(f"Flatten '{self.name}' (at {user_source_line()}) needs every axis but the batch known "
                             f"when the graph is built, got '{x.name}' {format_shape(x.shape)}")
        return reshape(x, (-1, math.prod(x.shape[1:])))


class BatchNorm(Layer):
    """gc.nn.batch_norm with trainable gamma (ones) and beta (zeros) and non-trainable moving statistics;
    ``call(x, training=True)`` (a bool or a bool scalar tensor) appends the moving-average updates to
    ``graph.update_ops``."""

    default_name = "batch_norm"

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5, axis: int = -1, dtype: Any = "float32",
                 name: str | None = None) -> None:
        super().__init__(name, dtype)
        self.momentum, self.epsilon, self.axis = momentum, epsilon, axis

    def build(self, x: Tensor) -> None:
        self.check_rank(x, ">= 1", x.ndim >= 1)
        size = (self.feature_size(x, self.axis),)
        self.gamma, self.beta = self.add_variable("gamma", size, "ones"), self.add_variable("beta", size, "zeros")
        self.moving_mean = self.add_variable("moving_mean", size, "zeros", trainable=False)
        self.moving_variance = self.add_variable("moving_variance", size, "ones", trainable=False)

    def call(self, x: Tensor, training: bool | Tensor = True) -> Tensor:
        return functional.batch_norm(x, self.gamma, self.beta, training=training, moving_mean=self.moving_mean,
                                     moving_variance=self.moving_variance, momentum=self.momentum,
                                     epsilon=self.epsilon, axis=self.axis)


class LayerNorm(Layer):
    """gc.nn.layer_norm over ``axis`` (default the last) with trainable gamma (ones) and beta (zeros)."""

    default_name = "layer_norm"

    def __init__(self, epsilon: float = 1e-5, axis: int | Sequence[int] = -1, dtype: Any = "float32",
                 name: str | None = None) -> None:
        super().__init__(name, dtype)
        self.epsilon, self.axis = epsilon, axis

    def build(self, x: Tensor) -> None:
        axes = self.axis if isinstance(self.axis, (tuple, list)) else (self.axis,)
        shape = tuple(self.feature_size(x, a) for a in sorted(normalize_axis(a, x.ndim) for a in axes))
        self.gamma, self.beta = self.add_variable("gamma", shape, "ones"), self.add_variable("beta", shape, "zeros")

    def call(self, x: Tensor) -> Tensor:
        return functional.layer_norm(x, self.gamma, self.beta, axis=self.axis, epsilon=self.epsilon)


class Dropout(Layer):
    """gc.nn.dropout as a layer: ``call(x, training=True)`` (a bool or a bool scalar tensor)."""

    default_name = "dropout"

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name, seed=seed)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ArgumentError(f"Dropout (at {user_source_line()}): rate must be a number in [0, 1), got {rate!r}")
        self.rate = rate

    def call(self, x: Tensor, training: bool | Tensor = True) -> Tensor:
        return functional.dropout(x, self.rate, training=training, seed=self.seed)


class Embedding(Layer):
    """A (vocab_size, dim) table whose rows ``call(ids)`` looks up (gc.nn.embedding_lookup: sparse gradient)."""

    default_name = "embedding"

    def __init__(self, vocab_size: int, dim: int, initializer: Any = "uniform", seed: int | None = None,
                 dtype: Any = "float32", name: str | None = None) -> None:
        super().__init__(name, dtype, seed)
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        self.initializer = _initializer(initializer)

    def build(self, x: Tensor) -> None:
        self.table = self.add_variable("embeddings", (self.vocab_size, self.dim), self.initializer)

    def call(self, ids: Tensor) -> Tensor:
        return functional.embedding_lookup(self.table, ids)


class MultiHeadAttention(Layer):
    """Multi-head attention (Vaswani et al. 2017) on (B, T, D) inputs.

    ``call(query, value=None, key=None, mask=None, causal=False)``: self-attention when value is None; key
    defaults to value. Each input is projected per head to (B, heads, T, key_dim) (value: value_dim) by one
    einsum with a (D, heads, key_dim) kernel — a Dense per head, already heads-major — then gc.nn.attention
    runs per head, and the heads are merged by the output projection to the query's width. ``mask``: bool,
    broadcastable to (B, Tq, Tk) or (B, heads, Tq, Tk); True = may attend.
    """

    default_name = "multi_head_attention"

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", seed: int | None = None, dtype: Any = "float32",
                 name: str | None = None) -> None:
        super().__init__(name, dtype, seed)
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim) if value_dim is not None else self.key_dim
        self.use_bias, self.kernel_initializer = use_bias, _initializer(kernel_initializer)

    def _projection(self, name: str, size: int, depth: int) -> tuple[Variable, Variable | None]:
        kernel = self.add_variable(f"{name}_kernel", (size, self.num_heads, depth), self.kernel_initializer)
        bias = self.add_variable(f"{name}_bias", (self.num_heads, 1, depth), "zeros") if self.use_bias else None
        return kernel, bias

    def __call__(self, query: Any, value: Any = None, key: Any = None, mask: Any = None,
                 causal: bool = False) -> Tensor:
        """Build on the first call from the query, value and key widths, then attend (see the class)."""
        query = as_tensor(query)
        value = query if value is None else as_tensor(value)
        key = value if key is None else as_tensor(key)
        self._inputs = (query, value, key)
        return super().__call__(query, value, key, mask, causal)

    def build(self, x: Tensor) -> None:
        for t in self._inputs:
            self.check_rank(t, "3 (batch, time, features)", t.ndim == 3)
        width = [self.feature_size(t) for t in self._inputs]
        self.query = self._projection("query", width[0], self.key_dim)
        self.value = self._projection("value", width[1], self.value_dim)
        self.key = self._projection("key", width[2], self.key_dim)
        self.output_kernel = self.add_variable("output_kernel", (self.num_heads, self.value_dim, width[0]),
                                               self.kernel_initializer)
        self.output_bias = self.add_variable("output_bias", (width[0],), "zeros") if self.use_bias else None

    def call(self, query: Tensor, value: Tensor, key: Tensor, mask: Any = None, causal: bool = False) -> Tensor:
        q, k, v = (self._project(t, weights) for t, weights in ((query, self.query), (key, self.key),
                                                               (value, self.value)))
        if mask is not None:
            mask = as_tensor(mask, graph=query.graph)
            mask = expand_dims(mask, -3) if mask.ndim == 3 else mask  # (B, Tq, Tk): the same for every head
        heads = functional.attention(q, k, v, mask=mask, causal=causal)
        out = einsum("bhtv,hvo->bto", heads, self.output_kernel)
        return out + self.output_bias if self.output_bias is not None else out

    @staticmethod
    def _project(x: Tensor, weights: tuple[Variable, Variable | None]) -> Tensor:
        kernel, bias = weights
        projected = einsum("btd,dhk->bhtk", x, kernel)
        return projected + bias if bias is not None else projected


class Sequential(Layer):
    """Layers (or plain callables such as gc.nn.relu) applied in order; ``call(x, training=None)`` passes
    ``training`` (when given) to those whose call accepts it."""

    default_name = "sequential"

    def __init__(self, layers: Sequence[Callable[..., Any]], name: str | None = None) -> None:
        super().__init__(name)
        self.layers = list(layers)
        for layer in self.layers:
            if not callable(layer):
                raise ArgumentError(f"Sequential (at {user_source_line()}): {layer!r} is not a layer or callable")
        self._sublayers = [layer for layer in self.layers if isinstance(layer, Layer)]

    def call(self, x: Tensor, training: bool | Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, training=training) if training is not None and _accepts_training(layer) else layer(x)
        return x


class Residual(Sequential):
    """x + F(x), F the layers applied in order (a residual block); F must keep x's shape."""

    default_name = "residual"

    def __init__(self, *layers: Callable[..., Any], name: str | None = None) -> None:
        super().__init__(layers, name)

    def call(self, x: Tensor, training: bool | Tensor | None = None) -> Tensor:
        return residual(x, lambda t: Sequential.call(self, t, training))


def residual(x: Any, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """x + fn(x), a skip connection; ShapeError when fn changes the shape (no silent broadcasting)."""
    x = as_tensor(x)
    y = fn(x)
    if y.ndim != x.ndim or any(a is not None and b is not None and a != b for a, b in zip(x.shape, y.shape)):
        raise ShapeError(f"residual (at {user_source_line()}): the branch maps {format_shape(x.shape)} to "
                         f"{format_shape(y.shape)}; x + F(x) needs F to keep the shape")
    return x + y
