"""The argument reduction before the GPUs' approximate sine and cosine.

NVIDIA's sin.approx/cos.approx and AMD's v_sin/v_cos are accurate for arguments in [-pi, pi] only: near 2**31 they gave
0.0 and 1.0 where sin and cos are 0.97 and 0.24. Every f32 argument is first reduced modulo 2 pi, the result within
half an f32 ulp of the exact remainder or about (1.2e-7 near pi; llvmlite's JIT of this LLVM on the host, tested):
- up to pi, x itself (one compare: the approximations hold there);
- below 2**17, in f32: k = rint(x / 2 pi), and x - k 2 pi by three fmas over 2 pi as three f32s (each fma's exact
  product leaves a small true difference, rounded once). On an H100 the f64 form below cost 4.4x in 64 chained sines
  a thread (310 against 71 us), being bound by f64 throughput;
- below 2**24, in f64: the same with two fmas over 2 pi as two doubles (k < 2**22);
- from 2**24 on, x is m 2**e with m < 2**24 and 1 <= e <= 104, so x mod 2 pi is m (2**e mod 2 pi) mod 2 pi: a table
  holds 2**e mod 2 pi as two doubles, and m times it is reduced as above;
- infinities and NaN pass unchanged (the approximations give NaN for them).
The table and 2 pi are computed here from pi to 320 bits (Machin's formula in integers), not copied."""
from __future__ import annotations

import struct
from fractions import Fraction
from functools import lru_cache

from .llvm_text import float_literal
from .. import ir

_BITS = 320          # the fixed point of pi below: 2**e mod 2 pi for e <= 104 keeps more than 200 bits
_FIRST_DOUBLE = 17   # 2**17: from here on the reduction is in f64 (below, three fmas in f32 keep it to ~3e-7)
_FIRST_FAR = 24      # 2**24: from here on an f32 is an integer, m 2**e with e >= 1
_LAST_EXPONENT = 104  # the largest finite f32 is (2**24 - 1) 2**104


def _arctan_inverse(n: int, scale: int) -> int:
    """arctan(1 / n) * scale, in integers (the alternating series to its last nonzero term)."""
    total, term, k = 0, scale // n, 0
    while term:
        total += term // (2 * k + 1) * (-1) ** k
        term //= n * n
        k += 1
    return total


@lru_cache(maxsize=None)
def _two_pi() -> Fraction:
    """2 pi to about 2**-310 (Machin: pi = 16 arctan 1/5 - 4 arctan 1/239; the 16 guard bits absorb the floors)."""
    scale = 1 << (_BITS + 16)
    pi = 16 * _arctan_inverse(5, scale) - 4 * _arctan_inverse(239, scale)
    return Fraction(2 * pi, scale)


def _as_two_doubles(value: Fraction) -> tuple[float, float]:
    high = float(value)
    return high, float(value - Fraction(high))


@lru_cache(maxsize=None)
def table() -> list[tuple[float, float]]:
    """2**e mod 2 pi as (high, low) doubles, for e = 1 .. 104."""
    two_pi = _two_pi()
    rows = []
    for e in range(1, _LAST_EXPONENT + 1):
        power = Fraction(1 << e)
        rows.append(_as_two_doubles(power - (power // two_pi) * two_pi))
    return rows


def _single(value: Fraction) -> float:
    """value rounded to the nearest f32 (to nearest, ties to even: struct's 'f')."""
    return struct.unpack("f", struct.pack("f", float(value)))[0]


def _single_below(value: Fraction) -> float:
    """The largest f32 not above value (a positive one)."""
    nearest = _single(value)
    if Fraction(nearest) <= value:
        return nearest
    bits = struct.unpack("I", struct.pack("f", nearest))[0]
    return struct.unpack("f", struct.pack("I", bits - 1))[0]


def _as_three_singles(value: Fraction) -> tuple[float, float, float]:
    first = _single(value)
    second = _single(value - Fraction(first))
    return first, second, _single(value - Fraction(first) - Fraction(second))


def _double(value: float) -> str:
    return float_literal(value, ir.f64)


def _helper(lw) -> str:
    """Define @__skc_reduce_angle (float -> float, x mod 2 pi in about [-pi, pi]) and its table, once a module."""
    name = "__skc_reduce_angle"
    if name in lw.module.declarations:
        return f"@{name}"
    space = lw.spaces["const"]
    for part, values in (("high", [h for h, _ in table()]), ("low", [lo for _, lo in table()])):
        entries = ", ".join(f"double {_double(v)}" for v in values)
        lw.module.globals.append(f"@__skc_angle_{part} = internal addrspace({space}) constant "
                                 f"[{len(values)} x double] [{entries}], align 8")
    for ty, suffix in (("float", "f32"), ("double", "f64")):
        lw.module.declare(f"llvm.fma.{suffix}", f"{ty} @llvm.fma.{suffix}({ty}, {ty}, {ty})")
        lw.module.declare(f"llvm.rint.{suffix}", f"{ty} @llvm.rint.{suffix}({ty})")
    lw.module.declare("llvm.fabs.f32", "float @llvm.fabs.f32(float)")
    two_pi_high, two_pi_low = _as_two_doubles(_two_pi())
    inverse = float(1 / _two_pi())
    count = len(table())
    singles = _as_three_singles(_two_pi())
    single_inverse = _single(1 / _two_pi())
    body = f"""define internal float @{name}(float %x) alwaysinline {{
entry:
  %a = call float @llvm.fabs.f32(float %x)
  %inside = fcmp ole float %a, {float_literal(_single_below(_two_pi() / 2), ir.f32)}
  br i1 %inside, label %done, label %outside
outside:
  %single = fcmp olt float %a, {float_literal(2.0 ** _FIRST_DOUBLE, ir.f32)}
  br i1 %single, label %f32, label %wide
f32:
  %fturns = fmul float %x, {float_literal(single_inverse, ir.f32)}
  %fk = call float @llvm.rint.f32(float %fturns)
  %negfk = fneg float %fk
  %f1 = call float @llvm.fma.f32(float %negfk, float {float_literal(singles[0], ir.f32)}, float %x)
  %f2 = call float @llvm.fma.f32(float %negfk, float {float_literal(singles[1], ir.f32)}, float %f1)
  %f3 = call float @llvm.fma.f32(float %negfk, float {float_literal(singles[2], ir.f32)}, float %f2)
  br label %done
wide:
  %near = fcmp olt float %a, {float_literal(2.0 ** _FIRST_FAR, ir.f32)}
  br i1 %near, label %small, label %large
small:
  %xd = fpext float %x to double
  br label %reduce
large:
  %bits = bitcast float %x to i32
  %biased = lshr i32 %bits, 23
  %exponent = and i32 %biased, 255
  %finite = icmp ult i32 %exponent, 255
  %row = sub i32 %exponent, {127 + 23 + 1}
  %index = select i1 %finite, i32 %row, i32 0
  %fraction = and i32 %bits, 8388607
  %integer = or i32 %fraction, 8388608
  %magnitude = uitofp i32 %integer to double
  %negative = icmp slt i32 %bits, 0
  %negated = fneg double %magnitude
  %m = select i1 %negative, double %negated, double %magnitude
  %high_at = getelementptr inbounds [{count} x double], ptr addrspace({space}) @__skc_angle_high, i32 0, i32 %index
  %low_at = getelementptr inbounds [{count} x double], ptr addrspace({space}) @__skc_angle_low, i32 0, i32 %index
  %high = load double, ptr addrspace({space}) %high_at, align 8
  %low = load double, ptr addrspace({space}) %low_at, align 8
  %yh = fmul double %m, %high
  %negyh = fneg double %yh
  %error = call double @llvm.fma.f64(double %m, double %high, double %negyh)
  %yl = call double @llvm.fma.f64(double %m, double %low, double %error)
  br label %reduce
reduce:
  %y = phi double [ %xd, %small ], [ %yh, %large ]
  %tail = phi double [ 0.0, %small ], [ %yl, %large ]
  %keep = phi i1 [ true, %small ], [ %finite, %large ]
  %turns = fmul double %y, {_double(inverse)}
  %k = call double @llvm.rint.f64(double %turns)
  %negk = fneg double %k
  %r1 = call double @llvm.fma.f64(double %negk, double {_double(two_pi_high)}, double %y)
  %r2 = call double @llvm.fma.f64(double %negk, double {_double(two_pi_low)}, double %r1)
  %r3 = fadd double %r2, %tail
  %r = fptrunc double %r3 to float
  %kept = select i1 %keep, float %r, float %x
  br label %done
done:
  %out = phi float [ %x, %entry ], [ %f3, %f32 ], [ %kept, %reduce ]
  ret float %out
}}"""
    return lw.module.define(name, body)


def reduced(lw, x: str) -> str:
    """x (an f32 value's name) reduced modulo 2 pi into about [-pi, pi], for the approximate sine and cosine."""
    return lw.text.value(f"call float {_helper(lw)}(float {x})")


def after_reduction(approximation):
    """A target's approximate sine or cosine (lw, x) -> name, given x reduced modulo 2 pi first."""
    return lambda lw, x: approximation(lw, reduced(lw, x))
