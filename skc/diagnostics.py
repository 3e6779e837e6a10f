"""Diagnostics shared by every layer: source locations and skc's error classes.

Every error a user can cause is an `SkcError`; its message says what is wrong, where
(FILE:LINE:COL, with the source line and a caret) and, when there is one, what to do.
"""
from __future__ import annotations

import itertools
import linecache
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Location:
    """A position in Python source. `caller` is the call site when the code was inlined."""

    file: str
    line: int
    col: int = 0
    function: str = ""
    caller: Optional["Location"] = None

    def __str__(self):
        return f"{self.file}:{self.line}:{self.col + 1}"

    def source_line(self) -> str:
        return linecache.getline(self.file, self.line).rstrip("\n")

    def frames(self):
        """This location, then each call site it was inlined into, innermost first."""
        loc = self
        while loc is not None:
            yield loc
            loc = loc.caller


def python_location(code, line: int, instruction: int, caller: Optional[Location] = None) -> Location:
    """The place of a running Python frame's instruction (its byte offset, `f_lasti` or `tb_lasti`): the column
    comes from the code's positions where Python keeps them (3.11 and later), else 0."""
    positions = getattr(code, "co_positions", None)   # (one entry a 2-byte code unit)
    position = next(itertools.islice(positions(), instruction // 2, None), None) if positions else None
    return Location(code.co_filename, line, (position and position[2]) or 0, code.co_name, caller)


def is_library_file(path: str) -> bool:
    """Files of skc itself (the blocks, the DSL prelude): errors point past them to the user's code."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.abspath(path).startswith(here + os.sep)


def user_location(loc: Optional[Location]) -> Optional[Location]:
    """The innermost frame of `loc` that lies in the user's code rather than in skc's own library."""
    if loc is None:
        return None
    for frame in loc.frames():
        if not is_library_file(frame.file):
            return frame
    return loc


def format_diagnostic(severity: str, message: str, loc: Optional[Location], hint: str = "") -> str:
    """`FILE:LINE:COL: error: message`, the source line with a caret, the hint, then inlining notes."""
    shown = user_location(loc)
    if shown is None:
        text = f"{severity}: {message}"
    else:
        text = f"{shown}: {severity}: {message}"
        line = shown.source_line()
        if line:
            text += f"\n    {line}\n    {' ' * shown.col}^"
    if hint:
        text += f"\nhint: {hint}"
    if loc is not None:
        frames = list(loc.frames())
        if len(frames) > 1 or (shown is not None and frames[0] is not shown):
            notes = [f"  note: at {frame}" + (f" in {frame.function}" if frame.function else "") for frame in frames]
            for note, run in itertools.groupby(notes):   # (a recursion: its call site once, as Python's tracebacks do)
                repeats = sum(1 for _ in run)
                text += f"\n{note}" + (f"\n  note: (the line above {repeats - 1} more times)" if repeats > 2 else
                                        f"\n{note}" * (repeats - 1))
    return text


class SkcError(Exception):
    """Base of every error skc raises for a user's mistake or an unavailable device."""


class LocatedError(SkcError):
    """An error at a place in the user's source: `str()` starts with `FILE:LINE:COL: error:`."""

    def __init__(self, message: str, loc: Optional[Location] = None, hint: str = ""):
        self.message, self.loc, self.hint = message, loc, hint
        super().__init__(format_diagnostic("error", message, loc, hint))


class CompileError(LocatedError):
    """A kernel that cannot compile."""


class VerificationError(CompileError):
    """Invalid tile IR: names the op, what was expected and what was found."""


class LaunchError(SkcError):
    """Bad launch input (arguments, grid, block), raised before anything is launched."""


class DeviceError(SkcError):
    """A missing or failing device, driver or tool (no libcuda, no ROCm, a CUDA error)."""


class InterpreterError(LocatedError):
    """A fault found by the CPU interpreter (out-of-bounds access, deadlock, trap), at the kernel's source line."""


class DeadlockError(InterpreterError):
    """Every thread still running waits on something no running thread will ever provide (in the interpreter),
    or a wait on the GPU gave up under the debug hang guard."""


class InterpreterLimitError(InterpreterError):
    """A loop of a kernel run by the CPU interpreter used up the step budget (an endless loop, most likely)."""
