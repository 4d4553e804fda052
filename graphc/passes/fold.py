"""Constant folding: a node whose inputs are all constants becomes a constant, computed by its op's reference.

The numpy ``reference`` of each op is the oracle every backend is tested against, so a folded value is the
value the graph would compute, in the node's exact dtype. (``ones_like``/``zeros_like`` of a tensor with a
fully known static shape become constants in graphc.passes.simplify, at level 1.)

Never folded:
- random ops (a new draw each run), update ops (they write a variable), placeholders and variables (no
  reference: their values come from outside the graph), constants themselves, nodes with several outputs
  or none (the sweep rewrites single-output nodes only), and nodes with control inputs (folding would drop
  the ordering they ask for);
- results larger than ``FOLD_LIMIT`` elements: the constant would be stored in the graph (and hashed into
  compile-cache keys) for little gain; the op computes it at run time instead;
- results that grow what they are made of (broadcast_to, one_hot, a matmul of an outer product: more
  elements than all inputs together) beyond ``SMALL_RESULT`` elements: the op makes them at run time almost
  for free (a broadcast is a stride-0 view), so a fold would only enlarge the graph (canonicalize keeps a
  large fill as broadcast_to of a scalar for the same reason);
- nodes whose reference fails on the constant inputs (an index out of range, a size conflict): the error is
  left for the run, where it names the user's line, as it would without optimization.
"""

from __future__ import annotations

import math

import numpy as np

from graphc.graph.node import Node, Tensor
from graphc.graph.types import shape_matches
from graphc.ops.sources import CONSTANT, constant
from graphc.passes.patterns import Rule, RuleTable, Var

FOLD_LIMIT = 100_000  # the most elements a folded constant may hold
SMALL_RESULT = 1024  # the most elements a fold may make beyond what its inputs hold


def _static_size(tensor: Tensor) -> int | None:
    """The number of elements of ``tensor`` if its static shape is fully known, else None."""
    return None if None in tensor.shape else math.prod(tensor.shape)


def _foldable(node: Node) -> bool:
    op = node.op
    size = _static_size(node.outputs[0])
    return (op is not CONSTANT and op.reference is not None and not op.random and not op.updates_variable
            and len(node.outputs) == 1 and not node.control_inputs
            and all(t.node.op is CONSTANT for t in node.inputs) and (size is None or _small_enough(size, node)))


def _small_enough(size: int, node: Node) -> bool:
    """Whether a result of ``size`` elements may be stored (see the module docstring)."""
    held = sum(t.node.attrs["value"].size for t in node.inputs)
    return size <= FOLD_LIMIT and (size <= SMALL_RESULT or size <= held)


def _as_constant(value: np.ndarray, like: Tensor) -> Tensor | None:
    """``value`` as a constant of ``like``'s dtype, or None if it cannot stand for ``like``."""
    array = np.asarray(value)
    if array.dtype != like.dtype and not np.can_cast(array.dtype, like.dtype, "same_kind"):
        return None
    if not shape_matches(like.shape, array.shape) or not _small_enough(array.size, like.node):
        return None
    return constant(array, dtype=like.dtype)


def _fold_constants(x: Tensor, node: Node) -> Tensor | None:
    """The node's value as a constant, when every input is one (see the module docstring for exceptions)."""
    if not _foldable(node):
        return None
    values = [t.node.attrs["value"] for t in node.inputs]
    try:
        with np.errstate(all="ignore"):  # IEEE results (inf, NaN) silently, as the interpreter gives them
            value = node.op.reference(*values, **node.attrs)
    except Exception:  # noqa: BLE001 - any failure is left for the run, which reports it at the user's line
        return None
    return None if isinstance(value, tuple) else _as_constant(value, x)


RULES = RuleTable("fold", [
    Rule("fold_constant_inputs", Var("x"), _fold_constants),
])
