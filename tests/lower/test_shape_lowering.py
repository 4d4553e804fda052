"""The shape and indexing ops lowered as loop nests reproduce their numpy references: every case of the op
tests (built with known and with unknown placeholder shapes, run with static and with run-time dims), all
slice bounds against sizes known only at run time, every sum_to combination, and indices or sizes that do
not fit at run time, which stop the program with a message naming the node instead of leaving a buffer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import graphc as gc
import graphc.lower.ops  # noqa: F401 - registers the lowerings
from graphc.lower import ir
from graphc.lower.context import LOWERINGS, LowerContext, Operand
from graphc.lower.interpret import ProgramFailed, interpret
from graphc.lower.text import statements_text
from graphc.ops import broadcast, indexing, linalg
from graphc.ops import shape as S
from tests.lower.harness import run_lowering
from tests.ops import cases_broadcast, cases_linalg, cases_shape
from tests.ops.harness import uniform

MOVES = {S.RESHAPE, S.RESHAPE_LIKE, S.TRANSPOSE, S.EXPAND_DIMS, S.SQUEEZE, S.CONCAT, S.STACK, S.SPLIT,
         S.SPLIT_LIKE, S.BROADCAST_TO, S.PAD, broadcast.BROADCAST_LIKE, indexing.GETITEM, indexing.SLICE,
         indexing.GETITEM_GRAD, indexing.GATHER, indexing.ONE_HOT, linalg.EYE_LIKE}
SUMS = {broadcast.SUM_TO, indexing.SCATTER_ADD}
CASES = [case for family in (cases_shape, cases_broadcast, cases_linalg) for case in family.CASES
         if case.op in MOVES | SUMS]
DATA_CHECKS = {indexing.GATHER, indexing.SCATTER_ADD}  # the only ops that check anything when shapes are static


def _graph_node(case, arrays, unknown):
    """The case's node built on placeholders of known (or unknown) shape, and its inputs' values."""
    graph = gc.Graph()
    with graph.as_default():
        placeholders = [gc.placeholder(a.dtype.name, (None,) * a.ndim if unknown else a.shape) for a in arrays]
        case.build(*placeholders)
    node = next(n for n in graph.nodes if n.op is case.op)
    with gc.Session(graph, backend="numpy") as sess:
        values = sess.run(list(node.inputs), dict(zip(placeholders, arrays)))
    return node, [np.asarray(v) for v in values]


def _check(node, arrays, rtol=1e-6, atol=1e-6):  # atol: float32 sums that cancel
    """Static and symbolic runs equal the reference: bit for bit for moves, to ``rtol`` for the two sums."""
    want = node.op.reference(*arrays, **node.attrs)
    want = list(want) if isinstance(want, tuple) else [want]
    for symbolic in (False, True):
        got = run_lowering(node, arrays, symbolic=symbolic)
        for out, g, w in zip(node.outputs, got, want, strict=True):
            w = np.asarray(w).astype(out.dtype)
            message = f"{node.op.name} {dict(node.attrs)} on {[a.shape for a in arrays]} symbolic={symbolic}"
            assert g.dtype == w.dtype and g.shape == w.shape, message
            if node.op in SUMS and w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=message)
            else:
                np.testing.assert_array_equal(g, w, err_msg=message)
                assert g.tobytes() == w.tobytes(), message


@pytest.mark.parametrize("unknown", [False, True], ids=["known", "unknown"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_cases_of_the_op_tests(case, unknown, rng):
    if unknown and not case.unknown_dims:
        pytest.skip("the case needs known shapes")
    node, arrays = _graph_node(case, [np.asarray(a) for a in case.make_inputs(rng)], unknown)
    _check(node, arrays, rtol=case.rtol or 1e-6, atol=case.atol)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_static_shapes_need_no_run_time_checks(case, rng):
    """With every size known the shape checks fold away: only data (gather's indices) is checked. And no
    parallel loop updates an element in place (scatter_add's repeated indices add to one element)."""
    node, arrays = _graph_node(case, [np.asarray(a) for a in case.make_inputs(rng)], unknown=False)
    operands = [Operand(t, ir.Buffer(f"b{k}", t.dtype, tuple(map(ir.const, t.shape)), "temp"),
                        tuple(map(ir.const, t.shape))) for k, t in enumerate([*node.inputs, *node.outputs])]
    failures: list[str] = []
    body = LOWERINGS[node.op](LowerContext(failures), node, operands[:len(node.inputs)],
                              operands[len(node.inputs):])
    assert statements_text(body)
    statements = list(ir.walk_statements(body))
    assert any(isinstance(s, ir.If | ir.Fail) for s in statements) == (node.op in DATA_CHECKS), statements_text(body)
    for loop in statements:
        if isinstance(loop, ir.Loop) and loop.parallel:
            assert not any(isinstance(s, ir.Store) and _reads(s.value, s.buffer) for s in ir.walk_statements(loop.body))


def _reads(value, buffer):
    return any(isinstance(e, ir.Load) and e.buffer is buffer for e in ir.walk_expr(value))


# -- slices and keys against run-time sizes -----------------------------------------------------------------
BOUNDS = (None, -7, -2, -1, 0, 1, 3, 6)
STEPS = (None, 1, 2, -1, -3)


def test_every_slice_on_every_run_time_size(rng):
    """Bounds kept as written (the size is unknown when the node is built) resolve as Python's
    slice.indices at run time: negative, open and out-of-range bounds, both step signs, sizes 0 to 5."""
    for start, stop, step in itertools.product(BOUNDS, BOUNDS, STEPS):
        with gc.Graph().as_default():
            node = gc.placeholder("int32", (None, 2))[start:stop:step, ::-1].node
        for size in (0, 1, 2, 5):
            _check(node, [uniform(rng, (size, 2), "int32", -50, 50)])


KEYS = [np.s_[..., None, 1::-1], np.s_[-1, ...], np.s_[None, -2:, None, ::-2], np.s_[1:, ..., -1],
        np.s_[::-1, None, 0], np.s_[..., ::2, -3::-1], (Ellipsis,), np.s_[:, :, 0, None]]


@pytest.mark.parametrize("known", [False, True], ids=["unknown", "known"])
@pytest.mark.parametrize("key", KEYS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_keys_with_ellipsis_newaxis_and_negative_steps(key, dtype, known, rng):
    for shape in [(3, 2, 4), (1, 1, 1), (2, 0, 3)]:
        value = uniform(rng, shape, dtype)
        try:
            picked = value[key]
        except IndexError:  # an int index on a zero-size axis
            continue
        with gc.Graph().as_default():
            x = gc.placeholder(dtype, shape if known else (None, None, None))
            getitem = x[key].node
            grad = indexing.getitem_grad(gc.placeholder(dtype, getitem.outputs[0].shape), x, key).node
        _check(getitem, [value])
        _check(grad, [uniform(rng, picked.shape, dtype), value])


@pytest.mark.parametrize("size", [(1, -1), (-1, 2), (0, -1)])
def test_tf_slice_to_the_end_at_run_time(size, rng):
    with gc.Graph().as_default():
        node = gc.slice(gc.placeholder("float64", (None, None)), [1, 0], list(size)).node
    for shape in [(3, 2), (2, 4), (1, 2)]:
        if shape[0] >= 1 + max(size[0], 0):
            _check(node, [uniform(rng, shape, "float64")])


# -- sum_to for every combination of run-time sizes ---------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
def test_sum_to_every_run_time_combination(dtype, rng):
    """like's size on each axis is 1 or x's, decided only at run time; x's extra leading axes are summed."""
    with gc.Graph().as_default():
        x2, x3 = gc.placeholder(dtype, (None, 3)), gc.placeholder(dtype, (None, None, None))
        like = gc.placeholder(dtype, (None, None))
        nodes = [broadcast.sum_to(x2, gc.placeholder(dtype, (None, 3))).node, broadcast.sum_to(x3, like).node]
    for rows, like_rows in itertools.product((0, 1, 4), (1, None)):
        x = uniform(rng, (rows, 3), dtype)
        _check(nodes[0], [x, uniform(rng, (like_rows or rows, 3), dtype)])
    for shape in [(2, 3, 4), (1, 0, 2), (3, 1, 5)]:
        for like_shape in itertools.product(*[(1, d) for d in shape[1:]]):
            _check(nodes[1], [uniform(rng, shape, dtype), uniform(rng, like_shape, dtype)])


def test_broadcast_like_stretches_run_time_size_one(rng):
    with gc.Graph().as_default():
        node = broadcast.broadcast_like(gc.placeholder("float32", (None, None)),
                                        gc.placeholder("float32", (None, None, None))).node
    for x_shape, like_shape in [((1, 3), (2, 4, 3)), ((4, 1), (1, 4, 2)), ((1, 1), (2, 0, 3)), ((2, 3), (1, 2, 3))]:
        _check(node, [uniform(rng, x_shape), uniform(rng, like_shape)])


# -- indices from data ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
def test_gather_and_one_hot_with_negative_and_repeated_indices(dtype, index_dtype, rng):
    indices = np.array([[2, -1], [0, -3], [2, 2]], index_dtype)
    with gc.Graph().as_default():
        params = gc.placeholder(dtype, (None, 3, None))
        gather = gc.gather(params, gc.placeholder(index_dtype, (None, None)), axis=1).node
        hot = gc.one_hot(gc.placeholder(index_dtype, (None, None)), 3, dtype=dtype)
    _check(gather, [uniform(rng, (2, 3, 4), dtype), indices])
    _check(gather, [uniform(rng, (0, 3, 1), dtype), np.array([[7]], index_dtype)])  # numpy checks nothing then
    _check(hot.node, [indices])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_scatter_add_accumulates_repeated_indices(dtype, rng):
    with gc.Graph().as_default():
        like = gc.placeholder(dtype, (None, None))
        node = indexing.scatter_add(gc.placeholder(dtype, (None, None, None)), gc.placeholder("int32", (None, None)),
                                    like, axis=1).node
    indices = np.array([[1, -1, 1], [0, 1, 1]], np.int32)
    _check(node, [uniform(rng, (2, 2, 3), dtype), indices, uniform(rng, (2, 2), dtype)])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_eye_like_sizes(dtype, rng):
    with gc.Graph().as_default():
        node = linalg.eye_like(gc.placeholder(dtype, (None, None)), -1).node
    for shape in [(2, 0), (3, 1), (1, 4)]:
        _check(node, [uniform(rng, shape, dtype)])


# -- what stops the program ---------------------------------------------------------------------------------
def _run_unchecked(node, arrays, output_shapes):
    """Run ``node``'s lowering on arrays the reference would reject, each size unknown when the node was
    built a run-time dim (as the runtime lowers it)."""
    dims = [0]

    def operand(tensor, shape, role):
        slots = []
        for d, declared in zip(shape, tensor.shape):
            dims.append(d)
            slots.append(ir.Dim(len(dims) - 1) if declared is None else ir.const(d))
        return Operand(tensor, ir.Buffer(f"{role}{len(dims)}", tensor.dtype, tuple(slots), role), tuple(slots))

    inputs = [operand(t, a.shape, "feed") for t, a in zip(node.inputs, arrays)]
    outputs = [operand(t, shape, "output") for t, shape in zip(node.outputs, output_shapes)]
    failures: list[str] = []
    body = LOWERINGS[node.op](LowerContext(failures), node, inputs, outputs)
    program = ir.Program([o.buffer for o in inputs + outputs], [ir.LoopKernel("k0", tuple(body))],
                         ["run count"] + ["dim"] * (len(dims) - 1), failures)
    values = {o.buffer: np.asarray(a, o.dtype).reshape(-1) for o, a in zip(inputs, arrays)}
    values.update({o.buffer: np.zeros(int(np.prod(s)), o.dtype) for o, s in zip(outputs, output_shapes)})
    interpret(program, values, dims)


def _build(make):
    with gc.Graph().as_default():
        return make().node


FAILING = [
    ("gather-too-large", lambda: gc.gather(gc.placeholder("float32", (3, 2)), gc.placeholder("int64", (4,)),
                                           name="pick"),
     [np.ones((3, 2)), np.array([0, 2, 3, 1])], [(4, 2)], "valid: -3..2"),
    ("gather-too-negative", lambda: gc.gather(gc.placeholder("float64", (None, 2)),
                                              gc.placeholder("int32", (None,)), name="pick"),
     [np.ones((3, 2)), np.array([-4], np.int32)], [(1, 2)], "out of range for axis 0 of params"),
    ("scatter-add", lambda: indexing.scatter_add(gc.placeholder("float32", (2, None)),
                                                 gc.placeholder("int64", (2,)),
                                                 gc.placeholder("float32", (None, None)), axis=0, name="pick"),
     [np.ones((2, 3)), np.array([1, 5]), np.ones((4, 3))], [(4, 3)], "out of range for axis 0 of like"),
    ("int-index", lambda: gc.getitem(gc.placeholder("float32", (None, 3)), 2, name="pick"),
     [np.ones((2, 3))], [(3,)], "index 2 is out of range for axis 0"),
    ("negative-int-index", lambda: gc.getitem(gc.placeholder("float32", (3, None)), np.s_[:, -4], name="pick"),
     [np.ones((3, 2))], [(3,)], "index -4 is out of range for axis 1"),
    ("tf-slice-past-end", lambda: gc.slice(gc.placeholder("float32", (None, 3)), [2, 0], [1, 3], name="pick"),
     [np.ones((2, 3))], [(1, 3)], "runs past the end"),
    ("reshape-fewer-elements", lambda: gc.reshape(gc.placeholder("float32", (None, 3)), (6,), name="pick"),
     [np.ones((1, 3))], [(6,)], "number of elements"),
    ("squeeze-not-one", lambda: gc.squeeze(gc.placeholder("int32", (None, 3)), 0, name="pick"),
     [np.ones((2, 3))], [(3,)], "must be 1"),
    ("sum-to-not-a-broadcast", lambda: broadcast.sum_to(gc.placeholder("float32", (None, 3)),
                                                        gc.placeholder("float32", (None, 3)), name="pick"),
     [np.ones((4, 3)), np.ones((2, 3))], [(2, 3)], "not a broadcast"),
    ("broadcast-like-wrong-size", lambda: broadcast.broadcast_like(gc.placeholder("float32", (None,)),
                                                                   gc.placeholder("float32", (None, None)),
                                                                   name="pick"),
     [np.ones(3), np.ones((2, 4))], [(2, 4)], "does not broadcast"),
    ("concat-disagreeing", lambda: gc.concat([gc.placeholder("float32", (None, 2)),
                                              gc.placeholder("float32", (None, 2))], 1, name="pick"),
     [np.ones((2, 2)), np.ones((3, 2))], [(2, 4)], "do not tile"),
    ("getitem-grad-wrong-shape", lambda: indexing.getitem_grad(gc.placeholder("float32", (None,)),
                                                               gc.placeholder("float32", (None,)),
                                                               np.s_[::2], name="pick"),
     [np.ones(3), np.ones(4)], [(4,)], "not the shape of like[key]"),
]


@pytest.mark.parametrize("make, arrays, output_shapes, text", [f[1:] for f in FAILING], ids=[f[0] for f in FAILING])
def test_what_does_not_fit_stops_the_program(make, arrays, output_shapes, text):
    node = _build(make)
    with pytest.raises(ProgramFailed) as failed:
        _run_unchecked(node, arrays, output_shapes)
    message = str(failed.value)
    assert "'pick'" in message and "test_shape_lowering.py" in message and text in message, message
