"""TileOp for AMD CDNA: MFMA (v_mfma_f32_32x32x8_{bf16,f16} or v_mfma_f32_16x16x16_{bf16,f16}). Each
wave computes its `wave_m` x `wave_n` share of the block's tile as a grid of m x m MFMA tiles, with f32
accumulators in registers, reading its A and B operands from the stage's k-packed LDS tiles (lds.py).

Lane layouts (AMD Matrix Instruction Calculator; skc/runtime/interpreter/mfma.py models them): with
H = 64 / m lane groups, lane l gives A values A[l % m][4 (l // m) + e] and B values B[4 (l // m) + e][l % m],
e = 0..3. A lane reads one 16-byte LDS slot, 8 consecutive k, and feeds 4 of them to each of two MFMAs:
lane group h reads k-group 8 h .. 8 h + 7 of a round of 8 H k, the first MFMA takes elements 0..3 of
every group, the second elements 4..7. The k order inside a round differs from the instruction's, the
same for A and B, which a sum does not mind; each MFMA still sums 4 H distinct k of the round.
"""
from __future__ import annotations

import skc
from skc import frontend

from .lds import PACK
from .payload import loaded_element

SHAPES = {32: 8, 16: 16}  # m (= n) -> k of the bf16/f16 MFMA with wave64


class Fragment:
    """One MFMA tile's accumulator vector (an attribute, so skc keeps it in a variable across loops)."""

    def __init__(self, values):
        self.values = values


class MfmaAccumulator:
    """A wave's f32 accumulators: one Fragment of m * m / 64 values per MFMA tile (tiles_m x tiles_n)."""

    def __init__(self, op: "Mfma"):
        self.op = op
        self.count = op.m * op.m // 64
        self.tiles = [[Fragment(skc.full(self.count, 0.0, skc.f32)) for _ in range(op.tiles_n)]
                      for _ in range(op.tiles_m)]

    def zero(self):
        for row in self.tiles:
            for fragment in row:
                fragment.values = skc.full(self.count, 0.0, skc.f32)

    @property
    def shape(self) -> tuple:
        """(rows, columns) of the wave's tile."""
        return self.op.wave_m, self.op.wave_n

    @property
    def corner(self) -> tuple:
        """(row, column) of the wave's tile in the block's output tile."""
        return self.op.row0, self.op.col0

    def wait(self):
        """MFMA results are ready when read (the hardware interlocks): nothing to wait for."""

    def runs(self, first_column: int = 0, columns: int = None) -> list:
        """(values, row, column) of this lane's values in columns first_column .. first_column + columns - 1
        of the wave's tile, in runs along a row: an MFMA lane holds one column, so every run is one value."""
        columns = self.op.wave_n - first_column if columns is None else columns
        m = self.op.m
        if first_column % m or columns % m:
            raise frontend.current().error(f"{m}x{m} MFMA accumulators hold columns in groups of {m}; columns "
                                           f"{first_column}..{first_column + columns - 1} split a group")
        found = []
        for i in skc.static_range(self.op.tiles_m):
            for j in skc.static_range(first_column // m, (first_column + columns) // m):
                fragment = self.tiles[i][j].values
                for v in skc.static_range(self.count):
                    row, column = self.op.position(v)
                    found.append(([fragment[v]], i * m + row, j * m + column))
        return found

    def values(self) -> list:
        """(value, row, column) of every accumulator value of this lane, row and column in the wave's tile."""
        return [(values[0], row, column) for values, row, column in self.runs()]


class Mfma:
    """acc += A[row0 : row0 + wave_m, :] · B[:, col0 : col0 + wave_n] for a stage's A (tile_m x k) and B
    (tile_n x k, k-packed) LDS tiles, with m x m MFMAs (m = 32: 32x32x8, m = 16: 16x16x16). row0 and col0
    are this wave's corner in the block's tile."""

    def __init__(self, wave_m: int, wave_n: int, k: int, dtype, m: int = 32, row0=0, col0=0):
        if m not in SHAPES:
            raise frontend.current().error(f"MFMA tiles are 32x32 or 16x16, not {m}x{m}")
        if wave_m % m or wave_n % m:
            raise frontend.current().error(f"a wave's {wave_m} x {wave_n} tile is not a grid of {m} x {m} MFMAs")
        self.m, self.lane_groups = m, 64 // m
        if k % (PACK * self.lane_groups):
            raise frontend.current().error(f"{m}x{m} MFMAs read k in rounds of {PACK * self.lane_groups}; the stage "
                                           f"is {k} deep")
        self.wave_m, self.wave_n, self.k, self.dtype = wave_m, wave_n, k, dtype
        self.tiles_m, self.tiles_n = wave_m // m, wave_n // m
        self.row0, self.col0 = row0, col0
        self.lane = skc.thread_index() % 64
        self.group = self.lane // m   # which k-group of a round this lane reads (A and B alike)

    # MFMA results interlock: the reads of a stage are done when the MFMAs were issued, so a pipeline may
    # release a stage as soon as its `with` ends
    stages_in_flight = 0

    def zeros(self) -> MfmaAccumulator:
        return MfmaAccumulator(self)

    def retire(self, pending: int):
        """Nothing runs behind the issued MFMAs' reads."""

    def position(self, v: int):
        """(row, column) in its m x m tile of accumulator value v of this lane (CDNA3 ISA 7.1)."""
        lane = self.lane
        if self.m == 32:
            return 8 * (v // 4) + 4 * (lane // 32) + v % 4, lane % 32
        return 4 * (lane // 16) + v, lane % 16

    def __call__(self, acc: MfmaAccumulator, a, b):
        self.check(a, b)
        for round_ in skc.static_range(self.k // (PACK * self.lane_groups)):
            group = round_ * self.lane_groups + self.group
            a_values = [self.operand(a, self.row0 + i * self.m, group) for i in range(self.tiles_m)]
            b_values = [self.operand(b, self.col0 + j * self.m, group) for j in range(self.tiles_n)]
            for half in skc.static_range(2):
                for i in skc.static_range(self.tiles_m):
                    for j in skc.static_range(self.tiles_n):
                        fragment = acc.tiles[i][j]
                        fragment.values = skc.amd.mfma(fragment.values, a_values[i][half], b_values[j][half],
                                                       self.m, self.m, SHAPES[self.m], self.dtype)

    def operand(self, tile, first_row, group):
        """This lane's 8 values of k-group `group` of row first_row + lane % m, as two vectors of 4."""
        offset = tile.layout.slot(first_row + self.lane % self.m, group)
        pointer = skc.int_to_ptr(tile.address + offset, self.dtype, "shared")
        return skc.load(pointer, width=4), skc.load(pointer + 4, width=4)

    def check(self, a, b):
        """The payload's tiles must be what this op was built for."""
        a.check_live()
        b.check_live()
        if a.layout.k != self.k or b.layout.k != self.k:
            raise frontend.current().error(
                f"the stage's tiles are {a.layout.k} and {b.layout.k} deep in k; this Mfma was made for {self.k}",
                hint="build the payload and the TileOp from the same config")
        for what, tile, extent, first in (("A", a, self.wave_m, self.row0), ("B", b, self.wave_n, self.col0)):
            layout = tile.layout
            if layout.rows % extent:
                raise frontend.current().error(
                    f"the stage's {what} tile has {layout.rows} rows, not a whole number of this Mfma's {extent}",
                    hint="build the payload and the TileOp from the same config")
            if isinstance(first, int) and not 0 <= first <= layout.rows - extent:   # (known here)
                raise frontend.current().error(
                    f"this Mfma multiplies rows {first} to {first + extent - 1} of the stage's {what} tile, which has "
                    f"{layout.rows}: it would read past the tile", hint="give each wave a corner inside the block's "
                    f"tile ({'row0' if what == 'A' else 'col0'}=...), or make the tile larger")
            loaded, multiplied = loaded_element(tile), getattr(getattr(self.dtype, "ir", None), "name", self.dtype)
            if loaded is not None and str(loaded) != multiplied:
                # (f16 read as bf16: the same bytes, other numbers, silently)
                raise frontend.current().error(
                    f"the stage's {what} tile is loaded from a pointer of {loaded}; this Mfma multiplies "
                    f"{multiplied}", hint=f"make the Mfma of the operands' type (skc.{loaded}), or the "
                                                  "operand's tensor of the Mfma's")
