"""max_pool2d / avg_pool2d: their lowerings run by the IR interpreter (static and run-time sizes), agreement
with PyTorch on the llvm backend (forward and gradient), and the errors a user sees."""

import inspect

import numpy as np
import pytest

import graphc as gc
import graphc.lower.ops.pool  # noqa: F401 - registers the lowerings
from graphc.errors import DTypeError, ShapeError
from graphc.ops import pool
from tests.lower.harness import run_lowering

# (x shape, ksize, stride, padding): overlapping, "same" with uneven padding, stride > ksize (rows no window
# holds), non-square
GEOMETRIES = [
    ((2, 5, 5, 3), 3, 1, "valid"),
    ((2, 6, 7, 2), 3, 2, "same"),
    ((1, 7, 8, 2), 2, 3, "same"),
    ((2, 5, 7, 1), (2, 3), (1, 2), "same"),
    ((1, 4, 6, 2), 2, None, "valid"),
]


def _node(build, arrays):
    graph = gc.Graph()
    with graph.as_default():
        placeholders = [gc.placeholder(a.dtype.name, a.shape) for a in arrays]
        return build(*placeholders).node


def _builders(ksize, stride, padding):
    window = {"ksize": ksize, "stride": stride, "padding": padding}
    return {
        "max_pool2d": lambda x, t, dy: (lambda a: gc.nn.max_pool2d(a, **window), [x]),
        "avg_pool2d": lambda x, t, dy: (lambda a: gc.nn.avg_pool2d(a, **window), [x]),
        "max_pool2d_grad": lambda x, t, dy: (lambda a, b: pool.max_pool2d_grad(a, b, **window), [x, dy]),
        "max_pool2d_select": lambda x, t, dy: (lambda a, b: pool.max_pool2d_select(a, b, **window), [x, t]),
        "avg_pool2d_grad": lambda x, t, dy: (lambda a, b: pool.avg_pool2d_grad(a, b, **window), [dy, x]),
    }


@pytest.mark.parametrize("symbolic", [False, True], ids=["static", "symbolic"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d", "max_pool2d_grad", "max_pool2d_select", "avg_pool2d_grad"])
def test_lowering_matches_reference(op, geometry, symbolic, rng):
    shape, ksize, stride, padding = geometry
    x = rng.integers(-3, 4, size=shape).astype("float64")  # few values: ties, where the first max must win
    t = rng.standard_normal(shape)
    pooled = gc.nn.max_pool2d(gc.placeholder("float64", shape), ksize, stride, padding).shape
    dy = rng.standard_normal(pooled)
    build, arrays = _builders(ksize, stride, padding)[op](x, t, dy)
    node = _node(build, arrays)
    (got,) = run_lowering(node, arrays, symbolic=symbolic)
    want = node.op.reference(*arrays, **node.attrs)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_integer_max_pool_lowering_pads_below_every_value(rng):
    x = np.full((1, 3, 3, 1), np.iinfo("int32").min, "int32")  # the lowest int32 still beats padding
    node = _node(lambda a: gc.nn.max_pool2d(a, 2, 2, "same"), [x])
    for symbolic in (False, True):
        np.testing.assert_array_equal(run_lowering(node, [x], symbolic=symbolic)[0], np.full((1, 2, 2, 1), x.min()))


# -- PyTorch agreement (llvm backend) ---------------------------------------------------------------------
TORCH_GEOMETRIES = [  # (x shape, ksize, stride, torch padding; graphc "same" where torch pads symmetrically)
    ((4, 8, 8, 3), 2, 2, 0),
    ((2, 7, 9, 4), 3, 1, 0),
    ((2, 5, 7, 2), (2, 3), (1, 2), 0),
    ((3, 9, 9, 2), 3, 2, 1),  # TF "same": ceil(9/2) = 5 rows, total padding 2, one on each side
]


def _torch_pool(torch, kind, x, ksize, stride, padding):
    nchw = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_(True)
    if kind == "max":
        y = torch.nn.functional.max_pool2d(nchw, ksize, stride, padding)
    else:
        y = torch.nn.functional.avg_pool2d(nchw, ksize, stride, padding, count_include_pad=False)
    return nchw, y


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("geometry", TORCH_GEOMETRIES, ids=str)
def test_forward_and_gradient_match_torch(kind, geometry, rng):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    shape, ksize, stride, torch_padding = geometry
    x = rng.standard_normal(shape).astype("float32")
    nchw, y = _torch_pool(torch, kind, x, ksize, stride, torch_padding)
    w = rng.standard_normal(tuple(y.permute(0, 2, 3, 1).shape)).astype("float32")
    (y.permute(0, 2, 3, 1) * torch.tensor(w)).sum().backward()

    graph = gc.Graph()
    with graph.as_default():
        xp = gc.placeholder("float32", (None, *shape[1:]))
        pool_fn = gc.nn.max_pool2d if kind == "max" else gc.nn.avg_pool2d
        out = pool_fn(xp, ksize, stride, "same" if torch_padding else "valid")
        (dx,) = gc.gradients(gc.reduce_sum(out * w), [xp])
    with gc.Session(graph, backend="llvm") as sess:
        got, got_dx = sess.run([out, dx], {xp: x})
    np.testing.assert_allclose(got, y.permute(0, 2, 3, 1).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_dx, nchw.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)


# -- errors -----------------------------------------------------------------------------------------------
def test_window_larger_than_input_names_node_and_line():
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2, 2, 5, 3))
        line = inspect.currentframe().f_lineno + 2
        with pytest.raises(ShapeError) as info:
            gc.nn.max_pool2d(x, 3, name="pool1")
    message = str(info.value)
    assert "max_pool2d 'pool1'" in message and f"test_pool.py:{line}" in message
    assert "[2,2,5,3]" in message and "'same'" in message


def test_window_larger_than_fed_input_is_an_error_when_run():
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder("float32", (None, None, None, 1))
        y = gc.nn.avg_pool2d(x, 3)
    with gc.Session(graph) as sess:
        np.testing.assert_allclose(sess.run(y, {x: np.ones((1, 3, 3, 1), "float32")}), np.ones((1, 1, 1, 1)))
        with pytest.raises(ShapeError, match="avg_pool2d"):
            sess.run(y, {x: np.ones((1, 2, 3, 1), "float32")})


@pytest.mark.parametrize("build, error, text", [
    (lambda x: gc.nn.avg_pool2d(gc.cast(x, "int32"), 2), DTypeError, "floating-point"),
    (lambda x: gc.nn.max_pool2d(x[0], 2), ShapeError, "(N, H, W, C)"),
    (lambda x: gc.nn.max_pool2d(x, 0), ShapeError, "positive int"),
    (lambda x: gc.nn.max_pool2d(x, 2, padding="full"), ShapeError, "'valid' or 'same'"),
])
def test_bad_arguments(build, error, text):
    with gc.Graph().as_default():
        x = gc.placeholder("float32", (2, 4, 4, 3))
        with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
            build(x)
