"""graphc in four steps: build a graph, run it with a Session, see what it was compiled to, train a CNN.

1. The lecture notes' function y = ln(x1) + x1·x2 − sin(x2), evaluated at (x1, x2) = (2, 5).
2. A fixed linear model evaluated over a dataset in minibatches, accumulating the squared error in
   variables, then checked against numpy.
3. The kernels the LLVM backend compiled that step to: one executable serves every batch size.
4. The convolutional network of examples/digits_cnn.py trained on the 8×8 digits (LLVM backend, with a
   progress bar), its test accuracy, and its optimized training graph as an interactive HTML page.
"""

import tempfile
import time
from pathlib import Path

import numpy as np
from _common import example_parser, load_digits
from digits_cnn import EPOCHS, build_cnn, train

import graphc as gc


def build() -> dict:
    """The lecture's y = ln(x1) + x1·x2 − sin(x2) and its gradients, in the default graph.

    ``graphc dump examples/demo.py --stage optimized`` and ``graphc viz examples/demo.py -o g.html`` show
    what this returns.
    """
    x1 = gc.placeholder("float64", shape=(), name="x1")
    x2 = gc.placeholder("float64", shape=(), name="x2")
    y = gc.log(x1) + x1 * x2 - gc.sin(x2)
    dy_dx1, dy_dx2 = gc.gradients(y, [x1, x2])
    return {"y": y, "dy/dx1": dy_dx1, "dy/dx2": dy_dx2}


def lecture_function() -> None:
    """y = ln(x1) + x1·x2 − sin(x2) at (2, 5): build the graph, print it, run it."""
    g = gc.Graph()
    with g.as_default():
        x1 = gc.placeholder("float64", shape=(), name="x1")
        x2 = gc.placeholder("float64", shape=(), name="x2")
        y = gc.log(x1) + x1 * x2 - gc.sin(x2)

    print("== 1. y = ln(x1) + x1*x2 - sin(x2) ==")
    print("The graph, as gc.viz.text(y) prints it:")
    print(gc.viz.text(y))
    with gc.Session(graph=g) as sess:
        value = sess.run(y, feed_dict={x1: 2.0, x2: 5.0})
    print(f"y(2, 5) = {value:.3f}")
    assert np.isclose(value, np.log(2.0) + 2.0 * 5.0 - np.sin(5.0))


def minibatch_mse(rows: int = 100, batch_size: int = 32) -> None:
    """Mean squared error of pred = x @ W + b over `rows` rows of data, fed `batch_size` rows at a time."""
    rng = np.random.default_rng(0)
    true_w = np.array([[2.0], [-1.0], [0.5]], np.float32)
    true_b = np.array([0.3], np.float32)
    data_x = rng.normal(size=(rows, 3)).astype(np.float32)
    data_t = data_x @ true_w + true_b + 0.1 * rng.normal(size=(rows, 1)).astype(np.float32)

    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", shape=(None, 3), name="x")  # None: any number of rows
        t = gc.placeholder("float32", shape=(None, 1), name="t")
        W = gc.Variable(true_w, name="W")
        b = gc.Variable(true_b, name="b")
        pred = x @ W + b
        errors = gc.square(pred - t)

        # running totals, kept by the Session between runs
        squared_error = gc.Variable(0.0, name="squared_error")  # float32 scalar, starts at 0
        seen_rows = gc.Variable(0, name="seen_rows")  # int64 scalar
        rows_in_batch = gc.cast(gc.reduce_sum(gc.ones_like(t)), "int64")
        accumulate = gc.group(gc.assign_add(squared_error, gc.reduce_sum(errors)),
                              gc.assign_add(seen_rows, rows_in_batch))
        mse_in_one_run = gc.reduce_mean(errors)

    with gc.Session(graph=g) as sess:  # variables are initialized on first use
        sizes = []
        for start in range(0, rows, batch_size):
            batch = slice(start, start + batch_size)
            sess.run(accumulate, feed_dict={x: data_x[batch], t: data_t[batch]})
            sizes.append(len(data_x[batch]))
        total, count = sess.run([squared_error, seen_rows])
        whole = sess.run(mse_in_one_run, feed_dict={x: data_x, t: data_t})
        compiled = sess.compiled(accumulate, feed_dict={x: data_x, t: data_t})  # what each batch ran

    mse = total / count
    expected = np.mean((data_x.astype(np.float64) @ true_w + true_b - data_t) ** 2)
    print("\n== 2. A linear model over minibatches ==")
    print(f"pred = x @ W + b, x of shape (None, 3), fed {rows} rows in batches of {sizes}")
    print(f"  accumulated in variables: {count} rows, sum of squared errors {total:.4f}")
    print(f"  MSE from the accumulators     {mse:.6f}")
    print(f"  MSE in one run over all rows  {whole:.6f}")
    print(f"  MSE by numpy directly         {expected:.6f}   (the noise has std 0.1, so about 0.01)")
    assert count == rows and np.isclose(mse, expected, rtol=1e-5) and np.isclose(whole, expected, rtol=1e-5)
    print("\n== 3. What ran: one native call per batch (the LLVM backend) ==")
    print(f"batches of {sorted(set(sizes))} rows ran the same machine code, compiled once (disk cache: "
          f"{compiled.report.cache}); its kernels:")
    print(compiled.partition)


def digits_cnn(html: Path, smoke: bool) -> None:
    """Train examples/digits_cnn.py's network, print its test accuracy, draw its training graph to ``html``."""
    data = load_digits().images()
    if smoke:
        data = data.head(128)
    g = gc.Graph()
    with g.as_default():
        model = build_cnn()
    print("\n== 4. A CNN on the 8x8 digits (Conv2D, BatchNorm, MaxPool2D, Dense, Dropout; Adam) ==")
    start = time.perf_counter()
    with gc.Session(graph=g, backend="llvm") as sess:
        accuracy = train(sess, model, data, epochs=1 if smoke else EPOCHS)
    print(f"test accuracy: {accuracy:.4f} ({len(data.x_test)} test images; trained in "
          f"{time.perf_counter() - start:.0f} s, compiling included)")
    html.parent.mkdir(parents=True, exist_ok=True)
    gc.viz.render([model.loss, model.train_op], html, stage="optimized")
    print(f"the optimized training graph (forward, gradients, Adam updates): {html}")


if __name__ == "__main__":
    parser = example_parser(__doc__)
    parser.add_argument("--html", type=Path, default=Path(tempfile.gettempdir()) / "graphc-demo" / "digits_cnn.html",
                        help="where to write the CNN's training graph (default: %(default)s)")
    args = parser.parse_args()
    lecture_function()
    minibatch_mse()
    digits_cnn(args.html, args.smoke)
