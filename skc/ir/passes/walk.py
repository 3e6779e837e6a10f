"""Walking IR for passes: the functions a pass visits, value replacement and use counts.

The IR keeps no use lists (see core.py), so a pass that rewrites uses carries a map from
old values to new ones down a forward walk, and a pass that asks "is this used?" counts
uses in one walk first.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from ..core import Function, Module, Op, Region, Value


def functions_of(ir) -> Iterable[Function]:
    """The functions of a Module, or the one Function given."""
    if isinstance(ir, Module):
        return list(ir.functions)
    if isinstance(ir, Function):
        return [ir]
    raise TypeError(f"a pass runs on a Module or a Function, not a {type(ir).__name__}")


class ValueMap:
    """Replacements found so far in a forward walk: old value -> the value to use instead."""

    def __init__(self):
        self._to: dict[Value, Value] = {}

    def replace(self, old: Value, new: Value):
        if old is not new:
            self._to[old] = new

    def get(self, value: Value) -> Value:
        while value in self._to:  # chains form when a replacement is itself replaced later
            value = self._to[value]
        return value

    def rewrite_operands(self, op: Op):
        op.operands = [self.get(v) for v in op.operands]


def count_uses(region: Region) -> Counter:
    """How many operands, in `region` and the regions nested in it, name each value."""
    uses: Counter = Counter()
    for op in region.walk():
        uses.update(op.operands)
    return uses


def set_ops(region: Region, ops: list[Op]):
    """Make `ops` the region's op list, each op pointing back at the region."""
    for op in ops:
        op.parent = region
    region.ops = ops
