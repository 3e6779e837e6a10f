"""New kernels composed from the blocks as a user reading docs/blocks.md would (a helper's search, fifty-third
session), each checked against numpy: a GEMM whose own epilogue scales rows and columns, adds a residual and sums
each output row's squares (through the accumulator's layout members); a batched GEMM of a K-major B per matrix whose
TmaStoreEpilogue adds each matrix's C; a grouped (MoE-style) GEMM of problems of different sizes in one launch, over
a scheduler of the user's; a GEMM over rows of A gathered by an index vector (a VectorLoader whose `element` reads
them); a batched GEMM through a VectorLoader and a DirectStoreEpilogue. The batched ones found three gaps, now mended:
a batched store added matrix 0's C to every matrix (wrong answers, silently), a VectorLoader took no batch's origin
(an error about combining an i32 with a tuple, inside the loader) and a DirectStoreEpilogue no batch."""
import numpy as np
import pytest

import skc
from skc.blocks import (BatchedOperandLayout, DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline,
                        OperandLayout, Tile, TilePayload, TileScheduler, TmaLoader, TmaStoreEpilogue, VectorLoader,
                        WarpRoles, Wgmma)

T = 64
rng = np.random.default_rng(53)


def small(*shape):
    return rng.integers(-2, 3, shape).astype(np.float32)


@skc.func
def mainloop(consumer, mma, acc, k_tiles):
    acc.zero()
    for k in range(k_tiles):
        with consumer.acquire() as stage:
            mma(acc, stage.a, stage.b)


@skc.kernel
def scaled_gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], row_scale: skc.Ptr[skc.f32],
                col_scale: skc.Ptr[skc.f32], residual: skc.Ptr[skc.f32], squares: skc.Ptr[skc.f32],
                M: skc.i32, N: skc.i32, K: skc.i32):
    """out = row_scale[:, None] · (A Bᵀ) · col_scale[None, :] + residual; squares[r] = Σ out[r, :]²."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, T, T)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    mainloop(consumer, mma, acc, k_tiles)
                    acc.wait()
                    for row, indices in acc.rows():
                        r = tile.row0 + acc.corner[0] + row
                        total = 0.0
                        for i in indices:
                            c = tile.col0 + acc.position(i)[1]
                            inside = (r < M) & (c < N)
                            at = skc.i64(r) * N + c
                            v = acc.fragment[i] * skc.load(row_scale + r, mask=r < M) * skc.load(col_scale + c,
                                                                                                  mask=c < N)
                            v = v + skc.load(residual + at, mask=inside)
                            skc.store(out + at, v, mask=inside)
                            total += skc.where(inside, v * v, 0.0)
                        for lane in acc.row_lanes:   # the row's other threads
                            total += skc.shfl_xor(total, lane)
                        if (skc.thread_index() % 4 == 0) & (r < M):   # (one of the row's four threads)
                            skc.atomic_add(squares + r, total)


def test_an_epilogue_of_row_and_column_scales_a_residual_and_row_sums_of_squares():
    M, N, K = 100, 136, 96   # edges in both dimensions; three column tiles a row
    A, B, rows, columns, residual = small(M, K), small(N, K), small(M), small(N), small(M, N) * 2
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    out, squares = skc.to_device(np.full((M, N), np.nan, np.float32)), skc.to_device(np.zeros(M, np.float32))
    scaled_gemm[2, 256](*maps, out, skc.to_device(rows), skc.to_device(columns), skc.to_device(residual), squares,
                        M, N, K)
    want = rows[:, None] * (A @ B.T) * columns[None, :] + residual
    np.testing.assert_array_equal(out.numpy(), want)
    np.testing.assert_array_equal(squares.numpy(), (want ** 2).sum(1))


@skc.kernel
def batched_tma(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, c: skc.Ptr[skc.f32], batches: skc.i32,
                M: skc.i32, N: skc.i32, K: skc.i32, c_batch_stride: skc.constexpr):
    """out[i] = A[i] · B[i]ᵀ + C (each matrix's, or one for all, as c_batch_stride says: "MN", 0 or None)."""
    payload = TilePayload(a=BatchedOperandLayout(T, T), b=BatchedOperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, T, T, batches=batches)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=(tile.batch, tile.row0), b=(tile.batch, tile.col0))
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            stride = M * N if c_batch_stride == "MN" else c_batch_stride
            args = EpilogueArgs(EpilogueSpec(beta=True), M, N, beta=1.0, c=c, c_batch_stride=stride)
            with TmaStoreEpilogue(out, skc.f32, args, columns=32) as epilogue, pipe.consumer(mma) as consumer:
                for tile in tiles:
                    mainloop(consumer, mma, acc, k_tiles)
                    epilogue(acc, tile.row0, tile.col0, tile.batch)   # HERE


@pytest.mark.parametrize("c_batch_stride", ["MN", 0])
def test_a_batched_store_adds_each_matrixs_c(c_batch_stride):
    """Read as one M x N C, every matrix added matrix 0's (wrong answers, silently, before)."""
    batches, M, N, K = 3, 80, 72, 128
    A, B = small(batches, M, K), small(batches, N, K)
    C = small(batches, M, N) * 2 if c_batch_stride else small(M, N) * 2
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(1, T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(1, T, T)))
    out = skc.to_device(np.full((batches, M, N), np.nan, np.float32))
    batched_tma[2, 256](*maps, skc.TensorMap(out, box=(1, T, 32)), skc.to_device(C), batches, M, N, K,
                        c_batch_stride)
    np.testing.assert_array_equal(out.numpy(), np.einsum("bmk,bnk->bmn", A, B) + C)


def test_a_batched_store_of_c_whose_arguments_do_not_say_where_each_matrixs_c_lies():
    M = N = K = 64
    A = skc.to_device(small(2, M, K), dtype=skc.bf16)
    maps = (skc.TensorMap(A, box=(1, T, T)), skc.TensorMap(A, box=(1, T, T)))
    out = skc.to_device(np.zeros((2, M, N), np.float32))
    with pytest.raises(skc.CompileError, match="its EpilogueArgs do not say where each matrix's C lies") as info:
        batched_tma[1, 256](*maps, skc.TensorMap(out, box=(1, T, 32)), skc.to_device(np.zeros((M, N), np.float32)),
                            2, M, N, K, None)
    assert "# HERE" in str(info.value) and "c_batch_stride=M * N" in str(info.value)


class GroupedTiles:
    """The output tiles of `experts` problems in one launch (a grouped, MoE-style GEMM): rows offsets[e] ..
    offsets[e + 1] - 1 of A and of the output times expert e's B. A unit's `batch` is its expert and `end` the
    expert's last row + 1."""

    def __init__(self, offsets, experts: int, N, tile_m: int, tile_n: int):
        self.offsets, self.experts, self.tile_m, self.tile_n = offsets, experts, tile_m, tile_n
        self.tiles_n = skc.cdiv(N, tile_n)

    def tiles_of(self, expert):
        return skc.cdiv(self.offsets[expert + 1] - self.offsets[expert], self.tile_m) * self.tiles_n

    def __skc_range__(self):
        units = 0
        for expert in skc.static_range(self.experts):
            units += self.tiles_of(expert)
        return skc.block_id(0), units, skc.grid_dim(0)

    def __skc_item__(self, index):
        mine, first, start = 0, 0, 0
        for expert in skc.static_range(self.experts):
            count = self.tiles_of(expert)
            if (index >= start) & (index < start + count):
                mine, first = expert, start
            start += count
        within = index - first
        tile = Tile(self.offsets[mine] + (within // self.tiles_n) * self.tile_m, (within % self.tiles_n) * self.tile_n,
                    batch=mine)
        tile.end = self.offsets[mine + 1]
        return tile


@skc.kernel
def grouped(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], offsets: skc.Ptr[skc.i32], N: skc.i32,
            K: skc.i32, experts: skc.constexpr):
    payload = TilePayload(a=OperandLayout(T, T), b=BatchedOperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = GroupedTiles(offsets, experts, N, T, T)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=(tile.batch, tile.col0))
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    mainloop(consumer, mma, acc, k_tiles)
                    # rows past the expert's are the next expert's: the epilogue's M masks them
                    epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), tile.end, N))
                    epilogue(acc, tile.row0, tile.col0)


def test_a_grouped_gemm_of_problems_of_different_sizes_in_one_launch():
    counts = [70, 0, 5, 130]   # an expert of no tokens, one of a part-tile, tiles straddling experts
    experts, N, K = len(counts), 72, 128
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    A, B = small(int(offsets[-1]), K), small(experts, N, K)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(1, T, T)))
    out = skc.to_device(np.full((int(offsets[-1]), N), np.nan, np.float32))
    grouped[3, 256](*maps, out, skc.to_device(offsets), N, K, experts)
    want = np.concatenate([A[offsets[e]:offsets[e + 1]] @ B[e].T for e in range(experts)])
    np.testing.assert_array_equal(out.numpy(), want)


class GatheredRows(VectorLoader):
    """A VectorLoader whose A tile's rows are A[index[row]] for rows 0 .. rows - 1."""

    def __init__(self, index, rows, **operands):
        super().__init__(**operands)
        self.index, self.rows = index, rows

    def element(self, name, row, col):
        if name != "a":
            return super().element(name, row, col)
        pointer, _, cols = self.operands[name]
        source = skc.load(self.index + row, mask=row < self.rows, other=0)
        return pointer + (skc.i64(source) * cols + col), (row < self.rows) & (col < cols)


@skc.kernel
def vector_loaded(a: skc.Ptr[skc.bf16], b: skc.Ptr[skc.bf16], index: skc.Ptr[skc.i32], out: skc.Ptr[skc.f32],
                  batches: skc.i32, rows: skc.i32, M: skc.i32, N: skc.i32, K: skc.i32, mode: skc.constexpr):
    """mode "gather": out = A[index] · Bᵀ (rows of them); "batched": out[i] = A[i] · B[i]ᵀ; "unbatched_origin": a
    batch's tiles given a row alone."""
    layout = OperandLayout if mode == "gather" else BatchedOperandLayout
    payload = TilePayload(a=layout(T, T), b=layout(T, T))
    load = (GatheredRows(index, rows, a=(a, M, K), b=(b, N, K)) if mode == "gather" else
            VectorLoader(a=(a, M, K), b=(b, N, K)))
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(rows, N, T, T, batches=batches)
        if roles.is_producer():
            with pipe.producer() as producer:
                for tile in tiles:
                    for k in range(k_tiles):
                        with producer.acquire() as stage:
                            if mode == "batched":
                                load(stage, k, a=(tile.batch, tile.row0), b=(tile.batch, tile.col0))
                            else:
                                load(stage, k, a=tile.row0, b=tile.col0)   # HERE
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), rows, N))
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    mainloop(consumer, mma, acc, k_tiles)
                    if mode == "batched":
                        epilogue(acc, tile.row0, tile.col0, tile.batch)
                    else:
                        epilogue(acc, tile.row0, tile.col0)


def test_a_gemm_over_rows_of_a_gathered_by_an_index():
    M, N, K, rows = 50, 72, 96, 90   # rows repeat; more gathered than A has
    A, B = small(M, K), small(N, K)
    index = rng.integers(0, M, rows).astype(np.int32)
    out = skc.to_device(np.full((rows, N), np.nan, np.float32))
    vector_loaded[2, 256](skc.to_device(A, dtype=skc.bf16), skc.to_device(B, dtype=skc.bf16), skc.to_device(index),
                          out, 1, rows, M, N, K, "gather")
    np.testing.assert_array_equal(out.numpy(), A[index] @ B.T)


def test_a_batched_gemm_through_the_vector_loader_and_direct_stores():
    """The loader took no (batch, row0) origin ('cannot combine a run-time i32 with tuple', inside it) and the
    epilogue no batch ('too many positional arguments')."""
    batches, M, N, K = 3, 70, 72, 64
    A, B = small(batches, M, K), small(batches, N, K)
    out = skc.to_device(np.full((batches, M, N), np.nan, np.float32))
    args = (skc.to_device(A, dtype=skc.bf16), skc.to_device(B, dtype=skc.bf16), skc.to_device(np.zeros(1, np.int32)),
            out, batches, M, M, N, K)
    vector_loaded[2, 256](*args, "batched")
    np.testing.assert_array_equal(out.numpy(), np.einsum("bmk,bnk->bmn", A, B))
    with pytest.raises(skc.CompileError, match=r"tile 'a' is laid out as BatchedOperandLayout, whose origin is "
                                               r"\(matrix, row0\)") as info:
        vector_loaded[2, 256](*args, "unbatched_origin")
    assert "# HERE" in str(info.value) and "a=(tile.batch, row0)" in str(info.value)
