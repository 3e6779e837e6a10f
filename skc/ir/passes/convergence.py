"""Which warp collectives every thread of their warp reaches together (an analysis; it changes nothing).

A shuffle or vote runs across the warp's active lanes: those whose path through the structured control flow led
them there (the interpreter's groups). A GPU need not have gathered those lanes again where their paths met: after
loops whose trip counts differ by thread, `activemask` may name only the lanes that happen to run together, and a
shuffle then reads lanes outside it (undefined; read as 0 on an H200). Where the analysis proves that every thread
the warp has is there (each enclosing condition and loop bound the same for all of them, and no thread left the
paths before by a jump of its own), a backend may name every lane of the warp in the collective's mask, and the
GPU waits for them all.

The proof is conservative: a value is the same for all threads where it comes from constants, the kernel's
arguments, block and grid ids, votes, or a var slot every store to which is such a value made by every thread
together; thread and lane ids, memory, shuffles and anything else are taken to differ by thread.
"""
from __future__ import annotations

from ..core import Function, Op, Region, Value

COLLECTIVES = ("gpu.shuffle", "gpu.vote")
# results the same on every thread of a warp (a vote's across its active lanes)
_SAME_SOURCES = frozenset({"arith.constant", "gpu.block_id", "gpu.grid_dim", "cluster.id", "cluster.rank",
                           "gpu.vote"})
_PURE_PREFIXES = ("arith.", "math.", "vec.", "ptr.")


def converged_collectives(fn: Function) -> set:
    """The ids of `fn`'s shuffles and votes that every thread of their warp reaches together."""
    differing: set = set()   # var slots some thread may hold apart from the others
    while True:
        walk = _Walk(fn, differing)
        walk.region(fn.body, True)
        if walk.differing <= differing:
            return walk.converged
        differing |= walk.differing


class _Walk:
    def __init__(self, fn: Function, differing: set):
        self.fn = fn
        self.slots_apart = differing      # from the walks before (fixed for this one)
        self.differing: set = set()       # found by this walk
        self.converged: set = set()
        self.same_memo: dict = {}

    def same(self, value: Value) -> bool:
        """Whether `value` is the same on every thread that computes it."""
        key = id(value)
        if key not in self.same_memo:
            self.same_memo[key] = False   # (no value depends on itself; a guard all the same)
            self.same_memo[key] = self._same(value)
        return self.same_memo[key]

    def _same(self, value: Value) -> bool:
        owner = value.owner
        if isinstance(owner, Region):
            if owner is self.fn.body:
                return True                                   # a kernel argument
            loop = owner.parent
            return loop is not None and loop.name == "scf.for" and self.same(loop.operands[0]) \
                and self.same(loop.operands[2])             # an induction variable: lb + k * step
        op: Op = owner
        if op.name in _SAME_SOURCES:
            return True
        if op.name == "var.load":
            return op.operands[0] not in self.slots_apart
        return op.name.startswith(_PURE_PREFIXES) and all(self.same(v) for v in op.operands)

    def region(self, region: Region, together: bool) -> set:
        """Walk `region`, entered by every thread of the warp together or not; return the jumps out of it that
        only some threads may take: ("break", label), ("continue", label), ("return",)."""
        leaving: set = set()
        for op in region.ops:
            name = op.name
            jumps: set = set()
            if name in COLLECTIVES and together:
                self.converged.add(id(op))
            elif name == "var.store":
                slot, value = op.operands
                if not (together and self.same(value)):
                    self.differing.add(slot)
            elif name == "scf.if":
                inner = together and self.same(op.operands[0])
                jumps = self.region(op.regions[0], inner) | self.region(op.regions[1], inner)
            elif name == "scf.for":
                jumps = self.loop(op, together and all(self.same(v) for v in op.operands))
            elif name == "scf.loop":
                jumps = self.loop(op, together)
            elif name == "scf.block":
                jumps = self.region(op.regions[0], together) - {("break", op.attrs["label"])}
            elif name in ("scf.break", "scf.continue") and not together:
                jumps = {(name[4:], op.attrs["label"])}
            elif name == "func.return" and not together:
                jumps = {("return",)}
            if jumps:
                leaving |= jumps
                together = False   # some threads may have left: the rest of the region runs without them
        return leaving

    def loop(self, op: Op, together: bool) -> set:
        label = op.attrs["label"]
        before = set(self.converged)
        jumps = self.region(op.regions[0], together)
        if together and jumps - {("continue", label)}:
            # some threads leave the loop early (a break, a return, or a jump to an enclosing construct: an inlined
            # function's return), so the iterations after run without them; a continue only skips to the next one
            self.converged = before
            jumps = self.region(op.regions[0], False)
        return jumps - {("break", label), ("continue", label)}
