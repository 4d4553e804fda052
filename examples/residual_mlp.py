"""A residual MLP separating two interleaved spirals, a classic task plain linear models cannot touch.

Each point (x1, x2) belongs to one of two spiral arms that wind around each other one and a half times.
The network lifts the point to 64 features, then applies four residual blocks x + F(x) with
F = LayerNorm → Dense 64, ReLU → Dense 64 (the pre-norm form of the lecture's residual connection: the
identity path carries the signal and its gradient through every block unchanged), and ends in one logit.
"""

import numpy as np
from _common import parse_args

import graphc as gc


def spirals(points_per_arm: int, seed: int, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Points of two spiral arms (the second is the first turned by 180°) and their 0/1 arm labels."""
    rng = np.random.default_rng(seed)
    turn = np.sqrt(rng.uniform(0.0, 1.0, points_per_arm)) * 3 * np.pi  # uniform density along the arm
    arm = np.stack([turn * np.cos(turn), turn * np.sin(turn)], axis=1) / (3 * np.pi)
    points = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * points_per_arm, 2))
    labels = np.repeat([0.0, 1.0], points_per_arm)[:, None]
    return points.astype(np.float32), labels.astype(np.float32)


def residual_block(width: int) -> gc.nn.Residual:
    """x + Dense(ReLU(Dense(LayerNorm(x))))."""
    return gc.nn.Residual(gc.nn.LayerNorm(), gc.nn.Dense(width, activation=gc.relu), gc.nn.Dense(width))


def build() -> dict:
    """The residual MLP, its loss and accuracy, and an Adam step, built in the default graph
    (``graphc dump``/``graphc viz`` show the tensors it returns)."""
    x = gc.placeholder("float32", shape=(None, 2), name="x")
    y = gc.placeholder("float32", shape=(None, 1), name="y")
    model = gc.nn.Sequential([
        gc.nn.Dense(64),
        *(residual_block(64) for _ in range(4)),
        gc.nn.LayerNorm(), gc.nn.Dense(1),
    ])
    logits = model(x)
    loss = gc.reduce_mean(gc.nn.sigmoid_cross_entropy(logits, y))
    accuracy = gc.reduce_mean(gc.cast(gc.equal(gc.cast(logits > 0, "float32"), y), "float32"))
    train_op = gc.train.Adam(1e-3).minimize(loss)
    return {"x": x, "y": y, "loss": loss, "accuracy": accuracy, "train": train_op}



def main() -> None:
    """Train the residual MLP on the spirals and print its test accuracy."""
    args = parse_args(__doc__)
    train_x, train_y = spirals(64 if args.smoke else 1000, seed=0)
    test_x, test_y = spirals(500, seed=1)

    g = gc.Graph()
    with g.as_default():
        model = build()
    x, y, loss, accuracy, train_op = (model[k] for k in ("x", "y", "loss", "accuracy", "train"))

    with gc.Session(graph=g) as sess:
        gc.train.fit(sess, train_op, [x, y], (train_x, train_y), epochs=1 if args.smoke else 60, batch_size=64,
                     loss=loss, metrics={"accuracy": accuracy})
        test = gc.train.evaluate(sess, {"accuracy": accuracy}, [x, y], (test_x, test_y))
    print(f"test accuracy: {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()
