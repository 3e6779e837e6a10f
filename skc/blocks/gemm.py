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

import functools

import skc
from skc import frontend, ir

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


# -- the host side -------------------------------------------------------------------------------
def _storage(x, k_major_if_row_major: bool):
    """(the row-major array holding x's elements, whether that makes the operand K-major)."""
    strides = x.stride() if callable(getattr(x, "stride", None)) else tuple(
        s // x.itemsize for s in getattr(x, "strides", ()))
    if len(x.shape) != 2:
        raise skc.LaunchError(f"matmul takes 2-D operands, found shape {tuple(x.shape)}")
    rows, cols = x.shape
    if strides and tuple(strides) == (1, rows) and not (rows == 1 or cols == 1):
        return x.T, not k_major_if_row_major  # a transposed view of a row-major array
    if strides and strides[1] != 1 and cols > 1:
        raise skc.LaunchError("matmul's operands must be row-major or transposed views of row-major arrays")
    return x, k_major_if_row_major


def _dtype_name(x) -> str:
    name = str(x.dtype)
    for candidate, label in (("bfloat16", "bf16"), ("bf16", "bf16"), ("float16", "f16"), ("f16", "f16")):
        if candidate in name:
            return label
    raise skc.LaunchError(f"matmul multiplies bf16 or fp16 operands, found {x.dtype}")


def matmul(a, b, out=None, *, bias=None, c=None, alpha=None, beta=None, activation=None, config=None):
    """out = activation(alpha · a @ b + beta · c + bias) on the current device: a Hopper GPU, an AMD CDNA GPU,
    or the interpreter modelling either.

    a (M x K) and b (K x N) are bf16 or fp16 tensors, row-major or transposed views of row-major ones;
    out, c and bias are row-major. Rows are copied 16 bytes at a time (TMA on Hopper, vector loads on AMD):
    K and N (and M for a transposed a) must be multiples of 8. `config` is a MatmulConfig (Hopper) or an
    AmdMatmulConfig (AMD); by default one is chosen for the problem."""
    dtype = _dtype_name(a)
    if _dtype_name(b) != dtype:
        raise skc.LaunchError(f"a is {dtype} and b is {_dtype_name(b)}; matmul needs one type")
    M, K = a.shape
    if b.shape[0] != K:
        raise skc.LaunchError(f"cannot multiply {tuple(a.shape)} by {tuple(b.shape)}: inner dimensions differ")
    N = b.shape[1]
    a_store, a_k_major = _storage(a, True)
    b_store, b_k_major = _storage(b, False)
    device = skc.current_device()
    spec = EpilogueSpec(alpha=alpha is not None, beta=c is not None, bias=bias is not None, activation=activation)
    if out is None:
        out = _empty_like(a, (M, N))
    problem = (M, N, K, dtype, a_k_major, b_k_major)
    if config is not None and (config.dtype, config.a_k_major, config.b_k_major) != problem[3:]:
        raise skc.LaunchError(f"the config is for {config.dtype} with a_k_major={config.a_k_major}, b_k_major="
                              f"{config.b_k_major}; the operands are {dtype} with a_k_major={a_k_major}, "
                              f"b_k_major={b_k_major}")
    extras = (c if c is not None else out, bias if bias is not None else out,
              float(alpha if alpha is not None else 1.0), float(beta if beta is not None else 0.0))
    launch = _launch_mfma if device.target.has("mfma") else _launch_wgmma
    launch(device, a_store, b_store, out, problem, extras, config or _config(device.target, *problem, spec))
    return out


def _launch_wgmma(device, a, b, out, problem, extras, cfg: MatmulConfig):
    M, N, K = problem[:3]
    boxes = cfg.boxes()
    if cfg.loader == "vector":  # the producer reads the operands through plain pointers
        maps = [a, b, skc.TensorMap(out, boxes["out"])]
    else:
        maps = [skc.TensorMap(a, boxes["a"]), skc.TensorMap(b, boxes["b"]), skc.TensorMap(out, boxes["out"])]
    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.multiprocessors, cfg.cluster_m)
    matmul_kernel[grid, cfg.threads](*maps, M, N, K, *extras, cfg)


def _launch_mfma(device, a, b, out, problem, extras, cfg: AmdMatmulConfig):
    M, N, K, _, a_k_major, b_k_major = problem
    for what, extent, name in ((a_k_major, K, "K"), (not a_k_major, M, "M (a is transposed)"),
                               (b_k_major, K, "K (b is transposed)"), (not b_k_major, N, "N")):
        if what and extent % 8:
            raise skc.LaunchError(f"the AMD GEMM copies 16-byte rows: {name} must be a multiple of 8, found {extent}")
    if _storage(out, True)[0] is not out:
        raise skc.LaunchError("the AMD GEMM writes a row-major out, found a transposed view")
    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.multiprocessors * cfg.blocks_per_cu)
    matmul_kernel[grid, cfg.threads](a, b, out, M, N, K, *extras, cfg)


@functools.lru_cache(maxsize=256)
def _config(target, M, N, K, dtype, a_k_major, b_k_major, spec):
    if target.has("mfma"):
        return AmdMatmulConfig.for_problem(M, N, K, dtype, a_k_major, b_k_major, epilogue=spec)
    return MatmulConfig.for_problem(M, N, K, dtype, a_k_major, b_k_major, target.max_shared_bytes, epilogue=spec)


def compile_arguments(target, M: int = 4096, N: int = 4096, K: int = 4096, dtype: str = "bf16", config=None) -> dict:
    """matmul_kernel's arguments for `Kernel.compile` without data (skc compile, tests): the configuration
    matmul() picks for an M x N x K problem on `target` (or `config`), tensor-map types of its boxes (Hopper)
    or pointer types (AMD) for the operands, and the block size."""
    target = skc.get_target(target)
    pointer = skc.Ptr[skc.bf16 if dtype == "bf16" else skc.f16]
    cfg = config or _config(target, M, N, K, dtype, True, False, EpilogueSpec())
    if target.has("mfma"):
        operands = {"a": pointer, "b": pointer, "out": pointer}
    else:
        boxes = cfg.boxes()
        operands = {name: ir.TensorMapType(ir.ScalarType(dtype), boxes[name], 128) for name in ("a", "b", "out")}
    return dict(operands, c_in=pointer, bias=pointer, cfg=cfg, block=cfg.threads)


def _empty_like(a, shape):
    if hasattr(a, "new_empty"):  # torch
        return a.new_empty(shape)
    if isinstance(a, skc.DeviceArray):
        return skc.empty(shape, a.dtype)
    import numpy as np

    return np.empty(shape, a.dtype)


__all__ = ["matmul", "matmul_kernel", "compile_arguments", "MatmulConfig", "AmdMatmulConfig", "EpilogueSpec"]
