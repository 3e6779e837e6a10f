"""Epilogues: from a consumer's accumulator fragment to the output. Both apply the fused element-wise
part (`FusedEpilogue`: alpha·AB + beta·C + bias, then an activation) and convert to the output type.
`TmaStoreEpilogue` (Hopper) writes the warpgroup's 64 x n tile to shared memory and stores it with
TMA (which skips whatever lies outside the output); `DirectStoreEpilogue` (AMD) stores each lane's
accumulator values straight to global memory, masked at the edges."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import skc
from skc import frontend

ACTIVATIONS = (None, "relu", "gelu", "silu")


@dataclass(frozen=True)
class EpilogueSpec:
    """The compile-time shape of the fused epilogue: which extra inputs it reads, which activation."""

    alpha: bool = False        # scale the product by a run-time alpha
    beta: bool = False         # add beta times an input C
    bias: bool = False         # add a per-column bias
    activation: Optional[str] = None

    def check(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {ACTIVATIONS}")


def activate(kind, v):
    if kind == "relu":
        return skc.maximum(v, 0.0)
    if kind == "gelu":  # the tanh approximation
        return 0.5 * v * (1.0 + skc.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
    if kind == "silu":
        return v / (1.0 + skc.exp(-v))
    return v


class FusedEpilogue:
    """The element-wise part of a GEMM epilogue: value -> activation(alpha · value + beta · C[row, column]
    + bias[column]), each term present when `spec` asks for it (C and bias read with masks: M x N)."""

    def __init__(self, spec: EpilogueSpec, alpha=1.0, beta=0.0, c_in=None, bias=None, M=None, N=None):
        spec.check()
        self.spec = spec
        self.alpha, self.beta, self.c_in, self.bias, self.M, self.N = alpha, beta, c_in, bias, M, N

    def __call__(self, value, row, column):
        spec = self.spec
        if spec.alpha:
            value = value * self.alpha
        if spec.beta or spec.bias:
            inside = (row < self.M) & (column < self.N)
            if spec.beta:
                value = value + self.beta * skc.f32(skc.load(self.c_in + (skc.i64(row) * self.N + column),
                                                             mask=inside))
            if spec.bias:
                value = value + skc.f32(skc.load(self.bias + column, mask=column < self.N))
        return activate(spec.activation, value)


def fragment_position(i: int, thread):
    """(row, column) in the warpgroup's 64 x n tile of value i of thread `thread`'s f32 fragment
    (PTX ISA 9.7.15.5.1.1, wgmma D fragments)."""
    within = i % 4
    row = 16 * (thread // 32) + (thread % 32) // 4 + 8 * (within // 2)
    column = 8 * (i // 4) + 2 * (thread % 4) + within % 2
    return row, column


class TmaStoreEpilogue:
    """Writes one consumer warpgroup's 64 x n share of an output tile in chunks of 64 x `columns`
    (one 128-byte swizzled TMA box each), double-buffered in `staging` (2 x 64 x columns elements,
    1024-byte aligned), so a chunk is written while the previous one is being stored. Consumer
    `consumer` (of `consumers`) synchronizes its warpgroup on named barrier 1 + consumer."""

    ROWS = 64
    BUFFERS = 2

    def __init__(self, out_map, n: int, dtype, staging, consumers: int, spec: EpilogueSpec = EpilogueSpec(),
                 alpha=1.0, beta=0.0, c_in=None, bias=None, M=None, N=None, columns: int = 64, consumer=0):
        if n % columns or columns * dtype.itemsize != 128:
            raise frontend.current().error(f"the epilogue stores 128-byte rows: {128 // dtype.itemsize} columns "
                                           f"of {dtype} at a time, dividing n = {n}")
        self.out_map, self.n, self.dtype, self.staging, self.columns = out_map, n, dtype, staging, columns
        self.consumers, self.spec, self.consumer = consumers, spec, consumer
        self.fused = FusedEpilogue(spec, alpha, beta, c_in, bias, M, N)
        self.thread = skc.thread_index() % 128
        self.leader = self.thread == 0

    def __call__(self, acc, row0, col0):
        """Store acc as the output rows row0.. (this warpgroup's first row) and columns col0.."""
        acc.wait()
        fragment = acc.fragment
        per_chunk = self.columns // 2  # fragment values per chunk of columns
        for chunk in skc.static_range(self.n // self.columns):
            buffer = self.staging + (chunk % self.BUFFERS) * (self.ROWS * self.columns)
            self.sync(self.BUFFERS - 1)  # the store that last read this buffer is done with it
            for i in skc.static_range(chunk * per_chunk, (chunk + 1) * per_chunk, 2):
                row, column = fragment_position(i, self.thread)
                first = self.fused(fragment[i], row0 + row, col0 + column)
                second = self.fused(fragment[i + 1], row0 + row, col0 + column + 1)
                pair = skc.vector(self.dtype(first), self.dtype(second))
                skc.store(self.staged(buffer, row, column - chunk * self.columns), pair)
            skc.hopper.fence_proxy_async()  # the TMA (async proxy) reads what these stores wrote
            self.barrier()
            if self.leader:
                skc.hopper.tma_store(self.out_map, buffer, (row0, col0 + chunk * self.columns))
                skc.hopper.tma_commit()

    def staged(self, buffer, row, column):
        """Where (row, column) of a chunk sits in a 128-byte-swizzled buffer (the TMA box's layout):
        16-byte piece index XOR row % 8, so the 8 rows a warp writes at once hit different banks."""
        size = self.dtype.itemsize
        piece = (column * size) // 16
        offset = row * 128 + ((piece ^ (row % 8)) * 16) + (column * size) % 16
        return buffer + offset // size

    def sync(self, pending: int):
        if self.leader:
            skc.hopper.tma_wait(pending, read=True)
        self.barrier()

    def barrier(self):
        """The warpgroup's 128 threads wait for each other (named barrier 1 + its consumer index), so the
        consumers do not wait on each other's epilogues."""
        for c in skc.static_range(self.consumers):
            if self.consumer == c:
                skc.barrier_named(1 + c, 128)

    def flush(self):
        """Wait for the last stores to finish (before the block exits)."""
        if self.leader:
            skc.hopper.tma_wait(0)


class DirectStoreEpilogue:
    """Stores a wave's accumulator values (any TileOp's accumulator that lists `values()`: (value, row,
    column) in the wave's tile) to the row-major M x N output at `out`, converted to `dtype` after the
    fused part; values outside the output are not stored."""

    def __init__(self, out, dtype, spec: EpilogueSpec = EpilogueSpec(), alpha=1.0, beta=0.0, c_in=None, bias=None,
                 M=None, N=None):
        self.out, self.dtype, self.M, self.N = out, dtype, M, N
        self.fused = FusedEpilogue(spec, alpha, beta, c_in, bias, M, N)

    def __call__(self, acc, row0, col0):
        """Store acc as the output rows row0.. and columns col0.. (the wave's corner in the output)."""
        acc.wait()
        for value, row, column in acc.values():
            row, column = row0 + row, col0 + column
            inside = (row < self.M) & (column < self.N)
            result = self.dtype(self.fused(value, row, column))
            skc.store(self.out + (skc.i64(row) * self.N + column), result, mask=inside)

    def flush(self):
        """Plain stores: nothing in flight to wait for."""
