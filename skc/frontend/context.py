"""The code-generation context of the kernel being compiled: its builder, target, launch
shape, shared-memory layout, labels and the dependencies recorded for the cache key.

Builtins and run-time values reach it through `current()`, so DSL code written as ordinary
Python (operator overloading on run-time values) emits IR into the right place.
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

from .. import ir
from ..diagnostics import CompileError, Location, is_library_file
from ..target import Target


@dataclass
class Dependencies:
    """What the compiled code depends on besides its own source (feeds the cache key)."""

    functions: dict = field(default_factory=dict)   # (module, qualname) -> sha256 of the source
    globals: dict = field(default_factory=dict)     # (module, name) -> exact key of the value (keying.py)
    helpers: dict = field(default_factory=dict)     # (module, qualname) -> exact key of a function run as Python
    unkeyable: list = field(default_factory=list)   # reads with no exact key: the kernel is not cached on disk
    # (in memory only) module-level bindings read, directly or by what a key covers (the globals of a helper run at
    # compile time), as (namespace, name, value) when read: what a launch checks by identity (jit.py); `unkeyed`
    # those whose value has no exact key, which only their identity tells apart
    bindings: list = field(default_factory=list)
    unkeyed: list = field(default_factory=list)
    # (in memory only) the function each `helpers` entry was recorded for: another of the same name is another helper
    helper_functions: dict = field(default_factory=dict)


class CodeGen:
    """State shared by everything that emits IR for one kernel."""

    def __init__(self, function: ir.Function, target: Target, block: tuple, cluster: tuple = (1, 1, 1), *, rules):
        self.function = function
        # The DSL's typing rules (the frontend.semantics module): run-time values and dtypes apply them
        # through here, because semantics builds those values and imports their modules.
        self.rules = rules
        self.builder = ir.Builder(function)
        self.target = target
        self.block = block
        self.cluster = cluster
        self.launch_cluster = tuple(cluster)   # (@skc.kernel(cluster=...) or compile(cluster=...); 1x1x1: none said)
        self.shared_bytes = 0
        self.shared_align = 16
        self.deps = Dependencies()
        self.evaluator = None          # set by the evaluator that drives this kernel
        self.runtime_depth = 0         # run-time regions open (across inlined frames)
        self.unrolled = 0              # static_range iterations unrolled so far (bounded: max_unroll)
        self._labels = 0
        self._facts: dict = {}         # owner -> dict of compile-time facts that live as long as this compilation
        self._at_end: list = []        # checks to run once the body is compiled (at_end)

    def facts(self, owner: str) -> dict:
        """A dict private to `owner` (a block module's name) for compile-time facts about this kernel; it goes
        away with the compilation, so nothing a block records outlives it (or leaks into the next kernel)."""
        return self._facts.setdefault(owner, {})

    def at_end(self, check) -> None:
        """Run `check()` once the kernel's body is compiled and its launch shape (`cluster`) is final: a block checks
        there what the kernel may say after making it."""
        self._at_end.append(check)

    def finish(self, cluster: tuple) -> None:
        """The body is compiled and the kernel is launched in clusters of `cluster`: run the checks left for then."""
        self.cluster = cluster
        for check in self._at_end:
            check()

    @property
    def num_threads(self) -> int:
        x, y, z = self.block
        return x * y * z

    def label(self, prefix: str = "L") -> str:
        self._labels += 1
        return f"{prefix}{self._labels}"

    def allocate_shared(self, nbytes: int, align: int = 16) -> int:
        """Reserve a static shared-memory buffer; give its byte offset."""
        if align & (align - 1):
            raise CompileError(f"shared-memory alignment must be a power of two, found {align}", self.loc)
        offset = (self.shared_bytes + align - 1) // align * align
        self.shared_bytes = offset + nbytes
        self.shared_align = max(self.shared_align, align)
        if self.shared_bytes > self.target.max_shared_bytes:
            raise CompileError(
                f"shared memory of {self.shared_bytes} bytes exceeds the {self.target.max_shared_bytes} bytes "
                f"a block may use on {self.target.name}", self.loc,
                hint="use smaller tiles or fewer pipeline stages")
        return offset

    @property
    def loc(self) -> Optional[Location]:
        return self.builder.loc

    def error(self, message: str, hint: str = "") -> CompileError:
        return CompileError(message, self.loc, hint)


# Per thread: two threads compiling at once (a threaded server's first launches) each emit into their own kernel.
_local = threading.local()   # .stack: the kernels being compiled on this thread, innermost last


def _stack() -> list:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current() -> CodeGen:
    stack = _stack()
    if not stack:
        raise CompileError("this skc function only works inside a kernel being compiled", _host_caller(),
                           hint="call it from a function decorated with @skc.kernel or @skc.func")
    return stack[-1]


def _host_caller() -> Optional[Location]:
    """The user's line that called into skc from plain host code."""
    frame = sys._getframe(2)
    while frame is not None and is_library_file(frame.f_code.co_filename):
        frame = frame.f_back
    return None if frame is None else Location(frame.f_code.co_filename, frame.f_lineno, 0, frame.f_code.co_name)


def active() -> bool:
    return bool(_stack())


@contextmanager
def generating(codegen: CodeGen):
    stack = _stack()
    stack.append(codegen)
    try:
        yield codegen
    finally:
        stack.pop()
