"""TileOp: the warpgroup MMA (wgmma, sm_90a). A consumer warpgroup multiplies its 64-row share of
the A tile by the whole B tile, 16 deep at a time, into an f32 accumulator fragment held in
registers (each thread n/2 values, in the layout PTX ISA 9.7.15.5.1.1 defines)."""
from __future__ import annotations

import skc
from skc import frontend


class Accumulator:
    """A warpgroup's 64 x n f32 accumulator: each thread's fragment of n/2 values. MMAs into it may
    still be running: `wait()` before reading the fragment."""

    def __init__(self, op, n: int):
        self.op = op
        self.n = n
        self.fragment = skc.full(n // 2, 0.0, skc.f32)

    def zero(self):
        self.fragment = skc.full(self.n // 2, 0.0, skc.f32)

    def wait(self):
        self.op.wait(0)


class Wgmma:
    """acc += A[row0 : row0 + 64, :] · B for a stage's A (m x k) and B (k x n) tiles, with m64nNk16
    wgmma. `row0` is this warpgroup's first row of the A tile (a multiple of 64)."""

    M = 64
    K = 16

    def __init__(self, n: int, k: int, dtype, row0=0):
        if n % 8 or not 8 <= n <= 256:
            raise frontend.current().error(f"wgmma computes 8 to 256 columns in steps of 8, not {n}")
        if k % self.K:
            raise frontend.current().error(f"the k-depth of a stage must be a multiple of 16, found {k}")
        self.n, self.k, self.dtype, self.row0 = n, k, dtype, row0

    # wgmma runs asynchronously: the consumer keeps this many stages' MMAs running while it waits for the
    # next stage, and releases a stage only once the MMAs reading it completed (ConsumerRole does).
    stages_in_flight = 1

    def zeros(self) -> Accumulator:
        return Accumulator(self, self.n)

    def wait(self, pending: int):
        """Until at most `pending` groups of this warpgroup's MMAs are still running."""
        skc.hopper.wgmma_wait(pending)

    def __call__(self, acc: Accumulator, a, b):
        self.check(a, b)
        skc.hopper.wgmma_fence()
        fragment = acc.fragment
        for step in skc.static_range(self.k // self.K):
            fragment = skc.hopper.wgmma(fragment, a.descriptor(step, self.row0), b.descriptor(step),
                                        self.n, self.dtype, trans_a=int(not a.layout.k_major),
                                        trans_b=int(not b.layout.k_major))
        acc.fragment = fragment
        skc.hopper.wgmma_commit()

    def check(self, a, b):
        """The payload's tiles must be what this op was built for."""
        if a.layout.k != self.k or b.layout.k != self.k:
            raise frontend.current().error(
                f"the stage's tiles are {a.layout.k} and {b.layout.k} deep in k; this Wgmma was made for {self.k}",
                hint="build the payload and the TileOp from the same config")
        if b.layout.rows != self.n:
            raise frontend.current().error(
                f"the stage's B tile has {b.layout.rows} columns; this Wgmma computes {self.n}",
                hint="build the payload and the TileOp from the same config")
        if a.layout.rows % self.M:
            raise frontend.current().error(f"the A tile has {a.layout.rows} rows, not a multiple of 64")
