"""Kernels and host-side layouts shared by the fp8 tests (CPU: interpreter, PTX; GPU: against the interpreter):
fp8 conversions of whole arrays, and one warpgroup running fp8 wgmmas from shared memory."""
from __future__ import annotations

import numpy as np

import skc
from skc.blocks import SmemTile, Wgmma
from skc.blocks.layout import OperandLayout
from helpers import wgmma_fragments as fragments  # noqa: F401  (the tests import it from here)

THREADS = 128


# -- conversions ---------------------------------------------------------------------------------
@skc.kernel
def encode_fp8(x: skc.Ptr[skc.f32], e4m3: skc.Ptr[skc.u8], e5m2: skc.Ptr[skc.u8], n: skc.i32, src: skc.constexpr):
    """The codes of x (read as f32, then cast to `src` first: f16, bf16, f64 or f32) in both fp8 formats."""
    i = skc.block_id(0) * THREADS + skc.thread_id(0)
    if i < n:
        value = skc.cast(x[i], src)
        e4m3[i] = skc.bitcast(skc.f8e4m3(value), skc.u8)
        e5m2[i] = skc.bitcast(skc.f8e5m2(value), skc.u8)


@skc.kernel
def encode_fp8_from(x: skc.Ptr[skc.u16], e4m3: skc.Ptr[skc.u8], e5m2: skc.Ptr[skc.u8], n: skc.i32, src: skc.constexpr):
    """The codes of 16-bit patterns x read as `src` (f16 or bf16), converted directly (no f32 cast in the source)."""
    i = skc.block_id(0) * THREADS + skc.thread_id(0)
    if i < n:
        value = skc.bitcast(x[i], src)
        e4m3[i] = skc.bitcast(skc.f8e4m3(value), skc.u8)
        e5m2[i] = skc.bitcast(skc.f8e5m2(value), skc.u8)


@skc.kernel
def decode_fp8(codes: skc.Ptr[skc.u8], out: skc.Ptr[skc.f32], n: skc.i32, fmt: skc.constexpr):
    """out[i] = the value of fp8 code codes[i] (fmt: f8e4m3 or f8e5m2), plus its f16 and bf16 round trips in
    out[n + i] and out[2n + i]."""
    i = skc.block_id(0) * THREADS + skc.thread_id(0)
    if i < n:
        value = skc.bitcast(codes[i], fmt)
        out[i] = skc.f32(value)
        out[n + i] = skc.f32(skc.f16(value))
        out[2 * n + i] = skc.f32(skc.bf16(value))


# -- one warpgroup of fp8 wgmma ------------------------------------------------------------------
@skc.kernel
def fp8_wgmma(image: skc.Ptr[skc.u32], acc_in: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], desc_a: skc.i64,
              desc_b: skc.i64, desc_a2: skc.i64, desc_b2: skc.i64, cfg: skc.constexpr):
    """Copy `image` (the operands as they must sit in shared memory) into shared memory, then
    D = acc + A[:, :32] B[:32] + A[:, 32:] B[32:] with two m64nNk32 wgmmas. The descriptors' start fields are
    offsets into the image; the shared base is added here. cfg: (n, words, A type, B type)."""
    n, words, dtype_a, dtype_b = cfg
    half = n // 2
    tid = skc.thread_id(0)
    smem = skc.shared(words, skc.u32, align=1024)
    for i in range(tid, words, THREADS):
        smem[i] = image[i]
    skc.hopper.fence_proxy_async()
    skc.barrier()
    base = skc.i64(skc.hopper.shared_address(smem) >> 4)
    values = []
    for i in skc.static_range(half):
        values.append(acc_in[tid * half + i])
    acc = skc.vector(*values)
    skc.hopper.wgmma_fence()
    acc = skc.hopper.wgmma(acc, desc_a + base, desc_b + base, n, dtype_a, dtype_b=dtype_b)
    acc = skc.hopper.wgmma(acc, desc_a2 + base, desc_b2 + base, n, dtype_a, dtype_b=dtype_b)
    skc.hopper.wgmma_commit()
    skc.hopper.wgmma_wait(0)
    for i in skc.static_range(half):
        out[tid * half + i] = acc[i]


SWIZZLE_MODE = {0: 0, 128: 1, 64: 2, 32: 3}   # descriptor bits 62-63


def descriptor(start: int, lbo: int, sbo: int, swizzle: int) -> int:
    """A wgmma matrix descriptor (PTX ISA 9.7.15.5.1.2.2) with its start relative to the shared buffer, as the
    signed 64-bit value an i64 parameter takes (the 128-byte swizzle sets bit 62, 32- and 64-byte bit 63)."""
    bits = (start >> 4) | (lbo >> 4) << 16 | (sbo >> 4) << 32 | SWIZZLE_MODE[swizzle] << 62
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def swizzled(offsets: np.ndarray, swizzle_bytes: int) -> np.ndarray:
    """The 16-byte-chunk XOR of the TMA/wgmma swizzle: bits 4.. of the offset ^= bits 7.. (as many bits as
    the swizzle has 16-byte chunks per row, log2(S/16))."""
    bits = {0: 0, 32: 1, 64: 2, 128: 3}[swizzle_bytes]
    mask = ((1 << bits) - 1) << 7
    return offsets ^ ((offsets & mask) >> 3)


def k_major_image(codes: np.ndarray, swizzle: int, base: int, filler: int):
    """Lay out an fp8 operand (rows x depth codes, K-major: A as m x k, B as n x k) by reshaping: swizzled,
    rows of S bytes in atoms of S k-values; unswizzled, 8 x 16-byte core matrices with 16-k chunks outermost.
    Gives (logical bytes to place at base, one descriptor per 32-deep k slice)."""
    rows, depth = codes.shape
    if swizzle:
        atoms = -(-depth // swizzle)
        tile = np.full((rows, atoms * swizzle), filler, np.uint8)
        tile[:, :depth] = codes
        data = tile.reshape(rows, atoms, swizzle).transpose(1, 0, 2)
        starts = [base + (k0 // swizzle) * rows * swizzle + k0 % swizzle for k0 in range(0, depth, 32)]
        lbo, sbo = 16, 8 * swizzle
    else:
        data = codes.reshape(rows // 8, 8, depth // 16, 16).transpose(2, 0, 1, 3)
        lbo, sbo = (rows // 8) * 128, 128
        starts = [base + (k0 // 16) * lbo for k0 in range(0, depth, 32)]
    return np.ascontiguousarray(data).reshape(-1), [descriptor(s, lbo, sbo, swizzle) for s in starts]


def wgmma_problem(a_codes: np.ndarray, b_codes: np.ndarray, swizzle: int, filler: int = 0x7F):
    """Shared-memory image (as u32 words) and descriptors for A (64 x 64 codes) and B (n x 64 codes, stored N x K).
    Bytes no operand uses hold `filler` (NaN by default): a read in the wrong place poisons the sums."""
    a_bytes, (da, da2) = k_major_image(a_codes, swizzle, 0, filler)
    b_base = -(-a_bytes.size // 1024) * 1024
    b_bytes, (db, db2) = k_major_image(b_codes, swizzle, b_base, filler)
    size = b_base + -(-b_bytes.size // 1024) * 1024
    image = np.full(size, filler, np.uint8)
    image[swizzled(np.arange(a_bytes.size), swizzle)] = a_bytes
    image[swizzled(b_base + np.arange(b_bytes.size), swizzle)] = b_bytes
    return image.view(np.uint32), (da, db, da2, db2)


# -- the Wgmma TileOp on fp8 tiles ---------------------------------------------------------------
@skc.kernel
def fp8_wgmma_block(image: skc.Ptr[skc.u32], out: skc.Ptr[skc.f32], cfg: skc.constexpr):
    """The Wgmma block on one stage of K-major fp8 tiles in shared memory (A 64 x k, B n x k, 128-byte swizzle,
    laid out by the host): out = A B in the fragment layout. cfg: (n, k, A type, B type)."""
    n, k, dtype_a, dtype_b = cfg
    a_layout, b_layout = OperandLayout(64, k, 1), OperandLayout(n, k, 1)
    words = (a_layout.bytes + b_layout.bytes) // 4
    tid = skc.thread_id(0)
    smem = skc.shared(words, skc.u32, align=1024)
    for i in range(tid, words, THREADS):
        smem[i] = image[i]
    skc.hopper.fence_proxy_async()
    skc.barrier()
    base = skc.hopper.shared_address(smem)
    mma = Wgmma(n, k, dtype_a, dtype_b=dtype_b)
    acc = mma.zeros()
    mma(acc, SmemTile("a", base, a_layout), SmemTile("b", base + a_layout.bytes, b_layout))
    acc.wait()
    for i in skc.static_range(n // 2):
        out[tid * (n // 2) + i] = acc.fragment[i]


def block_image(a_codes: np.ndarray, b_codes: np.ndarray) -> np.ndarray:
    """A (64 x k) then B (n x k) codes as OperandLayout lays K-major fp8 tiles: 128-byte chunks of k, 128-byte
    swizzle (k a multiple of 128)."""
    a_bytes, _ = k_major_image(a_codes, 128, 0, 0)
    b_bytes, _ = k_major_image(b_codes, 128, a_bytes.size, 0)
    image = np.zeros(a_bytes.size + b_bytes.size, np.uint8)
    image[swizzled(np.arange(a_bytes.size), 128)] = a_bytes
    image[swizzled(a_bytes.size + np.arange(b_bytes.size), 128)] = b_bytes
    return image.view(np.uint32)
