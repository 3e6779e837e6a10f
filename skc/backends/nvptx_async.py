"""NVPTX lowering of the asynchronous Hopper ops: mbarriers, proxy fences, TMA, wgmma,
setmaxnreg and clusters (LLVM 22 NVVM intrinsics; inline PTX where none exists)."""
from __future__ import annotations

from ..ir.ops_async import WGMMA_FP8_TYPES, wgmma_k
from .llvm_text import asm_string
from .lowering import FunctionLowering

SHARED = "ptr addrspace(3)"


def _bar(lw: FunctionLowering, op, index: int = 0) -> str:
    return f"{SHARED} {lw.get(op.operands[index])}"


def _asm(lw: FunctionLowering, code: str, constraints: str, args, ret: str = "void") -> str:
    line = f"call {ret} asm sideeffect {asm_string(code)}, {asm_string(constraints)}({', '.join(args)})"
    if ret == "void":
        lw.text.emit(line)
        return ""
    return lw.text.value(line)


# -- mbarriers -----------------------------------------------------------------------------------
def _init(lw, op):
    lw.call("llvm.nvvm.mbarrier.init.shared", "void", [_bar(lw, op), lw.typed(op.operands[1])])


def _arrive(lw, op):
    count = op.attrs.get("count", 1)
    if count == 1:
        lw.call("llvm.nvvm.mbarrier.arrive.shared", "i64", [_bar(lw, op)])
    else:
        _asm(lw, f"mbarrier.arrive.shared::cta.b64 _, [$0], {count};", "r", [_shared_u32(lw, op.operands[0])])


def _arrive_tx(lw, op):
    lw.call("llvm.nvvm.mbarrier.arrive.expect.tx.scope.cta.space.cta", "i64",
            [_bar(lw, op), lw.typed(op.operands[1])])


def _expect_tx(lw, op):
    _asm(lw, "mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [$0], $1;", "r,r",
         [_shared_u32(lw, op.operands[0]), lw.typed(op.operands[1])])


def _arrive_cluster(lw, op):
    # PTX 9.7.9.21 (mapa): the same offset in another block's shared memory, then an arrive there with
    # the default semantics (release at CTA scope: what the consumer read came from the async proxy,
    # which the wgmma wait already ordered); a cluster-scope release costs about a microsecond each.
    _asm(lw, "{\n.reg .b32 remote;\nmapa.shared::cluster.u32 remote, $0, $1;\n"
             "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}",
         "r,r", [_shared_u32(lw, op.operands[0]), lw.typed(op.operands[1])])


def _shared_u32(lw, value) -> str:
    return f"i32 {lw.text.value(f'ptrtoint {SHARED} {lw.get(value)} to i32')}"


def _try_wait(lw, op) -> str:
    return lw.call("llvm.nvvm.mbarrier.try.wait.parity.scope.cta.space.cta", "i1",
                   [_bar(lw, op), lw.typed(op.operands[1])])


def _wait(lw, op):
    if lw.fn.attrs.get("debug"):   # the hang guard: a bounded wait that traps with a record (nvptx_debug.py)
        from .nvptx_debug import lower_guarded_wait

        return lower_guarded_wait(lw, op, _try_wait)
    text = lw.text
    spin, done = text.new_label("spin"), text.new_label("ready")
    text.start_block(spin)
    ready = _try_wait(lw, op)
    text.terminate(f"br i1 {ready}, label %{done}, label %{spin}")
    text.start_block(done)


def _try_wait_op(lw, op):
    lw.set(op, _try_wait(lw, op))


def _fence_proxy(lw, op):
    lw.call("llvm.nvvm.fence.proxy.async.shared_cta", "void", [])


def _fence_acq_rel_gpu(lw, op):
    _asm(lw, "fence.acq_rel.gpu;", "", [])


def _fence_mbarrier_init(lw, op):
    _asm(lw, "fence.mbarrier_init.release.cluster;", "", [])


# -- cp.async ------------------------------------------------------------------------------------
def _cp_async(lw, op):
    # .cg (L2 only) where it exists, 16 bytes; .ca otherwise. With a mask, the src-size form: 0 bytes read, all filled
    # with zeros, where it is false
    nbytes = op.attrs["bytes"]
    level = "cg" if nbytes == 16 else "ca"
    args = [_bar(lw, op, 0), lw.typed(op.operands[1])]
    if len(op.operands) == 3:
        size = lw.text.value(f"select i1 {lw.get(op.operands[2])}, i32 {nbytes}, i32 0")
        lw.call(f"llvm.nvvm.cp.async.{level}.shared.global.{nbytes}.s", "void", [*args, f"i32 {size}"])
    else:
        lw.call(f"llvm.nvvm.cp.async.{level}.shared.global.{nbytes}", "void", args)


def _cp_async_arrive(lw, op):
    lw.call("llvm.nvvm.cp.async.mbarrier.arrive.noinc.shared", "void", [_bar(lw, op)])


# -- TMA -----------------------------------------------------------------------------------------
def _tma_load(lw, op):
    rank = op.attrs["rank"]
    multicast = op.attrs.get("multicast", False)
    dst = lw.text.value(f"addrspacecast {SHARED} {lw.get(op.operands[0])} to ptr addrspace(7)")
    coords = [lw.typed(v) for v in op.operands[3:3 + rank]]
    mask = lw.typed(op.operands[-1]) if multicast else "i16 0"
    lw.call(f"llvm.nvvm.cp.async.bulk.tensor.g2s.tile.{rank}d", "void",
            [f"ptr addrspace(7) {dst}", _bar(lw, op, 1), f"ptr {lw.get(op.operands[2])}", *coords, mask,
             "i64 0", f"i1 {'true' if multicast else 'false'}", "i1 false", "i32 0"])


def _tma_store(lw, op):
    rank = op.attrs["rank"]
    coords = [lw.typed(v) for v in op.operands[2:]]
    lw.call(f"llvm.nvvm.cp.async.bulk.tensor.s2g.tile.{rank}d", "void",
            [_bar(lw, op, 1), f"ptr {lw.get(op.operands[0])}", *coords, "i64 0", "i1 false"])


def _tma_prefetch(lw, op):
    _asm(lw, "prefetch.tensormap [$0];", "l", [f"ptr {lw.get(op.operands[0])}"])


def _tma_commit(lw, op):
    lw.call("llvm.nvvm.cp.async.bulk.commit.group", "void", [])


def _tma_wait(lw, op):
    kind = "wait.group.read" if op.attrs.get("read", False) else "wait.group"
    lw.call(f"llvm.nvvm.cp.async.bulk.{kind}", "void", [f"i32 {op.attrs['pending']}"])


# -- wgmma ---------------------------------------------------------------------------------------
def _wgmma_fence(lw, op):
    lw.call("llvm.nvvm.wgmma.fence.sync.aligned", "void", [])


def _wgmma_commit(lw, op):
    lw.call("llvm.nvvm.wgmma.commit_group.sync.aligned", "void", [])


def _wgmma_wait(lw, op):
    lw.call("llvm.nvvm.wgmma.wait_group.sync.aligned", "void", [f"i64 {op.attrs['pending']}"])


_WGMMA_PTX_TYPE = {"bf16": "bf16", "f16": "f16", "f8e4m3": "e4m3", "f8e5m2": "e5m2"}


def _transposes(op) -> str:
    """The imm-trans-a, imm-trans-b operands: only the f16/bf16 forms have them (fp8 is K-major only)."""
    if op.attrs["dtype"] in WGMMA_FP8_TYPES:
        return ""
    return f", {op.attrs.get('trans_a', 0)}, {op.attrs.get('trans_b', 0)}"


def _wgmma_mma(lw, op):
    """wgmma.mma_async as inline PTX (LLVM 22 has no intrinsic): the fragment is n/2 floats in and out."""
    acc, desc_a, desc_b = op.operands
    n, dtype = op.attrs["n"], op.attrs["dtype"]
    dtype_b = op.attrs.get("dtype_b", dtype)
    count = n // 2
    zero = bool(op.attrs.get("zero_acc", 0))  # scale-d = 0: D = A B; the accumulator's registers are not inputs
    inputs = [] if zero else [
        f"float {lw.text.value(f'extractelement <{count} x float> {lw.get(acc)}, i32 {i}')}" for i in range(count)]
    outputs = ", ".join(f"${i}" for i in range(count))
    code = ("{\n.reg .pred p;\n"
            f"setp.ne.b32 p, ${count + 2}, 0;\n"
            f"wgmma.mma_async.sync.aligned.m64n{n}k{wgmma_k(dtype)}.f32.{_WGMMA_PTX_TYPE[dtype]}."
            f"{_WGMMA_PTX_TYPE[dtype_b]} {{{outputs}}}, ${count}, ${count + 1}, p, 1, 1{_transposes(op)};\n}}")
    constraints = ",".join(["=f"] * count + ["l", "l", "r"] + ([] if zero else [str(i) for i in range(count)]))
    struct = "{ " + ", ".join(["float"] * count) + " }"
    result = _asm(lw, code, constraints, [lw.typed(desc_a), lw.typed(desc_b), f"i32 {int(not zero)}"] + inputs,
                  struct)
    current = "poison"
    for i in range(count):
        element = lw.text.value(f"extractvalue {struct} {result}, {i}")
        current = lw.text.value(f"insertelement <{count} x float> {current}, float {element}, i32 {i}")
    lw.set(op, current)


def _wgmma_mma_rs(lw, op):
    """wgmma.mma_async with A from registers (PTX ISA 9.7.15.5.2): the 8 f16/bf16 values of a thread's A
    fragment travel as 4 .b32 registers (pairs in element order), then d, a, b-desc, scale-d, imm-scale-a,
    imm-scale-b, imm-trans-b (this form has no imm-trans-a)."""
    acc, a, desc_b = op.operands
    n, dtype = op.attrs["n"], op.attrs["dtype"]
    count = n // 2
    vector = lw.get(acc)
    inputs = [f"float {lw.text.value(f'extractelement <{count} x float> {vector}, i32 {i}')}" for i in range(count)]
    element = "bfloat" if dtype == "bf16" else "half"
    words = lw.text.value(f"bitcast <8 x {element}> {lw.get(a)} to <4 x i32>")
    registers = [f"i32 {lw.text.value(f'extractelement <4 x i32> {words}, i32 {i}')}" for i in range(4)]
    outputs = ", ".join(f"${i}" for i in range(count))
    a_regs = ", ".join(f"${count + i}" for i in range(4))
    code = ("{\n.reg .pred p;\n"
            f"setp.ne.b32 p, ${count + 5}, 0;\n"
            f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{_WGMMA_PTX_TYPE[dtype]}.{_WGMMA_PTX_TYPE[dtype]} "
            f"{{{outputs}}}, {{{a_regs}}}, ${count + 4}, p, 1, 1, {op.attrs.get('trans_b', 0)};\n}}")
    constraints = ",".join(["=f"] * count + ["r"] * 4 + ["l", "r"] + [str(i) for i in range(count)])
    struct = "{ " + ", ".join(["float"] * count) + " }"
    result = _asm(lw, code, constraints, registers + [lw.typed(desc_b), "i32 1"] + inputs, struct)
    current = "poison"
    for i in range(count):
        value = lw.text.value(f"extractvalue {struct} {result}, {i}")
        current = lw.text.value(f"insertelement <{count} x float> {current}, float {value}, i32 {i}")
    lw.set(op, current)


# -- registers, clusters --------------------------------------------------------------
def _setmaxnreg(lw, op):
    lw.call(f"llvm.nvvm.setmaxnreg.{op.attrs['action']}.sync.aligned.u32", "void", [f"i32 {op.attrs['count']}"])


def _cluster_id(lw, op):
    lw.set(op, lw.call(f"llvm.nvvm.read.ptx.sreg.clusterid.{'xyz'[op.attrs['dim']]}", "i32", []))


def _cluster_rank(lw, op):
    lw.set(op, lw.call("llvm.nvvm.read.ptx.sreg.cluster.ctarank", "i32", [], result_range=(0, 16)))


def _cluster_arrive(lw, op):
    lw.call("llvm.nvvm.barrier.cluster.arrive", "void", [])


def _cluster_wait(lw, op):
    lw.call("llvm.nvvm.barrier.cluster.wait", "void", [])


OPS = {
    "mbarrier.init": _init, "mbarrier.arrive": _arrive, "mbarrier.arrive_tx": _arrive_tx,
    "mbarrier.expect_tx": _expect_tx, "mbarrier.arrive_cluster": _arrive_cluster, "mbarrier.wait": _wait,
    "mbarrier.try_wait": _try_wait_op, "fence.proxy_async": _fence_proxy, "fence.mbarrier_init": _fence_mbarrier_init,
    "fence.acq_rel_gpu": _fence_acq_rel_gpu,
    "tma.load": _tma_load, "tma.store": _tma_store, "tma.prefetch": _tma_prefetch, "tma.commit": _tma_commit,
    "tma.wait": _tma_wait, "cp.async": _cp_async, "cp.async.arrive": _cp_async_arrive,
    "wgmma.fence": _wgmma_fence, "wgmma.commit": _wgmma_commit, "wgmma.wait": _wgmma_wait, "wgmma.mma": _wgmma_mma,
    "wgmma.mma_rs": _wgmma_mma_rs,
    "gpu.setmaxnreg": _setmaxnreg, "cluster.id": _cluster_id,
    "cluster.rank": _cluster_rank, "cluster.arrive": _cluster_arrive, "cluster.wait": _cluster_wait,
}


# -- TMA im2col ----------------------------------------------------------------------------------
def _tma_load_im2col(lw, op):
    """cp.async.bulk.tensor.Nd.shared::cluster.global.im2col (PTX ISA 9.7.9.25.5.1): LLVM 22's
    g2s.im2col.Nd takes the rank's i32 coordinates, then rank-2 i16 offsets, then the multicast mask,
    cache hint, their two enables and the CTA group, as the tile form does."""
    rank = op.attrs["rank"]
    dst = lw.text.value(f"addrspacecast {SHARED} {lw.get(op.operands[0])} to ptr addrspace(7)")
    coords = [lw.typed(v) for v in op.operands[3:3 + rank]]
    offsets = [lw.typed(v) for v in op.operands[3 + rank:]]
    lw.call(f"llvm.nvvm.cp.async.bulk.tensor.g2s.im2col.{rank}d", "void",
            [f"ptr addrspace(7) {dst}", _bar(lw, op, 1), f"ptr {lw.get(op.operands[2])}", *coords, *offsets,
             "i16 0", "i64 0", "i1 false", "i1 false", "i32 0"])


OPS["tma.load_im2col"] = _tma_load_im2col
