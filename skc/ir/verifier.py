"""The verifier: every op's own checks, SSA dominance, jump labels, and function-wide facts."""
from __future__ import annotations

from ..diagnostics import VerificationError
from .core import TERMINATOR, Function, Module, Op, Region
from .ops_control import LABELED, LOOPS

# Ops whose regions take no arguments: only an op that gives its region arguments values
# (scf.for, the induction variable) may declare them. (Better as each op's own check.)
NO_REGION_ARGS = ("scf.if", "scf.loop", "scf.block")


class InvisibleOperand(VerificationError):
    """An op reads a value whose definition does not dominate it (defined later, or inside a region the op is not
    in)."""


class _FunctionVerifier:
    def __init__(self, fn: Function):
        self.fn = fn
        self.labels_seen: set[str] = set()

    def run(self):
        limit = self.fn.attrs.get("shared_bytes", 0)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise VerificationError(f"kernel @{self.fn.name}: shared_bytes must be a non-negative int, found {limit!r}")
        self.visible: set = set()   # ids of the values defined so far on the path to the op being checked
        self.region(self.fn.body, labels=[])

    def region(self, region: Region, labels: list):
        # one set for the whole walk, each region removing what it added on exit: copying the set per
        # region made verification quadratic in unrolled code (thousands of blocks)
        visible = self.visible
        added = [id(a) for a in region.args if id(a) not in visible]
        visible.update(added)
        try:
            self.region_ops(region, labels, visible, added)
        finally:
            visible.difference_update(added)
        self.shared_bounds(region)

    def region_ops(self, region: Region, labels: list, visible: set, added: list):
        for index, op in enumerate(region.ops):
            if op.parent is not region:
                op.fail("is listed in a region that is not its parent")
            _check_op(op)
            for i, operand in enumerate(op.operands):
                if id(operand) not in visible:
                    op.fail(f"operand {i} ({operand.type}) is used where its definition is not visible "
                            "(defined later, or inside a region this op is not in)", InvisibleOperand)
            if op.has(TERMINATOR) and index != len(region.ops) - 1:
                region.ops[index + 1].fail(f"unreachable: follows '{op.name}' in the same region")
            self.jump(op, labels)
            inner_labels = labels
            if op.name in NO_REGION_ARGS and any(nested.args for nested in op.regions):
                op.fail("regions take no arguments (nothing would define them)")
            if op.name in LABELED:
                label = _label(op)
                if label in self.labels_seen:
                    op.fail(f"label {label!r} is used by two constructs")
                self.labels_seen.add(label)
                inner_labels = labels + [(label, op.name)]
            for nested in op.regions:
                self.region(nested, inner_labels)
            for result in op.results:
                if id(result) not in visible:
                    visible.add(id(result))
                    added.append(id(result))

    def jump(self, op: Op, labels: list):
        if op.name not in ("scf.break", "scf.continue"):
            return
        label = _label(op)
        for name, kind in reversed(labels):
            if name == label:
                if op.name == "scf.continue" and kind not in LOOPS:
                    op.fail(f"continues {label!r}, which is a {kind}, not a loop")
                return
        op.fail(f"jumps to label {label!r}, which does not enclose it")

    def shared_bounds(self, region: Region):
        limit = self.fn.attrs.get("shared_bytes", 0)
        for op in region.ops:
            if op.name != "mem.shared":
                continue
            for attr in ("offset", "bytes"):
                value = op.attrs[attr]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    op.fail(f"{attr} must be a non-negative int, found {value!r}")
            if op.attrs["offset"] + op.attrs["bytes"] > limit:
                op.fail(f"buffer at offset {op.attrs['offset']} of {op.attrs['bytes']} bytes exceeds the "
                        f"function's shared_bytes = {limit}")


def _check_op(op: Op):
    """The op's shape and its own checks. A check that trips over a malformed attribute (a string
    where it compares ints) still reports the op, rather than escaping as a TypeError."""
    op.verify_shape()
    try:
        op.verify()
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
        op.fail(f"malformed operands or attributes ({type(error).__name__}: {error}) in {op.attrs}")


def _label(op: Op) -> str:
    label = op.attrs["label"]
    if not isinstance(label, str):
        op.fail(f"label must be a string, found {label!r}")
    return label


def verify(ir) -> None:
    """Check a Module or Function; raise VerificationError naming the op at fault."""
    functions = ir.functions if isinstance(ir, Module) else [ir]
    for fn in functions:
        if not isinstance(fn, Function):
            raise VerificationError(f"expected a function, found {type(fn).__name__}")
        _FunctionVerifier(fn).run()
