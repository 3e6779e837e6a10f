"""skc's own device arrays: contiguous memory on a CUDA GPU, or host memory that the CPU
interpreter reads and writes in place."""
from __future__ import annotations

import numpy as np

from .. import ir
from ..diagnostics import LaunchError
from . import cuda, dtypes, hip
from .devices import Device, current_device, parse_device


class DeviceArray:
    """A contiguous array on a device. `numpy()` copies it back (bf16 comes back as float32)."""

    def __init__(self, shape, dtype, device=None, stream=None):
        self.shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        self.dtype: ir.ScalarType = dtypes.to_ir(dtype)
        self.device: Device = parse_device(device) if device is not None else current_device()
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.itemsize = dtypes.storage(self.dtype).itemsize
        self.nbytes = self.size * self.itemsize
        self.host = None
        self.ptr = 0
        # the CUstream (a handle) in whose order the memory is allocated, filled and freed, or None: under a CUDA
        # graph's capture of that stream, memory the graph owns (release() before the capture ends frees it there)
        self.stream = None
        if stream is not None and self.device.kind == "hip":
            raise LaunchError("skc's arrays take stream= on CUDA devices (memory in a stream's order); leave it out "
                              "on AMD GPUs")
        if self.device.kind == "cuda" and stream is not None:
            if not isinstance(stream, int) or isinstance(stream, bool) or not 0 <= stream < 2 ** 64:
                raise LaunchError(f"an skc array's stream= is a CUstream handle (an int), found {stream!r}: pass "
                                  "skc.launch_stream(s) for a torch or cupy stream s")
            self.stream = stream
            self.ptr = cuda.allocate_in_stream(self.nbytes, self.stream, self.device.index)
            self._free = lambda address, stream=self.stream: cuda.free_in_stream(address, stream)
        elif self.device.kind == "cuda":
            self.ptr = cuda.allocate(self.nbytes, self.device.index)
            self._free = cuda.free
        elif self.device.kind == "hip":
            self.ptr = hip.allocate(self.nbytes, self.device.index)
            self._free = hip.free
        else:
            self.host = np.empty(self.shape, dtypes.storage(self.dtype))

    def __del__(self):
        free = getattr(self, "_free", None)
        if free is not None and self.ptr:
            try:
                free(self.ptr)
            except Exception:
                pass
            self.ptr = 0

    def release(self):
        """Free the memory now (a stream-ordered array's in its stream's order: a graph's free node while a capture
        of the stream goes on); the array must not be used after."""
        free = getattr(self, "_free", None)
        if free is not None and self.ptr:
            address, self.ptr = self.ptr, 0
            free(address)

    def __repr__(self):
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device={self.device})"

    def __len__(self):
        return self.shape[0]

    def reshape(self, *shape) -> "DeviceArray":
        """A view of the same memory with another shape (no copy), as numpy reshapes a contiguous array."""
        shape = tuple(int(s) for s in (shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list))
                                       else shape))
        if -1 in shape:
            known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
            shape = tuple(self.size // known if s == -1 and known else s for s in shape)
        if int(np.prod(shape, dtype=np.int64)) != self.size or min(shape, default=0) < 0:
            raise LaunchError(f"cannot view a DeviceArray of shape {self.shape} as {shape}")
        view = object.__new__(DeviceArray)
        view.__dict__.update(self.__dict__, shape=shape, _base=self, _free=None)   # the view never frees
        view.host = self.host.reshape(shape) if self.host is not None else None
        return view

    # -- copies ---------------------------------------------------------------------------
    def copy_from(self, array) -> "DeviceArray":
        """Fill from a host array of the same size (float arrays convert to bf16/fp8 storage)."""
        data = _storage_array(np.asarray(array), self.dtype)
        if data.size != self.size:
            raise LaunchError(f"cannot copy {data.size} elements into a DeviceArray of {self.size}")
        data = np.ascontiguousarray(data.reshape(self.shape))
        if self.host is not None:
            self.host[...] = data
        elif self.device.kind == "cuda":
            cuda.make_current(self.device.index)
            cuda.copy_to_device(self.ptr, data.ctypes.data, self.nbytes)
        else:
            hip.copy_to_device(self.ptr, data.ctypes.data, self.nbytes)
        return self

    def raw(self) -> np.ndarray:
        """A host copy of the stored bits (bf16 as uint16)."""
        if self.host is not None:
            return self.host.copy()
        out = np.empty(self.shape, dtypes.storage(self.dtype))
        if self.device.kind == "cuda":
            cuda.make_current(self.device.index)
            cuda.synchronize(self.device.index)
            cuda.copy_to_host(out.ctypes.data, self.ptr, self.nbytes)
        else:
            hip.copy_to_host(out.ctypes.data, self.ptr, self.nbytes)
        return out

    def numpy(self) -> np.ndarray:
        """A host copy; bf16 converts to float32 (numpy has no bf16)."""
        data = self.raw()
        if self.dtype is ir.bf16:
            return dtypes.bf16_bits_to_float32(data)
        return data

    def fill_bytes(self, byte: int) -> "DeviceArray":
        """Set every byte (e.g. 0xFF to poison outputs before a test)."""
        if self.host is not None:
            self.host.view(np.uint8)[...] = byte
        elif self.device.kind == "cuda":
            cuda.make_current(self.device.index)
            if self.stream is None:
                cuda.memset(self.ptr, byte, self.nbytes)
            else:
                cuda.memset_in_stream(self.ptr, byte, self.nbytes, self.stream)
        else:
            hip.memset(self.ptr, byte, self.nbytes)
        return self

    @property
    def __cuda_array_interface__(self):
        if self.device.kind != "cuda":
            raise AttributeError("only CUDA arrays have __cuda_array_interface__")
        return {"shape": self.shape, "typestr": dtypes.storage(self.dtype).str, "data": (self.ptr, False),
                "version": 3, "strides": None}


def _storage_array(array: np.ndarray, dtype: ir.ScalarType) -> np.ndarray:
    if dtype is ir.bf16 and array.dtype != np.uint16:
        return dtypes.float32_to_bf16_bits(array.astype(np.float32))
    if dtype.is_float and dtype.bits == 8 and array.dtype != np.uint8:
        if dtypes.numpy_name(array.dtype) == dtype.name:   # (ml_dtypes' array of the same format: its codes)
            return array.view(np.uint8)
        raise LaunchError(f"an {dtype.name} array is filled from an ml_dtypes array of that format or from uint8 "
                          f"bit patterns, not from {array.dtype}: convert it first (e.g. "
                          f"values.astype(ml_dtypes.{dtypes.ml_dtypes_name(dtype)})), which says how out-of-range values round")
    return array.astype(dtypes.storage(dtype), copy=False)


def to_device(array, dtype=None, device=None) -> DeviceArray:
    """Copy a host array to the device (the current one unless given); dtype converts (e.g. skc.bf16)."""
    try:
        host = np.asarray(array)
        source = dtypes.from_numpy(host.dtype)
    except (TypeError, ValueError) as error:   # (numpy's own, of a ragged list; UnsupportedDtypeError: None, strings)
        raise LaunchError(f"to_device's array is a {type(array).__name__}, which holds no numbers of a type skc "
                          f"takes ({error}): pass a numpy array, a CPU torch tensor or a list of numbers") from None
    try:
        target_dtype = dtypes.to_ir(dtype) if dtype is not None else source
    except dtypes.UnsupportedDtypeError as error:
        raise LaunchError(f"to_device's dtype: {error}") from None
    result = DeviceArray(host.shape, target_dtype, device)
    return result.copy_from(host)


def empty(shape, dtype, device=None, stream=None) -> DeviceArray:
    """An uninitialized array; `stream` (a CUstream handle): memory in that stream's order (DeviceArray)."""
    return DeviceArray(shape, dtype, device, stream)


def zeros(shape, dtype, device=None, stream=None) -> DeviceArray:
    """A zero-filled array; `stream`: memory in that stream's order, filled there (DeviceArray)."""
    return DeviceArray(shape, dtype, device, stream).fill_bytes(0)
