"""The native call of a launch whose arguments select nothing (skc.jit._PlainLaunch; runtime.native.launch_method):
it launches with the state it keeps only while nothing a full call checks has changed (the device selection, the
globals the kernel read), and hands anything else to the Python call, which checks it all."""
import gc
import sys
import threading

import numpy as np
import pytest

import skc
from skc import jit
from skc.runtime import devices, fake_cuda
from skc.runtime.devices import Device, using_device

SCALE = 2.0


@skc.kernel(block=32)
def scaled(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        out[i] = x[i] * SCALE


@skc.kernel(block=32)
def summed(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        total = 0.0
        for j in range(min(n, 4)):   # (builtins: watched as names the module does not bind)
            total += float(x[j])
        out[i] = total


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
    assert launch._fast is not None and launch._fast[0] is launch._chosen[2]
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
    start = devices.selected()   # (None, unless a test before selected a device and left it selected)
    launch = scaled[1, 32]
    launch(x, out, 20)
    before, chosen_launcher = launch._chosen[0], launch._chosen[2]
    assert launch._fast[4] is start
    with using_device("interpreter") as device:
        launch(x, out, 20)
        assert launch._chosen[0] is device and launch._fast[4] is device
        if device is before:
            assert launch._chosen[2] is chosen_launcher
    launch(x, out, 20)
    assert launch._chosen[0] is before and launch._fast[4] is start
    assert out.tolist() == (2 * x).tolist()


def test_a_using_device_block_selects_for_its_own_thread_alone():
    """using_device is a thread's (as torch's current device is: torch.nn.DataParallel runs a thread a GPU): another
    thread keeps the process's selection meanwhile, launches there (a native call included: its state names the
    other device), and the process's selection is what it was after the blocks end in either order."""
    x, out = _data()
    launch = scaled[1, 32]
    with fake_cuda.installed():
        with using_device("interpreter"):
            launch(x, out, 20)   # (a state for the interpreter, which the native call would take)
        entered, done = threading.Barrier(2), threading.Barrier(2)
        seen = {}

        def worker(leave_first):
            with using_device("interpreter"):
                entered.wait()
                mine = np.zeros_like(out)
                launch(x, mine, 20)
                seen[leave_first] = (devices.current_device(), launch._chosen[0], mine.tolist())
                if not leave_first:
                    done.wait()
            if leave_first:
                done.wait()

        for leave_first in (True, False):
            thread = threading.Thread(target=worker, args=(leave_first,))
            thread.start()
            entered.wait()
            try:
                assert devices.current_device() == Device("cuda", 0) and devices.selected() == Device("cuda", 0)
                with pytest.raises(skc.LaunchError, match="the kernel runs on cuda:0"):
                    launch(x, out, 20)   # (host arrays: on cuda:0, not in the other thread's interpreter)
            finally:
                done.wait()
                thread.join()
            assert seen[leave_first] == (Device("interpreter"), Device("interpreter"), (2 * x).tolist())
            assert devices.selected() == Device("cuda", 0) and devices._selected[0] == Device("cuda", 0)



def test_using_device_blocks_that_end_out_of_order_leave_no_selection_behind():
    """Blocks on one thread that end out of order (two asyncio tasks', a generator's closed later, on another thread
    too) each leave their own place: each block brought back the selection from before it, so the thread kept a
    device after all its blocks ended and set_device, taken for the block's, no longer set the process's."""
    with fake_cuda.installed():
        start = devices.swap_selection(None)
        try:
            first, second = using_device("interpreter"), using_device("cuda:0")
            first.__enter__()
            second.__enter__()
            first.__exit__(None, None, None)
            assert devices.current_device() == Device("cuda", 0)   # (the block still open)
            second.__exit__(None, None, None)
            assert devices.set_device("interpreter") == Device("interpreter")
            assert devices.selected() == Device("interpreter") and devices._selected[0] == Device("interpreter")
            devices.swap_selection(None)

            def suspended():
                with using_device("cuda:0"):
                    yield

            generator = suspended()
            next(generator)
            seen = []

            def close_it_elsewhere():
                with using_device("interpreter"):
                    generator.close()
                    seen.append(devices.current_device())

            thread = threading.Thread(target=close_it_elsewhere)
            thread.start()
            thread.join()
            assert seen == [Device("interpreter")]   # (the other thread's block kept its device)
            devices.set_device("interpreter")
            assert devices.selected() == Device("interpreter") and devices._selected[0] == Device("interpreter")
        finally:
            devices.swap_selection(start)

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
        assert launch._fast is None and launch._chosen[0] is None
        launch(x, out, 20)
        assert out.tolist() == (5 * x).tolist()
    finally:
        SCALE = 2.0


def _counting(launch) -> list:
    """Put a counting stand-in for the launch in the launch's state: the calls it counts are the native call's
    (the Python call launches with the launcher itself)."""
    calls, real = [], launch._fast[0]

    def counted(args, grid, stream):
        calls.append(stream)
        real(args, grid, stream)
    launch._fast = (counted,) + launch._fast[1:]
    return calls


def test_a_kernel_that_reads_builtins_takes_the_native_call():
    x, out = _data()
    launch = summed[1, 32]
    launch(x, out, 20)
    assert any(name == "range" for _, name, _ in summed._watch)
    calls = _counting(launch)
    launch(x, out, 20)
    launch(x, out, 20, stream=0)
    assert calls == [None, 0] and out.tolist() == [6.0] * 20


def test_another_selection_list_is_read_at_each_call(monkeypatch):
    """Tests put another list in the devices module; the native call reads the module's attribute each time."""
    x, out = _data()
    launch = scaled[1, 32]
    launch(x, out, 20)
    calls = _counting(launch)
    launch(x, out, 20)
    assert len(calls) == 1
    monkeypatch.setattr(devices, devices.SELECTION_ATTRIBUTE, [Device("interpreter")])
    if launch._fast[4] is not None:   # (a test before left a selection: another object now)
        monkeypatch.setattr(devices, devices.SELECTION_ATTRIBUTE, [None])
    launch(x, out, 20)
    assert len(calls) == 1   # (the Python call, which made the state again for the new selection)
    assert launch._fast[4] is getattr(devices, devices.SELECTION_ATTRIBUTE)[0]


@pytest.mark.parametrize("made_by", ["select", "renew"])
def test_a_state_made_while_another_thread_forgets_the_launch_is_not_kept(made_by, monkeypatch):
    """forget() (a global bound again, seen by another thread's launch) landing while a call makes the state: the
    state would name the launcher from before, and the native call would keep launching it."""
    x, out = _data()
    launch = scaled[1, 32]
    launch(x, out, 20)
    if made_by == "select":
        launch.forget()
    else:
        launch._fast = launch._fast[:3] + ((),) + launch._fast[4:]   # (a watch the kernel no longer has)
    made = jit._PlainLaunch._ready_state

    def forgotten_meanwhile(self, chosen_launch, selected):
        state = made(self, chosen_launch, selected)
        self.forget()
        return state
    monkeypatch.setattr(jit._PlainLaunch, "_ready_state", forgotten_meanwhile)
    launch(x, out, 20)
    assert launch._fast is None and launch._chosen[0] is None
    monkeypatch.undo()
    launch(x, out, 20)
    assert launch._fast is not None and out.tolist() == (2 * x).tolist()
