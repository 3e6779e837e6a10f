"""GEMMs of at most 64 rows whose one row of tiles fills more than a quarter of the SMs and at most one wave (no
split rule reaches them), end to end against torch.matmul (the Python call, host included; triton's do_bench medians
with L2 flushed, each callable timed in rotating order, best round kept).

    python benchmarks/one_row_tiles.py draw [SEED] [COUNT] [changed]  shapes drawn where the band lies (no GPU;
                                                                   changed: whose choice the rules now change)
    python benchmarks/one_row_tiles.py draw-rows SEED COUNT LOW HIGH [changed]   shapes of LOW-HIGH rows on 64-row
                                                                   tiles (changed: whose choice the rules change)
    python benchmarks/one_row_tiles.py grid [MxNxK[:linear],...]    64 x 32, 64 x 64 and 64 x 128 tiles in the
                                                                   shares whose units fit one wave, beside the
                                                                   default ("models": MODELS, "two-rows": TWO_ROWS;
                                                                   "json=PATH" writes every time)
    python benchmarks/one_row_tiles.py ab [MxNxK[:linear],...]      the default against the rules before (BEFORE),
                                                                   given as a configuration
The thirty-sixth session fitted config.ONE_ROW_* to `grid models` and `grid` of seed 3601's draw, and TALL_ROW_* to
`grid two-rows` and `grid $(... draw-rows 3615 16 65 128)`.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from deep_k_splits import ab, chosen, default_config, error, named, operands, timed, unaligned  # noqa: E402
from skc.blocks import MatmulConfig  # noqa: E402

SMS = 132
# decode-like shapes of a transformer's projections (x @ w.t(): B K-major) and one of each layout not in them
MODELS = [f"{M}x{N}x{K}:linear" for M in (1, 16, 64) for N, K in ((4096, 4096), (4096, 14336), (6144, 4096))] + [
    "32x4096x11008", "8x4096x4096", "64x2368x3368", "64x3904x5248"]
# two rows of 64-row tiles (65-128 rows) filling a quarter of the SMs to one wave: the rules before this benchmark's
TWO_ROWS = ["96x2368x3392", "80x3008x8192:linear", "128x2560x4096", "72x2048x11008", "100x1536x6144",
            "120x3456x4096:linear", "65x4096x4096", "112x4096x14336:linear", "88x2816x2048", "128x3840x7168"]
TILES = [(64, 32), (64, 64), (64, 128)]
# the rules before the thirty-sixth session's: tile_rules.one_row_split's share's cost out of reach (never split), no
# TALL_ROW_ROWS
BEFORE = {"ONE_ROW_SPLIT_SHARE_COST": 10 ** 9, "TALL_ROW_ROWS": 0}


def in_band(M: int, N: int, K: int, linear: bool) -> bool:
    """Whether the rules before chose one row of tiles, unsplit and unclustered, filling more than a quarter of the
    SMs and at most all of them, for aligned rows."""
    if M > 64 or any(unaligned(linear, N, K)):
        return False
    config = chosen(M, N, K, linear, BEFORE)
    tiles = -(-N // config.tile_n)
    return (config.tile_m == 64 and config.split_k == 1 and config.cluster == 1 and not config.swap_ab
            and SMS < 4 * tiles <= 4 * SMS)


def size(generator, low: int, high: int, align: int) -> int:
    """A size drawn log-uniform from low to high, rounded down to a multiple of align (align at least)."""
    return max(align, int(math.exp(generator.uniform(math.log(low), math.log(high)))) // align * align)


def draw(seed: int, count: int = 24, changed: bool = False) -> list:
    """`count` shapes in the band drawn with `seed` (`changed`: only those whose configuration the rules before and
    now choose differently)."""
    generator = random.Random(seed)
    found = []
    while len(found) < count:
        M, N, K = size(generator, 1, 65, 1), size(generator, 2112, 8449, 64), size(generator, 1024, 16385, 64)
        linear = generator.random() < 0.5
        if in_band(M, N, K, linear) and not (changed and chosen(M, N, K, linear, BEFORE) == chosen(M, N, K, linear)):
            found.append(f"{M}x{N}x{K}" + (":linear" if linear else ""))
    return found


def draw_rows(seed: int, count: int, rows: tuple, changed: bool = False) -> list:
    """`count` shapes of rows[0] to rows[1] rows drawn with `seed` (aligned rows, N of 1024-8448 and K of 1024-16384,
    multiples of 64) whose rule (`changed`: the rules before, BEFORE, choosing otherwise than now) takes 64-row tiles
    unclustered, at most two waves of 64 x 64 ones."""
    generator = random.Random(seed)
    found = []
    while len(found) < count:
        M, N, K = generator.randint(*rows), size(generator, 1024, 8449, 64), size(generator, 1024, 16385, 64)
        linear = generator.random() < 0.5
        config = chosen(M, N, K, linear, BEFORE if changed else None)
        if changed and config == chosen(M, N, K, linear):
            continue
        if config.tile_m == 64 and config.cluster == 1 and -(-M // 64) * -(-N // 64) <= 2 * SMS:
            found.append(f"{M}x{N}x{K}" + (":linear" if linear else ""))
    return found


def variants(M: int, N: int, K: int, linear: bool) -> dict:
    """{name: configuration} of each tile of TILES (past 64 rows 128 x 64 and 128 x 128 too) in each count of shares
    whose units fit one wave (unsplit also in two), 8 k-steps a share at least."""
    found = {}
    for tile_m, tile_n in TILES + ([(128, 64), (128, 128)] if M > 64 else []):
        tiles = -(-M // tile_m) * -(-N // tile_n)
        for split in range(1, 7):
            if tiles * split > (2 if split == 1 else 1) * SMS or K // 64 < 8 * split:
                continue
            found[f"{tile_m}x{tile_n} k{split} ({tiles * split})"] = MatmulConfig.for_problem(
                M, N, K, multiprocessors=SMS, b_k_major=linear, tile_m=tile_m, tile_n=tile_n, split_k=split,
                cluster_m=1)
    return found


def grid(specs, json_path=None):
    rows = []
    for spec in specs:
        M, N, K, linear, a, b = operands(spec)
        expected = a.float() @ b.float()
        configs = variants(M, N, K, linear)
        calls = {"torch": lambda: torch.matmul(a, b), "default": lambda: skc.blocks.matmul(a, b)}
        calls.update({name: (lambda config=config: skc.blocks.matmul(a, b, config=config))
                      for name, config in configs.items()})
        wrong = [name for name, call in calls.items() if error(call(), expected) > 1e-2]
        default = named(default_config(a, b))
        best = timed(calls, 2)
        reference = best["torch"]
        print(f"{spec} (default {default}) torch {reference * 1e3:.1f}us  " + "  ".join(
            f"{name} {reference / ms:.2f}" for name, ms in sorted(best.items(), key=lambda kv: kv[1])
            if name != "torch"), flush=True)
        if wrong:
            print("  WRONG:", wrong, flush=True)
        rows.append({"spec": spec, "default": default, "ms": best, "wrong": wrong})
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "grid"
    if mode == "draw-rows":   # draw-rows SEED COUNT LOW HIGH [changed]
        print(",".join(draw_rows(*map(int, sys.argv[2:4]), tuple(map(int, sys.argv[4:6])), "changed" in sys.argv[6:])))
        sys.exit()
    if mode == "draw":
        print(",".join(draw(int(sys.argv[2]) if len(sys.argv) > 2 else 3601,
                            int(sys.argv[3]) if len(sys.argv) > 3 else 24, "changed" in sys.argv[4:])))
        sys.exit()
    args = [arg for arg in sys.argv[2:] if not arg.startswith("json=")]
    json_path = next((arg[5:] for arg in sys.argv[2:] if arg.startswith("json=")), None)
    specs = {"models": MODELS, "two-rows": TWO_ROWS}.get(args[0], args[0].split(",")) if args else MODELS
    if mode == "grid":
        grid(specs, json_path)
    else:
        ab(specs, BEFORE)
