"""The interpreter copies a TMA load or a cp.async when it is issued; on the GPU the bytes land some time before the
phase of the mbarrier the copy completes on. A kernel that reads (or writes) such bytes before any thread waited
for that phase ran right in the interpreter and raced on the GPU; now it is an InterpreterError that names the
read and the missing wait. The same kernels with the wait run as before."""
import numpy as np
import pytest

import skc
from skc.runtime import devices


@pytest.fixture(autouse=True)
def hopper_interpreter(monkeypatch):
    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "sm_90a")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    yield
    devices._target_of.cache_clear()


@skc.kernel(block=64)
def tma_then_read(tile: skc.TensorMap, out: skc.Ptr[skc.f32], waits: skc.constexpr, writes: skc.constexpr):
    full = skc.shared((1,), skc.u64, align=8)
    stage = skc.shared((8 * 32,), skc.f32, align=1024)
    t = skc.thread_id(0)
    if t == 0:
        skc.hopper.mbarrier_init(full, 1)
        skc.hopper.fence_mbarrier_init()
    skc.barrier()
    if t == 0:
        skc.hopper.mbarrier_arrive_tx(full, 8 * 32 * 4)
        skc.hopper.tma_load(stage, full, tile, (0, 0))
    if waits == "every thread":
        skc.hopper.mbarrier_wait(full, 0)
    elif waits == "one thread":   # (then a block barrier: the others see the tile through it)
        if t == 0:
            skc.hopper.mbarrier_wait(full, 0)
        skc.barrier()
    if writes:
        stage[t] = 0.0
    for i in range(t, 8 * 32, 64):
        out[i] = stage[i]


def tile():
    x = np.arange(8 * 32, dtype=np.float32).reshape(8, 32)
    return x, skc.TensorMap(x, box=(8, 32), swizzle=0)


@pytest.mark.parametrize("waits", ["every thread", "one thread"])
def test_a_tile_read_after_its_phase_is_waited_for_runs(waits):
    x, tmap = tile()
    out = np.zeros(8 * 32, np.float32)
    tma_then_read[1, 64](tmap, out, waits, False)
    assert np.array_equal(out, x.reshape(-1))


@pytest.mark.parametrize("writes, verb", [(False, "a load reads"), (True, "a store writes")])
def test_a_tile_used_before_any_wait_is_an_error_naming_the_missing_wait(writes, verb):
    _, tmap = tile()
    with pytest.raises(skc.InterpreterError, match=f"{verb} shared memory that a TMA load or cp.async issued earlier "
                                                   "may still be writing: no thread has waited") as info:
        tma_then_read[1, 64](tmap, np.zeros(8 * 32, np.float32), "nobody", writes)
    assert "mbarrier_wait" in str(info.value)


@skc.kernel(block=32)
def cp_async_then_read(src: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], arrives: skc.constexpr, waits: skc.constexpr):
    full = skc.shared((1,), skc.u64, align=8)
    stage = skc.shared((128,), skc.f32, align=16)
    t = skc.thread_id(0)
    if t == 0:
        skc.hopper.mbarrier_init(full, 32)
        skc.hopper.fence_mbarrier_init()
    skc.barrier()
    skc.hopper.cp_async(stage + 4 * t, src + 4 * t, 16)
    if arrives:
        skc.hopper.cp_async_arrive(full)
    else:
        skc.hopper.mbarrier_arrive(full)
    if waits:
        skc.hopper.mbarrier_wait(full, 0)
    for i in range(4):
        out[4 * t + i] = stage[4 * ((t + 1) % 32) + i]   # (another thread's copy)


@pytest.mark.parametrize("arrives, waits", [(True, True), (True, False), (False, True)])
def test_a_cp_async_is_in_flight_until_a_wait_sees_the_phase_its_arrival_counts_in(arrives, waits):
    src = np.arange(128, dtype=np.float32)
    out = np.zeros(128, np.float32)
    if arrives and waits:
        cp_async_then_read[1, 32](src, out, arrives, waits)
        assert np.array_equal(out, np.roll(src, -4))
        return
    with pytest.raises(skc.InterpreterError, match="a load reads shared memory that a TMA load or cp.async"):
        cp_async_then_read[1, 32](src, out, arrives, waits)


# -- the other way: threads' stores read by the async proxy ---------------------------------------------------------
@skc.kernel(block=64)
def staged_tma_store(tile: skc.TensorMap, fences: skc.constexpr):
    stage = skc.shared((8 * 32,), skc.f32, align=1024)
    t = skc.thread_id(0)
    for i in range(t, 8 * 32, 64):
        stage[i] = skc.f32(i)
    if fences:
        skc.hopper.fence_proxy_async()
    skc.barrier()
    if t == 0:
        skc.hopper.tma_store(tile, stage, (0, 0))
        skc.hopper.tma_commit()
        skc.hopper.tma_wait(0)


def test_a_tma_store_of_stores_the_writers_fenced_runs():
    out = np.zeros((8, 32), np.float32)
    staged_tma_store[1, 64](skc.TensorMap(out, box=(8, 32), swizzle=0), True)
    assert np.array_equal(out.reshape(-1), np.arange(8 * 32, dtype=np.float32))


def test_a_tma_store_of_stores_not_fenced_is_an_error_naming_the_writer_and_the_fence():
    """PTX ISA, the memory proxies: a TMA store reads shared memory through the async proxy, which a thread's
    st.shared reaches only past a fence.proxy.async of that thread."""
    out = np.zeros((8, 32), np.float32)
    with pytest.raises(skc.InterpreterError, match=r"tma.store reads shared memory that thread \(0, 0, 0\) stored to "
                                                   "and has not fenced since") as info:
        staged_tma_store[1, 64](skc.TensorMap(out, box=(8, 32), swizzle=0), False)
    assert "fence_proxy_async" in str(info.value)


@skc.kernel(block=96)
def second_load_past_the_wait(tile: skc.TensorMap, out: skc.Ptr[skc.f32]):
    """Threads 64 and 0 load the same stage, completing phases 0 and 1 of `full` (no `empty` barrier between);
    thread 32 waits for the phase of parity 0 and reads the stage. Thread 0 (its wait on `go` is over when thread
    32's begins) runs first, so thread 32 resumes with both phases complete."""
    full = skc.shared((1,), skc.u64, align=8)
    go = skc.shared((1,), skc.u64, align=8)
    stage = skc.shared((8 * 32,), skc.f32, align=1024)
    t = skc.thread_id(0)
    if t == 0:
        skc.hopper.mbarrier_init(full, 1)
        skc.hopper.mbarrier_init(go, 1)
        skc.hopper.fence_mbarrier_init()
    skc.barrier()
    if t == 0:
        skc.hopper.mbarrier_wait(go, 0)
        skc.hopper.mbarrier_arrive_tx(full, 8 * 32 * 4)
        skc.hopper.tma_load(stage, full, tile, (0, 0))
    elif t == 32:
        skc.hopper.mbarrier_wait(full, 0)
        out[0] = stage[0]
    elif t == 64:
        skc.hopper.mbarrier_arrive_tx(full, 8 * 32 * 4)
        skc.hopper.tma_load(stage, full, tile, (0, 0))
        skc.hopper.mbarrier_arrive(go)


def test_a_wait_that_resumes_past_the_next_phase_saw_only_the_phase_of_its_parity():
    """On the GPU the wait for parity 0 returned when phase 0 had completed and phase 1 not (once both have, parity
    0 is pending again and it waits for ever): the second load may still be writing the stage it reads. The wait
    took the barrier's state as it was when it resumed, and both loads as landed."""
    _, tmap = tile()
    with pytest.raises(skc.InterpreterError, match="a load reads shared memory that a TMA load or cp.async issued "
                                                   "earlier may still be writing"):
        second_load_past_the_wait[1, 96](tmap, np.zeros(1, np.float32))
