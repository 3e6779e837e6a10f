"""The DSL's type objects: scalar dtypes (`skc.f32`, also cast functions), pointer types
(`skc.Ptr[skc.f32]`), `skc.constexpr` and `skc.TensorMap` annotations."""
from __future__ import annotations

import sys

from .. import ir
from ..diagnostics import CompileError, Location, is_library_file
from . import context


class DType:
    """A scalar type as users see it: `skc.f32(x)` casts, `x: skc.f32` annotates."""

    __slots__ = ("ir",)

    def __init__(self, ir_type: ir.ScalarType):
        self.ir = ir_type

    def __call__(self, value):
        # The typing rules come with the kernel being compiled (semantics imports this module).
        return context.current().rules.cast(value, self.ir)

    def __repr__(self):
        return f"skc.{self.ir.name}"

    def __eq__(self, other):
        return isinstance(other, DType) and other.ir is self.ir

    def __hash__(self):
        return hash(self.ir)

    @property
    def bits(self) -> int:
        return self.ir.bits

    @property
    def itemsize(self) -> int:
        return self.ir.bytes

    @property
    def bytes(self) -> int:
        """itemsize, by the name the IR's types (an array's `dtype` on the host) give it."""
        return self.ir.bytes

    @property
    def name(self) -> str:
        return self.ir.name


def _dtypes():
    return {name: DType(ir.ScalarType(name)) for name in ir.types.SCALAR_NAMES}


DTYPES = _dtypes()
ALIASES = {"bool_": "i1", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
           "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
           "float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
           # fp8 (OCP): torch's and ml_dtypes' names, and PTX's
           "float8_e4m3fn": "f8e4m3", "float8_e5m2": "f8e5m2", "e4m3": "f8e4m3", "e5m2": "f8e5m2",
           # AMD's FNUZ fp8 (gfx942)
           "float8_e4m3fnuz": "f8e4m3fnuz", "float8_e5m2fnuz": "f8e5m2fnuz", "e4m3fnuz": "f8e4m3fnuz",
           "e5m2fnuz": "f8e5m2fnuz"}


def as_ir_type(dtype) -> ir.Type:
    """Accept skc.f32, an IR type, or a name such as 'f32' / 'float32'."""
    if isinstance(dtype, DType):
        return dtype.ir
    if isinstance(dtype, ir.Type):
        return dtype
    name = dtype if isinstance(dtype, str) else _foreign_dtype_name(dtype)
    if name is not None:
        name = ALIASES.get(name, name)
        if name in DTYPES:
            return DTYPES[name].ir
    if dtype in (int, float, bool):
        raise dtype_error(f"{dtype.__name__} is not an skc dtype: its width is not known",
                          hint=f"name one, e.g. skc.{ {int: 'i32', float: 'f32', bool: 'i1'}[dtype]} "
                               f"or skc.{ {int: 'i64', float: 'f64', bool: 'i1'}[dtype]}")
    raise dtype_error(f"expected a dtype such as skc.f32, found {dtype!r}",
                      hint="use skc.i32, skc.f32, skc.bf16, ... (numpy and torch dtypes work too)")


def _foreign_dtype_name(dtype):
    """The name of a numpy dtype or scalar type ('float32'), or a torch dtype ('torch.bfloat16'), else None."""
    module = type(dtype).__module__ or ""
    if module.startswith("torch"):
        return str(dtype).removeprefix("torch.")
    if module.startswith("numpy") or isinstance(dtype, type) and (dtype.__module__ or "").startswith("numpy"):
        import numpy as np

        try:
            return np.dtype(dtype).name
        except TypeError:
            return None
    return None


def dtype_error(message: str, hint: str = ""):
    """A CompileError at the kernel line being compiled, or (in an annotation, at import) at the user's line."""
    if context.active():
        return context.current().error(message, hint)
    frame = sys._getframe(1)
    while frame is not None and is_library_file(frame.f_code.co_filename):
        frame = frame.f_back
    loc = None if frame is None else Location(frame.f_code.co_filename, frame.f_lineno, 0, frame.f_code.co_name)
    return CompileError(message, loc, hint)


class PtrType:
    """A pointer's DSL type: its element type and address space (`skc.Ptr[skc.f32]`)."""

    __slots__ = ("elem", "space")
    is_vector = False      # answers the questions asked of IR value types, so checks name it, not crash
    is_pointer = True
    count = None

    def __init__(self, elem: ir.Type, space: str = "global"):
        self.elem, self.space = elem, space

    @property
    def ir(self) -> ir.PointerType:
        return ir.PointerType(self.space)

    def __eq__(self, other):
        return isinstance(other, PtrType) and (other.elem, other.space) == (self.elem, self.space)

    def __hash__(self):
        return hash((self.elem, self.space))

    def __repr__(self):
        space = "" if self.space == "global" else f", {self.space!r}"
        return f"skc.Ptr[skc.{self.elem}{space}]"


class _PtrFactory:
    """`skc.Ptr[skc.f32]` or `skc.Ptr[skc.f32, "shared"]` in annotations."""

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if len(key) != 2:
                raise dtype_error(f"skc.Ptr takes a dtype and an optional address space, found {len(key)} items",
                                  hint='write skc.Ptr[skc.f32] or skc.Ptr[skc.f32, "shared"]')
            elem, space = key
            if space not in ir.types.ADDRESS_SPACES:
                raise dtype_error(f"unknown address space {space!r} in skc.Ptr",
                                  hint=f"address spaces: {', '.join(ir.types.ADDRESS_SPACES)}")
        else:
            elem, space = key, "global"
        return PtrType(as_ir_type(elem), space)

    def __repr__(self):
        return "skc.Ptr"


Ptr = _PtrFactory()


class constexpr:
    """Marks a compile-time parameter (`cfg: skc.constexpr`) or wraps a compile-time argument (`skc.constexpr(4)`)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value.value if isinstance(value, constexpr) else value

    def __repr__(self):
        return f"skc.constexpr({self.value!r})"

    def __eq__(self, other):
        return isinstance(other, constexpr) and other.value == self.value

    def __hash__(self):
        return hash(("constexpr", _hashable(self.value)))


def _hashable(value):
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


class TensorMap:
    """Annotation for a TMA tensor-map parameter (made on the host, passed by value). The host class
    skc.TensorMap (skc.runtime.tma) carries the same marker, so either annotates a parameter."""

    __skc_tensor_map__ = True


def is_constexpr_annotation(annotation) -> bool:
    return annotation is constexpr or isinstance(annotation, constexpr)
