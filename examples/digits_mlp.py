"""A multi-layer perceptron on scikit-learn's 8×8 handwritten digits: 64 pixels → 1024 → 512 → 10 classes.

ReLU hidden layers with dropout (rate 0.5), softmax cross-entropy, Adam, and gc.train.fit's loop: minibatches,
a progress bar, a validation score after each epoch, and early stopping once it stops improving. Dropout
is on while training and off while evaluating through one bool placeholder, ``training``, that fit feeds:
a single graph serves both.
"""

from _common import load_digits, parse_args

import graphc as gc


def build() -> dict:
    """The MLP, its loss and accuracy, and an Adam step, built in the default graph
    (``graphc dump``/``graphc viz`` show the tensors it returns)."""
    x = gc.placeholder("float32", shape=(None, 64), name="x")
    y = gc.placeholder("int64", shape=(None,), name="y")
    training = gc.placeholder("bool", shape=(), name="training")
    model = gc.nn.Sequential([
        gc.nn.Dense(1024, activation=gc.relu), gc.nn.Dropout(0.5),
        gc.nn.Dense(512, activation=gc.relu), gc.nn.Dropout(0.5),
        gc.nn.Dense(10),
    ])
    logits = model(x, training=training)
    loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(logits, y))
    accuracy = gc.reduce_mean(gc.cast(gc.equal(gc.argmax(logits, axis=-1), y), "float32"))
    train_op = gc.train.Adam(1e-3).minimize(loss)
    return {"x": x, "y": y, "training": training, "loss": loss, "accuracy": accuracy, "train": train_op}



def main() -> None:
    """Train the MLP with early stopping and print its test accuracy."""
    args = parse_args(__doc__)
    data = load_digits().head(128) if args.smoke else load_digits()

    g = gc.Graph()
    with g.as_default():
        model = build()
    x, y, training, loss, accuracy, train_op = (model[k] for k in ("x", "y", "training", "loss", "accuracy", "train"))

    with gc.Session(graph=g) as sess:
        gc.train.fit(sess, train_op, [x, y], (data.x_train, data.y_train), epochs=1 if args.smoke else 60,
                     batch_size=32, loss=loss, metrics={"accuracy": accuracy},
                     validation_data=(data.x_val, data.y_val), training=training,
                     early_stopping=gc.train.EarlyStopping(patience=12))
        test = gc.train.evaluate(sess, {"accuracy": accuracy}, [x, y], (data.x_test, data.y_test),
                                 training=training)
    print(f"test accuracy: {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()
