"""matmul at shapes whose rows TMA cannot address (K or N no multiple of 8), end to end against torch.matmul: the
direct path (the vector loader reads the rows with narrower loads, the consumers store straight to out:
matmul_host._UnalignedRows) and the padded path (operands copied into zero-padded rows: _PaddedRows), each forced
through matmul_host.UNALIGNED_DIRECT_MACS, timed in turn with torch.matmul (benchmarks/fair.py); the error of each
against a float32 product. What UNALIGNED_DIRECT_MACS, the problem size up to which matmul takes the direct path,
was chosen from. Run: python benchmarks/unaligned_rows.py [MxNxK ...] [--layout nn|nt|tn]."""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skc  # noqa: E402
from fair import fair_times  # noqa: E402
from skc.blocks import matmul_host  # noqa: E402

SHAPES = ["333x777x999", "100x3000x5001", "1000x1000x999", "1024x1024x1026", "2000x2000x1999", "4096x4096x4095",
          "2048x50257x512", "16x4096x4095", "128x11001x4096", "3000x3000x3001"]


def timer(fn):
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=100, return_mode="median")   # milliseconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("shapes", nargs="*", default=SHAPES)
    parser.add_argument("--layout", default="nn", choices=["nn", "nt", "tn"])
    args = parser.parse_args()
    print(f"{'M x N x K':>18s} {args.layout}  {'direct':>7s} {'padded':>7s} {'torch':>7s}  TFLOP/s  "
          f"{'direct/torch':>12s} {'padded/torch':>12s}  errors (direct, padded, torch)", flush=True)
    for shape in args.shapes:
        M, N, K = map(int, shape.split("x"))
        a = torch.randn(K, M, device="cuda", dtype=torch.bfloat16).t() if args.layout == "tn" else \
            torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(N, K, device="cuda", dtype=torch.bfloat16).t() if args.layout == "nt" else \
            torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
        expected = a.float() @ b.float()
        calls, errors = {}, {}
        for path, limit in (("direct", 2 ** 62), ("padded", 0)):
            matmul_host._PLANS.clear()
            matmul_host.UNALIGNED_DIRECT_MACS = limit
            got = skc.blocks.matmul(a, b)   # the plan made now serves the timed calls (the limit is read here)
            errors[path] = ((got.float() - expected).norm() / expected.norm()).item()
            key = next(iter(matmul_host._PLANS))   # (the padded path's own GEMM plan comes after it)
            plan = matmul_host._PLANS[key]

            def call(key=key, plan=plan):   # the user's call, its plan put back first (both paths share the key)
                matmul_host._PLANS[key] = plan
                return skc.blocks.matmul(a, b)
            calls[path] = call
        calls["torch"] = lambda: torch.matmul(a, b)
        errors["torch"] = ((torch.matmul(a, b).float() - expected).norm() / expected.norm()).item()
        times = fair_times(calls, timer)
        tflops = {name: 2 * M * N * K / t / 1e9 for name, t in times.items()}
        print(f"{shape:>18s} {args.layout}  {tflops['direct']:7.1f} {tflops['padded']:7.1f} {tflops['torch']:7.1f}"
              f"          {tflops['direct'] / tflops['torch']:12.2f} {tflops['padded'] / tflops['torch']:12.2f}  "
              f"{errors['direct']:.1e} {errors['padded']:.1e} {errors['torch']:.1e}", flush=True)


if __name__ == "__main__":
    main()
