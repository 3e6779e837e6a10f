"""Kernels of warp collectives and atomics whose outputs PTX defines, in whole and partial warps (33, 48, 96, 1000
threads) and under divergent control flow: shuffles of every mode and width from lanes that are active (or past
the warp's or block's end, which keep the reader's value), votes, warp reductions, and atomics of every op on
shared and global memory (16-bit ones too) with their return values. test_warp_cases.py runs them in the
interpreter against the PTX emulator; the cases (kernels and inputs) are here so that a GPU run can use them too."""
from __future__ import annotations

import ml_dtypes
import numpy as np

import skc

bf16 = ml_dtypes.bfloat16

I32, U32, I64, U64 = skc.Ptr[skc.i32], skc.Ptr[skc.u32], skc.Ptr[skc.i64], skc.Ptr[skc.u64]
F16, BF16, F32, F64 = skc.Ptr[skc.f16], skc.Ptr[skc.bf16], skc.Ptr[skc.f32], skc.Ptr[skc.f64]
I16, U16 = skc.Ptr[skc.i16], skc.Ptr[skc.u16]


@skc.kernel
def shuffles(x: I32, xl: I64, xd: F64, xh: F16, xs: I16, xf: F32, amount: I32, o: I32, ol: I64, od: F64, oh: F16,
             os: I16, of: F32):
    """Every mode of every width, by run-time amounts (past 31 only the low bits count)."""
    t = skc.thread_id(0)
    a = amount[t]
    o[t * 4 + 0] = skc.shfl_idx(x[t], a)
    o[t * 4 + 1] = skc.shfl_up(x[t], a)
    o[t * 4 + 2] = skc.shfl_down(x[t], a)
    o[t * 4 + 3] = skc.shfl_xor(x[t], a)
    ol[t * 2 + 0] = skc.shfl_down(xl[t], a)
    ol[t * 2 + 1] = skc.shfl_xor(xl[t], a)
    od[t * 2 + 0] = skc.shfl_up(xd[t], a)
    od[t * 2 + 1] = skc.shfl_idx(xd[t], a)
    oh[t * 2 + 0] = skc.shfl_xor(xh[t], a)
    oh[t * 2 + 1] = skc.shfl_down(xh[t], 3)
    os[t * 2 + 0] = skc.shfl_up(xs[t], 2)
    os[t * 2 + 1] = skc.shfl_idx(xs[t], a)
    of[t * 2 + 0] = skc.shfl_xor(xf[t], 16)
    of[t * 2 + 1] = skc.shfl_up(xf[t], a)


@skc.kernel
def in_branches(x: I32, o: I32, n: skc.i32):
    """Shuffles inside branches reading only lanes that took the same branch, after a return some lanes take
    (reading lanes that never return), and votes over the lanes of a branch."""
    t = skc.thread_id(0)
    v = x[t]
    if t % 2 == 0:
        o[t * 6 + 0] = skc.shfl_xor(v, 2)            # even lanes read even lanes
    else:
        o[t * 6 + 0] = skc.shfl_xor(v * 3, 6)        # odd lanes read odd lanes
    if (t // 4) % 2 == 1:
        o[t * 6 + 1] = skc.shfl_xor(v, 1)            # within a group of four that all took the branch
    if v % 3 != 0:
        o[t * 6 + 2] = skc.i32(skc.ballot(v % 2 == 0))
        o[t * 6 + 3] = skc.i32(skc.vote_any(v > n)) + 2 * skc.i32(skc.vote_all(v > -n))
    if t % 32 >= 8 and v > n:
        return
    o[t * 6 + 4] = skc.shfl_idx(v, t % 8)              # lanes 0-7 of each warp never return
    o[t * 6 + 5] = skc.i32(skc.ballot(v < n))


@skc.kernel
def reductions(x: I32, xf: F32, o: I32, of: F32):
    """Warp reductions over whole and partial warps."""
    t = skc.thread_id(0)
    o[t * 3 + 0] = skc.warp_sum(x[t])
    o[t * 3 + 1] = skc.warp_max(x[t])
    o[t * 3 + 2] = skc.warp_min(x[t])
    of[t] = skc.warp_sum(xf[t])   # integer-valued floats: exact in any order


@skc.kernel
def atomics_int(g32: I32, gu: U32, g64: I64, gu64: U64, x: I32, o32: I32, ou: U32, o64: I64, ou64: U64):
    """Every integer atomic on global memory: contended cells (the final values do not depend on order) and a
    cell a thread (return values), some of them under a condition or a mask."""
    t = skc.thread_id(0)
    v = x[t]
    o32[t * 4 + 0] = skc.atomic_add(g32 + 8 + t, v)            # own cell: the old value comes back
    o32[t * 4 + 1] = skc.atomic_max(g32 + 8 + t, v * 2 - 7)
    o32[t * 4 + 2] = skc.atomic_xchg(g32 + 8 + t, v + 100)
    o32[t * 4 + 3] = skc.atomic_cas(g32 + 8 + t, v + 100 - t % 2, -5)
    skc.atomic_add(g32 + 0, v)
    skc.atomic_min(g32 + 1, v)
    skc.atomic_max(g32 + 2, v)
    skc.atomic_and(g32 + 3, ~(1 << (t % 31)))
    skc.atomic_or(g32 + 4, 1 << (t % 29), mask=v > 0)
    skc.atomic_xor(g32 + 5, v)
    if v % 3 == 0:
        skc.atomic_add(g32 + 6, 1)
    u = skc.u32(v) * skc.u32(2654435761)
    ou[t * 2 + 0] = skc.atomic_min(gu + 4 + t, u)
    ou[t * 2 + 1] = skc.atomic_or(gu + 4 + t, u >> skc.u32(3))
    skc.atomic_max(gu + 0, u)
    skc.atomic_min(gu + 1, u)
    skc.atomic_add(gu + 2, u)
    w = skc.i64(v) * skc.i64(3000000007)
    o64[t * 2 + 0] = skc.atomic_add(g64 + 4 + t, w)
    o64[t * 2 + 1] = skc.atomic_cas(g64 + 4 + t, w + skc.i64(t % 3), skc.i64(-1))
    skc.atomic_add(g64 + 0, w)
    skc.atomic_min(g64 + 1, w)
    skc.atomic_max(g64 + 2, w)
    skc.atomic_xor(g64 + 3, w)
    z = skc.u64(w)
    ou64[t] = skc.atomic_max(gu64 + 2 + t, z)
    skc.atomic_min(gu64 + 0, z)
    skc.atomic_and(gu64 + 1, z | skc.u64(1))


@skc.kernel
def atomics_float(gf: F32, gd: F64, gh: F16, x: I32, of: F32, od: F64):
    """Float atomics: add (integer values: exact in any order), min and max (NaN-ignoring, as arith.min), on own
    cells (return values) and contended ones."""
    t = skc.thread_id(0)
    f = skc.f32(x[t]) * 0.5
    of[t] = skc.atomic_add(gf + 8 + t, f)
    skc.atomic_add(gf + 0, f)
    skc.atomic_min(gf + 1, f)
    skc.atomic_max(gf + 2, f)
    skc.atomic_max(gf + 3, skc.f32(float("nan")) if t % 4 == 0 else f)
    d = skc.f64(x[t]) * 0.25
    od[t] = skc.atomic_max(gd + 4 + t, d)
    skc.atomic_add(gd + 0, d)
    skc.atomic_min(gd + 1, d)
    skc.atomic_add(gh + 0, skc.f16(x[t] % 2))   # (sums up to 1000: exact in f16)
    skc.atomic_max(gh + 1, skc.f16(x[t]))


@skc.kernel
def atomics_shared(x: I32, o: I32, of: F32):
    """Atomics on shared memory: a histogram (contended adds), min and max, return values of own cells, and a
    float add; the block's cells are read back after a barrier."""
    t = skc.thread_id(0)
    counts = skc.shared((8,), skc.i32)
    cells = skc.shared((1024,), skc.i32)
    sums = skc.shared((2,), skc.f32)
    if t < 8:
        counts[t] = 0
    if t < 2:
        sums[t] = 0.0
    cells[t] = t * 3
    skc.barrier()
    skc.atomic_add(counts.ptr + x[t] % 6, 1)
    skc.atomic_max(counts.ptr + 6, x[t])
    skc.atomic_min(counts.ptr + 7, x[t])
    o[t * 2] = skc.atomic_add(cells.ptr + t, x[t])
    skc.atomic_add(sums.ptr + t % 2, skc.f32(x[t]))
    skc.barrier()
    o[t * 2 + 1] = cells[t] + (counts[t % 8] if t % 8 < 6 else 0)
    if t < 8:
        o[2048 + t] = counts[t]
    if t < 2:
        of[t] = sums[t]


@skc.kernel
def atomics_16bit(g: I16, gu: U16, gb: BF16, gh: F16, x: I32, o: I16, ob: BF16):
    """16-bit atomics (LLVM makes most of them compare-and-swap loops on the 32-bit word holding the value: the
    arrays are a whole number of words), under a mask too."""
    t = skc.thread_id(0)
    v = skc.i16(x[t])
    o[t * 3] = skc.atomic_add(g + 8 + t, v)
    o[t * 3 + 1] = skc.atomic_max(g + 8 + t, v * skc.i16(3))
    o[t * 3 + 2] = skc.atomic_xchg(g + 8 + t, v + skc.i16(1), mask=t % 3 != 0)
    skc.atomic_add(g + 0, v)
    skc.atomic_min(g + 1, v)
    skc.atomic_max(g + 2, v)
    skc.atomic_xor(g + 3, v)
    skc.atomic_min(gu + 0, skc.u16(v))
    skc.atomic_or(gu + 1, skc.u16(1) << skc.u16(t % 16))
    ob[t] = skc.atomic_add(gb + 4 + t, skc.bf16(x[t]))
    skc.atomic_add(gb + 0, skc.bf16(x[t] % 2), mask=t < 256)   # (bf16 counts exactly to 256: any order alike)
    skc.atomic_max(gb + 1, skc.bf16(x[t]))
    skc.atomic_min(gh + 0, skc.f16(x[t]))


@skc.kernel
def breaks_in_branches(x: I32, o: I32, n: skc.i32):
    """Votes in loops that some lanes leave by breaks nested in branches (one, two and three deep, in an else side,
    on both sides of a branch), over the lanes still in the loop: those of the branch that did not break, and after
    it the loop's. x holds 8 values a thread."""
    t = skc.thread_id(0)
    s = skc.i32(0)
    for i in range(n):                                  # one deep
        v = x[t * 8 + i % 8]
        if v < 3:
            if v < -2:
                break
            s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
        s = s + skc.i32(skc.ballot(v % 3 == 0) & 0xffff)
    o[t * 4 + 0] = s + skc.i32(skc.ballot(s % 2 == 0) & 0xff)
    s = skc.i32(0)
    for i in range(n):                                  # two and three deep, on both sides of a branch
        v = x[t * 8 + (i + 3) % 8]
        if v < 5:
            if v % 2 == 0:
                if v < -1:
                    break
                s = s + skc.i32(skc.ballot(v > 1) & 0xfff)
            else:
                if v < 0:
                    if v == -3:
                        break
                    s = s + skc.i32(skc.vote_any(v == -1)) * 3
                s = s + skc.i32(skc.ballot(v > 2) & 0xff)
            s = s + skc.i32(skc.ballot(v < 2) & 0xffff)
        s = s + skc.i32(skc.ballot(v % 3 == 1) & 0xffff) + skc.i32(skc.vote_all(v > -4))
    o[t * 4 + 1] = s
    s = skc.i32(0)
    for i in range(n):                                  # in else sides
        v = x[t * 8 + (i + 5) % 8]
        if v > 0:
            s = s + skc.i32(skc.ballot(v > 4) & 0xffff)
        else:
            if v < -2:
                break
            s = s + skc.i32(skc.ballot(v == 0) & 0xffff)
        if v < 6:
            if v > 1:
                s = s + skc.i32(skc.vote_any(v == 2))
            else:
                break
        s = s + skc.i32(skc.ballot(v % 2 == 0) & 0xffff)
    o[t * 4 + 2] = s


@skc.kernel
def breaks_in_inner_and_while_loops(x: I32, o: I32, n: skc.i32):
    """A break nested in branches of an inner loop leaves that loop only (the outer loop's lanes vote after it), and
    breaks nested in a while loop whose lanes leave at its test too. x holds 8 values a thread."""
    t = skc.thread_id(0)
    s = skc.i32(0)
    for i in range(2):
        for j in range(n):
            v = x[t * 8 + (i * 3 + j) % 8]
            if v < 4:
                if v < -1:
                    break
                s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
            s = s + skc.i32(skc.ballot(v % 2 == 1) & 0xffff)
        s = s + skc.i32(skc.ballot(x[t * 8 + i] > 2) & 0xffff)
    o[t * 2 + 0] = s
    s = skc.i32(0)
    i = t % 3
    while i < n:                                        # trip counts differ by thread
        v = x[t * 8 + i % 8]
        i = i + 1
        if v < 4:
            if v % 3 == 0:
                if v < 0:
                    break
                s = s + skc.i32(skc.ballot(v > 1) & 0xfff)
            s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
        s = s + skc.i32(skc.ballot(v % 2 == 0) & 0xffff)
    o[t * 2 + 1] = s


@skc.kernel
def continues_in_branches(x: I32, o: I32, n: skc.i32):
    """Votes after continues nested in branches (two and three deep, in an else side, on both sides of a branch),
    over the lanes going on: those of the branch that did not continue, and after it those a ballot at its join
    names. x holds 8 values a thread."""
    t = skc.thread_id(0)
    s = skc.i32(0)
    for i in range(n):                                  # two deep
        v = x[t * 8 + i % 8]
        if v < 3:
            if v < -2:
                continue
            s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
        s = s + skc.i32(skc.ballot(v % 3 == 0) & 0xffff)
    o[t * 3 + 0] = s + skc.i32(skc.ballot(s % 2 == 0) & 0xff)
    s = skc.i32(0)
    for i in range(n):                                  # three deep, on both sides of a branch
        v = x[t * 8 + (i + 3) % 8]
        if v < 5:
            if v % 2 == 0:
                if v < -1:
                    continue
                s = s + skc.i32(skc.ballot(v > 1) & 0xfff)
            else:
                if v < 0:
                    if v == -3:
                        continue
                    s = s + skc.i32(skc.vote_any(v == -1)) * 3
                s = s + skc.i32(skc.ballot(v > 2) & 0xff)
            s = s + skc.i32(skc.ballot(v < 2) & 0xffff)
        s = s + skc.i32(skc.ballot(v % 3 == 1) & 0xffff) + skc.i32(skc.vote_all(v > -4))
    o[t * 3 + 1] = s
    s = skc.i32(0)
    for i in range(n):                                  # in else sides
        v = x[t * 8 + (i + 5) % 8]
        if v > 0:
            s = s + skc.i32(skc.ballot(v > 4) & 0xffff)
        else:
            if v < -2:
                s = s + 7
            else:
                continue
            s = s + skc.i32(skc.ballot(v == -3) & 0xffff)
        s = s + skc.i32(skc.ballot(v % 2 == 0) & 0xffff)
    o[t * 3 + 2] = s


@skc.kernel
def continues_in_inner_and_while_loops(x: I32, o: I32, n: skc.i32):
    """A continue nested in branches of an inner loop skips that loop's iteration only (the outer loop's lanes vote
    after it); continues nested in a while loop whose lanes leave at its test; a break nested in one branch of a loop
    and a continue nested deeper in a later one. x holds 8 values a thread."""
    t = skc.thread_id(0)
    s = skc.i32(0)
    for i in range(2):
        for j in range(n):
            v = x[t * 8 + (i * 3 + j) % 8]
            if v < 4:
                if v < -1:
                    continue
                s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
            s = s + skc.i32(skc.ballot(v % 2 == 1) & 0xffff)
        s = s + skc.i32(skc.ballot(x[t * 8 + i] > 2) & 0xffff)
    o[t * 3 + 0] = s
    s = skc.i32(0)
    i = t % 3
    while i < n:                                        # trip counts differ by thread
        v = x[t * 8 + i % 8]
        i = i + 1
        if v < 4:
            if v % 3 == 0:
                if v < 0:
                    continue
                s = s + skc.i32(skc.ballot(v > 1) & 0xfff)
            s = s + skc.i32(skc.ballot(v > 0) & 0xffff)
        s = s + skc.i32(skc.ballot(v % 2 == 0) & 0xffff)
    o[t * 3 + 1] = s
    s = skc.i32(0)
    for i in range(n):                                  # a break two deep, then a continue three deep
        v = x[t * 8 + (i + 1) % 8]
        if v < 6:
            if v == -4:
                break
            s = s + skc.i32(skc.ballot(v > 2) & 0xffff)
        if v > -3:
            if v % 2 == 1:
                if v > 4:
                    continue
                s = s + skc.i32(skc.vote_any(v == 1))
        s = s + skc.i32(skc.ballot(v % 3 == 2) & 0xffff)
    o[t * 3 + 2] = s


def _ints(rng, n, low=-40, high=40):
    return rng.integers(low, high, n).astype(np.int32)


def cases(threads: int, seed: int = 0) -> list:
    """[(name, kernel, arrays, scalars)] for a block of `threads` threads: the arrays in the kernel's argument
    order (each a fresh copy to run on), the scalars after them."""
    rng = np.random.default_rng(seed * 1000 + threads)
    n = threads
    x = _ints(rng, n)
    amount = rng.integers(0, 70, n).astype(np.int32)
    out = [
        ("shuffles", shuffles,
         [x, rng.integers(-2 ** 62, 2 ** 62, n), rng.standard_normal(n), rng.standard_normal(n).astype(np.float16),
          rng.integers(-30000, 30000, n).astype(np.int16), rng.standard_normal(n).astype(np.float32), amount,
          np.zeros(4 * n, np.int32), np.zeros(2 * n, np.int64), np.zeros(2 * n, np.float64),
          np.zeros(2 * n, np.float16), np.zeros(2 * n, np.int16), np.zeros(2 * n, np.float32)], ()),
        ("in_branches", in_branches, [x, np.full(6 * n, -9, np.int32)], (5,)),
        ("reductions", reductions, [x, _ints(rng, n).astype(np.float32), np.zeros(3 * n, np.int32),
                                    np.zeros(n, np.float32)], ()),
    ]
    g32 = np.concatenate([np.array([0, 1000, -1000, -1, 0, 0, 0, 0], np.int32), _ints(rng, n)])
    gu = np.concatenate([np.array([0, 2 ** 32 - 1, 0, 0], np.uint32), rng.integers(0, 2 ** 32, n, np.uint32)])
    g64 = np.concatenate([np.array([0, 2 ** 62, -2 ** 62, 0], np.int64), rng.integers(-2 ** 40, 2 ** 40, n)])
    gu64 = np.concatenate([np.array([2 ** 64 - 1, 2 ** 64 - 1], np.uint64), rng.integers(0, 2 ** 63, n, np.uint64)])
    out.append(("atomics_int", atomics_int,
                [g32, gu, g64, gu64, x, np.zeros(4 * n, np.int32), np.zeros(2 * n, np.uint32),
                 np.zeros(2 * n, np.int64), np.zeros(n, np.uint64)], ()))
    gf = np.concatenate([np.array([0, 100, -100, -100, 0, 0, 0, 0], np.float32),
                         rng.integers(-9, 9, n).astype(np.float32)])
    gd = np.concatenate([np.array([0, 100, 0, 0], np.float64), rng.integers(-9, 9, n).astype(np.float64)])
    out.append(("atomics_float", atomics_float,
                [gf, gd, np.array([0, -60000], np.float16), x, np.zeros(n, np.float32), np.zeros(n, np.float64)],
                ()))
    out.append(("atomics_16bit", atomics_16bit,
                [np.concatenate([np.array([0, 100, -100, 0, 0, 0, 0, 0], np.int16),
                                 _ints(rng, n + n % 2).astype(np.int16)]),
                 np.array([65535, 0], np.uint16),
                 np.concatenate([np.array([0, -100, 0, 0]), rng.integers(-9, 9, n)]).astype(np.float32).astype(bf16),
                 np.array([1000, 0], np.float16), x, np.zeros(3 * n + n % 2, np.int16), np.zeros(n + n % 2, bf16)], ()))
    eight = rng.integers(-4, 9, 8 * n).astype(np.int32)
    out.append(("breaks_in_branches", breaks_in_branches, [eight, np.zeros(4 * n, np.int32)], (8,)))
    out.append(("breaks_in_inner_and_while_loops", breaks_in_inner_and_while_loops, [eight, np.zeros(2 * n, np.int32)],
                (8,)))
    out.append(("continues_in_branches", continues_in_branches, [eight, np.zeros(3 * n, np.int32)], (8,)))
    out.append(("continues_in_inner_and_while_loops", continues_in_inner_and_while_loops,
                [eight, np.zeros(3 * n, np.int32)], (8,)))
    if threads <= 1024:
        out.append(("atomics_shared", atomics_shared, [x, np.zeros(2048 + 8, np.int32), np.zeros(2, np.float32)],
                    ()))
    return out


def copies(arrays: list) -> list:
    return [a.copy() for a in arrays]
