"""The Hopper GEMM through the whole compiler: every operand layout and epilogue assembles for
sm_90a with no spills, and its SASS holds wgmma (HGMMA), TMA (UTMALDG/UTMASTG) and mbarriers (SYNCS)."""
import re
from types import SimpleNamespace

import pytest

import skc
from skc import ir
from skc.backends import ptx_tools
from skc.blocks import EpilogueSpec, Fp8MatmulConfig, MatmulConfig, matmul_host, matmul_kernel

needs_assembler = pytest.mark.skipif(ptx_tools.ptxas_path() is None and not ptx_tools.have_nvjitlink(),
                                     reason="neither ptxas nor nvJitLink is installed")
needs_disassembler = pytest.mark.skipif(ptx_tools.nvdisasm_path() is None, reason="nvdisasm is not installed")


def compile_gemm(cfg: MatmulConfig):
    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(cfg.dtype), boxes[name], cfg.swizzle(name)))
            for name in ("a", "b", "out")]
    pointer = skc.Ptr[skc.bf16] if cfg.dtype == "bf16" else skc.Ptr[skc.f16]
    return matmul_kernel.compile(*maps, skc.i32, skc.i32, skc.i32, pointer, pointer, skc.f32, skc.f32, cfg,
                                 target="sm_90a", block=cfg.threads)


VARIANTS = [
    MatmulConfig(),
    MatmulConfig(a_k_major=False),
    MatmulConfig(b_k_major=True),
    MatmulConfig(a_k_major=False, b_k_major=True, dtype="f16"),
    MatmulConfig(tile_n=256, stages=4),
    MatmulConfig(tile_n=256, stages=4, cluster_m=2),
    MatmulConfig(epilogue=EpilogueSpec(alpha=True, beta=True, bias=True, activation="gelu")),
    MatmulConfig(tile_m=64, tile_n=256, stages=4, pingpong=True),   # the consumers take 64-row tiles in turn
    MatmulConfig(tile_m=128, tile_n=128, stages=6, pingpong=True),  # and 128-row tiles (two wgmma parts each)
    MatmulConfig(tile_m=256, tile_n=128, consumers=2, stages=4),     # 128 rows (two parts) for each consumer
    # clusters sharing a share of A's rows, or of B's rows of K (three chunks of B), a block each
    MatmulConfig(tile_m=192, tile_n=192, consumers=3, stages=3, cluster_n=2),
    MatmulConfig(tile_m=192, tile_n=192, consumers=3, stages=3, cluster_m=2),
    # a row-major B in 32-column chunks (the 64-byte swizzle); in a cluster, by rows of K
    MatmulConfig(tile_m=192, tile_n=96, consumers=3, stages=4),
    MatmulConfig(tile_n=160, stages=4, cluster_m=2),
]


@needs_assembler
@needs_disassembler
@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: f"a{'K' if c.a_k_major else 'M'}-b{'K' if c.b_k_major else 'N'}"
                         f"-m{c.tile_m}-n{c.tile_n}-{c.dtype}-{c.epilogue.activation}-c{c.cluster_m}x{c.cluster_n}")
def test_gemm_assembles_with_wgmma_and_tma(cfg):
    compiled = compile_gemm(cfg)
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0, resources
    sass = compiled.asm("sass")
    for instruction in ("HGMMA", "UTMALDG", "UTMASTG", "SYNCS"):
        assert instruction in sass, instruction
    assert f"HGMMA.64x{cfg.tile_n}x16.F32{'.BF16' if cfg.dtype == 'bf16' else ''}" in sass  # fp16 is SASS's default
    if cfg.cluster > 1:   # the shared tile: a multicast box a chunk (of this block's share of its rows, or, shared
        # by chunks, under a test of the block's rank)
        shared = cfg.payload().layouts["a" if cfg.cluster_n > 1 else "b"]
        assert compiled.asm("ptx").count(".multicast::cluster") == shared.chunks


def moves_into_uniform_registers_between_wgmmas(sass: str) -> int:
    """R2UR instructions between two wgmmas of one group (no wait or branch between them): a descriptor built in
    ordinary registers and moved into uniform ones just before its wgmma."""
    count, inside = 0, False
    for line in (line.split("*/")[-1].strip() for line in sass.splitlines() if "*/" in line):
        if "GMMA" in line:
            inside = "gsb0" not in line
        elif "DEPBAR" in line or "BRA" in line:
            inside = False
        elif inside and line.startswith("R2UR"):
            count += 1
    return count


@needs_disassembler
@pytest.mark.parametrize("kernel", ["bf16", "fp8-block", "attention", "attention-persistent", "attention-fetched"])
def test_wgmma_descriptors_are_built_in_uniform_registers(kernel):
    """The warpgroup index is taken from lane 0 by a shuffle (WarpRoles), so ptxas knows the stage addresses and
    the wgmma descriptors derived from it are the same in a warp: it builds them in uniform registers. Taken from
    the thread index alone, every wgmma waited for its descriptors to be moved there (12 R2UR between the wgmmas
    of a group in each of these kernels, 3-4 % of the block-scaled fp8 GEMM's and causal attention's speed on the
    H200: benchmarks/NOTES.md, thirteenth session). Attention's persistent kernels (the D = 128 defaults, causal ones
    fetching their tiles) move 8 between the wgmmas of a tile's first S = Q Kᵀ, which runs once a tile before the
    key-block loop; none in the loop."""
    if kernel == "bf16":
        compiled = compile_gemm(MatmulConfig())
    elif kernel == "fp8-block":
        from test_fp8_gemm import compile_fp8

        from skc.blocks.fp8 import Fp8MatmulConfig
        compiled = compile_fp8(Fp8MatmulConfig.for_fp8_problem(8192, 8192, 8192, block_scaled=True))
    else:
        from dataclasses import replace

        from skc.blocks.attention_host import compile_arguments, default_config
        from skc.blocks.attention_kernel import attention_kernel
        config = default_config(128, "bf16", kernel == "attention-fetched" or kernel == "attention", False)
        if kernel == "attention":   # causal, a block a tile
            config = replace(config, persistent=False, fetch_tiles=False)
        assert config.persistent == (kernel != "attention") and config.fetch_tiles == (kernel == "attention-fetched")
        compiled = attention_kernel.compile(**compile_arguments(config), target="sm_90a")
    sass = compiled.asm("sass")
    assert "GMMA" in sass
    assert moves_into_uniform_registers_between_wgmmas(sass) == (8 if kernel.startswith("attention-") else 0)


def test_gemm_ptx_has_the_warp_specialized_structure():
    compiled = compile_gemm(MatmulConfig())
    ptx = compiled.asm("ptx")
    assert ".maxntid 384" in ptx and ".minnctapersm 1" in ptx
    assert "setmaxnreg.dec.sync.aligned.u32 \t40" in ptx and "setmaxnreg.inc.sync.aligned.u32 \t232" in ptx
    assert ptx.count("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16") == 4
    assert "cp.async.bulk.tensor.2d.shared::cluster.global" in ptx
    assert "mbarrier.try_wait.parity" in ptx
    tile = compiled.ir("tile")
    assert tile.count("wgmma.mma") == 4 and "tma.store" in tile


# -- every configuration matmul() can pick ----------------------------------------------------------------------
def compile_split_gemm(cfg: MatmulConfig):
    from skc.blocks import gemm

    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(cfg.dtype), boxes[name], cfg.swizzle(name))) for name in ("a", "b")]
    pointer = skc.Ptr[skc.bf16] if cfg.dtype == "bf16" else skc.Ptr[skc.f16]
    return gemm.matmul_split_kernel.compile(*maps, pointer, skc.Ptr[skc.f32], skc.Ptr[skc.i32], skc.i32, skc.i32,
                                            skc.i32, pointer, pointer, skc.f32, skc.f32, cfg, target="sm_90a",
                                            block=cfg.threads)


def compile_stream_k_gemm(cfg: MatmulConfig):
    from skc.blocks import gemm

    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(cfg.dtype), boxes[name], cfg.swizzle(name)))
            for name in ("a", "b", "out")]
    pointer = skc.Ptr[skc.bf16] if cfg.dtype == "bf16" else skc.Ptr[skc.f16]
    return gemm.matmul_stream_k_kernel.compile(*maps, skc.Ptr[skc.f32], skc.Ptr[skc.i32], skc.i32, skc.i32, skc.i32,
                                               pointer, pointer, skc.f32, skc.f32, cfg, target="sm_90a",
                                               block=cfg.threads)


# a shape whose K-major B takes each of tile_rules.FILL_WIDTH_SPEEDS' tiles (its width the key)
FILL_WIDTH_SHAPES = {144: (1800, 5000, 4096), 160: (448, 9856, 1984), 176: (7903, 672, 1984),
                     208: (995, 3104, 3584), 224: (978, 10672, 4032), 240: (1000, 11008, 4096)}


# a shape whose K-major B takes each of tile_rules.NARROW_FILL_SPEEDS' widths (one wave)
NARROW_FILL_SHAPES = {80: (896, 1408, 11200), 96: (1792, 768, 12288), 112: (640, 2560, 8192)}


# a shape of rows not 128-byte aligned whose K-major B takes each of tile_rules.UNALIGNED_FILL_WIDTHS' tiles
UNALIGNED_FILL_WIDTH_SHAPES = {(128, 144): (1157, 3488, 1232), (128, 160): (1859, 2544, 1080),
                               (128, 176): (1659, 1552, 2552), (128, 208): (2508, 3904, 2192),
                               (128, 224): (953, 3440, 2440), (128, 240): (2970, 2488, 872),
                               (192, 144): (1044, 3144, 1256), (192, 160): (2402, 1544, 2552)}


def pickable_configs() -> list:
    """The distinct configurations of the tuning table and of the tile-shape rule over the benchmark suite's shapes
    (and a few more around its thresholds), for bf16 and fp16."""
    from skc.blocks.matmul_host import TUNED

    found = []
    for (_, M, N, K, dtype), fields in TUNED.items():
        found.append(MatmulConfig.for_problem(M, N, K, dtype, multiprocessors=132, **fields))
    for M, N, K in ((4096, 4096, 4096), (2048, 2048, 2048), (1024, 1024, 1024), (16, 8192, 8192), (16, 1024, 8192),
                    (64, 64, 4096), (300, 8192, 8192), (8192, 8192, 8192)):
        for dtype in ("bf16", "f16"):
            found.append(MatmulConfig.for_problem(M, N, K, dtype, multiprocessors=132))
    # tiles the wave rule takes (192 x 192, 128 x 192, 192 x 128, 64 x 64), B row-major and K-major (x @ w.t())
    for M, N, K in ((3072, 3072, 3072), (1536, 1536, 1536), (512, 12288, 4096), (1920, 1664, 1024), (64, 5120, 5120),
                    (20, 1000, 1032), (192, 7168, 16384), (160, 7168, 16384)):   # (one row of 192 x 64: 129-192)
        for b_k_major in (False, True):
            for dtype in ("bf16", "f16"):
                found.append(MatmulConfig.for_problem(M, N, K, dtype, True, b_k_major, multiprocessors=132))
    # 128-row tiles 144-240 wide that fill the last wave better, for a K-major B (thirty-second session), and 192 x
    # 96 where K is too shallow for them
    for M, N, K in (*FILL_WIDTH_SHAPES.values(), *NARROW_FILL_SHAPES.values(), (1536, 1536, 704)):
        for dtype in ("bf16", "f16"):
            found.append(MatmulConfig.for_problem(M, N, K, dtype, True, True, multiprocessors=132))
    for split in (2, 4):  # split-K, taken with config=
        found.append(MatmulConfig.for_problem(16, 8192, 8192, multiprocessors=132, split_k=split))
    for M, N, K, b_k_major in ((4, 1152, 4800, False), (32, 1472, 4416, False), (8, 320, 3280, True),
                               (427, 384, 8192, True), (256, 576, 4608, False)):   # (several rows: half a wave)
        found.append(MatmulConfig.for_problem(M, N, K, "bf16", True, b_k_major, multiprocessors=132))  # few tiles: split
    for b_k_major in (False, True):   # one row of 64 x 64 tiles in 2 shares (tile_rules.one_row_split)
        found.append(MatmulConfig.for_problem(16, 4096, 14336, "bf16", True, b_k_major, multiprocessors=132))
        # one row of 128 x 64 tiles past 64 rows (tile_rules.TALL_ROW_ROWS), unsplit and in 2 shares
        found.append(MatmulConfig.for_problem(87, 7168, 10176, "bf16", True, b_k_major, multiprocessors=132))
        found.append(MatmulConfig.for_problem(80, 3008, 8192, "bf16", True, b_k_major, multiprocessors=132))
    # rows not 128-byte aligned, where clusters along M would add a wave: along N
    found.append(MatmulConfig.for_problem(639, 6432, 7424, multiprocessors=132, unaligned=(False, True)))
    # and no cluster fitting 128 x 256's waves: 192 x 160 in clusters along N (tile_rules.unaligned_tile_speeds)
    found.append(MatmulConfig.for_problem(2880, 4160, 2824, "bf16", True, True, multiprocessors=132,
                                          unaligned=(True, True)))
    # rows not 128-byte aligned, x @ w.t(): 128 x 144-240 tiles in clusters along M, 192 x 144 and 160 along N
    # (tile_rules.UNALIGNED_FILL_WIDTHS)
    for M, N, K in (*UNALIGNED_FILL_WIDTH_SHAPES.values(), (371, 5936, 3128), (588, 5696, 6088), (9210, 792, 6760)):
        found.append(MatmulConfig.for_problem(M, N, K, "bf16", True, True, multiprocessors=132,
                                              unaligned=(True, True)))   # (the last three: their second clusters)
    # only B's rows unaligned, 129-192 rows: one row of 192 x 64
    found.append(MatmulConfig.for_problem(129, 5000, 4096, multiprocessors=132, unaligned=(False, True)))
    for M, N, K in ((4096, 4096, 4096), (2048, 2048, 2048)):   # stream-K, taken with config= (or the table)
        found.append(MatmulConfig.for_problem(M, N, K, multiprocessors=132, stream_k=True))
    return sorted(set(found), key=repr)


PICKABLE = pickable_configs()


def test_the_rule_picks_64_row_tiles_and_clusters():
    kinds = {(c.tile_m, c.tile_n, c.cluster_m, c.split_k > 1) for c in PICKABLE}
    assert {(64, 64, 1, True), (64, 128, 1, False), (64, 256, 1, False), (128, 256, 2, False),
            (128, 256, 1, False), (192, 192, 1, False), (128, 192, 1, False), (192, 128, 1, False),
            (64, 64, 1, False), (192, 96, 1, False)} <= kinds


def test_the_rule_takes_192_x_96_tiles_where_they_fill_one_wave():
    """192 x 96 tiles put 1536² in 128 tiles (128 x 192 ones leave 36 of 132 SMs idle), for a K-major B (a K of
    fewer than FILL_WIDTH_MIN_STEPS k-steps) and for a row-major one (in 32-column chunks of 64 bytes); rows that
    are not 128-byte aligned go at their own speeds, and the fp8 GEMM, where they are unmeasured, does not take
    them."""
    def tile(*args, **fields):
        config = MatmulConfig.for_problem(*args, multiprocessors=132, **fields)
        return config.tile_m, config.tile_n

    assert tile(1536, 1536, 704, "bf16", True, True) == (192, 96)
    assert tile(1530, 1536, 640, "f16", True, True) == (192, 96)
    # (from FILL_WIDTH_MIN_STEPS k-steps a K-major B's 128 x 144 tiles make the same 132: 0.97 of torch.matmul
    # against 0.94 at 1536³, level at 1530 x 1536 x 1472; session32-2026-12-03-fill-widths-ab.txt)
    assert tile(1536, 1536, 1536, "bf16", True, True) == (128, 144)
    assert tile(1536, 1536, 1536, "bf16", True, False) == (192, 96)
    assert MatmulConfig.for_problem(1536, 1536, 1536, "bf16", True, False, multiprocessors=132).swizzle("b") == 64
    assert tile(768, 3072, 768, "bf16", True, False) == (192, 96)
    assert tile(1536, 1536, 1536, "bf16", True, True, unaligned=(True, True)) != (192, 96)
    assert tile(4096, 4096, 4096, "bf16", True, True) == (128, 256)   # elsewhere as before
    assert tile(4096, 4096, 4096, "bf16", True, False) == (128, 256)
    fp8 = Fp8MatmulConfig.for_fp8_problem(1536, 1536, 1536, fast_accum=True)   # (the fp8 tiles that take the rule)
    assert (fp8.tile_m, fp8.tile_n) != (192, 96)


def test_the_epilogue_stores_a_tile_in_the_chunks_of_fewest_stores():
    """A tile no multiple of 128 bytes wide is stored in chunks of whole 16-byte pieces and 8-column groups that
    divide it, those whose rows, counted in power-of-two pieces of 16 bytes, take the fewest stores: 144 and 240 bf16
    columns in chunks of 48 (64 + 32 bytes a row: 6 and 10 pieces against 9 and 15 of 16 columns), 160 and 224 in
    chunks of 32 (80- and 112-byte rows would take 8 and 12 pieces), 176 and 208 in 16 (nothing wider divides them)."""
    def columns(width, out_dtype=None, **fields):
        if out_dtype:
            return Fp8MatmulConfig(tile_m=64, consumers=1, tile_n=width, out_dtype=out_dtype).epilogue_columns
        return MatmulConfig(tile_m=128, tile_n=width, b_k_major=True, **fields).epilogue_columns

    assert [columns(width) for width in (64, 96, 128, 144, 160, 176, 192, 208, 224, 240, 256)] == \
        [64, 32, 64, 48, 32, 16, 64, 16, 32, 48, 64]
    assert columns(144, dtype="f16") == 48
    assert [columns(width, "bf16") for width in (32, 48, 56, 112)] == [32, 48, 56, 56]   # (fp8's narrow tiles)
    assert [columns(width, "f32") for width in (32, 48, 56, 112)] == [32, 16, 8, 16]     # (4-byte outputs: 32 at most)
    assert MatmulConfig(tile_m=128, tile_n=144, b_k_major=True).out_box() == (64, 48)


def test_the_rule_takes_tiles_of_other_widths_that_fill_the_last_wave_for_a_k_major_b():
    """A K-major B (x @ w.t()) takes 128-row tiles 144-240 wide where they fill the last wave better (448 x 9856 x
    1984: 248 tiles of 128 x 160 in two waves, where 128 x 192 made 208); not below FILL_WIDTH_MIN_STEPS k-steps
    (a tile's fixed cost weighs more there), not for a row-major B (its 160-wide tiles are 64-byte swizzled, and
    unmeasured between), not at these speeds for rows that are not 128-byte aligned (theirs are the request model's,
    in a cluster: tile_rules.unaligned_fill_speeds), and not in the fp8 GEMM."""
    from skc.blocks.tile_rules import FILL_WIDTH_MIN_STEPS, FILL_WIDTH_SPEEDS

    # (the same shapes with rows not 128-byte aligned: UNALIGNED_FILL_WIDTHS' tiles at their clusters' speeds)
    UNALIGNED_PICKS = {144: (128, 224), 160: (128, 160), 176: (128, 176), 208: (128, 208), 224: (128, 224),
                       240: (128, 240)}

    def tile(M, N, K, b_k_major=True, **fields):
        config = MatmulConfig.for_problem(M, N, K, "bf16", True, b_k_major, multiprocessors=132, **fields)
        return config.tile_m, config.tile_n

    assert {(128, width) for width in FILL_WIDTH_SHAPES} == set(FILL_WIDTH_SPEEDS)
    for width, shape in FILL_WIDTH_SHAPES.items():
        assert tile(*shape) == (128, width)
        assert tile(*shape, b_k_major=False)[1] not in FILL_WIDTH_SHAPES
        assert tile(*shape, unaligned=(True, True)) == UNALIGNED_PICKS[width]
    assert tile(448, 9856, 64 * FILL_WIDTH_MIN_STEPS) == (128, 160)
    assert tile(448, 9856, 64 * FILL_WIDTH_MIN_STEPS - 64) == (128, 192)
    assert tile(5452, 4272, 512) == (128, 256)   # (208 wide from 12 k-steps)
    assert tile(4096, 4096, 4096) == tile(8192, 8192, 8192) == (128, 256)   # (large problems as before)
    fp8 = Fp8MatmulConfig.for_fp8_problem(448, 9856, 1984, fast_accum=True)
    assert fp8.tile_n not in FILL_WIDTH_SHAPES


def test_narrow_tiles_fill_one_wave():
    """A K-major B takes 128-row tiles 80-112 wide where 128 x 128 ones leave many SMs idle and they
    fill between NARROW_FILL_SHARE and NARROW_FILL_MAX of the SMs (896 x 1408 x 11200: 126 tiles of 128 x 80 where
    128 x 128 made 77); not past NARROW_FILL_MAX (1200 x 1200 x 8192: 130 tiles of 128 x 96), not below
    FILL_WIDTH_MIN_STEPS k-steps or NARROW_FILL_MIN_ROWS rows, not where the last row of tiles holds fewer than
    NARROW_FILL_MIN_LAST_ROWS rows, not for a row-major B, a batch, rows not 128-byte aligned or the fp8 GEMM."""
    from skc.blocks import tile_rules

    def tile(M, N, K, b_k_major=True, **fields):
        config = MatmulConfig.for_problem(M, N, K, "bf16", True, b_k_major, multiprocessors=132, **fields)
        return config.tile_m, config.tile_n, config.split_k, config.cluster

    assert {(128, width) for width in NARROW_FILL_SHAPES} == set(tile_rules.NARROW_FILL_SPEEDS)
    for width, (M, N, K) in NARROW_FILL_SHAPES.items():
        assert tile(M, N, K) == (128, width, 1, 1)
        assert tile(M, N, K, b_k_major=False)[1] not in NARROW_FILL_SHAPES
        assert tile(M, N, 64 * tile_rules.FILL_WIDTH_MIN_STEPS - 64)[1] not in NARROW_FILL_SHAPES
        assert tile(M, N, 64 * tile_rules.FILL_WIDTH_MIN_STEPS) == (128, width, 1, 1)
        assert tile(M, N, K, unaligned=(True, True))[1] not in NARROW_FILL_SHAPES
        assert tile(2 * M, N, K, batch=2)[1] not in NARROW_FILL_SHAPES
    assert tile(1200, 1200, 8192) == (128, 112, 1, 1)       # (128 x 96: 130 tiles, past NARROW_FILL_MAX)
    # a last row of tiles holding fewer than NARROW_FILL_MIN_LAST_ROWS rows: not (2195 x 560 x 14656 took 128 x 80)
    assert tile(2195, 560, 14656)[1] not in NARROW_FILL_SHAPES
    assert tile(2195 - 19 + tile_rules.NARROW_FILL_MIN_LAST_ROWS, 560, 14656)[:2] == (128, 80)
    assert tile(448, 3200, 8192)[1] not in NARROW_FILL_SHAPES   # (under NARROW_FILL_MIN_ROWS: 4 rows of 128 x 80)
    assert tile(1024, 1024, 16384)[:2] == (64, 128)          # (64 x 128's wave costs less)
    assert Fp8MatmulConfig.for_fp8_problem(896, 1408, 11200).tile_n not in NARROW_FILL_SHAPES


def test_one_row_of_192_x_64_tiles_for_129_to_192_rows():
    """128 < M <= 192: one row of 192 x 64 tiles, A's box holding M's rows, one epilogue buffer where the tiles fill
    one wave; a caller naming a width, the warpgroups or turns gets 128-row tiles as before (no 192-row tile takes
    them), and one naming a_box_rows gets no a_rows (which a_box_rows excludes)."""
    def pick(M, N, K, **fields):
        config = MatmulConfig.for_problem(M, N, K, "bf16", multiprocessors=132, **fields)
        return config.tile_m, config.tile_n, config.a_rows, config.epilogue_buffers

    assert pick(192, 7168, 2048) == (192, 64, 0, 1)   # (deeper K swaps a and b: the next test)
    assert pick(160, 7168, 2048) == (192, 64, 160, 1)
    assert pick(129, 8192, 1024) == (192, 64, 136, 1)
    assert pick(256, 7168, 16384)[:2] != (192, 64) and pick(120, 7168, 16384)[:2] != (192, 64)
    assert MatmulConfig.for_problem(160, 7168, 4096, "bf16", True, True, multiprocessors=132,
                                    unaligned=(True, False)).tile_m != 192
    for named in ({"pingpong": True}, {"consumers": 2}, {"tile_n": 128}):
        assert pick(150, 7168, 4096, **named)[:2] == (128, 128)
    # a caller's 192-row tile on many tiles keeps two epilogue buffers (one is for one tile a block)
    assert pick(65536, 64, 4096, tile_m=192)[3] == 2
    assert pick(150, 256, 256, tile_m=192, consumers=3, tile_n=64, a_box_rows=16)[2] == 0
    fp8 = Fp8MatmulConfig.for_fp8_problem(160, 7168, 2048)
    assert (fp8.tile_m, fp8.tile_n, fp8.a_rows, fp8.epilogue_buffers) == (192, 64, 160, 1)


def test_one_row_of_192_x_64_tiles_where_only_bs_rows_are_unaligned():
    """B's rows at no multiple of 128 bytes, A's aligned: 128 < M <= 192 takes one row of 192 x 64 tiles where they
    fill half the SMs to all of them; not with fewer or more tiles, A's rows unaligned too, a transposed A, a batch or
    a caller's own tile."""
    def pick(M, N, K, a_k_major=True, unaligned=(False, True), **fields):
        config = MatmulConfig.for_problem(M, N, K, "bf16", a_k_major, multiprocessors=132, unaligned=unaligned,
                                          **fields)
        return config.tile_m, config.tile_n, config.cluster_m, config.cluster_n, config.a_rows, config.epilogue_buffers

    assert pick(129, 5000, 4096) == (192, 64, 1, 1, 136, 1)
    assert pick(150, 7000, 2000) == (192, 64, 1, 1, 152, 1)
    assert pick(160, 3000, 5000)[:2] != (192, 64)      # 47 tiles: under half the SMs
    assert pick(180, 12000, 4096)[:2] != (192, 64)     # 188 tiles: two waves
    assert pick(150, 7000, 2000, unaligned=(True, True))[:2] != (192, 64)
    assert pick(150, 7000, 2000, a_k_major=False)[:2] != (192, 64)
    assert pick(150, 7000, 2000, tile_n=128)[:2] == (128, 128)
    assert pick(300, 7000, 2000, batch=2)[:2] != (192, 64)   # (two matrices of 150 rows)


def test_few_rows_and_deep_k_swap_a_and_b():
    """128 < M <= 192 with K >= 4096: out^T = b^T a^T, M the tiles' width (rounded up to 8), on 64-row tiles of N
    (bf16, one consumer) or 128-row ones and M / 2 wide (fp8 per tensor); the configuration is for the swapped
    problem (a^T K-major where b is). Not for a caller naming fields, a batch, unaligned rows, shallow K, or the fp8
    GEMM's block scales, fast form or f32 output."""
    def pick(M, N, K, *layout, **fields):
        config = MatmulConfig.for_problem(M, N, K, "bf16", *layout, multiprocessors=132, **fields)
        return config.swap_ab, config.tile_m, config.tile_n, config.consumers, config.a_k_major, config.b_k_major

    assert pick(160, 7168, 16384) == (True, 64, 160, 1, False, True)
    assert pick(136, 7168, 16384, True, True) == (True, 64, 136, 1, True, True)   # x @ w.t(): both K-major
    assert pick(150, 7168, 4096) == (True, 64, 152, 1, False, True)
    assert not pick(160, 7168, 2048)[0] and not pick(160, 7168, 16384, tile_n=64)[0]
    assert not pick(160, 7168, 16384, batch=2)[0] and not pick(160, 7168, 16384, unaligned=(True, False))[0]
    assert not pick(160, 2048, 16384)[0]   # (32 tiles of 64 rows: too few for the SMs)
    fp8 = Fp8MatmulConfig.for_fp8_problem(160, 7168, 16384)
    assert (fp8.swap_ab, fp8.tile_m, fp8.tile_n, fp8.consumers) == (True, 128, 80, 2)
    assert Fp8MatmulConfig.for_fp8_problem(136, 7168, 16384).tile_n == 72
    for fields in ({"block_scaled": True}, {"fast_accum": True}, {"out_dtype": "f32"}):
        assert not Fp8MatmulConfig.for_fp8_problem(160, 7168, 16384, **fields).swap_ab
    with pytest.raises(ValueError, match="swap_ab stores each tile transposed"):
        MatmulConfig(swap_ab=True, split_k=2)
    with pytest.raises(ValueError, match="swap_ab stores each tile transposed"):
        Fp8MatmulConfig(swap_ab=True, out_dtype="f32")
    with pytest.raises(ValueError, match="swap_ab .* is for per-tensor scaling only"):
        Fp8MatmulConfig(swap_ab=True, block_scaled=True)
    # a transposed a would be the swapped problem's row-major B, whose tiles are whole 32-column chunks
    assert not pick(136, 7168, 16384, False, False)[0] and not pick(136, 7168, 16384, False, True)[0]
    with pytest.raises(ValueError, match="use it with loader='tma'"):
        MatmulConfig(swap_ab=True, loader="vector")
    with pytest.raises(ValueError, match="give a and b one fp8 type"):
        Fp8MatmulConfig(swap_ab=True, dtype_b="f8e5m2")


@needs_assembler
@pytest.mark.parametrize("cfg", PICKABLE, ids=lambda c: f"{c.tile_m}x{c.tile_n}-s{c.stages}-c{c.cluster_m}"
                         f"-k{c.split_k}{'-streamk' * c.stream_k}-{c.dtype}")
def test_every_pickable_configuration_assembles_without_spills(cfg):
    compiled = (compile_split_gemm(cfg) if cfg.split_k > 1 else compile_stream_k_gemm(cfg) if cfg.stream_k else
                compile_gemm(cfg))
    check_assembled(compiled, cfg)


def test_a_small_m_stage_expects_only_the_rows_it_loads():
    """16 x 8192 x 8192 on 64 x 128 tiles: A's box is 16 rows, and the stage's transaction count says so
    (16 x 64 x 2 bytes of A and 64 x 128 x 2 of B); a count of the whole tile would wait for bytes that never come."""
    cfg = MatmulConfig.for_problem(16, 8192, 8192, multiprocessors=132, tile_n=128)
    assert (cfg.tile_m, cfg.tile_n, cfg.a_rows) == (64, 128, 16)
    ptx = compile_gemm(cfg).asm("ptx")
    counts = set(re.findall(r"mbarrier.arrive.expect_tx.shared.b64\s+%rd\d+, \[[^]]+\], (%r\d+|\d+);", ptx))
    moves = {m for c in counts if c.startswith("%r") for m in re.findall(rf"mov.b32\s+{c}, (\d+);", ptx)}
    assert ({c for c in counts if not c.startswith("%r")} | moves) == {str(16 * 64 * 2 + 64 * 128 * 2)}, counts


def test_the_tensor_maps_are_prefetched():
    """The producer's issuing thread prefetches A's and B's descriptors before its loop, and each consumer
    warpgroup's leader the output's before its mainloop: three prefetches, of the three maps the copies use."""
    ptx = compile_gemm(MatmulConfig.for_problem(4096, 4096, 4096, multiprocessors=132)).asm("ptx")
    prefetched = re.findall(r"prefetch.tensormap \[(%rd\d+)\];", ptx)
    copied = set(re.findall(r"cp.async.bulk.tensor.2d[^\[]*\[[^\]]*\], \[(%rd\d+), \{", ptx))
    copied |= set(re.findall(r"cp.async.bulk.tensor.2d.global.shared::cta[^\[]*\[(%rd\d+), \{", ptx))
    assert len(prefetched) == 3 and set(prefetched) == copied, (prefetched, copied)


@needs_assembler
@pytest.mark.parametrize("batched", ["ab", "a", "b"])
def test_batched_kernel_assembles_with_3d_tensor_maps(batched):
    from skc.blocks import gemm

    cfg = MatmulConfig.for_problem(16384, 2048, 2048, multiprocessors=132, batched=batched,
                                   **({"cluster_m": 1} if batched == "a" else {}))
    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(cfg.dtype), boxes[name], cfg.swizzle(name)))
            for name in ("a", "b", "out")]
    compiled = gemm.matmul_batched_kernel.compile(*maps, skc.i32, skc.i32, skc.i32, skc.i32, skc.Ptr[skc.bf16],
                                                  skc.Ptr[skc.bf16], skc.f32, skc.f32, cfg, target="sm_90a",
                                                  block=cfg.threads)
    check_assembled(compiled, cfg)
    ptx = compiled.asm("ptx")
    assert "cp.async.bulk.tensor.3d.global.shared::cta" in ptx  # the output stores at (batch, row, column)
    assert ("cp.async.bulk.tensor.3d.shared::cluster.global" in ptx) and (
        ("cp.async.bulk.tensor.2d.shared::cluster.global" in ptx) == (batched != "ab"))


def check_assembled(compiled, cfg):
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0, resources
    assert cfg.shared_bytes() <= 232448
    ptx = compiled.asm("ptx")
    assert f"wgmma.mma_async.sync.aligned.m64n{cfg.tile_n}k16.f32" in ptx
    if cfg.split_k > 1:  # partial sums stored in fragment order, 16 bytes at a time, counted behind a GPU-scope
        assert "fence.acq_rel.gpu" in ptx and "atom.global.add.u32" in ptx   # fence, read back by the last share
        assert "st.global.v4.b32" in ptx and "ld.global.v4.b32" in ptx and "cp.async.bulk.tensor" in ptx
        assert "atom.global.add.f32" not in ptx and "atom.global.exch" not in ptx   # no atomics on the sums
    if cfg.stream_k:   # a split tile's first part counted and written behind a fence; the second's warp 0 waits for
        # it in a warp-uniform loop (a vote over every lane's read), never one lane spinning before a named barrier
        assert "fence.acq_rel.gpu" in ptx and "vote.sync.all.pred" in ptx and "st.global.v4.b32" in ptx
        assert "ld.global.v4.b32" in ptx and "cp.async.bulk.tensor.2d.global.shared::cta" in ptx   # TMA stores


@needs_assembler
@pytest.mark.parametrize("width", [1, 2, 4, 8])
@pytest.mark.parametrize("tile", [(64, 64, True, False), (64, 128, False, True), (128, 128, True, False),
                                  (128, 256, True, True)], ids=lambda t: f"{t[0]}x{t[1]}-a{'KM'[1 - t[2]]}-b{'KM'[t[3]]}")
def test_the_unaligned_rows_path_assembles_without_spills(tile, width):
    """The configurations of matmul_host._UnalignedRows (vector loads of 1 to 8 elements, direct stores), with the
    vector loader's register shares, at the tiles the rule gives small problems."""
    tile_m, tile_n, a_k_major, b_k_major = tile
    cfg = MatmulConfig(tile_m=tile_m, consumers=tile_m // 64, tile_n=tile_n, stages=4, loader="vector",
                       vector_width=width, store="direct", a_k_major=a_k_major, b_k_major=b_k_major,
                       epilogue=EpilogueSpec(beta=True, bias=True, activation="relu"))
    pointer = skc.Ptr[skc.bf16]
    compiled = matmul_kernel.compile(pointer, pointer, pointer, skc.i32, skc.i32, skc.i32, pointer, pointer, skc.f32,
                                     skc.f32, cfg, target="sm_90a", block=cfg.threads)
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0, resources
    ptx = compiled.asm("ptx")
    load = {1: "ld.global.b16", 2: "ld.global.b32", 4: "ld.global.v2.b32", 8: "ld.global.v4.b32"}[width]
    assert load in ptx and f"wgmma.mma_async.sync.aligned.m64n{tile_n}k16.f32" in ptx
    assert "cp.async.bulk.tensor" not in ptx   # neither TMA loads nor TMA stores
    assert re.search(r"st.global(\.v2)?\.b16", ptx)


@needs_assembler
@pytest.mark.parametrize("width", [2, 4, 8])
@pytest.mark.parametrize("split", [1, 3])
@pytest.mark.parametrize("tile", matmul_host.ASYNC_TILES, ids=lambda t: f"{t[0]}x{t[1]}s{t[2]}")
def test_the_cp_async_loader_assembles_without_spills(width, split, tile):
    """Every configuration matmul_host.few_rows_async picks: the vector loader copying 4, 8 or 16 bytes a cp.async
    (.ca, or .cg for 16, each with its source size: a masked copy reads nothing and fills zeros) and arriving on the
    stage's barrier once its copies landed (noinc: the arrival the barrier counts), unsplit with direct stores or
    split."""
    from skc.blocks import gemm

    tile_m, tile_n, stages = tile
    cfg = MatmulConfig(tile_m=tile_m, consumers=tile_m // 64, tile_n=tile_n, stages=stages, loader="vector",
                       vector_width=width, vector_async=True, split_k=split, store="direct" if split == 1 else "tma")
    pointer = skc.Ptr[skc.bf16]
    if split > 1:
        compiled = gemm.matmul_split_kernel.compile(pointer, pointer, pointer, skc.Ptr[skc.f32], skc.Ptr[skc.i32],
                                                    skc.i32, skc.i32, skc.i32, pointer, pointer, skc.f32, skc.f32, cfg,
                                                    target="sm_90a", block=cfg.threads)
    else:
        compiled = matmul_kernel.compile(pointer, pointer, pointer, skc.i32, skc.i32, skc.i32, pointer, pointer,
                                         skc.f32, skc.f32, cfg, target="sm_90a", block=cfg.threads)
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0, resources
    ptx = compiled.asm("ptx")
    level = "cg" if width == 8 else "ca"
    assert re.search(rf"cp\.async\.{level}\.shared\.global \[%rd\d+\], \[%rd\d+\], {2 * width}, %r\d+;", ptx)
    assert "cp.async.mbarrier.arrive.noinc.shared.b64" in ptx and "cp.async.bulk.tensor" not in ptx
    assert f"wgmma.mma_async.sync.aligned.m64n{tile_n}k16.f32" in ptx


@pytest.mark.parametrize("fields", [dict(store="direct"), dict(loader="vector"),
                                    dict(loader="vector", vector_width=1, store="direct")])
def test_compile_arguments_give_pointers_where_the_config_reads_or_writes_through_them(fields):
    """`skc compile`'s arguments for a config of the vector loader (a and b) or direct stores (out): pointers, not
    tensor maps (a map there failed inside the compiler)."""
    from skc.blocks.matmul_host import compile_arguments

    arguments = compile_arguments("sm_90a", 256, 256, 256, config=MatmulConfig(**fields))
    pointer = skc.Ptr[skc.bf16]
    assert (arguments["a"] == pointer) == (arguments["b"] == pointer) == ("loader" in fields)
    assert (arguments["out"] == pointer) == ("store" in fields)
    assert "wgmma.mma_async" in matmul_kernel.compile(**arguments, target="sm_90a").asm("ptx")


def test_a_config_refuses_what_ptxas_could_not_compile():
    """Three consumers leave ptxas 128 registers a thread: a 64 x 256 accumulator does not fit (ptxas C7602), 192 does;
    pingpong takes 64- or 128-row tiles for each of its consumers, whose accumulator must fit too."""
    with pytest.raises(ValueError, match="3 consumer warpgroups leave 128 registers .* at most 192"):
        MatmulConfig(tile_m=192, tile_n=256, consumers=3, producer_registers=24, consumer_registers=160)
    MatmulConfig(tile_m=192, tile_n=192, consumers=3, producer_registers=24, consumer_registers=160)
    with pytest.raises(ValueError, match="pingpong: each of 2 or more consumer warpgroups"):
        MatmulConfig(tile_m=192, consumers=3, pingpong=True, producer_registers=24, consumer_registers=160)
    with pytest.raises(ValueError, match="too few for a 128 x 256 accumulator: use a tile_n of at most 128"):
        MatmulConfig(tile_m=128, tile_n=256, pingpong=True)
    with pytest.raises(ValueError, match="pingpong takes whole tiles without clusters"):
        MatmulConfig(tile_m=64, pingpong=True, split_k=2)


def test_a_config_refuses_a_pipeline_too_shallow_for_its_tile_op():
    """wgmma keeps a stage's MMAs in flight while the next stage is waited for, and the overlapped block-scaled
    TileOp takes two stages a step: with fewer stages the consumer waits for a stage it holds. Refused when the
    config is made (was: a CompileError at a line inside the pipeline block); fp8 that adds each k-block into f32,
    whose TileOp finishes each stage's MMAs, runs in one."""
    from skc.blocks.fp8 import Fp8MatmulConfig
    with pytest.raises(ValueError, match=r"stages must be at least 2 for Wgmma, which takes 1 stage\(s\) a step and "
                                         r"keeps 1 more in flight .* found stages=1"):
        MatmulConfig(stages=1)
    with pytest.raises(ValueError, match="stages must be at least 2 for Wgmma"):
        Fp8MatmulConfig(stages=1, fast_accum=True)
    with pytest.raises(ValueError, match="stages must be at least 2 for OverlappedBlockScaledWgmma, which takes 2"):
        Fp8MatmulConfig(stages=1, block_scaled=True, overlap_scaling=True)
    assert Fp8MatmulConfig(stages=1, block_scaled=True).stages == 1
    assert Fp8MatmulConfig(stages=1).stages == 1   # (per tensor, each k-block added into f32 likewise)
    assert MatmulConfig(stages=2).stages == 2


def test_compile_arguments_of_an_f16_config_are_f16():
    """compile_arguments(..., config=MatmulConfig(dtype="f16")) gave bf16 tensor maps and pointers (its dtype argument's
    default, not the config's): the kernel compiled was another one than matmul() launches for f16 (now refused: the
    Wgmma's f16 against its maps' bf16)."""
    from skc.blocks.matmul_host import compile_arguments

    arguments = compile_arguments("sm_90a", 256, 256, 256, config=MatmulConfig(dtype="f16"))
    assert arguments["a"].elem == skc.ir.f16 and arguments["bias"] == skc.Ptr[skc.f16]
    assert "wgmma.mma_async.sync.aligned.m64n" in matmul_kernel.compile(**arguments, target="sm_90a").asm("ptx")
