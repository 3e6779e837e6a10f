"""The native launch entry (runtime.native): a JIT-compiled builtin that turns ten Python ints into a C call with
cuLaunchKernel's signature, here aimed at a ctypes callback that records what arrives."""
import ctypes

import pytest

import skc
from skc.runtime import cuda, fake_cuda, native
from skc.runtime.fake_cuda import FakeTensor

_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, *[ctypes.c_uint] * 7, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p)


class Recorder:
    """A C function with cuLaunchKernel's signature that records its arguments and returns `result`."""

    def __init__(self, result=0, params_count=0):
        self.calls, self.result, self.params_count = [], result, params_count

        def record(*args):
            values = args
            if self.params_count and args[9]:
                values = args + (fake_cuda.argument_pointers(args[9], self.params_count),)
            self.calls.append(values)
            return self.result
        self.function = _SIGNATURE(record)
        self.address = ctypes.cast(self.function, ctypes.c_void_p).value


def test_native_launch_passes_every_argument_through():
    recorder = Recorder(result=0)
    launch = native.launcher(recorder.address)
    assert native.launcher(recorder.address) is launch   # made once per address
    result = launch(0x7FFF00001234, 1, 2, 3, 128, 1, 1, 4096, 2 ** 63 + 5, 0xDEADBEEF)
    assert result == 0 and type(result) is int
    assert recorder.calls == [(0x7FFF00001234, 1, 2, 3, 128, 1, 1, 4096, 2 ** 63 + 5, 0xDEADBEEF, None)]


def test_native_launch_returns_the_drivers_result():
    recorder = Recorder(result=701)   # CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
    assert native.launcher(recorder.address)(1, 1, 1, 1, 32, 1, 1, 0, 0, 8) == 701


@pytest.mark.parametrize("args, error, text", [
    ((1, 2, 3), TypeError, "10 integers"),
    ((1, 1, 1, 1, 32, 1, 1, 0, 0, 8, 9), TypeError, "10 integers"),
    ((1, 1, 1, 1, 32, 1, 1, 0, "stream", 8), TypeError, "integer"),
    ((1, 2 ** 32, 1, 1, 32, 1, 1, 0, 0, 8), OverflowError, "32 bits"),
    ((1, 1, 1, 1, 32, 1, 1, 2 ** 40, 0, 8), OverflowError, "32 bits"),
    ((1, -1, 1, 1, 32, 1, 1, 0, 0, 8), OverflowError, "negative"),
    ((1, 1, 1, 1, 32, 1, 1, 0, 2 ** 64, 8), OverflowError, "int"),
])
def test_native_launch_refuses_what_is_not_ten_fitting_integers(args, error, text):
    recorder = Recorder()
    with pytest.raises(error, match=text):
        native.launcher(recorder.address)(*args)
    assert recorder.calls == []   # nothing reached the driver


@skc.kernel(block=64)
def _scaled(x: skc.Ptr[skc.f32], n: skc.i32, scale: skc.f32):
    i = skc.block_id(0) * 64 + skc.thread_index()
    if i < n:
        x[i] = x[i] * scale


def test_cuda_launches_go_through_the_drivers_c_entry_when_it_has_one():
    """A driver module with a C entry (as libcuda has): plain and bound launches reach it with the kernel's
    handle as an int, the grid, block and stream, and a kernelParams array holding the arguments."""
    recorder = Recorder(params_count=3)
    with fake_cuda.installed() as fake:
        fake.cuLaunchKernel_address = recorder.address
        try:
            launch, handle = cuda.launch_entry()
            assert launch is native.launcher(recorder.address) and handle is int
            x = FakeTensor((1000,), "float32")
            _scaled[16, 64](x, 1000, 2.5, stream=77)
            bound = _scaled[16, 64].ready(x, 1000, 2.5).bind((x, 1000, 2.5))
            bound(stream=78)
        finally:
            fake.cuLaunchKernel_address = None
    assert fake.launches == []   # nothing took the Python entry
    assert [call[1:9] for call in recorder.calls] == [(16, 1, 1, 64, 1, 1, 0, 77), (16, 1, 1, 64, 1, 1, 0, 78)]
    assert recorder.calls[0][0] == int(fake_cuda.FunctionName("_scaled"))
    for call in recorder.calls:
        pointer, n, scale = call[-1]
        assert ctypes.c_uint64.from_address(pointer).value == x.address
        assert ctypes.c_int32.from_address(n).value == 1000
        assert ctypes.c_float.from_address(scale).value == 2.5
