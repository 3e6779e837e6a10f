"""Shuffles that read a lane which is not active (it took another branch, left the loop, or returned): on a GPU
the value read is undefined (CUDA's guidelines for warp collectives: a shfl.sync's source lane must be active and
in its member mask), so the interpreter, which used to give the lane's stale value, stops at the shuffle's line
naming the threads. Reads past a warp's or a partial block's end are defined by the IR (the reader keeps its
value) and go on.

And a collective whose lanes no member mask names (the convergence analysis finds no group: after a `continue` some
lanes took inside a nested branch, in a loop whose bounds differ by thread), run by part of a warp while other lanes of it, not exited,
are elsewhere: the GPU takes `activemask` there, the lanes that happen to run together, and its answer may differ
from the interpreter's (the PTX emulator's did), so the interpreter stops at it."""
import numpy as np
import pytest

import skc

I32 = skc.Ptr[skc.i32]


@skc.kernel
def down_in_branch(x: I32, o: I32, n: skc.i32):
    t = skc.thread_id(0)
    if t < n:
        o[t] = skc.shfl_down(x[t], 1)   # marker: branch


@skc.kernel
def after_return(x: I32, o: I32, n: skc.i32):
    t = skc.thread_id(0)
    if t >= n:
        return
    o[t] = skc.shfl_xor(x[t], 1)   # marker: return


@skc.kernel
def in_uneven_loop(x: I32, o: I32):
    t = skc.thread_id(0)
    s = x[t]
    i = 0
    while i < t % 4:
        s = s + skc.shfl_xor(s, 1)   # marker: loop
        i = i + 1
    o[t] = s


@skc.kernel
def reduce_in_branch(x: I32, o: I32, n: skc.i32):
    t = skc.thread_id(0)
    if t < n:
        o[t] = skc.warp_sum(x[t])   # marker: reduce


@skc.kernel
def defined_reads(x: I32, o: I32):
    t = skc.thread_id(0)
    o[t * 2] = skc.shfl_down(x[t], 8)            # past the partial warp's end: keeps x
    if t % 2 == 1:
        o[t * 2 + 1] = skc.shfl_xor(x[t], 2)     # odd lanes read odd lanes


@skc.kernel
def after_continue(x: I32, o: I32):
    t = skc.thread_id(0)
    s = 0
    for i in range(4):
        v = x[t * 4 + i]
        if v < 3:
            if v < 0:
                continue
            if v > 100:               # (a break beside the continue: the lanes going on are not named)
                break
            s = s + 1
        s = s + skc.i32(skc.ballot(v > 3) & 0xffff)   # marker: continue
    o[t] = s


@skc.kernel
def after_a_direct_continue(x: I32, o: I32):
    t = skc.thread_id(0)
    s = 0
    for i in range(4):
        if x[t * 4 + i] < 0:   # the lanes that go on: the other side's (a ballot of the condition names them)
            continue
        s = s + skc.i32(skc.ballot(x[t * 4 + i] > 3) & 0xffff)
    o[t] = s


@skc.kernel
def rest_in_an_if(x: I32, o: I32):
    t = skc.thread_id(0)
    s = 0
    for i in range(4):
        if x[t * 4 + i] >= 0:   # the fix the hint names: the branch's lanes are known (a ballot of its condition)
            s = s + skc.i32(skc.ballot(x[t * 4 + i] > 3) & 0xffff)
    o[t] = s


@skc.kernel
def loop_bounds_by_warp(x: I32, o: I32, n: skc.i32):
    t = skc.thread_id(0)
    s = 0
    for i in range(n + t // 32):   # differs by thread for the analysis, alike in each warp at run time
        s = s + skc.i32(skc.vote_any(x[t] > i))
    o[t] = s


def _line(marker: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if line.rstrip().endswith(f"# marker: {marker}"))


def _run(kernel, threads, *scalars):
    x = np.arange(threads, dtype=np.int32) * 3 + 1
    o = np.zeros(threads * 2, np.int32)
    kernel.interpret[1, threads](x, o, *scalars)
    return x, o


def test_a_shuffle_reading_a_lane_of_the_other_branch_is_an_error():
    _run(down_in_branch, 64, 64)   # every lane there: defined
    with pytest.raises(skc.InterpreterError, match=r"shfl_down at line \d+ read thread \(40, 0, 0\) \(lane 8 of warp 1\), which "
                       r"is not running this code with it .*undefined.* thread \(39, 0, 0\)") as info:
        _run(down_in_branch, 64, 40)
    assert info.value.loc.line == _line("branch")
    assert "skc.where" in str(info.value)


def test_a_shuffle_reading_a_returned_lane_is_an_error():
    _run(after_return, 64, 32)     # whole warps return: every lane a shuffle reads is still there
    with pytest.raises(skc.InterpreterError, match=r"shfl_xor at line \d+ read thread \(7, 0, 0\) .* which has returned from "
                                                   r"the kernel") as info:
        _run(after_return, 64, 7)
    assert info.value.loc.line == _line("return")


def test_a_shuffle_reading_a_lane_that_left_the_loop_is_an_error():
    with pytest.raises(skc.InterpreterError, match=r"shfl_xor at line \d+ read thread \(0, 0, 0\) .* not running "
                                                   r"this code.*a store uses that value here") as info:
        _run(in_uneven_loop, 32)
    assert f"at line {_line('loop')} read" in str(info.value)   # (the error is at the store of what it read)
    assert info.value.loc.line == _line("loop") + 2


def test_a_warp_reduction_in_a_branch_some_lanes_of_the_warp_skip_is_an_error():
    _run(reduce_in_branch, 48, 48)   # a partial warp: its reduction reads only lanes that exist
    with pytest.raises(skc.InterpreterError, match="undefined") as info:
        _run(reduce_in_branch, 64, 50)
    assert info.value.loc.line == _line("reduce")


@pytest.mark.parametrize("threads", [33, 48, 96])
def test_reads_past_the_end_and_of_active_lanes_are_defined(threads):
    x, o = _run(defined_reads, threads)
    t = np.arange(threads)
    within, base = t % 32, t - t % 32
    down = np.where((within + 8 < 32) & (t + 8 < threads), t + 8, t)
    np.testing.assert_array_equal(o[0::2], x[down])
    odd = t % 2 == 1
    xor = np.where(base + (within ^ 2) < threads, t ^ 2, t)
    np.testing.assert_array_equal(o[1::2][odd], x[xor[odd]])


def test_a_collective_after_a_continue_some_lanes_took_is_an_error():
    x = np.arange(128, dtype=np.int32) % 7 - 1       # some lanes continue in some iterations
    with pytest.raises(skc.InterpreterError, match=r"ballot runs with threads .* of warp 0 while threads .* of it are "
                                                   r"elsewhere .*activemask.*not defined") as info:
        after_continue.interpret[1, 32](x, np.zeros(32, np.int32))
    assert info.value.loc.line == _line("continue")
    assert "before the `continue`" in str(info.value)
    after_continue.interpret[1, 32](np.abs(x), np.zeros(32, np.int32))   # no lane continues: all of them there
    rest_in_an_if.interpret[1, 32](x, np.zeros(32, np.int32))           # the lanes of a branch: named


def test_a_collective_after_a_continue_taken_directly_in_a_branch_runs_with_the_lanes_going_on():
    x = np.arange(128, dtype=np.int32) % 7 - 1
    o = np.zeros(32, np.int32)
    after_a_direct_continue.interpret[1, 32](x, o)
    cells = x.reshape(32, 4)
    bits = [sum(1 << k for k in range(16) if cells[k, i] >= 0 and cells[k, i] > 3) for i in range(4)]
    want = [sum(bits[i] for i in range(4) if cells[t, i] >= 0) for t in range(32)]
    np.testing.assert_array_equal(o, want)


def test_a_collective_in_a_loop_whose_bounds_differ_only_between_warps_runs():
    x = np.arange(64, dtype=np.int32) % 5
    o = np.zeros(64, np.int32)
    loop_bounds_by_warp.interpret[1, 64](x, o, 2)
    t = np.arange(64)
    want = [sum(int((x[k // 32 * 32:k // 32 * 32 + 32] > i).any()) for i in range(2 + k // 32)) for k in t]
    np.testing.assert_array_equal(o, want)


@skc.kernel
def valid_lanes_where(x: I32, o: I32, n: skc.i32, limit: skc.i32):
    t = skc.thread_id(0)
    if t >= n:
        return
    lane = skc.lane_id()
    v = x[t]
    for d in skc.static_range(5):   # cub's guard: a lane adds what it read only where that lane is valid
        y = skc.shfl_down(v, 16 >> d)
        v = v + skc.where(lane + (16 >> d) < limit - skc.warp_id() * 32, y, 0)
    o[t] = v   # marker: valid lanes


@skc.kernel
def valid_lanes_if(x: I32, o: I32, n: skc.i32):
    t = skc.thread_id(0)
    if t >= n:
        return
    lane = skc.lane_id()
    v = x[t]
    offset = 16
    while offset > 0:   # a run-time loop: what a lane read passes through a variable
        y = skc.shfl_down(v, offset)
        if lane + offset < n - skc.warp_id() * 32:
            v = v + y
        offset = offset // 2
    o[t] = v


def _valid_sums(x, n):
    """What each thread below n gets from the guarded tree (a read past the warp keeps the reader's value)."""
    v = x[:n].astype(np.int64)
    t = np.arange(n)
    for off in (16, 8, 4, 2, 1):
        source = np.where(t % 32 + off < 32, t + off, t)
        v = v + np.where(t % 32 + off < n - t // 32 * 32, v[np.minimum(source, n - 1)], 0)
    return v


@pytest.mark.parametrize("n", [45, 50, 64])
def test_what_a_shuffle_read_from_a_lane_that_is_not_active_may_be_thrown_away(n):
    """On the GPU such a read gives an undefined value, not undefined behaviour: a guard that drops it (a select, a
    branch) makes the kernel defined; both were refused at the shuffle."""
    x = np.arange(64, dtype=np.int32) * 3 + 1
    want = _valid_sums(x, n)
    for kernel, scalars in ((valid_lanes_where, (n, n)), (valid_lanes_if, (n,))):
        o = np.zeros(64, np.int32)
        kernel.interpret[1, 64](x, o, *scalars)
        np.testing.assert_array_equal(o[:n], want, err_msg=kernel.fn.__name__)


def test_what_a_shuffle_read_from_a_lane_that_is_not_active_stops_the_kernel_where_used():
    x = np.arange(64, dtype=np.int32)
    with pytest.raises(skc.InterpreterError, match=r"shfl_down at line \d+ read thread \(45, 0, 0\) .* which has "
                                                   r"returned from the kernel.*; a store uses that value here") as info:
        valid_lanes_where.interpret[1, 64](x, np.zeros(64, np.int32), 45, 46)   # the guard lets lane 45's in
    assert info.value.loc.line == _line("valid lanes")
    assert "skc.where(lane + offset < valid, y, 0)" in str(info.value)
