"""skc.autotune's winners: kept per the arguments' element types as well as the key (as Triton's autotuner keys
them), and a stored winner that no longer compiles or launches (the kernel edited since, another skc) is tuned
again rather than raised from every later call."""
import contextlib
import json

import numpy as np
import pytest

import skc
from skc.autotune import Autotuner


@pytest.fixture
def cache(tmp_path):
    skc.set_cache_dir(tmp_path)
    yield tmp_path
    skc.set_cache_dir(None)


def tuner(times, fails=(), ran=None, timed=None):
    """A tuner keyed by the array's length, whose config `tile` takes times[tile] ms, and refuses the tiles in
    `fails` (as a kernel refuses a tile that needs more shared memory than there is) for f64 arrays."""
    def launch(x, tile):
        if tile in fails and x.dtype == np.float64:
            raise skc.CompileError(f"tile {tile} needs more shared memory than the device has")
        if ran is not None:
            ran.append((x.dtype.name, tile))
        launch.last = tile

    def timer(run):
        run()
        if timed is not None:
            timed.append(launch.last)
        return times[launch.last]
    return Autotuner(launch, [{"tile": 1}, {"tile": 2}], key=lambda x: len(x), name="tests.winners", timer=timer,
                     device_name=lambda: "fake device")


def test_winners_are_kept_per_element_type(cache):
    """Keyed by the key alone, f64 arrays took the winner timed for f32 ones, which f64 cannot run: every call
    raised the CompileError the tuner skips when it times."""
    tuner({1: 3.0, 2: 1.0})(np.zeros(8, np.float32))
    ran = []
    with pytest.warns(UserWarning, match="tile 2 needs more shared memory"):   # (timed: a key of its own)
        tuner({1: 3.0, 2: 1.0}, fails=(2,), ran=ran)(np.zeros(8, np.float64))
    assert ran[-1] == ("float64", 1)
    winners = json.loads((cache / "autotune" / "tests.winners.json").read_text())["winners"]["fake device"]
    assert sorted(w["config"]["tile"] for w in winners.values()) == [1, 2]


def test_a_stored_winner_that_no_longer_runs_is_tuned_again(cache):
    tuner({1: 3.0, 2: 1.0})(np.zeros(8, np.float64))
    ran, timed = [], []
    edited = tuner({1: 3.0, 2: 1.0}, fails=(2,), ran=ran, timed=timed)   # a new process, the kernel changed since
    with pytest.warns(UserWarning, match="tile 2 needs more shared memory"):
        edited(np.zeros(8, np.float64))
    assert timed == [1] and ran[-1] == ("float64", 1)
    edited(np.zeros(8, np.float64))
    assert timed == [1]
    winners = json.loads((cache / "autotune" / "tests.winners.json").read_text())["winners"]["fake device"]
    assert [w["config"] for w in winners.values()] == [{"tile": 1}]


def test_a_winner_that_fails_as_tuned_raises(cache):
    """A winner timed in this process that then fails is the launch's own error, never tuned round and round."""
    calls = []

    def launch(x, tile):
        calls.append(tile)
        if len(calls) > 1:
            raise skc.LaunchError("out must be an array")
    tuned = Autotuner(launch, [{"tile": 1}], name="tests.winners", timer=lambda run: run() or 1.0,
                      device_name=lambda: "fake device")
    with pytest.raises(skc.LaunchError, match="out must be an array"):
        tuned(np.zeros(8, np.float32))
    assert calls == [1, 1]


def counting_tuner(launch, timed, name="tests.made_by"):
    def timer(run):
        run()
        timed.append(launch.last)
        return {1: 3.0, 2: 1.0}[launch.last]
    return Autotuner(launch, [{"tile": 1}, {"tile": 2}], key=lambda n: n, name=name, timer=timer,
                     device_name=lambda: "fake device")


def test_a_winner_timed_by_another_skc_is_timed_again(cache, monkeypatch):
    """The winners were read by any skc: an upgrade that changed the kernels (the GEMM's, say) kept the old timings'
    choice for good, wherever the old winner still ran."""
    from skc import compiler

    def launch(n, tile):
        launch.last = tile
    timed = []
    counting_tuner(launch, timed)(5)
    counting_tuner(launch, timed)(5)   # (a new process of the same skc: read from disk)
    assert timed == [1, 2]
    monkeypatch.setattr(compiler, "skc_source_digest", lambda: "another skc")
    counting_tuner(launch, timed)(5)
    assert timed == [1, 2, 1, 2]
    counting_tuner(launch, timed)(5)
    assert timed == [1, 2, 1, 2]


def test_a_winner_timed_before_an_edit_of_the_launch_functions_file_is_timed_again(cache, tmp_path):
    """A kernel edited beside its launch function (another tile loop, another layout) kept the winner timed for the
    old code."""
    import importlib.util

    source = tmp_path / "tuned_launch.py"
    source.write_text("def launch(n, tile):\n    launch.last = tile\n")
    spec = importlib.util.spec_from_file_location("tuned_launch", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    timed = []
    counting_tuner(module.launch, timed)(5)
    counting_tuner(module.launch, timed)(5)
    assert timed == [1, 2]
    source.write_text(source.read_text() + "# the kernel beside it, edited\n")
    counting_tuner(module.launch, timed)(5)
    assert timed == [1, 2, 1, 2]


def test_a_winner_of_a_launch_with_no_source_file_is_read_back(cache):
    class Launch:
        def __call__(self, n, tile):
            self.last = tile
    launch, timed = Launch(), []
    counting_tuner(launch, timed)(5)
    counting_tuner(launch, timed)(5)
    assert timed == [1, 2]


def add_kernel(n, tile):
    add_kernel.last = tile


def mul_kernel(n, tile):
    mul_kernel.last = tile


def launcher_for(kernel):
    def launch(n, tile):
        kernel(n, tile)
        launch.last = kernel.last
    return launch


def test_launch_functions_of_one_factory_keep_winners_of_their_own(cache):
    """Tuners made by one factory (a launch function closing over the kernel it launches) shared one name and so one
    winners file: the second kernel ran the winner timed for the first, never timed."""
    timed = []
    counting_tuner(launcher_for(add_kernel), timed, name=None)(5)
    counting_tuner(launcher_for(mul_kernel), timed, name=None)(5)
    assert timed == [1, 2, 1, 2]
    # (as in a new process: each kernel's winner read back)
    counting_tuner(launcher_for(add_kernel), timed, name=None)(5)
    counting_tuner(launcher_for(mul_kernel), timed, name=None)(5)
    assert timed == [1, 2, 1, 2]
    assert len(list((cache / "autotune").glob("*.json"))) == 2


KERNEL_FILE = '''import skc

@skc.kernel(block=32)
def fill(x: skc.Ptr[skc.f32]):
    x[skc.thread_id(0)] = 1.0
'''


@pytest.mark.parametrize("reach", ["global", "module attribute", "closure"])
def test_a_winner_timed_before_an_edit_of_a_kernel_in_another_file_is_timed_again(cache, tmp_path, monkeypatch, reach):
    """The stamp covered skc and the launch function's file: a kernel it launches from another module, edited there,
    kept the winner timed for its old code."""
    import importlib.util

    source = tmp_path / f"tuned_kernels_{reach.replace(' ', '_')}.py"
    source.write_text(KERNEL_FILE)
    spec = importlib.util.spec_from_file_location(source.stem, source)
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    fill = kernels.fill

    if reach == "closure":
        def launch(n, tile):
            launch.last = tile if fill else None
    elif reach == "global":
        monkeypatch.setitem(globals(), "fill_kernel", fill)

        def launch(n, tile):
            launch.last = tile if fill_kernel else None   # noqa: F821  (the global set above)
    else:
        monkeypatch.setitem(globals(), "kernels_module", kernels)

        def launch(n, tile):
            launch.last = tile if kernels_module.fill else None   # noqa: F821
    timed = []
    counting_tuner(launch, timed)(5)
    counting_tuner(launch, timed)(5)
    assert timed == [1, 2]
    source.write_text(source.read_text().replace("1.0", "2.0"))
    counting_tuner(launch, timed)(5)
    assert timed == [1, 2, 1, 2]


@pytest.mark.parametrize("fifo", ["winners", "lock"])
def test_a_fifo_in_place_of_the_winners_file_or_its_lock_does_not_block_the_call(cache, fifo):
    """Path.read_text() and open(..., "a") waited for a writer or reader of the FIFO for ever."""
    import os
    import threading
    folder = cache / "autotune"
    folder.mkdir()
    os.mkfifo(folder / ("tests.winners.json" if fifo == "winners" else "tests.winners.lock"))
    done = []
    worker = threading.Thread(target=lambda: done.append(tuner({1: 3.0, 2: 1.0})(np.zeros(8, np.float32))),
                              daemon=True)
    with pytest.warns(UserWarning) if fifo == "lock" else contextlib.nullcontext():   # (the winner is not kept)
        worker.start()
        worker.join(30)
    assert not worker.is_alive() and done == [None]


def test_a_device_name_that_is_no_string_is_an_error():
    """An int was kept as "0" on disk: every later process missed it and timed again, until keys 0 and "0" side by
    side made json.dump raise a bare TypeError."""
    tuned = Autotuner(lambda x, tile: None, [{"tile": 1}], name="tests.device_int", device_name=lambda: 0,
                      timer=lambda run: 1.0)
    with pytest.raises(skc.SkcError, match=r"device_name\(\) names the device its winners are kept for, a non-empty "
                                           r"string, found 0"):
        tuned(np.zeros(8, np.float32))


def test_a_timer_of_numpy_floats_keeps_its_winner(cache):
    """np.float32 milliseconds failed to be written as JSON (a bare TypeError from every call)."""
    times = {1: np.float32(3.0), 2: np.float32(1.0)}
    tuner(times)(np.zeros(8, np.float32))
    winners = json.loads((cache / "autotune" / "tests.winners.json").read_text())["winners"]["fake device"]
    assert [w["ms"] for w in winners.values()] == [1.0]
    with pytest.raises(skc.SkcError, match="its timer gives the milliseconds a config took, a number of 0 or more, "
                                           "found nan"):
        tuner({1: float("nan"), 2: 1.0})(np.zeros(9, np.float32))
