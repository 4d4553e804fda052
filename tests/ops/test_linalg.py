"""matmul, tensordot and einsum beyond the registry cases: build-time errors, normalized attributes, unknown
dims, dtypes and the ``@`` operator."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import DTypeError, ShapeError
from graphc.ops.linalg import eye_like
from tests.helpers import assert_build_error, placeholders, run


# -- matmul ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a_shape, b_shape, fragments", [
    ((3, 4), (5, 6), ["[3,4] @ [5,6]", "4 vs 5"]),
    ((2, 3, 4), (2, 3, 4), ["[2,3,4] @ [2,3,4]", "4 vs 3"]),
    ((4,), (3,), ["[4] @ [3]", "4 vs 3"]),
    ((4,), (3, 5), ["4 vs 3"]),
    ((2, 3, 4), (3, 4, 5), ["batch dims", "do not broadcast"]),
    ((), (3, 4), ["scalars"]),
    ((3, 4), (), ["scalars"]),
])
def test_matmul_shape_errors(a_shape, b_shape, fragments):
    a, b = placeholders(a_shape, b_shape)
    message = assert_build_error(ShapeError, lambda: gc.matmul(a, b, name="logits"), fragments=fragments)
    assert "matmul 'logits'" in message and "in0: float32" in message and "in1: float32" in message


def test_matmul_error_through_the_operator_names_the_line():
    a, b = placeholders((3, 4), (5, 6))
    assert_build_error(ShapeError, lambda: a @ b, fragments=["matmul 'matmul'", "[3,4] @ [5,6]"])


def test_matmul_rejects_bool():
    a, b = placeholders((2, 2), (2, 2), dtype="bool")
    assert_build_error(DTypeError, lambda: gc.matmul(a, b, name="mm"), fragments=["'mm'", "bool"])


def test_matmul_promotes_mixed_dtypes():
    a = gc.placeholder("int32", (2, 3))
    b = gc.placeholder("float32", (3, 2))
    c = gc.matmul(a, b)
    assert c.dtype == "float32" and c.node.inputs[0].node.op.name == "cast"
    got = run(c, {a: np.ones((2, 3), np.int32), b: np.full((3, 2), 0.5, np.float32)})
    np.testing.assert_array_equal(got, np.full((2, 2), 1.5, np.float32))


@pytest.mark.parametrize("a_shape, b_shape, result", [
    ((None, 4), (4, 10), (None, 10)),
    ((None, None), (None, 5), (None, 5)),          # an unknown contraction size is fine statically
    ((None, 3, 4), (4, 5), (None, 3, 5)),
    ((2, 1, 3, 4), (None, 4, 6), (2, None, 3, 6)),
    ((None,), (None,), ()),
    ((4,), (None, 4, 2), (None, 2)),
    ((None, 2, 4), (None,), (None, 2)),
])
def test_matmul_static_shapes_with_unknown_dims(a_shape, b_shape, result):
    a, b = placeholders(a_shape, b_shape)
    assert gc.matmul(a, b).shape == result


def test_matmul_unknown_contraction_mismatch_is_a_run_time_error():
    a, b = placeholders((2, None), (None, 3))
    c = gc.matmul(a, b, name="late")
    with pytest.raises(ShapeError, match="late"):
        run(c, {a: np.ones((2, 4), np.float32), b: np.ones((5, 3), np.float32)})


def test_matmul_operator_with_numpy_and_python_operands():
    x = gc.placeholder("float64", (None, 3), name="x")
    w = np.arange(6.0).reshape(3, 2)
    value = np.arange(6.0).reshape(2, 3)
    y = gc.placeholder("float64", (2, 3), name="y")
    left, right, vector = x @ w, np.eye(4, 2) @ y, x @ [1.0, 2.0, 3.0]  # numpy on the left: __rmatmul__
    assert left.node.op.name == right.node.op.name == "matmul"
    assert (left.shape, right.shape, vector.shape) == ((None, 2), (4, 3), (None,))
    got_left, got_right = run([left, right], {x: value, y: value})
    np.testing.assert_allclose(got_left, value @ w)
    np.testing.assert_allclose(got_right, np.eye(4, 2) @ value)


# -- tensordot ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axes, error, fragments", [
    (3, ShapeError, ["cannot contract 3 axes", "ranks 2 and 2"]),
    (-1, ShapeError, ["cannot contract -1 axes"]),
    (((0,), (1,)), ShapeError, ["axis 0 of [3,4] (size 3)", "axis 1 of [4,5] (size 5)"]),
    (((0, 1), (0,)), ShapeError, ["pair 2 axes of a with 1 of b"]),
    (((2,), (0,)), ShapeError, ["axis 2", "rank 2"]),
    (((1, 1), (0, 0)), ShapeError, ["axis 1 repeats axis 1"]),
    ((1, 2, 3), ShapeError, ["an int or a pair"]),
    ("last", ShapeError, ["an int or a pair"]),
])
def test_tensordot_errors(axes, error, fragments):
    a, b = placeholders((3, 4), (4, 5))
    assert_build_error(error, lambda: gc.tensordot(a, b, axes, name="td"), fragments=["'td'", *fragments])


def test_tensordot_axes_are_normalized():
    a, b = placeholders((2, 3, 4), (4, 3, 5))
    assert gc.tensordot(a, b, 1).node.attrs["axes"] == ((2,), (0,))
    assert gc.tensordot(a, b, ([-1, 1], [0, -2])).node.attrs["axes"] == ((2, 1), (0, 1))
    assert gc.tensordot(a, b, (2, 0)).node.attrs["axes"] == ((2,), (0,))
    assert gc.tensordot(a, b, ([-1, 1], [0, -2])).shape == (2, 5)
    assert gc.tensordot(a, b, 0).shape == (2, 3, 4, 4, 3, 5)


def test_tensordot_with_unknown_dims():
    a, b = placeholders((None, 3, None), (None, 7))
    c = gc.tensordot(a, b, 1)
    assert c.shape == (None, 3, 7)
    value_a, value_b = np.ones((2, 3, 4), np.float32), np.ones((4, 7), np.float32)
    np.testing.assert_array_equal(run(c, {a: value_a, b: value_b}), np.full((2, 3, 7), 4, np.float32))


def test_tensordot_rejects_bool():
    a, b = placeholders((3,), (3,), dtype="bool")
    assert_build_error(DTypeError, lambda: gc.tensordot(a, b, 1), fragments=["tensordot", "bool"])


# -- einsum ---------------------------------------------------------------------------------------------------
EINSUM_ERRORS = [
    ("ij,jk->ik", [(3, 4), (5, 6)], ["subscript 'j' is 4 in operand 0 ([3,4]) but 5 in operand 1 ([5,6])"]),
    ("ij,jk->ik", [(3, 1), (4, 6)], ["subscript 'j' is 1 in operand 0"]),  # no size-1 stretching
    ("ii->i", [(3, 4)], ["subscript 'i' is 3 in operand 0"]),
    ("ij,jk->ik", [(3, 4)], ["names 2 operands, but 1 were given"]),
    ("ij->ik", [(3, 4)], ["output subscript 'k' is not in any operand"]),
    ("ij->ii", [(3, 4)], ["output subscript 'i' appears twice"]),
    ("i2->i", [(3, 4)], ["'2' in 'i2' is not a subscript letter"]),
    ("i.j->i", [(3, 4)], ["'.' in 'i.j' is not a subscript letter"]),
    ("...i...->i", [(3, 4)], ["more than one '...'"]),
    ("ij->i->j", [(3, 4)], ["more than one '->'"]),
    ("ijk->i", [(3, 4)], ["operand 0 has rank 2 but its subscripts 'ijk' name 3 dims"]),
    ("i->i", [(3, 4)], ["operand 0 has rank 2 but its subscripts 'i' name 1 dims"]),
    ("...i->i", [(2, 3, 4)], ["2 '...' dims", "no '...'"]),
    ("...i,...i->...", [(2, 4), (3, 4)], ["'...' dims do not broadcast"]),
]


@pytest.mark.parametrize("spec, shapes, fragments", EINSUM_ERRORS)
def test_einsum_spec_and_shape_errors(spec, shapes, fragments):
    operands = placeholders(*shapes)
    assert_build_error(ShapeError, lambda: gc.einsum(spec, *operands, name="es"), fragments=["'es'", *fragments])


def test_einsum_dtype_and_argument_errors():
    a, b = placeholders((3,), (3,), dtype="bool")
    assert_build_error(DTypeError, lambda: gc.einsum("i,i->", a, b), fragments=["einsum", "bool"])
    with pytest.raises(TypeError, match="subscripts must be a string"):
        gc.einsum(["i", "i"], a, b)
    with pytest.raises(ShapeError, match="at least one operand"):
        gc.einsum("i->i")


@pytest.mark.parametrize("spec, count, canonical", [
    ("ij,jk", 2, "ij,jk->ik"), (" i j , j k -> k i ", 2, "ij,jk->ki"), ("ii", 1, "ii->"), ("ba", 1, "ba->ab"),
    ("aB", 1, "aB->Ba"), ("...ij,jk", 2, "...ij,jk->...ik"), ("bhqd,bhkd->bhqk", 2, "bhqd,bhkd->bhqk"),
])
def test_einsum_spec_is_stored_explicit(spec, count, canonical):
    operands = placeholders(*[(2,) * len(term.replace("...", "x").strip())
                              for term in spec.split("->")[0].replace(" ", "").split(",")])
    assert len(operands) == count
    assert gc.einsum(spec, *operands).node.attrs["spec"] == canonical


@pytest.mark.parametrize("spec, shapes, result", [
    ("bij,bjk->bik", [(None, 3, None), (None, None, 5)], (None, 3, 5)),
    ("bij,bjk->bik", [(None, 3, 4), (2, None, 5)], (2, 3, 5)),   # a known size wins over an unknown one
    ("bhqd,bhkd->bhqk", [(None, 8, None, 64), (None, 8, None, 64)], (None, 8, None, None)),
    ("...ij,jk->...ik", [(None, 2, 3, 4), (4, 5)], (None, 2, 3, 5)),
    ("...i,...i->...", [(None, 1, 4), (3, 4)], (None, 3)),
    ("ij->", [(None, None)], ()),
])
def test_einsum_static_shapes(spec, shapes, result):
    assert gc.einsum(spec, *placeholders(*shapes)).shape == result


def test_einsum_matches_matmul_for_attention_scores():
    q, k = placeholders((None, 2, 3, 4), (None, 2, 5, 4), dtype="float64")
    scores = gc.einsum("bhqd,bhkd->bhqk", q, k)
    rng = np.random.default_rng(0)
    value_q, value_k = rng.normal(size=(3, 2, 3, 4)), rng.normal(size=(3, 2, 5, 4))
    np.testing.assert_allclose(run(scores, {q: value_q, k: value_k}), value_q @ value_k.swapaxes(-1, -2),
                               rtol=1e-12)


def test_einsum_promotes_mixed_dtypes():
    a = gc.placeholder("int64", (3,))
    b = gc.placeholder("float32", (3,))
    assert gc.einsum("i,i->", a, b).dtype == "float32"
    assert gc.einsum("i,i->", a, [1, 2, 3]).dtype == "int64"


# -- derivatives beyond the registry's finite differences: broadcasting known only when run ------------------
def _gradients_with_unknown_dims(build, values):
    """The gradients of sum(w * build(*placeholders)), every placeholder dim unknown, fed ``values``; and w."""
    tensors = [gc.placeholder("float64", (None,) * np.ndim(v), name=f"in{i}") for i, v in enumerate(values)]
    out = build(*tensors)
    weights = np.random.default_rng(0).uniform(-1, 1, size=run(out, dict(zip(tensors, values))).shape)
    grads = gc.gradients(gc.reduce_sum(out * weights), tensors)
    return run(grads, dict(zip(tensors, values))), weights


def test_matmul_gradient_sums_batch_dims_broadcast_when_run():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(1, 2, 3)), rng.normal(size=(5, 3, 4))
    (grad_a, grad_b), w = _gradients_with_unknown_dims(gc.matmul, [a, b])
    np.testing.assert_allclose(grad_a, np.sum(w @ b.swapaxes(-1, -2), axis=0, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(grad_b, a.swapaxes(-1, -2) @ w, rtol=1e-12)


@pytest.mark.parametrize("a_shape, b_shape", [((3,), (2, 3, 4)), ((2, 2, 3), (3,)), ((3,), (3,))])
def test_matmul_gradient_of_vector_operands_with_unknown_dims(a_shape, b_shape):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
    (grad_a, grad_b), w = _gradients_with_unknown_dims(gc.matmul, [a, b])
    np.testing.assert_allclose(grad_a, _numeric_gradient(lambda x: np.sum(w * (x @ b)), a), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(grad_b, _numeric_gradient(lambda x: np.sum(w * (a @ x)), b), rtol=1e-7, atol=1e-9)


def _numeric_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("spec, shapes", [
    ("...i,...i->...", [(1, 3), (4, 3)]),              # '...' of size 1 stretched when run
    ("i...j,...j->...i", [(2, 1, 3, 2), (4, 1, 2)]),   # a stretched '...' inside a term
    ("ii->", [(3, 3)]),                                # a trace: the identity of the run-time size
    ("iji,jk->ik", [(2, 3, 2), (3, 2)]),               # a diagonal beside another operand
    ("ij->i", [(3, 4)]),                               # a letter summed in one operand only
])
def test_einsum_gradient_with_unknown_dims(spec, shapes):
    rng = np.random.default_rng(3)
    values = [rng.normal(size=s) for s in shapes]
    grads, w = _gradients_with_unknown_dims(lambda *xs: gc.einsum(spec, *xs), values)
    for i, (grad, value) in enumerate(zip(grads, values)):
        def loss(x, i=i):
            return np.sum(w * np.einsum(spec, *values[:i], x, *values[i + 1:]))
        np.testing.assert_allclose(grad, _numeric_gradient(loss, value), rtol=1e-7, atol=1e-9, err_msg=spec)


def test_tensordot_gradient_with_unknown_dims():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, 2, 3)), rng.normal(size=(3, 2, 2))
    axes = ((1, 2), (2, 0))
    (grad_a, grad_b), w = _gradients_with_unknown_dims(lambda x, y: gc.tensordot(x, y, axes), [a, b])
    np.testing.assert_allclose(grad_a, _numeric_gradient(lambda x: np.sum(w * np.tensordot(x, b, axes)), a),
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(grad_b, _numeric_gradient(lambda y: np.sum(w * np.tensordot(a, y, axes)), b),
                               rtol=1e-7, atol=1e-9)


def test_eye_like_shape_and_errors():
    x = gc.placeholder("float32", (None, 3), name="x")
    assert eye_like(x, 0).shape == (None, None) and eye_like(x, -1).shape == (3, 3)
    assert eye_like(x, 1).dtype == "float32"
    assert_build_error(ShapeError, lambda: eye_like(x, 2, name="eye"), fragments=["'eye'", "axis 2", "rank 2"])
    np.testing.assert_array_equal(run(eye_like(x, 0), {x: np.zeros((2, 3), np.float32)}), np.eye(2))


def test_a_weight_shared_by_a_batch_gets_one_product_over_all_rows():
    # x (B, T, D) @ W (D, F): W's gradient contracts batch and rows at once, never a (B, D, F) stack of products
    rng = np.random.default_rng(0)
    x = gc.placeholder("float64", (None, 5, 4), name="x")
    w = gc.placeholder("float64", (4, 3), name="w")
    y = x @ w
    g = gc.placeholder("float64", (None, 5, 3), name="g")
    grad_x, grad_w = gc.gradients(y, [x, w], grad_ys=[g])
    assert grad_w.node.op.name == "tensordot" and grad_w.shape == (4, 3)
    xs, ws, gs = rng.normal(size=(2, 5, 4)), rng.normal(size=(4, 3)), rng.normal(size=(2, 5, 3))
    for backend in ("numpy", "llvm"):
        with gc.Session(backend=backend) as sess:
            got_x, got_w = sess.run([grad_x, grad_w], {x: xs, w: ws, g: gs})
        np.testing.assert_allclose(got_x, gs @ ws.T, rtol=1e-12)
        np.testing.assert_allclose(got_w, np.einsum("btd,btf->df", xs, gs), rtol=1e-12)


def test_a_batch_of_matrices_times_a_matrix_is_one_gemm():
    x = gc.placeholder("float32", (None, 16, 8), name="x")
    w = gc.placeholder("float32", (8, 4), name="w")
    rng = np.random.default_rng(0)
    xs, ws = rng.normal(size=(3, 16, 8)).astype(np.float32), rng.normal(size=(8, 4)).astype(np.float32)
    with gc.Session(backend="llvm") as sess:
        np.testing.assert_allclose(sess.run(x @ w, {x: xs, w: ws}), xs @ ws, rtol=1e-5)
        (kernel,) = sess.compiled(x @ w, {x: xs, w: ws}).program.kernels
    from graphc.lower import ir
    (gemm,) = kernel.body  # no loop over the batch: one GEMM of all 3·16 rows
    assert isinstance(gemm, ir.Gemm)
