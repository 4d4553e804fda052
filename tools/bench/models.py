"""The benchmark's model workloads, W5 and W6 of run.py: training steps of a small CNN and of a transformer block.

Each is written four times, as W1 is: a graphc graph of gc.Variables updated by gc.assign (plain SGD, every
parameter, grouped), numpy by hand (forward and backward, float32), PyTorch eager and a JAX ``jit`` step. The
graph, torch and jax share one forward pass (``convnet_logits``, ``block_logits``), spelled through a small
table of the functions each framework names its own way; numpy's forward keeps what its backward needs.

run.py imports this module when W5 or W6 is first built (this module imports run.py's ``Workload``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from run import Step, Workload, numpy_softmax_cross_entropy

import graphc as gc

LEARNING_RATE = 0.05
CNN_BATCH, CNN_IMAGE, CNN_CLASSES = 128, 8, 10
CNN_FLAT = 2 * 2 * 32  # (8 / 2 / 2)² positions × 32 filters
BLOCK_BATCH, BLOCK_LENGTH, BLOCK_VOCAB, BLOCK_WIDTH, BLOCK_HEADS, BLOCK_HIDDEN = 32, 16, 16, 64, 4, 256
HEAD_WIDTH = BLOCK_WIDTH // BLOCK_HEADS
EPSILON = 1e-5  # layer norm's, in every column


def normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, gain: float = 2.0) -> np.ndarray:
    """Float32 weights of standard deviation √(gain / fan_in): He-normal for gain 2, LeCun-normal for 1."""
    return (rng.normal(size=shape) * np.sqrt(gain / fan_in)).astype(np.float32)


def sgd(params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
    """Plain SGD in place, every gradient computed (from the old values) before this first update."""
    for name, param in params.items():
        param -= LEARNING_RATE * grads[name]


def graph_training(loss: gc.Tensor, params: dict[str, gc.Tensor]) -> gc.Node:
    """Every parameter assigned its SGD update, grouped: the op a graphc column runs with its loss."""
    grads = gc.gradients(loss, list(params.values()))
    return gc.group(*(gc.assign(v, v - LEARNING_RATE * g) for v, g in zip(params.values(), grads, strict=True)))


def torch_training(t: Any, loss_of: Callable[[dict[str, Any]], Any], initial: dict[str, np.ndarray]) -> Step:
    """A torch eager step from ``initial``: the loss of the parameters, its gradients, SGD in place."""
    params = {name: t.tensor(value, requires_grad=True) for name, value in initial.items()}

    def step() -> list[Any]:
        loss = loss_of(params)
        grads = t.autograd.grad(loss, list(params.values()))
        with t.no_grad():
            for param, grad in zip(params.values(), grads, strict=True):
                param.sub_(grad, alpha=LEARNING_RATE)
        return [loss]
    return step


def jax_training(j: Any, loss_of: Callable[..., Any], initial: dict[str, np.ndarray], *inputs: np.ndarray) -> Step:
    """A jit'ed JAX step from ``initial``: value_and_grad of ``loss_of(params, *inputs)`` and SGD, the old
    parameters' buffers donated to the new ones (as in place); int64 inputs as int32 (JAX's default)."""
    def train_step(params: dict[str, Any], *inputs: Any) -> tuple[Any, dict[str, Any]]:
        value, grads = j.value_and_grad(loss_of)(params, *inputs)
        return value, j.tree.map(lambda param, grad: param - LEARNING_RATE * grad, params, grads)

    f = j.jit(train_step, donate_argnums=0)
    params = {name: j.numpy.array(value) for name, value in initial.items()}
    arrays = [j.device_put(a.astype(np.int32) if a.dtype == np.int64 else a) for a in inputs]

    def step() -> list[Any]:
        nonlocal params
        value, params = j.block_until_ready(f(params, *arrays))
        return [value]
    return step


def jax_cross_entropy(j: Any, logits: Any, labels: Any) -> Any:
    """The mean sparse softmax cross-entropy of rows of logits, in JAX."""
    log_p = j.nn.log_softmax(logits, axis=-1)
    return -j.numpy.take_along_axis(log_p, labels[:, None], axis=-1).mean()


# -- W5: the digits CNN ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvNetOps:
    """What the CNN's forward pass needs that each framework spells its own way."""

    conv: Callable[[Any, Any, Any], Any]  # (x, filters, bias): 3×3, "same", stride 1
    pool: Callable[[Any], Any]  # 2×2 max pool, stride 2
    relu: Callable[[Any], Any]
    flatten: Callable[[Any], Any]  # to (N, CNN_FLAT) in NHWC order, so the dense weights mean the same


def convnet_logits(x: Any, p: dict[str, Any], ops: ConvNetOps) -> Any:
    """conv-ReLU-pool twice, dense-ReLU, dense: the digits CNN every column but numpy runs."""
    x = ops.pool(ops.relu(ops.conv(x, p["conv1"], p["conv1_bias"])))
    x = ops.pool(ops.relu(ops.conv(x, p["conv2"], p["conv2_bias"])))
    return ops.relu(ops.flatten(x) @ p["dense1"] + p["dense1_bias"]) @ p["dense2"] + p["dense2_bias"]


def im2col(x: np.ndarray) -> np.ndarray:
    """The 3×3 "same" patches of x (N, H, W, C) as rows (N·H·W, 3·3·C), in HWIO filter order."""
    n, h, w, c = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.empty((n, h, w, 3, 3, c), x.dtype)
    for i in range(3):
        for j in range(3):
            cols[:, :, :, i, j] = padded[:, i:i + h, j:j + w]
    return cols.reshape(n * h * w, 9 * c)


def col2im(cols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """im2col's transpose: each patch row's gradient added back to the pixels it was read from."""
    n, h, w, c = shape
    cols = cols.reshape(n, h, w, 3, 3, c)
    padded = np.zeros((n, h + 2, w + 2, c), cols.dtype)
    for i in range(3):
        for j in range(3):
            padded[:, i:i + h, j:j + w] += cols[:, :, :, i, j]
    return padded[:, 1:-1, 1:-1]


def max_pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2×2 max pooling of x (N, H, W, C) and, for the backward pass, each window's argmax (first on ties)."""
    n, h, w, c = x.shape
    windows = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
    return windows.max(axis=-1), windows.argmax(axis=-1)


def max_unpool(grad: np.ndarray, argmax: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """max_pool's backward: each window's gradient routed to its argmax, zeros elsewhere."""
    n, h, w, c = shape
    windows = np.zeros((n, h // 2, w // 2, c, 4), grad.dtype)
    np.put_along_axis(windows, argmax[..., None], grad[..., None], axis=-1)
    return windows.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(shape)


def numpy_convnet_step(p: dict[str, np.ndarray], x: np.ndarray, labels: np.ndarray) -> np.float32:
    """One SGD step of the CNN by hand (im2col convolutions), in place on ``p``: the loss before it."""
    n = len(x)
    cols1 = im2col(x)
    h1 = (cols1 @ p["conv1"].reshape(-1, 16) + p["conv1_bias"]).reshape(n, 8, 8, 16)
    p1, arg1 = max_pool(np.maximum(h1, 0))
    cols2 = im2col(p1)
    h2 = (cols2 @ p["conv2"].reshape(-1, 32) + p["conv2_bias"]).reshape(n, 4, 4, 32)
    p2, arg2 = max_pool(np.maximum(h2, 0))
    flat = p2.reshape(n, CNN_FLAT)
    h3 = flat @ p["dense1"] + p["dense1_bias"]
    a3 = np.maximum(h3, 0)
    loss, dz = numpy_softmax_cross_entropy(a3 @ p["dense2"] + p["dense2_bias"], labels)
    dh3 = (dz @ p["dense2"].T) * (h3 > 0)
    dh2 = (max_unpool((dh3 @ p["dense1"].T).reshape(p2.shape), arg2, h2.shape) * (h2 > 0)).reshape(-1, 32)
    dp1 = col2im(dh2 @ p["conv2"].reshape(-1, 32).T, p1.shape)
    dh1 = (max_unpool(dp1, arg1, h1.shape) * (h1 > 0)).reshape(-1, 16)
    sgd(p, {"dense2": a3.T @ dz, "dense2_bias": dz.sum(axis=0), "dense1": flat.T @ dh3,
            "dense1_bias": dh3.sum(axis=0), "conv2": (cols2.T @ dh2).reshape(p["conv2"].shape),
            "conv2_bias": dh2.sum(axis=0), "conv1": (cols1.T @ dh1).reshape(p["conv1"].shape),
            "conv1_bias": dh1.sum(axis=0)})
    return loss


def convnet_initial(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """He-normal weights (filters HWIO, fan-in KH·KW·C) and zero biases."""
    shapes = {"conv1": ((3, 3, 1, 16), 9), "conv2": ((3, 3, 16, 32), 144), "dense1": ((CNN_FLAT, 64), CNN_FLAT),
              "dense2": ((64, CNN_CLASSES), 64)}
    initial = {}
    for name, (shape, fan_in) in shapes.items():
        initial[name], initial[f"{name}_bias"] = normal(rng, shape, fan_in), np.zeros(shape[-1], np.float32)
    return initial


def convnet(rng: np.random.Generator) -> Workload:
    """W5: an SGD step of the digits CNN on a batch of 128 8×8 images (random normal stand-ins)."""
    initial = convnet_initial(rng)
    x = rng.normal(size=(CNN_BATCH, CNN_IMAGE, CNN_IMAGE, 1)).astype(np.float32)
    labels = rng.integers(0, CNN_CLASSES, CNN_BATCH)
    g = gc.Graph()
    with g.as_default():
        px = gc.placeholder("float32", (None, CNN_IMAGE, CNN_IMAGE, 1), name="x")
        py = gc.placeholder("int64", (None,), name="labels")
        params = {name: gc.Variable(value, name=name) for name, value in initial.items()}
        ops = ConvNetOps(lambda x, w, b: gc.nn.conv2d(x, w, padding="same") + b, lambda x: gc.nn.max_pool2d(x, 2),
                         gc.relu, lambda x: x.reshape(-1, CNN_FLAT))
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(convnet_logits(px, params, ops), py))
        train = graph_training(loss, params)
    numpy_params = {name: value.copy() for name, value in initial.items()}
    return Workload("W5", "digits CNN SGD step, batch 128 8×8 f32", g, [loss], {px: x, py: labels},
                    lambda: [numpy_convnet_step(numpy_params, x, labels)],
                    lambda t: torch_convnet(t, initial, x, labels), lambda j: jax_convnet(j, initial, x, labels),
                    ops=[train], checked_calls=2, rtol=1e-4, atol=0.0)


def torch_convnet(t: Any, initial: dict[str, np.ndarray], x: np.ndarray, labels: np.ndarray) -> Step:
    """W5 in torch eager: NCHW inside (the same filters as OIHW), flattened back in NHWC order."""
    functional = t.nn.functional
    ops = ConvNetOps(lambda x, w, b: functional.conv2d(x, w, b, padding=1), lambda x: functional.max_pool2d(x, 2),
                     t.relu, lambda x: x.permute(0, 2, 3, 1).reshape(-1, CNN_FLAT))
    oihw = {name: value.transpose(3, 2, 0, 1).copy() if value.ndim == 4 else value for name, value in initial.items()}
    tx, ty = t.from_numpy(x.transpose(0, 3, 1, 2).copy()), t.from_numpy(labels)
    return torch_training(t, lambda p: functional.cross_entropy(convnet_logits(tx, p, ops), ty), oihw)


def jax_convnet(j: Any, initial: dict[str, np.ndarray], x: np.ndarray, labels: np.ndarray) -> Step:
    """W5 in JAX, NHWC as the graph: lax.conv_general_dilated and lax.reduce_window."""
    lax = j.lax

    def conv(x: Any, w: Any, b: Any) -> Any:
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b

    def pool(x: Any) -> Any:
        return lax.reduce_window(x, -np.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    ops = ConvNetOps(conv, pool, j.nn.relu, lambda x: x.reshape(-1, CNN_FLAT))
    return jax_training(j, lambda p, x, y: jax_cross_entropy(j, convnet_logits(x, p, ops), y), initial, x, labels)


# -- W6: a transformer block -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockOps:
    """What the transformer block's forward pass needs that each framework spells its own way."""

    embed: Callable[[Any, Any], Any]  # (table, tokens): the table's rows
    layer_norm: Callable[[Any, Any, Any], Any]  # (x, gamma, beta), over the last axis, EPSILON
    attention: Callable[[Any, Any, Any], Any]  # causal softmax(q·kᵀ/√d)·v over the last two axes
    relu: Callable[[Any], Any]
    permute: Callable[[Any, Sequence[int]], Any]


def split_heads(x: Any, ops: BlockOps) -> Any:
    """(B, T, D) → (B, heads, T, D / heads)."""
    return ops.permute(x.reshape(-1, BLOCK_LENGTH, BLOCK_HEADS, HEAD_WIDTH), (0, 2, 1, 3))


def merge_heads(x: Any, ops: BlockOps) -> Any:
    """(B, heads, T, D / heads) → (B, T, D)."""
    return ops.permute(x, (0, 2, 1, 3)).reshape(-1, BLOCK_LENGTH, BLOCK_WIDTH)


def block_logits(tokens: Any, p: dict[str, Any], ops: BlockOps) -> Any:
    """Embeddings, x + MHA(LN(x)), x + FFN(LN(x)), LN, dense: (B, T, vocab) logits, every column but numpy's."""
    x = ops.embed(p["embedding"], tokens) + p["position"]
    h = ops.layer_norm(x, p["ln1_gamma"], p["ln1_beta"])
    q, k, v = (split_heads(h @ p[f"w{n}"] + p[f"b{n}"], ops) for n in "qkv")
    x = x + merge_heads(ops.attention(q, k, v), ops) @ p["wo"] + p["bo"]
    h = ops.layer_norm(x, p["ln2_gamma"], p["ln2_beta"])
    x = x + ops.relu(h @ p["ffn1"] + p["ffn1_bias"]) @ p["ffn2"] + p["ffn2_bias"]
    return ops.layer_norm(x, p["lnf_gamma"], p["lnf_beta"]) @ p["out"] + p["out_bias"]


def block_initial(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """LeCun-normal matrices and embeddings, zero biases and betas, unit gammas."""
    d, f = BLOCK_WIDTH, BLOCK_HIDDEN
    initial = {"embedding": normal(rng, (BLOCK_VOCAB, d), d, 1.0), "position": normal(rng, (BLOCK_LENGTH, d), d, 1.0)}
    for name, (fan_in, fan_out) in {"q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d), "ffn1": (d, f),
                                    "ffn2": (f, d), "out": (d, BLOCK_VOCAB)}.items():
        weight, bias = (f"w{name}", f"b{name}") if len(name) == 1 else (name, f"{name}_bias")
        initial[weight], initial[bias] = normal(rng, (fan_in, fan_out), fan_in, 1.0), np.zeros(fan_out, np.float32)
    for norm in ("ln1", "ln2", "lnf"):
        initial[f"{norm}_gamma"], initial[f"{norm}_beta"] = np.ones(d, np.float32), np.zeros(d, np.float32)
    return initial


def transformer(rng: np.random.Generator) -> Workload:
    """W6: an SGD step of a pre-LN transformer block (4 heads, causal) on 32 sequences of 16 tokens."""
    initial = block_initial(rng)
    tokens = rng.integers(0, BLOCK_VOCAB, (BLOCK_BATCH, BLOCK_LENGTH))
    targets = rng.integers(0, BLOCK_VOCAB, (BLOCK_BATCH, BLOCK_LENGTH))
    g = gc.Graph()
    with g.as_default():
        px = gc.placeholder("int64", (None, BLOCK_LENGTH), name="tokens")
        py = gc.placeholder("int64", (None, BLOCK_LENGTH), name="targets")
        params = {name: gc.Variable(value, name=name) for name, value in initial.items()}
        ops = BlockOps(gc.gather, lambda x, g, b: gc.nn.layer_norm(x, g, b, epsilon=EPSILON),
                       lambda q, k, v: gc.nn.attention(q, k, v, causal=True), gc.relu, gc.transpose)
        logits = block_logits(px, params, ops).reshape(-1, BLOCK_VOCAB)
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(logits, py.reshape(-1)))
        train = graph_training(loss, params)
    numpy_params = {name: value.copy() for name, value in initial.items()}
    return Workload("W6", "transformer block SGD step, 32×16 tokens f32", g, [loss], {px: tokens, py: targets},
                    lambda: [numpy_block_step(numpy_params, tokens, targets)],
                    lambda t: torch_block(t, initial, tokens, targets),
                    lambda j: jax_block(j, initial, tokens, targets),
                    ops=[train], checked_calls=2, rtol=1e-4, atol=0.0)


def torch_block(t: Any, initial: dict[str, np.ndarray], tokens: np.ndarray, targets: np.ndarray) -> Step:
    """W6 in torch eager, attention by F.scaled_dot_product_attention."""
    functional = t.nn.functional
    ops = BlockOps(lambda table, tokens: functional.embedding(tokens, table),
                   lambda x, g, b: functional.layer_norm(x, (BLOCK_WIDTH,), g, b, EPSILON),
                   lambda q, k, v: functional.scaled_dot_product_attention(q, k, v, is_causal=True),
                   t.relu, lambda x, perm: x.permute(*perm))
    tx, ty = t.from_numpy(tokens), t.from_numpy(targets.reshape(-1))
    return torch_training(
        t, lambda p: functional.cross_entropy(block_logits(tx, p, ops).reshape(-1, BLOCK_VOCAB), ty), initial)


def jax_block(j: Any, initial: dict[str, np.ndarray], tokens: np.ndarray, targets: np.ndarray) -> Step:
    """W6 in JAX: layer norm and causal attention written out."""
    jnp = j.numpy

    def layer_norm(x: Any, gamma: Any, beta: Any) -> Any:
        mean = x.mean(axis=-1, keepdims=True)
        return (x - mean) * j.lax.rsqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + EPSILON) * gamma + beta

    def attention(q: Any, k: Any, v: Any) -> Any:
        scores = q @ jnp.swapaxes(k, -1, -2) / np.sqrt(HEAD_WIDTH)
        causal = jnp.tril(jnp.ones((BLOCK_LENGTH, BLOCK_LENGTH), bool))
        return j.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1) @ v

    ops = BlockOps(lambda table, tokens: table[tokens], layer_norm, attention, j.nn.relu, jnp.transpose)

    def loss(p: dict[str, Any], tokens: Any, targets: Any) -> Any:
        return jax_cross_entropy(j, block_logits(tokens, p, ops).reshape(-1, BLOCK_VOCAB), targets)
    return jax_training(j, loss, initial, tokens, targets.reshape(-1))


# -- W6 by hand ------------------------------------------------------------------------------------------
def layer_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Layer norm over the last axis, and what its backward needs: (x̂, 1/σ, gamma)."""
    centered = x - x.mean(axis=-1, keepdims=True)
    inverse_std = 1 / np.sqrt((centered**2).mean(axis=-1, keepdims=True) + np.float32(EPSILON))
    normalized = centered * inverse_std
    return normalized * gamma + beta, (normalized, inverse_std, gamma)


def layer_norm_backward(dy: np.ndarray, saved: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta): dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) / σ with dx̂ = dy·gamma."""
    normalized, inverse_std, gamma = saved
    dnormalized = dy * gamma
    dx = inverse_std * (dnormalized - dnormalized.mean(axis=-1, keepdims=True)
                        - normalized * (dnormalized * normalized).mean(axis=-1, keepdims=True))
    rows = tuple(range(dy.ndim - 1))
    return dx, (dy * normalized).sum(axis=rows), dy.sum(axis=rows)


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Causal softmax(q·kᵀ/√d)·v and the attention weights (its backward's)."""
    scores = q @ k.swapaxes(-1, -2) / np.float32(np.sqrt(HEAD_WIDTH))
    scores[..., np.triu(np.ones((BLOCK_LENGTH, BLOCK_LENGTH), bool), 1)] = -np.inf
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ v, weights


def attention_backward(do: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                       weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dq, dk, dv) through the softmax's Jacobian: ds = w·(dw − Σ dw·w); masked scores get ds = 0."""
    dweights = do @ v.swapaxes(-1, -2)
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True)) / np.float32(np.sqrt(HEAD_WIDTH))
    return dscores @ k, dscores.swapaxes(-1, -2) @ q, weights.swapaxes(-1, -2) @ do


def numpy_split_heads(x: np.ndarray) -> np.ndarray:
    """(B, T, D) → (B, heads, T, D / heads), in numpy."""
    return x.reshape(-1, BLOCK_LENGTH, BLOCK_HEADS, HEAD_WIDTH).transpose(0, 2, 1, 3)


def dense_backward(x: np.ndarray, dy: np.ndarray, p: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                   weight: str, bias: str) -> np.ndarray:
    """The backward of ``x @ p[weight] + p[bias]`` over any leading axes: its two gradients into ``grads``, dx."""
    rows, drows = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    grads[weight], grads[bias] = rows.T @ drows, drows.sum(axis=0)
    return dy @ p[weight].T


def numpy_block_forward(p: dict[str, np.ndarray], tokens: np.ndarray,
                        targets: np.ndarray) -> tuple[np.float32, np.ndarray, dict[str, Any]]:
    """The block's loss, its gradient with respect to the (B, T, vocab) logits, and what the backward reads."""
    s: dict[str, Any] = {"x0": p["embedding"][tokens] + p["position"]}
    s["h1"], s["ln1"] = layer_norm_forward(s["x0"], p["ln1_gamma"], p["ln1_beta"])
    s["q"], s["k"], s["v"] = (numpy_split_heads(s["h1"] @ p[f"w{n}"] + p[f"b{n}"]) for n in "qkv")
    attended, s["weights"] = attention_forward(s["q"], s["k"], s["v"])
    s["merged"] = attended.transpose(0, 2, 1, 3).reshape(s["x0"].shape)
    x1 = s["x0"] + s["merged"] @ p["wo"] + p["bo"]
    s["h2"], s["ln2"] = layer_norm_forward(x1, p["ln2_gamma"], p["ln2_beta"])
    s["hidden"] = s["h2"] @ p["ffn1"] + p["ffn1_bias"]
    s["relu"] = np.maximum(s["hidden"], 0)
    x2 = x1 + s["relu"] @ p["ffn2"] + p["ffn2_bias"]
    s["hf"], s["lnf"] = layer_norm_forward(x2, p["lnf_gamma"], p["lnf_beta"])
    logits = s["hf"] @ p["out"] + p["out_bias"]
    loss, dlogits = numpy_softmax_cross_entropy(logits.reshape(-1, BLOCK_VOCAB), targets.reshape(-1))
    return loss, dlogits.reshape(logits.shape), s


def numpy_block_backward(p: dict[str, np.ndarray], tokens: np.ndarray, dlogits: np.ndarray,
                         s: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every parameter's gradient, from the logits' gradient back to the embeddings (np.add.at)."""
    grads: dict[str, np.ndarray] = {}
    dx2, grads["lnf_gamma"], grads["lnf_beta"] = layer_norm_backward(
        dense_backward(s["hf"], dlogits, p, grads, "out", "out_bias"), s["lnf"])
    drelu = dense_backward(s["relu"], dx2, p, grads, "ffn2", "ffn2_bias")
    dh2 = dense_backward(s["h2"], drelu * (s["hidden"] > 0), p, grads, "ffn1", "ffn1_bias")
    dx1, grads["ln2_gamma"], grads["ln2_beta"] = layer_norm_backward(dh2, s["ln2"])
    dx1 += dx2  # the residual
    dattended = numpy_split_heads(dense_backward(s["merged"], dx1, p, grads, "wo", "bo"))
    dqkv = attention_backward(dattended, s["q"], s["k"], s["v"], s["weights"])
    dh1 = sum(dense_backward(s["h1"], d.transpose(0, 2, 1, 3).reshape(dx1.shape), p, grads, f"w{n}", f"b{n}")
              for n, d in zip("qkv", dqkv, strict=True))
    dx0, grads["ln1_gamma"], grads["ln1_beta"] = layer_norm_backward(dh1, s["ln1"])
    dx0 += dx1  # the residual
    grads["position"], grads["embedding"] = dx0.sum(axis=0), np.zeros_like(p["embedding"])
    np.add.at(grads["embedding"], tokens, dx0)
    return grads


def numpy_block_step(p: dict[str, np.ndarray], tokens: np.ndarray, targets: np.ndarray) -> np.float32:
    """One SGD step of the transformer block by hand, in place on ``p``: the loss before it."""
    loss, dlogits, saved = numpy_block_forward(p, tokens, targets)
    sgd(p, numpy_block_backward(p, tokens, dlogits, saved))
    return loss
