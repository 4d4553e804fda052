"""Registry-driven op tests: an ``OpCase`` says how to build an op from placeholders, how to make random
inputs, and what plain numpy (written independently of the op's reference) says the result is.

``check_case`` builds the graph twice, once with fully known placeholder shapes and once with every
dimension unknown (None), checks the static dtype and shape against the expected arrays, runs the
numpy backend, and compares values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import graphc as gc
from graphc.graph.types import shape_matches
from graphc.ops.registry import OpDef


@dataclass(frozen=True)
class OpCase:
    op: OpDef
    build: Callable[..., Any]  # (*placeholders) -> tensor or tuple of tensors, through the public API
    make_inputs: Callable[[np.random.Generator], list[np.ndarray]]
    expected: Callable[..., Any]  # (*arrays) -> array or tuple of arrays, plain numpy
    label: str = ""
    rtol: float | None = None
    atol: float = 0.0
    unknown_dims: bool = True  # also build with every placeholder dimension None
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.op.name}-{self.label}" if self.label else self.op.name


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def default_rtol(dtype: np.dtype) -> float:
    return {"float32": 2e-6, "float64": 1e-12}.get(np.dtype(dtype).name, 0.0)


def check_case(case: OpCase, rng: np.random.Generator, backend: str = "numpy", strided: bool = False) -> None:
    """Run ``case`` on ``backend``; ``strided`` feeds every input as a non-contiguous view of a larger array."""
    arrays = [np.asarray(a) for a in case.make_inputs(rng)]
    expected = [np.asarray(e) for e in _as_tuple(case.expected(*[a.copy() for a in arrays]))]
    variants = [False, True] if case.unknown_dims else [False]
    for unknown in variants:
        graph = gc.Graph()
        with graph.as_default():
            placeholders = [gc.placeholder(a.dtype.name, (None,) * a.ndim if unknown else a.shape,
                                           name=f"in{i}") for i, a in enumerate(arrays)]
            outputs = _as_tuple(case.build(*placeholders))
        assert any(n.op is case.op for n in graph.nodes), f"{case.id}: the graph has no {case.op.name} node"
        assert len(outputs) == len(expected), f"{case.id}: {len(outputs)} outputs, expected {len(expected)}"
        for out, want in zip(outputs, expected):
            assert out.dtype == want.dtype.name, f"{case.id}: static dtype {out.dtype}, numpy gives {want.dtype}"
            assert shape_matches(out.shape, want.shape), (
                f"{case.id}: static shape {out.shape} does not fit numpy's {want.shape} (unknown={unknown})")
            if not unknown:
                assert None not in out.shape, f"{case.id}: shape {out.shape} should be fully known"
        before = [a.copy() for a in arrays]
        fed = [_strided(a) for a in arrays] if strided else arrays
        with gc.Session(graph, backend=backend) as sess:
            got = sess.run(list(outputs), dict(zip(placeholders, fed)))
        check_outputs(case, arrays, before, got, expected, f"unknown dims: {unknown}")


def check_outputs(case: OpCase, arrays: list[np.ndarray], before: list[np.ndarray], got: list[np.ndarray],
                  expected: list[np.ndarray], label: str) -> None:
    """A run of ``case`` left its inputs (``arrays``, copied in ``before``) as they were and returned the
    expected values: same dtypes and shapes, values within the case's tolerances (``label`` says which run)."""
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b, err_msg=f"{case.id}: an input array was modified")
    assert len(got) == len(expected), f"{case.id}: {len(got)} values, expected {len(expected)}"
    for value, want in zip(got, expected):
        assert value.dtype == want.dtype and value.shape == want.shape, (
            f"{case.id}: got {value.dtype}{value.shape}, expected {want.dtype}{want.shape}")
        rtol = case.rtol if case.rtol is not None else default_rtol(want.dtype)
        np.testing.assert_allclose(value, want, rtol=rtol, atol=case.atol, equal_nan=True,
                                   err_msg=f"{case.id} ({label})")


def _strided(a: np.ndarray) -> np.ndarray:
    """The same values, as a view with every stride doubled (and reversed order undone): not contiguous."""
    if a.ndim == 0:
        return a
    wide = np.zeros(tuple(2 * d for d in a.shape), dtype=a.dtype)
    view = wide[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def uniform(rng: np.random.Generator, shape: tuple, dtype: str = "float32", low: float = -2.0,
            high: float = 2.0) -> np.ndarray:
    """Random values that are never exactly zero (a zero hides many bugs)."""
    if np.dtype(dtype).kind == "b":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        values = rng.integers(int(low), int(high) + 1, size=shape)
        return np.where(values == 0, 1, values).astype(dtype)
    values = rng.uniform(low, high, size=shape)
    return np.where(np.abs(values) < 1e-3, 0.5, values).astype(dtype)


def positive(rng: np.random.Generator, shape: tuple, dtype: str = "float32") -> np.ndarray:
    return rng.uniform(0.1, 3.0, size=shape).astype(dtype)
