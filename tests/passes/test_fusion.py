"""Fusion planning: which nodes share a kernel, why each cut is made, and that a partition still computes
the graph when each kernel sees only its inputs and keeps only its outputs."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.errors import GraphcError
from graphc.ops.sources import PLACEHOLDER
from graphc.ops.state import VARIABLE
from graphc.passes.fusion import plan_kernels
from graphc.passes.partition import Kind, Reason, shape_only

RNG = np.random.default_rng(0)


# -- helpers ------------------------------------------------------------------------------------------------
def check_partition(partition):
    """The invariants every partition keeps (what a backend relies on)."""
    kernels = partition.kernels
    assert [k.id for k in kernels] == list(range(len(kernels)))
    launched = partition.launched()
    assert kernels[:len(launched)] == launched  # launched kernels first
    position = {k.id: i for i, k in enumerate(kernels)}
    for k in kernels:
        assert list(k.nodes) == sorted(k.nodes, key=lambda n: n.index)
        assert all(partition.kernel_of[n] is k for n in k.nodes)
    for k in launched:
        for node in k.nodes:
            for i, t in enumerate(node.inputs):
                producer = partition.kernel_of[t.node]
                if producer is k or shape_only(node, i):
                    continue
                assert t in k.inputs, (t, k.describe())
                if producer.launched:
                    assert position[producer.id] < position[k.id], "kernels out of order"
                    assert t in producer.outputs
                    assert any(b.producer == producer.id and b.consumer == k.id and b.tensor is t
                               for b in partition.boundaries), f"no boundary for {t.name}"
        for t in k.outputs:
            assert any(b.producer == k.id and b.tensor is t for b in partition.boundaries), t
        check_index_maps(k)
    assert all(b.reason in Reason.ALL and b.detail for b in partition.boundaries)


def check_index_maps(kernel):
    if kernel.kind == Kind.OPAQUE:
        return
    for node in kernel.nodes:
        place = kernel.index_maps[node]
        if place is None:  # a transposed matmul operand: a GEMM flag, never stored for another kernel
            assert kernel.kind == Kind.MATMUL and node.op.name == "transpose"
            assert node.outputs[0] not in kernel.outputs, f"{node.name} is a GEMM flag read by another kernel"
            continue
        assert len(place) == len(node.outputs[0].shape)
        for dim, axis in zip(node.outputs[0].shape, place):
            if axis is None:
                assert dim in (1, None)
            else:
                assert dim in (kernel.shape[axis], None, 1) or kernel.shape[axis] is None


def evaluate(nodes, feeds, variables):
    """Every node's outputs, by the reference implementations."""
    values = {}
    for node in nodes:
        values[node] = _run_node(node, lambda t: values[t.node][t.index], feeds, variables)
    return values


def _run_node(node, read, feeds, variables):
    if node.op is PLACEHOLDER:
        return (feeds[node],)
    if node.op is VARIABLE:
        return (variables[node],)
    with np.errstate(all="ignore"):
        result = node.op.reference(*[read(t) for t in node.inputs], **node.attrs)
    return result if isinstance(result, tuple) else (result,)


def run_partition(partition, feeds, variables=None):
    """Run the launched kernels in id order; a kernel reads only its inputs (and the run-time shape of its
    shape inputs) and keeps only its outputs. Returns (fetched values, the same values by the plain graph)."""
    variables = variables or {}
    nodes = sorted(partition.kernel_of, key=lambda n: n.index)
    oracle = evaluate(nodes, feeds, variables)
    memory = {t: oracle[t.node][t.index] for k in partition.kernels if not k.launched for t in k.outputs}
    for kernel in partition.launched():
        local = {}

        def read(t, kernel=kernel, local=local):
            if t.node in kernel.nodes:
                return local[t.node][t.index]
            if t in kernel.shape_inputs:
                return np.zeros_like(oracle[t.node][t.index])  # only the shape is read
            assert t in kernel.inputs, f"{kernel.describe()} reads {t.name}, not one of its inputs"
            return memory[t]

        for node in kernel.nodes:
            local[node] = _run_node(node, read, feeds, variables)
        memory.update({t: local[t.node][t.index] for t in kernel.outputs})
    tensors = [t for t in partition.outputs if isinstance(t, gc.Tensor)]
    return [memory[t] for t in tensors], [oracle[t.node][t.index] for t in tensors]


def assert_runs(partition, feeds, variables=None):
    check_partition(partition)
    got, expected = run_partition(partition, feeds, variables)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def ops(kernel):
    return [n.op.name for n in kernel.nodes]


def plan(*outputs, **options):
    return plan_kernels(outputs[0].graph, list(outputs), **options)


def reasons_between(partition, producer_op, consumer_op=None):
    return {b.reason for b in partition.boundaries
            if b.tensor.node.op.name == producer_op and (
                consumer_op is None or b.consumer is not None
                and consumer_op in ops(partition.kernels[b.consumer]))}


@pytest.fixture
def graph():
    g = gc.Graph()
    with g.as_default():
        yield g


def batch(*cols):
    return RNG.standard_normal((5, *cols)).astype(np.float32)


# -- elementwise -------------------------------------------------------------------------------------------
def test_an_elementwise_tree_with_broadcast_inputs_is_one_kernel(graph):
    x = gc.placeholder("float32", (None, 8), name="x")
    b = gc.placeholder("float32", (8,), name="b")
    y = gc.tanh(gc.exp(x) * 2.0 + b) - gc.sin(x)
    p = plan(y)
    [kernel] = p.launched()
    assert kernel.kind == Kind.ELEMENTWISE and kernel.shape == (None, 8)
    assert ops(kernel) == ["exp", "mul", "add", "tanh", "sin", "sub"]
    assert kernel.root is y.node and kernel.outputs == (y,)
    assert set(kernel.inputs) >= {x, b}
    assert [b.reason for b in p.boundaries] == [Reason.FETCHED]
    assert_runs(p, {x.node: batch(8), b.node: batch(8)[0]})


def test_a_smaller_producer_is_not_recomputed_for_each_broadcast_element(graph):
    x = gc.placeholder("float32", (None, 8), name="x")
    b = gc.placeholder("float32", (8,), name="b")
    y = x + gc.exp(b)
    p = plan(y)
    assert [ops(k) for k in p.launched()] == [["exp"], ["add"]]
    assert reasons_between(p, "exp") == {Reason.SHAPE_MISMATCH}
    assert_runs(p, {x.node: batch(8), b.node: batch(8)[0]})


def test_a_view_of_the_same_elements_fuses(graph):
    x = gc.placeholder("float32", (None,), name="x")
    y = gc.expand_dims(gc.exp(x), 1) * gc.placeholder("float32", (None, 1), name="z")
    [kernel] = plan(y).launched()
    assert ops(kernel) == ["exp", "expand_dims", "mul"]


def test_a_transpose_of_a_computed_value_is_cut(graph):
    x = gc.placeholder("float32", (4, 6), name="x")
    y = gc.transpose(gc.exp(x)) + gc.placeholder("float32", (6, 4), name="z")
    p = plan(y)
    assert [ops(k) for k in p.launched()] == [["exp"], ["transpose", "add"]]
    assert reasons_between(p, "exp") == {Reason.SHAPE_MISMATCH}


def test_a_value_read_by_two_kernels_is_materialized_once(graph):
    x = gc.placeholder("float32", (None, 8), name="x")
    e = gc.exp(x)
    rows, columns = gc.reduce_sum(e, axis=1), gc.reduce_sum(e, axis=0)
    p = plan(rows, columns)
    assert len(p.launched()) == 2
    home = p.kernel_of[e.node]
    assert e in home.outputs
    assert reasons_between(p, "exp") == {Reason.SHARED}
    assert_runs(p, {x.node: batch(8)})


def test_a_value_joins_no_kernel_it_would_close_a_cycle_through(graph):
    x = gc.placeholder("float32", (4, 3), name="x")
    a = gc.exp(x)
    wide = gc.concat([a, a], axis=1)  # opaque, and feeding back into the kernel of a's other reader
    y = wide[:, :3] + a
    p = plan(y)
    assert ops(p.kernel_of[a.node]) == ["exp"]
    assert reasons_between(p, "exp") == {Reason.OPAQUE, Reason.SHARED}
    assert_runs(p, {x.node: batch(3)[:4]})


# -- reductions ---------------------------------------------------------------------------------------------
def softmax_by_hand(z, keepdims=True):
    if keepdims:
        m = gc.reduce_max(z, axis=1, keepdims=True)
        e = gc.exp(z - m)
        return e / gc.reduce_sum(e, axis=1, keepdims=True)
    m = gc.expand_dims(gc.reduce_max(z, axis=1), 1)
    e = gc.exp(z - m)
    return e / gc.expand_dims(gc.reduce_sum(e, axis=1), 1)


@pytest.mark.parametrize("keepdims", [True, False])
def test_softmax_by_hand_is_one_reduction_kernel(graph, keepdims):
    z = gc.placeholder("float32", (None, 10), name="z")
    p = plan(softmax_by_hand(z, keepdims))
    [kernel] = p.launched()
    assert kernel.kind == Kind.REDUCTION and kernel.shape == (None, 10) and kernel.axes == (1,)
    assert kernel.root.op.name == "reduce_max"
    assert {"reduce_max", "sub", "exp", "reduce_sum", "div"} <= set(ops(kernel))
    assert_runs(p, {z.node: batch(10)})


def test_log_softmax_by_hand_is_one_kernel(graph):
    z = gc.placeholder("float32", (None, 10), name="z")
    m = gc.reduce_max(z, axis=1, keepdims=True)
    y = (z - m) - gc.log(gc.reduce_sum(gc.exp(z - m), axis=1, keepdims=True))
    p = plan(y)
    [kernel] = p.launched()
    assert kernel.kind == Kind.REDUCTION and kernel.axes == (1,)
    assert kernel.index_maps[y.node] == (0, 1)
    log_node = next(n for n in kernel.nodes if n.op.name == "log")
    assert kernel.index_maps[log_node] == (0, None)  # a row value, broadcast back over the row
    assert_runs(p, {z.node: batch(10)})


def test_layer_norm_by_hand_is_one_kernel(graph):
    x = gc.placeholder("float32", (None, 16), name="x")
    gamma = gc.placeholder("float32", (16,), name="gamma")
    beta = gc.placeholder("float32", (16,), name="beta")
    centered = x - gc.reduce_mean(x, axis=-1, keepdims=True)
    variance = gc.reduce_mean(gc.square(centered), axis=-1, keepdims=True)
    y = centered * gc.rsqrt(variance + 1e-5) * gamma + beta
    p = plan(y)
    [kernel] = p.launched()
    assert kernel.kind == Kind.REDUCTION and kernel.axes == (1,)
    assert ops(kernel).count("reduce_mean") == 2 and "rsqrt" in ops(kernel)
    assert_runs(p, {x.node: batch(16), gamma.node: batch(16)[0], beta.node: batch(16)[1]})


def test_mse_by_hand_is_two_kernels_per_axis_set(graph):
    predictions = gc.placeholder("float32", (None, 4), name="p")
    targets = gc.placeholder("float32", (None, 4), name="t")
    per_example = gc.reduce_mean(gc.square(predictions - targets), axis=-1)
    loss = gc.reduce_mean(per_example)
    p = plan(loss)
    first, second = p.launched()
    assert ops(first) == ["sub", "square", "reduce_mean"] and first.axes == (1,)
    assert ops(second) == ["reduce_mean"] and second.axes == (0,)
    assert reasons_between(p, "reduce_mean", "reduce_mean") == {Reason.SHAPE_MISMATCH}
    assert_runs(p, {predictions.node: batch(4), targets.node: batch(4)})


def test_mse_over_every_axis_is_one_kernel(graph):
    predictions = gc.placeholder("float32", (None, 4), name="p")
    [kernel] = plan(gc.reduce_mean(gc.square(predictions - 1.0))).launched()
    assert ops(kernel) == ["sub", "square", "reduce_mean"]
    assert kernel.axes == (0, 1)


def test_a_full_reduction_broadcast_back_is_cut(graph):
    x = gc.placeholder("float32", (None, 8), name="x")
    y = x - gc.reduce_mean(x)
    p = plan(y)
    assert len(p.launched()) == 2
    assert reasons_between(p, "reduce_mean") == {Reason.REDUCTION_BROADCAST}
    assert_runs(p, {x.node: batch(8)})


def test_a_column_reduction_broadcast_back_over_rows_is_one_kernel(graph):
    x = gc.placeholder("float32", (None, 8), name="x")
    y = x - gc.reduce_mean(x, axis=0)  # batch-norm-like: the kept axis is the feature axis
    [kernel] = plan(y).launched()
    assert kernel.axes == (0,)


def test_reductions_over_other_axes_do_not_share_a_kernel(graph):
    x = gc.placeholder("float32", (None, 8), name="x")
    y = gc.reduce_sum(gc.exp(x), axis=0) + gc.reduce_sum(gc.exp(x), axis=1)[0]
    p = plan(y)
    assert_runs(p, {x.node: batch(8)})
    assert all(k.kind != Kind.REDUCTION or len(k.axes) == 1 for k in p.launched())


# -- nn ops are single reduction kernels, absorbing prologue and epilogue ---------------------------------
@pytest.mark.parametrize("op", [gc.nn.softmax, gc.nn.log_softmax])
def test_an_nn_row_op_absorbs_its_prologue_and_epilogue(graph, op):
    z = gc.placeholder("float32", (None, 10), name="z")
    p = plan(op(z * 0.5) + 1.0)
    [kernel] = p.launched()
    assert kernel.kind == Kind.REDUCTION and kernel.root.op.name == op.__name__
    assert ops(kernel) == ["mul", op.__name__, "add"]
    assert_runs(p, {z.node: batch(10)})


def test_sparse_cross_entropy_then_mean_is_two_kernels(graph):
    logits = gc.placeholder("float32", (None, 10), name="logits")
    labels = gc.placeholder("int64", (None,), name="labels")
    loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(logits, labels))
    p = plan(loss)
    assert [k.kind for k in p.launched()] == [Kind.REDUCTION, Kind.REDUCTION]
    assert_runs(p, {logits.node: batch(10), labels.node: RNG.integers(0, 10, 5)})


# -- matmul ---------------------------------------------------------------------------------------------------
def dense(x, units, name):
    w = gc.placeholder("float32", (x.shape[-1], units), name=f"{name}_w")
    b = gc.placeholder("float32", (units,), name=f"{name}_b")
    return gc.relu(x @ w + b), w, b


def test_matmul_keeps_bias_and_activation_as_its_epilogue(graph):
    x = gc.placeholder("float32", (None, 6), name="x")
    y, w, b = dense(x, 4, "dense")
    p = plan(y)
    [kernel] = p.launched()
    assert kernel.kind == Kind.MATMUL and kernel.root.op.name == "matmul"
    assert [n.op.name for n in kernel.epilogue] == ["add", "relu"]
    assert_runs(p, {x.node: batch(6), w.node: RNG.standard_normal((6, 4)).astype(np.float32), b.node: batch(4)[0]})


def test_without_matmul_epilogues_the_epilogue_is_its_own_kernel(graph):
    x = gc.placeholder("float32", (None, 6), name="x")
    y, _, _ = dense(x, 4, "dense")
    p = plan(y, matmul_epilogues=False)
    assert [k.kind for k in p.launched()] == [Kind.MATMUL, Kind.ELEMENTWISE]
    assert reasons_between(p, "matmul") == {Reason.MATMUL}


def test_a_transposed_operand_is_a_gemm_flag_not_a_kernel(graph):
    x = gc.placeholder("float32", (None, 6), name="x")
    g = gc.placeholder("float32", (None, 4), name="g")
    p = plan(gc.transpose(x) @ g)
    [kernel] = p.launched()
    assert ops(kernel) == ["transpose", "matmul"]
    assert kernel.index_maps[kernel.nodes[0]] is None


def test_a_transpose_read_by_two_matmuls_is_stored_once(graph):
    # x @ xᵀ and its gradient share the transpose: as a GEMM flag of one kernel it would never be stored
    x = gc.placeholder("float32", (None, 6), name="x")
    y = gc.matmul(x, gc.transpose(x))
    (dx,) = gc.gradients(gc.reduce_sum(y), [x])
    check_partition(plan_kernels(graph, [y, dx]))
    h = RNG.normal(size=(4, 6)).astype(np.float32)
    with gc.Session(graph, backend="llvm") as sess:
        got_y, got_dx = sess.run([y, dx], {x: h})
    np.testing.assert_allclose(got_y, h @ h.T, rtol=1e-5)
    np.testing.assert_allclose(got_dx, 2 * np.ones((4, 4), np.float32) @ h, rtol=1e-5)


def test_matmul_operands_are_read_from_memory(graph):
    x = gc.placeholder("float32", (None, 6), name="x")
    w = gc.placeholder("float32", (6, 4), name="w")
    p = plan(gc.exp(x) @ w)
    assert [k.kind for k in p.launched()] == [Kind.ELEMENTWISE, Kind.MATMUL]
    assert reasons_between(p, "exp") == {Reason.MATMUL}


# -- opaque ops, limits, options --------------------------------------------------------------------------
def test_an_opaque_op_is_its_own_kernel(graph):
    x = gc.placeholder("float32", (None, 3), name="x")
    y = gc.exp(gc.concat([gc.sin(x), x], axis=1))
    p = plan(y)
    assert [k.kind for k in p.launched()] == [Kind.ELEMENTWISE, Kind.OPAQUE, Kind.ELEMENTWISE]
    assert reasons_between(p, "sin") == {Reason.OPAQUE} and reasons_between(p, "concat") == {Reason.OPAQUE}


def test_a_kernel_stops_at_the_size_limit(graph):
    x = gc.placeholder("float32", (None, 3), name="x")
    y = x
    for _ in range(10):
        y = gc.sin(y)
    p = plan(y, max_nodes=4)
    assert [len(k.nodes) for k in p.launched()] == [2, 4, 4]
    assert reasons_between(p, "sin") == {Reason.SIZE_LIMIT, Reason.FETCHED}
    assert_runs(p, {x.node: batch(3)})


def test_a_kernel_stops_at_the_input_limit(graph):
    xs = [gc.placeholder("float32", (3,), name=f"x{i}") for i in range(6)]
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    p = plan(y, max_inputs=3)
    assert all(len(k.inputs) <= 3 for k in p.launched())
    assert Reason.SIZE_LIMIT in p.reasons()


def test_without_fusion_every_node_is_a_kernel(graph):
    x = gc.placeholder("float32", (None, 10), name="x")
    y = softmax_by_hand(x)
    p = plan(y, fuse=False)
    assert len(p.launched()) == 5
    assert set(p.reasons()) == {Reason.UNFUSED, Reason.FETCHED}
    assert_runs(p, {x.node: batch(10)})


def test_a_fetched_intermediate_stays_in_its_kernel_and_is_written(graph):
    x = gc.placeholder("float32", (None, 3), name="x")
    e = gc.exp(x)
    y = gc.sin(e)
    p = plan(e, y)
    [kernel] = p.launched()
    assert set(kernel.outputs) == {e, y}
    assert p.reasons() == {Reason.FETCHED: 2}


def test_plans_are_deterministic(graph):
    x = gc.placeholder("float32", (None, 10), name="x")
    outputs = [softmax_by_hand(x), gc.reduce_sum(gc.exp(x), axis=0), gc.sin(x) @ gc.transpose(x)]
    assert str(plan(*outputs)) == str(plan(*outputs))


def test_a_whole_graph_is_planned_from_its_sinks(graph):
    x = gc.placeholder("float32", (None, 3), name="x")
    gc.exp(x)
    gc.sin(x)
    p = plan_kernels(graph)
    assert len(p.launched()) == 2 and len(p.outputs) == 2


# -- gc.optimize attaches the partition ----------------------------------------------------------------------
def test_optimize_attaches_a_fused_partition_at_level_2_only(graph):
    z = gc.placeholder("float32", (None, 10), name="z")
    y = softmax_by_hand(z) * 3.0
    fused = gc.optimize(y).partition
    assert len(fused.launched()) == 1
    unfused = gc.optimize(y, level=1).partition
    assert len(unfused.launched()) == len([n for n in gc.optimize(y, level=1).graph.nodes if n.inputs])
    assert Reason.UNFUSED in unfused.reasons()
    assert Reason.UNFUSED in gc.optimize(y, exclude=["fusion"]).partition.reasons()


# -- hypothesis: random graphs keep the invariants and compute the same values ------------------------------
SHAPES = [(5, 8), (8,), (5, 1), (1, 8), ()]


def random_graph(seed):
    rng = np.random.default_rng(seed)
    g = gc.Graph()
    with g.as_default():
        pool = [gc.placeholder("float32", s, name=f"x{i}") for i, s in enumerate(SHAPES)]
        feeds = {t.node: rng.standard_normal(t.shape).astype(np.float32) for t in pool}
        for _ in range(int(rng.integers(3, 14))):
            a, b = (pool[int(i)] for i in rng.integers(0, len(pool), 2))
            choice = int(rng.integers(0, 9))
            try:
                pool.append(_random_op(choice, a, b, rng))
            except GraphcError:
                continue
        outputs = [pool[int(i)] for i in rng.integers(len(SHAPES), len(pool), 2)] if len(pool) > len(SHAPES) \
            else [pool[0]]
    return g, outputs, feeds


def _random_op(choice, a, b, rng):
    if choice == 0:
        return gc.tanh(a)
    if choice in (1, 2):
        return (a * b) if choice == 1 else (a - b)
    if choice == 3 and a.ndim:
        return gc.reduce_sum(a, axis=int(rng.integers(0, a.ndim)), keepdims=bool(rng.integers(0, 2)))
    if choice == 4 and a.ndim:
        return gc.reduce_max(a, axis=int(rng.integers(0, a.ndim)))
    if choice == 5:
        return gc.expand_dims(a, 0)
    if choice == 6 and a.ndim == 2:
        return gc.transpose(a)
    if choice == 7 and a.ndim == 2 and b.ndim == 2:
        return a @ gc.transpose(b) if a.shape[-1] == b.shape[-1] else a @ b
    if choice == 8 and a.ndim:
        return gc.concat([a, a], axis=0)
    return gc.exp(a)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_random_graphs_partition_soundly(seed):
    graph, outputs, feeds = random_graph(seed)
    for options in ({}, {"max_nodes": 3}, {"matmul_epilogues": False}):
        assert_runs(plan_kernels(graph, outputs, **options), feeds)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_optimized_gradient_graphs_partition_soundly(seed):
    graph, outputs, feeds = random_graph(seed)
    with graph.as_default(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inputs a random graph does not use get zero gradients
        inputs = [n.outputs[0] for n in graph.nodes if n.op is PLACEHOLDER]
        total = gc.reduce_sum(outputs[0]) + gc.reduce_sum(outputs[-1])
        gradients = [t for t in gc.gradients(total, inputs) if t is not None]
    result = gc.optimize([total, *gradients])
    assert_runs(result.partition, {n: feeds[user] for n, user in result.sources().items()})


# -- the MLP training step of issue 5's done-when -------------------------------------------------------------
def build_mlp_step(sizes=(784, 512, 256, 10), learning_rate=0.1):
    """784-512-256-10, ReLU, sparse softmax cross-entropy, SGD: W ← W − lr·dW for every variable; float32,
    a None batch. Returns the graph, (x, labels), the fetches (loss, train) and node counts as built."""
    rng = np.random.default_rng(1)
    g = gc.Graph()
    with g.as_default():
        x = gc.placeholder("float32", (None, sizes[0]), name="x")
        labels = gc.placeholder("int64", (None,), name="labels")
        params, h = [], x
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
            w = gc.Variable((rng.standard_normal((m, n)) * 0.05).astype(np.float32), name=f"W{i}")
            b = gc.Variable(np.zeros(n, np.float32), name=f"b{i}")
            params += [w, b]
            h = h @ w + b
            if i < len(sizes) - 2:
                h = gc.relu(h)
        loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy(h, labels))
        counts = {"raw": len(g.nodes)}
        grads = gc.gradients(loss, params)
        counts["with gradients"] = len(g.nodes)
        train = gc.group(*(gc.assign(p, p - learning_rate * d) for p, d in zip(params, grads)))
        counts["with updates"] = len(g.nodes)
    return g, (x, labels), [loss, train], counts


def _signature(node):
    """What makes two nodes the same computation (placeholders and variables are never the same)."""
    if node.op in (PLACEHOLDER, VARIABLE):
        return ("source", id(node))
    attrs = tuple(sorted((k, (v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v)
                         for k, v in node.attrs.items()))
    return (node.op, tuple((id(t.node), t.index) for t in node.inputs), tuple(map(id, node.control_inputs)), attrs)


def measure_mlp_step():
    """The step's node counts: as built (raw, with gradients, with updates), what the fetches need, and
    after gc.optimize (level 2)."""
    graph, (x, labels), fetches, counts = build_mlp_step()
    counts["needed by the step"] = len(plan_kernels(graph, fetches, fuse=False).kernel_of)
    result = gc.optimize(fetches)
    counts["optimized"] = len(result.graph.nodes)
    return graph, (x, labels), result, counts


def test_mlp_training_step_partition():
    graph, (x, labels), result, counts = measure_mlp_step()
    partition = result.partition
    launched = partition.launched()
    print(f"\nMLP 784-512-256-10 step, nodes: {counts}")
    print(f"{len(launched)} kernels; boundaries by reason: {dict(partition.reasons())}")
    print(partition)

    # no recomputed subexpression survives CSE
    signatures = [_signature(n) for n in result.graph.nodes]
    assert len(set(signatures)) == len(signatures)
    assert counts["optimized"] < counts["needed by the step"]

    check_partition(partition)  # every boundary has a reason, kernels in a runnable order
    matmuls = [k for k in launched if k.kind == Kind.MATMUL]
    assert len(matmuls) == 8  # 3 forward, 3 weight gradients, 2 input gradients
    hidden = [k for k in matmuls if [n.op.name for n in k.epilogue] == ["add", "relu"]]
    assert len(hidden) == 2  # bias and ReLU fused into the forward GEMMs
    weight_updates = [k for k in matmuls if k.updates]
    assert sorted(v.name for k in weight_updates for v in k.updates) == ["W0", "W1", "W2"]
    assert all(k.epilogue[-1].op.name == "assign" for k in weight_updates)  # SGD in the GEMM's epilogue
    bias_updates = [k for k in launched if k.kind == Kind.REDUCTION and k.updates]
    assert sorted(v.name for k in bias_updates for v in k.updates) == ["b0", "b1", "b2"]
    assert all(k.axes == (0,) for k in bias_updates)  # the bias gradient: a sum over the batch, then the step
    # softmax − onehot(labels) is one row op (sparse_softmax_cross_entropy_grad), not softmax plus an opaque
    # one_hot: 15 kernels, none opaque (16 with one_hot)
    assert len(launched) <= 15 and not any(k.kind == Kind.OPAQUE for k in launched)
    [row_gradient] = [k for k in launched if k.root.op.name == "sparse_softmax_cross_entropy_grad"]
    assert row_gradient.kind == Kind.REDUCTION and row_gradient.axes == (1,)
    for k in launched:  # each update runs after every kernel reading the variable's old value
        for variable in k.updates:
            readers = [r.id for r in launched if any(t.node is variable for t in r.inputs) and r is not k]
            assert all(reader < k.id for reader in readers), variable.name

    # the partition computes the step: run kernel by kernel, each seeing only its inputs
    variables = {n: graph.initializers[result.origin[n]].node.attrs["value"]
                 for n in result.graph.nodes if n.op is VARIABLE}
    fed = {n: o for n, o in result.sources().items() if n.op is PLACEHOLDER}
    values = {x.node: RNG.standard_normal((7, 784)).astype(np.float32), labels.node: RNG.integers(0, 10, 7)}
    got, expected = run_partition(partition, {n: values[o] for n, o in fed.items()}, variables)
    assert np.isfinite(got[0]) and got[0] == expected[0]
