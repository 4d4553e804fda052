"""Lowerings of the ops that run as kernels of their own (the partition's "opaque" kernels).

Importing this package registers every lowering in ``graphc.lower.context.LOWERINGS``; one module per op
family. Fused kernels (elementwise, reductions, nn row ops, views, matmuls) are lowered by
graphc/lower/fused.py and graphc/lower/matmul.py instead.
"""

from graphc.lower.ops import conv, indexing, linalg, pool, random, shape  # noqa: F401 - registers the lowerings
