"""gc.nn layers: variables built once with the right shapes and statistics, names, values against numpy on
both backends, BatchNorm's moving averages, Dropout's training switch, MultiHeadAttention's gradients, and a
small MLP trained by hand to solve XOR."""

import math

import numpy as np
import pytest

import graphc as gc
from graphc.errors import ArgumentError, ShapeError
from tests.helpers import assert_build_error

BACKENDS = ["numpy", "llvm"]
TOL = dict(rtol=1e-5, atol=1e-5)


def run(fetches, feeds, backend="numpy"):
    with gc.Session(backend=backend) as sess:
        return sess.run(fetches, feeds)


def np_layer_norm(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


# -- Layer basics ----------------------------------------------------------------------------------------
def test_dense_builds_variables_once_with_glorot_statistics():
    x = gc.placeholder("float32", (None, 300))
    dense = gc.nn.Dense(200)
    assert dense.variables == []
    dense(x)
    dense(gc.placeholder("float32", (None, 300)))  # a second call shares the variables
    kernel, bias = dense.variables
    assert [v.name for v in dense.variables] == ["dense/kernel", "dense/bias"]
    assert kernel.shape == (300, 200) and bias.shape == (200,) and dense.trainable_variables == [kernel, bias]
    assert len(gc.global_variables()) == 2
    values, zeros = run([kernel, bias], {})
    limit = math.sqrt(6 / 500)
    assert values.min() >= -limit and values.max() <= limit and abs(values.std() / (limit / math.sqrt(3)) - 1) < 0.03
    np.testing.assert_array_equal(zeros, 0)


def test_default_names_are_unique_and_seeds_deterministic_per_script():
    def build():
        x = gc.placeholder("float32", (None, 4))
        layers = [gc.nn.Dense(3), gc.nn.Dense(3), gc.nn.Dense(3, name="head")]
        for layer in layers:
            layer(x)
        return layers, run([layer.variables[0] for layer in layers], {})

    first_layers, first = build()
    assert [layer.name for layer in first_layers] == ["dense", "dense_1", "head"]
    with gc.Graph().as_default():
        _, again = build()
    np.testing.assert_array_equal(first, again)  # seed=None still gives the same weights for the same script
    assert not np.array_equal(first[0], first[1])


def test_layer_errors_name_the_layer():
    assert_build_error(ShapeError, lambda: gc.nn.Dense(3)(gc.placeholder("float32", (2, None))),
                       fragments=("Dense 'dense'", "[2,?]"))
    assert_build_error(ShapeError, lambda: gc.nn.Dense(3)(gc.placeholder("float32", (4,))), fragments=(">= 2",))
    with pytest.raises(ArgumentError, match="unknown activation 'swish'"):
        gc.nn.Dense(3, activation="swish")
    with pytest.raises(ArgumentError, match="unknown initializer 'xavier'"):
        gc.nn.Dense(3, kernel_initializer="xavier")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_values_rank_three_and_callable_initializer(backend, rng):
    x = gc.placeholder("float32", (None, 5, 4))
    dense = gc.nn.Dense(3, activation="tanh", kernel_initializer=lambda shape, seed: np.full(shape, 0.1))
    y = dense(x)
    assert y.shape == (None, 5, 3)
    xv = rng.normal(size=(2, 5, 4)).astype(np.float32)
    got, kernel = run([y, dense.kernel], {x: xv}, backend)
    np.testing.assert_array_equal(kernel, np.full((4, 3), 0.1, np.float32))
    np.testing.assert_allclose(got, np.tanh(xv @ kernel), **TOL)


# -- Sequential, Residual, LayerNorm --------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_sequential_residual_and_layer_norm_match_numpy(backend, rng):
    x = gc.placeholder("float32", (None, 6))
    training = gc.placeholder("bool", ())
    block = gc.nn.Residual(gc.nn.Dense(6, activation=gc.nn.relu), gc.nn.Dropout(0.5), gc.nn.LayerNorm())
    model = gc.nn.Sequential([gc.nn.Dense(6), gc.nn.relu, block, gc.nn.Dense(2, use_bias=False)])
    y = model(x, training=training)
    assert y.shape == (None, 2)
    names = [v.name for v in model.variables]
    assert names == ["sequential/dense/kernel", "sequential/dense/bias", "sequential/residual/dense/kernel",
                     "sequential/residual/dense/bias", "sequential/residual/layer_norm/gamma",
                     "sequential/residual/layer_norm/beta", "sequential/dense_1/kernel"]
    xv = rng.normal(size=(3, 6)).astype(np.float32)
    got, *w = run([y, *model.variables], {x: xv, training: False}, backend)
    h = np.maximum(xv @ w[0] + w[1], 0)
    h = h + np_layer_norm(np.maximum(h @ w[2] + w[3], 0), w[4], w[5])
    np.testing.assert_allclose(got, h @ w[6], **TOL)


def test_residual_shape_errors():
    x = gc.placeholder("float32", (None, 6))
    assert_build_error(ShapeError, lambda: gc.nn.Residual(gc.nn.Dense(3))(x), fragments=("[?,6]", "[?,3]"))
    assert_build_error(ShapeError, lambda: gc.nn.residual(x, lambda t: gc.reduce_sum(t, -1)), fragments=("[?]",))


# -- BatchNorm and Dropout ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_layer_moving_averages_then_inference(backend, rng):
    x = gc.placeholder("float32", (None, 2, 2, 3))
    bn = gc.nn.BatchNorm(momentum=0.5)
    train, infer = bn(x, training=True), bn(x, training=False)
    assert [v.name for v in bn.trainable_variables] == ["batch_norm/gamma", "batch_norm/beta"]
    assert [v.trainable for v in bn.variables] == [True, True, False, False]
    graph = x.graph
    assert len(graph.update_ops) == 2
    batches = [rng.normal(size=(4, 2, 2, 3)).astype(np.float32) * 3 + 1 for _ in range(2)]
    with gc.Session(backend=backend) as sess:
        for batch in batches:
            sess.run([train, *graph.update_ops], {x: batch})
        got = sess.run(infer, {x: batches[0]})
    mean, var = np.zeros(3), np.ones(3)
    for batch in batches:
        mean = 0.5 * mean + 0.5 * batch.mean((0, 1, 2))
        var = 0.5 * var + 0.5 * batch.reshape(-1, 3).var(0, ddof=1)
    np.testing.assert_allclose(got, (batches[0] - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_layer_training_placeholder(backend):
    x = gc.placeholder("float32", (None, 500))
    training = gc.placeholder("bool", ())
    y = gc.nn.Dropout(0.25, seed=1)(x, training=training)
    xv = np.ones((4, 500), np.float32)
    off, on = run([y], {x: xv, training: False}, backend), run(y, {x: xv, training: True}, backend)
    np.testing.assert_array_equal(off[0], xv)
    assert abs((on == 0).mean() - 0.25) < 0.04 and set(np.unique(on)) == {0.0, np.float32(1 / 0.75)}
    with pytest.raises(ArgumentError, match="rate"):
        gc.nn.Dropout(1.5)


# -- Embedding, MultiHeadAttention -----------------------------------------------------------------------
def test_embedding_layer(rng):
    ids = gc.placeholder("int32", (None, 3))
    embed = gc.nn.Embedding(20, 4)
    rows = embed(ids)
    assert rows.shape == (None, 3, 4) and embed.variables[0].shape == (20, 4)
    idv = rng.integers(0, 20, size=(2, 3)).astype(np.int32)
    got, table = run([rows, embed.table], {ids: idv})
    np.testing.assert_array_equal(got, table[idv])
    assert np.abs(table).max() <= 0.05


def np_multi_head_attention(query, value, w, mask=None):
    def project(x, kernel, bias):
        return np.einsum("btd,dhk->bhtk", x, kernel) + bias

    q, v, k = (project(t, w[i], w[i + 1]) for i, t in zip((0, 2, 4), (query, value, value)))
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        logits = np.where(mask[:, None], logits, -np.inf)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    heads = (e / e.sum(-1, keepdims=True)) @ v
    return np.einsum("bhtv,hvo->bto", heads, w[6]) + w[7]


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_head_attention_shapes_and_values(backend, rng):
    query, memory = gc.placeholder("float32", (None, 5, 8)), gc.placeholder("float32", (None, 7, 6))
    mask = gc.placeholder("bool", (None, 5, 7))
    mha = gc.nn.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)
    cross = mha(query, memory, mask=mask)
    self_attention = gc.nn.MultiHeadAttention(2, 4)(query, causal=True)
    assert cross.shape == (None, 5, 8) and self_attention.shape == (None, 5, 8)
    assert [v.shape for v in mha.variables] == [(8, 2, 4), (2, 1, 4), (6, 2, 3), (2, 1, 3), (6, 2, 4), (2, 1, 4),
                                                (2, 3, 8), (8,)]
    qv, mv = rng.normal(size=(2, 5, 8)).astype(np.float32), rng.normal(size=(2, 7, 6)).astype(np.float32)
    maskv = rng.random((2, 5, 7)) < 0.8
    maskv[..., 0] = True
    got, *w = run([cross, *mha.variables], {query: qv, memory: mv, mask: maskv}, backend)
    want = np_multi_head_attention(qv, mv, w, maskv)  # w: query, value, key projections, then the output
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_multi_head_attention_gradient_check(rng):
    x = gc.placeholder("float64", (1, 3, 4))
    mha = gc.nn.MultiHeadAttention(num_heads=2, key_dim=2, dtype="float64")
    y = mha(x, causal=True)
    report = gc.check_gradients(y, [x, *mha.variables[:1], mha.variables[-2]], {x: rng.normal(size=(1, 3, 4))},
                                tol=1e-6)
    assert report.ok, str(report)


# -- convolutional stack ---------------------------------------------------------------------------------
def np_conv_same(x, w):
    kh, kw = w.shape[:2]
    padded = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + (w.shape[3],))
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i:i + x.shape[1], j:j + x.shape[2]] @ w[i, j]
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_pool_flatten_dense_stack(backend, rng):
    x = gc.placeholder("float32", (None, 6, 6, 2))
    conv = gc.nn.Conv2D(4, 3, activation="relu", kernel_initializer="he_normal")
    model = gc.nn.Sequential([conv, gc.nn.MaxPool2D(2), gc.nn.AvgPool2D(3), gc.nn.Flatten(), gc.nn.Dense(5)])
    y = model(x)
    assert y.shape == (None, 5) and conv.kernel.shape == (3, 3, 2, 4)
    xv = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
    got, kernel, bias, dense_kernel, dense_bias = run([y, *model.variables], {x: xv}, backend)
    h = np.maximum(np_conv_same(xv, kernel) + bias, 0)
    h = h.reshape(2, 3, 2, 3, 2, 4).max((2, 4))  # 2×2 max pool
    h = h.mean((1, 2))  # 3×3 average pool of a 3×3 map
    np.testing.assert_allclose(got, h @ dense_kernel + dense_bias, rtol=1e-4, atol=1e-5)
    assert_build_error(ShapeError, lambda: gc.nn.Flatten()(gc.placeholder("float32", (None, None, 3))),
                       fragments=("Flatten",))


# -- end to end: an MLP learns XOR -----------------------------------------------------------------------
def test_mlp_learns_xor_with_hand_written_sgd():
    x = gc.placeholder("float32", (None, 2))
    target = gc.placeholder("float32", (None, 1))
    model = gc.nn.Sequential([gc.nn.Dense(8, activation="tanh", seed=0), gc.nn.Dense(1, seed=1)])
    loss = gc.reduce_mean(gc.nn.sigmoid_cross_entropy(model(x), target))
    grads = gc.gradients(loss, model.trainable_variables)
    step = gc.group(*(gc.assign(v, v - 0.5 * g) for v, g in zip(model.trainable_variables, grads)))
    xv = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    yv = np.array([[0], [1], [1], [0]], np.float32)
    with gc.Session() as sess:
        first = sess.run(loss, {x: xv, target: yv})
        for _ in range(400):
            sess.run(step, {x: xv, target: yv})
        last = sess.run(loss, {x: xv, target: yv})
    assert first > 0.5 and last < 0.05, (first, last)
