"""Algebraic identities that hold exactly, for every value of the non-constant operand.

Floats get only the identities IEEE 754 keeps bit for bit: x + -0.0, x - +0.0, x * 1.0 and
x / 1.0 give x (signed zeros, infinities and NaN included); x + 0.0 does not (-0.0 + 0.0 is
+0.0), nor x * 0.0 (inf * 0.0 is NaN), so those are left alone. fp8 gets none: its arithmetic rounds
every result with cvt.rn.satfinite (numerics.round_to; legalize computes it in f32), which makes e5m2's
infinities the largest finite value, so x * 1.0, x - 0.0 or min(x, x) of an infinity is 57344, not x.
"""
from __future__ import annotations

import math
from typing import Callable, Union

from ..core import Op, Value
from ..types import element_type
from .folding import wrap_int

BOTH, RIGHT = "both", "right"  # which operand may hold the neutral element

# constant kinds, as predicates on one lane's value and its scalar type
IS: dict[str, Callable] = {
    "zero": lambda v, t: v == 0 and math.copysign(1.0, v) > 0,
    "-zero": lambda v, t: v == 0 and math.copysign(1.0, v) < 0,
    "one": lambda v, t: v == 1,
    "ones": lambda v, t: t.is_int and v == wrap_int(-1, t),
}

# op -> (neutral element for ints, for floats, where it may stand): op(x, neutral) is x
NEUTRAL = {
    "arith.add": ("zero", "-zero", BOTH),
    "arith.sub": ("zero", "zero", RIGHT),
    "arith.mul": ("one", "one", BOTH),
    "arith.div": ("one", "one", RIGHT),
    "arith.and": ("ones", None, BOTH),
    "arith.or": ("zero", None, BOTH),
    "arith.xor": ("zero", None, BOTH),
    "arith.shl": ("zero", None, RIGHT),
    "arith.shr": ("zero", None, RIGHT),
}

# op -> absorbing element for ints: op(x, a) is a (ints only: inf * 0.0 is NaN)
ABSORBING = {"arith.mul": "zero", "arith.and": "zero", "arith.or": "ones"}

# op -> what op(x, x) is: "x", or a constant (ints only: NaN - NaN is NaN, not 0)
SAME_OPERANDS = {"arith.and": "x", "arith.or": "x", "arith.min": "x", "arith.max": "x",
                 "arith.sub": 0, "arith.xor": 0}

# predicate -> whether it holds for equal operands (ints and pointers: floats have NaN)
REFLEXIVE = {"eq": 1, "le": 1, "ge": 1, "ne": 0, "lt": 0, "gt": 0}


class Constant:
    """A result that is a constant (one lane's value; vectors splat it)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


Rewrite = Union[Value, Constant, None]


def simplify_identity(op: Op, lanes: list) -> Rewrite:
    """What op's result reduces to given which operands are constants (`lanes`, None where not), or None."""
    handler = _HANDLERS.get(op.name)
    return handler(op, lanes) if handler is not None else None


def _binary(op: Op, lanes: list) -> Rewrite:
    x, y = op.operands
    elem = element_type(op.result.type)
    if elem.is_float and elem.bits == 8:
        return None   # fp8 results saturate: not even x * 1.0 is x (see the module's docstring)
    if x is y and op.name in SAME_OPERANDS:
        same = SAME_OPERANDS[op.name]
        if same == "x":
            return x
        if elem.is_int:
            return Constant(same)
    int_kind, float_kind, sides = NEUTRAL.get(op.name, (None, None, RIGHT))
    neutral = int_kind if elem.is_int else float_kind
    absorbing = ABSORBING.get(op.name) if elem.is_int else None
    for const_index in ((1, 0) if sides == BOTH else (1,)):
        lane, other = lanes[const_index], op.operands[1 - const_index]
        if lane is None:
            continue
        if neutral is not None and IS[neutral](lane, elem):
            return other
        if absorbing is not None and IS[absorbing](lane, elem):
            return Constant(lane)
    return None


def _select(op: Op, lanes: list) -> Rewrite:
    cond, a, b = op.operands
    if lanes[0] is not None:
        return a if lanes[0] else b
    return a if a is b else None


def _cmp(op: Op, lanes: list) -> Rewrite:
    a, b = op.operands
    if a is b and not element_type(a.type).is_float:
        return Constant(REFLEXIVE[op.attrs["pred"]])
    return None


def _cast(op: Op, lanes: list) -> Rewrite:
    source = op.operands[0]
    return source if source.type is op.result.type else None


def _ptr_offset(op: Op, lanes: list) -> Rewrite:
    return op.operands[0] if lanes[1] == 0 else None


_HANDLERS: dict[str, Callable] = {
    **{name: _binary for name in {*NEUTRAL, *ABSORBING, *SAME_OPERANDS}},
    "arith.select": _select,
    "arith.cmp": _cmp,
    "arith.cast": _cast,
    "arith.bitcast": _cast,
    "ptr.cast": _cast,
    "ptr.offset": _ptr_offset,
}
