"""Mid-size GEMMs whose tiles make one to three waves, end to end against torch.matmul (the Python call, host
included; triton's do_bench medians with L2 flushed, callables timed in rotating order, best round kept): the
default beside tiles of other widths (128 or 192 rows, 128-256 columns; a K-major B's any multiple of 16, a row-major
B's of 32) that fill the last wave better.

    python benchmarks/wave_tiles.py grid [MxNxK[:linear],...]      each shape's default, torch and the candidates
    python benchmarks/wave_tiles.py draw SEED [COUNT]              `x @ w.t()` shapes drawn at random whose tiles
                                                                   the rules before (BEFORE: no FILL_WIDTH_SPEEDS)
                                                                   and now differ (no GPU)
    python benchmarks/wave_tiles.py ab MxNxK[:linear],...          the default against the rules before, given as
                                                                   a configuration
    python benchmarks/wave_tiles.py without W1,W2 MxNxK[:linear],...  the default against the rule without these
                                                                   fill widths (as "before"), given as a configuration
    python benchmarks/wave_tiles.py widths K1,K2,...               each width's 128-row tiles at exactly four
                                                                   waves (66 x 8 tiles), `x @ w.t()`: its speed
                                                                   without the waves' rounding
    python benchmarks/wave_tiles.py narrow MxNxK:linear,...        each shape's default beside 128- and 192-row
                                                                   tiles 64-112 wide (a K-major B) that put one
                                                                   wave on 3/4 of the SMs or more, and 128 x 128,
                                                                   unclustered (thirty-ninth session: cuBLAS runs
                                                                   896 x 1408 x 11200 on 80 x 128 tiles, 132 of
                                                                   them)
    python benchmarks/wave_tiles.py narrow-draw SEED COUNT [KMIN]  `x @ w.t()` shapes (M 512-4096, N 512-8192,
                                                                   K KMIN-16384, 768 by default; the thirty-ninth
                                                                   and fortieth sessions' draws 3905 and 3906 took
                                                                   6144) whose tiles the rules without
                                                                   NARROW_FILL_SPEEDS and now differ (no GPU)
    python benchmarks/wave_tiles.py narrow-ab MxNxK:linear,...     the default against the rules without them
    python benchmarks/wave_tiles.py compile WORKER WORKERS MODE [specs]  compile MODE's (grid, ab, widths: its Ks)
                                                                   kernels only
                                                                   (this worker's share), so that parallel processes
                                                                   fill the disk cache before the timing
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from deep_k_splits import ab, chosen, error, named, operands, print_grid, timed  # noqa: E402
from skc.blocks import MatmulConfig  # noqa: E402
from skc.blocks.tile_rules import tiles_of  # noqa: E402

GRID = ["448x9856x1984:linear", "5824x888x6336:linear", "357x5952x1048:linear", "448x9856x1984",
        "5824x888x6336", "1800x5000x4096:linear", "2900x3000x2048", "1000x11008x4096:linear", "3000x1536x8192:linear",
        "700x7168x2048"]
SMS = 132
# the rules before the thirty-second session, and before the thirty-ninth's narrow fill widths
BEFORE = {"FILL_WIDTH_SPEEDS": {}}
NARROW_BEFORE = {"NARROW_FILL_SPEEDS": {}}


def widths(k_major: bool) -> list:
    return list(range(128, 257, 16 if k_major else 32))


def candidates(M: int, N: int, linear: bool, keep: int = 6, slack: float = 1.25) -> list:
    """(tile_m, tile_n) of 128 or 192 rows (192-row ones at most 192 wide) whose waves x tile area is least, within
    `slack` of the least (`keep` of them)."""
    shapes = [(tile_m, tile_n) for tile_m in (128, 192) for tile_n in widths(linear)
              if not (tile_m == 192 and tile_n > 192)]

    def cost(tile):
        return -(-tiles_of(M, N, *tile) // SMS) * tile[0] * tile[1]

    shapes.sort(key=cost)
    least = cost(shapes[0])
    return [tile for tile in shapes if cost(tile) <= slack * least][:keep]


def configs(spec: str) -> dict:
    M, N, K, linear = shape_of(spec)
    return {f"{tile_m}x{tile_n} ({tiles_of(M, N, tile_m, tile_n)})":
            MatmulConfig.for_problem(M, N, K, multiprocessors=SMS, b_k_major=linear, tile_m=tile_m, tile_n=tile_n,
                                     cluster_m=1)
            for tile_m, tile_n in candidates(M, N, linear)}


def narrow_configs(spec: str) -> dict:
    """128 x 128 and the 128- and 192-row tiles 64-112 wide (64 and 96 for a row-major B) whose tiles number 3/4 of
    the SMs to all of them, each unclustered, by name."""
    M, N, K, linear = shape_of(spec)
    tiles = [(128, 128)] + [(tile_m, tile_n) for tile_m in (128, 192) for tile_n in range(64, 128, 16 if linear else 32)
                            if 0.75 * SMS <= tiles_of(M, N, tile_m, tile_n) <= SMS]
    return {f"{tile_m}x{tile_n} ({tiles_of(M, N, tile_m, tile_n)})":
            MatmulConfig.for_problem(M, N, K, multiprocessors=SMS, b_k_major=linear, tile_m=tile_m, tile_n=tile_n,
                                     cluster_m=1, cluster_n=1)
            for tile_m, tile_n in tiles}


def grid(specs, candidates_of=None):
    """Each shape's default and torch beside `candidates_of(spec)`'s configurations (by name; `configs` by default)."""
    import torch

    for spec in specs:
        M, N, K, linear, a, b = operands(spec)
        calls = {"torch": lambda: torch.matmul(a, b), "default": lambda: skc.blocks.matmul(a, b)}
        for name, config in (candidates_of or configs)(spec).items():
            calls[name] = lambda config=config: skc.blocks.matmul(a, b, config=config)
        print_grid(spec, a, b, a.float() @ b.float(), calls, 3)


def shape_of(spec: str) -> tuple:
    shape, _, kind = spec.partition(":")
    return (*map(int, shape.split("x")), kind == "linear")


def draw(seed: int, count: int = 16, before: dict = None, sizes=((256, 8192), (512, 16384), (512, 8192))) -> list:
    """`count` `x @ w.t()` shapes (M, N and K within `sizes`, by default M 256-8192, N 512-16384 a multiple of 8, K
    512-8192 a multiple of 64: rows 128-byte aligned, out's 16-byte) whose tiles the rules before (`before`, BEFORE
    by default) and now choose differently."""
    import math
    import random

    generator = random.Random(seed)

    def size(low, high, align):
        return max(align, int(math.exp(generator.uniform(math.log(low), math.log(high)))) // align * align)

    found = []
    while len(found) < count:
        M, N, K = size(*sizes[0], 1), size(*sizes[1], 8), size(*sizes[2], 64)
        new, old = chosen(M, N, K, True), chosen(M, N, K, True, before or BEFORE)
        if (new.tile_m, new.tile_n, new.split_k) != (old.tile_m, old.tile_n, old.split_k):
            found.append(f"{M}x{N}x{K}:linear")
            print(f"{found[-1]}: before {named(old)}, now {named(new)}")
    print(",".join(found))
    return found


def exact_waves(k: int, width: int) -> tuple:
    """(spec, configuration) of 128 x `width` tiles at four waves of 132 exactly, K = k."""
    M, N = 128 * 66, 8 * width
    return (f"{M}x{N}x{k}:linear", MatmulConfig.for_problem(M, N, k, multiprocessors=SMS, b_k_major=True, tile_m=128,
                                                            tile_n=width, cluster_m=1))


def widths_at(ks):
    """Each K-major width's TFLOP/s at four waves, end to end, beside torch's, and over 128 x 256's at the same K."""
    import torch

    for k in ks:
        speeds = {}
        for width in widths(True):
            spec, config = exact_waves(k, width)
            M, N, K, linear, a, b = operands(spec)
            assert error(skc.blocks.matmul(a, b, config=config), a.float() @ b.float()) <= 1e-2
            best = timed({"torch": lambda: torch.matmul(a, b),
                          "skc": lambda config=config: skc.blocks.matmul(a, b, config=config)}, 3)
            speeds[width] = 2 * M * N * K / best["skc"] / 1e9
            print(f"K={k} 128x{width} ({config.epilogue_columns}-column chunks) skc {speeds[width]:.0f} TFLOP/s, "
                  f"torch {2 * M * N * K / best['torch'] / 1e9:.0f}", flush=True)
        print(f"K={k} over 128x256: " + " ".join(f"{w}:{v / speeds[256]:.3f}" for w, v in speeds.items()), flush=True)


def without(text: str) -> dict:
    """The rules' constants without the fill widths listed (`240` or `176,208`)."""
    from skc.blocks.tile_rules import FILL_WIDTH_SPEEDS

    dropped = {int(width) for width in text.split(",")}
    return {"FILL_WIDTH_SPEEDS": {tile: speed for tile, speed in FILL_WIDTH_SPEEDS.items() if tile[1] not in dropped}}


def compile_share(worker: int, workers: int, mode: str, specs, rules_before=None):
    if mode == "widths":
        jobs = [exact_waves(k, width) for k in map(int, specs) for width in widths(True)]
    elif mode in ("grid", "narrow"):
        jobs = [(spec, config) for spec in specs
                for config in [None, *(configs if mode == "grid" else narrow_configs)(spec).values()]]
    else:   # ("ab" and "narrow-ab": the rules before and now)
        rules_before = rules_before or (NARROW_BEFORE if mode == "narrow-ab" else BEFORE)
        jobs = [(spec, config) for spec in specs
                for config in (chosen(*shape_of(spec), rules_before), chosen(*shape_of(spec)))]
    for spec, config in jobs[worker::workers]:
        M, N, K, linear, a, b = operands(spec)
        skc.blocks.matmul(a, b, config=config)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "grid"
    if mode == "compile":   # (`compile W N without W1,W2 SPECS`: the kernels of `without`)
        if sys.argv[4] == "without":
            compile_share(int(sys.argv[2]), int(sys.argv[3]), "ab", sys.argv[6].split(","), without(sys.argv[5]))
        else:
            compile_share(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                          sys.argv[5].split(",") if len(sys.argv) > 5 else GRID)
    elif mode == "draw":
        draw(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 16)
    elif mode == "ab":
        ab(sys.argv[2].split(","), BEFORE)
    elif mode == "widths":
        widths_at([int(k) for k in sys.argv[2].split(",")])
    elif mode == "without":
        ab(sys.argv[3].split(","), without(sys.argv[2]))
    elif mode == "narrow":
        grid(sys.argv[2].split(","), narrow_configs)
    elif mode == "narrow-draw":   # (M 512-4096, N 512-8192, K KMIN-16384)
        draw(int(sys.argv[2]), int(sys.argv[3]), NARROW_BEFORE,
             ((512, 4096), (512, 8192), (int(sys.argv[4]) if len(sys.argv) > 4 else 768, 16384)))
    elif mode == "narrow-ab":
        ab(sys.argv[2].split(","), NARROW_BEFORE)
    else:
        grid(sys.argv[2].split(",") if len(sys.argv) > 2 else GRID)
