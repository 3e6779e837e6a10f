"""FP8 GEMMs end to end against cuBLASLt (torch._scaled_mm), same run, H200: per-tensor, block-wise (DeepSeek-V3
1x128 / 128x128 scales) and row-wise (scale_a M x 1, scale_b 1 x N), TFLOP/s of each and the relative error of each
against a float32 reference of the dequantized operands (bf16 outputs; per tensor and row-wise also f32 outputs).
Per tensor twice: both sides' defaults (each k-block added into f32) and both with use_fast_accum=True
("per-tensor-fast"). Prints a table last; JSON to $OUT/fp8_gemm.json when $OUT is set.

    python benchmarks/fp8_gemm.py [--shapes 4096x4096x4096,...] [--rep-ms 100] [--no-variants] [--variants A,B]
                                  [--kinds per-tensor,block,row-wise]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from triton.testing import do_bench

from fair import fair_times

import skc
from skc.blocks.fp8 import Fp8MatmulConfig

SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (4096, 7168, 16384), (4096, 24576, 1536), (128, 7168, 16384),
          (64, 4096, 7168)]
TARGETS = {(4096, 4096, 4096): (1335, 1176), (8192, 8192, 8192): (1285, 1089), (4096, 7168, 16384): (1233, 1161),
           (4096, 24576, 1536): (1155, 976), (128, 7168, 16384): (699, 550), (64, 4096, 7168): (231, 147)}


VARIANTS = {"block-ovl": {"overlap_scaling": True},   # two stages a step, one's scaling during the other's MMAs
            "block-ovl-turns": {"overlap_scaling": True, "stage_turns": True},
            "block-s4": {"stages": 4},                             # fewer stages
            "block-g4": {"group_m": 4},                            # another raster grouping
            "block-pp": {"tile_m": 64, "consumers": 2, "pingpong": True},  # the consumers take 64-row tiles in turn
            "block-m192": {"tile_m": 192, "consumers": 3, "producer_registers": 24,  # three consumer warpgroups
                           "consumer_registers": 160},
            # wider tiles (two 96- or 80-register fragments a thread: 240 registers for the consumers)
            "block-n192": {"tile_n": 192, "stages": 4, "producer_registers": 24, "consumer_registers": 240},
            "block-n144": {"tile_n": 144, "producer_registers": 24, "consumer_registers": 240},
            "block-n160": {"tile_n": 160, "producer_registers": 24, "consumer_registers": 240},
            "block-n176": {"tile_n": 176, "stages": 4, "producer_registers": 24, "consumer_registers": 240},
            # narrow tiles that give small-M problems a tile on (nearly) every SM
            "block-n56": {"tile_n": 56}, "block-m64n32": {"tile_m": 64, "consumers": 1, "tile_n": 32},
            # the consumers take turns issuing each stage's MMAs: one's fold runs during the other's MMAs
            "block-turns": {"stage_turns": True}, "block-n128-turns": {"stage_turns": True, "tile_n": 128},
            "block-n192-turns": {"stage_turns": True, "tile_n": 192, "stages": 4, "producer_registers": 24,
                                 "consumer_registers": 240},
            # each k-block's partial in two column halves (a 256-wide tile in the registers of 192)
            "block-n256-halves": {"tile_n": 256, "half_partials": True, "producer_registers": 24,
                                  "consumer_registers": 240},
            "block-n256-halves-turns": {"tile_n": 256, "half_partials": True, "stage_turns": True,
                                        "producer_registers": 24, "consumer_registers": 240},
            # one epilogue buffer a consumer: the shared memory of a fourth stage at 256 wide, a fifth at 192
            "block-n256-halves-turns-e1": {"tile_n": 256, "half_partials": True, "stage_turns": True,
                                           "epilogue_buffers": 1, "producer_registers": 24, "consumer_registers": 240},
            "block-n192-e1": {"tile_n": 192, "epilogue_buffers": 1, "producer_registers": 24,
                              "consumer_registers": 240},
            "block-n192-s4-e1": {"tile_n": 192, "stages": 4, "epilogue_buffers": 1, "producer_registers": 24,
                                 "consumer_registers": 240},
            # clusters of 2 along M sharing B (each block loads half its rows): cuBLASLt's block-wise kernels run
            # 128 x 128 x 128 tiles, 6 stages, in clusters of 2 (benchmarks/reference_kernels.py)
            "block-c2": {"cluster_m": 2},
            "block-n128-c2": {"tile_n": 128, "cluster_m": 2},
            "block-n128-c2-s6-e1": {"tile_n": 128, "cluster_m": 2, "stages": 6, "epilogue_buffers": 1},
            "block-n192-c2": {"tile_n": 192, "stages": 4, "cluster_m": 2, "producer_registers": 24,
                              "consumer_registers": 240},
            "block-n256-halves-turns-c2": {"tile_n": 256, "half_partials": True, "stage_turns": True, "cluster_m": 2,
                                           "producer_registers": 24, "consumer_registers": 240},
            # 224 wide in halves: N = 7168 in 32 whole tiles (192 leaves a third of a tile, 256 a wave's fraction)
            "block-n224-halves": {"tile_n": 224, "half_partials": True, "producer_registers": 24,
                                  "consumer_registers": 240},
            "block-n224-halves-turns": {"tile_n": 224, "half_partials": True, "stage_turns": True,
                                        "producer_registers": 24, "consumer_registers": 240},
            # stream-K: the last waves' k-steps shared evenly between the blocks (no SM idle in a part-full wave)
            "block-sk": {"stream_k": True},
            "block-n128-sk": {"tile_n": 128, "stream_k": True},
            "block-n192-sk": {"tile_n": 192, "stages": 4, "producer_registers": 24, "consumer_registers": 240,
                              "stream_k": True},
            "block-n256-halves-sk": {"tile_n": 256, "half_partials": True, "producer_registers": 24,
                                     "consumer_registers": 240, "stream_k": True},
            # the part-full last wave's tiles split along K (up to 4 shares)
            "block-st": {"split_tail": True},
            "block-n192-st": {"tile_n": 192, "stages": 4, "producer_registers": 24, "consumer_registers": 240,
                              "split_tail": True},
            "block-n128-st": {"tile_n": 128, "split_tail": True}}


VARIANTS_ON = True  # --no-variants: only the default configuration of each kind
ALL_KINDS = ("per-tensor", "block", "row-wise")
KINDS = ALL_KINDS   # --kinds: the scalings measured
PER_TENSOR_VARIANTS = {"pt-n128": {"tile_n": 128}, "pt-m64": {"tile_m": 64, "consumers": 1},
                       "pt-pp": {"tile_m": 64, "consumers": 2, "pingpong": True},
                       "pt-pp128": {"tile_m": 128, "tile_n": 128, "consumers": 2, "pingpong": True},
                       "pt-n56": {"tile_n": 56}, "pt-m64n32": {"tile_m": 64, "consumers": 1, "tile_n": 32},
                       "pt-m64n128": {"tile_m": 64, "consumers": 1, "tile_n": 128},
                       "pt-k256": {"tile_k": 256},   # two 128-byte chunks of K a stage: half the stage hand-overs
                       # each k-block added into f32 (the default): other widths and folds
                       "pt-n192": {"tile_n": 192, "stages": 4, "producer_registers": 24, "consumer_registers": 240},
                       "pt-n256-halves": {"tile_n": 256, "half_partials": True, "producer_registers": 24,
                                          "consumer_registers": 240},
                       "pt-n128-ovl": {"tile_n": 128, "overlap_scaling": True},
                       "pt-n128-c2": {"tile_n": 128, "cluster_m": 2},
                       "pt-n192-turns": {"tile_n": 192, "stages": 4, "producer_registers": 24,
                                         "consumer_registers": 240, "stage_turns": True},
                       # few rows: two consumers taking turns, or one with two stages a step
                       "pt-n64-c2": {"tile_m": 128, "consumers": 2, "tile_n": 64},
                       "pt-m64n128-ovl": {"tile_m": 64, "consumers": 1, "tile_n": 128, "overlap_scaling": True},
                       "pt-m64n64-ovl": {"tile_m": 64, "consumers": 1, "tile_n": 64, "overlap_scaling": True},
                       "pt-m64n48-k128": {"tile_m": 64, "consumers": 1, "tile_n": 48, "tile_k": 128},
                       # more of the SMs streaming B for M <= 64 (128 tiles of 64 x 32 at N = 4096; 64 x 64 in two
                       # shares of K)
                       "pt-m64n32-k256": {"tile_m": 64, "consumers": 1, "tile_n": 32, "tile_k": 256},
                       "pt-m64n40-k256": {"tile_m": 64, "consumers": 1, "tile_n": 40, "tile_k": 256},
                       "pt-m64n64-split2": {"tile_m": 64, "consumers": 1, "tile_n": 64, "split_k": 2},
                       "pt-m64n64": {"tile_m": 64, "consumers": 1, "tile_n": 64},
                       "pt-n192-c2": {"tile_n": 192, "stages": 4, "producer_registers": 24, "consumer_registers": 240,
                                      "cluster_m": 2},
                       # three consumers of 64 rows (more warpgroups to take turns at the tensor cores)
                       "pt-m192n128": {"tile_m": 192, "consumers": 3, "tile_n": 128, "producer_registers": 24,
                                       "consumer_registers": 160},
                       # K in shares (split-K) for problems with few tiles
                       "pt-split2": {"split_k": 2}, "pt-split4": {"split_k": 4},
                       "pt-n128-split4": {"tile_n": 128, "split_k": 4},
                       "pt-turns": {"stage_turns": True}, "pt-sk": {"stream_k": True}, "pt-st": {"split_tail": True},
                       # one row of small tiles (M <= 64): 64 wide (the default before the eleventh session), and
                       # clusters along N sharing A (measured slower; benchmarks/NOTES.md)
                       "pt-n64": {"tile_n": 64, "tile_k": 128}, "pt-cluster-n2": {"tile_n": 64, "cluster_n": 2},
                       "pt-cluster-n4": {"tile_n": 64, "cluster_n": 4},
                       # clusters of 2 along M sharing B (each block loads half its rows)
                       "pt-c2": {"cluster_m": 2}, "pt-n128-c2": {"tile_n": 128, "cluster_m": 2},
                       # the other tile shapes of the bf16 GEMM's wave rule (tile_rules.TILE_SPEEDS): 192 rows are
                       # three consumer warpgroups; 192 x 192 fits three stages, or four with one epilogue buffer
                       "pt-192x192": {"tile_m": 192, "tile_n": 192, "consumers": 3},
                       "pt-192x192-s4": {"tile_m": 192, "tile_n": 192, "consumers": 3, "epilogue_buffers": 1},
                       "pt-128x192": {"tile_n": 192}, "pt-192x128": {"tile_m": 192, "tile_n": 128, "consumers": 3},
                       # twenty-third session: tiles that fill the SMs at few rows, each k-block added into f32 (128 x
                       # 7168: 64 x 112 makes 128 tiles where 64 x 128 makes 112; 64 x 4096: 32 or 40 wide)
                       "pt-m64n112-ovl": {"tile_m": 64, "consumers": 1, "tile_n": 112, "overlap_scaling": True},
                       "pt-m64n96-ovl": {"tile_m": 64, "consumers": 1, "tile_n": 96, "overlap_scaling": True},
                       "pt-m128n56": {"tile_m": 128, "consumers": 2, "tile_n": 56},
                       "pt-n32-k256": {"tile_n": 32, "tile_k": 256}, "pt-n40-k256": {"tile_n": 40, "tile_k": 256},
                       "pt-n32-ovl": {"tile_n": 32, "tile_k": 128, "overlap_scaling": True},
                       "pt-n32-ovl-s16": {"tile_n": 32, "tile_k": 128, "overlap_scaling": True, "stages": 16},
                       "pt-n48-ovl": {"tile_n": 48, "tile_k": 128, "overlap_scaling": True},
                       "pt-n48-ovl-s14": {"tile_n": 48, "tile_k": 128, "overlap_scaling": True, "stages": 14},
                       "pt-m64n128-ovl-c2": {"tile_m": 64, "consumers": 1, "tile_n": 128, "overlap_scaling": True,
                                             "cluster_m": 2},
                       "pt-m64n112-ovl-c2": {"tile_m": 64, "consumers": 1, "tile_n": 112, "overlap_scaling": True,
                                             "cluster_m": 2},
                       "pt-m64n112-fast": {"tile_m": 64, "consumers": 1, "tile_n": 112, "fast_accum": True},
                       "pt-n112-ovl": {"tile_n": 112, "overlap_scaling": True},
                       # cuBLASLt's tiles at 256 x 7168 x 16384 and 4096 x 7168 x 16384 (112 x 128 and 128 x 128,
                       # clusters of 2)
                       "pt-n112-ovl-c2": {"tile_n": 112, "overlap_scaling": True, "cluster_m": 2},
                       "pt-n112-c2": {"tile_n": 112, "cluster_m": 2},
                       "pt-n128-ovl-c2": {"tile_n": 128, "overlap_scaling": True, "cluster_m": 2},
                       "pt-n112-ovl-cn2": {"tile_n": 112, "overlap_scaling": True, "cluster_n": 2},
                       "pt-n112-cn2": {"tile_n": 112, "cluster_n": 2},
                       # a seventh stage, beside one epilogue buffer (cuBLASLt holds 7 at 112 x 128)
                       "pt-n112-ovl-c2-s7": {"tile_n": 112, "overlap_scaling": True, "cluster_m": 2, "stages": 7,
                                             "epilogue_buffers": 1},
                       "pt-n112-ovl-s7": {"tile_n": 112, "overlap_scaling": True, "stages": 7, "epilogue_buffers": 1},
                       "pt-n112-c2-s7": {"tile_n": 112, "cluster_m": 2, "stages": 7, "epilogue_buffers": 1},
                       "pt-n112-s7": {"tile_n": 112, "stages": 7, "epilogue_buffers": 1},
                       "pt-n112-s7-fast": {"tile_n": 112, "stages": 7, "epilogue_buffers": 1, "fast_accum": True},
                       "pt-n128-fast": {"tile_n": 128, "fast_accum": True},
                       # 128 < M <= 192: one row of 192 x 64 tiles (the rule's for shallow K), and out^T = b^T a^T on
                       # 128 x M/2 tiles (swap_ab) for the fast form too
                       "pt-one-row-192": {"tile_m": 192, "consumers": 3, "tile_n": 64, "epilogue_buffers": 1,
                                          "overlap_scaling": True},
                       "pt-fast-one-row-192": {"tile_m": 192, "consumers": 3, "tile_n": 64, "epilogue_buffers": 1,
                                               "fast_accum": True},
                       "pt-fast-swapped": {"tile_m": 128, "consumers": 2, "swap_ab": True, "fast_accum": True},
                       "pt-swapped-64": {"tile_m": 64, "consumers": 1, "swap_ab": True}}


def operands(M, N, K):
    a = (torch.randn(M, K, device="cuda") * 8).clamp(-400, 400).to(torch.float8_e4m3fn)
    b = (torch.randn(N, K, device="cuda") * 8).clamp(-400, 400).to(torch.float8_e4m3fn).t()  # K x N column-major
    return a, b


def block_scales(M, N, K):
    sa = torch.rand(M, K // 128, device="cuda") * 2 ** -6 + 2 ** -8
    sb = torch.rand(K // 128, -(-N // 128), device="cuda") * 2 ** -6 + 2 ** -8
    return sa.t().contiguous().t(), sb  # scale_a outer-dim-major, as cuBLASLt's block-wise path wants it


def block_reference(a, b, sa, sb):
    K, N = b.shape
    a32 = a.float() * sa.repeat_interleave(128, dim=1)[:, :K]
    b32 = b.float() * sb.repeat_interleave(128, dim=0).repeat_interleave(128, dim=1)[:K, :N]
    return a32 @ b32


def relative_error(got, expected):
    return ((got.float() - expected).norm() / expected.norm()).item()


def cublas_block(a, b, sa, sb):
    """torch._scaled_mm block-wise, trying the scale layouts it may want; (function, layout used) or the errors."""
    errors = []
    for name, sa_x, sb_x in (("sa outer-dim-major, sb row-major", sa, sb.contiguous()),
                             ("sa outer-dim-major, sb outer-dim-major", sa, sb.t().contiguous().t()),
                             ("sa row-major, sb row-major", sa.contiguous(), sb.contiguous())):
        try:
            fn = (lambda sa_x=sa_x, sb_x=sb_x: torch._scaled_mm(a, b, scale_a=sa_x, scale_b=sb_x,
                                                               out_dtype=torch.bfloat16))
            fn()
            return fn, name
        except Exception as error:  # noqa: BLE001 (reported)
            errors.append(f"{name}: {str(error).splitlines()[0][:160]}")
    return None, "; ".join(errors)


def swapped_or_not(M, N, K, **fields):
    """Fp8MatmulConfig.for_fp8_problem's configuration with these fields; with swap_ab, for the problem b^T a^T (N x M),
    M / 2 wide on 128-row tiles, M wide on 64-row ones (rounded up to 8), unless the fields name a width."""
    if fields.get("swap_ab"):
        width = -(-M // 16) * 8 if fields.get("tile_m", 128) == 128 else -(-M // 8) * 8
        return Fp8MatmulConfig.for_fp8_problem(N, M, K, **{"tile_n": width, **fields})
    return Fp8MatmulConfig.for_fp8_problem(M, N, K, **fields)


def variant_config(M, N, K, log, kind, **fields):
    """The variant's configuration for this problem, or None (logged) where it does not apply (stage turns where
    one consumer computes the tile)."""
    try:
        return swapped_or_not(M, N, K, **fields)
    except ValueError as error:
        log.write(f"{M}x{N}x{K} {kind}: not measured ({error})\n")
        return None


def measure(M, N, K, rep_ms, rows, log):
    """The rows of each kind in KINDS for one shape, on the same operands."""
    flops = 2 * M * N * K
    tflops = lambda ms: flops / ms / 1e9
    timer = lambda fn: do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")
    a, b = operands(M, N, K)
    for kind, measure_kind in (("per-tensor", measure_per_tensor), ("block", measure_block),
                               ("row-wise", measure_row_wise)):
        if kind in KINDS:
            measure_kind(M, N, K, a, b, timer, tflops, rows, log)


def measure_per_tensor(M, N, K, a, b, timer, tflops, rows, log):
    """Per tensor: both sides' defaults, f32 outputs' errors, both with use_fast_accum, and the variants."""
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    expected = (a.float() @ b.float()) * (0.01 * 0.02)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    skc_fn = lambda: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
    skc_fn()
    torch.cuda.synchronize()
    cublas = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
    row = {"shape": f"{M}x{N}x{K}", "kind": "per-tensor", "skc_err": relative_error(out, expected),
           "cublas_err": relative_error(cublas, expected)}
    pair = {"skc": skc_fn, "cublas": lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)}
    times = fair_times(pair, timer)
    row["skc"], row["cublas"] = tflops(times["skc"]), tflops(times["cublas"])
    # f32 out, where the accumulation's bits show (bf16 out rounds them away)
    row["skc_err_f32"] = relative_error(skc.blocks.matmul(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.float32),
                                        expected)
    row["cublas_err_f32"] = relative_error(torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.float32),
                                           expected)
    rows.append(row)
    # use_fast_accum=True on both sides: the whole K in fp8 wgmma's accumulator
    fast = {"skc": lambda: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                             use_fast_accum=True),
            "cublas": lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                               use_fast_accum=True)}
    fast_row = {"shape": row["shape"], "kind": "per-tensor-fast", "skc_err": relative_error(fast["skc"](), expected),
                "cublas_err": relative_error(fast["cublas"](), expected)}
    fast_row["skc_err_f32"] = relative_error(skc.blocks.matmul(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.float32,
                                                               use_fast_accum=True), expected)
    fast_row["cublas_err_f32"] = relative_error(torch._scaled_mm(a, b, scale_a=sa, scale_b=sb,
                                                                 out_dtype=torch.float32, use_fast_accum=True),
                                                expected)
    times = fair_times(fast, timer)
    fast_row["skc"], fast_row["cublas"] = tflops(times["skc"]), tflops(times["cublas"])
    rows.append(fast_row)
    for kind, fields in (PER_TENSOR_VARIANTS.items() if VARIANTS_ON else ()):
        config = variant_config(M, N, K, log, kind, **fields)
        if config is None:
            continue
        out.fill_(float("nan"))
        fn = (lambda config=config: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                                      config=config))
        fn()
        torch.cuda.synchronize()
        times = fair_times(dict(pair, variant=fn), timer)   # in turn with the default and cuBLAS
        rows.append({"shape": row["shape"], "kind": kind, "skc_err": relative_error(out, expected),
                     "skc": tflops(times["variant"]), "skc_default": tflops(times["skc"]),
                     "cublas": tflops(times["cublas"]), "cublas_err": row["cublas_err"]})


def measure_block(M, N, K, a, b, timer, tflops, rows, log):
    """Block-wise (1 x 128 and 128 x 128 scales): the default against cuBLASLt's, and the variants."""
    sa, sb = block_scales(M, N, K)
    expected = block_reference(a, b, sa, sb)
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    skc_fn = lambda: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
    skc_fn()
    torch.cuda.synchronize()
    row = {"shape": f"{M}x{N}x{K}", "kind": "block", "skc_err": relative_error(out, expected)}
    cublas_fn, how = cublas_block(a, b, sa, sb)
    log.write(f"{M}x{N}x{K} cuBLAS block-wise: {how}\n")
    calls = {"skc": skc_fn}
    if cublas_fn is not None:
        row["cublas_err"] = relative_error(cublas_fn(), expected)
        calls["cublas"] = cublas_fn
    times = fair_times(calls, timer)
    row.update({name: tflops(t) for name, t in times.items()})
    rows.append(row)
    # variants of the block-scaled GEMM (other TileOp or tiles), measured on the same data, each in turn with the
    # default and cuBLAS (its "skc_default" the default's figure in its own rounds)
    variants = []
    for kind, fields in (VARIANTS.items() if VARIANTS_ON else ()):
        config = variant_config(M, N, K, log, kind, block_scaled=True, **fields)
        if config is None:
            continue
        out.fill_(float("nan"))
        fn = (lambda config=config: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                                      config=config))
        fn()
        torch.cuda.synchronize()
        variant = {"shape": f"{M}x{N}x{K}", "kind": kind, "skc_err": relative_error(out, expected),
                   "cublas_err": row.get("cublas_err")}
        times = fair_times(dict(calls, variant=fn), timer)
        variant.update(skc=tflops(times["variant"]), skc_default=tflops(times["skc"]))
        if "cublas" in times:
            variant["cublas"] = tflops(times["cublas"])
        variants.append(variant)
    rows.extend(variants)


def measure_row_wise(M, N, K, a, b, timer, tflops, rows, log):
    """Row-wise (scale_a M x 1, scale_b 1 x N, as torchao's "rowwise" float8 calls torch._scaled_mm): both sides'
    defaults, bf16 out (and f32 outputs' errors), in turn with skc's per-tensor kernel of the same operands (the same
    kernel but for its epilogue's scale vectors: "skc_default" is the per-tensor figure in the same rounds)."""
    sa = torch.rand(M, 1, device="cuda") * 2 ** -6 + 2 ** -8
    sb = torch.rand(1, N, device="cuda") * 2 ** -6 + 2 ** -8
    expected = (a.float() @ b.float()) * sa * sb
    out = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    one = torch.tensor(0.01, device="cuda")
    calls = {"skc": lambda: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16),
             "cublas": lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16),
             "per_tensor": lambda: skc.blocks.matmul(a, b, out, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)}
    calls["skc"]()
    torch.cuda.synchronize()
    row = {"shape": f"{M}x{N}x{K}", "kind": "row-wise", "skc_err": relative_error(out, expected),
           "cublas_err": relative_error(calls["cublas"](), expected)}
    row["skc_err_f32"] = relative_error(skc.blocks.matmul(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.float32),
                                        expected)
    row["cublas_err_f32"] = relative_error(torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.float32),
                                           expected)
    times = fair_times(calls, timer)
    row.update(skc=tflops(times["skc"]), cublas=tflops(times["cublas"]), skc_default=tflops(times["per_tensor"]))
    rows.append(row)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES))
    parser.add_argument("--rep-ms", type=int, default=100)
    parser.add_argument("--no-variants", action="store_true", help="only the default configuration of each kind")
    parser.add_argument("--variants", help="only these variants (a comma list of their names)")
    parser.add_argument("--kinds", default=",".join(ALL_KINDS), help=f"the scalings measured, of {','.join(ALL_KINDS)}")
    args = parser.parse_args()
    global VARIANTS_ON, KINDS
    VARIANTS_ON = not args.no_variants
    KINDS = tuple(kind for kind in ALL_KINDS if kind in args.kinds.split(","))
    if args.variants:
        for table in (VARIANTS, PER_TENSOR_VARIANTS):
            for name in [name for name in table if name not in args.variants.split(",")]:
                del table[name]
    out_dir = os.environ.get("OUT")
    log = open(os.path.join(out_dir, "fp8_gemm.log"), "w") if out_dir else sys.stderr  # noqa: SIM115
    rows = []
    for shape in args.shapes.split(","):
        M, N, K = map(int, shape.split("x"))
        try:
            measure(M, N, K, args.rep_ms, rows, log)
        except Exception:  # noqa: BLE001 (one failing shape must not hide the others)
            log.write(f"{shape}: {traceback.format_exc()}\n")
            rows.append({"shape": shape, "kind": "error"})
        log.flush()
    if out_dir:
        with open(os.path.join(out_dir, "fp8_gemm.json"), "w") as f:
            json.dump(rows, f, indent=1)
    print(f"{'shape':>18} {'kind':>10} {'skc':>7} {'cuBLAS':>7} {'ratio':>6} {'target':>6} {'skc err':>9} "
          f"{'cuBLAS err':>10}")
    ratios = {"per-tensor": [], "per-tensor-fast": [], "block": [], "row-wise": [],
              **{kind: [] for kind in (*PER_TENSOR_VARIANTS, *VARIANTS)}}
    for r in rows:
        if r["kind"] == "error":
            print(f"{r['shape']:>18} error (see log)")
            continue
        cublas = r.get("cublas")
        ratio = r["skc"] / cublas if cublas else float("nan")
        if cublas:
            ratios[r["kind"]].append(ratio)
        dims = tuple(map(int, r["shape"].split("x")))
        target = TARGETS.get(dims, (0, 0))[0 if not r["kind"].startswith("block") else 1]
        baseline = "skc's per-tensor kernel" if r["kind"] == "row-wise" else "the default"
        default = f"  ({baseline} in the same rounds: {r['skc_default']:.0f})" if "skc_default" in r else ""
        if "skc_err_f32" in r:
            default += f"  f32 out: skc err {r['skc_err_f32']:.2e}, cuBLAS {r['cublas_err_f32']:.2e}"
        print(f"{r['shape']:>18} {r['kind']:>10} {r['skc']:7.0f} {cublas or float('nan'):7.0f} {ratio:6.2f} "
              f"{target:6d} {r['skc_err']:9.2e} {r.get('cublas_err') or float('nan'):10.2e}{default}")
    for kind, values in ratios.items():
        if values:
            print(f"geomean skc/cuBLAS {kind}: {math.exp(sum(map(math.log, values)) / len(values)):.3f}")


if __name__ == "__main__":
    main()
