"""Linear algebra: matmul (batched, broadcasting), tensordot and einsum, with numpy's semantics.

Operands are brought to one dtype by the builders (``common_operands``); bool is rejected, as a product of
truth values is almost always a mistake. Axes and einsum specs are normalized when the node is built
(tensordot's to two tuples of non-negative axes, einsum's to an explicit ``'ij,jk->ik'``), so later stages
see one spelling.

Derivatives are products of the same kind: an operand's cotangent is the cotangent contracted with the other
operands (c̄ @ bᵀ, a tensordot, an einsum), summed back over the batch dims that broadcast. ``eye_like``
exists for einsum's derivative: it ties the repeats of a letter (a diagonal, a trace).
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from graphc.errors import DTypeError, ShapeError
from graphc.graph.dtypes import NUMERIC
from graphc.graph.node import Node, Tensor
from graphc.graph.types import Shape, TensorType, broadcast_shapes, format_shape
from graphc.ops.axes import canonical, distinct_axes, is_int, normalize_axis
from graphc.ops.broadcast import sum_to
from graphc.ops.chain import add_all
from graphc.ops.convert import as_tensor, common_operands
from graphc.ops.elementwise import ones_like
from graphc.ops.registry import OpDef, apply, register
from graphc.ops.shape import expand_dims, squeeze, transpose

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


def _may_stretch(dims: Shape, others: Sequence[Shape]) -> bool:
    """Whether broadcasting ``dims`` against each of ``others`` (right-aligned) may have stretched them:
    the result has more dims, or a size-1 (or unknown) dim meets a size other than 1."""
    return any(len(other) > len(dims) or any(d in (None, 1) and o != 1 for d, o in zip(dims[::-1], other[::-1]))
               for other in others)


def _inverse(perm: Sequence[int]) -> tuple[int, ...]:
    """The permutation that undoes ``perm``."""
    return tuple(list(perm).index(axis) for axis in range(len(perm)))


def _permuted(x: Tensor, perm: Sequence[int]) -> Tensor:
    """transpose(x, perm), with no node for the identity permutation."""
    return x if list(perm) == list(range(len(perm))) else transpose(x, perm)


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


def _swap_last(x: Tensor) -> Tensor:
    """x with its last two axes swapped: a batch of transposed matrices."""
    return transpose(x, (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2))


def _matmul_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, Tensor]:
    # on matrices, ā = c̄ @ bᵀ and b̄ = aᵀ @ c̄; a 1-D operand is promoted (and its cotangent squeezed back)
    # as in the forward product, and batch dims that broadcast are summed back to the operand's
    a, b = node.inputs
    left = expand_dims(a, 0) if a.ndim == 1 else a
    right = expand_dims(b, -1) if b.ndim == 1 else b
    cotangent = expand_dims(cotangent, -1) if b.ndim == 1 else cotangent
    cotangent = expand_dims(cotangent, -2) if a.ndim == 1 else cotangent
    grad_a = matmul(cotangent, _swap_last(right))
    grad_a = squeeze(grad_a, -2) if a.ndim == 1 else grad_a
    if b.ndim == 2 and a.ndim > 2:  # a weight shared by a batch of matrices: one product over all their rows
        batch = list(range(a.ndim - 1))
        return grad_a, tensordot(a, cotangent, (batch, batch))
    grad_b = matmul(_swap_last(left), cotangent)
    grad_b = squeeze(grad_b, -1) if b.ndim == 1 else grad_b
    return _batch_summed(grad_a, a, b), _batch_summed(grad_b, b, a)


def _batch_summed(grad: Tensor, x: Tensor, other: Tensor) -> Tensor:
    """An operand's cotangent summed over the batch dims (all but the last two) matmul broadcast it along."""
    return sum_to(grad, x) if _may_stretch(x.shape[:-2], [other.shape[:-2]]) else grad


def _matmul_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
    (a, b), (tangent_a, tangent_b) = node.inputs, tangents
    return add_all([None if tangent_a is None else matmul(tangent_a, b),
                    None if tangent_b is None else matmul(a, tangent_b)])


MATMUL = register(OpDef("matmul", "linalg", _matmul_infer, np.matmul, vjp=_matmul_vjp, jvp=_matmul_jvp,
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


def _tensordot_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, Tensor]:
    # the cotangent holds a's free axes, then b's: contracting it with the other operand over the other's
    # free axes gives an operand's cotangent, with its axes in an order that one transpose undoes
    a, b = node.inputs
    a_axes, b_axes = node.attrs["axes"]
    a_free = [i for i in range(a.ndim) if i not in a_axes]
    b_free = [j for j in range(b.ndim) if j not in b_axes]
    cot_a = tuple(range(len(a_free)))  # the cotangent's axes that are a's free axes
    cot_b = tuple(range(len(a_free), len(a_free) + len(b_free)))
    grad_a = tensordot(cotangent, b, (cot_b, tuple(b_free)))  # a's free axes, then a's paired axes in b's order
    grad_b = tensordot(a, cotangent, (tuple(a_free), cot_a))  # b's paired axes in a's order, then b's free axes
    a_order = a_free + [a_axes[i] for i in sorted(range(len(b_axes)), key=b_axes.__getitem__)]
    b_order = [b_axes[i] for i in sorted(range(len(a_axes)), key=a_axes.__getitem__)] + b_free
    return _permuted(grad_a, _inverse(a_order)), _permuted(grad_b, _inverse(b_order))


def _tensordot_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
    (a, b), (tangent_a, tangent_b), axes = node.inputs, tangents, node.attrs["axes"]
    return add_all([None if tangent_a is None else tensordot(tangent_a, b, axes),
                    None if tangent_b is None else tensordot(a, tangent_b, axes)])


TENSORDOT = register(OpDef(
    "tensordot", "linalg", _tensordot_infer,
    lambda a, b, *, axes: np.tensordot(a, b, axes=(list(axes[0]), list(axes[1]))),
    vjp=_tensordot_vjp, jvp=_tensordot_jvp,
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


def _einsum_vjp(node: Node, cotangent: Tensor) -> tuple[Tensor, ...]:
    inputs, output = parse_einsum(node.attrs["spec"], len(node.inputs))
    return tuple(_einsum_operand_vjp(node, position, inputs, output, cotangent) for position in range(len(inputs)))


def _einsum_operand_vjp(node: Node, position: int, inputs: list[Term], output: Term, cotangent: Tensor) -> Tensor:
    """One operand's cotangent: the einsum of the cotangent with the other operands, to the operand's subscripts.

    A letter repeated in the operand (a diagonal, a trace) gets a fresh name for each repeat and an identity
    matrix ties the copies; letters no other term holds (summed in this operand alone) come from a ones
    operand, which broadcasts the cotangent along them; '...' dims that were broadcast are summed back.
    """
    spec, operand, term = node.attrs["spec"], node.inputs[position], inputs[position]
    terms = [t for i, t in enumerate(inputs) if i != position] + [output]
    tensors = [t for i, t in enumerate(node.inputs) if i != position] + [cotangent]
    target, ties = _untied(term, iter(sorted(_LETTERS - set(spec))))
    for letter, copy in ties:
        terms.append((letter, copy))
        tensors.append(eye_like(operand, _letter_axis(term, letter, operand.ndim)))
    if set(target) - {ELLIPSIS} - {s for t in terms for s in t}:
        terms.append(target)
        tensors.append(ones_like(operand))
    covered = [_split_dims(t, x.shape, i, spec)[1] for i, (t, x) in enumerate(zip(inputs, node.inputs))]
    if not _may_stretch(covered.pop(position), covered):
        return einsum(_spec(terms, target), *tensors)
    # the '...' dims were broadcast: make them the leading dims, sum them back, then put them in place
    front = _ellipsis_first(term, operand.ndim)
    grad = einsum(_spec(terms, (ELLIPSIS, *(s for s in target if s != ELLIPSIS))), *tensors)
    return _permuted(sum_to(grad, _permuted(operand, front)), _inverse(front))


def _untied(term: Term, fresh: Iterator[str]) -> tuple[Term, list[tuple[str, str]]]:
    """``term`` with each repeat of a letter renamed to a fresh letter, and the (letter, fresh letter) pairs."""
    seen: set[str] = set()
    renamed, ties = [], []
    for symbol in term:
        if symbol != ELLIPSIS and symbol in seen:
            ties.append((symbol, next(fresh)))
            symbol = ties[-1][1]
        seen.add(symbol)
        renamed.append(symbol)
    return tuple(renamed), ties


def _letter_axis(term: Term, letter: str, rank: int) -> int:
    """The operand axis named by the first occurrence of ``letter`` in its term."""
    index = term.index(letter)
    if ELLIPSIS in term and index > term.index(ELLIPSIS):
        return index - 1 + rank - (len(term) - 1)  # past the dims the ellipsis covers
    return index


def _ellipsis_first(term: Term, rank: int) -> tuple[int, ...]:
    """The permutation of an operand's axes that moves the dims its '...' covers to the front."""
    if ELLIPSIS not in term:
        return tuple(range(rank))
    start = term.index(ELLIPSIS)
    dots = range(start, start + rank - (len(term) - 1))
    return (*dots, *(axis for axis in range(rank) if axis not in dots))


def _spec(terms: Sequence[Term], output: Term) -> str:
    return ",".join("".join(term) for term in terms) + "->" + "".join(output)


def _einsum_jvp(node: Node, tangents: Sequence[Tensor | None]) -> Tensor | None:
    # einsum is linear in each operand: the tangent is the sum of the einsums with one operand replaced
    spec, operands = node.attrs["spec"], node.inputs
    return add_all([einsum(spec, *operands[:i], tangent, *operands[i + 1:])
                    for i, tangent in enumerate(tangents) if tangent is not None])


EINSUM = register(OpDef(
    "einsum", "linalg", _einsum_infer, lambda *arrays, spec: np.einsum(spec, *arrays),
    vjp=_einsum_vjp, jvp=_einsum_jvp,
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


# -- eye_like (for einsum's diagonals) ----------------------------------------------------------------------
def _eye_like_infer(x: TensorType, *, axis: int) -> TensorType:
    size = x.shape[normalize_axis(axis, x.rank)]
    return TensorType(x.dtype, (size, size))


EYE_LIKE = register(OpDef(
    "eye_like", "linalg", _eye_like_infer, lambda x, *, axis: np.eye(x.shape[axis], dtype=x.dtype),
    vjp=lambda node, cotangent: (None,), jvp=lambda node, tangents: None,  # does not depend on x's values
    doc="The identity matrix as large as x's run-time size along axis, in x's dtype."))


def eye_like(x: Any, axis: int, name: str | None = None) -> Tensor:
    """The identity matrix of size ``x.shape[axis]`` (known when run) in x's dtype: einsum's derivative ties
    the repeats of a letter (a diagonal) with it."""
    x = as_tensor(x)
    return apply(EYE_LIKE, [x], name, axis=canonical(normalize_axis, axis, x.ndim))
