"""Split-K GEMM (SplitKScheduler + SplitKEpilogue, one launch) in the interpreter, exact against numpy (small
integers: every fp32 partial sum is exact, so the order the shares add in cannot show), the tile-shape rule,
and the scheduler's work units."""
import numpy as np
import pytest

import skc
from skc.blocks import MatmulConfig
from skc.blocks.tile_rules import tile_shape

RNG = np.random.default_rng(5)


def integers(*shape):
    return RNG.integers(-2, 3, shape).astype(np.float32)


@pytest.mark.parametrize("shape, fields", [
    ((16, 128, 256), {"split_k": 2}),                                # skinny M: one tile, two shares
    ((72, 192, 320), {"split_k": 3}),                                # partial tiles and a short last share
    ((64, 128, 192), {"split_k": 4}),                                # 3 k-steps in 4 shares: one share empty
    ((136, 128, 256), {"split_k": 2, "tile_m": 128, "consumers": 2}),  # two warpgroups, a counter each
], ids=["skinny", "tails", "empty-share", "two-warpgroups"])
def test_split_k_is_exact(hopper_interpreter, shape, fields):
    m, n, k = shape
    a, b = integers(m, k), integers(k, n)
    out = np.full((m, n), np.nan, np.float16)
    fields = dict({"tile_m": 64, "consumers": 1, "stages": 2}, **fields)
    skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16), out=out,
                      config=MatmulConfig(dtype="f16", **fields))
    np.testing.assert_array_equal(out.astype(np.float32), a @ b)


def test_split_k_fused_epilogue_applies_once_to_the_whole_sum(hopper_interpreter):
    """alpha, beta · C, bias and relu by the last share only: relu of a sum is not a sum of relus."""
    m, n, k = 40, 128, 256
    a, b = integers(m, k), integers(k, n)
    c, bias = RNG.integers(-4, 5, (m, n)).astype(np.float16), RNG.integers(-4, 5, n).astype(np.float16)
    out = np.full((m, n), np.nan, np.float16)
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, split_k=4,
                       epilogue=skc.blocks.EpilogueSpec(alpha=True, beta=True, bias=True, activation="relu"))
    skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16), out=out, c=c, bias=bias, alpha=2.0, beta=-1.0,
                      activation="relu", config=cfg)
    expected = np.maximum(2.0 * (a @ b) - c + bias, 0.0)
    np.testing.assert_array_equal(out.astype(np.float32), expected)


def test_split_k_leaves_its_counters_zero_for_the_next_launch(hopper_interpreter):
    """The counters must be zero at a launch and are left so; the workspace needs no zeroing (each share writes its
    slice before any share reads it): here it starts as garbage."""
    from skc.blocks import gemm
    from skc.blocks.host_plans import split_buffers

    m, n, k = 16, 128, 256
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, split_k=2)
    a, b = integers(m, k).astype(np.float16), integers(k, n).astype(np.float16)
    workspace, counters = split_buffers(a, m, n, cfg)
    assert workspace.shape == (2 * 64 * cfg.tile_n,)   # one strip, two shares
    workspace[:] = np.nan
    boxes = cfg.boxes()
    for _ in range(2):  # the second launch reuses the buffers the first one left
        out = np.full((m, n), np.nan, np.float16)
        gemm.matmul_split_kernel[2, cfg.threads](skc.TensorMap(a, boxes["a"]), skc.TensorMap(b, boxes["b"]), out,
                                                  workspace, counters, m, n, k, out, out, 1.0, 0.0, cfg)
        np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))
        assert not counters.any()


def test_split_k_rule_in_the_interpreter(hopper_interpreter, monkeypatch):
    """With the split-K rule on (it is off by default: measured slower on the H200), matmul() splits a skinny
    problem by itself (the interpreter models 4 SMs); off, it does not."""
    from skc.blocks import matmul_host, tile_rules

    m, n, k = 16, 64, 1024
    target = skc.current_device().target
    assert matmul_host._config(target, m, n, k, "f16", True, False, skc.blocks.EpilogueSpec(), (), 4).split_k == 1
    monkeypatch.setattr(tile_rules, "SPLIT_K_BY_DEFAULT", True)
    matmul_host._config.cache_clear()
    matmul_host._PLANS.clear()
    try:
        cfg = matmul_host._config(target, m, n, k, "f16", True, False, skc.blocks.EpilogueSpec(), (), 4)
        assert cfg.split_k == 4 and cfg.tile_m == 64
        a, b = integers(m, k), integers(k, n)
        out = skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16))
        np.testing.assert_array_equal(out.astype(np.float32), a @ b)
    finally:
        matmul_host._config.cache_clear()
        matmul_host._PLANS.clear()


@pytest.mark.parametrize("shape, expected", [
    ((4096, 4096, 4096), (128, 256, 1, 1)), ((8192, 8192, 8192), (128, 256, 2, 1)),
    ((1024, 1024, 1024), (64, 128, 1, 1)), ((128, 8192, 8192), (64, 128, 1, 1)), ((256, 4096, 4096), (64, 128, 1, 1)),
    # few rows: 64 x 64 tiles where 64 x 128 ones leave most SMs idle (end to end: 64 x 5120 x 5120 0.97x against
    # 0.84x, 128 x 4096 x 4096 1.00x against 0.89x; 16 x 8192 x 8192 0.94x against 0.93x, the table keeping 64 x 128)
    ((64, 5120, 5120), (64, 64, 1, 1)), ((128, 4096, 4096), (64, 64, 1, 1)), ((16, 8192, 8192), (64, 64, 1, 1)),
    # where the waves decide (session17-2026-12-01-gemm-waves.json, kernel time against cuBLAS): 3072³ 192 x 192
    # 1.00x (128 x 256 0.77x); 1536³ 128 x 192 0.82x (64 x 256 0.64x); 512 x 12288 x 4096 128 x 192 1.02x (128 x 256
    # 0.82x); 1024 x 4096 x 4096 and 2048 x 2048 x 8192, 128 tiles of 128 x 256 on 132 SMs, 1.00x and 0.99x (64 x 256
    # 0.97x and 0.94x); 1536³ since 192 x 96 tiles fit it in one wave of 128 (538 against 128 x 192's 491 TFLOP/s
    # sustained, row-major B: session22-2026-12-02-row-major-192x96-ab.txt)
    ((3072, 3072, 3072), (192, 192, 1, 1)), ((1536, 1536, 1536), (192, 96, 1, 1)),
    ((512, 12288, 4096), (128, 192, 1, 1)), ((1024, 4096, 4096), (128, 256, 1, 1)),
    ((2048, 2048, 8192), (128, 256, 1, 1)),
    # where 192 x 192's waves cost as much as 128 x 256's (6144³: 9 waves of 1152 tiles, 8 of 1024 a third larger),
    # 192 x 192 (6144³ and 3072 x 12288 x 4096 1.02x as fast, sustained: session18-2026-12-02-bf16-192-ties-ab.txt)
    ((6144, 6144, 6144), (192, 192, 1, 1)), ((3072, 12288, 4096), (192, 192, 1, 1)),
    ((8192, 8192, 2048), (128, 256, 2, 1)), ((4096, 14336, 4096), (128, 256, 1, 1)),
])
def test_tile_shape_rule_reproduces_the_sweep(shape, expected):
    """The sweep's fastest tile per shape (benchmarks/NOTES.md), or one within 2 % of it; no split-K by default."""
    assert tile_shape(*shape, 132) == expected


@pytest.mark.parametrize("shape, b_k_major, expected", [
    # few tiles over a deep K: split-K (end to end, twenty-sixth session: 0.69 -> 1.03, 0.75 -> 0.98, 0.75 -> 1.07)
    ((4, 1152, 4800), False, (64, 64, 1, 4)), ((32, 1472, 4416), False, (64, 64, 1, 3)),
    ((8, 320, 3280), True, (64, 64, 1, 4)),
    # more tiles, or a shallow K: unsplit (64 x 3904 x 5248 0.87 in 2 shares against 0.88; 86 x 1504 x 1616 0.81
    # against 0.87)
    ((64, 3904, 5248), False, (64, 64, 1, 1)), ((86, 1504, 1616), False, (64, 64, 1, 1)),
    ((8, 320, 264), False, (64, 64, 1, 1)), ((16, 8192, 8192), False, (64, 64, 1, 1)),
])
def test_few_tiles_over_a_deep_k_split(shape, b_k_major, expected):
    assert tile_shape(*shape, 132, b_k_major=b_k_major) == expected


@pytest.mark.parametrize("shape, b_k_major, split", [
    # several rows of tiles filling a quarter to half of the SMs over a deep K: as many shares as fit one wave
    # (twenty-seventh session: 0.57 -> 0.90, 0.69 -> 0.92, 0.70 -> 0.85)
    ((427, 384, 8192), True, 3), ((95, 1936, 13632), True, 2), ((256, 576, 4608), False, 2),
    # one row of tiles, more than half the SMs, a shallow K, rows not 128-byte aligned: unsplit
    ((64, 3904, 5248), False, 1), ((712, 400, 4544), False, 1), ((152, 1936, 3750), True, 1),
    ((86, 1504, 1616), False, 1),
])
def test_several_rows_of_tiles_filling_half_the_sms_split(shape, b_k_major, split):
    assert tile_shape(*shape, 132, b_k_major=b_k_major)[3] == split
    # rows not 128-byte aligned: the same shares (UNALIGNED_SPLITS)
    assert tile_shape(*shape, 132, unaligned=True, b_k_major=b_k_major)[3] == split


@pytest.mark.parametrize("shape, b_k_major, expected", [
    # one wave of tiles over at least 128 k-steps: the tile and the shares together (twenty-ninth session, end to
    # end against torch.matmul, the rule before -> these choices: 0.67 -> 0.94, 0.81 -> 1.00, 0.69 -> 0.87,
    # 0.61 -> 0.91; session29-2026-12-03-deep-k-ab-fitted.txt)
    ((192, 640, 14208), False, (64, 64, 1, 4)), ((384, 768, 8192), False, (64, 128, 1, 3)),
    ((640, 640, 16384), False, (128, 128, 1, 5)), ((576, 576, 24576), False, (128, 128, 1, 5)),
    ((256, 1024, 16384), False, (64, 128, 1, 4)), ((320, 1280, 12288), False, (64, 128, 1, 2)),
    ((427, 384, 8192), True, (64, 64, 1, 3)), ((867, 576, 15488), False, (128, 128, 1, 3)),
    # unsplit where more tiles save more than a share costs (1188 x 768 x 22464 0.95 on 64 x 128 tiles, 0.89 on
    # 128 x 128 in 2 shares)
    ((1188, 768, 22464), True, (64, 128, 1, 1)), ((704, 1152, 6144), False, (64, 128, 1, 1)),
    ((1024, 1024, 16384), False, (64, 128, 1, 1)), ((128, 8192, 8192), False, (64, 128, 1, 1)),
])
def test_one_wave_over_a_deep_k_chooses_the_tile_and_the_shares_together(shape, b_k_major, expected):
    assert tile_shape(*shape, 132, b_k_major=b_k_major) == expected


def test_deep_k_tiles_keeps_one_wave_and_deep_shares():
    from skc.blocks.tile_rules import DEEP_K_MIN_STEPS, deep_k_tiles, tiles_of

    for shape in [(192, 640, 14208), (96, 320, 21248), (1187, 512, 19520), (640, 640, 16384), (65, 8, 8192)]:
        tile_m, tile_n, split = deep_k_tiles(*shape)
        assert tiles_of(shape[0], shape[1], tile_m, tile_n) * split <= 132
        assert split == 1 or shape[2] // 64 >= DEEP_K_MIN_STEPS * split
    assert deep_k_tiles(96, 320, 21248) == (64, 64, 8)      # 10 tiles: 8 shares of 41 k-steps
    assert deep_k_tiles(640, 640, 16384, 4)[2] == 1          # the interpreter's 4 SMs: 25 tiles of 128 x 128 at least
    # outside its band the rules before decide: one row of tiles, a shallow K, more than a wave, rows unaligned
    assert tile_shape(64, 640, 14208, 132) == (64, 64, 1, 7)                   # few_tiles_split
    assert tile_shape(384, 768, 4032, 132)[3] == 1                             # 63 k-steps
    assert tile_shape(154, 320, 4992, 132) == (64, 64, 1, 4)                   # few tiles, 78 k-steps: few_tiles_split
    assert tile_shape(96, 2048, 10240, 132) == (64, 64, 1, 2)                  # < 128 rows: half_wave_split


@pytest.mark.parametrize("shape, b_k_major, expected", [
    # from 64 k-steps where the tiles fill more than a quarter of the SMs (thirtieth session, `deep_k_splits.py
    # grid edges`: 0.98 against the rules before's 0.85, 0.90 against 0.79)
    ((300, 896, 7040), False, (64, 128, 1, 3)), ((200, 1216, 6656), True, (64, 128, 1, 3)),
    ((368, 344, 7392), False, (64, 64, 1, 3)),
    # a 64-row tile's last column half past N costs more (0.86 against 0.77 for 64 x 128 in 3 shares)
    ((808, 320, 14528), False, (64, 64, 1, 2)),
])
def test_one_wave_from_64_k_steps_and_columns_past_n(shape, b_k_major, expected):
    assert tile_shape(*shape, 132, b_k_major=b_k_major) == expected


def test_deep_k_tiles_splits_128_row_tiles_over_128_k_steps_only(monkeypatch):
    """Below DEEP_K_TALL_TILE_STEPS the model's 128 x 128 tiles in shares ran slower than 64 x 128 unsplit (thirtieth
    session's second draw: `x @ w.t()` 316 x 1792 x 8064 0.79 against 0.88); unsplit, they stay (its third draw: 885 x
    1792 x 4096 0.94 on 128 x 128, 0.79 on 64 x 128)."""
    from skc.blocks import tile_rules

    assert tile_shape(316, 1792, 8064, 132, b_k_major=True) == (64, 128, 1, 1)
    assert tile_shape(885, 1792, 4096, 132) == (128, 128, 1, 1)
    assert tile_shape(553, 2752, 5760, 132) == (128, 128, 1, 1)
    assert tile_rules.deep_k_tiles(316, 1792, 8064) == (64, 128, 1)
    assert tile_rules.deep_k_tiles(316, 1792, 8192) == (128, 128, 3)      # 128 k-steps
    monkeypatch.setattr(tile_rules, "DEEP_K_TALL_TILE_STEPS", 64)
    assert tile_rules.deep_k_tiles(316, 1792, 8064) == (128, 128, 3)   # (the measured 0.79)


def test_deep_k_tiles_charges_a_64_row_tiles_columns_past_n(monkeypatch):
    from skc.blocks import tile_rules

    assert tile_rules.deep_k_tiles(808, 320, 14528) == (64, 64, 2)
    monkeypatch.setattr(tile_rules, "DEEP_K_PAST_N_COST", 0)
    assert tile_rules.deep_k_tiles(808, 320, 14528) == (64, 128, 3)   # (the twenty-ninth session's choice)


def test_half_wave_split_fits_one_wave_of_deep_enough_shares():
    from skc.blocks.tile_rules import half_wave_split

    assert half_wave_split(42, 128) == 3            # 126 units of 132; 42 k-steps a share
    assert half_wave_split(42, 95) == 2             # (32 k-steps a share at least)
    assert half_wave_split(33, 1000) == 1           # a quarter of the SMs: few_tiles_split's
    assert half_wave_split(67, 1000) == 1           # more than half
    assert half_wave_split(62, 40) == 1             # too shallow to share
    assert half_wave_split(2, 1000, 4) == 2         # the interpreter's 4 SMs


def test_one_row_split_shares_half_a_wave_of_64_x_64_tiles_over_a_deep_enough_k():
    """One row of 64 x 64 tiles (M <= 64) that fills a quarter to half of the SMs goes in 2 shares where the model
    puts them 2 % faster (thirty-sixth session, `benchmarks/one_row_tiles.py grid`: 4 x 2304 x 9152 1.01x
    torch.matmul in 2 shares against 0.75x unsplit; 17 x 3008 x 1856 0.86x against 0.94x)."""
    from skc.blocks.tile_rules import one_row_split

    assert one_row_split(36, 143) == 2              # 72 SMs of 132, 143 k-steps
    assert one_row_split(40, 55) == 2               # (measured 1.01 against 0.91)
    assert one_row_split(43, 36) == 1               # (level: 0.91 and 0.91)
    assert one_row_split(47, 29) == 1               # too shallow (0.86 against 0.94)
    assert one_row_split(64, 64) == 1               # 128 SMs read no faster than the DRAM gives 64 (1.00 against 1.04)
    assert one_row_split(64, 172) == 2              # deep enough for it still (1.00 against 0.95)
    assert one_row_split(33, 1000) == 1             # a quarter of the SMs: few_tiles_split's
    assert one_row_split(67, 1000) == 1             # two shares past one wave
    assert one_row_split(2, 1000, 4) == 2           # the interpreter's 4 SMs


@pytest.mark.parametrize("shape, b_k_major, expected", [
    ((4, 2304, 9152), False, (64, 64, 1, 2)), ((12, 2368, 5504), True, (64, 64, 1, 2)),
    ((16, 4096, 14336), True, (64, 64, 1, 2)), ((32, 4096, 11008), False, (64, 64, 1, 2)),
    ((17, 3008, 1856), False, (64, 64, 1, 1)), ((16, 4096, 4096), True, (64, 64, 1, 1)),
    ((16, 8192, 8192), False, (64, 64, 1, 1)),    # (128 tiles: the row, unchanged)
    ((96, 4096, 14336), False, (64, 64, 1, 1)),   # two rows: 128 tiles
])
def test_one_row_of_64_row_tiles_takes_the_one_row_split(shape, b_k_major, expected):
    assert tile_shape(*shape, 132, b_k_major=b_k_major) == expected


@pytest.mark.parametrize("shape, b_k_major, expected", [
    ((87, 7168, 10176), False, (128, 64, 1, 1)), ((67, 6272, 11776), True, (128, 64, 1, 1)),
    ((65, 4096, 4096), False, (128, 64, 1, 1)), ((80, 3008, 8192), True, (128, 64, 1, 2)),   # one_row_split's 2
    ((76, 5696, 1984), False, (64, 128, 1, 1)),    # 31 k-steps: the rules before (0.89 against 0.90)
    ((90, 3520, 5504), False, (64, 64, 1, 1)),     # past TALL_ROW_ROWS (level at 90)
    ((72, 2048, 11008), False, (64, 64, 1, 2)),    # 32 tiles of 128 x 64: a quarter of the SMs, the rules before
    ((81, 2880, 4352), False, (64, 64, 1, 1)),     # in two shares only from TALL_ROW_SPLIT_STEPS (0.86 against 0.91)
    ((74, 2880, 7040), True, (128, 64, 1, 2)),     # (0.86 against 0.79)
    ((75, 8256, 5440), False, (128, 64, 1, 1)),    # unsplit from TALL_ROW_STEPS (1.01 against 0.94)
])
def test_a_second_row_mostly_past_m_takes_one_row_of_128_x_64_tiles(shape, b_k_major, expected):
    assert tile_shape(*shape, 132, b_k_major=b_k_major, a_aligned=True) == expected   # (a K-major A: its rows only)


def test_one_row_of_128_x_64_tiles_loads_only_the_rows_of_a():
    config = MatmulConfig.for_problem(87, 7168, 10176, multiprocessors=132)
    assert (config.tile_m, config.tile_n, config.consumers, config.a_rows, config.split_k) == (128, 64, 2, 88, 1)
    assert tile_shape(87, 7168, 10176, 132, unaligned=True)[:2] != (128, 64)   # unaligned rows: the rules before
    assert MatmulConfig.for_problem(87, 7168, 10176, multiprocessors=132, unaligned=(True, False)).tile_m == 64
    # an MN-major A's boxes would not hold only M's rows (unmeasured): the rules before
    assert MatmulConfig.for_problem(87, 7168, 10176, a_k_major=False, multiprocessors=132).tile_m == 64


@pytest.mark.parametrize("fields, tile", [({"tile_m": 64}, (64, 128)), ({"tile_m": 128}, (128, 128)),
                                          ({"tile_n": 128}, (64, 128)), ({"tile_n": 64}, (64, 64)),
                                          ({"consumers": 1}, (64, 128))])
def test_a_callers_tile_keeps_the_rules_before_past_64_rows(fields, tile):
    """Where the caller names part of the tile (or the warpgroups), the rest is the rules before's: the tall row's
    128 x 64 is the rule's own tile (a review found 64 x 128 becoming 64 x 64 for tile_m=64)."""
    config = MatmulConfig.for_problem(87, 7168, 10176, multiprocessors=132, **fields)
    assert (config.tile_m, config.tile_n, config.split_k) == (*tile, 1)
    one_row = MatmulConfig.for_problem(68, 3648, 15644, multiprocessors=132, consumers=1)
    assert (one_row.tile_m, one_row.split_k) == (64, 1)


def test_the_one_row_split_is_for_aligned_rows_only():
    """Rows not 128-byte aligned keep the rules before (64 x 2368 x 3368, unaligned: 0.80x torch.matmul in 2
    shares, 0.81x unsplit, thirty-sixth session)."""
    assert tile_shape(64, 2368, 3392, 132) == (64, 64, 1, 2)
    assert tile_shape(64, 2368, 3392, 132, unaligned=True)[3] == 1
    config = MatmulConfig.for_problem(64, 2368, 3368, multiprocessors=132, unaligned=(True, False))
    assert config.split_k == 1


def test_few_tiles_split_counts_the_sms_and_the_depth():
    from skc.blocks.tile_rules import few_tiles_split

    assert few_tiles_split(34, 1000) == 1           # more than a quarter of 132 SMs
    assert few_tiles_split(8, 106) == 8             # 64 SMs busy, 13 k-steps a share
    assert few_tiles_split(8, 95) == 7              # (12 k-steps a share at least)
    assert few_tiles_split(18, 75) == 4             # 72 SMs of 132 (FEW_TILES_SHARE)
    assert few_tiles_split(5, 20) == 1              # too shallow to share
    assert few_tiles_split(1, 100, 4) == 2          # the interpreter's 4 SMs


@pytest.mark.parametrize("shape, b_k_major, split", [
    ((58, 1472, 1920), True, 1), ((52, 2112, 2112), False, 1), ((32, 1536, 1536), False, 1),   # measured unsplit
    ((64, 1856, 1728), True, 1), ((32, 1920, 2112), False, 1),   # 29 and 30 tiles; 27 and 33 k-steps
    ((31, 1920, 1664), True, 2), ((10, 1472, 1920), False, 2),   # under SHALLOW_ROW_MIN_ROWS rows: the shares stay
    ((58, 1408, 1920), True, 2),     # 22 tiles: a sixth of the SMs or less
    ((58, 1472, 2176), True, 2),     # 34 k-steps
    ((128, 1024, 2048), False, 2),   # two rows of tiles
])
def test_one_row_of_tiles_over_a_shallow_k_stays_unsplit(shape, b_k_major, split):
    """One row of 64 x 64 tiles of 32-64 rows filling more than a sixth of the SMs over at most 33 k-steps
    (tile_rules.SHALLOW_ROW_STEPS): unsplit; fewer rows, fewer tiles, a deeper K or two rows keep few_tiles_split's
    shares."""
    config = MatmulConfig.for_problem(*shape, b_k_major=b_k_major, multiprocessors=132)
    assert (config.tile_m, config.tile_n, config.split_k) == (64, 64, split)


def test_the_shallow_row_rule_counts_the_sms_and_keeps_unaligned_rows_as_they_were():
    from skc.blocks.tile_rules import few_tiles_split

    assert few_tiles_split(23, 30, 132, shallow_row=True) == 1 and few_tiles_split(23, 30, 132) == 2
    assert few_tiles_split(22, 30, 132, shallow_row=True) == 2   # 22 of 132: a sixth
    assert few_tiles_split(3, 30, 16, shallow_row=True) == 1 and few_tiles_split(2, 30, 16, shallow_row=True) == 2
    # rows not 128-byte aligned (K = 1928: 3856-byte rows) keep the shares they had
    unaligned = MatmulConfig.for_problem(58, 1472, 1928, b_k_major=True, multiprocessors=132, unaligned=(True, True))
    assert unaligned.split_k == 2


def test_rows_not_128_byte_aligned_take_the_aligned_rules_shares_unclustered(monkeypatch):
    assert tile_shape(7, 280, 2816, 132, unaligned=True) == (64, 64, 1, 3)   # one row of tiles: no cluster
    assert tile_shape(8, 320, 3280, 132, unaligned=True, b_k_major=True) == (64, 64, 1, 4)
    # several rows of tiles too (thirtieth session: 368 x 344 x 7392 1.04x torch.matmul in 3 shares, 0.74x unsplit in
    # clusters of two)
    assert tile_shape(130, 320, 3280, 132, unaligned=True) == tile_shape(130, 320, 3280, 132) == (64, 64, 1, 4)
    assert tile_shape(576, 576, 24576, 132, unaligned=True) == (128, 128, 1, 5)
    for shape, unaligned, split in [((7, 280, 2816), (False, True), 3), ((368, 344, 7392), (True, True), 3)]:
        config = MatmulConfig.for_problem(*shape, multiprocessors=132, unaligned=unaligned)
        assert (config.split_k, config.cluster_m, config.cluster_n) == (split, 1, 1)
    # unsplit, they keep their clusters (tile_rules.unaligned_cluster)
    config = MatmulConfig.for_problem(3000, 3000, 3000, multiprocessors=132, unaligned=(True, True))
    assert (config.split_k, config.cluster) == (1, 2)
    # the rules before: clusters, unsplit
    from skc.blocks import tile_rules as rules

    monkeypatch.setattr(rules, "UNALIGNED_SPLITS", False)
    config = MatmulConfig.for_problem(368, 344, 7392, multiprocessors=132, unaligned=(True, True))
    assert (config.split_k, config.cluster) == (1, 2)


def test_the_rule_splits_only_its_own_tiles():
    """A caller's tile or schedule keeps its own split (none unless named)."""
    assert MatmulConfig.for_problem(4, 1152, 4800, multiprocessors=132).split_k == 4
    assert MatmulConfig.for_problem(4, 1152, 4800, multiprocessors=132, tile_n=128).split_k == 1
    assert MatmulConfig.for_problem(4, 1152, 4800, multiprocessors=132, stream_k=True).split_k == 1
    assert MatmulConfig.for_problem(4, 1152, 4800, multiprocessors=132, split_k=2).split_k == 2
    # fields split-K cannot go with: the rule's split gives way (it raised before)
    for fields in ({"store": "direct"}, {"swap_ab": True}, {"batched": "ab"}):
        assert MatmulConfig.for_problem(1, 8, 1536, multiprocessors=132, **fields).split_k == 1, fields


def test_per_tensor_fp8_with_few_tiles_splits():
    from skc.blocks.fp8 import Fp8MatmulConfig

    pick = Fp8MatmulConfig.for_fp8_problem
    config = pick(18, 512, 13568, dtype="f8e4m3", out_dtype="bf16")
    assert (config.tile_m, config.tile_n, config.split_k) == (64, 64, 8)
    assert pick(18, 512, 13568, dtype="f8e4m3", out_dtype="bf16", block_scaled=True).split_k == 1
    assert pick(18, 512, 13568, dtype="f8e4m3", out_dtype="bf16", tile_n=128).split_k == 1
    assert pick(64, 4096, 7168, dtype="f8e4m3", out_dtype="bf16").split_k == 1   # 64 tiles: 48 wide, 256 deep
    assert pick(64, 4096, 7168, dtype="f8e4m3", out_dtype="bf16").tile_n == 48


@pytest.mark.parametrize("shape, tile", [((212, 2096, 6016), (64, 64)), ((321, 560, 4224), (64, 64)),
                                         ((217, 2736, 11776), (128, 64)), ((1703, 336, 7680), (128, 64)),
                                         ((160, 2000, 8192), (128, 64))])
def test_per_tensor_fp8_takes_64_row_tiles_where_128_row_ones_fill_half_the_sms(shape, tile):
    """Past 192 rows, where even 128 x 64 tiles fill at most half of the SMs: 64 x 64, twice as many."""
    from skc.blocks.fp8 import Fp8MatmulConfig

    config = Fp8MatmulConfig.for_fp8_problem(*shape, dtype="f8e4m3", out_dtype="bf16")
    assert (config.tile_m, config.tile_n) == tile
    assert Fp8MatmulConfig.for_fp8_problem(*shape, block_scaled=True).tile_m == 128


@pytest.mark.parametrize("shape, split", [((16, 4096, 8192), 2), ((16, 1024, 8192), 8), ((16, 1024, 256), 1)])
def test_split_rule_when_on(monkeypatch, shape, split):
    from skc.blocks import tile_rules

    monkeypatch.setattr(tile_rules, "SPLIT_K_BY_DEFAULT", True)
    assert tile_shape(*shape, 132)[3] == split


def test_split_k_refuses_clusters():
    with pytest.raises(ValueError, match="split-K"):
        MatmulConfig(tile_n=256, cluster_m=2, split_k=2)
