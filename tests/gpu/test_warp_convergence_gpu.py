"""Warp collectives after loops whose trip counts differ by thread, in whole and partial warps: the GPU against the
interpreter (an H200 read 0 from lanes that had not caught up, before the convergence analysis named them)."""
import os
import sys

import numpy as np
import pytest

import skc


@skc.kernel
def after_loops(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    s = skc.i32(0)
    i = t
    while i < n:              # each thread its own trip count
        s = s + x[i]
        if s % 7 == 3:
            i = i + 1
            continue
        i = i + 5
    for j in range(t % 5):
        s = s ^ (j * 3)
    o[t * 6 + 0] = skc.shfl_xor(s, 3)
    o[t * 6 + 1] = skc.warp_sum(s)
    o[t * 6 + 2] = skc.i32(skc.ballot(s % 2 == 1))
    o[t * 6 + 3] = skc.shfl_idx(s, t % 5 + 14)
    o[t * 6 + 4] = skc.shfl_down(s, 9)
    o[t * 6 + 5] = skc.i32(skc.vote_all(s > -5))


@pytest.mark.gpu
@pytest.mark.parametrize("threads", [16, 32, 48, 80, 128])
def test_collectives_after_loops_of_differing_trip_counts(threads):
    rng = np.random.default_rng(threads)
    n = 200
    x = rng.integers(-50, 50, n).astype(np.int32)
    want = np.zeros(threads * 6, np.int32)
    after_loops.interpret[1, threads](x, want, n)
    got = skc.to_device(np.full(threads * 6, -7, np.int32))
    after_loops[1, threads](skc.to_device(x), got, n)
    np.testing.assert_array_equal(got.numpy().reshape(threads, 6), want.reshape(threads, 6))


@skc.kernel
def after_returns(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.u32], n: skc.i32):
    t = skc.thread_id(0)
    if x[t] < n:                    # some threads exit (or none, at run time: the analysis cannot tell)
        return
    i = 0
    while i < x[t] % 4:             # trip counts differ by thread
        i = i + 1
        x[t] = x[t] + 1
    o[t * 3 + 0] = skc.ballot(x[t] % 3 == 1)
    o[t * 3 + 1] = skc.u32(skc.vote_all(x[t] > n - 100))
    # each lane reads one of lanes 8-15, which every warp has and which never exit here
    o[t * 3 + 2] = skc.u32(skc.shfl_idx(x[t], 8 + t % 8))


@pytest.mark.gpu
@pytest.mark.parametrize("threads", [16, 32, 48])
@pytest.mark.parametrize("exits", [0, 5])
def test_collectives_after_returns_gather_the_lanes_still_running(threads, exits):
    # mixgen's programs on an H100 (forty-fifth session): after a return some threads may take, the collectives'
    # masks were activemask, and after the loop the lanes still running were not together again (a ballot of
    # part of them, shuffles reading 0); a ballot over the whole warp now gathers them
    x = np.arange(threads, dtype=np.int32) * 7 % 19 + 100
    x[:exits] = 0
    want = np.full(threads * 3, 7, np.uint32)   # (the threads that return write nothing)
    after_returns.interpret[1, threads](x.copy(), want, 50)
    got = skc.to_device(np.full(threads * 3, 7, np.uint32))
    after_returns[1, threads](skc.to_device(x), got, 50)
    np.testing.assert_array_equal(got.numpy().reshape(threads, 3), want.reshape(threads, 3))


@skc.kernel
def elected(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    i = t
    while i < n:                    # trip counts differ by thread
        i = i + x[t]
    if skc.hopper.elect_one():      # one lane of each warp
        skc.atomic_add(o + t // 32, 1)
    if t % 4 != 1:                  # one lane of those that take the branch
        if skc.hopper.elect_one():
            skc.atomic_add(o + 4 + t // 32, 1)


@pytest.mark.gpu
@pytest.mark.parametrize("threads", [24, 32, 96])
def test_one_lane_of_each_warp_is_elected_after_loops(threads):
    # elect.sync took `activemask`, which after the loop may name part of the warp: each part elected a lane
    x = np.arange(128, dtype=np.int32) % 3 + 1
    want = np.zeros(8, np.int32)
    elected.interpret[1, threads](x, want, 40)
    got = skc.to_device(np.zeros(8, np.int32))
    elected[1, threads](skc.to_device(x), got, 40)
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.gpu
@pytest.mark.parametrize("threads", [24, 32, 64])
def test_votes_in_a_loop_some_lanes_leave_count_the_lanes_still_in_it(threads):
    # the votes' mask was `activemask`: after the inner loop the lanes still in the outer one need not be together
    # (the kernel: tests/backends/test_warp_masks.py, where the PTX emulator runs it without reconvergence)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backends"))
    from test_warp_masks import votes_in_a_loop_some_lanes_leave
    x = (np.arange(200, dtype=np.int32) * 7) % 9
    want = np.zeros(64, np.int32)
    votes_in_a_loop_some_lanes_leave.interpret[1, threads](x, want, 150)
    got = skc.to_device(np.full(64, 0, np.int32))
    votes_in_a_loop_some_lanes_leave[1, threads](skc.to_device(x), got, 150)
    np.testing.assert_array_equal(got.numpy(), want)


@skc.kernel
def votes_after_nested_breaks(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    s = skc.i32(0)
    for i in range(n):
        v = x[t * 8 + i % 8]
        if v < 3:
            if v < -2:
                break
            s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
            if v % 2 == 0:
                if v == -2:
                    break
            s = s + skc.i32(skc.vote_any(v == 1))
        s = s + skc.i32(skc.ballot(v % 3 == 0) & 0xffff)
    o[t] = s + skc.i32(skc.ballot(s % 2 == 0) & 0xff)


@pytest.mark.gpu
@pytest.mark.parametrize("threads", [24, 32, 64, 256])
@pytest.mark.parametrize("n", [3, 8, 20])
def test_votes_after_breaks_nested_in_branches_name_the_lanes_still_in_the_loop(threads, n):
    # (fifty-fourth session: the breaking lanes wait at the outer branch's join, where a ballot names the lanes going
    # on; the interpreter refused these votes before, and the PTX took `activemask`)
    x = np.random.default_rng(threads).integers(-4, 9, 8 * threads).astype(np.int32)
    poison = np.uint32(0xDEADBEEF).view(np.int32)
    want = np.full(threads, poison, np.int32)
    votes_after_nested_breaks.interpret[1, threads](x, want, n)
    got = skc.to_device(np.full(threads, poison, np.int32))
    votes_after_nested_breaks[1, threads](skc.to_device(x), got, n)
    np.testing.assert_array_equal(got.numpy(), want)
    assert "activemask" not in votes_after_nested_breaks.compile(target="sm_90a", block=(threads, 1, 1)).asm("ptx")
