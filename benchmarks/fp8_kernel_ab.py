"""Block-scaled fp8 configurations against each other (and cuBLASLt) at sustained load: each sample is ~150 ms of
back-to-back calls timed with CUDA events, the configurations alternated over rounds (the order reversed every
other round, a 0.1 s rest before each sample), medians reported. Steadier than fp8_gemm.py's short bursts for
telling two kernels a few percent apart. Run:
python benchmarks/fp8_kernel_ab.py 8192x8192x8192,4096x4096x4096 default,block-n256-halves-turns,cublas [rounds]
(names: `default`, `cublas`, or a variant of fp8_gemm.VARIANTS; `pt-default`, `pt-cublas` or a variant of
fp8_gemm.PER_TENSOR_VARIANTS for per-tensor scales, `pt-fast` and `pt-cublas-fast` for both with use_fast_accum=True;
the first is the baseline)."""
import sys

import torch

import skc
from fair import report, sustained
from fp8_gemm import PER_TENSOR_VARIANTS, VARIANTS, block_scales, cublas_block, operands, swapped_or_not


def main():
    shapes = [tuple(map(int, s.split("x"))) for s in sys.argv[1].split(",")]
    names = sys.argv[2].split(",")
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    for M, N, K in shapes:
        a, b = operands(M, N, K)
        block_a, block_b = block_scales(M, N, K)
        tensor_a, tensor_b = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
        out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        calls = {}
        for name in names:
            per_tensor = name.startswith("pt-")
            sa, sb = (tensor_a, tensor_b) if per_tensor else (block_a, block_b)
            if name in ("cublas", "pt-cublas", "pt-cublas-fast"):
                calls[name] = (cublas_block(a, b, sa, sb)[0] if not per_tensor else
                               lambda fast=name.endswith("fast"): torch._scaled_mm(
                                   a, b, scale_a=tensor_a, scale_b=tensor_b, out_dtype=torch.bfloat16,
                                   use_fast_accum=fast))
                continue
            table = PER_TENSOR_VARIANTS if per_tensor else VARIANTS
            fields = ({} if name in ("default", "pt-default") else {"fast_accum": True} if name == "pt-fast"
                      else table[name])
            config = swapped_or_not(M, N, K, block_scaled=not per_tensor, **fields)
            calls[name] = (lambda config=config, sa=sa, sb=sb: skc.blocks.matmul(
                a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, config=config))
        flops = 2 * M * N * K
        reps = max(10, int(150 / (flops / 1.1e15 * 1e3)))   # ~150 ms a sample at 1,100 TFLOP/s
        report(f"{M}x{N}x{K} reps={reps}", sustained(calls, flops, reps, rounds), 32)


if __name__ == "__main__":
    main()
