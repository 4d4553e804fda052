"""graphc: a symbolic graph compiler for deep learning.

Build a static graph of placeholders, variables, constants and ops; run it with a Session.
"""

from graphc import data, errors, init, nn, train, viz
from graphc.autodiff import check_gradients, gradients, hessian, jacobian, jvp, trace
from graphc.backends.cuda.arrays import DeviceArray, to_device
from graphc.graph import Graph, Tensor, TensorType, get_default_graph, name_scope, reset_default_graph
from graphc.ops import *  # noqa: F403
from graphc.ops import __all__ as _ops_all
from graphc.ops import random
from graphc.passes import optimize
from graphc.runtime import Function, Session, function

__version__ = "0.1.0"

__all__ = [
    "DeviceArray", "Function", "Graph", "Session", "Tensor", "TensorType", "check_gradients", "data", "errors",
    "function", "get_default_graph", "gradients", "hessian", "init", "jacobian", "jvp", "name_scope", "nn", "optimize",
    "random", "reset_default_graph", "to_device", "trace", "train", "viz", *_ops_all,
]


def __getattr__(name: str):
    """``gc.symbolic`` is imported on first use: it loads sympy, which most programs never need."""
    if name == "symbolic":
        import graphc.symbolic

        return graphc.symbolic
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")
