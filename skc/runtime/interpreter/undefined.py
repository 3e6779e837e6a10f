"""Values undefined in some lanes: what a shuffle read from lanes that were not active (another branch, out of the
loop, returned), followed through the ops that compute with it until something uses it.

On a GPU such a read gives an undefined value, not undefined behaviour (CUDA's guide for __shfl_sync: "If the target
thread is inactive, the retrieved value is undefined"): a kernel may read it and throw it away, as a reduction over
the valid lanes of a partial warp does (`v + skc.where(lane + offset < valid, y, 0)`, the guard cub puts after its
shuffles). So the interpreter marks the lanes whose value is undefined and stops only where one reaches a use whose
outcome it decides: a store, an address, an atomic, a branch, a loop bound, a vote, a shuffle's lane. Arithmetic and
variables carry the mark (a select keeps the chosen side's); the Fault names the shuffle that read the lane.

The marks live in the group's env beside the values, keyed by `key(value)`: (the threads whose value is undefined,
the message naming the read), or absent where every thread's is defined. Only the values that a shuffle's result can
reach (`reached`) carry them, and only once some shuffle of the launch read an inactive lane (`launch.undefined`).
"""
from __future__ import annotations

import numpy as np

from .state import Fault

SOURCES = ("gpu.shuffle",)
MOVES = ("var.alloc", "var.store", "var.load")   # (a variable holds its lanes' marks from a store to the loads after)
HINT = ("shuffle where every lane it reads is active: before the branch or the return, with every thread of the warp, "
        "then keep the result where it is wanted (skc.where); or throw away what a lane read from one that is not "
        "active before using it (skc.where(lane + offset < valid, y, 0))")


def key(value) -> tuple:
    """The env key of `value`'s marks (for a variable, its slot's)."""
    return (value, "undefined")


def reached(function, pure) -> frozenset:
    """The values (and variables' slots) of `function` that may hold what a shuffle read: the shuffles' results, and
    what the `pure` ops, shuffles and variables compute from them."""
    users: dict = {}
    found, work = set(), []
    for op in function.body.walk():
        for value in op.operands:
            users.setdefault(value, []).append(op)
        if op.name in SOURCES:
            found.add(op.results[0])
            work.append(op.results[0])
    while work:   # (along the uses: once over each op a value reaches)
        value = work.pop()
        for op in users.get(value, ()):
            if op.name == "var.store":
                new = (op.operands[0],) if op.operands[1] is value else ()
            else:
                new = op.results if op.name in pure or op.name in SOURCES or op.name == "var.load" else ()
            for reached_value in new:
                if reached_value not in found:
                    found.add(reached_value)
                    work.append(reached_value)
    return frozenset(found)


def carrying(op, step, found: frozenset, launch):
    """`step` of a pure op or a variable's alloc, load or store, also passing on the marks of its operands in `found`
    (a new variable has none)."""
    if op.name == "var.store":
        return _storing(op, step, launch)
    sources = [key(v) for v in op.operands if v in found]
    result = key(op.results[0])
    select = op.name == "arith.select"
    condition = op.operands[0] if select else None

    def carry(group):
        step(group)
        if launch.undefined:
            env = group.env
            marks = _selected(op, env, condition) if select else [env.get(k) for k in sources]
            marks = [m for m in marks if m is not None]
            if marks:
                lanes = marks[0][0]
                for other in marks[1:]:
                    lanes = lanes | other[0]
                env[result] = (lanes, marks[0][1])
            else:
                env.pop(result, None)
    return carry


def _storing(op, step, launch):
    """`step` of a variable's store, also keeping in its slot the marks of the lanes that stored."""
    into, source = key(op.operands[0]), key(op.operands[1])

    def store(group):
        step(group)
        if launch.undefined:
            env = group.env
            new, old = env.get(source), env.get(into)
            if new is None and old is None:
                return
            stored = new[0] & group.mask if new is not None else None
            kept = old[0] & ~group.mask if old is not None else None
            lanes = kept if stored is None else stored if kept is None else stored | kept
            if lanes.any():
                env[into] = (lanes, new[1] if stored is not None and stored.any() else old[1])
            else:
                env.pop(into, None)
    return store


def _selected(op, env, condition) -> list:
    """The marks of a select's result: its condition's, and those of the side each lane chose."""
    cond, (first, second) = env[condition], (env.get(key(v)) for v in op.operands[1:])
    marks = [env.get(key(condition))]
    if cond.ndim > 1:   # (a vector condition: a lane's value is undefined where any element chose such a side)
        marks += [first, second]
        return marks
    for side, chosen in ((first, cond), (second, ~cond)):
        if side is not None and (side[0] & chosen).any():
            marks.append((side[0] & chosen, side[1]))
    return marks


def using(op, step, values: tuple, launch):
    """`step` of an op that uses `values` (some of which may hold what a shuffle read), after a check that no active
    lane's is undefined."""
    keys = [key(v) for v in values]
    what = _use(op)

    def use(group):
        if launch.undefined:
            env = group.env
            for k in keys:
                mark = env.get(k)
                if mark is not None:
                    lanes = mark[0] & group.mask
                    if lanes.any():
                        raise Fault(f"{mark[1]}; {what} uses that value here", int(np.flatnonzero(lanes)[0]), HINT)
        return step(group)
    return use


def _use(op) -> str:
    names = {"mem.store": "a store", "mem.load": "a load", "mem.atomic": "an atomic", "mem.atomic_cas": "an atomic",
             "scf.if": "an `if`", "scf.for": "a loop's bounds", "gpu.vote": "a vote", "gpu.shuffle": "a shuffle's lane"}
    return names.get(op.name, f"'{op.name}'")
