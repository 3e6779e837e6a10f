"""Pure ops on register values (arith.*, math.*, vec.*): each op name maps to a builder that
takes the op and the launch and gives the numpy function computing the op's results.

Semantics are the op docstrings': integers wrap; division truncates toward zero (by zero it
divides by 1: the dividend, and a remainder of 0, as the backends' code does); wide shifts give 0 (or -1
for a negative signed value shifted right); float min/max are IEEE minNum/maxNum; math is
computed in float32 for f16/bf16/fp8/f32 (float64 for f64) and rounded to the element type.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...ir.types import ScalarType, VectorType, element_type
from . import numerics

# -- integers -------------------------------------------------------------------------------------


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    zero = b == 0
    divisor = np.where(zero, 1, b).astype(b.dtype)
    quotient = a // divisor
    if np.issubdtype(a.dtype, np.signedinteger):  # floor to trunc: step toward zero when inexact and signs differ
        inexact = (a - quotient * divisor) != 0
        quotient = np.where(inexact & ((a < 0) != (divisor < 0)), quotient + 1, quotient).astype(a.dtype)
    return np.where(zero, a, quotient)   # (by zero: divided by 1, as the backends do: lowering._safe_divisor)


def _int_rem(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    zero = b == 0
    divisor = np.where(zero, 1, b).astype(b.dtype)
    remainder = a - _int_div(a, divisor) * divisor
    return np.where(zero, a.dtype.type(0), remainder)


def _shift_amount(b: np.ndarray, bits: int):
    """Amounts as unsigned (a negative amount is huge), and whether each is at least the bit width."""
    amount = b.astype(np.uint64)
    return np.minimum(amount, bits - 1), amount >= bits


def _shl(bits: int):
    def shl(a, b):
        amount, wide = _shift_amount(b, bits)
        return np.where(wide, 0, a << amount.astype(a.dtype)).astype(a.dtype)
    return shl


def _shr(bits: int):
    def shr(a, b):
        amount, wide = _shift_amount(b, bits)
        shifted = a >> amount.astype(a.dtype)   # a signed shift by bits-1 already gives 0 or -1
        if np.issubdtype(a.dtype, np.signedinteger):
            return shifted
        return np.where(wide, 0, shifted).astype(a.dtype)
    return shr


_INT_BINARY = {
    "arith.add": np.add, "arith.sub": np.subtract, "arith.mul": np.multiply,
    "arith.div": _int_div, "arith.rem": _int_rem, "arith.min": np.minimum, "arith.max": np.maximum,
    "arith.and": np.bitwise_and, "arith.or": np.bitwise_or, "arith.xor": np.bitwise_xor,
}
_FLOAT_BINARY = {
    "arith.add": np.add, "arith.sub": np.subtract, "arith.mul": np.multiply, "arith.div": np.divide,
    "arith.rem": np.fmod, "arith.min": lambda a, b: _min_number(a, b), "arith.max": lambda a, b: _max_number(a, b),
    "math.pow": np.power,
}


def _min_number(a, b):
    """PTX's min: -0.0 below +0.0 (as minimumNumber orders them), and a NaN operand, quiet or signalling, gives the
    other operand. numpy's fmin gave either zero, by lane (its SIMD loop and its scalar tail differ), so one launch
    gave -0.0 in some lanes and +0.0 in others; and x86's C fmin gives a NaN for a signalling one (IEEE 754-2008's
    minNum), where an H100 gave the other operand (f64 and bf16: the sixty-sixth session's probe)."""
    both_zero = (a == 0) & (b == 0)
    return _number_of(a, b, np.where(both_zero, np.where(np.signbit(a), a, b), np.fmin(a, b)))


def _max_number(a, b):
    both_zero = (a == 0) & (b == 0)
    return _number_of(a, b, np.where(both_zero, np.where(np.signbit(a), b, a), np.fmax(a, b)))


def _number_of(a, b, result):
    """result (fmin's or fmax's), but b where a is a NaN and a where b is one (both NaN: a NaN). fmin and fmax give
    a NaN only for two NaNs or a signalling one: where none is NaN, result is right as it is."""
    if not np.isnan(result).any():
        return result
    return np.where(np.isnan(a), b, np.where(np.isnan(b), a, result))


_INT_UNARY = {"arith.neg": np.negative, "arith.not": np.invert, "math.abs": np.abs}

_FLOAT_UNARY = {
    "arith.neg": np.negative, "math.abs": np.abs, "math.exp": np.exp, "math.exp2": np.exp2, "math.log": np.log,
    "math.log2": np.log2, "math.sqrt": np.sqrt, "math.rsqrt": lambda x: np.reciprocal(np.sqrt(x)),
    "math.floor": np.floor, "math.ceil": np.ceil, "math.trunc": np.trunc, "math.round": np.rint,
    "math.sin": np.sin, "math.cos": np.cos, "math.tanh": np.tanh, "math.exp2_ftz": lambda x: _flushed(np.exp2(x)),
}


def _flushed(x):
    """x with the values under the smallest normal f32 (in magnitude) set to 0 (of x's sign)."""
    return np.where(np.abs(x) < np.float32(2.0 ** -126), x * 0, x)


def _on_bits(fn: Callable, bits: int) -> Callable:
    """An integer function applied to i1 values: computed on 0/1 bytes, then reduced mod 2."""
    def on_bits(*xs):
        return (fn(*(x.astype(np.uint8) for x in xs)) & 1).astype(bool)
    return on_bits


def _in_precision(fn: Callable, elem: ScalarType, name: str) -> Callable:
    """A float function computed in float32 for f16/bf16/fp8 and rounded back to elem, a NaN result NVIDIA's: the
    canonical one for f32, f16 and bf16 (_canonical), an operand's for f64 op `name` (_f64_nans)."""
    if elem.name == "f16":
        return lambda *xs: _canonical(fn(*(x.astype(np.float32) for x in xs)).astype(np.float16), elem)
    if elem.name == "bf16":
        return lambda *xs: _canonical(numerics.round_to(elem, fn(*xs)), elem)
    if numerics.needs_rounding(elem):
        return lambda *xs: numerics.round_to(elem, fn(*xs))
    if elem.name == "f32":
        return lambda *xs: _canonical(fn(*xs), elem)
    if elem.name == "f64" and name in _F64_PASSING:
        return _f64_nans(fn, first=name == "arith.div")
    return fn


def _f64_nans(fn: Callable, first: bool) -> Callable:
    """fn on f64 with NVIDIA's NaNs (an H100, session66-2026-12-08-nans-h100.txt): a NaN operand passes on, quieted,
    with its sign (-x and abs(x) too); of two, the later one's (fma's last; division's, a software sequence, the
    first's: the compiler may swap a commutative op's operands, so the GPU is not bound to it); a NaN made of numbers
    (inf - inf) is 0xFFF8000000000000. numpy's depended on the host's libm (fma)."""
    def apply(*xs):
        result = fn(*xs)
        nan = np.isnan(result)
        if not nan.any():
            return result
        passed = np.where(nan, _F64_MADE_NAN, result)
        for x in (reversed(xs) if first else xs):   # the winner last
            passed = np.where(nan & np.isnan(x), numerics.quiet(x), passed)
        return passed
    return apply


_F64_MADE_NAN = np.uint64(0xFFF8000000000000).view(np.float64)
# (f64 ops whose NaNs were compared with the GPU's, fma's in _fma; math functions, rem and pow are left as numpy
# gives them)
_F64_PASSING = frozenset({"arith.add", "arith.sub", "arith.mul", "arith.div", "arith.min", "arith.max", "arith.neg",
                          "math.abs", "math.sqrt", "math.floor"})


# NVIDIA's f32, f16 and bf16 arithmetic gives one NaN whatever its operands' (an H100: inf - inf, inf · 0, 0 / 0,
# sqrt(-inf), -NaN + 0, and -x and abs(x) of a NaN too: benchmarks/results/session65-2026-12-07-interpreter-vs-gpu-
# h100.txt and session66-2026-12-08-nans-h100.txt), where numpy gives x86's 0xFFC00000 or keeps an operand's.
# math.copysign is bit operations (frontend), exact on both.
def _canonical(x: np.ndarray, elem: ScalarType) -> np.ndarray:
    """x, values of elem (bf16's held in float32), with every NaN NVIDIA's canonical NaN of elem."""
    nan = np.isnan(x)
    return np.where(nan, numerics.canonical_nan(elem.name), x) if nan.any() else x


def binary_function(name: str, elem: ScalarType) -> Callable:
    """The numpy function of binary op `name` on elements of type elem."""
    if elem.is_float:
        return _in_precision(_FLOAT_BINARY[name], elem, name)
    if name == "arith.shl":
        fn = _shl(elem.bits)
    elif name == "arith.shr":
        fn = _shr(elem.bits)
    else:
        fn = _INT_BINARY[name]
    return _on_bits(fn, 1) if elem.is_bool else fn


def _binary(op, launch):
    return binary_function(op.name, element_type(op.result.type))


def _unary(op, launch):
    elem = element_type(op.result.type)
    if elem.is_float:
        return _in_precision(_FLOAT_UNARY[op.name], elem, op.name)
    if elem.is_bool and op.name != "arith.not":
        return _on_bits(_INT_UNARY[op.name], 1)
    return _INT_UNARY[op.name]


def _fma(op, launch):
    elem = element_type(op.result.type)
    if elem.name in ("f32", "f16", "bf16"):
        return lambda a, b, c: _canonical(numerics.fma(elem, a, b, c), elem)
    if elem.name == "f64":
        return _f64_nans(lambda a, b, c: numerics.fma(elem, a, b, c), first=False)
    return lambda a, b, c: numerics.fma(elem, a, b, c)


# -- comparisons, select, conversions, constants --------------------------------------------------
_COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
            "gt": np.greater, "ge": np.greater_equal}


def _cmp(op, launch):
    # numpy's comparisons are IEEE's: false when either side is NaN, except `!=`.
    return _COMPARE[op.attrs["pred"]]


def _select(op, launch):
    cond, choice = op.operands[0].type, op.operands[1].type
    if isinstance(choice, VectorType) and not isinstance(cond, VectorType):
        return lambda c, a, b: np.where(c[:, None], a, b)
    return np.where


def _cast(op, launch):
    src, dst = op.operands[0].type, op.result.type
    return lambda x: numerics.cast(src, dst, x)


def _bitcast(op, launch):
    src, dst = op.operands[0].type, op.result.type
    return lambda x: numerics.bitcast(src, dst, x)


def _constant(op, launch):
    t = op.result.type
    shape = (launch.nthreads, t.count) if isinstance(t, VectorType) else (launch.nthreads,)
    value = np.full(shape, numerics.from_python(t, op.attrs["value"]), numerics.value_dtype(t))
    return lambda: value


# -- vectors --------------------------------------------------------------------------------------
def _splat(op, launch):
    count = op.result.type.count
    return lambda x: np.repeat(x[:, None], count, axis=1)


def _vec_from(op, launch):
    return lambda *xs: np.stack(xs, axis=1)


def _extract(op, launch):
    index = op.attrs["index"]
    return lambda v: v[:, index].copy()


def _insert(op, launch):
    index = op.attrs["index"]

    def insert(v, x):
        out = v.copy()
        out[:, index] = x
        return out
    return insert


PURE = {
    **{name: _binary for name in (*_FLOAT_BINARY, "arith.and", "arith.or", "arith.xor", "arith.shl", "arith.shr")},
    **{name: _unary for name in (*_FLOAT_UNARY, "arith.not")},
    "math.fma": _fma, "arith.cmp": _cmp, "arith.select": _select, "arith.cast": _cast,
    "arith.bitcast": _bitcast, "arith.constant": _constant,
    "vec.splat": _splat, "vec.from": _vec_from, "vec.extract": _extract, "vec.insert": _insert,
}
