"""Whole optimized graphs lowered to programs and run by the IR interpreter equal the numpy backend:
fused elementwise and reduction kernels, nn row algorithms, GEMMs with epilogues, in-place updates."""

import os

import numpy as np
import pytest

import graphc as gc
from graphc.backends.compiled import check_sizes
from graphc.lower import ir
from graphc.lower.ir import Gemm
from graphc.lower.program import lower
from graphc.ops.indexing import scatter_add
from tests.lower.run_program import run_lowered


def _compare(fetches, feeds, rtol=2e-6):
    """Run ``fetches`` (tensors and update ops) on numpy and, optimized and lowered, on the interpreter."""
    graph = gc.get_default_graph()
    with gc.Session(graph, backend="numpy") as sess:
        variables = {n: sess.run(n.outputs[0]) for n in graph.nodes if n.op.name == "variable"}
        want = sess.run(fetches, feeds)
        after = {n: sess.run(n.outputs[0]) for n in variables}
    optimized = gc.optimize(fetches, level=2)
    to_copy = {user: copy for copy, user in optimized.sources().items()}
    tensors = [t for t in optimized.outputs if isinstance(t, gc.Tensor)]
    lowered = lower(optimized.partition, tensors)
    fetched, updated = run_lowered(lowered, {to_copy[t.node]: np.asarray(v) for t, v in feeds.items()},
                                   {to_copy[n]: v for n, v in variables.items() if n in to_copy})
    got = iter(fetched[t] for t in tensors)
    for value, target in zip(want, optimized.outputs):
        if isinstance(target, gc.Tensor):
            np.testing.assert_allclose(next(got), value, rtol=rtol, atol=1e-6)
    for node, value in after.items():
        if node in to_copy and to_copy[node] in updated:
            np.testing.assert_allclose(updated[to_copy[node]], value, rtol=rtol, atol=1e-6)
    return lowered


def test_mlp_training_step_with_run_time_batch(rng):
    with gc.Graph().as_default():
        x, y = gc.placeholder("float32", (None, 6)), gc.placeholder("int32", (None,))
        w1, b1 = gc.Variable(rng.standard_normal((6, 5)).astype("float32")), gc.Variable(np.zeros(5, "float32"))
        w2 = gc.Variable(rng.standard_normal((5, 3)).astype("float32"))
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(gc.matmul(gc.relu(gc.matmul(x, w1) + b1), w2), y))
        grads = gc.gradients(loss, [w1, b1, w2])
        train = gc.group(*[gc.assign(v, v - 0.1 * g) for v, g in zip([w1, b1, w2], grads)])
        for batch in (1, 4):
            lowered = _compare([loss, train], {x: rng.standard_normal((batch, 6)).astype("float32"),
                                               y: rng.integers(0, 3, batch).astype("int32")})
    assert lowered.updated and any(k.origin and k.origin.kind == "matmul" for k in lowered.program.kernels)
    written = {s.buffer for k in lowered.program.kernels for s in _stores(k.body)}
    assert set(lowered.variables.values()) & written, "some variable is updated in place"


def test_a_bias_updated_in_its_gradients_reduction_kernel_is_updated_in_place(rng):
    """SGD on a bias: its gradient is a column sum, and the new value (old - lr * sum) is computed per column
    after it, reading the old value at that column only: stored straight into the variable, no copy kernel."""
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None, 4))
        b = gc.Variable(rng.standard_normal(4).astype("float32"))
        loss = gc.reduce_sum(gc.tanh(x + b))
        train = gc.group(gc.assign(b, b - 0.1 * gc.gradients(loss, [b])[0]))
        lowered = _compare([loss, train], {x: rng.standard_normal((7, 4)).astype("float32")})
    (variable,) = lowered.variables.values()
    assert not [k for k in lowered.program.kernels if k.name.startswith("commit")]
    assert variable in {s.buffer for k in lowered.program.kernels for s in _stores(k.body)}


def test_a_weights_sgd_step_is_one_gemm_adding_into_the_weight(rng):
    """W ← W − 0.1·(xᵀ·dy): the weight-gradient GEMM adds −0.1 times the product into W itself (beta 1), with
    no loop reading the product back; a learning rate fed at run time keeps the epilogue loop."""
    for fed_rate in (False, True):
        with gc.Graph().as_default():
            x, dy = gc.placeholder("float32", (None, 5)), gc.placeholder("float32", (None, 3))
            w = gc.Variable(rng.standard_normal((5, 3)).astype("float32"))
            rate = gc.placeholder("float32", ()) if fed_rate else 0.1
            train = gc.group(gc.assign(w, w - rate * gc.matmul(gc.transpose(x), dy)))
            feeds = {x: rng.standard_normal((4, 5)).astype("float32"),
                     dy: rng.standard_normal((4, 3)).astype("float32")}
            lowered = _compare([train], {**feeds, **({rate: np.float32(0.1)} if fed_rate else {})})
        (kernel,) = lowered.program.kernels
        (gemm,) = [s for s in kernel.body if isinstance(s, Gemm)]
        (variable,) = lowered.variables.values()
        if fed_rate:
            assert (gemm.c is not variable, gemm.alpha, gemm.beta, len(kernel.body)) == (True, 1.0, 0.0, 2)
        else:  # the float32 constant's value, exactly
            assert (gemm.c is variable, gemm.alpha, gemm.beta, kernel.body) == (True, -float(np.float32(0.1)), 1.0,
                                                                                 (gemm,))


def _stores(body):
    from graphc.lower.ir import Store, walk_statements

    return [s for s in walk_statements(body) if isinstance(s, Store)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_layer_norm_and_losses(dtype, rng):
    with gc.Graph().as_default():
        x, z = gc.placeholder(dtype, (None, 7)), gc.placeholder(dtype, (None, 7))
        centered = x - gc.reduce_mean(x, 1, keepdims=True)
        norm = centered / gc.sqrt(gc.reduce_mean(centered * centered, 1, keepdims=True) + 1e-5)
        fetches = [gc.nn.softmax(x), gc.nn.log_softmax(x, 0), norm, gc.nn.softmax_cross_entropy(x, gc.nn.softmax(z)),
                   gc.nn.mse(x, z), gc.nn.hinge(z, x), gc.reduce_logsumexp(x, 1), gc.argmax(x, 1), gc.argmin(x, 0),
                   gc.reduce_max(x), gc.reduce_prod(z, 0), gc.nn.sigmoid_cross_entropy(x, gc.sigmoid(z))]
        _compare(fetches, {x: rng.standard_normal((5, 7)).astype(dtype), z: rng.standard_normal((5, 7)).astype(dtype)})


def test_batched_broadcast_and_vector_products(rng):
    with gc.Graph().as_default():
        a, b = gc.placeholder("float64", (None, 3, 4)), gc.placeholder("float64", (4, 2))
        v, w = gc.placeholder("float64", (4,)), gc.placeholder("float64", (2, 5, 3))
        fetches = [gc.matmul(a, b), gc.matmul(v, b), gc.matmul(b, gc.ones_like(b[0]) * 2), gc.matmul(v, v),
                   gc.matmul(gc.transpose(a, (0, 2, 1)), a), gc.tensordot(a, b, 1),
                   gc.tensordot(w, a, ((2, 0), (1, 0)))]
        _compare(fetches, {a: rng.standard_normal((2, 3, 4)), b: rng.standard_normal((4, 2)),
                           v: rng.standard_normal(4), w: rng.standard_normal((2, 5, 3))}, rtol=1e-12)


def test_integer_products_and_reductions(rng):
    with gc.Graph().as_default():
        a, b = gc.placeholder("int32", (None, 3)), gc.placeholder("int32", (3, 2))
        fetches = [gc.matmul(a, b), gc.reduce_sum(a, 0), gc.reduce_max(a > 0, 1), gc.reduce_mean(a)]
        _compare(fetches, {a: rng.integers(-5, 5, (4, 3)).astype("int32"),
                           b: rng.integers(-5, 5, (3, 2)).astype("int32")})


def test_gradient_seeds_of_ones_are_constants_not_buffers(rng):
    """x*y of two (None,) tensors: with unknown sizes assumed equal, the gradients are elementwise kernels that
    use the seed of ones as a constant; nothing stores a buffer of ones."""
    with gc.Graph().as_default():
        x1, x2 = gc.placeholder("float32", (None,)), gc.placeholder("float32", (None,))
        y = gc.log(x1) + x1 * x2 - gc.sin(x2)
        grads = gc.gradients(y, [x1, x2])
        lowered = _compare([y, *grads], {x1: rng.uniform(0.5, 2, 5).astype("float32"),
                                         x2: rng.uniform(-2, 2, 5).astype("float32")})
    assert lowered.temps == [] and len(lowered.program.kernels) == 3


def test_programs_with_gemms_leave_the_cores_to_blas(rng):
    from graphc.backends.llvm.native import threads

    with gc.Graph().as_default():
        a = gc.placeholder("float32", (None, 4))
        products = lower(gc.optimize([gc.matmul(a, gc.transpose(a))]).partition, [])
        elementwise = lower(gc.optimize([gc.exp(a)]).partition, [])
    assert threads(products.program) == 1 and threads(elementwise.program) == len(os.sched_getaffinity(0))


def test_cross_entropy_loss_and_gradient_share_one_kernel_and_one_exp(rng):
    """Sibling reductions over the same rows merge (fusion), and the row's max and exponentials are computed
    once for both: the logits are read by one kernel, which calls exp once per element."""
    with gc.Graph().as_default():
        z, y = gc.placeholder("float32", (None, 7)), gc.placeholder("int64", (None,))
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(z, y))
        (grad,) = gc.gradients(loss, [z])
        lowered = _compare([loss, grad], {z: rng.standard_normal((5, 7)).astype("float32"),
                                          y: rng.integers(0, 7, 5)})
    from graphc.lower.text import kernel_text

    readers = [k for k in lowered.program.kernels if any(b.role == "feed" and b.dtype == "float32"
                                                         for b in _loaded(k.body))]
    assert len(readers) == 1
    general = kernel_text(readers[0]).split("else:")[-1]  # the version for run-time broadcasts repeats the loops
    assert general.count("exp(") == 1


def _loaded(body):
    """The buffers a kernel's statements load from."""
    from graphc.lower.ir import Load, walk_expr, walk_statements

    expressions = [getattr(s, f) for s in walk_statements(body) for f in ("value", "condition") if hasattr(s, f)]
    return {e.buffer for x in expressions for e in walk_expr(x) if isinstance(e, Load)}


def test_size_checks_run_on_the_host_so_a_conv_step_updates_its_variables_in_place(rng):
    """A convolution's lowering checks that its operands' run-time sizes fit (``if <dims>: fail``): such a
    check of sizes alone is evaluated on the host before anything runs (``check_sizes``), so it does not
    force the updates before it through copy kernels — a CNN training step updates everything in place."""
    with gc.Graph().as_default():
        x, y = gc.placeholder("float32", (None, 6, 6, 1)), gc.placeholder("int64", (None,))
        w = gc.Variable(rng.standard_normal((3, 3, 1, 4)).astype("float32") * 0.3)
        b = gc.Variable(np.zeros(4, "float32"))
        v = gc.Variable(rng.standard_normal((4 * 36, 3)).astype("float32") * 0.1)
        hidden = gc.relu(gc.nn.conv2d(x, w, padding="same") + b)
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(gc.reshape(hidden, (-1, 4 * 36)) @ v, y))
        train = gc.train.SGD(0.1).minimize(loss)
        lowered = _compare([loss, train], {x: rng.standard_normal((5, 6, 6, 1)).astype("float32"),
                                           y: rng.integers(0, 3, 5)}, rtol=1e-5)
    checks = [s for k in lowered.program.kernels for s in k.body if ir.size_check(s)]
    assert checks and not [k.name for k in lowered.program.kernels if k.name.startswith("commit")]
    dims = np.array([0, *([5] * (len(lowered.program.dims) - 1))], np.int64)
    check_sizes(lowered.program, dims)  # the sizes of a consistent run pass
    raised = 0
    for check in checks:  # sizes that break a check (one of its dims changed) raise the first broken one's message
        for slot in {e.slot for e in ir.walk_expr(check.condition) if isinstance(e, ir.Dim)}:
            bad = dims.copy()
            bad[slot] = 7
            if ir.evaluate_size(check.condition, bad):
                with pytest.raises(gc.errors.ShapeError) as info:
                    check_sizes(lowered.program, bad)
                assert str(info.value) in lowered.program.failures and "do not fit" in str(info.value)
                raised += 1
    assert raised


def test_indices_checked_by_an_earlier_kernel_are_not_checked_again(rng):
    """An embedding: the gather checks the tokens against the vocabulary, and its gradient's scatter-add of the
    same tokens into a table of the same size need not check them again — so nothing after the gather can fail
    on the data and the table's SGD step is written in place (no copy kernel). Other indices still are."""
    with gc.Graph().as_default():
        tokens, other = gc.placeholder("int64", (None,)), gc.placeholder("int64", (None,))
        table = gc.Variable(rng.standard_normal((6, 3)).astype("float32"))
        loss = gc.reduce_sum(gc.tanh(gc.gather(table, tokens)))
        train = gc.train.SGD(0.1).minimize(loss)
        feeds = {tokens: rng.integers(0, 6, 5), other: rng.integers(0, 6, 5)}
        lowered = _compare([loss, train], {tokens: feeds[tokens]})
        checks = [s for k in lowered.program.kernels for s in ir.walk_statements(k.body) if isinstance(s, ir.Fail)
                  and "index is out of range" in lowered.program.failures[s.code - 1]]
        assert len(checks) == 1 and "gather node" in lowered.program.failures[checks[0].code - 1]
        assert not [k.name for k in lowered.program.kernels if k.name.startswith("commit")]
        spread = scatter_add(gc.gather(table, tokens), other, table)  # other indices: checked
        lowered = _compare([spread], feeds)
        failures = [lowered.program.failures[s.code - 1] for k in lowered.program.kernels
                    for s in ir.walk_statements(k.body) if isinstance(s, ir.Fail)]
        assert sum("index is out of range" in f for f in failures) == 2
