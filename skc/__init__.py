"""skc: a structured kernel compiler. GPU kernels written in Python, compiled through a tile IR
and LLVM to PTX (NVIDIA) or GCN (AMD), or run exactly by a CPU interpreter.

    import skc

    @skc.kernel
    def add(x, y, out, n):
        i = skc.block_id(0) * skc.block_dim(0) + skc.thread_id(0)
        if i < n:
            out[i] = x[i] + y[i]

    add[skc.cdiv(n, 256), 256](x, y, out, n)
"""
from .version import __version__  # noqa: F401

from .diagnostics import (CompileError, DeadlockError, DeviceError, InterpreterError, InterpreterLimitError,  # noqa
                          LaunchError, SkcError, VerificationError)
from .frontend import Array, Ptr, constexpr, func, host  # noqa: E402
from .frontend.builtins import (asm, atomic_add, atomic_and, atomic_cas, atomic_max, atomic_min, atomic_or,  # noqa
                                atomic_xchg, atomic_xor, ballot, barrier, barrier_arrive, barrier_named, bitcast,
                                block_dim, block_id, block_max, block_min, block_reduce, block_sum, cast, cdiv, ceil, cos, device_print, exp, exp2,
                                floor, fma, full, grid_dim, int_to_ptr, lane_id, load, log, log2, maximum, minimum,
                                num_threads, num_warps, ptr_to_int, rint, rsqrt, shared, shfl_down, shfl_idx, shfl_up,
                                shfl_xor, sin, sqrt, static_range, store, syncthreads, tanh, current_target, thread_id, thread_index,
                                trunc, vector, vote_all, vote_any, warp_id, warp_max, warp_min, warp_reduce, warp_size,
                                warp_sum, where)
from .frontend import amd, hopper  # noqa: E402
from .frontend.dtypes import ALIASES as _ALIASES, DTYPES as _DTYPES  # noqa: E402
from .compiler import CompiledKernel  # noqa: E402
from .jit import Kernel, kernel  # noqa: E402
from .runtime.cache import cache_dir, set_cache_dir  # noqa: E402
from .runtime.devices import Device, current_device, gpu_available, set_device  # noqa: E402
from .runtime.devices import parse_device as _parse_device  # noqa: E402
from .target import TARGETS, Target, get_target  # noqa: E402

# Scalar types: skc.f32, skc.bf16, ... and numpy-style aliases (skc.float32).
globals().update(_DTYPES)
globals().update({alias: _DTYPES[name] for alias, name in _ALIASES.items()})


_LAZY = {"DeviceArray": "runtime.arrays", "empty": "runtime.arrays", "to_device": "runtime.arrays",
         "zeros": "runtime.arrays", "testing": None, "TensorMap": "runtime.tma", "Im2colTensorMap": "runtime.tma",
         "EncodedTensorMap": "runtime.tma", "pointer_function": "runtime.interop",
         "is_torch_tensor_type": "runtime.interop", "check_torch_readable": "runtime.interop",
         "array_strides": "runtime.interop", "strided_view": "runtime.interop",
         "blocks": None, "autotune": None}


def __getattr__(name):
    # numpy-backed parts load on first use, so `import skc` stays fast.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
        return module if _LAZY[name] is None else getattr(module, name)
    raise AttributeError(f"module 'skc' has no attribute {name!r}")


def launch_stream(stream=None, *arrays, device=None) -> int:
    """The CUstream handle a launch with `stream=` goes to: that stream's (an int, a torch or cupy stream), or for
    None the current stream of the framework whose `arrays` are given (torch, cupy), as a launch without stream=
    takes it; else the default stream (0)."""
    from .runtime.launcher import current_stream, normalize_stream

    if stream is not None:
        return normalize_stream(stream)
    dev = _parse_device(device) if device is not None else current_device()
    return current_stream(arrays, dev.index)


def stream_capturing(stream=None, *arrays, device=None) -> bool:
    """Whether a CUDA graph captures the stream a launch with `stream=` goes to (skc.launch_stream's): work put there
    is recorded into the graph, not run. False on devices other than CUDA GPUs."""
    dev = _parse_device(device) if device is not None else current_device()
    if dev.kind != "cuda":
        return False
    from .runtime import cuda

    cuda.make_current(dev.index)
    return cuda.capturing(launch_stream(stream, *arrays, device=dev))


def synchronize(device=None):
    """Wait for every kernel launched on the device (the current one unless given)."""
    dev = _parse_device(device) if device is not None else current_device()
    # the drivers' modules load on first use, as in runtime/devices.py (import cost)
    if dev.kind == "cuda":
        from .runtime import cuda

        cuda.synchronize(dev.index)
    elif dev.kind == "hip":
        from .runtime import hip

        hip.call("hipDeviceSynchronize")
