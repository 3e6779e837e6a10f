"""Numbers in the interpreter: the numpy dtype holding each IR type, bf16/fp8 rounding,
memory bit patterns, casts and bitcasts.

A value is a numpy array with one entry per thread (a second axis for vector elements).
i1 is numpy bool; iN/uN the numpy int of that width (numpy wraps, as the IR does); f16,
f32 and f64 their numpy types. bf16 and the fp8 formats have no numpy type: they live in
float32 arrays whose entries are always representable in the format (every op rounds its
result), and are converted to their 16/8-bit patterns on stores.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ...ir.types import PointerType, ScalarType, Type, VectorType, element_type

_VALUE_DTYPES = {
    "i1": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64,
    "f16": np.float16, "bf16": np.float32, "f32": np.float32, "f64": np.float64,
    "f8e4m3": np.float32, "f8e5m2": np.float32, "f8e4m3fnuz": np.float32, "f8e5m2fnuz": np.float32,
}
# The bits a value occupies in memory (i1 takes one byte, as LLVM stores it).
_STORAGE_DTYPES = {**_VALUE_DTYPES, "i1": np.uint8, "bf16": np.uint16, "f8e4m3": np.uint8, "f8e5m2": np.uint8,
                   "f8e4m3fnuz": np.uint8, "f8e5m2fnuz": np.uint8}


def value_dtype(t: Type) -> np.dtype:
    """The numpy dtype of a value of scalar, vector or pointer type t (pointers are uint64 addresses)."""
    t = element_type(t)
    if isinstance(t, PointerType):
        return np.dtype(np.uint64)
    return np.dtype(_VALUE_DTYPES[t.name])


def storage_dtype(t: Type) -> np.dtype:
    """The numpy dtype of t's bit pattern in memory (ptr<shared> takes 32 bits, other pointers 64)."""
    t = element_type(t)
    if isinstance(t, PointerType):
        return np.dtype(np.uint32 if t.bits == 32 else np.uint64)
    return np.dtype(_STORAGE_DTYPES[t.name])


def zeros(t: Type, nthreads: int) -> np.ndarray:
    shape = (nthreads, t.count) if isinstance(t, VectorType) else (nthreads,)
    return np.zeros(shape, value_dtype(t))


# -- rounding to the narrow float formats ---------------------------------------------------------
class _Format:
    """A binary float format narrower than f32: precision p (with the implicit bit), min exponent, max finite."""

    def __init__(self, name, precision, emin, max_finite, has_inf):
        self.name, self.precision, self.emin = name, precision, emin
        self.max_finite, self.has_inf = max_finite, has_inf


_FORMATS = {
    "bf16": _Format("bf16", 8, -126, float.fromhex("0x1.fep127"), True),
    # OCP FP8 (v1.0): e4m3 has no infinities (S.1111.111 is NaN), e5m2 is IEEE-like.
    "f8e4m3": _Format("f8e4m3", 4, -6, 448.0, False),
    "f8e5m2": _Format("f8e5m2", 3, -14, 57344.0, True),
    # AMD's FNUZ fp8 (gfx942): the exponent bias one larger, 0x80 the only NaN, no -0, no infinities
    "f8e4m3fnuz": _Format("f8e4m3fnuz", 4, -7, 240.0, False),
    "f8e5m2fnuz": _Format("f8e5m2fnuz", 3, -15, 57344.0, False),
}


def _round_bf16_f32(x: np.ndarray) -> np.ndarray:
    """float32 to the nearest bf16 (ties to even), by adding a rounding bias to the upper 16 bits."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))) & np.uint32(0xFFFF0000)
    nan = np.isnan(x)
    if nan.any():  # keep NaNs NaN (a payload in the low bits alone would round to inf)
        rounded = np.where(nan, (bits & np.uint32(0x80000000)) | np.uint32(0x7FC00000), rounded)
    return rounded.view(np.float32)


def _round_generic(x: np.ndarray, fmt: _Format) -> np.ndarray:
    """Round to fmt, ties to even, from float64 (exact for every narrower input).

    bf16 overflows to inf like IEEE formats; fp8 saturates finite overflow and infinities to
    the largest finite value and keeps NaN, as PTX `cvt.rn.satfinite` (CUDA's __NV_SATFINITE) does.
    """
    x = np.asarray(x, np.float64)
    magnitude = np.abs(x)
    _, exponent = np.frexp(magnitude)
    quantum_exp = np.maximum(exponent - 1, fmt.emin) - (fmt.precision - 1)
    with np.errstate(invalid="ignore"):   # infinities and NaN: replaced below
        rounded = np.ldexp(np.rint(np.ldexp(magnitude, -quantum_exp)), quantum_exp)
    if fmt.name == "bf16":
        rounded = np.where(rounded > fmt.max_finite, np.inf, rounded)
    else:
        rounded = np.where(np.isinf(magnitude) | (rounded > fmt.max_finite), fmt.max_finite, rounded)
    rounded = np.where(np.isnan(x), np.nan, rounded)
    rounded = np.copysign(rounded, x)
    if fmt.name.endswith("fnuz"):   # no -0: a zero is +0
        rounded = np.where(rounded == 0, 0.0, rounded)
    return rounded.astype(np.float32)


def round_to(t: ScalarType, x: np.ndarray) -> np.ndarray:
    """x (any float or int array) rounded to the float type t, in t's value dtype."""
    name = t.name
    if name == "bf16":
        if x.dtype == np.float32 or x.dtype == np.float16:
            return _round_bf16_f32(x.astype(np.float32, copy=False))
        return _round_generic(x, _FORMATS[name])
    if name in _FORMATS:
        return _round_generic(x, _FORMATS[name])
    return x.astype(_VALUE_DTYPES[name], copy=False)


# NVIDIA's one NaN of each type: what its arithmetic gives for a NaN result, whatever its operands' sign and payload
# (an H100; f64's arithmetic keeps an operand's payload: benchmarks/results/session66-...-nans-h100.txt)
_CANONICAL_NAN = {"f32": np.uint32(0x7FFFFFFF).view(np.float32), "f16": np.uint16(0x7FFF).view(np.float16),
                  "bf16": np.uint32(0x7FFF0000).view(np.float32)}


def canonical_nan(name: str):
    """NVIDIA's canonical NaN of the float type `name` (f32, f16 or bf16), a value of its value dtype (bf16's in
    float32)."""
    return _CANONICAL_NAN[name]


def needs_rounding(t: Type) -> bool:
    """Whether results of type t must be rounded after computing in float32 (bf16, fp8)."""
    elem = element_type(t)
    return isinstance(elem, ScalarType) and elem.name in _FORMATS


# -- fp8 bit patterns -----------------------------------------------------------------------------
def _fp8_values(name: str) -> np.ndarray:
    """The value of each of the 256 codes of an fp8 format."""
    mant_bits = 3 if name.startswith("f8e4m3") else 2
    fnuz = name.endswith("fnuz")
    bias = (7 if name.startswith("f8e4m3") else 15) + fnuz
    values = np.empty(256, np.float64)
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        exp, mant = (code >> mant_bits) & ((0x80 >> mant_bits) - 1), code & ((1 << mant_bits) - 1)
        if fnuz and code == 0x80:
            value = math.nan
        elif name == "f8e4m3" and exp == 15 and mant == 7:
            value = math.nan
        elif name == "f8e5m2" and exp == 31:
            value = math.inf if mant == 0 else math.nan
        elif exp == 0:
            value = math.ldexp(mant, 1 - bias - mant_bits)
        else:
            value = math.ldexp((1 << mant_bits) + mant, exp - bias - mant_bits)
        values[code] = sign * value
    return values


_FP8_NAMES = ("f8e4m3", "f8e5m2", "f8e4m3fnuz", "f8e5m2fnuz")
def _fp8_decode_table(name: str) -> np.ndarray:
    """The codes' values as float32; a NaN code's value is a NaN that carries the code itself in its low bits
    (_NAN_CODE), so that storing it writes the same code (a copy on the GPU moves the bits unchanged)."""
    values = _fp8_values(name).astype(np.float32)
    bits = values.view(np.uint32)
    codes = np.arange(256, dtype=np.uint32)
    bits[:] = np.where(np.isnan(values), _NAN_CODE | codes, bits)
    return values


_NAN_CODE = np.uint32(0x7FC0AB00)   # a quiet NaN whose low byte is an fp8 code
_FP8_DECODE = {name: _fp8_decode_table(name) for name in _FP8_NAMES}
# Non-negative codes in increasing value: 0x00..0x7E (e4m3), 0x00..0x7C with inf last (e5m2), 0x00..0x7F (FNUZ).
_FP8_POSITIVE = {"f8e4m3": _FP8_DECODE["f8e4m3"][:0x7F], "f8e5m2": _FP8_DECODE["f8e5m2"][:0x7D],
                 "f8e4m3fnuz": _FP8_DECODE["f8e4m3fnuz"][:0x80], "f8e5m2fnuz": _FP8_DECODE["f8e5m2fnuz"][:0x80]}
_FP8_NAN = {"f8e4m3": 0x7F, "f8e5m2": 0x7F, "f8e4m3fnuz": 0x80, "f8e5m2fnuz": 0x80}


def _fp8_encode(name: str, x: np.ndarray) -> np.ndarray:
    """Values in memory as fp8 codes. A value is an fp8 value already (arithmetic and casts round, saturating as
    cvt.rn.satfinite does), so a store writes its own code, as the GPU's byte store does: e5m2's infinities stay
    infinities, and a NaN loaded from memory is written back as the code it was (a NaN made by arithmetic is the
    positive 0x7F; FNUZ's one NaN is 0x80). Other values (from the host) round to nearest, saturating."""
    raw = np.asarray(x, np.float32)
    rounded = _round_generic(raw, _FORMATS[name])
    codes = np.searchsorted(_FP8_POSITIVE[name], np.abs(rounded)).astype(np.uint8)
    codes = codes | (np.signbit(rounded).astype(np.uint8) << np.uint8(7))   # (an FNUZ zero is +0 already)
    if name == "f8e5m2":
        codes = np.where(np.isinf(raw), np.uint8(0x7C) | (np.signbit(raw).astype(np.uint8) << np.uint8(7)), codes)
    bits = np.ascontiguousarray(raw).view(np.uint32)
    carried = (bits & np.uint32(0x7FFFFF00)) == _NAN_CODE
    nan_codes = np.where(carried, (bits & np.uint32(0xFF)).astype(np.uint8), np.uint8(_FP8_NAN[name]))
    return np.where(np.isnan(raw), nan_codes, codes)


def to_storage(t: Type, x: np.ndarray) -> np.ndarray:
    """Values of type t (scalar, vector or pointer) as their bit patterns in memory."""
    t = element_type(t)
    if isinstance(t, PointerType):
        return x.astype(storage_dtype(t))
    name = t.name
    if name == "bf16":
        x = np.ascontiguousarray(x, np.float32)
        rounded = _round_bf16_f32(x).view(np.uint32) >> np.uint32(16)
        # a NaN keeps the payload its upper half carries (one loaded from memory is written back as it was)
        upper = x.view(np.uint32) >> np.uint32(16)
        kept = np.isnan(x) & ((upper & np.uint32(0x7F)) != 0)
        return np.where(kept, upper, rounded).astype(np.uint16)
    if name in _FP8_DECODE:
        return _fp8_encode(name, x)
    if name == "i1":
        return x.astype(np.uint8)
    return x.astype(_STORAGE_DTYPES[name], copy=False)


def from_storage(t: Type, bits: np.ndarray) -> np.ndarray:
    """Bit patterns read from memory as values of type t."""
    t = element_type(t)
    if isinstance(t, PointerType):
        return bits.astype(np.uint64)
    name = t.name
    if name == "bf16":
        return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    if name in _FP8_DECODE:
        return _FP8_DECODE[name][bits]
    if name == "i1":
        return bits != 0
    return bits


def from_python(t: Type, value) -> np.generic:
    """A Python number as a scalar of type t: ints wrap into t's range (like C), floats round to t."""
    elem = element_type(t)
    if isinstance(elem, PointerType):
        return np.uint64(int(value) % (1 << 64))
    if elem.is_bool:
        return np.bool_(int(value) & 1)
    if elem.is_int:
        bits = elem.bits
        wrapped = int(value) % (1 << bits)
        if elem.is_signed and wrapped >= 1 << (bits - 1):
            wrapped -= 1 << bits
        return value_dtype(elem).type(wrapped)
    return round_to(elem, np.array([float(value)], np.float64))[0]


# -- casts ----------------------------------------------------------------------------------------
def _float_to_int(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Truncate toward zero, saturating at the type's range; NaN gives 0 (PTX cvt.rzi.sat, llvm.fpto*i.sat)."""
    info = np.iinfo(dtype)
    truncated = np.trunc(x.astype(np.float64))
    over = truncated >= float(info.max)   # float(max) rounds up for 64-bit types: still exact at the boundary
    under = truncated <= float(info.min)
    nan = np.isnan(truncated)
    inside = np.where(over | under | nan, 0, truncated).astype(dtype)
    return np.where(over, dtype.type(info.max), np.where(under, dtype.type(info.min), inside))


def cast(src: Type, dst: Type, x: np.ndarray) -> np.ndarray:
    """`arith.cast`: ints extend by the source's signedness and wrap; float to int truncates and
    saturates (NaN gives 0); anything to i1 is `!= 0`; to a float rounds to nearest even.

    To fp8 the cast is PTX's `cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32` (PTX ISA 9.7.9.21): nearest even,
    finite overflow and infinities saturate to the largest finite value (448, 57344) with x's sign,
    NaN gives NaN (0x7F, whatever x's sign). torch's `.to()` overflows to infinity (e5m2), and to NaN (e4m3fn)
    in older releases (torch 2.14's e4m3fn saturates too): scale or clamp first where that matters."""
    s, d = element_type(src), element_type(dst)
    if d.is_bool:
        return x != 0
    if d.is_int:
        if s.is_float:
            return _float_to_int(x, value_dtype(d))
        return x.astype(value_dtype(d))
    if d.name in _FP8_DECODE and (s.bits == 64 or s.is_int):
        # PTX converts to fp8 only from f32 (and f16x2): f64 and integer sources round to f32 first, as the
        # NVPTX lowering does (f64 -> f32 -> fp8 can differ from one rounding near a midpoint).
        with np.errstate(over="ignore"):   # beyond f32 is infinity, which saturates
            x = x.astype(np.float32)
    elif s.is_int and not s.is_bool and s.bits == 64 and d.name in _FORMATS:
        x = _int64_to_f64_sticky(x)   # exact where the narrow format must round, so that it rounds once
    result = round_to(d, x)
    if s.is_float and d.is_float and d.name not in _FP8_DECODE:
        nan = np.isnan(result)
        if nan.any():
            result = np.where(nan, _cast_nan(s.name, d.name, x, result), result)
    return result


# NVIDIA's conversions of a NaN (an H100, every pair of f64, f32, f16, bf16, e4m3 and e5m2 over NaNs of both signs,
# quiet and signalling: benchmarks/results/session66-2026-12-08-nans-h100.txt). These pairs keep the sign and the
# payload (bf16 to f32 a shift, exact, though a cvt after a bf16 load gave 0x7FC00000; f16 to f64 quiets); every other
# conversion to f32, f16 or bf16 gives the canonical NaN; fp8 converts through f16 (its NaN f16's canonical one, so
# 0x7FFFFC0000000000 in f64); a NaN to fp8 is 0x7F (_fp8_encode).
_NAN_KEPT = frozenset({("f32", "f64"), ("f64", "f32"), ("f64", "f16"), ("f64", "bf16"), ("f16", "f64"),
                       ("bf16", "f32"), ("bf16", "f64")})


def _cast_nan(s: str, d: str, x: np.ndarray, result: np.ndarray) -> np.ndarray:
    """The NaNs of x cast from type s to type d (result: numpy's cast)."""
    if s in _FP8_DECODE:
        return quiet(_CANONICAL_NAN["f16"].astype(np.float64)) if d == "f64" else _CANONICAL_NAN[d]
    if (s, d) not in _NAN_KEPT:
        return _CANONICAL_NAN[d]
    if s == "f64" and d in ("f16", "bf16"):   # quieted, then the payload's upper bits (numpy's f16 kept them unquieted)
        kept = quiet(x).astype(np.float32)
        if d == "f16":
            return kept.astype(np.float16)
        return (kept.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    return quiet(result) if d == "f64" else result


def quiet(x) -> np.ndarray:
    """f64 values with each NaN's quiet bit set (its sign and payload kept)."""
    bits = np.ascontiguousarray(x, np.float64).view(np.uint64)
    return np.where(np.isnan(x), (bits | np.uint64(1 << 51)).view(np.float64), x)


def _int64_to_f64_sticky(x: np.ndarray) -> np.ndarray:
    """64-bit ints as float64 for a second rounding to a format of at most 51 bits (bf16): below 2**53 exact; above,
    bits 0-10 are replaced by one bit at position 11 when any is set (x.astype(np.float64) rounded them to nearest,
    which can land on a bf16 midpoint: 2**62 + 2**54 + 1 became 2**62 + 2**54 and then 2**62, where PTX's one
    rounding, cvt.rn.bf16.s64, gives 2**62 + 2**55). The result keeps x's side of every midpoint of the format."""
    negative = x < 0 if x.dtype.kind == "i" else np.zeros(x.shape, bool)
    magnitude = np.where(negative, -(x.astype(np.uint64)), x.astype(np.uint64))   # wraps right for INT64_MIN
    sticky = (magnitude & np.uint64(0x7FF)) != 0
    kept = (magnitude & ~np.uint64(0x7FF)) | (sticky.astype(np.uint64) << np.uint64(11))
    magnitude = np.where(magnitude >= np.uint64(1 << 53), kept, magnitude)
    return np.where(negative, -magnitude.astype(np.float64), magnitude.astype(np.float64))


def _to_bytes(t: Type, x: np.ndarray) -> np.ndarray:
    """Each thread's value of type t as a row of bytes (i1 vectors pack 8 elements a byte, LSB first)."""
    n = x.shape[0]
    if element_type(t).is_bool:
        return np.packbits(x.reshape(n, -1), axis=1, bitorder="little")
    return np.ascontiguousarray(to_storage(t, x)).view(np.uint8).reshape(n, -1)


def bitcast(src: Type, dst: Type, x: np.ndarray) -> np.ndarray:
    """`arith.bitcast`: the same bits seen as another type of the same size."""
    if src is dst:
        return x
    raw = _to_bytes(src, x)
    n = x.shape[0]
    elem = element_type(dst)
    if elem.is_bool:
        bits = np.unpackbits(raw, axis=1, bitorder="little").astype(bool)
        return bits.reshape(n, dst.count) if isinstance(dst, VectorType) else bits.reshape(n)
    values = from_storage(elem, np.ascontiguousarray(raw).view(storage_dtype(elem)))
    return values.reshape(n, dst.count) if isinstance(dst, VectorType) else values.reshape(n)


# -- fused multiply-add ---------------------------------------------------------------------------
def _fma64_scalar(a: float, b: float, c: float) -> float:
    fma = getattr(math, "fma", None)  # Python 3.13+
    if fma is not None:
        try:
            return fma(a, b, c)
        except (OverflowError, ValueError):   # (it raises where IEEE gives inf or NaN: computed below)
            pass
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        if math.isfinite(a) and math.isfinite(b):   # the exact product is finite: c (inf or NaN) decides; the
            return c                                 # rounded one could overflow and make inf - inf a NaN
        return a * b + c
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    try:
        return float(exact) if exact else a * b + c  # zero: IEEE's rule for its sign
    except OverflowError:   # past f64's range (float() rounds to nearest: what overflows it is infinite)
        return math.inf if exact > 0 else -math.inf


def fma(t: ScalarType, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c with one rounding to t.

    For formats up to f32 the product is exact in f64; the sum is rounded to odd in f64 (a
    TwoSum error term says which way), and rounding that to t is then correctly rounded,
    since f64 carries more than 2p + 1 bits (Boldo and Melquiond, "Emulation of FMA and
    correctly rounded sums: proved algorithms using rounding to odd", 2008).
    """
    if t.name == "f64":
        flat = np.frompyfunc(_fma64_scalar, 3, 1)(a.ravel(), b.ravel(), c.ravel())
        return flat.astype(np.float64).reshape(a.shape)
    p = a.astype(np.float64) * b.astype(np.float64)
    c64 = c.astype(np.float64)
    s = p + c64
    back = s - p
    error = (p - (s - back)) + (c64 - back)
    even = (np.ascontiguousarray(s).view(np.uint64) & np.uint64(1)) == 0
    adjust = (error != 0) & even & np.isfinite(s)
    s = np.where(adjust, np.nextafter(s, np.where(error > 0, np.inf, -np.inf)), s)
    return round_to(t, s)


__all__ = ["value_dtype", "storage_dtype", "zeros", "round_to", "needs_rounding", "to_storage", "from_storage",
           "from_python", "cast", "bitcast", "fma"]
