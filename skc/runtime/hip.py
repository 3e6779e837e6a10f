"""The HIP runtime through hip-python (AMD GPUs). Without hip-python or a ROCm runtime, every
call raises a DeviceError that names what is missing; compiling for AMD never needs either."""
from __future__ import annotations

import functools

from ..diagnostics import DeviceError


@functools.lru_cache(maxsize=None)
def _hip():
    try:
        from hip import hip
    except ImportError as e:
        raise DeviceError(f"AMD launches need hip-python, which is not installed ({e}); "
                          "install skc's 'amd' extra: pip install 'skc[amd]'") from None
    try:
        status = hip.hipInit(0)
    except RuntimeError as e:  # "failed to dlopen 'libamdhip64.so'"
        raise DeviceError(f"no ROCm runtime found: {e}; install ROCm (libamdhip64.so) to launch on AMD GPUs") \
            from None
    _check(hip, status, "hipInit")
    return hip


def _check(hip, result, name: str):
    status = result[0] if isinstance(result, tuple) else result
    if int(status) != 0:
        raise DeviceError(f"{name} failed: {_error_text(hip, status)}")
    if isinstance(result, tuple):
        rest = result[1:]
        return rest[0] if len(rest) == 1 else rest
    return None


def _error_text(hip, status) -> str:
    """'hipErrorInvalidValue (invalid argument)'; hip-python gives (hipSuccess, text) for the texts."""
    texts = []
    for query in ("hipGetErrorName", "hipGetErrorString"):
        try:
            out = getattr(hip, query)(status)
        except Exception:
            continue
        text = out[1] if isinstance(out, tuple) else out
        if text is not None:
            texts.append(text.decode(errors="replace") if hasattr(text, "decode") else str(text))
    if not texts:
        return str(status)
    return texts[0] if len(texts) == 1 else f"{texts[0]} ({texts[1]})"


def error_text(status) -> str:
    return _error_text(_hip(), status)


def call(name: str, *args):
    hip = _hip()
    return _check(hip, getattr(hip, name)(*args), name)


def device_count() -> int:
    return int(call("hipGetDeviceCount"))


def properties(index: int):
    hip = _hip()
    props = hip.hipDeviceProp_t()
    _check(hip, hip.hipGetDeviceProperties(props, index), "hipGetDeviceProperties")
    return props


def device_name(index: int) -> str:
    name = properties(index).name
    return name.decode() if isinstance(name, bytes) else str(name)


def architecture(index: int) -> str:
    """The gfx name of the device ('gfx942:sramecc+:xnack-' gives 'gfx942')."""
    arch = properties(index).gcnArchName
    arch = arch.decode() if isinstance(arch, bytes) else str(arch)
    return arch.split(":")[0]


def allocate(nbytes: int, device: int = 0) -> int:
    call("hipSetDevice", device)
    return int(call("hipMalloc", max(1, nbytes)))


def free(address: int):
    try:
        call("hipFree", address)
    except DeviceError:
        pass


def copy_to_device(address: int, host_address: int, nbytes: int):
    hip = _hip()
    call("hipMemcpy", address, host_address, nbytes, hip.hipMemcpyKind.hipMemcpyHostToDevice)


def copy_to_host(host_address: int, address: int, nbytes: int):
    hip = _hip()
    call("hipDeviceSynchronize")
    call("hipMemcpy", host_address, address, nbytes, hip.hipMemcpyKind.hipMemcpyDeviceToHost)


def memset(address: int, byte: int, nbytes: int):
    call("hipMemset", address, byte, nbytes)


# -- code objects ------------------------------------------------------------------------------
# hip_runtime_api.h: the `extra` launch array's tags.
LAUNCH_PARAM_BUFFER_POINTER, LAUNCH_PARAM_BUFFER_SIZE, LAUNCH_PARAM_END = 0x01, 0x02, 0x03


class Module:
    """A loaded code object (.hsaco) and its kernel function, on one device."""

    def __init__(self, image: bytes, kernel_name: str, device: int):
        call("hipSetDevice", device)
        self.image = image  # the runtime may read it after loading
        self.handle = call("hipModuleLoadData", image)
        self.function = call("hipModuleGetFunction", self.handle, kernel_name.encode())
        self.device = device

    def launch_function(self):
        """hip-python's hipModuleLaunchKernel (the launcher calls it directly on its hot path)."""
        return _hip().hipModuleLaunchKernel
