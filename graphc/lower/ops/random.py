"""Lowerings of the random ops: Philox-4x32-10 as int64 index arithmetic, one loop over the output.

A draw is a pure function of (seed, run count, element index) (graphc/ops/random.py), so each element is
computed independently: the loop over the output's flat index is parallel and needs no state. The 32-bit
unsigned words of the generator live in int64 values kept in [0, 2³²): a product of two such words is
exact modulo 2⁶⁴ (int64 multiplication wraps), its high word is a logical shift right by 32 and its low
word a mask, so the native code reproduces the numpy reference bit for bit. The key schedule depends on
the seed only, which is an attribute, so it is folded into constants here.

Each round's products and words are bound to fresh locals (``Declare``): the ten rounds then print and
compile as about sixty short statements instead of one expression tree that doubles with every round.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from graphc.graph.node import Node
from graphc.lower import ir
from graphc.lower.context import LowerContext, Operand, lowering
from graphc.lower.ir import BITAND, BITOR, BITXOR, SHL, SHR, Declare, Expr, Local, Namer, Stmt
from graphc.ops import random, scalar
from graphc.ops.random import PHILOX_M0, PHILOX_M1, PHILOX_ROUNDS, PHILOX_W0, PHILOX_W1

MASK32 = 0xFFFFFFFF


class Body:
    """The statements of one loop body being built; ``bind`` names a value as a fresh local."""

    def __init__(self, names: Namer) -> None:
        self.names = names
        self.statements: list[Stmt] = []

    def bind(self, prefix: str, value: Expr) -> Local:
        local = Local(self.names(prefix), value.dtype)
        self.statements.append(Declare(local, value))
        return local


def _high(product: Expr) -> Expr:
    """The high 32 bits of a 64-bit product (logical shift: the product may have wrapped negative)."""
    return ir.integer(SHR, product, 32)


def _low(product: Expr) -> Expr:
    return ir.integer(BITAND, product, MASK32)


def _xor(*words: Expr) -> Expr:
    result = words[0]
    for word in words[1:]:
        result = ir.integer(BITXOR, result, word)
    return result


def philox(body: Body, key0: int, key1: int, c0: Expr, c1: Expr, c2: Expr, c3: Expr) -> tuple[Expr, ...]:
    """The four words of Philox-4x32-10 of counter (c0, c1, c2, c3) under key (key0, key1), as int64
    expressions in [0, 2³²); mirrors ``graphc.ops.random.philox4x32`` line by line.

    Every round's products and words are declared in ``body``, except the last round's words, which are
    returned as expressions: a caller uses one to four of them, each once, so none is computed in vain.
    """
    k0, k1 = key0 & MASK32, key1 & MASK32
    words: tuple[Expr, ...] = (c0, c1, c2, c3)
    for round_index in range(PHILOX_ROUNDS):
        if round_index:  # bump the key between rounds
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        c0, c1, c2, c3 = words
        product0 = body.bind("p", scalar.mul(ir.const(PHILOX_M0), c0))
        product1 = body.bind("p", scalar.mul(ir.const(PHILOX_M1), c2))
        words = (_xor(_high(product1), c1, ir.const(k0)), _low(product1),
                 _xor(_high(product0), c3, ir.const(k1)), _low(product0))
        if round_index < PHILOX_ROUNDS - 1:
            words = tuple(body.bind("w", word) for word in words)
    return words


def element_words(body: Body, seed: int, run_count: Expr, index: Expr) -> tuple[Expr, ...]:
    """The Philox words of element ``index`` (flat, C order) at ``run_count`` under ``seed``: the counter
    and key layout of ``graphc.ops.random.random_words``."""
    seed %= 2**64
    return philox(body, seed & MASK32, seed >> 32, _low(index), _high(index), _low(run_count), _high(run_count))


def unit_float(dtype: str, words: tuple[Expr, ...]) -> Expr:
    """A uniform of ``dtype`` in [0, 1) from one word (float32) or two (float64), exactly as the reference's
    ``unit_float32`` and ``unit_float64``: an integer of at most 24 (53) bits, converted to the float exactly,
    times a power of two (exact too)."""
    if dtype == "float32":
        bits, scale = ir.integer(SHR, words[0], 8), 2.0**-24
    else:
        high, low = words
        bits, scale = ir.integer(SHR, ir.integer(BITOR, ir.integer(SHL, high, 32), low), 11), 2.0**-53
    return scalar.mul(scalar.cast(bits, dtype), scalar.constant(scale, dtype))


def words_per_unit(dtype: str) -> int:
    return 1 if dtype == "float32" else 2


def _draw(ctx: LowerContext, node: Node, out: Operand, value: Callable[[tuple[Expr, ...]], Expr]) -> list[Stmt]:
    """One parallel loop over ``out``'s elements storing ``value(words)`` of each element's Philox words."""

    def element(indices: tuple[ir.Index, ...]) -> list[Stmt]:
        (index,) = indices
        body = Body(ctx.names)
        words = element_words(body, node.attrs["seed"], ctx.run_count, index)
        body.statements.append(out.store_flat(index, value(words)))
        return body.statements

    return list(ir.loop_nest(ctx.names, [out.size], element, parallel=True))


@lowering(random.RANDOM_UNIFORM)
def _uniform(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (out,), dtype = outputs, node.attrs["dtype"]
    number = np.dtype(dtype).type
    minval = scalar.constant(node.attrs["minval"], dtype)
    span = scalar.constant(number(node.attrs["maxval"]) - number(node.attrs["minval"]), dtype)  # rounded in dtype
    # minval + span·u as two roundings, as the reference (a backend must not contract them into an fma)
    return _draw(ctx, node, out,
                 lambda w: scalar.add(minval, scalar.mul(span, unit_float(dtype, w[:words_per_unit(dtype)]))))


@lowering(random.RANDOM_NORMAL)
def _normal(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (out,), dtype = outputs, node.attrs["dtype"]
    n = words_per_unit(dtype)

    def value(w: tuple[Expr, ...]) -> Expr:
        # Box–Muller as the reference, every step in dtype: u1 from the first word(s), u2 from the next
        u1, u2 = unit_float(dtype, w[:n]), unit_float(dtype, w[n:2 * n])
        radius = scalar.sqrt(scalar.mul(scalar.constant(-2, dtype), scalar.log(1 - u1)))
        z = scalar.mul(radius, scalar.cos(scalar.mul(scalar.constant(2 * math.pi, dtype), u2)))
        return scalar.add(scalar.constant(node.attrs["mean"], dtype), scalar.mul(node.attrs["stddev"], z))

    return _draw(ctx, node, out, value)


@lowering(random.RANDOM_BERNOULLI)
def _bernoulli(ctx: LowerContext, node: Node, inputs: list[Operand], outputs: list[Operand]) -> list[Stmt]:
    (out,), dtype = outputs, node.attrs["dtype"]
    # u < p as the integer test (w0 >> 8) < ceil(p·2²⁴): exact, no float needed
    threshold = ir.const(random.bernoulli_threshold(node.attrs["p"]))
    return _draw(ctx, node, out, lambda w: scalar.cast(scalar.lt(ir.integer(SHR, w[0], 8), threshold), dtype))
