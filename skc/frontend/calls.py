"""Calls inside kernels. Builtins emit IR; `@skc.func` functions and the methods of ordinary
Python classes are inlined (their source runs through the evaluator, with run-time control
flow); other callables run as plain Python at compile time, with run-time values traced
through their overloaded operators."""
from __future__ import annotations

import ast
import builtins
import collections.abc
import functools
import inspect
import math
import operator
import sys
import types
import weakref

from .. import ir
from ..diagnostics import CompileError, Location, SkcError, is_library_file, python_location
from . import builtins as dsl
from . import semantics
from .dtypes import DType
from .frames import CompileTimeReturn, Frame, ReturnTarget, closure_of, inline_unjumped
from .keying import Unkeyable, record_bindings, record_defaults, trusted_module, value_key, watched_by_fields
from .markers import is_builtin, is_host
from .python_errors import describe, explain
from .source import get_source, has_nested_return, has_source
from .values import Dyn, Poison, Slot
from .wrappers import through_wrappers

_MAX_INLINE_DEPTH = 64
_NATIVE_MODULES = {"numpy", "torch", "cupy", "math", "functools", "itertools", "operator", "dataclasses",
                   "typing", "enum", "collections", "abc", "builtins"}
# compile-time containers, and their methods that change them in place (CallEvaluator.check_mutation)
CONTAINERS = (list, dict, set, bytearray)
_MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "reverse", "sort", "update", "add", "discard",
             "setdefault", "popitem", "difference_update", "intersection_update", "symmetric_difference_update",
             "__setitem__", "__delitem__", "__iadd__", "__imul__", "__ior__", "__iand__", "__ixor__", "__isub__"}


def _method_call(func, args):
    """(container, method name, its arguments) of a call of a list's, dict's or set's own method: bound
    (`cfg.append(v)`), taken from the class (`list.append(cfg, v)`) or through operator (`operator.setitem(cfg, i,
    v)`, as `cfg[i] = v`); else None."""
    owner = getattr(func, "__self__", None)
    if isinstance(owner, CONTAINERS):
        return owner, getattr(func, "__name__", None), args
    if not args or not isinstance(args[0], CONTAINERS):
        return None
    if getattr(func, "__objclass__", None) in CONTAINERS:
        return args[0], func.__name__, args[1:]
    method = next((name for function, name in _OPERATOR_METHODS if function is func), None)
    return (args[0], method, args[1:]) if method is not None else None


_OPERATOR_METHODS = ((operator.setitem, "__setitem__"), (operator.iadd, "__iadd__"), (operator.ior, "__ior__"))


def _snapshot(container) -> tuple:
    """What a compile-time container holds, to tell after a call whether it changed (`_changed`): its items (held,
    so that none is freed and its id reused) or an array's bytes."""
    if is_numpy_array(container):
        return container.shape, container.dtype, container.tobytes()
    if isinstance(container, dict):
        return tuple(item for pair in container.items() for item in pair)
    return tuple(sorted(container, key=id)) if isinstance(container, set) else tuple(container)


def _changed(container, before: tuple) -> bool:
    now = _snapshot(container)
    if is_numpy_array(container):
        return now != before
    return len(now) != len(before) or any(a is not b for a, b in zip(now, before))


# builtins that look at an iterator without taking items from it (iter(it) gives it back)
_NOT_TAKING = frozenset(map(id, (isinstance, issubclass, id, type, iter, callable, hasattr, getattr, repr, hash,
                                 print)))


def _reachable(result, func, args, kwargs) -> bool:
    """Whether what a native call returned is one of its arguments (its object's too), or an item, value or
    attribute of one (dict.get, next(iter(rows)), getattr(obj, "rows")): an object made before the call, not by it."""
    for arg in (*args, *kwargs.values(), getattr(func, "__self__", None)):
        if arg is result:
            return True
        if isinstance(arg, dict):
            items = arg.values()
        elif isinstance(arg, (list, tuple)):
            items = arg
        else:   # (an attribute: getattr(obj, "rows"), getattr(module, "TABLE"))
            space = getattr(arg, "__dict__", None)
            items = space.values() if isinstance(space, dict) else ()
        if any(item is result for item in items):
            return True
    return False


def is_numpy_array(value) -> bool:
    """A numpy array (told by its type's module: the frontend does not import numpy for this)."""
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def is_iterator(value) -> bool:
    """Whether value is a compile-time iterator (a generator, iter(list), zip(...)): taking an item changes it."""
    return isinstance(value, collections.abc.Iterator) and not isinstance(value, (Dyn, Slot))


def _attribute_value(obj, name):
    """What obj holds as attribute `name` itself (in its __dict__ or a slot), without running a property."""
    space = getattr(obj, "__dict__", None)
    if isinstance(space, dict) and isinstance(name, str) and name in space:
        return space[name]
    descriptor = inspect.getattr_static(type(obj), name, None) if isinstance(name, str) else None
    if type(descriptor).__name__ == "member_descriptor":
        return getattr(obj, name, None)
    return None


def _raising_location(error: Exception, call: Location) -> Location:
    """Where a function run as plain Python at compile time raised `error`: the user's lines in its traceback
    (not skc's, the standard library's or numpy's and the like), innermost first, each called from the one before
    and the first from the kernel's `call` (the call alone where the traceback names no line of the user's)."""
    where = call
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        module = str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        # (code made at run time, "<string>": a dataclass's generated __init__ inside dataclasses.replace, no line of
        # the user's; it was given as the error's place, `<string>:32:3`)
        generated = code.co_filename.startswith("<")
        if not (is_library_file(code.co_filename) or module in _NATIVE_MODULES or module in sys.stdlib_module_names
                or generated):
            where = python_location(code, tb.tb_lineno, tb.tb_lasti, where)
        tb = tb.tb_next
    return where


class LocalFunction:
    """A def or lambda written inside a kernel: inlined when called, seeing the names around it."""

    def __init__(self, node, frame: Frame, defaults, scopes=()):
        # scopes: the comprehensions it was made in, whose names it reads as they are when it is called
        self.node, self.frame, self.defaults, self.scopes = node, frame, defaults, scopes

    def signature(self) -> inspect.Signature:
        args = self.node.args
        params = []
        positional = args.posonlyargs + args.args
        first_default = len(positional) - len(self.defaults[0])
        for i, a in enumerate(positional):
            kind = (inspect.Parameter.POSITIONAL_ONLY if i < len(args.posonlyargs)
                    else inspect.Parameter.POSITIONAL_OR_KEYWORD)
            default = self.defaults[0][i - first_default] if i >= first_default else inspect.Parameter.empty
            params.append(inspect.Parameter(a.arg, kind, default=default))
        if args.vararg:
            params.append(inspect.Parameter(args.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
        for a, default in zip(args.kwonlyargs, self.defaults[1]):
            params.append(inspect.Parameter(a.arg, inspect.Parameter.KEYWORD_ONLY, default=default))
        if args.kwarg:
            params.append(inspect.Parameter(args.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
        return inspect.Signature(params)


_SIGNATURES = weakref.WeakKeyDictionary()   # function -> (its code, defaults, keyword defaults, its signature)


def _signature(fn) -> inspect.Signature:
    """A function's signature, made once while its code and defaults stay (`f.__defaults__ = (7.0,)` gives another;
    kept by the function alone: a closure made per call is not kept alive by it)."""
    facts = (getattr(fn, "__code__", None), getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None))
    try:
        known = _SIGNATURES.get(fn)
    except TypeError:   # (no weak reference to it)
        return inspect.signature(fn)
    if known is None or any(a is not b for a, b in zip(known, facts)):
        known = (*facts, inspect.signature(fn))
        _SIGNATURES[fn] = known
    return known[3]


class CallEvaluator:
    """Mixin of the evaluator for calls."""

    def expr_Call(self, node):
        func = self.eval(node.func)
        if isinstance(func, Slot):
            func = func.rvalue()
        if func is super and not node.args:
            return self.zero_argument_super(node)
        args, kwargs = self.eval_call_arguments(node)
        return self.invoke(func, args, kwargs, node)

    def eval_call_arguments(self, node):
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                args.extend(self.compile_time_iterable(self.eval_value(a.value), a))
            else:
                args.append(self.eval_value(a))
        kwargs = {}
        for kw in node.keywords:
            given = self.eval_value(kw.value)
            if kw.arg is None and not hasattr(given, "keys"):
                raise self.error_at(kw, f"** takes a mapping of keyword arguments, found {type(given).__name__}")
            for name, value in (((k, given[k]) for k in given.keys()) if kw.arg is None else ((kw.arg, given),)):
                if name in kwargs:
                    raise self.error_at(kw, f"keyword argument '{name}' is given twice")
                kwargs[name] = value
        return args, kwargs

    def eval_defaults(self, args: ast.arguments):
        positional = [self.eval_value(d) for d in args.defaults]
        keyword = [self.eval_value(d) if d is not None else inspect.Parameter.empty for d in args.kw_defaults]
        return positional, keyword

    def zero_argument_super(self, node):
        cls = self.frame.closure.get("__class__")
        params = self.frame.source.node.args.args
        if cls is None or not params:
            raise self.error_at(node, "super() without arguments works only inside a method")
        return super(cls, self.frame.env[params[0].arg])

    # -- dispatch ---------------------------------------------------------------------
    def invoke(self, func, args, kwargs, node=None):
        if isinstance(func, Dyn):
            raise self.cg.error(f"a run-time {func.type} is not callable")
        if is_builtin(func):
            _check_builtin_arguments(self, func, args, kwargs)
            return func(*args, **kwargs)
        if isinstance(func, DType):
            if len(args) != 1 or kwargs:
                raise self.cg.error(f"{func!r}() takes one value to convert")
            return semantics.cast(args[0], func.ir)
        special = _PYTHON_BUILTINS.get(id(func))
        if special is not None and getattr(builtins, special[0], None) is func:
            try:
                return special[1](self, args, kwargs)
            except (SkcError, CompileTimeReturn):
                raise
            except Exception as e:   # (Python's builtin on compile-time values: len(3), min())
                raise self.cg.error(*explain(e, f"{special[0]}() of {_described(args, kwargs)}")) from e
        if func is object.__setattr__ and len(args) == 3 and not kwargs and isinstance(args[1], str):
            # (a frozen or __slots__ class's setter): as `obj.name = value`, so that a run-time value lives in a
            # variable and reads right after run-time control flow
            self.set_attribute(args[0], args[1], args[2], raw=True)
            return None
        if (isinstance(func, types.MethodWrapperType) and func.__name__ == "__setattr__" and len(args) == 2
                and not kwargs and isinstance(args[0], str)):   # (`obj.__setattr__("v", x)`: as `obj.v = x`)
            self.set_attribute(func.__self__, args[0], args[1])
            return None
        special = _MATH_FUNCTIONS.get(id(func))
        if special is not None and getattr(math, special[0], None) is func and any(
                isinstance(a, Dyn) for a in args):
            return special[1](self, args, kwargs)
        name = getattr(func, "__name__", "")
        if (special is None and getattr(math, name, None) is func
                and any(isinstance(a, Dyn) for a in list(args) + list(kwargs.values()))):
            raise self.cg.error(f"math.{name}() runs at compile time and has no run-time form in skc",
                                hint=_MATH_HINTS.get(name, "use skc's builtins (skc.sqrt, skc.exp2, skc.where, ...) "
                                                           "on run-time values"))
        if type(func).__name__ == "ufunc" and any(isinstance(a, Dyn) for a in args):
            return _numpy_ufunc(self, func, args, kwargs)
        jit = getattr(func, "__skc_function__", None)
        if jit is not None:
            if isinstance(func, types.MethodType):   # (an @skc.func method, read from its instance)
                args = (func.__self__, *args)
            return self.inline(jit, args, kwargs)
        if getattr(func, "__skc_kernel__", False):
            raise self.cg.error("a kernel cannot be called from a kernel",
                                hint="decorate the callee with @skc.func to inline it")
        if isinstance(func, LocalFunction):
            return self.inline_local(func, args, kwargs)
        if isinstance(func, types.MethodType) and self.should_inline(func.__func__):
            return self.inline(func.__func__, (func.__self__,) + tuple(args), kwargs)
        if isinstance(func, type):
            return self.construct(func, args, kwargs)
        call = getattr(type(func), "__call__", None)
        if (not isinstance(func, (types.FunctionType, types.BuiltinFunctionType, types.MethodType))
                and call is not None and self.should_inline(call)):
            return self.inline(call, (func,) + tuple(args), kwargs)
        if not callable(func):
            raise self.cg.error(f"{describe(func)} is not a function and cannot be called",
                                hint="only functions, classes and skc's builtins are called; a pointer is indexed "
                                     "(x[i]); a builtin's name assigned another value (range = 3) hides the builtin")
        return self.call_native(func, args, kwargs)

    def should_inline(self, fn) -> bool:
        """Methods of ordinary Python classes (the user's, skc.blocks') are inlined; library code is not."""
        if not isinstance(fn, types.FunctionType) or is_host(fn):
            return False
        module = (getattr(fn, "__module__", None) or "").split(".")
        if module[0] in _NATIVE_MODULES or module[0] in sys.stdlib_module_names:
            return False
        if module[:2] == ["skc", "frontend"]:
            return False
        if getattr(fn, "__wrapped__", None) is not None:   # (functools.wraps)
            inner, wrapper = through_wrappers(fn)
            # a wrapper that does more than pass its call through runs at compile time, as a plain function does
            return wrapper is None and (getattr(inner, "__skc_function__", None) is not None
                                        or isinstance(inner, types.FunctionType) and has_source(inner))
        return has_source(fn)

    def call_method(self, obj, name: str, args, node):
        method = getattr(type(obj), name, None)
        if method is None:
            what = "a run-time value" if isinstance(obj, Dyn) else f"'{type(obj).__name__}' object"
            raise self.cg.error(f"{what} has no method {name}",
                                hint="a with-statement needs an object with __enter__ and __exit__")
        if self.should_inline(method):
            return self.inline(method, (obj,) + tuple(args), {})
        return self.call_native(getattr(obj, name), args, {})

    def construct(self, cls, args, kwargs):
        init = cls.__dict__.get("__init__") or getattr(cls, "__init__", None)
        if (isinstance(init, types.FunctionType) and self.should_inline(init)
                and getattr(cls, "__new__") is object.__new__):
            obj = self.note_made(object.__new__(cls))
            result = self.inline(init, (obj,) + tuple(args), kwargs)
            if result is not None:
                raise self.cg.error(f"{cls.__name__}.__init__ returned a value")
            return obj
        return self.note_made(self.call_native(cls, args, kwargs))

    def check_mutation(self, func, args=(), kwargs=None, called=None):
        """A compile-time list, dict or set made outside the run-time branch or loop that runs this call, or before a
        run-time jump this call follows, cannot be changed here: the call runs once, at compile time, whatever path
        the program takes at run time. Nor can items be taken from an iterator where they would be taken once for
        many paths (next(it), list(it), zip(it) ...: check_taken_here). `called`: _method_call(func, args)."""
        if called is not None:
            self.refuse_run_time_method(*called, kwargs or {})
        container = getattr(func, "__self__", None)
        if self.scope_stack and isinstance(container, CONTAINERS) and getattr(func, "__name__", None) in _MUTATORS:
            kind = type(container).__name__
            self.check_made_here(container, kind, f"{kind}.{func.__name__}() changes a {kind}")
        for arg in list(args) + list((kwargs or {}).values()):
            if is_iterator(arg) and id(func) not in _NOT_TAKING:
                # (a plain Python helper of the user's runs unseen: it may take items, or only look at the iterator)
                known = (getattr(func, "__module__", None) or "").split(".")[0] in _NATIVE_MODULES
                self.check_taken_here(arg, f"{getattr(func, '__name__', None) or type(func).__name__}()",
                                      "takes" if known or isinstance(func, type) else
                                      "(run as plain Python at compile time) may take")

    def check_taken_here(self, iterator, taker: str, takes: str = "takes"):
        """Items taken from a compile-time iterator at run-time-dependent places are taken once, at compile time: in
        a run-time loop it was made outside of, every iteration would see the same items; after a run-time branch
        took some, what is left depends on the path. A branch may take items from it, as long as nothing outside
        that branch takes more."""
        stack = self.scope_stack
        origin = self.container_origin.get(id(iterator))
        entered = stack   # the run-time scopes entered since it was made (all, where that is not known)
        if origin is not None and origin[0] is iterator and origin[1] in stack:
            entered = stack[stack.index(origin[1]) + 1:]
        taken = self.taken_in_branch.get(id(iterator))
        if taken is not None and taken[0] is iterator and taken[1] not in stack:
            where = "a run-time branch took items from it before (what is left depends on the path taken)"
        elif not stack:
            return
        elif any(scope in self.loop_regions for scope in entered):
            where = ("it was made outside this run-time loop (every iteration would take the same items, once, at "
                     "compile time)")
        else:
            if entered:
                self.taken_in_branch[id(iterator)] = (iterator, stack[-1])
            return
        raise self.cg.error(f"{taker} {takes} items from a compile-time iterator, but {where}",
                            hint="make the iterator where its items are taken, index a list or tuple with "
                                 "skc.static_range, or keep the values in a run-time variable or in memory (a "
                                 "helper of yours that only looks at it: decorate it with @skc.func, so that skc "
                                 "compiles what it does)")

    def check_made_here(self, obj, kind: str, what: str):
        """Refuse `what` (a change to compile-time `obj`, a `kind`) unless obj was made in the run-time region (or
        past the run-time jump) this code runs in."""
        if not self.scope_stack or self.made_in_this_scope(obj):
            return
        raise self.cg.error(f"{what} made outside this run-time loop or branch (or before a run-time break, "
                            f"continue or return that this code follows), where a compile-time {kind} cannot "
                            "follow the path taken (the call would run once, at compile time, whichever path the "
                            "program takes)",
                            hint=f"build the {kind} inside the loop or branch, keep the values in a run-time "
                                 "variable or in memory, or decide with a compile-time condition "
                                 "(skc.static_range, a constexpr)")

    def outside_containers(self, func, args, kwargs) -> list:
        """The compile-time containers a plain-Python call inside a run-time region is given that were made outside
        it, each with a snapshot to tell whether the call changed it (skc's own functions change none)."""
        if not self.scope_stack or is_builtin(func) or (getattr(func, "__module__", None) or "").startswith("skc"):
            return []
        return [(arg, _snapshot(arg)) for arg in (*args, *kwargs.values(), getattr(func, "__self__", None))
                if (isinstance(arg, CONTAINERS) or is_numpy_array(arg)) and not self.made_in_this_scope(arg)]

    def made_in_this_scope(self, container) -> bool:
        """Whether a compile-time container (or iterator) was made in the run-time scope open now (or, past a
        run-time return, by this function, which drops it on returning): code here may change it."""
        origin = self.container_origin.get(id(container))
        top = self.scope_stack[-1] if self.scope_stack else None
        return origin is not None and origin[0] is container and (
            origin[1] == top or (origin[2] is self.frame and top == id(self.frame.return_mark)))

    def call_native(self, func, args, kwargs):
        called = _method_call(func, args)   # (a container's own method: checked before the call and after it)
        self.check_mutation(func, args, kwargs, called)
        watched = self.outside_containers(func, args, kwargs)
        before = self.constexpr_before(*called[:2]) if called is not None else None
        try:
            result = func(*args, **kwargs)
            if before is not None:   # (what a lazy argument gave it: a generator given to extend or update)
                self.refuse_run_time_stored(called[0], called[1], before)
            for container, before in watched:
                if _changed(container, before):   # (a helper of the user's changed it: on every path)
                    kind = type(container).__name__
                    self.check_made_here(container, kind, f"{getattr(func, '__qualname__', None) or kind}() "
                                                          f"changed a {kind}")
            self.record_helper(func, args, kwargs)   # (after the call: the modules it imports are loaded)
            if (isinstance(result, CONTAINERS) or is_iterator(result) or is_numpy_array(result)) and \
                    not _reachable(result, func, args, kwargs):
                # (made by the call; one it was given, or found in what it was given, keeps where it was made:
                # `groups.get(k)` inside a run-time branch is a list made outside it)
                self.made_here(result)
            if isinstance(result, Poison) or (func is hasattr and result and len(args) == 2):
                # an attribute set on some run-time paths only (StatementEvaluator.end_attribute_paths), read
                # through getattr() or vars(), or asked for by hasattr(): it holds something else on other paths
                poison = result if isinstance(result, Poison) else _attribute_value(*args)
                if isinstance(poison, Poison):
                    poison.fail()
            self.record_modules_given(func, args, kwargs)
            if func is getattr and len(args) >= 2 and isinstance(args[1], str) and watched_by_fields(args[0]):
                self.record_attribute(args[0], args[1], result)   # (`getattr(model, "scale")`, as `model.scale`)
            return result
        except (SkcError, CompileTimeReturn):
            raise
        except Exception as e:
            name = getattr(func, "__qualname__", None) or type(func).__name__
            where = _raising_location(e, self.cg.loc)
            if any(isinstance(a, Dyn) for a in list(args) + list(kwargs.values())):
                raise CompileError(f"{name}() runs as plain Python at compile time and cannot take run-time "
                                   f"values (it raised {type(e).__name__}: {e})", where,
                                   hint="use skc's builtins (skc.sqrt, skc.where, ...) or decorate the "
                                        "function with @skc.func") from e
            if where is self.cg.loc:   # (raised by library code, not by a line of the user's: say it in skc's words)
                message, hint = explain(e, f"{name}() of {_described(args, kwargs)}")
                raise CompileError(message, where, getattr(e, "hint", None) or hint) from e
            raise CompileError(f"{name}() raised {type(e).__name__}: {e}", where) from e

    def record_helper(self, func, args=(), kwargs=None):
        """A function run as plain Python at compile time is a dependency with all it reads: its code,
        defaults, closure and the globals its code names (keying.py). Without an exact key, the kernel
        is not served from the disk cache; nor where a module of the user's is passed to it (what it reads
        there is not known)."""
        func = func.__func__ if isinstance(func, types.MethodType) else func
        if not isinstance(func, types.FunctionType) or trusted_module(func.__module__ or ""):
            return
        for arg in (*args, *(kwargs or {}).values()):
            if isinstance(arg, types.ModuleType) and not trusted_module(arg.__name__):
                self.cg.deps.unkeyable.append(f"module {arg.__name__} passed to {func.__qualname__}")
        deps, where = self.cg.deps, (func.__module__ or "", func.__qualname__)
        recorded = deps.helper_functions.setdefault(where, func)
        if recorded is func and where in deps.helpers:
            return
        reads, reason = [], None
        try:
            key = value_key(func, reads)
        except Unkeyable as e:
            reason = f"{where[0]}.{where[1]}: {e}"
        if recorded is not func:
            # another function of that name (two lambdas, a factory's closures): its reads are watched too (the second
            # one's globals went unwatched), and the disk's key, by name, cannot tell the two apart
            reason = f"{where[0]}.{where[1]}: two functions of that name run at compile time"
        if reason is None:
            deps.helpers[where] = key
            record_bindings(deps.bindings, reads)
            return
        deps.helpers[where] = None  # such a kernel is never stored
        if reason not in deps.unkeyable:
            deps.unkeyable.append(reason)
        record_bindings(deps.unkeyed, reads)

    def record_inlined(self, fn, source):
        """An inlined function is a dependency by its source and its defaults (the globals it reads are
        recorded as the evaluator reads them)."""
        where = (source.module, source.qualname)
        if where in self.cg.deps.functions or trusted_module(source.module):
            return  # skc's own functions (the blocks) are covered by skc's source digest in the key
        record_defaults(self.cg.deps, fn, source)

    # -- inlining ---------------------------------------------------------------------
    def inline(self, fn, args, kwargs):
        if getattr(fn, "__wrapped__", None) is not None:   # (a functools.wraps wrapper that passes its call through)
            fn = through_wrappers(fn)[0]
            fn = getattr(fn, "__skc_function__", fn)
        source = get_source(fn)
        self.record_inlined(fn, source)
        try:
            bound = _signature(fn).bind(*args, **kwargs)
        except TypeError as e:
            raise self.cg.error(f"wrong arguments to {fn.__qualname__}(): {e}",
                                hint=f"it takes {fn.__qualname__}{_shown_signature(fn)}") from None
        bound.apply_defaults()
        frame = Frame(source, dict(bound.arguments), fn.__globals__, closure_of(fn), caller=self.cg.builder.loc,
                      cells=dict(zip(fn.__code__.co_freevars, fn.__closure__ or ())))
        return self.run_frame(frame, source.node.body)

    def inline_local(self, local: LocalFunction, args, kwargs):
        try:
            bound = local.signature().bind(*args, **kwargs)
        except TypeError as e:
            raise self.cg.error(f"wrong arguments: {e}", hint=f"it takes ({', '.join(local.signature().parameters)})") \
                from None
        bound.apply_defaults()
        outer = local.frame
        closure = dict(outer.closure)
        closure.update(outer.env)
        for scope in local.scopes:
            closure.update(scope)
        frame = Frame(outer.source, dict(bound.arguments), outer.globals, closure, caller=self.cg.builder.loc)
        if isinstance(local.node, ast.Lambda):
            return self.run_frame(frame, [ast.Return(value=local.node.body, lineno=local.node.lineno,
                                                     col_offset=local.node.col_offset)])
        return self.run_frame(frame, local.node.body)

    def run_frame(self, frame: Frame, body):
        if len(self.frames) >= _MAX_INLINE_DEPTH:
            raise self.cg.error(f"functions are inlined more than {_MAX_INLINE_DEPTH} deep (recursion?)",
                                hint="kernels cannot recurse; write a loop")
        builder = self.cg.builder
        block = None
        if has_nested_return(body):
            frame.ret = ReturnTarget(self.cg.label("R"))
            block = builder.create("scf.block", attrs={"label": frame.ret.label})
        self.frames.append(frame)
        result = None
        try:
            with builder.at(block.regions[0]) if block is not None else _Unchanged():
                try:
                    ended = self.exec_body(body)
                except CompileTimeReturn as signal:
                    result, ended = signal.value, True
        finally:
            self.unmark_jump(frame, "return_mark")
            self.frames.pop()
        if block is not None:
            inline_unjumped(block, {frame.ret.label})
        if frame.ret is not None and frame.ret.slots is not None:
            if not ended:
                raise CompileError(f"{frame.source.qualname} returns a value at line {frame.ret.line} and reaches "
                                   "its end on other paths", frame.location(frame.source.node),
                                   hint="end the function with a return")
            loaded = [slot.rvalue() for slot in frame.ret.slots]
            return tuple(loaded) if frame.ret.shape is not None else loaded[0]
        return result


class _Unchanged:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# -- Python's builtins inside kernels ------------------------------------------------------
def _minmax(op):
    def handle(ev, args, kwargs):
        if len(args) == 1 and isinstance(args[0], Dyn):   # Python's max(iterable): a vector's lanes
            value = semantics.to_rvalue(args[0])
            if not getattr(value.type, "is_vector", False):
                raise ev.cg.error(f"{op}() of one run-time {value.type}: Python's {op}() takes several values or "
                                  "one iterable", hint=f"write {op}(a, b), or {op}() of a vector for its lanes")
            args = tuple(semantics.subscript(value, lane) for lane in range(value.type.count))
        values = list(args[0]) if len(args) == 1 and not isinstance(args[0], Dyn) else list(args)
        if any(isinstance(v, Dyn) for v in values):
            if kwargs:
                raise ev.cg.error(f"{op}() with run-time values takes no keyword arguments")
            semantics.refuse_opaque(f"{op}()", "numbers", *values)
            return _python_minmax(op, values)
        return getattr(builtins, op)(*args, **kwargs)
    return handle


def _python_minmax(op, values):
    """Python's min() or max() of values (one run-time at least): the first of the smallest (largest) by `<` (`>`).
    For floats that is no arith.min/max (IEEE minNum, skc.minimum): a NaN in front is kept and one behind is skipped,
    and of -0.0 and 0.0 the first is kept (min(nan, 1.0) read 1.0 and min(0.0, -0.0) -0.0, where Python and the same
    call on compile-time numbers give nan and 0.0)."""
    result = values[0]
    for v in values[1:]:
        if not isinstance(result, Dyn) and not isinstance(v, Dyn):
            # (two compile-time values stay Python's: min(1, 2.0, x) raised AttributeError on the folded pair)
            result = getattr(builtins, op)(result, v)
            continue
        if semantics.narrow_of_both_signs(result, v):   # (as they compare: max(i8(-1), u8(0)) read u8 255)
            result, v = semantics.cast(result, ir.i32), semantics.cast(v, ir.i32)
        x, y = semantics.unify_chosen(result, v)   # (max(n, 0.5) is n itself where n wins: an f64 beside an i32)
        if ir.element_type(x.type).is_float:
            result = semantics.select(semantics.compare("lt" if op == "min" else "gt", y, x), y, x)
        else:
            result = semantics.minmax(op, [x, y])
    return semantics.to_rvalue(result)


def _sum(ev, args, kwargs):
    """Python's sum() of a vector: its lanes added left to right onto start (0 unless given), each `+` as the kernel
    would write it, so the sum is in the type `start + lane` has (the vector's, for the default 0), as max() and min()
    give a lane's type. (It raised "cannot iterate over a run-time value" with a hint about indexing a pointer.)
    Lists and tuples of run-time values are Python's own sum()."""
    if args and isinstance(args[0], Dyn):
        value = semantics.to_rvalue(args[0])
        if not getattr(value.type, "is_vector", False):
            raise ev.cg.error(f"sum() of one run-time {value.type}: Python's sum() takes an iterable",
                              hint="write a + b, or sum() of a vector for its lanes; skc.load(..., width=1) gives a "
                                   "scalar, not a vector of one lane: for a width that may be 1, write "
                                   "`sum(v) if width > 1 else v`")
        args = (tuple(semantics.subscript(value, lane) for lane in range(value.type.count)),) + tuple(args[1:])
    result = builtins.sum(*args, **kwargs)
    return semantics.to_rvalue(result) if isinstance(result, Dyn) else result


def _shown_signature(fn) -> str:
    """fn's parameters as its source says them (a method's without self: the caller does not pass it)."""
    parameters = list(_signature(fn).parameters.values())
    if parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    return f"({', '.join(str(p) for p in parameters)})"


def _check_builtin_arguments(ev, func, args, kwargs):
    """An skc builtin's arguments bind to its parameters, else an error naming the builtin as the user wrote it
    (sqrt, not the factory's inner function `_math_unary.<locals>.fn` that Python's own message names)."""
    signature = _builtin_signature(func)
    if signature is None:
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as e:
        raise ev.cg.error(f"{func.__name__}() is called with the wrong arguments: {e}",
                          hint=f"it takes {func.__name__}{signature}") from None


@functools.lru_cache(maxsize=None)
def _builtin_signature(func):
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def _described(args, kwargs) -> str:
    parts = [describe(a) for a in args] + [f"{name}={describe(v)}" for name, v in kwargs.items()]
    return ", ".join(parts) if parts else "no arguments"


def _abs(ev, args, kwargs):
    if len(args) != 1 or kwargs:
        raise ev.cg.error(f"abs() takes exactly one argument ({len(args) + len(kwargs)} given)")
    (value,) = args
    return semantics.unary("abs", value) if isinstance(value, Dyn) else abs(value)


def _to_int(ev, args, kwargs):
    if args and isinstance(args[0], Dyn):
        if len(args) > 1 or kwargs:
            raise ev.cg.error("int() with a base parses a string; a run-time value is a number already",
                              hint="write int(x)")
        t = args[0].type
        if isinstance(t, ir.ScalarType) and t.is_int and not t.is_bool:
            return args[0]
        return semantics.cast(args[0], ir.i64 if getattr(t, "bits", 32) == 64 else ir.i32)
    return int(*args, **kwargs)


def _to_float(ev, args, kwargs):
    if args and isinstance(args[0], Dyn):
        t = args[0].type
        # an i64, u64 or f64 to f64: 64 bits of integer in an f32 lost all but 24 (README: 'float() of an i64 is an f64')
        return semantics.cast(args[0], ir.f64 if getattr(t, "bits", 32) == 64 else ir.f32)
    return float(*args, **kwargs)


def _to_bool(ev, args, kwargs):
    if args and isinstance(args[0], Dyn):
        return semantics.to_bool(args[0])
    return bool(*args, **kwargs)


def _divmod(ev, args, kwargs):
    if len(args) == 2 and not kwargs and any(isinstance(a, Dyn) for a in args):
        return semantics.binary("floordiv", *args), semantics.binary("mod", *args)
    return divmod(*args, **kwargs)


def _range(ev, args, kwargs):
    if any(isinstance(a, Dyn) for a in args):
        raise ev.cg.error("a range with run-time bounds can only drive a for loop",
                          hint="write `for i in range(n):`")
    return range(*args, **kwargs)


def _print(ev, args, kwargs):
    for name, value in kwargs.items():
        if name not in ("sep", "end"):
            raise ev.cg.error(f"print() in a kernel takes sep= and end=, not {name}= (its lines go to the device's "
                              "output, flushed when the kernel ends)")
        if value is not None and not isinstance(value, str):
            raise ev.cg.error(f"print()'s {name} is a compile-time string, found {value!r}")
    return dsl.device_print(*args, **{name: value for name, value in kwargs.items() if value is not None})


def _setattr(ev, args, kwargs):
    obj, name, value = args
    ev.set_attribute(obj, name, value)


def _stands_for(value):
    """The Python number a run-time scalar stands for, to isinstance() and type(): False for an i1, 0 for any integer
    type, 0.0 for a float type; None for anything else."""
    kind = getattr(getattr(value, "type", None), "kind", None) if isinstance(value, Dyn) else None
    return {"bool": False, "int": 0, "uint": 0, "float": 0.0}.get(kind)


def _in_users_code(ev) -> bool:
    """Whether the call is in the user's code (skc's own blocks ask isinstance(x, int) of their own arguments to tell
    a compile-time int from a run-time value, and keep Python's answer)."""
    return not trusted_module(ev.frame.globals.get("__name__") or "")


def _isinstance(ev, args, kwargs):
    """isinstance() of a run-time scalar in the user's code answers as Python does of the number it stands for (an
    i32 is an int, an f32 a float, an i1 a bool and an int): it asked of the compiler's object and answered False, so
    a helper that branched on `isinstance(s, (int, float))` took its other branch."""
    number = _stands_for(args[0]) if len(args) == 2 and not kwargs else None
    if number is not None and _in_users_code(ev):
        return isinstance(number, args[1])
    return isinstance(*args, **kwargs)


def _type(ev, args, kwargs):
    """type() of a run-time scalar in the user's code is the Python type of the number it stands for (`type(a) is
    type(f)` was True for an i32 and an f32: both were the compiler's class)."""
    number = _stands_for(args[0]) if len(args) == 1 and not kwargs else None
    if number is not None and _in_users_code(ev):
        return type(number)
    return type(*args, **kwargs)


def _compile_time_only(name: str, why: str, hint: str, elements: bool = True):
    """A builtin whose result must be known at compile time: an error for run-time values, else Python's.
    With `elements`, the elements of a list or tuple argument count too (sorted() compares them; len() does not
    look at them: a list of run-time values has a length known at compile time)."""
    def handle(ev, args, kwargs):
        values = list(args) + list(kwargs.values())
        if elements and len(args) == 1 and isinstance(args[0], (list, tuple)):
            values += list(args[0])
        if any(isinstance(v, Dyn) for v in values):
            raise ev.cg.error(f"{name}() of a run-time value: {why}", hint=hint)
        return getattr(builtins, name)(*args, **kwargs)
    return handle


def _pow(ev, args, kwargs):
    """pow(x, n) is x ** n; pow(x, n, m) of run-time values has no run-time form (it raised "TypeError:
    Dyn.__pow__() takes 2 positional arguments but 3 were given")."""
    values = list(args) + list(kwargs.values())
    if len(values) == 3 and any(isinstance(v, Dyn) for v in values):
        raise ev.cg.error("pow() with a modulus of run-time values has no run-time form in skc",
                          hint="write (x ** n) % m where x ** n fits its type, or multiply and reduce in a loop")
    return builtins.pow(*args, **kwargs)


_UNKNOWN = "its value is known only when the kernel runs"
_PYTHON_BUILTINS = {id(getattr(builtins, name)): (name, handler) for name, handler in {
    "min": _minmax("min"), "max": _minmax("max"), "sum": _sum, "abs": _abs, "int": _to_int, "float": _to_float,
    "bool": _to_bool, "range": _range, "print": _print, "setattr": _setattr, "divmod": _divmod, "pow": _pow,
    "isinstance": _isinstance, "type": _type,
    "hash": _compile_time_only("hash", _UNKNOWN + ", and hashing the compiler's object would bake a "
                               "meaningless number into the kernel", "hash compile-time values only"),
    "id": _compile_time_only("id", "it would bake the address of a compiler object into the kernel",
                             "compare run-time values with =="),
    "str": _compile_time_only("str", _UNKNOWN, "print run-time values with print('x =', x)"),
    "repr": _compile_time_only("repr", _UNKNOWN, "print run-time values with print('x =', x)"),
    "format": _compile_time_only("format", _UNKNOWN, "print run-time values with print('x =', x)"),
    "sorted": _compile_time_only("sorted", "sorting compares values at compile time",
                                 "order run-time values with skc.minimum / skc.maximum or min() / max()"),
    "len": _compile_time_only("len", "a run-time value has no length", "pass lengths as skc.constexpr",
                              elements=False),
    "round": _compile_time_only("round", _UNKNOWN, "use skc.rint (ties to even, as round() does)"),
}.items()}


def _math(name: str, to_int: bool = False):
    def handle(ev, args, kwargs):
        if kwargs or len(args) != 1:
            raise ev.cg.error(f"math.{name}() of a run-time value takes one argument")
        result = getattr(dsl, name)(args[0])
        if to_int and ir.element_type(result.type).is_float:   # math.floor, ceil and trunc give ints in Python
            # (of an integer, the integer itself: dsl.floor gives it)
            bits = ir.element_type(result.type).bits
            result = semantics.cast(result, ir.with_element(result.type, ir.i64 if bits == 64 else ir.i32))
        return result
    return handle


def _math_of_two(name: str, fn):
    """math.fmod and math.copysign of run-time values: exact, in the operands' float type. (Their hints before,
    x - y * skc.trunc(x / y) and skc.where(y < 0, -abs(x), abs(x)), gave 0 for fmod(1e10, 3.0) in f32 and 1.5 for
    copysign(1.5, -0.0).)"""
    def handle(ev, args, kwargs):
        if kwargs or len(args) != 2:
            raise ev.cg.error(f"math.{name}() of run-time values takes two arguments")
        return fn(*(dsl.float_operand(a) if isinstance(a, Dyn) else a for a in args))
    return handle


def _math_fabs(ev, args, kwargs):
    return semantics.unary("abs", dsl.float_operand(args[0]))


def _nan_propagating(op: str):
    """numpy.minimum / numpy.maximum: a NaN operand gives NaN (skc.minimum, like numpy.fmin, gives the other one)."""
    def fn(a, b):
        x, y = semantics.unify(a, b, keep_values=True)
        result = semantics.minmax(op, [x, y])
        if not ir.element_type(x.type).is_float:
            return result
        result = semantics.select(semantics.compare("ne", y, y), y, result)
        return semantics.select(semantics.compare("ne", x, x), x, result)
    return fn


def _numpy_ufunc(ev, func, args, kwargs):
    """numpy's elementwise functions on run-time values: the DSL's builtins, with numpy's result types."""
    name = func.__name__
    one = {"sqrt": dsl.sqrt, "exp": dsl.exp, "exp2": dsl.exp2, "log": dsl.log, "log2": dsl.log2, "sin": dsl.sin,
           "cos": dsl.cos, "tanh": dsl.tanh, "floor": dsl.floor, "ceil": dsl.ceil, "trunc": dsl.trunc,
           "rint": dsl.rint, "absolute": abs, "fabs": abs, "negative": lambda v: -v}
    two = {"minimum": _nan_propagating("min"), "maximum": _nan_propagating("max"),
           "fmin": dsl.minimum, "fmax": dsl.maximum, "add": lambda a, b: a + b,
           "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b, "true_divide": lambda a, b: a / b,
           "floor_divide": lambda a, b: a // b, "remainder": lambda a, b: a % b, "power": lambda a, b: a ** b}
    if not kwargs and len(args) == 1 and name in one:
        return one[name](args[0])
    if not kwargs and len(args) == 2 and name in two:
        return two[name](*args)
    raise ev.cg.error(f"numpy.{name} cannot take run-time values in a kernel",
                      hint="use skc's builtins (skc.sqrt, skc.exp, skc.minimum, ...)")


# math functions on run-time values: the DSL's builtins, with Python's result types
_MATH_HINTS = {"isnan": "x != x is true for a NaN", "isinf": "abs(x) == float('inf')",
               "isfinite": "abs(x) < float('inf')",
               "log10": "skc.log2(x) * 0.30102999566398120", "hypot": "skc.sqrt(x * x + y * y)"}
_MATH_FUNCTIONS = {id(getattr(math, name)): (name, handler) for name, handler in {
    "sqrt": _math("sqrt"), "exp": _math("exp"), "log": _math("log"), "log2": _math("log2"),
    "sin": _math("sin"), "cos": _math("cos"), "tanh": _math("tanh"), "fabs": _math_fabs,
    "floor": _math("floor", True), "ceil": _math("ceil", True), "trunc": _math("trunc", True),
    "fmod": _math_of_two("fmod", semantics.fmod), "copysign": _math_of_two("copysign", semantics.copysign),
}.items()}

