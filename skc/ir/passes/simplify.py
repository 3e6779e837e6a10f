"""Simplification: constant folding, exact identities, constant control flow and duplicate constants.

One forward walk per function carries a value-replacement map (the IR has no use lists):
an op whose result is known is dropped and its result mapped to the replacement, and
every later op, nested regions included, has its operands rewritten through the map
before it is looked at. So folding chains in one walk.

Control flow: an `scf.if` on a constant runs the taken region's ops in its place (labels
are unchanged, so jumps inside keep naming the same constructs); an `scf.if` with two empty
regions goes; an `scf.block` that no `scf.break` leaves early is inlined. Ops after a
terminator that such inlining exposes never run and are dropped.

Constants are deduplicated against those that dominate them: the earlier ones of the same
region and of the regions enclosing it (a scope per region, inherited by nested regions).

An `scf.for` reads a constant step by its attribute and a run-time one by its value (ops_control.ForOp): an
unsigned step counts up where it is a constant, but down where a run-time one is 0 or past the signed maximum.
So a run-time unsigned step that would fold to such a value keeps the op that computes it.
"""
from __future__ import annotations

from typing import Optional

from ..core import OPS, TERMINATOR, Op, Value
from ..types import Type, element_type
from .folding import constant_value, fold
from .identities import Constant, simplify_identity
from .walk import ValueMap, functions_of, set_ops

KEEP, DROP = "keep", "drop"

Scope = dict  # (type, value key) -> the first constant Value with that value


def simplify(ir):
    """Simplify a Module or a Function in place and return it. Verification is the caller's."""
    for fn in functions_of(ir):
        _Simplifier(_unsigned_run_time_steps(fn)).region(fn.body, {})
    return ir


def _unsigned_run_time_steps(fn) -> set:
    """The steps of fn's `scf.for` loops that are unsigned and not constants."""
    return {op.operands[2] for op in fn.walk() if op.name == "scf.for"
            and not element_type(op.operands[2].type).is_signed and not _is_constant(op.operands[2])}


def _is_constant(value: Value) -> bool:
    return isinstance(value.owner, Op) and value.owner.name == "arith.constant"


def _value_key(op: Op) -> tuple:
    """Constants with equal keys mean the same value: normalized, with -0.0 apart from 0.0 and NaN equal to NaN."""
    value = constant_value(op)
    if value is None:  # a type that is not folded: compare the attribute as written
        return (op.result.type, "as written", repr(op.attrs["value"]))
    return (op.result.type, repr(value) if isinstance(value, float) else value)


class _Simplifier:
    def __init__(self, unsigned_steps: set):
        self.values = ValueMap()
        self.unsigned_steps = unsigned_steps

    def region(self, region, scope: Scope):
        """Simplify region's ops in order; ops that inlining brings in are simplified where they land."""
        pending, kept, index = list(region.ops), [], 0
        while index < len(pending):
            op = pending[index]
            index += 1
            self.values.rewrite_operands(op)
            outcome = self.visit(op, scope, kept)
            if isinstance(outcome, list):
                pending[index:index] = outcome
            elif outcome == KEEP:
                kept.append(op)
                if op.has(TERMINATOR):
                    break  # what follows never runs
        set_ops(region, kept)

    def visit(self, op: Op, scope: Scope, kept: list):
        """KEEP, DROP (its results were mapped), or the list of ops to run in its place."""
        if op.name == "arith.constant":
            return self.constant(op, scope)
        if op.name == "scf.if":
            return self.if_(op, scope)
        if op.name == "scf.block":
            return self.block(op, scope)
        for nested in op.regions:
            self.region(nested, dict(scope))
        if len(op.results) != 1:
            return KEEP
        rewrite = self.rewrite(op)
        if rewrite is None or self.turns_loop_around(op, rewrite):
            return KEEP
        if isinstance(rewrite, Constant):
            rewrite = self.materialize(op.result.type, rewrite.value, op, scope, kept)
        self.values.replace(op.result, rewrite)
        return DROP

    def constant(self, op: Op, scope: Scope):
        key = _value_key(op)
        if key in scope:
            self.values.replace(op.result, scope[key])
            return DROP
        scope[key] = op.result
        return KEEP

    def if_(self, op: Op, scope: Scope):
        condition = self.lane(op.operands[0])
        if condition is not None:
            return list(op.regions[0 if condition else 1].ops)
        for nested in op.regions:
            self.region(nested, dict(scope))
        return KEEP if any(nested.ops for nested in op.regions) else DROP

    def block(self, op: Op, scope: Scope):
        body = op.regions[0]
        self.region(body, dict(scope))  # first, so breaks under constant-false ifs are gone
        label = op.attrs["label"]
        if any(inner.name == "scf.break" and inner.attrs["label"] == label for inner in body.walk()):
            return KEEP
        return list(body.ops)  # simplified again in the enclosing scope, which dedups their constants

    def rewrite(self, op: Op):
        """A Value or Constant that op's one result equals, or None."""
        lanes = [self.lane(v) for v in op.operands]
        if all(lane is not None for lane in lanes):
            value = fold(op, lanes)
            if value is not None:
                return Constant(value)
        return simplify_identity(op, [self.lane(v, exact_only=False) for v in op.operands])

    def turns_loop_around(self, op: Op, rewrite) -> bool:
        """Whether op is a run-time unsigned loop step that `rewrite` makes a constant the loop reads otherwise: 0
        or past the signed maximum, which counts down at run time but up as a constant."""
        if op.result not in self.unsigned_steps:
            return False
        step = rewrite.value if isinstance(rewrite, Constant) else self.lane(rewrite)
        return step is not None and (step == 0 or step >> (element_type(op.result.type).bits - 1) != 0)

    def lane(self, value: Value, exact_only: bool = True):
        """The value of a constant operand (one lane), or None.

        With exact_only=False, constants of types that are not folded (f16, bf16, fp8) give their
        attribute as written: enough to recognize 0, -0.0 and 1, which every format holds exactly.
        """
        owner = value.owner
        if not (isinstance(owner, Op) and owner.name == "arith.constant"):
            return None
        lane = constant_value(owner)
        if lane is None and not exact_only:
            lane = _as_written(owner.attrs["value"])
        return lane

    def materialize(self, type: Type, value, at: Op, scope: Scope, kept: list) -> Value:
        """A constant of `type` with `value`: the one in scope, or a new op placed where `at` was."""
        op = OPS["arith.constant"]((), (type,), {"value": _attribute(value, type)}, None, at.loc)
        key = _value_key(op)
        if key not in scope:
            kept.append(op)
            scope[key] = op.result
        return scope[key]


def _as_written(value) -> Optional[float]:
    try:
        return float(value)
    except OverflowError:  # an int attribute past any float: no identity looks for it
        return None


def _attribute(value, type: Type):
    """The attribute of a folded value: an int for integer types, a float for float types."""
    return value if element_type(type).is_int else float(value)
