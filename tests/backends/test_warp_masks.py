"""The member masks of shuffles, votes and elections in the PTX: every lane the warp has where the convergence analysis
proves they all get there (so the GPU waits for them after loops of differing trip counts); inside a branch on a
value that differs by thread, the lanes that took it, by a ballot of its condition before it; after returns some
threads took, the lanes still running, by a ballot of true; in a loop some lanes leave by breaks of their own, a
mask those breaks' ballots take lanes out of (or, where a break is nested in branches, a ballot at the outer
branch's join, where the breaking lanes wait); `activemask` elsewhere. A shuffle in a block's partial last warp keeps
its own value where the lane it reads does not exist."""
import os
import re
import sys

import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402


@skc.kernel
def collectives(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    s = skc.i32(0)
    i = t
    while i < n:                      # trip counts differ by thread; the warp is together again after the loop
        s = s + x[i]
        i = i + 32
    o[t] = skc.shfl_xor(s, 3) + skc.i32(skc.vote_any(s > 5))
    if t < 4:                         # some lanes only: those a ballot of t < 4 names
        o[t] = skc.shfl_xor(s, 1)


def masks(threads: int) -> list:
    ptx = collectives.compile(target="sm_90a", block=(threads, 1, 1)).asm("ptx")
    return re.findall(r"(?:shfl|vote)\.sync\.[a-z.0-9]+\s+[^;]*?, ([-%\w]+);", ptx), ptx


@pytest.mark.parametrize("threads, whole", [(32, "-1"), (128, "-1"), (16, "65535")])
def test_converged_collectives_name_the_whole_warp(threads, whole):
    found, ptx = masks(threads)
    assert found[:3] == [whole, whole, whole], found    # (the third: the ballot of t < 4 before its branch)
    branch = re.search(r"vote\.sync\.ballot\.b32\s+(%r\d+), %p\d+, " + whole + ";", ptx).group(1)
    assert found[3] == branch and "activemask" not in ptx


def test_a_shuffle_in_a_partial_warp_keeps_its_value_past_the_last_thread():
    # 48 threads: the second warp has 16 lanes, so its mask is computed and each shuffle selects
    found, ptx = masks(48)
    assert found[0].startswith("%r") and found[0] == found[1]
    assert ptx.count("selp.b32") >= 2 and "laneid" in ptx
    _, whole = masks(64)
    assert "laneid" not in whole


@skc.kernel
def bounds_checked(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    if t >= n:                        # some threads exit
        return
    o[t] = skc.i32(skc.ballot(x[t] > 0)) + skc.shfl_xor(x[t], 1)


@pytest.mark.parametrize("threads, whole", [(32, "-1"), (16, "65535")])
def test_after_a_return_the_lanes_still_running_are_gathered_by_a_ballot(threads, whole):
    # vote.sync waits for the non-exited lanes of its mask (PTX ISA 9.7.13): a ballot of true over every lane the
    # warp has names the lanes still running, and the collectives take it as their mask
    ptx = bounds_checked.compile(target="sm_90a", block=(threads, 1, 1)).asm("ptx")
    gathered = re.findall(r"vote\.sync\.ballot\.b32\s+(%r\d+), %p\d+, " + whole + ";", ptx)   # (a true predicate)
    found = re.findall(r"(?:shfl|vote)\.sync\.[a-z.0-9]+\s+[^;]*?, ([-%\w]+);", ptx)
    used = [mask for mask in found if mask != whole]
    assert len(used) == 2 and set(used) <= set(gathered), ptx
    assert "activemask" not in ptx


@skc.kernel
def in_a_branch_after_a_loop(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.u32], n: skc.i32):
    t = skc.thread_id(0)
    i = t
    while i < n:                      # trip counts differ by thread: the warp need not gather again after it
        i = i + 3
    if t % 4 != 1:                    # the lanes that take it: a ballot of t % 4 != 1 before the branch names them
        o[t * 2] = skc.ballot(x[t] > 2)
        o[t * 2 + 1] = skc.u32(skc.shfl_xor(x[t], 4))


def agrees_without_reconvergence(kernel, x, outputs: int, dtype, threads: int, n: int) -> str:
    """The kernel's PTX, after checking that it names every mask (no `activemask`) and that the emulator without
    reconvergence (activemask would name the lanes of one path only, as a GPU may run them) gives the interpreter's
    outputs for (x, out, n)."""
    want = np.zeros(outputs, dtype)
    kernel.interpret[1, threads](x, want, n)
    ptx = kernel.compile(target="sm_90a", block=(threads, 1, 1)).asm("ptx")
    assert "activemask" not in ptx
    got = np.zeros(outputs, dtype)
    ptx_emulator.run_grid(ptx, kernel.fn.__name__, [x.copy(), got], 1, threads, reconverge=False, scalars=(n,))
    np.testing.assert_array_equal(got, want)
    return ptx


@pytest.mark.parametrize("threads", [32, 24])
def test_a_branchs_lanes_are_named_by_a_ballot_of_its_condition(threads):
    # in the emulator without reconvergence (activemask names only the lanes of one path), as a GPU may run it:
    # with activemask the ballot saw a few lanes and the shuffle read lanes of other paths
    agrees_without_reconvergence(in_a_branch_after_a_loop, (np.arange(32, dtype=np.int32) * 5) % 7, 64, np.uint32,
                                 threads, 20)


@skc.kernel
def elected(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    i = t
    while i < n:                      # trip counts differ by thread: the warp need not gather again after it
        i = i + x[t]
    if skc.hopper.elect_one():        # one lane of each warp
        skc.atomic_add(o + t // 32, 1)
    if t % 4 != 1:                    # one lane of those that take the branch: the lowest, as the interpreter elects
        if skc.hopper.elect_one():
            o[4 + t // 32] = t


@pytest.mark.parametrize("threads", [32, 64, 24])
def test_an_election_is_among_the_group_of_lanes_there(threads):
    # elect.sync over `activemask` elected a lane in each part of a warp the loop left apart (the emulator without
    # reconvergence elected 8 of the 32); its member mask is now the group the convergence analysis names
    x = (np.arange(64, dtype=np.int32) % 3) + 1
    want = np.zeros(8, np.int32)
    elected.interpret[1, threads](x, want, 12)
    assert want[0] == 1 and want[4] == 0
    ptx = agrees_without_reconvergence(elected, x, 8, np.int32, threads, 12)
    assert len(re.findall(r"elect\.sync\s+[^,]+, ([-%\w]+);", ptx)) == 2


@skc.kernel
def votes_in_a_loop_some_lanes_leave(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    i = t
    s = skc.i32(0)
    while i < n:                      # some lanes leave at each test (a break of their own)
        j = 0
        while j < x[i] % 3:           # trip counts differ by thread: the lanes need not gather again after it
            j = j + 1
            s = s + x[j]
        s = s + skc.i32(skc.ballot(x[i] > 2) & 0xffff) + skc.i32(skc.vote_all(x[i] > 0))
        if x[i] > 5:                  # and some more here
            break
        i = i + 7
    o[t] = s + skc.i32(skc.ballot(s % 2 == 0) & 0xff)


@pytest.mark.parametrize("threads", [32, 24, 64])
def test_a_loops_lanes_are_named_by_a_mask_its_breaks_take_lanes_out_of(threads):
    # the loop's lanes: a mask that starts as the warp's and loses, after each branch to a break, the lanes that
    # took it (their ballot); with `activemask`, the emulator without reconvergence saw the votes of one path only
    agrees_without_reconvergence(votes_in_a_loop_some_lanes_leave, (np.arange(200, dtype=np.int32) * 7) % 9, 64,
                                 np.int32, threads, 150)


@skc.kernel
def votes_after_a_continue(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    s = skc.i32(0)
    for i in range(8):                # the same bounds for every thread
        v = x[t * 8 + i]
        if v < 0:                     # these lanes skip the rest of the iteration
            continue
        s = s + skc.i32(skc.ballot(v > 3) & 0xffff)
        if v == n:                    # and these (the rest: a ballot of each continue's condition names them)
            continue
        s = s + skc.i32(skc.vote_any(v > 6)) + skc.i32(skc.ballot(v % 2 == 0) & 0xfff)
    o[t] = s


@skc.kernel
def votes_after_a_break_and_a_continue(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    s = skc.i32(0)
    i = t % 3
    while i < n:                      # some lanes leave at each test, and at the break below
        v = x[t * 8 + i % 8]
        i = i + 1
        if v % 5 == 1:
            break
        s = s + skc.i32(skc.ballot(v > 3) & 0xff)
        if v < 0:
            continue
        s = s + skc.i32(skc.vote_any(v > 6)) + skc.i32(skc.ballot(v % 2 == 0) & 0xfff)
    o[t] = s


@pytest.mark.parametrize("threads", [32, 24, 64])
@pytest.mark.parametrize("kernel", [votes_after_a_continue, votes_after_a_break_and_a_continue],
                         ids=lambda k: k.fn.__name__)
def test_after_a_continue_the_lanes_going_on_are_named_by_a_ballot_of_its_condition(kernel, threads):
    # the lanes that took a `continue` directly in a branch are elsewhere: the rest of the iteration runs with the
    # lanes of the other side (the loop's lanes less a ballot of the condition); with `activemask`, the emulator
    # without reconvergence gathered lanes of the next iteration too (the interpreter refused the ballot)
    x = np.random.default_rng(threads).integers(-3, 9, 512).astype(np.int32)
    for n in (2, 9):
        ptx = agrees_without_reconvergence(kernel, x, 64, np.int32, threads, n)
        want, got = np.zeros(64, np.int32), np.zeros(64, np.int32)
        kernel.interpret[1, threads](x, want, n)
        ptx_emulator.run_grid(ptx, kernel.fn.__name__, [x.copy(), got], 1, threads, reconverge=True, scalars=(n,))
        np.testing.assert_array_equal(got, want)


@skc.kernel
def votes_after_nested_breaks(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    s = skc.i32(0)
    for i in range(n):                # the same bounds for every thread
        v = x[t * 8 + i % 8]
        if v < 3:
            if v < -2:                # these lanes leave the loop: the rest of the branch runs with the others
                break
            s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
            if v % 2 == 0:
                if v == -2:           # two deep: the lanes past the middle branch, a ballot at its join
                    break
            s = s + skc.i32(skc.vote_any(v == 1))
        s = s + skc.i32(skc.ballot(v % 3 == 0) & 0xffff)   # the loop's lanes: a ballot at the outer branch's join
    o[t] = s + skc.i32(skc.ballot(s % 2 == 0) & 0xff)


@pytest.mark.parametrize("threads", [32, 24, 64])
def test_after_nested_breaks_the_lanes_going_on_are_named_by_a_ballot_at_the_branchs_join(threads):
    # the lanes that break inside a branch of the loop's lanes wait at the branch's join, where a ballot of those
    # not breaking over the lanes that reached it names the lanes going on; the breaking ones leave after it (with
    # `activemask`, and the interpreter refused the votes: the lanes that broke were elsewhere)
    x = np.random.default_rng(threads).integers(-4, 9, 512).astype(np.int32)
    for n in (3, 8):
        ptx = agrees_without_reconvergence(votes_after_nested_breaks, x, 64, np.int32, threads, n)
        want, got = np.zeros(64, np.int32), np.zeros(64, np.int32)
        votes_after_nested_breaks.interpret[1, threads](x, want, n)
        ptx_emulator.run_grid(ptx, "votes_after_nested_breaks", [x.copy(), got], 1, threads, reconverge=True,
                              scalars=(n,))
        np.testing.assert_array_equal(got, want)
    # (the ballots: each branch's condition, the two joins' and the four votes of the kernel)
    assert len(re.findall(r"vote\.sync\.(?:ballot|any)", ptx)) >= 4 + 2


@skc.kernel
def votes_after_nested_continues(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    s = skc.i32(0)
    for i in range(n):                # the same bounds for every thread
        v = x[t * 8 + i % 8]
        if v < 3:
            if v < -2:                # these lanes skip the rest: the rest of the branch runs with the others
                continue
            s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
            if v % 2 == 0:
                if v == -2:           # two deep: the lanes past the middle branch, a ballot at its join
                    continue
            else:
                if v == 1:
                    s = s + 3
                else:                 # an else side that continues
                    continue
            s = s + skc.i32(skc.vote_any(v == 1))
        s = s + skc.i32(skc.ballot(v % 3 == 0) & 0xffff)   # the lanes past the outer branch: a ballot at its join
    o[t] = s + skc.i32(skc.ballot(s % 2 == 0) & 0xff)


@pytest.mark.parametrize("threads", [32, 24, 64])
def test_after_nested_continues_the_lanes_going_on_are_named_by_a_ballot_at_the_branchs_join(threads):
    # the lanes that continue inside a branch wait at the branch's join, where a ballot of those not continuing over
    # the lanes that reached it names the lanes going on; the continuing ones go to the next iteration after it (with
    # `activemask`, and the interpreter refused the votes: the lanes that continued were elsewhere)
    x = np.random.default_rng(threads).integers(-4, 9, 512).astype(np.int32)
    for n in (3, 8):
        ptx = agrees_without_reconvergence(votes_after_nested_continues, x, 64, np.int32, threads, n)
        want, got = np.zeros(64, np.int32), np.zeros(64, np.int32)
        votes_after_nested_continues.interpret[1, threads](x, want, n)
        ptx_emulator.run_grid(ptx, "votes_after_nested_continues", [x.copy(), got], 1, threads, reconverge=True,
                              scalars=(n,))
        np.testing.assert_array_equal(got, want)
    # (the ballots: each branch's condition, the joins' and the four votes of the kernel)
    assert len(re.findall(r"vote\.sync\.(?:ballot|any)", ptx)) >= 4 + 3
