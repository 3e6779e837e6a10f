"""A stand-in for cuda.bindings.driver that launches nothing: it records each cuLaunchKernel (function, grid,
block, shared bytes, stream, the argument values) and encodes tensor maps as their address and geometry.

It exists to check and time skc's host path on a machine without a GPU: `with fake_cuda.installed() as fake:`
makes `cuda:0` (an sm_90a device with `multiprocessors` SMs) the current device; kernels compile for it, load
and launch through the real launchers, and `fake.launches` shows what reached the driver.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import struct
import types
import zlib
from typing import Optional

from . import cuda, devices, launcher, tma


class _Names:
    """An enum namespace: every attribute is its own name."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return name


class _Encoded:
    def __init__(self, data: bytes):
        self.buffer = ctypes.create_string_buffer(data, 128)

    def getPtr(self):
        return ctypes.addressof(self.buffer)


class FunctionName(str):
    """A fake kernel handle: the kernel's name, which also converts to an int (for a C launch entry,
    `FakeDriver.cuLaunchKernel_address`, that tests may set)."""

    def __int__(self):
        return zlib.crc32(self.encode()) or 1


class FakeDriver:
    """The driver calls skc makes, each returning (CUDA_SUCCESS, outputs...)."""

    CUdevice_attribute = CUfunction_attribute = CUtensorMapDataType = CUtensorMapSwizzle = _Names()
    CUtensorMapInterleave = CUtensorMapL2promotion = CUtensorMapFloatOOBfill = CUlaunchAttributeID = _Names()
    cuuint64_t = cuuint32_t = int

    def __init__(self, multiprocessors: int = 132, record: bool = True, gpus: int = 1):
        self.gpus = gpus   # how many GPUs it has (alike)
        self.attributes = {"CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR": 9,
                           "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR": 0,
                           "CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT": multiprocessors}
        self.launches: list = []
        self.encodes = 0
        self.record = record
        self.inspect = None  # function(kernelParams address) -> what a test wants to know of a launch
        self.checksum = False  # encode a word that depends on the address besides the address itself
        self.functions: dict = {}  # function handle -> the slot types of its parameters (set by tests)
        # cuda.launch_entry takes a C function at this address instead of cuLaunchKernel when a test sets it
        self.cuLaunchKernel_address = None
        self.cluster_holes = 12
        self.capturing: set = set()   # the streams a CUDA graph captures (cuStreamIsCapturing)
        # the stream-ordered allocations, memsets and frees, in order, each with the count of launches before it
        self.in_stream: list = []

    def cuInit(self, flags):
        return (0,)

    def cuDeviceGetCount(self):
        return (0, self.gpus)

    def cuDeviceGet(self, index):
        return (0, index)

    def cuDeviceGetName(self, size, device):
        return (0, b"skc fake sm_90a\0")

    def cuDeviceGetAttribute(self, attribute, device):
        return (0, self.attributes.get(attribute, 1 << 16))

    def cuDevicePrimaryCtxRetain(self, device):
        return (0, 1)

    def cuCtxSetCurrent(self, context):
        return (0,)

    def cuCtxSynchronize(self):
        self.synchronizes = getattr(self, "synchronizes", 0) + 1
        return (0,)

    def cuModuleLoadData(self, address):
        return (0, address)

    def cuMemAlloc(self, nbytes):
        """A made-up device address (nothing is stored), counted in `allocations`."""
        self.allocations = getattr(self, "allocations", 0) + 1
        address = _NEXT_ADDRESS[0]
        _NEXT_ADDRESS[0] += -(-max(1, nbytes) // 256) * 256
        return (0, address)

    def cuMemFree(self, address):
        return (0,)

    def cuMemAllocAsync(self, nbytes, stream):
        """As cuMemAlloc, recorded in `in_stream` as ("alloc", address, nbytes, stream, launches before it)."""
        _, address = self.cuMemAlloc(nbytes)
        self.in_stream.append(("alloc", address, nbytes, stream, len(self.launches)))
        return (0, address)

    def cuMemFreeAsync(self, address, stream):
        self.in_stream.append(("free", address, stream, len(self.launches)))
        return (0,)

    def cuMemsetD8Async(self, address, byte, nbytes, stream):
        self.in_stream.append(("memset", address, byte, nbytes, stream, len(self.launches)))
        return (0,)

    def cuStreamIsCapturing(self, stream):
        return (0, 1 if stream in self.capturing else 0)   # (CU_STREAM_CAPTURE_STATUS_ACTIVE, or _NONE)

    def cuMemsetD8(self, address, byte, nbytes):
        return (0,)

    def cuModuleGetFunction(self, module, name):
        return (0, FunctionName(name.decode()))

    def cuFuncSetAttribute(self, function, attribute, value):
        return (0,)

    class CUlaunchConfig:
        """A launch configuration (cuOccupancyMaxActiveClusters reads its grid and cluster attribute)."""

    class CUlaunchAttribute:
        def __init__(self):
            self.value = types.SimpleNamespace(clusterDim=types.SimpleNamespace(x=1, y=1, z=1))

    def cuOccupancyMaxActiveClusters(self, function, config):
        """As an H200 counts them: clusters of 4 or 8 leave 12 of its 132 SMs idle (`cluster_holes` SMs here)."""
        size = config.attrs[0].value.clusterDim.x
        if config.gridDimX % size:   # as the driver: CUDA_ERROR_INVALID_CLUSTER_SIZE
            return (912,)
        sms = self.attributes["CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT"]
        return (0, max(0, sms - (self.cluster_holes if size >= 4 else 0)) // size)

    def cuTensorMapEncodeTiled(self, data_type, rank, pointer, dims, strides, box, element_strides, *modes):
        self.encodes += 1
        words = [pointer, rank, *dims, *strides, *box] + ([pointer % 251] if self.checksum else [])
        return (0, _Encoded(struct.pack(f"<{len(words)}Q", *words)))

    def cuLaunchKernel(self, function, gx, gy, gz, bx, by, bz, shared, stream, arguments, extra):
        if self.record:
            # the kernelParams array is rewritten by the next launch: `inspect` reads what this one passes
            seen = self.inspect(arguments) if self.inspect is not None else None
            self.launches.append({"function": function, "grid": (gx, gy, gz), "block": (bx, by, bz),
                                  "shared": shared, "stream": stream, "arguments": arguments, "seen": seen})
        return (0,)


def argument_pointers(arguments: int, count: int) -> list:
    """The addresses of the first `count` parameter values of a kernelParams array."""
    return list((ctypes.c_void_p * count).from_address(arguments))


_SHARED: list = []


@contextlib.contextmanager
def installed(multiprocessors: int = 132, record: bool = True, gpus: int = 1):
    """The fake driver (of `gpus` GPUs) in place of the real one, and cuda:0 the current device, for the `with`
    block."""
    caches = (cuda.device_count, cuda.device_handle, cuda.device_name, cuda.attribute, cuda.primary_context,
              cuda.counted_clusters)
    # one driver object per process: launchers made under an earlier `installed()` hold its bound methods
    fake = _SHARED[0] if _SHARED else FakeDriver()
    _SHARED[:] = [fake]
    fake.__init__(multiprocessors, record, gpus)
    tma.forget_encoded()
    _forget(caches)
    saved_state = cuda.install_driver(fake)
    saved_device = devices.swap_selection(devices.Device("cuda", 0))
    try:
        yield fake
    finally:
        cuda.restore_driver(saved_state)
        devices.swap_selection(saved_device)
        _forget(caches)


def _forget(caches):
    """Drop what the runtime cached about the driver's devices (a different driver answers now)."""
    for cache in caches:
        cache.cache_clear()
    devices.forget_targets()


_NEXT_ADDRESS = [1 << 32]
_TYPESTR = {"float16": "<f2", "float32": "<f4", "int32": "<i4", "float64": "<f8"}


class FakeTensor:
    """A row-major device tensor at a made-up (16-byte aligned) address, exporting __cuda_array_interface__ as
    cupy does; enough of an array for skc's launchers, tensor maps and skc.blocks.matmul. Nothing is stored."""

    def __init__(self, shape, dtype: str = "float16", strides=None, address=None):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.itemsize = int(_TYPESTR[dtype][-1])
        if strides is None:
            strides, step = [], 1
            for size in reversed(self.shape):
                strides.insert(0, step)
                step *= size
        self._strides = tuple(strides)
        self.strides = tuple(s * self.itemsize for s in self._strides)
        if address is None:
            address = _NEXT_ADDRESS[0]
            _NEXT_ADDRESS[0] += max(256, -(-self.itemsize * max(1, _count(self.shape)) // 256) * 256)
        self.address = address

    def stride(self):
        return self._strides

    @property
    def T(self):
        return FakeTensor(self.shape[::-1], self.dtype, self._strides[::-1], self.address)

    def new_empty(self, shape):
        return FakeTensor(shape, self.dtype)

    def reshape(self, shape):
        return FakeTensor(shape, self.dtype, None, self.address)

    def __getitem__(self, index: int):
        return FakeTensor(self.shape[1:], self.dtype, self._strides[1:],
                          self.address + index * self._strides[0] * self.itemsize)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": _TYPESTR[self.dtype], "data": (self.address, False),
                "strides": self.strides, "version": 3}


def _count(shape) -> int:
    total = 1
    for s in shape:
        total *= s
    return total


# -- a stand-in for torch's CUDA tensors -------------------------------------------------------------------------
class _TorchDtype:
    def __init__(self, name: str, itemsize: int):
        self.name, self.itemsize = name, itemsize

    def __repr__(self):
        return f"torch.{self.name}"

    __str__ = __repr__


class _TorchDevice:
    def __init__(self, index: int):
        self.type, self.index = "cuda", index

    def __eq__(self, other):
        return isinstance(other, _TorchDevice) and other.index == self.index

    def __hash__(self):
        return hash(("cuda", self.index))


def fake_torch_module(streams: Optional[list] = None):
    """A module that passes for torch where skc looks at it (tensor type and methods, dtypes, devices, the current
    stream: `streams[-1]`, 0 by default). Its Tensor stores nothing; addresses are made up, 256-byte aligned. Each
    tensor of new memory is in `torch.made`, its `made_on` the stream that was current then (the one whose pool
    torch's caching allocator took it from, and which a fill of it runs on)."""
    import types

    torch = types.ModuleType("torch")
    streams = streams if streams is not None else [0]
    dtypes = {name: _TorchDtype(name, size) for name, size in
              (("float16", 2), ("bfloat16", 2), ("float32", 4), ("float64", 8), ("int16", 2), ("int32", 4),
               ("int64", 8), ("float8_e4m3fn", 1))}
    for name, dtype in dtypes.items():
        setattr(torch, name, dtype)

    class Size(tuple):
        pass

    class Tensor:
        """shape, stride(), dtype, device, data_ptr(), get_device(), is_neg(), new_empty, new_zeros, T,
        transpose, permute, is_contiguous (torch.channels_last too), reshape, view, as_strided, clone (new memory), [i],
        [:m, :n], copy_ and assignments (no-ops);
        torch._neg_view(t) makes a lazily negated view, torch.as_tensor a tensor over an array's
        __cuda_array_interface__."""

        def __init__(self, shape, dtype=dtypes["bfloat16"], strides=None, address=None, device=0, negated=False):
            self.shape, self.dtype, self._device = Size(int(s) for s in shape), dtype, device
            self._negated = negated
            self._strides = tuple(strides) if strides is not None else tuple(
                _count(self.shape[i + 1:]) for i in range(len(self.shape)))
            if address is None:
                address = _NEXT_ADDRESS[0]
                _NEXT_ADDRESS[0] += -(-max(1, _count(self.shape)) * dtype.itemsize // 256) * 256 + 256
            self._address = address

        @property
        def device(self):
            return _TorchDevice(self._device)

        def stride(self):
            return self._strides

        def data_ptr(self):
            return self._address

        def get_device(self):
            return self._device

        is_nested = False
        requires_grad = False   # (no autograd: host_plans.differentiated finds nothing to hand to torch.ops.skc)

        def is_neg(self):
            return self._negated

        def element_size(self):
            return self.dtype.itemsize

        def new_empty(self, shape, dtype=None):
            return _made(Tensor(shape, dtype or self.dtype, device=self._device))

        def new_zeros(self, shape, dtype=None):
            return _made(Tensor(shape, dtype or self.dtype, device=self._device))

        @property
        def T(self):
            return Tensor(self.shape[::-1], self.dtype, self._strides[::-1], self._address, self._device)

        def transpose(self, d0: int, d1: int):
            shape, strides = list(self.shape), list(self._strides)
            shape[d0], shape[d1], strides[d0], strides[d1] = shape[d1], shape[d0], strides[d1], strides[d0]
            return Tensor(shape, self.dtype, strides, self._address, self._device)

        def reshape(self, *shape):
            shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
            return Tensor(shape, self.dtype, None, self._address, self._device)

        def view(self, *shape):   # (of the dense views the host paths ask it for; or as a dtype of the same size)
            if len(shape) == 1 and isinstance(shape[0], _TorchDtype):
                assert shape[0].itemsize == self.dtype.itemsize
                return Tensor(self.shape, shape[0], self._strides, self._address, self._device)
            return self.reshape(*shape)

        def __getitem__(self, index):
            if isinstance(index, tuple):   # slices from the start of each dimension: a view at the same address
                shape = [len(range(n)[part]) for n, part in zip(self.shape, index)] + list(self.shape[len(index):])
                return Tensor(shape, self.dtype, self._strides, self._address, self._device)
            return Tensor(self.shape[1:], self.dtype, self._strides[1:],
                          self._address + index * self._strides[0] * self.dtype.itemsize, self._device)

        def copy_(self, other):   # (stores nothing)
            return self

        def as_strided(self, shape, strides):
            return Tensor(shape, self.dtype, strides, self._address, self._device)

        def permute(self, *dims):
            dims = dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims
            return Tensor([self.shape[d] for d in dims], self.dtype, [self._strides[d] for d in dims], self._address,
                          self._device)

        def is_contiguous(self, memory_format=None):   # (torch.contiguous_format, or torch.channels_last: NHWC)
            order = (0, 2, 3, 1) if memory_format is torch.channels_last else range(len(self.shape))
            dense = 1
            for d in reversed(tuple(order)):
                if self.shape[d] != 1 and self._strides[d] != dense:
                    return False
                dense *= self.shape[d]
            return True

        def clone(self):   # (new memory of the same shape, contiguous)
            return _made(Tensor(self.shape, self.dtype, None, None, self._device))

        def __setitem__(self, index, value):   # (stores nothing)
            pass

    def _made(tensor):   # (new memory: torch's caching allocator gives it to the current stream)
        tensor.made_on = streams[-1]
        torch.made.append(tensor)
        return tensor

    def empty(shape, dtype=None, device=None, memory_format=None):
        tensor = Tensor(shape, dtype or dtypes["float32"], device=device.index if isinstance(device, _TorchDevice)
                        else 0)
        if memory_format is torch.channels_last:   # (NHWC memory of an N x C x H x W tensor)
            N, C, H, W = tensor.shape
            tensor._strides = (H * W * C, 1, W * C, C)
        return _made(tensor)

    Tensor.__module__ = "torch"
    torch.Tensor, torch.Size, torch.empty = Tensor, Size, empty
    torch.made = []   # the tensors of new memory made (new_empty, new_zeros, clone, empty), each with .made_on
    torch.contiguous_format, torch.channels_last = "contiguous_format", "channels_last"

    def as_tensor(array, device=None):   # (an array exporting __cuda_array_interface__, kept alive by the tensor)
        interface = array.__cuda_array_interface__
        dtype = {"<f4": dtypes["float32"], "<i4": dtypes["int32"], "<f2": dtypes["float16"],
                 "<i2": dtypes["int16"]}[interface["typestr"]]
        tensor = Tensor(interface["shape"], dtype, address=interface["data"][0],
                        device=device.index if isinstance(device, _TorchDevice) else 0)
        tensor._base = array
        return tensor
    torch.as_tensor = as_tensor
    torch.inference_mode = lambda mode=True: contextlib.nullcontext()
    torch.compiler = types.SimpleNamespace(is_compiling=lambda: False)   # (eager: no TorchDynamo tracing)
    torch.no_grad = contextlib.nullcontext
    torch._neg_view = lambda t: Tensor(t.shape, t.dtype, t.stride(), t.data_ptr(), t.get_device(), negated=True)
    torch.version = types.SimpleNamespace(hip=None, cuda="13.0")
    torch._C = types.SimpleNamespace(_cuda_getCurrentRawStream=lambda index: streams[-1],
                                     _get_tracing_state=lambda: None)   # (no torch.jit.trace)
    torch.is_grad_enabled = lambda: True
    torch.autograd = types.SimpleNamespace(forward_ad=types.SimpleNamespace(_current_level=-1))   # (no dual level)
    torch.cuda = types.SimpleNamespace(is_available=lambda: True,
                                       current_stream=lambda index=None: types.SimpleNamespace(cuda_stream=streams[-1]),
                                       default_stream=lambda device=None: types.SimpleNamespace(cuda_stream=0),
                                       ExternalStream=_external_stream, stream=functools.partial(_on, streams))
    return torch


def _external_stream(stream_ptr, device=None):
    """torch.cuda.ExternalStream as torch makes it: over the stream `stream_ptr`, except for 0, which gives a new
    stream of torch's pool (torch's Stream constructor takes a pointer of 0 as none given), not the default stream."""
    if not stream_ptr:
        _POOL_STREAM[0] += 0x100
        return types.SimpleNamespace(cuda_stream=_POOL_STREAM[0])
    return types.SimpleNamespace(cuda_stream=stream_ptr)


_POOL_STREAM = [0x7F0000]   # the last made-up handle of a stream torch took from its pool


@contextlib.contextmanager
def _on(streams: list, stream):
    """torch.cuda.stream(stream): torch's current stream is `stream` for the `with` block."""
    streams.append(stream.cuda_stream)
    try:
        yield stream
    finally:
        streams.pop()


@contextlib.contextmanager
def torch_installed(streams: Optional[list] = None):
    """fake_torch_module() as `torch` in sys.modules for the `with` block (with the fake driver's device)."""
    import sys

    saved = sys.modules.get("torch")
    torch = fake_torch_module(streams)
    sys.modules["torch"] = torch
    launcher.forget_torch_stream()
    try:
        yield torch
    finally:
        launcher.forget_torch_stream()
        if saved is None:
            sys.modules.pop("torch", None)
        else:
            sys.modules["torch"] = saved
