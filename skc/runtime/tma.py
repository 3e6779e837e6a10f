"""TMA tensor maps made on the host: `skc.TensorMap(tensor, box=(128, 64), swizzle=128)`.

A tensor map describes a 1-5D tensor in global memory and the box one TMA operation copies. On a
CUDA device it is encoded with cuTensorMapEncodeTiled into the 128 bytes the kernel receives by
value; in the interpreter the same object gives the array and its geometry. Shapes, strides and
boxes are given outermost dimension first, as numpy and torch do; the hardware's order is the
reverse (PTX coordinates are innermost first).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import ir
from ..diagnostics import DeviceError, LaunchError
from . import dtypes
from .arrays import DeviceArray
from .interop import tensor_facts

SWIZZLES = (0, 32, 64, 128)
_ENCODED: dict = {}  # descriptors already encoded, by everything they encode
_CU_DTYPE = {"u8": "UINT8", "u16": "UINT16", "u32": "UINT32", "i32": "INT32", "u64": "UINT64", "i64": "INT64",
             "f16": "FLOAT16", "f32": "FLOAT32", "f64": "FLOAT64", "bf16": "BFLOAT16", "f8e4m3": "UINT8",
             "f8e5m2": "UINT8", "i8": "UINT8", "i16": "UINT16"}


class TensorMap:
    """A TMA descriptor: `tensor` (a device tensor, or a host array for the interpreter), the `box` one
    copy moves, and the shared-memory `swizzle` in bytes (0, 32, 64 or 128). Also the annotation of a
    kernel parameter that takes one (`a: skc.TensorMap`)."""

    __skc_tensor_map__ = True

    def __init__(self, tensor, box, swizzle: int = 128, dtype=None):
        self.tensor = tensor
        self.shape, self.strides, self.dtype, self.device = _geometry(tensor, dtype)
        self.box = tuple(int(b) for b in box)
        self.swizzle = int(swizzle)
        self._check()
        self.spec = ir.TensorMapType(self.dtype, self.box, self.swizzle)
        self._descriptor: Optional[bytes] = None
        self._encode_arguments = None
        self._buffer = None
        self._address_field = None  # (offset, shift, a descriptor) where the address lives; () when not found

    def __repr__(self):
        return f"TensorMap(shape={self.shape}, box={self.box}, {self.dtype}, swizzle={self.swizzle})"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def _check(self):
        rank, item = len(self.shape), self.dtype.bytes
        if not 1 <= rank <= 5:
            raise LaunchError(f"a tensor map covers 1 to 5 dimensions, found {rank}")
        if len(self.box) != rank:
            raise LaunchError(f"the box {self.box} has {len(self.box)} dimensions, the tensor {rank}")
        if self.swizzle not in SWIZZLES:
            raise LaunchError(f"swizzle must be one of {SWIZZLES} bytes, found {self.swizzle}")
        if any(not 1 <= b <= 256 for b in self.box):
            raise LaunchError(f"every box dimension must be 1 to 256, found {self.box}")
        inner = self.box[-1] * item
        if inner % 16:
            raise LaunchError(f"the box's innermost extent is {inner} bytes; TMA needs a multiple of 16 bytes")
        if self.swizzle and inner > self.swizzle:
            raise LaunchError(f"the box's innermost extent is {inner} bytes, wider than the {self.swizzle}-byte "
                              "swizzle; use a narrower box")
        if self.strides[-1] != 1:
            raise LaunchError("the tensor's innermost dimension must be contiguous (stride 1) for TMA")
        for dim, stride in enumerate(self.strides[:-1]):
            if stride * item % 16:
                raise LaunchError(f"TMA needs every stride to be a multiple of 16 bytes; dimension {dim} has a "
                                  f"stride of {stride * item} bytes (pad the rows to a multiple of "
                                  f"{16 // np.gcd(16, item)} elements)")

    # -- the 128 bytes a CUDA kernel receives ----------------------------------------------------
    @property
    def descriptor_bytes(self) -> bytes:
        if self._descriptor is None:
            self._descriptor = self.descriptor_at(self.data_pointer())
        return self._descriptor

    @property
    def descriptor_address(self) -> int:
        """The address of the descriptor's 128 bytes (kept alive by this map): what a CUDA launch passes."""
        if self._buffer is None:
            self._buffer = _Descriptor(self.descriptor_bytes)
        return self._buffer.address

    def pointer_function(self):
        """A function giving the address of a tensor of this map's tensor's type (cheap: no checks)."""
        if isinstance(self.tensor, DeviceArray):
            return _array_address
        return tensor_facts(self.tensor).pointer

    def encoded_at(self, pointer: int) -> "EncodedTensorMap":
        """This map's geometry over the tensor at `pointer`, encoded: what a CUDA launch needs of a tensor map."""
        return EncodedTensorMap(self.descriptor_at(pointer), self.spec, self.dtype)

    def descriptor_at(self, pointer: int) -> bytes:
        """The 128 bytes of this tensor map's geometry (shape, strides, dtype, box, swizzle) over the tensor at
        address `pointer`: encoded once per address and geometry, so a host path that launches the same shapes
        over a few buffers re-encodes nothing (the geometry was checked when this map was made)."""
        key = (pointer, self.shape, self.strides, self.dtype, self.box, self.swizzle)
        found = _ENCODED.get(key)
        if found is None:
            found = self._patched(pointer)
            if found is None:
                found = self._encode(pointer)
            if len(_ENCODED) > 4096:
                _ENCODED.clear()
            _ENCODED[key] = found
        return found

    def _patched(self, pointer: int) -> Optional[bytes]:
        """The descriptor at `pointer` made by writing the address into one encoded for another address, when
        this driver's encoding was seen to hold the address in one little-endian 64-bit field (probed once per
        map: three encodings that differ only there); None otherwise (then the driver encodes it)."""
        if pointer % 16:
            return None  # _encode explains the alignment rule
        if self._address_field is None:
            self._address_field = _probe_address_field(self._encode)
        if not self._address_field:
            return None
        return _with_address(self._address_field[2], self._address_field[0], self._address_field[1], pointer)

    def _encode(self, facts_pointer: int) -> bytes:
        import ctypes

        from . import cuda

        if facts_pointer % 16:
            raise LaunchError(f"TMA needs the tensor's address to be 16-byte aligned; it is {facts_pointer:#x}")
        if self._encode_arguments is None:  # the driver's argument objects, made once per map
            module = cuda.driver()
            item = self.dtype.bytes
            dims = [module.cuuint64_t(d) for d in reversed(self.shape)]
            strides = [module.cuuint64_t(s * item) for s in reversed(self.strides[:-1])]
            box = [module.cuuint32_t(b) for b in reversed(self.box)]
            element_strides = [module.cuuint32_t(1)] * len(self.shape)
            data_type = getattr(module.CUtensorMapDataType, f"CU_TENSOR_MAP_DATA_TYPE_{_CU_DTYPE[self.dtype.name]}")
            swizzle = getattr(module.CUtensorMapSwizzle, "CU_TENSOR_MAP_SWIZZLE_NONE" if not self.swizzle
                              else f"CU_TENSOR_MAP_SWIZZLE_{self.swizzle}B")
            self._encode_arguments = (
                (data_type, len(self.shape)),
                (dims, strides, box, element_strides, module.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
                 swizzle, module.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                 module.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE))
        head, tail = self._encode_arguments
        encoded = cuda.call("cuTensorMapEncodeTiled", *head, facts_pointer, *tail)
        return ctypes.string_at(encoded.getPtr(), 128)

    def data_pointer(self) -> int:
        if isinstance(self.tensor, DeviceArray):
            return self.tensor.ptr
        facts = tensor_facts(self.tensor)
        return facts.pointer(self.tensor)


_PROBE_ADDRESSES = (0x7F0000001000, 0x7F0123456780, 0x10000)


def _probe_address_field(encode) -> tuple:
    """(offset, shift, descriptor) such that each probe address `p`'s descriptor is that descriptor with bytes
    offset..offset+8 replaced by `p >> shift` (little-endian); () when the encodings differ in any other way."""
    try:
        encoded = [encode(p) for p in _PROBE_ADDRESSES]
    except (DeviceError, LaunchError):  # a driver that checks the addresses: encode every one
        return ()
    first = encoded[0]
    for shift in (0, 4):
        for offset in range(0, 121, 8):
            if all(_with_address(first, offset, shift, p) == e for p, e in zip(_PROBE_ADDRESSES, encoded)):
                return offset, shift, first
    return ()


def _with_address(descriptor: bytes, offset: int, shift: int, pointer: int) -> bytes:
    data = bytearray(descriptor)
    data[offset:offset + 8] = (pointer >> shift).to_bytes(8, "little")
    return bytes(data)


class EncodedTensorMap:
    """A tensor map reduced to what a CUDA launch passes: its 128 encoded bytes (and its type). Host code that
    launches one geometry over changing addresses makes these with `TensorMap.descriptor_at`."""

    __slots__ = ("_buffer", "descriptor_address", "descriptor_bytes", "dtype", "spec")
    __skc_tensor_map__ = True

    def __init__(self, descriptor: bytes, spec, dtype):
        self.descriptor_bytes, self.spec, self.dtype = descriptor, spec, dtype
        self._buffer = _Descriptor(descriptor)
        self.descriptor_address = self._buffer.address


class _Descriptor:
    """128 descriptor bytes in memory of their own, 64-byte aligned as CUtensorMap is (cuda.h: alignas(64))."""

    __slots__ = ("address", "raw")

    def __init__(self, data: bytes):
        import ctypes

        self.raw = ctypes.create_string_buffer(128 + 64)
        self.address = -(-ctypes.addressof(self.raw) // 64) * 64
        ctypes.memmove(self.address, data, 128)


def _array_address(array: DeviceArray) -> int:
    return array.ptr


def _geometry(tensor, dtype):
    """(shape, strides in elements, IR dtype, device kind) of a tensor-like object."""
    if isinstance(tensor, DeviceArray):
        shape = tensor.shape
        strides = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
        return shape, strides, tensor.dtype, tensor.device.kind
    facts = tensor_facts(tensor)
    if facts is None:
        raise LaunchError(f"a tensor map needs a tensor or array, found {type(tensor).__name__}")
    shape = tuple(int(s) for s in tensor.shape)
    if isinstance(tensor, np.ndarray):
        strides = tuple(s // tensor.itemsize for s in tensor.strides)
    else:
        strides = tuple(int(s) for s in tensor.stride())
    ir_dtype = dtypes.to_ir(dtype) if dtype is not None else facts.dtype
    return shape, strides, ir_dtype, facts.device[0]
