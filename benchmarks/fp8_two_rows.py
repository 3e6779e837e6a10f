"""Per-tensor fp8 at 64 < M <= 128 rows on few tiles over a deep K, drawn at random: the rule's split-K over two rows
of 64 x 64 tiles (fp8.two_rows_split) against the rule before it (one row of 64 x 112 or 64 x 128 tiles, unsplit:
the depth bound raised past every K) and torch._scaled_mm, end to end and in turn (benchmarks/fair.py; do_bench
medians, L2 flushed). Every output is checked against cuBLASLt's first.
    python benchmarks/fp8_two_rows.py [--count 10] [--seed 3402]"""
import argparse
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skc  # noqa: E402
from skc.blocks import fp8  # noqa: E402
from fair import bench_ms, fair_times, geomean  # noqa: E402
from fp8_gemm import operands  # noqa: E402


def draw(count: int, seed: int) -> list:
    """Shapes the rule splits: M 65-128, N a multiple of 16 up to 2112, K a multiple of 128 from 4096 to 16384."""
    rng, shapes = random.Random(seed), []
    while len(shapes) < count:
        shape = rng.randint(65, 128), 16 * rng.randint(4, 132), 128 * rng.randint(32, 128)
        if fp8.two_rows_split(*shape) > 1:
            shapes.append(shape)
    return shapes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3402)
    args = parser.parse_args()
    ratios = {"rule": [], "before": []}
    for M, N, K in draw(args.count, args.seed):
        a, b = operands(M, N, K)
        sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
        reference = torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
        configs = {"rule": fp8.Fp8MatmulConfig.for_fp8_problem(M, N, K)}
        bound, fp8.TWO_ROWS_MIN_STEPS = fp8.TWO_ROWS_MIN_STEPS, 1 << 30
        configs["before"] = fp8.Fp8MatmulConfig.for_fp8_problem(M, N, K)
        fp8.TWO_ROWS_MIN_STEPS = bound
        out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        calls = {"cublas": lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)}
        for name, config in configs.items():
            out.fill_(float("nan"))
            skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, config=config)
            error = ((out.float() - reference.float()).abs().max() / reference.float().abs().max()).item()
            assert error < 1e-2, (M, N, K, name, error)
            calls[name] = lambda config=config: skc.blocks.matmul(a, b, out, scale_a=sa, scale_b=sb,
                                                                  out_dtype=torch.bfloat16, config=config)
        times = fair_times(calls, lambda fn: bench_ms(fn, 40))
        tflops = {name: 2 * M * N * K / ms / 1e9 for name, ms in times.items()}
        for name in ratios:
            ratios[name].append(times["cublas"] / times[name])
        rule = configs["rule"]
        print(f"{M}x{N}x{K} (64 x 64 in {rule.split_k}): rule {tflops['rule']:.0f} ({ratios['rule'][-1]:.2f}), "
              f"before {tflops['before']:.0f} ({ratios['before'][-1]:.2f}), cuBLASLt {tflops['cublas']:.0f} TFLOP/s",
              flush=True)
    for name, values in ratios.items():
        print(f"{name}: geometric mean {geomean(values):.3f} of cuBLASLt, lowest {min(values):.2f}")


if __name__ == "__main__":
    main()
