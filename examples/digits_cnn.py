"""A small convolutional network on the 8×8 digits, as (N, 8, 8, 1) NHWC images.

    Conv2D 3×3, 32 filters, ReLU → BatchNorm → MaxPool 2×2     8×8×1 → 8×8×32 → 4×4×32
    Conv2D 3×3, 64 filters, ReLU → MaxPool 2×2                  → 4×4×64 → 2×2×64
    Flatten → Dense 64, ReLU → Dropout 0.3 → Dense 10           → 256 → 64 → 10 logits

BatchNorm normalizes with the batch's statistics while training and with its running averages while
evaluating; Dropout is on only while training. Both follow the bool placeholder ``training``. The demo
(examples/demo.py) reuses ``build_cnn`` and ``train``; ``graphc viz examples/digits_cnn.py -o cnn.html``
draws the graph ``build()`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _common import Digits, load_digits, parse_args

import graphc as gc

EPOCHS = 40  # at most: early stopping ends training once the validation loss stops improving


@dataclass(frozen=True)
class CNN:
    """The tensors of the digits CNN's graph that training and evaluation feed and fetch."""

    images: gc.Tensor
    labels: gc.Tensor
    training: gc.Tensor
    loss: gc.Tensor
    accuracy: gc.Tensor
    train_op: Any  # the op Adam.minimize returns: running it takes one training step


def build_cnn(learning_rate: float = 3e-3) -> CNN:
    """The CNN, its loss and accuracy, and an Adam step, built in the default graph."""
    images = gc.placeholder("float32", shape=(None, 8, 8, 1), name="images")
    labels = gc.placeholder("int64", shape=(None,), name="labels")
    training = gc.placeholder("bool", shape=(), name="training")
    model = gc.nn.Sequential([
        gc.nn.Conv2D(32, 3, activation=gc.relu), gc.nn.BatchNorm(), gc.nn.MaxPool2D(2),
        gc.nn.Conv2D(64, 3, activation=gc.relu), gc.nn.MaxPool2D(2),
        gc.nn.Flatten(), gc.nn.Dense(64, activation=gc.relu), gc.nn.Dropout(0.3), gc.nn.Dense(10),
    ])
    logits = model(images, training=training)
    loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(logits, labels))
    accuracy = gc.reduce_mean(gc.cast(gc.equal(gc.argmax(logits, axis=-1), labels), "float32"))
    train_op = gc.train.Adam(learning_rate).minimize(loss)
    return CNN(images, labels, training, loss, accuracy, train_op)


def build() -> dict:
    """The training graph, for ``graphc dump`` and ``graphc viz``."""
    model = build_cnn()
    return {"loss": model.loss, "train": model.train_op}


def train(sess: gc.Session, model: CNN, data: Digits, epochs: int, verbose: bool = True) -> float:
    """Train with early stopping on the validation images; the accuracy on the test images."""
    gc.train.fit(sess, model.train_op, [model.images, model.labels], (data.x_train, data.y_train),
                 epochs=epochs, batch_size=32, loss=model.loss, metrics={"accuracy": model.accuracy},
                 validation_data=(data.x_val, data.y_val), training=model.training,
                 early_stopping=gc.train.EarlyStopping(patience=8), seed=0, verbose=verbose)
    test = gc.train.evaluate(sess, {"accuracy": model.accuracy}, [model.images, model.labels],
                             (data.x_test, data.y_test), training=model.training)
    return test["accuracy"]


def main() -> None:
    """Train the CNN and print its test accuracy."""
    args = parse_args(__doc__)
    data = (load_digits().head(128) if args.smoke else load_digits()).images()
    g = gc.Graph()
    with g.as_default():
        model = build_cnn()
    with gc.Session(graph=g) as sess:
        accuracy = train(sess, model, data, epochs=1 if args.smoke else EPOCHS)
    print(f"test accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
