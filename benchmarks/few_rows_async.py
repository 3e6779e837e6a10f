"""Few rows of A (M <= 128) over a B whose rows TMA cannot address: matmul end to end against torch.matmul, with
the default (the vector loader reading the operands in place by cp.async, matmul_host.few_rows_async) and the path
before it (_PaddedRows: B copied into rows TMA can address, then the GEMM), timed in turn (benchmarks/fair.py), and
each path's relative error against a float32 product.

Run: python benchmarks/few_rows_async.py [MxNxK[:linear] ...] [--given]   (`linear`: b is the transpose of an N x K
     matrix; --given: few_rows_async's configuration timed as well, given explicitly, where the rule copies)
     python benchmarks/few_rows_async.py --draw SEED [--count N]   (shapes drawn at random where the rule applies)"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skc  # noqa: E402
from fair import bench_ms, fair_times, geomean  # noqa: E402
from skc.blocks import matmul_host  # noqa: E402
from skc.blocks.epilogue import EpilogueSpec  # noqa: E402

SHAPES = ["4x7378x8128", "64x586x10048", "64x5828x768", "32x4096x4100:linear", "16x7378x4096",
          "128x3002x4096", "64x640x754:linear"]


def drawn(seed: int, count: int) -> list:
    """`count` shapes where the rule applies: M from 1 to 128, B of 2**21 elements or more, its rows (N, or K for a
    K-major B) an even number of elements but no multiple of 8, and A's rows (K) even (the rule reads both operands
    with one width of copies: an odd K leaves one element a copy, which cp.async cannot take)."""
    rng, shapes = random.Random(seed), []
    while len(shapes) < count:
        M = rng.choice([1, 2, 4, 8, 16, 24, 32, 48, 64, 80, 96, 100, 112, 128])
        N, K = (int(math.exp(rng.uniform(math.log(256), math.log(16384)))) for _ in range(2))
        linear = rng.random() < 0.5
        row = K if linear else N
        row += (2 - row % 8) % 8 if row % 2 or row % 8 == 0 else 0   # even, no multiple of 8
        N, K = (N, row) if linear else (row, K + K % 2)
        if N * K >= matmul_host.ASYNC_B_ELEMENTS:
            shapes.append(f"{M}x{N}x{K}" + (":linear" if linear else ""))
    return shapes


def operands(spec: str):
    shape, _, kind = spec.partition(":")
    M, N, K = map(int, shape.split("x"))
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = (torch.randn(N, K, device="cuda", dtype=torch.bfloat16).t() if kind == "linear"
         else torch.randn(K, N, device="cuda", dtype=torch.bfloat16))
    return (M, N, K), a, b


def padded(a, b):
    """matmul through the path before: no rows for the cp.async rule (a plan cache of its own keys)."""
    rows = matmul_host.ASYNC_ROWS
    matmul_host.ASYNC_ROWS = 0
    try:
        return skc.blocks.matmul(a, b, autotune=False)
    finally:
        matmul_host.ASYNC_ROWS = rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("shapes", nargs="*", default=SHAPES)
    parser.add_argument("--draw", type=int, default=None, help="a seed: shapes drawn at random instead")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--given", action="store_true",
                        help="time the cp.async configuration given explicitly as well (where the rule copies)")
    args = parser.parse_args()
    shapes = drawn(args.draw, args.count) if args.draw is not None else args.shapes
    ratios, before = [], []
    print(f"{'shape':>24} {'torch us':>9} {'skc us':>9} {'padded us':>9} {'skc/torch':>9} {'padded/torch':>12} "
          f"{'split':>5} {'err':>8} {'err padded':>10}", flush=True)
    for spec in shapes:
        (M, N, K), a, b = operands(spec)
        ref = a.float() @ b.float()
        out, old = skc.blocks.matmul(a, b), padded(a, b)
        errors = [((x.float() - ref).norm() / ref.norm()).item() for x in (out, old)]
        plans = [p for p in matmul_host._PLANS.values() if isinstance(p, matmul_host._UnalignedRows)
                 and p.problem[:3] == (M, N, K)]
        split = plans[0].cfg.split_k if plans and plans[0].cfg.vector_async else "-"
        calls = {"torch": lambda: torch.matmul(a, b), "skc": lambda: skc.blocks.matmul(a, b),
                 "padded": lambda: padded(a, b)}
        if args.given:
            given = matmul_host.few_rows_async((M, N, K, "bf16", True, spec.endswith(":linear")), EpilogueSpec(), 132)
            calls["given"] = lambda: skc.blocks.matmul(a, b, config=given)
        times = fair_times(calls, lambda f: bench_ms(f, 40), rounds=6)
        ratios.append(times["torch"] / times["skc"])
        before.append(times["torch"] / times["padded"])
        print(f"{spec:>24} {times['torch'] * 1e3:9.1f} {times['skc'] * 1e3:9.1f} {times['padded'] * 1e3:9.1f} "
              f"{ratios[-1]:9.2f} {before[-1]:12.2f} {split:>5} {errors[0]:8.1e} {errors[1]:10.1e}"
              + (f"  cp.async given: {times['torch'] / times['given']:.2f}" if args.given else ""), flush=True)
    print(f"geometric mean of torch/skc: {geomean(ratios):.3f} (the path before: {geomean(before):.3f}); "
          f"median {sorted(ratios)[len(ratios) // 2]:.2f} (before {sorted(before)[len(before) // 2]:.2f})")


if __name__ == "__main__":
    main()
