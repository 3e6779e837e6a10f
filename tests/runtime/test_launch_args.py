"""Launch arguments are checked on every launch, the first and the fast path alike: an integer that does not fit
its parameter's type and an array of the wrong dtype for a pointer parameter are LaunchErrors, never truncated or
reinterpreted (in the interpreter, and in the GPU launcher's generated argument path with the driver stubbed)."""
import ctypes

import numpy as np
import pytest
from helpers import finished, touch, touch_arguments

import skc
from skc import ir
from skc.runtime import fake_cuda
from skc.runtime.devices import Device
from skc.runtime.fake_cuda import FakeTensor
from skc.runtime.launcher import DeviceLauncher, _slot
from skc.runtime.signature import POINTER, SCALAR, LaunchParam


@skc.kernel(block=1)
def add_n(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = x[0] + skc.f32(n)


@skc.kernel(block=1)
def add_unsigned(x: skc.Ptr[skc.f32], n: skc.u8):
    x[0] = x[0] + skc.f32(n)


@pytest.mark.parametrize("value", [2 ** 40 + 7, 2 ** 64 + 3, -2 ** 31 - 1, 2 ** 31])
def test_interpreter_rejects_an_int_that_does_not_fit_even_on_the_first_launch(value):
    x = np.zeros(1, np.float32)
    with pytest.raises(skc.LaunchError, match=rf"'n' = {value} does not fit in i32"):
        add_n.interpret[1, 1](x, value)
    assert x[0] == 0.0


def test_interpreter_checks_every_launch_after_a_good_one():
    x = np.zeros(1, np.float32)
    launch = add_n.interpret[1, 1]
    launch(x, 5)
    assert x[0] == 5.0
    with pytest.raises(skc.LaunchError, match="'x' has dtype f64, the kernel's parameter takes f32"):
        launch(np.zeros(1, np.float64), 5)
    with pytest.raises(skc.LaunchError, match=r"'n' = 18446744073709551619 does not fit in i32"):
        launch(x, 2 ** 64 + 3)
    with pytest.raises(skc.LaunchError, match=r"'n' = 256 does not fit in u8 \(0..255\)"):
        add_unsigned.interpret[1, 1](x, 256)
    with pytest.raises(skc.LaunchError, match=r"'n' = -1 does not fit in u8"):
        add_unsigned.interpret[1, 1](x, -1)
    with pytest.raises(skc.LaunchError, match=r"'n' must be an integer \(i32\), found float 3.0"):
        launch(x, 3.0)  # as the GPU launcher: never a silent conversion
    launch(x, np.int64(2 ** 31 - 1))  # in range, whatever its Python type
    assert x[0] == np.float32(5.0) + np.float32(2 ** 31 - 1)


# -- the GPU launcher's argument path, with the driver call stubbed ------------------------------------------
class CudaArray:
    """A device array as another library exports it (__cuda_array_interface__), at a fake address."""

    def __init__(self, typestr, address=0x10000):
        self.typestr, self.address = typestr, address

    @property
    def __cuda_array_interface__(self):
        return {"typestr": self.typestr, "data": (self.address, False), "shape": (4,), "version": 3}


class StubLauncher(DeviceLauncher):
    """The generated CUDA argument path with the launch call recording the slots instead of calling the driver."""

    def __init__(self, params):
        self.kernel_name, self.params, self.device = "k", params, Device("cuda", 0)
        self.slots = [_slot(p) for p in params]
        self.launched = []
        record = lambda grid, stream: self.launched.append(
            ([getattr(s, "value", None) for s in self.slots], grid, stream))
        self.launch = self._generate("_record(grid, stream)", "r", {"_record": record})

    def _fail(self, result, grid):
        raise AssertionError("the stub never fails")


F32 = ir.ScalarType("f32")


@pytest.fixture
def stub():
    return StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType("i32")),
                         LaunchParam("m", SCALAR, ir.ScalarType("u16"))])


def test_gpu_launcher_writes_good_arguments(stub):
    stub.launch((CudaArray("<f4", 0x1230), -5, 65535), (1, 1, 1), 7)
    assert stub.launched == [([0x1230, -5, 65535], (1, 1, 1), 7)]


@pytest.mark.parametrize("n,m,message", [
    (2 ** 40 + 7, 0, r"'n' = 1099511627783 does not fit in i32"),
    (2 ** 64 + 3, 0, r"'n' = 18446744073709551619 does not fit in i32"),
    (0, 65536, r"'m' = 65536 does not fit in u16"),
    (0, -1, r"'m' = -1 does not fit in u16"),
    ("3", 0, r"'n' must be a number \(i32\), found str"),
    (3.5, 0, r"'n' must be an integer \(i32\), found float 3.5; pass int\(value\)"),
])
def test_gpu_launcher_rejects_out_of_range_ints_after_a_good_launch(stub, n, m, message):
    stub.launch((CudaArray("<f4"), 1, 1), (1, 1, 1), 0)
    with pytest.raises(skc.LaunchError, match=message):
        stub.launch((CudaArray("<f4"), n, m), (1, 1, 1), 0)
    assert len(stub.launched) == 1


def test_gpu_launcher_checks_pointer_dtypes_after_a_good_launch(stub):
    stub.launch((CudaArray("<f4"), 1, 1), (1, 1, 1), 0)
    with pytest.raises(skc.LaunchError, match="'x' has dtype f64, the kernel's parameter takes f32"):
        stub.launch((CudaArray("<f8"), 1, 1), (1, 1, 1), 0)
    with pytest.raises(skc.LaunchError, match="'x' is in cpu memory"):
        stub.launch((np.zeros(4, np.float32), 1, 1), (1, 1, 1), 0)
    assert len(stub.launched) == 1
    assert isinstance(stub.slots[0], ctypes.c_uint64)


def test_a_bool_parameter_takes_truth_values_and_refuses_other_ints():
    """An i1 parameter reads its slot's low bit: 2 or 256 would launch as False. True, False, 0, 1 and numpy's bools
    pass (as 1 or 0); other values are refused by name, in the GPU launcher and the interpreter alike."""
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("flag", SCALAR, ir.ScalarType("i1"))])
    for value, stored in ((True, 1), (False, 0), (1, 1), (0, 0), (np.bool_(True), 1)):
        stub.launch((CudaArray("<f4"), value), (1, 1, 1), 0)
        assert stub.launched[-1][0][1] == stored
    for value in (2, 256, -1, 0.5, "yes"):
        with pytest.raises(skc.LaunchError, match="'flag'"):
            stub.launch((CudaArray("<f4"), value), (1, 1, 1), 0)

    @skc.kernel(block=1)
    def pick(x: skc.Ptr[skc.f32], flag: skc.i1):
        x[0] = 1.0 if flag else 2.0

    x = np.zeros(1, np.float32)
    pick.interpret[1, 1](x, 1)
    assert x[0] == 1.0
    with pytest.raises(skc.LaunchError, match=r"'flag' is a bool \(i1\): pass True or False"):
        pick.interpret[1, 1](x, 2)


def test_gpu_launcher_takes_floats_ints_and_numbers_for_a_float_parameter():
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("scale", SCALAR, F32)])
    array = CudaArray("<f4")
    for value in (2.5, 3, np.float32(0.5), np.int64(7), True):
        stub.launch((array, value), (1, 1, 1), 0)
    assert [values[1] for values, _, _ in stub.launched] == [2.5, 3.0, 0.5, 7.0, 1.0]
    with pytest.raises(skc.LaunchError, match=r"'scale' is an int of 1025 bits, past the range of a float \(f32\)"):
        stub.launch((array, 2 ** 1024), (1, 1, 1), 0)
    with pytest.raises(skc.LaunchError, match=r"'scale' must be a number \(f32\), found str"):
        stub.launch((array, "2.5"), (1, 1, 1), 0)
    assert len(stub.launched) == 5


# -- the stream a launch without stream= goes to ------------------------------------------------------------
def fake_framework_array(module_name):
    """A device-array type that looks as if it came from module `module_name` (torch, cupy)."""
    kind = type("FakeArray", (CudaArray,), {"__module__": module_name, "data_ptr": lambda self: self.address})
    return kind("<f4", 0x4000)


def test_a_launch_without_stream_follows_cupys_current_stream(stub, monkeypatch):
    import sys
    import types

    current = types.SimpleNamespace(ptr=0xC0FFEE)
    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(get_current_stream=lambda: current))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    stub.launch((fake_framework_array("cupy._core.core"), 1, 1), (1, 1, 1), None)
    current.ptr = 0xBEEF  # read on every launch, not remembered
    stub.launch((fake_framework_array("cupy._core.core"), 1, 1), (1, 1, 1), None)
    stub.launch((fake_framework_array("cupy._core.core"), 1, 1), (1, 1, 1), 5)  # an explicit stream wins
    stub.launch((CudaArray("<f4"), 1, 1), (1, 1, 1), None)  # no framework's tensor: the default stream
    assert [stream for _, _, stream in stub.launched] == [0xC0FFEE, 0xBEEF, 5, 0]


def test_two_threads_launching_one_kernel_keep_their_own_arguments(stub, monkeypatch):
    """A stream function that runs Python lets another thread run: its launch must not write over the slots of a
    launch that has written them and not yet called the driver (it waits for it)."""
    import sys
    import threading
    import time
    import types

    first_in = threading.Event()

    def get_current_stream():
        if threading.current_thread().name == "first":
            first_in.set()
            time.sleep(0.05)   # (the GIL goes to the other thread meanwhile)
        return types.SimpleNamespace(ptr=1)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(
        get_current_stream=get_current_stream)))
    arrays = {name: type("FakeArray", (CudaArray,), {"__module__": "cupy._core.core"})("<f4", address)
              for name, address in (("first", 0x1000), ("second", 0x2000))}
    first = threading.Thread(target=stub.launch, args=((arrays["first"], 1, 1), (1, 1, 1), None), name="first")
    second = threading.Thread(target=lambda: first_in.wait() and stub.launch((arrays["second"], 2, 2), (1, 1, 1), None),
                              name="second")
    for thread in (first, second):
        thread.start()
    for thread in (first, second):
        thread.join()
    assert sorted(values for values, _, _ in stub.launched) == [[0x1000, 1, 1], [0x2000, 2, 2]]


# -- a launch that an argument's own code (or the framework's) launches again, on the same thread --------------
def hooked_arguments(hook: str, torch, enter, data, x) -> tuple:
    """(the arguments of a launch of `touch` over `data` and at x's address, its stream) in which `hook` (an
    argument's method or property, or torch's current-stream function) calls enter() as the launch reads it."""
    class HookedTensor(torch.Tensor):   # a torch tensor subclass: the slow path asks its data_ptr
        __module__ = "torch"

        def data_ptr(self):
            enter()
            return super().data_ptr()

    class HookedArray(FakeTensor):
        @property
        def __cuda_array_interface__(self):
            enter()
            return super().__cuda_array_interface__

    class HookedInt:   # a number compared with the parameter's range, then read through __index__
        def __le__(self, other):
            return 1 <= other

        def __ge__(self, other):
            return 1 >= other

        def __index__(self):
            enter()
            return 1

    class HookedFloat:
        def __float__(self):
            enter()
            return 1.5

    class HookedMap(skc.TensorMap):
        def address_on(self, device):   # (what a launch reads of a tensor map)
            enter()
            return super().address_on(device)

    args = [skc.TensorMap(data, (64, 64)), torch.Tensor((16,), torch.float32, address=x.address), 1, 1.5]
    position, value = {"data_ptr": (1, lambda: HookedTensor((16,), torch.float32, address=x.address)),
                       "__cuda_array_interface__": (1, lambda: HookedArray((16,), "float32", address=x.address)),
                       "__index__": (2, HookedInt), "__float__": (3, HookedFloat),
                       "address_on": (0, lambda: HookedMap(data, (64, 64)))}.get(hook, (None, None))
    if position is None:
        torch._C._cuda_getCurrentRawStream = lambda index: enter() or 7
        return tuple(args), None
    args[position] = value()
    return tuple(args), 0


@pytest.mark.parametrize("hook", ["data_ptr", "__cuda_array_interface__", "__index__", "__float__",
                                  "address_on", "current stream"])
def test_a_launch_nested_in_reading_an_argument_neither_hangs_nor_takes_the_other_launchs_arguments(hook):
    """Reading an argument runs its code (a tensor subclass's data_ptr, a __cuda_array_interface__ property, an
    __index__ or __float__, a finalizer the garbage collector runs in any of them) and the framework's
    current-stream function, which may launch the same kernel on the same thread: that launch must not wait for a
    lock its own thread holds (the outer launch runs on a thread of its own, which must finish), and each launch
    must reach the driver with its own arguments."""
    with fake_cuda.installed() as fake, fake_cuda.torch_installed() as torch:
        fake.inspect = touch_arguments
        inner = (skc.TensorMap(FakeTensor((64, 64)), (64, 64)), torch.Tensor((16,), torch.float32), 2, 0.5)
        launch = touch[1, 32].ready(*inner)
        nested = []

        def launch_inner():   # once, from inside the outer launch
            if not nested:
                nested.append(True)
                launch(inner, 0)
        data, x = FakeTensor((64, 64)), FakeTensor((16,), "float32")
        outer, stream = hooked_arguments(hook, torch, launch_inner, data, x)
        assert finished(lambda: launch(outer, stream)), f"the launch nested in {hook} waits for its own thread"
        assert nested == [True]
        assert [(launched["seen"], launched["stream"]) for launched in fake.launches] == [
            (((inner[0].tensor.address, 2), inner[1].data_ptr(), 2, 0.5), 0),
            (((data.address, 2), x.address, 1, 1.5), 0 if stream == 0 else 7)]


def test_a_launch_made_in_the_driver_call_neither_hangs_nor_changes_the_launch_in_progress():
    """Where the driver call runs Python (the cuda.bindings fallback, HIP's binding, the fake driver), a finalizer
    the garbage collector runs in it may launch the same kernel on the same thread, the launcher's lock held: that
    launch goes out from an image of its own, and the launch in progress keeps its arguments."""
    with fake_cuda.installed() as fake, fake_cuda.torch_installed() as torch:
        inner = (skc.TensorMap(FakeTensor((64, 64)), (64, 64)), torch.Tensor((16,), torch.float32), 2, 0.5)
        launch = touch[1, 32].ready(*inner)
        data, x = FakeTensor((64, 64)), FakeTensor((16,), "float32")
        outer = (skc.TensorMap(data, (64, 64)), torch.Tensor((16,), torch.float32, address=x.address), 1, 1.5)
        nested = []

        def in_the_driver(arguments):   # (the fake driver's call reads what it launches with this)
            if not nested:   # the outer launch's driver call launches the inner one, then reads its own arguments
                nested.append(True)
                launch(inner, 0)
            return touch_arguments(arguments)
        fake.inspect = in_the_driver
        assert finished(lambda: launch(outer, 0)), "the launch made in the driver call waits for its own thread"
        assert nested == [True]
        assert [launched["seen"] for launched in fake.launches] == [
            ((inner[0].tensor.address, 2), inner[1].data_ptr(), 2, 0.5), ((data.address, 2), x.address, 1, 1.5)]


def test_a_launch_without_stream_follows_torchs_current_stream_of_the_launch_device(monkeypatch):
    import sys
    import types

    from skc.runtime import launcher

    asked = []
    torch = types.SimpleNamespace(_C=types.SimpleNamespace(_cuda_getCurrentRawStream=lambda i: asked.append(i) or 77))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setattr(launcher, "_TORCH_STREAM", [])
    assert launcher.current_stream((1, fake_framework_array("torch")), 3) == 77 and asked == [3]


def test_tensor_maps_follow_their_tensors_framework(monkeypatch):
    import sys
    import types

    from skc.runtime.launcher import current_stream

    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=9)))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    tensor_map = types.new_class("Map", exec_body=lambda ns: ns.update(__skc_tensor_map__=True))()
    tensor_map.tensor = fake_framework_array("cupy")
    assert current_stream((3, tensor_map), 0) == 9
    assert current_stream((3, np.zeros(2)), 0) == 0


@skc.kernel(block=1)
def add_any(x, n):
    x[0] = x[0] + n


def test_unannotated_ints_specialize_by_size_and_never_wrap():
    x = np.zeros(1, np.float32)
    launch = add_any.interpret[1, 1]
    launch(x, 5)
    launch(x, 2 ** 40)  # an i64 specialization, not a truncated i32
    assert x[0] == np.float32(5 + 2 ** 40)
    with pytest.raises(skc.LaunchError, match=r"'n' = 36893488147419103235 does not fit in any integer type"):
        launch(x, 2 ** 65 + 3)


def test_ints_of_another_class_specialize_by_size_as_ints_do():
    """An int subclass or an IntEnum member was keyed by its class alone: a value past i32 after a small one reused the
    i32 kernel and was refused ("does not fit in i32"), where an int of the same value took an i64 kernel."""
    import enum

    class Size(int):
        pass

    class Big(enum.IntEnum):
        SMALL = 5
        LARGE = 2 ** 40

    for small, large in ((Size(5), Size(2 ** 40)), (Big.SMALL, Big.LARGE)):
        x = np.zeros(1, np.float32)
        launch = add_any.interpret[1, 1]
        launch(x, small)
        launch(x, large)
        assert x[0] == np.float32(5 + 2 ** 40)



def test_arrays_without_a_dtype_attribute_specialize_by_their_element_type():
    """An array that says its element type through __cuda_array_interface__ alone (no .dtype) was keyed by its class:
    an f64 one after an f32 one took the f32 kernel, whose launcher refused it ("'x' has dtype f64")."""
    with fake_cuda.installed() as fake:
        launch = add_any.on("cuda:0")[1, 1]
        launch(CudaArray("<f4"), 1)
        launch(CudaArray("<f8"), 1)
        launch(CudaArray("<f4"), 2)
    assert len(fake.launches) == 3

def test_the_interpreter_takes_cpu_tensors_that_require_grad():
    """A CPU tensor that requires grad raised torch's "Can't call numpy() on Tensor that requires grad" from the
    launcher; a GPU launch takes its address, so the interpreter now takes its data (a view: the kernel's writes
    land in the tensor)."""
    torch = pytest.importorskip("torch")

    @skc.kernel
    def fill(x, n):
        i = skc.thread_id(0)
        if i < n:
            x[i] = 2.0

    x = torch.zeros(64, requires_grad=True)
    fill[1, 64](x, 64)
    assert bool((x.detach() == 2.0).all())


@skc.kernel
def _doubled_plus_one(x: skc.Ptr[skc.f32], n: skc.i32):
    i = skc.thread_index()
    if i < n:
        x[i] = x[i] * 2.0 + 1.0


def test_numpy_array_subclasses_are_read_and_written_in_place():
    """An np.matrix stays 2-D when reshaped: the interpreter mapped one row of it (an internal IndexError)."""
    m = np.matrix([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    _doubled_plus_one[1, 32](m, 4)
    assert m.tolist() == [[3.0, 5.0], [7.0, 9.0]]
    masked = np.ma.masked_array(np.ones(4, np.float32))
    _doubled_plus_one[1, 32](masked, 4)
    assert np.asarray(masked).tolist() == [3.0] * 4


def test_a_parameter_named_stream_is_refused_where_the_kernel_is_defined():
    """`k[g, b](x, stream=5)` gives the launch its stream, never the parameter: with a default of its own the kernel
    ran with that default (the interpreter ignores the stream; a GPU launched on stream 5), silently."""
    with pytest.raises(skc.CompileError, match="parameter named 'stream', the keyword a launch takes") as info:
        @skc.kernel(block=1)
        def add(x: skc.Ptr[skc.f32], stream: skc.i32 = 0):
            x[0] = x[0] + skc.f32(stream)
    assert str(info.value).startswith(f"{__file__}:") and "rename the parameter" in str(info.value)
    with pytest.raises(skc.CompileError, match=r"has \*\*options; kernels take named parameters only"):
        @skc.kernel(block=1)
        def keywords(x: skc.Ptr[skc.f32], **options):
            x[0] = 1.0


def test_a_ready_launch_given_too_many_or_too_few_arguments_says_how_many_it_takes():
    """The interpreter's ready launch ran with extra arguments dropped (zip), the GPU launcher's said 'bad argument:
    too many values to unpack (expected 2)'."""
    x = np.zeros(1, np.float32)
    ready = add_n.interpret[1, 1].ready(x, 1)
    for args in ((x,), (x, 1, 2)):
        with pytest.raises(skc.LaunchError, match=rf"add_n takes 2 run-time arguments \(x, n\), found {len(args)}"):
            ready(args)
    assert x[0] == 0.0
    stub = StubLauncher([LaunchParam("x", POINTER, F32), LaunchParam("n", SCALAR, ir.ScalarType("i32"))])
    for args in ((CudaArray("<f4"),), (CudaArray("<f4"), 1, 2)):
        with pytest.raises(skc.LaunchError, match=rf"k takes 2 run-time arguments \(x, n\), found {len(args)}"):
            stub.launch(args, (1, 1, 1), 0)
    assert stub.launched == []
