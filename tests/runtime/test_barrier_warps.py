"""skc's barriers lower to PTX's .aligned bar.sync and bar.arrive, which every thread of a warp that has not exited
must execute together. A barrier under a condition that splits a warp ran in the interpreter (each part counted in,
so a named barrier's count could even come out right) and is undefined on the GPU: now an error naming the warp's
threads on each side. Threads that returned before count as absent-but-fine, as the GPU counts exited threads."""
import numpy as np
import pytest

import skc


@skc.kernel(block=64)
def split_at_barrier(x: skc.Ptr[skc.i32], cut: skc.i32, named: skc.constexpr):
    t = skc.thread_id(0)
    if t < cut:
        if named:
            skc.barrier_named(1, 32)
        else:
            skc.barrier()
        x[t] = 1
    else:
        if named:
            skc.barrier_named(1, 32)
        else:
            skc.barrier()
        x[t] = 2


@pytest.mark.parametrize("named", [False, True])
def test_a_barrier_reached_by_part_of_a_warp_is_an_error_naming_both_parts(named):
    with pytest.raises(skc.InterpreterError, match=r"threads 0-15 of warp 0 reach gpu.barrier while threads 16-31 "
                                                   "of that warp do not .*aligned barrier needs every thread of a "
                                                   "warp"):
        split_at_barrier[1, 64](np.zeros(64, np.int32), 16, named)


@pytest.mark.parametrize("named", [False, True])
def test_a_barrier_under_a_condition_whole_warps_share_runs(named):
    """(one warp on each side: the two sides' barriers are one barrier id, which each warp reaches whole)"""
    x = np.zeros(64, np.int32)
    split_at_barrier[1, 64](x, 32, named)
    assert x.tolist() == [1] * 32 + [2] * 32


@skc.kernel(block=48)
def returned_then_barrier(x: skc.Ptr[skc.i32]):
    t = skc.thread_id(0)
    if t >= 40:
        return
    skc.barrier()   # (a partial last warp, part of it returned: the rest is whole)
    x[t] = 1


def test_threads_that_returned_leave_the_rest_of_their_warp_whole():
    x = np.zeros(48, np.int32)
    returned_then_barrier[1, 48](x)
    assert x.tolist() == [1] * 40 + [0] * 8


def test_the_error_speaks_of_wavefronts_and_s_barrier_under_an_amd_target(monkeypatch):
    """The interpreter modelling gfx942 called the 64-lane wavefront a warp and blamed PTX's aligned barrier."""
    from skc.runtime import devices

    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "gfx942")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    try:
        with pytest.raises(skc.InterpreterError) as caught:
            split_at_barrier[1, 64](np.zeros(64, np.int32), 32, False)
    finally:
        devices._target_of.cache_clear()
    message = str(caught.value)
    assert ("threads 0-31 of wavefront 0 reach gpu.barrier while threads 32-63 of that wavefront do not" in message
            and "gfx942's s_barrier (a convergent operation) needs every thread of a wavefront" in message), message
    assert "PTX" not in message and "warpgroup" not in message, message
