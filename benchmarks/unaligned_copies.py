"""matmul end to end against torch.matmul at shapes whose rows TMA cannot address (K or N no multiple of 8, the
random draws' and larger ones): TFLOP/s of each, timed in turn (benchmarks/fair.py), the host time a call of each
(calls issued back to back, the GPU synchronized after) and skc's relative error against a float32 product. The
twenty-eighth session's last run measured its copies (matmul_host._PaddedRows: one copy launch, the GEMM storing
out directly) with it, and over another checkout's skc (PYTHONPATH) the path before.
Run: python benchmarks/unaligned_copies.py [--tag NAME] [MxNxK[:linear] ...]"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skc  # noqa: E402
from fair import bench_ms, fair_times  # noqa: E402

SHAPES = ["64x706x2534", "64x2422x376", "8x1616x315", "8x589x960", "333x777x999", "1000x1000x999",
          "152x1936x3750:linear", "84x448x1771:linear", "64x508x4288:linear", "2500x2500x2500", "2048x50257x512",
          "4096x4096x4095", "1000x1000x1002:linear", "3000x3001x3000", "777x333x5000:linear"]


def host_us(fn, calls: int = 300) -> float:
    """Microseconds of host time a call: `calls` calls issued back to back, timed before the GPU is waited for."""
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("shapes", nargs="*", default=SHAPES)
    parser.add_argument("--tag", default="skc")
    args = parser.parse_args()
    for spec in args.shapes:
        shape, _, kind = spec.partition(":")
        linear = kind == "linear"
        M, N, K = map(int, shape.split("x"))
        a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        b = (torch.randn(N, K, device="cuda", dtype=torch.bfloat16).t() if linear
             else torch.randn(K, N, device="cuda", dtype=torch.bfloat16))
        exact = a.float() @ b.float()
        ours, theirs = (lambda: skc.blocks.matmul(a, b)), (lambda: torch.matmul(a, b))
        error = ((ours().float() - exact).norm() / exact.norm()).item()
        times = fair_times({"torch": theirs, "skc": ours}, bench_ms)
        flops = 2 * M * N * K
        print(f"{args.tag} {'linear' if linear else 'gemm'} {shape}: torch {flops / times['torch'] / 1e9:.1f} skc "
              f"{flops / times['skc'] / 1e9:.1f} TFLOP/s ({times['torch'] / times['skc']:.2f}) | "
              f"{times['skc'] * 1e3:.1f} us against {times['torch'] * 1e3:.1f} | host skc {host_us(ours):.1f} torch "
              f"{host_us(theirs):.1f} us | error {error:.1e}", flush=True)


if __name__ == "__main__":
    main()
