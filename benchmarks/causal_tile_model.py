"""A model of causal attention's grid on the H200's 132 SMs: each tile (one query block of one head) costs its key
blocks plus a fixed cost for its start and end (Q's load, the first S, the epilogue), in units of one key block;
blocks go to the SM that frees first, in grid order (the hardware's dispatch, one block an SM), or a persistent
block takes every grid-th tile (with every other round reversed: HeadTiles.snaked). It prints each order's finish
over an even share of the work. CPU only. Run: python benchmarks/causal_tile_model.py"""
import heapq

SMS = 132


def dispatched(lengths, fixed: float) -> float:
    """Finish of tiles of `lengths` handed in order to the SM that frees first."""
    free = [0.0] * SMS
    for length in lengths:
        heapq.heappush(free, heapq.heappop(free) + length + fixed)
    return max(free)


def snaked(lengths, fixed: float) -> float:
    """Finish of persistent blocks striding over the tiles, every other full round reversed."""
    work, count = [0.0] * SMS, len(lengths)
    for i, length in enumerate(lengths):
        round_, place = divmod(i, SMS)
        reverse = round_ % 2 == 1 and (round_ + 1) * SMS <= count
        work[SMS - 1 - place if reverse else place] += length + fixed
    return max(work)


def grouped(heads: int, blocks: int, group: int) -> list:
    """Tile lengths in HeadTiles.longest_first's order for head_group = group."""
    return [blocks - b for first in range(0, heads, group) for b in range(blocks)
            for _ in range(first, min(first + group, heads))]


def main():
    for heads, blocks in ((8 * 16, 32), (4 * 32, 64)):   # the causal rows: 4096 and 8192 keys, 128-row tiles
        even = sum(blocks - b for b in range(blocks)) * heads / SMS
        print(f"{heads} heads x {blocks} query blocks (even share {even:.0f} key blocks an SM):")
        for fixed in (1.0, 1.5):
            orders = {f"group {g}": dispatched(grouped(heads, blocks, g), fixed) for g in (1, 2, 4, 8)}
            orders["persistent, snaked"] = snaked(grouped(heads, blocks, 1), fixed / 3)
            print(f"  fixed cost {fixed}: " + ", ".join(f"{name} {value / even:.3f}" for name, value in orders.items()))


if __name__ == "__main__":
    main()
