"""An autoencoder squeezing the 8×8 digits through 8 numbers: 64 → 32 → 8 → 32 → 64.

The encoder and decoder are Dense layers (ReLU inside, a sigmoid at the output since pixels lie in
[0, 1]), trained on the pixel-wise sigmoid cross-entropy of the reconstruction. The score is the mean
squared reconstruction error on the test images, next to the best *linear* 8-number code: PCA to 8
components, computed here with numpy's SVD of the centred training images.
"""

import numpy as np
from _common import load_digits, parse_args

import graphc as gc


def pca_mse(train: np.ndarray, test: np.ndarray, components: int) -> float:
    """Mean squared error of the test rows projected onto the top principal components of the train rows."""
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:components]
    reconstruction = (test - mean) @ basis.T @ basis + mean
    return float(np.mean((reconstruction - test) ** 2))


def build() -> dict:
    """The autoencoder 64 → 32 → 8 → 32 → 64, its loss and MSE, and an Adam step, built in the default graph
    (``graphc dump``/``graphc viz`` show the tensors it returns)."""
    x = gc.placeholder("float32", shape=(None, 64), name="x")
    encoder = gc.nn.Sequential([gc.nn.Dense(32, activation=gc.relu), gc.nn.Dense(8)])
    decoder = gc.nn.Sequential([gc.nn.Dense(32, activation=gc.relu), gc.nn.Dense(64)])
    logits = decoder(encoder(x))
    loss = gc.reduce_mean(gc.nn.sigmoid_cross_entropy(logits, x))
    mse = gc.reduce_mean(gc.square(gc.sigmoid(logits) - x))
    train_op = gc.train.Adam(3e-3).minimize(loss)
    return {"x": x, "loss": loss, "mse": mse, "train": train_op}



def main() -> None:
    """Train the autoencoder and print its test reconstruction error next to PCA's."""
    args = parse_args(__doc__)
    data = load_digits().head(128) if args.smoke else load_digits()
    train_x = np.concatenate([data.x_train, data.x_val])  # no early stopping here: use every training image

    g = gc.Graph()
    with g.as_default():
        model = build()
    x, loss, mse, train_op = (model[k] for k in ("x", "loss", "mse", "train"))

    with gc.Session(graph=g) as sess:
        gc.train.fit(sess, train_op, [x], (train_x,), epochs=1 if args.smoke else 150, batch_size=64,
                     loss=loss, metrics={"mse": mse})
        test = gc.train.evaluate(sess, {"mse": mse}, [x], (data.x_test,))
    print(f"test reconstruction MSE: {test['mse']:.4f} (autoencoder, 8 numbers per image)")
    print(f"test reconstruction MSE: {pca_mse(train_x, data.x_test, 8):.4f} (PCA, 8 components)")


if __name__ == "__main__":
    main()
