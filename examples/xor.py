"""XOR, the function no single perceptron computes, from the lecture's flow diagram and then by training.

1. The hand-made 2-2-1 network of the notes, with the unit step u(ξ) = 1 if ξ > 0 else 0:

       ξ1 = 0.5 − x1 − x2,   ξ2 = −1.5 + x1 + x2,   h1 = u(ξ1),   h2 = u(ξ2)
       ξ3 = 0.5 − h1 − h2,   f = u(ξ3)

   h1 fires for (0, 0) only, h2 for (1, 1) only, and f when neither does: exactly x1 ⊕ x2.
2. The same 2-2-1 shape learned from the four examples: a tanh hidden layer, a sigmoid output, the
   sigmoid cross-entropy loss and Adam. The step function has no useful gradient; tanh and sigmoid do.
   So small a network often gets stuck in a local minimum that gets three of the four inputs right
   (p = 0.5 on the others): of the seeds 0, 2, ..., 18 only 6 and 14 solve XOR with this recipe.
"""

import numpy as np
from _common import parse_args

import graphc as gc

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
TARGETS = np.array([[0], [1], [1], [0]], np.float32)


def unit_step(xi: gc.Tensor) -> gc.Tensor:
    """u(ξ): 1.0 where ξ > 0, else 0.0."""
    return gc.cast(xi > 0, "float32")


def truth_table(title: str, outputs: np.ndarray, extra: np.ndarray | None = None) -> None:
    """Print x1, x2 → f for the four inputs (and, when given, the network's probability next to it)."""
    print(title)
    print(" x1 x2 | f" + ("   p(f=1)" if extra is not None else ""))
    for row, (x1, x2) in enumerate(INPUTS.astype(int)):
        tail = f"   {extra[row, 0]:.3f}" if extra is not None else ""
        print(f"  {x1}  {x2} | {int(outputs[row, 0])}{tail}")


def hand_made() -> np.ndarray:
    """The flow diagram's network, evaluated on the four inputs."""
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", shape=(None, 2), name="x")
        x1, x2 = x[:, 0:1], x[:, 1:2]
        h1 = unit_step(0.5 - x1 - x2)
        h2 = unit_step(-1.5 + x1 + x2)
        f = unit_step(0.5 - h1 - h2)
    with gc.Session(graph=g) as sess:
        return sess.run(f, feed_dict={x: INPUTS})


def trained(steps: int, seed: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Train a 2-2-1 tanh/sigmoid network on the four examples; its 0/1 outputs and probabilities."""
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", shape=(None, 2), name="x")
        t = gc.placeholder("float32", shape=(None, 1), name="t")
        hidden = gc.nn.Dense(2, activation=gc.tanh, seed=seed, name="hidden")
        output = gc.nn.Dense(1, seed=seed + 1, name="output")
        logits = output(hidden(x))
        loss = gc.reduce_mean(gc.nn.sigmoid_cross_entropy(logits, t))
        train_step = gc.train.Adam(0.1).minimize(loss)
        probability = gc.sigmoid(logits)
    feed = {x: INPUTS, t: TARGETS}
    with gc.Session(graph=g) as sess:
        for i in range(steps):
            value, _ = sess.run([loss, train_step], feed_dict=feed)
            if i % 100 == 0:
                print(f"step {i:3d}  loss {value:.4f}")
        p = sess.run(probability, feed_dict=feed)
    return (p > 0.5).astype(np.float32), p


def main() -> None:
    """Print the hand-made network's truth table, then train a 2-2-1 network and print the trained table."""
    args = parse_args(__doc__)
    truth_table("The flow diagram's weights:", hand_made())
    outputs, p = trained(steps=5 if args.smoke else 300)
    truth_table("\nTrained 2-2-1 network:", outputs, p)
    print(f"XOR solved: {bool(np.array_equal(outputs, TARGETS))}")


if __name__ == "__main__":
    main()
