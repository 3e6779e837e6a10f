"""Run-time values as the DSL sees them.

`RValue` wraps an IR value with its DSL type (a scalar or vector IR type, or a `PtrType`
that remembers what the pointer points to). `Slot` is a mutable variable kept in a var slot;
reading it loads the slot. Both overload Python's operators, so DSL code that runs as plain
Python (helpers, properties) still emits IR. Using one as a Python bool or int is an error
with a hint, since its value is only known when the kernel runs.
"""
from __future__ import annotations

import linecache
import os
import sys
import sysconfig

from .. import ir
from ..diagnostics import CompileError, is_library_file, python_location
from . import context
from .dtypes import DTYPES, PtrType, as_ir_type


def _rules():
    """The DSL's typing rules (frontend.semantics), as the kernel being compiled carries them: they build
    run-time values, so this module cannot import them (see context.CodeGen.rules)."""
    return context.current().rules


class Dyn:
    """Anything whose value is known only at run time."""

    __slots__ = ()

    def __hash__(self):
        # a set element or dict key is told apart by its value, which only the run time knows (hashing by identity
        # made {a[0], a[0]} two elements)
        raise context.current().error(
            "a run-time value cannot be a set element or a dict key: its value is known only at run time",
            hint="key by a compile-time value (an index), or compare run-time values with ==")

    def rvalue(self) -> "RValue":
        raise NotImplementedError

    @property
    def dtype(self):
        t = self.type
        if isinstance(t, PtrType):  # a pointer's dtype is what it points to (as a tensor's is)
            return DTYPES[t.elem.name]
        return DTYPES[ir.element_type(t).name]

    def to(self, dtype):
        return _rules().cast(self, as_ir_type(dtype))

    # -- errors for uses that need a compile-time value -------------------------------
    def __bool__(self):
        raise _native_error(
            "a run-time value is used where Python needs a bool",
            hint="inside @skc.kernel/@skc.func code `if`, `while`, `and`, `or` and `not` work on run-time "
                 "values; in a plain Python helper they do not: decorate the helper with @skc.func")

    def __index__(self):
        raise _native_error(
            "a run-time value is used where a compile-time int is needed",
            hint="sizes, shapes, static_range bounds and tuple indices must be known at compile time: "
                 "pass them as skc.constexpr")

    __int__ = __float__ = __index__

    def __str__(self):
        return self._text()

    def __format__(self, spec):
        return self._text()

    def _text(self):
        """repr for skc's own messages; an error where kernel or helper code turns the value into text."""
        caller = sys._getframe(2).f_code.co_filename
        if is_library_file(caller) and os.path.abspath(caller) not in _EVALUATOR_FILES:
            return repr(self)
        raise _native_error("a run-time value has no text at compile time (str, format, % and f-strings "
                            "run when the kernel compiles)", hint="print run-time values with print('x =', x)")

    def __iter__(self):
        raise context.current().error("cannot iterate over a run-time value",
                                      hint="use `for i in range(n)` and index the pointer")

    # -- operators --------------------------------------------------------------------
    def _binary(self, op, other, reflected=False):
        return _rules().binary(op, other, self) if reflected else _rules().binary(op, self, other)

    def __add__(self, o): return self._binary("add", o)
    def __radd__(self, o): return self._binary("add", o, True)
    def __sub__(self, o): return self._binary("sub", o)
    def __rsub__(self, o): return self._binary("sub", o, True)
    def __mul__(self, o): return self._binary("mul", o)
    def __rmul__(self, o): return self._binary("mul", o, True)
    def __truediv__(self, o): return self._binary("truediv", o)
    def __rtruediv__(self, o): return self._binary("truediv", o, True)
    def __floordiv__(self, o): return self._binary("floordiv", o)
    def __rfloordiv__(self, o): return self._binary("floordiv", o, True)
    def __mod__(self, o): return self._binary("mod", o)
    def __rmod__(self, o): return self._binary("mod", o, True)
    def __pow__(self, o): return self._binary("pow", o)
    def __rpow__(self, o): return self._binary("pow", o, True)
    def __lshift__(self, o): return self._binary("lshift", o)
    def __rlshift__(self, o): return self._binary("lshift", o, True)
    def __rshift__(self, o): return self._binary("rshift", o)
    def __rrshift__(self, o): return self._binary("rshift", o, True)
    def __and__(self, o): return self._binary("and", o)
    def __rand__(self, o): return self._binary("and", o, True)
    def __or__(self, o): return self._binary("or", o)
    def __ror__(self, o): return self._binary("or", o, True)
    def __xor__(self, o): return self._binary("xor", o)
    def __rxor__(self, o): return self._binary("xor", o, True)

    def _compare(self, pred, other):
        return _rules().compare(pred, self, other)

    def __lt__(self, o): return self._compare("lt", o)
    def __le__(self, o): return self._compare("le", o)
    def __gt__(self, o): return self._compare("gt", o)
    def __ge__(self, o): return self._compare("ge", o)
    def __eq__(self, o): return self._compare("eq", o)
    def __ne__(self, o): return self._compare("ne", o)

    def __neg__(self):
        return _rules().unary("neg", self)

    def __pos__(self):
        return self

    def __invert__(self):
        return _rules().unary("invert", self)

    def __abs__(self):
        return _rules().unary("abs", self)

    # -- pointers and vectors ---------------------------------------------------------
    def __getitem__(self, index):
        return _rules().subscript(self.rvalue(), index)

    def __setitem__(self, index, value):
        _rules().store_subscript(self.rvalue(), index, value)


def _evaluator_files() -> frozenset:
    here = os.path.dirname(os.path.abspath(__file__))
    return frozenset(os.path.join(here, name) for name in (
        "calls.py", "expressions.py", "statements.py", "loops.py", "withs.py", "evaluator.py", "kernel.py"))


_EVALUATOR_FILES = _evaluator_files()


def _native_error(message: str, hint: str):
    """An error raised from Python code running natively (a plain helper): point at its line."""
    caller = context.current().loc
    frame = sys._getframe(2)
    while frame is not None and (is_library_file(frame.f_code.co_filename) or _not_users(frame)):
        if os.path.abspath(frame.f_code.co_filename) in _EVALUATOR_FILES:   # called by the evaluator: the kernel's line
            return CompileError(message, caller, hint)
        frame = frame.f_back
    if frame is None or caller is not None and frame.f_code.co_filename == caller.file and \
            frame.f_lineno == caller.line:
        return CompileError(message, caller, hint)
    return CompileError(message, python_location(frame.f_code, frame.f_lineno, frame.f_lasti, caller), hint)


def _not_users(frame) -> bool:
    """Code of no line of the user's: made at run time with no source (a dataclass's `__eq__`, `<string>`), or the
    standard library's, by where its file lies (functools.total_ordering's methods; not a package of the user's that
    has a standard module's name, `code/`): the error belongs to the line that called it."""
    name = frame.f_code.co_filename
    if name.startswith("<"):
        return not linecache.getline(name, frame.f_lineno)
    return (os.path.abspath(name).startswith(_STANDARD_LIBRARY) and "site-packages" not in name
            and "dist-packages" not in name)


_STANDARD_LIBRARY = tuple(os.path.abspath(sysconfig.get_paths()[kind]) + os.sep for kind in ("stdlib", "platstdlib"))


class RValue(Dyn):
    """An SSA value of the IR with its DSL type."""

    __slots__ = ("value", "type")

    def __init__(self, value: ir.Value, type=None):
        self.value = value
        self.type = type if type is not None else value.type

    def rvalue(self) -> "RValue":
        return self

    def __repr__(self):
        return f"<run-time {self.type}>"


class Slot(Dyn):
    """A mutable variable: a var slot of the IR holding values of one DSL type."""

    __slots__ = ("slot", "type", "name", "compile")

    def __init__(self, type, name: str = ""):
        self.type = type
        self.name = name
        ir_type = type.ir if isinstance(type, PtrType) else type
        self.compile = context.current()   # (the kernel whose variable it is: an object may keep it past that compile)
        self.slot = self.compile.builder.var(ir_type)

    def rvalue(self) -> RValue:
        return RValue(self._own_builder().var_load(self.slot), self.type)

    def store(self, value):
        value = _rules().convert_for_variable(value, self.type, self.name)
        self._own_builder().var_store(self.slot, value.value)

    def is_stale(self) -> bool:
        """Whether this is another compile's variable (kept by an object that outlived that compile, or that a
        compile on another thread holds now)."""
        return self.compile is not context.current()

    def _own_builder(self):
        """The builder of the compile this variable belongs to; an error where that is another compile (its variable
        is in another function: using it here made IR that failed later, naming something else)."""
        current = context.current()
        if self.compile is not current:
            raise current.error(
                f"'{self.name}' holds a run-time value of another compile (a kernel's earlier specialization, another "
                "kernel, or one compiling on another thread): it was kept in an object that outlives the kernel (one "
                "reached through a module global, or a compile-time argument) and is not this compile's",
                hint="keep run-time values in variables, or in objects the kernel makes; set the attribute in this "
                     "kernel before reading it")
        return current.builder

    def __repr__(self):
        return f"<variable {self.name}: {self.type}>"


class Poison:
    """A name whose value is unknown after run-time control flow; reading it is an error."""

    __slots__ = ("name", "reason", "hint", "value", "compile")

    def __init__(self, name: str, reason: str, hint: str = "", value=None):
        # value: a Slot holding what the paths that bound the name stored (where a test says they ran)
        self.name, self.reason, self.hint, self.value = name, reason, hint, value
        self.compile = context.current() if context.active() else None   # (as a Slot's: an object may keep it)

    def is_stale(self) -> bool:
        """Whether another compile left it (in an object that outlived that compile)."""
        return self.compile is not None and self.compile is not context.current()

    def fail(self):
        current = context.current()
        if self.is_stale():
            # (its reason speaks of run-time paths of that compile, which this one's code may not have)
            raise current.error(
                f"'{self.name}' was left unknown by another compile (a kernel's earlier specialization, or another "
                f"kernel), where it {self.reason}: it was kept in an object that outlives the kernel (one reached "
                "through a module global, or a compile-time argument)",
                hint="set the attribute on every path of that kernel, or in this kernel before reading it")
        raise current.error(f"'{self.name}' {self.reason}", self.hint)

    def __repr__(self):
        return f"<unknown {self.name}>"


def mutable(x) -> bool:
    """Whether a run-time value must live in a slot when stored somewhere that may change: every one but
    tensor maps (kernel arguments that never change and cannot be copied into a variable)."""
    return isinstance(x, Dyn) and not isinstance(getattr(x, "type", None), ir.TensorMapType)
