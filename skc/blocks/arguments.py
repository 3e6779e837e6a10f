"""What a block's arguments must be: checks that refuse a wrong value where it enters a block (its constructor or its
call), naming the block, the argument, what it takes and what was found, and what to pass instead. Without them a
float given for a payload, a pointer for a tensor map or a lease's handle for a stage failed deep inside the block, in
Python's words ("'float' object has no attribute 'layouts'"), or later, at another line."""
from __future__ import annotations

import numbers

from skc import frontend, ir
from skc.diagnostics import SkcError


def compiling() -> bool:
    """Whether a kernel is being compiled: a block made on the host (for its sizes: `stage_bytes()`) is given
    placeholders there, and checks them only in a kernel."""
    try:
        frontend.current()
        return True
    except SkcError:
        return False


def describe(value) -> str:
    """A found value, in a message's words."""
    if isinstance(value, frontend.Dyn):
        kind = value.type
        if isinstance(kind, ir.TensorMapType):
            return f"a tensor map ({kind})"
        if isinstance(kind, frontend.PtrType) or getattr(kind, "is_pointer", False):
            return f"a pointer ({kind})"
        return f"a run-time {kind}"
    if value is None or isinstance(value, (bool, numbers.Number, str)):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def refuse(block: str, name: str, takes: str, value, hint: str):
    raise frontend.current().error(f"{block}'s {name} is {takes}, found {describe(value)}", hint=hint)


def check_has(block: str, name: str, value, attributes: tuple, takes: str, hint: str):
    """value is an object that has `attributes` (a block's, or one of the user's that says them)."""
    if isinstance(value, (frontend.Dyn, numbers.Number, str, tuple, list, dict, type(None))) or \
            not all(hasattr(value, attribute) for attribute in attributes):
        refuse(block, name, takes, value, hint)


def is_tensor_map(value) -> bool:
    return isinstance(value, frontend.Dyn) and isinstance(value.type, ir.TensorMapType)


def check_tensor_map(block: str, name: str, value, hint: str = "pass the kernel's skc.TensorMap parameter made "
                                                                  "for it on the host (skc.TensorMap(tensor, box))"):
    if not is_tensor_map(value):
        refuse(block, name, "a tensor map (skc.TensorMap)", value, hint)


def is_integer(value) -> bool:
    """A compile-time int (not a bool) or a run-time integer scalar."""
    if isinstance(value, frontend.Dyn):
        kind = value.type
        return getattr(kind, "is_scalar", False) and kind.is_int and not kind.is_bool
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_integer(block: str, name: str, value, hint: str):
    if not is_integer(value):
        refuse(block, name, "an integer (a compile-time int or a run-time integer)", value, hint)


def check_count(block: str, name: str, value, lowest: int = 1, hint: str = None):
    """A compile-time int of at least `lowest`."""
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= lowest):
        refuse(block, name, f"a compile-time int of {lowest} or more", value,
               hint or f"give {name} as a Python int of {lowest} or more (a constexpr)")


def check_flag(block: str, name: str, value, hint: str) -> bool:
    """A compile-time truth value, as a config's yes-or-no fields take it (a bool, or an int 0 or 1), as a bool."""
    if not (isinstance(value, numbers.Integral) and value in (0, 1)):
        refuse(block, name, "a compile-time bool", value, hint)
    return bool(value)


def check_dtype(block: str, name: str, value, hint: str = "give one of skc's element types, such as skc.bf16, "
                                                             "skc.f16 or skc.f32"):
    """One of skc's element types (skc.bf16, ...)."""
    if not isinstance(value, frontend.DType):
        refuse(block, name, "an element type (skc.bf16, skc.f32, ...)", value, hint)


class Missing(AttributeError):
    """A block's explanation of an attribute it does not have (the frontend shows its words and `hint`); still an
    AttributeError, so getattr(x, name, default) and hasattr() work as in Python."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def invalid(message: str, hint: str) -> ValueError:
    """A configuration's ValueError (made on the host too) that says what to do: inside a kernel the compile error
    shows `hint`."""
    error = ValueError(message)
    error.hint = hint
    return error
