"""Linear algebra: matmul (batched, broadcasting), tensordot and einsum, with numpy's semantics.

Operands are brought to one dtype by the builders (``common_operands``); bool is rejected, as a product of
truth values is almost always a mistake. Axes and einsum specs are normalized when the node is built
(tensordot's to two tuples of non-negative axes, einsum's to an explicit ``'ij,jk->ik'``), so later stages
see one spelling.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.dtypes import NUMERIC
from graphc.graph.node import Tensor
from graphc.graph.types import Shape, TensorType, broadcast_shapes, format_shape
from graphc.ops.axes import canonical, distinct_axes, is_int
from graphc.ops.convert import common_operands
from graphc.ops.registry import OpDef, apply, register

__all__ = ["matmul", "tensordot", "einsum"]

ELLIPSIS = "..."
_LETTERS = frozenset(string.ascii_letters)


def _check_dtypes(op_name: str, *types: TensorType) -> None:
    for t in types:
        if t.dtype not in NUMERIC:
            raise DTypeError(f"{op_name} does not accept {t.dtype} (accepts {', '.join(sorted(NUMERIC))})")
    if len({t.dtype for t in types}) > 1:
        raise DTypeError(f"{op_name} operands must share a dtype, got {[t.dtype for t in types]}")


def _known_and_different(m: int | None, n: int | None) -> bool:
    return m is not None and n is not None and m != n


# -- matmul -----------------------------------------------------------------------------------------------
def _matmul_infer(a: TensorType, b: TensorType) -> TensorType:
    _check_dtypes("matmul", a, b)
    shown = f"{format_shape(a.shape)} @ {format_shape(b.shape)}"
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"matmul does not take scalars ({shown}); use mul")
    # numpy: a vector on the left is a row (1, n), on the right a column (n, 1); the added dim is dropped
    left = (1, *a.shape) if a.rank == 1 else a.shape
    right = (*b.shape, 1) if b.rank == 1 else b.shape
    if _known_and_different(left[-1], right[-2]):
        raise ShapeError(f"contraction sizes differ in {shown}: {left[-1]} vs {right[-2]}")
    try:
        batch = broadcast_shapes(left[:-2], right[:-2])
    except ShapeError as error:
        raise ShapeError(f"the batch dims of {shown} do not broadcast: {error}") from None
    rows = left[-2:-1] if a.rank > 1 else ()
    columns = right[-1:] if b.rank > 1 else ()
    return TensorType(a.dtype, batch + rows + columns)


MATMUL = register(OpDef("matmul", "linalg", _matmul_infer, np.matmul,
                        doc="Matrix product with numpy's rules: batch dims broadcast, 1-D operands promoted."))


def matmul(a: Any, b: Any, name: str | None = None) -> Tensor:
    """``a @ b`` with numpy semantics.

    The last two dims are the matrices and the leading (batch) dims broadcast; a 1-D ``a`` is a row vector
    and a 1-D ``b`` a column vector, and the dim added for it is removed from the result. Scalars are
    rejected (use ``mul``).
    """
    return apply(MATMUL, common_operands(a, b), name)


# -- tensordot --------------------------------------------------------------------------------------------
def normalize_tensordot_axes(axes: Any, a_rank: int, b_rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """numpy's ``axes`` (an int N: the last N of a with the first N of b; or a pair of axes or axis
    sequences) as two equally long tuples of non-negative axes."""
    if is_int(axes):
        axes = int(axes)
        if not 0 <= axes <= min(a_rank, b_rank):
            raise ShapeError(f"tensordot cannot contract {axes} axes of ranks {a_rank} and {b_rank}")
        return tuple(range(a_rank - axes, a_rank)), tuple(range(axes))
    if not isinstance(axes, (tuple, list)) or len(axes) != 2:
        raise ShapeError(f"tensordot axes must be an int or a pair of axis sequences, got {axes!r}")
    a_axes, b_axes = distinct_axes(axes[0], a_rank), distinct_axes(axes[1], b_rank)
    if len(a_axes) != len(b_axes):
        raise ShapeError(f"tensordot axes {axes!r} pair {len(a_axes)} axes of a with {len(b_axes)} of b")
    return a_axes, b_axes


def _tensordot_infer(a: TensorType, b: TensorType, *, axes: Any) -> TensorType:
    _check_dtypes("tensordot", a, b)
    a_axes, b_axes = normalize_tensordot_axes(axes, a.rank, b.rank)
    for i, j in zip(a_axes, b_axes):
        if _known_and_different(a.shape[i], b.shape[j]):
            raise ShapeError(f"tensordot contracts axis {i} of {format_shape(a.shape)} (size {a.shape[i]}) "
                             f"with axis {j} of {format_shape(b.shape)} (size {b.shape[j]})")
    free_a = tuple(d for i, d in enumerate(a.shape) if i not in a_axes)
    free_b = tuple(d for j, d in enumerate(b.shape) if j not in b_axes)
    return TensorType(a.dtype, free_a + free_b)


TENSORDOT = register(OpDef(
    "tensordot", "linalg", _tensordot_infer,
    lambda a, b, *, axes: np.tensordot(a, b, axes=(list(axes[0]), list(axes[1]))),
    doc="Sum of products over paired axes of a and b; the result has a's free axes, then b's."))


def tensordot(a: Any, b: Any, axes: int | Sequence[Any] = 2, name: str | None = None) -> Tensor:
    """Contract ``a`` and ``b`` over paired axes, as ``np.tensordot``.

    ``axes=N`` pairs the last N axes of a with the first N of b (in order); ``axes=(a_axes, b_axes)`` pairs
    them explicitly (ints or sequences, negative allowed). The result holds a's free axes, then b's.
    """
    a, b = common_operands(a, b)
    pairs = canonical(normalize_tensordot_axes, axes, a.ndim, b.ndim)
    return apply(TENSORDOT, [a, b], name, axes=pairs)


# -- einsum -----------------------------------------------------------------------------------------------
Term = tuple[str, ...]  # subscript letters, and ELLIPSIS for the broadcast dims


def _parse_term(term: str, spec: str) -> Term:
    """``'b...ij'`` as ``('b', '...', 'i', 'j')``: letters and at most one ellipsis."""
    parts = term.split(ELLIPSIS)
    if len(parts) > 2:
        raise ShapeError(f"einsum '{spec}': '{term}' has more than one '...'")
    for char in "".join(parts):
        if char not in _LETTERS:
            raise ShapeError(f"einsum '{spec}': {char!r} in '{term}' is not a subscript letter (a-z, A-Z)")
    return tuple(parts[0]) + ((ELLIPSIS, *parts[1]) if len(parts) == 2 else ())


def _implicit_output(inputs: list[Term]) -> Term:
    """numpy's implicit output: broadcast dims first, then the letters used once, in alphabetical order."""
    letters = [s for term in inputs for s in term if s != ELLIPSIS]
    once = tuple(sorted(s for s in set(letters) if letters.count(s) == 1))
    return ((ELLIPSIS,) if any(ELLIPSIS in term for term in inputs) else ()) + once


def parse_einsum(subscripts: str, count: int) -> tuple[list[Term], Term]:
    """The input terms and the output term of an einsum spec for ``count`` operands."""
    spec = subscripts.replace(" ", "")
    left, arrow, right = spec.partition("->")
    if "->" in right:
        raise ShapeError(f"einsum '{subscripts}' has more than one '->'")
    inputs = [_parse_term(term, subscripts) for term in left.split(",")]
    if len(inputs) != count:
        raise ShapeError(f"einsum '{subscripts}' names {len(inputs)} operands, but {count} were given")
    output = _parse_term(right, subscripts) if arrow else _implicit_output(inputs)
    used = {s for term in inputs for s in term}
    for position, symbol in enumerate(output):
        if symbol not in used:
            raise ShapeError(f"einsum '{subscripts}': output subscript '{symbol}' is not in any operand")
        if symbol in output[:position]:
            raise ShapeError(f"einsum '{subscripts}': output subscript '{symbol}' appears twice")
    return inputs, output


def canonical_einsum(subscripts: str, count: int) -> str:
    """The spec with an explicit output and no spaces: ``'ij,jk'`` becomes ``'ij,jk->ik'``."""
    inputs, output = parse_einsum(subscripts, count)
    return ",".join("".join(term) for term in inputs) + "->" + "".join(output)


def _split_dims(term: Term, shape: Shape, position: int, spec: str) -> tuple[list[int | None], Shape]:
    """An operand's dims as (the dims its letters name, in order; the dims its ellipsis covers)."""
    letters = [s for s in term if s != ELLIPSIS]
    extra = len(shape) - len(letters)
    if extra < 0 or (extra > 0 and ELLIPSIS not in term):
        raise ShapeError(f"einsum '{spec}': operand {position} has rank {len(shape)} but its subscripts "
                         f"'{''.join(term)}' name {len(letters)} dims")
    if ELLIPSIS not in term:
        return list(shape), ()
    start = term.index(ELLIPSIS)
    return list(shape[:start] + shape[start + extra:]), shape[start:start + extra]


def _letter_sizes(inputs: list[Term], types: Sequence[TensorType], spec: str) -> tuple[dict, Shape]:
    """The size of every letter (None where unknown) and the broadcast shape of the ellipsis dims.

    A letter's known sizes must be equal; unlike numpy, a size-1 dim does not stretch to match a letter
    (that is almost always a bug), only the ellipsis dims broadcast.
    """
    sizes: dict[str, tuple[int | None, int]] = {}  # letter -> (size, operand that gave it)
    broadcast = []
    for position, (term, t) in enumerate(zip(inputs, types)):
        named, covered = _split_dims(term, t.shape, position, spec)
        broadcast.append(covered)
        for letter, size in zip([s for s in term if s != ELLIPSIS], named):
            known, source = sizes.get(letter, (None, position))
            if _known_and_different(known, size):
                raise ShapeError(f"einsum '{spec}': subscript '{letter}' is {known} in operand {source} "
                                 f"({format_shape(types[source].shape)}) but {size} in operand {position} "
                                 f"({format_shape(t.shape)})")
            sizes[letter] = (known, source) if known is not None else (size, position)
    try:
        return {letter: size for letter, (size, _) in sizes.items()}, broadcast_shapes(*broadcast)
    except ShapeError as error:
        raise ShapeError(f"einsum '{spec}': the '...' dims do not broadcast: {error}") from None


def _einsum_infer(*types: TensorType, spec: str) -> TensorType:
    if not types:
        raise ShapeError("einsum needs at least one operand")
    _check_dtypes("einsum", *types)
    inputs, output = parse_einsum(spec, len(types))
    sizes, broadcast = _letter_sizes(inputs, types, spec)
    if broadcast and ELLIPSIS not in output:
        raise ShapeError(f"einsum '{spec}': the operands have {len(broadcast)} '...' dims, but the output "
                         "has no '...' to hold them")
    shape = [d for symbol in output for d in (broadcast if symbol == ELLIPSIS else (sizes[symbol],))]
    return TensorType(types[0].dtype, tuple(shape))


EINSUM = register(OpDef(
    "einsum", "linalg", _einsum_infer, lambda *arrays, spec: np.einsum(spec, *arrays),
    doc="Einstein summation over an explicit spec such as 'bij,bjk->bik'."))


def einsum(subscripts: str, *operands: Any, name: str | None = None) -> Tensor:
    """Einstein summation, as ``np.einsum``: ``gc.einsum("bhqd,bhkd->bhqk", q, k)``.

    Letters name dims; a letter missing from the output is summed over, and one repeated within an operand
    takes its diagonal (``'ii->i'``, trace ``'ii->'``). Without ``'->'`` the output is the letters used
    once, in alphabetical order. ``'...'`` stands for broadcast dims. A letter's known sizes must agree
    (no size-1 stretching, unlike numpy).
    """
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: the subscripts must be a string such as 'ij,jk->ik', got {subscripts!r}")
    if not operands:
        raise ShapeError(f"einsum '{subscripts}' needs at least one operand")
    tensors = common_operands(*operands)
    spec = canonical(canonical_einsum, subscripts, len(tensors))
    return apply(EINSUM, tensors, name, spec=spec)
