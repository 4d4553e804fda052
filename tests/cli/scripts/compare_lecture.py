"""graphc compare's contract: build() returns (y, xs, feed_dict)."""

import graphc as gc


def build():
    x1 = gc.placeholder("float64", (), name="x1")
    x2 = gc.placeholder("float64", (), name="x2")
    y = gc.log(x1) + x1 * x2 - gc.sin(x2)
    return y, [x1, x2], {x1: 2.0, x2: 5.0}
