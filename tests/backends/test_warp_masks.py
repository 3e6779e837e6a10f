"""The member masks of shuffles and votes in the PTX: every lane the warp has where the convergence analysis proves
they all get there (so the GPU waits for them after loops of differing trip counts), `activemask` elsewhere; a
shuffle in a block's partial last warp keeps its own value where the lane it reads does not exist."""
import re

import pytest

import skc


@skc.kernel
def collectives(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    s = skc.i32(0)
    i = t
    while i < n:                      # trip counts differ by thread; the warp is together again after the loop
        s = s + x[i]
        i = i + 32
    o[t] = skc.shfl_xor(s, 3) + skc.i32(skc.vote_any(s > 5))
    if t < 4:                         # some lanes only: the lanes active now
        o[t] = skc.shfl_xor(s, 1)


def masks(threads: int) -> list:
    ptx = collectives.compile(target="sm_90a", block=(threads, 1, 1)).asm("ptx")
    return re.findall(r"(?:shfl|vote)\.sync\.[a-z.0-9]+\s+[^;]*?, ([-%\w]+);", ptx), ptx


@pytest.mark.parametrize("threads, whole", [(32, "-1"), (128, "-1"), (16, "65535")])
def test_converged_collectives_name_the_whole_warp(threads, whole):
    found, ptx = masks(threads)
    assert found[:2] == [whole, whole], found
    assert found[2].startswith("%r") and "activemask" in ptx


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
