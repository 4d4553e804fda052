"""Transcendental functions as branch-free scalar LLVM IR, so that loops calling them vectorize.

The renderer emits scalar loop bodies and leaves SIMD to LLVM's loop vectorizer, which cannot widen a call to
libm (``expf``, or ``llvm.exp.f32`` without a vector library). So each function here is an internal
``alwaysinline`` function of straight-line IR: polynomials, exponent-bit arithmetic and ``select`` instead of
branches, calling only intrinsics every vector unit has (``llvm.fma``, ``fabs``, ``floor``, ``rint``,
``copysign``). Once the optimizer inlines it, the loop around it vectorizes like any arithmetic. It relies on
the host having FMA (x86-64-v3 or later, AArch64): elsewhere ``llvm.fma`` becomes a libm call, exact but slow.

Accuracy, measured against mpmath and numpy (tests/backends/llvm/test_vmath.py): float64 within 1 ulp of the
exact result (so within 2 ulp of numpy, whose own functions err by up to about 1 ulp). float32 computes in float
(16 lanes to an AVX-512 vector, not 8 doubles) and is within 2 ulp of the correctly rounded result; measured
over every float: exp 0.98, expm1 1.03, log 0.84, log1p 0.85, tanh 1.06, erf 1.15, sin 1.20, cos 1.19, tan 1.58
(numpy's float32 SIMD functions err by up to 3.6 ulp on AVX-512 hosts). float32 sin, cos and tan hold that for
|x| < 2^20 (1.05e6) and are nan from 2^20 on. float32 pow still computes in double (exp(y log|x|) with float's
shorter polynomials), so it is correctly rounded but for rare ties. Special values follow numpy: exp
overflows to inf and underflows through the denormals to 0, log(0) = -inf, log(x < 0) = nan, log1p(-1) = -inf,
tanh(±inf) = ±1, erf(±inf) = ±1, sin/cos/tan(±inf) = nan, pow as C99 (pow(x, 0) = pow(1, y) = 1 even for nan,
pow(±0, y < 0) = inf with the sign of an odd y, a negative base only with an integer exponent), and nan in,
nan out.

How (all float64 arithmetic, ``ulp`` meaning the result's):

* exp: x = n ln2 + r, |r| <= ln2/2, with r exact (ln2 times n is subtracted with one fma) and ln2's tail
  carried as a correction; e^r = 1 + r + r^2 p(r), a degree-10 minimax polynomial, with 1 + r summed exactly;
  2^n is applied as two factors so results down to the smallest denormal round once.
* log, log1p: x = 2^k m with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m-1)/(m+1), as in fdlibm;
  log1p adds the rounding error of 1 + x back as c/u.
* expm1: the exp reduction, then 2^n (1 + e^r - 1) - 1 regrouped per n so that no cancellation loses bits.
* tanh: u/(u + 2) for u = expm1(2|x|) kept as a double-double, divided with one correction step: no
  cancellation near 0 (tanh(1e-5) is exact to the last bit) and 1 exactly from |x| = 19.1 on.
* sin, cos, tan: Cody-Waite reduction by pi/2 written as three doubles (164 bits), with exact products (fma)
  and exact sums into a double-double remainder, then a second small step that corrects n where x 2/pi
  rounded to a neighbour. float64 is within 1 ulp for |x| < 2^88 (3e26), within a relative 1e-11 up to
  2^100, and nan from 2^100 (1.3e30) on, where the bits of pi run out (numpy, with Payne-Hanek reduction,
  stays exact there); float32 is correctly rounded below 2^102 and nan from 2^103 on. The sine and cosine
  polynomials on the double-double remainder give both as double-doubles; tan divides them with one
  correction step.
* erf: x (1 + Y(x^2)) below 1; above, 1 - t exp(-x^2 + g(t)) with t = 2/(2 + x) (Numerical Recipes' erfc
  form), g a degree-16 minimax polynomial, 1 from x = 6 on.
* pow (float64): log|x| as a double-double (the atanh series with its first two terms in double-double), times
  y in double-double, into exp with the low part as a correction: within 1 ulp for results of any size.
  float32 pow is exp(y log|x|) in plain double: the product's relative error, 2^-44 at worst, is invisible
  after rounding to float.

float32 pow takes the double path with float's shorter polynomials (accurate to about 2^-35). The other float32
functions are native float (the ``*32`` functions at the end): the same reductions with float constants, the
first step of each exact by FMA (x - n ln2_hi, x - n pi_1), minimax polynomials fitted for float:

* exp, expm1: the exp reduction with ln2 as two floats, e^r - 1 = r + r^2 P(r) (degree 7), expm1 as
  (2^n r + (2^n - 1)) + 2^n r^2 P with the first sum in one fma.
* log: x = 2^k (1 + f), log(1 + f) = f + f^2 L(f) (degree 10, no division), k ln2 with a 15-bit head so
  that k ln2_hi is exact. log1p: f = (1 + x) 2^-k - 1 in one fma, exact, so the rounding of 1 + x costs
  nothing.
* sin, cos, tan: n = rint(x 2/pi) by the 1.5 * 2^23 shift, pi/2 as three floats (72 bits) with x - n pi_1
  exact and n pi_2 subtracted exactly (two-product, two-sum), r kept as a float pair; the low part enters the
  polynomials to first order; tan = r + r^3 T(r^2), or -1/tan corrected for the rounding of tan. n, rounded
  with 2/pi as one float, is off by up to n 2^-24: that bounds |x| to 2^20 (where |r| <= 1.03 pi/4, which the
  polynomials cover); beyond, nan. A double-precision fallback (a select, both computed) cost 70% (three
  double fmas) to 4x (the double path) of the float time on every element, and was left out.
* tanh: a + a^3 T(a^2) below 0.75, else 1 - 2/(e^2a + 1); erf: a (1 + Y(a^2)) below 0.9, else
  1 - exp(H(a) - a^2) with H a polynomial in a (no division), a^2 split exactly.

The coefficients are minimax fits of the functions named beside them: for double by Remez exchange in mpmath
(256-bit arithmetic), rounded to double; for float by linear programming on a dense grid, each coefficient
rounded to float before the next ones were refitted.

Speed, ns per element on one AVX-512 core (Zen 5), 1M elements, vmath vs numpy (SVML): float32 exp 0.17 vs
0.33, log 0.23 vs 0.24, log1p 0.22 vs 0.27, expm1 0.22 vs 0.25, sin 0.30 vs 0.40, cos 0.28 vs 0.40, tan 0.35
vs 0.25, tanh 0.23 vs 0.16, erf 0.39 (scipy: 13.5), pow 2.6 vs 0.42 (numpy's float32 exp, log and tanh err by
up to 2.4, 3.2 and 1.4 ulp); float64 exp 0.57 vs 0.93, log 0.72 vs 0.87, tanh 1.3 vs 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from graphc.errors import CompileError

NAMES = frozenset({"exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "erf", "pow"})

_F64, _F32, _I64, _I32 = ir.DoubleType(), ir.FloatType(), ir.IntType(64), ir.IntType(32)


def emit(builder: ir.IRBuilder, name: str, args: list[ir.Value]) -> ir.Value:
    """A call of the vectorizable ``name`` (one of ``NAMES``) on scalar float or double ``args``, at ``builder``.

    The function's body is added to ``builder.module`` once, as an internal ``alwaysinline`` function.
    """
    if name not in NAMES:
        raise CompileError(f"vmath has no function {name!r}; it has {', '.join(sorted(NAMES))}")
    arity = 2 if name == "pow" else 1
    types = {str(arg.type) for arg in args}
    if len(args) != arity or len(types) != 1 or args[0].type not in (_F32, _F64):
        raise CompileError(f"vmath.{name} takes {arity} argument(s) of one type, float or double; "
                           f"got {', '.join(str(arg.type) for arg in args) or 'none'}")
    return builder.call(_function(builder.module, name, args[0].type), args)


def _function(module: ir.Module, name: str, ty: ir.Type) -> ir.Function:
    double = ty == _F64
    symbol = f"graphc.vmath.{name}.{'f64' if double else 'f32'}"
    if symbol in module.globals:
        return module.globals[symbol]
    fn = ir.Function(module, ir.FunctionType(ty, [ty] * (2 if name == "pow" else 1)), symbol)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    fn.attributes.add("readnone")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    if not double and name in _NATIVE32:
        e32 = _Emitter(builder, _F32)
        builder.ret(_NATIVE32[name](e32, *[_V(e32, arg) for arg in fn.args]).v)
        return fn
    e = _Emitter(builder)
    args = [_V(e, arg) if double else _V(e, e.b.fpext(arg, _F64)) for arg in fn.args]
    if name == "pow":
        result = _pow(e, *args, *((_log_dd, _DOUBLE) if double else (_log_plain, _SINGLE)))
    else:
        result = _ALGORITHMS[name](e, args[0], _DOUBLE if double else _SINGLE)
    e.b.ret(result.v if double else e.b.fptrunc(result.v, _F32))
    return fn


# --- a tiny expression language: operators on _V emit IEEE instructions (never fast-math) ----------------------


def _is_float(ty: ir.Type) -> bool:
    return ty in (_F64, _F32)


class _V:
    """An LLVM double or float (or i64, i32, i1) being computed; Python numbers mix in as constants of its type
    (a float constant rounded to float)."""

    __slots__ = ("e", "v")
    __hash__ = None

    def __init__(self, e: _Emitter, v: ir.Value) -> None:
        self.e, self.v = e, v

    def _lift(self, other: _V | float) -> _V:
        return other if isinstance(other, _V) else _V(self.e, ir.Constant(self.v.type, other))

    def _op(self, float_op: str, int_op: str, other: _V | float, swap: bool = False) -> _V:
        a, b = (self._lift(other), self) if swap else (self, self._lift(other))
        op = float_op if _is_float(self.v.type) else int_op
        return _V(self.e, getattr(self.e.b, op)(a.v, b.v))

    def _cmp(self, op: str, other: _V | float) -> _V:
        b = self._lift(other)
        if not _is_float(self.v.type):
            return _V(self.e, self.e.b.icmp_signed(op, self.v, b.v))
        if op == "!=":  # true for nan, so x != x tests for nan
            return _V(self.e, self.e.b.fcmp_unordered(op, self.v, b.v))
        return _V(self.e, self.e.b.fcmp_ordered(op, self.v, b.v))

    def __add__(self, o): return self._op("fadd", "add", o)
    def __radd__(self, o): return self._op("fadd", "add", o, swap=True)
    def __sub__(self, o): return self._op("fsub", "sub", o)
    def __rsub__(self, o): return self._op("fsub", "sub", o, swap=True)
    def __mul__(self, o): return self._op("fmul", "mul", o)
    def __rmul__(self, o): return self._op("fmul", "mul", o, swap=True)
    def __truediv__(self, o): return self._op("fdiv", "sdiv", o)
    def __rtruediv__(self, o): return self._op("fdiv", "sdiv", o, swap=True)
    def __and__(self, o): return self._op("and_", "and_", o)
    def __or__(self, o): return self._op("or_", "or_", o)
    def __xor__(self, o): return self._op("xor", "xor", o)
    def __rshift__(self, o): return self._op("ashr", "ashr", o)
    def __lshift__(self, o): return self._op("shl", "shl", o)
    def __neg__(self): return _V(self.e, self.e.b.fneg(self.v)) if _is_float(self.v.type) else 0 - self
    def __invert__(self): return _V(self.e, self.e.b.not_(self.v))
    def __lt__(self, o): return self._cmp("<", o)
    def __le__(self, o): return self._cmp("<=", o)
    def __gt__(self, o): return self._cmp(">", o)
    def __ge__(self, o): return self._cmp(">=", o)
    def __eq__(self, o): return self._cmp("==", o)  # type: ignore[override]
    def __ne__(self, o): return self._cmp("!=", o)  # type: ignore[override]


class _Emitter:
    """Builds straight-line double (or float) arithmetic, with the error-free transformations double-doubles
    (or double-floats) need; integers are i64 beside doubles and i32 beside floats."""

    def __init__(self, builder: ir.IRBuilder, ty: ir.Type = _F64) -> None:
        self.b = builder
        self.ty = ty
        self.int_ty = _I64 if ty == _F64 else _I32
        self.mantissa, self.bias = (52, 1023) if ty == _F64 else (23, 127)

    def f(self, x: float) -> _V:
        return _V(self, ir.Constant(self.ty, x))

    def i(self, x: int) -> _V:
        return _V(self, ir.Constant(self.int_ty, x))

    def _intrinsic(self, name: str, *args: _V) -> _V:
        ty = args[0].v.type
        symbol = f"llvm.{name}.{'f64' if ty == _F64 else 'f32'}"
        module = self.b.module
        fn = module.globals.get(symbol) or ir.Function(module, ir.FunctionType(ty, [ty] * len(args)), symbol)
        return _V(self, self.b.call(fn, [a.v for a in args]))

    def fma(self, a: _V, b: _V | float, c: _V | float) -> _V:
        return self._intrinsic("fma", a, a._lift(b), a._lift(c))

    def fabs(self, x: _V) -> _V:
        return self._intrinsic("fabs", x)

    def floor(self, x: _V) -> _V:
        return self._intrinsic("floor", x)

    def rint(self, x: _V) -> _V:
        return self._intrinsic("rint", x)

    def copysign(self, magnitude: _V | float, sign: _V) -> _V:
        return self._intrinsic("copysign", sign._lift(magnitude), sign)

    def select(self, condition: _V, a: _V | float, b: _V | float) -> _V:
        like = a if isinstance(a, _V) else b if isinstance(b, _V) else self.f(a)
        return _V(self, self.b.select(condition.v, like._lift(a).v, like._lift(b).v))

    def bits(self, x: _V) -> _V:
        return _V(self, self.b.bitcast(x.v, self.int_ty))

    def from_bits(self, i: _V) -> _V:
        return _V(self, self.b.bitcast(i.v, self.ty))

    def to_float(self, i: _V) -> _V:
        """An i32 as a float."""
        return _V(self, self.b.sitofp(i.v, _F32))

    def to_double(self, i: _V) -> _V:
        """A small integer (|i| < 2^51) as a double, by placing it in the mantissa of 1.5 * 2^52."""
        return self.from_bits(i + _SHIFT_BITS) - _SHIFT

    def pow2(self, k: _V) -> _V:
        """2^k for an integer k in [-1022, 1023] (double; i64) or [-126, 127] (float; i32)."""
        return self.from_bits((k + self.bias) << self.mantissa)

    def scale(self, y: _V, k: _V) -> _V:
        """y 2^k for k in [-2044, 2046] (float: [-252, 254]), as two factors: 2^1024 (2^128) works and a denormal
        result rounds once."""
        half = k >> 1
        return y * self.pow2(half) * self.pow2(k - half)

    def clamp(self, x: _V, low: float, high: float) -> _V:
        """x limited to [low, high], nan kept (ordered compares are false for nan)."""
        return self.select(x < low, low, self.select(x > high, high, x))

    def poly(self, x: _V, coefficients: tuple[float, ...]) -> _V:
        """sum(c_i x^i) by Horner's rule with fmas."""
        acc = self.f(coefficients[-1])
        for c in reversed(coefficients[:-1]):
            acc = self.fma(acc, x, c)
        return acc

    def two_sum(self, a: _V, b: _V) -> tuple[_V, _V]:
        """s + err = a + b exactly, s = fl(a + b)."""
        s = a + b
        bb = s - a
        return s, (a - (s - bb)) + (b - bb)

    def fast_two_sum(self, a: _V | float, b: _V) -> tuple[_V, _V]:
        """As two_sum, for |a| >= |b| (or a = 0)."""
        s = b._lift(a) + b
        return s, b - (s - a)

    def two_prod(self, a: _V, b: _V | float) -> tuple[_V, _V]:
        """p + err = a * b exactly."""
        p = a * b
        return p, self.fma(a, b, -p)

    def isnan(self, x: _V) -> _V:
        return x != x

    def signbit(self, x: _V) -> _V:
        return self.bits(x) < 0


def _hex(text: str) -> tuple[float, ...]:
    return tuple(float.fromhex(word) for word in text.split())


@dataclass(frozen=True)
class _Tables:
    """Polynomial coefficients (lowest order first) for one precision, and whether results need the extra care
    that keeps a double within 1 ulp: a float rounded from a double 2^-40 off is still correctly rounded."""

    double_double: bool
    trig_limit: float  # sin, cos, tan are nan from this |x| on, where the reduction runs out of pi's 164 bits
    exp: tuple[float, ...]  # (e^r - 1 - r) / r^2 on |r| <= ln2/2, relative to e^r - 1
    log: tuple[float, ...]  # (2 atanh(s)/s - 2) / s^2 in z = s^2 <= 0.0295
    sin: tuple[float, ...]  # (sin(r) - r) / r^3 in z = r^2 <= (pi/4)^2
    cos: tuple[float, ...]  # (cos(r) - 1 + r^2/2) / r^4 in z = r^2 <= (pi/4)^2
    erf_small: tuple[float, ...]  # erf(x)/x - 1 in z = x^2 <= 1
    erf_tail: tuple[float, ...]  # log(erfc(x)/t) + x^2, t = 2/(2+x), in v = (t - 11/24) * 4.8 on x in [1, 6]


_DOUBLE = _Tables(
    double_double=True,
    trig_limit=2.0**100,
    exp=_hex("0x1p-1 0x1.5555555555559p-3 0x1.555555555553fp-5 0x1.111111110f6d5p-7 0x1.6c16c16c1f090p-10 "
             "0x1.a01a01afd64e3p-13 0x1.a01a017bc1ee1p-16 0x1.71ddf877f5bc9p-19 0x1.27e5362feeef6p-22 "
             "0x1.af5e81df84cb0p-26 0x1.1ee88afb054edp-29"),
    log=_hex("0x1.555555555557cp-1 0x1.99999999847c0p-2 0x1.2492493fb0fcfp-2 0x1.c71c52bb102ddp-3 "
             "0x1.7466489ddd60dp-3 0x1.399d151c01c12p-3 0x1.2f51c6018d167p-3"),
    sin=_hex("-0x1.5555555555555p-3 0x1.111111111110cp-7 -0x1.a01a01a018c73p-13 0x1.71de3a5344baep-19 "
             "-0x1.ae64529352df9p-26 0x1.612086694f1f0p-33 -0x1.aa9bd00f92d32p-41"),
    cos=_hex("0x1.5555555555553p-5 -0x1.6c16c16c16131p-10 0x1.a01a019e24a1ep-16 -0x1.27e4f903c7fd7p-22 "
             "0x1.1eea892a59080p-29 -0x1.8ff9c12730a84p-37"),
    erf_small=_hex("0x1.06eba8214db69p-3 -0x1.812746b0379e6p-2 0x1.ce2f21a042b20p-4 -0x1.b82ce3128499cp-6 "
                   "0x1.565bcd0db02e5p-8 -0x1.c02db3d8ed28bp-11 0x1.f9a321a11e60ep-14 -0x1.f4d1df395712cp-17 "
                   "0x1.b9def19e933b0p-20 -0x1.5f1d36c7d1550p-23 0x1.f7a4126c0f561p-27 -0x1.386ac188c2e08p-30 "
                   "0x1.0579acd191cdcp-34"),
    erf_tail=_hex("-0x1.7479de6b5c2b3p-1 0x1.1b38ba7bab23fp-2 0x1.4d6787f3d5cb8p-7 -0x1.97db509cf66a9p-9 "
                  "-0x1.a4f91b13036e1p-12 0x1.90f9c971d2ba5p-14 0x1.0d20b6c3f95bap-16 -0x1.2fcfe2e8fe71fp-18 "
                  "-0x1.43311f2ca0816p-21 0x1.1359236dafe0fp-22 0x1.f2fd94bb39835p-27 -0x1.f5e1ebf9a0b55p-27 "
                  "0x1.197753b68a097p-31 0x1.8f822e8ff26a1p-31 -0x1.c9b3b193366c2p-34 -0x1.a473eba783732p-36 "
                  "0x1.da90debcde536p-38"),
)
_SINGLE = _Tables(
    double_double=False,
    trig_limit=2.0**103,
    exp=_hex("0x1.00000000171a8p-1 0x1.5555557355263p-3 0x1.555554f3680a9p-5 0x1.1110b2178d032p-7 "
             "0x1.6c1766d13b45dp-10 0x1.a16f764fe846ep-13 0x1.a003a78f92218p-16"),
    log=_hex("0x1.555555076c98dp-1 0x1.999a7ccc52afap-2 0x1.24359785df10ap-2 0x1.e3ae1a7001a3fp-3"),
    sin=_hex("-0x1.5555554da387ap-3 0x1.1111087a0bad4p-7 -0x1.a00f3ab4c0cfdp-13 0x1.6cb79e1c8f9c7p-19"),
    cos=_hex("0x1.55555552c3cd3p-5 -0x1.6c16bbb013364p-10 0x1.a012d014d381fp-16 -0x1.247516f036fd5p-22"),
    erf_small=_hex("0x1.06eba82003f1ep-3 -0x1.8127465fb976ap-2 0x1.ce2f0798ace38p-4 -0x1.b829a7a5d0979p-6 "
                   "0x1.5628edefa282fp-8 -0x1.bcbe9a8ee6cd2p-11 0x1.d826924985736p-14 -0x1.4384063987602p-17"),
    erf_tail=_hex("-0x1.7479de63670bap-1 0x1.1b38ba6beadfep-2 0x1.4d6738b712c05p-7 -0x1.97da16fcd6497p-9 "
                  "-0x1.a4bd3a4f5f15dp-12 0x1.900d06f6cdcb4p-14 0x1.05fc5ccb44106p-16 -0x1.13a2a154dfb3dp-18 "
                  "-0x1.6e038459aabc4p-22"),
)
# (2 atanh(s) - 2s - 2s^3/3) / s^5 in z = s^2: the tail of pow's double-double logarithm
_LOG_DD_TAIL = _hex("0x1.9999999999999p-2 0x1.249249249279bp-2 0x1.c71c71c678dd3p-3 0x1.745d17c29915dp-3 "
                    "0x1.3b137e6e5f705p-3 0x1.111cd91d85deap-3 0x1.dec468f244ba2p-4 0x1.e6b5c2701e01cp-4")

_h = float.fromhex
_SHIFT = 1.5 * 2.0**52  # adding it rounds a double below 2^51 to an integer, which then sits in the low mantissa bits
_SHIFT_BITS = 0x4338000000000000
_LOG2E = _h("0x1.71547652b82fep0")
_LN2, _LN2_LO = _h("0x1.62e42fefa39efp-1"), _h("0x1.abc9e3b39803fp-56")  # ln 2 = _LN2 + _LN2_LO
_LN2_HI33, _LN2_LO33 = _h("0x1.62e42feep-1"), _h("0x1.a39ef35793c76p-33")  # 33-bit head: times an exponent, exact
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD
_PIO2 = _hex("0x1.921fb54442d18p+0 0x1.1a62633145c07p-54 -0x1.f1976b7ed8fbcp-110")  # pi/2 to 2^-164
_TWO_OVER_PI = _h("0x1.45f306dc9c883p-1")
_TWO_THIRDS = _hex("0x1.5555555555555p-1 0x1.5555555555555p-55")  # 2/3 as a double-double
_INF, _NAN = math.inf, math.nan


# --- exp, expm1, tanh -----------------------------------------------------------------------------------------


def _exp_reduce(e: _Emitter, x: _V) -> tuple[_V, _V, _V, _V]:
    """x = n ln2 + r + c: n as a double and as an i64, r exact (|r| <= ln2/2), c the tiny rest."""
    shifted = e.fma(x, _LOG2E, _SHIFT)  # x/ln2 rounded to an integer, in the low mantissa bits
    n = shifted - _SHIFT
    k = e.bits(shifted) - _SHIFT_BITS
    r = e.fma(-n, _LN2, x)  # a multiple of 2^-53 below 1/2 in magnitude: exact
    return n, k, r, -n * _LN2_LO


def _exp_kernel(e: _Emitter, x: _V, low: _V | None, t: _Tables) -> _V:
    """e^(x + low), low a correction far below ulp(x); overflow to inf and gradual underflow to 0."""
    if not t.double_double:  # float's range: one scale factor, no correction terms
        _, k, r, _ = _exp_reduce(e, e.clamp(x, -104.0, 89.0))
        return (1.0 + (r + r * r * e.poly(r, t.exp))) * e.pow2(k)
    n, k, r, c = _exp_reduce(e, e.clamp(x, -746.0, 710.0))
    if low is not None:
        c = c + low
    q = r * r * e.poly(r, t.exp)  # e^r - 1 - r
    one, err = e.fast_two_sum(1.0, r)
    tail = err + q
    tail = e.fma(c, one + tail, tail)  # e^(r+c) = e^r (1 + c)
    return e.scale(one + tail, k)


def _exp(e: _Emitter, x: _V, t: _Tables) -> _V:
    return _exp_kernel(e, x, None, t)


def _expm1_parts(e: _Emitter, x: _V, t: _Tables) -> tuple[_V, _V, _V]:
    """expm1(x) = 2^post (s + w) with |w| < |s|/2: x in [-60, 710] (or nan), ``post`` an i64 >= 0.

    expm1(x) = 2^n (1 + em) - 1 for em = e^(r+c) - 1 = r + lo. Per n, the sum is grouped so that its big terms
    add exactly (fast two-sum) and only small ones round: n < 0: (2^n - 1) + 2^n r; 0 <= n < 20:
    2^n ((1 - 2^-n) + r); n >= 20: 2^n (1 + r - 2^-n), with 2^-n joining the small terms.
    """
    n, k, r, c = _exp_reduce(e, x)
    q = r * r * e.poly(r, t.exp)
    lo = q + e.fma(c, r + q, c)  # e^(r+c) - 1 - r
    negative, big = n < 0.0, n >= 20.0
    pre = e.pow2(e.select(negative, k, e.i(0)))  # 2^n for n < 0, else 1
    inverse = e.pow2(-e.select(k > 1000, e.i(1000), k))  # 2^-n, used for n >= 0 only
    head = e.select(negative, pre - 1.0, e.select(big, 1.0, 1.0 - inverse))
    small = lo * pre - e.select(big, inverse, 0.0)
    s, err = e.fast_two_sum(head, r * pre)
    return s, err + small, e.select(negative, e.i(0), k)


def _expm1_single(e: _Emitter, x: _V, t: _Tables) -> _V:
    """expm1 for a float result: 2^n (1 + em) - 1 in plain double loses at most two bits of 53 (n != 0)."""
    n, k, r, _ = _exp_reduce(e, e.clamp(x, -20.0, 89.0))
    em = r + r * r * e.poly(r, t.exp)
    return e.select(n == 0.0, em, e.fma(e.pow2(k), 1.0 + em, -1.0))


def _expm1(e: _Emitter, x: _V, t: _Tables) -> _V:
    if not t.double_double:
        return e.select(x == 0.0, x, _expm1_single(e, x, t))  # -0 stays -0
    s, w, post = _expm1_parts(e, e.clamp(x, -60.0, 710.0), t)
    return e.select(x == 0.0, x, e.scale(s + w, post))


def _tanh(e: _Emitter, x: _V, t: _Tables) -> _V:
    """u/(u+2) for u = expm1(2|x|) (a double-double for double); 1 from |x| = 19.1 on, so |x| is capped at 20."""
    a = e.fabs(x)
    a = e.select(a > 20.0, 20.0, a)
    if not t.double_double:
        u = _expm1_single(e, a + a, t)
        return e.copysign(u / (u + 2.0), x)
    s, w, post = _expm1_parts(e, a + a, t)
    scale = e.pow2(post)  # post <= 58 here
    uh, ul = e.fast_two_sum(s, w)
    uh, ul = uh * scale, ul * scale
    dh, dl = e.two_sum(uh, e.f(2.0))
    dl = dl + ul
    inverse = 1.0 / dh
    q = uh * inverse
    remainder = e.fma(-q, dh, uh) + ul - q * dl  # u - q d, d = dh + dl
    return e.copysign(e.fma(remainder, inverse, q), x)


# --- log, log1p ------------------------------------------------------------------------------------------------


def _log_split(e: _Emitter, x: _V) -> tuple[_V, _V]:
    """x = 2^k (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)) for positive finite x (denormals too): (k, f)."""
    tiny = x < 2.0**-1022
    x = e.select(tiny, x * 2.0**54, x)
    offset = e.bits(x) - _SQRT_HALF_BITS
    k = offset >> 52
    m = e.from_bits(e.bits(x) - (k << 52))
    k = k - e.select(tiny, e.i(54), e.i(0))
    return e.to_double(k), m - 1.0  # m - 1 is exact


def _log_kernel(e: _Emitter, k: _V, f: _V, c: _V | float, t: _Tables) -> _V:
    """k ln2 + log(1 + f) + c, fdlibm's way: log(1+f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f/(2+f)."""
    s = f / (f + 2.0)
    z = s * s
    r = z * e.poly(z, t.log)
    hfsq = 0.5 * f * f
    return k * _LN2_HI33 + (f - (hfsq - (s * (hfsq + r) + (k * _LN2_LO33 + c))))


def _log(e: _Emitter, x: _V, t: _Tables) -> _V:
    k, f = _log_split(e, x)
    result = _log_kernel(e, k, f, 0.0, t)
    result = e.select(x == _INF, _INF, result)
    result = e.select(x == 0.0, -_INF, result)
    result = e.select(x < 0.0, _NAN, result)
    return e.select(e.isnan(x), x, result)


def _log1p(e: _Emitter, x: _V, t: _Tables) -> _V:
    u = x + 1.0
    c = e.select(u >= 2.0, 1.0 - (u - x), x - (u - 1.0)) / u  # the rounding error of 1 + x, relative to u
    k, f = _log_split(e, u)
    result = _log_kernel(e, k, f, c, t)
    result = e.select(x == _INF, _INF, result)
    result = e.select(x == -1.0, -_INF, result)
    result = e.select(x < -1.0, _NAN, result)
    return e.select(e.isnan(x) | (x == 0.0), x, result)


# --- sin, cos, tan ---------------------------------------------------------------------------------------------


def _reduce_pio2(e: _Emitter, x: _V) -> tuple[_V, _V, _V]:
    """x = n pi/2 + rh + rl with |rh| <= pi/4 (a hair more): (rh, rl, n mod 4 as a double)."""
    n = e.rint(x * _TWO_OVER_PI)
    p1, q1 = e.two_prod(n, _PIO2[0])
    a = x - p1  # exact: x and n pi/2 are close
    b, err_b = e.two_sum(a, -q1)
    p2, q2 = e.two_prod(n, _PIO2[1])
    c, err_c = e.two_sum(b, -p2)
    low = (err_b + err_c) - e.fma(n, _PIO2[2], q2)
    rh, rl = e.two_sum(c, low)
    # beyond 2^34 x * 2/pi may round n to a neighbour: a second, small step brings r back to [-pi/4, pi/4]
    n2 = e.rint(e.fma(rh, _TWO_OVER_PI, rl * _TWO_OVER_PI))
    rh, rl = e.fast_two_sum(e.fma(-n2, _PIO2[0], rh), rl - n2 * _PIO2[1])
    quadrant = n - 4.0 * e.floor(n * 0.25) + n2  # (n + n2) mod 4, exact however big n is
    return rh, rl, quadrant - 4.0 * e.floor(quadrant * 0.25)


def _sin_cos(e: _Emitter, rh: _V, rl: _V, t: _Tables) -> tuple[tuple[_V, _V], tuple[_V, _V]]:
    """sin and cos of rh + rl, each as a double-double (the head is the rounded value)."""
    z, z_err = e.two_prod(rh, rh)
    sin_tail = e.fma(rh * z, e.poly(z, t.sin), rl * (1.0 - 0.5 * z))
    half = 0.5 * z
    w = 1.0 - half
    cos_tail = ((1.0 - w) - half) + (z * z * e.poly(z, t.cos) - (rh * rl + 0.5 * z_err))
    return e.fast_two_sum(rh, sin_tail), e.fast_two_sum(w, cos_tail)


def _trig(e: _Emitter, x: _V, t: _Tables, which: str) -> _V:
    rh, rl, quadrant = _reduce_pio2(e, x)
    (sh, sl), (ch, cl) = _sin_cos(e, rh, rl, t)
    odd = (quadrant == 1.0) | (quadrant == 3.0)
    if which == "tan":  # sin/cos, or -cos/sin in odd quadrants, divided with one correction step
        nh, nl = e.select(odd, ch, sh), e.select(odd, cl, sl)
        dh, dl = e.select(odd, sh, ch), e.select(odd, sl, cl)
        inverse = 1.0 / dh
        q = nh * inverse
        q = e.fma(e.fma(-q, dh, nh) + nl - q * dl, inverse, q)
        result = e.select(odd, -q, q)
    else:
        value = e.select(odd, ch, sh) if which == "sin" else e.select(odd, sh, ch)
        negate = quadrant >= 2.0 if which == "sin" else (quadrant == 1.0) | (quadrant == 2.0)
        result = e.select(negate, -value, value)
    if which != "cos":
        result = e.select(x == 0.0, x, result)  # -0 stays -0
    return e.select(e.fabs(x) < t.trig_limit, result, _NAN)  # nan for inf and nan too


def _sin(e: _Emitter, x: _V, t: _Tables) -> _V:
    return _trig(e, x, t, "sin")


def _cos(e: _Emitter, x: _V, t: _Tables) -> _V:
    return _trig(e, x, t, "cos")


def _tan(e: _Emitter, x: _V, t: _Tables) -> _V:
    return _trig(e, x, t, "tan")


# --- erf -------------------------------------------------------------------------------------------------------


def _erf(e: _Emitter, x: _V, t: _Tables) -> _V:
    """x (1 + Y(x^2)) below 1, else 1 - erfc(x) with erfc = t exp(g(t) - x^2), t = 2/(2 + x).

    For double, the rounding errors of x^2, of g - x^2 and of t go into exp's correction term: erfc(1) is
    0.16, so its relative error shows in erf at a sixth of its size.
    """
    a = e.fabs(x)
    small = e.fma(a, e.poly(a * a, t.erf_small), a)
    capped = e.select(a > 6.0, 6.0, a)
    dh, dl = e.two_sum(capped, e.f(2.0))
    tt = 2.0 / dh
    g = e.poly((tt - 11 / 24) * 4.8, t.erf_tail)
    if t.double_double:
        sq, sq_err = e.two_prod(capped, capped)
        y, y_err = e.two_sum(g, -sq)
        t_err = (e.fma(-tt, dh, 2.0) - tt * dl) * 0.5  # 2/(2 + x) = tt (1 + t_err), as tt dh is about 2
        erfc = tt * _exp_kernel(e, y, y_err - sq_err + t_err, t)
    else:
        erfc = tt * _exp_kernel(e, g - capped * capped, None, t)
    return e.copysign(e.select(a < 1.0, small, 1.0 - erfc), x)


# --- pow -------------------------------------------------------------------------------------------------------


def _log_dd(e: _Emitter, x: _V) -> tuple[_V, _V]:
    """log(x) as a double-double accurate to about 2^-64 relative, for positive finite x."""
    k, f = _log_split(e, x)
    dh, dl = e.fast_two_sum(2.0, f)
    sh = f / dh  # s = f / (2 + f) as sh + sl
    sl = (e.fma(-sh, dh, f) - sh * dl) / dh
    zh, zl = e.two_prod(sh, sh)
    zl = e.fma(sh + sh, sl, zl)
    ph, pl = e.two_prod(sh, zh)  # s^3
    pl = e.fma(sh, zl, e.fma(sl, zh, pl))
    th, tl = e.two_prod(ph, _TWO_THIRDS[0])  # 2 s^3 / 3
    tl = e.fma(pl, _TWO_THIRDS[0], e.fma(ph, _TWO_THIRDS[1], tl))
    rest = sh * zh * zh * e.poly(zh, _LOG_DD_TAIL)
    lh, ll = e.fast_two_sum(sh + sh, th)
    ll = ll + ((sl + sl) + (tl + rest))
    kh, kl = e.two_prod(k, _LN2)
    kl = e.fma(k, _LN2_LO, kl)
    nh, nl = e.two_sum(kh, lh)
    return e.fast_two_sum(nh, nl + (kl + ll))


def _log_plain(e: _Emitter, x: _V) -> tuple[_V, _V]:
    """log(x) in double to about 2^-35 relative, with a zero low part: enough for float32's pow (the product with
    y, at most 104 in magnitude for a finite nonzero float result, is then off by 2^-28 at most)."""
    k, f = _log_split(e, x)
    return _log_kernel(e, k, f, 0.0, _SINGLE), e.f(0.0)


def _pow(e: _Emitter, x: _V, y: _V, log: Callable[[_Emitter, _V], tuple[_V, _V]], t: _Tables) -> _V:
    """|x|^y = exp(y log|x|) on sanitized operands, then C99's special cases and the sign of an odd power."""
    ax = e.fabs(x)
    regular = (ax > 0.0) & (ax < _INF)
    finite_y = e.fabs(y) < _INF
    ys = e.select(finite_y, y, 0.0)
    lh, ll = log(e, e.select(regular, ax, 1.0))
    eh, el = e.two_prod(ys, lh)
    el = e.fma(ys, ll, el)
    in_range = e.fabs(eh) <= 800.0  # beyond, exp over- or underflows anyway (and eh may be inf)
    magnitude = _exp_kernel(e, e.select(in_range, eh, e.copysign(800.0, eh)), e.select(in_range, el, 0.0), t)
    integer = e.floor(y) == y  # true for ±inf, which count as even
    odd = integer & (e.floor(y * 0.5) != y * 0.5)
    magnitude = e.select(ax == 0.0, e.select(y < 0.0, _INF, 0.0), magnitude)
    magnitude = e.select(ax == _INF, e.select(y < 0.0, 0.0, _INF), magnitude)
    grows = _V(e, e.b.icmp_unsigned("==", (ax > 1.0).v, (y > 0.0).v))
    magnitude = e.select(~finite_y & ~e.isnan(y), e.select(ax == 1.0, 1.0, e.select(grows, _INF, 0.0)), magnitude)
    result = e.select(e.signbit(x) & odd, -magnitude, magnitude)
    result = e.select((x < 0.0) & (x > -_INF) & finite_y & ~integer, _NAN, result)
    result = e.select(e.isnan(x) | e.isnan(y), x + y, result)
    return e.select((y == 0.0) | (x == 1.0), 1.0, result)


# --- float32 in float: 16 lanes to a 512-bit vector instead of 8 -----------------------------------------------
#
# Each function below takes and returns a float and computes in float (see the module docstring): within 2 ulp
# of the correctly rounded result, as measured over every float.

_F32_SHIFT = 1.5 * 2.0**23  # adding it rounds a float below 2^22 to an integer, in the low mantissa bits
_F32_SHIFT_BITS = 0x4B400000
_F32_LOG2E = _h("0x1.715476p0")
_F32_LN2 = _h("0x1.62e43p-1"), _h("-0x1.05c61p-29")  # ln 2 = hi + lo: hi times an exponent minus x is exact
_F32_LN2_SHORT = _h("0x1.62e4p-1"), _h("0x1.7f7d1cp-20")  # a 15-bit hi: its product with an exponent is exact
_F32_SQRT_HALF_BITS = 0x3F3504F3
_F32_PIO2 = _hex("0x1.921fb6p0 -0x1.777a5cp-25 -0x1.ee59dap-50")  # pi/2 as three floats (72 bits)
_F32_TWO_OVER_PI = _h("0x1.45f306p-1")
_F32_TRIG_LIMIT = 2.0**20  # float sin, cos and tan are nan from here on
_F32_EXPM1 = _hex("0x1p-1 0x1.555554p-3 0x1.5554f4p-5 0x1.1112d2p-7 0x1.6d4048p-10 0x1.9e86f4p-13")
_F32_EXPM1_SHORT = _hex("0x1.fffffep-2 0x1.5554aep-3 0x1.5556f0p-5 0x1.122a72p-7 0x1.6ba49ap-10")  # to 2^-26
_F32_LOG = _hex("-0x1.fffff8p-2 0x1.55555p-2 -0x1.000438p-2 0x1.99a41cp-3 -0x1.5423e8p-3 0x1.226c84p-3 "
                "-0x1.0f5208p-3 0x1.0875p-3 -0x1.38138ep-4")
_F32_SIN = _hex("-0x1.55554p-3 0x1.110534p-7 -0x1.9896c4p-13")
_F32_COS = _hex("0x1.555546p-5 -0x1.6c09cep-10 0x1.9941eep-16")
_F32_TAN = _hex("0x1.55556ep-2 0x1.1109ecp-3 0x1.bb7e02p-5 0x1.56437ep-6 0x1.83b496p-7 -0x1.2c6db4p-10 "
                "0x1.45d856p-8")
_F32_TANH = _hex("-0x1.55554ap-2 0x1.110ddap-3 -0x1.b98108p-5 0x1.5f9082p-6 -0x1.f662fep-8 0x1.c8975p-10")
_F32_TANH_SMALL = 0.75  # below, tanh is the odd polynomial; from here on 1 - 2/(e^2|x| + 1)
_F32_ERF = _hex("0x1.06eba8p-3 -0x1.812742p-2 0x1.ce2dfap-4 -0x1.b80ee8p-6 0x1.54d5a2p-8 -0x1.aafd0ap-11 "
                "0x1.5fff4cp-14")
_F32_ERF_SMALL = 0.9  # below, erf(x) = x (1 + Y(x^2)); from here to 4, 1 - exp(H(x) - x^2)
_F32_ERFC = _hex("-0x1.89fe8p0 -0x1.1c67dp-1 0x1.1c3ce6p-3 -0x1.58c876p-5 0x1.adede4p-7 -0x1.046ba6p-8 "
                 "0x1.2ad4c2p-10 -0x1.3a10d6p-12 0x1.c06688p-15")  # log(erfc(x)) + x^2 in (x - 2.45) / 1.55


def _exp_reduce32(e: _Emitter, x: _V) -> tuple[_V, _V, _V]:
    """x = n ln2 + r + c for |x| < 2^21: n as an i32, r exact (|r| <= ln2/2 and a hair), c = -n ln2_lo."""
    shifted = e.fma(x, _F32_LOG2E, _F32_SHIFT)
    n = shifted - _F32_SHIFT
    r = e.fma(-n, _F32_LN2[0], x)  # exact: see _exp_reduce
    return e.bits(shifted) - _F32_SHIFT_BITS, r, -n * _F32_LN2[1]


def _expm1_reduced32(e: _Emitter, r: _V, c: _V) -> _V:
    """e^(r + c) - 1 - r for the reduced r and its correction c."""
    return e.fma(r * r, e.poly(r, _F32_EXPM1), e.fma(c, r, c))


def _exp32(e: _Emitter, x: _V) -> _V:
    """e^x: 2^n (1 + r + p), the scale in two factors so that overflow and denormal results come out right."""
    k, r, c = _exp_reduce32(e, e.clamp(x, -104.0, 89.0))
    return e.scale(1.0 + (r + _expm1_reduced32(e, r, c)), k)


def _expm1_32(e: _Emitter, x: _V) -> _V:
    """2^n (1 + r + p) - 1 = (2^n r + (2^n - 1)) + 2^n p: the first sum rounds once (fma) and p is small.

    2^n - 1 is exact for |n| <= 24; beyond, the -1 (n > 24) or the 2^n (n < -24) moves to the small part.
    n = 128 scales by 2^127 and then by 2, so that results just below the overflow threshold stay finite.
    """
    k, r, c = _exp_reduce32(e, e.clamp(x, -18.0, 88.8))
    p = _expm1_reduced32(e, r, c)
    top = k > 127
    t = e.pow2(e.select(top, e.i(127), k))
    big, tiny = k > 24, k < -24
    head = e.select(tiny, -1.0, e.select(big, t, t - 1.0))
    rest = e.select(tiny, t, e.select(big, -1.0, 0.0))
    result = (e.fma(t, r, head) + e.fma(t, p, rest)) * e.select(top, 2.0, 1.0)
    return e.select(x == 0.0, x, result)  # -0 stays -0


def _exp_short32(e: _Emitter, x: _V, low: _V | float = 0.0) -> _V:
    """e^(x + low) to about 1 ulp, for x in [-80, 80] (no overflow, no denormals), low tiny: where errors are
    damped (tanh, erf), the reduced argument can round and the polynomial be shorter."""
    shifted = e.fma(x, _F32_LOG2E, _F32_SHIFT)
    n = shifted - _F32_SHIFT
    r = e.fma(-n, _F32_LN2[1], e.fma(-n, _F32_LN2[0], x)) + low
    return (1.0 + e.fma(r * r, e.poly(r, _F32_EXPM1_SHORT), r)) * e.pow2(e.bits(shifted) - _F32_SHIFT_BITS)


def _tanh32(e: _Emitter, x: _V) -> _V:
    """a + a^3 T(a^2) for a = |x| < 0.75, else 1 - 2/(e^2a + 1) (1 from a = 9.01 on; a is capped at 10)."""
    a = e.fabs(x)
    small = e.fma(a * (a * a), e.poly(a * a, _F32_TANH), a)
    big = 1.0 - 2.0 / (_exp_short32(e, e.select(a > 10.0, 10.0, a) * 2.0) + 1.0)
    return e.copysign(e.select(a < _F32_TANH_SMALL, small, big), x)


def _log_split32(e: _Emitter, x: _V) -> tuple[_V, _V]:
    """x = 2^k (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)) for positive finite x (denormals too): k as a float,
    and f (exact)."""
    tiny = x < 2.0**-126
    x = e.select(tiny, x * 2.0**23, x)
    k = (e.bits(x) - _F32_SQRT_HALF_BITS) >> 23
    m = e.from_bits(e.bits(x) - (k << 23))
    k = k - e.select(tiny, e.i(23), e.i(0))
    return e.to_float(k), m - 1.0


def _log_kernel32(e: _Emitter, k: _V, f: _V, c: _V | float) -> _V:
    """k ln2 + log(1 + f) + c, log(1 + f) = f + f^2 L(f): k ln2_hi + (f + (f^2 L(f) + k ln2_lo + c)), the first
    product exact, so that only the last two sums round (the first of them far below the result's ulp if k != 0)."""
    p = e.fma(f * f, e.poly(f, _F32_LOG), e.fma(k, _F32_LN2_SHORT[1], c))
    return e.fma(k, _F32_LN2_SHORT[0], f + p)


def _log32(e: _Emitter, x: _V) -> _V:
    k, f = _log_split32(e, x)
    result = _log_kernel32(e, k, f, 0.0)
    result = e.select(x == _INF, _INF, result)
    result = e.select(x == 0.0, -_INF, result)
    result = e.select(x < 0.0, _NAN, result)
    return e.select(e.isnan(x), x, result)


def _log1p32(e: _Emitter, x: _V) -> _V:
    """log(2^k (1 + f)) = log(1 + x) for u = 1 + x rounded = 2^k m, f = (1 + x) 2^-k - 1 in one fma: exact, as
    x 2^-k and 2^-k - 1 are multiples of 2^-25 (k >= 0) or of 2^k ulp(x) (k < 0) and |f| < 0.42, so the
    rounding error of u costs nothing. 2^-k is 2^(2-k)/4, as k reaches 128."""
    u = x + 1.0
    k = (e.bits(u) - _F32_SQRT_HALF_BITS) >> 23
    scale = e.pow2(2 - k) * 0.25
    result = _log_kernel32(e, e.to_float(k), e.fma(x, scale, scale - 1.0), 0.0)
    result = e.select(x == _INF, _INF, result)
    result = e.select(x == -1.0, -_INF, result)
    result = e.select(x < -1.0, _NAN, result)
    return e.select(e.isnan(x) | (x == 0.0), x, result)


def _reduce_pio2_32(e: _Emitter, x: _V) -> tuple[_V, _V, _V]:
    """x = n pi/2 + rh + rl with |rh| <= pi/4 (1.03 pi/4 at |x| = 2^20) as a float pair, for |x| < 2^20:
    (rh, rl, n as an i32).

    x - n pi_1 is exact, n pi_2 is split exactly (fma) and subtracted exactly (two-sum), and n pi_3 joins the low
    part. n rounds x 2/pi with 2/pi as a float, off by up to n 2^-24: that is what bounds |x|.
    """
    shifted = e.fma(x, _F32_TWO_OVER_PI, _F32_SHIFT)
    n = shifted - _F32_SHIFT
    r = e.fma(-n, _F32_PIO2[0], x)  # exact
    p, p_err = e.two_prod(n, _F32_PIO2[1])
    rh, err = e.two_sum(r, -p)
    rh, rl = e.fast_two_sum(rh, e.fma(-n, _F32_PIO2[2], err - p_err))
    return rh, rl, e.bits(shifted) - _F32_SHIFT_BITS


def _trig32(e: _Emitter, x: _V, which: str) -> _V:
    """sin(r) = r + r^3 S(r^2), cos(r) = 1 - r^2/2 + r^4 C(r^2), tan(r) = r + r^3 T(r^2) and -1/tan(r) by quadrant,
    each with the low part rl of r added to first order; -1/t is corrected for the rounding of t."""
    rh, rl, n = _reduce_pio2_32(e, x)
    z = rh * rh
    if which == "tan":
        tail = e.fma(rh * z, e.poly(z, _F32_TAN), e.fma(z, rl, rl))
        t = rh + tail
        inverse = -1.0 / t
        inverse = e.fma(inverse * inverse, (rh - t) + tail, inverse)  # -1/(t + dt) = -1/t + dt/t^2
        result = e.select((n & 1) == 1, inverse, t)
    else:
        sin = rh + e.fma(rh * z, e.poly(z, _F32_SIN), e.fma(-0.5 * z, rl, rl))
        cos = e.fma(z, e.fma(z, e.poly(z, _F32_COS), -0.5), 1.0) - rh * rl
        if which == "cos":
            n = n + 1  # cos(x) = sin(x + pi/2)
        value = e.select((n & 1) == 1, cos, sin)
        result = e.from_bits(e.bits(value) ^ ((n & 2) << 30))  # negated in quadrants 2 and 3
    if which != "cos":
        result = e.select(x == 0.0, x, result)  # -0 stays -0
    return e.select(e.fabs(x) < _F32_TRIG_LIMIT, result, _NAN)  # nan for inf and nan too


def _erf32(e: _Emitter, x: _V) -> _V:
    """a (1 + Y(a^2)) for a = |x| < 0.9, else 1 - exp(H(a) - a^2) (1 from a = 3.92 on; a is capped at 4)."""
    a = e.fabs(x)
    small = e.fma(a, e.poly(a * a, _F32_ERF), a)
    capped = e.select(a > 4.0, 4.0, a)
    square, square_err = e.two_prod(capped, capped)
    erfc = _exp_short32(e, e.poly((capped - 2.45) * (1 / 1.55), _F32_ERFC) - square, -square_err)
    return e.copysign(e.select(a < _F32_ERF_SMALL, small, 1.0 - erfc), x)


_NATIVE32: dict[str, Callable[[_Emitter, _V], _V]] = {
    "exp": _exp32, "log": _log32, "log1p": _log1p32, "expm1": _expm1_32, "tanh": _tanh32, "erf": _erf32,
    "sin": lambda e, x: _trig32(e, x, "sin"), "cos": lambda e, x: _trig32(e, x, "cos"),
    "tan": lambda e, x: _trig32(e, x, "tan"),
}


_ALGORITHMS: dict[str, Callable[[_Emitter, _V, _Tables], _V]] = {
    "exp": _exp, "log": _log, "log1p": _log1p, "expm1": _expm1, "sin": _sin, "cos": _cos, "tan": _tan,
    "tanh": _tanh, "erf": _erf,
}
