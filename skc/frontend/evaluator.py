"""The partial evaluator: runs a kernel's Python source, computing what is known at compile
time as Python and emitting tile IR for the rest (see expressions.py, statements.py, calls.py)."""
from __future__ import annotations

from .calls import CallEvaluator
from .context import CodeGen
from .expressions import ExpressionEvaluator
from .frames import Frame
from .loops import LoopEvaluator
from .statements import StatementEvaluator
from .withs import WithEvaluator

_FINGERPRINTED = (int, float, bool, str, bytes, type(None))


class Evaluator(ExpressionEvaluator, StatementEvaluator, LoopEvaluator, WithEvaluator, CallEvaluator):
    def __init__(self, codegen: CodeGen):
        self.cg = codegen
        codegen.evaluator = self
        self.frames: list[Frame] = []
        self.region_stack: list[int] = []       # ids of the run-time regions open now
        self.attribute_origin: dict = {}        # (id(obj), attr) -> (obj, region id where last set)
        self.conditions: list = []              # (condition RValue, branch taken) of the enclosing run-time ifs

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    def record_global(self, name: str, value):
        """Remember a global the kernel read, for the cache key (functions are recorded when inlined)."""
        fingerprint = global_fingerprint(value)
        if fingerprint is not None:
            module = self.frame.globals.get("__name__", "")
            self.cg.deps.globals[(module, name)] = fingerprint


def global_fingerprint(value):
    """A text standing for a global's value in the cache key; None for values not recorded."""
    if isinstance(value, _FINGERPRINTED):
        return repr(value)
    if isinstance(value, (tuple, frozenset)) and all(isinstance(v, _FINGERPRINTED) for v in value):
        return repr(value)
    return None
