"""Swapped operands for few rows: out^T = b^T a^T, M becoming wgmma's N (any multiple of 8): the kernel's speed only
(the output lands transposed in a scratch N x M tensor, which no matmul returns), against the default and the vendor
library at sustained load (fair.sustained, medians of 3 rounds), fp8 per tensor and bf16, at M x 7168 x 16384.
Run: python benchmarks/swapped_operands_ab.py 160,136,192 (benchmarks/NOTES.md, twenty-fifth session)."""
import sys
import torch
import skc
from fair import report, sustained
from fp8_gemm import operands
from skc.blocks.fp8 import Fp8MatmulConfig
from skc.blocks import MatmulConfig


def r8(x):
    return -(-x // 8) * 8


for M in map(int, sys.argv[1].split(",")):
    N, K = 7168, 16384
    flops = 2 * M * N * K
    # fp8 per tensor
    a, b = operands(M, N, K)           # a M x K, b K x N column-major
    sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
    outT = torch.empty(N, M, device="cuda", dtype=torch.bfloat16)
    ref = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
    calls = {"default": lambda: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16),
             "cublas": lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)}
    variants = {"sw128x%d" % r8(-(-M // 2)): {"tile_m": 128, "tile_n": r8(-(-M // 2))},
                "sw128x%d-ovl" % r8(-(-M // 2)): {"tile_m": 128, "tile_n": r8(-(-M // 2)), "overlap_scaling": True},
                "sw64x%d" % r8(M): {"tile_m": 64, "consumers": 1, "tile_n": r8(M)}}
    for name, f in variants.items():
        try:
            cfg = Fp8MatmulConfig.for_fp8_problem(N, M, K, **f)
            fn = (lambda cfg=cfg: skc.blocks.matmul(b.t(), a.t(), outT, scale_a=sb, scale_b=sa,
                                                    out_dtype=torch.bfloat16, config=cfg))
            fn(); torch.cuda.synchronize()
            err = (outT.t().float() - ref.float()).abs().max().item()
            print(f"fp8 {M} {name} {cfg.tile_m}x{cfg.tile_n} s{cfg.stages} max diff vs cuBLASLt {err:.3g}")
            calls[name] = fn
        except Exception as e:  # noqa: BLE001
            print(f"fp8 {M} {name}: {type(e).__name__}: {str(e)[:200]}")
    reps = max(10, int(150 / (flops / 1.0e15 * 1e3)))
    report(f"fp8 per-tensor {M}x{N}x{K} reps={reps}", sustained(calls, flops, reps, 3), 20)
    # bf16
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
    ref = a @ b
    calls = {"default": lambda: skc.blocks.matmul(a, b, out), "cublas": lambda: torch.matmul(a, b, out=out)}
    for name, f in variants.items():
        if "ovl" in name:
            continue
        try:
            cfg = MatmulConfig.for_problem(N, M, K, "bf16", False, True, multiprocessors=132, **f)
            fn = lambda cfg=cfg: skc.blocks.matmul(b.t(), a.t(), outT, config=cfg)
            fn(); torch.cuda.synchronize()
            err = ((outT.t().float() - ref.float()).abs().max() / ref.float().abs().max()).item()
            print(f"bf16 {M} {name} {cfg.tile_m}x{cfg.tile_n} s{cfg.stages} rel diff vs cuBLAS {err:.3g}")
            calls[name] = fn
        except Exception as e:  # noqa: BLE001
            print(f"bf16 {M} {name}: {type(e).__name__}: {str(e)[:200]}")
    reps = max(10, int(150 / (flops / 0.6e15 * 1e3)))
    report(f"bf16 {M}x{N}x{K} reps={reps}", sustained(calls, flops, reps, 3), 20)
