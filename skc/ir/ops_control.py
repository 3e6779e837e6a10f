"""Structured control flow: if, counted for, endless loop, once-block, and the jumps out of them.

Loops and blocks carry a `label`; `scf.break`/`scf.continue` name the construct they leave,
so a jump may cross several nested regions (an early return from an inlined function, a
break out of an unrolled loop). Mutable state crosses regions through var slots, so these
ops yield no values.
"""
from __future__ import annotations

from .core import Op, TERMINATOR
from .types import ScalarType, i1

JUMP_TRAITS = frozenset({TERMINATOR})


class IfOp(Op):
    """`scf.if %cond {then} {else}`: run the first region where cond is true, the second otherwise."""

    name = "scf.if"
    num_operands = 1
    num_regions = 2

    def verify(self):
        if self.operands[0].type is not i1:
            self.fail(f"condition is {self.operands[0].type}, expected i1")


class ForOp(Op):
    """`scf.for %lb, %ub, %step {label} {^(%i)}`: run the body for i = lb, lb+step, ... while i < ub (while i > ub, compared signed, when step is not positive as a signed number; a constant unsigned step counts up)."""

    name = "scf.for"
    num_operands = 3
    num_regions = 1
    required_attrs = ("label",)

    def verify(self):
        t = self.operands[0].type
        if not (isinstance(t, ScalarType) and t.is_int and not t.is_bool):
            self.fail(f"bounds are {t}, expected an integer type")
        for bound in self.operands[1:]:
            if bound.type is not t:
                self.fail(f"bounds are {t} and {bound.type}, expected one type")
        body = self.regions[0]
        if len(body.args) != 1 or body.args[0].type is not t:
            self.fail(f"body must take one {t} induction variable")


class LoopOp(Op):
    """`scf.loop {label} {body}`: run the body again and again until a break leaves it."""

    name = "scf.loop"
    num_regions = 1
    required_attrs = ("label",)


class BlockOp(Op):
    """`scf.block {label} {body}`: run the body once; a break naming the label skips the rest of it."""

    name = "scf.block"
    num_regions = 1
    required_attrs = ("label",)


class BreakOp(Op):
    """`scf.break {label}`: leave the enclosing loop or block with that label."""

    name = "scf.break"
    traits = JUMP_TRAITS
    required_attrs = ("label",)


class ContinueOp(Op):
    """`scf.continue {label}`: start the next iteration of the enclosing loop with that label."""

    name = "scf.continue"
    traits = JUMP_TRAITS
    required_attrs = ("label",)


class ReturnOp(Op):
    """`func.return`: this thread leaves the kernel."""

    name = "func.return"
    traits = JUMP_TRAITS


LOOPS = ("scf.for", "scf.loop")
LABELED = ("scf.for", "scf.loop", "scf.block")
