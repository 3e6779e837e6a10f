"""AMDGPU lowering of the execution-model ops: work-item and work-group ids, the grid size (code
object v5 implicit arguments), lane ids, s_barrier, wavefront shuffles (ds_bpermute) and votes
(ballot), traps, MFMA; and the clear errors for what CDNA lacks (printf, named barriers, Hopper ops)
and for what llvmlite's LLVM cannot emit for it (inline assembly)."""
from __future__ import annotations

from .. import ir
from .llvm_text import int_literal
from .lowering import FunctionLowering

WAVE = 64
_DIM = "xyz"
# Code object v5 implicit kernel arguments (LLVM AMDGPUUsage, "Code Object V5 Metadata"): the number
# of work-groups along x, y, z (hidden_block_count_*) are the first three u32 after the explicit ones.
_BLOCK_COUNT_OFFSET = (0, 4, 8)
# MFMA intrinsics (LLVM IntrinsicsAMDGPU.td); the bf16 '1k' forms take their operands as <4 x i16>.
_MFMA = {("bf16", 32): "llvm.amdgcn.mfma.f32.32x32x8bf16.1k", ("bf16", 16): "llvm.amdgcn.mfma.f32.16x16x16bf16.1k",
         ("f16", 32): "llvm.amdgcn.mfma.f32.32x32x8f16", ("f16", 16): "llvm.amdgcn.mfma.f32.16x16x16f16"}
# Ops of Hopper's asynchronous machinery (ops_async.py) that CDNA has no counterpart for.
_HOPPER_PREFIXES = ("mbarrier.", "tma.", "wgmma.", "cluster.", "fence.", "cp.async")
_HOPPER_OPS = {"gpu.setmaxnreg"}


def _lower_thread_id(lw: FunctionLowering, op: ir.Op):
    dim = op.attrs["dim"]
    known = (0, lw.fn.attrs.get("block", (1024, 1024, 1024))[dim])
    lw.set(op, lw.call(f"llvm.amdgcn.workitem.id.{_DIM[dim]}", "i32", [], result_range=known))


def _lower_block_id(lw: FunctionLowering, op: ir.Op):
    dim = op.attrs["dim"]  # the range LLVM may assume: the target's launch limits
    lw.set(op, lw.call(f"llvm.amdgcn.workgroup.id.{_DIM[dim]}", "i32", [], result_range=(0, lw.target.target.max_grid[dim])))


def _lower_grid_dim(lw: FunctionLowering, op: ir.Op):
    """One scalar load of hidden_block_count_<dim>, which the HIP runtime writes for every launch of a
    code object v5 kernel (no division of the dispatch packet's grid size by the work-group size)."""
    dim = op.attrs["dim"]
    implicit = lw.call("llvm.amdgcn.implicitarg.ptr", "ptr addrspace(4)", [])
    field = lw.text.value(f"getelementptr inbounds i8, ptr addrspace(4) {implicit}, i64 {_BLOCK_COUNT_OFFSET[dim]}")
    known = f"!range !{{i32 1, i32 {int_literal(lw.target.target.max_grid[dim] + 1, ir.i32)}}}"
    lw.set(op, lw.text.value(f"load i32, ptr addrspace(4) {field}, align 4, !invariant.load !{{}}, {known}"))


def lane_id(lw: FunctionLowering) -> str:
    """The lane within the wavefront: the count of lanes below this one (v_mbcnt_lo/hi over all 64)."""
    low = lw.call("llvm.amdgcn.mbcnt.lo", "i32", ["i32 -1", "i32 0"], result_range=(0, 33))
    return lw.call("llvm.amdgcn.mbcnt.hi", "i32", ["i32 -1", f"i32 {low}"], result_range=(0, WAVE))


def _lower_lane_id(lw: FunctionLowering, op: ir.Op):
    lw.set(op, lane_id(lw))


def _lower_barrier(lw: FunctionLowering, op: ir.Op):
    if op.attrs.get("threads") is not None or op.operands:
        lw.fail(op, f"a barrier of {op.attrs['threads']} threads is a named barrier; AMD CDNA has one barrier per "
                    "work-group (s_barrier): synchronize the whole block, or use shared-memory flags")
    # s_barrier orders execution only; the workgroup-scope fences make LDS and global writes before it
    # visible after it (AMDGPUUsage memory model: release/acquire at workgroup scope).
    lw.text.emit('fence syncscope("workgroup") release')
    lw.call("llvm.amdgcn.s.barrier", "void", [])
    lw.text.emit('fence syncscope("workgroup") acquire')


def _lower_barrier_arrive(lw: FunctionLowering, op: ir.Op):
    lw.fail(op, "barrier_arrive is a named barrier's (PTX bar.arrive); AMD CDNA has one barrier per work-group "
                "(s_barrier): synchronize the whole block, or use shared-memory flags")


def _wave_lanes(lw: FunctionLowering) -> str | None:
    """How many lanes this thread's wavefront has (the block's last one may have fewer than 64: the lanes past the
    block's end do not exist), or None where every wavefront of the block is whole or the block is not known."""
    block = lw.fn.attrs.get("block")
    if block is None or (block[0] * block[1] * block[2]) % WAVE == 0:
        return None
    x, y, _ = block
    text = lw.text
    # wavefronts are made of consecutive linear work-item ids, x fastest
    ids = [lw.call(f"llvm.amdgcn.workitem.id.{d}", "i32", [], result_range=(0, n)) for d, n in zip(_DIM, block)]
    linear = text.value(f"mul i32 {ids[2]}, {y}")
    linear = text.value(f"add i32 {linear}, {ids[1]}")
    linear = text.value(f"mul i32 {linear}, {x}")
    linear = text.value(f"add i32 {linear}, {ids[0]}")
    first = text.value(f"and i32 {linear}, {-WAVE}")
    rest = text.value(f"sub i32 {x * y * block[2]}, {first}")
    return lw.call("llvm.umin.i32", "i32", [f"i32 {rest}", f"i32 {WAVE}"])


def _source_lane(lw: FunctionLowering, mode: str, amount: str) -> str:
    """The lane to read, as the IR defines it: the amount's low 6 bits n give lane n (idx), lane -/+ n
    (up/down), lane ^ n (xor); a lane outside the wavefront, or past the block's last thread, reads its own
    value (ds_bpermute would read 0 from a lane that does not exist)."""
    text = lw.text
    n = text.value(f"and i32 {amount}, {WAVE - 1}")
    lanes = _wave_lanes(lw)
    if mode == "idx" and lanes is None:
        return n
    lane = lane_id(lw)
    if mode == "idx":
        source = n
    elif mode == "xor":
        source = text.value(f"xor i32 {lane}, {n}")
    elif mode == "up":
        source = text.value(f"sub i32 {lane}, {n}")
        inside = text.value(f"icmp sge i32 {source}, 0")
        source = text.value(f"select i1 {inside}, i32 {source}, i32 {lane}")
    else:
        source = text.value(f"add i32 {lane}, {n}")
        inside = text.value(f"icmp slt i32 {source}, {WAVE}")
        source = text.value(f"select i1 {inside}, i32 {source}, i32 {lane}")
    if lanes is None:
        return source
    exists = text.value(f"icmp ult i32 {source}, {lanes}")
    return text.value(f"select i1 {exists}, i32 {source}, i32 {lane}")


def _lower_shuffle(lw: FunctionLowering, op: ir.Op):
    """ds_bpermute_b32 (CDNA3 ISA 11.1): each lane reads a 32-bit word of the lane at byte address 4 * source."""
    value, amount = op.operands
    t = value.type
    ty = lw.type(t)
    text = lw.text
    address = text.value(f"shl i32 {_source_lane(lw, op.attrs['mode'], lw.get(amount))}, 2")

    def permute(word: str) -> str:
        return lw.call("llvm.amdgcn.ds.bpermute", "i32", [f"i32 {address}", f"i32 {word}"])

    if t.bits == 32:
        word = lw.get(value) if ty == "i32" else text.value(f"bitcast {ty} {lw.get(value)} to i32")
        moved = permute(word)
        lw.set(op, moved if ty == "i32" else text.value(f"bitcast i32 {moved} to {ty}"))
    elif t.bits == 64:
        halves = text.value(f"bitcast {ty} {lw.get(value)} to <2 x i32>")
        joined = "poison"
        for i in range(2):
            part = permute(text.value(f"extractelement <2 x i32> {halves}, i32 {i}"))
            joined = text.value(f"insertelement <2 x i32> {joined}, i32 {part}, i32 {i}")
        lw.set(op, text.value(f"bitcast <2 x i32> {joined} to {ty}"))
    else:
        bits = text.value(f"bitcast {ty} {lw.get(value)} to i16")
        moved = permute(text.value(f"zext i16 {bits} to i32"))
        narrow = text.value(f"trunc i32 {moved} to i16")
        lw.set(op, text.value(f"bitcast i16 {narrow} to {ty}"))


def _ballot(lw: FunctionLowering, predicate: str) -> str:
    """The wavefront's bit mask of active lanes where predicate holds (v_cmp into an SGPR pair)."""
    return lw.call("llvm.amdgcn.ballot.i64", "i64", [f"i1 {predicate}"])


def _lower_vote(lw: FunctionLowering, op: ir.Op):
    mode = op.attrs["mode"]
    predicate = lw.get(op.operands[0])
    if mode == "ballot":
        if op.result.type is not ir.u64:
            lw.fail(op, f"a ballot over a wavefront of {WAVE} lanes is u64, found {op.result.type}")
        lw.set(op, _ballot(lw, predicate))
    elif mode == "any":
        lw.set(op, lw.text.value(f"icmp ne i64 {_ballot(lw, predicate)}, 0"))
    else:  # all: no active lane where the predicate fails
        failing = lw.text.value(f"xor i1 {predicate}, true")
        lw.set(op, lw.text.value(f"icmp eq i64 {_ballot(lw, failing)}, 0"))


def _lower_elect_one(lw: FunctionLowering, op: ir.Op):
    """The lowest active lane: the first set bit of the active lanes' mask."""
    first = lw.call("llvm.cttz.i64", "i64", [f"i64 {_ballot(lw, 'true')}", "i1 true"])
    lane = lw.text.value(f"zext i32 {lane_id(lw)} to i64")
    lw.set(op, lw.text.value(f"icmp eq i64 {lane}, {first}"))


def _lower_print(lw: FunctionLowering, op: ir.Op):
    lw.fail(op, "device printf is not supported on AMD GPUs; print from the CPU interpreter "
                "(kernel.interpret[grid, block](...)) or copy values to an output array")


def _lower_asm(lw: FunctionLowering, op: ir.Op):
    """Refused here, as the frontend refuses skc.asm for AMD: LLVM would abort the whole process (it cannot emit a
    code object holding inline assembly without an AMDGPU assembly parser, which llvmlite's LLVM lacks)."""
    lw.fail(op, "inline assembly is not available on AMD targets: the LLVM inside llvmlite has no AMDGPU assembly "
                "parser, which emitting a code object with inline assembly needs; use skc's builtins")


def _lower_assert(lw: FunctionLowering, op: ir.Op):
    lw.trap_unless(op.operands[0])  # s_trap 2: the HIP runtime reports the queue error


def _lower_mfma(lw: FunctionLowering, op: ir.Op):
    """v_mfma_f32_{32x32x8,16x16x16}_{bf16,f16}: D = A B + C for the wavefront (cbsz, abid, blgp = 0:
    no broadcast of A blocks, no swizzle of B lanes)."""
    if not lw.target.target.has("mfma"):
        lw.fail(op, f"{lw.target.name} has no matrix cores (MFMA)")
    acc, a, b = op.operands
    dtype, m = op.attrs["dtype"], op.attrs["m"]
    operands = []
    for value in (a, b):
        if dtype == "bf16":
            operands.append(f"<4 x i16> {lw.text.value(f'bitcast {lw.typed(value)} to <4 x i16>')}")
        else:
            operands.append(lw.typed(value))
    acc_type = lw.type(acc.type)
    lw.set(op, lw.call(_MFMA[(dtype, m)], acc_type, operands + [lw.typed(acc), "i32 0", "i32 0", "i32 0"]))


def _lower_fence_acq_rel_gpu(lw: FunctionLowering, op: ir.Op):
    """The device-wide acquire-release fence (CUDA's __threadfence, PTX fence.acq_rel.gpu) at agent scope, the
    AMDGPU memory model's whole-GPU scope (LLVM AMDGPUUsage: writeback of L2 before, invalidation after)."""
    lw.text.emit('fence syncscope("agent") acq_rel')


def _lower_hopper(lw: FunctionLowering, op: ir.Op):
    lw.fail(op, f"'{op.name}' is a Hopper op: it needs sm_90a (NVIDIA); {lw.target.name} (AMD CDNA) has no "
                "equivalent. Build AMD kernels from the AMD blocks (LDS loader, ring-buffer pipeline, MFMA)")


OPS = {
    "gpu.thread_id": _lower_thread_id, "gpu.block_id": _lower_block_id, "gpu.grid_dim": _lower_grid_dim,
    "gpu.lane_id": _lower_lane_id, "gpu.barrier": _lower_barrier, "gpu.barrier_arrive": _lower_barrier_arrive,
    "gpu.shuffle": _lower_shuffle,
    "gpu.vote": _lower_vote, "gpu.elect_one": _lower_elect_one, "gpu.print": _lower_print,
    "gpu.assert": _lower_assert, "gpu.asm": _lower_asm, "mfma.mma": _lower_mfma,
    **{name: _lower_hopper for name in ir.OPS if name.startswith(_HOPPER_PREFIXES) or name in _HOPPER_OPS},
    "fence.acq_rel_gpu": _lower_fence_acq_rel_gpu,   # (not Hopper's alone: every GPU orders memory device-wide)
}
