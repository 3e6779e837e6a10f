"""Misusing the blocks, one misuse a case (a helper's search, fifty-fourth session): each is an skc error whose
message names the problem and the fix, placed at the user's line that misused the block (never a line inside
skc/blocks/, a foreign exception, a hang or a wrong answer). The composition is a small Hopper GEMM, as
tests/blocks/test_new_compositions.py writes them; `mode` names the misuse, and the line that makes it carries
`# M:<mode>`."""
import numpy as np
import pytest

import skc
from helpers import line_of
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, LdsLayout, LdsLoader,
                        LdsPipeline, Mfma, OperandLayout, TilePayload, TileScheduler, TmaLoader, VectorLoader, WarpRoles,
                        Wgmma, WgmmaRegA)

T = 64


@skc.kernel
def gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], c: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32,
         K: skc.i32, mode: skc.constexpr):
    """out = A Bᵀ (+ C), each output tile T x T, with the misuse `mode` names ("" for none)."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    stages = {"stages_0": 0, "stages_many": 40}.get(mode, 2)
    with InputTilePipeline(payload, stages, load, consumers=1) as pipe:   # M:stages_0 M:stages_many
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        if mode == "tile_m_unlike_payload":
            tiles = TileScheduler(M, N, 2 * T, T)
        else:
            tiles = TileScheduler(M, N, T, T)
        early = Wgmma(T, T, skc.bf16)   # (made before the roles part: either may use it)
        if roles.is_producer():
            if mode == "epilogue_in_producer":
                stored = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
                stored(early.zeros(), 0, 0)   # M:epilogue_in_producer
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)   # M:tile_m_unlike_payload
                                if mode == "mma_in_producer":
                                    mma = Wgmma(T, T, skc.bf16)   # M:mma_in_producer
        else:
            if mode == "n_odd":
                mma = Wgmma(100, T, skc.bf16)   # M:n_odd
            elif mode == "n_float":
                mma = Wgmma(64.0, T, skc.bf16)   # M:n_float
            elif mode == "k_depth":
                mma = Wgmma(T, 40, skc.bf16)   # M:k_depth
            elif mode == "dtype_f32":
                mma = Wgmma(T, T, skc.f32)   # M:dtype_f32
            elif mode == "warpgroup_negative":
                mma = Wgmma(T, T, skc.bf16, warpgroup=-1)   # M:warpgroup_negative
            elif mode == "reg_a_f32":
                mma = WgmmaRegA(T, T, skc.f32)   # M:reg_a_f32
            else:
                mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            spec, extra = EpilogueSpec(), {}
            if mode == "c_without_beta":
                extra = {"beta": 1.0, "c": c}
            if mode == "bias_without_spec":
                extra = {"bias": c}
            if mode == "beta_without_c":
                spec = EpilogueSpec(beta=True)
            args = EpilogueArgs(spec, M, N, **extra)   # M:c_without_beta M:bias_without_spec M:beta_without_c
            epilogue = DirectStoreEpilogue(out, skc.f32, args)
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with consumer.acquire() as stage:
                            mma(acc, stage.a, stage.b)
                            if mode == "load_in_consumer":
                                load(stage, k, a=tile.row0, b=tile.col0)   # M:load_in_consumer
                    epilogue(acc, tile.row0, tile.col0)


def operands(M=96, N=72, K=128):
    rng = np.random.default_rng(54)
    A, B = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    out = skc.to_device(np.full((M, N), np.nan, np.float32))
    return A, B, maps, out, skc.to_device(np.ones((M, N), np.float32))


def test_the_composition_runs_right():
    A, B, maps, out, c = operands()
    gemm[2, 256](*maps, out, c, *A.shape[:1], B.shape[0], A.shape[1], "")
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


MISUSES = [
    # (mode, error class, a phrase of its message)
    ("stages_0", skc.CompileError, "a pipeline needs at least one stage, found 0"),
    ("stages_many", skc.CompileError, "exceeds the 232448 bytes a block may use on sm_90a"),
    ("n_odd", skc.CompileError, "wgmma computes 8 to 256 columns in steps of 8, not 100"),
    ("n_float", skc.CompileError, "wgmma computes 8 to 256 columns in steps of 8, not 64.0"),
    ("k_depth", skc.CompileError, "the k-depth of a stage must be a multiple of 16 for bf16, found 40"),
    ("dtype_f32", skc.CompileError, "wgmma multiplies bf16, f16, f8e4m3, f8e5m2, not f32"),
    # rows before the A tile: its descriptors read whatever shared memory lay there
    ("warpgroup_negative", skc.CompileError, "warpgroup is which 64-row share of the A tile this TileOp multiplies, 0 "
                                             "or more, found -1"),
    ("reg_a_f32", skc.CompileError, "the register-A wgmma multiplies bf16 or f16, not f32"),
    # a TileOp in the producer's branch, a loader in the consumers' (it failed inside the loader, on its `issuer`), an
    # epilogue in the producer's
    ("mma_in_producer", skc.CompileError, "Wgmma (a TileOp) is the consumer's, used in code that runs as the producer"),
    ("load_in_consumer", skc.CompileError, "TmaLoader is the producer's, used in code that runs as the consumer"),
    ("epilogue_in_producer", skc.CompileError,
     "DirectStoreEpilogue is the consumer's, used in code that runs as the producer"),
    # an operand the spec leaves out was never applied (C not added: a wrong answer, silently)
    ("c_without_beta", skc.CompileError,
     "these arguments give beta, which the epilogue's spec leaves out (beta=False)"),
    # (the hint names of_spec, for a kernel that takes every operand whatever its spec, as the library's GEMMs do)
    ("bias_without_spec", skc.CompileError, "leave bias out (a kernel that takes every operand whatever its spec: "
                                            "EpilogueArgs.of_spec(spec, M, N, ...) keeps those the spec reads)"),
    ("beta_without_c", skc.CompileError, "the epilogue's spec has beta=True, which reads c"),
    # 128-row tiles handed out, 64-row A tiles loaded: rows 64 to 127 of every output tile were never computed
    ("tile_m_unlike_payload", skc.CompileError, "TmaLoader loads tile 'a' of 64 rows at tile.row0 of "
                                                "TileScheduler(M, N, tile_m=128, tile_n=64, ...), whose tiles are 128 "
                                                "rows apart: rows 64 to 127 of every output tile would never be "
                                                "computed"),
]


@pytest.mark.parametrize("mode, error, phrase", MISUSES, ids=[case[0] for case in MISUSES])
def test_a_misuse_is_an_error_at_the_users_line(mode, error, phrase):
    _, _, maps, out, c = operands()
    with pytest.raises(error) as info:
        gemm.compile(*maps, out, c, 96, 72, 128, mode, target="sm_90a", block=256)
    message = str(info.value)
    assert phrase in message
    assert message.startswith(f"{__file__}:{line_of(gemm, f'M:{mode}')}:"), message



@skc.kernel
def vector_gemm(a: skc.Ptr[skc.bf16], b: skc.Ptr[skc.bf16], out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32,
                K: skc.i32, mode: skc.constexpr):
    """The GEMM above loaded by a VectorLoader, with the misuse `mode` names ("vector" for none)."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = VectorLoader(a=(a, M, K), b=(b, N, K))
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, T, 2 * T if mode == "vector_tile_n_unlike_payload" else T)
        if roles.is_producer():
            roles.enter_producer()
            with pipe.producer() as producer:
                for tile in tiles:
                    for k in range(k_tiles):
                        with producer.acquire() as stage:
                            load(stage, k, a=tile.row0, b=tile.col0)   # M:vector_tile_n_unlike_payload
        else:
            roles.enter_consumer()
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with consumer.acquire() as stage:
                            mma(acc, stage.a, stage.b)
                    epilogue(acc, tile.row0, tile.col0)


@skc.kernel
def lds_gemm(a: skc.Ptr[skc.bf16], b: skc.Ptr[skc.bf16], out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32,
             K: skc.i32, mode: skc.constexpr):
    """An AMD GEMM of 32 x 32 tiles loaded by an LdsLoader, with the misuse `mode` names ("lds" for none)."""
    payload = TilePayload(a=LdsLayout(32, 32), b=LdsLayout(32, 32))
    load = LdsLoader(payload, a=(a, M, K, True), b=(b, N, K, True))
    mma = Mfma(32, 32, 32, skc.bf16)
    tiles = TileScheduler(M, N, 16 if mode == "lds_tile_m_unlike_payload" else 32, 32)
    epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
    acc = mma.zeros()
    with LdsPipeline(payload, 2) as pipe, pipe.producer() as producer, pipe.consumer(mma) as consumer:
        for tile in tiles:
            acc.zero()
            for k in range(skc.cdiv(K, 32)):
                with producer.acquire() as stage:
                    load(stage, k, a=tile.row0, b=tile.col0)   # M:lds_tile_m_unlike_payload
                with consumer.acquire() as stage:
                    mma(acc, stage.a, stage.b)
            epilogue(acc, tile.row0, tile.col0)


# the scheduler's tiles apart unlike the tiles the loader copies there, through the loaders without TMA
OTHER_LOADERS = [
    # (kernel, mode, target, block, a phrase of its message: "" for the composition without the misuse)
    (vector_gemm, "vector", "sm_90a", 256, ""),
    (vector_gemm, "vector_tile_n_unlike_payload", "sm_90a", 256,
     "VectorLoader loads tile 'b' of 64 rows at tile.col0 of TileScheduler(M, N, tile_m=64, tile_n=128, ...), whose "
     "tiles are 128 columns apart: columns 64 to 127 of every output tile would never be computed"),
    (lds_gemm, "lds", "gfx942", 64, ""),
    (lds_gemm, "lds_tile_m_unlike_payload", "gfx942", 64,
     "LdsLoader loads tile 'a' of 32 rows at tile.row0 of TileScheduler(M, N, tile_m=16, tile_n=32, ...), whose "
     "tiles are 16 rows apart: each tile would be computed again over 16 rows of the next"),
]


@pytest.mark.parametrize("kernel, mode, target, block, phrase", OTHER_LOADERS, ids=[c[1] for c in OTHER_LOADERS])
def test_a_loader_without_tma_refuses_tiles_unlike_the_schedulers(kernel, mode, target, block, phrase):
    types = (skc.Ptr[skc.bf16], skc.Ptr[skc.bf16], skc.Ptr[skc.f32], skc.i32, skc.i32, skc.i32)
    if not phrase:
        kernel.compile(*types, mode, target=target, block=block)
        return
    with pytest.raises(skc.CompileError) as info:
        kernel.compile(*types, mode, target=target, block=block)
    message = str(info.value)
    assert phrase in message
    assert message.startswith(f"{__file__}:{line_of(kernel, f'M:{mode}')}:"), message

@skc.kernel
def across_vendors(a: skc.Ptr[skc.bf16], mode: skc.constexpr):
    """A Hopper TileOp compiled for AMD, and an AMD one for Hopper."""
    if mode == "wgmma_on_amd":
        Wgmma(T, T, skc.bf16)   # M:wgmma_on_amd
    else:
        payload = TilePayload(a=LdsLayout(32, 32), b=LdsLayout(32, 32))
        mma = Mfma(32, 32, 32, skc.bf16)
        acc = mma.zeros()
        with LdsPipeline(payload, 2).consumer(mma) as consumer:
            with consumer.acquire() as stage:
                mma(acc, stage.a, stage.b)   # M:mfma_on_hopper


@pytest.mark.parametrize("mode, target, phrase", [
    # (a warpgroup of no threads on AMD: each thread's place in it was divided by zero)
    ("wgmma_on_amd", "gfx942", "Wgmma issues Hopper's wgmma, which gfx942 lacks"),
    ("mfma_on_hopper", "sm_90a", "mfma needs an AMD CDNA target with matrix cores"),
])
def test_a_block_of_the_other_vendor_is_an_error_at_the_users_line(mode, target, phrase):
    with pytest.raises(skc.CompileError) as info:
        across_vendors.compile(skc.Ptr[skc.bf16], mode, target=target, block=256)
    message = str(info.value)
    assert phrase in message
    assert message.startswith(f"{__file__}:{line_of(across_vendors, f'M:{mode}')}:"), message
