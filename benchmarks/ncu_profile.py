"""One call of one kernel (skc's or the vendor's) inside cudaProfilerStart/Stop, after 20 warm-up calls, for
Nsight Compute: `ncu --profile-from-start off --clock-control none --set full -o NAME python3
benchmarks/ncu_profile.py CASE [SIZE]` (benchmarks/ncu_profile.sh runs every case and exports text). Cases:
fp8blk-skc, fp8blk-cublas, fp8pt-skc, fp8pt-cublas (fp8, block-wise or per-tensor scales), bf16-skc, bf16-cublas,
attn-skc, attn-cudnn (causal 8 x 16 x 4096 x 128). SIZE is n (n³) or MxNxK."""
import json
import os
import sys

import torch

import skc
from skc.blocks.fp8 import Fp8MatmulConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fp8_gemm import block_scales, cublas_block, operands  # noqa: E402


def fp8_call(case: str, m: int, n: int, k: int):
    a, b = operands(m, n, k)
    block = case.startswith("fp8blk")
    if block:
        sa, sb = block_scales(m, n, k)
    else:
        sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
    if case.endswith("cublas"):
        return cublas_block(a, b, sa, sb)[0] if block else (
            lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16))
    out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    fields = json.loads(os.environ.get("SKC_FIELDS", "{}"))   # a configuration's fields, e.g. '{"tile_n": 192}'
    config = Fp8MatmulConfig.for_fp8_problem(m, n, k, block_scaled=block, **fields)
    print(config)
    return lambda: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, config=config)


def bf16_call(case: str, m: int, n: int, k: int):
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    return (lambda: torch.matmul(a, b, out=out)) if case.endswith("cublas") else (lambda: skc.blocks.matmul(a, b, out))


def attention_call(case: str, *_):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from skc.blocks.attention_host import attention

    q, k, v = (torch.randn(8, 16, 4096, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out = torch.empty_like(q)

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    return cudnn if case.endswith("cudnn") else (lambda: attention(q, k, v, causal=True, out=out))


CALLS = {"fp8blk": fp8_call, "fp8pt": fp8_call, "bf16": bf16_call, "attn": attention_call}


def main():
    case = sys.argv[1]
    size = [int(d) for d in (sys.argv[2] if len(sys.argv) > 2 else "8192").split("x")]
    m, n, k = size * 3 if len(size) == 1 else size
    kind, _, who = case.partition("-")
    if kind not in CALLS or who not in ("skc", "cublas", "cudnn"):
        sys.exit(f"unknown case {case!r}: one of {', '.join(f'{k}-skc' for k in CALLS)} or their vendor's "
                 "(-cublas, attn-cudnn)")
    fn = CALLS[kind](case, m, n, k)
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    fn()
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()
    print("done", case)


if __name__ == "__main__":
    main()
