"""build() makes a shape mistake: graphc reports the user's traceback."""

import graphc as gc


def helper(a, b):
    return a @ b  # (2, 3) @ (2, 3): the inner dimensions differ


def build():
    a = gc.placeholder("float32", (2, 3), name="a")
    b = gc.placeholder("float32", (2, 3), name="b")
    return helper(a, b)
