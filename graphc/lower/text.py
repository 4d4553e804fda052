"""Printing the loop-nest IR: what ``sess.compiled(...).loops`` and ``str(program)`` show.

    kernel k0 elementwise [?,512] (add, relu)
      parallel for i0 < d0:
        for i1 < 512:
          t3[512*i0 + i1] = maximum(t2[512*i0 + i1] + b1[i1], 0.0)
"""

from __future__ import annotations

from graphc.lower.ir import (
    Assign,
    Buffer,
    Declare,
    Dim,
    Fail,
    Gemm,
    If,
    Load,
    Loop,
    LoopKernel,
    Program,
    Stmt,
    Store,
)
from graphc.ops.scalar import Expr, to_text

INDENT = "  "


def expr_text(e: Expr) -> str:
    return to_text(e, leaf=_leaf)


def _leaf(e: Expr) -> str:
    if isinstance(e, Load):
        return f"{e.buffer.name}[{expr_text(e.index)}]"
    if isinstance(e, Dim):
        return f"d{e.slot}"
    return e.name  # an Index or a Local


def statements_text(body: tuple[Stmt, ...] | list[Stmt], depth: int = 1) -> list[str]:
    pad = INDENT * depth
    lines: list[str] = []
    for s in body:
        if isinstance(s, Loop):
            kind = "parallel for" if s.parallel else "for"
            lines.append(f"{pad}{kind} {s.index.name} < {expr_text(s.extent)}:")
            lines += statements_text(s.body, depth + 1)
        elif isinstance(s, Store):
            lines.append(f"{pad}{s.buffer.name}[{expr_text(s.index)}] = {expr_text(s.value)}"
                         + ("  (reassociable)" if s.reassociate else ""))
        elif isinstance(s, Declare):
            lines.append(f"{pad}{s.local.dtype} {s.local.name} = {expr_text(s.value)}")
        elif isinstance(s, Assign):
            lines.append(f"{pad}{s.local.name} = {expr_text(s.value)}" + ("  (reassociable)" if s.reassociate else ""))
        elif isinstance(s, If):
            lines.append(f"{pad}if {expr_text(s.condition)}:")
            lines += statements_text(s.then, depth + 1)
            if s.orelse:
                lines.append(f"{pad}else:")
                lines += statements_text(s.orelse, depth + 1)
        elif isinstance(s, Fail):
            lines.append(f"{pad}fail {s.code}")
        elif isinstance(s, Gemm):
            a = f"{s.a.name}+{expr_text(s.a_offset)}" + ("ᵀ" if s.trans_a else "")
            b = f"{s.b.name}+{expr_text(s.b_offset)}" + ("ᵀ" if s.trans_b else "")
            c = f"{s.c.name}+{expr_text(s.c_offset)}"
            size = f"[{expr_text(s.m)}×{expr_text(s.k)}]·[{expr_text(s.k)}×{expr_text(s.n)}]"
            lines.append(f"{pad}gemm {c} = {s.alpha}·{a}·{b} + {s.beta}·{c}  {size}")
        else:
            raise TypeError(f"unknown statement {s!r}")
    return lines


def buffer_text(b: Buffer) -> str:
    return f"{b.name}: {b.dtype}[{', '.join(expr_text(d) for d in b.shape)}] {b.role}"


def kernel_text(kernel: LoopKernel) -> str:
    return "\n".join([f"kernel {kernel.name}:", *statements_text(kernel.body)])


def program_text(program: Program) -> str:
    lines = ["dims: " + (", ".join(f"d{i} = {what}" for i, what in enumerate(program.dims)) or "none")]
    lines += ["buffers:"] + [INDENT + buffer_text(b) for b in program.buffers]
    for i, message in enumerate(program.failures, 1):
        lines.append(f"fail {i}: {message}")
    lines += [kernel_text(k) for k in program.kernels]
    return "\n".join(lines)
