"""Python source of DSL functions: parsed once per code object, with the facts the evaluator
needs about a body before running it (which names it assigns, whether jumps hide inside)."""
from __future__ import annotations

import __future__
import ast
import hashlib
import inspect
import linecache
import textwrap
import types
from dataclasses import dataclass
from typing import Optional

from ..diagnostics import CompileError, Location, is_library_file


@dataclass
class SourceFunction:
    """A function's AST with its place in the file (columns corrected for dedenting)."""

    node: ast.FunctionDef
    filename: str
    indent: int
    name: str
    qualname: str
    module: str
    digest: str

    def location(self, node: ast.AST, caller: Optional[Location] = None) -> Location:
        return Location(self.filename, getattr(node, "lineno", self.node.lineno),
                        getattr(node, "col_offset", 0) + self.indent, self.qualname, caller)


# Parsed sources and digests by code object *identity* (id -> (code, value); the code kept alive, so its id is not
# reused): equal code objects need not share a source. Two functions of one name at one line in two files, with the
# same body but for a local annotation (`v: skc.f16 = ...` against `v: skc.f32 = ...`, which the code object does not
# hold), compare equal, as do a function and its edited reload.
_cache: dict = {}


def _cached(table: dict, code):
    found = table.get(id(code))
    return found[1] if found is not None and found[0] is code else None


def has_source(fn) -> bool:
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    if _cached(_cache, code) is not None:
        return True
    try:
        inspect.getsourcelines(fn)
        return True
    except (OSError, TypeError):
        return False


def own_source_lines(fn):
    """inspect.getsourcelines of fn's own code: of a functools.wraps wrapper too (inspect's reads the function it
    wraps, whose def then stood where the wrapper's code began, as if the file had changed)."""
    return inspect.getsourcelines(fn.__code__ if getattr(fn, "__wrapped__", None) is not None else fn)


def get_source(fn) -> SourceFunction:
    """Parse fn's source (cached by code object)."""
    code = getattr(fn, "__code__", None)
    if code is None:   # (a kernel or @skc.func stacked on another, a builtin, a functools.partial or lru_cache)
        what = getattr(fn, "__qualname__", None) or type(fn).__name__
        raise CompileError(f"{what} is a {type(fn).__name__}, not a Python function: skc compiles functions "
                           "written with def",
                           hint="put @skc.kernel or @skc.func directly on the def, once, and no other decorator "
                                "between them")
    found = _cached(_cache, code)
    if found is not None:
        return found
    try:
        lines, first_line = own_source_lines(fn)
    except (OSError, TypeError) as e:
        hint = ("skc compiles functions defined in .py files or notebook cells; one that exec() made from a string "
                "has no file to read: put the string in a .py file and import it" if code.co_filename.startswith("<")
                else "skc compiles functions defined in .py files")
        raise CompileError(f"cannot read the source of {fn.__qualname__}: {e}", hint=hint) from None
    text = "".join(lines)
    indent = len(lines[0]) - len(lines[0].lstrip())
    try:
        tree = ast.parse(textwrap.dedent(text))
    except SyntaxError:   # (lines of a file that changed since, cut where the function's were)
        tree = ast.Module([], [])
    ast.increment_lineno(tree, first_line - 1)
    node = tree.body[0] if tree.body else None
    if code.co_name == "<lambda>":
        raise CompileError(f"{fn.__qualname__} is not defined by a def statement",
                           hint="lambdas cannot be compiled; write a def")
    if isinstance(node, ast.AsyncFunctionDef) and node.name == code.co_name:
        raise CompileError(f"{fn.__qualname__} is async; kernels cannot be async functions",
                           Location(code.co_filename, node.lineno, node.col_offset + indent))
    if not isinstance(node, ast.FunctionDef) or node.name != code.co_name:
        # (read where the function began, in a file that has changed since)
        now = (f"def {node.name}" if isinstance(node, ast.FunctionDef)
               else next((line.strip() for line in lines if line.strip()), "")[:60])
        raise CompileError(f"the source of {fn.__qualname__} is no longer where it was defined: line {first_line} of "
                           f"{code.co_filename} now begins " + (f"`{now}`" if now else "no code")
                           + " (the file changed after the function was defined, or a process unpickled it whose "
                           "copy of the file differs)",
                           Location(code.co_filename, node.lineno if node else first_line,
                                    (node.col_offset if node else 0) + indent),
                           hint="import the module again (or restart) after editing it; give worker processes the "
                                "same file")
    if _compiles_to(code) is False:
        raise CompileError(f"the source of {fn.__qualname__} changed after the function was defined: lines "
                           f"{first_line}-{first_line + len(lines) - 1} of {code.co_filename} now hold other code than "
                           "the function that runs (the file was edited since it was imported)",
                           Location(code.co_filename, node.lineno, node.col_offset + indent),
                           hint="import the module again (importlib.reload, or restart) after editing it")
    found = SourceFunction(node, code.co_filename, indent, fn.__name__, fn.__qualname__,
                           getattr(fn, "__module__", "") or "", hashlib.sha256(text.encode()).hexdigest())
    _cache[id(code)] = (code, found)
    return found


# the future features that change what a file compiles to (the others are Python 3's own; nested_scopes' flag is
# CO_NESTED, which every nested function carries)
_FUTURES = __future__.annotations.compiler_flag | __future__.barry_as_FLUFL.compiler_flag


_compiled_files: dict = {}   # file name -> (its lines as linecache holds them, the future flags, their code or None)


def _compiles_to(code):
    """Whether the file a function's code came from, as read now, still compiles to that code: a file edited after
    its import, the def left on its line, gave the new text's kernel beside the old module (`a + 1000` compiled,
    `a + 1` imported). The whole file is compiled (the compiler's choices read the module's imports), and the code of
    the function's name and first line compared; None where it cannot tell (skc's own files, a file that does not
    compile now, a function whose asserts pytest rewrote)."""
    if is_library_file(code.co_filename) or _rewritten(code):
        return None
    lines, flags = linecache.getlines(code.co_filename), code.co_flags & _FUTURES
    known = _compiled_files.get(code.co_filename)
    if known is None or known[0] is not lines or known[1] != flags:   # (a file compiled once while linecache keeps it)
        try:
            compiled = compile("".join(lines), code.co_filename, "exec", flags=flags, dont_inherit=True)
        except (SyntaxError, ValueError):
            compiled = None
        known = _compiled_files[code.co_filename] = (lines, flags, compiled)
    if known[2] is None:
        return None
    found = _code_named(known[2], code.co_name, code.co_firstlineno)
    return None if found is None else _code_facts(found) == _code_facts(code)


def _rewritten(code) -> bool:
    """Whether pytest rewrote asserts in the code or in code nested in it (its names begin `@py`)."""
    return (any(name.startswith("@py") for name in code.co_varnames + code.co_names)
            or any(_rewritten(c) for c in code.co_consts if isinstance(c, types.CodeType)))


def _code_named(code, name: str, line: int):
    """The code object of that name and first line among those `code` holds, outermost first."""
    level = [code]
    while level:
        inner = [c for parent in level for c in parent.co_consts if isinstance(c, types.CodeType)]
        for c in inner:
            if c.co_name == name and c.co_firstlineno == line:
                return c
        level = inner
    return None


def _code_facts(code) -> tuple:
    """What a code object computes, without its lines and columns: its instructions, names and constants (each by
    type and repr: 1, 1.0 and True, 0.0 and -0.0 are other code), nested code objects alike."""
    consts = tuple(_code_facts(c) if isinstance(c, types.CodeType) else (type(c).__name__, repr(c))
                   for c in code.co_consts)
    return code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars, consts


def source_digest(fn) -> str:
    """SHA-256 of fn's source text (the same digest get_source records), without parsing it."""
    code = fn.__code__
    found = _cached(_cache, code)
    if found is not None:
        return found.digest
    digest = _cached(_digests, code)
    if digest is None:  # once per code object: a cache hit asks for the kernel's twice (key, dependencies)
        try:
            lines, _ = inspect.getsourcelines(fn)
        except (OSError, TypeError):
            return ""
        digest = hashlib.sha256("".join(lines).encode()).hexdigest()
        _digests[id(code)] = (code, digest)
    return digest


_digests: dict = {}


# -- scans of a body before it runs ------------------------------------------------------
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

def _walk_scope(nodes):
    """Every node in these statements, not descending into nested functions or comprehensions."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _SCOPES):
                stack.append(child)


def target_names(target):
    """The names an assignment's (or a for loop's) target binds (`i`, `i, (j, k)`, `*rest`)."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from target_names(target.value)


def carried_names(stmts: list) -> tuple:
    """The names a loop body assigns, which may carry a value from one iteration to the next (and out of the
    loop): by assignment, by a `:=` (in a comprehension too: it binds out here), or by a with-item. (An inner
    `for`'s target is not carried: an unrolled one's items are compile-time values; LoopEvaluator.runtime_loop
    makes such a name unreadable after the loop instead.)"""
    other: dict = {}
    for node in _walk_scope(stmts):
        for child in ast.iter_child_nodes(node):   # (a comprehension's own scope is not walked: its := are)
            if isinstance(child, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                for inner in ast.walk(child):
                    if isinstance(inner, ast.NamedExpr):
                        other.update(dict.fromkeys(target_names(inner.target)))
        if isinstance(node, ast.Assign):
            for t in node.targets:
                other.update(dict.fromkeys(target_names(t)))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
            other.update(dict.fromkeys(target_names(node.target)))
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            other.update(dict.fromkeys(target_names(node.optional_vars)))
    return tuple(other)


def subscripted_names(stmts: list) -> tuple:
    """Local names whose elements these statements assign (`acc[i] = ...`, `acc[i] += ...`)."""
    names: dict = {}
    for node in _walk_scope(stmts):
        for target in _assignment_targets(node):
            if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                names[target.value.id] = None
    return tuple(names)


def attribute_targets(stmts: list) -> tuple:
    """(name, attribute) pairs these statements assign (`self.count += 1`)."""
    pairs: dict = {}
    for node in _walk_scope(stmts):
        for target in _assignment_targets(node):
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                pairs[(target.value.id, target.attr)] = None
    return tuple(pairs)


def _assignment_targets(node):
    if isinstance(node, ast.Assign):
        for target in node.targets:
            yield from _flatten(target)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        yield node.target


def _flatten(target):
    if isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _flatten(elt)
    else:
        yield target


def contains_statements(stmts: list, kinds, stop_at_loops: bool) -> bool:
    """Whether the statements hold a statement of `kinds` (stop_at_loops: outside the bodies of nested loops,
    whose break and continue are their own; a nested loop's else block is not its own, as Python runs it after
    the nested loop, so a break there leaves the enclosing loop)."""
    stack = list(stmts)
    while stack:
        node = stack.pop()
        if isinstance(node, kinds):
            return True
        if stop_at_loops and isinstance(node, (ast.For, ast.While)):
            stack.extend(node.orelse)
            continue
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _SCOPES):
                stack.append(child)
    return False


def has_nested_jump(stmts: list) -> bool:
    """Whether a break or continue of this loop sits inside a nested statement (so it may run at run time), a
    nested loop's else block included (it runs where that loop ended without a break of its own: at run time
    where that loop is a run-time one)."""
    for stmt in stmts:
        if isinstance(stmt, (ast.If, ast.With, ast.Try, ast.For, ast.While)):
            if contains_statements([stmt], (ast.Break, ast.Continue), stop_at_loops=True):
                return True
    return False


def has_nested_return(stmts: list) -> bool:
    """Whether a return sits inside a compound statement (so the function may return at run time)."""
    for stmt in stmts:
        if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            if contains_statements([stmt], (ast.Return,), stop_at_loops=False):
                return True
    return False


def read_before_assigned(stmts: list) -> set:
    """The names these statements may read before they assign them, in the order Python runs them (an assignment's
    value before its targets; `x += 1` reads x; a nested function or lambda may read a name whenever it is
    called, so any name it reads counts): a loop body's names that carry a value from the iteration before."""
    assigned, read = set(), set()

    class Order(ast.NodeVisitor):
        def visit_Name(self, node):
            if isinstance(node.ctx, ast.Load):
                if node.id not in assigned:
                    read.add(node.id)
            else:
                assigned.add(node.id)

        def visit_Assign(self, node):
            self.visit(node.value)
            for target in node.targets:
                self.visit(target)

        def visit_AnnAssign(self, node):
            if node.value is not None:
                self.visit(node.value)
            self.visit(node.target)

        def visit_AugAssign(self, node):
            self.visit(node.value)
            if isinstance(node.target, ast.Name) and node.target.id not in assigned:
                read.add(node.target.id)
            self.visit(node.target)

        def visit_NamedExpr(self, node):
            self.visit(node.value)
            self.visit(node.target)

        def visit_FunctionDef(self, node):
            read.update(_free_names(node) - assigned)
            assigned.add(node.name)

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Lambda(self, node):
            read.update(_free_names(node) - assigned)

        def visit_comprehension_scope(self, node):
            read.update(_free_names(node) - assigned)

        visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_comprehension_scope

    visitor = Order()
    for stmt in stmts:
        visitor.visit(stmt)
    return read


def _free_names(scope) -> set:
    """The names a function, lambda or comprehension may read from the scopes around it (whenever it runs): every
    name it or a scope inside it loads, less its own parameters, the names it binds (unless declared global or
    nonlocal) and a comprehension's targets. Default values and decorators are read where it is made."""
    own, outer_reads = set(), set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = scope.args
        own |= {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        own |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            outer_reads |= {n.id for n in ast.walk(default) if isinstance(n, ast.Name)}
        for decorator in getattr(scope, "decorator_list", []):
            outer_reads |= {n.id for n in ast.walk(decorator) if isinstance(n, ast.Name)}
        body = scope.body if isinstance(scope.body, list) else [scope.body]
    else:   # a comprehension: its first iterable is read where it is made
        generators = scope.generators
        outer_reads |= {n.id for n in ast.walk(generators[0].iter) if isinstance(n, ast.Name)}
        body = ([scope.key, scope.value] if isinstance(scope, ast.DictComp) else [scope.elt])
        body += [g.iter for g in generators[1:]] + [c for g in generators for c in g.ifs]
        own |= {n.id for g in generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
    declared, loads = set(), set()

    def walk(node):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else own).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp,
                               ast.DictComp, ast.GeneratorExp)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                own.add(node.name)
            loads.update(_free_names(node))
            return
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            own.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            own.add(node.name)
        for child in ast.iter_child_nodes(node):
            walk(child)

    for stmt in body:
        walk(stmt)
    return outer_reads | (loads - (own - declared))


def bound_by_every_run(test) -> set:
    """The names a `:=` in a loop's test binds whenever the test runs: not those under the lazy parts of `and`,
    `or`, an `if` expression or a chained comparison, nor in a comprehension or lambda (which may run no time)."""
    if isinstance(test, ast.NamedExpr):
        return {test.target.id} | bound_by_every_run(test.value)
    if isinstance(test, ast.BoolOp):
        eager = test.values[:1]
    elif isinstance(test, ast.IfExp):
        eager = [test.test]
    elif isinstance(test, ast.Compare):
        eager = [test.left, test.comparators[0]]
    elif isinstance(test, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        eager = []
    else:
        eager = list(ast.iter_child_nodes(test))
    return set().union(*(bound_by_every_run(child) for child in eager))


def bound_when_true(test) -> set:
    """The names a `:=` in an `if` or `while` test binds on every run where the test comes out true: those of every
    operand of an `and` (each ran), else those bound on every run of it."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return set().union(*(bound_when_true(value) for value in test.values))
    return bound_by_every_run(test)

