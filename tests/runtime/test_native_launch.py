"""The native launch entry (runtime.native): a JIT-compiled builtin that turns ten Python ints into a C call with
cuLaunchKernel's signature, here aimed at a ctypes callback that records what arrives."""
import ctypes
import sys
import types
import warnings

import numpy as np
import pytest
from helpers import finished

import skc
from skc.runtime import cuda, fake_cuda, native
from skc.runtime.fake_cuda import FakeTensor

_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, *[ctypes.c_uint] * 7, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p)


class Recorder:
    """A C function with cuLaunchKernel's signature that records its arguments and returns `result`."""

    def __init__(self, result=0, params_count=0):
        self.calls, self.result, self.params_count = [], result, params_count
        self.inspect = None   # a function whose result each call records too (what the slots hold then)

        def record(*args):
            values = args
            if self.params_count and args[9]:
                values = args + (fake_cuda.argument_pointers(args[9], self.params_count),)
            if self.inspect is not None:
                values = values + (self.inspect(),)
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


def test_an_entry_made_inside_the_making_of_the_same_entry_does_not_wait_for_it(monkeypatch):
    """Compiling an entry runs Python (llvmlite), where a finalizer the garbage collector runs may load a kernel and
    so ask for the same entry on the same thread: it must not wait for the lock its own thread holds."""
    # a fresh lock of native's kind and no entry made yet: a hang leaves no other test waiting on the module's lock
    monkeypatch.setattr(native, "_lock", type(native._lock)())
    monkeypatch.setattr(native, "_made", {})
    recorder, build, nested = Recorder(), native._builtin, []

    def builtin(make_ir, keep=()):
        if not nested:
            nested.append(None)
            nested[0] = native.launcher(recorder.address)
        return build(make_ir, keep)
    monkeypatch.setattr(native, "_builtin", builtin)
    assert finished(lambda: native.launcher(recorder.address)), "the nested entry waits for its own thread"
    for launch in (nested[0], native.launcher(recorder.address)):
        launch(1, 2, 1, 1, 32, 1, 1, 0, 0, 8)
    assert [call[:2] for call in recorder.calls] == [(1, 2), (1, 2)]


def test_a_driver_asked_for_inside_its_initialization_does_not_wait_for_it(monkeypatch):
    """The import and cuInit run Python under cuda's lock, where a finalizer the garbage collector runs may launch
    a kernel, which asks for the driver on the same thread: it must not wait for the lock its own thread holds."""
    nested = []

    def cuInit(flags):
        if not nested:
            nested.append(None)
            nested[0] = cuda.driver()
        return (0,)
    module = types.SimpleNamespace(cuInit=cuInit)
    monkeypatch.setitem(sys.modules, "cuda.bindings", types.SimpleNamespace(driver=module))
    # a fresh lock of cuda's kind, the driver not yet initialized: a hang leaves no other test waiting
    monkeypatch.setattr(cuda, "_lock", type(cuda._lock)())
    monkeypatch.setattr(cuda, "_state", {"driver": None, "error": None})
    assert finished(cuda.driver), "the nested initialization waits for its own thread"
    assert nested == [module] and cuda.driver() is module


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
            launch, handle, address = cuda.launch_entry()
            assert launch is native.launcher(recorder.address) and handle is int and address == recorder.address
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


# -- a kernel's whole launch in native code (fast_launch) ------------------------------------------------------
torch = pytest.importorskip("torch")


class FastLaunch:
    """fast_launch over four slots (two f32 tensors, an i32, an f32) aimed at a Recorder, for CPU tensors: the
    device index it checks is -1, what torch's get_device() says of host memory."""

    def __init__(self, result=0, stream_source=True):
        self.recorder = Recorder(result=result)
        self.slots = [ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_int32(), ctypes.c_float()]
        self.pointers = (ctypes.c_void_p * 4)(*[ctypes.addressof(s) for s in self.slots])
        self.fallbacks, self.failures = [], []
        self.streams = [lambda index: 4242 + index]
        params = [("tensor", ctypes.addressof(self.slots[0]), torch.float32),
                  ("tensor", ctypes.addressof(self.slots[1]), torch.float32),
                  ("int", ctypes.addressof(self.slots[2]), 32, True), ("float", ctypes.addressof(self.slots[3]), 32)]
        self.launch = native.fast_launch(self.recorder.address, 0xF00D, (256, 1, 1), 512,
                                         ctypes.addressof(self.pointers), params, torch.Tensor, -1, self.streams,
                                         stream_source, self.fallback, self.fail)

    def fallback(self, args, grid, stream):
        self.fallbacks.append((args, grid, stream))
        return "python"

    def fail(self, result, grid):
        self.failures.append((result, grid))
        raise skc.DeviceError(f"launch failed: {result}")

    def values(self):
        return [slot.value for slot in self.slots]


def test_fast_launch_writes_the_slots_and_launches_on_torchs_stream():
    fast = FastLaunch()
    x, y = torch.zeros(10), torch.zeros(10)
    assert fast.launch((x, y, -7, 2.5), (3, 2, 1), None) is None
    assert fast.values() == [x.data_ptr(), y.data_ptr(), -7, 2.5]
    assert fast.recorder.calls[-1][:10] == (0xF00D, 3, 2, 1, 256, 1, 1, 512, 4242 - 1, ctypes.addressof(fast.pointers))
    fast.launch((y, x, 2 ** 31 - 1, 3), (1, 1, 1), 99)   # an int for the float; a stream given
    assert fast.values() == [y.data_ptr(), x.data_ptr(), 2 ** 31 - 1, 3.0] and fast.recorder.calls[-1][8] == 99
    assert fast.fallbacks == []


def test_fast_launch_without_a_stream_source_launches_on_stream_zero():
    fast = FastLaunch(stream_source=False)
    fast.launch((torch.zeros(1), torch.zeros(1), 1, 1.0), (1, 1, 1), None)
    assert fast.recorder.calls[-1][8] is None   # (a null stream: ctypes gives None)


@pytest.mark.parametrize("case", ["float-for-int", "other-dtype", "int-out-of-range", "string", "too-few", "list",
                                  "grid-of-two", "grid-too-big", "stream-object", "tensor-subclass", "no-getter",
                                  "getter-raises", "negated-view", "nested"])
def test_fast_launch_hands_anything_else_to_the_python_launcher(case):
    """Off the fast path nothing is launched: the Python launcher gets the call's own arguments (and no exception
    is left pending)."""
    fast = FastLaunch()
    x, y = torch.zeros(4), torch.zeros(4)
    args, grid, stream = (x, y, 5, 2.5), (3, 1, 1), None
    if case == "float-for-int":
        args = (x, y, 5.0, 2.5)
    elif case == "other-dtype":
        args = (x, y.double(), 5, 2.5)
    elif case == "int-out-of-range":
        args = (x, y, 2 ** 31, 2.5)
    elif case == "string":
        args = (x, y, 5, "2.5")
    elif case == "too-few":
        args = (x, y, 5)
    elif case == "list":
        args = [x, y, 5, 2.5]
    elif case == "grid-of-two":
        grid = (3, 1)
    elif case == "grid-too-big":
        grid = (2 ** 32, 1, 1)
    elif case == "stream-object":
        stream = "a stream"
    elif case == "tensor-subclass":
        args = (torch.nn.Parameter(x), y, 5, 2.5)
    elif case == "negated-view":   # (its memory holds the values un-negated: read in place, the launch was wrong)
        args = (x, torch._neg_view(y), 5, 2.5)
    elif case == "nested":   # (its data pointer is its packed buffer's)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # (torch: the strided layout of nested tensors is a prototype)
            args = (x, torch.nested.nested_tensor([y, y]), 5, 2.5)
    elif case == "no-getter":
        fast.streams.clear()
    else:
        fast.streams[:] = [lambda index: 1 / 0]
    assert fast.launch(args, grid, stream) == "python"
    assert fast.recorder.calls == [] and len(fast.fallbacks) == 1
    assert all(a is b for a, b in zip(fast.fallbacks[0], (args, grid, stream)))


def test_fast_launch_raises_what_fail_raises_on_a_driver_error():
    fast = FastLaunch(result=701)
    with pytest.raises(skc.DeviceError, match="launch failed: 701"):
        fast.launch((torch.zeros(1), torch.zeros(1), 1, 1.0), (4, 1, 1), 0)
    assert fast.failures == [(701, (4, 1, 1))]


def test_fast_launch_keeps_reference_counts():
    import sys

    fast = FastLaunch()
    x, y, grid = torch.zeros(4), torch.zeros(4), tuple([3, 1, 1])   # (not a constant that code objects share)
    args = (x, y, 5, 2.5)
    before = sys.getrefcount(x), sys.getrefcount(y), sys.getrefcount(grid)
    for _ in range(1000):
        fast.launch(args, grid, None)
        fast.launch((x, y, 5.0, 2.5), grid, 0)   # a fallback too
    fast.fallbacks.clear()
    assert (sys.getrefcount(x), sys.getrefcount(y), sys.getrefcount(grid)) == before
    with pytest.raises(TypeError, match="takes \\(args, grid, stream\\)"):
        fast.launch(args, grid)


def test_a_cuda_launcher_launches_through_native_code_with_torch_imported():
    recorder = Recorder(params_count=3)
    with fake_cuda.installed() as fake:
        fake.cuLaunchKernel_address = recorder.address
        try:
            launcher = _scaled[16, 64].ready(FakeTensor((64,), "float32"), 64, 1.0).launcher
        finally:
            fake.cuLaunchKernel_address = None
    assert type(launcher.launch).__name__ == "builtin_function_or_method"
    assert launcher.launch is not launcher.python_launch


def test_a_fast_launch_holds_its_code_and_objects_as_long_as_it_lives():
    import gc
    import weakref

    fast = FastLaunch()
    launch, probe = fast.launch, weakref.ref(fast.fallback.__func__)
    held = launch.__self__
    assert any(part is fast.streams for part in held.parts[3])
    del fast
    gc.collect()
    x = torch.zeros(2)
    assert launch((x, x, 1, 1.0), (1, 1, 1), 0) is None   # its slots and callbacks still there
    assert probe() is not None


def test_fast_launch_reads_the_stream_before_it_writes_any_slot():
    """torch's stream function may run Python (and let another thread launch): no slot is written before it."""
    fast = FastLaunch()
    x, y = torch.zeros(2), torch.zeros(2)
    seen = []
    fast.streams[:] = [lambda index: seen.append(fast.values()) or 7]
    fast.launch((x, y, 3, 1.5), (1, 1, 1), None)
    assert seen == [[0, 0, 0, 0.0]] and fast.values() == [x.data_ptr(), y.data_ptr(), 3, 1.5]


def test_a_fast_launch_nested_in_reading_the_stream_neither_waits_nor_takes_the_other_launchs_arguments():
    """The fast path takes no lock, and reads everything before it writes a slot: a launch of the same kernel that
    the stream function (or a finalizer run in it) starts on this thread runs to its end first."""
    fast = FastLaunch()
    fast.recorder.inspect = fast.values
    x, y = torch.zeros(2), torch.zeros(2)

    def stream(index):
        if not fast.recorder.calls:
            fast.launch((y, x, 2, 0.5), (1, 1, 1), 0)
        return 7
    fast.streams[:] = [stream]
    assert finished(lambda: fast.launch((x, y, 1, 1.5), (1, 1, 1), None))
    assert [(call[8], call[-1]) for call in fast.recorder.calls] == [
        (None, [y.data_ptr(), x.data_ptr(), 2, 0.5]), (7, [x.data_ptr(), y.data_ptr(), 1, 1.5])]
    assert fast.fallbacks == []


def test_fast_launch_lets_an_interrupt_through():
    fast = FastLaunch()

    def interrupted(index):
        raise KeyboardInterrupt
    fast.streams[:] = [interrupted]
    with pytest.raises(KeyboardInterrupt):
        fast.launch((torch.zeros(1), torch.zeros(1), 1, 1.0), (1, 1, 1), None)
    assert fast.fallbacks == [] and fast.recorder.calls == []


@skc.kernel(block=64)
def _with_constexpr(x: skc.Ptr[skc.f32], n: skc.i32, scale: skc.constexpr):
    if n < 0:
        x[0] = scale


def test_a_kernel_with_compile_time_arguments_passes_its_run_time_ones_as_a_tuple():
    """The native fast path takes a tuple of the run-time arguments (a list would always fall back)."""
    with fake_cuda.installed() as fake:
        x = FakeTensor((64,), "float32")
        _with_constexpr[1, 64](x, 64, 2.0)
        launcher = _with_constexpr[1, 64].ready(x, 64, skc.constexpr(2.0)).launcher
        seen = []
        original, launcher.launch = launcher.launch, lambda args, grid, stream: seen.append(type(args))
        try:
            launch = _with_constexpr[1, 64]
            launch._chosen = (None, None, None)   # (it finds the launcher again, patched)
            launch(x, 64, 2.0)
        finally:
            launcher.launch = original
    assert seen == [tuple]


@pytest.mark.parametrize("stream", [-1, 2 ** 64, np.int64(-3)])
def test_a_stream_handle_that_is_no_cuintptr_is_a_launch_error(stream):
    """A negative stream handle, or one past 64 bits, was an OverflowError out of the driver call's conversion (the
    native entry's, or cuda.bindings'): a LaunchError naming the stream, on plain and bound launches and in the
    interpreter alike."""
    recorder = Recorder(params_count=3)
    with fake_cuda.installed() as fake:
        fake.cuLaunchKernel_address = recorder.address
        try:
            @skc.kernel(block=64)
            def scaled(x: skc.Ptr[skc.f32], n: skc.i32, scale: skc.f32):
                x[skc.thread_index()] = x[skc.thread_index()] * scale

            x = FakeTensor((64,), "float32")
            with pytest.raises(skc.LaunchError, match=f"stream {int(stream)} is no CUDA stream handle"):
                scaled[1, 64](x, 64, 2.5, stream=stream)
            with pytest.raises(skc.LaunchError, match=f"stream {int(stream)} is no CUDA stream handle"):
                scaled[1, 64].ready(x, 64, 2.5).bind((x, 64, 2.5))(stream=stream)
            scaled[1, 64](x, 64, 2.5, stream=2 ** 64 - 1)   # (the highest handle passes)
        finally:
            fake.cuLaunchKernel_address = None
    assert [call[8] for call in recorder.calls] == [2 ** 64 - 1]
    with pytest.raises(skc.LaunchError, match=f"stream {int(stream)} is no CUDA stream handle"):
        scaled.interpret[1, 64](np.ones(64, np.float32), 64, 2.5, stream=stream)
