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
from .config import MatmulConfig
from .epilogue import DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, TmaStoreEpilogue
from .lds import LdsLoader
from .mfma import Mfma
from .mma import Wgmma
from .pingpong import LdsPipeline
from .pipeline import InputTilePipeline
from .roles import WarpRoles
from .scheduler import TileScheduler
from .tile_io import TmaLoader, VectorLoader


@skc.kernel
def matmul_kernel(a, b, out, M: skc.i32, N: skc.i32, K: skc.i32, c_in, bias, alpha: skc.f32, beta: skc.f32,
                  cfg: skc.constexpr):
    """a, b and out are tensor maps on Hopper (MatmulConfig), pointers on AMD (AmdMatmulConfig)."""
    target = skc.current_target()
    cfg = _config_for(target, cfg)
    epilogue = EpilogueArgs(cfg.epilogue, M, N, alpha=alpha, beta=beta, c=c_in, bias=bias)
    if target.has("wgmma"):
        wgmma_gemm(a, b, out, M, N, K, epilogue, cfg)
    else:
        mfma_gemm(a, b, out, M, N, K, epilogue, cfg)


@skc.func
def wgmma_gemm(a, b, out, M, N, K, epilogue_args, cfg):
    dtype = skc.bf16 if cfg.dtype == "bf16" else skc.f16
    skc.hopper.kernel_attributes(cluster=(cfg.cluster_m, 1, 1))
    payload = cfg.payload()
    load = _hopper_loader(cfg, payload, a, b, M, N, K)
    with InputTilePipeline(payload, cfg.stages, load, consumers=cfg.consumers, cluster=cfg.cluster_m) as pipe:
        roles = WarpRoles(cfg.consumers, cfg.producer_registers, cfg.consumer_registers)
        tiles = TileScheduler(M, N, cfg.tile_m, cfg.tile_n, cfg.group_m, cfg.cluster_m)
        k_tiles = skc.cdiv(K, cfg.tile_k)
        if roles.is_producer():
            roles.enter_producer()
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
        else:
            roles.enter_consumer()
            warpgroup = roles.consumer_index()
            mma = Wgmma(cfg.tile_n, cfg.tile_k, dtype, warpgroup=warpgroup)
            acc = mma.zeros()
            epilogue = TmaStoreEpilogue(out, dtype, epilogue_args, warpgroup, cfg.consumers)
            with epilogue, pipe.consumer(mma) as consumer:  # the epilogue's stores are flushed last
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with consumer.acquire() as stage:
                            mma(acc, stage.a, stage.b)
                    epilogue(acc, tile.row0, tile.col0)


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


def _hopper_loader(cfg, payload, a, b, M, N, K):
    """The configured TileIO: TMA copies (B multicast across a cluster), vector loads of the stored matrices, or
    a loader object the configuration names (its `build(payload, a=, b=)` makes it)."""
    if cfg.loader == "vector":
        shapes = cfg.stored_shapes(M, N, K)
        return VectorLoader(a=(a, *shapes["a"]), b=(b, *shapes["b"]))
    if cfg.loader == "tma":
        return TmaLoader(payload, a=a, b=b, multicast=("b", cfg.cluster_m))
    return cfg.loader.build(payload, a=a, b=b)  # a TileIO the configuration brings (conv2d's im2col loader)


def _config_for(target, cfg):
    """cfg, checked to be the configuration of the composition for `target` (at compile time)."""
    kind = MatmulConfig if target.has("wgmma") else AmdMatmulConfig if target.has("mfma") else None
    if kind is None:
        raise frontend.current().error(f"the GEMM needs wgmma (sm_90a) or MFMA (gfx90a, gfx942); {target.name} has "
                                       "neither")
    if not isinstance(cfg, kind):
        raise frontend.current().error(f"the GEMM for {target.name} takes a {kind.__name__}, found "
                                       f"{type(cfg).__name__}", hint="let skc.blocks.matmul pick the configuration")
    return cfg

# matmul(), the host side (its plans, configurations and batches), lives in matmul_host.py.

__all__ = ["AmdMatmulConfig", "EpilogueSpec", "MatmulConfig", "matmul_kernel"]
