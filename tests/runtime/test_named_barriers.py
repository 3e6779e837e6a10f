"""Named barriers: `skc.barrier_named` waits and `skc.barrier_arrive` counts in without waiting (PTX bar.sync /
bar.arrive), with a compile-time or a run-time id; `WarpgroupTurns` built on them. The interpreter runs each
warpgroup of a Hopper block as its own group, so warpgroups that wait on each other past an `if` they were both in
progress as on the GPU."""
import numpy as np
import pytest

import skc
from skc.blocks.roles import WarpgroupTurns


@skc.kernel(block=128)
def handoff(x: skc.Ptr[skc.i32], out: skc.Ptr[skc.i32]):
    t = skc.thread_id(0)
    if t < 64:                       # two warps write, then signal
        x[t] = t * 3
        skc.barrier_arrive(3, 128)
    else:                            # two warps wait for them, then read
        skc.barrier_named(3, 128)
        out[t - 64] = x[t - 64] + 1


@skc.kernel(block=256)
def take_turns(log: skc.Ptr[skc.i32], counter: skc.Ptr[skc.i32], rounds: skc.i32):
    t = skc.thread_id(0)
    warpgroup = t // 128
    turn = WarpgroupTurns(2, warpgroup)
    for _ in range(rounds):
        with turn:
            if t % 128 == 0:
                log[skc.atomic_add(counter, 1)] = warpgroup
        if warpgroup == 0:           # work between turns that only one warpgroup does
            skc.barrier_named(1, 128)


@skc.kernel(block=64)
def mixed_ids(out: skc.Ptr[skc.i32]):
    t = skc.thread_id(0)
    skc.barrier_named(4 + t // 32, 32)   # each warp its own barrier: allowed ...
    out[t] = 1


@skc.kernel(block=64)
def split_warp(out: skc.Ptr[skc.i32]):
    t = skc.thread_id(0)
    skc.barrier_named(4 + t % 2, 64)     # ... but not an id that differs inside a warp
    out[t] = 1


def test_an_arrive_releases_the_waiting_warps():
    x, out = np.zeros(64, np.int32), np.zeros(64, np.int32)
    handoff.interpret[1, 128](x, out)
    np.testing.assert_array_equal(out, np.arange(64) * 3 + 1)
    ptx = handoff.compile(x, out, target="sm_90a").asm("ptx")
    assert "bar.arrive \t3, 128;" in ptx and "bar.sync \t3, 128;" in ptx


def test_warpgroups_take_turns():
    log, counter = np.full(12, -1, np.int32), np.zeros(1, np.int32)
    take_turns.interpret[1, 256](log, counter, 6)
    np.testing.assert_array_equal(log, [0, 1] * 6)      # warpgroup 0 first, then strictly alternating
    ptx = take_turns.compile(log, counter, 6, target="sm_90a").asm("ptx")
    assert "bar.arrive \t8, 256;" in ptx                 # the last warpgroup gives the first turn
    assert ptx.count("bar.sync \t%r") == 1 and ptx.count("bar.arrive \t%r") == 1   # run-time ids


def test_a_run_time_id_is_the_same_across_a_warp():
    out = np.zeros(64, np.int32)
    mixed_ids.interpret[1, 64](out)
    assert out.all()
    with pytest.raises(skc.InterpreterError, match="run-time id differs between the threads"):
        split_warp.interpret[1, 64](out)


def test_named_barrier_errors_name_the_fix():
    with pytest.raises(skc.CompileError, match="named barrier ids are 1 to 15"):
        @skc.kernel(block=64)
        def zero(out: skc.Ptr[skc.i32]):
            skc.barrier_arrive(0, 64)
        zero.compile(np.zeros(1, np.int32), target="sm_90a")
    with pytest.raises(skc.CompileError, match="not a multiple of 32"):
        @skc.kernel(block=64)
        def odd(out: skc.Ptr[skc.i32]):
            skc.barrier_arrive(2, 48)
        odd.compile(np.zeros(1, np.int32), target="sm_90a")
    with pytest.raises(skc.CompileError, match="AMD CDNA has one barrier per work-group"):
        handoff.compile(np.zeros(64, np.int32), np.zeros(64, np.int32), target="gfx942")


@pytest.mark.gpu
def test_named_barriers_on_the_gpu():
    x, out = skc.to_device(np.zeros(64, np.int32)), skc.to_device(np.zeros(64, np.int32))
    handoff[1, 128](x, out)
    np.testing.assert_array_equal(out.numpy(), np.arange(64) * 3 + 1)
    log, counter = skc.to_device(np.full(12, -1, np.int32)), skc.to_device(np.zeros(1, np.int32))
    take_turns[1, 256](log, counter, 6)
    np.testing.assert_array_equal(log.numpy(), [0, 1] * 6)


@skc.kernel(block=256)
def sum_loop(out: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    total = 0
    for i in range(n):
        total += i
    out[t] = total


@skc.kernel(block=256)
def half_leaves(out: skc.Ptr[skc.i32]):
    t = skc.thread_id(0)
    if t >= 128:                     # warpgroup 0 runs to the end of the kernel without a barrier ...
        skc.barrier()                # ... and counts as arrived here, as on the GPU
        out[t] = 1


def test_the_step_budget_is_each_warpgroups(monkeypatch):
    monkeypatch.setenv("SKC_INTERPRETER_STEPS", "100")
    out = np.zeros(256, np.int32)
    sum_loop.interpret[1, 256](out, 60)              # 60 iterations in each of two warpgroups: within budget
    assert (out == 60 * 59 // 2).all()
    with pytest.raises(skc.InterpreterLimitError, match="budget of 100 loop iterations per warpgroup"):
        sum_loop.interpret[1, 256](out, 150)


def test_a_warpgroup_that_left_counts_at_a_block_barrier():
    out = np.zeros(256, np.int32)
    half_leaves.interpret[1, 256](out)
    assert out[128:].all() and not out[:128].any()


@skc.kernel(block=128)
def overfull(out: skc.Ptr[skc.i32], late: skc.constexpr):
    t = skc.thread_id(0)
    if t < 96:
        skc.barrier_named(1, 64)     # three warps at a barrier of two: the third is the next phase's first
        out[t] = 1
    elif late:
        skc.barrier_named(1, 64)     # ... which a fourth warp completes
        out[t] = 1


@skc.kernel(block=128)
def two_phases_at_once(out: skc.Ptr[skc.i32]):
    t = skc.thread_id(0)
    skc.barrier_named(2, 64)         # four warps at a barrier of two: two phases complete
    out[t] = 1


def test_more_threads_than_a_named_barrier_counts_wait_for_its_next_phase():
    """A named barrier completes each time its count has arrived and starts over at once (PTX ISA 9.7.13.1): 96
    threads at a 64-thread barrier complete one phase, and the last warp waits for the next; on the GPU a kernel
    with nobody else to come hangs, where the interpreter used to let all 96 through."""
    out = np.zeros(128, np.int32)
    with pytest.raises(skc.DeadlockError, match=r"named barrier 1 \(64 threads\).*32 of 64 threads still to arrive "
                                                r"\(more threads arrived at once than the barrier counts: 32"):
        overfull.interpret[1, 128](out, False)
    overfull.interpret[1, 128](out, True)
    assert out.all()
    out[:] = 0
    two_phases_at_once.interpret[1, 128](out)
    assert out.all()
