"""Python's own exceptions from a kernel's compile-time code (an operator, an index, a builtin on compile-time
values) as skc's words: what the kernel did, Python's reason, and what to write instead; never a bare
`TypeError: ...` that reads like a crash of the compiler."""
from __future__ import annotations

import types

from .values import Dyn

# Python's reasons, by a phrase of their text: what to write instead
_HINTS = (
    ("not subscriptable", "only pointers, tuples, lists, dicts and objects with __getitem__ can be indexed; a number "
                          "cannot (a pointer argument is indexed: x[i])"),
    ("does not support item assignment", "tuples, strings and numbers cannot be changed in place: build a new tuple, "
                                         "use a list, or store into a pointer"),
    ("is not callable", "only functions, classes and skc's builtins can be called; index a pointer with x[i]"),
    ("unsupported operand", "Python does not define this operator on these compile-time values either: convert "
                            "them first (int(x), float(x)) or use another operator"),
    ("bad operand type", "Python does not define this operator on this compile-time value either: convert it first "
                         "(int(x)) or use another operator"),
    ("index out of range", "a tuple's or list's index is taken when the kernel compiles and must lie inside it "
                           "(len() gives its length)"),
    ("indices must be integers", "index with a compile-time int (int(x) converts)"),
    ("has no len()", "len() takes a compile-time tuple, list, string or dict; pass a length as skc.constexpr"),
    ("is not iterable", "iterate over a tuple, a list or range(n)"),
    ("argument", "see the function's signature (help() in Python)"),
    ("too large", "a run-time number holds at most 64 bits (f64 up to about 1.8e308)"),
)


def explain(error: Exception, doing: str) -> tuple:
    """(message, hint) for `error`, which Python raised while the kernel's compile-time code did `doing` (a phrase
    such as "'//' of int 3 and int 0")."""
    reason = str(error) or type(error).__name__
    if isinstance(error, ZeroDivisionError):
        return (f"{doing} divides by zero", "the divisor is 0 when the kernel compiles, and Python refuses to "
                                            "divide by zero: check the divisor, or guard the division with `if`")
    if isinstance(error, ValueError) and "negative shift count" in reason:
        return (f"{doing} shifts by a negative count", "as in Python, a shift count must not be negative; shift the "
                                                       "other way")
    if isinstance(error, KeyError):
        return f"{doing}: the key {reason} is not in the dict", "a dict is read at compile time: use a key it holds"
    if isinstance(error, RecursionError):
        return f"{doing} nests too deeply (recursion?)", "kernels cannot recurse; write a loop"
    hint = next((text for phrase, text in _HINTS if phrase in reason), "")
    if "'function'" in reason and "not callable" not in reason:
        hint = "an operand is a function, not its value: call it (skc.warp_size(), not skc.warp_size)"
    return f"{doing}: {reason}", hint


def describe(value) -> str:
    """A compile-time value in a few words: `int 3`, `tuple (1, 2, 3)`, `module math`, `'Box' object`."""
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if isinstance(value, type):
        return f"class {value.__name__}"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return f"function {value.__name__}"
    if value is None or isinstance(value, (bool, int, float, str, tuple)):
        text = repr(value)
        text = text if len(text) <= 30 else text[:27] + "..."
        return text if value is None else f"{type(value).__name__} {text}"
    if isinstance(value, Dyn):
        return f"a run-time {value.type}"
    return f"'{type(value).__name__}' object"
