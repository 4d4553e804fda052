"""``gc.nn``: activations, softmax and the losses, convolution and pooling, normalization, dropout,
attention and embeddings, and the layers that create their own variables."""

from graphc.nn import functional, layers
from graphc.nn.functional import *  # noqa: F403
from graphc.nn.layers import *  # noqa: F403
from graphc.ops import conv, pool
from graphc.ops.conv import *  # noqa: F403
from graphc.ops.elementwise import elu, gelu, leaky_relu, relu, sigmoid, softplus, tanh
from graphc.ops.nn import *  # noqa: F403
from graphc.ops.nn import __all__ as _nn_ops
from graphc.ops.pool import *  # noqa: F403

__all__ = ["elu", "gelu", "leaky_relu", "relu", "sigmoid", "softplus", "tanh", *_nn_ops, *conv.__all__,
           *pool.__all__, *functional.__all__, *layers.__all__]
