"""Block misuses a helper's search found (sixtieth session), each now a CompileError at the user's line: a split-K
epilogue summing another count of shares than its scheduler hands out (never stored, or stored before every share
was in: NaN or wrong values, silently); a scheduler's cluster_m of -1 (no tile walked: the output never stored);
WarpgroupTurns among more consumers than the kernel's WarpRoles has (a deadlock: a hang on the GPU); a register-A
MMA given the accumulator or the P of another warpgroup's rows (the result placed in rows no store writes). The
right compositions beside them run and give the product, in the interpreter modelling sm_90a."""
import inspect

import numpy as np
import pytest

import skc
from split_k_kernels import split_k
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout,
                        TilePayload, TileScheduler, TmaLoader, WarpRoles, Wgmma, WgmmaRegA)
from skc.blocks.roles import WarpgroupTurns

T = 64


def operands(M=64, N=64, K=128):
    rng = np.random.default_rng(0)
    A, B = (rng.integers(-2, 3, shape).astype(np.float32) for shape in ((M, K), (N, K)))
    maps = tuple(skc.TensorMap(skc.to_device(x, dtype=skc.bf16), box=(T, T)) for x in (A, B))
    return A, B, maps


@pytest.mark.parametrize("scheduled, summed", [(2, 2), (2, 3), (3, 2)])
def test_a_split_k_epilogue_sums_the_shares_its_scheduler_hands_out(hopper_interpreter, scheduled, summed):
    A, B, maps = operands(K=384)
    counters = np.zeros(1, np.int32)
    out = np.full((64, 64), np.nan, np.float32)
    launch = lambda: split_k[4, 256](*maps, out, np.zeros(3 * T * T, np.float32), counters, 64, 64, 384,
                                     scheduled, summed, None)
    if scheduled == summed:
        launch()
        assert np.array_equal(out, A @ B.T) and counters.tolist() == [0]
        return
    with pytest.raises(skc.CompileError, match=f"this SplitKEpilogue sums {summed} shares of a tile, and the share "
                                               f"comes from SplitKScheduler\\(..., splits={scheduled}\\)") as error:
        launch()
    lines, first = inspect.getsourcelines(split_k.fn)
    call = first + next(i for i, line in enumerate(lines) if "epilogue(acc, tile.row0" in line)
    assert str(error.value).startswith(f"{inspect.getsourcefile(split_k.fn)}:{call}:")   # (the user's line: the epilogue's call)


@skc.kernel
def gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
         mode: skc.constexpr):
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, T, T, cluster_m=-1 if mode == "cluster_m=-1" else 1)
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
            epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
            turns = WarpgroupTurns(2 if mode == "two turns" else 1, roles.consumer_index())
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    with turns:
                        for k in range(k_tiles):
                            with consumer.acquire() as stage:
                                mma(acc, stage.a, stage.b)
                    epilogue(acc, tile.row0, tile.col0)


@pytest.mark.parametrize("mode, message", [
    ("right", None),
    ("cluster_m=-1", "a scheduler's cluster_m is how many blocks of a cluster share a tile's operand, a compile-time "
                     "int of 1 or more, found -1"),
    ("two turns", r"WarpgroupTurns\(2, ...\) takes turns among 2 consumer warpgroups, and the kernel's WarpRoles "
                  "has 1"),
])
def test_schedulers_clusters_and_turns_are_checked_against_the_kernel(hopper_interpreter, mode, message):
    A, B, maps = operands()
    out = np.full((64, 64), np.nan, np.float32)
    if message is None:
        gemm[1, 256](*maps, out, 64, 64, 128, mode)
        assert np.array_equal(out, A @ B.T)
        return
    with pytest.raises(skc.CompileError, match=message):
        gemm[1, 256](*maps, out, 64, 64, 128, mode)


@skc.kernel
def two_mmas(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], mode: skc.constexpr):
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    with producer.acquire() as stage:
                        load(stage, 0, a=0, b=0)
        else:
            qk = Wgmma(T, T, skc.bf16)
            pv = WgmmaRegA(T, T, skc.bf16, warpgroup=1 if mode == "P of rows 0-63" else 0)
            s = qk.zeros()
            o = Wgmma(T, T, skc.bf16, warpgroup=1).zeros() if mode == "accumulator of rows 64-127" else pv.zeros()
            with pipe.consumer() as consumer:
                with consumer.acquire() as stage:
                    qk(s, stage.a, stage.b)
                    s.wait()
                    pv(o, pv.operand(s), stage.b)
                    o.wait()
            DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), T, T))(o, 0, 0)


@pytest.mark.parametrize("mode, message", [
    ("right", None),
    ("accumulator of rows 64-127", "the accumulator is for rows 64 to 127 of the tile; this WgmmaRegA multiplies "
                                   "rows 0 to 63"),
    ("P of rows 0-63", "P is for rows 0 to 63 of the tile; this WgmmaRegA multiplies rows 64 to 127"),
])
def test_a_register_a_mma_takes_its_own_warpgroups_rows(hopper_interpreter, mode, message):
    A, B, maps = operands(K=64)
    out = np.full((64, 64), np.nan, np.float32)
    if message is None:
        two_mmas[1, 256](*maps, out, mode)
        S = A @ B.T   # (integers of at most 256: exact in bf16)
        assert np.array_equal(out, S @ B.T)   # (B's tile read as the first MMA reads it: k along its rows)
        return
    with pytest.raises(skc.CompileError, match=message):
        two_mmas[1, 256](*maps, out, mode)
