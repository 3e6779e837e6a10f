"""Per-tensor fp8 at 65-320 rows on few tiles over a deep K, drawn at random: the rule's split-K over rows of 64 x 64
tiles (fp8.rows_split) against the rule before it (the depth bound raised past every K: 64 x 112 or 64 x 128 tiles
up to 128 rows, 64 x 64 or 128 x 64 ones past them, unsplit) and torch._scaled_mm, end to end and in turn
(benchmarks/fair.py; do_bench medians, L2 flushed). Every output is checked against cuBLASLt's first.
    python benchmarks/fp8_rows_split.py [--count 10] [--seed 3402] [--rows 65,128] [--widths 132] [--fast]
(thirty-fourth session: seed 3402 as above; --rows 129,320 --widths 100 with --seed 3406 and with --seed 3407
--count 8; --fast --seed 3404 --count 5)"""
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


def draw(count: int, seed: int, rows=(65, 128), widths: int = 132, fast: bool = False) -> list:
    """Shapes the rule splits: M in `rows`, N a multiple of 16 from 64 to 16 x `widths`, K a multiple of 128 from 4096
    to 16384."""
    rng, shapes = random.Random(seed), []
    while len(shapes) < count:
        shape = rng.randint(*rows), 16 * rng.randint(4, widths), 128 * rng.randint(32, 128)
        if fp8.rows_split(*shape, fast_accum=fast) > 1:
            shapes.append(shape)
    return shapes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3402)
    parser.add_argument("--rows", default="65,128")
    parser.add_argument("--widths", type=int, default=132)
    parser.add_argument("--fast", action="store_true", help="use_fast_accum=True (each side)")
    args = parser.parse_args()
    ratios = {"rule": [], "before": []}
    rows = tuple(int(r) for r in args.rows.split(","))
    for M, N, K in draw(args.count, args.seed, rows, args.widths, args.fast):
        a, b = operands(M, N, K)
        sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
        scaled = dict(scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=args.fast)
        reference = torch._scaled_mm(a, b, **scaled).float()
        configs = {"rule": fp8.Fp8MatmulConfig.for_fp8_problem(M, N, K, fast_accum=args.fast)}
        bound, fp8.ROWS_SPLIT_MIN_STEPS = fp8.ROWS_SPLIT_MIN_STEPS, 1 << 30
        configs["before"] = fp8.Fp8MatmulConfig.for_fp8_problem(M, N, K, fast_accum=args.fast)
        fp8.ROWS_SPLIT_MIN_STEPS = bound
        out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        calls = {"cublas": lambda: torch._scaled_mm(a, b, **scaled)}
        for name, config in configs.items():
            out.fill_(float("nan"))
            skc.blocks.matmul(a, b, out, config=config, **scaled)
            error = ((out.float() - reference).abs().max() / reference.abs().max()).item()
            assert error < (3e-2 if args.fast else 1e-2), (M, N, K, name, error)
            calls[name] = lambda config=config: skc.blocks.matmul(a, b, out, config=config, **scaled)
        times = fair_times(calls, lambda fn: bench_ms(fn, 40))
        tflops = {name: 2 * M * N * K / ms / 1e9 for name, ms in times.items()}
        for name in ratios:
            ratios[name].append(times["cublas"] / times[name])
        rule, before = configs["rule"], configs["before"]
        print(f"{M}x{N}x{K} (64 x 64 in {rule.split_k}; before {before.tile_m} x {before.tile_n}): rule "
              f"{tflops['rule']:.0f} ({ratios['rule'][-1]:.2f}), before {tflops['before']:.0f} "
              f"({ratios['before'][-1]:.2f}), cuBLASLt {tflops['cublas']:.0f} TFLOP/s", flush=True)
    for name, values in ratios.items():
        print(f"{name}: geometric mean {geomean(values):.3f} of cuBLASLt, lowest {min(values):.2f}")


if __name__ == "__main__":
    main()
