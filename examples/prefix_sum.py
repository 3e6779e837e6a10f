"""Inclusive prefix sum (scan) of a long float32 array: y[i] = x[0] + ... + x[i], in three launches
(reduce, then scan): each block sums its tile of x; one block scans those sums into each tile's offset; each block
scans its tile again, from its offset. x is read twice and y written once.

A block scans a tile in rounds of 4 floats a thread (one 16-byte load, so a warp reads 512 contiguous bytes): each
thread adds its 4 in order, a warp scans its threads' sums with shuffles (`shfl_up`), shared memory holds each warp's
total for one warp to scan, and the round's total carries into the next round.
Run it: `skc run examples/prefix_sum.py`.
"""
import numpy as np

import skc

VEC = 4          # floats a thread takes per round: one 16-byte load
THREADS = 256    # threads of a block
ROUNDS = 4       # rounds a tile: a tile is ROUNDS · THREADS · VEC = 4096 floats


@skc.func
def load_four(x, start, n):
    """x[start : start + 4] as a vector, zeros past n (a vector's mask covers all its lanes, so the tail loads
    one float at a time)."""
    if start + VEC <= n:
        values = skc.load(x + start, width=VEC)
    else:
        values = skc.vector(*[skc.load(x + start + j, mask=start + j < n, other=0.0) for j in skc.static_range(VEC)])
    return values


@skc.func
def store_four(y, start, n, values):
    if start + VEC <= n:
        skc.store(y + start, values)
    else:
        for j in skc.static_range(VEC):
            skc.store(y + start + j, values[j], mask=start + j < n)


@skc.func
def warp_inclusive_scan(value):
    """The sum of value over this lane and the lanes below it in the warp."""
    lane = skc.lane_id()
    offset = 1
    while offset < skc.warp_size():     # a compile-time loop: warp_size() is known
        below = skc.shfl_up(value, offset)
        value = skc.where(lane >= offset, value + below, value)
        offset *= 2
    return value


@skc.func
def block_exclusive_scan(value, warp_totals):
    """(the sum of value over the threads before this one, the sum over the whole block). warp_totals is shared
    memory of one f32 a warp; every thread of the block must call this."""
    lane, warp, warps = skc.lane_id(), skc.warp_id(), skc.num_warps()
    inclusive = warp_inclusive_scan(value)
    if lane == skc.warp_size() - 1:
        warp_totals[warp] = inclusive
    skc.barrier()
    if warp == 0:
        total = skc.where(lane < warps, warp_totals[skc.minimum(lane, warps - 1)], 0.0)
        total = warp_inclusive_scan(total)
        if lane < warps:
            warp_totals[lane] = total
    skc.barrier()
    before = skc.where(warp > 0, warp_totals[skc.maximum(warp - 1, 0)], 0.0)
    block_total = warp_totals[warps - 1]
    skc.barrier()                       # every thread has read warp_totals: the next call may write it
    return before + inclusive - value, block_total


@skc.func
def running_sums(values):
    """The inclusive scan of a vector's lanes, and its last lane."""
    sums = [values[0]]
    for j in skc.static_range(1, VEC):
        sums.append(sums[j - 1] + values[j])
    return skc.vector(*sums), sums[VEC - 1]


@skc.kernel
def tile_sums(x: skc.Ptr[skc.f32], sums: skc.Ptr[skc.f32], n: skc.i64, rounds: skc.constexpr):
    """sums[b] = the sum of block b's tile of x."""
    threads = skc.block_dim(0)
    tile = skc.i64(skc.block_id(0)) * (rounds * threads * VEC)
    partial = 0.0
    for r in skc.static_range(rounds):
        values = load_four(x, tile + (r * threads + skc.thread_id(0)) * VEC, n)
        partial += values[0] + values[1] + values[2] + values[3]
    total = skc.block_sum(partial)
    if skc.thread_id(0) == 0:
        sums[skc.block_id(0)] = total


@skc.kernel
def scan_offsets(sums: skc.Ptr[skc.f32], tiles: skc.i32):
    """One block: sums[b] becomes the sum of sums[0 : b] (each tile's offset), in chunks of threads · VEC."""
    threads = skc.block_dim(0)
    warp_totals = skc.shared((skc.num_warps(),), skc.f32)
    carry = 0.0
    for chunk in range(0, tiles, threads * VEC):
        start = chunk + skc.thread_id(0) * VEC
        values = load_four(sums, start, tiles)
        inclusive, own = running_sums(values)
        before, total = block_exclusive_scan(own, warp_totals)
        store_four(sums, start, tiles, inclusive - values + (carry + before))
        carry += total


@skc.kernel
def scan_tiles(x: skc.Ptr[skc.f32], offsets: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], n: skc.i64,
               rounds: skc.constexpr):
    """y = the inclusive scan of block b's tile of x, plus offsets[b]."""
    threads = skc.block_dim(0)
    warp_totals = skc.shared((skc.num_warps(),), skc.f32)
    tile = skc.i64(skc.block_id(0)) * (rounds * threads * VEC)
    carry = offsets[skc.block_id(0)]
    for r in skc.static_range(rounds):
        start = tile + (r * threads + skc.thread_id(0)) * VEC
        values = load_four(x, start, n)
        inclusive, own = running_sums(values)
        before, total = block_exclusive_scan(own, warp_totals)
        store_four(y, start, n, inclusive + (carry + before))
        carry += total


def compile_arguments(kernel: str, target):
    """What `skc compile` compiles the three kernels for: the launch's blocks and rounds."""
    if kernel == "scan_offsets":
        return {"block": 1024}
    return {"rounds": ROUNDS, "block": THREADS}


def launch(x, y, n: int, sums=None, threads: int = THREADS, rounds: int = ROUNDS):
    """y = the inclusive scan of x's n float32s; sums: scratch of one f32 a tile (made when None)."""
    tiles = skc.cdiv(n, rounds * threads * VEC)
    if sums is None:
        sums = skc.empty(max(tiles, 1), skc.f32)
    if n == 0:
        return y
    tile_sums[tiles, threads](x, sums, n, rounds)
    scan_offsets[1, 1024](sums, tiles)
    scan_tiles[tiles, threads](x, sums, y, n, rounds)
    return y


def reference(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x.astype(np.float64))


def check(n: int, threads: int = THREADS, rounds: int = ROUNDS, seed: int = 0) -> float:
    """Scan n random floats; the error is within what f32 sums of these magnitudes allow (a few ulps of the
    running sum of |x|). Returns the largest error relative to that."""
    rng = np.random.default_rng(seed)
    x_host = rng.standard_normal(n, dtype=np.float32)
    y = skc.empty(n, skc.f32).fill_bytes(0xFF)            # NaN until written
    launch(skc.to_device(x_host), y, n, threads=threads, rounds=rounds)
    scale = np.cumsum(np.abs(x_host.astype(np.float64))) * 2.0 ** -24 * 8 + 1e-30
    error = float(np.max(np.abs(y.numpy() - reference(x_host)) / scale, initial=0))
    if not error <= 1:
        raise AssertionError(f"prefix_sum of {n}: error {error:.3g} of the bound (expected <= 1)")
    return error


def main(n=None) -> str:
    small = skc.current_device().is_interpreter
    n = n or (10_000_019 if not small else 3 * ROUNDS * THREADS * VEC + 5)
    error = check(n)
    return f"{n} floats: error {error:.2g} of the bound (8 ulps of the running sum of |x|)"


if __name__ == "__main__":
    print(main())
