"""Dead-code elimination: drop what no observable behaviour depends on, to a fixed point.

Dead are: ops with the PURE trait whose results are unused (a `mem.shared` among them), a
`var.load` whose result is unused (it reads the thread's own slot: no effect, no fault),
`var.alloc` slots never loaded together with the stores into them, and `scf.if`/`scf.block`
ops whose regions are empty. Removing one can make another dead (a stored value, an
operand), so the sweeps repeat until nothing changes.
"""
from __future__ import annotations

from collections import Counter

from ..core import PURE, Function, Op, Region
from .walk import count_uses, functions_of, set_ops

UNUSED_IS_DEAD = frozenset({"var.load"})  # not PURE (it may not move past a store), yet dead when unused
EMPTY_IS_DEAD = frozenset({"scf.if", "scf.block"})  # loops are not: an empty loop may never end


def dce(ir):
    """Remove dead code from a Module or a Function in place and return it. Verification is the caller's."""
    for fn in functions_of(ir):
        while _sweep(fn.body, count_uses(fn.body)) | _remove_unloaded_slots(fn):
            pass
    return ir


def _is_dead(op: Op, uses: Counter) -> bool:
    if op.name in EMPTY_IS_DEAD:
        return not any(region.ops for region in op.regions)
    removable = op.has(PURE) or op.name in UNUSED_IS_DEAD
    return removable and not op.regions and all(uses[r] == 0 for r in op.results)


def _sweep(region: Region, uses: Counter) -> bool:
    """Drop dead ops, last to first, regions before the op that owns them.

    In that order every use of a value is seen before its definition, so a chain of dead
    ops goes in one sweep: dropping an op takes its operands' use counts down at once.
    """
    kept, changed = [], False
    for op in reversed(region.ops):
        for nested in reversed(op.regions):
            changed |= _sweep(nested, uses)
        if _is_dead(op, uses):
            uses.subtract(op.operands)
            changed = True
        else:
            kept.append(op)
    kept.reverse()
    set_ops(region, kept)
    return changed


def _remove_unloaded_slots(fn: Function) -> bool:
    """Drop each var.alloc whose only uses are stores into it, and those stores."""
    stores = {op.result: [] for op in fn.walk() if op.name == "var.alloc"}
    read = set()  # slots used otherwise than as the slot of a var.store: loads, or anything unknown
    for op in fn.walk():
        for index, operand in enumerate(op.operands):
            if operand in stores:
                if op.name == "var.store" and index == 0:
                    stores[operand].append(op)
                else:
                    read.add(operand)
    dead = {id(slot.owner) for slot in stores if slot not in read}
    dead |= {id(store) for slot, into in stores.items() if slot not in read for store in into}
    if not dead:
        return False
    _drop(fn.body, dead)
    return True


def _drop(region: Region, dead: set):
    set_ops(region, [op for op in region.ops if id(op) not in dead])
    for op in region.ops:
        for nested in op.regions:
            _drop(nested, dead)
