"""The lecture's "AD for learning y = a·x + b": gradient descent recovers a = 2.7, b = −0.3 from 100 exact pairs.

As in the notes (and their PyTorch code): np.random.seed(42), x = rand(100, 1), a starts at 0.01·randn,
b at 0, the risk is the mean squared error, and an SGD optimizer with learning rate 0.01 does the updates.
graphc builds the gradients of the risk symbolically and compiles one step (risk, gradients, update) to
one native call, so the thousands of full-batch steps plain SGD needs take a few seconds.
"""

import numpy as np
from _common import parse_args

import graphc as gc

TRUE_A, TRUE_B = 2.7, -0.3


def main() -> None:
    """Fit a and b by SGD and print them with their errors."""
    args = parse_args(__doc__)
    np.random.seed(42)
    x_train = np.random.rand(100, 1)
    y_train = TRUE_A * x_train + TRUE_B
    initial_a = 0.01 * np.random.randn(1, 1)

    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float64", shape=(None, 1), name="x")
        y = gc.placeholder("float64", shape=(None, 1), name="y")
        a = gc.Variable(initial_a, name="a")
        b = gc.Variable(np.zeros((1, 1)), name="b")
        risk = gc.reduce_mean(gc.square(y - (x @ a + b)))
        step = gc.train.SGD(0.01).minimize(risk)

    steps = 20 if args.smoke else 12_000
    feed = {x: x_train, y: y_train}
    with gc.Session(graph=g) as sess:
        for i in range(steps):
            value, _ = sess.run([risk, step], feed_dict=feed)
            if i % 2000 == 0:
                print(f"step {i:5d}  risk {value:.3e}")
        found_a, found_b = (value.item() for value in sess.run([a, b]))
        final = sess.run(risk, feed_dict=feed)
    print(f"after {steps} steps: risk {final:.3e}")
    print(f"a = {found_a:.4f}, b = {found_b:.4f}   (true: a = {TRUE_A}, b = {TRUE_B})")
    print(f"errors: |a - a_true| = {abs(found_a - TRUE_A):.1e}, |b - b_true| = {abs(found_b - TRUE_B):.1e}")


if __name__ == "__main__":
    main()
