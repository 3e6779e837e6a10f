"""Consumer warpgroups that take the pipeline's stages in turn (`consumer.skip`) without WarpgroupTurns (a review,
this session): an mbarrier wait knows a phase by its parity only, so a consumer that skipped a lap ahead of the
producer passed on the earlier lap's phase and read a stage before it was filled, or another consumer's tile: a silent
wrong answer on a GPU, a deadlock report in the interpreter only sometimes. It compiled. Now a consumer handle that
skips, in a kernel of more than one consumer warpgroup, must wait for its stages inside WarpgroupTurns: a compile
error at the acquire (the skip came first) or at the skip (a wait outside the turns came first). The same kernel with
turns (the GEMM's pingpong) compiles and runs exactly."""
import numpy as np
import pytest

import skc
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout,
                        TilePayload, TileScheduler, TmaLoader, WarpgroupTurns, WarpRoles, Wgmma)
from helpers import line_of

T = 64


@skc.kernel
def row_blocks_in_turn(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32,
                       K: skc.i32, mode: skc.constexpr):
    """Two consumer warpgroups taking 64 x 64 tiles in turn through a pipeline of 2 stages released by one consumer:
    "turns" (WarpgroupTurns around each tile's acquires), "no_turns" (the same without), "skip_last" (no first skip:
    the wait outside turns comes before any skip)."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(2)
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
            warpgroup = roles.consumer_index()
            turns = WarpgroupTurns(2, warpgroup, enabled=mode == "turns")
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
            with pipe.consumer(mma) as consumer:
                if mode != "skip_last":
                    consumer.skip(warpgroup * k_tiles)
                for tile in tiles.every(2, warpgroup):
                    acc.zero()
                    with turns:
                        for k in range(k_tiles):
                            with consumer.acquire() as stage:   # HERE wait
                                mma(acc, stage.a, stage.b)
                    consumer.skip(k_tiles)   # HERE skip
                    epilogue(acc, tile.row0, tile.col0)
                turns.close(tiles.count())


def operands(M, N, K):
    rng = np.random.default_rng(1)
    A, B = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    return A, B, maps


@pytest.mark.parametrize("mode, marker", [("no_turns", "# HERE wait"), ("skip_last", "# HERE skip")])
def test_consumers_that_skip_without_turns_are_refused(mode, marker):
    A, B, maps = operands(128, 128, 256)
    out = np.zeros((128, 128), np.float32)
    with pytest.raises(skc.CompileError, match=r"the kernel's 2 consumer warpgroups take the pipeline's stages in "
                                               r"turn \(consumer.skip\)") as info:
        row_blocks_in_turn[1, 384](*maps, out, 128, 128, 256, mode)
    text = str(info.value)
    assert f":{line_of(row_blocks_in_turn, marker)}:" in text.splitlines()[0], text
    assert "WarpgroupTurns(2, warpgroup)" in text   # the hint


def test_consumers_that_skip_inside_turns_run_exactly():
    """Four k-steps a tile through two stages: the second consumer's first stage is two laps ahead of the producer
    (where its wait without turns passes on the first lap's phase)."""
    M, N, K = 128, 128, 256
    A, B, maps = operands(M, N, K)
    out = np.full((M, N), np.nan, np.float32)
    row_blocks_in_turn[1, 384](*maps, out, M, N, K, "turns")
    np.testing.assert_array_equal(out, A @ B.T)
