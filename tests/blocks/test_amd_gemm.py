"""The AMD GEMM composed from the AMD blocks (LDS loader, ping-pong pipeline over s_barrier, MFMA,
direct-store epilogue): it runs in the interpreter modelling gfx942 and matches numpy, tails and
fused epilogues included; it pays one barrier per k-step in any order of filling and reading; misusing
its pipeline is a compile-time error at the user's line; and `skc.blocks.matmul_kernel`, the same source
as the Hopper GEMM, compiles for gfx942 and gfx90a into code objects with MFMAs, no scratch, and
registers and LDS within the targets' limits (also through `skc compile`)."""
import os
import re
import time

import numpy as np
import pytest

import skc
from helpers import line_of
from skc.backends import amdgpu_link
from skc.blocks import (AmdMatmulConfig, DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, LdsLayout, LdsLoader,
                        LdsPipeline, Mfma, TileScheduler, compile_arguments, matmul_kernel)
from skc.runtime import devices
from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits
from skc.target import get_target

HERE = os.path.abspath(__file__)
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
AMD = ("gfx942", "gfx90a")
BF16P, F32P, I32P = skc.Ptr[skc.bf16], skc.Ptr[skc.f32], skc.Ptr[skc.i32]
RNG = np.random.default_rng(7)


@pytest.fixture(params=["gfx942"])
def amd_interpreter(request, monkeypatch):
    """The interpreter modelling an AMD target (SKC_INTERPRETER_TARGET) as the current device. A device caches
    its target, so the cache is cleared on the way in and out (the environment is restored after)."""
    monkeypatch.setenv("SKC_INTERPRETER_TARGET", request.param)
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    assert skc.current_device().target.name == request.param
    yield skc.current_device()
    devices._target_of.cache_clear()


def bf16_round(x: np.ndarray) -> np.ndarray:
    return bf16_bits_to_float32(float32_to_bf16_bits(x.astype(np.float32)))


def relative_error(got, expected) -> float:
    return float(np.linalg.norm(got.astype(np.float64) - expected) / np.linalg.norm(expected))


# -- the GEMM in the interpreter ------------------------------------------------------------------------
@pytest.mark.parametrize("amd_interpreter", AMD, indirect=True)
@pytest.mark.parametrize("M,N,K", [
    (128, 128, 64),    # whole tiles
    (70, 72, 40),      # M, N, K tails (64-wide tiles, a partial k-step)
    (20, 24, 16),      # M and N smaller than a tile: 32 x 32 tiles of 16x16x16 MFMAs
    (300, 200, 72),    # 6 tiles for 4 persistent blocks: blocks take two tiles each
])
def test_bf16_gemm_matches_numpy(amd_interpreter, M, N, K):
    a = bf16_round(RNG.standard_normal((M, K), dtype=np.float32))
    b = bf16_round(RNG.standard_normal((K, N), dtype=np.float32))
    out = skc.empty((M, N), skc.bf16).fill_bytes(0xFF)  # NaN until written
    skc.blocks.matmul(skc.to_device(a, dtype=skc.bf16), skc.to_device(b, dtype=skc.bf16), out=out)
    got = out.numpy()
    assert not np.isnan(got).any()
    assert relative_error(got, a.astype(np.float64) @ b.astype(np.float64)) <= 1e-2


def integer_operands(M, N, K, dtype, a_transposed=False, b_transposed=False):
    """Small integers (exact products and sums), stored row-major or as transposed views of row-major arrays."""
    a = RNG.integers(-3, 4, (M, K)).astype(np.float32)
    b = RNG.integers(-3, 4, (K, N)).astype(np.float32)
    a_arg = np.ascontiguousarray(a.T).astype(dtype).T if a_transposed else a.astype(dtype)
    b_arg = np.ascontiguousarray(b.T).astype(dtype).T if b_transposed else b.astype(dtype)
    return a, b, a_arg, b_arg


@pytest.mark.parametrize("a_transposed,b_transposed", [(False, False), (True, False), (False, True), (True, True)])
def test_f16_gemm_of_transposed_operands_is_exact(amd_interpreter, a_transposed, b_transposed):
    a, b, a_arg, b_arg = integer_operands(72, 80, 40, np.float16, a_transposed, b_transposed)
    out = np.full((72, 80), np.nan, np.float16)
    skc.blocks.matmul(a_arg, b_arg, out=out)
    np.testing.assert_array_equal(out.astype(np.float32), a @ b)


@pytest.mark.parametrize("config", [
    AmdMatmulConfig(dtype="f16", mfma=16),                                              # 4 x 4 16x16 MFMAs a wave
    AmdMatmulConfig(dtype="f16", tile_m=64, waves_m=1, waves_n=4, tile_k=64),           # waves side by side
    AmdMatmulConfig(dtype="f16", stages=3, tile_k=16),                                  # a ring of three
    AmdMatmulConfig(dtype="f16", tile_m=32, tile_n=64, waves_m=1, waves_n=2, mfma=16),  # 128 threads: masked shares
], ids=["mfma16", "waves1x4", "stages3", "threads128"])
def test_configurations_are_exact(amd_interpreter, config):
    a, b, a_arg, b_arg = integer_operands(136, 200, 72, np.float16)
    out = np.full((136, 200), np.nan, np.float16)
    skc.blocks.matmul(a_arg, b_arg, out=out, config=config)
    np.testing.assert_array_equal(out.astype(np.float32), a @ b)


ACTIVATIONS = {None: lambda x: x, "relu": lambda x: np.maximum(x, 0.0),
               "gelu": lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3))),
               "silu": lambda x: x / (1 + np.exp(-x))}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS, key=str))
def test_fused_epilogue(amd_interpreter, activation):
    M, N, K = 70, 48, 32
    a = RNG.standard_normal((M, K)).astype(np.float16)
    b = RNG.standard_normal((K, N)).astype(np.float16)
    c = RNG.standard_normal((M, N)).astype(np.float16)
    bias = RNG.standard_normal(N).astype(np.float16)
    out = np.full((M, N), np.nan, np.float16)
    skc.blocks.matmul(a, b, out=out, c=c, bias=bias, alpha=0.5, beta=-2.0, activation=activation)
    product = a.astype(np.float64) @ b.astype(np.float64)
    expected = ACTIVATIONS[activation](0.5 * product - 2.0 * c.astype(np.float64) + bias.astype(np.float64))
    assert relative_error(out, expected) <= 1e-2


def test_host_checks(amd_interpreter):
    a, b = np.zeros((16, 12), np.float16), np.zeros((12, 16), np.float16)
    with pytest.raises(skc.LaunchError, match="K must be a multiple of 8, found 12"):
        skc.blocks.matmul(a, b)
    with pytest.raises(skc.LaunchError, match="the config is for bf16.*the operands are f16"):
        skc.blocks.matmul(np.zeros((16, 16), np.float16), np.zeros((16, 16), np.float16), config=AmdMatmulConfig())


# -- the pipeline: one barrier per k-step, whatever the order ---------------------------------------------
class CountingPipeline(LdsPipeline):
    """Counts the barriers it pays (at run time)."""

    def __init__(self, payload, stages):
        super().__init__(payload, stages)
        self.barriers = skc.i32(0)

    def barrier(self):
        super().barrier()
        self.barriers += 1


@skc.kernel
def gemm_in_order(a: BF16P, b: BF16P, out: F32P, barriers: I32P, M: skc.i32, N: skc.i32, K: skc.i32,
                  order: skc.constexpr, cfg: skc.constexpr):
    payload = cfg.payload()
    pipe = CountingPipeline(payload, cfg.stages)
    load = LdsLoader(payload, a=(a, M, K, True), b=(b, N, K, False))
    row0, col0 = cfg.wave_corner(skc.thread_index() // 64)
    mma = Mfma(cfg.wave_m, cfg.wave_n, cfg.tile_k, skc.bf16, cfg.mfma, row0=row0, col0=col0)
    epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
    k_tiles = skc.cdiv(K, cfg.tile_k)
    acc = mma.zeros()
    with pipe.producer() as producer, pipe.consumer() as consumer:
        for tile in TileScheduler(M, N, cfg.tile_m, cfg.tile_n):
            acc.zero()
            if order != "fill k, read k":
                with producer.acquire() as stage:
                    load(stage, 0, a=tile.row0, b=tile.col0)
            if order == "fill k+2, read k":
                with producer.acquire() as stage:
                    load(stage, 1, a=tile.row0, b=tile.col0)
            for k in range(k_tiles):
                if order == "fill k+2, read k" and k + 2 < k_tiles:
                    with producer.acquire() as stage:   # HERE two ahead
                        load(stage, k + 2, a=tile.row0, b=tile.col0)
                if order == "fill k, read k":
                    with producer.acquire() as stage:
                        load(stage, k, a=tile.row0, b=tile.col0)
                if order == "fill k+1, read k" and k + 1 < k_tiles:
                    with producer.acquire() as stage:
                        load(stage, k + 1, a=tile.row0, b=tile.col0)
                with consumer.acquire() as stage:
                    mma(acc, stage.a, stage.b)
                if order == "read k, fill k+1" and k + 1 < k_tiles:
                    with producer.acquire() as stage:
                        load(stage, k + 1, a=tile.row0, b=tile.col0)
            epilogue(acc, tile.row0, tile.col0)
    if skc.thread_index() == 0:
        barriers[skc.block_id(0)] = pipe.barriers


@pytest.mark.parametrize("order", ["fill k, read k", "read k, fill k+1", "fill k+1, read k"])
def test_one_barrier_per_k_step_in_any_order(amd_interpreter, order):
    cfg = AmdMatmulConfig(tile_m=64, tile_n=64)
    M, N, K = 128, 120, 96  # 2 x 2 tiles on 2 blocks (two tiles each), 3 k-steps a tile
    a, b, _, _ = integer_operands(M, N, K, np.float32)
    out = np.full((M, N), np.nan, np.float32)
    barriers = np.zeros(2, np.int32)
    gemm_in_order.interpret[2, cfg.threads](skc.to_device(a, dtype=skc.bf16), skc.to_device(b, dtype=skc.bf16),
                                            out, barriers, M, N, K, order, cfg)
    np.testing.assert_array_equal(out, a @ b)
    assert barriers.tolist() == [2 * 3, 2 * 3]


def test_a_fill_further_ahead_than_the_stages_is_an_error(amd_interpreter):
    """The waves that fill the stages also read them, so they cannot wait for their own reads: filling two stages
    ahead of the reads in a pipeline of two overwrote stage 0 before any wave read it (wrong answers, silently, in
    the interpreter and on the GPU). It is now an assertion at the user's acquire; three stages hold the same loop."""
    M, N, K = 64, 64, 128   # 4 k-steps
    a, b, _, _ = integer_operands(M, N, K, np.float32)
    args = skc.to_device(a, dtype=skc.bf16), skc.to_device(b, dtype=skc.bf16)
    out, barriers = np.full((M, N), np.nan, np.float32), np.zeros(1, np.int32)
    with pytest.raises(skc.InterpreterError, match="fill more than `stages` ahead of the reads overwrites a stage") \
            as info:
        gemm_in_order.interpret[1, CFG.threads](*args, out, barriers, M, N, K, "fill k+2, read k", CFG)
    assert str(info.value).startswith(f"{HERE}:{line_of(gemm_in_order, 'HERE two ahead')}:")
    deeper = AmdMatmulConfig(tile_m=64, tile_n=64, stages=3)
    gemm_in_order.interpret[1, deeper.threads](*args, out, barriers, M, N, K, "fill k+2, read k", deeper)
    np.testing.assert_array_equal(out, a @ b)


# -- misuse is a compile-time error at the user's line ------------------------------------------------------
CFG = AmdMatmulConfig(tile_m=64, tile_n=64)


def compile_error(kernel, cfg=CFG, target="gfx942") -> str:
    with pytest.raises(skc.CompileError) as info:
        kernel.compile(BF16P, BF16P, skc.i32, cfg, target=target, block=cfg.threads)
    return str(info.value)


def assert_at(message: str, kernel, marker: str):
    assert message.startswith(f"{HERE}:{line_of(kernel, marker)}:"), message


def operands(a, b, K):
    return {"a": (a, 64, K, True), "b": (b, 64, K, False)}


@skc.kernel
def acquire_without_with(a: BF16P, b: BF16P, K: skc.i32, cfg: skc.constexpr):
    payload = cfg.payload()
    pipe = LdsPipeline(payload, cfg.stages)
    load = LdsLoader(payload, **operands(a, b, K))
    with pipe.producer() as producer:
        stage = producer.acquire()
        load(stage, 0, a=0, b=0)  # HERE


def test_acquire_outside_a_with():
    message = compile_error(acquire_without_with)
    assert "a pipeline stage is used outside `with ....acquire() as stage:`" in message
    assert_at(message, acquire_without_with, "load(stage, 0, a=0, b=0)")


@skc.kernel
def stage_after_with(a: BF16P, b: BF16P, K: skc.i32, cfg: skc.constexpr):
    payload = cfg.payload()
    pipe = LdsPipeline(payload, cfg.stages)
    load = LdsLoader(payload, **operands(a, b, K))
    mma = Mfma(cfg.wave_m, cfg.wave_n, cfg.tile_k, skc.bf16)
    acc = mma.zeros()
    with pipe.producer() as producer, pipe.consumer() as consumer:
        for k in range(K):
            with producer.acquire() as stage:
                load(stage, k, a=0, b=0)
            with consumer.acquire() as stage:
                tiles = (stage.a, stage.b)
            mma(acc, tiles[0], tiles[1])  # HERE


def test_stage_tiles_used_after_their_block():
    message = compile_error(stage_after_with)
    assert "tile 'a' of a pipeline stage is used after the `with ... acquire()` block" in message
    assert_at(message, stage_after_with, "mma(acc, tiles[0], tiles[1])")


@skc.kernel
def load_after_with(a: BF16P, b: BF16P, K: skc.i32, cfg: skc.constexpr):
    payload = cfg.payload()
    pipe = LdsPipeline(payload, cfg.stages)
    load = LdsLoader(payload, **operands(a, b, K))
    with pipe.producer() as producer:
        with producer.acquire() as stage:
            pass
        load(stage, 0, a=0, b=0)  # HERE


def test_stage_used_after_its_block():
    message = compile_error(load_after_with)
    assert "a pipeline stage is used after its `with ....acquire()` block ended" in message
    assert_at(message, load_after_with, "load(stage, 0, a=0, b=0)")


@skc.kernel
def payload_disagrees(a: BF16P, b: BF16P, K: skc.i32, cfg: skc.constexpr):
    pipe = LdsPipeline(cfg.payload(), cfg.stages)
    mma = Mfma(cfg.wave_m, cfg.wave_n, 2 * cfg.tile_k, skc.bf16)
    acc = mma.zeros()
    with pipe.consumer() as consumer:
        with consumer.acquire() as stage:
            mma(acc, stage.a, stage.b)  # HERE


def test_payload_that_disagrees_with_the_op():
    message = compile_error(payload_disagrees)
    assert "the stage's tiles are 32 and 32 deep in k; this Mfma was made for 64" in message
    assert_at(message, payload_disagrees, "mma(acc, stage.a, stage.b)")


@skc.kernel
def one_stage(a: BF16P, b: BF16P, K: skc.i32, cfg: skc.constexpr):
    pipe = LdsPipeline(cfg.payload(), 1)  # HERE


@skc.kernel
def too_much_lds(a: BF16P, b: BF16P, K: skc.i32, cfg: skc.constexpr):
    pipe = LdsPipeline(cfg.payload(), 4)  # HERE


def test_pipeline_stages_and_lds_budget():
    message = compile_error(one_stage)
    assert "needs at least two stages (ping-pong), found 1" in message
    assert_at(message, one_stage, "LdsPipeline(")
    message = compile_error(too_much_lds, AmdMatmulConfig())
    assert "shared memory of 66560 bytes exceeds the 65536 bytes a block may use on gfx942" in message
    assert_at(message, too_much_lds, "LdsPipeline(")


@skc.kernel
def mfma_on_hopper(a: BF16P, b: BF16P, K: skc.i32, cfg: skc.constexpr):
    mma = Mfma(cfg.wave_m, cfg.wave_n, cfg.tile_k, skc.bf16)
    acc = mma.zeros()
    acc.tiles[0][0].values = skc.amd.mfma(acc.tiles[0][0].values, skc.full(4, 1.0, skc.bf16),  # HERE
                                          skc.full(4, 1.0, skc.bf16), 32, 32, 8, skc.bf16)


def test_mfma_needs_an_amd_target_and_the_gemm_its_config():
    message = compile_error(mfma_on_hopper, target="sm_90a")
    assert "mfma needs an AMD CDNA target with matrix cores (gfx90a, gfx942); the kernel compiles for sm_90a" in message
    assert_at(message, mfma_on_hopper, "skc.amd.mfma(")
    hopper = compile_arguments("sm_90a", 256, 256, 256)
    with pytest.raises(skc.CompileError, match="the GEMM for gfx942 takes a AmdMatmulConfig, found MatmulConfig"):
        matmul_kernel.compile(target="gfx942", **dict(compile_arguments("gfx942"), cfg=hopper["cfg"]))
    with pytest.raises(skc.CompileError, match="the GEMM needs wgmma .sm_90a. or MFMA .gfx90a, gfx942.; sm_80"):
        matmul_kernel.compile(target="sm_80", **compile_arguments("gfx942"))


def test_config_checks():
    with pytest.raises(ValueError, match="tile_m = 96 does not split into 2 waves of 32-wide MFMAs"):
        AmdMatmulConfig(tile_m=96)
    with pytest.raises(ValueError, match="tile_k must be a multiple of 32 for 16x16 MFMAs"):
        AmdMatmulConfig(mfma=16, tile_k=16)
    with pytest.raises(ValueError, match="the stages need 66560 bytes of LDS; a work-group has 65536"):
        AmdMatmulConfig(stages=4)
    with pytest.raises(ValueError, match="each lane would hold 256 f32 accumulators"):
        AmdMatmulConfig(tile_m=256, tile_n=256, tile_k=16)
    assert AmdMatmulConfig.for_problem(20, 4096, 64).mfma == 16  # a wave's share is 16 rows
    assert AmdMatmulConfig.for_problem(4096, 4096, 64).mfma == 32
    assert LdsLayout(128, 32).bytes == 4 * (128 * 16 + 32) and AmdMatmulConfig().shared_bytes() == 33280


def test_lds_slots_spread_over_the_banks():
    """The bank claims of skc/blocks/lds.py, on the layout (32 banks of 4 bytes: 8 groups of 16 bytes): the 8
    rows an MFMA operand read serves together use 8 different 16-byte groups, and so do the loader's 16-byte
    writes (2 rows x 4 k-groups); its 4-byte pair writes (8 column chunks x 4 k pairs) hit 32 different banks."""
    layout = LdsLayout(128, 32)
    for group in range(4):
        for row0 in range(0, 128, 8):
            assert len({layout.slot(row0 + r, group) // 16 % 8 for r in range(8)}) == 8
    for row in range(0, 128, 2):
        assert len({layout.slot(row + r, g) // 16 % 8 for r in range(2) for g in range(4)}) == 8
    for i in range(8):
        assert len({(layout.slot(8 * c + i, 0) + 4 * p) // 4 % 32 for c in range(8) for p in range(4)}) == 32


# -- code objects -------------------------------------------------------------------------------------------
def compile_gemm(target, M=4096, N=4096, K=4096):
    return matmul_kernel.compile(target=target, **compile_arguments(target, M, N, K))


MFMA = {("gfx942", 32): r"v_mfma_f32_32x32x8_bf16", ("gfx90a", 32): r"v_mfma_f32_32x32x8bf16_1k",
        ("gfx942", 16): r"v_mfma_f32_16x16x16_bf16", ("gfx90a", 16): r"v_mfma_f32_16x16x16bf16_1k"}


@pytest.mark.parametrize("shape", [(4096, 4096, 4096), (32, 32, 4096)], ids=["mfma32", "mfma16"])
@pytest.mark.parametrize("target", AMD)
def test_gemm_code_object_has_mfmas_no_scratch_and_fits_the_target(target, shape):
    compiled = compile_gemm(target, *shape)
    cfg = compile_arguments(target, *shape)["cfg"]
    listing = compiled.asm("gcn")  # the assembly llvmlite emitted with the object that was linked
    assert compiled.binary[:4] == b"\x7fELF"
    mfmas = re.findall(MFMA[(target, cfg.mfma)] + r"\s", listing)
    mfma_k = 4 * 64 // cfg.mfma  # 8 for 32x32x8, 16 for 16x16x16
    per_k_step = (cfg.wave_m // cfg.mfma) * (cfg.wave_n // cfg.mfma) * (cfg.tile_k // mfma_k)
    assert len(mfmas) >= per_k_step and len(mfmas) % per_k_step == 0, len(mfmas)
    assert "s_barrier" in listing and "ds_read_b128" in listing
    assert not re.search(r"^\s+scratch_(load|store)", listing, re.M)  # instructions, not .amdhsa_* directives
    resources = compiled.resources
    assert resources["scratch_bytes"] == 0 and not resources["dynamic_stack"], resources
    assert resources["spill_vgprs"] == 0 and resources["spill_sgprs"] == 0, resources
    limits = get_target(target)
    assert 0 < resources["registers"] + resources["agprs"] <= limits.max_registers_per_thread, resources
    assert 0 < resources["sgprs"] <= 106, resources  # 102 addressable SGPRs + VCC + XNACK mask (gfx9)
    assert resources["lds_bytes"] == cfg.shared_bytes() <= limits.max_shared_bytes, resources
    metadata = compiled.metadata["amdgpu"]
    assert metadata[".max_flat_workgroup_size"] == cfg.threads and metadata[".wavefront_size"] == 64
    layout = [(arg[".offset"], arg[".size"], arg[".value_kind"]) for arg in amdgpu_link.explicit_arguments(metadata)]
    pointer, scalar = "global_buffer", "by_value"
    assert layout == [(0, 8, pointer), (8, 8, pointer), (16, 8, pointer), (24, 4, scalar), (28, 4, scalar),
                      (32, 4, scalar), (40, 8, pointer), (48, 8, pointer), (56, 4, scalar), (60, 4, scalar)]


def test_skc_compile_of_the_matmul_example_for_both_vendors(tmp_path):
    from skc import cli

    path = os.path.join(EXAMPLES, "matmul.py")
    amd, hopper = tmp_path / "gfx942", tmp_path / "sm_90a"
    assert cli.main(["compile", path, "--target", "gfx942", "--emit", "tile,llvm,gcn", "-o", str(amd)]) == 0
    assert sorted(os.listdir(amd)) == ["matmul_kernel.hsaco", "matmul_kernel.ll", "matmul_kernel.s",
                                       "matmul_kernel.tile"]
    assert (amd / "matmul_kernel.hsaco").read_bytes()[:4] == b"\x7fELF"
    assert "mfma.mma" in (amd / "matmul_kernel.tile").read_text()
    assert "v_mfma_f32_32x32x8_bf16" in (amd / "matmul_kernel.s").read_text()
    assert cli.main(["compile", path, "--target", "sm_90a", "--emit", "tile,ptx", "-o", str(hopper)]) == 0
    # (and the .cubin where this process already assembled the same kernel: docs/cli.md, "once made";
    # test_gemm_compile.py's SASS tests do, run before this file)
    assert set(os.listdir(hopper)) - {"matmul_kernel.cubin"} == {"matmul_kernel.ptx", "matmul_kernel.tile"}
    assert "wgmma.mma_async" in (hopper / "matmul_kernel.ptx").read_text()


def test_skc_compile_of_softmax_takes_its_compile_arguments(tmp_path):
    from skc import cli

    path = os.path.join(EXAMPLES, "softmax.py")
    assert cli.main(["compile", path, "--target", "gfx942", "-o", str(tmp_path)]) == 0
    assert "softmax.hsaco" in os.listdir(tmp_path)
    assert "block = [128, 1, 1]" in (tmp_path / "softmax.tile").read_text()  # 4096 columns: 2 wavefronts


def test_interpreter_time_stays_small(amd_interpreter):
    a, b, a_arg, b_arg = integer_operands(256, 256, 128, np.float16)
    out = np.full((256, 256), np.nan, np.float16)
    started = time.perf_counter()
    skc.blocks.matmul(a_arg, b_arg, out=out)
    assert time.perf_counter() - started < 10
    np.testing.assert_array_equal(out.astype(np.float32), a @ b)


@pytest.mark.parametrize("fields", [dict(stages=2.5), dict(group_m=0), dict(tile_k="x"), dict(waves_m=True),
                                    dict(mfma=32.0)], ids=["float-stages", "group-0", "str-tile-k", "bool-waves",
                                                           "float-mfma"])
def test_a_config_refuses_counts_that_are_no_ints(fields):
    """As MatmulConfig: a float, a bool, a string or a count under its least is refused by name when the config is
    made (2.5 stages and group_m=0 were taken; tile_k='x' failed inside a string format)."""
    name = next(iter(fields))
    with pytest.raises(ValueError, match=f"{name} must be an int of at least"):
        AmdMatmulConfig(**fields)


@pytest.mark.parametrize("target", AMD)
def test_the_hopper_compositions_name_what_an_amd_target_lacks(target):
    """The fp8 GEMM for gfx942 was refused for 'shared memory of 196608 bytes' and attention for mbarrier_init, deep in
    the blocks; both now name the missing wgmma (the examples and docs compile for AMD or say why not)."""
    from types import SimpleNamespace

    from skc import ir
    from skc.blocks import Fp8MatmulConfig
    from skc.blocks.fp8 import fp8_matmul_kernel
    from skc.blocks.attention_host import compile_arguments as attention_arguments
    from skc.blocks.attention_kernel import AttentionConfig, attention_kernel

    cfg = Fp8MatmulConfig()
    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(t), boxes[name], 128))
            for name, t in (("a", cfg.dtype), ("b", cfg.dtype), ("out", cfg.out_dtype))]
    wanted = rf"is Hopper's \(TMA loads, an mbarrier pipeline, wgmma\): it needs sm_90a; {target} has no wgmma"
    with pytest.raises(skc.CompileError, match="this GEMM " + wanted):
        fp8_matmul_kernel.compile(*maps, skc.i32, skc.i32, skc.i32, skc.Ptr[getattr(skc, cfg.out_dtype)],
                                  skc.Ptr[skc.f32], skc.Ptr[skc.f32], cfg, target=target, block=cfg.threads)
    with pytest.raises(skc.CompileError, match="attention " + wanted):
        attention_kernel.compile(**attention_arguments(AttentionConfig(head_dim=128, causal=True)), target=target)
