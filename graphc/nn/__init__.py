"""``gc.nn``: activations, softmax and the losses (layers and conv/pool/norm ops arrive later)."""

from graphc.ops.elementwise import elu, gelu, leaky_relu, relu, sigmoid, softplus, tanh
from graphc.ops.nn import *  # noqa: F403
from graphc.ops.nn import __all__ as _nn_ops

__all__ = ["elu", "gelu", "leaky_relu", "relu", "sigmoid", "softplus", "tanh", *_nn_ops]
