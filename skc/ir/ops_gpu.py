"""GPU execution-model ops: thread and block ids, barriers, warp shuffles and votes,
inline assembly, device printf and traps."""
from __future__ import annotations

from .core import BLOCKING, PURE, Op
from .types import ScalarType, VectorType, i1, i32, u32, u64

PURE_TRAITS = frozenset({PURE})


class _Index(Op):
    num_results = 1
    traits = PURE_TRAITS
    required_attrs = ("dim",)

    def verify(self):
        if self.result.type is not i32:
            self.fail(f"result is {self.result.type}, expected i32")
        if self.attrs["dim"] not in (0, 1, 2):
            self.fail(f"dim must be 0, 1 or 2, found {self.attrs['dim']!r}")


class ThreadIdOp(_Index):
    """`gpu.thread_id {dim}`: this thread's index within its block along dim (x=0, y=1, z=2)."""

    name = "gpu.thread_id"


class BlockIdOp(_Index):
    """`gpu.block_id {dim}`: this block's index within the grid along dim."""

    name = "gpu.block_id"


class GridDimOp(_Index):
    """`gpu.grid_dim {dim}`: the number of blocks in the grid along dim."""

    name = "gpu.grid_dim"


class LaneIdOp(Op):
    """`gpu.lane_id`: this thread's index within its warp (0..warp size - 1)."""

    name = "gpu.lane_id"
    num_results = 1
    traits = PURE_TRAITS


class BarrierOp(Op):
    """`gpu.barrier {id, threads} [%id]`: wait until `threads` threads (default: the whole block) reach barrier `id`
    (default 0), or the named barrier whose id (1..15) is the run-time operand."""

    name = "gpu.barrier"
    num_operands = None   # none, or the run-time id
    traits = frozenset({BLOCKING})

    def verify(self):
        _verify_barrier(self, named=bool(self.operands))


class BarrierArriveOp(Op):
    """`gpu.barrier_arrive {id, threads} [%id]`: count this thread in at named barrier `id` (1..15, or the run-time
    operand), whose phase completes when `threads` threads arrived or waited there, and go on without waiting
    (PTX bar.arrive)."""

    name = "gpu.barrier_arrive"
    num_operands = None   # none, or the run-time id
    required_attrs = ("threads",)

    def verify(self):
        _verify_barrier(self, named=True)


def _verify_barrier(op: Op, named: bool):
    if op.operands:
        if len(op.operands) != 1 or op.operands[0].type is not i32:
            op.fail("a barrier's run-time id is one i32 operand")
        if "id" in op.attrs:
            op.fail("a barrier has an id attribute or an id operand, not both")
    else:
        bid = op.attrs.get("id", 1 if named else 0)
        if not (1 if named else 0) <= bid < 16:
            op.fail(f"barrier id must be within {1 if named else 0}..15, found {bid}")
    threads = op.attrs.get("threads")
    if named and threads is None:
        op.fail("a named barrier needs its thread count")
    if threads is not None and (threads <= 0 or threads % 32):
        op.fail(f"thread count must be a positive multiple of 32, found {threads}")


SHUFFLE_MODES = ("idx", "up", "down", "xor")


class ShuffleOp(Op):
    """`gpu.shuffle {mode} %x, %n`: x from another lane of the warp, n taken modulo the warp size (idx: lane n; up/down: lane -/+ n; xor: lane ^ n); reads past the warp's ends keep x; a read of a lane that is not active (it took another branch, left the loop or returned) gives an undefined value on a GPU (the interpreter stops where it is used: a store, a branch, an address; a select may throw it away)."""

    name = "gpu.shuffle"
    num_operands = 2
    num_results = 1
    required_attrs = ("mode",)

    def verify(self):
        x, lane = self.operands
        if self.attrs["mode"] not in SHUFFLE_MODES:
            self.fail(f"mode must be one of {', '.join(SHUFFLE_MODES)}, found {self.attrs['mode']!r}")
        if not isinstance(x.type, ScalarType) or x.type.bits not in (16, 32, 64):
            self.fail(f"shuffles 16-, 32- or 64-bit scalars, found {x.type}")
        if lane.type is not i32:
            self.fail(f"lane is {lane.type}, expected i32")
        if self.result.type is not x.type:
            self.fail(f"result is {self.result.type}, expected {x.type}")


VOTE_MODES = ("any", "all", "ballot")


class VoteOp(Op):
    """`gpu.vote {mode} %p`: across the warp's active lanes, any/all of p (i1), or the ballot bit mask (u32 for warps of 32, u64 for wavefronts of 64). The active lanes are those whose path led here; where every lane of the warp gets here together (passes/convergence.py), the GPU waits for them all, where every lane that has not returned from the kernel does, a ballot over the whole warp gathers them first (the `.sync` forms wait for each lane not exited), and inside branches that split such a group, a ballot of each branch's condition taken before it names the lanes that took it; in a loop some lanes leave by breaks of their own, each the last op of such a branch, a mask kept through the loop names the lanes still in it (the entering group's, less each break's ballot); after a branch whose other side ends in a `continue`, that branch's lanes (a ballot of its condition); after a branch inside which some of the loop's lanes break, deeper in branches, or continue, the lanes going on (a ballot at its join, where the breaking or continuing lanes wait). A shuffle that reads a lane which is not active reads an undefined value on a GPU."""

    name = "gpu.vote"
    num_operands = 1
    num_results = 1
    required_attrs = ("mode",)

    def verify(self):
        mode = self.attrs["mode"]
        if mode not in VOTE_MODES:
            self.fail(f"mode must be one of {', '.join(VOTE_MODES)}, found {mode!r}")
        if self.operands[0].type is not i1:
            self.fail(f"predicate is {self.operands[0].type}, expected i1")
        expected = (u32, u64) if mode == "ballot" else (i1,)
        if self.result.type not in expected:
            self.fail(f"result is {self.result.type}, expected {' or '.join(map(str, expected))}")


class AsmOp(Op):
    """`gpu.asm {code, constraints, side_effects}`: inline target assembly (LLVM inline-asm constraints); the interpreter cannot run it."""

    name = "gpu.asm"
    num_operands = None
    num_results = None
    required_attrs = ("code", "constraints")

    def verify(self):
        for r in self.results:
            if not isinstance(r.type, (ScalarType, VectorType)):
                self.fail(f"results must be scalars or vectors, found {r.type}")


class PrintOp(Op):
    """`gpu.print {format}`: printf from every thread that runs it (format uses %d %u %ld %f %p ...)."""

    name = "gpu.print"
    num_operands = None
    required_attrs = ("format",)

    def verify(self):
        if not isinstance(self.attrs["format"], str):
            self.fail(f"format must be a string, found {self.attrs['format']!r}")


class AssertOp(Op):
    """`gpu.assert %cond {message}`: stop the kernel with message where cond is false."""

    name = "gpu.assert"
    num_operands = 1
    required_attrs = ("message",)

    def verify(self):
        if self.operands[0].type is not i1:
            self.fail(f"condition is {self.operands[0].type}, expected i1")
        if not isinstance(self.attrs["message"], str):
            self.fail(f"message must be a string, found {self.attrs['message']!r}")
