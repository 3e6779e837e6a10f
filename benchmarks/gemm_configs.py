"""Time the Hopper GEMM under several configurations against cuBLAS, same run (bf16, random data)."""
import sys

import torch
from triton.testing import do_bench

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.dirname(__file__)))
import skc  # noqa: E402
from skc.blocks import MatmulConfig  # noqa: E402

CONFIGS = {
    "128x128x64 s6": MatmulConfig(tile_n=128, stages=6),
    "128x256x64 s4": MatmulConfig(tile_n=256, stages=4),
    "128x256x64 s4 c2": MatmulConfig(tile_n=256, stages=4, cluster_m=2),
    "128x128x64 s6 c2": MatmulConfig(tile_n=128, stages=6, cluster_m=2),
}
for size in [int(s) for s in (sys.argv[1:] or ["4096", "8192"])]:
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(size, size, device="cuda", dtype=torch.bfloat16)
    expected = a.float() @ b.float()
    flops = 2 * size ** 3
    cublas = flops / do_bench(lambda: torch.matmul(a, b), warmup=25, rep=500, return_mode="median") / 1e9
    print(f"{size}: cuBLAS {cublas:.1f} TFLOP/s")
    for name, cfg in CONFIGS.items():
        skc.blocks.matmul(a, b, out=c, config=cfg)
        error = ((c.float() - expected).norm() / expected.norm()).item()
        ms = do_bench(lambda: skc.blocks.matmul(a, b, out=c, config=cfg), warmup=25, rep=500, return_mode="median")
        print(f"  {name:16s} {flops / ms / 1e9:7.1f} TFLOP/s  ratio {flops / ms / 1e9 / cublas:.3f}  error {error:.2e}")
