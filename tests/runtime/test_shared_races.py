"""Shared-memory races between warps (skc/runtime/interpreter/races.py): a kernel whose warps exchange values through
shared memory with no barrier between the write and the read ran right in the interpreter, which runs a block's
threads in groups, and raced on the GPU. In kernels whose only synchronization is the whole-block barrier, such an
access is an error at its line naming the other thread."""
import numpy as np
import pytest

import skc
from skc.runtime.interpreter import races
from helpers import tile_module

F32 = skc.Ptr[skc.f32]
I32 = skc.Ptr[skc.i32]


@skc.kernel(block=64)
def read_after_write(x: F32, out: F32, synced: skc.constexpr):
    tile = skc.shared((64,), skc.f32)
    t = skc.thread_id(0)
    tile[t] = x[t]
    if synced:
        skc.barrier()
    out[t] = tile[63 - t]   # marker: read


@skc.kernel(block=64)
def write_after_read(x: F32, out: F32, synced: skc.constexpr):
    tile = skc.shared((64,), skc.f32)
    t = skc.thread_id(0)
    tile[t] = x[t]
    skc.barrier()
    mirrored = tile[63 - t]
    if synced:
        skc.barrier()
    tile[t] = mirrored * 2.0   # marker: write
    skc.barrier()
    out[t] = tile[t]


@skc.kernel(block=(32, 2))
def write_after_write(out: F32, same: skc.constexpr):
    cell = skc.shared((1,), skc.f32)
    x, warp = skc.thread_id(0), skc.thread_id(1)
    if x == 0:
        cell[0] = 1.0 if same else skc.f32(warp)   # marker: both
    skc.barrier()
    out[warp * 32 + x] = cell[0]


@skc.kernel(block=(32, 2))
def written_in_turn(out: F32, second: skc.constexpr):
    cell = skc.shared((1,), skc.f32)
    x, warp = skc.thread_id(0), skc.thread_id(1)
    if x == 0 and warp == 0:
        cell[0] = 1.0
    if x == 0 and warp == 1:
        cell[0] = second   # marker: second
    skc.barrier()
    out[warp * 32 + x] = cell[0]


@skc.kernel(block=64)
def within_a_warp(x: F32, out: F32):
    """Each warp reverses its own 32 values: a warp reads what its own lanes wrote (not checked: one warp)."""
    tile = skc.shared((64,), skc.f32)
    t = skc.thread_id(0)
    tile[t] = x[t]
    out[t] = tile[t // 32 * 32 + 31 - t % 32]


@skc.kernel(block=128)
def histogram(x: I32, out: I32):
    """Atomics from every warp, then a barrier, then plain reads: no race."""
    bins = skc.shared((4,), skc.i32)
    t = skc.thread_id(0)
    if t < 4:
        bins[t] = 0
    skc.barrier()
    skc.atomic_add(bins.address((x[t] % 4,)), 1)
    skc.barrier()
    if t < 4:
        out[t] = bins[t]


@skc.kernel(block=128)
def counted(x: I32, out: I32, mode: skc.constexpr):
    """Every warp counts its values into one shared counter; mode 0 reads it past a barrier, 1 with none, 2 stores
    into it after the last barrier and before the atomics."""
    total = skc.shared((1,), skc.i32)
    t = skc.thread_id(0)
    if t == 0:
        total[0] = 0
    if mode != 2:
        skc.barrier()
    skc.atomic_add(total.address((0,)), x[t])   # marker: update
    if mode == 0:
        skc.barrier()
    out[t] = total[0]   # marker: total


def test_atomics_of_several_warps_are_no_race_but_a_plain_access_beside_them_is():
    x = np.ones(128, np.int32)
    out = np.zeros(128, np.int32)
    counted[1, 128](x, out, 0)
    assert (out == 128).all()
    with pytest.raises(skc.InterpreterError, match="a load reads shared memory that warp [1-3] updated atomically "
                                                   "since the last barrier") as info:
        counted[1, 128](x, out, 1)
    assert "marker: total" in str(info.value)
    stored = r"an atomic updates shared memory that thread \(0, 0, 0\) \(warp 0\) stored since the last barrier"
    with pytest.raises(skc.InterpreterError, match=stored) as info:
        counted[1, 128](x, out, 2)
    assert "marker: update" in str(info.value)


def test_a_read_of_another_warps_write_without_a_barrier_is_an_error():
    x = np.arange(64, dtype=np.float32)
    out = np.zeros(64, np.float32)
    read_after_write[1, 64](x, out, True)
    assert out.tolist() == x[::-1].tolist()
    with pytest.raises(skc.InterpreterError) as info:
        read_after_write[1, 64](x, out, False)
    text = str(info.value)
    assert "marker: read" in text and "thread (63, 0, 0) (warp 1) wrote since the last barrier" in text
    assert "put skc.barrier() between the write and the read" in text


def test_a_write_over_what_another_warp_read_without_a_barrier_is_an_error():
    x = np.arange(64, dtype=np.float32)
    out = np.zeros(64, np.float32)
    write_after_read[1, 64](x, out, True)
    assert out.tolist() == (2 * x[::-1]).tolist()
    with pytest.raises(skc.InterpreterError, match="a store writes shared memory that warp 1 read since the last "
                                                   "barrier") as info:
        write_after_read[1, 64](x, out, False)
    assert "marker: write" in str(info.value)


def test_two_warps_writing_other_values_race_and_the_same_value_does_not():
    out = np.zeros(64, np.float32)
    write_after_write[1, (32, 2)](out, True)
    assert (out == 1.0).all()
    with pytest.raises(skc.InterpreterError, match=r"threads \(0, 0, 0\) and \(0, 1, 0\) of warps 0 and 1 store "
                                                   r"other values to the same shared memory") as info:
        write_after_write[1, (32, 2)](out, False)
    assert "marker: both" in str(info.value)
    written_in_turn[1, (32, 2)](out, 1.0)
    assert (out == 1.0).all()
    with pytest.raises(skc.InterpreterError, match=r"a store writes another value over shared memory that thread "
                                                   r"\(0, 0, 0\) \(warp 0\) wrote since the last barrier") as info:
        written_in_turn[1, (32, 2)](out, 2.0)
    assert "marker: second" in str(info.value)


def test_a_warps_own_writes_and_atomics_are_not_races():
    x = np.arange(64, dtype=np.float32)
    out = np.zeros(64, np.float32)
    within_a_warp[1, 64](x, out)
    assert out.tolist() == np.concatenate([x[31::-1], x[:31:-1]]).tolist()
    values = np.arange(128, dtype=np.int32)
    counts = np.zeros(4, np.int32)
    histogram[1, 128](values, counts)
    assert counts.tolist() == [32, 32, 32, 32]


def test_kernels_that_synchronize_otherwise_are_not_checked():
    """A named barrier, an mbarrier or an asynchronous copy orders accesses the whole-block barrier does not: such
    kernels are left alone (the GEMM's and attention's blocks among them)."""
    @skc.kernel(block=64)
    def named(x: F32, out: F32):
        tile = skc.shared((64,), skc.f32)
        t = skc.thread_id(0)
        tile[t] = x[t]
        skc.barrier_named(1, 64)
        out[t] = tile[63 - t]

    x = np.arange(64, dtype=np.float32)
    out = np.zeros(64, np.float32)
    named[1, 64](x, out)
    assert out.tolist() == x[::-1].tolist()
    module = tile_module(named, F32, F32, block=64)
    assert not races.checked(module.functions[0])
    assert races.checked(tile_module(read_after_write, F32, F32, False, block=64).functions[0])


@skc.kernel(block=64)
def halo(x: F32, out: F32):
    """Each warp stages its 32 values and one on each side, which its neighbour stages too (the same values), and
    reads only what it staged itself: no barrier needed."""
    tile = skc.shared((66,), skc.f32)
    t = skc.thread_id(0)
    tile[t + 1] = x[t + 1]
    if t % 32 == 0:
        tile[t] = x[t]
    if t % 32 == 31:
        tile[t + 2] = x[t + 2]
    out[t] = tile[t] + tile[t + 1] + tile[t + 2]


@skc.kernel(block=64)
def rewritten(x: F32, out: F32, changed: skc.constexpr):
    cell = skc.shared((1,), skc.f32)
    t = skc.thread_id(0)
    if t == 32:
        cell[0] = 1.0 if changed else 2.0
        cell[0] = 2.0
    if t == 0:
        cell[0] = 2.0
        out[0] = cell[0]   # marker: read back


@skc.kernel(block=64)
def same_value_over_a_read(x: F32, out: F32):
    """Warp 1 reads what warp 0 holds, and warp 0 stores that value again: the read sees it either way."""
    tile = skc.shared((64,), skc.f32)
    t = skc.thread_id(0)
    tile[t] = 5.0
    skc.barrier()
    seen = tile[63 - t]
    tile[t] = 5.0
    skc.barrier()
    out[t] = tile[t] + seen


def test_a_warp_reads_back_a_value_other_warps_stored_too():
    """Warps that store the same value to a byte each read their own, whichever store lands last: no race (two
    warps' halos overlap); but when the other warp stored another value first, its store may land after."""
    x = np.arange(66, dtype=np.float32)
    out = np.zeros(64, np.float32)
    halo[1, 64](x, out)
    assert out.tolist() == (x[:-2] + x[1:-1] + x[2:]).tolist()
    rewritten[1, 64](x, out, False)
    assert out[0] == 2.0
    with pytest.raises(skc.InterpreterError, match=r"a load reads shared memory that warp 1 wrote since the last "
                                                   r"barrier") as info:
        rewritten[1, 64](x, out, True)
    assert "marker: read back" in str(info.value)


def test_a_store_of_the_value_a_byte_holds_over_another_warps_read_is_not_a_race():
    out = np.zeros(64, np.float32)
    same_value_over_a_read[1, 64](np.zeros(64, np.float32), out)
    assert (out == 10.0).all()


def test_a_store_of_another_value_after_two_warps_stored_one_is_a_race():
    """Warps 0 and 1 store 1.0, then warp 0 stores 2.0 (after its own store, the last): warp 1's may land after."""
    @skc.kernel(block=64)
    def changed_after_both(out: F32):
        cell = skc.shared((1,), skc.f32)
        t = skc.thread_id(0)
        if t % 32 == 0:
            cell[0] = 1.0
        if t == 0:
            cell[0] = 2.0   # marker: changed
        skc.barrier()
        out[t] = cell[0]

    with pytest.raises(skc.InterpreterError, match=r"a store writes another value over shared memory that thread "
                                                   r"\(32, 0, 0\) \(warp 1\) wrote") as info:
        changed_after_both[1, 64](np.zeros(64, np.float32))
    assert "marker: changed" in str(info.value)
