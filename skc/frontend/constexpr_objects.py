"""The kernel's constexpr arguments and the objects they hold: each is the compile's key and outlives the compile, so
the kernel may not store a run-time value into one of them (the launch key, taken again, met this compile's variable
there, and so did the next compile given the object)."""
from __future__ import annotations

import types

from .dtypes import DType, PtrType
from .python_errors import describe
from .values import Dyn, mutable


class ConstexprObjects:
    """Mixin of the evaluator: what the constexpr arguments are and hold (noted before the body runs), and the
    refusal of a run-time value stored into one of them."""

    def note_constexpr_args(self, args: dict):
        """The kernel's constexpr arguments by name: they and what they hold, as passed, outlive the compile (a
        run-time value stored into one of them is refused: refuse_run_time_store)."""
        self.constexpr_args = args
        self.constexpr_held = objects_held(args)

    def constexpr_holding(self, obj):
        """The name of the constexpr argument that is obj or holds it (in a container or an attribute), else None."""
        found = self.constexpr_held.get(id(obj))
        return found[1] if found is not None and found[0] is obj else None

    def refuse_run_time_store(self, obj, attr: str, value, node):
        """`obj.attr = value`: an error where value is a run-time value and obj a constexpr argument or what one
        holds. (The launch's cache key, taken again after the compile, met this compile's variable there and failed in
        keying's words, as did every later launch given the object.)"""
        argument = self.constexpr_holding(obj) if mutable(value) else None
        if argument is None:
            return
        what = (f"constexpr argument '{argument}' ({describe(obj)})" if obj is self.constexpr_args[argument] else
                f"{describe(obj)} that constexpr argument '{argument}' holds")
        raise self.error_at(node, f"the kernel stores a run-time value into '{attr}' of {what}: a constexpr value "
                                  "is the compile's key and outlives the kernel, so it cannot hold a value of one "
                                  "run (a block object that keeps run-time state, as a TilePayload once a "
                                  "pipeline allocates its stages, is made inside the kernel)",
                            hint=f"make the {type(obj).__name__} inside the kernel, from constexpr parts (its "
                                 "layouts, sizes, a config), or keep the value in a variable")


def objects_held(roots: dict, depth: int = 8, most: int = 20_000) -> dict:
    """id(obj) -> (obj, the name of the root that holds it) of each container or object (with attributes) the values
    of `roots` are or hold, through items and attributes (`depth` deep, `most` of them; not into a kernel, whose
    attributes are its compiled code): what outlives a compile, as its constexpr arguments do."""
    found: dict = {}
    todo = [(value, name, 0) for name, value in reversed(list(roots.items()))]
    while todo and len(found) < most:
        value, name, level = todo.pop()
        if (isinstance(value, Dyn) or not _may_hold(value) or id(value) in found
                or getattr(type(value), "__skc_kernel__", False)):
            continue
        found[id(value)] = (value, name)
        if level == depth:
            continue
        if isinstance(value, dict):
            parts = [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            parts = list(value)
        else:
            parts = list(getattr(value, "__dict__", {}).values())
        todo.extend((part, name, level + 1) for part in reversed(parts))
    return found


def _may_hold(value) -> bool:
    """Whether a compile-time value is a container or an object whose items or attributes may hold others (not None,
    a number, a string, a class, a module or a function)."""
    if isinstance(value, (list, dict, tuple, set, frozenset)):
        return True
    return hasattr(value, "__dict__") and not isinstance(value, (type, types.ModuleType, types.FunctionType,
                                                                 types.MethodType, DType, PtrType))
