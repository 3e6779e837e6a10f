"""Tile schedulers: which output tiles a block computes, and over which k-steps. `TileScheduler` is
persistent (a grid of at most one block per SM walks the tiles with a stride of the grid size) in grouped
raster order (`group_m` tile-rows at a time, so neighbouring blocks share A and B tiles in L2).
`SplitKScheduler` hands out (tile, share of K) work units, for problems with fewer tiles than SMs;
`StreamKScheduler` shares the last waves' k-steps evenly between the blocks, for tiles that leave a wave part-full;
`SplitTailScheduler` splits the part-full last wave's tiles along K."""
from __future__ import annotations

import numbers

import skc
from skc import frontend
from skc.diagnostics import user_location

from . import clusters
from .arguments import is_integer, refuse


class Tile:
    """One output tile: its first row and column (a work unit of a split-K scheduler adds its k-steps)."""

    def __init__(self, row0, col0, k_begin=0, k_end=None, batch=0, share=0, partial=False, slot=0):
        self.row0, self.col0 = row0, col0
        self.k_begin, self.k_end = k_begin, k_end
        self.share = share  # which share of K a split-K work unit is (SplitKScheduler)
        self.batch = batch  # which matrix of a batch (TileScheduler's `batches`)
        self.partial = partial  # part of a tile whose other part another block computes (StreamKScheduler)
        self.slot = slot        # where the two parts of such a tile meet (StreamKFixup's record and counter)

    def k_steps(self, k_tiles):
        """(first, end) of the k-steps this work unit computes, of `k_tiles` in all."""
        return self.k_begin, k_tiles if self.k_end is None else self.k_end


class TileScheduler:
    """`for tile in TileScheduler(M, N, tile_m, tile_n):` visits this block's tiles (a run-time loop).
    With clusters of `cluster_m` blocks along M, a cluster takes `cluster_m` vertically adjacent tiles
    (which share their B tile) and each block the one of its rank; with clusters of `cluster_n` blocks along N,
    `cluster_n` horizontally adjacent tiles (which share their A tile). A cluster's last tiles may lie past the
    matrix: their blocks still load their share of the shared tile, and store nothing."""

    def __init__(self, M, N, tile_m: int, tile_n: int, group_m: int = 8, cluster_m: int = 1, batches=1,
                 cluster_n: int = 1):
        for name, size in (("cluster_m", cluster_m), ("cluster_n", cluster_n)):   # (-1 walked no tile, silently)
            if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1:
                raise frontend.current().error(
                    f"a scheduler's {name} is how many blocks of a cluster share a tile's operand, a compile-time int "
                    f"of 1 or more, found {size!r}", hint=f"{name}=1 (no cluster), or the kernel's cluster size")
        if cluster_m > 1 and cluster_n > 1:
            raise frontend.current().error("a cluster runs along M or along N, not both",
                                           hint="cluster_m=1 or cluster_n=1")
        for name, extent in (("tile_m", tile_m), ("tile_n", tile_n)):
            if not isinstance(extent, numbers.Integral) or isinstance(extent, bool) or extent < 1:
                raise frontend.current().error(f"a tile's {name} is a compile-time int of 1 or more, found {extent!r}",
                                               hint=f"give {name} as a Python int (a constexpr): the payload's tile "
                                                    f"{'rows' if name == 'tile_m' else 'columns'}")
        if isinstance(group_m, int) and group_m < 1:   # 0 divides by zero; fewer skips tiles (never stored)
            raise frontend.current().error(f"group_m is how many tile-rows the raster walks at a time, 1 or more, "
                                           f"found {group_m}", hint="group_m=8 (the default), or 1 for row order")
        # (a float M was taken, and failed at the `for` as "range() bounds must be integers"; no batches, or fewer
        # than none, walked no tile: the output was never stored)
        for name, extent in (("M", M), ("N", N), ("batches", batches)):
            if not is_integer(extent):
                refuse(type(self).__name__, name, "an integer (the kernel's i32 parameter or a compile-time int)",
                       extent, f"give {name} as an integer")
        if isinstance(batches, numbers.Integral) and batches < 1:
            refuse(type(self).__name__, "batches", "how many matrices the output holds, 1 or more", batches,
                   "batches=1 (the default) for one matrix")
        self.tile_m, self.tile_n, self.group_m = tile_m, tile_n, group_m
        self.cluster_m, self.cluster_n = cluster_m, cluster_n
        self.cluster = cluster_m * cluster_n
        self.tiles_m = skc.cdiv(M, tile_m * cluster_m)
        self.tiles_n = skc.cdiv(N, tile_n * cluster_n)
        self.batches = batches  # a batch of M x N outputs: each matrix's tiles in turn, Tile.batch saying which
        self.single = isinstance(batches, int) and batches == 1  # (compile time) no batch
        if self.cluster > 1:
            clusters.check_kernel_cluster(self._text(), self.cluster, "make the scheduler without clusters")
        self.rank = skc.hopper.cluster_rank() if self.cluster > 1 else 0

    def _text(self) -> str:
        """The scheduler as a message names it."""
        return f"{type(self).__name__}(..., cluster_m={self.cluster_m}, cluster_n={self.cluster_n})"

    def _handed_out(self, tile: Tile) -> Tile:
        """`tile`, its origins recorded with the rows and columns between one tile and the next (for a loader to
        compare with the tiles it loads there: `spacing`)."""
        where = f"{type(self).__name__}(M, N, tile_m={self.tile_m}, tile_n={self.tile_n}, ...)"
        order = self._order()
        _record_spacing(tile, "row0", self.tile_m, "rows", f"tile.row0 of {where}", "tile_m", order)
        _record_spacing(tile, "col0", self.tile_n, "columns", f"tile.col0 of {where}", "tile_n", order)
        return tile

    def _order(self) -> tuple:
        """What decides the order of the tiles handed out, beside M and N: (the text that names it, whether it is known
        at compile time: a run-time group_m or splits is not)."""
        group_m = self.group_m if isinstance(self.group_m, int) else None
        splits = getattr(self, "splits", None)
        text = (f"{type(self).__name__}(M, N, tile_m={self.tile_m}, tile_n={self.tile_n}, group_m={group_m}" +
                (f", splits={splits}" if splits is not None else "") +
                (f", cluster_m={self.cluster_m}" if self.cluster_m > 1 else "") +
                (f", cluster_n={self.cluster_n}" if self.cluster_n > 1 else "") + ")")
        return text, group_m is not None and not isinstance(splits, frontend.Dyn)

    def __skc_range__(self):
        units = self.tiles_m * self.tiles_n if self.single else self.tiles_m * self.tiles_n * self.batches
        if self.cluster == 1:
            return skc.block_id(0), units, skc.grid_dim(0)
        return skc.block_id(0) // self.cluster, units, skc.grid_dim(0) // self.cluster

    def __skc_item__(self, index):
        return self._handed_out(self._tile_at(index) if self.single else self._batch_tile_at(index))

    def count(self):
        """How many tiles this block visits (a run-time value; at least one: the grid has no more blocks)."""
        first, units, step = self.__skc_range__()
        return skc.cdiv(units - first, step)

    def every(self, n: int, first):
        """`for tile in tiles.every(n, i):` visits tiles i, i + n, i + 2n, ... of this block's (consumer warpgroup i of
        n taking its tiles in turn)."""
        return _EveryNth(self, n, first)

    def _batch_tile_at(self, index):
        tiles = self.tiles_m * self.tiles_n
        tile = self._tile_at(index % tiles)
        batched = Tile(tile.row0, tile.col0, batch=index // tiles)
        clusters.share(batched, "batch", self.cluster, f"tile.batch of {self._text()}")   # (a cluster's: one matrix)
        return batched

    def _tile_at(self, index):
        per_group = self.group_m * self.tiles_n
        group = index // per_group
        first_m = group * self.group_m
        rows_in_group = skc.minimum(self.tiles_m - first_m, self.group_m)
        within = index % per_group
        row0 = (first_m + within % rows_in_group) * (self.tile_m * self.cluster_m)
        col0 = (within // rows_in_group) * (self.tile_n * self.cluster_n)
        if self.cluster_m > 1:   # the block's tile of its cluster's
            row0 += self.rank * self.tile_m
        if self.cluster_n > 1:
            col0 += self.rank * self.tile_n
        tile = Tile(row0, col0)
        # which of the coordinates the blocks of a cluster hand out alike (the origin of a tile they multicast)
        clusters.share(tile, "row0", self.cluster_n, f"tile.row0 of {self._text()}")
        clusters.share(tile, "col0", self.cluster_m, f"tile.col0 of {self._text()}")
        return tile

    @staticmethod
    def grid(M: int, N: int, tile_m: int, tile_n: int, blocks_per_device: int, cluster_m: int = 1,
             split_k: int = 1, batches: int = 1, cluster_n: int = 1) -> int:
        """The persistent grid: one block per SM, fewer when there are fewer work units (host side); a
        multiple of the cluster size."""
        units = -(-M // (tile_m * cluster_m)) * -(-N // (tile_n * cluster_n)) * split_k * batches
        cluster = cluster_m * cluster_n
        return max(1, min(units, blocks_per_device // cluster)) * cluster


class SplitKScheduler(TileScheduler):
    """`for unit in SplitKScheduler(M, N, tile_m, tile_n, k_tiles, splits):` visits this block's work units: each
    output tile `splits` times, unit s of a tile over k-steps [s·share, (s+1)·share) of the `k_tiles`
    (share = cdiv(k_tiles, splits); a last share may be short or empty). Units run split-major (all tiles' first
    shares, then all second shares), so the shares of one tile run at once on different SMs; an epilogue that adds
    partial tiles (SplitKEpilogue) completes each tile."""

    def __init__(self, M, N, tile_m: int, tile_n: int, k_tiles, splits: int, group_m: int = 8):
        if not isinstance(splits, numbers.Integral) or isinstance(splits, bool) or splits < 1:
            # (0 divided K by zero; the split-K epilogue sums the shares in a compile-time loop)
            raise frontend.current().error(f"a split-K scheduler's splits is a compile-time count of 1 or more, "
                                           f"found {splits!r}")
        super().__init__(M, N, tile_m, tile_n, group_m, 1)
        self.splits, self.k_tiles = splits, k_tiles
        self.share = skc.cdiv(k_tiles, splits)

    def __skc_range__(self):
        return skc.block_id(0), self.tiles_m * self.tiles_n * self.splits, skc.grid_dim(0)

    def __skc_item__(self, index):
        tiles = self.tiles_m * self.tiles_n
        tile = self._tile_at(index % tiles)
        share = index // tiles
        k_begin = share * self.share
        unit = self._handed_out(Tile(tile.row0, tile.col0, k_begin, skc.minimum(k_begin + self.share, self.k_tiles),
                                     share=share))
        _record_splits(unit, self.splits, f"SplitKScheduler(..., splits={self.splits})")
        return unit


class StreamKScheduler(TileScheduler):
    """`for unit in StreamKScheduler(M, N, tile_m, tile_n, k_tiles):` visits this block's work units, stream-K
    style, when the tiles leave the grid's last wave part-full: the tiles of the whole waves but the last one as
    TileScheduler hands them out (a tile a unit), then the rest (the last whole wave and the part-full one, in
    raster order) as one run of k-steps cut into a contiguous range per block, of equal lengths. A range is at
    least a tile's k-steps long, so a tile in it is either the block's alone or split between two neighbouring
    blocks: a unit that is such a part (`partial`, run-time) is completed by StreamKFixup at `slot`, the block id
    of the tile's first part. Tiles in whole waves (or fewer tiles than blocks): every unit a whole tile."""

    def __init__(self, M, N, tile_m: int, tile_n: int, k_tiles, group_m: int = 8):
        super().__init__(M, N, tile_m, tile_n, group_m, 1)
        self.k_tiles = k_tiles
        blocks, self.block = skc.grid_dim(0), skc.block_id(0)
        tiles = self.tiles_m * self.tiles_n
        rest = tiles % blocks
        # tiles whose k-steps are shared (none: whole waves, fewer tiles than blocks, or no k-steps at all)
        shared = skc.where((rest == 0) | (tiles < blocks) | (k_tiles == 0), 0, rest + blocks)
        # this block's whole tiles (those before the shared ones; a block past the last tile has none)
        self.whole = (tiles - shared - self.block + blocks - 1) // blocks
        # this block's range of the shared k-steps, in k-steps from the first tile's first (64-bit: tiles x k-steps)
        first, steps = skc.i64(tiles - shared) * k_tiles, skc.i64(shared) * k_tiles
        self.begin = first + skc.i64(self.block) * steps // blocks
        self.end = first + skc.i64(self.block + 1) * steps // blocks
        self.steps = skc.maximum(k_tiles, 1)   # (a divisor: with no k-steps there is no shared range to divide)
        self.first_shared = skc.i32(self.begin // self.steps)   # the tile of this block's first shared k-step

    def __skc_range__(self):
        shared_units = skc.where(self.end > self.begin, skc.i32((self.end - 1) // self.steps) -
                                 self.first_shared + 1, 0)
        return 0, self.whole + shared_units, 1

    def __skc_item__(self, index):
        alone = index < self.whole
        tile_index = skc.where(alone, self.block + index * skc.grid_dim(0), self.first_shared + index - self.whole)
        tile = self._tile_at(tile_index)
        start = skc.i64(tile_index) * self.k_tiles
        k_begin = skc.where(alone, 0, skc.i32(skc.maximum(self.begin - start, 0)))
        k_end = skc.where(alone, self.k_tiles, skc.i32(skc.minimum(self.end - start, self.k_tiles)))
        partial = (k_begin != 0) | (k_end != self.k_tiles)
        # the tile's first part is the previous block's when this one starts inside it
        return self._handed_out(Tile(tile.row0, tile.col0, k_begin, k_end, partial=partial,
                                     slot=skc.where(k_begin == 0, self.block, self.block - 1)))


class SplitTailScheduler(TileScheduler):
    """`for unit in SplitTailScheduler(M, N, tile_m, tile_n, k_tiles):` visits this block's work units when the tiles
    leave the grid's last wave part-full: the whole waves as TileScheduler hands them out (a tile a unit), then the
    `rest` tiles of the last wave each split along K into `splits` shares (as many as the grid holds, up to
    MAX_SPLITS and the k-steps: rest x splits <= blocks), one unit a block, share-major (all the tiles' first
    shares, then their second, ...: a share's blocks read neighbouring tiles' A and B panels at the same k-steps).
    A share (`partial`, `share` of `splits`, `slot` the tile's place among the rest) is completed by
    SplitTailFixup. Whole waves, or a last wave too full to split: every unit a whole tile."""

    MAX_SPLITS = 4   # more shares shorten the tail less than the last share's sum of their records costs

    def __init__(self, M, N, tile_m: int, tile_n: int, k_tiles, group_m: int = 8):
        super().__init__(M, N, tile_m, tile_n, group_m, 1)
        blocks, self.block = skc.grid_dim(0), skc.block_id(0)
        tiles = self.tiles_m * self.tiles_n
        rest = tiles % blocks
        self.whole = tiles - rest   # whole waves: as many tiles for every block
        tail = skc.maximum(rest, 1)   # (a divisor: with no tail, no block has a tail unit)
        self.splits = skc.maximum(skc.minimum(skc.minimum(blocks // tail, self.MAX_SPLITS), k_tiles), 1)
        self.k_tiles = k_tiles
        self.shared = rest * self.splits   # tail units: one a block, blocks 0 .. shared - 1
        self.slot, self.share = self.block % tail, self.block // tail   # this block's tail tile, and its share

    def __skc_range__(self):
        return 0, self.whole // skc.grid_dim(0) + skc.where(self.block < self.shared, 1, 0), 1

    def __skc_item__(self, index):
        blocks = skc.grid_dim(0)
        alone = self.block + index * blocks < self.whole
        slot, share = self.slot, self.share
        tile = self._tile_at(skc.where(alone, self.block + index * blocks, self.whole + slot))
        k_begin = skc.where(alone, 0, share * self.k_tiles // self.splits)
        k_end = skc.where(alone, self.k_tiles, (share + 1) * self.k_tiles // self.splits)
        partial = ~alone & (self.splits > 1)
        return self._handed_out(Tile(tile.row0, tile.col0, k_begin, k_end, share=share, partial=partial, slot=slot))


@frontend.host
def _record_splits(unit: Tile, splits: int, source: str):
    """Record that `unit.share` (a run-time value, or the variable the attribute keeps it in) is one of `splits`
    shares of K, as `source` hands it out (for a split-K epilogue to compare with the shares it sums: split_count)."""
    frontend.tag(__name__ + ".splits", unit.share, splits, source)


@frontend.host
def split_count(share):
    """(splits, source) of a work unit's share a split-K scheduler handed out (or of the variable it was read from);
    None for a value of the user's."""
    return frontend.tagged(__name__ + ".splits", share)


@frontend.host
def _record_spacing(tile: Tile, attribute: str, extent: int, unit: str, source: str, parameter: str, order: tuple):
    """Record that `tile.attribute` (a run-time value, or the variable the attribute keeps it in) is an origin of
    tiles `extent` `unit` apart, as `source` hands it out (`parameter` the scheduler's argument that says so), in the
    scheduler's `order` (`_order`)."""
    # (plain Python: the variable itself, not a value read from it)
    frontend.tag(__name__, getattr(tile, attribute), extent, unit, source, parameter, order)


@frontend.host
def spacing(origin):
    """(extent, unit, source, parameter) of a tile origin a scheduler handed out (or of the variable it was read
    from): its tiles are `extent` rows or columns apart, so a tile loaded there must be as long along them (a
    shorter one leaves the rest of every output tile uncomputed); None for a value of the user's."""
    known = frontend.tagged(__name__, origin)
    return None if known is None else known[:4]


@frontend.host
def check_order(origin, use: str, block: str):
    """The producer's loads and the consumers' stores walk their tiles in one order: `origin` (where `block` loads,
    use "loaded", or stores, use "stored") is a scheduler's, and the other use's origins came from a scheduler of
    another order (another group_m, tile or class), so each output tile would be stored with another tile's
    products. Origins of the user's, or of an order not known at compile time, are let be."""
    known = frontend.tagged(__name__, origin[-1] if isinstance(origin, tuple) and origin else origin)
    if known is None or not known[4][1]:
        return
    text = known[4][0]
    uses = frontend.current().facts(__name__ + ".orders")
    mine = uses.setdefault(use, {})
    mine.setdefault(text, (block, user_location(frontend.current().loc)))
    other = uses.get("stored" if use == "loaded" else "loaded", {})
    if other and text not in other:
        other_text, (other_block, where) = next(iter(other.items()))
        raise frontend.current().error(
            f"{block} {'loads' if use == 'loaded' else 'stores'} tiles in the order of {text}, and {other_block} (at "
            f"{where}) {'stores' if use == 'loaded' else 'loads'} them in the order of {other_text}: the consumers "
            "take the stages in the producer's order, so each output tile would be stored with another tile's products",
            hint="walk one scheduler in both roles: make `tiles = TileScheduler(...)` once, before `if "
                 "roles.is_producer():`, and loop over it in each branch")


class _EveryNth:
    def __init__(self, tiles: TileScheduler, n: int, first):
        self.tiles, self.n, self.first = tiles, n, first

    def __skc_range__(self):
        start, units, step = self.tiles.__skc_range__()
        return start + self.first * step, units, step * self.n

    def __skc_item__(self, index):
        return self.tiles.__skc_item__(index)
