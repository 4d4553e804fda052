"""The op library: one module per family, each op an ``OpDef`` in ``REGISTRY`` plus its public function."""

from graphc.ops import elementwise, indexing, linalg, nn, random, reduce, shape, sources, state
from graphc.ops.elementwise import *  # noqa: F403
from graphc.ops.indexing import *  # noqa: F403
from graphc.ops.linalg import *  # noqa: F403
from graphc.ops.reduce import *  # noqa: F403
from graphc.ops.registry import REGISTRY, OpDef
from graphc.ops.shape import *  # noqa: F403
from graphc.ops.sources import constant, placeholder
from graphc.ops.state import (
    Variable,
    assign,
    assign_add,
    global_variables,
    global_variables_initializer,
    group,
    trainable_variables,
)

__all__ = [
    "REGISTRY", "OpDef", "Variable", "assign", "assign_add", "constant", "elementwise", "global_variables",
    "global_variables_initializer", "group", "indexing", "linalg", "nn", "placeholder", "random", "reduce",
    "shape", "sources", "state", "trainable_variables",
]
__all__ += elementwise.__all__ + indexing.__all__ + linalg.__all__ + reduce.__all__ + shape.__all__
