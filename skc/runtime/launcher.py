"""Launchers: turn a call's arguments into a kernel launch.

The CUDA launcher keeps one ctypes slot per parameter and a ready array of pointers to them,
so a launch only writes each argument into its slot and calls cuLaunchKernel. The
interpreter launcher maps host arrays into the interpreter's memory and runs the tile IR.
Every check that can fail happens before anything is launched.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from .. import ir
from ..diagnostics import DeviceError, LaunchError
from . import dtypes
from .arrays import DeviceArray
from .devices import Device
from .interop import tensor_facts

POINTER, SCALAR, TENSORMAP = "pointer", "scalar", "tensormap"

_CTYPES = {"i1": ctypes.c_uint8, "i8": ctypes.c_int8, "i16": ctypes.c_int16, "i32": ctypes.c_int32,
           "i64": ctypes.c_int64, "u8": ctypes.c_uint8, "u16": ctypes.c_uint16, "u32": ctypes.c_uint32,
           "u64": ctypes.c_uint64, "f16": ctypes.c_uint16, "bf16": ctypes.c_uint16, "f32": ctypes.c_float,
           "f64": ctypes.c_double, "f8e4m3": ctypes.c_uint8, "f8e5m2": ctypes.c_uint8}


@dataclass(frozen=True)
class LaunchParam:
    """A run-time kernel parameter: its name, kind and type (the element type for pointers)."""

    name: str
    kind: str
    type: object = None


def normalize_stream(stream) -> int:
    """A CUstream handle from None, an int, a torch or cupy stream, or a `__cuda_stream__` object."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    for attribute in ("cuda_stream", "ptr", "handle"):
        value = getattr(stream, attribute, None)
        if isinstance(value, int):
            return value
    protocol = getattr(stream, "__cuda_stream__", None)
    if protocol is not None:
        return int(protocol()[1])
    raise LaunchError(f"cannot use {type(stream).__name__} as a CUDA stream; pass a torch/cupy stream or an int")


def _scalar_setter(slot, t: ir.ScalarType, name: str):
    if t.name in ("f16", "bf16"):
        def set_half(value):
            if t.name == "f16":
                slot.value = int(np.float16(value).view(np.uint16))
            else:
                slot.value = int(dtypes.float32_to_bf16_bits(np.array([value], np.float32))[0])
        return set_half
    if t.is_float:
        def set_float(value):
            slot.value = value
        return set_float

    def set_int(value):
        slot.value = value
    return set_int


class CudaLauncher:
    """Launches one loaded kernel; `__call__` is the per-launch hot path."""

    def __init__(self, module, params, shared_bytes: int, device: Device, kernel_name: str):
        from . import cuda

        self.function = module.function
        self.params = params
        self.shared_bytes = shared_bytes
        self.device = device
        self.kernel_name = kernel_name
        self.slots, self.setters = [], []
        for p in params:
            if p.kind == POINTER:
                slot = ctypes.c_uint64()
                self.setters.append(self._pointer_setter(slot, p))
            elif p.kind == SCALAR:
                slot = _CTYPES[p.type.name]()
                self.setters.append(_scalar_setter(slot, p.type, p.name))
            else:  # a tensor map: 128 bytes passed by value
                slot = (ctypes.c_uint8 * 128)()
                self.setters.append(self._tensormap_setter(slot, p))
            self.slots.append(slot)
        self.pointers = (ctypes.c_void_p * max(1, len(self.slots)))(*[ctypes.addressof(s) for s in self.slots])
        self.address = ctypes.addressof(self.pointers)
        self._launch = cuda.driver().cuLaunchKernel
        self._error_text = cuda.error_text

    def _pointer_setter(self, slot, param: LaunchParam):
        device_index = self.device.index
        kernel = self.kernel_name

        def set_pointer(arg):
            kind = type(arg)
            if kind is DeviceArray:
                if arg.device.kind != "cuda" or arg.device.index != device_index:
                    raise LaunchError(f"{kernel}: argument '{param.name}' is on {arg.device}, the kernel runs on "
                                      f"cuda:{device_index}", )
                slot.value = arg.ptr
                return
            facts = tensor_facts(arg)
            if facts is None:
                raise LaunchError(f"{kernel}: argument '{param.name}' must be a device array or tensor, "
                                  f"found {kind.__name__}")
            where, index = facts.device
            if where != "cuda":
                hint = " (a host array: copy it with skc.to_device(x) or x.cuda())" if where == "cpu" else ""
                raise LaunchError(f"{kernel}: argument '{param.name}' is in {where} memory{hint}; "
                                  f"the kernel runs on cuda:{device_index}")
            if index is not None and index != device_index:
                raise LaunchError(f"{kernel}: argument '{param.name}' is on cuda:{index}, the kernel runs on "
                                  f"cuda:{device_index}")
            slot.value = facts.pointer(arg)
        return set_pointer

    def _tensormap_setter(self, slot, param: LaunchParam):
        def set_tensormap(arg):
            data = getattr(arg, "descriptor_bytes", None)
            if data is None:
                raise LaunchError(f"{self.kernel_name}: argument '{param.name}' must be an skc.TensorMap")
            ctypes.memmove(slot, data, 128)
        return set_tensormap

    def __call__(self, args, grid, block, stream: int):
        for setter, arg in zip(self.setters, args):
            setter(arg)
        result = self._launch(self.function, grid[0], grid[1], grid[2], block[0], block[1], block[2],
                              self.shared_bytes, stream, self.address, 0)[0]
        if int(result):
            raise DeviceError(f"cuLaunchKernel of {self.kernel_name} (grid {grid}, block {block}, "
                              f"{self.shared_bytes} bytes of shared memory) failed: {self._error_text(result)}")


class InterpreterLauncher:
    """Runs a kernel's tile IR in the CPU interpreter over host arrays (written in place)."""

    def __init__(self, function: ir.Function, params, target):
        self.function, self.params, self.target = function, params, target

    def __call__(self, args, grid, block, stream=None):
        from .interpreter import Memory, run

        memory = Memory()
        values = []
        for param, arg in zip(self.params, args):
            if param.kind == POINTER:
                values.append(memory.map_array(host_view(arg, param.name, self.function.name), name=param.name))
            elif param.kind == SCALAR:
                values.append(arg)
            else:
                values.append(arg)
        run(self.function, grid=grid, block=block, args=values, memory=memory, target=self.target,
            arg_names=[p.name for p in self.params])


def host_view(arg, name: str, kernel: str) -> np.ndarray:
    """A numpy view of a host array argument (writes through to it)."""
    if isinstance(arg, DeviceArray):
        if arg.host is None:
            raise LaunchError(f"{kernel}: argument '{name}' lives on {arg.device}; the interpreter runs on host "
                              f"memory (create it with device='interpreter', or call .numpy())")
        return arg.host
    if isinstance(arg, np.ndarray):
        view = arg
    else:
        facts = tensor_facts(arg)
        if facts is None:
            raise LaunchError(f"{kernel}: argument '{name}' must be an array or tensor, found {type(arg).__name__}")
        if facts.device[0] != "cpu":
            raise LaunchError(f"{kernel}: argument '{name}' is in {facts.device[0]} memory; the interpreter needs "
                              "host arrays (numpy, CPU tensors, or skc arrays on the interpreter device)")
        view = arg.numpy() if hasattr(arg, "numpy") else np.from_dlpack(arg)
    if not view.flags.c_contiguous:
        raise LaunchError(f"{kernel}: argument '{name}' is not contiguous; pass np.ascontiguousarray(x)")
    return view
