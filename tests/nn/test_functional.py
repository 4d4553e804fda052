"""gc.nn composite functions (moments, batch_norm, layer_norm, dropout, embedding_lookup, attention, maxout)
against independent numpy computations on both backends, their gradients against finite differences, and
(where torch is installed) against torch."""

import numpy as np
import pytest

import graphc as gc
from graphc.autodiff.paths import ancestors
from graphc.errors import ArgumentError, DTypeError, ShapeError
from tests.helpers import assert_build_error

BACKENDS = ["numpy", "llvm"]


TOL = {"float32": dict(rtol=2e-5, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-10)}


def run(fetches, feeds, backend, graph=None):
    with gc.Session(graph, backend=backend) as sess:
        return sess.run(fetches, feeds)


def normal(rng, shape, dtype="float32"):
    return rng.normal(size=shape).astype(dtype)


# -- independent numpy references ------------------------------------------------------------------------
def np_normalize(x, axes, gamma=1.0, beta=0.0, eps=1e-5):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_attention(q, k, v, mask=None):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


# -- moments and layer_norm ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_moments_match_numpy(backend, rng):
    x = gc.placeholder("float32", (None, 3, 4))
    mean, var = gc.nn.moments(x, (0, 1))
    mean_k, var_k = gc.nn.moments(x, -1, keepdims=True)
    xv = normal(rng, (5, 3, 4))
    got = run([mean, var, mean_k, var_k], {x: xv}, backend)
    assert got[0].shape == (4,) and got[2].shape == (5, 3, 1)
    np.testing.assert_allclose(got[0], xv.mean((0, 1)), **TOL["float32"])
    np.testing.assert_allclose(got[1], xv.var((0, 1)), **TOL["float32"])
    np.testing.assert_allclose(got[3], xv.var(-1, keepdims=True), **TOL["float32"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_matches_numpy(backend, rng):
    x = gc.placeholder("float32", (None, 3, 4))
    gamma, beta = gc.Variable(normal(rng, (4,))), gc.Variable(normal(rng, (4,)))
    gamma2 = gc.Variable(normal(rng, (3, 4)))
    y = gc.nn.layer_norm(x, gamma, beta)
    y2 = gc.nn.layer_norm(x, gamma2, axis=(1, 2), epsilon=1e-3)
    middle = gc.nn.layer_norm(x, normal(rng, (3,)), axis=1)  # a non-trailing axis: gamma broadcast over it
    xv = normal(rng, (6, 3, 4))
    got = run([y, y2, middle, gamma, beta, gamma2, middle.op.inputs[1]], {x: xv}, backend)
    np.testing.assert_allclose(got[0], np_normalize(xv, -1, got[3], got[4]), **TOL["float32"])
    np.testing.assert_allclose(got[1], np_normalize(xv, (1, 2), got[5], eps=1e-3), **TOL["float32"])
    gamma_mid = got[6].reshape(1, 3, 1)
    np.testing.assert_allclose(got[2], np_normalize(xv, 1, gamma_mid), **TOL["float32"])


# -- batch_norm ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_training_nhwc_and_nchw(backend, rng):
    x = gc.placeholder("float32", (None, 3, 3, 4))
    gamma, beta = normal(rng, (4,)), normal(rng, (4,))
    y = gc.nn.batch_norm(x, gamma, beta)
    gamma1 = normal(rng, (3,))
    y1 = gc.nn.batch_norm(x, gamma1, axis=1)  # NCHW-style: channel axis 1
    xv = normal(rng, (2, 3, 3, 4))
    got = run([y, y1], {x: xv}, backend)
    np.testing.assert_allclose(got[0], np_normalize(xv, (0, 1, 2), gamma, beta), **TOL["float32"])
    np.testing.assert_allclose(got[1], np_normalize(xv, (0, 2, 3), gamma1.reshape(1, 3, 1, 1)), **TOL["float32"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_moving_statistics_and_inference(backend, rng):
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", (None, 3))
        mm, mv = gc.Variable(np.zeros(3, np.float32)), gc.Variable(np.ones(3, np.float32))
        y = gc.nn.batch_norm(x, training=True, moving_mean=mm, moving_variance=mv, momentum=0.8)
        infer = gc.nn.batch_norm(x, training=False, moving_mean=mm, moving_variance=mv)
    assert len(g.update_ops) == 2
    a, b = normal(rng, (5, 3)) * 2 + 1, normal(rng, (7, 3))
    with gc.Session(g, backend=backend) as sess:
        sess.run([y, *g.update_ops], {x: a})
        sess.run([y, *g.update_ops], {x: b})
        got_mean, got_var, got_infer = sess.run([mm, mv, infer], {x: b})
    want_mean, want_var = np.zeros(3), np.ones(3)
    for batch in (a, b):  # torch's rule: the moving variance averages the unbiased batch variance
        want_mean = 0.8 * want_mean + 0.2 * batch.mean(0)
        want_var = 0.8 * want_var + 0.2 * batch.var(0, ddof=1)
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_var, want_var, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_infer, (b - want_mean) / np.sqrt(want_var + 1e-5), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm_training_placeholder_switches_one_graph(backend, rng):
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", (None, 2))
        training = gc.placeholder("bool", ())
        mm, mv = gc.Variable(np.array([1.0, -1.0], np.float32)), gc.Variable(np.array([4.0, 0.25], np.float32))
        y = gc.nn.batch_norm(x, training=training, moving_mean=mm, moving_variance=mv, momentum=0.5)
    xv = normal(rng, (6, 2))
    with gc.Session(g, backend=backend) as sess:
        inference = sess.run([y, *g.update_ops], {x: xv, training: False})
        np.testing.assert_allclose(inference[0], (xv - [1.0, -1.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(sess.run(mm), [1.0, -1.0])  # inference leaves the moving mean alone
        trained = sess.run([y, *g.update_ops], {x: xv, training: True})
        np.testing.assert_allclose(trained[0], np_normalize(xv, 0), **TOL["float32"])
        np.testing.assert_allclose(sess.run(mm), 0.5 * np.array([1.0, -1.0]) + 0.5 * xv.mean(0), rtol=1e-5)


def test_batch_norm_argument_errors():
    x = gc.placeholder("float32", (None, 3))
    mm, mv = gc.Variable(np.zeros(3, np.float32)), gc.Variable(np.ones(3, np.float32))
    assert_build_error(ArgumentError, lambda: gc.nn.batch_norm(x, training=False), fragments=("moving_mean",))
    assert_build_error(ShapeError, lambda: gc.nn.batch_norm(x, np.ones(4, np.float32)),
                       fragments=("gamma", "[4]", "[3]"))
    assert_build_error(ArgumentError, lambda: gc.nn.batch_norm(x, training=1), fragments=("training",))
    assert_build_error(ArgumentError, lambda: gc.nn.batch_norm(x, moving_mean=mm), fragments=("both",))
    assert_build_error(DTypeError, lambda: gc.nn.batch_norm(gc.placeholder("int32", (2, 3))),
                       fragments=("batch_norm", "int32"))
    assert_build_error(ShapeError, lambda: gc.nn.batch_norm(x, axis=2), fragments=("batch_norm", "axis 2"))
    assert_build_error(ArgumentError, lambda: gc.nn.batch_norm(x, moving_mean=mm, moving_variance=mv, momentum=2),
                       fragments=("momentum",))
    assert x.graph.update_ops == []  # nothing half-built was registered


# -- dropout ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_rate_and_exact_scaling(backend):
    x = gc.placeholder("float32", (None, 1000))
    y = gc.nn.dropout(x, 0.3, seed=7)
    xv = np.linspace(1, 2, 100_000, dtype=np.float32).reshape(100, 1000)
    with gc.Session(backend=backend) as sess:
        first, second = sess.run(y, {x: xv}), sess.run(y, {x: xv})
    dropped = first == 0
    assert abs(dropped.mean() - 0.3) < 0.01
    np.testing.assert_array_equal(first[~dropped], xv[~dropped] / np.float32(0.7))
    assert not np.array_equal(dropped, second == 0)  # a new mask every run


def test_dropout_same_seed_same_masks_across_sessions_and_backends():
    x = gc.placeholder("float32", (None, 64))
    y = gc.nn.dropout(x, 0.5, seed=3)
    xv = np.ones((8, 64), np.float32)
    masks = []
    for backend in BACKENDS:
        with gc.Session(backend=backend) as sess:
            masks.append([sess.run(y, {x: xv}) for _ in range(2)])
    np.testing.assert_array_equal(masks[0], masks[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_inference_and_training_placeholder(backend):
    x = gc.placeholder("float32", (4, 256))
    assert gc.nn.dropout(x, 0.5, training=False) is x
    training = gc.placeholder("bool", ())
    y = gc.nn.dropout(x, 0.5, training=training)
    xv = np.ones((4, 256), np.float32)
    with gc.Session(backend=backend) as sess:
        np.testing.assert_array_equal(sess.run(y, {x: xv, training: False}), xv)
        on = sess.run(y, {x: xv, training: True})
        np.testing.assert_array_equal(sess.run(y, {x: xv, training: False}), xv)
    assert set(np.unique(on)) == {0.0, 2.0}


def test_dropout_argument_errors():
    x = gc.placeholder("float32", (2, 3))
    for rate in (1.0, -0.1, "0.5", True):
        assert_build_error(ArgumentError, lambda r=rate: gc.nn.dropout(x, r), fragments=("dropout", "rate"))
    assert_build_error(ArgumentError, lambda: gc.nn.dropout(x, 0.1, training=gc.placeholder("float32", ())),
                       fragments=("training", "float32"))


# -- embeddings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_lookup_values_and_sparse_gradient(backend, rng):
    vocab, dim = 50, 3
    table = gc.Variable(normal(rng, (vocab, dim)))
    ids = gc.placeholder("int64", (None, 4))
    rows = gc.nn.embedding_lookup(table, ids)
    assert rows.shape == (None, 4, dim)
    (grad,) = gc.gradients(gc.reduce_sum(rows * rows), [table])
    idv = np.array([[1, 2, 2, 49], [0, 1, 7, 7]])
    got_rows, got_grad, tv = run([rows, grad, table], {ids: idv}, backend)
    np.testing.assert_array_equal(got_rows, tv[idv])
    want = np.zeros_like(tv)
    np.add.at(want, idv, 2 * tv[idv])
    np.testing.assert_allclose(got_grad, want, rtol=1e-6)
    nodes = ancestors([grad])
    assert not any(node.op.name == "one_hot" for node in nodes)
    # no dense (ids, vocab) product: nothing in the gradient graph is as big as a row per id and vocab entry
    assert not any(vocab in t.shape and len(t.shape) >= 2 and t.shape[-1] == vocab for n in nodes for t in n.outputs)


def test_embedding_lookup_needs_integer_ids():
    table = gc.Variable(np.zeros((5, 2), np.float32))
    assert_build_error(DTypeError, lambda: gc.nn.embedding_lookup(table, gc.placeholder("float32", (3,))),
                       fragments=("embedding_lookup", "float32"))


# -- attention -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_matches_numpy_with_mask_causal_and_broadcast_heads(backend, rng):
    q = gc.placeholder("float32", (None, 2, 5, 8))
    k = gc.placeholder("float32", (None, 1, 6, 8))  # one key/value head shared by both query heads
    v = gc.placeholder("float32", (None, 1, 6, 3))
    mask = gc.placeholder("bool", (None, 1, 1, 6))  # a padding mask per example
    plain = gc.nn.attention(q, k, v)
    masked = gc.nn.attention(q, k, v, mask=mask)
    causal = gc.nn.attention(q, k, v, causal=True)
    assert plain.shape == (None, 2, 5, 3)
    qv, kv, vv = normal(rng, (3, 2, 5, 8)), normal(rng, (3, 1, 6, 8)), normal(rng, (3, 1, 6, 3))
    mv = np.ones((3, 1, 1, 6), bool)
    mv[0, ..., 4:] = False
    mv[2, ..., :] = False  # a fully masked example stays finite: an even average of the values
    got = run([plain, masked, causal], {q: qv, k: kv, v: vv, mask: mv}, backend)
    np.testing.assert_allclose(got[0], np_attention(qv, kv, vv), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1][:2], np_attention(qv[:2], kv[:2], vv[:2], mv[:2]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1][2], np.broadcast_to(vv[2].mean(-2, keepdims=True), (2, 5, 3)), rtol=1e-5)
    np.testing.assert_allclose(got[2], np_attention(qv, kv, vv, np.tril(np.ones((5, 6), bool))), rtol=1e-4,
                               atol=1e-5)


def test_attention_argument_errors():
    q, k, v = gc.placeholder("float32", (2, 5, 8)), gc.placeholder("float32", (2, 6, 8)), gc.placeholder(
        "float32", (2, 6, 3))
    assert_build_error(ShapeError, lambda: gc.nn.attention(q, gc.placeholder("float32", (2, 6, 7)), v),
                       fragments=("attention", "[2,5,8]", "[2,6,7]"))
    assert_build_error(ShapeError, lambda: gc.nn.attention(q, k, gc.placeholder("float32", (2, 4, 3))),
                       fragments=("Tk",))
    assert_build_error(ShapeError, lambda: gc.nn.attention(q, k, v, mask=gc.placeholder("bool", (5, 5))),
                       fragments=("mask", "[5,5]", "[2,5,6]"))
    assert_build_error(DTypeError, lambda: gc.nn.attention(q, k, v, mask=gc.placeholder("float32", (5, 6))),
                       fragments=("mask", "bool"))
    dynamic = gc.placeholder("float32", (2, None, 8))
    assert_build_error(ShapeError, lambda: gc.nn.attention(dynamic, k, v, causal=True), fragments=("causal",))


# -- maxout ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_maxout_matches_numpy(backend, rng):
    x = gc.placeholder("float32", (None, 6))
    y = gc.nn.maxout(x, 2)
    z = gc.placeholder("float32", (2, 6, 3))
    w = gc.nn.maxout(z, 3, axis=1)
    xv, zv = normal(rng, (4, 6)), normal(rng, (2, 6, 3))
    got = run([y, w], {x: xv, z: zv}, backend)
    np.testing.assert_array_equal(got[0], xv.reshape(4, 2, 3).max(-1))  # unit i: features 3i..3i+2 (TF)
    np.testing.assert_array_equal(got[1], zv.reshape(2, 3, 2, 3).max(2))
    assert_build_error(ShapeError, lambda: gc.nn.maxout(x, 4), fragments=("maxout", "num_units=4"))


# -- gradients (float64, finite differences) -------------------------------------------------------------
def test_gradient_checks(rng):
    x = gc.placeholder("float64", (4, 3))
    gamma, beta = gc.Variable(rng.normal(size=3)), gc.Variable(rng.normal(size=3))
    q, k, v = (gc.placeholder("float64", s) for s in ((2, 3, 2), (2, 4, 2), (2, 4, 2)))
    mask = np.array([[True, True, False, True], [True, False, False, True], [True] * 4])
    checks = {
        "batch_norm": ([gc.nn.batch_norm(x, gamma, beta)], [x, gamma, beta]),
        "layer_norm": ([gc.nn.layer_norm(x, gamma, beta)], [x, gamma, beta]),
        "attention": ([gc.nn.attention(q, k, v, mask=mask)], [q, k, v]),
        "maxout": ([gc.nn.maxout(x, 1), gc.nn.maxout(x, 3)], [x]),
    }
    feeds = {x: rng.normal(size=(4, 3)), q: rng.normal(size=(2, 3, 2)), k: rng.normal(size=(2, 4, 2)),
             v: rng.normal(size=(2, 4, 2))}
    for name, (ys, xs) in checks.items():
        report = gc.check_gradients(ys, xs, feeds, tol=1e-6)
        assert report.ok, f"{name}\n{report}"


# -- torch, where installed ------------------------------------------------------------------------------
@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    return torch


def test_layer_norm_and_batch_norm_agree_with_torch(torch, rng):
    x = gc.placeholder("float32", (None, 5, 4))
    gamma, beta = normal(rng, (4,)), normal(rng, (4,))
    mm, mv = gc.Variable(normal(rng, (4,))), gc.Variable(np.abs(normal(rng, (4,))) + 0.5)
    ln = gc.nn.layer_norm(x, gamma, beta)
    bn = gc.nn.batch_norm(x, gamma, beta, moving_mean=mm, moving_variance=mv, momentum=0.9)
    xv = normal(rng, (3, 5, 4))
    start_mean, start_var = run([mm, mv], {}, "numpy")
    got_ln, got_bn, *_ = run([ln, bn, *x.graph.update_ops], {x: xv}, "llvm")
    with gc.Session(backend="llvm") as sess:
        sess.run([bn, *x.graph.update_ops], {x: xv})
        got_mean, got_var = sess.run([mm, mv])
    tx = torch.from_numpy(xv)
    want_ln = torch.nn.functional.layer_norm(tx, (4,), torch.from_numpy(gamma), torch.from_numpy(beta), eps=1e-5)
    np.testing.assert_allclose(got_ln, want_ln.numpy(), rtol=1e-5, atol=1e-5)
    running_mean, running_var = torch.from_numpy(start_mean.copy()), torch.from_numpy(start_var.copy())
    channels_first = tx.permute(0, 2, 1)  # torch normalizes axis 1 of (N, C, L)
    want_bn = torch.nn.functional.batch_norm(channels_first, running_mean, running_var, torch.from_numpy(gamma),
                                             torch.from_numpy(beta), training=True, momentum=0.1, eps=1e-5)
    np.testing.assert_allclose(got_bn, want_bn.permute(0, 2, 1).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_mean, running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_var, running_var.numpy(), rtol=1e-5, atol=1e-6)


def test_attention_agrees_with_torch(torch, rng):
    q, k, v = gc.placeholder("float32", (2, 3, 5, 8)), gc.placeholder("float32", (2, 3, 7, 8)), gc.placeholder(
        "float32", (2, 3, 7, 4))
    mask = gc.placeholder("bool", (5, 7))
    causal, masked = gc.nn.attention(q, k, v, causal=True), gc.nn.attention(q, k, v, mask=mask)
    qv, kv, vv = normal(rng, (2, 3, 5, 8)), normal(rng, (2, 3, 7, 8)), normal(rng, (2, 3, 7, 4))
    mv = rng.random((5, 7)) < 0.7
    mv[:, 0] = True  # torch gives NaN for a fully masked row
    got = run([causal, masked], {q: qv, k: kv, v: vv, mask: mv}, "llvm")
    tq, tk, tv = (torch.from_numpy(a) for a in (qv, kv, vv))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    np.testing.assert_allclose(got[0], sdpa(tq, tk, tv, is_causal=True).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], sdpa(tq, tk, tv, attn_mask=torch.from_numpy(mv)).numpy(), rtol=1e-5,
                               atol=1e-5)
