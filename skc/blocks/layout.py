"""Operand layouts in shared memory: how an MMA operand tile sits there (K-major or MN-major,
128-byte swizzle, in 128-byte-wide chunks), which TMA boxes fill it, and the wgmma matrix
descriptors that read it (PTX ISA 9.7.15.5.1.2: canonical layouts and the descriptor format)."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import skc

from .arguments import invalid

SWIZZLE_MODE = {128: 1, 64: 2, 32: 3, 0: 0}  # descriptor bits 62-63


@dataclass(frozen=True)
class OperandLayout:
    """An operand tile of `rows` x `k` elements (rows is M for A, N for B) of `elem_bytes` each.

    K-major: k is contiguous; each row is split into 128-byte chunks of k, chunk c of every row at
    c * rows * 128 (one TMA box a chunk: rows x 64 for bf16). MN-major: rows are contiguous; 64-row chunks (128
    bytes), chunk c of every k at c * k * 128 (one box a chunk: k x 64); or, with the 64-byte swizzle (an MN-major
    tile an odd multiple of 32 rows wide, 96 or 160), 32-row chunks of 64 bytes, chunk c at c * k * 64. With
    `row_shares`, a chunk's box rows (rows K-major, k MN-major) are loaded in that many boxes, which the blocks of a
    cluster load one each.
    """

    rows: int
    k: int
    elem_bytes: int = 2
    k_major: bool = True
    swizzle: int = 128
    loaded_rows: int = 0   # K-major: the rows the TMA boxes fill (0: all); the others keep what the stage held before
    row_shares: int = 1    # boxes a chunk, each a share of its (loaded) box rows (a cluster's blocks load one each)

    @property
    def chunk(self) -> int:
        """Elements in one swizzle-wide chunk (128 bytes, or 64)."""
        return self.swizzle // self.elem_bytes

    @property
    def bytes(self) -> int:
        return self.rows * self.k * self.elem_bytes

    @property
    def loaded_bytes(self) -> int:
        """The bytes the TMA boxes bring (a stage's transaction count)."""
        return (self.loaded_rows or self.rows) * self.k * self.elem_bytes

    @property
    def chunks(self) -> int:
        return (self.k if self.k_major else self.rows) // self.chunk

    @property
    def chunk_bytes(self) -> int:
        return self.bytes // self.chunks

    def check(self):
        for name in ("rows", "k", "elem_bytes", "swizzle", "loaded_rows", "row_shares"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                # (a float made a shared array of a float size; a run-time value failed inside the loader)
                found = f"a run-time {value.type}" if hasattr(value, "type") else f"{type(value).__name__} {value!r}"
                raise invalid(f"an operand layout's {name} is a compile-time int, found {found}",
                              hint=f"give {name} as a Python int (a constexpr): a tile's shape is known when the "
                                   "kernel compiles")
        extent = self.k if self.k_major else self.rows
        if self.rows < 1 or self.k < 1:
            raise invalid(f"unsupported operand layout {self}: a tile of no rows or no k",
                          hint="give rows and k of 1 or more")
        if (self.swizzle not in (128, 64) or (self.swizzle == 64 and self.k_major) or extent % self.chunk
                or (self.rows if self.k_major else self.k) % 8):
            raise invalid(f"unsupported operand layout {self}: tiles are whole 128-byte chunks (or 64-byte ones, "
                          "MN-major), 8 rows a group",
                          hint=f"make {'k' if self.k_major else 'rows'} a multiple of 128 bytes of elements (64 "
                               f"of 2 bytes) and {'rows' if self.k_major else 'k'} a multiple of 8; the 64-byte "
                               "swizzle is for MN-major tiles only")
        if self.loaded_rows and not (self.k_major and self.loaded_rows % 8 == 0 and self.loaded_rows <= self.rows):
            raise invalid(f"unsupported operand layout {self}: a K-major tile's boxes fill whole 8-row groups",
                          hint="give loaded_rows as a multiple of 8, at most rows, for a K-major tile")
        if self.row_shares < 1:
            raise invalid(f"unsupported operand layout {self}: row_shares is how many boxes load a chunk's rows, "
                          "1 or more", hint="row_shares=1 (the default), or the blocks of a cluster that share it")
        if self.row_shares > 1 and self.box_rows % (8 * self.row_shares):
            raise ValueError(f"unsupported operand layout {self}: a chunk's {self.box_rows} box rows are shared out "
                             "in whole 8-row groups")

    def box(self) -> tuple:
        """The TMA box of one chunk, outermost dimension first, in the tensor's own order."""
        return self.share_rows, self.chunk

    @property
    def box_rows(self) -> int:
        """The rows of 128 bytes a chunk's boxes fill: K-major, the tile's (loaded) rows, MN-major its k."""
        return (self.loaded_rows or self.rows) if self.k_major else self.k

    @property
    def share_rows(self) -> int:
        """The rows one box of a chunk fills: the chunk's box rows, or a share of them."""
        return self.box_rows // self.row_shares

    def share_corner(self, row0, k0, share) -> tuple:
        """(row0, k0) of share `share` (a run-time value too) of the tile at (row0, k0), for box_coordinates."""
        if self.k_major:
            return row0 + share * self.share_rows, k0
        return row0, k0 + share * self.share_rows

    def box_coordinates(self, chunk: int, row0, k0) -> tuple:
        """The tensor coordinates (outermost first) of chunk `chunk` of the tile whose corner is (row0, k0) (of a
        share of its box rows: that share's corner, `share_corner`)."""
        if self.k_major:
            return (row0, k0 + chunk * self.chunk)
        return (k0, row0 + chunk * self.chunk)

    def offset(self, row, column):
        """The byte offset in the tile of element (row, column), column counted along k (run-time values too): its
        chunk's place, its row of 128 (or 64) bytes in the chunk, and the 16-byte piece the swizzle moves it to
        (PTX ISA 9.7.15.5.1.2: piece index XOR the row's bits above the piece; 128-byte swizzle: row % 8, 64-byte:
        row // 2 % 4). The 16 bytes of a piece stay together, so a vector of up to 16 bytes that starts at a
        multiple of its size is read whole from here."""
        if self.k_major:
            line, inner = row, column   # (a line: one swizzle-wide row of a chunk)
            chunk_start = column // self.chunk * self.rows * self.swizzle
        else:
            line, inner = column, row
            chunk_start = row // self.chunk * self.k * self.swizzle
        byte = inner % self.chunk * self.elem_bytes
        phase = line % 8 if self.swizzle == 128 else line // 2 % 4
        return chunk_start + line * self.swizzle + ((byte // 16) ^ phase) * 16 + byte % 16

    def descriptor(self, base, k_step: int, row0: int = 0):
        """The wgmma descriptor of the 32-byte-deep k-slice `k_step` of rows row0.. (row0 a multiple of 8, or
        of a chunk for MN-major) of the tile at shared address `base` (a run-time u32)."""
        k_bytes = k_step * 32   # one wgmma's k-slice is 32 bytes: k16 of f16/bf16, k32 of fp8
        if self.k_major:
            # 8 rows of 128 bytes per group (SBO = 1024); the k-slice is an offset inside the row
            offset = (k_bytes // 128) * self.chunk_bytes + row0 * 128 + k_bytes % 128
            lbo, sbo = 16, 1024
        else:
            # chunks of 64 rows (32 with the 64-byte swizzle) at LBO; 8 k-rows of a chunk's width per group (SBO =
            # 1024, or 512)
            offset = (row0 // self.chunk) * self.chunk_bytes + k_step * 16 * self.swizzle
            lbo, sbo = self.chunk_bytes, 8 * self.swizzle
        fixed = ((lbo >> 4) & 0x3FFF) << 16 | ((sbo >> 4) & 0x3FFF) << 32 | SWIZZLE_MODE[self.swizzle] << 62
        start = skc.u64(((base + offset) >> 4) & 0x3FFF)
        return skc.i64(start | fixed)
