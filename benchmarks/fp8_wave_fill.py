"""Per-tensor fp8 (each k-block added into f32) past 320 rows, drawn at random: the rule's tiles against each width
(128 two stages a step, 144 to 256, past 192 the partial in halves), stream-K over 128- and 192-wide tiles, and
torch._scaled_mm, end to end and in turn (benchmarks/fair.py; do_bench medians, L2 flushed). Every output is checked
against cuBLASLt's first; a variant that fails the check is reported and left out of that shape's timing.
    python benchmarks/fp8_wave_fill.py [--count 16] [--seed 3501] [--shapes 990x2240x6144,...] [--variants rule,w192]
(thirty-fifth session: seeds 3501 (with the three shapes of session 34's sweep that read under 0.90) and 3502
--count 12 with every width to fit fp8.PROMOTED_FILL_WIDTHS; then --seed 3503 --count 12 --variants rule,before, and
--seed 3504 --count 8 --waves 5,10 with every width; --seed 3505 --count 16 --variants rule,before, and --fast --seed
3506 --count 10 with every width to fit fp8.FAST_FILL_WIDTHS; then --fast --seed 3507 --count 12 --variants
rule,before; --seed 3508 --count 6 --waves 0,0.55 --variants rule,s2w128,s2w128n,s3w128n,s2w192: split-K over
half a wave of tiles or less; thirty-sixth session: --rows 129,320 --changed --variants rule,before, with and
without --fast: the widths below 321 rows; then --rows 129,320 --changed --variants rule,s35 with and without --fast
--seed 3611/3612: fp8.FAST_ROWS_64 and SWAPPED_COLUMN_ROWS on fresh draws)"""
import argparse
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skc  # noqa: E402
from skc.blocks import fp8  # noqa: E402
from skc.blocks.tile_rules import tiles_of  # noqa: E402
from deep_k_splits import rules_as  # noqa: E402
from fair import bench_ms, fair_times, geomean  # noqa: E402
from fp8_gemm import operands  # noqa: E402

VARIANTS = {
    "rule": {},
    "w128": {"tile_n": 128, "overlap_scaling": True},
    "w192": {"tile_n": 192},
    "w256": {"tile_n": 256},
    **{f"w{n}": {"tile_n": n} for n in (144, 160, 176, 208, 224, 240)},
    # split-K over half a wave of tiles or less
    "s2w128": {"tile_n": 128, "overlap_scaling": True, "split_k": 2},
    "s2w128n": {"tile_n": 128, "split_k": 2},
    "s3w128n": {"tile_n": 128, "split_k": 3},
    "s2w192": {"tile_n": 192, "split_k": 2},
    "sk128": {"tile_n": 128, "overlap_scaling": True, "stream_k": True},
    "sk192": {"tile_n": 192, "stream_k": True},
}


def draw(count: int, seed: int, waves=(0, 5), rows=(321, 4096), changed=None, rule: str = "before") -> list:
    """M from rows[0] to rows[1], N a multiple of 16 from 256 to 16384, K a multiple of 128 from 1024 to 16384, where
    128 x 128 tiles make more than waves[0] waves and at most waves[1] (many fill their last wave well whatever the
    width); `changed` (fast_accum's value): only where the rule and the rule before (BEFORE[rule]) differ."""
    rng, shapes = random.Random(seed), []
    while len(shapes) < count:
        M, N, K = rng.randint(*rows), 16 * rng.randint(16, 1024), 128 * rng.randint(8, 128)
        if not waves[0] * 132 < tiles_of(M, N, 128, 128) <= waves[1] * 132:
            continue
        if changed is not None and before_config(M, N, K, changed, rule) == fp8.Fp8MatmulConfig.for_fp8_problem(
                M, N, K, fast_accum=changed):
            continue
        shapes.append((M, N, K))
    return shapes


# rules before, by the constants of skc.blocks.fp8 that turn them off: `before` the thirty-fifth session's widths
# (PROMOTED_FILL_WIDTHS and FAST_FILL_WIDTHS), `s35` the thirty-sixth's 64 x 256 fast tiles and one swapped column
BEFORE = {"before": {"FEW_WAVES": 0}, "s35": {"FAST_ROWS_64": 0, "SWAPPED_COLUMN_ROWS": 0}}


def before_config(M: int, N: int, K: int, fast: bool, rule: str = "before"):
    """The configuration of the rule before (BEFORE[rule])."""
    with rules_as(BEFORE[rule], fp8):
        return fp8.Fp8MatmulConfig.for_fp8_problem(M, N, K, fast_accum=fast)


def describe(config) -> str:
    return (f"{config.tile_m}x{config.tile_n}" + (" two a step" if config.overlap_scaling else "")
            + (" halves" if config.half_partials else "") + (" stream-K" if config.stream_k else ""))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=3501)
    parser.add_argument("--shapes", default="", help="MxNxK,... measured before the draw")
    parser.add_argument("--waves", default="0,5", help="the draw's bounds on 128 x 128 tiles' waves")
    parser.add_argument("--rows", default="321,4096", help="the draw's bounds on M")
    parser.add_argument("--changed", action="store_true", help="draw only where `before` chooses otherwise")
    parser.add_argument("--fast", action="store_true", help="use_fast_accum=True (each side; the whole K in wgmma's "
                        "accumulator: w128 then one stage a step)")
    parser.add_argument("--variants", default="rule,w128,w192,w256,sk128,sk192",
                        help="of VARIANTS, and of BEFORE: `before` the rule without PROMOTED_FILL_WIDTHS and "
                        "FAST_FILL_WIDTHS (FEW_WAVES = 0), `s35` without FAST_ROWS_64 and SWAPPED_COLUMN_ROWS; "
                        "--changed draws where the first of them named differs")
    args = parser.parse_args()
    names = args.variants.split(",")
    waves = tuple(float(w) for w in args.waves.split(","))
    rows = tuple(int(r) for r in args.rows.split(","))
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",") if s] + draw(
        args.count, args.seed, waves, rows, args.fast if args.changed else None,
        next((name for name in names if name in BEFORE), "before"))
    ratios = {name: [] for name in names}
    for M, N, K in shapes:
        a, b = operands(M, N, K)
        sa, sb = torch.tensor(0.01, device="cuda"), torch.tensor(0.02, device="cuda")
        scaled = dict(scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16, use_fast_accum=args.fast)
        reference = torch._scaled_mm(a, b, **scaled).float()
        out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        calls, configs = {"cublas": lambda: torch._scaled_mm(a, b, **scaled)}, {}
        for name in names:
            fields = {key: value for key, value in VARIANTS.get(name, {}).items()
                      if not (args.fast and key == "overlap_scaling")}
            config = (before_config(M, N, K, args.fast, name) if name in BEFORE else
                      fp8.Fp8MatmulConfig.for_fp8_problem(M, N, K, fast_accum=args.fast, **fields))
            out.fill_(float("nan"))
            skc.blocks.matmul(a, b, out, config=config, **scaled)
            error = ((out.float() - reference).abs().max() / reference.abs().max()).item()
            if not error < (3e-2 if args.fast else 1e-2):
                print(f"  {M}x{N}x{K} {name} ({describe(config)}): WRONG, error {error}", flush=True)
                continue
            configs[name] = config
            calls[name] = lambda config=config: skc.blocks.matmul(a, b, out, config=config, **scaled)
        times = fair_times(calls, lambda fn: bench_ms(fn, 40))
        line = [f"{M}x{N}x{K}: cuBLASLt {2 * M * N * K / times['cublas'] / 1e9:.0f}"]
        for name, config in configs.items():
            ratio = times["cublas"] / times[name]
            ratios[name].append(ratio)
            line.append(f"{name} ({describe(config)}) {ratio:.3f}")
        print(", ".join(line), flush=True)
    for name, values in ratios.items():
        if values:
            print(f"{name}: geometric mean {geomean(values):.3f} of cuBLASLt over {len(values)}, "
                  f"lowest {min(values):.2f}")


if __name__ == "__main__":
    main()
