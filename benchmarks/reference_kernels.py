"""Which kernels the references launch, and for how long, beside skc's: torch.matmul (cuBLAS) and
skc.blocks.matmul at the GEMM suite's small and mid shapes, torch._scaled_mm (cuBLASLt, per-tensor and block-wise
fp8) beside skc's fp8 GEMMs, and torch SDPA (cuDNN, flash) beside skc.attention.
Names and GPU times come from torch.profiler (CUPTI), averaged over `--reps` calls after a warm-up. Needs a GPU.
Usage: python benchmarks/reference_kernels.py [--reps N] [--only gemm,fp8,attention]
"""
import argparse
import os
import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402

GEMM_SHAPES = [(16, 8192, 8192), (128, 8192, 8192), (1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096)]
FP8_SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (4096, 7168, 16384)]
ATTENTION_SHAPES = [(8, 16, 4096, 128, False), (8, 16, 4096, 128, True), (16, 16, 2048, 128, False)]


def kernels(fn, reps):
    """[(kernel name, mean µs per call, launches per call)] of fn's GPU work."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    totals, counts = defaultdict(float), defaultdict(int)
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name] += event.device_time
            counts[event.name] += 1
    return sorted(((name, totals[name] / reps, counts[name] / reps) for name in totals), key=lambda r: -r[1])


def show(label, rows):
    print(f"== {label}: {sum(us for _, us, _ in rows):.1f} us of kernels per call")
    for name, us, count in rows:
        print(f"   {us:9.1f} us  x{count:.0f}  {name[:150]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--only", default="gemm,fp8,attention")
    args = parser.parse_args()
    torch.manual_seed(0)
    if "gemm" in args.only:
        for M, N, K in GEMM_SHAPES:
            a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
            show(f"torch.matmul {M}x{N}x{K} bf16", kernels(lambda: torch.matmul(a, b), args.reps))
            show(f"skc.blocks.matmul {M}x{N}x{K} bf16", kernels(lambda: skc.blocks.matmul(a, b), args.reps))
    if "fp8" in args.only:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from fp8_gemm import block_scales, cublas_block, operands
        for M, N, K in FP8_SHAPES:
            a, b = operands(M, N, K)
            sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
            show(f"torch._scaled_mm {M}x{N}x{K} per-tensor",
                 kernels(lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16), args.reps))
            show(f"skc.blocks.matmul {M}x{N}x{K} per-tensor",
                 kernels(lambda: skc.blocks.matmul(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16), args.reps))
            block_a, block_b = block_scales(M, N, K)
            cublas, _ = cublas_block(a, b, block_a, block_b)
            if cublas is not None:
                show(f"torch._scaled_mm {M}x{N}x{K} block-wise", kernels(cublas, args.reps))
            show(f"skc.blocks.matmul {M}x{N}x{K} block-wise",
                 kernels(lambda: skc.blocks.matmul(a, b, scale_a=block_a, scale_b=block_b, out_dtype=torch.bfloat16),
                         args.reps))
    if "attention" in args.only:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        for B, H, S, D, causal in ATTENTION_SHAPES:
            q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            label = f"{B}x{H}x{S}x{D}{' causal' if causal else ''}"
            for name, backend in (("cuDNN", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
                def sdpa(backend=backend):
                    with sdpa_kernel(backend):
                        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
                show(f"SDPA {name} {label}", kernels(sdpa, args.reps))
            show(f"skc.attention {label}", kernels(lambda: skc.blocks.attention(q, k, v, causal=causal), args.reps))


if __name__ == "__main__":
    main()
