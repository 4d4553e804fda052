"""einsum and tensordot lowered as loop nests equal numpy: every case of tests/ops/cases_linalg.py plus
'...' broadcasting, traces and diagonals, zero-size and size-1 dims, with static and run-time shapes; sizes
that disagree at run time stop the program instead of reading outside an operand."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.lower.ops.linalg  # noqa: F401 - registers the lowerings
from graphc.lower import ir
from graphc.lower.context import LOWERINGS, LowerContext, Operand
from graphc.lower.interpret import ProgramFailed, interpret
from graphc.ops import linalg as L
from tests.lower.harness import run_lowering
from tests.ops.cases_linalg import CASES, TOLERANCES
from tests.ops.harness import uniform

OP_CASES = [case for case in CASES if case.op in (L.EINSUM, L.TENSORDOT)]


def _node(build, arrays):
    with gc.Graph().as_default():
        placeholders = [gc.placeholder(a.dtype.name, a.shape) for a in arrays]
        return build(*placeholders).node


def _check(node, arrays, expected, rtol, atol):
    for symbolic in (False, True):
        (got,) = run_lowering(node, arrays, symbolic=symbolic)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"symbolic={symbolic}")


@pytest.mark.parametrize("case", OP_CASES, ids=lambda case: case.id)
def test_cases_of_the_op_tests(case):
    arrays = [np.asarray(a) for a in case.make_inputs(np.random.default_rng(0))]
    expected = np.asarray(case.expected(*[a.copy() for a in arrays]))
    _check(_node(case.build, arrays), arrays, expected, case.rtol or 0.0, case.atol)


EXTRA = [
    # '...' that broadcasts size-1 dims of either operand, and a '...' covering no dims
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 5, 4, 2)], "float64"),
    ("...ij,...jk->...ik", [(3, 4), (4, 2)], "float32"),
    ("...i,...i->...", [(2, 3), (1, 3)], "int64"),
    ("i...,i->...", [(3, 2, 1), (3,)], "float32"),
    # traces and diagonals
    ("ii", [(4, 4)], "float32"),
    ("ii->", [(1, 1)], "int32"),
    ("iij->j", [(2, 2, 3)], "float64"),
    ("ij,jj->i", [(3, 2), (2, 2)], "float64"),
    # zero-size dims: empty outputs, and empty sums (zeros)
    ("ij,jk->ik", [(0, 3), (3, 4)], "float32"),
    ("ij,jk->ik", [(2, 0), (0, 4)], "int32"),
    ("...i,...i->...", [(0, 3), (1, 3)], "float64"),
    ("ii->", [(0, 0)], "float64"),
    # size-1 dims, scalars, three operands, ints
    ("bij,bjk->bik", [(1, 1, 3), (1, 3, 1)], "float32"),
    (",i->i", [(), (3,)], "float64"),
    ("i,i,i->", [(5,), (5,), (5,)], "int64"),
    ("ab,bc,cd->da", [(2, 3), (3, 1), (1, 2)], "float32"),
]


def _inputs(shapes, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return [np.asarray(uniform(rng, shape, dtype, -9, 9) if dtype.startswith("int") else uniform(rng, shape, dtype))
            for shape in shapes]


def _tolerance(dtype):
    return TOLERANCES.get(dtype, {"rtol": 0.0, "atol": 0.0})


@pytest.mark.parametrize("spec, shapes, dtype", EXTRA, ids=[f"{s}-{d}" for s, _, d in EXTRA])
def test_einsum_patterns(spec, shapes, dtype):
    arrays = _inputs(shapes, dtype)
    expected = np.einsum(spec, *arrays)
    _check(_node(lambda *xs: gc.einsum(spec, *xs), arrays), arrays, np.asarray(expected, dtype), **_tolerance(dtype))


TENSORDOTS = [
    ((2, 3, 4), (4, 3, 2), ((1, 2), (1, 0)), "float32"),
    ((3, 1), (1, 3), 1, "int64"),
    ((2, 0), (0, 3), 1, "float64"),
    ((0, 2), (2, 3), 1, "float32"),
    ((2, 3), (3,), ((1,), (0,)), "int32"),
    ((), (2, 2), 0, "float64"),
]


@pytest.mark.parametrize("a_shape, b_shape, axes, dtype", TENSORDOTS, ids=[str(t) for t in TENSORDOTS])
def test_tensordot(a_shape, b_shape, axes, dtype):
    arrays = _inputs([a_shape, b_shape], dtype)
    expected = np.tensordot(*arrays, axes=axes).astype(dtype)
    _check(_node(lambda a, b: gc.tensordot(a, b, axes), arrays), arrays, expected, **_tolerance(dtype))


def _program(node, shapes, failures):
    """The node's lowering on run-time shapes (tuples of int64 expressions), as a program."""
    operands = [Operand(t, ir.Buffer(f"x{k}", t.dtype, shape, "feed"), shape)
                for k, (t, shape) in enumerate(zip(node.inputs, shapes))]
    out_shape = shapes[-1]
    out = Operand(node.outputs[0], ir.Buffer("out", node.outputs[0].dtype, out_shape, "output"), out_shape)
    body = LOWERINGS[node.op](LowerContext(failures), node, operands, [out])
    buffers = [o.buffer for o in operands] + [out.buffer]
    return ir.Program(buffers, [ir.LoopKernel("k0", tuple(body))], ["run count", "d1", "d2", "d3", "d4"], failures)


# products of two operands that run as BLAS GEMMs in a loop nest (no data movement): multi-head attention's
# projections and their gradients, transposed operands, batches, vectors, and looped (accumulated) K labels
GEMMS = [
    ("btd,dhk->bhtk", [(2, 8, 16), (16, 3, 8)]),   # loops over b and h
    ("bhtv,hvo->bto", [(2, 3, 8, 16), (3, 16, 8)]),  # h is summed by accumulating GEMMs
    ("btd,bhtk->dhk", [(2, 8, 16), (2, 3, 8, 8)]),  # weight gradient: b and t summed
    ("bhtk,dhk->btd", [(2, 3, 8, 8), (16, 3, 8)]),
    ("ij,kj->ik", [(16, 8), (12, 8)]),
    ("ji,jk->ik", [(8, 16), (8, 12)]),
    ("ji,kj->ik", [(8, 16), (12, 8)]),
    ("ij,j->i", [(16, 32)] + [(32,)]),
    ("j,jk->k", [(32,), (32, 16)]),
    ("bij,bjk->bik", [(3, 8, 16), (3, 16, 8)]),
    ("ik,bkj->bij", [(8, 16), (3, 16, 8)]),
]


@pytest.mark.parametrize("spec, shapes", GEMMS, ids=[s for s, _ in GEMMS])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_operand_products_run_as_gemms(spec, shapes, dtype):
    arrays = _inputs(shapes, dtype)
    node = _node(lambda *xs: gc.einsum(spec, *xs), arrays)
    expected = np.einsum(spec, *[a.astype(np.float64) for a in arrays]).astype(dtype)
    _check(node, arrays, expected, **_tolerance(dtype))
    static = [tuple(ir.const(n) for n in shape) for shape in [*shapes, expected.shape]]
    body = _program(node, static, []).kernels[0].body
    assert any(isinstance(s, ir.Gemm) for s in ir.walk_statements(body)), spec


def test_mismatched_run_time_sizes_fail_with_a_message():
    """'ij,jk->ik' with j = 3 in a and 4 in b: the kernel fails before any load, naming operand and axis."""
    with gc.Graph().as_default():
        a, b = gc.placeholder("float32", (None, None)), gc.placeholder("float32", (None, None))
        node = gc.einsum("ij,jk->ik", a, b, name="product").node
    d = [ir.Dim(k) for k in range(1, 5)]
    failures: list[str] = []
    program = _program(node, [(d[0], d[1]), (d[2], d[3]), (d[0], d[3])], failures)
    buffers = program.buffers
    arrays = {buffers[0]: np.ones(6, "float32"), buffers[1]: np.ones(8, "float32"), buffers[2]: np.zeros(4, "float32")}
    with pytest.raises(ProgramFailed) as error:
        interpret(program, arrays, dims=[0, 2, 3, 4, 2])
    message = str(error.value)
    assert "einsum 'ij,jk->ik' node 'product'" in message and "test_linalg_lowering.py" in message
    assert "operand 1's axis 0 must have the size of operand 0's axis 1" in message
    interpret(program, {**arrays, buffers[1]: np.ones(6, "float32")}, dims=[0, 2, 3, 3, 2])  # agreeing sizes run
    np.testing.assert_array_equal(arrays[buffers[2]], np.full(4, 3.0))


def test_broadcast_dim_that_is_neither_one_nor_the_output_size_fails():
    with gc.Graph().as_default():
        a, b = gc.placeholder("float64", (None, 3)), gc.placeholder("float64", (None, 3))
        node = gc.einsum("...i,...i->...", a, b).node
    d = [ir.Dim(k) for k in range(1, 5)]
    program = _program(node, [(d[0], ir.const(3)), (d[1], ir.const(3)), (d[2],)], [])
    x, y, out = program.buffers
    with pytest.raises(ProgramFailed, match="operand 1's axis 0 must have size 1 or the size of the output's axis 0"):
        interpret(program, {x: np.ones(6), y: np.ones(9), out: np.zeros(2)}, dims=[0, 2, 3, 2])
    values = np.zeros(2)
    interpret(program, {x: np.arange(6.0), y: np.ones(3), out: values}, dims=[0, 2, 1, 2])  # size 1 stretches
    np.testing.assert_array_equal(values, [3.0, 12.0])


def test_loop_structure_static():
    """Static shapes need no checks: one parallel nest over the output, a reassociable sum inside."""
    arrays = _inputs([(3, 4), (4, 5)], "float32")
    node = _node(lambda a, b: gc.einsum("ij,jk->ik", a, b), arrays)
    shapes = [tuple(ir.const(n) for n in s) for s in ((3, 4), (4, 5), (3, 5))]
    (outer,) = _program(node, shapes, []).kernels[0].body
    assert isinstance(outer, ir.Loop) and outer.parallel
    (inner,) = outer.body
    assert not inner.parallel
    declare, total, store = inner.body
    assert isinstance(declare, ir.Declare) and isinstance(store, ir.Store)
    (update,) = total.body
    assert isinstance(update, ir.Assign) and update.reassociate


def test_matmul_is_not_lowered_here():
    assert all(function.__module__ != "graphc.lower.ops.linalg"
               for op, function in LOWERINGS.items() if op is L.MATMUL)
    assert LOWERINGS[L.EINSUM].__module__ == LOWERINGS[L.TENSORDOT].__module__ == "graphc.lower.ops.linalg"
