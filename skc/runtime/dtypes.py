"""Element types across libraries: numpy, torch and `__cuda_array_interface__` typestrs to
the IR's scalar types, and the numpy dtype that stores each IR type."""
from __future__ import annotations

import numpy as np

from .. import ir
from ..diagnostics import LaunchError


class UnsupportedDtypeError(LaunchError, TypeError):
    """An array's dtype that no IR type holds (complex, strings, objects, dates, long double): a LaunchError for
    the user, and still a TypeError for code that asks whether a dtype has an skc type."""


_TAKES = "skc takes bool, integers of 8 to 64 bits, float16, bfloat16, float32, float64 and float8"

# IR type -> numpy dtype that holds its bits (bf16 and fp8 have no numpy type: their bits)
STORAGE = {
    "i1": np.bool_, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64,
    "f16": np.float16, "bf16": np.uint16, "f32": np.float32, "f64": np.float64,
    "f8e4m3": np.uint8, "f8e5m2": np.uint8, "f8e4m3fnuz": np.uint8, "f8e5m2fnuz": np.uint8,
}

_NUMPY_NAMES = {
    "bool": "i1", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
    "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "float16": "f16", "float32": "f32", "float64": "f64",
    # ml_dtypes' numpy types, where a user has them
    "bfloat16": "bf16", "float8_e4m3fn": "f8e4m3", "float8_e5m2": "f8e5m2",
    "float8_e4m3fnuz": "f8e4m3fnuz", "float8_e5m2fnuz": "f8e5m2fnuz",
}

TORCH_NAMES = {
    "torch.bool": "i1", "torch.int8": "i8", "torch.int16": "i16", "torch.int32": "i32", "torch.int64": "i64",
    "torch.uint8": "u8", "torch.uint16": "u16", "torch.uint32": "u32", "torch.uint64": "u64",
    "torch.float16": "f16", "torch.bfloat16": "bf16", "torch.float32": "f32", "torch.float64": "f64",
    "torch.float8_e4m3fn": "f8e4m3", "torch.float8_e5m2": "f8e5m2",
    "torch.float8_e4m3fnuz": "f8e4m3fnuz", "torch.float8_e5m2fnuz": "f8e5m2fnuz",
}


def from_numpy(dtype) -> ir.ScalarType:
    name = numpy_name(dtype)
    if name is None:
        raise UnsupportedDtypeError(f"numpy dtype {np.dtype(dtype)} has no skc equivalent: {_TAKES}")
    return ir.ScalarType(name)


def numpy_name(dtype) -> str | None:
    """skc's name of a numpy dtype (ml_dtypes' included), or None where skc has none."""
    return _NUMPY_NAMES.get(np.dtype(dtype).name)


def ml_dtypes_name(t: ir.ScalarType) -> str:
    """The ml_dtypes type of an fp8 (or bf16) skc type: float8_e4m3fn for f8e4m3."""
    return next(numpy for numpy, name in _NUMPY_NAMES.items() if name == t.name)


def from_torch(dtype) -> ir.ScalarType:
    name = TORCH_NAMES.get(str(dtype))
    if name is None:
        raise UnsupportedDtypeError(f"torch dtype {dtype} has no skc equivalent: {_TAKES}")
    return ir.ScalarType(name)


def from_typestr(typestr: str) -> ir.ScalarType:
    """`__cuda_array_interface__`'s typestr ('<f4', '|b1', '<V2' is unknown)."""
    return from_numpy(np.dtype(typestr))


def storage(t: ir.ScalarType):
    return np.dtype(STORAGE[t.name])


def to_ir(dtype) -> ir.ScalarType:
    """Any dtype spelling: an IR type, skc.f32 (anything with an `.ir`), a numpy dtype, 'f32'/'float32'."""
    if isinstance(dtype, ir.ScalarType):
        return dtype
    inner = getattr(dtype, "ir", None)
    if isinstance(inner, ir.ScalarType):
        return inner
    if isinstance(dtype, str) and dtype in ir.types.SCALAR_NAMES:
        return ir.ScalarType(dtype)
    if type(dtype).__module__.startswith("torch"):
        return from_torch(dtype)
    try:
        numpy_dtype = np.dtype(dtype)
    except (TypeError, ValueError):   # (numpy's "Cannot interpret '0' as a data type")
        raise UnsupportedDtypeError(f"{dtype!r} is not a dtype: pass one such as skc.f32, 'f32', np.float32 or "
                                    f"torch.float32 ({_TAKES})") from None
    return from_numpy(numpy_dtype)


# -- bf16 <-> float32 (round to nearest even), for host-side conversions ------------------------
def float32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + (0x7FFF + ((bits >> 16) & 1))
    result = (rounded >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    result[nan] = 0x7FC0
    return result


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
