"""The HIP launcher: launches a compiled AMD kernel through hip-python, with the CUDA launcher's
call interface (`launch(args, grid, stream)`).

The kernel arguments live in one kernel-argument image laid out as the code object's metadata
says (each explicit argument's offset and size). Each parameter's slot is a ctypes view into that
image, so a launch writes every argument in place and hands the image to hipModuleLaunchKernel
through its `extra` array (HIP_LAUNCH_PARAM_BUFFER_POINTER / _SIZE / _END). The runtime copies
the explicit arguments from it and fills the hidden ones (block counts and sizes) itself.
"""
from __future__ import annotations

import ctypes

from ..diagnostics import DeviceError, LaunchError
from . import hip
from .devices import Device
from .launcher import CTYPES, DeviceLauncher
from .signature import POINTER, SCALAR

_VALUE_KINDS = {POINTER: ("global_buffer",), SCALAR: ("by_value",)}


def kernarg_layout(compiled) -> tuple:
    """(size in bytes, [(offset, ctypes type)] per parameter) of a compiled AMD kernel's explicit
    arguments, checked against its parameters; a LaunchError when they disagree."""
    name = compiled.name
    # The compile driver records the code object's explicit arguments (see compiler._record_amdgpu_metadata).
    arguments = compiled.metadata.get("kernel_arguments")
    if compiled.binary is None or arguments is None:
        raise LaunchError(f"{name} was compiled for {compiled.target.name}, not into an AMD code object; "
                          "compile it for gfx942 or gfx90a to launch it on a HIP device")
    if len(arguments) != len(compiled.params):
        raise LaunchError(f"{name}: the code object has {len(arguments)} kernel arguments, the kernel "
                          f"{len(compiled.params)} parameters")
    slots, size = [], 0
    for param, argument in zip(compiled.params, arguments):
        if param.kind not in _VALUE_KINDS:
            raise LaunchError(f"{name}: argument '{param.name}' is a {param.kind}, which AMD kernels cannot take")
        kind = _VALUE_KINDS[param.kind]
        ctype = ctypes.c_uint64 if param.kind == POINTER else CTYPES[param.type.name]
        offset, nbytes = argument[".offset"], argument[".size"]
        if argument.get(".value_kind") not in kind or ctypes.sizeof(ctype) != nbytes or offset % nbytes:
            raise LaunchError(f"{name}: argument '{param.name}' ({param.kind} {param.type}) does not match the code "
                              f"object's argument {argument}")
        slots.append((offset, ctype))
        size = max(size, offset + nbytes)
    return size, slots


class HipLauncher(DeviceLauncher):
    """Launches one compiled AMD kernel (its .hsaco loaded with hipModuleLoadData) on a HIP device."""

    memory = "hip"

    def __init__(self, compiled, device: Device):
        self.kernel_name, self.params, self.device = compiled.name, compiled.params, device
        self.block, self.shared_bytes = tuple(compiled.block), compiled.shared_bytes
        size, layout = kernarg_layout(compiled)
        self.module = hip.Module(compiled.binary, compiled.name, device.index)  # DeviceError without ROCm
        # 8-byte words: the image is aligned for every argument (the segment's alignment is 8 or less here).
        self.image = (ctypes.c_uint64 * max(1, -(-size // 8)))()
        self.slots = [ctype.from_buffer(self.image, offset) for offset, ctype in layout]
        self.image_size = ctypes.c_size_t(size)
        self.extra = (ctypes.c_void_p * 5)(hip.LAUNCH_PARAM_BUFFER_POINTER, ctypes.addressof(self.image),
                                           hip.LAUNCH_PARAM_BUFFER_SIZE, ctypes.addressof(self.image_size),
                                           hip.LAUNCH_PARAM_END)
        bx, by, bz = self.block
        # The LDS is static (the code object's group segment): no dynamic shared memory at launch.
        self.launch = self._generate(
            f"_launch(_f, gx, gy, gz, {bx}, {by}, {bz}, 0, stream, None, _extra)[0]", "int(r)",
            {"_launch": self.module.launch_function(), "_f": self.module.function,
             "_extra": ctypes.addressof(self.extra)})

    def _fail(self, result, grid):
        raise DeviceError(f"hipModuleLaunchKernel of {self.kernel_name} (grid {grid}, block {self.block}, "
                          f"{self.shared_bytes} bytes of LDS) failed: {hip.error_text(result)}")
