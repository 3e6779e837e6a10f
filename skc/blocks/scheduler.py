"""Tile schedulers: which output tiles a block computes. `TileScheduler` is persistent (a grid of
at most one block per SM walks the tiles with a stride of the grid size) in grouped raster order
(`group_m` tile-rows at a time, so neighbouring blocks share A and B tiles in L2)."""
from __future__ import annotations

import skc


class Tile:
    """One output tile: its first row and column."""

    def __init__(self, row0, col0):
        self.row0, self.col0 = row0, col0


class TileScheduler:
    """`for tile in TileScheduler(M, N, tile_m, tile_n):` visits this block's tiles (a run-time loop).
    With clusters of `cluster_m` blocks along M, a cluster takes `cluster_m` vertically adjacent tiles
    (which share their B tile) and each block the one of its rank."""

    def __init__(self, M, N, tile_m: int, tile_n: int, group_m: int = 8, cluster_m: int = 1):
        self.tile_m, self.tile_n, self.group_m, self.cluster_m = tile_m, tile_n, group_m, cluster_m
        self.tiles_m = skc.cdiv(M, tile_m * cluster_m)
        self.tiles_n = skc.cdiv(N, tile_n)
        self.rank = skc.hopper.cluster_rank() if cluster_m > 1 else 0

    def __skc_range__(self):
        if self.cluster_m == 1:
            return skc.block_id(0), self.tiles_m * self.tiles_n, skc.grid_dim(0)
        return skc.block_id(0) // self.cluster_m, self.tiles_m * self.tiles_n, skc.grid_dim(0) // self.cluster_m

    def __skc_item__(self, index):
        per_group = self.group_m * self.tiles_n
        group = index // per_group
        first_m = group * self.group_m
        rows_in_group = skc.minimum(self.tiles_m - first_m, self.group_m)
        within = index % per_group
        span = self.tile_m * self.cluster_m
        row0 = (first_m + within % rows_in_group) * span + self.rank * self.tile_m
        return Tile(row0, (within // rows_in_group) * self.tile_n)

    @staticmethod
    def grid(M: int, N: int, tile_m: int, tile_n: int, blocks_per_device: int, cluster_m: int = 1) -> int:
        """The persistent grid: one block per SM, fewer when there are fewer tiles (host side); a
        multiple of the cluster size."""
        tiles = -(-M // (tile_m * cluster_m)) * -(-N // tile_n)
        return max(1, min(tiles, blocks_per_device // cluster_m)) * cluster_m
