"""Constant folding: the value of an arith op on constant operands, by the op's one-line definition.

Integers are Python ints kept in their type's range (iN signed, uN and i1 unsigned) and
wrap at the type's width. f32 and f64 are Python floats holding a value of that format,
computed in numpy's float32/float64 or, where numpy would round twice, exactly. f16, bf16
and fp8 are never folded: numpy has no bf16 or fp8, and their rounding is the backend's
business. Neither are the transcendental `math.*` ops (libm results differ by an ulp
between hosts and GPUs) nor `math.rsqrt` (approximate by definition).

A folder returns None where it declines: division by zero (target-specific), a result
whose meaning the op's definition leaves open, or a type it does not model exactly.
"""
from __future__ import annotations

import math
import operator
import struct
from fractions import Fraction
from typing import Callable, Optional, Union

import numpy as np

from ..core import Op
from ..types import ScalarType, element_type

Number = Union[int, float]


# -- values of a type ----------------------------------------------------------------------
def wrap_int(value: int, elem: ScalarType) -> int:
    """`value` wrapped into elem's range: two's complement for iN, modulo 2**N for uN and i1."""
    mask = (1 << elem.bits) - 1
    if elem.is_signed:
        half = 1 << (elem.bits - 1)
        return ((value + half) & mask) - half
    return value & mask


def _round_f64(exact: Fraction) -> Optional[float]:
    try:
        return float(exact)  # CPython rounds int / int correctly (to nearest, ties to even)
    except OverflowError:
        return None


def _round_f32(exact: Fraction) -> Optional[float]:
    """Round once to f32: round to odd in f64 first, then to f32 (Boldo & Melquiond, 2008: exact when 53 >= 24 + 2)."""
    nearest = _round_f64(exact)
    if nearest is None:
        return None
    if Fraction(nearest) != exact and _f64_bits(nearest) & 1 == 0:
        nearest = math.nextafter(nearest, math.inf if exact > nearest else -math.inf)
    with np.errstate(all="ignore"):
        return float(np.float32(nearest))


def _f64_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


# scalar name -> (numpy type computing in that format, exact rational -> nearest value of the format)
FLOAT_FORMATS: dict[str, tuple[type, Callable]] = {
    "f32": (np.float32, _round_f32),
    "f64": (np.float64, _round_f64),
}


def normalize(value, elem: ScalarType) -> Optional[Number]:
    """What a constant's attribute means in type elem, or None for a type that is not folded."""
    if elem.is_int:
        return wrap_int(int(value), elem)
    if elem.name not in FLOAT_FORMATS:
        return None
    numpy_type, _ = FLOAT_FORMATS[elem.name]
    if isinstance(value, int):
        # an int attribute on a float constant means what the interpreter and the backends read: float(value), then
        # rounded to the format (twice for f32 past 2**53: the frontend writes such ints as floats rounded to odd)
        try:
            value = float(value)
        except OverflowError:
            return None
    with np.errstate(all="ignore"):
        return float(numpy_type(value))


def constant_value(op: Op) -> Optional[Number]:
    """The value of an `arith.constant` op (one lane of a splat), or None where it is not folded."""
    return normalize(op.attrs["value"], element_type(op.result.type))


# -- integer semantics ---------------------------------------------------------------------
def _int_div(a: int, b: int, elem) -> Optional[int]:
    if b == 0:
        return None  # PTX ISA div: division by zero gives an unspecified, machine-specific value
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _int_rem(a: int, b: int, elem) -> Optional[int]:
    quotient = _int_div(a, b, elem)
    return None if quotient is None else a - b * quotient


def _shift_amount(b: int, elem) -> int:
    """Shift amounts are read unsigned (as PTX's shl/shr take a u32 amount): -1 is a wide shift."""
    return b & ((1 << elem.bits) - 1)


def _shl(a: int, b: int, elem) -> int:
    amount = _shift_amount(b, elem)
    return 0 if amount >= elem.bits else a << amount


def _shr(a: int, b: int, elem) -> int:
    # Python's >> is arithmetic; unsigned values are non-negative, so it is logical for them.
    # A wide shift saturates: all sign bits for iN, 0 for uN.
    return a >> min(_shift_amount(b, elem), elem.bits)


INT_OPS: dict[str, Callable] = {
    "arith.add": lambda a, b, t: a + b,
    "arith.sub": lambda a, b, t: a - b,
    "arith.mul": lambda a, b, t: a * b,
    "arith.div": _int_div,
    "arith.rem": _int_rem,
    "arith.min": lambda a, b, t: min(a, b),
    "arith.max": lambda a, b, t: max(a, b),
    "arith.and": lambda a, b, t: a & b,
    "arith.or": lambda a, b, t: a | b,
    "arith.xor": lambda a, b, t: a ^ b,
    "arith.shl": _shl,
    "arith.shr": _shr,
    "arith.neg": lambda a, t: -a,
    "arith.not": lambda a, t: ~a,
    "math.abs": lambda a, t: abs(a),
}


# -- float semantics -----------------------------------------------------------------------
def _min_max(pick):
    def fold(a, b):
        if a == 0 and b == 0 and np.signbit(a) != np.signbit(b):
            return None  # minNum/maxNum may return either zero; targets differ
        return pick(a, b)  # np.fmin/np.fmax return the non-NaN operand, as IEEE minNum/maxNum
    return fold


def _fma(a, b, c, round_exact) -> Optional[float]:
    """a * b + c rounded once (IEEE 754 fusedMultiplyAdd)."""
    a, b, c = float(a), float(b), float(c)
    if not (math.isfinite(a) and math.isfinite(b)):
        return a * b + c  # the product is exactly inf or NaN; one rounding at most
    if not math.isfinite(c):
        return c  # a finite product plus inf or NaN
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact != 0:
        return round_exact(exact)
    if a == 0 or b == 0:
        return a * b + c  # zeros only: IEEE's sign rules for a sum of zeros
    return 0.0  # IEEE 754 6.3: an exact zero sum of nonzero terms is +0 when rounding to nearest


FLOAT_OPS: dict[str, Callable] = {
    "arith.add": np.add,
    "arith.sub": np.subtract,
    "arith.mul": np.multiply,
    "arith.div": np.divide,
    "arith.rem": np.fmod,
    "arith.min": _min_max(np.fmin),
    "arith.max": _min_max(np.fmax),
    "arith.neg": np.negative,
    "math.abs": np.abs,
    "math.sqrt": np.sqrt,   # correctly rounded in IEEE 754, so host and GPU agree
    "math.floor": np.floor,
    "math.ceil": np.ceil,
    "math.trunc": np.trunc,
    "math.round": np.rint,  # ties to even
}


def _fold_elementwise(op: Op, args: list) -> Optional[Number]:
    elem = element_type(op.result.type)
    if elem.is_int:
        if op.name not in INT_OPS:
            return None
        result = INT_OPS[op.name](*args, elem)
        return None if result is None else wrap_int(result, elem)
    if elem.name not in FLOAT_FORMATS:
        return None
    numpy_type, round_exact = FLOAT_FORMATS[elem.name]
    with np.errstate(all="ignore"):
        if op.name == "math.fma":
            result = _fma(*args, round_exact)
        elif op.name in FLOAT_OPS:
            result = FLOAT_OPS[op.name](*(numpy_type(a) for a in args))
        else:
            return None
        return None if result is None else float(numpy_type(result))


# -- comparisons and conversions -----------------------------------------------------------
PREDICATES = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
              "le": operator.le, "gt": operator.gt, "ge": operator.ge}


def _fold_cmp(op: Op, args: list) -> Optional[int]:
    # Normalized ints compare with their type's signedness; Python floats compare as the op
    # says: ordered (false on NaN), except ne, which is true on NaN.
    return int(PREDICATES[op.attrs["pred"]](*args))


def _fold_cast(op: Op, args: list) -> Optional[Number]:
    src, dst = element_type(op.operands[0].type), element_type(op.result.type)
    (value,) = args
    if dst.is_bool:
        return None if value != value else int(value != 0)  # NaN: `!= 0` and "NaN gives 0" disagree
    if dst.is_int:
        return cast_to_int(value, dst)
    if dst.name not in FLOAT_FORMATS:
        return None
    numpy_type, round_exact = FLOAT_FORMATS[dst.name]
    if src.is_int:
        return round_exact(Fraction(value))
    with np.errstate(all="ignore"):
        return float(numpy_type(value))


def cast_to_int(value: Number, dst: ScalarType) -> int:
    """A number converted to the integer type dst as arith.cast does it: ints wrap; floats truncate toward zero,
    saturate at dst's bounds, and NaN gives 0 (also the frontend's, for a compile-time float cast)."""
    if isinstance(value, int):
        return wrap_int(value, dst)
    if value != value:
        return 0
    low = -(1 << (dst.bits - 1)) if dst.is_signed else 0
    high = (1 << (dst.bits - 1)) - 1 if dst.is_signed else (1 << dst.bits) - 1
    if math.isinf(value):
        return high if value > 0 else low
    return max(low, min(high, math.trunc(value)))


_FLOAT_BITS = {"f32": (np.float32, np.uint32), "f64": (np.float64, np.uint64)}


def _fold_bitcast(op: Op, args: list) -> Optional[Number]:
    src_type, dst_type = op.operands[0].type, op.result.type
    if src_type.is_vector != dst_type.is_vector or (src_type.is_vector and src_type.count != dst_type.count):
        return None  # lanes regroup (a scalar split into lanes, lanes joined into a scalar): a splat need not stay one
    src, dst = element_type(src_type), element_type(dst_type)
    (value,) = args
    if src.is_int:
        bits = value & ((1 << src.bits) - 1)
    else:
        if value != value:
            return None  # a NaN constant carries no payload to reinterpret
        float_type, uint_type = _FLOAT_BITS[src.name]
        bits = int(np.array(value, float_type).view(uint_type))
    if dst.is_int:
        return wrap_int(bits, dst)
    if dst.name not in _FLOAT_BITS:
        return None
    float_type, uint_type = _FLOAT_BITS[dst.name]
    result = float(np.array(bits, uint_type).view(float_type))
    return None if result != result else result  # a NaN result would lose its payload in print


FOLDERS: dict[str, Callable] = {
    **{name: _fold_elementwise for name in {*INT_OPS, *FLOAT_OPS, "math.fma"}},
    "arith.cmp": _fold_cmp,
    "arith.cast": _fold_cast,
    "arith.bitcast": _fold_bitcast,
}


def fold(op: Op, args: list) -> Optional[Number]:
    """The value of op's one result (one lane, for vectors) given its operands' values, or None."""
    folder = FOLDERS.get(op.name)
    if folder is None or any(a is None for a in args):
        return None
    return folder(op, args)
