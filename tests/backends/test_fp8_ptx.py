"""fp8 on NVPTX: the conversions become PTX's cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32 and cvt.rn.f16x2.{e4m3x2,
e5m2x2}; fp8 wgmma becomes wgmma.mma_async ... m64nNk32.f32.{e4m3,e5m2}.{e4m3,e5m2} without transpose operands;
everything assembles for sm_90a with no spills; misuse is a compile error naming the fix."""
from __future__ import annotations

import pytest

import skc
from fp8_kernels import THREADS, decode_fp8, encode_fp8, encode_fp8_from, fp8_wgmma, fp8_wgmma_block
from helpers import check_lines, check_not
from skc.backends import ptx_tools
from skc.blocks import SmemTile, Wgmma
from skc.blocks.layout import OperandLayout
from skc.diagnostics import CompileError

needs_nvjitlink = pytest.mark.skipif(not ptx_tools.have_nvjitlink(), reason="nvJitLink is not installed")


def assert_no_spills(compiled):
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0 and resources["stack_bytes"] == 0, \
        resources


@needs_nvjitlink
@pytest.mark.parametrize("src", ["f32", "f16", "bf16", "f64"])
def test_conversions_to_fp8_use_the_satfinite_cvt(src):
    compiled = encode_fp8.compile(target="sm_90a", block=THREADS, src=src)
    ptx = compiled.asm("ptx")
    check_lines(ptx, r"cvt\.rn\.satfinite\.e4m3x2\.f32 %rs\d+, 0f00000000, %r\d+;",
                r"cvt\.rn\.satfinite\.e5m2x2\.f32 %rs\d+, 0f00000000, %r\d+;")
    assert_no_spills(compiled)


@needs_nvjitlink
@pytest.mark.parametrize("src", ["f16", "bf16"])
def test_16_bit_sources_widen_exactly_to_f32_first(src):
    ptx = encode_fp8_from.compile(target="sm_90a", block=THREADS, src=src).asm("ptx")
    # (bf16 widens by its bits, the upper half of the f32's: lowering._widen_bf16)
    widen = r"cvt\.f32\.f16" if src == "f16" else r"shl\.b32 \t?%r\d+, %r\d+, 16;"
    check_lines(ptx, widen, r"cvt\.rn\.satfinite\.e4m3x2\.f32")


@needs_nvjitlink
@pytest.mark.parametrize("fmt, kind", [("f8e4m3", "e4m3x2"), ("f8e5m2", "e5m2x2")])
def test_conversions_from_fp8_decode_through_f16(fmt, kind):
    compiled = decode_fp8.compile(target="sm_90a", block=THREADS, fmt=fmt)
    ptx = compiled.asm("ptx")
    check_lines(ptx, rf"cvt\.rn\.f16x2\.{kind} %r\d+, %rs\d+;", r"cvt\.f32\.f16")
    assert_no_spills(compiled)


def test_fp8_vectors_convert_lane_by_lane():
    @skc.kernel
    def widen(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
        v = skc.load(x, width=4)
        w = skc.cast(skc.cast(v, skc.f8e5m2), skc.f32)
        out[0] = w[0] + w[1] + w[2] + w[3]

    llvm = widen.compile(target="sm_90a", block=32).ir("llvm")
    assert llvm.count("cvt.rn.satfinite.e5m2x2.f32") == 4 and llvm.count("cvt.rn.f16x2.e5m2x2") == 4


def test_fp8_conversions_need_sm_89_or_newer():
    with pytest.raises(CompileError, match="fp8 conversions need sm_89 or newer; sm_80 has no fp8 instructions"):
        encode_fp8.compile(target="sm_80", block=THREADS, src="f32").asm("ptx")


@needs_nvjitlink
@pytest.mark.parametrize("types, ptx_types", [(("f8e4m3", "f8e4m3"), "e4m3.e4m3"), (("f8e5m2", "f8e5m2"), "e5m2.e5m2"),
                                              (("f8e4m3", "f8e5m2"), "e4m3.e5m2")])
def test_fp8_wgmma_m64n64k32_assembles_without_spills(types, ptx_types):
    compiled = fp8_wgmma.compile(target="sm_90a", block=128, cfg=(64, 4096, *types))
    ptx = compiled.asm("ptx")
    check_lines(ptx, r"wgmma\.fence\.sync\.aligned",
                rf"wgmma\.mma_async\.sync\.aligned\.m64n64k32\.f32\.{ptx_types} \{{(%r\d+, ){{31}}%r\d+\}}, "
                r"%rd\d+, %rd\d+, p, 1, 1;",
                r"wgmma\.commit_group\.sync\.aligned", r"wgmma\.wait_group\.sync\.aligned\s+0;")
    check_not(ptx, r"k16")
    assert_no_spills(compiled)
    sass = ptx_tools.disassemble(compiled.cubin)   # Hopper's fp8 tensor-core instruction is QGMMA
    assert sass.count(f"QGMMA.64x64x32.F32.{ptx_types.upper()}") == 2, sass


@needs_nvjitlink
@pytest.mark.parametrize("n", [64, 256])
def test_the_wgmma_block_on_fp8_tiles_assembles(n):
    compiled = fp8_wgmma_block.compile(target="sm_90a", block=128, cfg=(n, 128, "f8e4m3", "f8e5m2"))
    ptx = compiled.asm("ptx")
    assert ptx.count(f"wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e5m2") == 4   # k = 128 in steps of 32
    assert_no_spills(compiled)


@skc.kernel
def misused_block(out: skc.Ptr[skc.f32], cfg: skc.constexpr):
    k, b_k_major = cfg
    smem = skc.shared(64 * 128 + 128 * 128, skc.u8, align=1024)
    base = skc.hopper.shared_address(smem)
    mma = Wgmma(128, k, skc.f8e4m3)  # marker: Wgmma(
    acc = mma.zeros()
    mma(acc, SmemTile("a", base, OperandLayout(64, k, 1)),  # marker: mma(acc
        SmemTile("b", base + 64 * 128, OperandLayout(128, k, 1, k_major=b_k_major)))
    out[0] = acc.fragment[0]


def test_the_wgmma_block_rejects_mn_major_fp8_tiles_and_partial_k32_steps():
    with pytest.raises(CompileError, match="wgmma reads fp8 \\(f8e4m3\\) tiles K-major only; the stage's B tile is "
                                           "MN-major") as info:
        misused_block.compile(target="sm_90a", block=128, cfg=(128, False))
    assert "store fp8 operands K-major" in str(info.value)
    with pytest.raises(CompileError, match="the k-depth of a stage must be a multiple of 32 for f8e4m3, found 48"):
        misused_block.compile(target="sm_90a", block=128, cfg=(48, True))


def test_fp8_constants_in_llvm_ir_are_the_interpreters_codes():
    """Constants are encoded by the backend (llvm_text.fp8_bits) and by the interpreter (numerics.from_python):
    the same rounding (ties to even), saturation (infinities too), -0 and NaN."""
    import numpy as np

    from skc import ir
    from skc.backends.llvm_text import fp8_bits
    from skc.runtime.interpreter import numerics

    rng = np.random.default_rng(7)
    for name in ("f8e4m3", "f8e5m2"):
        fp8 = ir.ScalarType(name)
        values = numerics.from_storage(fp8, np.arange(0x7F, dtype=np.uint8)).astype(np.float64)
        values = values[np.isfinite(values)]
        midpoints = (values[1:] + values[:-1]) / 2
        cases = np.concatenate([values, midpoints, np.nextafter(midpoints, np.inf), rng.normal(0, values[-1] / 4, 500),
                                [values[-1] * 1.05, 1e30, np.inf, 1e-30, 0.0, np.nan]])
        cases = np.concatenate([cases, -cases])
        for value in cases:
            expected = int(numerics.to_storage(fp8, np.array([numerics.from_python(fp8, float(value))]))[0])
            assert fp8_bits(float(value), name) == expected, (name, value)
