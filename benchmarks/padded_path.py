"""The cost of matmul's padded path (rows TMA cannot address: K or N no multiple of 8) by phase, on the GPU: the
whole call, torch.matmul, the padded copies of a and b made afresh (what an unkept call does), skc's GEMM on
operands padded beforehand, the copy of the product out, and one torch.zeros of a's padded size; then the phases
of a call through the buffers the plan keeps for the stream (matmul_host._Kept): a's copy into its buffer, the
GEMM on the kept buffers, the clone out. Each timed three ways: `wall` (n calls, then a sync), `host` (the same n
calls without waiting for the GPU) and triton's do_bench (L2 cleared before each call); then the torch profiler's
table of 20 whole calls. Run: python benchmarks/padded_path.py [MxNxK] (default 333x777x999)."""
import sys
import time

import torch
from triton.testing import do_bench

import skc
from skc.blocks.host_plans import padded


def round8(n: int) -> int:
    return -(-n // 8) * 8


def wall(fn, n=300, wait=True):
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    if wait:
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / n * 1e6
    torch.cuda.synchronize()
    return elapsed


def main():
    M, N, K = map(int, (sys.argv[1] if len(sys.argv) > 1 else "333x777x999").split("x"))
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
    K8, N8 = round8(K), round8(N)
    ap, bp = padded(a, (M, K8)), padded(b, (K8, N8))
    product = skc.blocks.matmul(ap, bp)
    out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)

    def copy_out():
        out[...] = product[:, :N]

    cases = {"skc matmul(a, b) (padded path)": lambda: skc.blocks.matmul(a, b),
             "torch.matmul(a, b)": lambda: torch.matmul(a, b),
             "the two padded copies": lambda: (padded(a, (M, K8)), padded(b, (K8, N8))),
             "skc matmul on padded operands": lambda: skc.blocks.matmul(ap, bp),
             "copy out": copy_out,
             f"torch.zeros({M}x{K8})": lambda: torch.zeros(M, K8, device="cuda", dtype=torch.bfloat16)}
    skc.blocks.matmul(a, b)   # the plan, and the buffers it keeps for this stream (a small problem)
    from skc.blocks import matmul_host

    (plan,) = [p for p in matmul_host._PLANS.values() if isinstance(p, matmul_host._PaddedRows)]
    kept = next(iter(plan.kept.values()), None)
    if kept is not None:
        cases.update({"kept: a copied into its buffer": lambda: kept.filled("a", a),
                      "kept: skc matmul on the kept buffers": lambda: skc.blocks.matmul(kept.a, kept.b, kept.product),
                      "kept: the clone out": lambda: kept.product_top.clone(memory_format=torch.contiguous_format)})
    for name, fn in cases.items():
        print(f"{name:40s} wall {wall(fn):8.1f} us  host {wall(fn, wait=False):8.1f} us  "
              f"do_bench {do_bench(fn, rep=100) * 1e3:8.1f} us", flush=True)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        for _ in range(20):
            skc.blocks.matmul(a, b)
        torch.cuda.synchronize()
    print(profiler.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))
    print(profiler.key_averages().table(sort_by="cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
