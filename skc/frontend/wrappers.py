"""Functions under `functools.wraps` wrappers: which function skc compiles for a wrapper, and a clear error where a
wrapper does more than pass its call through (skc compiles a def's own source, which never runs the wrapper's)."""
from __future__ import annotations

import ast
import inspect
import textwrap
import types
from typing import Optional

from ..diagnostics import CompileError, Location

# The name a wrapper's code calls with exactly its own arguments, by code object identity (id -> (code, name), the
# code kept alive so that its id is not reused); "" where its body does anything else or its source cannot be read.
_calls: dict = {}


def through_wrappers(fn):
    """(the function fn stands for, the first wrapper on the way that does more than pass its call through, or
    None). A `functools.wraps` wrapper that only calls the function it wraps with its own arguments and returns the
    result (`def wrapper(*args, **kwargs): return fn(*args, **kwargs)`) stands for that function; so, through any
    number of such wrappers, does fn."""
    while isinstance(fn, types.FunctionType) and getattr(fn, "__wrapped__", None) is not None:
        if not _passes_through(fn):
            return fn, fn
        fn = fn.__wrapped__
    return fn, None


def definition(fn, decorator: str):
    """The function `@skc.kernel` or `@skc.func` (`decorator`) compiles for fn: fn, or the def under wrappers that
    only pass their call through; a CompileError at the decorator that made a wrapper which does more."""
    inner, wrapper = through_wrappers(fn)
    if wrapper is None:
        return inner
    code = wrapper.__code__
    qualname = getattr(code, "co_qualname", code.co_name)
    maker = qualname.split(".<locals>.")[0]
    if decorator == "func":
        hint = (f"put @skc.func directly on the def, below @{maker}: a kernel then calls {maker}'s wrapper at compile "
                "time, as it calls any plain Python function, and the wrapper's call of the def inlines it")
    else:
        hint = ("put @skc.kernel directly on the def, as the last decorator above it (nothing of a wrapper runs on "
                f"the GPU), and apply {maker} to the code that launches the kernel if it should run around each "
                "launch")
    readable = _call_name(code) is not None
    why = ("does more than call the function it wraps with its own arguments" if readable
           else "has no source skc can read, to tell whether it only passes its call through")
    raise CompileError(f"@skc.{decorator} is stacked over a wrapper that {maker} made with functools.wraps around "
                       f"{getattr(fn, '__qualname__', '?')}, and the wrapper {why}: skc compiles the def's own source, "
                       "where the wrapper's code would never run",
                       Location(code.co_filename, code.co_firstlineno, 0, qualname), hint=hint)


def _passes_through(wrapper) -> bool:
    """Whether the wrapper's body only returns the call, with exactly its own arguments, of the function it wraps."""
    name = _call_name(wrapper.__code__)
    if not name:
        return False
    code = wrapper.__code__
    if name in code.co_freevars:
        try:
            called = wrapper.__closure__[code.co_freevars.index(name)].cell_contents
        except ValueError:   # (a cell not filled yet)
            return False
    else:
        called = wrapper.__globals__.get(name)
    return called is wrapper.__wrapped__ and not wrapper.__defaults__ and not wrapper.__kwdefaults__


def _call_name(code) -> Optional[str]:
    """The name code's function calls with exactly its own parameters and returns; "" where its body does more; None
    where its source cannot be read."""
    found = _calls.get(id(code))
    if found is not None and found[0] is code:
        return found[1]
    try:
        lines, _ = inspect.getsourcelines(code)   # (the code's own lines: a function's would follow __wrapped__)
        node = ast.parse(textwrap.dedent("".join(lines))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return None
    name = _returned_call(node) if isinstance(node, ast.FunctionDef) and node.name == code.co_name else ""
    _calls[id(code)] = (code, name)
    return name


def _returned_call(node: ast.FunctionDef) -> str:
    """The name a def's body (a docstring aside) calls and returns, passing each parameter as it came, in order
    (`*args` starred, a keyword-only one by its name, `**kwargs` doubly starred); "" for any other body."""
    body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr)
                             and isinstance(node.body[0].value, ast.Constant)
                             and isinstance(node.body[0].value.value, str)) else node.body
    if len(body) != 1 or not isinstance(body[0], ast.Return) or not isinstance(body[0].value, ast.Call):
        return ""
    call, args = body[0].value, node.args
    if not isinstance(call.func, ast.Name):
        return ""
    positional = [ast.dump(ast.Name(a.arg, ast.Load())) for a in args.posonlyargs + args.args]
    if args.vararg is not None:
        positional.append(ast.dump(ast.Starred(ast.Name(args.vararg.arg, ast.Load()), ast.Load())))
    keywords = [(a.arg, a.arg) for a in args.kwonlyargs] + ([(None, args.kwarg.arg)] if args.kwarg else [])
    passed = [(k.arg, k.value.id if isinstance(k.value, ast.Name) else None) for k in call.keywords]
    if [ast.dump(a) for a in call.args] != positional or passed != keywords:
        return ""
    return call.func.id
