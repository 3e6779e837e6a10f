"""The CUDA driver through cuda-python: initialization, primary contexts, memory, modules.

Every driver call goes through `call`, which raises a DeviceError naming the call and the
CUDA error. Without an NVIDIA driver the first use raises a DeviceError that says so.
"""
from __future__ import annotations

import functools
import os
import threading

from ..diagnostics import DeviceError

# Re-entrant: the import and cuInit run Python, where a finalizer the garbage collector runs may launch a kernel,
# which asks for the driver on the same thread. That nested call initializes the driver itself (cuInit may run
# twice; a DeviceError while the import is half done) instead of waiting for a lock its own thread holds.
_lock = threading.RLock()
_state = {"driver": None, "error": None}

_FORKED = ("CUDA was initialized in this process's parent before it forked (os.fork, multiprocessing's 'fork' start "
           "method, a DataLoader's workers): the parent's CUDA context, modules and memory are not the child's, and "
           "CUDA cannot be initialized again in it. Start the workers with the 'spawn' start method "
           "(multiprocessing.get_context('spawn'), DataLoader(..., multiprocessing_context='spawn')), or use the GPU "
           "in the parent only after the workers start")


def _after_fork_in_child():
    """A forked child refuses the driver its parent initialized, by name (every driver call, and the error text of a
    launch that the driver refuses, ask driver()), rather than hand it the parent's handles; the lock is new, as a
    thread of the parent's may have held it at the fork."""
    global _lock
    _lock = threading.RLock()
    if _state["driver"] is not None:
        _state.update(driver=None, error=_FORKED)


if hasattr(os, "register_at_fork"):   # (POSIX only)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def driver():
    """cuda.bindings.driver, initialized; a DeviceError when there is no usable NVIDIA driver."""
    module = _state["driver"]
    if module is not None:
        return module
    with _lock:
        if _state["driver"] is not None:
            return _state["driver"]
        if _state["error"] is not None:
            raise DeviceError(_state["error"])
        try:
            from cuda.bindings import driver as module
        except ImportError as e:
            _state["error"] = f"cuda-python is not installed ({e}); pip install cuda-python"
            raise DeviceError(_state["error"]) from None
        try:
            (result,) = module.cuInit(0)
        except Exception as e:  # DynamicLibNotFoundError when libcuda is absent
            _state["error"] = f"no NVIDIA driver found (libcuda could not be loaded: {e})"
            raise DeviceError(_state["error"]) from None
        if int(result) != 0:
            _state["error"] = f"the NVIDIA driver failed to initialize: {_error_text(module, result)}"
            raise DeviceError(_state["error"])
        _state["driver"] = module
        return module


def install_driver(module) -> dict:
    """Use `module` as the driver from now on (a test double: runtime.fake_cuda); gives what restore_driver
    takes to put the previous one back."""
    saved = dict(_state)
    _state.update(driver=module, error=None)
    return saved


def restore_driver(saved: dict):
    _state.clear()
    _state.update(saved)


def error_text(result) -> str:
    """The name and description of a CUresult."""
    return _error_text(driver(), result)


# what a driver error of stream capture (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, _INVALIDATED, _IMPLICIT...) means
# for an skc call: torch.cuda.graph captures in the global mode, where loading a module or allocating is refused
_CAPTURE_HINT = ("; a CUDA graph was capturing a stream, and the driver allows no module load, allocation or "
                 "synchronization then (skc makes them at a kernel's first launch, a plan's first call, a timing): "
                 "make the same call once before capturing (a warm-up, as torch.cuda.graph asks), then capture again")


def _error_text(module, result) -> str:
    try:
        if type(result) is int and hasattr(module, "CUresult"):   # the native launch entry gives plain ints
            result = module.CUresult(result)
        _, name = module.cuGetErrorName(result)
        _, text = module.cuGetErrorString(result)
        name = name.decode()
        return f"{name} ({text.decode()}){_CAPTURE_HINT if 'STREAM_CAPTURE' in name else ''}"
    except Exception:
        return str(result)


def capturing(stream: int) -> bool:
    """Whether a CUDA graph captures `stream`, or (the legacy default stream, 0) a stream that it would have to wait
    for, which the driver reports as CUDA_ERROR_STREAM_CAPTURE_IMPLICIT."""
    module = driver()
    result, *status = module.cuStreamIsCapturing(stream)
    if int(result) != 0:
        if "STREAM_CAPTURE_IMPLICIT" in _error_text(module, result):
            return True
        raise DeviceError(f"cuStreamIsCapturing failed: {_error_text(module, result)}")
    return int(status[0]) != 0


def call(name: str, *args):
    """Call driver function `name`; give its outputs (None, one value, or a tuple)."""
    module = driver()
    out = getattr(module, name)(*args)
    result = out[0]
    if int(result) != 0:
        raise DeviceError(f"{name} failed: {_error_text(module, result)}")
    rest = out[1:]
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def launch_entry():
    """(launch, handle, address): `launch(handle(function), gx, gy, gz, bx, by, bz, shared_bytes, stream, params)`
    launches a kernel with a kernelParams array at address `params` (stream an int) and gives the CUresult as an int.

    With the real driver, `launch` is runtime.native's builtin around libcuda's cuLaunchKernel (a C call that takes
    Python ints: cuda.bindings' wrapper costs about as much again as the driver), and `address` that C function's
    (for runtime.native's per-kernel launches). With a driver module that has no C entry (a test double without
    `cuLaunchKernel_address`; an interpreter the native code cannot run on, or a host where the JIT fails), it
    calls the module's cuLaunchKernel, and `address` is None."""
    from . import native

    module = driver()
    address = getattr(module, "cuLaunchKernel_address", None)   # a test double's C entry
    if address is None and getattr(module, "__name__", "").startswith("cuda.bindings"):
        try:
            import ctypes

            address = ctypes.cast(ctypes.CDLL("libcuda.so.1").cuLaunchKernel, ctypes.c_void_p).value
        except (OSError, AttributeError):
            address = None
    if address is not None and native.supported():
        try:
            return native.launcher(address), int, address
        except DeviceError:
            pass
    python_launch = module.cuLaunchKernel

    def launch(function, gx, gy, gz, bx, by, bz, shared_bytes, stream, params):
        return int(python_launch(function, gx, gy, gz, bx, by, bz, shared_bytes, stream, params, 0)[0])
    return launch, _same, None


def _same(function):
    return function


def available() -> bool:
    try:
        return device_count() > 0
    except DeviceError:
        return False


@functools.lru_cache(maxsize=None)
def device_count() -> int:
    return call("cuDeviceGetCount")


@functools.lru_cache(maxsize=None)
def device_handle(index: int):
    count = device_count()
    if not 0 <= index < count:
        raise DeviceError(f"CUDA device {index} does not exist ({count} device(s) present)")
    return call("cuDeviceGet", index)


@functools.lru_cache(maxsize=None)
def device_name(index: int) -> str:
    raw = call("cuDeviceGetName", 256, device_handle(index))
    return raw.split(b"\0", 1)[0].decode()


@functools.lru_cache(maxsize=None)
def attribute(index: int, name: str) -> int:
    module = driver()
    attr = getattr(module.CUdevice_attribute, f"CU_DEVICE_ATTRIBUTE_{name}")
    return int(call("cuDeviceGetAttribute", attr, device_handle(index)))


def compute_capability(index: int) -> tuple[int, int]:
    return attribute(index, "COMPUTE_CAPABILITY_MAJOR"), attribute(index, "COMPUTE_CAPABILITY_MINOR")


@functools.lru_cache(maxsize=None)
def primary_context(index: int):
    """The device's primary context (shared with torch, cupy and the CUDA runtime)."""
    return call("cuDevicePrimaryCtxRetain", device_handle(index))


_ONE_BLOCK_AN_SM = b""".version 8.0
.target sm_90a
.address_size 64
.visible .entry skc_cluster_probe() { ret; }
"""


def resident_clusters(index: int, size: int) -> int:
    """How many clusters of `size` blocks the device runs at once when each block takes a whole SM's shared memory
    (a persistent GEMM's blocks): the driver's count, which a GPU whose SMs do not group evenly into clusters makes
    smaller than SMs / size (an H200: 30 clusters of 4 on 132 SMs). Where the driver cannot answer (it cannot load
    the probe inside a graph capture, say), the SMs in whole clusters, asking again next time."""
    multiprocessors = attribute(index, "MULTIPROCESSOR_COUNT")
    if size == 1 or compute_capability(index)[0] < 9:
        return multiprocessors // size
    try:
        count = counted_clusters(index, size)
    except DeviceError:
        count = 0
    return count if count > 0 else multiprocessors // size


@functools.lru_cache(maxsize=None)
def counted_clusters(index: int, size: int) -> int:
    """The driver's count for resident_clusters (cached only when the driver answers)."""
    module = driver()
    shared = attribute(index, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN")
    probe = Module(_ONE_BLOCK_AN_SM, "skc_cluster_probe", index, shared)
    config = module.CUlaunchConfig()
    config.gridDimX, config.gridDimY, config.gridDimZ = size, 1, 1   # (a grid of whole clusters)
    config.blockDimX, config.blockDimY, config.blockDimZ = 128, 1, 1
    config.sharedMemBytes = shared
    cluster = module.CUlaunchAttribute()
    cluster.id = module.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
    cluster.value.clusterDim.x, cluster.value.clusterDim.y, cluster.value.clusterDim.z = size, 1, 1
    config.attrs, config.numAttrs = [cluster], 1
    return int(call("cuOccupancyMaxActiveClusters", probe.function, config))


def make_current(index: int):
    context = primary_context(index)
    call("cuCtxSetCurrent", context)
    return context


def synchronize(index: int = 0):
    make_current(index)
    call("cuCtxSynchronize")


class Module:
    """A loaded cubin or PTX image and its kernel function."""

    def __init__(self, image: bytes, kernel_name: str, device: int, dynamic_shared: int = 0):
        import ctypes

        make_current(device)
        buffer = ctypes.create_string_buffer(image)  # NUL-terminated: the driver reads PTX as a C string
        self.handle = call("cuModuleLoadData", ctypes.addressof(buffer))
        self.function = call("cuModuleGetFunction", self.handle, kernel_name.encode())
        self.device = device
        if dynamic_shared > 48 * 1024:
            module = driver()
            attr = module.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            call("cuFuncSetAttribute", self.function, attr, dynamic_shared)

    def attribute(self, name: str) -> int:
        module = driver()
        attr = getattr(module.CUfunction_attribute, f"CU_FUNC_ATTRIBUTE_{name}")
        return int(call("cuFuncGetAttribute", attr, self.function))


# -- memory --------------------------------------------------------------------------------
def allocate(nbytes: int, device: int = 0) -> int:
    make_current(device)
    return int(call("cuMemAlloc", max(1, nbytes)))


def free(address: int):
    module = _state["driver"]
    if module is not None and address:
        module.cuMemFree(address)


def allocate_in_stream(nbytes: int, stream: int, device: int = 0) -> int:
    """Memory allocated in `stream`'s order (cuMemAllocAsync): under a CUDA graph's capture of the stream, an
    allocation node of the graph, whose memory the graph owns (a free in the stream's order before the capture ends,
    free_in_stream, makes its free node)."""
    make_current(device)
    return int(call("cuMemAllocAsync", max(1, nbytes), stream))


def free_in_stream(address: int, stream: int):
    """Free memory of allocate_in_stream in `stream`'s order (cuMemFreeAsync); nothing once the driver is gone."""
    if address and _state["driver"] is not None:
        call("cuMemFreeAsync", address, stream)


def memset_in_stream(address: int, byte: int, nbytes: int, stream: int):
    """Set nbytes bytes in `stream`'s order (cuMemsetD8Async): a memset node of a graph capturing the stream."""
    if nbytes:
        call("cuMemsetD8Async", address, byte, nbytes, stream)


def copy_to_device(address: int, host_address: int, nbytes: int):
    if nbytes:
        call("cuMemcpyHtoD", address, host_address, nbytes)


def copy_to_host(host_address: int, address: int, nbytes: int):
    if nbytes:
        call("cuMemcpyDtoH", host_address, address, nbytes)


def memset(address: int, byte: int, nbytes: int):
    if nbytes:
        call("cuMemsetD8", address, byte, nbytes)


# -- timing ----------------------------------------------------------------------------------
def time_ms(run, repeats: int, index: int = 0, stream: int = 0) -> float:
    """The median milliseconds of `run()` (which launches work on `stream`), measured with CUDA events."""
    make_current(index)
    start, end = call("cuEventCreate", 0), call("cuEventCreate", 0)
    samples = []
    try:
        for _ in range(repeats):
            call("cuEventRecord", start, stream)
            run()
            call("cuEventRecord", end, stream)
            call("cuEventSynchronize", end)
            samples.append(float(call("cuEventElapsedTime", start, end)))
    finally:
        driver().cuEventDestroy(start)
        driver().cuEventDestroy(end)
    return sorted(samples)[len(samples) // 2]
