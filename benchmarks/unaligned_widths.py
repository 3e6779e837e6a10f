"""`x @ w.t()` whose rows are not 128-byte aligned (K no multiple of 64), end to end against torch.matmul (thirty-eighth
session, benchmarks/NOTES.md): the tiles tile_rules.UNALIGNED_FILL_WIDTHS adds, and the tiles' speeds in their clusters.

    python benchmarks/unaligned_widths.py grid MxNxK:linear,...
        each shape's default and torch beside 128- and 192-row tiles of other widths (those whose waves x area lie
        within 30 % of the least, and 128 x 256), each unclustered and in clusters of two along M and along N
    python benchmarks/unaligned_widths.py list SEED COUNT
        COUNT shapes drawn with SEED (M 256-8192, N 256-8192 a multiple of 8, K 768-8192 a multiple of 8 but not
        of 64) whose configuration the rule changes (no GPU)
    python benchmarks/unaligned_widths.py ab SEED COUNT
        those shapes: the default against the rules before (no UNALIGNED_FILL_WIDTHS), given as a configuration
    python benchmarks/unaligned_widths.py list|ab SEED COUNT clusters
        the same for the tiles' speeds in their clusters (tile_rules.UNALIGNED_CLUSTER_SPEEDS): shapes of a K-major B
        (half of them) or a row-major one, rows not 128-byte aligned, whose configuration that rule changes
    python benchmarks/unaligned_widths.py list|ab SEED COUNT sectors
        the same for clusters along M only where B's rows cross 32-byte sectors (tile_rules.SECTOR_CLUSTERS)
    python benchmarks/unaligned_widths.py compile WORKER WORKERS grid SPECS | ab SEED COUNT [clusters]
        compile that mode's kernels only (this worker's share), so that parallel processes fill the disk cache first
The draw depends on the rule: run at another commit, `list` names other shapes.
"""
from __future__ import annotations

import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from deep_k_splits import ab, chosen, named, operands, unaligned  # noqa: E402
from skc.blocks import MatmulConfig  # noqa: E402
import wave_tiles  # noqa: E402
from skc.blocks.tile_rules import tiles_of  # noqa: E402
from wave_tiles import shape_of  # noqa: E402

SMS = 132
# the rules before the thirty-eighth session's fill widths, before its cluster speeds, and before the thirty-ninth's
# clusters along M only where B's rows cross 32-byte sectors
RULES = {"widths": {"UNALIGNED_FILL_WIDTHS": ()}, "clusters": {"UNALIGNED_CLUSTER_SPEEDS": False},
         "sectors": {"SECTOR_CLUSTERS": False}}
CLUSTERS = {"": {}, " cm2": {"cluster_m": 2}, " cn2": {"cluster_n": 2}}


def candidates(M: int, N: int, keep: int = 5) -> list:
    """wave_tiles.candidates' tiles of a K-major B within 30 % of the least waves x area (`keep` of them), and 128 x
    256."""
    found = wave_tiles.candidates(M, N, True, keep, slack=1.3)
    return found + [(128, 256)] * ((128, 256) not in found)


def configs(spec: str) -> dict:
    M, N, K, linear = shape_of(spec)
    return {f"{tile_m}x{tile_n}{label} ({tiles_of(M, N, tile_m, tile_n)})":
            MatmulConfig.for_problem(M, N, K, multiprocessors=SMS, b_k_major=linear, tile_m=tile_m, tile_n=tile_n,
                                     **({"cluster_m": 1} | cluster))
            for tile_m, tile_n in candidates(M, N) for label, cluster in CLUSTERS.items()}


def draw(seed: int, count: int, rule: str = "widths") -> list:
    generator = random.Random(seed)

    def size(low, high, align):
        return max(align, int(math.exp(generator.uniform(math.log(low), math.log(high)))) // align * align)

    found = []
    while len(found) < count:
        linear = rule == "widths" or generator.random() < 0.5
        M, N, K = size(256, 8192, 1), size(256, 8192, 8), size(768, 8192, 8)
        if not any(unaligned(linear, N, K)) if rule != "widths" else K % 64 == 0:
            continue
        new, old = chosen(M, N, K, linear), chosen(M, N, K, linear, RULES[rule])
        if named(new) != named(old):
            found.append(f"{M}x{N}x{K}" + (":linear" if linear else ""))
    return found


def compile_share(worker: int, workers: int, mode: str, args: list):
    if mode == "grid":
        jobs = [(spec, config) for spec in args[0].split(",") for config in configs(spec).values()]
    else:
        rule = args[2] if len(args) > 2 else "widths"
        jobs = [(spec, config) for spec in draw(int(args[0]), int(args[1]), rule)
                for config in (None, chosen(*shape_of(spec), RULES[rule]))]
    for spec, config in jobs[worker::workers]:
        M, N, K, linear, a, b = operands(spec)
        skc.blocks.matmul(a, b, config=config)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "compile":
        compile_share(int(args[0]), int(args[1]), args[2], args[3:])
    elif mode == "grid":
        wave_tiles.grid(args[0].split(","), configs)
    else:
        rule = args[2] if len(args) > 2 else "widths"
        specs = draw(int(args[0]), int(args[1]), rule)
        if mode == "list":
            for spec in specs:
                before, now = chosen(*shape_of(spec), RULES[rule]), chosen(*shape_of(spec))
                print(f"{spec}: before {named(before)}, now {named(now)}")
        else:
            ab(specs, RULES[rule])
