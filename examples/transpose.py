"""Matrix transpose through shared memory: out (N x M) = xᵀ for a row-major M x N x, any M and N, of 2- or 4-byte
elements.

A block moves one TILE x TILE tile: its threads read the tile's rows from x (consecutive threads, consecutive
columns: coalesced), write them into shared memory, and after a barrier read it by columns to write out's rows
(coalesced again). Reading a column of shared memory touches one element in each of TILE rows; with rows of TILE
elements those would all sit in one bank (a bank is 4 bytes wide, 32 banks), so every row is padded to an odd
number of 4-byte words: one element more for 4-byte types, two for 2-byte ones. Tiles at the edges mask the
elements past M or N.
Run it: `skc run examples/transpose.py`.
"""
import numpy as np

import skc

TILE = 32        # a tile is TILE x TILE elements
ROWS = 8         # a block is TILE x ROWS threads: each thread moves TILE / ROWS elements each way


def padding(itemsize: int) -> int:
    """Elements added to each shared-memory row so that a row is an odd number of 4-byte words."""
    return 1 if itemsize >= 4 else 4 // itemsize


@skc.kernel
def transpose(x, out, m: skc.i32, n: skc.i32):
    """out[c, r] = x[r, c] for r < m, c < n. Launch on (cdiv(n, TILE), cdiv(m, TILE)) blocks of (TILE, ROWS)."""
    tile = skc.shared((TILE, TILE + padding(x.dtype.itemsize)), x.dtype)
    tx, ty = skc.thread_id(0), skc.thread_id(1)
    row0, column0 = skc.block_id(1) * TILE, skc.block_id(0) * TILE
    column = column0 + tx
    for i in skc.static_range(0, TILE, ROWS):
        row = row0 + ty + i
        if row < m and column < n:
            tile[ty + i, tx] = x[skc.i64(row) * n + column]
    skc.barrier()
    out_column = row0 + tx               # out's row is x's column, out's column x's row
    for i in skc.static_range(0, TILE, ROWS):
        out_row = column0 + ty + i
        if out_row < n and out_column < m:
            out[skc.i64(out_row) * m + out_column] = tile[tx, ty + i]


def compile_arguments(kernel: str, target):
    """What `skc compile` compiles transpose for: 2-byte (f16) elements."""
    if kernel == "transpose":
        return {"x": skc.Ptr[skc.f16], "out": skc.Ptr[skc.f16], "block": (TILE, ROWS)}
    return None


def launch(x, out, m: int, n: int):
    transpose[(skc.cdiv(n, TILE), skc.cdiv(m, TILE)), (TILE, ROWS)](x, out, m, n)


def check(m: int, n: int, dtype=skc.f32, seed: int = 0):
    """Transpose random integers (exact in every type) of an m x n array of dtype and compare with numpy."""
    rng = np.random.default_rng(seed)
    x = skc.to_device(rng.integers(-100, 100, (m, n)).astype(np.float32), dtype=dtype)
    out = skc.empty((n, m), dtype).fill_bytes(0x7F)      # not a value of the input until written
    launch(x, out, m, n)
    expected = x.numpy().T
    if not np.array_equal(out.numpy(), expected):
        wrong = np.argwhere(out.numpy() != expected)
        raise AssertionError(f"transpose {m}x{n} {dtype}: {len(wrong)} elements wrong, the first at {tuple(wrong[0])}")


def main(m=None, n=None) -> str:
    small = skc.current_device().is_interpreter
    m, n = m or (4096 if not small else 45), n or (4096 if not small else 70)
    for dtype in (skc.f32, skc.i32, skc.f16, skc.bf16, skc.i16):
        check(m, n, dtype)
    return f"{m}x{n} f32, i32, f16, bf16 and i16: every element matches numpy"


if __name__ == "__main__":
    print(main())
