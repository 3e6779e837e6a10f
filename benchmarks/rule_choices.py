"""The tile rule's choices over seeded random problems, as one digest (no GPU): run it before and after a change to
the rules that should choose the same (a move, a rename) and compare the digests; where they differ, --list of each
and `diff` name the problems.
    python benchmarks/rule_choices.py [--count 200000] [--seed 7] [--list FILE]
Each problem: M, N, K log-uniform (M 1-16383, N 8-23170 a multiple of 8, K 64-32768 a multiple of 8), B K-major or
row-major, rows aligned or 16 / 48 / 32 bytes past a multiple of 128 (A's, B's), one matrix or a batch of two;
`MatmulConfig.for_problem` (bf16, 132 SMs) and `tile_rules.tile_shape` of the same problem."""
from __future__ import annotations

import argparse
import hashlib
import random

from skc.blocks import tile_rules
from skc.blocks.config import MatmulConfig

UNALIGNED = [(0, 0), (0, 0), (0, 0), (16, 0), (0, 48), (32, 32)]


def choices(count: int, seed: int):
    """(problem, the configuration's repr, tile_shape's) for `count` problems drawn with `seed`."""
    draw = random.Random(seed)
    for _ in range(count):
        M = int(2 ** draw.uniform(0, 14))
        N = max(8, int(2 ** draw.uniform(3, 14.5)) // 8 * 8)
        K = max(64, int(2 ** draw.uniform(6, 15)) // 8 * 8)
        b_k_major, unaligned, batch = draw.random() < 0.5, draw.choice(UNALIGNED), draw.choice([1, 1, 1, 2])
        try:
            config = repr(MatmulConfig.for_problem(M * batch, N, K, "bf16", True, b_k_major, multiprocessors=132,
                                                   unaligned=unaligned, batch=batch))
        except ValueError as error:
            config = f"ValueError: {error}"
        shape = tile_rules.tile_shape(M, N, K, 132, 1, any(unaligned), b_k_major, fill_widths=True)
        yield (M, N, K, b_k_major, unaligned, batch), config, repr(shape)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--list", help="write each problem's choices to this file, one line each")
    args = parser.parse_args()
    digest = hashlib.sha256()
    lines = []
    for problem, config, shape in choices(args.count, args.seed):
        line = f"{problem} {shape} {config}"
        digest.update(line.encode() + b"\n")
        if args.list:
            lines.append(line)
    if args.list:
        with open(args.list, "w") as file:
            file.write("\n".join(lines) + "\n")
    print(f"{args.count} problems, seed {args.seed}: {digest.hexdigest()[:16]}")
