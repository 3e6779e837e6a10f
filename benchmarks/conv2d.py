"""conv2d: skc (the GEMM composition with the im2col loader) against torch (cuDNN), channels_last bf16, end
to end (the call as a user makes it, host work included), on ResNet-50-like shapes at batch 128. Checks each
result against torch first. Prints a table and writes JSON (to $OUT/conv2d.json or --json).

    python benchmarks/conv2d.py [--batch 128] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# (C, H, W, K, R, stride, padding)
SHAPES = [
    (64, 56, 56, 64, 3, 1, 1),
    (128, 28, 28, 128, 3, 1, 1),
    (256, 14, 14, 256, 3, 1, 1),
    (512, 7, 7, 512, 3, 1, 1),
    (128, 56, 56, 128, 3, 2, 1),
    (256, 56, 56, 64, 1, 1, 0),
    (64, 56, 56, 256, 1, 1, 0),
    (1024, 14, 14, 256, 1, 1, 0),
]


def bench(fn, rep_ms: int = 200) -> float:
    """Median milliseconds of fn (triton's do_bench when present, else CUDA events)."""
    try:
        from triton.testing import do_bench

        return do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")
    except ImportError:
        import statistics

        import torch

        for _ in range(10):
            fn()
        times = []
        for _ in range(50):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)


def run(batch: int) -> list:
    import torch

    import skc

    torch.backends.cudnn.benchmark = True
    rows = []
    for C, H, W, K, R, stride, padding in SHAPES:
        x = torch.randn(batch, C, H, W, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
        w = (torch.randn(K, C, R, R, device="cuda", dtype=torch.bfloat16) / (C * R * R) ** 0.5).to(
            memory_format=torch.channels_last)
        expected = torch.nn.functional.conv2d(x, w, stride=stride, padding=padding)
        out = torch.full_like(expected, float("nan"))
        skc.blocks.conv2d(x, w, stride=stride, padding=padding, out=out)
        torch.cuda.synchronize()
        error = ((out.float() - expected.float()).norm() / expected.float().norm()).item()
        if not error <= 1e-2:
            raise AssertionError(f"conv2d {C}x{H}x{W}->{K} {R}x{R}/s{stride}: relative error {error:.3g}")
        skc_ms = bench(lambda: skc.blocks.conv2d(x, w, stride=stride, padding=padding, out=out))
        torch_ms = bench(lambda: torch.nn.functional.conv2d(x, w, stride=stride, padding=padding))
        P, Q = expected.shape[2:]
        flops = 2 * batch * P * Q * K * C * R * R
        rows.append({"benchmark": "conv2d", "shape": f"{batch}x{C}x{H}x{W}->{K} {R}x{R}/s{stride}",
                     "skc_ms": skc_ms, "torch_ms": torch_ms, "skc_TFLOPs": flops / skc_ms / 1e9,
                     "torch_TFLOPs": flops / torch_ms / 1e9, "ratio_vs_torch": torch_ms / skc_ms,
                     "relative_error": error})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rows = run(args.batch)
    print(f"{'shape':34} {'skc ms':>8} {'torch ms':>9} {'skc TF/s':>9} {'torch TF/s':>10} {'torch/skc':>9}")
    for row in rows:
        print(f"{row['shape']:34} {row['skc_ms']:8.3f} {row['torch_ms']:9.3f} {row['skc_TFLOPs']:9.1f} "
              f"{row['torch_TFLOPs']:10.1f} {row['ratio_vs_torch']:9.2f}")
    path = args.json or (os.path.join(os.environ["OUT"], "conv2d.json") if os.environ.get("OUT") else None)
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
