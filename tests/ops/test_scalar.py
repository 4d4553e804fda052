"""The scalar IR: every elementwise op's ``scalar`` agrees with its reference on the op's registry cases,
and the IR itself (typing, structural equality, printing, evaluation) behaves as documented."""

import numpy as np
import pytest

import graphc as gc
from graphc.errors import DTypeError
from graphc.ops import scalar as sc
from graphc.ops.registry import REGISTRY
from tests.ops.test_ops import ALL_CASES

SCALAR_CASES = [case for case in ALL_CASES if case.op.scalar is not None]
TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def test_every_elementwise_op_has_a_scalar():
    missing = {name for name, op in REGISTRY.items() if op.elementwise and op.scalar is None}
    assert sorted(missing) == []


def test_only_elementwise_ops_have_a_scalar():
    assert [name for name, op in REGISTRY.items() if op.scalar is not None and not op.elementwise] == []


def test_every_op_with_a_scalar_has_cases():
    with_scalar = {name for name, op in REGISTRY.items() if op.scalar is not None}
    assert sorted(with_scalar - {case.op.name for case in SCALAR_CASES}) == []


@pytest.mark.parametrize("case", SCALAR_CASES, ids=lambda c: c.id)
def test_scalar_matches_reference(case, rng):
    arrays = [np.asarray(a) for a in case.make_inputs(rng)]
    placeholders = [gc.placeholder(a.dtype.name, a.shape, name=f"in{i}") for i, a in enumerate(arrays)]
    case.build(*placeholders)
    nodes = [node for node in gc.get_default_graph().nodes if node.op is case.op]
    with gc.Session(backend="numpy") as sess:
        operands = sess.run([list(node.inputs) for node in nodes], dict(zip(placeholders, arrays)))
    for node, values in zip(nodes, operands):
        expr = sc.op_expression(node.op, [t.dtype for t in node.inputs], node.attrs)
        got = sc.evaluate(expr, *values)
        with np.errstate(all="ignore"):  # the reference of mul_no_nan computes inf * 0 before it selects
            want = np.asarray(node.op.reference(*values, **node.attrs))
        assert (got.dtype, got.shape) == (want.dtype, want.shape), f"{case.id}: {expr}"
        if want.dtype.name in TOLERANCE:
            np.testing.assert_allclose(got, want, rtol=TOLERANCE[want.dtype.name], atol=0, equal_nan=True,
                                       err_msg=f"{case.id}: {expr}")
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{case.id}: {expr}")


def test_every_primitive_is_used_by_an_op():
    # the primitive set is what backends implement: a primitive no op needs should not be in it
    used = set()
    for case in SCALAR_CASES:
        with gc.Graph().as_default() as graph:
            arrays = case.make_inputs(np.random.default_rng(0))
            case.build(*[gc.placeholder(np.asarray(a).dtype.name, np.shape(a)) for a in arrays])
        for node in graph.nodes:
            if node.op.scalar is not None:
                expr = sc.op_expression(node.op, [t.dtype for t in node.inputs], node.attrs)
                used |= {e.primitive for e in sc.walk(expr) if isinstance(e, sc.Call)}
    assert sorted(p.name for p in set(sc.PRIMITIVES) - used) == []


# -- the IR itself ---------------------------------------------------------------------------------------
X, Y = sc.inputs("float32", "float32")


def test_structural_equality():
    assert sc.exp(-X) + 1 == sc.exp(-X) + 1
    assert hash(sc.exp(-X) + 1) == hash(sc.exp(-X) + 1)
    assert sc.exp(X) != sc.exp(Y)
    assert sc.constant(1, "float32") != sc.constant(1, "float64")
    assert len({X * Y, X * Y, Y * X}) == 2


def test_numbers_take_the_dtype_of_the_expression_they_meet():
    assert 1 / (1 + sc.exp(-X)) == sc.div(sc.constant(1.0, "float32"),
                                          sc.add(sc.constant(1.0, "float32"), sc.exp(sc.neg(X))))
    assert (sc.select(X > 0, 1, X)).dtype == "float32"
    assert (X >= 0).dtype == "bool"
    assert sc.cast(X, "int32").dtype == "int32"


def test_typing_errors_are_raised_where_the_expression_is_built():
    (i,) = sc.inputs("int32")
    with pytest.raises(DTypeError, match="exp does not accept int32"):
        sc.exp(i)
    with pytest.raises(DTypeError, match="share a dtype"):
        X + sc.inputs("float64")[0]
    with pytest.raises(DTypeError, match="bool condition"):
        sc.select(X, X, Y)
    with pytest.raises(DTypeError, match="does not fit"):
        i * 0.5
    with pytest.raises(DTypeError, match="at least one expression"):
        sc.add(1, 2)


def test_constants_are_rounded_to_their_dtype():
    assert sc.constant(sc.SQRT_HALF, "float32").value == float(np.float32(sc.SQRT_HALF))
    assert sc.constant(3, "float64").value == 3.0 and isinstance(sc.constant(3, "float64").value, float)
    assert sc.constant(1, "bool").value is True


def test_cast_to_the_same_dtype_is_the_expression_itself():
    assert sc.cast(X, "float32") is X


def test_printer():
    sigmoid = sc.select(X >= 0, 1 / (1 + sc.exp(-X)), sc.exp(X) / (1 + sc.exp(X)))
    assert sc.to_text(sigmoid) == "select(x0 >= 0.0, 1.0 / (1.0 + exp(-x0)), exp(x0) / (1.0 + exp(x0)))"
    assert sc.to_text(X - (Y - X), names=["a", "b"]) == "a - (b - a)"
    assert sc.to_text((X - Y) - X) == "x0 - x1 - x0"
    assert sc.to_text(sc.neg(-X) * (X + Y)) == "-(-x0) * (x0 + x1)"
    assert sc.to_text(~(X < Y) | (X > Y)) == "~(x0 < x1) | x0 > x1"
    assert str(sc.cast(X, "int64")) == "cast<int64>(x0)"


def test_evaluate_broadcasts_and_keeps_the_dtype():
    x = np.array([[1.0], [2.0]], np.float32)
    y = np.array([1.0, 2.0, 3.0], np.float32)
    got = sc.evaluate(X * Y + 1, x, y)
    assert got.dtype == np.float32 and got.shape == (2, 3)
    np.testing.assert_array_equal(got, x * y + 1)
    assert sc.evaluate(sc.constant(0, "float32") + 0 * X, x, y).shape == (2, 3)


def test_evaluate_checks_operand_dtypes():
    with pytest.raises(DTypeError, match="operand 1 must be a float32 array"):
        sc.evaluate(X + Y, np.ones(2, np.float32), np.ones(2))


def test_evaluate_select_ignores_the_branch_not_taken():
    x = np.array([-1000.0, 0.0, 1000.0], np.float32)
    sigmoid = sc.op_expression(gc.sigmoid.opdef, ["float32"])
    with np.errstate(all="raise"):
        np.testing.assert_allclose(sc.evaluate(sigmoid, x), [0.0, 0.5, 1.0])
