"""TileIO: moving tiles from global to shared memory.

`TmaLoader` fills a pipeline stage with TMA copies (one thread issues them; the copies complete
the stage's full barrier by their byte count). `VectorLoader` does the same job on targets
without TMA: every thread copies 16-byte vectors, then arrives on the barrier.
"""
from __future__ import annotations

import skc
from skc import frontend

from .layout import OperandLayout


class TmaLoader:
    """Loads the operand tiles of output tile (row0, col0) at k-step k into a stage, one TMA box per
    128-byte chunk of each tile. `maps` name a tensor map per payload tile (`a=`, `b=`)."""

    def __init__(self, payload, tile_k: int, multicast=None, **maps):
        self.layouts = payload.layouts
        self.maps = maps
        self.tile_k = tile_k
        for name in self.layouts:
            if name not in maps:
                raise frontend.current().error(f"TmaLoader has no tensor map for payload tile '{name}'")
        # multicast = (tile name, blocks): that tile is the same for the cluster's blocks; each block
        # loads its share of the tile's chunks into every block of the cluster.
        self.shared_tile, self.cluster = multicast if multicast is not None else (None, 1)
        if self.cluster > 1:
            chunks = self.layouts[self.shared_tile].chunks
            if chunks % self.cluster:
                raise frontend.current().error(f"tile '{self.shared_tile}' has {chunks} chunks; a cluster of "
                                               f"{self.cluster} must split them evenly")
            self.rank = skc.hopper.cluster_rank()
        self.issuer = skc.thread_index() % 128 == 0

    def __call__(self, stage, row0, col0, k):
        """Copy A rows row0.. and B columns col0.. at k-step k into the stage."""
        k0 = k * self.tile_k
        if self.issuer:
            skc.hopper.mbarrier_arrive_tx(stage.full, self.stage_bytes())
            for name, layout in self.layouts.items():
                origin = row0 if name == "a" else col0
                if name == self.shared_tile and self.cluster > 1:
                    self.load_shared(getattr(stage, name), stage.full, self.maps[name], layout, origin, k0)
                else:
                    self.load(getattr(stage, name), stage.full, self.maps[name], layout, origin, k0)

    def stage_bytes(self) -> int:
        return sum(layout.bytes for layout in self.layouts.values())

    def load(self, tile, barrier, tmap, layout: OperandLayout, row0, k0):
        for chunk in skc.static_range(layout.chunks):
            destination = tile.address + chunk * layout.chunk_bytes
            coordinates = layout.box_coordinates(chunk, row0, k0)
            skc.hopper.tma_load(_pointer_to(destination), barrier, tmap, coordinates)

    def load_shared(self, tile, barrier, tmap, layout: OperandLayout, row0, k0):
        """This block's share of a tile the whole cluster uses: its chunks, multicast to every block."""
        per_block = layout.chunks // self.cluster
        everyone = (1 << self.cluster) - 1
        for chunk in skc.static_range(layout.chunks):
            if self.rank == chunk // per_block:
                destination = tile.address + chunk * layout.chunk_bytes
                coordinates = layout.box_coordinates(chunk, row0, k0)
                skc.hopper.tma_load(_pointer_to(destination), barrier, tmap, coordinates, multicast_mask=everyone)


def _pointer_to(address):
    return skc.int_to_ptr(address, skc.u8, "shared")


class VectorLoader:
    """TileIO without TMA: all `threads` of the producer copy the operand tiles with 16-byte vector
    loads, masked at the matrix edges, into the same swizzled layout the TMA would write, then each
    arrives once on the stage's barrier (make the pipeline with producer_arrivals=threads).
    `operands` name (pointer, rows, cols) of each operand's row-major stored matrix: M x K for a
    K-major A, K x M for an MN-major one; K x N for an MN-major B, N x K for a K-major one."""

    def __init__(self, threads: int, tile_k: int, **operands):
        self.threads, self.tile_k, self.operands = threads, tile_k, operands

    def __call__(self, stage, row0, col0, k):
        t = skc.thread_index() % self.threads
        for name, (pointer, rows_total, cols_total) in self.operands.items():
            tile = getattr(stage, name)
            layout = tile.layout
            origin, k0 = (row0 if name == "a" else col0), k * self.tile_k
            # the stored matrix's rows and columns that this tile covers (K-major: rows are M or N)
            rows, cols = (layout.rows, layout.k) if layout.k_major else (layout.k, layout.rows)
            first_row, first_col = (origin, k0) if layout.k_major else (k0, origin)
            per_row = cols // 8
            for i in skc.static_range(rows * per_row // self.threads):
                e = t + i * self.threads
                r, c = e // per_row, (e % per_row) * 8
                row, col = first_row + r, first_col + c
                inside = (row < rows_total) & (col < cols_total)
                values = skc.load(pointer + (skc.i64(row) * cols_total + col), width=8, mask=inside, other=0.0)
                skc.store(skc.int_to_ptr(tile.address + self.placed(layout, r, c), pointer.dtype, "shared"), values)
        skc.hopper.fence_proxy_async()  # generic-proxy writes, read next by wgmma (async proxy)
        skc.hopper.mbarrier_arrive(stage.full)

    @staticmethod
    def placed(layout, r: int, c: int):
        """Where the TMA puts stored element (r, c) of the tile: 128-byte rows per chunk of columns,
        the 16-byte piece index XOR (row % 8) (the 128-byte swizzle)."""
        chunk, within = c // layout.chunk, c % layout.chunk
        return chunk * layout.chunk_bytes + r * 128 + (((within * layout.elem_bytes) // 16) ^ (r % 8)) * 16
