"""Evaluation of Python expressions: compile-time values are computed as Python, run-time
values become IR through `semantics`. One method per kind of expression node."""
from __future__ import annotations

import ast
import builtins
import difflib
import inspect
import itertools
import operator
import types
from contextlib import contextmanager

from .. import ir
from ..diagnostics import CompileError, SkcError
from . import semantics
from .calls import CONTAINERS, LocalFunction
from .dtypes import PtrType
from .frames import Frame
from .keying import trusted_module, watched_by_fields
from .python_errors import describe, explain
from .values import Dyn, Poison, RValue, Slot

# the most iterations a compile-time loop unrolls (a for over a Python iterable, a while whose condition is known
# at compile time): a bound that ends a loop that never would instead of compiling forever
MAX_COMPILE_TIME_ITERATIONS = 1 << 16

BINARY_OPERATORS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv", ast.FloorDiv: "floordiv",
           ast.Mod: "mod", ast.Pow: "pow", ast.LShift: "lshift", ast.RShift: "rshift", ast.BitAnd: "and",
           ast.BitOr: "or", ast.BitXor: "xor", ast.MatMult: "matmul"}
_PY_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
              "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow,
              "lshift": operator.lshift, "rshift": operator.rshift, "and": operator.and_,
              "or": operator.or_, "xor": operator.xor, "matmul": operator.matmul}
_DUNDER = {"add": "add", "sub": "sub", "mul": "mul", "truediv": "truediv", "floordiv": "floordiv",
           "mod": "mod", "pow": "pow", "lshift": "lshift", "rshift": "rshift", "and": "and", "or": "or",
           "xor": "xor", "matmul": "matmul"}
_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%", "pow": "**",
            "lshift": "<<", "rshift": ">>", "and": "&", "or": "|", "xor": "^", "matmul": "@"}
_COMPARE_SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
                    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
_COMPARE = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
_PY_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
               ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Is: operator.is_, ast.IsNot: operator.is_not,
               ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}

# compile-time containers that `in` tests a run-time value against, element by element
_SEQUENCES = (tuple, list, set, frozenset, dict)

MISSING = object()
_OPERATOR_METHODS = ([f"__{name}__" for name in _DUNDER.values()] + [f"__r{name}__" for name in _DUNDER.values()]
                     + ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "__contains__", "__neg__",
                        "__pos__", "__invert__", "__bool__", "__len__"])
_PLAIN = (int, float, bool, str, bytes, tuple, list, dict, set, frozenset, type(None), slice, range)


class ExpressionEvaluator:
    """Mixin of the evaluator: `eval(node)` gives a Python value, an RValue, or raises CompileError."""

    frame: Frame

    def eval(self, node):
        handler = getattr(self, "expr_" + type(node).__name__, None)
        if handler is None:
            raise self.error_at(node, f"{type(node).__name__} expressions are not supported in kernels")
        saved = self.cg.builder.loc
        self.cg.builder.loc = self.frame.location(node)
        try:
            return handler(node)
        finally:
            self.cg.builder.loc = saved

    def eval_value(self, node):
        """Evaluate, then load a Slot (values in flight are never Slots)."""
        value = self.eval(node)
        return value.rvalue() if isinstance(value, Slot) else value

    def error_at(self, node, message: str, hint: str = "") -> CompileError:
        return CompileError(message, self.frame.location(node), hint)

    def python_error(self, node, error: Exception, doing: str) -> CompileError:
        """The error of Python's `error`, raised by compile-time code doing `doing` at node (python_errors)."""
        return self.error_at(node, *explain(error, doing))

    # -- leaves -----------------------------------------------------------------------
    def expr_Constant(self, node):
        return node.value

    def expr_Name(self, node):
        return self.lookup(node.id, node)

    def lookup(self, name: str, node=None):
        frame = self.frame
        value = frame.env.get(name, MISSING)
        if value is MISSING:
            value = frame.closure.get(name, MISSING)
            if value is not MISSING:
                self.record_closure(name, value)
            else:
                value = frame.globals.get(name, MISSING)
                if value is not MISSING:
                    self.record_global(name, value)
                else:
                    value = getattr(builtins, name, MISSING)
                    if value is MISSING:
                        raise self.error_at(node, f"name '{name}' is not defined")
                    self.record_absent(name)
        if isinstance(value, Slot):
            return value.rvalue()
        if isinstance(value, Poison):
            value.fail()
        return value

    def expr_Attribute(self, node):
        obj = self.eval_value(node.value)
        try:
            value = getattr(obj, node.attr)
        except AttributeError as e:
            # (an object that explains its missing attribute, a block's: its words and what to do, `hint`; else close
            # matches or what the object has)
            explained = getattr(e, "hint", None)
            raise self.error_at(node, str(e) if explained else f"{_kind(obj)} has no attribute '{node.attr}'",
                                explained or _attribute_hint(obj, node.attr)) from None
        if isinstance(obj, types.ModuleType):  # `consts.S`: a global of another module
            self.record_module_name(obj, node.attr)
        elif watched_by_fields(obj):   # `model.scale`: a torch.nn.Module's parameter
            self.record_attribute(obj, node.attr, value)
        if isinstance(value, Slot):
            return value.rvalue()
        if isinstance(value, Poison):
            value.fail()
        return value

    # -- operators --------------------------------------------------------------------
    def expr_BinOp(self, node):
        op = BINARY_OPERATORS[type(node.op)]
        left = self.eval_value(node.left)
        right = self.eval_value(node.right)
        return self.binary(op, left, right, node)

    def binary(self, op: str, left, right, node=None):
        if (isinstance(left, Dyn) or isinstance(right, Dyn)) and _is_operand(left) and _is_operand(right):
            if op == "matmul":
                raise self.error_at(node, "'@' is not defined on run-time scalars", hint="use an MMA building block")
            return semantics.binary(op, left, right)
        if left is None or right is None:
            raise self.error_at(node, f"cannot use None with '{op}'")
        result = self.user_operator(op, left, right)
        if result is not NotImplemented:
            return result
        try:
            return _PY_BINARY[op](left, right)
        except SkcError:
            raise
        except Exception as e:
            raise self.python_error(node, e, f"'{_SYMBOLS[op]}' of {describe(left)} and {describe(right)}") from e

    def augmented(self, op: str, current, value, node):
        """`current op= value`, as Python runs it: the object's in-place method where its class has one (a list's
        `+=` extends it, so every name holding the list sees the change; a class's `__iadd__`), else the operator."""
        name = f"__i{_DUNDER[op]}__"
        if isinstance(current, CONTAINERS) and hasattr(current, name):
            result = self.call_native(getattr(current, name), (value,), {})
        elif isinstance(current, Dyn) or isinstance(current, _PLAIN) or current is None:
            return self.binary(op, current, value, node)
        else:
            fn = getattr(type(current), name, None)
            result = self.inline(fn, (current, value), {}) if fn is not None and self.should_inline(fn) \
                else NotImplemented
        return self.binary(op, current, value, node) if result is NotImplemented else result

    def user_operator(self, op: str, left, right):
        """a.__op__(b) then b.__rop__(a) when either side is an object whose class defines them in Python."""
        name = _DUNDER[op]
        for obj, other, method in ((left, right, f"__{name}__"), (right, left, f"__r{name}__")):
            if isinstance(obj, _PLAIN) or isinstance(obj, Dyn):
                continue
            fn = getattr(type(obj), method, None)
            if fn is not None and self.should_inline(fn):
                result = self.inline(fn, (obj, other), {})
                if result is not NotImplemented:
                    return result
        return NotImplemented

    def expr_UnaryOp(self, node):
        value = self.eval_value(node.operand)
        if isinstance(value, Dyn):
            kind = {ast.USub: "neg", ast.UAdd: "pos", ast.Invert: "invert", ast.Not: "not"}[type(node.op)]
            return value if kind == "pos" else semantics.unary(kind, value)
        if isinstance(node.op, ast.Not):
            return not self.truth(value, node)
        ops = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
        try:
            return ops[type(node.op)](value)
        except SkcError:
            raise
        except Exception as e:
            symbol = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~"}[type(node.op)]
            raise self.python_error(node, e, f"'{symbol}' of {describe(value)}") from e

    def truth(self, value, node) -> bool:
        """A compile-time value's Python truth."""
        if isinstance(value, types.MethodType) and _callable_bare(value):
            # (a method is always true: `if roles.is_producer:` ran both roles' code as the producer, a deadlock. One
            # that takes arguments is no forgotten call but a callback tested for presence, `if hook:` of a hook that
            # may be None: Python's truth)
            name = getattr(value, "__name__", "method")
            raise self.error_at(node, f"the truth of the method {type(value.__self__).__name__}.{name} itself, not "
                                      "of its result: a method is always true",
                                hint=f"call it: {name}()")
        try:
            return bool(value)
        except SkcError:
            raise
        except Exception as e:
            raise self.error_at(node, f"cannot take the truth of {_kind(value)}: {e}") from e

    def expr_BoolOp(self, node):
        is_and = isinstance(node.op, ast.And)
        result = self.eval_value(node.values[0])
        for operand in node.values[1:]:
            if not isinstance(result, Dyn):
                if self.truth(result, node) != is_and:
                    return result  # short-circuit at compile time
                result = self.eval_value(operand)
                continue
            result = self.runtime_bool_op(is_and, result, operand)
        return result

    def runtime_bool_op(self, is_and: bool, left, right_node):
        """`a and b` is b where a is true, else a; `a or b` is a where a is true, else b: Python's value, which is
        a truth value only where both operands are (then it is the i1 `and`/`or`). Where no one type holds both
        (a pointer and a number, a compile-time None or tuple) it is the i1 of their truth, as a condition needs."""
        left = semantics.to_rvalue(left)
        cond = semantics.to_bool(left)
        if not self.may_have_effects(right_node):
            right = self.eval_value(right_node)
            if _truth_of_both(left, right):
                if not isinstance(right, Dyn):
                    # x and True == x; x and False == False (and dually for or)
                    return cond if self.truth(right, right_node) == is_and else semantics.constant(not is_and, ir.i1)
                return semantics.binary("and" if is_and else "or", cond, semantics.to_bool(right))
            return semantics.select(cond, right, left) if is_and else semantics.select(cond, left, right)
        # The right side may load or call: evaluate it only where it matters, as Python does.
        if_op = self.cg.builder.if_((cond if is_and else semantics.unary("not", cond)).value)
        with self.names_bound_lazily(if_op, right_node), self.runtime_region(if_op.regions[0]):
            right = self.eval_value(right_node)
            truth = _truth_of_both(left, right)
            if truth:
                right = (semantics.to_bool(right) if isinstance(right, Dyn)
                         else semantics.constant(self.truth(right, right_node), ir.i1))
            else:
                raw, right = right, semantics.to_rvalue(right)
        result = Slot(ir.i1 if truth else semantics.holding_type([left, raw], merge_type([left.type, right.type],
                                                                                        right_node, self)),
                      "and" if is_and else "or")
        for region, value in zip(if_op.regions, (right, cond if truth else left)):
            with self.cg.builder.at(region):
                result.store(value)
        return result.rvalue()

    def expr_Compare(self, node):
        return self.compare_chain(self.eval_value(node.left), list(zip(node.ops, node.comparators)), node)

    def compare_chain(self, left, parts, node):
        """`left op1 b op2 c ...`: `left op1 b and b op2 c and ...`, each comparand evaluated once and only where
        the comparisons before it held, as Python does."""
        (op, right_node), rest = parts[0], parts[1:]
        right = self.eval_value(right_node)
        part = self.compare(op, left, right, node)
        if not rest:
            return part
        if not isinstance(part, Dyn):
            return self.compare_chain(right, rest, node) if self.truth(part, node) else part
        part = semantics.to_bool(part)
        if not any(self.may_have_effects(n) for _, n in rest):
            return semantics.binary("and", part, semantics.to_bool(self.compare_chain(right, rest, node)))
        # a later comparand may load or call: evaluate it only where this comparison holds
        right = semantics.to_rvalue(right)
        if_op = self.cg.builder.if_(part.value)
        with self.names_bound_lazily(if_op, *(n for _, n in rest)), self.runtime_region(if_op.regions[0]):
            later = semantics.to_bool(self.compare_chain(right, rest, node))
        result = Slot(ir.i1, "comparison")
        for region, value in zip(if_op.regions, (later, part)):
            with self.cg.builder.at(region):
                result.store(value)
        return result.rvalue()

    @contextmanager
    def names_bound_lazily(self, if_op, *nodes):
        """Around evaluating nodes in the first region of if_op only (the lazy side of `and`/`or`, a chained
        comparison's later parts): a name a `:=` there binds holds its new value on the paths that ran it only, so
        the two regions' paths meet as an `if` statement's do (a name bound on one path only: "may be undefined")."""
        if not _binds_names(*nodes):
            yield
            return
        before = dict(self.frame.env)
        yield
        self.frame.env = self.merge_paths(before, [(self.frame.env, if_op.regions[0]), (before, if_op.regions[1])],
                                          nodes[0])

    def may_have_effects(self, node) -> bool:
        """Whether evaluating node may call, load or assign (so it must not run speculatively): a call, subscript or
        `:=`; an attribute read that may run code (a property, `__getattr__`); an operator over an object whose class
        defines it in Python (skc inlines that code)."""
        for n in ast.walk(node):
            if isinstance(n, (ast.Call, ast.Subscript, ast.NamedExpr, ast.Await)):
                return True
            if isinstance(n, ast.Attribute) and self.static_value(n) is MISSING:
                return True
            if isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Compare)):
                operands = ([n.left, n.right] if isinstance(n, ast.BinOp) else [n.operand] if isinstance(n, ast.UnaryOp)
                            else [n.left, *n.comparators])
                if any(isinstance(o, (ast.Name, ast.Attribute)) and self.runs_operators(self.static_value(o))
                       for o in operands):
                    return True
        return False

    def static_value(self, node):
        """A name's or attribute chain's value where reading it runs no code (no property, no `__getattr__`) and
        emits nothing, else MISSING."""
        if isinstance(node, ast.Name):
            frame = self.frame
            for scope in (frame.env, frame.closure, frame.globals, vars(builtins)):
                if node.id in scope:
                    return scope[node.id]
            return MISSING
        if not isinstance(node, ast.Attribute):
            return MISSING
        obj = self.static_value(node.value)
        if obj is MISSING or isinstance(obj, (Dyn, Poison)):
            return MISSING
        if not isinstance(obj, (types.ModuleType, type)) and type(obj).__getattribute__ is not object.__getattribute__:
            return MISSING
        try:
            value = inspect.getattr_static(obj, node.attr)
        except AttributeError:
            return MISSING
        if isinstance(obj, types.ModuleType) or not hasattr(type(value), "__get__"):
            return value
        if isinstance(value, (types.MemberDescriptorType, types.GetSetDescriptorType)):
            return getattr(obj, node.attr, MISSING)   # a __slots__ entry
        if isinstance(value, (types.FunctionType, staticmethod, classmethod, types.BuiltinFunctionType)):
            return value   # (a method: calling it is a Call)
        return MISSING     # a property or another descriptor: reading it may run code

    def runs_operators(self, value) -> bool:
        """Whether an operator over value may run code skc inlines: value unknown, or its class defines an operator
        in Python."""
        if value is MISSING:
            return True
        if isinstance(value, Dyn) or isinstance(value, _PLAIN) or semantics.is_number(value):
            return False
        return any(self.should_inline(getattr(type(value), name, None)) for name in _OPERATOR_METHODS)

    def compare(self, op, left, right, node):
        if isinstance(op, (ast.In, ast.NotIn)) and (isinstance(left, Dyn) or isinstance(right, Dyn) or (
                isinstance(right, _SEQUENCES) and any(isinstance(e, Dyn) for e in right))):
            found = self.contains(left, right, node)
            if isinstance(op, ast.In):
                return found
            return semantics.unary("not", found) if isinstance(found, Dyn) else not found
        if isinstance(left, Dyn) or isinstance(right, Dyn):
            if isinstance(op, (ast.Is, ast.IsNot)):
                return _PY_COMPARE[type(op)](left, right)  # identity is known at compile time
            if type(op) not in _COMPARE:
                raise self.error_at(node, f"'{type(op).__name__}' cannot take a run-time operand")
            if left is None or right is None:
                if not isinstance(op, (ast.Eq, ast.NotEq)):
                    raise self.error_at(node, f"'{type(op).__name__}' is not defined between a run-time value and "
                                              "None (Python raises TypeError)")
                return isinstance(op, ast.NotEq)
            return semantics.compare(_COMPARE[type(op)], left, right, exact=True)
        try:
            return _PY_COMPARE[type(op)](left, right)
        except SkcError:
            raise
        except Exception as e:
            raise self.python_error(node, e, f"'{_COMPARE_SYMBOLS[type(op)]}' of {describe(left)} and "
                                             f"{describe(right)}") from e

    def contains(self, item, container, node):
        """`item in container` where the item or the container's elements are run-time values: whether the item
        is or equals any element (a dict's keys), as Python's `in` asks."""
        if not isinstance(container, _SEQUENCES):
            what = "a run-time value" if isinstance(container, Dyn) else f"a {type(container).__name__}"
            raise self.error_at(node, f"'in' over run-time values needs a tuple, list, set or dict made at compile "
                                      f"time to search, found {what}",
                                hint="compare with == joined by `or`, or test a range with a chained comparison "
                                     "(`lo <= i < hi`)")
        found = False
        for element in container:
            if element is item:   # (Python tests identity first: a NaN is in a tuple that holds it)
                return True
            equal = self.compare(ast.Eq(), item, element, node)
            if not isinstance(equal, Dyn):
                if self.truth(equal, node):
                    return True
                continue
            found = semantics.to_bool(equal) if found is False else semantics.binary("or", found,
                                                                                       semantics.to_bool(equal))
        return found

    def expr_IfExp(self, node):
        cond = self.eval_value(node.test)
        if not isinstance(cond, Dyn):
            return self.eval_value(node.body if self.truth(cond, node) else node.orelse)
        cond = semantics.to_bool(cond)
        if not (self.may_have_effects(node.body) or self.may_have_effects(node.orelse)):
            return semantics.select(cond, self.eval_value(node.body), self.eval_value(node.orelse))
        if_op = self.cg.builder.if_(cond.value)
        values, raw, before, paths = [], [], dict(self.frame.env), []
        for region, branch in zip(if_op.regions, (node.body, node.orelse)):
            self.frame.env = dict(before)
            with self.runtime_region(region):
                raw.append(self.eval_value(branch))
                values.append(semantics.to_rvalue(raw[-1]))
            paths.append((self.frame.env, region))
        # (a name a `:=` binds in one branch holds its new value on that branch's paths only)
        self.frame.env = self.merge_paths(before, paths, node) if _binds_names(node) else before
        t = semantics.holding_type(raw, merge_type([v.type for v in values], node, self))
        result = Slot(t, "if-expression")
        for region, value in zip(if_op.regions, values):
            with self.cg.builder.at(region):
                result.store(value)
        return result.rvalue()

    def expr_NamedExpr(self, node):
        value = self.eval_value(node.value)
        self.assign(node.target, value)
        return value

    # -- containers -------------------------------------------------------------------
    def expr_Tuple(self, node):
        return tuple(self.eval_sequence(node.elts))

    def expr_List(self, node):
        return self.made_here(list(self.eval_sequence(node.elts)))

    def expr_Set(self, node):
        return self.made_here(set(self.eval_sequence(node.elts)))

    def made_here(self, container):
        """Note where a compile-time list, dict, set or iterator is made: the top of the scope stack (a run-time region, or the
        mark of a run-time jump this code follows) and the frame (CallEvaluator.check_mutation)."""
        if self.frames:
            self.container_origin[id(container)] = (container, self.scope_stack[-1] if self.scope_stack else None,
                                                     self.frame)
        return container

    def eval_sequence(self, elts):
        for elt in elts:
            if isinstance(elt, ast.Starred):
                yield from self.compile_time_iterable(self.eval_value(elt.value), elt)
            else:
                yield self.eval_value(elt)

    def expr_Dict(self, node):
        result = {}
        for key, value in zip(node.keys, node.values):
            if key is None:
                result.update(self.eval_value(value))
            else:
                result[self.eval_value(key)] = self.eval_value(value)
        return self.made_here(result)

    def compile_time_items(self, value, node):
        """The items of a compile-time iterable, taken one at a time as a Python loop takes them (a loop over a list
        its body appends to sees the new items, one over a generator sees what the body changed), at most
        MAX_COMPILE_TIME_ITERATIONS: a sized one (a list, a range) longer than that is an error before anything
        unrolls."""
        if isinstance(value, Dyn):
            raise self.error_at(node, "cannot iterate over a run-time value",
                                hint="use `for i in range(n)` over indices")
        try:
            size = len(value)
        except Exception:
            size = None
        try:
            iterator = iter(value)
        except TypeError as e:
            raise self.error_at(node, f"{e}") from e
        if iterator is value:   # (a loop over an iterator takes its items: not one made outside a run-time branch)
            self.check_taken_here(value, "a loop")
        for count in itertools.count():
            too_long = size is not None and size > MAX_COMPILE_TIME_ITERATIONS
            if too_long or count == MAX_COMPILE_TIME_ITERATIONS:
                if not too_long and next(iterator, MISSING) is MISSING:
                    return   # (exactly the limit)
                raise self.error_at(node, f"this compile-time {type(value).__name__} has more than "
                                          f"{MAX_COMPILE_TIME_ITERATIONS} items, each unrolled at compile time",
                                    hint="loop over run-time indices with `for i in range(n)`")
            try:
                item = next(iterator)
            except StopIteration:
                return
            except SkcError:
                raise
            except Exception as e:
                raise self.python_error(node, e, f"iterating over {describe(value)}") from e
            if iterator is value and count:
                # (past a run-time break or return in the loop's body, an item is taken on some paths only: what
                # is left of the iterator after the loop depends on the path)
                self.check_taken_here(value, "a loop")
            yield item

    def compile_time_iterable(self, value, node) -> list:
        """The items of a compile-time iterable, all taken now (compile_time_items)."""
        return list(self.compile_time_items(value, node))

    def expr_Subscript(self, node):
        container = self.eval_value(node.value)
        index = self.eval_value(node.slice)
        return self.subscript(container, index, node)

    def subscript(self, container, index, node):
        if isinstance(container, Dyn):
            return semantics.subscript(container.rvalue(), index)
        if isinstance(index, Dyn) and isinstance(container, (tuple, list, dict, str, range)):
            raise self.error_at(node, f"a {type(container).__name__} can only be indexed by a compile-time "
                                      f"{'key' if isinstance(container, dict) else 'int'}",
                                hint="put the values in shared memory, or select with skc.where")
        method = getattr(type(container), "__getitem__", None)
        if method is not None and not isinstance(container, _PLAIN) and self.should_inline(method):
            return self.inline(method, (container, index), {})
        try:
            value = container[index]
        except SkcError:
            raise
        except Exception as e:
            raise self.python_error(node, e, f"indexing {describe(container)} with {describe(index)}") from e
        if isinstance(value, Poison):   # (vars(obj)["x"], obj.__dict__["x"] of an attribute set on some paths)
            value.fail()
        return value.rvalue() if isinstance(value, Slot) else value

    def expr_Slice(self, node):
        parts = [self.eval_value(p) if p is not None else None for p in (node.lower, node.upper, node.step)]
        return slice(*parts)

    def expr_Index(self, node):  # Python 3.8 compatibility of the AST
        return self.eval_value(node.value)

    def expr_Starred(self, node):
        raise self.error_at(node, "a starred expression is only allowed in a call, tuple or list")

    # -- comprehensions ---------------------------------------------------------------
    def comprehension(self, node, element):
        """A comprehension's elements over compile-time iterables (elements may be run-time), made as they are taken,
        as Python's generators are: the first iterable is evaluated here, everything else when the next element is
        asked for (a generator expression sees the names and memory of that moment). The comprehension's own names
        live in its scope; a `:=` inside binds in the enclosing one."""
        frame = self.frame
        own = {n.id for gen in node.generators for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
        scope = {}   # the comprehension's own names (a lambda made in it reads them from here, as from a cell)

        @contextmanager
        def inside():
            self.frames.append(frame)   # (it may be consumed in another function's frame; errors name its lines)
            self.comprehension_scopes.append(scope)
            env = frame.env
            outer = {name: env.pop(name) for name in own if name in env}
            env.update(scope)
            try:
                yield
            finally:
                for name in own:
                    if name in env:
                        scope[name] = env.pop(name)
                env.update(outer)
                self.comprehension_scopes.pop()
                self.frames.pop()

        def generate(generators, items):
            gen = generators[0]
            while True:
                with inside():
                    item = next(items, MISSING)
                    if item is MISSING:
                        return
                    self.assign(gen.target, item)
                    scope.update((name, frame.env[name]) for name in own if name in frame.env)
                    conditions = [self.eval_value(c) for c in gen.ifs]
                    if any(isinstance(c, Dyn) for c in conditions):
                        raise self.error_at(gen, "a comprehension's condition must be known at compile time")
                    chosen = all(self.truth(c, gen) for c in conditions)
                    if chosen and len(generators) > 1:
                        inner = self.compile_time_items(self.eval_value(generators[1].iter), generators[1].iter)
                    elif chosen:
                        value = element()
                if not chosen:
                    continue
                if len(generators) > 1:
                    yield from generate(generators[1:], inner)
                else:
                    yield value

        first = node.generators[0]
        return generate(node.generators, self.compile_time_items(self.eval_value(first.iter), first.iter))

    def expr_ListComp(self, node):
        return self.made_here(list(self.comprehension(node, lambda: self.eval_value(node.elt))))

    def expr_GeneratorExp(self, node):
        return self.made_here(self.comprehension(node, lambda: self.eval_value(node.elt)))

    def expr_SetComp(self, node):
        return self.made_here(set(self.comprehension(node, lambda: self.eval_value(node.elt))))

    def expr_DictComp(self, node):
        return self.made_here(dict(self.comprehension(node, lambda: (self.eval_value(node.key),
                                                                     self.eval_value(node.value)))))

    def expr_JoinedStr(self, node):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
                continue
            item = self.eval_value(value.value)
            if isinstance(item, Dyn) and trusted_module(self.frame.globals.get("__name__") or ""):
                # (skc's own blocks name a run-time value where they refuse one: `found <run-time i32>`, where the
                # refusal of the f-string itself hid theirs)
                parts.append(f"a run-time {getattr(item, 'type', 'value')}")
                continue
            if isinstance(item, Dyn):
                raise self.error_at(value, "an f-string can only format compile-time values",
                                    hint="print run-time values with print('x =', x)")
            spec = self.eval_value(value.format_spec) if value.format_spec else ""
            conv = {-1: lambda x: x, 115: str, 114: repr, 97: ascii}[value.conversion]
            parts.append(format(conv(item), spec))
        return "".join(parts)

    def expr_FormattedValue(self, node):
        return self.expr_JoinedStr(ast.JoinedStr(values=[node]))

    def expr_Lambda(self, node):
        return LocalFunction(node, self.frame, self.eval_defaults(node.args), tuple(self.comprehension_scopes))

    def expr_Await(self, node):
        raise self.error_at(node, "await is not supported in kernels")

    def expr_Yield(self, node):
        raise self.error_at(node, "yield is not supported in kernels", hint="return a tuple instead")

    expr_YieldFrom = expr_Yield


def _is_operand(x) -> bool:
    return isinstance(x, Dyn) or semantics.is_number(x)


# CUDA's and Triton's names a user reaches for, as `skc.NAME`: what skc calls them
_OTHER_NAMES = {
    "program_id": "skc.block_id(axis) (Triton's tl.program_id)", "num_programs": "skc.grid_dim(axis)",
    "threadIdx": "skc.thread_id(0) (x; 1 for y, 2 for z)", "blockIdx": "skc.block_id(0)",
    "blockDim": "skc.block_dim(0)", "gridDim": "skc.grid_dim(0)", "warpSize": "skc.warp_size()",
    "__syncthreads": "skc.barrier()", "debug_barrier": "skc.barrier()", "atomicAdd": "skc.atomic_add(ptr, value)",
    "__shfl_sync": "skc.shfl_idx(value, lane)", "__shfl_up_sync": "skc.shfl_up(value, n)",
    "__shfl_down_sync": "skc.shfl_down(value, n)", "__shfl_xor_sync": "skc.shfl_xor(value, mask)",
    "__ballot_sync": "skc.ballot(condition)", "__any_sync": "skc.vote_any(condition)",
    "__all_sync": "skc.vote_all(condition)", "__threadfence": "skc.hopper.fence_acq_rel_gpu()",
    "arange": "nothing: a kernel is SPMD, one thread's scalars (or a short vector: skc.load(..., width=n))",
    "zeros": "skc.full(count, 0.0, dtype) for a vector, skc.shared(shape, dtype) for shared memory",
    "cumsum": "no builtin: a warp's scan is a loop of skc.shfl_up (examples/prefix_sum.py)",
}
_POINTER_FACTS = ("shape", "stride", "strides", "size", "numel", "ndim")


def _attribute_hint(obj, name: str) -> str:
    """What an object has instead of `name`: skc's name for a CUDA or Triton one; a run-time value's few attributes;
    a compile-time object's close matches, and all its public attributes when they are few (a dtype's)."""
    if isinstance(obj, Dyn):
        if isinstance(obj.type, PtrType) and name in _POINTER_FACTS:
            return f"a pointer has no {name}: pass the sizes the kernel needs as arguments"
        return "a run-time value has .dtype and .to(dtype) (a conversion, as skc.cast(value, dtype) and skc.f32(value))"
    if isinstance(obj, types.ModuleType) and obj.__name__ == "skc" and name in _OTHER_NAMES:
        return f"skc calls it {_OTHER_NAMES[name]}; docs/language.md lists every builtin"
    public = sorted(a for a in dir(obj) if not a.startswith("_"))
    close = difflib.get_close_matches(name, public, n=3)
    parts = [f"did you mean {' or '.join(close)}?"] if close else []
    if len(public) <= 12:
        parts.append(f"{_kind(obj)} has {', '.join(public)}" if public else "")
    return " ".join(p for p in parts if p)


def _callable_bare(method) -> bool:
    """Whether a bound method can be called with no arguments (a predicate such as roles.is_producer)."""
    try:
        inspect.signature(method).bind()
    except (TypeError, ValueError):
        return False
    return True


def _kind(obj) -> str:
    if isinstance(obj, RValue):
        return f"a run-time {obj.type}"
    if isinstance(obj, (type, types.ModuleType)):
        return describe(obj)
    return f"'{type(obj).__name__}' object"


def _is_truth_value(x) -> bool:
    return type(x) is bool or (isinstance(x, Dyn) and x.type is ir.i1)


def _truth_of_both(left, right) -> bool:
    """Whether a run-time and/or of these operands is the i1 of their truth: both are truth values, or no one type
    holds both; else it is one of them, as in Python."""
    return _is_truth_value(left) and _is_truth_value(right) or not _one_type(left, right)


def _one_type(left, right) -> bool:
    """Whether one DSL type holds both operands of a run-time and/or (its value is either)."""
    if not isinstance(right, Dyn):
        return semantics.is_number(right) and not isinstance(left.type, PtrType)
    if isinstance(left.type, PtrType) or isinstance(right.type, PtrType):
        return left.type == right.type
    return True




def merge_type(types, node, evaluator):
    first = types[0]
    if any(isinstance(t, PtrType) for t in types):
        if any(t != first for t in types):
            raise evaluator.error_at(node, f"the branches give different types: {', '.join(map(str, types))}")
        return first
    result = ir.element_type(first)
    for t in types[1:]:
        if t.is_vector != first.is_vector:
            raise evaluator.error_at(node, f"the branches give different types: {first} and {t}")
        result = semantics.promote_scalars(result, ir.element_type(t))
    return ir.VectorType(result, first.count) if first.is_vector else result


def _binds_names(*nodes) -> bool:
    """Whether evaluating these expressions may bind a name (a `:=`)."""
    return any(isinstance(n, ast.NamedExpr) for node in nodes for n in ast.walk(node))
