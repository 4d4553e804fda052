"""The PyTorch tutorial's first example (Justin Johnson's, in the lecture notes): fit y = a + b·x + c·x² + d·x³
to sin(x) on 2000 points of [−π, π] by gradient descent on the sum of squared errors.

The tutorial writes the gradients by hand (grad_a = Σ 2(ŷ − y), grad_b = Σ 2(ŷ − y)·x, ...); here
gc.train.SGD(1e-6) asks gc.gradients for them. Same data, loss, learning rate and 2000 steps, so the
printed losses and the final polynomial (about 0.85·x − 0.09·x³) match the tutorial's.
"""

import math

import numpy as np
from _common import parse_args

import graphc as gc


def main() -> None:
    """Fit the cubic by SGD, printing the loss every 100 steps and the polynomial at the end."""
    args = parse_args(__doc__)
    x_data = np.linspace(-math.pi, math.pi, 2000)
    y_data = np.sin(x_data)
    rng = np.random.default_rng(0)

    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", shape=(None,), name="x")
        y = gc.placeholder("float64", shape=(None,), name="y")
        a, b, c, d = (gc.Variable(np.array(rng.standard_normal()), name=name) for name in "abcd")
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = gc.reduce_sum(gc.square(y_pred - y))
        step = gc.train.SGD(1e-6).minimize(loss)

    steps = 200 if args.smoke else 2000
    with gc.Session(graph=g) as sess:
        for t in range(steps):
            value, _ = sess.run([loss, step], feed_dict={x: x_data, y: y_data})
            if t % 100 == 99:
                print(t, value)
        a, b, c, d = (value.item() for value in sess.run([a, b, c, d]))
    print(f"Result: y = {a} + {b} x + {c} x^2 + {d} x^3")


if __name__ == "__main__":
    main()
