"""The AMDGPU backend: LLVM IR and GCN of the examples and of each op family for gfx942 and gfx90a,
code objects linked with ld.lld and their metadata (registers, LDS, scratch, argument layout), MFMA,
the clear errors for what CDNA lacks, the `skc compile` command, and the HIP launch path (without
ROCm: a clear DeviceError; with a stand-in for hip-python: the kernel-argument image it passes)."""
import ctypes
import os
import re
import struct

import pytest

import skc
from helpers import load_example, check_lines, check_not, tile_module
from skc import ir
from skc.backends import amdgpu_link, compile_llvm, to_llvm
from skc.backends.amdgpu import AMDGPU, DATALAYOUT
from skc.diagnostics import CompileError, DeviceError, LaunchError
from skc.target import get_target

from helpers import EXAMPLES  # noqa: E402
AMD = ("gfx942", "gfx90a")
F32P = skc.Ptr[skc.f32]




def gcn_of(kernel, target, *args, block=64):
    """(LLVM IR, GCN assembly) of a kernel through llvmlite alone (no linker)."""
    module = tile_module(kernel, *args, block=block, target=target)
    llvm = to_llvm(module, target)
    return llvm, compile_llvm(llvm, target).asm


def gcn_of_ir(text: str, target: str):
    """(LLVM IR, Assembly) of a tile IR module written as text."""
    module = ir.parse_module(text)
    ir.verify(module)
    llvm = to_llvm(module, target)
    return llvm, compile_llvm(llvm, target)


def explicit_layout(metadata: dict) -> list:
    return [(a[".offset"], a[".size"], a[".value_kind"]) for a in amdgpu_link.explicit_arguments(metadata)]


# -- target facts ------------------------------------------------------------------------------
@pytest.mark.parametrize("target", AMD)
def test_datalayout_is_llvms(target):
    from skc.backends.llvm_codegen import target_machine

    t = get_target(target)
    machine = target_machine(AMDGPU.triple, t.llvm_cpu, t.llvm_features, "pic")
    assert str(machine.target_data) == DATALAYOUT


def test_every_op_has_an_amdgpu_lowering():
    from skc.backends.lowering import FunctionLowering

    lowered = set(FunctionLowering.TABLE) | set(AMDGPU(get_target("gfx942")).ops)
    assert set(ir.OPS) <= lowered, f"ops without an AMDGPU lowering: {sorted(set(ir.OPS) - lowered)}"


# -- the examples ------------------------------------------------------------------------------
EXAMPLE_KERNELS = {
    # name: (compile arguments, explicit kernel arguments: (offset, size, kind))
    "vector_add": ({}, [(0, 8, "global_buffer"), (8, 8, "global_buffer"), (16, 8, "global_buffer"),
                        (24, 4, "by_value")]),
    "softmax": ({"n_cols": 4096, "block": 256}, [(0, 8, "global_buffer"), (8, 8, "global_buffer"),
                                                 (16, 4, "by_value")]),
    "sgemm": ({}, [(0, 8, "global_buffer"), (8, 8, "global_buffer"), (16, 8, "global_buffer"), (24, 4, "by_value"),
                   (28, 4, "by_value"), (32, 4, "by_value")]),
}


def compiled_example(name, target):
    kwargs, _ = EXAMPLE_KERNELS[name]
    return getattr(load_example(name), name).compile(target=target, **kwargs)


@pytest.mark.parametrize("name", sorted(EXAMPLE_KERNELS))
@pytest.mark.parametrize("target", AMD)
def test_examples_link_into_code_objects(name, target):
    compiled = compiled_example(name, target)
    assert compiled.binary[:4] == b"\x7fELF"
    metadata = compiled.metadata["amdgpu"]
    assert metadata[".name"] == name and metadata[".symbol"] == f"{name}.kd"
    assert explicit_layout(metadata) == EXAMPLE_KERNELS[name][1]
    assert all(a[".address_space"] == "global" for a in amdgpu_link.explicit_arguments(metadata)
               if a[".value_kind"] == "global_buffer")
    assert metadata[".max_flat_workgroup_size"] == compiled.block[0] and metadata[".wavefront_size"] == 64
    gcn = compiled.asm("gcn")
    check_lines(gcn, rf'\.amdgcn_target "amdgcn-amd-amdhsa--{target}"', r"\.amdhsa_code_object_version 5",
                rf"^{name}:", r"s_endpgm", r"\.amdhsa_kernel " + name)


@pytest.mark.parametrize("name", sorted(EXAMPLE_KERNELS))
@pytest.mark.parametrize("target", AMD)
def test_examples_use_no_scratch_and_fit_the_target(name, target):
    compiled = compiled_example(name, target)
    resources = compiled.resources
    assert resources["scratch_bytes"] == 0 and not resources["dynamic_stack"], resources
    assert resources["spill_vgprs"] == 0 and resources["spill_sgprs"] == 0, resources
    limits = get_target(target)
    assert 0 < resources["registers"] + resources["agprs"] <= limits.max_registers_per_thread, resources
    assert 0 < resources["sgprs"] <= 106, resources  # 102 addressable SGPRs + VCC + XNACK mask (gfx9)
    assert compiled.shared_bytes <= resources["lds_bytes"] <= limits.max_shared_bytes, resources
    assert compiled.metadata["amdgpu"][".group_segment_fixed_size"] == resources["lds_bytes"]


@pytest.mark.parametrize("target", AMD)
def test_gcn_of_the_examples_has_the_expected_instructions(target):
    vector_add = compiled_example("vector_add", target).asm("gcn")
    assert "global_load_dwordx4" in vector_add and "global_store_dwordx4" in vector_add
    softmax = compiled_example("softmax", target)
    check_lines(softmax.asm("gcn"), r"ds_bpermute_b32", r"s_barrier", r"v_exp_f32", r"ds_bpermute_b32", r"s_barrier")
    assert softmax.resources["lds_bytes"] > 0  # the partial results of each wavefront
    sgemm = compiled_example("sgemm", target)
    check_lines(sgemm.asm("gcn"), r"ds_write", r"s_barrier", r"ds_read_b128", r"v_mul_f32", r"v_add_f32", r"s_barrier")
    assert sgemm.resources["lds_bytes"] == 2 * 16 * 64 * 4


@pytest.mark.parametrize("target", AMD)
def test_code_objects_hold_the_kernel_that_the_assembly_shows(target):
    """The instructions are read from the GCN text that llvmlite emits with the object (llvmlite cannot
    disassemble AMDGPU); the linked code object is checked to hold that kernel and its descriptor."""
    compiled = compiled_example("softmax", target)
    check_lines(compiled.asm("gcn"), r"^softmax:", r"global_load_dwordx4", r"ds_bpermute_b32", r"s_barrier",
                r"s_endpgm")
    assert compiled.binary[:4] == b"\x7fELF" and b"softmax.kd\x00" in compiled.binary
    assert b"amdhsa.kernels" in compiled.binary  # the metadata note the loader reads


# -- LLVM IR --------------------------------------------------------------------------------------
def test_llvm_ir_of_a_kernel():
    @skc.kernel
    def scale(x: F32P, s: skc.f32, n: skc.i32):
        i = skc.block_id(0) * 128 + skc.thread_id(0)
        total = 0.0
        for k in range(n):
            total += x[k]
        if i < n:
            x[i] = x[i] * s + total

    llvm, gcn = gcn_of(scale, "gfx942", block=128)
    check_lines(llvm, r'target triple = "amdgcn-amd-amdhsa"',
                r'define amdgpu_kernel void @scale\(ptr addrspace\(1\) %arg0, float %arg1, i32 %arg2\) '
                r'"amdgpu-flat-work-group-size"="1,128" "uniform-work-group-size"="true"',
                r"alloca float, addrspace\(5\)",  # var slots live in the private address space (A5)
                r"call range\(i32 0, 2147483647\) i32 @llvm.amdgcn.workgroup.id.x\(\)",
                r"call range\(i32 0, 128\) i32 @llvm.amdgcn.workitem.id.x\(\)",
                r"load float, ptr addrspace\(5\)", r"fmul float",
                r'!0 = !\{i32 1, !"amdhsa_code_object_version", i32 500\}')
    check_not(gcn, r"scratch_|buffer_store")  # the slot became a register
    nvptx = to_llvm(tile_module(scale, block=128, target="sm_90a"), "sm_90a")
    check_lines(nvptx, r"alloca float$", r"load float, ptr %v")  # NVPTX's slots stay generic


def test_shared_memory_is_a_static_lds_buffer():
    @skc.kernel
    def transpose(x: F32P, y: F32P):
        tile = skc.shared((32, 33), skc.f32)
        t = skc.thread_id(0)
        tile[t, 1] = x[t]
        skc.barrier()
        y[t] = tile[1, t]

    llvm, gcn = gcn_of(transpose, "gfx942", block=128)  # one wavefront would need no s_barrier: LLVM drops it
    check_lines(llvm, r"@__skc_shared.transpose = internal addrspace\(3\) global \[4224 x i8\] poison, align 16",
                r'fence syncscope\("workgroup"\) release', r"call void @llvm.amdgcn.s.barrier\(\)",
                r'fence syncscope\("workgroup"\) acquire')
    check_lines(gcn, r"ds_write_b32", r"s_barrier", r"ds_read_b32", r"\.amdhsa_group_segment_fixed_size 4224")
    assert amdgpu_link.kernel_metadata(gcn, "transpose")[".group_segment_fixed_size"] == 4224


def test_grid_dim_reads_the_block_counts_of_code_object_v5():
    @skc.kernel
    def grid(out: skc.Ptr[skc.i32], n: skc.i32):
        out[0] = skc.grid_dim(0) + n
        out[1] = skc.grid_dim(1)
        out[2] = skc.grid_dim(2)

    llvm, gcn = gcn_of(grid, "gfx942")
    check_lines(llvm, r"call ptr addrspace\(4\) @llvm.amdgcn.implicitarg.ptr\(\)",
                r"load i32, ptr addrspace\(4\) %v\d+, align 4, !invariant.load !\{\}, "
                r"!range !\{i32 1, i32 -2147483648\}")
    hidden = {a[".value_kind"]: a[".offset"] for a in amdgpu_link.kernel_metadata(gcn, "grid")[".args"]}
    # the explicit arguments take 12 bytes; the hidden ones start 8-aligned at 16
    assert (hidden["hidden_block_count_x"], hidden["hidden_block_count_y"], hidden["hidden_block_count_z"]) == \
        (16, 20, 24)
    loads = " ".join(line for line in gcn.splitlines() if "s_load" in line)
    assert "0x10" in loads, loads  # one scalar load from hidden_block_count_x on: no division, no dispatch packet


def test_shuffles_compute_the_source_lane_and_keep_their_own_value_outside():
    @skc.kernel
    def shuffles(x: skc.Ptr[skc.i32], d: skc.Ptr[skc.f64], h: skc.Ptr[skc.f16], k: skc.i32):
        t = skc.thread_id(0)
        x[t] = skc.shfl_up(x[t], k) + skc.shfl_down(x[t], k) + skc.shfl_xor(x[t], k) + skc.shfl_idx(x[t], k)
        d[t] = skc.shfl_down(d[t], 3)
        h[t] = skc.shfl_xor(h[t], 1)

    llvm, gcn = gcn_of(shuffles, "gfx942")
    check_lines(llvm, r"and i32 %arg3, 63", r"call range\(i32 0, 33\) i32 @llvm.amdgcn.mbcnt.lo\(i32 -1, i32 0\)",
                r"sub i32 %v\d+, %v\d+", r"icmp sge i32", r"select i1 %v\d+, i32 %v\d+, i32 %v\d+",
                r"shl i32 %v\d+, 2", r"call i32 @llvm.amdgcn.ds.bpermute", r"icmp slt i32 %v\d+, 64")
    # 4 of 32 bits, 2 for the 64-bit value, 1 for the 16-bit one
    assert gcn.count("ds_bpermute_b32") == 7, gcn


def test_votes_are_ballots_over_the_wavefront():
    @skc.kernel
    def votes(x: F32P, bits: skc.Ptr[skc.u64]):
        t = skc.thread_id(0)
        bits[t] = skc.ballot(x[t] > 0.0)
        x[t] = skc.where(skc.vote_any(x[t] > 1.0), 1.0, 0.0) + skc.where(skc.vote_all(x[t] > 2.0), 1.0, 0.0)
        x[t + 64] = skc.f32(skc.lane_id())

    llvm, gcn = gcn_of(votes, "gfx942")
    check_lines(llvm, r"call i64 @llvm.amdgcn.ballot.i64\(i1 %v\d+\)", r"store i64")
    assert llvm.count("@llvm.amdgcn.ballot.i64(") >= 4  # declaration and three votes
    check_lines(gcn, r"v_mbcnt_lo_u32_b32", r"v_mbcnt_hi_u32_b32")


@pytest.mark.parametrize("target", AMD)
def test_math_selects_the_hardware_instructions(target):
    @skc.kernel
    def math(x: F32P, i: skc.Ptr[skc.i32], u: skc.Ptr[skc.u64]):
        t = skc.thread_id(0)
        v = x[t]
        x[t] = skc.exp(v) + skc.log(v) + skc.rsqrt(v) + skc.sin(v) + skc.cos(v) + skc.exp2(v) + skc.log2(v)
        x[t + 64] = skc.tanh(v) + v ** v
        i[t] = skc.i32(v)
        u[t] = skc.u64(skc.f64(v))

    llvm, gcn = gcn_of(math, target)
    for intrinsic in ("llvm.exp.f32", "llvm.log.f32", "llvm.amdgcn.rsq.f32", "llvm.sin.f32", "llvm.cos.f32",
                      "llvm.exp2.f32", "llvm.log2.f32", "llvm.fptosi.sat.i32.f32", "llvm.fptoui.sat.i64.f64"):
        assert f"@{intrinsic}(" in llvm, intrinsic
    check_lines(llvm, r"call afn float @llvm.exp.f32")
    for instruction in ("v_exp_f32", "v_log_f32", "v_rsq_f32", "v_sin_f32", "v_cos_f32", "v_rcp_f32"):
        assert instruction in gcn, instruction
    assert "tanhf" not in gcn and "powf" not in gcn  # no library calls: there is no libm on the GPU


def test_fp8_conversions_on_gfx942_and_a_clear_error_on_gfx90a():
    @skc.kernel
    def fp8(x: F32P, y: skc.Ptr[skc.f8e4m3]):
        t = skc.thread_id(0)
        y[t] = skc.f8e4m3(x[t])
        x[t] = skc.f32(y[t + 1]) + skc.f32(skc.f8e5m2(x[t + 1]))

    llvm, gcn = gcn_of(fp8, "gfx942")
    check_lines(llvm, r"call float @llvm.minnum.f32", r"fmul float %v\d+, 0.5", r"@llvm.amdgcn.cvt.pk.fp8.f32",
                r"select i1 %v\d+, i8 127")
    for instruction in ("v_cvt_pk_fp8_f32", "v_cvt_f32_fp8", "v_cvt_pk_bf8_f32", "v_cvt_f32_bf8"):
        assert instruction in gcn, instruction
    with pytest.raises(CompileError, match="fp8 conversions need gfx942.*gfx90a has no fp8"):
        gcn_of(fp8, "gfx90a")


@skc.kernel
def op_zoo(x: F32P, i: skc.Ptr[skc.i32], u: skc.Ptr[skc.u32], h: skc.Ptr[skc.f16], n: skc.i32):
    t = skc.thread_id(0)
    v = x[t]
    x[t] = skc.exp(v) + skc.log(v) + skc.sqrt(v) + skc.rsqrt(v) + skc.sin(v) + skc.tanh(v) + skc.exp2(v)
    x[t + 1] = skc.floor(v) + skc.ceil(v) + skc.trunc(v) + skc.rint(v) + abs(v) + skc.fma(v, v, 1.0)
    x[t + 2] = min(v, 1.0) + max(v, 2.0) + v ** 2 + v ** 0.5 + v // 3.0 + v % 2.0
    w = i[t]
    i[t] = (w << 3) + (w >> 2) + (w & 7) + (w | 1) + (w ^ 5) + ~w + w // 7 + w % 5 + abs(w)
    u[t] = (u[t] >> 3) + u[t] // 3
    i[t + 1] = skc.i32(v) + skc.atomic_add(i + 5, 1) + skc.atomic_max(i + 6, w) + skc.i32(h[t])
    i[t + 2] = skc.atomic_cas(i + 7, 0, w) + skc.shfl_xor(w, 1) + skc.shfl_up(w, 1) + skc.shfl_down(w, 2)
    x[t + 3] = skc.shfl_idx(v, 0) + skc.f32(skc.ballot(v > 0.0)) + skc.where(skc.vote_any(v > 1.0), 1.0, 2.0)
    x[t + 4] = skc.f32(skc.f16(v)) + skc.f32(skc.bf16(v)) + skc.f32(skc.f64(v) * 2.0) + skc.f32(skc.grid_dim(1))
    skc.atomic_add(x + 9, v)
    assert n >= 0, "n must not be negative"


@pytest.mark.parametrize("target", AMD)
def test_every_op_family_links(target):
    compiled = op_zoo.compile(target=target, block=64)
    gcn = compiled.asm("gcn")
    # (gfx90a makes atomic max and float add compare-and-swap loops: they must work on fine-grained memory)
    for instruction in ("ds_bpermute_b32", "v_mbcnt_hi_u32_b32", "global_atomic_add", "global_atomic_cmpswap",
                        "s_trap", "v_exp_f32", "v_sqrt_f32", "v_rndne_f32", "v_cvt_f16_f32", "v_readlane_b32"):
        assert instruction in gcn, instruction
    assert compiled.resources["scratch_bytes"] == 0, compiled.resources


# -- MFMA ---------------------------------------------------------------------------------------------
MFMA_MODULE = """\
kernel @mfma(%0: ptr<global>, %1: ptr<global>, %2: ptr<global>) {{block = [64, 1, 1], shared_bytes = 0}} {{
  %3 = gpu.thread_id {{dim = 0}} : i32
  %4 = ptr.offset %0, %3 {{elem = vec<4x{dtype}>}} : ptr<global>
  %5 = mem.load %4 {{align = 8}} : vec<4x{dtype}>
  %6 = ptr.offset %1, %3 {{elem = vec<4x{dtype}>}} : ptr<global>
  %7 = mem.load %6 {{align = 8}} : vec<4x{dtype}>
  %8 = arith.constant {{value = 0.0}} : vec<{values}xf32>
  %9 = mfma.mma %8, %5, %7 {{m = {m}, n = {m}, k = {k}, dtype = "{dtype}"}} : vec<{values}xf32>
  %10 = mfma.mma %9, %7, %5 {{m = {m}, n = {m}, k = {k}, dtype = "{dtype}"}} : vec<{values}xf32>
  %11 = arith.constant {{value = {values}}} : i32
  %12 = arith.mul %3, %11 : i32
{stores}}}
"""
MFMA_INSTRUCTIONS = {  # (dtype, m) -> mnemonic on (gfx942, gfx90a)
    ("bf16", 32): ("v_mfma_f32_32x32x8_bf16", "v_mfma_f32_32x32x8bf16_1k"),
    ("bf16", 16): ("v_mfma_f32_16x16x16_bf16", "v_mfma_f32_16x16x16bf16_1k"),
    ("f16", 32): ("v_mfma_f32_32x32x8_f16", "v_mfma_f32_32x32x8f16"),
    ("f16", 16): ("v_mfma_f32_16x16x16_f16", "v_mfma_f32_16x16x16f16"),
}


def mfma_module(dtype: str, m: int) -> str:
    """Each lane loads its 4 A and 4 B values, runs two MFMAs and stores its accumulator values one by one."""
    k, values = (8, 16) if m == 32 else (16, 4)
    stores = []
    for i in range(values):
        v = 13 + 4 * i  # %v: the value, %v+1: i, %v+2: the index, %v+3: the address
        stores += [f"  %{v} = vec.extract %10 {{index = {i}}} : f32",
                   f"  %{v + 1} = arith.constant {{value = {i}}} : i32",
                   f"  %{v + 2} = arith.add %12, %{v + 1} : i32",
                   f"  %{v + 3} = ptr.offset %2, %{v + 2} {{elem = f32}} : ptr<global>",
                   f"  mem.store %{v + 3}, %{v} {{align = 4}}"]
    return MFMA_MODULE.format(dtype=dtype, m=m, k=k, values=values, stores="\n".join(stores) + "\n")


@pytest.mark.parametrize("dtype,m", sorted(MFMA_INSTRUCTIONS))
@pytest.mark.parametrize("target", AMD)
def test_mfma_lowers_to_matrix_core_instructions(target, dtype, m):
    llvm, assembly = gcn_of_ir(mfma_module(dtype, m), target)
    operand = "<4 x i16>" if dtype == "bf16" else "<4 x half>"
    check_lines(llvm, rf"call <{m * m // 64} x float> @llvm.amdgcn.mfma.f32.{m}x{m}x\d+{dtype}[.a-z0-9]*\({operand} ")
    mnemonic = MFMA_INSTRUCTIONS[(dtype, m)][AMD.index(target)]
    assert assembly.asm.count(mnemonic + " ") == 2, assembly.asm
    metadata = amdgpu_link.kernel_metadata(assembly.asm, "mfma")
    assert metadata[".private_segment_fixed_size"] == 0
    assert metadata[".vgpr_count"] + metadata[".agpr_count"] <= 512


def test_mfma_on_nvidia_is_a_clear_error():
    with pytest.raises(CompileError, match="'mfma.mma'.*sm_90a: MFMA is AMD's matrix-core instruction.*gfx942"):
        gcn_of_ir(mfma_module("bf16", 32), "sm_90a")


@pytest.mark.parametrize("target", AMD)
def test_mfma_code_object_links_and_its_assembly_has_mfmas(target):
    _, assembly = gcn_of_ir(mfma_module("bf16", 32), target)
    code_object = amdgpu_link.link_code_object(assembly.obj)
    assert code_object[:4] == b"\x7fELF" and b"mfma.kd\x00" in code_object
    mnemonic = MFMA_INSTRUCTIONS[("bf16", 32)][AMD.index(target)]
    check_lines(assembly.asm, r"^mfma:", mnemonic, mnemonic, r"s_endpgm")


# -- what CDNA lacks: clear errors ---------------------------------------------------------------------
HEAD = "kernel @k(%0: ptr<global>, %1: i32) {block = [128, 1, 1], shared_bytes = 64} {\n"
HOPPER_SAMPLES = {
    "mbarrier.init": "  %2 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n  mbarrier.init %2, %1\n",
    "mbarrier.wait": "  %2 = mem.shared {offset = 0, bytes = 8} : ptr<shared>\n  mbarrier.wait %2, %1\n",
    "fence.proxy_async": "  fence.proxy_async\n",
    "tma.commit": "  tma.commit\n",
    "wgmma.fence": "  wgmma.fence\n",
    "gpu.setmaxnreg": "  gpu.setmaxnreg {count = 240, action = \"inc\"}\n",
    "cluster.arrive": "  cluster.arrive\n",
}


@pytest.mark.parametrize("name", sorted(HOPPER_SAMPLES))
def test_hopper_ops_are_a_clear_error(name):
    with pytest.raises(CompileError, match=rf"'{name}'.*gfx942.*'{name}' is a Hopper op: it needs sm_90a"):
        gcn_of_ir(HEAD + HOPPER_SAMPLES[name] + "}\n", "gfx942")


@pytest.mark.parametrize("target, sequence", [("gfx942", ["buffer_wbl2 sc1", "buffer_inv sc1"]),
                                              ("gfx90a", ["buffer_wbinvl1_vol"])])
def test_the_device_wide_fence_is_an_agent_scope_fence(target, sequence):
    """skc.hopper.fence_acq_rel_gpu (CUDA's __threadfence; sm_80 has it too) on AMD: the memory model's agent-scope
    acquire-release (write back L2's lines before, invalidate after). It was refused as "a Hopper op: it needs
    sm_90a"."""
    llvm, assembly = gcn_of_ir(HEAD + "  fence.acq_rel_gpu\n}\n", target)
    assert 'fence syncscope("agent") acq_rel' in str(llvm)
    check_lines(assembly.asm, *[r"^\s*" + re.escape(line) for line in sequence])


def test_named_barriers_are_a_clear_error():
    with pytest.raises(CompileError, match="'gpu.barrier'.*gfx90a.*named barrier.*one barrier per work-group"):
        gcn_of_ir(HEAD + "  gpu.barrier {id = 1, threads = 128}\n}\n", "gfx90a")


@pytest.mark.parametrize("target", AMD)
def test_inline_asm_in_tile_ir_is_a_clear_error(target):
    """The frontend refuses skc.asm for AMD; tile IR holding gpu.asm (written as text, or made for NVIDIA) reached
    LLVM, which aborted the process ("Inline asm not supported by this streamer") when it emitted the code object."""
    module = ir.parse_module(HEAD + '  %2 = gpu.asm %1 {code = "v_mov_b32 $0, $1", constraints = "=v,v", '
                                    'side_effects = true} : i32\n}\n')
    with pytest.raises(CompileError, match=rf"'gpu.asm'.*{target}.*inline assembly is not available on AMD"):
        to_llvm(module, target)   # (the refusal comes before LLVM sees the module)


def test_printf_is_a_clear_error_at_its_line():
    from helpers import line_of

    @skc.kernel
    def talk(x: F32P):
        print("x is", x[0])  # the line

    with pytest.raises(CompileError, match=rf"test_amdgpu.py:{line_of(talk, '# the line')}:\d+: error: cannot "
                                           r"lower 'gpu.print'.*printf is not supported on AMD"):
        gcn_of(talk, "gfx942")


# -- metadata and tools ------------------------------------------------------------------------------
def test_metadata_parser_reads_llvms_yaml():
    text = """\
\t.amdgpu_metadata
---
amdhsa.kernels:
  - .agpr_count:     4
    .args:
      - .address_space:  global
        .name:           !str n
        .offset:         0
        .size:           8
        .value_kind:     global_buffer
      - .offset:         8
        .size:           4
        .value_kind:     hidden_block_count_x
    .name:           k
    .uses_dynamic_stack: false
    .reqd_workgroup_size: [ 64, 1, 1 ]
amdhsa.target:   'amdgcn-amd-amdhsa--gfx942:sramecc+:xnack-'
amdhsa.version:
  - 1
  - 2
...
\t.end_amdgpu_metadata
"""
    document = amdgpu_link.code_object_metadata(text)
    assert document["amdhsa.version"] == [1, 2]
    assert document["amdhsa.target"] == "amdgcn-amd-amdhsa--gfx942:sramecc+:xnack-"
    (kernel,) = document["amdhsa.kernels"]
    assert kernel[".agpr_count"] == 4 and kernel[".uses_dynamic_stack"] is False
    assert kernel[".reqd_workgroup_size"] == [64, 1, 1]
    assert kernel[".args"][0] == {".address_space": "global", ".name": "n", ".offset": 0, ".size": 8,
                                  ".value_kind": "global_buffer"}
    assert explicit_layout(kernel) == [(0, 8, "global_buffer")]


def test_missing_linker_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SKC_LD_LLD", "/nonexistent/ld.lld")
    with pytest.raises(DeviceError, match="needs ld.lld: SKC_LD_LLD names /nonexistent/ld.lld"):
        amdgpu_link.link_code_object(b"")   # (the user's choice named, not the wheel they already have)
    monkeypatch.delenv("SKC_LD_LLD")
    monkeypatch.setattr(amdgpu_link, "ld_lld_command", lambda: (None, 0))
    with pytest.raises(DeviceError, match="needs ld.lld.*pip install ziglang.*SKC_LD_LLD"):
        amdgpu_link.link_code_object(b"")


def test_the_linker_comes_from_a_pip_wheel_when_the_system_has_none(monkeypatch, tmp_path):
    """ziglang is one of skc's dependencies, so a fresh pip install links code objects; a system ld.lld
    (16 or newer) wins over it, and SKC_LD_LLD, an LLD of 16 or newer, over both."""
    monkeypatch.delenv("SKC_LD_LLD", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(amdgpu_link.glob, "glob", lambda pattern: [])  # no /usr/lib/llvm-NN either
    command, version = amdgpu_link.ld_lld_command()
    assert command is not None and command[-1] == "ld.lld" and "ziglang" in command[0], command
    assert version >= amdgpu_link.MINIMUM_VERSION
    chosen = tmp_path / "ld.lld"   # (a linker that says it is LLD 17)
    chosen.write_text("#!/bin/sh\necho 'LLD 17.0.6 (compatible with GNU linkers)'\n")
    chosen.chmod(0o755)
    monkeypatch.setenv("SKC_LD_LLD", str(chosen))
    assert amdgpu_link.ld_lld_command() == ((str(chosen),), 17)


def test_skc_compile_writes_every_stage_and_the_code_object(tmp_path, capsys):
    from skc import cli

    path = os.path.join(EXAMPLES, "vector_add.py")
    assert cli.main(["compile", path, "--target", "gfx942", "--emit", "tile,llvm,gcn", "-o", str(tmp_path)]) == 0
    assert sorted(os.listdir(tmp_path)) == ["vector_add.hsaco", "vector_add.ll", "vector_add.s", "vector_add.tile"]
    assert (tmp_path / "vector_add.hsaco").read_bytes()[:4] == b"\x7fELF"
    check_lines((tmp_path / "vector_add.s").read_text(), r"\.amdgcn_target", r"global_load_dwordx4")
    assert cli.main(["compile", f"{path}::vector_add", "--target", "gfx90a"]) == 0  # default stages: ... gcn
    assert "// ----- vector_add: gcn (gfx90a) -----" in capsys.readouterr().out


def copy(x: F32P, y: F32P, n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        y[i] = x[i]


def test_code_object_metadata_survives_the_disk_cache():
    first = skc.kernel(copy).compile(target="gfx942", block=64)
    again = skc.kernel(copy).compile(target="gfx942", block=64)
    assert not first.from_cache and again.from_cache
    assert again.binary == first.binary
    assert again.metadata["amdgpu"] == first.metadata["amdgpu"] and again.resources == first.resources


# -- launching on HIP -----------------------------------------------------------------------------------
def _hip_present() -> bool:
    from skc.runtime import hip

    try:
        return hip.device_count() > 0
    except DeviceError:
        return False


no_rocm = pytest.mark.skipif(_hip_present(), reason="a ROCm runtime with an AMD GPU is present")


@no_rocm
def test_hip_launch_without_rocm_names_what_is_missing():
    import numpy as np

    example = load_example("vector_add")
    x = np.zeros(256, np.float32)
    with pytest.raises(DeviceError, match="hip-python|ROCm"):
        example.vector_add.on("hip")[1, 256](x, x, x, 256)


@no_rocm
def test_selecting_the_hip_device_without_rocm_fails_and_keeps_the_device():
    before = skc.current_device()
    try:
        with pytest.raises(DeviceError, match="hip-python|ROCm"):
            skc.set_device("hip")
        assert skc.current_device() is before
    finally:
        skc.set_device(before)


class FakeHip:
    """Stands in for hip-python's `hip` module: records what the launcher loads and launches."""

    HIP_LAUNCH_PARAM_BUFFER_POINTER, HIP_LAUNCH_PARAM_BUFFER_SIZE, HIP_LAUNCH_PARAM_END = 1, 2, 3

    def __init__(self):
        self.calls, self.launches = [], []

    def hipSetDevice(self, index):
        self.calls.append(("hipSetDevice", index))
        return (0,)

    def hipModuleLoadData(self, image):
        self.calls.append(("hipModuleLoadData", bytes(image)))
        return (0, "module")

    def hipModuleGetFunction(self, module, name):
        self.calls.append(("hipModuleGetFunction", module, name))
        return (0, "function")

    def hipModuleLaunchKernel(self, f, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        tags = (ctypes.c_void_p * 5).from_address(extra)
        size = ctypes.c_size_t.from_address(tags[3]).value
        image = ctypes.string_at(tags[1], size)
        self.launches.append(((f, gx, gy, gz, bx, by, bz, shared, stream, params),
                              (tags[0], tags[2], tags[4]), image))
        return (0,)


class FakeDeviceArray:
    """Device memory as cupy describes it (__cuda_array_interface__; cupy's ROCm build too)."""

    def __init__(self, address, typestr="<f4"):
        self.address, self.typestr = address, typestr

    @property
    def __cuda_array_interface__(self):
        return {"data": (self.address, False), "typestr": self.typestr, "shape": (256,), "version": 3}


def test_hip_launcher_writes_the_kernel_argument_image(monkeypatch):
    import numpy as np
    from skc.runtime import hip
    from skc.runtime.devices import Device
    from skc.runtime.hip_launcher import HipLauncher

    fake = FakeHip()
    monkeypatch.setattr(hip, "_hip", lambda: fake)
    compiled = compiled_example("sgemm", "gfx942")
    launcher = HipLauncher(compiled, Device("hip", 0))
    assert fake.calls == [("hipSetDevice", 0), ("hipModuleLoadData", compiled.binary),
                          ("hipModuleGetFunction", "module", b"sgemm")]
    a, b, c = FakeDeviceArray(0x1000), FakeDeviceArray(0x2000), FakeDeviceArray(0x3008)
    launcher.launch((a, b, c, 70, 66, 37), (2, 3, 1), 0)
    (call, tags, image), = fake.launches
    assert call == ("function", 2, 3, 1, 256, 1, 1, 0, 0, None)  # static LDS: no dynamic shared memory
    assert tags == (1, 2, 3)
    assert image == struct.pack("<QQQiii", 0x1000, 0x2000, 0x3008, 70, 66, 37)
    with pytest.raises(LaunchError, match="argument 'b' is in cpu memory.*the kernel runs on hip:0"):
        launcher.launch((a, np.zeros(4, np.float32), c, 1, 1, 1), (1, 1, 1), 0)
    with pytest.raises(LaunchError, match="argument 'a' has dtype f16, the kernel's parameter takes f32"):
        launcher.launch((FakeDeviceArray(0x10, "<f2"), b, c, 1, 1, 1), (1, 1, 1), 0)
    with pytest.raises(LaunchError, match="argument 'M' = 4294967296 does not fit in i32"):
        launcher.launch((a, b, c, 2 ** 32, 1, 1), (1, 1, 1), 0)
    assert len(fake.launches) == 1


def test_hip_launcher_needs_an_amd_code_object():
    from skc.runtime.devices import Device
    from skc.runtime.hip_launcher import HipLauncher

    compiled = load_example("vector_add").vector_add.compile(target="sm_90a")
    with pytest.raises(LaunchError, match="compiled for sm_90a, not into an AMD code object"):
        HipLauncher(compiled, Device("hip", 0))


@skc.kernel(block=64)
def narrow_scalars(x: F32P, h: skc.bf16, g: skc.f8e4m3, e: skc.f8e5m2fnuz):
    x[0] = skc.f32(h) + skc.f32(g) + skc.f32(e)


@pytest.mark.parametrize("g", [1, 1.0])
def test_hip_launcher_writes_narrow_float_scalars_as_the_interpreter_reads_them(monkeypatch, g):
    """An fp8 slot took an int as its code (1 gave 0x01, 2**-9, where the interpreter reads 1.0) and refused a float;
    a bf16 one rounded a Python float to f32 first (twice). Both now round once, as numerics.from_python."""
    from skc.runtime import hip
    from skc.runtime.devices import Device
    from skc.runtime.hip_launcher import HipLauncher

    fake = FakeHip()
    monkeypatch.setattr(hip, "_hip", lambda: fake)
    compiled = narrow_scalars.compile(F32P, skc.bf16, skc.f8e4m3, skc.f8e5m2fnuz, target="gfx942")
    offsets = [a[".offset"] for a in compiled.metadata["kernel_arguments"]]
    launcher = HipLauncher(compiled, Device("hip", 0))
    launcher.launch((FakeDeviceArray(4096), 1 + 2 ** -8 + 2 ** -30, g, -0.0), (1, 1, 1), 0)
    image = fake.launches[-1][2]
    assert int.from_bytes(image[offsets[1]:offsets[1] + 2], "little") == 0x3F81   # 1 + 2**-7: rounded once
    assert image[offsets[2]] == 0x38 and image[offsets[3]] == 0x00                # 1.0; FNUZ has no -0


@pytest.mark.parametrize("chosen", ["/bin/true", "folder"])
def test_skc_ld_lld_naming_no_ld_lld_is_refused_by_name(monkeypatch, tmp_path, chosen):
    """SKC_LD_LLD naming a program that is no LLVM linker, or a folder, was taken as the linker: the link ended in
    FileNotFoundError (no code object written) or PermissionError (a helper's search, sixtieth session)."""
    from skc.backends import amdgpu_link

    path = str(tmp_path) if chosen == "folder" else chosen
    monkeypatch.setenv("SKC_LD_LLD", path)
    assert amdgpu_link.ld_lld_command()[0] is None and amdgpu_link.ld_lld_path() is None
    with pytest.raises(skc.DeviceError, match=f"SKC_LD_LLD names {path}, which is no ld.lld of version 16"):
        amdgpu_link.link_code_object(b"")
