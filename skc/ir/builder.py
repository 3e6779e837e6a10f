"""The builder: creates ops at an insertion point, stamped with the current source location."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional, Sequence

from ..diagnostics import Location
from .core import OPS, Function, Op, Region, Value
from .types import Type, VarType, i1


class Builder:
    """Appends ops to the current region. `loc` is stamped on every op it creates."""

    def __init__(self, function: Function):
        self.function = function
        self.region: Region = function.body
        self.loc: Optional[Location] = function.loc
        self._hoisted = 0  # var.alloc ops placed at the top of the function so far

    def create(self, name: str, operands: Sequence[Value] = (), result_types: Sequence[Type] = (),
               attrs: Optional[dict] = None, regions=None) -> Op:
        op = OPS[name](operands, result_types, attrs, regions, self.loc)
        self.region.append(op)
        return op

    def value(self, name: str, operands: Sequence[Value], result_type: Type, **attrs) -> Value:
        """Create a one-result op and give its result."""
        return self.create(name, operands, (result_type,), attrs).result

    @contextmanager
    def at(self, region: Region):
        """Insert into `region` inside the with-block."""
        saved, self.region = self.region, region
        try:
            yield region
        finally:
            self.region = saved

    @contextmanager
    def located(self, loc: Optional[Location]):
        saved, self.loc = self.loc, loc
        try:
            yield
        finally:
            self.loc = saved

    # -- common ops -------------------------------------------------------------------
    def constant(self, value, type: Type) -> Value:
        return self.value("arith.constant", (), type, value=value)

    def binary(self, name: str, a: Value, b: Value) -> Value:
        return self.value(name, (a, b), a.type)

    def unary(self, name: str, a: Value) -> Value:
        return self.value(name, (a,), a.type)

    def cmp(self, pred: str, a: Value, b: Value, result_type: Type = i1) -> Value:
        return self.value("arith.cmp", (a, b), result_type, pred=pred)

    def select(self, cond: Value, a: Value, b: Value) -> Value:
        return self.value("arith.select", (cond, a, b), a.type)

    def cast(self, a: Value, type: Type) -> Value:
        if a.type is type:
            return a
        return self.value("arith.cast", (a,), type)

    # -- var slots --------------------------------------------------------------------
    def hoist(self, op: Op) -> Op:
        """Place op at the top of the function (after earlier hoisted ops), where it dominates every use."""
        op.parent = self.function.body
        self.function.body.ops.insert(self._hoisted, op)
        self._hoisted += 1
        return op

    def var(self, type: Type, loc: Optional[Location] = None) -> Value:
        """A new slot, allocated at the top of the function so it dominates every use."""
        return self.hoist(OPS["var.alloc"]((), (VarType(type),), None, None, loc or self.loc)).result

    def var_load(self, slot: Value) -> Value:
        return self.value("var.load", (slot,), slot.type.elem)

    def var_store(self, slot: Value, value: Value):
        self.create("var.store", (slot, value))

    # -- control flow -----------------------------------------------------------------
    def if_(self, cond: Value) -> Op:
        return self.create("scf.if", (cond,))

    def for_(self, lb: Value, ub: Value, step: Value, label: str) -> Op:
        return self.create("scf.for", (lb, ub, step), (), {"label": label}, [Region([lb.type])])
