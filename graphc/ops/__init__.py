"""The op library: one module per family, each op an ``OpDef`` in ``REGISTRY`` plus its public function."""

from graphc.ops import (  # noqa: F401 - importing a family registers its ops
    conv,
    elementwise,
    indexing,
    linalg,
    nn,
    pool,
    random,
    reduce,
    shape,
    sources,
    state,
)
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

# the public op functions (re-exported as gc.<name>); family modules stay reachable as graphc.ops.<family>
__all__ = [
    "REGISTRY", "OpDef", "Variable", "assign", "assign_add", "constant", "global_variables",
    "global_variables_initializer", "group", "placeholder", "trainable_variables",
]
__all__ += elementwise.__all__ + indexing.__all__ + linalg.__all__ + reduce.__all__ + shape.__all__
