"""A stage's tiles read element by element (`SmemTile.pointer` / `SmemTile.load`, the layout's `offset`), for a
consumer that is no MMA: every element of K-major and MN-major tiles (128- and 64-byte swizzles) as TMA wrote them,
one at a time and as 16-byte vectors, against numpy in the interpreter. Before, such a consumer had to know the
swizzle itself (an undocumented `tile.address`, `skc.int_to_ptr` and the PTX ISA's swizzle)."""
import numpy as np
import pytest

import skc
from skc.blocks import InputTilePipeline, OperandLayout, TilePayload, TmaLoader, WarpRoles
from helpers import line_of


@skc.kernel
def read_back(source: skc.TensorMap, out: skc.Ptr[skc.f32], vectors: skc.Ptr[skc.f32], layout: skc.constexpr):
    """out[row, column] = element (row, column) of the tile (column along k), read one at a time (f16); vectors: the same
    read 8 at a time."""
    payload = TilePayload(t=layout)
    load = TmaLoader(payload, t=source)
    elements = layout.rows * layout.k
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
                    for e in range(skc.thread_id(0) % 128, elements, 128):
                        out[e] = skc.f32(stage.t.load(e // layout.k, e % layout.k, skc.f16))
                    for e in range(skc.thread_id(0) % 128 * 8, elements, 128 * 8):
                        if layout.k_major:   # (a vector runs along a row's k)
                            values = skc.f32(stage.t.load(e // layout.k, e % layout.k, skc.f16, width=8))
                            for j in skc.static_range(8):
                                vectors[e + j] = values[j]
                        else:   # (rows are contiguous: a vector runs down a column of k)
                            row, column = e % layout.rows, e // layout.rows
                            values = skc.f32(skc.load(stage.t.pointer(row, column, skc.f16), width=8))
                            for j in skc.static_range(8):
                                vectors[(row + j) * layout.k + column] = values[j]


@pytest.mark.parametrize("layout", [OperandLayout(16, 128), OperandLayout(128, 16, k_major=False),
                                    OperandLayout(96, 16, k_major=False, swizzle=64)],
                         ids=["k-major", "mn-major", "mn-major-64-byte-swizzle"])
def test_every_element_of_a_stage_tile_reads_back_where_tma_put_it(hopper_interpreter, layout):
    values = np.arange(layout.rows * layout.k, dtype=np.float32).reshape(layout.rows, layout.k)
    stored = values if layout.k_major else np.ascontiguousarray(values.T)   # MN-major: k x rows in memory
    source = skc.to_device(stored, dtype=skc.f16)   # (integers up to 2048: exact in f16)
    tensor_map = skc.TensorMap(source, box=layout.box(), swizzle=layout.swizzle)
    out, vectors = (skc.to_device(np.full(values.shape, np.nan, np.float32)) for _ in range(2))
    read_back[1, 256](tensor_map, out, vectors, layout)
    np.testing.assert_array_equal(out.numpy(), values)
    np.testing.assert_array_equal(vectors.numpy(), values)


@skc.kernel
def wrong_type(source: skc.TensorMap, out: skc.Ptr[skc.f32], width: skc.constexpr):
    payload = TilePayload(t=OperandLayout(16, 64))
    load = TmaLoader(payload, t=source)
    with InputTilePipeline(payload, 1, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        if not roles.is_producer():
            with pipe.consumer() as consumer:
                with consumer.acquire() as stage:
                    if width == 1:
                        out[0] = skc.f32(stage.t.load(0, 0, skc.f32))   # marker: f32
                    else:
                        out[0] = skc.f32(stage.t.load(0, 0, skc.bf16, width=width)[0])   # marker: wide


@pytest.mark.parametrize("width, marker, message", [
    (1, "marker: f32", "tile 't' holds elements of 2 bytes; skc.f32 is no element type of that size"),
    (16, "marker: wide", "16 elements of skc.bf16 cross a piece")])
def test_reading_a_stage_tile_as_another_type_or_past_a_piece_is_a_compile_error(hopper_interpreter, width, marker,
                                                                                  message):
    source = skc.TensorMap(skc.to_device(np.zeros((16, 64), np.float32), dtype=skc.bf16), box=(16, 64))
    with pytest.raises(skc.CompileError) as info:
        wrong_type.compile(source, skc.to_device(np.zeros(1, np.float32)), width, target="sm_90a", block=256)
    assert f":{line_of(wrong_type, marker)}:" in str(info.value) and message in str(info.value)


def library_layouts() -> dict:
    """Every operand layout of the library's GEMM configurations (those its rules and tuner pick), of default fp8
    GEMMs (per-tensor and block-wise) and of attention's Q, K and V tiles, each once: layout -> where it is used."""
    from skc.blocks.attention_host import default_config
    from skc.blocks.fp8 import Fp8MatmulConfig
    from test_gemm_compile import PICKABLE

    payloads = [(repr(config)[:60], config.payload()) for config in PICKABLE]
    for M, N, K in ((4096, 4096, 4096), (128, 7168, 16384), (64, 4096, 7168), (990, 2240, 6144)):
        for block in (False, True):
            payloads.append((f"fp8 {M}x{N}x{K}", Fp8MatmulConfig.for_fp8_problem(M, N, K, block_scaled=block).payload()))
    for D in (64, 128, 256):
        config = default_config(D, "bf16", True, False)
        payloads += [(f"attention D={D}", p) for p in (config.q_payload(), config.k_payload(), config.v_payload())]
    found = {}
    for where, payload in payloads:
        for name, layout in payload.layouts.items():
            if isinstance(layout, OperandLayout):
                found.setdefault(layout, f"{where}: {name}")
    return found


def tma_placement(layout: OperandLayout, base: int) -> dict:
    """(row, column) -> the byte each loaded element lands on from a tile at shared address `base`, as the
    TmaLoader's boxes put it (a chunk's box, or its row shares, at their destinations) and the interpreter's model of
    TMA's swizzle places a box's bytes (runtime/interpreter/tma.py: checked on an H100)."""
    from skc.runtime.interpreter.tma import swizzle

    placed = {}
    for share in range(layout.row_shares):
        for chunk in range(layout.chunks):
            destination = chunk * layout.chunk_bytes + share * layout.share_rows * layout.swizzle
            box_rows, inner = np.meshgrid(np.arange(layout.share_rows), np.arange(layout.chunk), indexing="ij")
            logical = destination + box_rows * layout.swizzle + inner * layout.elem_bytes
            physical = swizzle(base + logical, layout.swizzle) - base
            outer = share * layout.share_rows + box_rows   # (a tile row K-major, a k MN-major)
            along = chunk * layout.chunk + inner
            for o, a, p in zip(outer.ravel(), along.ravel(), physical.ravel()):
                placed[(int(o), int(a)) if layout.k_major else (int(a), int(o))] = int(p)
    return placed


def test_offset_is_where_tma_puts_every_element_of_the_librarys_layouts():
    """OperandLayout.offset against TMA's placement for every layout the library's kernels use (K- and MN-major,
    128- and 64-byte swizzles, bf16 and fp8, row shares, partly loaded A tiles), from tiles at 1024-byte multiples
    (a payload's tiles start at 8 x their swizzle)."""
    layouts = library_layouts()
    assert len(layouts) > 40 and {(l.k_major, l.swizzle, l.elem_bytes) for l in layouts} >= {
        (True, 128, 2), (False, 128, 2), (False, 64, 2), (True, 128, 1)}
    for layout, where in layouts.items():
        for base in (0, 8 * layout.swizzle, 3 * 8 * layout.swizzle):
            wrong = [(place, byte, layout.offset(*place)) for place, byte in tma_placement(layout, base).items()
                     if layout.offset(*place) != byte]
            assert not wrong, (where, layout, base, wrong[:4])
