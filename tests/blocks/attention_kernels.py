"""Kernels shared by the attention-block tests (interpreter and PTX): one warpgroup running the register-A wgmma."""
from __future__ import annotations

import numpy as np

import skc
from skc.blocks import Wgmma
from skc.blocks.softmax import OnlineSoftmax, exp2_on_fma
from helpers import wgmma_fragments as d_fragments  # noqa: F401  (the tests import it from here)

THREADS = 128


@skc.kernel
def wgmma_rs_kernel(b_image: skc.Ptr[skc.u32], a_fragments: skc.Ptr[skc.bf16], acc_in: skc.Ptr[skc.f32],
                    out: skc.Ptr[skc.f32], desc_b: skc.i64, cfg: skc.constexpr):
    """Copy `b_image` (B as it must sit in shared memory) into shared memory, then D = acc + A·B with one
    m64nNk16 wgmma whose A comes from registers: thread t's 8 values are a_fragments[8t : 8t + 8].
    cfg: (n, words of the image[, whether the copying threads fence: True])."""
    n, words = cfg[:2]
    half = n // 2
    tid = skc.thread_id(0)
    smem = skc.shared(words, skc.u32, align=1024)
    for i in range(tid, words, THREADS):
        smem[i] = b_image[i]
    if len(cfg) < 3 or cfg[2]:
        skc.hopper.fence_proxy_async()
    skc.barrier()
    base = skc.i64(skc.hopper.shared_address(smem) >> 4)
    a = skc.load(a_fragments + tid * 8, width=8)
    values = []
    for i in skc.static_range(half):
        values.append(acc_in[tid * half + i])
    acc = skc.vector(*values)
    skc.hopper.wgmma_fence()
    acc = skc.hopper.wgmma_rs(acc, a, desc_b + base, n, skc.bf16)
    skc.hopper.wgmma_commit()
    skc.hopper.wgmma_wait(0)
    for i in skc.static_range(half):
        out[tid * half + i] = acc[i]


def k_major_no_swizzle(b_t: np.ndarray) -> tuple:
    """B stored N x 16 (K-major) as 8 x 16-byte core matrices, unswizzled: element (row, k) at
    (row // 8) 256 + (k // 8) 128 + (row % 8) 16 + (k % 8) 2 (LBO = 128 along K, SBO = 256 along N, as checked on
    the H100). Gives (bf16 bits as uint16 array, descriptor relative to the buffer)."""
    from skc.runtime.dtypes import float32_to_bf16_bits

    rows = b_t.shape[0]
    image = np.zeros(rows * 16, np.uint16)
    r = np.arange(rows)[:, None]
    k = np.arange(16)[None, :]
    image[((r // 8) * 256 + (k // 8) * 128 + (r % 8) * 16 + (k % 8) * 2) // 2] = float32_to_bf16_bits(b_t)
    descriptor = (128 >> 4) << 16 | (256 >> 4) << 32
    return image, descriptor


def a_register_fragments(a: np.ndarray) -> np.ndarray:
    """A (64 x 16) as the warpgroup's register fragments, written out from PTX ISA 9.7.15.5.1.1's figure of the
    m64nNk16 A fragment: warp w holds rows 16w .. 16w + 15; lane l holds a0, a1 at row l / 4, columns 2 (l % 4)
    and the next; a2, a3 eight rows below; a4 .. a7 the same two rows, eight columns on."""
    out = np.empty((THREADS, 8), np.float32)
    for t in range(THREADS):
        warp, lane = divmod(t, 32)
        row, column = 16 * warp + lane // 4, 2 * (lane % 4)
        pieces = [(row, column), (row + 8, column), (row, column + 8), (row + 8, column + 8)]
        for p, (r, c) in enumerate(pieces):
            out[t, 2 * p], out[t, 2 * p + 1] = a[r, c], a[r, c + 1]
    return out


# -- the online softmax on its own -----------------------------------------------------------------
@skc.kernel
def online_softmax_kernel(scores: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], lse: skc.Ptr[skc.f32], valid: skc.i32,
                          cfg: skc.constexpr):
    """Stream `blocks` score blocks (each 64 x n, as accumulator fragments: block j of thread t at
    scores[(j · 128 + t) · n/2 ...]) through OnlineSoftmax, with O += P (O as wide as a block) standing in for
    P·V; scores at columns >= valid (of the whole row) or, causal, above the diagonal, are masked. Stores O / l
    as fragments and each row's log-sum-exp (lse[row], by the thread holding the row's first column)."""
    n, blocks, scale, causal = cfg[:4]
    exp2_on_fma, tree, lazy, exact = tuple(cfg[4:]) + (0, False, 0.0, False)[len(cfg) - 4:]
    half = n // 2
    tid = skc.thread_id(0)
    mma = Wgmma(n, 16, skc.bf16)
    s = mma.zeros()
    o = mma.zeros()
    softmax = OnlineSoftmax(scale, exp2_on_fma=exp2_on_fma, tree=tree, lazy=lazy, exact=exact)
    for j in range(blocks):
        base = scores + (j * THREADS + tid) * half
        s.fragment = skc.vector(*[base[i] for i in range(half)])
        first = j * n
        if causal:
            softmax(s, o, mask=lambda row, column: (first + column < valid) & (first + column <= row))
        else:
            softmax(s, o, mask=lambda row, column: first + column < valid)
        o.fragment = o.fragment + s.fragment
    rows = softmax.finish(o)
    for i in skc.static_range(half):
        out[tid * half + i] = o.fragment[i]
    if tid % 4 == 0:
        for (row, indices), value in zip(o.rows(), rows):
            lse[row] = value


@skc.kernel
def exp2_on_fma_kernel(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], n: skc.i32):
    """y = exp2_on_fma(x), one value a thread."""
    i = skc.block_id(0) * skc.block_dim(0) + skc.thread_id(0)
    if i < n:
        y[i] = exp2_on_fma(x[i])
