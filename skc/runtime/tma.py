"""TMA tensor maps made on the host: `skc.TensorMap(tensor, box=(128, 64), swizzle=128)`.

A tensor map describes a 1-5D tensor in global memory and the box one TMA operation copies. On a
CUDA device it is encoded with cuTensorMapEncodeTiled into the 128 bytes the kernel receives by
value; in the interpreter the same object gives the array and its geometry. Shapes, strides and
boxes are given outermost dimension first, as numpy and torch do; the hardware's order is the
reverse (PTX coordinates are innermost first).
"""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from .. import ir
from ..diagnostics import DeviceError, LaunchError
from . import cuda, dtypes
from .arrays import DeviceArray
from .interop import array_strides, check_torch_readable, is_torch_tensor_type, pointer_function, tensor_facts

SWIZZLES = (0, 32, 64, 128)
_ENCODED: dict = {}  # descriptors already encoded, by everything they encode
_CU_DTYPE = {"u8": "UINT8", "u16": "UINT16", "u32": "UINT32", "i32": "INT32", "u64": "UINT64", "i64": "INT64",
             "f16": "FLOAT16", "f32": "FLOAT32", "f64": "FLOAT64", "bf16": "BFLOAT16", "f8e4m3": "UINT8",
             "f8e5m2": "UINT8", "f8e4m3fnuz": "UINT8", "f8e5m2fnuz": "UINT8", "i8": "UINT8", "i16": "UINT16"}


def _whole_numbers(what: str, values) -> tuple:
    """A TensorMap's box (a tuple of ints, one a dimension) or swizzle as ints; numpy's ints too, not 64.5 or None
    (int() of them raised a TypeError, or cut 64.5 to 64)."""
    if not isinstance(values, (tuple, list, np.ndarray)) or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        shown = values if what == "box" else values[0]
        raise LaunchError(f"a TensorMap's {what} is " + ("a tuple of ints, one a dimension" if what == "box" else
                                                         "an int of bytes (0, 32, 64 or 128)") + f", found {shown!r}: "
                          "pass box=(rows, columns) of the tile a copy moves, e.g. box=(64, 64), and swizzle=128")
    return tuple(int(v) for v in values)


class TensorMap:
    """A TMA descriptor: `tensor` (a device tensor, or a host array for the interpreter), the `box` one
    copy moves, and the shared-memory `swizzle` in bytes (0, 32, 64 or 128). Also the annotation of a
    kernel parameter that takes one (`a: skc.TensorMap`). `view`: (shape, strides in elements) to see the
    tensor's memory with, from its first element, where its own type has no such view (an skc array's memory seen
    strided: a grouped convolution's output as groups x pixels x filters of a group); it must stay within the
    tensor's elements."""

    __skc_tensor_map__ = True
    _launched_on = None   # the device where the tensor was last found readable (address_on)

    def __init__(self, tensor, box, swizzle: int = 128, dtype=None, view=None):
        self.tensor = tensor
        self.shape, self.strides, self.dtype, self.device = _geometry(tensor, dtype)
        if view is not None:
            self.shape, self.strides = _viewed(self.shape, self.strides, view)
        self.box = _whole_numbers("box", box)
        (self.swizzle,) = _whole_numbers("swizzle", (swizzle,))
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
        """The address of the descriptor's 128 bytes for a launch on the current device (address_on)."""
        from .devices import current_device

        return self.address_on(current_device())

    def address_on(self, device) -> int:
        """The address of the descriptor's 128 bytes (kept alive by this map): what a CUDA launch on `device` passes.
        Where its tensor lies is checked against each device it is launched on, not its first alone: the descriptor
        holds the tensor's address as it is, which a kernel on another GPU would read there."""
        if device is not self._launched_on:
            where = self.misplaced(device)
            if where is not None:   # (the launcher names the argument: Launcher._bad_argument)
                raise ValueError(f"a tensor map over {where}")
            self._launched_on = device
        if self._buffer is None:
            self._buffer = _Descriptor(self.descriptor_bytes)
        return self._buffer.address

    def misplaced(self, device) -> Optional[str]:
        """Where this map's tensor lies, if a kernel on GPU `device` cannot read it there (host memory, another
        GPU's: the descriptor holds the address as it is, read from this GPU), else None."""
        if device.kind not in ("cuda", "hip"):
            return None
        if isinstance(self.tensor, DeviceArray):
            kind, index = self.tensor.device.kind, self.tensor.device.index
        else:
            facts = tensor_facts(self.tensor)
            kind, index = facts.device if facts is not None else (None, None)
        if kind in ("cpu", "interpreter"):
            return "host memory (a numpy array, a CPU tensor or an interpreter's array)"
        if index is not None and index != device.index:   # (an interface naming no device: read where it says)
            return f"{kind}:{index}"
        return None

    def pointer_function(self):
        """A function giving the address of a tensor of this map's tensor's type (cheap: no checks)."""
        return pointer_function(self.tensor)

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


def forget_encoded():
    """Drop the tensor maps already encoded (after the driver that encoded them changed)."""
    _ENCODED.clear()


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


def _geometry(tensor, dtype):
    """(shape, strides in elements, IR dtype, device kind) of a tensor-like object."""
    if isinstance(tensor, DeviceArray):
        shape = tensor.shape
        strides = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
        return shape, strides, tensor.dtype, tensor.device.kind
    if is_torch_tensor_type(type(tensor)):
        check_torch_readable(tensor, "a tensor map's tensor")
    facts = tensor_facts(tensor)
    if facts is None:
        raise LaunchError(f"a tensor map needs a tensor or array, found {type(tensor).__name__}")
    shape = tuple(int(s) for s in tensor.shape)
    strides = array_strides(tensor)   # (cupy's arrays have no stride(); a bare array's are in its interface)
    ir_dtype = dtypes.to_ir(dtype) if dtype is not None else facts.dtype
    return shape, _unit_strides_aligned(shape, strides, ir_dtype.bits // 8), ir_dtype, facts.device[0]


def _viewed(shape: tuple, strides: tuple, view) -> tuple:
    """(shape, strides) of a TensorMap's `view` of a tensor of `shape` and `strides`: within its elements."""
    try:
        new_shape, new_strides = (tuple(int(v) for v in part) for part in view)
    except (TypeError, ValueError):
        raise LaunchError(f"a tensor map's view is (shape, strides in elements), found {view!r}") from None
    if len(new_shape) != len(new_strides) or min(new_shape + new_strides, default=0) < 0:
        raise LaunchError(f"a tensor map's view (shape {new_shape}, strides {new_strides}) must have a stride for "
                          f"each dimension, none negative")
    covered = _covered(shape, strides)
    if covered is None:   # (a view would see the memory between the tensor's elements: another tensor's)
        raise LaunchError(f"a tensor map's view sees its tensor's memory from the first element, which must hold "
                          f"the tensor's elements without gaps; shape {shape} with strides {strides} has gaps: pass a "
                          "contiguous tensor")
    if min(new_shape, default=1) > 0 and 1 + sum((n - 1) * step for n, step in zip(new_shape, new_strides)) > covered:
        raise LaunchError(f"a tensor map's view (shape {new_shape}, strides {new_strides}) must stay within its "
                          f"tensor's {covered} elements (shape {shape}, strides {strides})")
    return new_shape, new_strides


def _covered(shape: tuple, strides: tuple):
    """How many consecutive elements from its first a tensor's elements cover (0 if it has none), or None if its
    strides leave gaps between them. A span alone is not enough: a slice's span holds the columns it leaves out,
    and an empty tensor's strides may span memory it does not own (torch's (2, 0, 64) has strides (64, 64, 1))."""
    if 0 in shape:
        return 0
    covered = 1
    for step, n in sorted((abs(step), n) for n, step in zip(shape, strides) if n > 1):
        if step > covered:
            return None
        covered += step * (n - 1)
    return covered


def _unit_strides_aligned(shape: tuple, strides: tuple, item: int) -> tuple:
    """The strides with each dimension of one element given one TMA takes where its own is not a 16-byte
    multiple: its only index is 0, so its stride addresses nothing, and torch leaves whatever it likes there
    (x.mean((2, 3), keepdim=True) of a channels_last x is (N, C, 1, 1) with strides (C, 1, 1, 1), channels_last-
    contiguous to torch; TMA refused its W stride of one element). The stride it takes is a dense array's (the
    inner dimensions' extents), rounded up to 16 bytes; a stride that suits TMA already is kept (a padded operand's
    one row keeps its padded pitch). An innermost dimension of one element takes 1, the stride TMA implies there (a
    column W[:, 0] viewed as K x 1 has strides (N, N), torch's view and numpy's reshape: TMA refused it)."""
    strides = list(strides)
    if shape and shape[-1] == 1:
        strides[-1] = 1
    for i in range(len(shape) - 2, -1, -1):   # (the innermost dimension's stride is 1 and not encoded)
        if shape[i] == 1 and (strides[i] * item) % 16:
            dense = strides[i + 1] * max(shape[i + 1], 1)
            strides[i] = -(-dense * item // 16) * 16 // item if item and 16 % item == 0 else dense
    return tuple(strides)


# -- im2col mode ---------------------------------------------------------------------------------
IM2COL_CORNER_RANGE = {3: 2 ** 15, 4: 2 ** 7, 5: 2 ** 4}   # corners lie in [-r, r - 1] (cuTensorMapEncodeIm2col)
_ENCODED_IM2COL: dict = {}  # im2col descriptors already encoded, by everything they encode


class Im2colTensorMap(TensorMap):
    """A TMA descriptor in im2col mode (PTX ISA 5.5.4) over a channels-last tensor (N, [D,] H, W, C), e.g.
    `skc.Im2colTensorMap(x_nhwc, channels=64, pixels=128, lower=(-1, -1), upper=(-1, -1), strides=(1, 1))`.

    One copy gathers `pixels` pixels of `channels` channels each into a (pixels, channels) box in shared
    memory. The filter base walks the spatial bounding box, W fastest, then H (then D), then N, by the
    traversal `strides`, from the lower corner `lower` to the tensor's last pixel plus `upper`; the pixel
    read is the base plus the copy's im2col offsets, and pixels outside the tensor read as zeros. Corners
    and strides are given outermost first (h, w), like the shape."""

    def __init__(self, tensor, channels: int, pixels: int, lower, upper, strides=None, swizzle: int = 128,
                 dtype=None):
        self.tensor = tensor
        self.shape, self.strides, self.dtype, self.device = _geometry(tensor, dtype)
        self.channels, self.pixels = int(channels), int(pixels)
        self.box = (self.pixels, self.channels)
        self.swizzle = int(swizzle)
        spatial = len(self.shape) - 2
        self.lower, self.upper = tuple(int(v) for v in lower), tuple(int(v) for v in upper)
        self.traversal = tuple(int(v) for v in (strides if strides is not None else (1,) * spatial))
        self._check_im2col()
        self.spec = ir.Im2colTensorMapType(self.dtype, self.box, self.swizzle, len(self.shape))
        self._descriptor: Optional[bytes] = None
        self._buffer = None  # descriptor_address's copy of the bytes

    def __repr__(self):
        return (f"Im2colTensorMap(shape={self.shape}, pixels={self.pixels}, channels={self.channels}, "
                f"lower={self.lower}, upper={self.upper}, strides={self.traversal}, {self.dtype}, "
                f"swizzle={self.swizzle})")

    def _check_im2col(self):
        rank, item = len(self.shape), self.dtype.bytes
        if not 3 <= rank <= 5:
            raise LaunchError(f"an im2col tensor map covers a 3-D to 5-D channels-last tensor, found {rank} dimensions")
        spatial = rank - 2
        for name, values in (("lower", self.lower), ("upper", self.upper), ("strides", self.traversal)):
            if len(values) != spatial:
                raise LaunchError(f"im2col '{name}' has {len(values)} values; a rank-{rank} tensor has {spatial} "
                                  "spatial dimensions")
        bound = IM2COL_CORNER_RANGE[rank]
        for name, values in (("lower", self.lower), ("upper", self.upper)):
            if any(not -bound <= v < bound for v in values):
                raise LaunchError(f"the im2col bounding box's {name} corner {values} is outside [{-bound}, {bound - 1}],"
                                  f" all TMA encodes for a rank-{rank} tensor (padding too large for TMA im2col)")
        if any(not 1 <= s <= 8 for s in self.traversal):
            raise LaunchError(f"im2col traversal strides must be 1 to 8, found {self.traversal}")
        if not 1 <= self.channels <= 256 or not 1 <= self.pixels <= 1024:
            raise LaunchError(f"an im2col box takes 1-256 channels and 1-1024 pixels, found {self.channels} channels, "
                              f"{self.pixels} pixels")
        if self.swizzle not in SWIZZLES:
            raise LaunchError(f"swizzle must be one of {SWIZZLES} bytes, found {self.swizzle}")
        inner = self.channels * item
        if inner % 16:
            raise LaunchError(f"an im2col box row is {inner} bytes ({self.channels} channels); TMA needs a multiple "
                              "of 16 bytes")
        if self.swizzle and inner > self.swizzle:
            raise LaunchError(f"an im2col box row is {inner} bytes, wider than the {self.swizzle}-byte swizzle")
        if self.strides[-1] != 1:
            raise LaunchError("the tensor's channels must be contiguous (stride 1): pass a channels-last tensor")
        for dim, stride in enumerate(self.strides[:-1]):
            if stride * item % 16:
                raise LaunchError(f"TMA needs every stride to be a multiple of 16 bytes; dimension {dim} has a stride "
                                  f"of {stride * item} bytes (make the channels a multiple of {16 // item})")

    @property
    def descriptor_bytes(self) -> bytes:
        if self._descriptor is None:
            key = (self.data_pointer(), self.shape, self.strides, self.dtype, self.box, self.swizzle, self.lower,
                   self.upper, self.traversal)
            found = _ENCODED_IM2COL.get(key)
            if found is None:
                found = self._encode()
                if len(_ENCODED_IM2COL) > 4096:
                    _ENCODED_IM2COL.clear()
                _ENCODED_IM2COL[key] = found
            self._descriptor = found
        return self._descriptor

    def _encode(self) -> bytes:
        import ctypes

        module = cuda.driver()
        pointer = self.data_pointer()
        if pointer % 16:
            raise LaunchError(f"TMA needs the tensor's address to be 16-byte aligned; it is {pointer:#x}")
        item = self.dtype.bytes
        dims = [module.cuuint64_t(d) for d in reversed(self.shape)]
        strides = [module.cuuint64_t(s * item) for s in reversed(self.strides[:-1])]
        # every array innermost first (c, w, h, n), as the tiled encoding takes them
        element_strides = [module.cuuint32_t(s) for s in (1, *reversed(self.traversal), 1)]
        data_type = getattr(module.CUtensorMapDataType, f"CU_TENSOR_MAP_DATA_TYPE_{_CU_DTYPE[self.dtype.name]}")
        swizzle = getattr(module.CUtensorMapSwizzle,
                          "CU_TENSOR_MAP_SWIZZLE_NONE" if not self.swizzle else f"CU_TENSOR_MAP_SWIZZLE_{self.swizzle}B")
        encoded = cuda.call("cuTensorMapEncodeIm2col", data_type, len(self.shape), pointer, dims, strides,
                            list(reversed(self.lower)), list(reversed(self.upper)), self.channels, self.pixels,
                            element_strides, module.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                            module.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            module.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
        return ctypes.string_at(encoded.getPtr(), 128)
