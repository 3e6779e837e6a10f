"""TileIO for convolutions: the im2col loader of conv2d's implicit GEMM.

A conv2d over NHWC activations x [N, H, W, C] with KRSC filters w [K, R, S, C] is the GEMM
y[N·P·Q, K] = A[N·P·Q, R·S·Cp] · B[R·S·Cp, K]: row m of A is output pixel (n, p, q), column
(r, s, c) of A is channel c of the input pixel that filter tap (r, s) reads for it. Channels are
taken in blocks of tile_k (Cp = C rounded up to tile_k; the channels past C read as zeros on both
sides). `Im2colLoader` fills a stage as TmaLoader does, with one change: each 128-byte chunk of the
A tile is one TMA im2col copy of tile_m output pixels (the hardware walks the output pixels and
zero-fills the padding), and each chunk of B one tiled copy of the filter viewed as [K, R·S, C].
"""
from __future__ import annotations

from dataclasses import dataclass

import skc


@dataclass(frozen=True)
class ConvShape:
    """The compile-time geometry of a conv2d (spatial pairs are (h, w)) and the loader that reads it. As a
    MatmulConfig's `loader`, it makes the GEMM composition load its stages with an Im2colLoader."""

    N: int
    H: int
    W: int
    C: int
    K: int
    R: int
    S: int
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    tile_k: int = 64

    @property
    def P(self) -> int:
        return (self.H + 2 * self.padding[0] - self.dilation[0] * (self.R - 1) - 1) // self.stride[0] + 1

    @property
    def Q(self) -> int:
        return (self.W + 2 * self.padding[1] - self.dilation[1] * (self.S - 1) - 1) // self.stride[1] + 1

    @property
    def channel_blocks(self) -> int:
        return -(-self.C // self.tile_k)

    def gemm_shape(self) -> tuple:
        """(M, N, K) of the implicit GEMM."""
        return self.N * self.P * self.Q, self.K, self.R * self.S * self.channel_blocks * self.tile_k

    def corners(self) -> tuple:
        """The im2col bounding box (lower, upper), (h, w) each: filter bases run from -padding to the base
        of the last output pixel, (P - 1) * stride - padding, which is (extent - 1) + upper."""
        lower = (-self.padding[0], -self.padding[1])
        upper = ((self.P - 1) * self.stride[0] - self.padding[0] - (self.H - 1),
                 (self.Q - 1) * self.stride[1] - self.padding[1] - (self.W - 1))
        return lower, upper

    def build(self, payload, tile_k: int, a, b):
        return Im2colLoader(payload, tile_k, self, a, b)


class Im2colLoader:
    """Loads the A tile (im2col map `x`) and B tile (filter map `w`, [K, R·S, C] in boxes of tile_n x 1 x
    chunk) of output tile (row0, col0) at k-step k into a stage; one thread issues the copies."""

    def __init__(self, payload, tile_k: int, conv: ConvShape, x, w):
        self.a, self.b = payload.layouts["a"], payload.layouts["b"]
        self.tile_k, self.conv, self.x, self.w = tile_k, conv, x, w
        self.issuer = skc.thread_index() % 128 == 0

    def __call__(self, stage, row0, col0, k):
        conv = self.conv
        tap, c0 = k // conv.channel_blocks, (k % conv.channel_blocks) * self.tile_k
        r, s = tap // conv.S, tap % conv.S
        # the filter base of output pixel row0: (n, p * stride - pad, q * stride - pad)
        n, pixel = row0 // (conv.P * conv.Q), row0 % (conv.P * conv.Q)
        h = pixel // conv.Q * conv.stride[0] - conv.padding[0]
        w = pixel % conv.Q * conv.stride[1] - conv.padding[1]
        if self.issuer:
            skc.hopper.mbarrier_arrive_tx(stage.full, self.a.bytes + self.b.bytes)
            for chunk in skc.static_range(self.a.chunks):
                skc.hopper.tma_load_im2col(_pointer_to(stage.a.address + chunk * self.a.chunk_bytes), stage.full,
                                           self.x, (n, h, w, c0 + chunk * self.a.chunk),
                                           (r * conv.dilation[0], s * conv.dilation[1]))
            for chunk in skc.static_range(self.b.chunks):
                skc.hopper.tma_load(_pointer_to(stage.b.address + chunk * self.b.chunk_bytes), stage.full, self.w,
                                    (col0, tap, c0 + chunk * self.b.chunk))


def _pointer_to(address):
    return skc.int_to_ptr(address, skc.u8, "shared")
