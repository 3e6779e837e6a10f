"""Arguments from other libraries: what a launch needs to know of a tensor (element type,
device, data pointer) for torch and cupy tensors, anything with `__cuda_array_interface__` or
DLPack, numpy arrays and skc's DeviceArray; and the scalar type a Python number takes."""
from __future__ import annotations

import ctypes
import numbers
import operator
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .. import ir
from ..diagnostics import LaunchError
from . import dtypes
from .arrays import DeviceArray


@dataclass(frozen=True)
class TensorFacts:
    dtype: ir.ScalarType
    device: tuple            # ("cuda", index), ("hip", index) or ("cpu", None); index None when unknown
    pointer: Callable        # arg -> int address (call at launch: it may change between launches)


def is_torch_tensor_type(kind) -> bool:
    """Whether `kind` is torch's tensor type or a subclass of it (nn.Parameter, a user's `class T(torch.Tensor)`),
    asked without importing torch (a torch tensor exists only where torch was imported)."""
    if not isinstance(kind, type):
        return False
    if kind.__module__.split(".")[0] == "torch" and hasattr(kind, "data_ptr"):
        return True
    torch = sys.modules.get("torch")
    tensor = getattr(torch, "Tensor", None)
    return isinstance(tensor, type) and issubclass(kind, tensor)


def check_torch_readable(t, name: str = "a tensor", operand: str = "x") -> None:
    """A LaunchError for a torch tensor whose elements are not where its data pointer, shape and strides say: a
    sparse or nested tensor, a lazily negated or conjugated view (z.conj().imag, whose memory holds the values
    un-negated), a tensor of no storage (one a torch.func transform such as vmap or grad wraps) or a FakeTensor
    (torch.compile's tracing: shapes without memory). The interpreter failed with torch's own errors from inside
    skc; a GPU launch would read the wrong memory. `operand`: the tensor's name in the call (q, scale_a), for what
    to pass."""
    torch = sys.modules.get("torch")
    layout, nested = getattr(t, "layout", None), getattr(t, "is_nested", False) is True
    if nested or layout is not None and layout is not getattr(torch, "strided", layout):
        kind = "nested" if nested else str(layout).replace("torch.", "")
        raise LaunchError(f"{name} is a {kind} tensor; skc reads dense (strided) tensors in place: pass "
                          f"{operand}.to_dense() (or the dense tensors it holds)")
    for lazy, resolve in (("negated", "neg"), ("conjugated", "conj")):
        flag = getattr(t, f"is_{resolve}", None)
        if callable(flag) and flag() is True:
            raise LaunchError(f"{name} is a lazily {lazy} view (its memory holds the values before that), which skc "
                              f"cannot read in place: pass {operand}.resolve_{resolve}()")
    untyped_storage = getattr(t, "untyped_storage", None)
    if untyped_storage is None or getattr(t, "is_meta", False) is True:
        return   # (a meta tensor holds no data: said where its memory is asked for)
    try:
        storage = untyped_storage()
    except (RuntimeError, NotImplementedError):
        storage = None
    if storage is None or storage.device.type == "meta":
        what = ("a FakeTensor (shapes without memory: torch.compile traces with them)" if storage is not None else
                "a tensor without storage (a torch.func transform's, such as vmap's or grad's)")
        raise LaunchError(f"{name} is {what}; skc kernels run on tensors that hold data: launch them on real "
                          "tensors, or make the host function a torch operator (skc.torch.register_op, with a fake "
                          "implementation), which torch.compile traces and torch.func calls with real tensors")


def _torch_facts(t) -> TensorFacts:
    # (whether its memory is where its data pointer says is asked once, by name, where a tensor first comes in:
    # check_torch_readable at a kernel's specialization, its slow launch path, host_view and tensor maps)
    device = t.device
    kind = device.type
    if kind == "cuda":
        import torch

        kind = "hip" if getattr(torch.version, "hip", None) else "cuda"
    index = device.index if kind != "cpu" else None
    if kind != "cpu" and index is None:
        index = 0
    return TensorFacts(dtypes.from_torch(t.dtype), (kind, index), _torch_pointer)


def _torch_pointer(t) -> int:
    return t.data_ptr()


def _array_facts(a: DeviceArray) -> TensorFacts:
    device = ("cpu", None) if a.device.is_interpreter else (a.device.kind, a.device.index)
    return TensorFacts(a.dtype, device, _array_pointer)


def _array_pointer(a: DeviceArray) -> int:
    return a.ptr


def _numpy_facts(a: np.ndarray) -> TensorFacts:
    return TensorFacts(dtypes.from_numpy(a.dtype), ("cpu", None), _numpy_pointer)


def _numpy_pointer(a: np.ndarray) -> int:
    return a.ctypes.data


CAI_TYPES: set = set()  # types seen exporting __cuda_array_interface__ (the launchers' fast path for them)
_CAI_FACTS: dict = {}  # typestr -> TensorFacts (launches read them often; numpy's dtype parsing is slow)


def _cai_facts(obj) -> TensorFacts:
    typestr = obj.__cuda_array_interface__["typestr"]
    found = _CAI_FACTS.get(typestr)
    if found is None:
        found = _CAI_FACTS[typestr] = TensorFacts(dtypes.from_typestr(typestr), ("cuda", None), _cai_pointer)
    return found


def _cai_pointer(obj) -> int:
    return int(obj.__cuda_array_interface__["data"][0])


# -- DLPack ----------------------------------------------------------------------------------
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int),
                ("dtype", _DLDataType), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("byte_offset", ctypes.c_uint64)]


_DL_DEVICES = {1: "cpu", 2: "cuda", 3: "cpu", 10: "hip", 13: "cuda"}  # kDLCPU, kDLCUDA, kDLCUDAHost, kDLROCM, kDLCUDAManaged
_DL_CODES = {0: "i", 1: "u", 2: "f", 4: "bf", 6: "b"}  # kDLInt, kDLUInt, kDLFloat, kDLBfloat, kDLBool


def _dlpack_tensor(obj) -> _DLTensor:
    """A copy of the DLTensor that obj exports, taken while its capsule lives: the capsule is not consumed, so when
    the last reference to it goes its destructor runs the producer's deleter, which frees the DLManagedTensor (a
    view of it read after that read freed memory)."""
    capsule = obj.__dlpack__()
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    address = get(capsule, b"dltensor")
    # DLManagedTensor begins with its DLTensor
    tensor = _DLTensor.from_buffer_copy(ctypes.string_at(address, ctypes.sizeof(_DLTensor)))
    del capsule
    return tensor


def _dlpack_facts(obj) -> TensorFacts:
    kind_id, index = obj.__dlpack_device__()
    tensor = _dlpack_tensor(obj)
    code = _DL_CODES.get(tensor.dtype.code)
    bits = tensor.dtype.bits
    name = {"i": f"i{bits}", "u": f"u{bits}", "f": f"f{bits}", "bf": "bf16", "b": "i1"}.get(code)
    if name not in ir.types.SCALAR_NAMES or tensor.dtype.lanes != 1:
        raise dtypes.UnsupportedDtypeError(f"DLPack dtype (code {tensor.dtype.code}, {bits} bits) has no skc "
                                           "equivalent")
    kind = _DL_DEVICES.get(int(kind_id), "unknown")
    return TensorFacts(ir.ScalarType(name), (kind, int(index) if kind != "cpu" else None), _dlpack_pointer)


def _dlpack_pointer(obj) -> int:
    tensor = _dlpack_tensor(obj)
    return int(tensor.data or 0) + int(tensor.byte_offset)


def _dlpack_strides(obj) -> tuple:
    tensor = _dlpack_tensor(obj)
    shape = [ctypes.c_int64.from_address(tensor.shape + 8 * i).value for i in range(tensor.ndim)]
    if not tensor.strides:   # (NULL: row-major)
        return _row_major(shape)
    return tuple(ctypes.c_int64.from_address(tensor.strides + 8 * i).value for i in range(tensor.ndim))


def _row_major(shape) -> tuple:
    shape = tuple(int(n) for n in shape)
    return tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))


def array_strides(arg) -> tuple:
    """The strides, in elements, of an array skc takes: torch's stride(), numpy's strides over its item size, skc's
    arrays' row-major ones, and for another framework's array those its `__cuda_array_interface__` or DLPack export
    says (None, NULL: row-major), whatever attributes it has of its own (cupy's strides are in bytes, and it has no
    stride())."""
    kind = _facts_function(type(arg))
    if kind is _torch_facts:
        return tuple(arg.stride())
    if kind is _numpy_facts:
        return tuple(s // arg.itemsize for s in arg.strides)
    if kind is _array_facts:
        return _row_major(arg.shape)
    if kind is _cai_facts:
        interface = arg.__cuda_array_interface__
        strides, item = interface.get("strides"), np.dtype(interface["typestr"]).itemsize
        return _row_major(interface["shape"]) if strides is None else tuple(int(s) // item for s in strides)
    if kind is _dlpack_facts:
        return _dlpack_strides(arg)
    raise LaunchError(f"expected a tensor or array, found {type(arg).__name__}")


class InterfaceView:
    """A view of another framework's GPU array (one exporting `__cuda_array_interface__`) with another shape and
    strides (in elements) over the same memory, for host code that reshapes or transposes an operand which has no
    reshape or .T of its own; it exports the interface itself and keeps the array alive (`base`)."""

    def __init__(self, base, shape, strides, offset: int = 0):
        interface = base.__cuda_array_interface__
        self.base, self.shape, self._strides = base, tuple(int(n) for n in shape), tuple(int(s) for s in strides)
        self._typestr, (address, read_only) = interface["typestr"], interface["data"]
        self._data, self._offset = (int(address) + offset, read_only), offset   # (offset: in bytes, from base's)
        self.dtype = np.dtype(self._typestr)
        self.itemsize = self.dtype.itemsize
        self.strides = tuple(s * self.itemsize for s in self._strides)

    def stride(self) -> tuple:
        return self._strides

    def reshape(self, shape) -> "InterfaceView":
        """The same memory with another shape (the view's elements must lie row after row)."""
        shape = tuple(int(n) for n in shape)
        if int(np.prod(shape, dtype=np.int64)) != int(np.prod(self.shape, dtype=np.int64)) or any(
                n != 1 and s != d for n, s, d in zip(self.shape, self._strides, _row_major(self.shape))):
            raise LaunchError(f"cannot view an array of shape {self.shape} and strides {self._strides} as {shape}")
        return InterfaceView(self.base, shape, _row_major(shape), self._offset)

    @property
    def T(self) -> "InterfaceView":
        return InterfaceView(self.base, self.shape[::-1], self._strides[::-1], self._offset)

    def __getitem__(self, index: int) -> "InterfaceView":
        """The index-th array along the first dimension (a batch's matrix)."""
        if not isinstance(index, (int, np.integer)) or not -self.shape[0] <= index < self.shape[0]:
            raise LaunchError(f"an array view of shape {self.shape} takes an index below {self.shape[0]}, found "
                              f"{index!r}")
        offset = self._offset + int(index) % self.shape[0] * self._strides[0] * self.itemsize
        return InterfaceView(self.base, self.shape[1:], self._strides[1:], offset)

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self._typestr, "data": self._data, "strides": self.strides,
                "version": 3}


def strided_view(x, shape, strides):
    """x's memory seen with `shape` and element `strides` (an InterfaceView): for an array exporting
    `__cuda_array_interface__` that has no reshape or transpose of its own; another is a LaunchError, as are sizes
    and strides that are not integers of one count, and a view reaching memory past x's."""
    if _facts_function(type(x)) is not _cai_facts and not isinstance(x, InterfaceView):
        fix = (f"use the {type(x).__name__}'s own views (reshape, .T, slices)" if hasattr(x, "reshape")
               else "pass a torch tensor or a cupy array")
        raise LaunchError(f"skc.strided_view views an array exporting __cuda_array_interface__; a {type(x).__name__} "
                          f"exports none: {fix}")
    try:
        shape, strides = tuple(map(_index, shape)), tuple(map(_index, strides))
    except TypeError:
        raise LaunchError(f"skc.strided_view takes a shape and strides of integers, found {shape!r} and "
                          f"{strides!r}") from None
    if len(shape) != len(strides) or any(n < 0 for n in shape):
        raise LaunchError(f"skc.strided_view takes a size (0 or more) and a stride for each dimension, found shape "
                          f"{shape} and strides {strides}")
    base, offset = (x.base, x._offset) if isinstance(x, InterfaceView) else (x, 0)
    interface = base.__cuda_array_interface__
    item = np.dtype(interface["typestr"]).itemsize
    whole = interface.get("strides") or tuple(s * item for s in _row_major(interface["shape"]))
    low, high = _reach(interface["shape"], whole)
    view_low, view_high = _reach(shape, [s * item for s in strides])
    if 0 not in shape and (low is None or offset + view_low < low or offset + view_high > high):
        raise LaunchError(f"skc.strided_view: shape {shape} and strides {strides} reach elements past the array's "
                          f"{tuple(interface['shape'])} (bytes {offset + view_low} to {offset + view_high + item - 1} "
                          f"from the array's first element; the array's are "
                          f"{'none' if low is None else f'{low} to {high + item - 1}'})")
    return InterfaceView(base, shape, strides, offset)


def _index(value) -> int:
    if isinstance(value, bool):
        raise TypeError
    return operator.index(value)


def _reach(shape, byte_strides) -> tuple:
    """The bytes an array of `shape` and `byte_strides` reaches, from its first element's address: (lowest, highest
    start of an element); (None, None) where it has no elements."""
    shape = tuple(int(n) for n in shape)
    if 0 in shape:
        return None, None
    steps = [(n - 1) * int(s) for n, s in zip(shape, byte_strides)]
    return sum(min(0, d) for d in steps), sum(max(0, d) for d in steps)


# -- dispatch ----------------------------------------------------------------------------------
_BY_TYPE: dict = {}


def _facts_function(kind: type) -> Optional[Callable]:
    found = _BY_TYPE.get(kind, ...)
    if found is not ...:
        return found
    if issubclass(kind, DeviceArray):
        found = _array_facts
    elif issubclass(kind, np.ndarray):
        found = _numpy_facts
    elif is_torch_tensor_type(kind):   # (before the interface: a subclass of torch's has it, for CUDA tensors only)
        found = _torch_facts
    elif hasattr(kind, "__cuda_array_interface__"):
        found = _cai_facts
        CAI_TYPES.add(kind)
    elif hasattr(kind, "__dlpack__") and hasattr(kind, "__dlpack_device__"):
        found = _dlpack_facts
    else:
        found = None
    _BY_TYPE[kind] = found
    return found


def tensor_facts(arg, name: str = "") -> Optional[TensorFacts]:
    """What a launch needs of a tensor-like argument, or None when arg is not one. `name` ("k: argument 'x'") leads
    the message of an element type skc lacks, which names only the type."""
    fn = _facts_function(type(arg))
    if fn is None:
        return None
    if not name:
        return fn(arg)
    try:
        return fn(arg)
    except dtypes.UnsupportedDtypeError as error:
        raise dtypes.UnsupportedDtypeError(f"{name}: {error}") from None


def pointer_function(arg) -> Callable:
    """A function giving the device address of arrays of arg's type, with no checks: what host code that keys
    ready launches by address reads at each call (torch's own data_ptr for torch tensors)."""
    facts = tensor_facts(arg)
    if facts is None:
        raise LaunchError(f"expected a tensor or array, found {type(arg).__name__}")
    return type(arg).data_ptr if facts.pointer is _torch_pointer else facts.pointer


def scalar_type(value) -> Optional[ir.ScalarType]:
    """The type a scalar argument specializes to: a numpy scalar its own; else as a Python literal
    (bool i1, int i32 (i64, u64 when it must), float f32)."""
    if isinstance(value, np.generic):
        return dtypes.from_numpy(value.dtype)
    if not isinstance(value, numbers.Number) or isinstance(value, complex):
        return None
    return ir.types.python_number_type(value)
