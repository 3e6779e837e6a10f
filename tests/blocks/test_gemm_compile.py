"""The Hopper GEMM through the whole compiler: every operand layout and epilogue assembles for
sm_90a with no spills, and its SASS holds wgmma (HGMMA), TMA (UTMALDG/UTMASTG) and mbarriers (SYNCS)."""
from types import SimpleNamespace

import pytest

import skc
from skc import ir
from skc.backends import ptx_tools
from skc.blocks import EpilogueSpec, MatmulConfig, matmul_kernel

needs_assembler = pytest.mark.skipif(ptx_tools.ptxas_path() is None and not ptx_tools.have_nvjitlink(),
                                     reason="neither ptxas nor nvJitLink is installed")
needs_disassembler = pytest.mark.skipif(ptx_tools.nvdisasm_path() is None, reason="nvdisasm is not installed")


def compile_gemm(cfg: MatmulConfig):
    boxes = cfg.boxes()
    maps = [SimpleNamespace(spec=ir.TensorMapType(ir.ScalarType(cfg.dtype), boxes[name], 128))
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
]


@needs_assembler
@needs_disassembler
@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: f"a{'K' if c.a_k_major else 'M'}-b{'K' if c.b_k_major else 'N'}"
                         f"-n{c.tile_n}-{c.dtype}-{c.epilogue.activation}")
def test_gemm_assembles_with_wgmma_and_tma(cfg):
    compiled = compile_gemm(cfg)
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0, resources
    sass = compiled.asm("sass")
    for instruction in ("HGMMA", "UTMALDG", "UTMASTG", "SYNCS"):
        assert instruction in sass, instruction
    assert f"HGMMA.64x{cfg.tile_n}x16.F32{'.BF16' if cfg.dtype == 'bf16' else ''}" in sass  # fp16 is SASS's default


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
