"""Bound launches (ReadyLaunch.bind): a set of run-time arguments checked once, as a launch checks them, and packed
into a kernelParams image of the bound launch's own; `bound(stream=None)` then only picks the stream and calls the
driver. Checked with the fake driver, which records what reaches cuLaunchKernel."""
import ctypes
import gc
import types
import weakref

import numpy as np
import pytest
from helpers import touch, touch_arguments

import skc
from skc.runtime import fake_cuda
from skc.runtime.fake_cuda import FakeTensor


@pytest.fixture
def fake():
    with fake_cuda.installed() as driver:
        driver.inspect = touch_arguments
        yield driver


def test_a_bound_launch_passes_its_own_image_of_the_checked_arguments(fake):
    data, x = FakeTensor((64, 64)), FakeTensor((16,), "float32")
    args = (skc.TensorMap(data, (64, 64)), x, 5, 2.5)
    bound = touch[4, 32].ready(*args).bind(args)
    bound()
    bound()
    first, second = fake.launches
    assert first["arguments"] == second["arguments"] == bound.arguments
    assert first["seen"] == ((data.address, 2), x.address, 5, 2.5)
    assert first["grid"] == (4, 1, 1) and first["block"] == (32, 1, 1)
    # a plain launch with other arguments writes the launcher's slots, never the bound image
    other, y = FakeTensor((64, 64)), FakeTensor((16,), "float32")
    touch[4, 32](skc.TensorMap(other, (64, 64)), y, 7, -1.0)
    assert fake.launches[-1]["arguments"] != bound.arguments
    bound()
    assert fake.launches[-1]["seen"] == ((data.address, 2), x.address, 5, 2.5)


def test_binding_never_writes_the_launchers_own_slots(fake):
    """A launch on another thread may be writing the launcher's slots while a plan binds: binding checks and packs
    into the bound launch's own image, so neither can take the other's arguments."""
    data, x = FakeTensor((64, 64)), FakeTensor((16,), "float32")
    touch[4, 32](skc.TensorMap(data, (64, 64)), x, 5, 2.5)   # a plain launch: the launcher's slots hold these
    shared = fake_cuda.argument_pointers(fake.launches[-1]["arguments"], 4)   # they, through its pointer array
    other, y = FakeTensor((64, 64)), FakeTensor((16,), "float32")
    args = (skc.TensorMap(other, (64, 64)), y, 9, -4.0)
    bound = touch[4, 32].ready(*args).bind(args)
    assert (ctypes.c_uint64.from_address(shared[1]).value, ctypes.c_int32.from_address(shared[2]).value,
            ctypes.c_float.from_address(shared[3]).value) == (x.address, 5, 2.5)
    bound()
    assert fake.launches[-1]["seen"] == ((other.address, 2), y.address, 9, -4.0)


def test_binding_checks_the_arguments_as_a_launch_does(fake):
    data, x = FakeTensor((64, 64)), FakeTensor((16,), "float32")
    ready = touch[4, 32].ready(skc.TensorMap(data, (64, 64)), x, 5, 2.5)
    with pytest.raises(skc.LaunchError, match="'x' has dtype f64, the kernel's parameter takes f32"):
        ready.bind((skc.TensorMap(data, (64, 64)), FakeTensor((16,), "float64"), 5, 2.5))
    with pytest.raises(skc.LaunchError, match="'n' = 4294967296 does not fit in i32"):
        ready.bind((skc.TensorMap(data, (64, 64)), x, 2 ** 32, 2.5))
    with pytest.raises(skc.LaunchError, match="'t' must be an skc.TensorMap"):
        ready.bind((data, x, 5, 2.5))
    assert fake.launches == []


def test_a_bound_launch_keeps_no_argument_alive(fake):
    data, x = FakeTensor((64, 64)), FakeTensor((16,), "float32")
    tensor_map = skc.TensorMap(data, (64, 64))
    address = data.address
    bound = touch[4, 32].ready(tensor_map, x, 5, 2.5).bind((tensor_map, x, 5, 2.5))
    references = [weakref.ref(v) for v in (data, x, tensor_map)]
    del data, x, tensor_map
    gc.collect()
    assert all(reference() is None for reference in references)
    bound()  # the descriptor's bytes were copied into the image
    assert fake.launches[-1]["seen"][0] == (address, 2)


def test_a_bound_launch_goes_to_the_given_stream_or_the_current_one(fake):
    streams = [0]
    with fake_cuda.torch_installed(streams) as torch:
        data, x = torch.Tensor((64, 64)), torch.Tensor((16,), torch.float32)
        tensor_map = skc.TensorMap(data, (64, 64))
        bound = touch[4, 32].ready(tensor_map, x, 5, 2.5).bind((tensor_map, x, 5, 2.5))
        bound()
        streams.append(0x5EED)  # as inside `with torch.cuda.stream(s):`: read at each launch
        bound()
        bound(stream=3)
        bound(stream=types.SimpleNamespace(cuda_stream=9))  # a torch.cuda.Stream
        streams.pop()
        bound()
    assert [launch["stream"] for launch in fake.launches] == [0, 0x5EED, 3, 9, 0]
    cai, cai_map = FakeTensor((16,), "float32"), skc.TensorMap(FakeTensor((64, 64)), (64, 64))
    touch[4, 32].ready(cai_map, cai, 5, 2.5).bind((cai_map, cai, 5, 2.5))()  # no framework's stream: the default
    assert fake.launches[-1]["stream"] == 0


def test_only_cuda_launches_bind():
    x = np.zeros(16, np.float32)
    ready = touch.interpret[1, 32].ready(skc.TensorMap(np.zeros((64, 64), np.float16), (64, 64)), x, 5, 2.5)
    with pytest.raises(skc.LaunchError, match="a bound launch packs CUDA kernel parameters"):
        ready.bind((skc.TensorMap(np.zeros((64, 64), np.float16), (64, 64)), x, 5, 2.5))


def test_a_debug_launcher_binds_its_inner_launcher_and_waits_after_each_launch(fake, monkeypatch):
    from skc.runtime.hang_guard import HangGuardLauncher

    data, x = FakeTensor((64, 64)), FakeTensor((16,), "float32")
    args = (skc.TensorMap(data, (64, 64)), x, 5, 2.5)
    events = []
    guard = object.__new__(HangGuardLauncher)  # the hang record's device memory is the real driver's
    guard.inner, guard.table, guard.kernel = touch[4, 32].ready(*args).launcher, {}, "touch"
    guard.record = types.SimpleNamespace(clear=lambda: events.append("clear"), read=lambda: None)
    monkeypatch.setattr(fake, "cuCtxSynchronize", lambda: events.append("wait") or (0,), raising=False)
    bound = guard.bind(args, (4, 1, 1))
    bound()
    assert events == ["clear", "wait"] and fake.launches[-1]["arguments"] == bound.arguments
    assert fake.launches[-1]["seen"] == ((data.address, 2), x.address, 5, 2.5)
