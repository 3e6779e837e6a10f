"""More kernels composed from the blocks as a user reading docs/blocks.md would (a helper's search, fifty-fourth
session), each checked against numpy in the interpreter: split-K by a scheduler of the user's whose units are
(tile, range of k-steps), adding each partial into an f32 output with atomics; a GEMM whose epilogue writes two
outputs, the bf16 product (TmaStoreEpilogue) and its fp8 quantization with each row's amax; attention with a mask of
the user's (a sliding window, and a key length per batch) through OnlineSoftmax's `mask`; a grouped convolution
through a loader of the user's that reads each group's channels."""
import numpy as np
import pytest

import skc
from skc.blocks import (EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout, Tile, TilePayload,
                        TmaLoader, TmaStoreEpilogue, WarpRoles, Wgmma)
from skc.blocks.attention_kernel import HeadLayout

T = 64
rng = np.random.default_rng(54)


def small(*shape):
    return rng.integers(-2, 3, shape).astype(np.float32)


# -- 1. split-K by a scheduler of the user's ------------------------------------------------------------------------
class KRanges:
    """Work units (tile, share of K): each output tile `splits` times, share s over k-steps
    [s · k_tiles // splits, (s + 1) · k_tiles // splits) (shares differ by one k-step at most where the split does not
    divide the k-steps; a share may be empty)."""

    def __init__(self, M, N, k_tiles, splits: int):
        self.tiles_n = skc.cdiv(N, T)
        self.tiles = skc.cdiv(M, T) * self.tiles_n
        self.k_tiles, self.splits = k_tiles, splits

    def __skc_range__(self):
        return skc.block_id(0), self.tiles * self.splits, skc.grid_dim(0)

    def __skc_item__(self, index):
        tile, share = index % self.tiles, index // self.tiles
        return Tile(tile // self.tiles_n * T, tile % self.tiles_n * T, share * self.k_tiles // self.splits,
                    (share + 1) * self.k_tiles // self.splits, share=share)


@skc.kernel
def split_k(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
            splits: skc.constexpr):
    """out += A Bᵀ, each tile's k-steps cut into `splits` ranges whose partial sums are added with atomics."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        units = KRanges(M, N, skc.cdiv(K, T), splits)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for unit in units:
                        first, end = unit.k_steps(units.k_tiles)
                        for k in range(first, end):
                            with producer.acquire() as stage:
                                load(stage, k, a=unit.row0, b=unit.col0)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for unit in units:
                    acc.zero()
                    first, end = unit.k_steps(units.k_tiles)
                    for k in range(first, end):
                        with consumer.acquire() as stage:
                            mma(acc, stage.a, stage.b)
                    acc.wait()
                    for value, row, column in acc.values():
                        r, c = unit.row0 + acc.corner[0] + row, unit.col0 + acc.corner[1] + column
                        skc.atomic_add(out + (skc.i64(r) * N + c), value, mask=(r < M) & (c < N))


@pytest.mark.parametrize("K, splits", [(320, 2), (200, 3), (192, 4)])
def test_split_k_by_a_users_scheduler_adds_its_partials_with_atomics(K, splits):
    """5 k-steps in shares of 2 and 3; a K tail (4 k-steps, the last part-full) in 3; 3 k-steps in 4 (one empty)."""
    M, N = 100, 72
    A, B, C = small(M, K), small(N, K), small(M, N)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    out = skc.to_device(C)
    split_k[3, 256](*maps, out, M, N, K, splits)
    np.testing.assert_array_equal(out.numpy(), C + A @ B.T)


# -- 2. an epilogue of two outputs: the bf16 product and its fp8 quantization by row ---------------------------------
E4M3_MAX = 448.0
WIDE = 128   # the tile covers each row's N


@skc.kernel
def quantized_gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, quantized: skc.Ptr[skc.f8e4m3],
                   row_scales: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32):
    """out = A Bᵀ in bf16 (a TMA store); quantized = fp8 of each row times 448 / its amax, row_scales = amax / 448
    (a row of zeros: 0 and scale 1). The tile is as wide as N, so a row's amax is its threads'."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(WIDE, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = skc.blocks.TileScheduler(M, N, T, WIDE)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
        else:
            mma = Wgmma(WIDE, T, skc.bf16)
            acc = mma.zeros()
            store = TmaStoreEpilogue(out, skc.bf16, EpilogueArgs(EpilogueSpec(), M, N))
            with store, pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with consumer.acquire() as stage:
                            mma(acc, stage.a, stage.b)
                    store(acc, tile.row0, tile.col0)
                    for row, indices in acc.rows():
                        r = tile.row0 + acc.corner[0] + row
                        amax = 0.0
                        for i in indices:   # (columns past N hold zeros: TMA filled B's rows past N with them)
                            amax = skc.maximum(amax, abs(acc.fragment[i]))
                        for lane in acc.row_lanes:
                            amax = skc.maximum(amax, skc.shfl_xor(amax, lane))
                        factor = skc.where(amax > 0.0, E4M3_MAX / amax, 1.0)
                        for i in indices:
                            c = tile.col0 + acc.position(i)[1]
                            skc.store(quantized + (skc.i64(r) * N + c), acc.fragment[i] * factor, mask=(r < M) & (c < N))
                        if (skc.thread_index() % 4 == 0) & (r < M):
                            skc.store(row_scales + r, 1.0 / factor)


def test_an_epilogue_that_stores_the_product_and_its_fp8_quantization_by_row():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    M, N, K = 100, 104, 96   # N: a tail inside the one 128-wide tile of a row
    A, B = small(M, K), small(N, K)
    A[7] = 0   # a row of zeros
    A[9] *= 50   # a row past bf16's exact integers: out is rounded, the quantization is of the f32 sum
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(WIDE, T)))
    out = skc.to_device(np.full((M, N), np.nan, np.float32), dtype=skc.bf16)
    e4m3 = ml_dtypes.float8_e4m3fn
    quantized = skc.to_device(np.full((M, N), np.nan, np.float32).astype(e4m3).view(np.uint8), dtype=skc.f8e4m3)
    scales = skc.to_device(np.full(M, np.nan, np.float32))
    quantized_gemm[2, 256](*maps, skc.TensorMap(out, box=(T, 64)), quantized, scales, M, N, K)
    product = A @ B.T
    amax = np.abs(product).max(1, keepdims=True)
    factor = np.where(amax > 0, np.float32(E4M3_MAX) / np.where(amax > 0, amax, 1), 1).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(out.numpy(), np.float32),
                                  product.astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(quantized.numpy().view(e4m3).astype(np.float32),
                                  (product * factor).astype(e4m3).astype(np.float32))
    np.testing.assert_array_equal(scales.numpy(), (1 / factor)[:, 0])


# -- 3. attention with a mask of the user's --------------------------------------------------------------------------
D = 64   # head_dim
KEYS = 64   # keys a block


@skc.func
def visible(query, key, length, window, mode):
    """Whether query `query` sees key `key`: keys before the sequence's length ("padding"), or keys less than
    `window` positions away ("window")."""
    if mode == "padding":
        return key < length
    return (key < length) & (key > query - window) & (key < query + window)


@skc.kernel
def masked_attention(q: skc.TensorMap, k: skc.TensorMap, v: skc.TensorMap, out: skc.Ptr[skc.f32],
                     lengths: skc.Ptr[skc.i32], Sq: skc.i32, Skv: skc.i32, heads: skc.i32, scale: skc.f32,
                     window: skc.i32, mode: skc.constexpr):
    """out = softmax(scale · Q Kᵀ, masked) V for one block of 64 query rows of one head a block (q, k, v: rank-4
    (batch, heads, sequence, D) maps; out (batch · heads) x Sq x D); a key padding mask (lengths[batch] keys of the
    sequence's) or a sliding window of `window` keys either side. The key blocks wholly outside the mask are not
    visited."""
    q_payload = TilePayload(q=HeadLayout(T, D, 2, True))
    k_payload = TilePayload(key=HeadLayout(KEYS, D, 2, True))
    v_payload = TilePayload(value=HeadLayout(D, KEYS, 2, False))
    q_load, k_load, v_load = TmaLoader(q_payload, q=q), TmaLoader(k_payload, key=k), TmaLoader(v_payload, value=v)
    query_blocks = skc.cdiv(Sq, T)
    batch_head = skc.block_id(0) // query_blocks
    row0 = skc.block_id(0) % query_blocks * T
    batch, head = batch_head // heads, batch_head % heads
    length = skc.load(lengths + batch) if mode == "padding" else Skv
    first, end = 0, skc.cdiv(length, KEYS)
    if mode == "window":
        first = skc.maximum(row0 - window + 1, 0) // KEYS
        end = skc.minimum(end, skc.cdiv(row0 + T + window - 1, KEYS))
    with InputTilePipeline(q_payload, 1, q_load) as q_pipe, InputTilePipeline(k_payload, 2, k_load) as k_pipe, \
            InputTilePipeline(v_payload, 2, v_load) as v_pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            if q_load.is_issuing() & k_load.is_issuing() & v_load.is_issuing():
                with q_pipe.producer() as q_producer, k_pipe.producer() as k_producer, \
                        v_pipe.producer() as v_producer:
                    with q_producer.acquire() as stage:
                        q_load(stage, 0, q=(batch, head, row0))
                    for j in range(first, end):
                        with k_producer.acquire() as stage:
                            k_load(stage, 0, key=(batch, head, j * KEYS))
                        with v_producer.acquire() as stage:
                            v_load(stage, 0, value=(batch, head, j * KEYS))
        else:
            qk, pv = Wgmma(KEYS, D, skc.bf16), skc.blocks.WgmmaRegA(D, KEYS, skc.bf16)
            softmax = skc.blocks.OnlineSoftmax(scale)
            scores, acc = qk.zeros(), pv.zeros()
            with q_pipe.consumer() as q_consumer, k_pipe.consumer() as k_consumer, v_pipe.consumer() as v_consumer:
                with q_consumer.acquire() as q_stage:
                    for j in range(first, end):
                        with k_consumer.acquire() as stage:
                            scores.zero()
                            qk(scores, q_stage.q, stage.key)          # S = Q K_jᵀ
                            qk.retire(0)
                        factors = softmax.update(scores, mask=lambda row, column: visible(
                            row0 + row, j * KEYS + column, length, window, mode))
                        softmax.rescale(acc, factors)
                        with v_consumer.acquire() as stage:
                            pv(acc, pv.operand(scores), stage.value)  # O += P V_j
                            acc.wait()
            softmax.finish(acc)
            skc.blocks.DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), Sq, D))(acc, row0, 0, batch_head)


def bf16_round(values):
    from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits
    return bf16_bits_to_float32(float32_to_bf16_bits(values.astype(np.float32)))


@pytest.mark.parametrize("mode", ["padding", "window"])
def test_attention_with_a_mask_of_the_users(mode):
    batches, heads, Sq, Skv, window = 2, 2, 80, 150, 37
    lengths = np.array([37, 150] if mode == "padding" else [Skv, Skv], np.int32)
    q, k, v = (bf16_round(rng.standard_normal((batches, heads, S, D), dtype=np.float32)) for S in (Sq, Skv, Skv))
    if mode == "padding":
        v[0, :, 37:] = 1000.0   # (a key past a sequence's length seen would show)
    maps = [skc.TensorMap(skc.to_device(x, dtype=skc.bf16), box=box)
            for x, box in ((q, (1, 1, T, D)), (k, (1, 1, KEYS, D)), (v, (1, 1, KEYS, D)))]
    out = skc.to_device(np.full((batches * heads, Sq, D), np.nan, np.float32))
    scale = 1 / np.sqrt(D)
    masked_attention[skc.cdiv(Sq, T) * batches * heads, 256](*maps, out, skc.to_device(lengths), Sq, Skv, heads,
                                                             scale, window, mode)
    scores = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k.astype(np.float64)) * scale
    query, key = np.arange(Sq)[:, None], np.arange(Skv)[None, :]
    seen = key < lengths[:, None, None, None]
    if mode == "window":
        seen = seen & (np.abs(query - key) < window)
    scores = np.where(seen, scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)
    got = out.numpy().reshape(batches, heads, Sq, D)
    assert np.abs(got - want).max() < 2e-2


# -- 4. a grouped convolution: the GEMM with a loader of each group's channels ----------------------------------------
@skc.kernel
def grouped_conv(x, w, y: skc.Ptr[skc.f32], conv: skc.constexpr, tile_n: skc.constexpr):
    """y[N·P·Q, K] = conv2d(x, w, groups) (x NHWC, w [K, R, S, C/groups]): a GEMM a group (a scheduler over
    `groups` matrices), group g's columns g·K/groups ..; the loader (TMA im2col, or its vector twin) reads each
    group's channels. tile_n divides K/groups, so no tile straddles two groups' columns."""
    M, N, K = conv.gemm_shape()
    payload = TilePayload(a=OperandLayout(T, conv.tile_k), b=OperandLayout(tile_n, conv.tile_k))
    load = conv.build(payload, x, w)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = K // conv.tile_k
        tiles = skc.blocks.TileScheduler(M, N, T, tile_n, batches=conv.groups)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=(tile.batch, tile.row0), b=(tile.batch, tile.col0))
        else:
            mma = Wgmma(tile_n, conv.tile_k, skc.bf16)
            acc = mma.zeros()
            epilogue = skc.blocks.DirectStoreEpilogue(y, skc.f32, EpilogueArgs(EpilogueSpec(), M, conv.K))
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with consumer.acquire() as stage:
                            mma(acc, stage.a, stage.b)
                    epilogue(acc, tile.row0, tile.batch * N + tile.col0)


def grouped_reference(x, w, groups, stride, padding):
    """Direct NHWC x [K, R, S, C/groups] grouped convolution in float64."""
    N, H, W, C = x.shape
    K, R, S, Cg = w.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    P, Q = (H + 2 * padding - R) // stride + 1, (W + 2 * padding - S) // stride + 1
    Kg = K // groups
    return np.concatenate([sum(padded[:, r:r + stride * P:stride, s:s + stride * Q:stride, g * Cg:(g + 1) * Cg]
                               @ w[g * Kg:(g + 1) * Kg, r, s, :].astype(np.float64).T
                               for r in range(3) for s in range(3)) for g in range(groups)], -1)


@pytest.mark.parametrize("vector", [False, True])
@pytest.mark.parametrize("groups, channels, filters, stride", [(3, 48, 48, 1), (2, 32, 32, 2)])
def test_a_grouped_convolution_through_a_loader_of_each_groups_channels(vector, groups, channels, filters, stride):
    """Groups of 16 channels (a 64-channel box reads the next group's too: the filters' zeros past their 16 cancel
    them) and 16 filters; stride 2 with padding; pixels 7 x 6 (tails)."""
    N, H, W, R = 2, 7, 6, 3
    x, w = small(N, H, W, channels), small(filters, R, R, channels // groups)
    conv = skc.blocks.ConvShape(N=N, H=H, W=W, C=channels, K=filters, R=R, S=R, stride=(stride, stride),
                                padding=(1, 1), groups=groups, vector=vector)
    x_device, w_device = skc.to_device(x, dtype=skc.bf16), skc.to_device(w, dtype=skc.bf16)
    if vector:
        operands = (x_device, w_device)
    else:
        lower, upper = conv.corners()
        operands = (skc.Im2colTensorMap(x_device, channels=64, pixels=T, lower=lower, upper=upper,
                                        strides=conv.stride),
                    skc.TensorMap(w_device.reshape(filters, R * R, channels // groups), box=(16, 1, 64)))
    y = skc.to_device(np.full((N * conv.P * conv.Q, filters), np.nan, np.float32))
    grouped_conv[2, 256](*operands, y, conv, 16)
    np.testing.assert_array_equal(y.numpy().reshape(N, conv.P, conv.Q, filters),
                                  grouped_reference(x, w, groups, stride, 1))


def test_a_grouped_convolutions_shape_and_origins_are_checked():
    with pytest.raises(ValueError, match=r"groups must be a positive int dividing C \(48\) and K \(32\), found 3"):
        skc.blocks.ConvShape(N=1, H=4, W=4, C=48, K=32, R=3, S=3, groups=3)
    conv = skc.blocks.ConvShape(N=1, H=4, W=4, C=32, K=32, R=3, S=3, groups=2, vector=True)
    assert conv.gemm_shape() == (4, 16, 9 * 64) and (conv.group_channels, conv.group_filters) == (16, 16)
    x, w = skc.to_device(small(1, 4, 4, 32), dtype=skc.bf16), skc.to_device(small(32, 3, 3, 16), dtype=skc.bf16)
    y = skc.to_device(np.zeros((16, 32), np.float32))
    with pytest.raises(skc.CompileError, match=r"convolution has 2 group\(s\), so its origins are \(group, row0\); "
                                               r"found a=") as info:
        ungrouped_origins[1, 256](x, w, y, conv)
    assert "# HERE" in str(info.value)


@skc.kernel
def ungrouped_origins(x, w, y: skc.Ptr[skc.f32], conv: skc.constexpr):
    payload = TilePayload(a=OperandLayout(T, conv.tile_k), b=OperandLayout(16, conv.tile_k))
    load = conv.build(payload, x, w)
    with InputTilePipeline(payload, 1, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            with pipe.producer() as producer:
                with producer.acquire() as stage:
                    load(stage, 0, a=0, b=0)   # HERE
