"""The FP8 GEMMs (per-tensor and block-scaled) without a GPU: exact in the interpreter against numpy on small
shapes (tails included), their PTX holds the e4m3 wgmma and assembles with no spills (64 bytes at 256 wide in
halves), the block-scaled one is the per-tensor composition with a different payload and TileOp, and the host
refuses what it cannot run by name."""
import re
from types import SimpleNamespace

import ml_dtypes
import numpy as np
import pytest

import skc
from skc import ir
from skc.backends import ptx_tools
from skc.blocks import MatmulConfig
from skc.blocks.tile_rules import tiles_of
from skc.blocks.epilogue import EpilogueSpec
from skc.blocks.fp8 import (
    BlockScaledWgmma,
    Fp8MatmulConfig,
    OverlappedBlockScaledWgmma,
    OverlappedPromotedWgmma,
    PromotedWgmma,
    ScaleLayout,
    fp8_matmul_kernel,
)
from skc.blocks.layout import OperandLayout
from skc.blocks.mma import Wgmma
from skc.blocks.payload import SmemTile

ml_dtypes = pytest.importorskip("ml_dtypes")
RNG = np.random.default_rng(17)
E4M3, E5M2 = ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2

needs_assembler = pytest.mark.skipif(ptx_tools.ptxas_path() is None and not ptx_tools.have_nvjitlink(),
                                     reason="neither ptxas nor nvJitLink is installed")


def operands(M, N, K, dtype=E4M3, dtype_b=None):
    """Small integers (exact in fp8 and in every sum) as a (M x K row-major) and b (K x N column-major)."""
    a = RNG.integers(-3, 4, (M, K)).astype(np.float32)
    b = RNG.integers(-3, 4, (K, N)).astype(np.float32)
    return a, b, a.astype(dtype), np.ascontiguousarray(b.T).astype(dtype_b or dtype).T


def block_scales(M, N, K):
    """Powers of two, so that every scaled partial product is exact in f32."""
    kb, nb = K // 128, -(-N // 128)
    return ((2.0 ** RNG.integers(-3, 4, (M, kb))).astype(np.float32),
            (2.0 ** RNG.integers(-3, 4, (kb, nb))).astype(np.float32))


def block_reference(a, b, sa, sb):
    """Two-level accumulation in f32: sum over k-blocks of (A_k B_k) · sa[:, k] · sb[k, column block]."""
    M, N = a.shape[0], b.shape[1]
    out = np.zeros((M, N), np.float32)
    for k in range(sa.shape[1]):
        part = a[:, 128 * k:128 * (k + 1)] @ b[128 * k:128 * (k + 1)]
        out += part * sa[:, k:k + 1] * np.repeat(sb[k], 128)[:N]
    return out


@pytest.mark.parametrize("shape, dtypes", [
    ((136, 128, 256), (E4M3, None)),         # row tail
    ((128, 200, 144), (E4M3, None)),         # column and k tails (TMA zero fill, clipped stores)
    ((64, 128, 128), (E5M2, None)),
    ((128, 136, 128), (E4M3, E5M2)),         # mixed types
], ids=["m-tail", "nk-tail", "e5m2", "e4m3xe5m2"])
def test_per_tensor_fp8_gemm_is_exact_in_the_interpreter(hopper_interpreter, shape, dtypes):
    M, N, K = shape
    a, b, a8, b8 = operands(M, N, K, *dtypes)
    out = np.full((M, N), np.nan, np.float32)
    skc.blocks.matmul(a8, b8, out, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                      out_dtype="float32")
    np.testing.assert_array_equal(out, 2.0 * (a @ b))


def test_an_fp8_config_chosen_for_fewer_rows_loads_all_of_a_larger_problems(hopper_interpreter, monkeypatch):
    """An Fp8MatmulConfig picked for 16 rows (a_rows 16) given to a 64-row problem: all 64 rows are loaded."""
    from skc.runtime.interpreter import launch as interpreter_launch
    from skc.runtime.interpreter.memory import Segment

    monkeypatch.setattr(interpreter_launch, "shared_segment",
                        lambda nbytes: Segment("shared memory", 0, np.full(nbytes, 0xFF, np.uint8)))
    cfg = Fp8MatmulConfig.for_fp8_problem(16, 128, 256, out_dtype="f32", multiprocessors=4)
    assert cfg.a_rows == 16
    a, b, a8, b8 = operands(64, 128, 256)
    out = skc.blocks.matmul(a8, b8, scale_a=np.array([1.0], np.float32), scale_b=np.array([1.0], np.float32),
                            out_dtype="float32", config=cfg)
    np.testing.assert_array_equal(np.asarray(out), a @ b)


@pytest.mark.parametrize("fields", [{"tile_n": 32}, {"tile_n": 56}, {"tile_m": 64, "consumers": 1, "tile_n": 32}],
                         ids=["n32", "n56", "m64-n32"])
def test_per_tensor_fp8_gemm_with_narrow_tiles(hopper_interpreter, fields):
    """Tiles narrower than a 128-byte row of outputs, or no multiple of one, store through narrower boxes."""
    M, N, K = 136, 200, 256
    a, b, a8, b8 = operands(M, N, K)
    out = np.full((M, N), np.nan, np.float32)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="bf16", stages=3, **fields)
    assert config.epilogue_columns == fields["tile_n"]   # (one chunk: 56 columns are seven 16-byte pieces)
    result = skc.blocks.matmul(a8, b8, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                               config=config)
    np.testing.assert_array_equal(result.astype(np.float32), (2.0 * (a @ b)).astype(ml_dtypes.bfloat16)
                                  .astype(np.float32))


@pytest.mark.parametrize("M, N, K, fields", [
    (40, 328, 640, {"tile_n": 64, "tile_k": 256, "cluster_n": 2}),   # 6 tiles: a cluster's last tile past N
    (64, 200, 1024, {"tile_n": 48, "tile_k": 512, "cluster_n": 4}),  # 5 tiles of 48 in clusters of 4
    (136, 200, 512, {"tile_n": 64, "tile_k": 256, "cluster_n": 2})], ids=["m40-n2", "m64-n48-c4", "m136-n2"])
def test_per_tensor_fp8_gemm_in_clusters_along_n_is_exact(hopper_interpreter, M, N, K, fields):
    """Each block of a cluster along N loads its share of A's rows and multicasts it to the others."""
    a, b, a8, b8 = operands(M, N, K)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, stages=2, **fields)
    assert config.cluster == fields["cluster_n"]
    result = skc.blocks.matmul(a8, b8, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                               config=config)
    np.testing.assert_array_equal(result.astype(np.float32), (2.0 * (a @ b)).astype(ml_dtypes.bfloat16)
                                  .astype(np.float32))


def test_one_row_of_per_tensor_tiles_on_few_sms_goes_48_wide_and_256_deep(hopper_interpreter):
    """Where 64-wide tiles would leave over half the SMs idle and 48-wide ones fit in a wave (per tensor, M <= 64);
    elsewhere the 64-wide tiles as before. The chosen configuration is exact, with a_rows and a K of 2.5 stages."""
    pick = Fp8MatmulConfig.for_fp8_problem
    assert (pick(64, 4096, 7168).tile_n, pick(64, 4096, 7168).tile_k) == (48, 256)
    assert (pick(64, 7168, 8192).tile_n, pick(64, 7168, 8192).tile_k) == (64, 128)      # 112 tiles of 64 already
    assert (pick(64, 64, 7168).tile_n, pick(64, 4096, 128).tile_n) == (64, 64)          # one tile; one k-step
    assert pick(64, 4096, 7168, stages=8).tile_n == 64      # the caller's stages: a 64-wide tile's (8 of 28 KB overflow)
    assert pick(64, 4096, 7168, cluster_n=4).tile_k == 128  # a cluster along N: a share of A's rows for each block
    assert pick(40, 4096, 7168, cluster_n=4).a_rows == 64   # (40 rows loaded as 64: 16 rows a block)
    assert pick(64, 4096, 7168, block_scaled=True).tile_n == 64                          # one scale block a stage
    assert (pick(64, 4096, 7168, tile_k=128).tile_n, pick(64, 4096, 7168, tile_n=64).tile_k) == (64, 128)
    M, N, K = 40, 200, 640
    config = pick(M, N, K, multiprocessors=16)
    assert (config.tile_n, config.tile_k, config.a_rows) == (48, 256, 40)
    a, b, a8, b8 = operands(M, N, K)
    result = skc.blocks.matmul(a8, b8, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                               config=config)
    np.testing.assert_array_equal(result.astype(np.float32), (2.0 * (a @ b)).astype(ml_dtypes.bfloat16)
                                  .astype(np.float32))


def test_per_tensor_fp8_gemm_with_consumers_taking_turns(hopper_interpreter):
    M, N, K = 200, 136, 256   # four 64-row tiles of two 128-wide ones: the two consumers take four each
    a, b, a8, b8 = operands(M, N, K)
    out = np.full((M, N), np.nan, np.float32)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="f32", tile_m=64, tile_n=128, consumers=2,
                                             pingpong=True, stages=3)
    skc.blocks.matmul(a8, b8, out, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                      out_dtype="float32", config=config)
    np.testing.assert_array_equal(out, 2.0 * (a @ b))


@pytest.mark.parametrize("split, out_dtype", [(2, "float32"), (3, "bfloat16")])
def test_per_tensor_fp8_gemm_split_k_is_exact(hopper_interpreter, split, out_dtype):
    """K in shares (fp8_matmul_split_kernel): the scales applied once to the whole sum, stored to a row-major out."""
    M, N, K = 40, 136, 640   # partial tiles, a short last share (5 k-steps in 3 shares of 2)
    a, b, a8, b8 = operands(M, N, K)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="f32" if out_dtype == "float32" else "bf16",
                                             split_k=split, stages=2)
    assert config.split_k == split and config.tile_m == 64
    out = skc.blocks.matmul(a8, b8, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                            out_dtype=out_dtype, config=config)
    expected = 2.0 * (a @ b)
    if out_dtype == "bfloat16":
        expected = expected.astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(out.astype(np.float32), expected.astype(np.float32))
    with pytest.raises(ValueError, match="split-K takes per-tensor scales"):
        Fp8MatmulConfig.for_fp8_problem(M, N, K, block_scaled=True, split_k=2)
    with pytest.raises(ValueError, match="the fp8 GEMM loads and stores with TMA .* store='direct'"):
        Fp8MatmulConfig(store="direct")


def test_rows_of_few_tiles_over_a_deep_k_split_in_shares(hopper_interpreter, monkeypatch):
    """Per tensor, 64 < M <= 320 (128 with fast_accum) on few 64 x 64 tiles over a deep K (fp8.rows_split): the most of
    4, 3 or 2 shares whose units fit one wave, 16 k-steps a share at least, each k-block into f32 two stages a step
    (whole in wgmma's accumulator with fast_accum); not with block scales or a tile the caller chose. The chosen
    configuration is exact in 3 shares (the last with a k-block of 16 past K's multiple of 128; the depth bound
    lowered), into bf16, with a bias and a ReLU."""
    from skc.blocks import fp8

    def chosen(*shape, **fields):
        config = Fp8MatmulConfig.for_fp8_problem(*shape, **fields)
        return config.tile_m, config.tile_n, config.split_k

    assert chosen(119, 592, 13056) == (64, 64, 4)   # 20 tiles: 80 units of 25 or 26 k-steps
    assert chosen(80, 2048, 7168) == (64, 64, 2)    # 64 tiles: 2 shares fill the wave
    assert chosen(128, 1280, 5120) == (64, 64, 2)   # 40 tiles of 40 k-steps: 3 shares would be 13 deep
    assert chosen(163, 816, 10496) == (64, 64, 3)   # 39 tiles (128 x 64 ones unsplit before)
    assert chosen(270, 336, 11904) == (64, 64, 4)   # 30 tiles
    assert chosen(128, 7168, 16384)[2] == chosen(100, 1024, 1024)[2] == chosen(64, 4096, 7168)[2] == 1
    assert chosen(119, 592, 13056, fast_accum=True) == (64, 64, 4)
    assert not Fp8MatmulConfig.for_fp8_problem(119, 592, 13056, fast_accum=True).overlap_scaling
    assert chosen(119, 592, 13056, block_scaled=True)[2] == chosen(119, 592, 13056, tile_n=128)[2] == 1
    assert chosen(163, 816, 10496, fast_accum=True)[2] == 1   # (past 128 rows measured without fast_accum only)
    assert fp8.rows_split(64, 592, 13056) == fp8.rows_split(321, 592, 13056) == 1
    assert fp8.rows_split(129, 592, 13056) == 4 and fp8.rows_split(129, 592, 13056, fast_accum=True) == 1
    monkeypatch.setattr(fp8, "ROWS_SPLIT_MIN_STEPS", 1)
    M, N, K = 100, 136, 656   # 6 tiles of 5 k-steps and a last one of 16 columns, on 20 SMs
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, multiprocessors=20)
    assert (config.tile_m, config.tile_n, config.split_k, config.overlap_scaling) == (64, 64, 3, True)
    a, b, a8, b8 = operands(M, N, K)
    bias = RNG.integers(-40, 41, N).astype(np.float32)
    out = skc.blocks.matmul(a8, b8, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                            bias=bias, activation="relu", config=config)
    expected = np.maximum(2.0 * (a @ b) + bias, 0.0)
    np.testing.assert_array_equal(out.astype(np.float32), expected.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert (expected == 0).mean() > 0.1 and (expected > 0).mean() > 0.1   # (the ReLU took effect, and not everywhere)


def test_a_given_config_takes_the_calls_epilogue_and_must_match_the_operands(hopper_interpreter):
    M, N, K = 64, 128, 128
    a, b, a8, b8 = operands(M, N, K)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="f32", tile_n=64)  # no alpha in its epilogue
    out = skc.blocks.matmul(a8, b8, scale_a=np.array([2.0], np.float32), scale_b=np.array([0.5], np.float32),
                            out_dtype="float32", config=config)
    np.testing.assert_array_equal(out, a @ b)
    with pytest.raises(skc.LaunchError, match="disagrees with the operands on block_scaled: block_scaled=False"):
        skc.blocks.matmul(a8, b8, scale_a=np.array([2.0], np.float32), scale_b=np.array([0.5], np.float32),
                          config=Fp8MatmulConfig(block_scaled=True))


@pytest.mark.parametrize("use_fast_accum, op", [(None, PromotedWgmma), (False, PromotedWgmma), (True, Wgmma)])
def test_per_tensor_fp8_gemm_adds_each_k_block_in_f32_unless_fast_accum(hopper_interpreter, use_fast_accum, op):
    """torch._scaled_mm's default: each k-block's product added into f32 registers (fp8 wgmma's own accumulator
    keeps fewer bits); use_fast_accum=True runs the whole K through wgmma's accumulator. Both exact here."""
    from skc.blocks import fp8_host

    M, N, K = 136, 200, 384   # tails in M and N, three k-blocks
    a, b, a8, b8 = operands(M, N, K)
    fp8_host._PLANS.clear()
    out = skc.blocks.matmul(a8, b8, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                            out_dtype="float32", use_fast_accum=use_fast_accum)
    np.testing.assert_array_equal(out, 2.0 * (a @ b))
    (plan,) = fp8_host._PLANS.values()
    # (the promoted tile ops: one k-block a step, or two (the one row of 192 x 64 tiles this problem takes here))
    promoted = (PromotedWgmma, OverlappedPromotedWgmma)
    assert (plan.cfg.tile_op() in promoted if op is PromotedWgmma else plan.cfg.tile_op() is op)
    assert plan.cfg.fast_accum == bool(use_fast_accum)


def test_use_fast_accum_is_checked(hopper_interpreter):
    M, N, K = 64, 128, 256
    _, _, a8, b8 = operands(M, N, K)
    one = np.ones(1, np.float32)
    sa, sb = block_scales(M, N, K)
    with pytest.raises(skc.LaunchError, match="block-wise scales multiply each k-block's product in f32"):
        skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb, use_fast_accum=True)
    with pytest.raises(skc.LaunchError, match="use_fast_accum is True, False or None, found 'yes'"):
        skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, use_fast_accum="yes")
    with pytest.raises(skc.LaunchError, match=r"use_fast_accum is True, False or None, found array\(True\)"):
        skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, use_fast_accum=np.array(True))   # (not a key)
    with pytest.raises(skc.LaunchError, match="disagrees with the operands on fast_accum: fast_accum=False"):
        skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, use_fast_accum=False,
                          config=Fp8MatmulConfig(tile_n=64, fast_accum=True))
    # a config without use_fast_accum keeps its own
    out = skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, out_dtype="float32",
                            config=Fp8MatmulConfig(tile_m=64, consumers=1, tile_n=64, fast_accum=True, out_dtype="f32"))
    assert out.shape == (M, N)
    with pytest.raises(skc.LaunchError, match="the fp8 GEMM's, which needs scale_a and scale_b too"):
        skc.blocks.matmul(np.ones((64, 64), np.float16), np.ones((64, 64), np.float16), use_fast_accum=True)


def test_per_tensor_fp8_gemm_fused_bias_relu_to_f16(hopper_interpreter):
    M, N, K = 72, 128, 128
    a, b, a8, b8 = operands(M, N, K)
    bias = RNG.integers(-8, 9, N).astype(np.float16)
    out = skc.blocks.matmul(a8, b8, scale_a=np.array([0.25], np.float32), scale_b=np.array([2.0], np.float32),
                            out_dtype=np.float16, bias=bias, activation="relu")
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out.astype(np.float32), np.maximum(0.5 * (a @ b) + bias, 0.0))


@pytest.mark.parametrize("shape, tile_n", [((136, 512, 384), 256), ((72, 1000, 256), 256), ((128, 600, 256), 192),
                                          ((64, 320, 128), 160)],
                         ids=["n256", "n256-tail", "n192", "n160"])
@pytest.mark.parametrize("turns", [False, True], ids=["serial", "stage-turns"])
def test_block_scaled_fp8_gemm_in_column_halves_is_exact(hopper_interpreter, shape, tile_n, turns):
    """half_partials: a k-block's partial in two column halves (a 256-wide tile in a consumer's registers), the
    halves' scales those of their own columns (a 160-wide tile's halves start inside a scale block)."""
    M, N, K = shape
    a, b, a8, b8 = operands(M, N, K)
    sa, sb = block_scales(M, N, K)
    out = np.full((M, N), np.nan, np.float32)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, block_scaled=True, out_dtype="f32", tile_n=tile_n,
                                             half_partials=True, stages=2, stage_turns=turns, consumers=2,
                                             tile_m=128, producer_registers=24, consumer_registers=240)
    skc.blocks.matmul(a8, b8, out, scale_a=sa, scale_b=sb, out_dtype="float32", config=config)
    expected = block_reference(a, b, sa, sb)
    assert np.abs(expected).max() > 100  # the scales matter
    np.testing.assert_array_equal(out, expected)


def test_half_partials_are_checked():
    # the tile's column scales stay live across both halves: 240 wide (15 scale classes) spilled hundreds of bytes
    with pytest.raises(ValueError, match="a block-scaled 240-wide tile needs about 264 registers"):
        Fp8MatmulConfig(block_scaled=True, half_partials=True, tile_n=240, consumer_registers=240,
                        producer_registers=24)
    with pytest.raises(ValueError, match="half_partials multiplies a k-block in two column halves"):
        Fp8MatmulConfig(half_partials=True, fast_accum=True)
    with pytest.raises(ValueError, match="overlap_scaling and half_partials add 128-deep k-blocks: they need tile_k"):
        Fp8MatmulConfig(overlap_scaling=True, tile_k=256, tile_n=64)
    with pytest.raises(ValueError, match="block scales are applied to each k-block's partial in f32"):
        Fp8MatmulConfig(block_scaled=True, fast_accum=True)
    # without scales a 256-wide partial in halves holds 128 + 64 values: no scales to keep live
    with pytest.raises(ValueError, match=r"a per-tensor \(fast_accum=False\) 256-wide tile needs about 216"):
        Fp8MatmulConfig(half_partials=True, tile_n=256, consumer_registers=200)
    with pytest.raises(ValueError, match="half_partials"):
        Fp8MatmulConfig(block_scaled=True, half_partials=True, overlap_scaling=True)
    # the running sum (128) and half a partial (64), two scales a row of 2 column blocks (counted twice: live
    # across both halves), 24 of addresses and state
    with pytest.raises(ValueError, match="a block-scaled 256-wide tile needs about 224 registers"):
        Fp8MatmulConfig(block_scaled=True, half_partials=True, tile_n=256, consumer_registers=200)


@pytest.mark.parametrize("overlap", [False, True, "pingpong", "three", "turns", "three-turns"],
                         ids=["serial", "overlapped", "pingpong", "three-consumers", "stage-turns", "three-turns"])
@pytest.mark.parametrize("shape", [(136, 256, 384), (64, 136, 256), (128, 640, 128), (128, 256, 512),
                                   (72, 1000, 256), (72, 1064, 256), (72, 1064, 384)],
                         ids=["m-tail", "n-tail", "wide", "n256", "n192", "n56", "n160"])
def test_block_scaled_fp8_gemm_is_exact_in_the_interpreter(hopper_interpreter, shape, overlap):
    M, N, K = shape
    a, b, a8, b8 = operands(M, N, K)
    sa, sb = block_scales(M, N, K)
    out = np.full((M, N), np.nan, np.float32)
    # 256 wide: two fragments of 128 registers, which a consumer cannot hold (refused; see below): 128 here
    fields = {"tile_n": 128, "stages": 2} if N == 256 and K == 512 else {}
    if N == 1000:  # 192-wide tiles start 0 or 64 columns into a scale block, and cross B's scale boxes of 4
        fields = {"tile_n": 192, "stages": 2}
    if N == 1064:  # 56-wide tiles start anywhere on 8-column steps in a scale block; 160-wide ones on 32
        fields = {"tile_n": 56 if K == 256 else 160, "stages": 2}
    if overlap is True and fields.get("tile_n", 0) > 128:   # a third fragment: 128 wide at most
        fields["tile_n"] = 56 if fields["tile_n"] == 56 else 128
    if overlap == "pingpong":  # the consumers take 64-row tiles in turn
        fields.update(tile_m=64, consumers=2, pingpong=True, stages=2)
    if overlap in ("three", "three-turns"):     # three consumer warpgroups on 192-row tiles
        fields.update(tile_m=192, consumers=3, stages=2, tile_n=128)
    if overlap in ("turns", "three-turns"):     # the consumers take turns issuing each stage's MMAs
        fields.update(stage_turns=True)
        fields.setdefault("consumers", 2)
        fields.setdefault("tile_m", 128)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, block_scaled=True, out_dtype="f32",
                                             overlap_scaling=overlap is True, **fields)
    skc.blocks.matmul(a8, b8, out, scale_a=sa, scale_b=sb, out_dtype="float32", config=config)
    expected = block_reference(a, b, sa, sb)
    assert np.abs(expected).max() > 100  # the scales matter
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape, fields", [
    ((200, 392, 384), {}),                                                  # per tensor, 128 x 128
    ((328, 600, 384), {"block_scaled": True, "tile_n": 192, "stages": 2}),  # B's 96-row shares, scale blocks crossed
    ((136, 520, 256), {"block_scaled": True, "tile_n": 256, "half_partials": True, "stage_turns": True,
                       "stages": 2}),
    ((200, 136, 256), {"block_scaled": True, "tile_n": 48, "stages": 3}),  # 24-row shares
    ((128, 128, 128), {"block_scaled": True, "tile_n": 128, "stages": 6, "epilogue_buffers": 1}),   # one tile
    ((264, 264, 128), {}),    # nine tiles in clusters of two
], ids=["per-tensor", "block-n192", "block-n256-halves", "block-n48", "one-tile", "odd-tiles"])
def test_fp8_gemm_in_clusters_along_m_is_exact(hopper_interpreter, shape, fields):
    """Clusters of 2 along M share B's tile: each block loads half of its rows (K-major) and multicasts them, the
    block scales loaded by each block for itself; a cluster's second tile may lie past M."""
    M, N, K = shape
    a, b, a8, b8 = operands(M, N, K)
    out = np.full((M, N), np.nan, np.float32)
    regs = {"producer_registers": 24, "consumer_registers": 240} if fields.get("tile_n", 0) > 128 else {}
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="f32", cluster_m=2, **regs, **fields)
    assert config.cluster_m == 2 and config.payload().layouts["b"].box()[0] == config.tile_n // 2
    if fields.get("block_scaled"):
        sa, sb = block_scales(M, N, K)
        expected = block_reference(a, b, sa, sb)
    else:
        sa, sb = np.float32(0.5), np.float32(2.0)
        expected = a @ b
    skc.blocks.matmul(a8, b8, out, scale_a=sa, scale_b=sb, out_dtype="float32", config=config)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape, fields", [
    ((128 * 3, 128 * 3, 384), {"block_scaled": True, "tile_n": 128, "stages": 2}),   # 9 tiles: a whole one a block
    ((136, 800, 384), {"block_scaled": True, "tile_n": 192, "stages": 2}),           # tails; scale blocks crossed
    ((136, 520, 256), {"block_scaled": True, "tile_n": 256, "half_partials": True, "stages": 2}),   # all shared
    ((200, 520, 384), {"tile_n": 128, "stages": 2}),                                  # per tensor
], ids=["block-n128", "block-n192-tails", "block-n256-halves", "per-tensor"])
@pytest.mark.parametrize("how", ["stream_k", "split_tail"])
def test_fp8_gemm_with_stream_k_is_exact(hopper_interpreter, shape, fields, how):
    """Stream-K (the interpreter models 4 SMs): the last waves' k-steps shared between the blocks, a tile split
    between two completed by its second part from the first's record; or the last wave's tiles split along K, the
    last share adding the others' records. Block-scaled, a record is the scaled f32 sum of its part's k-blocks."""
    M, N, K = shape
    a, b, a8, b8 = operands(M, N, K)
    out = np.full((M, N), np.nan, np.float32)
    regs = {"producer_registers": 24, "consumer_registers": 240} if fields.get("tile_n", 0) > 128 else {}
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="f32", **{how: True}, **regs, **fields)
    tiles = -(-M // config.tile_m) * -(-N // config.tile_n)
    assert config.shares_tiles and tiles % 4 and tiles > 4   # the last wave part-full: tiles are split
    if fields.get("block_scaled"):
        sa, sb = block_scales(M, N, K)
        expected = block_reference(a, b, sa, sb)
        assert np.abs(expected).max() > 100  # the scales matter
    else:
        sa, sb = np.float32(0.5), np.float32(2.0)
        expected = a @ b
    for _ in range(2):   # the second launch finds the counters zero again, the workspace as the first left it
        out[:] = np.nan
        skc.blocks.matmul(a8, b8, out, scale_a=sa, scale_b=sb, out_dtype="float32", config=config)
        np.testing.assert_array_equal(out, expected)


def test_a_k_major_b_in_clusters_shares_whole_8_row_groups():
    with pytest.raises(ValueError, match="in whole 8-row groups: use a tile_n that is a multiple of 16"):
        Fp8MatmulConfig(cluster_m=2, tile_n=56)
    assert Fp8MatmulConfig(cluster_m=2, tile_n=48).payload().layouts["b"].box() == (24, 128)


def test_block_scaled_reads_k_block_major_scales_in_place(hopper_interpreter):
    """torch._scaled_mm's 'outer-dim-major' scale_a (strides (1, M)) gives the same result as a row-major one."""
    M, N, K = 128, 128, 256
    a, b, a8, b8 = operands(M, N, K)
    sa, sb = block_scales(M, N, K)
    column_major = np.asfortranarray(sa)
    out = skc.blocks.matmul(a8, b8, scale_a=column_major, scale_b=sb, out_dtype="float32")
    np.testing.assert_array_equal(out, block_reference(a, b, sa, sb))


# -- errors -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda a, b, sa, sb: (a, np.ascontiguousarray(b), sa, sb), "b is row-major K x N; pass b as the transpose"),
    (lambda a, b, sa, sb: (np.asfortranarray(a), b, sa, sb), "a is a transposed (column-major) view"),
    (lambda a, b, sa, sb: (a, b, sa[:, :1], sb), "neither one value each (per-tensor), row-wise"),
    (lambda a, b, sa, sb: (a, b, sa.astype(np.float64), sb), "scale_a is float64; scales are float32"),
    (lambda a, b, sa, sb: (a.astype(np.float32), b, sa, sb), "it multiplies float8_e4m3fn or float8_e5m2"),
    # (views of longer rows: TMA's own refusal named neither the operand nor its fix)
    (lambda a, b, sa, sb: (np.pad(a, ((0, 0), (0, 3)))[:, :256], b, sa, sb),
     "scaled matmul: a's rows of K are 259 elements apart in memory (a view of longer rows)"),
    (lambda a, b, sa, sb: (a, np.pad(b.T, ((0, 0), (0, 5)))[:, :256].T, sa, sb),
     "scaled matmul: b's rows of K are 261 elements apart in memory (a view of longer rows), which TMA cannot "
     "address (a multiple of 16 bytes): pass b.t().contiguous().t()"),
], ids=["b-row-major", "a-transposed", "scale-shape", "scale-type", "not-fp8", "a-rows-apart", "b-rows-apart"])
def test_scaled_matmul_refuses_by_name(hopper_interpreter, change, message):
    _, _, a8, b8 = operands(128, 128, 256)
    sa, sb = block_scales(128, 128, 256)
    a8, b8, sa, sb = change(a8, b8, sa, sb)
    with pytest.raises(skc.LaunchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb)


def test_scales_must_be_tensors(hopper_interpreter):
    _, _, a8, b8 = operands(128, 128, 128)
    with pytest.raises(skc.LaunchError, match="scale_a is a float; pass a float32 tensor"):
        skc.blocks.matmul(a8, b8, scale_a=0.5, scale_b=np.ones(1, np.float32))
    assert skc.blocks.Fp8MatmulConfig is Fp8MatmulConfig


def test_an_out_of_a_type_it_cannot_write_is_named(hopper_interpreter):
    """out's own dtype where out_dtype is not given (the message read "not None")."""
    _, _, a8, b8 = operands(64, 64, 64)
    one = np.ones(1, np.float32)
    with pytest.raises(skc.LaunchError, match="writes bfloat16, float16 or float32, not int32"):
        skc.blocks.matmul(a8, b8, np.zeros((64, 64), np.int32), scale_a=one, scale_b=one)


def test_skc_arrays_of_fp8_and_f32_are_operands_and_scales(hopper_interpreter):
    """skc's own arrays name their types f8e4m3 and f32: a and per-tensor scales of them multiply (they were refused
    as "a is f8e4m3; it multiplies float8_e4m3fn" and "scale_a is f32; scales are float32"); block scales, which have
    no transposed view as skc arrays, are refused by name (they were an AttributeError)."""
    a, b, a8, b8 = operands(64, 64, 128)
    on_device = skc.to_device(a8.view(np.uint8), "f8e4m3")
    half, four = skc.to_device(np.array([0.5], np.float32)), skc.to_device(np.array([4.0], np.float32))
    out = skc.blocks.matmul(on_device, b8, scale_a=half, scale_b=four, out_dtype="float32")
    np.testing.assert_array_equal(np.asarray(out), 2.0 * (a @ b))
    with pytest.raises(skc.LaunchError, match="block-wise scale_a is a DeviceArray, which has no transposed view"):
        skc.blocks.matmul(on_device, b8, scale_a=skc.to_device(np.ones((64, 1), np.float32)),
                          scale_b=skc.to_device(np.ones((1, 1), np.float32)))


def test_autotune_is_refused_by_the_fp8_gemm(hopper_interpreter):
    """autotune=True was dropped (the call ran on the problem's own tiles, untuned, and any value passed); False is
    what the fp8 GEMM does."""
    _, _, a8, b8 = operands(64, 64, 64)
    one = np.ones(1, np.float32)
    for autotune in (True, "yes"):
        with pytest.raises(skc.LaunchError, match="scaled matmul does not autotune"):
            skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, autotune=autotune)
    assert skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, autotune=False).shape == (64, 64)


def test_out_dtype_without_scales_names_the_fp8_gemm(hopper_interpreter):
    """out_dtype with no scales, as a bf16 GEMM's caller may pass it (use_fast_accum: test_use_fast_accum_is_checked):
    the message was "scaled matmul needs both scale_a and scale_b", which told a bf16 caller to pass scales."""
    a = np.ones((64, 64), ml_dtypes.bfloat16)
    with pytest.raises(skc.LaunchError, match="out_dtype and use_fast_accum are the fp8 GEMM's, which needs scale_a "
                                              "and scale_b too .* a bf16 or fp16 GEMM takes neither"):
        skc.blocks.matmul(a, a, out_dtype="float32")


def test_block_scales_of_another_framework_in_the_same_memory(hopper_interpreter):
    """numpy operands with torch block scales (and torch operands with numpy ones), all host memory: they multiply,
    as per-tensor ones do. A check of the scales' `.device` against a's compared torch's device('cpu') with numpy's
    'cpu' (unequal) and refused them as "scale_a is on cpu, the operands on cpu"; where the memory is elsewhere
    check_has_data refuses it (test_fp8_block_scales_on_another_device_are_refused)."""
    torch = pytest.importorskip("torch")
    M, N, K = 64, 64, 256
    a, b, a8, b8 = operands(M, N, K)
    sa, sb = block_scales(M, N, K)
    out = skc.blocks.matmul(a8, b8, scale_a=torch.from_numpy(sa), scale_b=torch.from_numpy(sb), out_dtype="float32")
    np.testing.assert_array_equal(np.asarray(out), block_reference(a, b, sa, sb))
    a_t = torch.from_numpy(a8.view(np.uint8)).view(torch.float8_e4m3fn)
    b_t = torch.from_numpy(np.ascontiguousarray(b8.T).view(np.uint8)).view(torch.float8_e4m3fn).T
    out = skc.blocks.matmul(a_t, b_t, scale_a=sa, scale_b=torch.from_numpy(sb), out_dtype=torch.float32)
    np.testing.assert_array_equal(out.numpy(), block_reference(a, b, sa, sb))


def test_fp8_operands_without_scales_name_the_scales(hopper_interpreter):
    """(was "matmul multiplies bf16 or fp16 operands; a is float8_e4m3fn", which read as if fp8 were unsupported)"""
    _, _, a8, b8 = operands(64, 64, 64)
    with pytest.raises(skc.LaunchError, match="matmul: a is float8_e4m3fn; fp8 operands multiply with scale_a and "
                                              "scale_b"):
        skc.blocks.matmul(a8, b8)
    with pytest.raises(skc.LaunchError, match="matmul: b is float8_e5m2; fp8 operands multiply with scale_a"):
        skc.blocks.matmul(np.ones((64, 64), ml_dtypes.bfloat16), b8.astype(E5M2))


def test_a_bias_of_another_shape_is_refused(hopper_interpreter):
    _, _, a8, b8 = operands(128, 128, 128)
    one = np.ones(1, np.float32)
    with pytest.raises(skc.LaunchError, match=r"bias has shape \(64,\), expected \(128,\)"):   # read past its end
        skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, bias=np.ones(64, np.float32))


def test_block_scales_need_whole_k_blocks(hopper_interpreter):
    _, _, a8, b8 = operands(128, 128, 144)
    sa, sb = np.ones((128, 2), np.float32), np.ones((2, 1), np.float32)
    with pytest.raises(skc.LaunchError, match="K must be a multiple of 128, found 144"):
        skc.blocks.matmul(a8, b8, scale_a=sa, scale_b=sb)


def test_fp8_config_checks():
    with pytest.raises(ValueError, match="K-major operands only"):
        Fp8MatmulConfig(b_k_major=False)
    with pytest.raises(ValueError, match="tile_k must fill 128-byte rows: a multiple of 128"):
        Fp8MatmulConfig(tile_k=64)
    with pytest.raises(ValueError, match="block scales need tile_k = 128"):
        Fp8MatmulConfig(block_scaled=True, tile_k=256)
    with pytest.raises(ValueError, match="not f8e4m3"):
        MatmulConfig(dtype="f8e4m3")  # the bf16 configuration stays bf16/fp16
    with pytest.raises(ValueError, match="stage_turns: two or more consumer warpgroups"):
        Fp8MatmulConfig(block_scaled=True, tile_m=64, consumers=1, stage_turns=True)
    with pytest.raises(ValueError, match="pingpong consumers take turns over whole tiles already"):
        MatmulConfig(tile_m=64, pingpong=True, stage_turns=True)


def test_payload_places_scales_after_the_operands_and_keeps_stages_aligned():
    payload = Fp8MatmulConfig(block_scaled=True, tile_n=128).payload()
    offsets = payload.offsets()
    assert offsets == {"a": 0, "b": 128 * 128, "sa": 2 * 128 * 128, "sb": 2 * 128 * 128 + 512}
    assert payload.stage_bytes == 2 * 128 * 128 + 1024
    assert ScaleLayout(4, "b", per=128).box() == (1, 4)


# -- through the compiler ---------------------------------------------------------------------------------------
@needs_assembler
@pytest.mark.parametrize("shape, fields", [
    ((64, 4096, 7168), {"tile_n": 64, "split_k": 2}), ((64, 4096, 7168), {"tile_n": 128, "split_k": 4}),
    ((18, 512, 13568), {}), ((18, 512, 13568), {"fast_accum": True}), ((7, 1456, 6272), {}),   # the rule's splits
    ((119, 592, 13056), {}), ((80, 2048, 7168), {}), ((119, 592, 13056), {"fast_accum": True}),   # rows_split
    ((163, 816, 10496), {}),
], ids=["n64-k2", "n128-k4", "rule-k8", "rule-k8-fast", "rule-k3", "rows-k4", "rows-k2", "rows-k4-fast", "rows-k3"])
def test_fp8_split_k_assembles_without_spills(shape, fields):
    from skc.blocks.fp8 import fp8_matmul_split_kernel

    cfg = Fp8MatmulConfig.for_fp8_problem(*shape, out_dtype="bf16", **fields)
    assert cfg.split_k > 1
    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(cfg.dtype), boxes[name], 128)) for name in ("a", "b")]
    compiled = fp8_matmul_split_kernel.compile(*maps, skc.Ptr[skc.bf16], skc.Ptr[skc.f32], skc.Ptr[skc.i32], skc.i32,
                                               skc.i32, skc.i32, skc.Ptr[skc.bf16], skc.Ptr[skc.f32], skc.Ptr[skc.f32],
                                               cfg, target="sm_90a", block=cfg.threads)
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0, resources
    ptx = compiled.asm("ptx")
    assert f"wgmma.mma_async.sync.aligned.m64n{cfg.tile_n}k32.f32.e4m3.e4m3" in ptx and "st.global.v4.b32" in ptx


def compile_fp8(cfg: Fp8MatmulConfig):
    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(t), boxes[name], 128))
            for name, t in (("a", cfg.dtype), ("b", cfg.dtype_b or cfg.dtype), ("out", cfg.out_dtype))]
    if cfg.block_scaled:
        scales = [SimpleNamespace(spec=ir.TensorMapType(ir.f32, boxes[name], 0)) for name in ("sa", "sb")]
    else:
        scales = [skc.Ptr[skc.f32], skc.Ptr[skc.f32]]
    return fp8_matmul_kernel.compile(*maps, skc.i32, skc.i32, skc.i32, skc.Ptr[getattr(skc, cfg.out_dtype)],
                                     *scales, cfg, target="sm_90a", block=cfg.threads)


@needs_assembler
@pytest.mark.parametrize("cfg", [Fp8MatmulConfig(tile_n=256, stages=4, fast_accum=True),
                                 Fp8MatmulConfig(tile_n=128, stages=5, block_scaled=True),
                                 Fp8MatmulConfig(tile_n=128, stages=5, block_scaled=True, overlap_scaling=True),
                                 Fp8MatmulConfig(tile_n=256, stages=4, out_dtype="f32", dtype_b="f8e5m2",
                                                 fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(8192, 8192, 8192, block_scaled=True),
                                 Fp8MatmulConfig(tile_n=128, stages=5, block_scaled=True, stage_turns=True),
                                 Fp8MatmulConfig(tile_n=256, stages=3, block_scaled=True, half_partials=True,
                                                 producer_registers=24, consumer_registers=240),
                                 Fp8MatmulConfig.for_fp8_problem(4096, 4096, 4096, block_scaled=True),
                                 Fp8MatmulConfig.for_fp8_problem(4096, 4096, 4096, block_scaled=True, out_dtype="f32"),
                                 Fp8MatmulConfig.for_fp8_problem(64, 4096, 7168, tile_n=64, tile_k=256, cluster_n=2),
                                 Fp8MatmulConfig.for_fp8_problem(64, 4096, 7168),
                                 Fp8MatmulConfig.for_fp8_problem(64, 4096, 7168, out_dtype="f32"),
                                 Fp8MatmulConfig.for_fp8_problem(3072, 3072, 3072, fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(1536, 1536, 1536, fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(1900, 1640, 1024, fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(4096, 4096, 4096),
                                 Fp8MatmulConfig.for_fp8_problem(8192, 8192, 8192),
                                 Fp8MatmulConfig.for_fp8_problem(3072, 3072, 3072, out_dtype="f32"),
                                 Fp8MatmulConfig.for_fp8_problem(128, 7168, 16384),
                                 Fp8MatmulConfig.for_fp8_problem(256, 7168, 16384),
                                 Fp8MatmulConfig.for_fp8_problem(256, 7168, 16384, fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(160, 7168, 2048),
                                 Fp8MatmulConfig.for_fp8_problem(160, 7168, 2048, fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(160, 7168, 16384),
                                 Fp8MatmulConfig.for_fp8_problem(136, 7168, 16384),
                                 Fp8MatmulConfig.for_fp8_problem(212, 2096, 6016),
                                 Fp8MatmulConfig.for_fp8_problem(990, 2240, 6144),
                                 Fp8MatmulConfig.for_fp8_problem(774, 9376, 15872),
                                 Fp8MatmulConfig.for_fp8_problem(324, 9072, 4096),
                                 Fp8MatmulConfig.for_fp8_problem(336, 10496, 13952),
                                 Fp8MatmulConfig.for_fp8_problem(810, 4992, 4096, fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(1663, 4224, 7936, fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(300, 13088, 10496, fast_accum=True),
                                 Fp8MatmulConfig.for_fp8_problem(156, 10192, 12032),
                                 Fp8MatmulConfig.for_fp8_problem(131, 16880, 4096)],
                         ids=["per-tensor-n256", "block-n128", "block-n128-overlapped", "f32-out-e5m2", "block-n192",
                              "block-n128-turns", "block-n256-halves", "block-default", "block-default-f32",
                              "per-tensor-cluster-n2", "per-tensor-m64-n48", "per-tensor-m64-n48-f32",
                              "per-tensor-192x192", "per-tensor-128x192", "per-tensor-192x128",
                              "promoted-n256-halves", "promoted-n192", "promoted-n192-f32", "promoted-few-rows",
                              "promoted-one-wave-112", "per-tensor-one-wave-112", "promoted-one-row-192x64",
                              "per-tensor-one-row-192x64", "promoted-swapped-128x80", "promoted-swapped-128x72",
                              "promoted-64x64-rows", "promoted-fill-144", "promoted-fill-176",
                              "promoted-fill-208-halves", "promoted-fill-240-halves", "per-tensor-fill-144",
                              "per-tensor-fill-224", "per-tensor-fast-64x256", "promoted-swapped-column-160",
                              "promoted-swapped-column-144"])
def test_fp8_gemm_ptx_holds_e4m3_wgmma_and_assembles_without_spills(cfg):
    compiled = compile_fp8(cfg)
    ptx = compiled.asm("ptx")
    n = cfg.tile_n // 2 if cfg.half_partials else cfg.tile_n   # halves: two groups of m64n128 a stage
    form = f"wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.{'e5m2' if cfg.dtype_b else 'e4m3'}"
    # one 128-deep stage: four k32 instructions (overlapped: a step of two stages, and a lone last one)
    assert ptx.count(form) == (12 if cfg.overlap_scaling else 8 if cfg.half_partials else 4 * cfg.tile_k // 128)
    if cfg.cluster_n > 1:  # a share of A's rows multicast by each block, a box a chunk; B copied by each block alone
        assert ptx.count(".multicast::cluster") == cfg.tile_k // 128
        assert re.search(r"\.reqnctapercluster\s+2, 1, 1", ptx)
    resources = compiled.resources
    # 256 wide in halves holds 128 + 64 values in 240 registers: since its descriptors live in uniform registers,
    # ptxas keeps 16 of the epilogue's staging addresses in local memory (64 bytes, written once a block, read in
    # each tile's epilogue and one of them once a k-block); measured faster than before all the same
    # (benchmarks/NOTES.md, thirteenth session)
    limit = 64 if cfg.half_partials else 0
    assert resources["spill_stores"] <= limit and resources["spill_loads"] <= limit, resources
    if cfg.block_scaled:  # the scale tiles come by TMA into the same stage
        assert ptx.count("cp.async.bulk.tensor.2d.shared::cluster.global") == 4
    if cfg.promotes:   # the stage's MMAs finish before their partial is added into the f32 sum
        assert re.search(rf"wgmma.wait_group.sync.aligned\s+{int(cfg.overlap_scaling)};", ptx)
        # each of the fragment's tile_n / 2 values each 128 deep: an fma by its scales, or (per tensor) an add
        folds = re.findall(r"\bfma\.rn\.f32" if cfg.block_scaled else r"\badd\.(?:rn\.)?f32", ptx)
        assert len(folds) >= cfg.tile_n // 2 * cfg.tile_k // 128, len(folds)
    # stage turns: a turn (named barriers 8 and 9, of both consumers' 256 threads) around each stage's MMAs
    turns = re.findall(r"bar\.(sync|arrive)\s+(%r\d+|\d+), 256;", ptx)
    # first arrival, a stage's wait and pass (two of them in halves), the close
    assert len(turns) == ((6 if cfg.half_partials else 4) if cfg.stage_turns else 0), turns


@pytest.mark.parametrize("shape, tile", [((3072, 3072, 3072), (192, 192)), ((5120, 5120, 5120), (192, 192)),
                                         ((1536, 1536, 1536), (128, 192)), ((1900, 1640, 1024), (192, 128)),
                                         ((4096, 4096, 4096), (128, 256)), ((2048, 2048, 8192), (128, 256)),
                                         ((2048, 7168, 2048), (128, 256)), ((256, 4096, 4096), (128, 64)),
                                         ((128, 7168, 16384), (64, 128)), ((6144, 6144, 6144), (192, 192))])
def test_per_tensor_tiles_follow_the_wave_rule_where_it_takes_192(shape, tile):
    """Per-tensor fp8 takes the bf16 GEMM's wave rule (tile_rules.tile_shape) where it picks a tile 192 rows or 192
    wide (3072³: 256 tiles of 192 x 192 in two waves, not 288 of 128 x 256 in three), three consumer warpgroups for
    192 rows; elsewhere its own rule (128 x 256; 64-row and narrow tiles for few rows). That is with fast_accum;
    without it (the default) each consumer holds a partial beside its sum, in 64 rows."""
    cfg = Fp8MatmulConfig.for_fp8_problem(*shape, fast_accum=True)
    assert (cfg.tile_m, cfg.tile_n) == tile
    assert cfg.consumers == max(1, cfg.tile_m // 64)
    promoted = Fp8MatmulConfig.for_fp8_problem(*shape)
    assert promoted.consumer_rows == 64 and promoted.tile_n <= 256 and promoted.tile_op() is not Wgmma


@pytest.mark.parametrize("fields", [{"tile_n": 128}, {"stages": 2}, {"cluster_m": 2}, {"stream_k": True},
                                    {"split_k": 2}, {"producer_registers": 40}, {"stage_turns": True}],
                         ids=lambda fields: next(iter(fields)))
def test_the_fp8_wave_rule_leaves_the_callers_schedule_and_block_scales_alone(fields):
    """A caller that names any part of the schedule gets the tiles it measured with (128 rows, as before the rule);
    the operands' and the epilogue's fields leave the rule on."""
    assert Fp8MatmulConfig.for_fp8_problem(3072, 3072, 3072, fast_accum=True, **fields).tile_m == 128
    chosen = Fp8MatmulConfig.for_fp8_problem(3072, 3072, 3072, out_dtype="f32", dtype_b="f8e5m2", fast_accum=True,
                                             epilogue=EpilogueSpec(alpha=True, bias=True, activation="relu"))
    assert (chosen.tile_m, chosen.tile_n) == (192, 192)
    block = Fp8MatmulConfig.for_fp8_problem(3072, 3072, 3072, block_scaled=True)
    assert block.tile_m == 128 and block.consumer_rows == 64


def test_a_192_row_fp8_tile_over_fewer_rows_loads_only_those(hopper_interpreter, monkeypatch):
    """M between 129 and 191 on the wave rule's 192-row tile: A's box holds M rounded up to 8 rows (a_rows), the
    rest of the tile's shared memory is never read (poisoned here)."""
    from skc.runtime.interpreter import launch as interpreter_launch
    from skc.runtime.interpreter.memory import Segment

    monkeypatch.setattr(interpreter_launch, "shared_segment",
                        lambda nbytes: Segment("shared memory", 0, np.full(nbytes, 0xFF, np.uint8)))
    M, N, K = 150, 768, 256
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="f32", stages=2, tile_m=192, tile_n=192,
                                             consumers=3, fast_accum=True)
    picked = Fp8MatmulConfig.for_fp8_problem(M, 25344, 4096, fast_accum=True)   # the rule's pick: 150 rows, 132 SMs
    assert (picked.tile_m, picked.tile_n, picked.a_rows) == (192, 192, 152)
    assert config.a_rows == 152
    a, b, a8, b8 = operands(M, N, K)
    out = np.full((M, N), np.nan, np.float32)
    skc.blocks.matmul(a8, b8, out, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                      out_dtype="float32", config=config)
    np.testing.assert_array_equal(out, 2.0 * (a @ b))


@pytest.mark.parametrize("fields", [{"tile_m": 192, "tile_n": 192, "consumers": 3, "fast_accum": True},
                                    {"tile_n": 192, "fast_accum": True},
                                    {"tile_m": 192, "tile_n": 128, "consumers": 3, "fast_accum": True},
                                    {"tile_n": 192}, {"tile_m": 192, "tile_n": 128, "consumers": 3},
                                    {"tile_n": 256, "half_partials": True, "consumer_registers": 240,
                                     "producer_registers": 24},
                                    {"tile_n": 128, "overlap_scaling": True}, {"pingpong": True}, {"tile_n": 256},
                                    {"tile_m": 64, "consumers": 1, "tile_n": 112, "overlap_scaling": True},
                                    {"tile_n": 112, "overlap_scaling": True, "epilogue_buffers": 1},
                                    {"tile_n": 112, "epilogue_buffers": 1, "fast_accum": True},
                                    {"tile_n": 144}, {"tile_n": 176}, {"tile_n": 224},
                                    {"tile_m": 64, "consumers": 1, "tile_n": 256, "fast_accum": True}],
                         ids=["192x192", "128x192", "192x128", "promoted-128x192", "promoted-192x128",
                              "promoted-256-halves", "promoted-overlapped", "promoted-pingpong", "promoted-256",
                              "promoted-few-rows-112", "promoted-one-wave-112", "one-wave-112", "promoted-fill-144",
                              "promoted-fill-176", "promoted-fill-224-halves", "fast-64x256"])
def test_per_tensor_fp8_gemm_on_the_wave_rules_tiles_is_exact(hopper_interpreter, fields):
    M, N, K = 200, 392, 256   # tails in M and N: a second row and column of tiles mostly past the ends
    a, b, a8, b8 = operands(M, N, K)
    config = Fp8MatmulConfig.for_fp8_problem(M, N, K, out_dtype="f32", stages=2, **fields)
    out = np.full((M, N), np.nan, np.float32)
    skc.blocks.matmul(a8, b8, out, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                      out_dtype="float32", config=config)
    np.testing.assert_array_equal(out, 2.0 * (a @ b))


def test_block_scaled_tiles_are_as_wide_as_their_waves_allow():
    """BLOCK_SCALED_WIDTHS' model: 192- or 256-wide tiles where their last wave is full enough to keep their gain;
    256 wide with each k-block's partial in halves, the consumers not taking turns at the MMAs."""
    choose = lambda M, N, K: Fp8MatmulConfig.for_fp8_problem(M, N, K, block_scaled=True)
    wide, square = choose(8192, 8192, 8192), choose(4096, 4096, 4096)
    assert (wide.tile_n, wide.stages, wide.consumer_registers) == (192, 4, 240)   # 2752 tiles: 20.8 of 21 waves
    assert wide.payload().layouts["sb"].count == 8
    # 512 tiles of 256 fill 3.9 of 4 waves (704 of 192 a third of the last of six)
    assert (square.tile_n, square.half_partials, square.stage_turns, square.stages) == (256, True, False, 3)
    # 4096 tiles of 192 fill 31.03 of 32 waves, 3072 of 256 23.3 of 24: as full, and 192 is the faster tile
    assert choose(4096, 24576, 1536).tile_n == 192
    assert choose(4096, 7168, 16384).tile_n == 256 and choose(128, 7168, 16384).tile_n == 64
    assert square.shared_bytes() <= 232448
    assert Fp8MatmulConfig.for_fp8_problem(4096, 4096, 4096, block_scaled=True, half_partials=False).tile_n == 128
    # a width whose configuration the caller's other fields would break is passed over (found in review: stages=4
    # at 256 wide overflowed shared memory, the register fields were refused); f32 out stays 128 wide (its staging
    # spilled at 256)
    for fields in ({"stages": 4}, {"consumer_registers": 200}, {"producer_registers": 40}, {"out_dtype": "f32"}):
        config = Fp8MatmulConfig.for_fp8_problem(4096, 4096, 4096, block_scaled=True, **fields)
        assert config.tile_n == 128 and config.shared_bytes() <= 232448, fields
    assert choose(8192, 8192, 8192).shared_bytes() <= 232448
    # per-tensor, few rows: 64-row tiles, one consumer, 112 wide where that fills the one wave better (128 x 7168:
    # 128 tiles, not 112), else 128
    small = Fp8MatmulConfig.for_fp8_problem(128, 7168, 16384)
    assert (small.tile_m, small.tile_n, small.consumers, small.overlap_scaling) == (64, 112, 1, True)
    assert Fp8MatmulConfig.for_fp8_problem(128, 8192, 4096).tile_n == 128   # (128 tiles; 112 wide, 148: two waves)
    assert Fp8MatmulConfig.for_fp8_problem(128, 7168, 16384, fast_accum=True).tile_n == 128   # (measured so)
    # two rows of 128-row tiles, the last at least three quarters full, in one wave: 112 wide, a seventh stage
    # beside one epilogue buffer, two stages a step unless fast (256 x 7168: 128 tiles, not 112); not where the
    # last row is emptier (208), 112-wide tiles make two waves (256 x 8192), or the caller chose block scales or
    # a part of the schedule
    for M in (224, 232, 256):
        for fast in (False, True):
            one_wave = Fp8MatmulConfig.for_fp8_problem(M, 7168, 16384, fast_accum=fast)
            assert (one_wave.tile_m, one_wave.tile_n, one_wave.stages, one_wave.epilogue_buffers,
                    one_wave.overlap_scaling) == (128, 112, 7, 1, not fast), (M, fast)
    # (nor past two rows, unmeasured: 384 x 3584 and 512 x 3584 would make one wave; nor with less shared memory)
    assert Fp8MatmulConfig.for_fp8_problem(256, 7168, 16384, max_shared_bytes=200000).stages < 7
    for M, N, fields in ((208, 7168, {}), (256, 8192, {}), (256, 7168, {"block_scaled": True}),
                         (256, 7168, {"stages": 4}), (384, 3584, {}), (512, 3584, {})):
        assert Fp8MatmulConfig.for_fp8_problem(M, N, 16384, **fields).tile_n == 128, (M, N, fields)
    assert Fp8MatmulConfig.for_fp8_problem(256, 7168, 16384).tile_m == 128
    # the rules leave what a caller chose alone, and never fail on a shape
    assert Fp8MatmulConfig.for_fp8_problem(128, 7168, 16384, pingpong=True, fast_accum=True).consumers == 2
    # tiles that add each k-block into f32 take what a caller's pingpong or width needs (found in review: refused)
    for block in (False, True):
        pingpong = Fp8MatmulConfig.for_fp8_problem(128, 7168, 16384, pingpong=True, block_scaled=block)
        assert (pingpong.consumer_rows, pingpong.consumers) == (64, 2)
        wide = Fp8MatmulConfig.for_fp8_problem(4096, 4096, 4096, tile_n=256, block_scaled=block)
        assert wide.half_partials and wide.consumer_registers == 240
    assert Fp8MatmulConfig.for_fp8_problem(128, 64, 1024).tile_n == 64
    assert choose(64, 16384, 1024).tile_n == 128 and choose(64, 8448, 128).tile_m == 64
    assert Fp8MatmulConfig.for_fp8_problem(8192, 8192, 8192, block_scaled=True, overlap_scaling=True).tile_n == 128
    assert Fp8MatmulConfig.for_fp8_problem(4096, 4096, 4096, block_scaled=True, tile_m=192, consumers=3).tile_n == 128


def test_per_tensor_tiles_fill_few_waves_with_the_widths_between():
    """Per tensor, each k-block into f32, where 128 x 128 tiles make at most FEW_WAVES waves: the width of
    PROMOTED_FILL_WIDTHS whose rate times its waves' fill times its last column's share inside N is highest (two
    fragments a thread up to 192 wide, the partial in halves past it); PROMOTED_WIDTHS past FEW_WAVES, for block
    scales as before, and without halves (f32 out) at most 192 wide. With fast_accum, FAST_FILL_WIDTHS likewise."""
    from skc.blocks import fp8

    def tile(M, N, K=4096, **fields):
        config = Fp8MatmulConfig.for_fp8_problem(M, N, K, **fields)
        assert config.shared_bytes() <= 232448
        return config.tile_m, config.tile_n, config.half_partials, config.overlap_scaling

    # 990 x 2240: 128 wide makes 144 tiles (1.09 waves), 144 wide 128 (0.97 of one); 774 x 9376: 176 wide fills 3
    # waves to 0.98 (128 wide 3.92 of 4, at a lower rate)
    assert tile(990, 2240) == (128, 144, False, False)
    assert tile(774, 9376) == (128, 176, False, False)
    assert tile(1473, 5152) == (128, 160, False, False) and tile(1488, 6032) == (128, 192, False, False)
    assert tile(324, 9072) == (128, 208, True, False) and tile(1158, 2768) == (128, 224, True, False)
    assert tile(336, 10496) == (128, 240, True, False) and tile(547, 6480) == (128, 256, True, False)
    assert tile(2560, 1568) == (128, 128, False, True)   # (260 tiles of 128: 1.97 waves, the fullest)
    # where the widths between lose their last wave's gain to the columns past N they compute
    assert tile(1000, 1536) == (128, 128, False, True)
    # past FEW_WAVES (4096 x 4096: 7.8 waves of 128 x 128) the rates measured there
    assert tiles_of(4096, 4096, 128, 128) > fp8.FEW_WAVES * 132 and tile(4096, 4096) == (128, 128, False, True)
    assert tile(8192, 8192)[1] == 192
    # no halves for f32 out: the best width up to 192; block scales keep BLOCK_SCALED_WIDTHS (128, 192, 256)
    assert tile(1158, 2768, out_dtype="f32")[1] <= 192 and tile(336, 10496, out_dtype="f32")[1] <= 192
    for M, N in ((990, 2240), (774, 9376), (336, 10496)):
        assert tile(M, N, block_scaled=True)[1] in fp8.BLOCK_SCALED_WIDTHS
    # a caller's width stays theirs; with a schedule of theirs (stream-K, stages) the widths as before
    assert tile(990, 2240, tile_n=128)[1] == 128
    assert tile(990, 2240, stream_k=True)[1] == tile(990, 2240, stages=3)[1] == 192
    # fast_accum, where the bf16 wave rule takes no 192 tile: FAST_FILL_WIDTHS on few waves (128 x 256 before: 1144 x
    # 3680 made 135 tiles, two waves), 128 x 256 past them; the wave rule's 192 tiles stay
    fast = dict(fast_accum=True)
    assert tile(1144, 3680, 7040, **fast) == (128, 128, False, False)
    assert tile(1663, 4224, 7936, **fast)[:2] == (128, 224) and tile(810, 4992, **fast)[:2] == (128, 144)
    assert tile(607, 13232, 14464, **fast)[:2] == (128, 256) and tile(4096, 4096, **fast)[:2] == (128, 256)
    assert tile(3072, 3072, 3072, **fast)[:2] == (192, 192) and tile(2351, 2512, 2304, **fast)[:2] == (192, 128)
    assert tile(1144, 3680, 7040, stages=3, **fast)[:2] == (128, 256)


def test_fast_tiles_up_to_320_rows_weigh_64_x_256_by_the_rows_they_fill(monkeypatch):
    """fast_accum up to FAST_ROWS_64 rows: 64 x 256 tiles (one consumer) beside FAST_FILL_WIDTHS', each weighed by
    the share of its rows inside M too (thirty-sixth session: 300 x 13088 x 10496 0.97x cuBLASLt on 64 x 256 against
    0.77x on 128 x 160; 211 x 13456 x 12928 0.94x on 128 x 208 against 0.76x on 64 x 256)."""
    from skc.blocks import fp8

    def tile(M, N, K=4096, **fields):
        config = Fp8MatmulConfig.for_fp8_problem(M, N, K, fast_accum=True, **fields)
        assert config.shared_bytes() <= 232448
        return config.tile_m, config.tile_n, config.consumers

    assert tile(300, 13088) == (64, 256, 1)       # 5 rows of 64 (320) against 3 of 128 (384)
    assert tile(166, 9760) == tile(143, 10240) == (64, 256, 1)
    assert tile(211, 13456) == (128, 208, 2)      # 2 rows of 128 (256) fill a wave, 4 of 64 1.6 waves
    assert tile(258, 9280) == (128, 224, 2)
    assert tile(261, 3072, 13184) == (128, 128, 2)   # a tie of the model: FAST_RATE_64 < 1 keeps 128-row tiles
    assert tile(400, 13088)[0] == 128             # past FAST_ROWS_64 as before
    assert tile(300, 13088, tile_n=160)[:2] == (128, 160)   # a caller's width stays theirs
    assert Fp8MatmulConfig.for_fp8_problem(300, 13088, 10496).tile_m == 128   # each k-block into f32: as before
    monkeypatch.setattr(fp8, "FAST_ROWS_64", 0)
    assert tile(300, 13088) == (128, 160, 2)      # (the thirty-fifth session's pick)


def test_per_tensor_129_to_160_rows_over_wide_n_swap_into_one_column():
    """Each k-block into f32, 128 < M <= SWAPPED_COLUMN_ROWS over K >= 4096, where N's 128-row tiles fill more than
    half the SMs and at most all: out^T = b^T a^T on one column of 128 x M tiles (M rounded up to 16), 240 registers
    for the consumers (thirty-sixth session: 156 x 10192 x 12032 0.975x cuBLASLt against 0.749x)."""
    def config(M, N, K=12032, **fields):
        return Fp8MatmulConfig.for_fp8_problem(M, N, K, **fields)

    wide = config(156, 10192)
    assert (wide.swap_ab, wide.tile_m, wide.tile_n, wide.consumer_registers) == (True, 128, 160, 240)
    assert wide.shared_bytes() <= 232448
    assert config(147, 9296).tile_n == 160 and config(129, 16896).tile_n == 144
    assert config(160, 7168).tile_n == 80                        # two columns: SWAPPED as before
    assert config(156, 8448).tile_n == 80 and config(156, 8449).tile_n == 160   # (132 tiles of 64 rows; 67 of 128)
    assert not config(161, 10192).swap_ab                        # past SWAPPED_COLUMN_ROWS
    assert not config(156, 10192, 2048).swap_ab                  # a shallow K
    assert not config(156, 17024).swap_ab                        # 133 tiles: past one wave
    assert not config(156, 10192, fast_accum=True).swap_ab      # fast: 64 x 256 tiles
    assert not config(156, 10192, out_dtype="f32").swap_ab and not config(156, 10192, block_scaled=True).swap_ab


@pytest.mark.parametrize("fields, needed", [({"tile_n": 200, "consumer_registers": 240, "producer_registers": 24}, 274),
                                            ({"tile_n": 136, "overlap_scaling": True}, 296)])
def test_block_scaled_tiles_the_registers_cannot_hold_are_refused(fields, needed):
    """Two f32 fragments (three overlapped) and the column scales (two stages' overlapped) must fit a consumer's
    registers."""
    with pytest.raises(ValueError, match=f"needs about {needed} registers a consumer thread"):
        Fp8MatmulConfig(block_scaled=True, **fields)


@pytest.mark.parametrize("fields, message", [
    ({"block_scaled": False, "fast_accum": True}, "overlap_scaling adds the k-blocks' partials two stages at a time"),
    ({"block_scaled": True, "stages": 1}, "stages must be at least 2 for OverlappedBlockScaledWgmma")])
def test_overlapped_scaling_needs_block_scales_and_two_stages(fields, message):
    with pytest.raises(ValueError, match=message):
        Fp8MatmulConfig(overlap_scaling=True, **fields)


def test_block_scaled_is_the_same_composition_with_another_payload_and_tile_op():
    per_tensor, block = Fp8MatmulConfig(tile_n=128), Fp8MatmulConfig(tile_n=128, block_scaled=True)
    assert Fp8MatmulConfig(tile_n=128, fast_accum=True).tile_op() is Wgmma and block.tile_op() is BlockScaledWgmma
    assert Fp8MatmulConfig(block_scaled=True, overlap_scaling=True).tile_op() is OverlappedBlockScaledWgmma
    # per tensor without fast_accum: the same TileOps without scales (each k-block's partial added into f32)
    assert per_tensor.tile_op() is PromotedWgmma and issubclass(PromotedWgmma, BlockScaledWgmma)
    assert Fp8MatmulConfig(overlap_scaling=True).tile_op() is OverlappedPromotedWgmma
    assert set(per_tensor.payload().layouts) == {"a", "b"}
    assert set(block.payload().layouts) == {"a", "b", "sa", "sb"}
    assert BlockScaledWgmma.stages_in_flight == 0  # it finishes a stage's MMAs before scaling: release at once
    # two stages a step: the second stage's MMAs run while the first's partial is scaled, both retired at its end
    assert OverlappedBlockScaledWgmma.stages_in_flight == 0 and OverlappedBlockScaledWgmma.stages_per_step == 2


# -- wgmma without accumulator input (scale-d = 0): the block-scaled TileOp's fresh partial needs no zeroing ---------
@skc.kernel
def overwrite_wgmma(image: skc.Ptr[skc.u32], out: skc.Ptr[skc.f32], cfg: skc.constexpr):
    """acc (filled with 7) then acc = A B with accumulate=False on one stage of K-major fp8 tiles (A 64 x k, B n x k)
    laid out by the host: out is A B alone in the fragment layout. cfg: (n, k)."""
    n, k = cfg
    a_layout, b_layout = OperandLayout(64, k, 1), OperandLayout(n, k, 1)
    words = (a_layout.bytes + b_layout.bytes) // 4
    tid = skc.thread_id(0)
    smem = skc.shared(words, skc.u32, align=1024)
    for i in range(tid, words, 128):
        smem[i] = image[i]
    skc.hopper.fence_proxy_async()
    skc.barrier()
    base = skc.hopper.shared_address(smem)
    mma = Wgmma(n, k, skc.f8e4m3)
    acc = mma.zeros()
    acc.fragment = skc.full(n // 2, 7.0, skc.f32)
    mma(acc, SmemTile("a", base, a_layout), SmemTile("b", base + a_layout.bytes, b_layout), accumulate=False)
    acc.wait()
    for i in skc.static_range(n // 2):
        out[tid * (n // 2) + i] = acc.fragment[i]


def test_wgmma_without_accumulate_overwrites_the_fragment():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fp8_kernels import block_image, fragments

    n, k = 64, 128
    a, b = RNG.integers(-6, 7, (64, k)).astype(np.float32), RNG.integers(-6, 7, (k, n)).astype(np.float32)
    image = block_image(a.astype(E4M3).view(np.uint8), np.ascontiguousarray(b.T).astype(E4M3).view(np.uint8))
    out = np.full((128, n // 2), np.nan, np.float32)
    overwrite_wgmma.interpret[(1,), (128,)](image, out, cfg=(n, k))
    np.testing.assert_array_equal(out, fragments(a @ b))
    tile = overwrite_wgmma.compile(skc.Ptr[skc.u32], skc.Ptr[skc.f32], (n, k), target="sm_90a", block=128)
    assert tile.ir("tile").count("zero_acc") == 1  # the first of the four k32 steps
    ptx = tile.asm("ptx")
    assert ptx.count("wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3") == 4


@pytest.mark.skipif(ptx_tools.ptxas_path() is None, reason="ptxas is not installed")
@pytest.mark.parametrize("cfg", [Fp8MatmulConfig(tile_n=256, stages=4, fast_accum=True),
                                 Fp8MatmulConfig(tile_n=128, stages=5, block_scaled=True),
                                 Fp8MatmulConfig(tile_n=128, stages=5, block_scaled=True, overlap_scaling=True),
                                 Fp8MatmulConfig(tile_n=256, stages=3, block_scaled=True, half_partials=True,
                                                 producer_registers=24, consumer_registers=240),
                                 Fp8MatmulConfig.for_fp8_problem(4096, 4096, 4096),
                                 Fp8MatmulConfig.for_fp8_problem(8192, 8192, 8192)],
                         ids=["per-tensor-fast", "block", "block-overlapped", "block-halves", "promoted-halves",
                              "promoted-n192"])
def test_ptxas_keeps_the_wgmmas_asynchronous(cfg, tmp_path):
    """ptxas serializes wgmmas (warnings C7514, C7518) when it cannot prove their registers untouched while in
    flight. OverlappedBlockScaledWgmma reads its first partial while the second's MMAs run: within one step, which
    ptxas follows (a partial in flight from one step to the next it did not, 2026-11-30)."""
    import subprocess

    source = tmp_path / "fp8.ptx"
    source.write_text(compile_fp8(cfg).asm("ptx"))
    report = subprocess.run([ptx_tools.ptxas_path(), "-arch=sm_90a", "-v", str(source), "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, check=True)
    assert "serialized" not in report.stdout + report.stderr, report.stdout + report.stderr


@pytest.mark.parametrize("m, width", [(150, 160), (131, 144)])
def test_per_tensor_fp8_swapped_into_one_column_is_exact(hopper_interpreter, m, width):
    """SWAPPED_COLUMN_ROWS' configuration (one column of 128 x M tiles, 240 registers) at m x 392 x 256: the
    swapped problem's rows past N and columns past M, stored transposed."""
    n, k = 392, 256
    a, b, a8, b8 = operands(m, n, k)
    rule = Fp8MatmulConfig.for_fp8_problem(m, 10192, 12032)
    cfg = Fp8MatmulConfig.for_fp8_problem(n, m, k, multiprocessors=4, tile_m=128, consumers=2, tile_n=rule.tile_n,
                                          swap_ab=True, producer_registers=24, out_dtype="bf16", stages=2)
    assert (cfg.tile_n, cfg.consumer_registers) == (width, 240)
    out = np.full((m, n), np.nan, ml_dtypes.bfloat16)
    skc.blocks.matmul(a8, b8, out, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                      config=cfg)
    np.testing.assert_array_equal(out.astype(np.float32), (2.0 * (a @ b)).astype(ml_dtypes.bfloat16).astype(np.float32))


@pytest.mark.parametrize("m", [40, 150])
def test_per_tensor_fp8_with_swapped_operands(hopper_interpreter, m):
    """swap_ab (per tensor): out^T = b^T a^T on 128 x M/2 tiles, each k-block into f32, stored transposed into the
    row-major out with the bias and activation at out's places."""
    n, k = 256, 384
    a, b, a8, b8 = operands(m, n, k)
    bias = RNG.integers(-4, 5, n).astype(np.float32)
    cfg = Fp8MatmulConfig.for_fp8_problem(n, m, k, multiprocessors=4, tile_m=128, consumers=2,
                                          tile_n=-(-m // 16) * 8, swap_ab=True, out_dtype="bf16")
    out = np.full((m, n), np.nan, ml_dtypes.bfloat16)
    skc.blocks.matmul(a8, b8, out, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                      bias=bias.astype(ml_dtypes.bfloat16), activation="relu", config=cfg)
    np.testing.assert_array_equal(out.astype(np.float32),
                                  np.maximum(2.0 * (a @ b) + bias, 0.0).astype(ml_dtypes.bfloat16).astype(np.float32))


def test_per_tensor_fp8_swaps_a_and_b_by_itself_with_the_calls_epilogue(hopper_interpreter):
    """The rule's swapped configuration (136 x 256 x 4096: 128 x 72 tiles, two of them on the interpreter's 4 SMs)
    through matmul() with no config keeps the call's bias and activation."""
    from skc.blocks import fp8_host

    m, n, k = 136, 256, 4096
    a, b, a8, b8 = operands(m, n, k)
    bias = RNG.integers(-4, 5, n).astype(np.float32)
    fp8_host._PLANS.clear()
    out = skc.blocks.matmul(a8, b8, scale_a=np.array([0.5], np.float32), scale_b=np.array([4.0], np.float32),
                            bias=bias.astype(ml_dtypes.bfloat16), activation="relu", out_dtype="bfloat16")
    (plan,) = fp8_host._PLANS.values()
    assert plan.cfg.swap_ab and (plan.cfg.tile_m, plan.cfg.tile_n) == (128, 72)
    np.testing.assert_array_equal(out.astype(np.float32),
                                  np.maximum(2.0 * (a @ b) + bias, 0.0).astype(ml_dtypes.bfloat16).astype(np.float32))


def test_an_activation_is_checked_at_every_call_whatever_plans_exist(hopper_interpreter):
    """A str subclass equal to an activation's name is refused before and after a plan for the name exists (a plan's
    key cannot tell them apart, so the check runs at every call)."""
    M, N, K = 64, 64, 128
    _, _, a8, b8 = operands(M, N, K)
    one = np.ones(1, np.float32)
    refused = "activation is None, 'relu', 'gelu' or 'silu'"
    with pytest.raises(skc.LaunchError, match=refused):
        skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, activation=np.str_("relu"))
    assert skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, activation="relu").shape == (M, N)
    with pytest.raises(skc.LaunchError, match=refused):   # (the plan for "relu" has a key equal to this call's)
        skc.blocks.matmul(a8, b8, scale_a=one, scale_b=one, activation=np.str_("relu"))


def test_fp8_operands_off_16_bytes_are_copied_in_the_interpreter_as_on_a_gpu(hopper_interpreter, monkeypatch):
    """a one byte into its rows' buffer and out four bytes into its own: exact, through aligned copies (the GPU
    refused them unnamed, the interpreter read them in place), and nothing of out's buffer outside out written."""
    from skc.blocks import fp8_host

    copied, made = [], []
    through, copy = fp8_host._Plan.through_aligned_copies, fp8_host.aligned_copy
    monkeypatch.setattr(fp8_host._Plan, "through_aligned_copies",
                        staticmethod(lambda copies, *args: copied.append(copies) or through(copies, *args)))
    monkeypatch.setattr(fp8_host, "aligned_copy", lambda x: made.append(x.shape) or copy(x))
    M, N, K = 64, 128, 128
    a, b, _, b8 = operands(M, N, K + 16)
    a8 = a.astype(E4M3)[:, 1:K + 1]           # rows 144 bytes apart, the first one byte in
    b8 = b8[:K]
    buffer = np.full(M * N + 4, np.nan, np.float32)
    out = buffer[1:1 + M * N].reshape(M, N)
    one = np.array([1.0], np.float32)
    assert skc.blocks.matmul(a8, b8, out, scale_a=one, scale_b=one, out_dtype="float32") is out
    np.testing.assert_array_equal(out, a[:, 1:K + 1] @ b[:K])
    assert np.isnan(buffer[0]) and np.isnan(buffer[1 + M * N:]).all()
    assert copied == [(True, False, False, False, True)] and made == [(M, K), (M, N)]   # (a and out, not b)


def test_an_e5m2_b_is_copied_with_an_out_off_16_bytes(hopper_interpreter):
    """An out four bytes in sends the call through aligned copies, e5m2 b included: numpy's as_strided cannot
    rebuild ml_dtypes' float8_e5m2 from its array interface ('<f1', a TypeError before), so the copies are made of
    its bytes."""
    M, N, K = 16, 16, 32
    a, b, _, b8 = operands(M, N, K, dtype_b=E5M2)
    buffer = np.full(M * N + 1, np.nan, np.float32)
    out = buffer[1:].reshape(M, N)
    one = np.array([1.0], np.float32)
    assert skc.blocks.matmul(a.astype(E4M3), b8, out, scale_a=one, scale_b=one, out_dtype="float32") is out
    np.testing.assert_array_equal(out, a @ b)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("out_dtype, width", [("bfloat16", 65), ("bfloat16", 68), ("float32", 65)])
def test_an_out_of_rows_tma_cannot_store_to_is_named(hopper_interpreter, library, out_dtype, width):
    """An out of rows 130, 136 or 260 bytes apart (a view out[:, :N] of a wider buffer) met TMA's bare stride error,
    which named no operand and asked to pad "the rows" (matmul's bf16 GEMM refuses every out not row-major by
    name); rows in reverse met the tensor map's "not contiguous"."""
    M, N, K = 64, 64, 32
    _, _, a8, b8 = operands(M, N, K)
    one = np.ones(1, np.float32)
    if library == "torch":
        torch = pytest.importorskip("torch")
        a8 = torch.from_numpy(a8.view(np.uint8)).view(torch.float8_e4m3fn)
        b8 = torch.from_numpy(np.ascontiguousarray(b8.T).view(np.uint8)).view(torch.float8_e4m3fn).t()
        one = torch.ones(1)
        out = torch.zeros(M, width, dtype=getattr(torch, out_dtype))[:, :N]
    else:
        out = np.zeros((M, width), ml_dtypes.bfloat16 if out_dtype == "bfloat16" else np.float32)[:, :N]
    item = 2 if out_dtype == "bfloat16" else 4
    with pytest.raises(skc.LaunchError, match=rf"scaled matmul: out \(strides \({width}, 1\)\) has rows "
                                              rf"{width * item} bytes apart, .* pass a contiguous out, or none"):
        skc.blocks.matmul(a8, b8, out, scale_a=one, scale_b=one, out_dtype=out_dtype)
    if library == "numpy":
        reversed_rows = np.zeros((M, N), np.float32)[::-1]
        with pytest.raises(skc.LaunchError, match=r"out \(strides \(-64, 1\)\) has rows -256 bytes apart"):
            skc.blocks.matmul(a8, b8, reversed_rows, scale_a=one, scale_b=one, out_dtype="float32")


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_an_out_of_rows_16_bytes_apart_in_a_wider_buffer_is_exact(hopper_interpreter, library):
    """A view out[:, :N] whose rows TMA stores to (72 bf16 or 68 f32 elements apart) runs, exact against numpy, and
    leaves the buffer's other columns as they were."""
    M, N, K = 64, 64, 32
    a, b, a8, b8 = operands(M, N, K)
    for out_dtype, width in (("bfloat16", 72), ("float32", 68)):
        if library == "torch":
            torch = pytest.importorskip("torch")
            ta = torch.from_numpy(a8.view(np.uint8)).view(torch.float8_e4m3fn)
            tb = torch.from_numpy(np.ascontiguousarray(b8.T).view(np.uint8)).view(torch.float8_e4m3fn).t()
            buffer = torch.full((M, width), float("nan"), dtype=getattr(torch, out_dtype))
            out = buffer[:, :N]
            assert skc.blocks.matmul(ta, tb, out, scale_a=torch.ones(1), scale_b=torch.ones(1),
                                     out_dtype=out_dtype) is out
            result, rest = out.float().numpy(), buffer[:, N:].float().numpy()
        else:
            buffer = np.full((M, width), np.nan, ml_dtypes.bfloat16 if out_dtype == "bfloat16" else np.float32)
            out = buffer[:, :N]
            one = np.ones(1, np.float32)
            assert skc.blocks.matmul(a8, b8, out, scale_a=one, scale_b=one, out_dtype=out_dtype) is out
            result, rest = out.astype(np.float32), buffer[:, N:].astype(np.float32)
        np.testing.assert_array_equal(result, a @ b)
        assert np.isnan(rest).all()
