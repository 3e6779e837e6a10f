"""The convergence analysis against the interpreter (convergence_oracle.py): at every run of a shuffle or vote the
analysis finds converged, every thread of each warp there must run it. Kernels aimed at the analysis' rules, random
kernels of tangled control flow (fuzz/convgen.py) and mixgen's programs, in whole, partial and 2-D blocks."""
import os
import sys
import tempfile

import numpy as np
import pytest

import convergence_oracle
import skc
from convergence_oracle import watch
from skc.diagnostics import CompileError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import convgen  # noqa: E402
import fuzzgen  # noqa: E402
import mixgen  # noqa: E402
import ptx_emulator  # noqa: E402

BLOCKS = [(32, 1), (48, 1), (16, 3), (80, 1)]


@skc.func
def _first_past(x, n):
    for i in range(n):
        s = skc.shfl_xor(x + i, 1)
        if s > 20:
            return s     # out of the loop: its later iterations run without this thread
    return x


@skc.func
def _search(x, n):
    for i in range(n):
        for j in range(n):
            if x < i + j:
                return skc.shfl_xor(x, 1)
    return x


@skc.func
def _reduce(x):
    return skc.warp_sum(x)


@skc.kernel
def helper_returning_from_its_loop(o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    o[t] = _first_past(t, n) + skc.shfl_xor(t, 2)


@skc.kernel
def helper_returning_from_nested_loops_in_a_loop(o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    for k in range(n):
        o[t] = skc.shfl_xor(t, 4) + _search(t + k, n)


@skc.kernel
def return_in_nested_loops(o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    for i in range(n):
        o[t] = skc.shfl_xor(t + i, 1)
        for j in range(n):
            if t < i + j:
                return


@skc.kernel
def break_and_continue(o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    for i in range(n):
        o[t] = skc.shfl_xor(t + i, 1)
        for j in range(n):
            if t < i + j:
                break
        if t < i:
            continue
        o[t] = o[t] + skc.shfl_xor(t, 2)
    i = 0
    while True:
        o[t] = o[t] + skc.shfl_xor(t + i, 1)
        if i > t:
            break
        i = i + 1
    o[t] = o[t] + skc.warp_sum(t)


@skc.kernel
def static_range_jumps(o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    for i in skc.static_range(4):
        o[t] = skc.shfl_xor(t + i, 1)
        if t < i * 8:
            break
    k = 0
    while k < n:
        for i in skc.static_range(3):
            o[t] = o[t] + skc.shfl_xor(t + k, 1)
            if t < k * 4 + i:
                continue
            o[t] = o[t] + skc.shfl_xor(t, 2)
        k = k + 1


@skc.kernel
def vars_votes_and_ids(o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    m = n
    if t < 5:
        m = n + 1               # some threads only: loops to m differ
    for i in range(m):
        o[t] = skc.shfl_xor(t + i, 1)
    m = n
    for i in range(n):
        if m > 3:
            o[t] = o[t] + skc.shfl_xor(t + i, 1)
        m = m + t               # loop-carried, differing from the second iteration on
    i = 0
    while skc.vote_any(i < t):
        o[t] = o[t] + skc.shfl_xor(t + i, 1)
        i = i + 1
    if skc.block_id(0) < n or t < 3:
        o[t] = o[t] + skc.shfl_xor(t, 2)
    if t < n:
        o[t] = o[t] + _reduce(t)
    o[t] = o[t] + _reduce(t) + sum([skc.shfl_xor(t, k) for k in (1, 2, 4)])


@skc.kernel
def returns_then_collectives(o: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    if t >= n * 7:                  # the bounds check before a reduction: the lanes still running are together
        return
    o[t] = skc.warp_sum(t) + skc.shfl_xor(t, 1)
    for i in range(n):
        if t == i * 5 + 3:
            return                  # the later iterations run with the live lanes
        o[t] = o[t] + skc.shfl_xor(t + i, 2)
        if t > 20 + i:
            break                   # these wait after the loop
    o[t] = o[t] + skc.i32(skc.ballot(t % 3 == 0))


@skc.kernel
def loops_some_lanes_leave(o: skc.Ptr[skc.i32], n: skc.i32):
    # the loops' lanes named by masks their breaks' ballots take lanes out of (convergence.InLoop): entered by every
    # thread, by a branch's lanes and by the live lanes; nested; breaks on either side of their branch, inside a
    # branch on a value alike on every lane, and after a collective inside a branch in the loop
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    i = t % 7
    while i < n + 9:
        o[t] = o[t] + skc.i32(skc.ballot(i % 3 == 0) & 0xff)
        j = t % 5
        while j < 6:
            if (t + j) % 4 == 1:
                o[t] = o[t] + skc.i32(skc.vote_any(j > 3))
            if n > 2:
                if t % 9 == j:
                    break
            if t % 6 == j:
                j = j + 2
            else:
                j = j + 1
            o[t] = o[t] + skc.i32(skc.ballot(j % 2 == 0) & 0xf)
        if t % 11 == i:
            break
        i = i + 2
    if t % 3 == 0:
        k = t % 4
        while k < 5:
            if t % 5 == k:
                break
            o[t] = o[t] + skc.i32(skc.ballot(k == 2) & 0xf)
            k = k + 1
    if t > 40:
        return
    m = t % 3
    while m < 4:
        if t % 7 != m:
            o[t] = o[t] + 1
        else:
            break
        o[t] = o[t] + skc.i32(skc.vote_all(m < 3))
        m = m + 1
    o[t] = o[t] + skc.i32(skc.ballot(t % 2 == 0) & 0xff)


@skc.kernel
def continues_some_lanes_take(o: skc.Ptr[skc.i32], n: skc.i32):
    # the rest of an iteration after a continue taken directly in a branch: the other side's lanes (a ballot of the
    # condition), in a loop of the same bounds everywhere, in one some lanes leave, on either side, after a break
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    for i in range(n):
        if (t + i) % 3 == 0:
            continue
        o[t] = o[t] + skc.i32(skc.ballot(t % 2 == 0) & 0xff)
        if t % 4 != i:
            o[t] = o[t] + 1
        else:
            continue
        o[t] = o[t] + skc.shfl_xor(t, 4) * 0 + skc.i32(skc.vote_any(t > i))
    j = t % 5
    while j < n + 4:
        j = j + 1
        if (t * j) % 7 == 1:
            break
        o[t] = o[t] + skc.i32(skc.ballot(j % 2 == 0) & 0xf)
        if (t + j) % 3 == 0:
            continue
        o[t] = o[t] + skc.i32(skc.vote_all(j < 6))
    o[t] = o[t] + skc.i32(skc.ballot(t % 3 == 0) & 0xff)


@skc.kernel
def breaks_in_nested_branches(o: skc.Ptr[skc.i32], n: skc.i32):
    # breaks nested in branches of the loop's lanes: after the branch around each, the lanes not breaking (a break
    # that is its side's last op: the other side's lanes; deeper, or on both sides: those a ballot at the branch's
    # join names), and after the outermost, the loop's lanes; in a loop of the same bounds everywhere, in an inner
    # loop (the break leaves that loop only), and in a while loop some lanes leave at its test
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    for i in range(n):
        if (t + i) % 4 != 0:
            if (t * i) % 5 == 3:
                break
            o[t] = o[t] + skc.i32(skc.ballot(t % 2 == 0) & 0xff)
            if t % 3 == i % 3:
                if (t + 2 * i) % 7 == 1:
                    if t > i:
                        break
                    o[t] = o[t] + skc.i32(skc.vote_any(t > 9))
                o[t] = o[t] + skc.i32(skc.ballot(t % 4 == 1) & 0xf)
            else:
                if (t + i) % 6 == 5:
                    break
            o[t] = o[t] + skc.i32(skc.vote_all(t < 40))
        o[t] = o[t] + skc.i32(skc.ballot(t % 3 == 0) & 0xff)
        for k in range(n):
            if (t + k) % 3 == 1:
                if (t * k) % 4 == 2:
                    break
                o[t] = o[t] + skc.i32(skc.vote_any(t % 5 == k))
            o[t] = o[t] + skc.i32(skc.ballot(t % 2 == 1) & 0x3)
    j = t % 5
    while j < n + 4:
        j = j + 1
        if j % 2 == 0:
            if (t * j) % 7 == 1:
                break
        o[t] = o[t] + skc.i32(skc.ballot(j % 3 == 0) & 0xf)
    o[t] = o[t] + skc.i32(skc.ballot(t % 3 == 0) & 0xff)


@skc.kernel
def continues_in_nested_branches(o: skc.Ptr[skc.i32], n: skc.i32):
    # continues nested in branches: after the branch around each, the lanes not continuing (a continue that is its
    # side's last op: the other side's lanes; deeper, in an else side: those a ballot at the branch's join names),
    # and at the next iteration every lane again; in a loop of the same bounds everywhere, in an inner loop, in a
    # while loop some lanes leave at its test, and after a break nested in a branch before
    t = skc.thread_id(0) + skc.thread_id(1) * 16
    for i in range(n):
        if (t + i) % 4 != 0:
            if (t * i) % 5 == 3:
                continue
            o[t] = o[t] + skc.i32(skc.ballot(t % 2 == 0) & 0xff)
            if t % 3 == i % 3:
                if (t + 2 * i) % 7 == 1:
                    if t > i:
                        continue
                    o[t] = o[t] + skc.i32(skc.vote_any(t > 9))
                o[t] = o[t] + skc.i32(skc.ballot(t % 4 == 1) & 0xf)
            else:
                if (t + i) % 6 == 5:
                    o[t] = o[t] + 1
                else:
                    continue
            o[t] = o[t] + skc.i32(skc.vote_all(t < 40))
        o[t] = o[t] + skc.i32(skc.ballot(t % 3 == 0) & 0xff)
        for k in range(n):
            if (t + k) % 3 == 1:
                if (t * k) % 4 == 2:
                    continue
                o[t] = o[t] + skc.i32(skc.vote_any(t % 5 == k))
            o[t] = o[t] + skc.i32(skc.ballot(t % 2 == 1) & 0x3)
    j = t % 5
    while j < n + 4:
        j = j + 1
        if j % 3 == 0:
            if (t * j) % 7 == 1:
                break
        if j % 2 == 0:
            if (t * j) % 5 == 1:
                continue
        o[t] = o[t] + skc.i32(skc.ballot(j % 3 == 0) & 0xf)
    o[t] = o[t] + skc.i32(skc.ballot(t % 3 == 0) & 0xff)


KERNELS = [helper_returning_from_its_loop, helper_returning_from_nested_loops_in_a_loop, return_in_nested_loops,
           break_and_continue, static_range_jumps, vars_votes_and_ids, returns_then_collectives,
           loops_some_lanes_leave, continues_some_lanes_take, breaks_in_nested_branches,
           continues_in_nested_branches]


def test_the_oracle_sees_a_collective_some_threads_miss(monkeypatch):
    # an analysis that finds every collective converged: the shuffle runs on, some iterations, without the threads
    # that returned
    monkeypatch.setattr(convergence_oracle, "converged_collectives",
                        lambda fn: {id(op) for op in fn.walk() if op.name in ("gpu.shuffle", "gpu.vote")})
    with watch() as record:
        return_in_nested_loops.interpret[1, 32](np.zeros(32, np.int32), 5)
    assert record.broken and "25 of 32 lanes" in record.describe()


def test_the_oracle_sees_a_branch_mask_naming_the_other_side(monkeypatch):
    # an analysis whose branch verdicts name the other side of their last branch: the lanes there are not those
    from skc.ir.passes.convergence import collectives_in_branches

    def swapped(fn):
        split, splitting = collectives_in_branches(fn)
        return {k: (root, path[:-1] + ((path[-1][0], 1 - path[-1][1]),)) for k, (root, path) in split.items()}, \
            splitting
    monkeypatch.setattr(convergence_oracle, "collectives_in_branches", swapped)
    with watch() as record:
        vars_votes_and_ids.interpret[1, 32](np.zeros(128, np.int32), 5)
    assert record.broken and record.branch_runs


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.fn.__name__)
def test_kernels_aimed_at_the_rules(kernel, block):
    with watch() as record:
        kernel.interpret[2, (*block, 1)](np.zeros(128, np.int32), 5)
    assert not record.broken, record.describe()


@pytest.mark.parametrize("threads", [32, 24, 64])
@pytest.mark.parametrize("kernel", [loops_some_lanes_leave, breaks_in_nested_branches, continues_in_nested_branches],
                         ids=lambda k: k.fn.__name__)
def test_loops_some_lanes_leave_run_as_the_interpreter_runs_them_with_no_reconvergence(threads, kernel):
    # every mask named (no activemask; there were 5 in loops_some_lanes_leave): the PTX emulator, whose lanes of
    # different paths never gather again but at a .sync form's mask, gives the interpreter's outputs
    ptx = kernel.compile(target="sm_90a", block=(threads, 1, 1)).asm("ptx")
    assert "activemask" not in ptx
    for n in (0, 3, 5):
        want, got = np.zeros(128, np.int32), np.zeros(128, np.int32)
        kernel.interpret[1, threads](want, n)
        ptx_emulator.run_grid(ptx, kernel.fn.__name__, [got], 1, threads, reconverge=False, scalars=(n,))
        np.testing.assert_array_equal(got, want)


CONVGEN_BLOCKS = [(32, 1), (48, 1), (64, 1), (16, 1), (80, 1), (16, 3), (8, 4), (24, 2), (96, 1), (33, 1)]


def test_random_kernels_of_tangled_control_flow():
    folder = tempfile.mkdtemp()
    with watch() as record:
        for seed in range(600):
            kernel = fuzzgen.load_module(convgen.Gen(seed).kernel(), folder, f"convgen_{seed}").k
            rng = np.random.default_rng(seed)
            block = CONVGEN_BLOCKS[seed % len(CONVGEN_BLOCKS)]
            kernel.interpret[2, (*block, 1)](np.zeros(convgen.WIDTH * 4, np.int32),
                                             rng.integers(-3, 9, convgen.WIDTH * 4).astype(np.int32),
                                             int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    assert not record.broken, record.describe()
    assert record.runs > 6000 and record.branch_runs > 500    # (the oracle did look, inside branches too)


def _watch_mixgen(seeds, programs: int, threads: int):
    """mixgen batches of `programs` programs (program b in block b) run in the interpreter under the oracle's watch;
    gives the record and how many ran (those the frontend refuses are left out, as mixfuzz drops them)."""
    folder, ran = tempfile.mkdtemp(), 0
    with watch() as record:
        for seed in seeds:
            batch = mixgen.Batch(seed, programs, 3, extra=True)
            module = fuzzgen.load_module(batch.source, folder, f"mixgen_{programs}_{seed}")
            try:
                module.batch.interpret[programs, threads](*batch.inputs_now(), *batch.outputs_template())
            except CompileError:
                continue
            ran += 1
    return record, ran


@pytest.mark.parametrize("threads", [16, 48, 80, 32])
def test_mixgen_programs(threads, monkeypatch):
    # one program a kernel: every program's collectives are checked as converged where the analysis finds them so
    monkeypatch.setattr(mixgen, "T", threads)
    record, ran = _watch_mixgen(range(threads * 1000, threads * 1000 + 30), 1, threads)
    assert not record.broken, record.describe()
    assert ran >= 20 and record.runs >= 20


@pytest.mark.parametrize("threads", [16, 48])
def test_mixgen_batches_whose_programs_return_early(threads, monkeypatch):
    # several programs a kernel: one program's early returns leave the programs after it to the live lanes, which
    # the oracle checks at each of their collectives
    monkeypatch.setattr(mixgen, "T", threads)
    record, _ = _watch_mixgen(range(threads * 1000 + 500, threads * 1000 + 506), 6, threads)
    assert not record.broken, record.describe()
    assert record.live >= 10
