"""Misusing a pipeline is a compile-time error at the user's line, never a hang."""
import os
from types import SimpleNamespace

import numpy as np
import pytest

import skc
from helpers import line_of
from skc import ir
from skc.blocks import (InputTilePipeline, MatmulConfig, OperandLayout, TileScheduler, TilePayload, TmaLoader,
                        WarpRoles, Wgmma)
from skc.blocks.config import BatchedOperandLayout

HERE = os.path.abspath(__file__)
CFG = MatmulConfig(stages=2)


def tensor_maps(cfg=CFG):
    boxes = cfg.boxes()
    return [SimpleNamespace(spec=ir.TensorMapType(ir.bf16, boxes[name], 128))
            for name in ("a", "b", "out")]


def compile_error(kernel, cfg=CFG) -> str:
    with pytest.raises(skc.CompileError) as info:
        kernel.compile(*tensor_maps(cfg), skc.i32, skc.i32, skc.i32, cfg, target="sm_90a", block=cfg.threads)
    return str(info.value)


def assert_at(message: str, kernel, marker: str):
    assert message.startswith(f"{HERE}:{line_of(kernel, marker)}:"), message


@skc.kernel
def acquire_without_with(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                         K: skc.i32, cfg: skc.constexpr):
    payload = cfg.payload()
    pipe = InputTilePipeline(payload, cfg.stages, consumers=cfg.consumers)
    roles = WarpRoles(cfg.consumers)
    if roles.is_producer():
        load = TmaLoader(payload, a=a, b=b)
        with pipe.producer() as producer:
            stage = producer.acquire()
            load(stage, 0, a=0, b=0)  # HERE


def test_acquire_outside_a_with():
    message = compile_error(acquire_without_with)
    assert "a pipeline stage is used outside `with ....acquire() as stage:`" in message
    assert_at(message, acquire_without_with, "load(stage, 0, a=0, b=0)")


@skc.kernel
def consumer_in_producer(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                         K: skc.i32, cfg: skc.constexpr):
    pipe = InputTilePipeline(cfg.payload(), cfg.stages, consumers=cfg.consumers)
    roles = WarpRoles(cfg.consumers)
    if roles.is_producer():
        with pipe.consumer() as consumer:  # HERE
            pass


def test_consumer_handle_in_the_producer_role():
    message = compile_error(consumer_in_producer)
    assert "the pipeline's consumer handle is taken in code that runs as the producer" in message
    assert_at(message, consumer_in_producer, "with pipe.consumer()")


@skc.kernel
def stage_after_with(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                     K: skc.i32, cfg: skc.constexpr):
    pipe = InputTilePipeline(cfg.payload(), cfg.stages, consumers=cfg.consumers)
    roles = WarpRoles(cfg.consumers)
    if not roles.is_producer():
        mma = Wgmma(cfg.tile_n, cfg.tile_k, skc.bf16)
        acc = mma.zeros()
        with pipe.consumer() as consumer:
            for k in range(K):
                with consumer.acquire() as stage:
                    tiles = (stage.a, stage.b)
                mma(acc, tiles[0], tiles[1])  # HERE


def test_stage_used_after_its_block():
    message = compile_error(stage_after_with)
    assert "tile 'a' of a pipeline stage is used after the `with ... acquire()` block" in message
    assert_at(message, stage_after_with, "mma(acc, tiles[0], tiles[1])")


@skc.kernel
def run_of_stages(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                  K: skc.i32, cfg: skc.constexpr):
    """cfg: (the config, how many stages a run takes, which of them is read, whether after the run's with, whether
    the consumer's reader is the Wgmma, which keeps a stage in flight, the pipeline's stages)."""
    config, count, which, after, lagging, stages = cfg
    pipe = InputTilePipeline(config.payload(), stages, consumers=config.consumers)
    roles = WarpRoles(config.consumers)
    if not roles.is_producer():
        mma = Wgmma(config.tile_n, config.tile_k, skc.bf16, warpgroup=roles.consumer_index())
        acc = mma.zeros()
        with pipe.consumer(mma if lagging else None) as consumer:
            with consumer.acquire(count) as run:  # RUN
                stage = run.stage(which)  # STAGE
                tiles = (stage.a, stage.b)
                if not after:
                    mma(acc, tiles[0], tiles[1])
            if after:
                mma(acc, tiles[0], tiles[1])  # AFTER


def run_error(count, which, after, lagging=False, stages=CFG.stages) -> str:
    """(a pipeline of one stage is refused by MatmulConfig for its Wgmma: `stages` makes one past that check)"""
    with pytest.raises(skc.CompileError) as info:
        run_of_stages.compile(*tensor_maps(), skc.i32, skc.i32, skc.i32, (CFG, count, which, after, lagging, stages),
                              target="sm_90a", block=CFG.threads)
    return str(info.value)


def test_a_run_of_stages_is_checked_at_the_users_line():
    """A run holds 1 to `stages` stages (more would wait for stages it holds itself), names only those, and its
    stages' tiles live inside its with."""
    message = run_error(3, 0, False)   # CFG has two stages
    assert message.count(": error: ") == 1, message   # a block's error is placed once (not wrapped again by raise)
    assert "a run of stages holds 1 to 2 (the pipeline's 2 stages, less the 0 its reader keeps in flight), not 3" \
        in message
    assert_at(message, run_of_stages, "# RUN")
    # a reader that keeps a stage in flight still holds it when the next run waits: a hang, refused
    message = run_error(2, 0, False, lagging=True)
    assert "holds 1 to 1 (the pipeline's 2 stages, less the 1 its reader keeps in flight), not 2" in message
    assert_at(message, run_of_stages, "# RUN")
    message = run_error(1, 0, False, lagging=True, stages=1)
    assert "the reader keeps 1 stage(s) in flight, and the pipeline has 1" in message
    message = run_error(2, 2, False)
    assert "this run holds 2 stages; stage(2) is none of them" in message
    assert_at(message, run_of_stages, "# STAGE")
    message = run_error(2, 1, True)
    assert "tile 'a' of a pipeline stage is used after the `with ... acquire()` block" in message
    assert_at(message, run_of_stages, "# AFTER")
    run_of_stages.compile(*tensor_maps(), skc.i32, skc.i32, skc.i32, (CFG, 2, 1, False, False, CFG.stages),
                          target="sm_90a", block=CFG.threads)   # the right use compiles
    run_of_stages.compile(*tensor_maps(), skc.i32, skc.i32, skc.i32,
                          (CFG, np.int64(2), np.int32(1), False, False, CFG.stages),
                          target="sm_90a", block=CFG.threads)   # numpy's integers are ints too
    assert "acquire(count) takes a compile-time int, found 2.0" in run_error(2.0, 0, False)
    assert "run.stage(i) takes a compile-time int, found True" in run_error(2, True, False)


@skc.kernel
def payload_disagrees(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                      K: skc.i32, cfg: skc.constexpr):
    pipe = InputTilePipeline(cfg.payload(), cfg.stages, consumers=cfg.consumers)
    roles = WarpRoles(cfg.consumers)
    if not roles.is_producer():
        mma = Wgmma(256, cfg.tile_k, skc.bf16)
        acc = mma.zeros()
        with pipe.consumer() as consumer:
            with consumer.acquire() as stage:
                mma(acc, stage.a, stage.b)  # HERE


def test_payload_that_disagrees_with_the_op():
    message = compile_error(payload_disagrees)
    assert "the stage's B tile has 128 columns; this Wgmma computes 256" in message
    assert_at(message, payload_disagrees, "mma(acc, stage.a, stage.b)")


@skc.kernel
def too_many_stages(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                    K: skc.i32, cfg: skc.constexpr):
    pipe = InputTilePipeline(cfg.payload(), cfg.stages, consumers=cfg.consumers)  # HERE


def test_shared_memory_budget():
    cfg = MatmulConfig(stages=5, tile_n=256)
    message = compile_error(too_many_stages, cfg)
    assert "exceeds the 232448 bytes a block may use on sm_90a" in message
    assert_at(message, too_many_stages, "InputTilePipeline(")


@skc.kernel
def wrong_thread_count(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                       K: skc.i32, cfg: skc.constexpr):
    roles = WarpRoles(3)  # HERE


def test_roles_need_the_right_block():
    message = compile_error(wrong_thread_count)
    assert "need 512 threads per block, the kernel has 384" in message


@skc.kernel
def roles_under_a_branch(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                         K: skc.i32, cfg: skc.constexpr):
    if skc.thread_index() < M:
        roles = WarpRoles(cfg.consumers)  # HERE


def test_roles_are_made_where_the_whole_block_runs():
    """WarpRoles takes the warpgroup index from lane 0 by a shuffle (so that ptxas knows it is warp-uniform): in
    a run-time branch some lanes may not run it, and the shuffle would read lanes that never wrote."""
    message = compile_error(roles_under_a_branch)
    assert "WarpRoles is made inside a run-time `if`" in message and "before any run-time branch" in message
    assert_at(message, roles_under_a_branch, "WarpRoles(cfg.consumers)")


def test_config_checks():
    with pytest.raises(ValueError, match="tile_m must be 64 or 128 per consumer"):
        MatmulConfig(tile_m=192, consumers=2)
    with pytest.raises(ValueError, match="tile_n must be"):
        MatmulConfig(tile_n=100)
    with pytest.raises(ValueError, match="a K-major A tile is one TMA box of tile_m rows, at most 256, found 384"):
        MatmulConfig(dtype="f16", tile_m=384, consumers=3, tile_n=64, stages=2, producer_registers=24,
                     consumer_registers=160)
    assert MatmulConfig(dtype="f16", tile_m=384, consumers=3, tile_n=64, stages=2, a_k_major=False,
                        producer_registers=24, consumer_registers=160).tile_m == 384   # MN-major A: 64-row boxes
    # B's three chunks shared out by their rows of K (tile_k, a multiple of 64, always splits between 2 blocks): 32
    # a block, at 32 rows into each chunk
    assert MatmulConfig(tile_m=192, tile_n=192, consumers=3, cluster_m=2, producer_registers=24,
                        consumer_registers=160).payload().layouts["b"].box() == (32, 64)
    # a tile the problem's cluster does not split by its chunks takes none
    assert MatmulConfig.for_problem(8192, 8192, 8192, multiprocessors=132, tile_m=192, tile_n=192, consumers=3,
                                    producer_registers=24, consumer_registers=160).cluster_m == 1
    with pytest.raises(ValueError, match="vector loader's 128 threads copy 8 elements.*a multiple of 16"):
        MatmulConfig(dtype="f16", tile_n=40, b_k_major=True, loader="vector")   # it would leave rows unloaded
    # narrower loads (rows TMA cannot address) and direct stores
    with pytest.raises(ValueError, match="vector_width is how many elements .* 8, 4, 2 or 1 with loader='vector', "
                                         "found 3"):
        MatmulConfig(loader="vector", vector_width=3)
    with pytest.raises(ValueError, match="found 2 with loader='tma'"):
        MatmulConfig(vector_width=2)
    # cp.async copies 4, 8 or 16 bytes: the vector loader's, of 2 elements or more
    with pytest.raises(ValueError, match="vector_async: the vector loader copies by cp.async.*found loader='tma'"):
        MatmulConfig(vector_async=True)
    with pytest.raises(ValueError, match="vector_async: .* vectors of 2 bytes: use loader='vector' and a vector_width"):
        MatmulConfig(loader="vector", vector_width=1, vector_async=True)
    assert MatmulConfig(loader="vector", vector_width=2, vector_async=True, split_k=4).split_k == 4
    with pytest.raises(ValueError, match="split-K takes the TMA or the vector loader without clusters"):
        MatmulConfig(split_k=2, cluster_m=2)
    with pytest.raises(ValueError, match="store must be 'tma' or 'direct', found 'dma'"):
        MatmulConfig(store="dma")
    with pytest.raises(ValueError, match="store='direct' writes one matrix's tiles whole: use it without"):
        MatmulConfig(store="direct", split_k=2)
    with pytest.raises(ValueError, match="store='direct'"):
        MatmulConfig(store="direct", batched="ab")
    # the vector loader's threads keep loads and addresses: more registers than a TMA producer's 40
    assert (MatmulConfig(loader="vector").producer_registers, MatmulConfig().producer_registers) == (96, 40)
    assert MatmulConfig(tile_m=64, consumers=1, loader="vector").producer_registers == 160
    assert MatmulConfig(loader="vector", producer_registers=40, consumer_registers=232).producer_registers == 40
    # clusters along N: A's rows (or chunks) split evenly, one direction, no split-K, and sizes of 1, 2 or 4
    with pytest.raises(ValueError, match="splits A's 40 loaded rows evenly between its blocks in 8-row groups.*"
                                         "multiple of 16, or cluster_n=1"):
        MatmulConfig(tile_m=64, consumers=1, a_rows=40, cluster_n=2)
    with pytest.raises(ValueError, match="splits A's 48 loaded rows .*multiple of 32"):
        MatmulConfig(tile_m=64, consumers=1, cluster_n=4, a_rows=48)
    assert MatmulConfig(tile_m=64, consumers=1, cluster_n=4).payload().layouts["a"].box() == (16, 64)
    assert MatmulConfig(cluster_n=2).payload().layouts["a"].box() == (64, 64)    # 128 rows: 64 a block
    # A transposed in one 64-row chunk: shared out by its rows of K
    assert MatmulConfig(tile_m=64, consumers=1, a_k_major=False, cluster_n=4).payload().layouts["a"].box() == (16, 64)
    with pytest.raises(ValueError, match="along M .* or along N .*, not both"):
        MatmulConfig(tile_n=256, tile_k=128, stages=2, cluster_m=2, cluster_n=2)
    with pytest.raises(ValueError, match="cluster_n must be 1, 2 or 4, found 3"):
        MatmulConfig(tile_k=192, cluster_n=3)
    with pytest.raises(ValueError, match="split-K takes the TMA or the vector loader without clusters"):
        MatmulConfig(tile_k=128, cluster_n=2, split_k=2)
    assert MatmulConfig.for_problem(8192, 8192, 8192, multiprocessors=132).cluster_m == 2
    assert MatmulConfig.for_problem(8192, 8192, 8192, multiprocessors=132, tile_k=128, cluster_n=2).cluster_m == 1
    config = MatmulConfig.for_problem(4096, 4096, 4096)
    assert config.shared_bytes() <= 232448 and config.stages >= 4
    # group_m 0 divided by zero (a GPU fault at a negative store), fewer left tiles unstored (a partial result)
    with pytest.raises(ValueError, match="group_m is how many tile-rows the scheduler walks at a time, 1 or more, "
                                         "found -1"):
        MatmulConfig(group_m=-1)


def test_layout_descriptors_and_boxes():
    k_major = OperandLayout(128, 64, 2, k_major=True)
    assert k_major.box() == (128, 64) and k_major.chunks == 1 and k_major.bytes == 16384
    mn_major = OperandLayout(128, 64, 2, k_major=False)
    assert mn_major.box() == (64, 64) and mn_major.chunks == 2 and mn_major.chunk_bytes == 8192
    assert mn_major.box_coordinates(1, 256, 64) == (64, 320)
    assert TilePayload(a=k_major, b=mn_major).stage_bytes == 32768
    shared = OperandLayout(48, 64, 2, row_shares=2)   # a cluster's two blocks load 24 rows of each chunk each
    assert shared.box() == (24, 64) and shared.share_corner(96, 128, 1) == (120, 128)
    # MN-major: the shares are of each chunk's rows of K
    by_k = OperandLayout(192, 64, 2, k_major=False, row_shares=2)
    assert by_k.box() == (32, 64) and by_k.share_corner(96, 128, 1) == (96, 160) and by_k.share_rows == 32
    with pytest.raises(ValueError, match="a chunk's 48 box rows are shared out in whole 8-row groups"):
        TilePayload(b=OperandLayout(48, 64, 2, row_shares=4))
    # no boxes at all would leave a stage's transaction count unmet (a hang): refused when the payload checks it
    for shares in (0, -1):
        with pytest.raises(ValueError, match="row_shares is how many boxes load a chunk's rows, 1 or more"):
            TilePayload(b=OperandLayout(64, 64, 2, row_shares=shares))


def test_a_row_major_b_of_32_column_chunks():
    """tile_n an odd multiple of 32 with a row-major B: 32-column chunks under the 64-byte swizzle, which the
    config names for B's tensor map; a K-major tile keeps the 128-byte swizzle, and the vector loader (which
    writes the 128-byte pattern itself) is refused."""
    layout = OperandLayout(96, 64, 2, k_major=False, swizzle=64)
    assert layout.chunk == 32 and layout.chunks == 3 and layout.box() == (64, 32) and layout.chunk_bytes == 4096
    assert layout.box_coordinates(2, 192, 64) == (64, 256)
    config = MatmulConfig(tile_m=192, tile_n=96, consumers=3, stages=3)
    assert (config.swizzle("a"), config.swizzle("b"), config.swizzle("out")) == (128, 64, 128)
    assert config.boxes()["b"] == (64, 32) and config.payload().layouts["b"].swizzle == 64
    assert MatmulConfig(tile_n=96, b_k_major=True).swizzle("b") == 128
    assert MatmulConfig(tile_n=160, cluster_m=2).payload().layouts["b"].row_shares == 2   # five chunks: rows of K
    with pytest.raises(ValueError, match="tiles are whole 128-byte chunks \\(or 64-byte ones, MN-major\\)"):
        TilePayload(a=OperandLayout(128, 64, 2, k_major=True, swizzle=64))
    with pytest.raises(ValueError, match="takes the 64-byte swizzle, which only the TMA loader writes"):
        MatmulConfig(tile_n=96, loader="vector")
    with pytest.raises(ValueError, match="tile_n must be a multiple of 32 up to 256"):
        MatmulConfig(tile_n=80)


@skc.kernel
def scheduler_without_groups(out: skc.Ptr[skc.i32], M: skc.i32, N: skc.i32):
    for tile in TileScheduler(M, N, 64, 64, group_m=0):  # HERE
        out[0] = tile.row0


def test_a_scheduler_walks_groups_of_one_tile_row_or_more():
    with pytest.raises(skc.CompileError) as info:
        scheduler_without_groups.compile(target="sm_90a")
    assert "group_m is how many tile-rows the raster walks at a time, 1 or more, found 0" in str(info.value)
    assert_at(str(info.value), scheduler_without_groups, "TileScheduler(M, N, 64, 64, group_m=0)")


def test_persistent_grid():
    assert TileScheduler.grid(4096, 4096, 128, 128, 132) == 132
    assert TileScheduler.grid(100, 100, 128, 128, 132) == 1


@skc.kernel
def load_without_an_origin(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                           K: skc.i32, cfg: skc.constexpr):
    payload = cfg.payload()
    load = TmaLoader(payload, a=a, b=b)
    pipe = InputTilePipeline(payload, cfg.stages, load, consumers=cfg.consumers)
    roles = WarpRoles(cfg.consumers)
    if roles.is_producer():
        with pipe.producer() as producer:
            with producer.acquire() as stage:
                load(stage, 0, a=0, c=0)  # HERE


def test_a_loader_takes_an_origin_for_each_operand():
    message = compile_error(load_without_an_origin)
    assert "TmaLoader copies a, b: give each one origin (a=..., b=...); missing b; no operand c" in message
    assert_at(message, load_without_an_origin, "load(stage, 0, a=0, c=0)")


@skc.kernel
def roles_without_warpgroups(cfg: skc.constexpr):
    WarpRoles(cfg.consumers)  # HERE


def test_roles_need_a_target_with_warpgroups():
    with pytest.raises(skc.CompileError) as info:
        roles_without_warpgroups.compile(CFG, target="sm_80", block=CFG.threads)
    message = str(info.value)
    assert "warp roles are warpgroups, which sm_80 lacks" in message and "compile for sm_90a" in message
    assert_at(message, roles_without_warpgroups, "WarpRoles(cfg.consumers)")


def test_a_tensor_map_of_another_swizzle_than_its_tile_is_a_compile_error():
    """A map swizzling 128 bytes into a 64-byte-swizzled tile would put B's columns where the MMA does not read
    them (a wrong product): the loader refuses it."""
    from types import SimpleNamespace

    from skc import ir
    from skc.blocks import matmul_kernel

    cfg = MatmulConfig(tile_n=96, stages=3)
    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType("bf16"), boxes[name], 128)) for name in ("a", "b", "out")]
    pointer = skc.Ptr[skc.bf16]
    with pytest.raises(skc.CompileError, match="the tensor map for payload tile 'b' swizzles 128 bytes; the tile's "
                                               "layout is 64-byte swizzled"):
        matmul_kernel.compile(*maps, skc.i32, skc.i32, skc.i32, pointer, pointer, skc.f32, skc.f32, cfg,
                              target="sm_90a", block=cfg.threads)


BOXED = MatmulConfig(stages=2, a_box_rows=32)   # A's tile in four boxes of 32 rows


@skc.kernel
def extents_on_a_batch(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                       K: skc.i32, cfg: skc.constexpr):
    payload = TilePayload(a=BatchedOperandLayout(128, 64, 2, True, row_shares=4), b=cfg.payload().layouts["b"])
    TmaLoader(payload, extents={"a": M}, a=a, b=b)  # HERE


def test_a_loader_skips_row_shares_only_in_a_single_matrix():
    message = compile_error(extents_on_a_batch, BOXED)
    assert "TmaLoader skips row shares past the rows of one matrix; tile 'a' is a batch's (a 3-D box)" in message
    assert_at(message, extents_on_a_batch, "TmaLoader(payload, extents=")


@skc.kernel
def stage_bytes_without_origins(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32,
                                K: skc.i32, cfg: skc.constexpr):
    load = TmaLoader(cfg.payload(), extents={"a": M}, a=a, b=b)
    load.stage_bytes()  # HERE


def test_a_loader_with_extents_counts_a_stages_bytes_from_its_origins():
    message = compile_error(stage_bytes_without_origins, BOXED)
    assert "so a stage's bytes depend on the tiles' origins" in message
    assert "call stage_bytes(origins)" in message
    assert_at(message, stage_bytes_without_origins, "load.stage_bytes()")


@skc.kernel
def cp_async_of(src: skc.Ptr[skc.bf16], nbytes: skc.constexpr, from_shared: skc.constexpr):
    buffer = skc.shared((64,), skc.bf16)
    skc.hopper.cp_async(buffer, buffer if from_shared else src, nbytes)   # marker: copy


@pytest.mark.parametrize("nbytes, from_shared, expected", [(2, False, "cp_async copies 4, 8 or 16 bytes, not 2"),
                                                           (4, True, "cp_async copies from a global pointer")])
def test_a_cp_async_the_hardware_has_not_is_a_compile_error_at_its_line(nbytes, from_shared, expected):
    with pytest.raises(skc.CompileError) as info:
        cp_async_of.compile(skc.Ptr[skc.bf16], nbytes, from_shared, target="sm_90a", block=32)
    message = str(info.value)
    assert_at(message, cp_async_of, "marker: copy")
    assert expected in message
    with pytest.raises(skc.CompileError, match="cp_async needs a target with mbarrier"):
        cp_async_of.compile(skc.Ptr[skc.bf16], 4, False, target="sm_80", block=32)


@skc.kernel
def hopper_count_of(which: skc.constexpr, value: skc.constexpr):
    bar = skc.shared((1,), skc.u64, align=8)
    if which == "arrive":
        skc.hopper.mbarrier_arrive(bar, value)   # marker: arrive
    elif which == "tma_wait":
        skc.hopper.tma_wait(value)   # marker: tma_wait
    else:
        skc.hopper.wgmma_wait(value)   # marker: wgmma_wait


@pytest.mark.parametrize("which, value, expected", [
    ("arrive", 0, "the arrival count of mbarrier_arrive must be 1 to 1048575, found 0"),
    ("arrive", -1, "must be 1 to 1048575, found -1"),
    ("arrive", 1 << 20, "must be 1 to 1048575, found 1048576"),
    ("tma_wait", -1, "the groups tma_wait leaves pending must be at least 0, found -1"),
    ("wgmma_wait", -1, "the groups wgmma_wait leaves pending must be at least 0, found -1"),
])
def test_hopper_counts_outside_their_ptx_range_are_compile_errors_at_their_line(which, value, expected):
    """PTX ISA 9.7.13.15.2: an arrival count is 1 to 2**20 - 1 (ptxas rejected 0 and -1, the interpreter deadlocked);
    a wait_group's N is a count of groups: tma_wait(-1) waited for every group in the interpreter and, as the PTX
    'cp.async.bulk.wait_group -1' that ptxas took, for none on the GPU."""
    with pytest.raises(skc.CompileError) as info:
        hopper_count_of.compile(which, value, target="sm_90a", block=128)
    message = str(info.value)
    assert_at(message, hopper_count_of, f"marker: {which}")
    assert expected in message
