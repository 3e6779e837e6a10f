"""The native call of a launch whose arguments select nothing (skc.jit._PlainLaunch; runtime.native.launch_method):
it launches with the state it keeps only while nothing a full call checks has changed (the device selection, the
globals the kernel read), and hands anything else to the Python call, which checks it all."""
import gc
import sys

import numpy as np
import pytest

import skc
from skc import jit
from skc.runtime.devices import selection, using_device

SCALE = 2.0


@skc.kernel(block=32)
def scaled(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        out[i] = x[i] * SCALE


@skc.kernel(block=32)
def chosen(x, out, n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        out[i] = x[i] + 1


def _data(n=20):
    return np.arange(n, dtype=np.float32), np.zeros(n, np.float32)


def test_a_plain_launch_is_called_natively_and_computes_what_the_python_call_does():
    x, out = _data()
    launch = scaled[1, 32]
    assert type(launch) is jit._PlainLaunch
    launch(x, out, 20)
    assert type(jit._PlainLaunch.__dict__["__call__"]).__name__ == "method_descriptor"
    assert launch._fast is not None and launch._fast[0] is launch._launch
    assert out.tolist() == (2 * x).tolist()
    again = np.zeros_like(out)
    jit.Launch._call(launch, x, again, 20)
    assert again.tolist() == out.tolist()


def test_a_global_bound_again_is_seen_by_the_native_call():
    global SCALE
    x, out = _data()
    launch = scaled[1, 32]
    launch(x, out, 20)
    assert out.tolist() == (2 * x).tolist()
    try:
        SCALE = 3.0
        launch(x, out, 20)
        assert out.tolist() == (3 * x).tolist()
        assert launch._fast is not None   # made again after the compile
    finally:
        SCALE = 2.0
    launch(x, out, 20)
    assert out.tolist() == (2 * x).tolist()


def test_the_native_call_follows_a_new_device_selection():
    """The state is made again for a new selection (it names what the native call compares), and again when the
    selection before comes back; the device the launch had already keeps its launcher."""
    x, out = _data()
    start = selection()[0]   # (None, unless a test before selected a device and left it selected)
    launch = scaled[1, 32]
    launch(x, out, 20)
    before, chosen_launcher = launch._device, launch._launch
    assert launch._fast[4] is start
    with using_device("interpreter") as device:
        launch(x, out, 20)
        assert launch._device is device and launch._fast[4] is device
        if device is before:
            assert launch._launch is chosen_launcher
    launch(x, out, 20)
    assert launch._device is before and launch._fast[4] is start
    assert out.tolist() == (2 * x).tolist()


def test_a_launch_on_a_device_of_its_own_ignores_the_selection():
    x, out = _data()
    launch = scaled.on("interpreter")[1, 32]
    launch(x, out, 20)
    assert launch._fast[4] is jit._ANYWHERE
    with using_device("interpreter"):
        launch(x, out, 20)
    assert out.tolist() == (2 * x).tolist()


def test_keywords_take_the_python_call_and_a_stream_either_and_launch_alike():
    x, out = _data()
    scaled[1, 32](x=x, out=out, n=20)
    assert out.tolist() == (2 * x).tolist()
    for stream in (0, None, np.int64(0)):   # (an int or None: the native call's; another object: the Python one's)
        out[:] = 0
        scaled[1, 32](x, out, 20, stream=stream)
        assert out.tolist() == (2 * x).tolist()
    with pytest.raises(skc.LaunchError, match="unexpected keyword argument 'nonsense'"):
        scaled[1, 32](x, out, 20, nonsense=1)
    with pytest.raises(skc.LaunchError, match="unexpected keyword argument 'nonsense'"):
        scaled[1, 32](x, out, 20, stream=0, nonsense=1)


def test_a_kernel_whose_arguments_select_its_specialization_keeps_the_python_call():
    x, out = _data()
    launch = chosen[1, 32]
    assert type(launch) is jit.Launch and jit.Launch.__call__ is jit.Launch._call
    launch(x, out, 20)
    assert out.tolist() == (x + 1).tolist()


def test_the_native_call_keeps_reference_counts():
    x, out = _data()
    launch = scaled[1, 32]
    launch(x, out, 20)
    state = launch._fast

    def counts():
        gc.collect()   # (a launch in the interpreter leaves cycles that hold the arguments until collected)
        return [sys.getrefcount(v) for v in (x, out, state, launch)]
    before = counts()
    for _ in range(200):
        launch(x, out, 20)
    for _ in range(50):
        launch(x, out, 20, stream=None)
        launch(x, out, n=20)   # (the Python call, from the native one)
    assert counts() == before


def test_an_error_of_the_launch_comes_out_of_the_native_call():
    x, out = _data()
    launch = scaled[1, 32]
    launch(x, out, 20)
    with pytest.raises(skc.LaunchError):
        launch(x.astype(np.float64), out, 20)
    with pytest.raises(skc.LaunchError):
        launch(x, out)   # (one argument short: the Python call's error)
    launch(x, out, 20)
    assert out.tolist() == (2 * x).tolist()


def test_dropped_specializations_drop_the_state():
    global SCALE
    x, out = _data()
    launch = scaled[1, 32]
    launch(x, out, 20)
    SCALE = 5.0
    try:
        scaled.check_watched()   # (what a compile() or ready() does first: every launch forgets)
        assert launch._fast is None and launch._device is None
        launch(x, out, 20)
        assert out.tolist() == (5 * x).tolist()
    finally:
        SCALE = 2.0
