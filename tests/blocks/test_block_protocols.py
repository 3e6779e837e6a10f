"""The blocks' protocols kept (the sixty-fifth session, from the sixty-fourth's search of misused blocks): each misuse
below compiled and ran with no error and gave a silently wrong result, or an error far from its cause; now each is a
compile error at the user's line that says what to do.

- consumer warpgroups whose Wgmmas leave rows of the A tile to no one (every consumer given warpgroup=0, or one
  consumer for a 128-row tile): those rows of every output tile were never computed;
- a stage released by hand (`consumer.release_stage`) or the ring stepped by hand (`producer.advance()`): a hang
  blamed on the producer's acquire line, in mbarrier terms;
- WarpgroupTurns on named barriers 1 and 2 (256 threads) beside a TmaStoreEpilogue's (1 + warpgroup, 128 threads):
  undefined in PTX; a turn for a warpgroup past the consumers;
- OnlineSoftmax.finish twice, inside the loop over the blocks, or a block after it (O divided twice);
- consumers that walk their tiles in another order than the producer's loads (each tile stored with another's
  products);
- on AMD, an Mfma of bf16 over f16 tiles (f16 bits multiplied as bf16), or rows past its tile; a DirectStoreEpilogue
  made on the host ("cannot combine a run-time i64 with a DeviceArray")."""
import ml_dtypes
import numpy as np
import pytest

import skc
from helpers import OneRowAccumulator, line_of
from skc.runtime import devices
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, LdsLayout, LdsLoader,
                        LdsPipeline, Mfma, OnlineSoftmax, OperandLayout, TilePayload, TileScheduler, TmaLoader,
                        TmaStoreEpilogue, WarpgroupTurns, WarpRoles, Wgmma)

T = 64


@skc.kernel
def gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32, K: skc.i32,
         consumers: skc.constexpr, tile_m: skc.constexpr, mode: skc.constexpr):
    payload = TilePayload(a=OperandLayout(tile_m, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=consumers) as pipe:
        roles = WarpRoles(consumers)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, tile_m, T)
        if roles.is_producer():
            roles.enter_producer()
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
                                if mode == "advance":
                                    producer.advance()   # M:advance
        else:
            roles.enter_consumer()
            w = roles.consumer_index()
            mma = Wgmma(T, T, skc.bf16, warpgroup=0 if mode == "same_rows" else w)
            turns = WarpgroupTurns(consumers, 2 if mode == "turn_past" else w,   # M:turn_past
                                   first_id=1 if mode == "turns_on_1" else 8)
            acc = mma.zeros()
            epilogue = TmaStoreEpilogue(out, skc.bf16, EpilogueArgs(EpilogueSpec(), M, N), w, consumers)
            with epilogue, pipe.consumer(mma) as consumer:
                for tile in TileScheduler(M, N, tile_m, T, group_m=1) if mode == "row_order" else tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with consumer.acquire() as stage:
                            with turns:
                                mma(acc, stage.a, stage.b)   # M:mma
                            if mode == "release":
                                consumer.release_stage(stage.index)   # M:release
                    epilogue(acc, tile.row0, tile.col0)   # M:epilogue
                turns.close(tiles.count() * k_tiles)


def run_gemm(consumers, tile_m, mode, M=128, N=64, K=128):
    rng = np.random.default_rng(0)
    a, b = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    out = np.full((M, N), np.nan, ml_dtypes.bfloat16)
    maps = [skc.TensorMap(a.astype(ml_dtypes.bfloat16), box=(tile_m, T)),
            skc.TensorMap(b.astype(ml_dtypes.bfloat16), box=(T, T))]
    gemm[1, 128 * (1 + consumers)](*maps, skc.TensorMap(out, box=(64, 64)), M, N, K, consumers, tile_m, mode)
    return out.astype(np.float32), a @ b.T


@pytest.mark.parametrize("consumers, tile_m", [(1, 64), (2, 128)])
def test_the_composition_runs(consumers, tile_m):
    out, reference = run_gemm(consumers, tile_m, "")
    np.testing.assert_array_equal(out, reference)


def compile_error(consumers, tile_m, mode) -> str:
    with pytest.raises(skc.CompileError) as info:
        run_gemm(consumers, tile_m, mode)
    return str(info.value)


@pytest.mark.parametrize("consumers, tile_m, mode, words", [
    (2, 128, "same_rows", "multiply rows 0 to 63 of the stages' 128-row A tiles, and rows 64 to 127 none"),
    (1, 128, "", "at most 1 of the 2 parts of 64 rows of the stages' 128-row A tiles")])
def test_rows_of_the_a_tile_no_consumer_multiplies_are_an_error(consumers, tile_m, mode, words):
    message = compile_error(consumers, tile_m, mode)
    assert words in message and "never computed" in message, message
    assert f":{line_of(gemm, 'M:mma')}:" in message.splitlines()[0], message
    assert "roles.consumer_index()" in message


@pytest.mark.parametrize("mode, name", [("release", "release_stage"), ("advance", "advance")])
def test_the_rings_own_steps_are_not_the_users(mode, name):
    message = compile_error(1, 64, mode)
    assert f"a pipeline handle's '{name}' is the pipeline's own step" in message, message
    assert f":{line_of(gemm, 'M:' + mode)}:" in message.splitlines()[0], message
    assert "with handle.acquire() as stage:" in message


def test_turns_on_the_epilogues_named_barriers_are_an_error():
    message = compile_error(2, 128, "turns_on_1")
    assert ("TmaStoreEpilogue synchronizes on named barrier 1 with 128 threads, and WarpgroupTurns" in message
            and "uses barrier 1 with 256" in message), message
    assert f":{line_of(gemm, 'M:epilogue')}:" in message.splitlines()[0], message
    assert "first_id=8" in message


def test_consumers_walking_tiles_in_another_order_than_the_producer_is_an_error():
    message = compile_error(1, 64, "row_order")
    assert ("TmaStoreEpilogue stores tiles in the order of TileScheduler(M, N, tile_m=64, tile_n=64, group_m=1), and "
            "TmaLoader" in message and "loads them in the order of TileScheduler(M, N, tile_m=64, tile_n=64, "
            "group_m=8)" in message), message
    assert f":{line_of(gemm, 'M:epilogue')}:" in message.splitlines()[0], message
    assert "walk one scheduler in both roles" in message


def test_a_turn_for_a_warpgroup_past_the_consumers_is_an_error():
    message = compile_error(2, 128, "turn_past")
    assert "WarpgroupTurns' warpgroup is 2, and the turns pass among 2 consumer warpgroup(s)" in message, message
    assert f":{line_of(gemm, 'M:turn_past')}:" in message.splitlines()[0], message


@skc.kernel(block=128)
def softmax_sum(scores: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], blocks: skc.i32, tiles: skc.i32,
                mode: skc.constexpr):
    """Σ over the blocks of softmax(scores)·1 per column (O += P), for `tiles` tiles of the same rows, each its own
    run of the softmax (reset), written to out once per tile (the last one's kept)."""
    s, o = OneRowAccumulator(), OneRowAccumulator()
    softmax = OnlineSoftmax(0.5, rows=1)
    row, column = s.position(0)
    for t in range(tiles):
        if mode != "no_reset":
            softmax.reset()
        o.fragment = skc.full(8, 0.0, skc.f32)
        for j in range(blocks):
            first = scores + (row * 16 * blocks + j * 16 + column)
            s.fragment = skc.vector(*[first[i] for i in range(8)])
            softmax(s, s if mode == "same" else o)   # M:same
            o.fragment = o.fragment + s.fragment
            if mode == "in_loop":
                softmax.finish(o)   # M:in_loop
        softmax.finish(o)   # M:finish
        if mode == "twice":
            softmax.finish(o)   # M:twice
        if mode == "after":
            softmax(s, o)   # M:after
        for i in skc.static_range(8):
            out[row * 16 + column + i] = o.fragment[i]


def run_softmax(mode, blocks=3, tiles=2):
    rng = np.random.default_rng(0)
    scores = (rng.standard_normal((64, 16 * blocks)) * 4).astype(np.float32)
    x = scores.astype(np.float64) * 0.5
    p = np.exp(x - x.max(1, keepdims=True))
    reference = (p / p.sum(1, keepdims=True)).reshape(64, blocks, 16).sum(1)
    out = np.full((64, 16), np.nan, np.float32)
    softmax_sum[1, 128](scores, out, blocks, tiles, mode)
    return out, reference


def test_a_softmax_reset_for_each_tile_finishes_once_a_tile():
    out, reference = run_softmax("")
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode, words", [
    ("twice", "this OnlineSoftmax is finished again (first at"),
    ("in_loop", "this OnlineSoftmax is finished in a run-time loop it is made (or reset) outside of"),
    ("no_reset", "this OnlineSoftmax is finished in a run-time loop it is made (or reset) outside of"),
    ("after", "this OnlineSoftmax's update comes after its finish(o) at"),
    ("same", "OnlineSoftmax(s, o) is given one accumulator for S and O")])
def test_a_softmax_finished_twice_or_fed_after_finish_is_an_error(mode, words):
    with pytest.raises(skc.CompileError) as info:
        run_softmax(mode)
    message = str(info.value)
    assert words in message, message
    marker = "M:finish" if mode == "no_reset" else "M:" + mode
    assert f":{line_of(softmax_sum, marker)}:" in message.splitlines()[0], message


TM = 64


@skc.kernel
def lds_gemm(a: skc.Ptr[skc.f16], b: skc.Ptr[skc.f16], out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
             mode: skc.constexpr):
    payload = TilePayload(a=LdsLayout(TM, 32), b=LdsLayout(32, 32))
    load = LdsLoader(payload, a=(a, M, K, True), b=(b, N, K, True))
    wave_row0 = 32 * (skc.thread_index() // 64)   # two waves: rows 0..31 and 32..63
    dtype = skc.bf16 if mode == "bf16" else skc.f16
    mma = Mfma(32, 32, 32, dtype, row0=64 if mode == "past" else wave_row0)
    tiles = TileScheduler(M, N, TM, 32)
    epilogue = (HOST_EPILOGUE if mode == "host_epilogue" else
                DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N)))
    acc = mma.zeros()
    with LdsPipeline(payload, 2) as pipe, pipe.producer() as producer, pipe.consumer(mma) as consumer:
        for tile in tiles:
            acc.zero()
            for k in range(skc.cdiv(K, 32)):
                with producer.acquire() as stage:
                    load(stage, k, a=tile.row0, b=tile.col0)
                if mode == "advance":
                    producer.advance()   # M:lds_advance
                with consumer.acquire() as stage:
                    mma(acc, stage.a, stage.b)   # M:mfma
            epilogue(acc, tile.row0, tile.col0)   # M:store


HOST_EPILOGUE = DirectStoreEpilogue(np.zeros((64, 32), np.float32), skc.f32, EpilogueArgs(EpilogueSpec(), 64, 32))


@pytest.fixture
def gfx942(monkeypatch):
    """The interpreter modelling gfx942 as the current device (its target cache cleared on the way in and out)."""
    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "gfx942")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    assert skc.current_device().target.name == "gfx942"
    yield
    devices._target_of.cache_clear()


def run_lds_gemm(mode, M=64, N=32, K=128):
    rng = np.random.default_rng(0)
    a, b = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    out = np.full((M, N), np.nan, np.float32)
    lds_gemm[1, 128](a.astype(np.float16), b.astype(np.float16), out, M, N, K, mode)
    return out, a @ b.T


def lds_compile_error(mode, marker) -> str:
    """The compile error of lds_gemm in `mode`, checked to be placed at the line marked `marker`."""
    with pytest.raises(skc.CompileError) as info:
        run_lds_gemm(mode)
    message = str(info.value)
    assert f":{line_of(lds_gemm, marker)}:" in message.splitlines()[0], message
    return message


@pytest.mark.parametrize("mode, words", [
    ("bf16", "the stage's A tile is loaded from a pointer of f16; this Mfma multiplies bf16"),
    ("past", "this Mfma multiplies rows 64 to 95 of the stage's A tile, which has 64")])
def test_an_mfma_of_another_type_or_past_its_tile_is_an_error(gfx942, mode, words):
    out, reference = run_lds_gemm("")
    np.testing.assert_array_equal(out, reference)
    message = lds_compile_error(mode, "M:mfma")
    assert words in message, message


def test_a_direct_store_epilogue_made_on_the_host_is_an_error_where_it_stores(gfx942):
    message = lds_compile_error("host_epilogue", "M:store")
    assert "this DirectStoreEpilogue was made on the host, with the host's ndarray for out" in message, message


def test_the_lds_rings_own_steps_are_not_the_users(gfx942):
    message = lds_compile_error("advance", "M:lds_advance")
    assert "a pipeline handle's 'advance' is the pipeline's own step" in message, message
    assert "with handle.acquire() as stage:" in message and "consumer.skip" not in message
