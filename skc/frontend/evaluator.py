"""The partial evaluator: runs a kernel's Python source, computing what is known at compile
time as Python and emitting tile IR for the rest (see expressions.py, statements.py, calls.py)."""
from __future__ import annotations

import functools
import sys
import types

from .calls import CallEvaluator
from .constexpr_objects import ConstexprObjects
from .context import CodeGen
from .expressions import ExpressionEvaluator
from .frames import Frame
from .keying import (ABSENT, ABSENT_BINDING, ATOMS, CONTENTS, STATE_BUILTINS, AttributeView, CellView, Unkeyable,
                     dependency_key, environment_view, module_key, plain_namespace, process_state, record_bindings,
                     slot_names, state_message, trusted_module)
from .loops import LoopEvaluator
from .statements import StatementEvaluator
from .withs import WithEvaluator


class Evaluator(ExpressionEvaluator, StatementEvaluator, LoopEvaluator, WithEvaluator, CallEvaluator,
                ConstexprObjects):
    def __init__(self, codegen: CodeGen):
        self.cg = codegen
        codegen.evaluator = self
        self.frames: list[Frame] = []
        self.region_stack: list[int] = []       # ids of the run-time regions open now
        # the same, with a mark where code past a run-time jump begins (it runs on some paths only, until the jump's
        # target): where a compile-time container may be changed (CallEvaluator.check_mutation)
        self.scope_stack: list[int] = []
        self.attribute_origin: dict = {}        # (id(obj), attr) -> (obj, region id where last set)
        self.container_origin: dict = {}        # id(list, dict, set or iterator) -> (it, scope_stack's top, frame) made in
        self.loop_regions: set = set()          # the ids in region_stack that are run-time loops' bodies
        self.taken_in_branch: dict = {}         # id(iterator) -> (it, the scope a run-time branch took items in)
        # attributes set inside run-time control flow (StatementEvaluator.end_attribute_paths): per open run-time path,
        # the (id(obj), attr) it sets on every way through; the new slots made there, in order; the objects the
        # kernel's code made, numbered
        self.attribute_paths: list[set] = []
        self.attributes_in_flow: list = []      # (obj, attr, what it held before)
        self.pending_attributes: dict = {}      # (id(obj), attr) -> (its Poison in an `if`'s second branch, the first's slot)
        self.objects_made: dict = {}            # id(obj) -> (obj, number)
        self.attributes_changed: dict = {}      # (id(obj), attr) -> (obj, attr, what it held before the compile)
        self.attributes_past_jumps: dict = {}   # id(a jump's mark) -> begin_attribute_paths() when it was placed
        self.conditions: list = []              # (condition RValue, branch taken) of the enclosing run-time ifs
        self.jumps: list = []                   # what each run-time jump leaves (a Frame, a LoopContext), as compiled
        self.comprehension_scopes: list = []    # the names of the comprehensions being evaluated (innermost last)
        self.ended_withs: dict = {}             # id -> manager whose with-statement was compiled to its end
        self.constexpr_args: dict = {}          # name -> value of the kernel's constexpr arguments (compile_to_ir)
        self.constexpr_held: dict = {}          # id(obj) -> (obj, argument name): what they are or hold, as passed
        self.searched: dict = {}                # id -> (container, its size): searched for modules (_modules_given)

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    def record_global(self, name: str, value):
        """Remember a global the kernel read, for the cache (functions are recorded when inlined)."""
        self.record_read(self.frame.globals.get("__name__", ""), name, value, self.frame.globals)

    def record_read(self, module: str, name: str, value, namespace=None):
        """Remember that the code read `module.name` (a global, or an attribute of a module): the value's
        exact key, or, where it has none, that the kernel must not be served from the disk cache."""
        deps = self.cg.deps
        if process_state(module, name):   # os.environ, sys.argv, torch.get_default_dtype: no exact key (keying.py)
            reason = f"{module}.{name}: {state_message(f'{module}.{name}')}"
            if reason not in deps.unkeyable:
                deps.unkeyable.append(reason)
                view = environment_view(value)   # (in memory, the environment is watched: `os.environ["S"] = "7"`)
                if view is not None:
                    deps.unkeyed.append((view, CONTENTS, view))
            return
        if (module, name) in deps.globals or trusted_module(module):
            return  # skc's own globals are covered by its source digest; a library's change with it
        reads = [(namespace if namespace is not None else _namespace(module), name, value)]
        if value is ABSENT_BINDING:   # (a name the module does not bind, asked for: bound later, it gives another)
            deps.globals[(module, name)] = ABSENT
            record_bindings(deps.bindings, reads)
            return
        try:
            deps.globals[(module, name)] = dependency_key(value, reads)
        except Unkeyable as e:
            deps.unkeyable.append(f"{module}.{name}: {e}")
            record_bindings(deps.unkeyed, reads)
        else:
            record_bindings(deps.bindings, reads)

    def record_modules_given(self, func, args, kwargs):
        """The modules code run as plain Python was given are read as it pleases: getattr(cfg, "S") and hasattr(cfg,
        "S") read one name, as `cfg.S` does; anything else may read any (vars(cfg), functools.partial(getattr, cfg),
        operator.attrgetter("S")(cfg), inspect.getattr_static, cfg.__getattribute__, a helper of the user's), and
        each such module is a dependency whole (keyed only by what the code names, a kernel was given the value an
        edited or reassigned attribute had at its compile)."""
        for module in _modules_given(func, args, kwargs, self.searched):
            if (func is getattr or func is hasattr) and module is args[0] and len(args) >= 2 \
                    and isinstance(args[1], str):
                self.record_module_name(module, args[1])
            else:
                self.record_module(module)

    def record_module_name(self, module, name: str):
        """Remember that the code read the attribute `name` of a module (`cfg.S`, getattr(cfg, "S"), hasattr(cfg,
        "S")): the name's binding, or, where the module binds none, that it binds none; the whole module where what
        the name gives is made by the module's `__getattr__` (PEP 562) or its class (`cfg.__dict__`)."""
        space = vars(module)
        if name in space:
            self.record_read(module.__name__, name, space[name], space)
        elif "__getattr__" in space or hasattr(type(module), name):
            self.record_module(module)
        else:
            self.record_read(module.__name__, name, ABSENT_BINDING, space)

    def record_module(self, module):
        """Remember that the code may have read any attribute of a module (vars(cfg), cfg.__dict__, or code run as
        plain Python given the module: a partial of getattr, operator.attrgetter, a helper of the user's): every
        binding of it is a dependency, watched in memory. Such a kernel is not served from the disk cache (the check
        of a cached kernel's globals finds no binding "__dict__"); the names the module binds are watched too (a
        name bound there later, in this process: keying.NamesView)."""
        name, deps = module.__name__, self.cg.deps
        if process_state(name):
            reason = f"module {name}: {state_message(f'module {name}')}"
            if reason not in deps.unkeyable:
                deps.unkeyable.append(reason)
            return
        if (name, "__dict__") in deps.globals or trusted_module(name):
            return
        reads = []
        try:
            deps.globals[(name, "__dict__")] = module_key(module, reads)
        except Unkeyable as e:
            deps.globals[(name, "__dict__")] = None   # (recorded once; such a kernel is never stored)
            deps.unkeyable.append(f"module {name}: {e}")
            record_bindings(deps.unkeyed, reads)
        else:
            record_bindings(deps.bindings, reads)

    def record_absent(self, name: str):
        """Remember that the code found `name` among the builtins, its module not binding it: a later binding there
        (a `def max` of the user's) means other code."""
        module = self.frame.globals.get("__name__", "")
        deps = self.cg.deps
        if name in STATE_BUILTINS:   # open(), input(): what they read has no exact key (keying.py)
            reason = f"{name}(): {state_message(f'{name}()')}"
            if reason not in deps.unkeyable:
                deps.unkeyable.append(reason)
        if (module, name) in deps.globals or trusted_module(module):
            return
        deps.globals[(module, name)] = ABSENT
        deps.bindings.append((self.frame.globals, name, ABSENT_BINDING))

    def record_closure(self, name: str, value):
        """Remember the closure cell a name was read from: a launch checks (by identity) that it still holds that
        value (`nonlocal` may bind it to another), and the bindings the value's key covers (an object's fields, a
        function's or a kernel's attributes, the globals a function reads: `config.scale = 3.0` after a launch); such
        code is never served from the disk cache (its function has no name a later process could find)."""
        cell = self.frame.cells.get(name)
        unkeyed = self.cg.deps.unkeyed
        if cell is None or any(isinstance(space, CellView) and space.cell is cell for space, _, _ in unkeyed):
            return
        unkeyed.append((CellView(cell), name, value))
        # (by identity, as the cell: a kernel defined in a function is not found again by name, so the check of the
        # keys a launch makes when a watched binding changes cannot tell an equal value bound again, and compiles anew)
        self.record_covered(value)

    def record_covered(self, value):
        """The bindings a value's key covers, watched by identity (with the unkeyed ones: a value of no key, or one
        whose name a later process cannot find); those met before a part with no key are watched all the same."""
        reads = []
        try:
            dependency_key(value, reads)
        except Unkeyable:
            pass
        record_bindings(self.cg.deps.unkeyed, reads)

    def record_attribute(self, obj, name: str, value):
        """Remember an attribute the code read of an object the keyer watches by its own fields alone (a
        torch.nn.Module of the user's, whose parameters its `__getattr__` serves from tables of its own): a launch
        reads the attribute again and checks it is the same object (`model.scale = Parameter(...)`), and the
        bindings the value's key covers (a parameter's version counter: `model.scale.fill_(3.0)`)."""
        unkeyed = self.cg.deps.unkeyed
        if any(isinstance(space, AttributeView) and space.obj is obj and seen == name for space, seen, _ in unkeyed):
            return
        view = AttributeView(obj)
        if view.get(name, ABSENT_BINDING) is not value:
            return   # (made anew at each read: a bound method, a property's result; by identity, every launch compiled;
            # or not there at all: `getattr(model, "absent", 2.0)` gave its default)
        unkeyed.append((view, name, value))
        self.record_covered(value)


# builtins that read no attribute of a module they are given (`isinstance(cfg, types.ModuleType)`): the module is no
# dependency of theirs (as one, it was keyed whole, watched binding by binding, and never served from disk)
_READ_NO_ATTRIBUTE = (isinstance, issubclass, callable, type, id, bool, hash, repr, str)
# a module's own methods that read its attributes (`cfg.__getattribute__("S")`); a builtin function's `__self__` is
# its module too (`len`, `math.sqrt`), which it is not given
_ATTRIBUTE_READERS = {"__getattribute__", "__getattr__", "__dir__"}
_BOUND = (types.BuiltinMethodType, types.MethodWrapperType)


def _modules_given(func, args, kwargs, searched: dict) -> list:
    """The modules a native call gives the code it runs: its arguments, the module a method is bound to (a function
    of the user's bound to it, `cfg.__getattribute__`), what a functools.partial holds (`partial(getattr, cfg)`), and
    what the lists, tuples, dicts and sets and the objects of the user's classes among them hold, nested too
    (`operator.attrgetter("m.S")(holder)`, a helper reading `holder.m.S`: the frontend never sees the module read).
    `searched`: the values searched in this compile (a helper called in a loop with a list of a million items is
    searched once)."""
    if any(func is reader for reader in _READ_NO_ATTRIBUTE):
        return []
    found, seen = [], set()
    waiting = [func, *args, *kwargs.values()]
    while waiting:
        value = waiting.pop()
        if type(value) in ATOMS or id(value) in seen:
            continue
        seen.add(id(value))   # (each value is alive meanwhile: the call's arguments hold it)
        if isinstance(value, types.ModuleType):
            found.append(value)
        elif isinstance(value, functools.partial):
            waiting += [value.func, *value.args, *value.keywords.values()]
        elif isinstance(getattr(value, "__self__", None), types.ModuleType) and (
                isinstance(value, types.MethodType)
                or isinstance(value, _BOUND) and getattr(value, "__name__", None) in _ATTRIBUTE_READERS):
            found.append(value.__self__)
        elif isinstance(value, type):   # (a class of the user's: its attributes, and its bases')
            if _users_class(value):
                waiting += [*vars(value).values(), *value.__bases__]
        else:
            try:
                waiting += _held(value, searched)
            except Exception:   # (an odd object: a __len__ or keys() that raises, a __dict__ that is no dict)
                pass
    return found


def _held(value, searched: dict) -> list:
    """What a value holds that may hold a module: a container's items, and the fields of an object of the user's
    class (a subclass of list or dict too) or of a SimpleNamespace or argparse.Namespace, with its class; nothing for
    one searched before in this compile (a container of the same size)."""
    held = []
    size = len(value) if isinstance(value, (list, tuple, set, frozenset, dict)) else -1
    before = searched.get(id(value))
    if before is not None and before[0] is value and before[1] == size:
        return held
    searched[id(value)] = (value, size)
    if size >= 0:
        held += [*value.keys(), *value.values()] if isinstance(value, dict) else value
    if _users_class(type(value)) or plain_namespace(type(value)):
        fields = getattr(value, "__dict__", None)
        held += [*(fields.values() if type(fields) is dict else ()), type(value)]
        held += [getattr(value, slot) for cls in type(value).__mro__ for slot in slot_names(cls)
                 if hasattr(value, slot)]
    return held


def _users_class(cls: type) -> bool:
    """Whether `cls` is a class of the user's, whose objects' fields and whose attributes may hold a module of the
    user's (not skc's, whose objects hold the compile's state, nor a library's)."""
    return not trusted_module(getattr(cls, "__module__", None) or "")


def _namespace(module: str):
    found = sys.modules.get(module)
    return vars(found) if found is not None else None

