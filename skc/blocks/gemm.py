"""The Hopper GEMM, composed from the blocks: C = A · B (+ fused epilogue) for bf16 and fp16.

A producer warpgroup streams A and B tiles into a pipeline with TMA; two consumer warpgroups
multiply them with wgmma and store their share of each output tile through shared memory with
TMA. The kernel is the composition below; every piece of it is a block shared with other kernels.
`matmul(a, b, ...)` is the host side: it reads the operands' layouts, picks a configuration and
launches a persistent grid.
"""
from __future__ import annotations

import functools

import skc

from .config import MatmulConfig
from .epilogue import EpilogueSpec, TmaStoreEpilogue
from .mma import Wgmma
from .pipeline import InputTilePipeline
from .roles import WarpRoles
from .scheduler import TileScheduler
from .tile_io import TmaLoader


@skc.kernel
def matmul_kernel(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32, K: skc.i32,
                  c_in, bias, alpha: skc.f32, beta: skc.f32, cfg: skc.constexpr):
    dtype = skc.bf16 if cfg.dtype == "bf16" else skc.f16
    payload = cfg.payload()
    skc.hopper.kernel_attributes(cluster=(cfg.cluster_m, 1, 1))
    pipe = InputTilePipeline(payload, cfg.stages, consumers=cfg.consumers, cluster=cfg.cluster_m)
    staging = skc.shared((cfg.consumers * cfg.staging_elements,), dtype, align=1024)
    roles = WarpRoles(cfg.consumers, cfg.producer_registers, cfg.consumer_registers)
    tiles = TileScheduler(M, N, cfg.tile_m, cfg.tile_n, cfg.group_m, cfg.cluster_m)
    k_tiles = skc.cdiv(K, cfg.tile_k)
    if roles.is_producer():
        roles.enter_producer()
        load = TmaLoader(payload, cfg.tile_k, a=a, b=b, multicast=("b", cfg.cluster_m))
        with pipe.producer() as producer:
            for tile in tiles:
                for k in range(k_tiles):
                    with producer.acquire() as stage:
                        load(stage, tile.row0, tile.col0, k)
    else:
        roles.enter_consumer()
        consumer = roles.consumer_index()
        mma = Wgmma(cfg.tile_n, cfg.tile_k, dtype, row0=consumer * 64)
        epilogue = TmaStoreEpilogue(out, cfg.tile_n, dtype, staging + consumer * cfg.staging_elements,
                                    cfg.consumers, cfg.epilogue, alpha, beta, c_in, bias, M, N)
        acc = mma.zeros()
        with pipe.consumer(mma) as consumer_role:
            for tile in tiles:
                acc.zero()
                for k in range(k_tiles):
                    with consumer_role.acquire() as stage:
                        mma(acc, stage.a, stage.b)
                epilogue(acc, tile.row0 + consumer * 64, tile.col0)
        epilogue.flush()
    pipe.close()


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


def matmul(a, b, out=None, *, bias=None, c=None, alpha=None, beta=None, activation=None,
           config: MatmulConfig = None):
    """out = activation(alpha · a @ b + beta · c + bias) on a Hopper GPU (or the interpreter).

    a (M x K) and b (K x N) are bf16 or fp16 tensors, row-major or transposed views of row-major
    ones. TMA needs 16-byte-aligned rows: K and N (and M for a transposed a) must be multiples of 8."""
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
    cfg = config or _config(M, N, K, dtype, a_k_major, b_k_major, device.target.max_shared_bytes, spec)
    if out is None:
        out = _empty_like(a, (M, N))
    boxes = cfg.boxes()
    maps = [skc.TensorMap(a_store, boxes["a"]), skc.TensorMap(b_store, boxes["b"]),
            skc.TensorMap(out, boxes["out"])]
    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.multiprocessors, cfg.cluster_m)
    matmul_kernel[grid, cfg.threads](*maps, M, N, K, c if c is not None else out, bias if bias is not None else out,
                                     float(alpha if alpha is not None else 1.0), float(beta if beta is not None else 0.0),
                                     cfg)
    return out


@functools.lru_cache(maxsize=256)
def _config(M, N, K, dtype, a_k_major, b_k_major, max_shared_bytes, spec) -> MatmulConfig:
    return MatmulConfig.for_problem(M, N, K, dtype, a_k_major, b_k_major, max_shared_bytes, epilogue=spec)


def _empty_like(a, shape):
    if hasattr(a, "new_empty"):  # torch
        return a.new_empty(shape)
    if isinstance(a, skc.DeviceArray):
        return skc.empty(shape, a.dtype)
    import numpy as np

    return np.empty(shape, a.dtype)


__all__ = ["matmul", "matmul_kernel", "MatmulConfig", "EpilogueSpec"]
