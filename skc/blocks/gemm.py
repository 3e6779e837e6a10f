"""The GEMM, composed from the blocks: C = A · B (+ fused epilogue) for bf16 and fp16, from one source
for Hopper (sm_90a) and AMD CDNA (gfx942, gfx90a); the target chooses the composition at compile time.

Hopper: a producer warpgroup streams A and B tiles into a pipeline with TMA; two consumer warpgroups
multiply them with wgmma and store their share of each output tile through shared memory with TMA.
AMD: every wave loads its share of the A and B tiles into a ping-pong pair of LDS stages, multiplies
its share of the output tile with MFMAs and stores it. Each composition is a few lines; every piece of
it is a block shared with other kernels. `matmul(a, b, ...)` is the host side: it reads the operands'
layouts, picks a configuration for the device's target and launches a persistent grid.
"""
from __future__ import annotations

import skc
from skc import frontend

from .amd_config import AmdMatmulConfig
from .arguments import check_has
from .config import MatmulConfig
from .epilogue import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, SplitKEpilogue, SplitTailFixup, StreamKFixup,
                       TmaStoreEpilogue)
from .lds import LdsLoader
from .mfma import Mfma
from .mma import NO_TURN, StackedWgmma, Wgmma
from .pingpong import LdsPipeline
from .pipeline import InputTilePipeline
from .roles import WarpgroupTurns, WarpRoles, needs_hopper
from .scheduler import SplitKScheduler, SplitTailScheduler, StreamKScheduler, TileScheduler
from .tile_io import TmaLoader, VectorLoader


@skc.kernel
def matmul_kernel(a, b, out, M: skc.i32, N: skc.i32, K: skc.i32, c_in, bias, alpha: skc.f32, beta: skc.f32,
                  cfg: skc.constexpr):
    """a, b and out are tensor maps on Hopper (MatmulConfig), pointers on AMD (AmdMatmulConfig)."""
    target = skc.current_target()
    cfg = _config_for(target, cfg)
    epilogue = EpilogueArgs.of_spec(cfg.epilogue, M, N, alpha=alpha, beta=beta, c=c_in, bias=bias)
    if target.has("wgmma"):
        wgmma_gemm(a, b, out, M, N, K, epilogue, cfg)
    else:
        mfma_gemm(a, b, out, M, N, K, epilogue, cfg)


@skc.kernel
def matmul_split_kernel(a, b, out, workspace, counters, M: skc.i32, N: skc.i32, K: skc.i32, c_in, bias,
                        alpha: skc.f32, beta: skc.f32, cfg: skc.constexpr):
    """The Hopper GEMM with split-K (cfg.split_k > 1): a and b are tensor maps, out a pointer to the row-major
    output, workspace (each share's records of each strip, any contents) and counters (i32, one a strip:
    zero-filled, and left zero) split_buffers' buffers."""
    target = skc.current_target()
    cfg = _config_for(target, cfg)
    epilogue = EpilogueArgs.of_spec(cfg.epilogue, M, N, alpha=alpha, beta=beta, c=c_in, bias=bias)
    wgmma_gemm(a, b, out, M, N, K, epilogue, cfg, split=(workspace, counters))


@skc.kernel
def matmul_stream_k_kernel(a, b, out, workspace, counters, M: skc.i32, N: skc.i32, K: skc.i32, c_in, bias,
                           alpha: skc.f32, beta: skc.f32, cfg: skc.constexpr):
    """The Hopper GEMM with stream-K or a split tail (cfg.stream_k, cfg.split_tail): a, b and out are tensor maps,
    workspace (a record of 64 x tile_n fp32 for each 64-row strip of a tile at each of the grid's slots, any
    contents) and counters (i32, one a strip: zero-filled, and left zero) stream_k_buffers' buffers."""
    target = skc.current_target()
    cfg = _config_for(target, cfg)
    epilogue = EpilogueArgs.of_spec(cfg.epilogue, M, N, alpha=alpha, beta=beta, c=c_in, bias=bias)
    wgmma_gemm(a, b, out, M, N, K, epilogue, cfg, stream_k=(workspace, counters))


@skc.kernel
def matmul_batched_kernel(a, b, out, batches: skc.i32, M: skc.i32, N: skc.i32, K: skc.i32, c_in, bias,
                          alpha: skc.f32, beta: skc.f32, cfg: skc.constexpr):
    """`batches` Hopper GEMMs in one launch (cfg.batched names the 3-D operands; out is 3-D): the scheduler's
    work units run over every matrix's tiles, each tile's loads and stores at its batch coordinate. A grouped
    convolution's matrices are its groups (cfg.loader a ConvShape of groups): each adds its own N biases."""
    target = skc.current_target()
    cfg = _config_for(target, cfg, batched=True)
    grouped = getattr(cfg.loader, "groups", 1) > 1
    epilogue = EpilogueArgs.of_spec(cfg.epilogue, M, N, alpha=alpha, beta=beta, c=c_in, bias=bias,
                                    bias_batch_stride=N if grouped else None)
    wgmma_gemm(a, b, out, M, N, K, epilogue, cfg, batches=batches)


def split_counters(M: int, N: int, cfg) -> int:
    """The i32 counters matmul_split_kernel needs: one per 64-row strip (a warpgroup's) of each output tile."""
    return -(-M // cfg.tile_m) * (cfg.tile_m // Wgmma.rows_per_warpgroup) * -(-N // cfg.tile_n)


@skc.func
def wgmma_gemm(a, b, out, M, N, K, epilogue_args, cfg, split=None, batches=1, stream_k=None, **maps):
    """`maps`: tensor maps of the payload's other tiles (an fp8 GEMM's block scales), for the TMA loader;
    `split`: (workspace, counters) of a split-K launch; `batches`: matrices of a batched launch; `stream_k`:
    (workspace, counters) of a stream-K launch."""
    needs_hopper("this GEMM")
    check_has("wgmma_gemm", "cfg", cfg, ("payload", "epilogue", "stages", "consumers", "tile_m", "tile_n"),
              "a MatmulConfig (its tiles, stages and epilogue)", "pass the kernel's constexpr config: "
              "wgmma_gemm(a, b, out, M, N, K, fused, cfg) with cfg = MatmulConfig(...) made on the host")
    dtype, dtype_b, out_dtype = _types(cfg)
    skc.hopper.kernel_attributes(cluster=(cfg.cluster, 1, 1))
    payload = cfg.payload()
    load = _hopper_loader(cfg, payload, a, b, M, N, K, maps)
    # with pingpong each stage has one reader: the consumer whose tile it holds
    readers = 1 if cfg.pingpong else cfg.consumers
    with InputTilePipeline(payload, cfg.stages, load, consumers=readers, cluster=cfg.cluster) as pipe:
        roles = WarpRoles(cfg.consumers, cfg.producer_registers, cfg.consumer_registers)
        k_tiles = skc.cdiv(K, cfg.tile_k)
        if split is not None:
            tiles = SplitKScheduler(M, N, cfg.tile_m, cfg.tile_n, k_tiles, cfg.split_k, cfg.group_m)
        elif stream_k is not None:
            tiles = (SplitTailScheduler if cfg.split_tail else StreamKScheduler)(M, N, cfg.tile_m, cfg.tile_n,
                                                                                  k_tiles, cfg.group_m)
        else:
            tiles = TileScheduler(M, N, cfg.tile_m, cfg.tile_n, cfg.group_m, cfg.cluster_m, batches, cfg.cluster_n)
        if roles.is_producer():
            roles.enter_producer()
            if load.is_issuing():
                if hasattr(load, "prefetch"):   # (optional in a loader's interface: docs/blocks.md)
                    load.prefetch()
                with pipe.producer() as producer:
                    for tile in tiles:
                        k_begin, k_end = tile.k_steps(k_tiles)
                        for k in range(k_begin, k_end):
                            with producer.acquire() as stage:
                                load(stage, k, a=_origin(cfg, "a", tile, tile.row0),
                                     b=_origin(cfg, "b", tile, tile.col0))
        else:
            roles.enter_consumer()
            warpgroup = roles.consumer_index()
            mma = _consumer_mma(cfg, dtype, dtype_b, warpgroup)
            acc = mma.zeros()
            if cfg.store == "direct":
                epilogue = DirectStoreEpilogue(out, out_dtype, epilogue_args)
            elif split is None:
                epilogue = TmaStoreEpilogue(out, out_dtype, epilogue_args, warpgroup, cfg.consumers,
                                            columns=cfg.epilogue_columns, buffers=cfg.epilogue_buffers,
                                            transposed=cfg.swap_ab)
            else:
                epilogue = SplitKEpilogue(out, *split, out_dtype, epilogue_args, cfg.split_k, warpgroup,
                                          cfg.consumers, cfg.tile_n)
            # stream-K: a tile split between two blocks is completed in the registers of its second part
            # (split tail: completed in the registers of its last share)
            fixup = (None if stream_k is None else
                     SplitTailFixup(*stream_k, tiles, warpgroup, cfg.consumers, cfg.tile_m) if cfg.split_tail else
                     StreamKFixup(*stream_k, warpgroup, cfg.consumers, cfg.tile_m))
            # turns at the tensor cores: over a whole tile's mainloop (pingpong), or each stage's MMAs (stage_turns)
            turn = WarpgroupTurns(cfg.consumers, warpgroup, enabled=cfg.pingpong or cfg.stage_turns)
            tile_turn = turn if cfg.pingpong else NO_TURN
            stage_turn = turn if cfg.stage_turns else NO_TURN
            others = cfg.consumers - 1 if cfg.pingpong else 0   # consumers whose tiles come between two of mine
            with epilogue, pipe.consumer(mma) as consumer:  # the epilogue's stores are flushed last
                if others:
                    consumer.skip(warpgroup * k_tiles)      # the earlier consumers' first tiles
                for tile in tiles.every(cfg.consumers, warpgroup) if others else tiles:
                    acc.zero()
                    k_begin, k_end = tile.k_steps(k_tiles)
                    with tile_turn:
                        _mainloop(consumer, mma, acc, tile, k_begin, k_end, stage_turn)
                    if others:
                        consumer.skip(others * k_tiles)
                    for part in acc.parts:   # (a pingpong consumer's 128-row tile: two)
                        if cfg.batched:
                            epilogue(part, tile.row0, tile.col0, tile.batch)
                        elif split is not None:
                            epilogue(part, tile.row0, tile.col0, tile.share)
                        elif fixup is not None:
                            if fixup(part, tile):
                                epilogue(part, tile.row0, tile.col0)
                        else:
                            epilogue(part, tile.row0, tile.col0)
                # (stage turns: every consumer takes one a stage, so the last goes back to the first consumer)
                turn.close(tiles.count() if cfg.pingpong else 0)


@skc.func
def _mainloop(consumer, mma, acc, tile, k_begin, k_end, turn):
    """The consumer's k-steps of one tile: a stage at a time, or (a TileOp with `stages_per_step` = n > 1) n
    stages at a time, the last (k-steps mod n) one at a time."""
    step = getattr(mma, "stages_per_step", 1)
    if step == 1:
        for k in range(k_begin, k_end):
            with consumer.acquire() as stage:
                mma.consume(acc, stage, tile, turn)
    else:
        for k in range(k_begin, k_end - (step - 1), step):
            with consumer.acquire(step) as run:
                mma.consume_run(acc, run, tile, turn)
        for k in range(k_end - (k_end - k_begin) % step, k_end):
            with consumer.acquire() as stage:
                mma.consume(acc, stage, tile, turn)


def _origin(cfg, name, tile, row0):
    """Where operand `name`'s tile starts: its first row, and its matrix of the batch if it has a batch dimension."""
    return (tile.batch, row0) if name in cfg.batched else row0


@skc.func
def mfma_gemm(a, b, out, M, N, K, epilogue_args, cfg):
    dtype = skc.bf16 if cfg.dtype == "bf16" else skc.f16
    payload = cfg.payload()
    load = LdsLoader(payload, a=(a, M, K, cfg.a_k_major), b=(b, N, K, cfg.b_k_major))
    row0, col0 = cfg.wave_corner(skc.thread_index() // skc.warp_size())
    mma = Mfma(cfg.wave_m, cfg.wave_n, cfg.tile_k, dtype, cfg.mfma, row0=row0, col0=col0)
    epilogue = DirectStoreEpilogue(out, dtype, epilogue_args)
    tiles = TileScheduler(M, N, cfg.tile_m, cfg.tile_n, cfg.group_m)
    k_tiles = skc.cdiv(K, cfg.tile_k)
    acc = mma.zeros()
    with LdsPipeline(payload, cfg.stages) as pipe, pipe.producer() as producer, pipe.consumer(mma) as consumer:
        for tile in tiles:
            acc.zero()
            load.fetch(0, a=tile.row0, b=tile.col0)
            for k in range(k_tiles):
                with producer.acquire() as stage:
                    load.commit(stage)
                load.fetch(k + 1, a=tile.row0, b=tile.col0)  # in flight during the MFMAs
                with consumer.acquire() as stage:
                    mma(acc, stage.a, stage.b)
            epilogue(acc, tile.row0, tile.col0)


def _types(cfg) -> tuple:
    """(A's type, B's type, the output's type) of a configuration."""
    if hasattr(cfg, "types"):
        return cfg.types()
    dtype = skc.bf16 if cfg.dtype == "bf16" else skc.f16
    return dtype, dtype, dtype


@skc.func
def _consumer_mma(cfg, dtype, dtype_b, warpgroup):
    """A consumer warpgroup's TileOp: for its 64 or 128 rows of the block's tile, or (pingpong) for all the rows of
    its own tiles — 128 rows with a StackedWgmma of the configuration's Wgmma (fp8 configurations refuse to stack
    a block-scaled one)."""
    parts = cfg.consumer_rows // Wgmma.rows_per_warpgroup
    if parts > 1:   # the 64-row parts of this consumer's rows: all of them (pingpong), else its share of the tile
        first = 0 if cfg.pingpong else warpgroup * parts
        mma = StackedWgmma(cfg.tile_n, cfg.tile_k, dtype, parts, dtype_b, first=first)
    else:
        mma = _tile_op(cfg)(cfg.tile_n, cfg.tile_k, dtype, warpgroup=0 if cfg.pingpong else warpgroup,
                            dtype_b=dtype_b)
    return mma


def _tile_op(cfg):
    """The TileOp class a configuration names (its `tile_op()`: the fp8 GEMMs'), by default Wgmma."""
    return cfg.tile_op() if hasattr(cfg, "tile_op") else Wgmma


def _hopper_loader(cfg, payload, a, b, M, N, K, maps=None):
    """The configured TileIO: TMA copies (B multicast across a cluster along M, A across one along N; `maps` for
    the payload's other tiles), vector loads of `cfg.vector_width` elements from the stored matrices, or a loader
    object the configuration names (its `build(payload, a=, b=)` makes it)."""
    if cfg.loader == "vector":
        shapes = cfg.stored_shapes(M, N, K)
        return VectorLoader(width=cfg.vector_width, in_flight=cfg.vector_in_flight, asynchronous=cfg.vector_async,
                            a=(a, *shapes["a"]), b=(b, *shapes["b"]))
    if cfg.loader == "tma":
        shared = ("a", cfg.cluster_n) if cfg.cluster_n > 1 else ("b", cfg.cluster_m)
        return TmaLoader(payload, a=a, b=b, multicast=shared, extents={"a": M} if cfg.a_box_rows else None,
                         **(maps or {}))
    return cfg.loader.build(payload, a=a, b=b)  # a TileIO the configuration brings (conv2d's im2col loader)


def _config_for(target, cfg, batched: bool = False):
    """cfg, checked to be the configuration of the composition for `target` (at compile time), and of a batched
    launch where the kernel is matmul_batched_kernel (only)."""
    kind = MatmulConfig if target.has("wgmma") else AmdMatmulConfig if target.has("mfma") else None
    if kind is None:
        raise frontend.current().error(f"the GEMM needs wgmma (sm_90a) or MFMA (gfx90a, gfx942); {target.name} has "
                                       "neither")
    if not isinstance(cfg, kind):
        raise frontend.current().error(f"the GEMM for {target.name} takes a {kind.__name__}, found "
                                       f"{type(cfg).__name__}", hint="let skc.blocks.matmul pick the configuration")
    if bool(getattr(cfg, "batched", "")) != batched:   # (the other kernels compute the first matrix alone)
        raise frontend.current().error(
            f"cfg.batched={getattr(cfg, 'batched', '')!r} is the configuration of "
            + ("a batched launch, which matmul_batched_kernel computes (this kernel computes one matrix)" if not batched
               else "one matrix, which matmul_kernel computes (matmul_batched_kernel's operands have a batch)"),
            hint="compile matmul_batched_kernel with batches= (conv.compile_arguments gives it for a grouped "
                 "convolution)" if not batched else "compile matmul_kernel, or give the config batched=")
    return cfg


# the host side (matmul(), its plans, configurations and batches) lives in matmul_host.py
__all__ = ["AmdMatmulConfig", "EpilogueSpec", "MatmulConfig", "matmul_batched_kernel", "matmul_kernel",
           "matmul_split_kernel", "matmul_stream_k_kernel"]
