"""Cases for sum_to and broadcast_like, the run-time (un)broadcasting ops gradients use."""

import numpy as np

from graphc.ops import broadcast
from tests.ops.harness import OpCase, uniform


def _numpy_sum_to(x, like):
    lead = x.ndim - like.ndim
    total = x.sum(axis=tuple(range(lead))) if lead else x
    axes = tuple(i for i, n in enumerate(like.shape) if n == 1)
    return total.sum(axis=axes, keepdims=True).astype(x.dtype) if axes else total


SUM_TO_PAIRS = [((3, 4), (4,)), ((3, 4), (3, 1)), ((2, 3, 4), (1, 4)), ((2, 3), (2, 3)), ((5,), ()),
                ((0, 3), (3,)), ((4, 1), (1,))]

CASES = [
    *(OpCase(broadcast.SUM_TO, broadcast.sum_to,
             lambda rng, a=a, b=b, d=d: [uniform(rng, a, d), uniform(rng, b, d)],
             _numpy_sum_to, f"{d}-{a}-{b}", rtol=1e-5 if d == "float32" else 1e-12,
             atol=1e-6 if d == "float32" else 1e-14)  # sums of random signs can nearly cancel
      for a, b in SUM_TO_PAIRS for d in ("float32", "float64")),
    *(OpCase(broadcast.BROADCAST_LIKE, broadcast.broadcast_like,
             lambda rng, a=a, b=b: [uniform(rng, b, "float64"), uniform(rng, a, "float32")],
             lambda x, like: np.broadcast_to(x, like.shape).copy(), f"{b}-to-{a}")
      for a, b in SUM_TO_PAIRS),
    *(OpCase(broadcast.MATCH_SHAPE, broadcast.match_shape,
             lambda rng, a=a: [uniform(rng, a, "float64"), uniform(rng, a, "float32")],
             lambda x, like: x.copy(), f"{a}")
      for a in [(3, 4), (), (0, 2)]),
]
