"""Warp collectives after loops whose trip counts differ by thread, in whole and partial warps: the GPU against the
interpreter (an H200 read 0 from lanes that had not caught up, before the convergence analysis named them)."""
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
