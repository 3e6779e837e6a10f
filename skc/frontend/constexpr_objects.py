"""The kernel's constexpr arguments and the objects they hold: each is the compile's key and outlives the compile, so
the kernel may not store a run-time value into one of them (the variable stayed in the user's object: the next launch's
key met it and failed in keying's words, and the next compile given the object on "another compile's" value)."""
from __future__ import annotations

import types

from .dtypes import DType, PtrType
from .keying import ATOMS, slot_names
from .python_errors import describe
from .values import Dyn


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
        """`obj.attr = value`: an error where value is or holds a run-time value and obj is a constexpr argument or
        what one holds."""
        argument = self.constexpr_holding(obj)
        if argument is not None:
            self._take(obj, argument, value, f"into '{attr}' of", node)

    def refuse_run_time_item(self, container, index, value, node, in_flow: bool):
        """`container[index] = value`, the same for an item; and, `in_flow` (inside run-time control flow, or past a
        run-time jump), a change of a constexpr's item at all: there the item becomes a run-time variable, which the
        user's container would keep."""
        argument = self.constexpr_holding(container)
        if argument is None:
            return
        self._take(container, argument, value, f"into item {index!r} of", node)
        if in_flow:
            raise self.constexpr_error(container, argument, f"changes item {index!r} of", node,
                                       " inside run-time control flow, where the item would be a run-time variable")

    def refuse_run_time_method(self, container, method: str, args, kwargs):
        """`container.method(*args, **kwargs)`, a list's, dict's or set's own method: the same, where it stores
        what it is given (append, extend, insert, setdefault, update, add, `+=`), or its items (extend, update,
        `+=`, `|=`)."""
        if method not in _STORING:
            return
        argument = self.constexpr_holding(container)
        if argument is None:
            return
        kind, symbol = type(container).__name__, _STORING[method]
        how = f"with {kind} {symbol} into" if symbol else f"with {kind}.{method}() into"
        given = [*args, *kwargs.values()]
        if method in _SPREADING:
            given = [part for value in given for part in
                     (_parts(value) if isinstance(value, _CONTAINERS) else (value,))]
        for value in given:
            self._take(container, argument, value, how, None)

    def constexpr_before(self, container, method: str):
        """A copy of what `container` holds before `container.method(...)`, where the method stores into it and a
        constexpr argument is or holds it (for refuse_run_time_stored); else None."""
        if method in _STORING and self.constexpr_holding(container) is not None:
            return container.copy()
        return None

    def refuse_run_time_stored(self, container, method: str, before):
        """After `container.method(...)` stored what it was given: a run-time value taken from a lazy argument (a
        generator given to extend or update, whose items no check saw before the call) is refused as one given
        directly, the container given back what it held (`before`, constexpr_before's copy)."""
        argument = self.constexpr_holding(container)
        if argument is None or not _run_time_in(container):
            return
        if isinstance(container, list):
            container[:] = before
        else:
            container.clear()
            container.update(before)
        how = f"with {type(container).__name__}.{method}() into"
        raise self.constexpr_error(container, argument, f"stores a run-time value {how}", None)

    def _take(self, holder, argument: str, value, into: str, node):
        """holder, which constexpr argument `argument` is or holds, is given value (`into`: "into 'v' of"): an error
        where value is or holds a run-time value; else value, and what it holds, are held by the argument from now on
        (an object the kernel made and put there outlives the compile as the argument does)."""
        if _run_time_in(value):
            stored = ("a run-time value" if isinstance(value, Dyn) else
                      f"{_described(value)}, which holds a run-time value,")
            raise self.constexpr_error(holder, argument, f"stores {stored} {into}", node)
        if _may_hold(value):
            self.constexpr_held.update(objects_held({argument: value}))

    def constexpr_error(self, holder, argument: str, doing: str, node, where: str = ""):
        """The error of a kernel that `doing` (a phrase: "stores a run-time value into 'v' of") holder, which
        constexpr argument `argument` is or holds; at node (where None, the statement being compiled: a setattr()
        call's)."""
        what = (f"constexpr argument '{argument}' ({_described(holder)})" if holder is self.constexpr_args[argument]
                else f"{_described(holder)} that constexpr argument '{argument}' holds")
        message = (f"the kernel {doing} {what}{where}: a constexpr value is the compile's key and outlives the "
                   "kernel, so it cannot hold a value of one run")
        if isinstance(holder, (list, dict, set)):
            kind = type(holder).__name__
            hint = (f"copy it into a local {kind} and change the copy (`{kind}(...)` of it, made before any run-time "
                    "loop or branch that changes it), or keep the value in a variable")
        else:
            message += (" (a block object that keeps run-time state, as a TilePayload once a pipeline allocates its "
                        "stages, is made inside the kernel)")
            hint = (f"make the {type(holder).__name__} inside the kernel, from constexpr parts (its layouts, sizes, a "
                    "config), or keep the value in a variable")
        return self.error_at(node, message, hint) if node is not None else self.cg.error(message, hint)


# the methods of a list, dict or set that store what they are given (in-place operators by their symbol)
_STORING = {"append": "", "extend": "", "insert": "", "setdefault": "", "update": "", "add": "", "__setitem__": "",
            "__iadd__": "+=", "__ior__": "|="}
_SPREADING = {"extend", "update", "__iadd__", "__ior__"}   # (those that store the items of what they are given)


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
        namespace = None if isinstance(value, _CONTAINERS) else getattr(value, "__dict__", None)
        if type(namespace) is dict:   # (an object's own attributes: `vars(cfg)["v"] = ...` stores into it)
            found[id(namespace)] = (namespace, name)
        if level == depth:
            continue
        parts = _parts(value)
        todo.extend((part, name, level + 1) for part in reversed(parts))
    return found


def _may_hold(value) -> bool:
    """Whether a compile-time value is a container or an object whose items or attributes (in its __dict__ or in
    slots) may hold others (not None, a number, a string, a class, a module or a function)."""
    if type(value) in ATOMS:
        return False
    if isinstance(value, _CONTAINERS):
        return True
    return ((hasattr(value, "__dict__") or bool(_slots(type(value))))
            and not isinstance(value, (type, types.ModuleType, types.FunctionType, types.MethodType, DType, PtrType)))


def _parts(value) -> list:
    """What a container or object holds: a dict's keys and values, a sequence's or set's items, an object's
    attributes (slots too)."""
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    if isinstance(value, _CONTAINERS):
        return list(value)
    parts = list(getattr(value, "__dict__", {}).values())
    return parts + [getattr(value, name) for name in _slots(type(value)) if hasattr(value, name)]


def _slots(cls: type) -> tuple:
    """The attributes a class and its bases keep in slots (`__slots__`, a dataclass's slots=True)."""
    found = _SLOTS.get(cls)
    if found is None:
        found = _SLOTS[cls] = tuple(name for base in cls.__mro__ for name in slot_names(base))
    return found


_SLOTS: dict = {}   # class -> _slots(class): a compile walks many objects of few classes
_CONTAINERS = (list, dict, tuple, set, frozenset)


def _run_time_in(value, most: int = 20_000) -> bool:
    """Whether value is a run-time value, or a compile-time container or object (a list the kernel made, an object
    of its own) that holds one, through items and attributes (`most` of them looked at)."""
    todo, seen = [value], set()
    while todo and len(seen) < most:
        value = todo.pop()
        if isinstance(value, Dyn):
            return True
        if _may_hold(value) and id(value) not in seen and not getattr(type(value), "__skc_kernel__", False):
            seen.add(id(value))
            todo.extend(_parts(value))
    return False


def _described(value) -> str:
    """A value in a few words, a list, dict or set with what it holds (`list [1.0]`)."""
    if not isinstance(value, (list, dict, set)):
        return describe(value)
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
