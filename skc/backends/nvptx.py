"""NVPTX facts and lowerings: address spaces, special registers, barriers, warp shuffles and
votes, approximate math instructions, conversions, printf, and the kernel signature."""
from __future__ import annotations

import re

from .. import ir
from ..diagnostics import CompileError
from ..ir.passes.convergence import ALL, LIVE, WarpGroups, warp_groups
from ..target import Target
from . import angles, nvptx_async
from .llvm_text import llvm_type
from .lowering import FunctionLowering, intrinsic_suffix

# LLVM NVPTXAddrSpace (llvm/Support/NVPTXAddrSpace.h).
ADDRESS_SPACES = {"generic": 0, "global": 1, "shared": 3, "const": 4, "local": 5}
DATALAYOUT = "e-p6:32:32-i64:64-i128:128-i256:256-v16:16-v32:32-n16:32:64"
TRIPLE = "nvptx64-nvidia-cuda"
SHARED_SYMBOL = "@__skc_shared"
_DIM = "xyz"
_SREG = {"gpu.thread_id": "tid", "gpu.block_id": "ctaid", "gpu.grid_dim": "nctaid"}
LOG2_E = 1.4426950408889634
LN_2 = 0.6931471805599453
# PTX ISA 9.7.9.6 (shfl.sync): the c operand packs the clamp lane and the segment mask.
_SHUFFLE_CLAMP = {"idx": 0x1F, "down": 0x1F, "xor": 0x1F, "up": 0x00}
_SHUFFLE_KIND = {"idx": "idx", "down": "down", "xor": "bfly", "up": "up"}
# float -> int as one cvt.rzi, which saturates (NaN is selected to 0 after it): (LLVM type, asm constraint)
_ASM_TYPE = {"f32": ("float", "f"), "f64": ("double", "d"), "i32": ("i32", "r"), "u32": ("i32", "r"),
             "i64": ("i64", "l"), "u64": ("i64", "l")}


class NVPTX:
    """Target lowering for NVIDIA GPUs (LLVM's NVPTX backend)."""

    address_spaces = ADDRESS_SPACES
    triple = TRIPLE
    datalayout = DATALAYOUT
    atomic_scope = 'syncscope("device")'
    alloca_space = 0  # NVPTX allocas are generic pointers (the datalayout names no alloca space)

    def __init__(self, target: Target):
        self.target = target
        self.name = target.name
        self.ops = {
            "gpu.thread_id": _lower_sreg, "gpu.block_id": _lower_sreg, "gpu.grid_dim": _lower_sreg,
            "gpu.lane_id": _lower_lane_id, "gpu.barrier": _lower_barrier, "gpu.barrier_arrive": _lower_barrier_arrive,
            "gpu.shuffle": _lower_shuffle,
            "gpu.vote": _lower_vote, "gpu.elect_one": _lower_elect_one,
            "gpu.print": _lower_print, "gpu.assert": _lower_assert,
            "mfma.mma": _lower_mfma,
        }
        self.ops.update(nvptx_async.OPS)

    def before_branch(self, lw, op: ir.Op):
        _branch_masks(lw, op)
        _hold_jumps(lw, op)

    def after_branch(self, lw, op: ir.Op):
        _loop_exits(lw, op)
        _gather_jumps(lw, op)

    def before_loop(self, lw, op: ir.Op):
        _loop_mask(lw, op)

    def finish_assembly(self, ptx: str) -> str:
        """The PTX as LLVM printed it, with integer `abs` and 16-bit `neg` rewritten (see _safe_integer_abs and
        _NEG16)."""
        return _NEG16.sub(_wrapping_neg16, _ABS.sub(_safe_integer_abs, ptx))

    # -- the kernel's shape -----------------------------------------------------------
    def kernel_params(self, fn: ir.Function):
        params = []
        for i, value in enumerate(fn.args):
            name = f"%arg{i}"
            if isinstance(value.type, ir.TensorMapType):
                # A TMA descriptor is passed by value and read in place (TOOLCHAIN.md).
                params.append((f'ptr byval([128 x i8]) align 64 "nvvm.grid_constant" {name}', name))
            else:
                params.append((f"{llvm_type(value.type, ADDRESS_SPACES)} {name}", name))
        return params

    def kernel_header(self, fn: ir.Function, params) -> str:
        x, y, z = fn.attrs.get("block", (1, 1, 1))
        # no jump tables: ptxas -O2 and -O3 miscompile a brx.idx whose index differs between the threads of a warp
        # (some threads skip the stores after it: the GPU fuzzer, seed 20261130 batch 19; benchmarks/NOTES.md);
        # LLVM lowers each switch to compares and branches instead
        attrs = [f'"nvvm.maxntid"="{x * y * z}"', '"no-jump-tables"="true"']
        if "min_blocks" in fn.attrs:
            attrs.append(f'"nvvm.minctasm"="{fn.attrs["min_blocks"]}"')
        if "cluster" in fn.attrs:
            if not self.target.has("cluster") and tuple(fn.attrs["cluster"]) != (1, 1, 1):
                # (LLVM dropped the attribute for sm_80: the tile IR said clusters, the PTX had none)
                raise CompileError(f"kernel '{fn.name}' asks for clusters of {fn.attrs['cluster']} blocks; clusters "
                                   f"need sm_90a, {self.target.name} has none", fn.loc)
            attrs.append('"nvvm.cluster_dim"="{},{},{}"'.format(*fn.attrs["cluster"]))
        return f"define ptx_kernel void @{fn.name}({', '.join(params)}) {' '.join(attrs)}"

    def module_prelude(self, text, module: ir.Module):
        for fn in module.functions:
            if fn.attrs.get("shared_bytes", 0):
                align = fn.attrs.get("shared_align", 16)
                text.globals.append(f"{SHARED_SYMBOL} = external addrspace(3) global [0 x i8], align {align}")
                return

    def prologue(self, lowering: FunctionLowering):
        pass

    def shared_base(self, lowering: FunctionLowering) -> str:
        return SHARED_SYMBOL

    # -- math and conversions -----------------------------------------------------------
    @property
    def f32_math(self) -> dict:
        """op name -> emitter of its f32 form (the other float types are legalized to f32 first)."""
        return _F32_MATH

    def opaque(self, lw: FunctionLowering, name: str, t: ir.Type) -> str:
        """A float value (a constant) that LLVM cannot see through: moved by inline asm, its bits as they are (a
        select against a constant zero must not become a min.f32, which orders -0.0 below +0.0)."""
        bits = ir.element_type(t).bits
        ity, code = {16: ("i16", "h"), 32: ("i32", "r"), 64: ("i64", "l")}[bits]
        raw = lw.text.value(f"bitcast {lw.type(t)} {name} to {ity}")
        moved = lw.text.value(f'call {ity} asm "mov.b{bits} $0, $1;", "={code},{code}"({ity} {raw})')
        return lw.text.value(f"bitcast {ity} {moved} to {lw.type(t)}")

    def float_to_int(self, lw: FunctionLowering, name: str, src: ir.Type, dst: ir.Type) -> str:
        if isinstance(src, ir.VectorType):
            kind = "fptosi" if dst.is_signed else "fptoui"
            return lw.call(f"llvm.{kind}.sat{intrinsic_suffix(dst)}{intrinsic_suffix(src)}", lw.type(dst),
                           [f"{lw.type(src)} {name}"])
        if src.bits < 32:
            name = lw.text.value(f"fpext {lw.type(src)} {name} to float")
            src = ir.f32
        if src.name in _ASM_TYPE and dst.name in _ASM_TYPE:
            # PTX's cvt.rzi saturates in one instruction; written as inline
            # asm because LLVM may not be told it: llvm.nvvm.f2i.rz and its kin are rewritten by InstCombine to
            # plain fptosi/fptoui, whose result for NaN or an out-of-range value is poison (a NaN LLVM could see
            # folded to INT_MIN), and llvm.fpto[su]i.sat costs a compare and select per bound
            (ts, cs), (td, cd) = _ASM_TYPE[src.name], _ASM_TYPE[dst.name]
            ptx_dst = ("s" if dst.is_signed else "u") + str(dst.bits)
            moved = lw.text.value(f'call {td} asm "cvt.rzi.{ptx_dst}.{src.name} $0, $1;", "={cd},{cs}"({ts} {name})')
            # PTX does not promise 0 for NaN (an H200 gave INT64_MIN for an f64 NaN made an i64): the IR says 0
            nan = lw.text.value(f"fcmp uno {ts} {name}, {name}")
            return lw.text.value(f"select i1 {nan}, {td} 0, {td} {moved}")
        kind = "fptosi" if dst.is_signed else "fptoui"
        return lw.call(f"llvm.{kind}.sat{intrinsic_suffix(dst)}{intrinsic_suffix(src)}", lw.type(dst),
                       [f"{lw.type(src)} {name}"])

    def convert_fp8(self, lw: FunctionLowering, value: ir.Value, dst: ir.Type, op) -> str:
        """To or from e4m3/e5m2 through f32 (exact for every fp8 value), with PTX's fp8 conversions (PTX ISA
        9.7.9.21 cvt, sm_89+): `cvt.rn.f16x2.{e4m3x2,e5m2x2}` decodes exactly, `cvt.rn.satfinite.{e4m3x2,
        e5m2x2}.f32` encodes to nearest even, saturating overflow and infinities (the interpreter's cast).
        Sources other than f32 round to f32 first (PTX has no f64 or integer form); vectors lane by lane."""
        if not self.target.has("wgmma"):
            lw.fail(op, f"fp8 conversions need sm_89 or newer; {self.name} has no fp8 instructions")
        src_elem, dst_elem = ir.element_type(value.type), ir.element_type(dst)
        for t in (src_elem, dst_elem):
            if t.name.endswith("fnuz"):
                lw.fail(op, f"{t.name} is AMD's FNUZ fp8 format, which NVIDIA GPUs do not convert; use "
                            f"{t.name[:-4]} (OCP) on {self.name}")

        def scalar(name: str) -> str:
            if _is_fp8(src_elem):
                wide = _fp8_to_f32(lw, name, src_elem)
            else:
                wide = lw.convert_name(name, src_elem, ir.f32)
            if _is_fp8(dst_elem):
                return _f32_to_fp8(lw, wide, dst_elem)
            return lw.convert_name(wide, ir.f32, dst_elem)

        if isinstance(dst, ir.VectorType):
            return lw.lanewise(dst, [value], scalar)
        return scalar(lw.get(value))


_FP8_PTX = {"f8e4m3": "e4m3x2", "f8e5m2": "e5m2x2"}


def _is_fp8(t: ir.Type) -> bool:
    return t.is_float and t.bits == 8


def _fp8_to_f32(lw: FunctionLowering, byte: str, t: ir.ScalarType) -> str:
    """The low byte of the pair decodes into the low half (cvt.rn.f16x2.f8x2type d, a)."""
    wide = lw.text.value(f"zext i8 {byte} to i16")
    pair = lw.text.value(f'call i32 asm "cvt.rn.f16x2.{_FP8_PTX[t.name]} $0, $1;", "=r,h"(i16 {wide})')
    low = lw.text.value(f"trunc i32 {pair} to i16")
    half = lw.text.value(f"bitcast i16 {low} to half")
    return lw.text.value(f"fpext half {half} to float")


def _f32_to_fp8(lw: FunctionLowering, x: str, t: ir.ScalarType) -> str:
    """cvt.rn.satfinite.f8x2type.f32 d, a, b puts a's code in the upper byte and b's in the lower one."""
    pair = lw.text.value(f'call i16 asm "cvt.rn.satfinite.{_FP8_PTX[t.name]}.f32 $0, 0f00000000, $1;", '
                         f'"=h,f"(float {x})')
    return lw.text.value(f"trunc i16 {pair} to i8")


def _exp(lw, x):
    scaled = lw.text.value(f"fmul float {x}, {lw.constant(LOG2_E, ir.f32)}")
    return lw.call("llvm.nvvm.ex2.approx.f", "float", [f"float {scaled}"])


def _log(lw, x):
    log2 = lw.call("llvm.nvvm.lg2.approx.f", "float", [f"float {x}"])
    return lw.text.value(f"fmul float {log2}, {lw.constant(LN_2, ir.f32)}")


def _pow(lw, a, b):
    log2 = lw.call("llvm.nvvm.lg2.approx.f", "float", [f"float {a}"])
    scaled = lw.text.value(f"fmul float {log2}, {b}")
    return lw.call("llvm.nvvm.ex2.approx.f", "float", [f"float {scaled}"])


def _nvvm(name):
    return lambda lw, x: lw.call(f"llvm.nvvm.{name}", "float", [f"float {x}"])


_F32_MATH = {
    "math.exp": _exp,
    "math.exp2": _nvvm("ex2.approx.f"),
    "math.exp2_ftz": _nvvm("ex2.approx.ftz.f"),   # one MUFU.EX2 (the form above adds a subnormal range fix-up)
    "math.log": _log,
    "math.log2": _nvvm("lg2.approx.f"),
    "math.rsqrt": _nvvm("rsqrt.approx.f"),
    "math.sin": angles.after_reduction(_nvvm("sin.approx.f")),
    "math.cos": angles.after_reduction(_nvvm("cos.approx.f")),
    "math.tanh": _nvvm("tanh.approx.f32"),
    "math.pow": _pow,
}


# -- execution-model ops ---------------------------------------------------------------------
def _lower_sreg(lw: FunctionLowering, op: ir.Op):
    dim = op.attrs["dim"]
    register = f"llvm.nvvm.read.ptx.sreg.{_SREG[op.name]}.{_DIM[dim]}"
    # Ranges let LLVM prove index arithmetic cannot overflow and bounds checks always hold.
    if op.name == "gpu.thread_id":
        known = (0, lw.fn.attrs.get("block", (1024, 1024, 64))[dim])
    elif op.name == "gpu.block_id":
        known = (0, lw.target.target.max_grid[dim])
    else:
        known = (1, lw.target.target.max_grid[dim] + 1)
    lw.set(op, lw.call(register, "i32", [], result_range=known))


def _lower_lane_id(lw: FunctionLowering, op: ir.Op):
    lw.set(op, lw.call("llvm.nvvm.read.ptx.sreg.laneid", "i32", [], result_range=(0, 32)))


def _barrier_id(lw: FunctionLowering, op: ir.Op) -> str:
    return f"i32 {lw.get(op.operands[0])}" if op.operands else f"i32 {op.attrs.get('id', 0)}"


def _lower_barrier(lw: FunctionLowering, op: ir.Op):
    threads = op.attrs.get("threads")
    if threads is None:
        lw.call("llvm.nvvm.barrier.cta.sync.aligned.all", "void", [_barrier_id(lw, op)])
    else:
        lw.call("llvm.nvvm.barrier.cta.sync.aligned.count", "void", [_barrier_id(lw, op), f"i32 {threads}"])


def _lower_barrier_arrive(lw: FunctionLowering, op: ir.Op):
    lw.call("llvm.nvvm.barrier.cta.arrive.aligned.count", "void", [_barrier_id(lw, op), f"i32 {op.attrs['threads']}"])


def _warp_lanes(lw: FunctionLowering) -> str | None:
    """The lanes of this thread's warp that the block has (its last warp may have fewer than 32): None where
    every warp is whole, or the block is not known."""
    block = lw.fn.attrs.get("block")
    if block is None or (block[0] * block[1] * block[2]) % 32 == 0:
        return None
    x, y, z = block
    threads = x * y * z
    # the threads whose linear id (x fastest) is below the block's count
    ids = [lw.call(f"llvm.nvvm.read.ptx.sreg.tid.{d}", "i32", [], result_range=(0, n)) for d, n in zip("xyz", block)]
    linear = lw.text.value(f"mul i32 {ids[2]}, {y}")
    linear = lw.text.value(f"add i32 {linear}, {ids[1]}")
    linear = lw.text.value(f"mul i32 {linear}, {x}")
    linear = lw.text.value(f"add i32 {linear}, {ids[0]}")
    first = lw.text.value(f"and i32 {linear}, -32")
    lanes = lw.text.value(f"sub i32 {threads}, {first}")
    whole = lw.text.value(f"icmp uge i32 {lanes}, 32")
    low = lw.text.value(f"and i32 {lanes}, 31")
    bit = lw.text.value(f"shl i32 1, {low}")
    partial = lw.text.value(f"sub i32 {bit}, 1")
    return lw.text.value(f"select i1 {whole}, i32 -1, i32 {partial}")


def _analysed(lw: FunctionLowering) -> dict:
    """The convergence analysis' groups for lw's function (computed once; none where its block is not known, so
    every collective takes `activemask`), and the branch and loop masks made so far."""
    if "warp_groups" not in lw.analyses:
        known = lw.fn.attrs.get("block") is not None
        lw.analyses["warp_groups"] = warp_groups(lw.fn) if known else WarpGroups({}, {}, {}, {}, {})
        lw.analyses["branch_masks"], lw.analyses["loop_masks"] = {}, {}
        lw.analyses["held_jumps"] = {}
    return lw.analyses


def _group_mask(lw: FunctionLowering, state, lanes: str | None) -> str:
    """The member mask of the lanes of an analysis state: every lane the warp has (ALL); those not exited, gathered
    by a ballot over them all, which waits for each one (LIVE); or the mask a branch's ballot made ((root, path))."""
    if state == ALL:
        return lanes or "-1"
    if state == LIVE:
        return lw.call("llvm.nvvm.vote.ballot.sync", "i32", [f"i32 {lanes or '-1'}", "i1 true"])
    root, path = state
    if not path:   # (InLoop(loop), ()): the loop's lanes still in it, kept in a slot (_loop_mask)
        return lw.text.value(f"load i32, ptr {_analysed(lw)['loop_masks'][root.loop]}")
    return _analysed(lw)["branch_masks"][path[-1]]


def _loop_mask(lw: FunctionLowering, op: ir.Op):
    """Before a loop some of whose lanes leave it by breaks of their own (WarpGroups.loops): a slot holding the
    mask of its lanes still in it, at first those of the group that enters it (an alloca of the entry block, which
    LLVM promotes to registers)."""
    analysed = _analysed(lw)
    state = analysed["warp_groups"].loops.get(id(op))
    if state is None:
        return
    slot = lw.text.fresh("loopmask")
    lw.text.blocks[0][1].insert(0, f"  {slot} = alloca i32")
    analysed["loop_masks"][id(op)] = slot
    lw.text.emit(f"store i32 {_group_mask(lw, state, _warp_lanes(lw))}, ptr {slot}")


def _loop_exits(lw: FunctionLowering, op: ir.Op):
    """After an if whose sides' lanes break out of such a loop (WarpGroups.exits): those lanes leave its mask."""
    analysed = _analysed(lw)
    found = analysed["warp_groups"].exits.get(id(op))
    if found is None:
        return
    loop, sides = found
    slot = analysed["loop_masks"][loop]
    mask = lw.text.value(f"load i32, ptr {slot}")
    for side in sides:
        gone = lw.text.value(f"xor i32 {analysed['branch_masks'][(id(op), side)]}, -1")
        mask = lw.text.value(f"and i32 {mask}, {gone}")
    lw.text.emit(f"store i32 {mask}, ptr {slot}")


def _hold_jumps(lw: FunctionLowering, op: ir.Op):
    """Before an if whose lanes that break out of a loop, or continue it, inside it gather at its join
    (WarpGroups.gathers): those jumps go to a block that joins the if's end, not out of the loop or to its next
    iteration (_gather_jumps sends them on)."""
    analysed = _analysed(lw)
    found = analysed["warp_groups"].gathers.get(id(op))
    if found is None:
        return
    _, label, _, kind = found
    held = lw.text.new_label("held")
    analysed["held_jumps"][id(op)] = (held, lw.jumps[label])
    done, step = lw.jumps[label]
    lw.jumps[label] = (held, step) if kind == "break" else (done, held)


def _gather_jumps(lw: FunctionLowering, op: ir.Op):
    """After such an if, every lane that reached it is here, those that jumped from the held block: a ballot of those
    not jumping over them names the lanes going on past the if (the loop's lanes, after the outermost such if of
    breaks); then the jumping lanes go where their jumps went before (out of the loop or to its next iteration, or to
    the held block of the if around this one)."""
    analysed = _analysed(lw)
    found = analysed["warp_groups"].gathers.get(id(op))
    if found is None:
        return
    loop, label, outermost, kind = found
    held, jumps = analysed["held_jumps"].pop(id(op))
    lw.jumps[label] = jumps
    text, joined, gathered = lw.text, lw.text.block, lw.text.new_label("gathered")
    text.terminate(f"br label %{gathered}")
    text.start_block(held)
    text.terminate(f"br label %{gathered}")
    text.start_block(gathered)
    jumping = text.value(f"phi i1 [ false, %{joined} ], [ true, %{held} ]")
    staying = text.value(f"xor i1 {jumping}, true")
    group = text.value(f"or i32 {analysed['branch_masks'][(id(op), 0)]}, {analysed['branch_masks'][(id(op), 1)]}")
    past = lw.call("llvm.nvvm.vote.ballot.sync", "i32", [f"i32 {group}", f"i1 {staying}"])
    analysed["branch_masks"][(id(op), 2)] = past
    if outermost:
        text.emit(f"store i32 {past}, ptr {analysed['loop_masks'][loop]}")
    going_on = text.new_label("past")
    text.terminate(f"br i1 {jumping}, label %{jumps[0 if kind == 'break' else 1]}, label %{going_on}")
    text.start_block(going_on)


def _branch_masks(lw: FunctionLowering, op: ir.Op):
    """Before an scf.if whose condition splits a known group of lanes (WarpGroups.splitting): the lanes taking each
    side, a ballot of the condition over the group (every lane of it waits there: vote.sync)."""
    analysed = _analysed(lw)
    state = analysed["warp_groups"].splitting.get(id(op))
    if state is None:
        return
    group = _group_mask(lw, state, _warp_lanes(lw))
    taken = lw.call("llvm.nvvm.vote.ballot.sync", "i32", [f"i32 {group}", f"i1 {lw.get(op.operands[0])}"])
    analysed["branch_masks"][(id(op), 0)] = taken
    analysed["branch_masks"][(id(op), 1)] = lw.text.value(f"xor i32 {group}, {taken}")


def _warp_mask(lw: FunctionLowering, op: ir.Op, lanes: str | None) -> str:
    """A collective's (shuffle, vote, election) member mask: every lane the warp has (`lanes`, from _warp_lanes)
    where the convergence analysis proves that all of them get there together (the GPU then waits for them all:
    after loops of differing trip counts the lanes that happen to run together, `activemask`, may be fewer); where
    it proves that every lane not exited by a return of the kernel gets there together, those lanes, gathered by a
    ballot over every lane the warp has (which waits for each one not exited: PTX ISA 9.7.13); inside branches that
    split such a group, the mask the branches' ballots made (_branch_masks); else the lanes active now."""
    state = _analysed(lw)["warp_groups"].states.get(id(op))
    if state is None:
        return lw.call("llvm.nvvm.activemask", "i32", [])
    return _group_mask(lw, state, lanes)


def _source_lane(lw: FunctionLowering, mode: str, amount: str) -> str:
    """The lane a shuffle reads (PTX ISA 9.7.9.6; taken modulo 32: past the ends the GPU keeps the value itself)."""
    amount = lw.text.value(f"and i32 {amount}, 31")
    if mode == "idx":
        return amount
    lane = lw.call("llvm.nvvm.read.ptx.sreg.laneid", "i32", [], result_range=(0, 32))
    moved = lw.text.value(f"{_SOURCE_LANE_OP[mode]} i32 {lane}, {amount}")
    return lw.text.value(f"and i32 {moved}, 31")


_SOURCE_LANE_OP = {"xor": "xor", "down": "add", "up": "sub"}


def _lower_shuffle(lw: FunctionLowering, op: ir.Op):
    value, lane = op.operands
    mode = op.attrs["mode"]
    t = value.type
    lanes = _warp_lanes(lw)
    mask = _warp_mask(lw, op, lanes)
    clamp = _SHUFFLE_CLAMP[mode]
    name = f"llvm.nvvm.shfl.sync.{_SHUFFLE_KIND[mode]}"

    def shuffle32(word: str, ty: str) -> str:
        return lw.call(f"{name}.{'f32' if ty == 'float' else 'i32'}", ty,
                       [f"i32 {mask}", f"{ty} {word}", f"i32 {lw.get(lane)}", f"i32 {clamp}"])

    ty = lw.type(t)
    if t.bits == 32:
        moved = shuffle32(lw.get(value), "float" if t is ir.f32 else "i32")
    elif t.bits == 64:
        halves = lw.text.value(f"bitcast {ty} {lw.get(value)} to <2 x i32>")
        parts = []
        for i in range(2):
            part = lw.text.value(f"extractelement <2 x i32> {halves}, i32 {i}")
            parts.append(shuffle32(part, "i32"))
        joined = lw.text.value(f"insertelement <2 x i32> poison, i32 {parts[0]}, i32 0")
        joined = lw.text.value(f"insertelement <2 x i32> {joined}, i32 {parts[1]}, i32 1")
        moved = lw.text.value(f"bitcast <2 x i32> {joined} to {ty}")
    else:
        bits = lw.text.value(f"bitcast {ty} {lw.get(value)} to i16")
        wide = lw.text.value(f"zext i16 {bits} to i32")
        narrow = lw.text.value(f"trunc i32 {shuffle32(wide, 'i32')} to i16")
        moved = lw.text.value(f"bitcast i16 {narrow} to {ty}")
    if lanes is not None:
        # a lane past the block's last thread has no value to give (undefined on the GPU): the reader keeps its own,
        # as the IR says
        source = _source_lane(lw, mode, lw.get(lane))
        has = lw.text.value(f"lshr i32 {lanes}, {source}")
        has = lw.text.value(f"trunc i32 {has} to i1")
        moved = lw.text.value(f"select i1 {has}, {ty} {moved}, {ty} {lw.get(value)}")
    lw.set(op, moved)


def _lower_vote(lw: FunctionLowering, op: ir.Op):
    mode = op.attrs["mode"]
    lanes = _warp_lanes(lw)
    mask = _warp_mask(lw, op, lanes)
    ret = "i32" if mode == "ballot" else "i1"
    lw.set(op, lw.call(f"llvm.nvvm.vote.{mode}.sync", ret, [f"i32 {mask}", lw.typed(op.operands[0])]))


def _lower_elect_one(lw: FunctionLowering, op: ir.Op):
    """elect.sync over the collective's member mask (_warp_mask): the lowest lane of it, as the interpreter elects the
    lowest lane of the group there. Over `activemask` two parts of a warp not gathered again would elect a lane each."""
    pair = lw.call("llvm.nvvm.elect.sync", "{i32, i1}", [f"i32 {_warp_mask(lw, op, _warp_lanes(lw))}"])
    lw.set(op, lw.text.value(f"extractvalue {{i32, i1}} {pair}, 1"))


def _lower_mfma(lw: FunctionLowering, op: ir.Op):
    lw.fail(op, "MFMA is AMD's matrix-core instruction: it needs an AMD CDNA target (gfx942, gfx90a); "
                "on NVIDIA GPUs use wgmma (sm_90a) or mma.sync")


def _printf(lw: FunctionLowering, fmt: str, operands):
    """vprintf(format, args): the arguments go in a buffer, each aligned to its size (CUDA ABI)."""
    string, length = lw.module.string(fmt, ADDRESS_SPACES["global"])
    fmt_ptr = lw.text.value(f"addrspacecast ptr addrspace(1) {string} to ptr")
    args = "null"
    if operands:
        fields = ", ".join(lw.type(v.type) for v in operands)
        buffer = lw.text.value(f"alloca {{ {fields} }}, align 8")
        for i, v in enumerate(operands):
            slot = lw.text.value(f"getelementptr {{ {fields} }}, ptr {buffer}, i32 0, i32 {i}")
            lw.text.emit(f"store {lw.typed(v)}, ptr {slot}")
        args = buffer
    lw.module.declare("vprintf", "i32 @vprintf(ptr, ptr)")
    lw.text.value(f"call i32 @vprintf(ptr {fmt_ptr}, ptr {args})")


def _lower_print(lw: FunctionLowering, op: ir.Op):
    _printf(lw, op.attrs["format"], op.operands)


def _lower_assert(lw: FunctionLowering, op: ir.Op):
    where = f" at {op.loc}" if op.loc is not None else ""
    lw.trap_unless(op.operands[0], lambda: _printf(lw, f"skc: assertion failed{where}: {op.attrs['message']}\n", []))


# ptxas -O3 treats the result of `abs.sN` as never negative, though abs of the most negative value is that value
# (Python's abs wrapped to the type, and LLVM's llvm.abs without its poison flag): `0 > abs(x)` folds to false and
# `abs(x) >> k` to a logical shift (found by the GPU fuzzer; ptxas -O0 keeps the instruction's meaning). Every
# integer abs LLVM prints is computed instead as x times its sign (-1 or 1), which wraps the same way and which
# ptxas does not take for an abs.
_ABS = re.compile(r"^(\s*)abs\.s(16|32|64)\s+(%\w+),\s*(%\w+|-?\d+);[ \t]*(?://.*)?$", re.MULTILINE)


# ptxas 13.0 (V13.0.88) drops the sign extension after `neg.s16`, as if the negation could not overflow: -x of an
# i16 -32768 read 32768 once widened (`skc.i64(-x)`, `skc.i32(-x)`) and `(-x) >> 15` read 1, where the IR's -x wraps
# to -32768, as the interpreter gives (an H100, the scalar sweep; ptxas 13.5 keeps it). LLVM prints every `sub i16 0,
# x` so (`-x`, `0 - x`, `x * -1`, `~x + 1`): each is written as the same subtraction on u16 bits, which ptxas extends.
_NEG16 = re.compile(r"^(\s*)neg\.s16\s+(%\w+),\s*(%\w+|-?\d+);", re.MULTILINE)


def _wrapping_neg16(m: re.Match) -> str:
    pad, dst, src = m.groups()
    return f"{pad}sub.u16 {dst}, 0, {src};"


def _safe_integer_abs(m: re.Match) -> str:
    pad, bits, dst, src = m.groups()
    return (f"{pad}{{ .reg .b{bits} sgn; shr.s{bits} sgn, {src}, {int(bits) - 1}; or.b{bits} sgn, sgn, 1; "
            f"mul.lo.s{bits} {dst}, {src}, sgn; }}")
