"""Which warp collectives every thread of their warp reaches together (an analysis; it changes nothing).

A shuffle, vote or election (elect.sync) runs across the warp's active lanes: those whose path through the structured
control flow led them there (the interpreter's groups). A GPU need not have gathered those lanes again where their
paths met: after loops whose trip counts differ by thread, `activemask` may name only the lanes that happen to run
together, and a shuffle then reads lanes outside it (undefined; read as 0 on an H200), an election picks a lane in
each part. Where the analysis proves that every thread the warp has is there (each enclosing condition and loop
bound the same for all of them, and no thread left the paths before by a jump of its own), a backend may name every
lane of the warp in the collective's mask, and the GPU waits for them all.

The proof is conservative: a value is the same for all threads (of a warp: what a collective needs) where it comes
from constants, the kernel's arguments, block and grid ids, votes, a shuffle of the whole warp from lane 0, or a var
slot every store to which is such a value made by every thread together; thread and lane ids, memory, other
shuffles and anything else are taken to differ by thread.

A kernel's own `return` ends the threads that take it. Where it is the only jump some threads took before a
collective, every thread still running reaches the collective together (`collectives_of_live_lanes`): a backend
gathers them with a ballot of every lane the warp has, which waits for each lane that has not exited (PTX ISA
9.7.13: the `.sync` warp instructions wait for the non-exited threads of their member mask), and takes that ballot as
the collective's mask. This is the bounds check before a warp reduction (`if t >= n: return`).

Inside a branch on a value that differs by thread, entered from such a known group (or from a branch of one), the
lanes that get to a collective are the group's lanes that took each branch on the way, where no jump that only some
of them took came before (`collectives_in_branches`): a backend names them with a ballot of each branch's condition
over the group, taken before the branch (every lane of the group waits there), rather than `activemask`, which
after loops of differing trip counts may name fewer.

A loop entered by such a group, which some of its lanes leave by breaks of their own, each directly in a branch on a
value that differs by thread (`if c: break`, `while i < n` and no continue that only some take), runs its body with
the group's lanes still in the loop (`InLoop`): a backend keeps their mask through the loop, taking out after each
such branch the lanes that took its break (WarpGroups.loops and .exits).

After a branch one of whose sides ends in a `continue` (nothing before it jumping out of the side) and the other
jumps nowhere, the rest of the iteration runs with the lanes of the other side: a ballot of the condition names
them, as it names any branch's. The lanes that continued come back at the next iteration, so the loop's lanes are
those they were (a break after such a branch is left unnamed: the lanes that continued would not see its ballot).

A break nested in branches inside a branch of such a loop's lanes (`if a: if b: break`) is named the same way: where
it is a side's last op with nothing before it jumping out and the other side jumps nowhere, the rest of the enclosing
side runs with the other side's lanes, as after a continue. Elsewhere (deeper, or both sides jump) the branch gathers
its lanes at its join (`gathers`): a backend sends the lanes that break there, not out of the loop, takes a ballot of
those not breaking over the lanes that reached the branch (path side 2: the lanes past it), and only then sends the
breaking lanes on, out of the loop or to the join of the branch around it. The outermost such branch (entered by the
loop's lanes still in it) leaves the loop's mask to that ballot.

A continue of the innermost loop nested in branches (`if a: if b: continue ...`, deeper, or in an else side) is
gathered the same way at the join of each branch around it: the rest of the iteration runs with the lanes past the
branch (side 2), and the continuing lanes go on to the next iteration, or to the join of the branch around it. They
come back at the next iteration, so the loop's lanes are those they were. A branch both of whose kinds of jump some
lanes take inside it (a break and a continue), or a continue before a break of the loop's own level, is left
unnamed: the lanes of each would miss the other's ballot.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..core import Function, Op, Region, Value

COLLECTIVES = ("gpu.shuffle", "gpu.vote", "gpu.elect_one")   # (an election is among the lanes there)
# results the same on every thread of a warp (a vote's across its active lanes)
_SAME_SOURCES = frozenset({"arith.constant", "gpu.block_id", "gpu.grid_dim", "cluster.id", "cluster.rank",
                           "gpu.vote"})
_PURE_PREFIXES = ("arith.", "math.", "vec.", "ptr.")


APART, LIVE, ALL = 0, 1, 2   # who reaches a point together: unknown; every thread not exited; every thread
# (and a branch's lanes: (root, ((if id, side), ...)), the lanes of the root (ALL, LIVE or an InLoop) that took
# each side on the way; (InLoop(loop id, label), ()): the lanes of the group that entered the loop still in it)


@dataclass(frozen=True)
class InLoop:
    """The root of a state: the lanes of the group that entered loop `loop` (its op id; `label` its label) still in
    it, after the breaks some of them took (each directly in a branch that split those lanes)."""

    loop: int
    label: str


class WarpGroups(NamedTuple):
    """What the analysis finds in one function: `states`, each collective's (shuffle, vote, election) group of lanes
    by op id (ALL, LIVE or a path (root, ((if id, side), ...)), side 0 the `then` region; absent: not known);
    `splitting`, each if on some collective's path by op id, with the state its lanes reach it in. A backend names a
    path's lanes with a ballot of each such if's condition over the lanes that reach it, taken before its branch
    (PTX: vote.sync waits for them). `loops`: each loop whose lanes some collective's state names (InLoop) by op
    id, with the state its lanes enter it in; `exits`: each if by op id whose sides' lanes leave such a loop, with
    the loop's id and those sides (after the if, the loop's lanes are those it had less the lanes of those sides);
    `gathers`: each if by op id whose lanes that break out of such a loop (its label), or continue a loop, inside it
    wait at its join for a ballot of the lanes staying (side 2 of a path: the lanes past the if), with the loop's id,
    its label, whether the if splits the loop's lanes themselves and they break (then that ballot is the loop's mask
    after it), and the kind of jump ("break" or "continue")."""

    states: dict
    splitting: dict
    loops: dict
    exits: dict
    gathers: dict


def warp_groups(fn: Function) -> WarpGroups:
    """The groups of lanes `fn`'s collectives are reached by (one walk of the analysis)."""
    walk = _walked(fn)
    states = {**dict.fromkeys(walk.converged, ALL), **dict.fromkeys(walk.live, LIVE), **walk.split}
    # what naming each state's lanes needs: the ballots of the ifs on its path, and for a loop's lanes, the loop's
    # own entering state and its exits' ballots
    ifs, loops, needed = set(), set(), list(states.values())
    while needed:
        state = needed.pop()
        if not isinstance(state, tuple):
            continue
        root, path = state
        ifs.update(if_id for if_id, _ in path)
        # (the lanes past a gathering if: a ballot over the lanes that reached it)
        needed.extend(walk.splitting[if_id] for if_id, side in path if side == 2)
        if isinstance(root, InLoop) and root.loop not in loops:
            loops.add(root.loop)
            needed.append(walk.loops[root.loop])
            exits = [if_id for if_id, (loop, _) in walk.exits.items() if loop == root.loop]
            exits += [if_id for if_id, (loop, _, outermost, _) in walk.gathers.items()
                      if loop == root.loop and outermost]
            ifs.update(exits)
            needed.extend(walk.splitting[if_id] for if_id in exits)
    gathers = {if_id: gather for if_id, gather in walk.gathers.items() if if_id in ifs}
    return WarpGroups(states, {if_id: state for if_id, state in walk.splitting.items() if if_id in ifs},
                      {loop: walk.loops[loop] for loop in loops},
                      {if_id: exit for if_id, exit in walk.exits.items() if exit[0] in loops}, gathers)


def converged_collectives(fn: Function) -> set:
    """The ids of `fn`'s collectives (shuffles, votes, elections) that every thread of their warp reaches together."""
    return _walked(fn).converged


def collectives_of_live_lanes(fn: Function) -> set:
    """The ids of `fn`'s collectives that every thread of their warp not exited by a `return` of the kernel
    reaches together (and some thread may have exited before): none of converged_collectives'."""
    return _walked(fn).live


def collectives_in_branches(fn: Function) -> tuple:
    """Collectives inside branches on values that differ by thread, or in loops some lanes leave, where the lanes
    that get there are those of a known group (every thread, every one not exited, or a loop's still in it) that
    took each branch on the way: their paths by op id, and the ifs on them (WarpGroups)."""
    groups = warp_groups(fn)
    return {k: state for k, state in groups.states.items() if isinstance(state, tuple)}, groups.splitting


def _walked(fn: Function) -> "_Walk":
    differing: set = set()   # var slots some thread may hold apart from the others
    while True:
        walk = _Walk(fn, differing)
        walk.region(fn.body, ALL)
        if walk.differing <= differing:
            return walk
        differing |= walk.differing


def _constant(value: Value):
    """The value of an arith.constant, else None."""
    owner = value.owner
    return owner.attrs.get("value") if isinstance(owner, Op) and owner.name == "arith.constant" else None


def _after_jumps(together, jumps: set):
    """Who runs on together after `jumps` that some threads took: the live lanes where they only returned from the
    kernel (from a state of every thread or every live one), else nobody known."""
    return LIVE if jumps == {("return",)} and together in (ALL, LIVE) else APART


class _Walk:
    def __init__(self, fn: Function, differing: set):
        self.fn = fn
        self.slots_apart = differing      # from the walks before (fixed for this one)
        self.differing: set = set()       # found by this walk
        self.converged: set = set()
        self.live: set = set()
        self.split: dict = {}             # collective id -> (root, path) of the branches its lanes took
        self.splitting: dict = {}         # if id -> the state its lanes reach it in (its branch splits them)
        self.entry: dict = {}             # loop or block label -> the state its lanes entered it in
        self.loops: dict = {}             # loop id -> the state its lanes entered it in (its body's: InLoop)
        self.exits: dict = {}             # if id -> (loop id, the sides whose lanes break out of it)
        self.gathers: dict = {}           # if id -> (loop id, label, outermost, kind): its lanes jumping wait at its join
        self.innermost: tuple | None = None   # (op id, label) of the loop whose body the walk is in
        self.same_memo: dict = {}

    def same(self, value: Value) -> bool:
        """Whether `value` is the same on every thread of a warp that computes it (all a collective needs)."""
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
        if op.name == "gpu.shuffle" and op.attrs["mode"] == "idx" and id(op) in self.converged \
                and _constant(op.operands[1]) == 0:
            return True   # every lane of the warp reads lane 0's value (the warp roles' warpgroup index)
        if op.name == "var.load":
            return op.operands[0] not in self.slots_apart
        return op.name.startswith(_PURE_PREFIXES) and all(self.same(v) for v in op.operands)

    def region(self, region: Region, together) -> set:
        """Walk `region`, entered together by every thread of the warp (ALL), by every thread not exited (LIVE), by
        the lanes of one of those that took known branches ((root, path)) or not (APART); return the jumps out of it
        that only some threads may take: ("break", label), ("continue", label), ("return",)."""
        leaving: set = set()
        for op in region.ops:
            name = op.name
            jumps: set = set()
            if name in COLLECTIVES and together:
                if together == ALL:
                    self.converged.add(id(op))
                elif together == LIVE:
                    self.live.add(id(op))
                else:
                    self.split[id(op)] = together
            elif name == "var.store":
                slot, value = op.operands
                if not (together in (ALL, LIVE) and self.same(value)):   # (a branch's lanes: not every thread)
                    self.differing.add(slot)
            elif name == "scf.if":
                if self.same(op.operands[0]) or not together:
                    jumps = self.region(op.regions[0], together) | self.region(op.regions[1], together)
                else:   # the lanes that reach it split: those that take each side are known (a ballot names them)
                    self.splitting[id(op)] = together
                    root, path = together if isinstance(together, tuple) else (together, ())
                    sides = [self.region(region, (root, path + ((id(op), side),)))
                             for side, region in enumerate(op.regions)]
                    jumps = sides[0] | sides[1]
                    if isinstance(root, InLoop) and not path and jumps and self._breaks_directly(op, sides, root):
                        jumps = set()   # the loop's lanes after it: those it had less the breaking sides'
                    elif jumps and _continues_directly(op, sides, root):
                        # the lanes of the side that continues (or breaks, inside a branch of the loop's lanes) skip
                        # the rest of the iteration; the other side's run it
                        leaving |= jumps
                        together = (root, path + ((id(op), 1 - sides.index(jumps)),))
                        continue
                    elif isinstance(root, InLoop) and jumps == {("break", root.label)} \
                            and _jumps_through_ifs(op.regions, "break", root.label):
                        # the breaking lanes wait at the join, where a ballot names those going on (side 2)
                        self.gathers[id(op)] = (root.loop, root.label, not path, "break")
                        if not path:
                            jumps = set()   # the loop's lanes after it: that ballot
                        else:
                            leaving |= jumps
                            together = (root, path + ((id(op), 2),))
                            continue
                    elif self.innermost and jumps == {("continue", self.innermost[1])} \
                            and _jumps_through_ifs(op.regions, "continue", self.innermost[1]):
                        # the continuing lanes wait at the join, where a ballot names those going on (side 2); they
                        # come back at the next iteration, so the loop's lanes stay those they were
                        self.gathers[id(op)] = (*self.innermost, False, "continue")
                        leaving |= jumps
                        together = (root, path + ((id(op), 2),))
                        continue
            elif name == "scf.for":
                jumps = self.loop(op, together if all(self.same(v) for v in op.operands) else APART)
            elif name == "scf.loop":
                jumps = self.loop(op, together)
            elif name == "scf.block":
                self.entry[op.attrs["label"]] = together
                jumps = self.region(op.regions[0], together) - {("break", op.attrs["label"])}
            elif name in ("scf.break", "scf.continue") and together != self.entry.get(op.attrs["label"], APART):
                # taken by fewer threads than entered the construct it leaves (inside a branch, or apart)
                jumps = {(name[4:], op.attrs["label"])}
            elif name == "func.return" and together not in (ALL, LIVE):
                jumps = {("return",)}
            if jumps:
                leaving |= jumps
                # some threads may have left: the rest of the region runs without them (those that returned from
                # the kernel exited; the others wait somewhere else)
                together = _after_jumps(together, jumps)
        return leaving

    def _breaks_directly(self, op: Op, sides: list, root: InLoop) -> bool:
        """Whether the jumps out of if `op` (splitting the lanes of loop `root`; `sides`: the jumps out of each side)
        are breaks of that loop alone, each the last op of its side, with nothing before it jumping out of the
        side: then the lanes that took those sides are exactly those that leave (recorded in `exits`)."""
        label, breaking = root.label, []
        for side, (region, jumps) in enumerate(zip(op.regions, sides)):
            if not jumps:
                continue
            last = region.ops[-1]   # (a side some lanes jump out of has ops)
            if jumps != {("break", label)} or last.name != "scf.break" or last.attrs["label"] != label \
                    or _jumps_out(region.ops[:-1]):
                return False
            breaking.append(side)
        self.exits[id(op)] = (root.loop, tuple(breaking))
        return True

    # what a loop's walk may take back
    _FOUND = ("converged", "live", "split", "splitting", "loops", "exits", "gathers")

    def _snapshot(self) -> tuple:
        return tuple(getattr(self, name).copy() for name in self._FOUND)

    def _restore(self, before: tuple):
        for name, found in zip(self._FOUND, before):
            setattr(self, name, found.copy())
        self.same_memo.clear()   # (a lane-0 shuffle in the body was converged in the first walk only)

    def loop(self, op: Op, together) -> set:
        label = op.attrs["label"]
        around, self.innermost = self.innermost, (id(op), label)
        try:
            return self._loop(op, together, label)
        finally:
            self.innermost = around

    def _loop(self, op: Op, together, label: str) -> set:
        before = self._snapshot()
        self.entry[label] = together
        jumps = self.region(op.regions[0], together)
        left = jumps - {("continue", label)}
        if together and left:
            # some threads leave the loop early (a break, a return, or a jump to an enclosing construct: an inlined
            # function's return), so the iterations after run without them; a continue only skips to the next one
            self._restore(before)
            if jumps <= {("break", label), ("continue", label)}:
                # only jumps of its own: where each break is taken directly in a branch that splits the loop's lanes,
                # those still in the loop are known (a continue only skips the rest of an iteration, but the breaks
                # after one some took are not taken by every lane still in the loop: those are left unnamed)
                inside = self.entry[label] = (InLoop(id(op), label), ())
                self.loops[id(op)] = together
                if self.region(op.regions[0], inside) <= {("continue", label)}:
                    return set()
                self._restore(before)
            self.entry[label] = _after_jumps(together, left)
            jumps = self.region(op.regions[0], self.entry[label])
        return jumps - {("break", label), ("continue", label)}


def _continues_directly(op: Op, sides: list, root) -> bool:
    """Whether of the sides of if `op` (`sides`: the jumps out of each) one jumps and only by a continue, or a break
    of loop `root` (a state's root: an InLoop, of the loop whose lanes the if is inside a branch of), its last op, with
    nothing before it jumping out of the side: every lane that takes that side skips the rest of the iteration and
    every lane that takes the other goes on past the if."""
    if not (sides[0] and not sides[1] or sides[1] and not sides[0]):
        return False
    region, jumps = (op.regions[0], sides[0]) if sides[0] else (op.regions[1], sides[1])
    last = region.ops[-1]   # (a side some lanes jump out of has ops)
    kind = last.name[4:]
    if not (kind == "continue" or kind == "break" and isinstance(root, InLoop) and last.attrs["label"] == root.label):
        return False
    return jumps == {(kind, last.attrs["label"])} and not _jumps_out(region.ops[:-1])


def _jumps_through_ifs(regions, kind: str, label: str) -> bool:
    """Whether every jump out of `regions` is a `kind` ("break" or "continue") of loop `label` with only ifs around it
    inside them (a backend sends those jumps to the join of the if the regions are the sides of)."""
    for region in regions:
        for op in region.ops:
            if op.name == "scf.if":
                if not _jumps_through_ifs(op.regions, kind, label):
                    return False
            elif not (op.name == "scf." + kind and op.attrs["label"] == label) and _jumps_out([op]):
                return False
    return True


def _jumps_out(ops) -> bool:
    """Whether any of `ops` (or an op inside them) jumps out of them: a return, or a break or continue of a construct
    that is not among them."""
    inner = [o for op in ops for o in (op, *(x for r in op.regions for x in r.walk()))]
    labels = {o.attrs["label"] for o in inner if o.name in ("scf.for", "scf.loop", "scf.block")}
    return any(o.name == "func.return" or o.name in ("scf.break", "scf.continue") and o.attrs["label"] not in labels
               for o in inner)
