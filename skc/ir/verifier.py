"""The verifier: every op's own checks, SSA dominance, jump labels, and function-wide facts."""
from __future__ import annotations

from ..diagnostics import VerificationError
from .core import TERMINATOR, Function, Module, Op, Region
from .ops_control import LABELED, LOOPS


class _FunctionVerifier:
    def __init__(self, fn: Function):
        self.fn = fn
        self.labels_seen: set[str] = set()

    def run(self):
        self.region(self.fn.body, visible=set(), labels=[])

    def region(self, region: Region, visible: set, labels: list):
        visible = visible | {id(a) for a in region.args}
        for index, op in enumerate(region.ops):
            if op.parent is not region:
                op.fail("is listed in a region that is not its parent")
            op.verify_shape()
            op.verify()
            for i, operand in enumerate(op.operands):
                if id(operand) not in visible:
                    op.fail(f"operand {i} ({operand.type}) is used where its definition is not visible "
                            "(defined later, or inside a region this op is not in)")
            if op.has(TERMINATOR) and index != len(region.ops) - 1:
                region.ops[index + 1].fail(f"unreachable: follows '{op.name}' in the same region")
            self.jump(op, labels)
            inner_labels = labels
            if op.name in LABELED:
                label = op.attrs["label"]
                if label in self.labels_seen:
                    op.fail(f"label {label!r} is used by two constructs")
                self.labels_seen.add(label)
                inner_labels = labels + [(label, op.name)]
            for nested in op.regions:
                self.region(nested, visible, inner_labels)
            visible |= {id(r) for r in op.results}
        self.shared_bounds(region)

    def jump(self, op: Op, labels: list):
        if op.name not in ("scf.break", "scf.continue"):
            return
        label = op.attrs["label"]
        for name, kind in reversed(labels):
            if name == label:
                if op.name == "scf.continue" and kind not in LOOPS:
                    op.fail(f"continues {label!r}, which is a {kind}, not a loop")
                return
        op.fail(f"jumps to label {label!r}, which does not enclose it")

    def shared_bounds(self, region: Region):
        limit = self.fn.attrs.get("shared_bytes", 0)
        for op in region.ops:
            if op.name == "mem.shared" and op.attrs["offset"] + op.attrs["bytes"] > limit:
                op.fail(f"buffer at offset {op.attrs['offset']} of {op.attrs['bytes']} bytes exceeds the "
                        f"function's shared_bytes = {limit}")


def verify(ir) -> None:
    """Check a Module or Function; raise VerificationError naming the op at fault."""
    functions = ir.functions if isinstance(ir, Module) else [ir]
    for fn in functions:
        if not isinstance(fn, Function):
            raise VerificationError(f"expected a function, found {type(fn).__name__}")
        _FunctionVerifier(fn).run()
