"""conv2d end to end: its lowerings on the IR interpreter (static and run-time shapes), forward and both
gradients on the llvm backend against PyTorch, and the errors a user sees when building a bad convolution."""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
import graphc.lower.ops.conv  # noqa: F401 - registers the lowerings
from graphc.lower import ir
from graphc.lower.context import LOWERINGS, LowerContext, Operand
from graphc.lower.interpret import ProgramFailed, interpret
from graphc.ops import conv
from tests.lower.harness import run_lowering
from tests.ops.cases_conv import CASES
from tests.ops.harness import uniform


# -- the lowerings on the interpreter -----------------------------------------------------------------------
def _node(case, arrays):
    with gc.Graph().as_default():
        return case.build(*[gc.placeholder(a.dtype.name, a.shape) for a in arrays]).node


@pytest.mark.parametrize("case", CASES[::2], ids=lambda case: case.id)
@pytest.mark.parametrize("symbolic", [False, True])
def test_lowering_matches_numpy(case, symbolic):
    arrays = [np.asarray(a) for a in case.make_inputs(np.random.default_rng(0))]
    expected = np.asarray(case.expected(*arrays))
    (got,) = run_lowering(_node(case, arrays), arrays, symbolic=symbolic)
    np.testing.assert_allclose(got, expected, rtol=case.rtol, atol=case.atol)


def test_lowering_stops_on_mismatched_run_time_shapes():
    """An output of 4 rows for an input of 5 with "same" padding (which gives 5) stops the kernel before it
    writes (the interpreter runs no shape inference, which would reject these sizes first)."""
    with gc.Graph().as_default():
        x = gc.placeholder("float64", (1, None, None, 1))
        y = gc.nn.conv2d(x, np.ones((3, 3, 1, 2)), padding="same", name="features")
    d = [ir.Dim(k) for k in range(1, 5)]
    one, two = ir.const(1), ir.const(2)
    shapes = [(one, d[0], d[1], one), tuple(ir.const(n) for n in (3, 3, 1, 2)), (one, d[2], d[3], two)]
    buffers = [ir.Buffer(f"b{k}", "float64", shape, "feed") for k, shape in enumerate(shapes)]
    scratch: list[ir.Buffer] = []

    def new_scratch(dtype, shape):
        scratch.append(ir.Buffer("cols", dtype, shape, "temp"))
        return scratch[-1]

    failures: list[str] = []
    operands = [Operand(t, b, shape) for t, b, shape in zip([*y.node.inputs, y], buffers, shapes)]
    body = LOWERINGS[conv.CONV2D](LowerContext(failures, new_scratch), y.node, operands[:2], operands[2:])
    program = ir.Program(buffers + scratch, [ir.LoopKernel("k0", tuple(body))], ["run count"] + ["d"] * 4, failures)
    arrays = {buffers[0]: np.ones(25), buffers[1]: np.ones(18), buffers[2]: np.zeros(32), scratch[0]: np.zeros(16 * 9)}
    with pytest.raises(ProgramFailed, match="conv2d node 'features'.*test_conv.py"):
        interpret(program, arrays, dims=[0, 5, 5, 4, 4])
    np.testing.assert_array_equal(arrays[buffers[2]], 0.0)


# -- the llvm backend against PyTorch ------------------------------------------------------------------------
GEOMETRIES = [  # (x shape, w shape, stride, padding, dilation)
    ((2, 9, 8, 3), (3, 3, 3, 5), 1, "valid", 1),
    ((3, 9, 8, 4), (3, 2, 4, 6), 2, "same", 1),
    ((2, 10, 9, 3), (3, 3, 3, 4), (2, 1), ((1, 2), (0, 1)), (1, 2)),
    ((2, 8, 8, 2), (2, 3, 2, 3), 1, "same", 2),
    ((4, 5, 6, 8), (1, 1, 8, 3), 1, "same", 1),
]


def _torch_conv(torch, x, w, stride, padding, dilation):
    """(y, dx, dw) from PyTorch (NCHW, OIHW) for y · c summed, with graphc's pads applied by F.pad."""
    functional = torch.nn.functional
    pads = [conv.axis_geometry(size, k, s, d, p)[:2] for size, k, s, d, p in
            zip(x.shape[1:3], w.shape[:2], conv._pair(stride), conv._pair(dilation),
                ("same", "same") if padding == "same" else conv._padding(padding))]
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    padded = functional.pad(xt.permute(0, 3, 1, 2), (*pads[1], *pads[0]))
    y = functional.conv2d(padded, wt.permute(3, 2, 0, 1), stride=stride, dilation=dilation).permute(0, 2, 3, 1)
    return y, xt, wt


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation", GEOMETRIES)
def test_forward_and_gradients_match_torch(x_shape, w_shape, stride, padding, dilation, rng):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    x, w = uniform(rng, x_shape), uniform(rng, w_shape)
    y_torch, xt, wt = _torch_conv(torch, x, w, stride, padding, dilation)
    c = uniform(rng, tuple(y_torch.shape))
    (y_torch * torch.tensor(c)).sum().backward()
    with gc.Graph().as_default() as graph:
        xp = gc.placeholder("float32", (None, *x_shape[1:]))
        wp = gc.placeholder("float32", w_shape)
        y = gc.nn.conv2d(xp, wp, stride=stride, padding=padding, dilation=dilation)
        dx, dw = gc.gradients(gc.reduce_sum(y * c), [xp, wp])
    with gc.Session(graph, backend="llvm") as sess:
        got = sess.run([y, dx, dw], {xp: x, wp: w})
    for value, want in zip(got, [y_torch, xt.grad, wt.grad]):
        np.testing.assert_allclose(value, want.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_run_time_spatial_sizes_with_same_padding():
    """One compiled program serves inputs of every height and width, "same" pads computed when it runs."""
    filters = np.arange(36.0).reshape(3, 3, 2, 2) / 36
    with gc.Graph().as_default() as graph:
        xp = gc.placeholder("float64", (None, None, None, 2))
        y = gc.nn.conv2d(xp, filters, stride=2, padding="same")
    assert y.shape == (None, None, None, 2)
    rng = np.random.default_rng(0)
    with gc.Session(graph, backend="llvm") as sess:
        for shape in [(1, 5, 4, 2), (2, 8, 7, 2)]:
            x = rng.normal(size=shape)
            expected = conv._conv2d(x, filters, stride=(2, 2), padding="same", dilation=(1, 1))
            assert sess.run(y, {xp: x}).shape == expected.shape
            np.testing.assert_allclose(sess.run(y, {xp: x}), expected, rtol=1e-12, atol=1e-12)


# -- errors ----------------------------------------------------------------------------------------------
def test_channel_mismatch_names_the_node_and_line():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None, 8, 8, 3))
        w = gc.placeholder("float32", (3, 3, 4, 8))
        with pytest.raises(gc.errors.ShapeError) as error:
            gc.nn.conv2d(x, w, name="features")
    message = str(error.value)
    assert "conv2d 'features'" in message and "test_conv.py" in message and "channels" in message
    assert "(3 and 4)" in message


@pytest.mark.parametrize("kwargs, error, words", [
    ({"stride": 0}, gc.errors.ArgumentError, "stride"),
    ({"padding": "full"}, gc.errors.ArgumentError, "padding"),
    ({"padding": ((1, -1), (0, 0))}, gc.errors.ArgumentError, "padding"),
    ({"dilation": 4}, gc.errors.ShapeError, "does not fit"),
])
def test_bad_geometry_is_reported_when_built(kwargs, error, words):
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (None, 6, 6, 2))
        w = gc.placeholder("float32", (3, 3, 2, 4))
        with pytest.raises(error, match=words):
            gc.nn.conv2d(x, w, **kwargs)


def test_integer_and_mixed_dtypes_are_rejected():
    with gc.Graph().as_default():
        w = gc.placeholder("float32", (3, 3, 2, 4))
        with pytest.raises(gc.errors.DTypeError, match="float32 or float64"):
            gc.nn.conv2d(gc.placeholder("int32", (1, 6, 6, 2)), w)
        with pytest.raises(gc.errors.DTypeError, match="one dtype"):
            gc.nn.conv2d(gc.placeholder("float64", (1, 6, 6, 2)), w)


def test_filter_gradient_needs_a_static_kernel_size():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (1, 6, 6, 2))
        w = gc.placeholder("float32", (None, None, 2, 4))
        y = gc.nn.conv2d(x, w)
        with pytest.raises(gc.errors.GradientError, match="height and width"):
            gc.gradients(gc.reduce_sum(y), [w])
