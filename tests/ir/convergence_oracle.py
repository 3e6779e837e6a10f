"""A dynamic check of the convergence analysis: kernels run in the interpreter, and at each run of a shuffle or
vote that the analysis finds converged, every thread of each warp there must run it, together; at each run of one
it finds reached by the live lanes, every thread of each warp there that has not returned from the kernel; at each
run of one it finds inside branches that split a known group, exactly the lanes of that group that took them (as a
ballot of each branch's condition, taken where the group reached it, names them: checked there too); and in a loop
some of whose lanes leave by breaks of their own, the lanes that entered it less those that took those breaks (past
an if whose breaking lanes gather at its join, the lanes that reached it less those: side 2 of a path).

The interpreter's groups are the IR's meaning of "together" (runtime/interpreter/control.py): a warp whose threads
reach one collective in different groups, or only some of them, would on a GPU leave a full member mask waiting for
lanes that never come (or pairing with another run of it). The analysis runs on the very function the interpreter
plans (the tile IR after the passes: what the backend lowers, less legalization's casts), so op ids line up.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from skc.ir.passes.convergence import (ALL, LIVE, COLLECTIVES, collectives_in_branches, collectives_of_live_lanes,
                                       converged_collectives, warp_groups)
from skc.runtime.interpreter.plan import Plan


@dataclass
class Record:
    """What a watch saw: collectives planned and found converged, runs checked, and the runs that broke the claim."""

    planned: int = 0
    converged: int = 0
    live: int = 0
    branch_runs: int = 0                          # runs of collectives and splitting ifs with branch verdicts
    runs: int = 0
    broken: list = field(default_factory=list)   # (op, block index, warp, lanes there, lanes the warp has)
    counts: dict = field(default_factory=dict)   # (block state, op) -> runs of the op by each lane of the block

    def check_counts(self):
        """Every lane of a warp ran each converged collective as often as the others."""
        for (block, op), counts in self.counts.items():
            width = block.launch.warp_size
            for warp in range(-(-counts.size // width)):
                own = counts[warp * width:(warp + 1) * width]
                if own.min() != own.max():
                    self.broken.append((op, block.index, warp, f"runs {sorted(set(own.tolist()))}", own.size))

    def describe(self) -> str:
        return "\n".join(f"{op.name} {op.attrs.get('mode')} at {op.loc}: block {block}, warp {warp}: {found} of "
                         f"{size} lanes" for op, block, warp, found, size in self.broken[:10])


def _checked(record: Record, op, fn):
    """The collective's step, checking first that each warp's active lanes are none or all it has."""
    def step(group):
        block, mask = group.block, group.mask
        width, n = block.launch.warp_size, mask.size
        record.runs += 1
        counts = record.counts.setdefault((block, op), np.zeros(n, np.int64))
        counts += mask
        for warp in np.unique(np.flatnonzero(mask) // width):
            lanes = mask[warp * width:(warp + 1) * width]
            if not lanes.all():
                record.broken.append((op, block.index, int(warp), int(lanes.sum()), lanes.size))
        return fn(group)
    return step


def _group_lanes(block, state, masks: dict, warp: int):
    """The lanes of the warp (a bool per lane it has) that a state names: all, those not returned, or those a branch
    took (recorded where its if ran; None if it never ran there)."""
    width = block.launch.warp_size
    lanes = slice(warp * width, min((warp + 1) * width, block.launch.nthreads))
    if state == ALL:
        return np.ones(lanes.stop - lanes.start, bool)
    if state == LIVE:
        return ~block.returned()[lanes]
    root, path = state
    return masks.get((id(block), path[-1] if path else ("loop", root.loop), warp))


def _checked_group(record: Record, op, fn, state, masks: dict, condition=None, exits=None, loop=False,
                   gather=None):
    """The step of a collective reached by the live lanes or with a branch verdict, of an if that splits a group
    (`condition`: its operand), or of a loop whose lanes the analysis follows (`loop`): each warp's active lanes
    there must be the state's lanes. An if records the lanes that take each side, and where its sides' lanes break
    out of such a loop (`exits`: (loop id, sides)), takes them out of the loop's; where its breaking lanes gather at
    its join (`gather`: (loop id, label, outermost)), it records the lanes past it (and, outermost, the loop's); a
    loop records the lanes that enter it."""
    def check(group):
        block, mask = group.block, group.mask
        width = block.launch.warp_size
        record.runs += 1
        record.branch_runs += isinstance(state, tuple)
        for warp in np.unique(np.flatnonzero(mask) // width).tolist():
            lanes = mask[warp * width:(warp + 1) * width]
            want = _group_lanes(block, state, masks, warp)
            if want is None or not np.array_equal(lanes, want):
                record.broken.append((op, block.index, warp, f"{int(lanes.sum())} (the group's "
                                      f"{'?' if want is None else int(want.sum())})", lanes.size))
            if condition is not None:
                taken = group.env[condition][warp * width:(warp + 1) * width]
                masks[(id(block), (id(op), 0), warp)] = lanes & taken
                masks[(id(block), (id(op), 1), warp)] = lanes & ~taken
            if exits is not None:
                inside = (id(block), ("loop", exits[0]), warp)
                for side in exits[1]:
                    masks[inside] = masks[inside] & ~masks[(id(block), (id(op), side), warp)]
            if loop:
                masks[(id(block), ("loop", id(op)), warp)] = lanes.copy()

    def past(group, entry):
        block, mask = group.block, group.mask
        width = block.launch.warp_size
        for warp in np.unique(np.flatnonzero(entry) // width).tolist():   # (the warps that reached the if)
            lanes = mask[warp * width:(warp + 1) * width].copy()
            masks[(id(block), (id(op), 2), warp)] = lanes
            if gather[2]:
                masks[(id(block), ("loop", gather[0]), warp)] = lanes

    if condition is None and not loop:
        def step(group):
            check(group)
            return fn(group)
    else:
        def step(group):   # (control ops are generators)
            check(group)
            entry = group.mask.copy()
            result = yield from fn(group)
            if gather is not None:
                past(group, entry)
            return result
    return step


@contextlib.contextmanager
def watch():
    """Within it, every interpreter launch checks the collectives the analysis finds converged; yields the Record
    (each lane's count of runs is compared with its warp's when the watch ends)."""
    record = Record()
    plan_init, plan_step = Plan.__init__, Plan.step

    def init(plan, function, launch):
        plan.converged = converged_collectives(function)
        plan.live = collectives_of_live_lanes(function)
        plan.split, plan.splitting = collectives_in_branches(function)
        groups = warp_groups(function)
        plan.loops, plan.exits, plan.gathers = groups.loops, groups.exits, groups.gathers
        plan.masks = {}
        # the oracle studies which lanes run together, not the values they read: convgen's kernels shuffle from
        # lanes that are not active, and take collectives whose lanes no member mask names (both undefined on a
        # GPU), which would otherwise stop them
        launch.collectives_checked = False
        collectives = [op for op in function.walk() if op.name in COLLECTIVES]
        record.planned += len(collectives)
        record.converged += sum(id(op) in plan.converged for op in collectives)
        record.live += sum(id(op) in plan.live for op in collectives)
        plan_init(plan, function, launch)

    def step(plan, op):
        found = plan_step(plan, op)
        if op.name in COLLECTIVES and id(op) in plan.converged:
            _, fn, kind = found
            return op, _checked(record, op, fn), kind
        if op.name in COLLECTIVES and (id(op) in plan.live or id(op) in plan.split):
            _, fn, kind = found
            state = LIVE if id(op) in plan.live else plan.split[id(op)]
            return op, _checked_group(record, op, fn, state, plan.masks), kind
        if op.name == "scf.if" and id(op) in plan.splitting:
            _, fn, kind = found
            return op, _checked_group(record, op, fn, plan.splitting[id(op)], plan.masks, op.operands[0],
                                      plan.exits.get(id(op)), gather=plan.gathers.get(id(op))), kind
        if id(op) in plan.loops:
            _, fn, kind = found
            return op, _checked_group(record, op, fn, plan.loops[id(op)], plan.masks, loop=True), kind
        return found

    Plan.__init__, Plan.step = init, step
    try:
        yield record
    finally:
        Plan.__init__, Plan.step = plan_init, plan_step
        record.check_counts()
