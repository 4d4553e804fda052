"""Run one op's lowering through the IR interpreter, with static or run-time (``Dim``) shapes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.context import LOWERINGS, LowerContext, Operand
from graphc.lower.interpret import interpret


def run_lowering(node: Node, arrays: Sequence[np.ndarray], run_count: int = 0,
                 symbolic: bool = False) -> list[np.ndarray]:
    """The outputs of ``node``'s registered lowering on ``arrays``, run by the interpreter.

    ``symbolic``: every dim of every operand is a run-time ``Dim`` (the sizes arrive in the dims argument),
    so the lowering is checked for one program serving every size. Output sizes are taken from the
    reference (as the runtime takes them from shape inference).
    """
    attrs = dict(node.attrs)
    if node.op.random:
        attrs["run_count"] = run_count
    expected = node.op.reference(*arrays, **attrs)
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    dims: list[int] = [run_count]

    def shape_of(shape: tuple[int, ...]) -> tuple[ir.Expr, ...]:
        if not symbolic:
            return tuple(ir.const(d) for d in shape)
        slots = []
        for d in shape:
            dims.append(d)
            slots.append(ir.Dim(len(dims) - 1))
        return tuple(slots)

    def operand(tensor, value: np.ndarray, role: str, k: int) -> Operand:
        shape = shape_of(np.shape(value))
        return Operand(tensor, ir.Buffer(f"{role[0]}{k}", tensor.dtype, shape, role), shape)

    inputs = [operand(t, np.asarray(a), "feed", k) for k, (t, a) in enumerate(zip(node.inputs, arrays))]
    outputs = [operand(t, np.asarray(e), "output", k) for k, (t, e) in enumerate(zip(node.outputs, expected))]
    failures: list[str] = []
    scratch: list[ir.Buffer] = []

    def new_scratch(dtype: str, shape: tuple[ir.Expr, ...]) -> ir.Buffer:
        scratch.append(ir.Buffer(f"tmp{len(scratch)}", dtype, shape, "temp"))
        return scratch[-1]

    body = LOWERINGS[node.op](LowerContext(failures, new_scratch), node, inputs, outputs)
    program = ir.Program([o.buffer for o in inputs + outputs] + scratch, [ir.LoopKernel("k0", tuple(body))],
                         ["run count"] + ["dim"] * (len(dims) - 1), failures)
    values = {o.buffer: np.array(a, dtype=o.dtype).reshape(-1) for o, a in zip(inputs, arrays)}
    values.update({o.buffer: np.full(np.size(e), 7, dtype=o.dtype) for o, e in zip(outputs, expected)})
    for b in scratch:  # garbage, as an arena would hold: a lowering must write scratch before reading it
        size = int(np.prod([ir.evaluate_size(d, dims) for d in b.shape]))
        values[b] = np.full(size, np.nan if b.dtype.startswith("float") else 7, dtype=b.dtype)
    interpret(program, values, dims)
    return [values[o.buffer].reshape(np.shape(e)) for o, e in zip(outputs, expected)]
