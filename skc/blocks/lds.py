"""TileIO for AMD CDNA: MFMA operand tiles in LDS and the loader that fills them (global memory ->
registers -> LDS, every thread of the block copying 16-byte vectors).

The layout is chosen for the MFMA operand reads, which are the frequent ones (each operand slot is
read by every wave that shares its rows): a lane of a wavefront MFMA needs 4 (or, over two MFMAs,
8) consecutive k values of one row of A or one column of B. So an operand tile of `rows` x `k`
(rows = M for A, N for B) is stored *k-packed*: k in groups of 8 (one 16-byte slot per row), group
g at g * group_bytes, and in it row r's slot at swizzle(r) * 16. A lane reads its 8 values with one
ds_read_b128, and the 8 lanes that LDS serves together (rows r..r+7) hit 8 different 16-byte bank
groups. The XOR swizzle (row ^ (row >> 3) % 8, inside each 8-row group) and 32 bytes of padding per
group make the loader's writes conflict-free too:

* k-contiguous sources (A stored M x K, B stored N x K) are copied a 16-byte vector to a slot
  (ds_write_b128); lanes (row, g) and (row + 1, g) x 4 groups land in 8 different bank groups;
* rows-contiguous sources (B stored K x N, A stored K x M) are transposed in registers: a thread
  loads the same 8 columns of two consecutive k rows and writes 8 words of (k, k + 1) pairs
  (ds_write_b32); 32 lanes (4 pairs x 8 column chunks) write 32 different banks.

LDS has 32 banks of 4 bytes (CDNA3 ISA, section 11: the data share). Edges are masked: vectors past
the matrix are read as zeros, so partial tiles need no other care. Vectors never straddle an edge
because the contiguous extent of each operand is a multiple of 8 (16-byte rows, checked on the host).
"""
from __future__ import annotations

from dataclasses import dataclass

import skc
from skc import frontend

from .payload import note_elements
from .tile_io import check_spacing

PACK = 8          # k values per slot: 16 bytes of bf16/f16
SLOT = 16         # bytes per slot
GROUP_PAD = 32    # bytes after each k-group: shifts the next group by two slots (see the module's notes)


def swizzled_row(row):
    """The slot of `row` in its k-group: rows permuted within each 8-row group by XOR with (row / 8) % 8."""
    return row ^ ((row >> 3) & 7)


@dataclass(frozen=True)
class LdsLayout:
    """An MFMA operand tile of `rows` x `k` elements of `elem_bytes` each in LDS, k-packed (see above)."""

    rows: int
    k: int
    elem_bytes: int = 2

    @property
    def groups(self) -> int:
        return self.k // PACK

    @property
    def group_bytes(self) -> int:
        return self.rows * SLOT + GROUP_PAD

    @property
    def bytes(self) -> int:
        return self.groups * self.group_bytes

    def check(self):
        if self.elem_bytes != 2 or self.k % PACK or self.rows % 8:
            raise ValueError(f"unsupported LDS operand layout {self}: 2-byte elements, k a multiple of {PACK}, "
                             "rows a multiple of 8")

    def slot(self, row, group):
        """The byte offset of the 16-byte slot holding k values 8 * group .. 8 * group + 7 of `row`."""
        return group * self.group_bytes + swizzled_row(row) * SLOT


class Registers:
    """Vectors a thread loaded and has not written to LDS yet (an attribute: skc keeps it in a variable, so
    it can be loaded in one iteration of a loop and written in the next)."""

    def __init__(self, values):
        self.values = values


class LdsLoader:
    """Fills a stage's LDS operand tiles at k-step k with every thread of the block, each tile from the
    origin it is given along its rows (`a=row0, b=col0` for a GEMM). `operands` name (pointer, rows, K,
    k_contiguous) per payload tile: the matrix, its extent along the tile's rows (M for A, N for B) and
    along k, and whether k is its contiguous dimension (A stored M x K, B stored N x K) or not (B stored
    K x N, A stored K x M).

    `load(stage, k, a=..., b=...)` copies at once. `fetch(k, a=..., b=...)` starts the global loads into
    this thread's registers and `commit(stage)` writes those to LDS, so the loads can fly during the MFMAs."""

    def __init__(self, payload, **operands):
        self.layouts, self.operands = payload.layouts, operands
        for name in self.layouts:
            if name not in operands:
                raise frontend.current().error(f"LdsLoader has no operand for payload tile '{name}'")
        self.threads = skc.num_threads()
        self.thread = skc.thread_index()
        self.registers = {}
        for name, (pointer, rows_total, k_total, k_contiguous) in operands.items():
            layout = self.layouts[name]
            # a thread holds one 16-byte vector per share of a k-contiguous tile, two (k and k + 1) otherwise
            shares = layout.rows * layout.groups // (1 if k_contiguous else 2)
            vectors = -(-shares // self.threads) * (1 if k_contiguous else 2)
            self.registers[name] = [Registers(skc.full(PACK, 0.0, pointer.dtype)) for _ in range(vectors)]
        # (the element types the TileOp checks: f16 and bf16 tiles are alike to a layout)
        note_elements(payload, {name: pointer.type.elem for name, (pointer, *_) in operands.items()
                                if getattr(getattr(pointer, "type", None), "elem", None) is not None})

    def __call__(self, stage, k, **origins):
        self.fetch(k, **origins)
        self.commit(stage)

    def fetch(self, k, **origins):
        """Start loading the operand tiles of k-step k, each from its origin (a=..., b=...), into this
        thread's registers (zeros past the edges)."""
        if set(origins) != set(self.operands):
            raise frontend.current().error(f"LdsLoader copies {', '.join(self.operands)}: give each one origin "
                                           f"({', '.join(f'{n}=...' for n in self.operands)}), found "
                                           f"{', '.join(origins) or 'none'}")
        for name, (pointer, rows_total, k_total, k_contiguous) in self.operands.items():
            layout = self.layouts[name]
            check_spacing("LdsLoader", name, layout, origins[name])
            fetch = self.fetch_k_contiguous if k_contiguous else self.fetch_rows_contiguous
            fetch(layout, self.registers[name], pointer, rows_total, k_total, origins[name], k * layout.k)

    def commit(self, stage):
        """Write the fetched vectors into the stage's tiles."""
        for name, (pointer, rows_total, k_total, k_contiguous) in self.operands.items():
            tile = getattr(stage, name)
            tile.check_live()
            if tile.layout != self.layouts[name]:
                raise frontend.current().error(f"the stage's tile '{name}' is {tile.layout}; this loader copies "
                                               f"{self.layouts[name]}", hint="build the loader from the payload")
            commit = self.commit_k_contiguous if k_contiguous else self.commit_rows_contiguous
            commit(tile, self.registers[name])

    # k-contiguous sources: one 16-byte vector per (row, k-group) of the tile, to its slot
    def fetch_k_contiguous(self, layout: LdsLayout, registers, pointer, rows_total, k_total, origin, k0):
        for (e, keep), held in zip(self.shares(layout.rows * layout.groups), registers):
            row, group = e // layout.groups, e % layout.groups
            inside = _both((origin + row < rows_total) & (k0 + group * PACK < k_total), keep)
            address = pointer + (skc.i64(origin + row) * k_total + (k0 + group * PACK))
            held.values = skc.load(address, width=PACK, mask=inside, other=0.0)

    def commit_k_contiguous(self, tile, registers):
        layout = tile.layout
        for (e, keep), held in zip(self.shares(layout.rows * layout.groups), registers):
            offset = layout.slot(e // layout.groups, e % layout.groups)
            self.write(tile, offset, held.values, keep)

    # rows-contiguous sources: 8 consecutive rows at two consecutive k, written as 8 words of (k, k + 1) pairs
    def pairs(self, layout: LdsLayout, registers):
        """(pair, 8-row chunk, k-group, keep, registers of k, registers of k + 1) of this thread's shares."""
        chunks = layout.rows // 8
        found = []
        for i, (e, keep) in enumerate(self.shares(layout.rows * layout.k // 16)):
            found.append((e % 4, (e // 4) % chunks, e // (4 * chunks), keep, registers[2 * i], registers[2 * i + 1]))
        return found

    def fetch_rows_contiguous(self, layout: LdsLayout, registers, pointer, rows_total, k_total, origin, k0):
        for pair, chunk, group, keep, low, high in self.pairs(layout, registers):
            kk = k0 + group * PACK + 2 * pair
            inside = _both((kk < k_total) & (origin + chunk * 8 < rows_total), keep)
            first = pointer + (skc.i64(kk) * rows_total + (origin + chunk * 8))
            low.values = skc.load(first, width=PACK, mask=inside, other=0.0)
            high.values = skc.load(first + rows_total, width=PACK, mask=inside, other=0.0)

    def commit_rows_contiguous(self, tile, registers):
        for pair, chunk, group, keep, low, high in self.pairs(tile.layout, registers):
            first, second = low.values, high.values
            for i in skc.static_range(8):
                offset = tile.layout.slot(chunk * 8 + i, group) + 4 * pair
                self.write(tile, offset, skc.vector(first[i], second[i]), keep)

    def write(self, tile, offset, value, keep):
        skc.store(skc.int_to_ptr(tile.address + offset, value.dtype, "shared"), value, mask=keep)

    def shares(self, count: int) -> list:
        """(element index, keep) for this thread's share of `count` elements; keep is None when every thread
        has the same number of them, else a run-time mask for the last round."""
        found = []
        for i in skc.static_range(-(-count // self.threads)):
            e = self.thread + i * self.threads
            found.append((e, None if (i + 1) * self.threads <= count else e < count))
        return found


def _both(condition, keep):
    return condition if keep is None else condition & keep
