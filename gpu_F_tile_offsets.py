"""GPU check (review of session 56): a stage's tiles read element by element (SmemTile.load / pointer, through
OperandLayout.offset) after a real TMA load, for the layouts the library uses: K-major 2-byte (bf16's) with 128-byte swizzle,
MN-major 2-byte with 128- and 64-byte swizzles (64, 96 and 160 rows), a partly loaded K-major A, and K-major fp8 (read
as u8); two-byte tiles (bf16's layouts) hold u16. Each element of the source is its own index (mod 251 for one-byte
ones); every element must read back where
TMA put it. Prints one line per case; exits non-zero on any mismatch. Run from the repo root:
python gpu_F_tile_offsets.py   (SKC_DEVICE=interpreter runs the same on the CPU interpreter, sm_90a)"""
import os
import sys

import numpy as np

import skc
from skc.blocks import InputTilePipeline, OperandLayout, TilePayload, TmaLoader, WarpRoles

if os.environ.get("SKC_DEVICE") == "interpreter":
    os.environ.setdefault("SKC_INTERPRETER_TARGET", "sm_90a")


@skc.kernel
def read_back(source: skc.TensorMap, out: skc.Ptr[skc.f32], layout: skc.constexpr, one_byte: skc.constexpr,
              width: skc.constexpr):
    """out[row * k + column] = element (row, column) of the tile, read `width` at a time along its contiguous
    direction (k K-major, rows MN-major)."""
    payload = TilePayload(t=layout)
    load = TmaLoader(payload, t=source)
    elements = layout.rows * layout.k
    dtype = skc.u8 if one_byte else skc.u16
    with InputTilePipeline(payload, 1, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    with producer.acquire() as stage:
                        load(stage, 0, t=0)
        else:
            with pipe.consumer() as consumer:
                with consumer.acquire() as stage:
                    for e in range(skc.thread_id(0) % 128 * width, elements, 128 * width):
                        if layout.k_major:
                            row, column = e // layout.k, e % layout.k
                        else:
                            row, column = e % layout.rows, e // layout.rows
                        values = stage.t.load(row, column, dtype, width=width)
                        for j in skc.static_range(width):
                            value = values[j] if width > 1 else values
                            if layout.k_major:
                                out[row * layout.k + column + j] = skc.f32(value)
                            else:
                                out[(row + j) * layout.k + column] = skc.f32(value)


CASES = [  # (name, layout, vector width)
    ("k-major bf16 64x64", OperandLayout(64, 64), 8),
    ("k-major bf16 128x128 (2 chunks)", OperandLayout(128, 128), 8),
    ("k-major bf16 128x64, 40 rows loaded", OperandLayout(128, 64, loaded_rows=40), 4),
    ("mn-major bf16 128x64 (128B)", OperandLayout(128, 64, k_major=False), 8),
    ("mn-major bf16 64x64 (128B)", OperandLayout(64, 64, k_major=False), 2),
    ("mn-major bf16 96x64 (64B)", OperandLayout(96, 64, k_major=False, swizzle=64), 8),
    ("mn-major bf16 160x32 (64B)", OperandLayout(160, 32, k_major=False, swizzle=64), 1),
    ("k-major fp8 128x128 (read as u8)", OperandLayout(128, 128, elem_bytes=1), 16),
    ("k-major fp8 64x256 (2 chunks)", OperandLayout(64, 256, elem_bytes=1), 8),
]


def main() -> int:
    failures = 0
    for name, layout, width in CASES:
        one_byte = layout.elem_bytes == 1
        rows = layout.loaded_rows or layout.rows
        index = np.arange(layout.rows * layout.k).reshape(layout.rows, layout.k)
        values = (index % 251 if one_byte else index).astype(np.float32)   # (u16: every index as it is)
        stored = values if layout.k_major else np.ascontiguousarray(values.T)   # (MN-major: k x rows in memory)
        source_rows = stored[:rows] if layout.k_major else stored
        if one_byte:
            source = skc.to_device(np.ascontiguousarray(source_rows).astype(np.uint8))
        else:
            source = skc.to_device(np.ascontiguousarray(source_rows).astype(np.uint16))
        tensor_map = skc.TensorMap(source, box=(rows if layout.k_major else layout.k, layout.chunk),
                                   swizzle=layout.swizzle)
        out = skc.to_device(np.full(values.shape, np.nan, np.float32))
        read_back[1, 256](tensor_map, out, layout, one_byte, width)
        got = out.numpy()
        want = values.copy()
        if layout.k_major and rows < layout.rows:   # (rows past the loaded ones hold what the stage held: unchecked)
            got, want = got[:rows], want[:rows]
        bad = int(np.sum(got != want))
        failures += bool(bad)
        print(f"{'OK ' if not bad else 'BAD'} {name}: {got.size - bad}/{got.size} elements where TMA put them", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
