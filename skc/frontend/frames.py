"""What the evaluator keeps per inlined function: its names, open loops and with-blocks,
and where a run-time `return` goes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .. import ir
from ..diagnostics import Location
from .source import SourceFunction


class ControlSignal(Exception):
    """A jump taken while compiling (not at run time): it unwinds the evaluator like Python would."""


class CompileTimeBreak(ControlSignal):
    pass


class CompileTimeContinue(ControlSignal):
    pass


class CompileTimeReturn(ControlSignal):
    def __init__(self, value=None, cleaned: bool = False):
        super().__init__()
        self.value = value
        self.cleaned = cleaned  # with-blocks already emitted their __exit__ for this return


@dataclass
class LoopContext:
    """An open loop. Run-time loops have a label; unrolled loops may have labels for run-time jumps."""

    unrolled: bool
    runtime_depth: int             # the frame's run-time depth where the loop starts
    with_depth: int                # with-blocks open in the frame when the loop starts
    break_label: Optional[str] = None
    continue_label: Optional[str] = None
    continue_is_break: bool = False  # an unrolled loop continues by leaving the iteration's block
    breaks: list = field(default_factory=list)     # run-time jumps out of an unrolled loop: (env, (region, op))
    continues: list = field(default_factory=list)  # the same for jumps to the next unrolled iteration
    break_mark: object = None      # set by the first run-time break: the rest of the loop runs on some paths only
    continue_mark: object = None   # the same for a run-time continue, to the end of its iteration
    attribute_level: int = -1      # a run-time loop's entry in the evaluator's attribute_paths
    break_attributes: list = field(default_factory=list)   # what each run-time break's path set (attributes)


@dataclass
class ReturnTarget:
    """Where the run-time returns of an inlined function go: a labeled block, and slots for the value."""

    label: str
    slots: Optional[list] = None   # Slot per returned element
    shape: object = None           # None: one value; int: a tuple of that many
    returns_none: bool = False     # a bare `return` was seen
    line: int = 0                  # the first run-time return's line (an error about a later one names it)


@dataclass
class Frame:
    source: SourceFunction
    env: dict
    globals: dict
    closure: dict
    caller: Optional[Location] = None
    cells: dict = field(default_factory=dict)   # the closure's cells by name (what a launch watches)
    is_kernel: bool = False
    runtime_depth: int = 0
    loops: list = field(default_factory=list)
    withs: list = field(default_factory=list)
    promote: frozenset = frozenset()   # names kept in slots when assigned run-time values
    ret: Optional[ReturnTarget] = None
    return_mark: object = None         # set by the first run-time return: the rest runs on some paths only

    def location(self, node) -> Location:
        return self.source.location(node, self.caller)


def closure_of(fn) -> dict:
    """The values of a function's closure by name; a cell emptied (`del` of a `nonlocal`) binds nothing."""
    closure = {}
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            closure[name] = cell.cell_contents
        except ValueError:
            pass
    return closure


def scratch_region() -> ir.Region:
    """A region that is never attached: IR emitted while probing an expression is dropped with it."""
    return ir.Region()


def inline_unjumped(outer, labels: set):
    """A labeled block (an unrolled loop's, or an inlined function's) that no jump leaves at run time (its breaks,
    continues or returns all taken at compile time) is no block: its ops, and those of the blocks inside it named
    by `labels`, go where it was, so values made in it (kept in a list, say) stay visible after it."""
    body = outer.regions[0]
    if any(op.name == "scf.break" and op.attrs["label"] in labels for op in body.walk()):
        return
    ops = [inner for op in body.ops
           for inner in (op.regions[0].ops if op.name == "scf.block" and op.attrs["label"] in labels else (op,))]
    parent = outer.parent
    at = parent.ops.index(outer)
    parent.ops[at:at + 1] = ops
    for op in ops:
        op.parent = parent
