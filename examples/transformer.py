"""A one-block transformer that learns to reverse sequences: 8 tokens over 10 symbols, e.g.
3 1 4 1 5 9 2 6 → 6 2 9 5 1 4 1 3.

Token embeddings plus learned position embeddings go through one pre-norm block,

    h = e + MultiHeadAttention(LayerNorm(e)),   h = h + FFN(LayerNorm(h)),   logits = Dense(LayerNorm(h)),

and every position predicts its output token. Reversing is pure routing: output position i must attend
to input position 7 − i, which attention learns from the position embeddings alone. Held-out sequences
(fresh random ones) measure the per-token accuracy.
"""

import numpy as np
from _common import parse_args

import graphc as gc

LENGTH, SYMBOLS, WIDTH = 8, 10, 32


def reverse_task(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random int64 token sequences of shape (count, LENGTH) and their reversals."""
    tokens = np.random.default_rng(seed).integers(0, SYMBOLS, size=(count, LENGTH))
    return tokens, tokens[:, ::-1].copy()


def transformer_block(h: gc.Tensor, heads: int) -> gc.Tensor:
    """Pre-norm self-attention then a two-layer feed-forward network, each added back to its input."""
    h = h + gc.nn.MultiHeadAttention(heads, WIDTH // heads)(gc.nn.LayerNorm()(h))
    ffn = gc.nn.Sequential([gc.nn.Dense(4 * WIDTH, activation=gc.relu), gc.nn.Dense(WIDTH)])
    return h + ffn(gc.nn.LayerNorm()(h))


def build() -> dict:
    """The model, its loss and per-token accuracy, and an Adam step, built in the default graph
    (``graphc dump``/``graphc viz`` show the tensors it returns)."""
    tokens = gc.placeholder("int64", shape=(None, LENGTH), name="tokens")
    targets = gc.placeholder("int64", shape=(None, LENGTH), name="targets")
    positions = gc.Variable(gc.init.normal((LENGTH, WIDTH), stddev=0.1, seed=0), name="positions")
    h = gc.nn.Embedding(SYMBOLS, WIDTH)(tokens) + positions
    h = transformer_block(h, heads=4)
    logits = gc.nn.Dense(SYMBOLS)(gc.nn.LayerNorm()(h))
    loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(logits, targets))
    prediction = gc.argmax(logits, axis=-1)
    accuracy = gc.reduce_mean(gc.cast(gc.equal(prediction, targets), "float32"))
    train_op = gc.train.Adam(3e-3).minimize(loss)
    return {"tokens": tokens, "targets": targets, "loss": loss, "prediction": prediction, "accuracy": accuracy,
            "train": train_op}



def main() -> None:
    """Train the transformer to reverse sequences and print its held-out token accuracy."""
    args = parse_args(__doc__)
    train_tokens, train_targets = reverse_task(512 if args.smoke else 20_000, seed=0)
    test_tokens, test_targets = reverse_task(2_000, seed=1)

    g = gc.Graph()
    with g.as_default():
        model = build()
    tokens, targets, loss, prediction, accuracy, train_op = (
        model[k] for k in ("tokens", "targets", "loss", "prediction", "accuracy", "train"))

    with gc.Session(graph=g) as sess:
        gc.train.fit(sess, train_op, [tokens, targets], (train_tokens, train_targets),
                     epochs=1 if args.smoke else 5, batch_size=128, loss=loss, metrics={"accuracy": accuracy})
        test = gc.train.evaluate(sess, {"accuracy": accuracy}, [tokens, targets], (test_tokens, test_targets))
        sample = sess.run(prediction, feed_dict={tokens: test_tokens[:1]})[0]
    print(f"{' '.join(map(str, test_tokens[0]))} -> {' '.join(map(str, sample))}")
    print(f"token accuracy: {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()
