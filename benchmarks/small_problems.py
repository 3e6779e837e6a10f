"""Small GEMMs (a few to a dozen µs), end to end against torch.matmul (thirty-seventh session, benchmarks/NOTES.md).

    python benchmarks/small_problems.py latency gemm:52x2112x2112,linear:64x1856x1728,fp8:103x752x512
        each side's kernels (profiler, L2 flushed before each call) and the end-to-end do_bench medians
    python benchmarks/small_problems.py narrow 52x2112x2112,64x1856x1728:linear
        64 x 32 tiles (and 64 x 16 / 24 for a K-major B) in shares of K beside 64 x 64 and the default
    python benchmarks/small_problems.py grid 3705 32
        shapes drawn with a few tiles (<= a quarter of the SMs) over 16-64 k-steps: 64 x 64 in 1-4 shares
    python benchmarks/small_problems.py ab 3707 14 [--low 32]
        a draw of one row of 23-33 tiles over 16-33 k-steps (rows from --low to 64) whose split the shallow-row
        rule (tile_rules.SHALLOW_ROW_STEPS) changes: the rule against the rules before it
Add --compile-only to run each call once (fills the disk cache; e.g. in parallel processes before timing).
Shapes as deep_k_splits.py takes them (MxNxK, ":linear" for a K-major B: x @ w.t())."""
import argparse
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import deep_k_splits as splits  # noqa: E402
import skc  # noqa: E402
from fair import bench_ms, fair_times  # noqa: E402
from skc.blocks.config import MatmulConfig  # noqa: E402

BEFORE = {"SHALLOW_ROW_STEPS": 0}   # the rules before the shallow row


def tiled(M, N, K, linear, tile_n, split):
    return MatmulConfig.for_problem(M, N, K, multiprocessors=132, b_k_major=linear, tile_m=64, tile_n=tile_n,
                                    cluster_m=1, split_k=split)


def run(spec, calls: dict, compile_only: bool, rounds: int):
    """Each call once (compile_only), or checked and timed (deep_k_splits.print_grid)."""
    M, N, K, linear, a, b = spec
    if compile_only:
        for call in calls.values():
            call()
        torch.cuda.synchronize()
        return
    splits.print_grid(f"{M}x{N}x{K}" + (":linear" if linear else ""), a, b, a.float() @ b.float(), calls, rounds)


def narrow(specs, compile_only):
    for text in specs:
        M, N, K, linear, a, b = spec = splits.operands(text)
        calls = {"torch": lambda: torch.matmul(a, b), "default": lambda: skc.blocks.matmul(a, b)}
        for tile_n in ((16, 24, 32, 64) if linear else (32, 64)):
            tiles = -(-M // 64) * -(-N // tile_n)
            for split in (1, 2, 3, 4, 6):
                if tiles * split <= 2 * 132 and (split == 1 or K // 64 >= 8 * split):
                    cfg = tiled(M, N, K, linear, tile_n, split)
                    calls[f"64x{tile_n} k{split} ({tiles * split})"] = \
                        lambda cfg=cfg: skc.blocks.matmul(a, b, config=cfg)
        run(spec, calls, compile_only, 2)


def grid(seed, count, compile_only):
    rng = random.Random(seed)
    for _ in range(count):
        M = rng.randint(1, 64) if rng.random() < 0.6 else rng.randint(65, 192)
        rows = -(-M // 64)
        cols = rng.randint(max(1, 8 // rows), 33 // rows)
        steps = rng.randint(16, 64)
        M, N, K, linear, a, b = spec = splits.operands(f"{M}x{cols * 64}x{steps * 64}"
                                                  + (":linear" if rng.random() < 0.5 else ""))
        calls = {"torch": lambda: torch.matmul(a, b), "default": lambda: skc.blocks.matmul(a, b)}
        for split in (1, 2, 3, 4):
            if K // 64 >= 8 * split:
                cfg = tiled(M, N, K, linear, 64, split)
                calls[f"k{split}"] = lambda cfg=cfg: skc.blocks.matmul(a, b, config=cfg)
        run(spec, calls, compile_only, 4)


def shallow_draw(seed, count, low):
    """`count` shapes of one row of 23-33 tiles of 64 x 64 over 16-33 k-steps, rows from `low` to 64, which the rules
    before the shallow row split."""
    rng = random.Random(seed)
    specs = []
    while len(specs) < count:
        M, cols, steps = rng.randint(low, 64), rng.randint(23, 33), rng.randint(16, 33)
        spec = f"{M}x{cols * 64}x{steps * 64}" + (":linear" if rng.random() < 0.5 else "")
        if splits.chosen(M, cols * 64, steps * 64, spec.endswith("linear"), BEFORE).split_k > 1:
            specs.append(spec)
    return specs


def ab(seed, count, low, compile_only):
    specs = shallow_draw(seed, count, low)
    if not compile_only:
        splits.ab(specs, BEFORE)
        return
    for text in specs:
        M, N, K, linear, a, b = splits.operands(text)
        skc.blocks.matmul(a, b)
        skc.blocks.matmul(a, b, config=splits.chosen(M, N, K, linear, BEFORE))
    torch.cuda.synchronize()


def kernel_times(fn, flush, reps=40):
    """(µs of GPU kernels a call, {kernel: (launches a call, µs each)}), L2 flushed before each call."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            flush.zero_()
            fn()
        torch.cuda.synchronize()
    kernels = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA and "fill" not in event.name.lower() \
                and "elementwise" not in event.name:
            kernels.setdefault(event.name[:60], []).append(event.device_time_total)
    total = sum(sum(times) for times in kernels.values()) / reps
    return total, {name: (len(times) / reps, sum(times) / len(times)) for name, times in kernels.items()}


def latency(items):
    flush = torch.empty(int(256e6) // 4, dtype=torch.int, device="cuda")
    for item in items:
        kind, _, shape = item.partition(":")
        M, N, K = map(int, shape.split("x"))
        if kind == "fp8":
            a = (torch.randn(M, K, device="cuda") * 8).to(torch.float8_e4m3fn)
            b = (torch.randn(N, K, device="cuda") * 8).to(torch.float8_e4m3fn).t()
            scale = torch.tensor(0.01, device="cuda")
            mine = lambda: skc.blocks.matmul(a, b, scale_a=scale, scale_b=scale,  # noqa: E731
                                             out_dtype=torch.bfloat16)
            reference = lambda: torch._scaled_mm(a, b, scale_a=scale, scale_b=scale,  # noqa: E731
                                                 out_dtype=torch.bfloat16)
        else:
            _, _, _, _, a, b = splits.operands(f"{shape}" + (":linear" if kind == "linear" else ""))
            mine, reference = (lambda: skc.blocks.matmul(a, b)), (lambda: torch.matmul(a, b))
        best = fair_times({"skc": mine, "torch": reference}, lambda f: bench_ms(f, 60), rounds=4)
        (ours, our_kernels), (theirs, their_kernels) = kernel_times(mine, flush), kernel_times(reference, flush)
        print(f"{kind:6s} {shape}: end to end skc {best['skc'] * 1e3:.1f} µs, torch {best['torch'] * 1e3:.1f} µs, "
              f"ratio {best['torch'] / best['skc']:.2f} | kernels skc {ours:.1f} µs, torch {theirs:.1f} µs")
        for side, kernels in (("skc", our_kernels), ("torch", their_kernels)):
            for name, (launches, each) in kernels.items():
                print(f"      {side:5s} {launches:.1f}x {each:.2f} µs {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("latency", "narrow", "grid", "ab"))
    parser.add_argument("args", nargs="*")
    parser.add_argument("--low", type=int, default=1)
    parser.add_argument("--compile-only", action="store_true")
    args = parser.parse_args()
    if args.what == "latency":
        latency(args.args[0].split(","))
    elif args.what == "narrow":
        narrow(args.args[0].split(","), args.compile_only)
    elif args.what == "grid":
        grid(int(args.args[0]), int(args.args[1]), args.compile_only)
    else:
        ab(int(args.args[0]), int(args.args[1]), args.low, args.compile_only)


if __name__ == "__main__":
    main()
