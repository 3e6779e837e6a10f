"""Blocks composed as a user reading docs/blocks.md would (a helper's search, fiftieth session), each with one
argument it could not honour: a Wgmma given another op's accumulator (wrong columns), a split-K scheduler of no
splits (K divided by zero), a TmaLoader filling a pipeline of another payload's layouts (K-major boxes read as
MN-major), one payload made into two pipelines (their stages at the same addresses). Each gave wrong answers
silently in the interpreter; each is now a compile error at the user's line, and the right composition runs exactly."""
import numpy as np
import pytest

import skc
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout,
                        TilePayload, TileScheduler, TmaLoader, WarpRoles, Wgmma)
from skc.blocks.scheduler import SplitKScheduler

T = 64


@skc.kernel
def gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
         mode: skc.constexpr):
    """64 x 64 tiles over a persistent grid, with the misuse `mode` names ("": none)."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    stages = TilePayload(a=OperandLayout(T, T, 2, mode != "mn_major"), b=OperandLayout(T, T))   # HERE mn_major
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(stages, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = (SplitKScheduler(M, N, T, T, k_tiles, 0) if mode == "splits" else   # HERE splits
                 TileScheduler(M, N, T, T))
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)   # HERE loader
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = Wgmma(32, T, skc.bf16).zeros() if mode == "accumulator" else mma.zeros()
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with consumer.acquire() as s:
                            mma(acc, s.a, s.b)   # HERE accumulator
                    DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))(acc, tile.row0, tile.col0)


def operands(M, N, K):
    rng = np.random.default_rng(0)
    A, B = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    return A, B, maps, skc.to_device(np.full((M, N), np.nan, np.float32))


@pytest.mark.parametrize("mode, where, message", [
    # an m64n32 accumulator: the wgmma computed B's first 32 columns, the epilogue stored them alone
    ("accumulator", "accumulator", "the accumulator holds 32 columns; this Wgmma computes 64"),
    # every tile's k-steps shared out in shares of cdiv(k_tiles, 0)
    ("splits", "splits", "a split-K scheduler's splits is a compile-time count of 1 or more, found 0"),
    # K-major boxes in a stage the Wgmma reads MN-major
    ("mn_major", "loader", r"this TmaLoader was made for payload tile 'a' laid out as OperandLayout\(.*k_major=True.*"
                           r"the stage's pipeline holds it as OperandLayout\(.*k_major=False"),
])
def test_a_composition_with_an_argument_its_block_cannot_honour(mode, where, message):
    M, N, K = 128, 128, 128
    A, B, maps, out = operands(M, N, K)
    with pytest.raises(skc.CompileError, match=message) as info:
        gemm[2, 256](*maps, out, M, N, K, mode)
    assert "test_block_compositions.py:" in str(info.value).splitlines()[0]
    assert f"# HERE {where}" in str(info.value)
    gemm[2, 256](*maps, out, M, N, K, "")
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


@skc.kernel
def two_pipelines(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], K: skc.i32, shared: skc.constexpr):
    """A's tiles and B's in two pipelines, their payloads one object (`shared`) or two."""
    payload_a = TilePayload(a=OperandLayout(T, T))
    payload_b = payload_a if shared else TilePayload(a=OperandLayout(T, T))
    load_a, load_b = TmaLoader(payload_a, a=a), TmaLoader(payload_b, a=b)
    with InputTilePipeline(payload_a, 2, load_a) as pipe_a, InputTilePipeline(payload_b, 2, load_b) as pipe_b:  # HERE
        roles = WarpRoles(1)
        if roles.is_producer():
            if load_a.is_issuing():
                with pipe_a.producer() as producer_a, pipe_b.producer() as producer_b:
                    for k in range(skc.cdiv(K, T)):
                        with producer_a.acquire() as stage:
                            load_a(stage, k, a=0)
                        with producer_b.acquire() as stage:
                            load_b(stage, k, a=0)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe_a.consumer() as consumer_a, pipe_b.consumer() as consumer_b:
                for k in range(skc.cdiv(K, T)):
                    with consumer_a.acquire() as stage_a:
                        with consumer_b.acquire() as stage_b:
                            mma(acc, stage_a.a, stage_b.a)
                            mma.retire(0)   # (the stages are released as their `with`s end)
            DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), T, T))(acc, 0, 0)


def test_one_payload_made_into_two_pipelines():
    """Each pipeline allocates its stages by setting its payload's base address: a payload given to two had both
    pipelines' tiles at the second one's stages, A's copies and B's overwriting each other (4,056 of 4,096 outputs
    wrong in the interpreter)."""
    K = 128
    rng = np.random.default_rng(0)
    A, B = (rng.integers(-2, 3, (T, K)).astype(np.float32) for _ in range(2))
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    out = skc.to_device(np.full((T, T), np.nan, np.float32))
    with pytest.raises(skc.CompileError, match="this TilePayload already holds another pipeline's stages") as info:
        two_pipelines[1, 256](*maps, out, K, True)
    assert "# HERE" in str(info.value) and "make a TilePayload for each pipeline" in str(info.value)
    two_pipelines[1, 256](*maps, out, K, False)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)
