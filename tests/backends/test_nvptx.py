"""The NVPTX backend: LLVM IR and PTX of the examples and of each op family, and every PTX
accepted by ptxas (through nvJitLink) for sm_80 and sm_90a with no spills."""

import pytest

import skc
from helpers import load_example, check_lines
from skc.backends import ptx_tools

needs_nvjitlink = pytest.mark.skipif(not ptx_tools.have_nvjitlink(), reason="nvJitLink is not installed")
F32P = skc.Ptr[skc.f32]




EXAMPLE_KERNELS = [("vector_add", {}, ("sm_90a", "sm_80")), ("softmax", {"n_cols": 4096, "block": 128}, ("sm_90a", "sm_80")),
                   # 32 floats a thread in 64 registers: sm_90a's ptxas fits them, sm_80's spills 60 bytes
                   ("softmax", {"n_cols": 32768, "block": 1024}, ("sm_90a",)), ("sgemm", {}, ("sm_90a", "sm_80"))]


@needs_nvjitlink
@pytest.mark.parametrize("name,kwargs,target", [(n, k, t) for n, k, targets in EXAMPLE_KERNELS for t in targets])
def test_examples_assemble_without_spills(name, kwargs, target):
    kernel = getattr(load_example(name), name)
    compiled = kernel.compile(target=target, **kwargs)
    ptx = compiled.asm("ptx")
    assert f".target {target}" in ptx
    assert len(compiled.cubin) > 0
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0, resources
    assert resources["stack_bytes"] == 0, resources


@needs_nvjitlink
def test_vector_add_uses_16_byte_accesses():
    compiled = load_example("vector_add").vector_add.compile(target="sm_90a")
    ptx = compiled.asm("ptx")
    assert "ld.global.v4.b32" in ptx or "ld.global.v4.f32" in ptx
    assert "st.global.v4.b32" in ptx or "st.global.v4.f32" in ptx


@needs_nvjitlink
@pytest.mark.skipif(ptx_tools.nvdisasm_path() is None, reason="nvdisasm is not installed")
def test_sass_of_softmax_shows_shuffles_and_barriers():
    compiled = load_example("softmax").softmax.compile(target="sm_90a", n_cols=4096, block=256)
    sass = compiled.asm("sass")
    assert "SHFL.BFLY" in sass
    assert "BAR.SYNC" in sass
    assert "MUFU.EX2" in sass


@skc.kernel
def op_zoo(x: F32P, i: skc.Ptr[skc.i32], u: skc.Ptr[skc.u32], n: skc.i32):
    t = skc.thread_id(0)
    v = x[t]
    x[t] = skc.exp(v) + skc.log(v) + skc.sqrt(v) + skc.rsqrt(v) + skc.sin(v) + skc.tanh(v) + skc.exp2(v)
    x[t + 1] = skc.floor(v) + skc.ceil(v) + skc.trunc(v) + skc.rint(v) + abs(v) + skc.fma(v, v, 1.0)
    x[t + 2] = min(v, 1.0) + max(v, 2.0) + v ** 2 + v ** 0.5 + v // 3.0 + v % 2.0
    w = i[t]
    i[t] = (w << 3) + (w >> 2) + (w & 7) + (w | 1) + (w ^ 5) + ~w + w // 7 + w % 5 + abs(w)
    u[t] = (u[t] >> 3) + u[t] // 3
    i[t + 1] = skc.i32(v) + skc.atomic_add(i + 5, 1) + skc.atomic_max(i + 6, w)
    i[t + 2] = skc.atomic_cas(i + 7, 0, w) + skc.shfl_xor(w, 1) + skc.shfl_up(w, 1) + skc.shfl_down(w, 2)
    x[t + 3] = skc.shfl_idx(v, 0) + skc.f32(skc.ballot(v > 0.0)) + skc.where(skc.vote_any(v > 1.0), 1.0, 2.0)
    x[t + 4] = skc.f32(skc.f16(v)) + skc.f32(skc.bf16(v)) + skc.f32(skc.f64(v) * 2.0)
    skc.atomic_add(x + 9, v)
    if t == 0:
        print("thread", t, "sees", v, n)
    assert n >= 0, "n must not be negative"


@needs_nvjitlink
@pytest.mark.parametrize("target", ["sm_90a", "sm_80"])
def test_every_op_family_assembles(target):
    compiled = op_zoo.compile(target=target, block=64)
    ptx = compiled.asm("ptx")
    check_lines(ptx, r"ex2\.approx", r"lg2\.approx")
    for instruction in ("shfl.sync.bfly", "shfl.sync.up", "shfl.sync.down", "shfl.sync.idx", "vote.sync.ballot",
                        "atom.global.add", "atom.global.max.s32", "global.cas.b32", "vprintf", "trap",
                        "cvt.rzi.s32.f32", "sin.approx", "tanh.approx", "rsqrt.approx"):
        assert instruction in ptx, instruction


def test_llvm_ir_of_a_kernel():
    @skc.kernel
    def scale(x: F32P, s: skc.f32, n: skc.i32):
        i = skc.thread_id(0)
        if i < n:
            x[i] = x[i] * s

    compiled = scale.compile(target="sm_90a", block=128)
    llvm = compiled.ir("llvm")
    check_lines(llvm, r'target triple = "nvptx64-nvidia-cuda"',
                r'define ptx_kernel void @scale\(ptr addrspace\(1\) %arg0, float %arg1, i32 %arg2\) "nvvm.maxntid"="128"',
                r"call range\(i32 0, 128\) i32 @llvm.nvvm.read.ptx.sreg.tid.x\(\)", r"icmp slt i32", r"getelementptr float",
                r"fmul float")
    check_lines(compiled.ir("llvm-opt"), r"define ptx_kernel void @scale")
    check_lines(compiled.asm("ptx"), r"\.visible \.entry scale", r"\.maxntid 128", r"mul\.rn\.f32")


def test_shared_memory_is_one_dynamic_buffer():
    @skc.kernel
    def transpose(x: F32P, y: F32P):
        tile = skc.shared((32, 33), skc.f32)
        t = skc.thread_id(0)
        tile[t, 1] = x[t]
        skc.barrier()
        y[t] = tile[1, t]

    compiled = transpose.compile(target="sm_90a", block=32)
    check_lines(compiled.ir("llvm"), r"@__skc_shared = external addrspace\(3\) global \[0 x i8\], align 16",
                r"call void @llvm.nvvm.barrier.cta.sync.aligned.all\(i32 0\)")
    assert compiled.shared_bytes == 32 * 33 * 4
    check_lines(compiled.asm("ptx"), r"\.extern \.shared \.align 16 \.b8 __skc_shared\[\]", r"bar\.sync\s+0")


def test_float_constants_are_exact():
    from skc import ir
    from skc.backends.llvm_text import float_literal

    assert float_literal(0.1, ir.f32) == "0x3FB99999A0000000"
    assert float_literal(1.0, ir.f16) == "0xH3C00"
    assert float_literal(1.0, ir.bf16) == "0xR3F80"
    assert float_literal(float("inf"), ir.f32) == "0x7FF0000000000000"
    # a NaN keeps its sign, as the interpreter's does (bf16's was always 0x7FC0: copysign(1, -nan) was +1 on the GPU)
    assert float_literal(-float("nan"), ir.bf16) == "0xRFFC0" and float_literal(float("nan"), ir.bf16) == "0xR7FC0"
    assert float_literal(-float("nan"), ir.f16) == "0xHFE00"


def test_unknown_target_is_a_clear_error():
    with pytest.raises(skc.SkcError, match="unknown target 'sm_90'.*sm_90a"):
        skc.get_target("sm_90")


@needs_nvjitlink
@pytest.mark.parametrize("name, overrides", [("gated_gemm", {}), ("rmsnorm", {"consumers": 1, "block": 256}),
                                             ("rmsnorm", {}), ("rmsnorm", {"cols": 1000})])
def test_examples_composed_from_blocks_assemble_without_spills(name, overrides):
    """The examples a user composes from the blocks, at the arguments `skc compile` gives them (gated_gemm: an H100's
    4096^3 configuration; rmsnorm: rows of 4096, two consumers), rmsnorm with one consumer and on rows of 1000 (rows of
    8192 spill: 176 bytes, the loads of 32 unrolled vectors a pass; not measured)."""
    example = load_example(name)
    arguments = dict(example.compile_arguments(name, skc.get_target("sm_90a")), **overrides)
    compiled = getattr(example, name).compile(target="sm_90a", **arguments)
    resources = compiled.resources
    assert resources["spill_stores"] == 0 and resources["spill_loads"] == 0 and resources["stack_bytes"] == 0, resources
    assert "cp.async.bulk.tensor" in compiled.asm("ptx")
