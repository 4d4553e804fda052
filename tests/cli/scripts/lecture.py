"""The lecture's y = ln x1 + x1·x2 − sin x2 with its gradients: build() returns what to show."""

import graphc as gc


def build():
    x1 = gc.placeholder("float64", (), name="x1")
    x2 = gc.placeholder("float64", (), name="x2")
    y = gc.log(x1) + x1 * x2 - gc.sin(x2)
    dx1, dx2 = gc.gradients(y, [x1, x2])
    return {"y": y, "dx1": dx1, "dx2": dx2}


if __name__ == "__main__":
    raise SystemExit("graphc must not run this block")
