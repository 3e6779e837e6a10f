"""Evaluation of Python statements. Each `stmt_*` returns True when a run-time jump ended the
statement list (what follows is unreachable), else False. Here: simple statements, assignment,
`if` (with the merge of the names its branches change), and `return`; loops are in loops.py and
`with` in withs.py. Names that change inside run-time control flow move into var slots."""
from __future__ import annotations

import ast
import inspect
import math
import numbers
import types
from contextlib import contextmanager

from .. import ir
from ..diagnostics import CompileError, SkcError
from . import semantics
from .calls import LocalFunction, is_numpy_array
from .dtypes import DType, PtrType
from .expressions import BINARY_OPERATORS, MISSING, merge_type
from .python_errors import describe
from .frames import CompileTimeReturn, ControlSignal, ReturnTarget
from .source import attribute_targets, bound_when_true, subscripted_names
from .values import Dyn, Poison, Slot, mutable


class StatementEvaluator:
    """Mixin of the evaluator for statements and control flow."""

    def exec_body(self, stmts) -> bool:
        for stmt in stmts:
            if self.exec_stmt(stmt):
                return True
        return False

    def exec_stmt(self, stmt) -> bool:
        handler = getattr(self, "stmt_" + type(stmt).__name__, None)
        if handler is None:
            raise self.error_at(stmt, f"'{_statement_name(stmt)}' statements are not supported in kernels",
                                hint=_UNSUPPORTED_HINTS.get(type(stmt).__name__, ""))
        builder = self.cg.builder
        saved = builder.loc
        builder.loc = self.frame.location(stmt)
        try:
            return bool(handler(stmt))
        except CompileError as e:
            if e.loc is None:   # raised where no place was known: it belongs to this statement
                raise type(e)(e.message, self.frame.location(stmt), e.hint) from None
            raise
        except (SkcError, ControlSignal):
            raise
        except RecursionError:
            raise self.error_at(stmt, "the kernel nests too deeply (recursion?)") from None
        except Exception as e:   # Python's own, from compile-time code this statement runs
            raise self.python_error(stmt, e, "this statement") from e
        finally:
            builder.loc = saved

    # -- simple statements ------------------------------------------------------------
    def stmt_Expr(self, node):
        if isinstance(node.value, ast.IfExp):
            # `f() if c else None` as a statement runs one side for its effects, as `if c: f()` does (as an
            # expression its sides are values to choose between: None is none, so it was an error on a run-time c)
            branch = ast.If(test=node.value.test, body=[ast.Expr(node.value.body)],
                            orelse=[ast.Expr(node.value.orelse)])
            for made in (branch, *branch.body, *branch.orelse):
                ast.copy_location(made, node)
            return self.exec_stmt(branch)
        self.eval(node.value)

    def stmt_Pass(self, node):
        pass

    def stmt_Assign(self, node):
        value = self.eval_value(node.value)
        for target in node.targets:
            self.assign(target, value)

    def stmt_AnnAssign(self, node):
        annotation = self.eval_value(node.annotation)
        if node.value is None:
            return
        value = self.eval_value(node.value)
        if isinstance(annotation, (DType, PtrType)) and isinstance(node.target, ast.Name):
            # `acc: skc.f32 = 0` declares a run-time variable of that type; a variable of that type already there is
            # stored into (the one a run-time loop carries from one iteration to the next: a new variable would leave
            # every iteration reading the value from before the loop)
            t = annotation.ir if isinstance(annotation, DType) else annotation
            name = node.target.id
            current = self.frame.env.get(name)
            if isinstance(current, Slot) and not current.is_stale():
                if current.type == t:
                    current.store(value)
                    return
                if name in self.frame.promote:
                    raise self.error_at(node, f"'{name}' is a run-time variable of type {current.type}, which a "
                                              f"run-time loop around this line carries from one iteration to the "
                                              f"next; declared again as {t} inside the loop, every iteration would "
                                              f"read the value from before the loop",
                                        hint=f"keep its type ({name}: skc.{current.type} = ...), or use a new name "
                                             f"for the {t} value")
            slot = Slot(t, name)
            slot.store(value)
            self.frame.env[name] = slot
            return
        self.assign(node.target, value)

    def stmt_AugAssign(self, node):
        op = BINARY_OPERATORS[type(node.op)]
        target = node.target
        if isinstance(target, ast.Name):
            current = self.lookup(target.id, target)
            self.bind_name(target.id, self.augmented(op, current, self.eval_value(node.value), node))
        elif isinstance(target, ast.Attribute):
            obj = self.eval_value(target.value)
            current = getattr(obj, target.attr)
            if isinstance(current, Poison):
                current.fail()
            current = current.rvalue() if isinstance(current, Slot) else current
            self.set_attribute(obj, target.attr, self.augmented(op, current, self.eval_value(node.value), node),
                               target)
        elif isinstance(target, ast.Subscript):
            container = self.eval_value(target.value)
            index = self.eval_value(target.slice)
            current = self.subscript(container, index, target)
            self.set_item(container, index, self.augmented(op, current, self.eval_value(node.value), node), target)
        else:
            raise self.error_at(node, "unsupported augmented assignment target")

    def stmt_Delete(self, node):
        for target in node.targets:
            if not isinstance(target, ast.Name) or target.id not in self.frame.env:
                raise self.error_at(target, "only local names can be deleted in kernels")
            del self.frame.env[target.id]

    def stmt_Assert(self, node):
        cond = self.eval_value(node.test)
        message = self.eval_value(node.msg) if node.msg is not None else "assertion failed"
        if not isinstance(cond, Dyn):
            if not self.truth(cond, node):
                raise self.error_at(node, f"assertion failed at compile time: {message}")
            return
        if isinstance(message, Dyn):
            raise self.error_at(node.msg, "an assert message must be a compile-time string")
        self.cg.builder.create("gpu.assert", (semantics.to_bool(cond).value,), attrs={"message": str(message)})

    def stmt_Raise(self, node):
        exc = self.eval_value(node.exc) if node.exc is not None else None
        if isinstance(exc, CompileError) and exc.loc is not None and self.frame.runtime_depth == 0:
            raise exc   # a block's own error (frontend.current().error(...)): already placed, and its hint kept
        message = str(exc) if exc is not None else "raise"
        if self.frame.runtime_depth == 0:   # (an exception that says what to do, a block's ValueError: its `hint`)
            raise self.error_at(node, message, getattr(exc, "hint", None) or "")
        false = semantics.constant(0, ir.i1)
        self.cg.builder.create("gpu.assert", (false.value,), attrs={"message": message})

    def stmt_FunctionDef(self, node):
        if node.decorator_list:
            raise self.error_at(node, "functions defined inside a kernel cannot have decorators")
        self.frame.env[node.name] = LocalFunction(node, self.frame, self.eval_defaults(node.args),
                                                  tuple(self.comprehension_scopes))

    def stmt_Global(self, node):
        raise self.error_at(node, "'global' is not supported in kernels",
                            hint="kernels cannot change module state; write results to memory")

    def stmt_Nonlocal(self, node):
        raise self.error_at(node, "'nonlocal' is not supported in kernels",
                            hint="a function inside a kernel cannot rebind the names around it: return the new "
                                 "value, or keep it in a list element or an attribute")

    # -- assignment -------------------------------------------------------------------
    def assign(self, target, value):
        if isinstance(value, Slot):
            value = value.rvalue()  # a value in flight, not the variable it came from
        if isinstance(target, ast.Name):
            self.bind_name(target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            self.unpack(target, value)
        elif isinstance(target, ast.Attribute):
            self.set_attribute(self.eval_value(target.value), target.attr, value, target)
        elif isinstance(target, ast.Subscript):
            self.set_item(self.eval_value(target.value), self.eval_value(target.slice), value, target)
        else:
            raise self.error_at(target, f"cannot assign to {type(target).__name__}")

    def unpack(self, target, value):
        if isinstance(value, Dyn) and value.type.is_vector:
            value = tuple(semantics.subscript(value.rvalue(), i) for i in range(value.type.count))
        items = self.compile_time_iterable(value, target)
        starred = [i for i, elt in enumerate(target.elts) if isinstance(elt, ast.Starred)]
        if not starred and len(items) != len(target.elts):
            raise self.error_at(target, f"cannot unpack {len(items)} values into {len(target.elts)} names")
        if starred and len(items) < len(target.elts) - 1:
            raise self.error_at(target, f"cannot unpack {len(items)} values into {len(target.elts) - 1} names and a "
                                        "starred one: at least as many values as names are needed")
        if starred:
            s = starred[0]
            after = len(target.elts) - s - 1
            items = items[:s] + [list(items[s:len(items) - after])] + items[len(items) - after:]
        for elt, item in zip(target.elts, items):
            self.assign(elt.value if isinstance(elt, ast.Starred) else elt, item)

    def bind_name(self, name: str, value):
        env = self.frame.env
        current = env.get(name)
        if isinstance(current, Slot):
            if not (isinstance(value, Dyn) or semantics.is_number(value)):
                raise self.cg.error(
                    f"'{name}' is a run-time variable of type {current.type}; it cannot hold {_describe(value)}",
                    hint="use a new name for the compile-time value")
            current.store(value)
        elif name in self.frame.promote and mutable(value):
            slot = Slot(semantics.type_of(value), name)
            slot.store(value)
            env[name] = slot
        else:
            env[name] = value

    def set_attribute(self, obj, attr: str, value, node=None, raw: bool = False):
        """obj.attr = value. Run-time values live in slots, so the attribute reads right after any control flow. A
        property's setter runs (inlined where it is the user's code). raw: `object.__setattr__(obj, attr, value)`,
        which passes by the class's own __setattr__ and properties."""
        setattr_ = object.__setattr__ if raw else setattr
        descriptor = (inspect.getattr_static(type(obj), attr, None)
                      if not raw and not isinstance(obj, type) else None)
        if isinstance(descriptor, property):
            if descriptor.fset is None:
                raise self.error_at(node, f"property '{attr}' of {type(obj).__name__} has no setter")
            if self.should_inline(descriptor.fset):
                self.inline(descriptor.fset, (obj, value), {})
            else:
                self.call_native(descriptor.fset, (obj, value), {})
            return
        if mutable(value) and _module_state(obj, self.frame.globals):
            # (the attribute would keep a variable of this compile in the user's object: the next compile, for
            # another target or specialization, found it there and failed, or read this one's value)
            raise self.error_at(node, f"the kernel stores a run-time value into '{attr}' of {describe(obj)}, "
                                      "which outlives the kernel (a module or an object a module global names)",
                                hint="kernels cannot change module state: keep the value in a variable, or make "
                                     "the object inside the kernel")
        self.refuse_run_time_store(obj, attr, value, node)
        current = getattr(obj, attr, MISSING)
        if isinstance(current, (Slot, Poison)) and current.is_stale():   # (another compile's: this one's is new)
            current = MISSING
        pending = self.pending_attributes.get((id(obj), attr))
        if pending is not None and current is pending[0]:   # (set in both branches of a run-time `if`)
            current = pending[1]
        if self.attribute_paths and self.on_every_path_here():
            self.attribute_paths[-1].add((id(obj), attr))
        try:
            if isinstance(current, Slot):
                current.store(value)
            elif mutable(value):
                if self.region_stack and isinstance(current, Dyn):
                    raise self.error_at(
                        node, f"attribute '{attr}' holds a run-time value set by plain Python code outside this "
                              "run-time loop or branch, and is changed inside it",
                        hint="set the attribute in code skc compiles (an __init__ or method of the class), which "
                             "keeps it in a variable")
                slot = Slot(value.type, attr)
                slot.store(value)
                self.note_attribute_change(obj, attr)
                setattr_(obj, attr, slot)
                if self.scope_stack:   # (paths that do not come here hold `current`, which the slot does not)
                    self.attributes_in_flow.append((obj, attr, current))
            else:
                self.check_compile_time_change(obj, attr, current, value, node)
                self.note_attribute_change(obj, attr)
                setattr_(obj, attr, value)
                if (self.region_stack and current is MISSING or not self.on_every_path_here()
                        and not _same(current, value)):
                    # (first set on this path, or changed past a run-time jump: the other paths hold another)
                    self.attributes_in_flow.append((obj, attr, current))
                self.attribute_origin[(id(obj), attr)] = (obj, self.region_stack[-1] if self.region_stack else None)
        except (AttributeError, TypeError) as e:
            if isinstance(obj, Dyn):   # (its class is the compiler's: not the user's business)
                raise self.error_at(node, f"cannot set attribute '{attr}' of a run-time value",
                                    hint="keep the value in a variable, or set the attribute on a compile-time "
                                         "object") from e
            raise self.error_at(node, f"cannot set attribute '{attr}' of {type(obj).__name__}: {e}") from e

    def note_attribute_change(self, obj, attr: str):
        """Before the compile changes obj.attr: what the object held there, the first time, unless the kernel made the
        object (a failed compile puts it back: the object outlives the compile, and the next one found this one's
        variables and errors in it)."""
        key = (id(obj), attr)
        if key in self.attributes_changed:
            return
        made = self.objects_made.get(id(obj))
        if made is not None and made[0] is obj:
            return
        self.attributes_changed[key] = (obj, attr, _own_attribute(obj, attr))

    def put_back_attributes(self):
        """The compile failed: the attributes it changed on objects it did not make hold what they held before it,
        except those another compile (on another thread) has set since to a variable or marker of its own: put back,
        that compile read the value from before it and compiled it in, a wrong answer."""
        for obj, attr, before in reversed(list(self.attributes_changed.values())):
            now = _own_attribute(obj, attr)
            if isinstance(now, (Slot, Poison)) and now.is_stale():
                continue
            setter = type if isinstance(obj, type) else object   # (past the class's own __setattr__, as poison is set)
            try:
                if before is MISSING:
                    setter.__delattr__(obj, attr)
                else:
                    setter.__setattr__(obj, attr, before)
            except (AttributeError, TypeError):
                pass
        self.attributes_changed.clear()

    def check_compile_time_change(self, obj, attr, current, value, node):
        """A compile-time attribute may change inside run-time control flow only if it was set there too."""
        if not self.region_stack or current is MISSING or current is value:
            return
        if semantics.is_number(current) and type(current) is type(value) and current == value:
            return
        if isinstance(current, Poison):   # (no value known here: nothing to follow)
            return
        origin = self.attribute_origin.get((id(obj), attr))
        if origin is not None and origin[0] is obj and origin[1] == self.region_stack[-1]:
            return
        if semantics.is_number(current) or isinstance(current, Dyn):
            argument = self.constexpr_holding(obj)
            if argument is not None:   # (the hint below would make it a run-time value: refused there)
                raise self.constexpr_error(obj, argument, f"changes '{attr}' of", node, " inside run-time control "
                                           "flow, where the attribute would be a run-time variable")
            raise self.error_at(
                node, f"attribute '{attr}' holds the compile-time value {current!r} and is changed inside run-time "
                      "control flow, where a compile-time value cannot follow the path taken",
                hint=f"make it a run-time value where it is first set, e.g. `self.{attr} = "
                     f"skc.{_run_time_type_name(current)}({current!r})`")
        if not _holds_values(current):   # (None, a string, a class: a compile-time marker, as blocks' `rank = None`)
            return
        # a container or object: one body is compiled for every iteration and every branch, so the paths that do
        # not come here, and a loop's next iteration, would read the object as it was (its elements and attributes
        # carry run-time values from one iteration to the next, the attribute's binding cannot)
        held = (f"{type(current).__name__} {_short(current)}" if isinstance(current, (list, dict, tuple))
                else describe(current))
        raise self.error_at(
            node, f"attribute '{attr}' holds the compile-time {held} and is bound to another ({describe(value)}) "
                  "inside run-time control flow, where a compile-time value cannot follow the path taken (a loop's "
                  "next iteration, and the paths that do not come here, would read the old one)",
            hint=f"change what it holds in place through a name bound before the loop or branch (`held = "
                 f"self.{attr}` before it, `held[i] = ...` or `held.field = ...` inside), which skc keeps in "
                 "variables, or bind the attribute outside run-time control flow")

    def set_item(self, container, index, value, node):
        if isinstance(container, Dyn):
            semantics.store_subscript(container.rvalue(), index, value)
            return
        method = getattr(type(container), "__setitem__", None)
        if method is not None and not isinstance(container, (list, dict)) and self.should_inline(method):
            self.inline(method, (container, index, value), {})
            return
        if isinstance(index, Dyn) and isinstance(container, (list, tuple, dict)):
            raise self.error_at(node, f"a {type(container).__name__} can only be indexed by a compile-time value")
        try:
            current = container[index] if isinstance(container, (list, dict)) else None
        except (IndexError, KeyError):
            current = None
        in_flow = bool(self.region_stack or not self.on_every_path_here()) and not _same(current, value)
        self.refuse_run_time_item(container, index, value, node, in_flow)
        if isinstance(current, Slot):
            current.store(value)
            return
        if self.region_stack or not self.on_every_path_here():
            self.check_element_change(container, index, value, node)
        if (mutable(value) and isinstance(container, (list, dict)) and not self.region_stack
                and (self.on_every_path_here() or self.made_in_this_scope(container))):
            slot = Slot(value.type, "element")
            slot.store(value)
            value = slot
        try:
            container[index] = value
        except SkcError:
            raise
        except Exception as e:
            raise self.python_error(node, e, f"assigning to an element of {describe(container)}") from e

    def check_element_change(self, container, index, value, node):
        """Inside run-time control flow, or past a run-time jump: a compile-time container made outside it (before
        the jump) cannot change there. The change is made once, at compile time, so every path would see it: the
        paths that do not come here (that jumped, or took the other branch) and a loop's next iteration."""
        made_here = self.made_in_this_scope(container)
        if isinstance(container, (list, dict)):
            try:
                held = container[index]
            except (IndexError, KeyError, TypeError):
                held = MISSING
            changed = (self.region_stack and (isinstance(value, Dyn) or semantics.is_number(value))
                       or not made_here and not _same(held, value))
        else:   # (a slice of a bytearray, or a numpy array made in the kernel, changed here changes on every path too)
            changed = not made_here and (isinstance(index, slice) and isinstance(container, bytearray)
                                         or is_numpy_array(container))
        if not changed:
            return
        kind = type(container).__name__
        if self.region_stack:
            raise self.error_at(node, f"an element of a {kind} made outside this run-time loop or branch is changed "
                                      "inside it, where a compile-time container cannot follow the path taken",
                                hint="change it through a plain name bound to the container before the loop or "
                                     "branch (`acc = self.acc` before it, `acc[j] = ...` in its own body, not in a "
                                     "method or helper it calls), which skc keeps in variables, or build the "
                                     "container inside the loop")
        raise self.error_at(node, f"an element of a {kind} made before a run-time break, continue or return is "
                                  "changed past it, where a compile-time container cannot follow the path taken (the "
                                  "paths that jumped skip this change, and would read it all the same)",
                            hint="assign the element once before the jump, as a run-time value (`acc[0] = "
                                 "skc.f32(acc[0])`; skc then keeps it in a variable every path reads), or build the "
                                 "container past the jump")

    def keep_in_slots(self, stmts):
        """Before run-time control flow: the list elements and attributes these statements assign move into
        slots, so every path and iteration reads what the last one wrote."""
        env = self.frame.env
        for name in subscripted_names(stmts):
            container = env.get(name)
            if (self.scope_stack and not self.made_in_this_scope(container)
                    or self.constexpr_holding(container) is not None):
                # (a container from outside the run-time loop or branch open here, reached by another name: a slot
                # made here would take the element's value again on every iteration, and hold none on the paths
                # that skip this point; set_item refuses the change instead. A constexpr's, or one it holds: the
                # slot would stay in the user's container, the compile's key)
                continue
            items = (enumerate(container) if isinstance(container, list) else
                     list(container.items()) if isinstance(container, dict) else ())
            for key, item in items:
                slot = _as_slot(item, f"{name}[{key!r}]")
                if slot is not None:
                    container[key] = slot
        for name, attr in attribute_targets(stmts):
            obj = env.get(name)
            if obj is None or isinstance(obj, Dyn) or self.constexpr_holding(obj) is not None:
                continue   # (a constexpr's: the slot would stay in the user's object; set_attribute refuses the change)
            if hasattr(inspect.getattr_static(type(obj), attr, None), "__set__"):
                continue   # (a property: reading it and setting it back would run its getter and setter here)
            slot = _as_slot(getattr(obj, attr, None), attr)
            if slot is not None:
                try:
                    self.note_attribute_change(obj, attr)
                    setattr(obj, attr, slot)
                except (AttributeError, TypeError):
                    pass

    # -- run-time regions -------------------------------------------------------------
    @contextmanager
    def runtime_region(self, region, loop: bool = False):
        """Emit into a region that runs conditionally (or, `loop`, repeatedly) at run time."""
        self.cg.runtime_depth += 1
        self.frame.runtime_depth += 1
        self.region_stack.append(id(region))
        self.scope_stack.append(id(region))
        if loop:
            self.loop_regions.add(id(region))
        try:
            with self.cg.builder.at(region):
                yield region
        finally:
            self.loop_regions.discard(id(region))
            self.region_stack.pop()
            self.scope_stack.pop()   # (marks go in below the regions open when they are made)
            self.cg.runtime_depth -= 1
            self.frame.runtime_depth -= 1

    def mark_jump(self, holder, attr: str, opened: int):
        """A run-time jump was just emitted, `opened` run-time regions deep inside the construct it leaves (`holder`,
        a loop or a frame): from where those regions close to where the jump lands, code runs on some paths only.
        The first such jump puts a mark on the scope stack under those regions, which `unmark_jump` takes off."""
        if getattr(holder, attr) is not None:
            return
        mark = object()
        setattr(holder, attr, mark)
        self.attributes_past_jumps[id(mark)] = self.begin_attribute_paths()
        stack, at = self.scope_stack, len(self.scope_stack)
        for _ in range(opened):   # (below `opened` entries that are regions, not marks)
            at -= 1
            while stack[at] not in self.region_stack:
                at -= 1
        stack.insert(at, id(mark))

    def unmark_jump(self, holder, attr: str):
        mark = getattr(holder, attr)
        if mark is not None:
            setattr(holder, attr, None)
            self.scope_stack.remove(id(mark))
            # (what code past the jump first set, the paths that jumped did not: an error where read after it)
            self.poison_attributes(self.attributes_past_jumps.pop(id(mark)), set())

    def on_every_path_here(self) -> bool:
        """Whether code here runs on every path of the innermost run-time region (or of the kernel): not past a
        run-time jump (a mark on the scope stack above that region)."""
        return not self.scope_stack or self.scope_stack[-1] in self.region_stack

    def path_point(self) -> tuple:
        """This point of the code, for `always_follows`: the run-time regions open (which of them loops' bodies) and
        how many run-time jumps came before it."""
        return tuple(self.region_stack), tuple(map(self.loop_regions.__contains__, self.region_stack)), len(self.jumps)

    def always_follows(self, point) -> bool:
        """Whether every run-time path through `point` (an earlier path_point) goes on to the code here: it is in no
        run-time region `point` is outside of (an `if`'s branch, a loop's body: a path may skip it), outside none of
        its loops (a later iteration may leave by a jump compiled before it), and no run-time jump compiled since
        leaves a construct still open here (a return from the kernel or from this inlined function, a break or
        continue of a loop around here: it skips this code). Loops are taken to end, asserts to hold."""
        regions, loops, jumped = point
        here = len(self.region_stack)
        if tuple(self.region_stack) != regions[:here] or any(loops[here:]):
            return False
        open_here = [*self.frames, *(loop for frame in self.frames for loop in frame.loops)]
        return not any(left is construct for left in self.jumps[jumped:] for construct in open_here)

    # -- attributes set on some run-time paths ------------------------------------------
    def begin_attribute_paths(self) -> tuple:
        return len(self.attributes_in_flow), len(self.objects_made)

    def note_made(self, obj):
        """An object the kernel's code made (its attributes set inside a construct it was made in concern no path
        outside it)."""
        self.objects_made[id(obj)] = (obj, len(self.objects_made) + 1)
        return obj

    def end_attribute_paths(self, begun: tuple, reaching: list):
        """A run-time construct ends: `reaching` holds, for each of its paths that reaches the code after it, the
        attributes that path sets. An attribute given a new slot inside the construct (first set there, or over a
        value a slot cannot hold, as a class's default or None) that some reaching path does not set reads as an
        error after it: on that path it holds its old value, or none (Python's AttributeError)."""
        everywhere = set.intersection(*reaching) if reaching else set()
        if self.attribute_paths and self.on_every_path_here():
            self.attribute_paths[-1] |= everywhere
        self.poison_attributes(begun, everywhere)

    def poison_attributes(self, begun: tuple, everywhere: set):
        """The attributes given new slots since `begun` that not every path sets (not in `everywhere`), on objects
        made before it, read as errors from here."""
        start, made = begun
        for obj, attr, before in self.attributes_in_flow[start:]:
            number = self.objects_made.get(id(obj))
            if (id(obj), attr) in everywhere or number is not None and number[0] is obj and number[1] > made:
                continue
            why = ("may be undefined here: it is first set inside run-time control flow, on some paths that reach "
                   "this point but not on others") if before is MISSING else (
                   f"holds {_short(before)} on some paths that reach this point and another value on others")
            try:
                self.note_attribute_change(obj, attr)
                object.__setattr__(obj, attr, Poison(f"{type(obj).__name__}.{attr}", why, hint=(
                    f"set it on every path, or before the `if` or loop to a run-time value (self.{attr} = "
                    "skc.f32(0.0), say)")))
            except (AttributeError, TypeError):
                pass

    # -- if ---------------------------------------------------------------------------
    def stmt_If(self, node):
        cond = self.eval_value(node.test)
        if not isinstance(cond, Dyn):
            return self.exec_body(node.body if self.truth(cond, node.test) else node.orelse)
        condition = semantics.to_bool(cond)
        self.keep_in_slots(node.body + node.orelse)
        if_op = self.cg.builder.if_(condition.value)
        before = dict(self.frame.env)
        branches, attributes = [], self.begin_attribute_paths()
        reaching = []   # the attributes each path that reaches the code after the `if` sets
        restore = []
        for taken, (region, body) in zip((True, False), zip(if_op.regions, (node.body, node.orelse))):
            self.frame.env = dict(before)
            if taken:
                self.bound_by_test(node.test)
            self.conditions.append((condition, taken))
            self.attribute_paths.append(set())
            try:
                with self.runtime_region(region):
                    if not taken:
                        restore = self.attributes_before_branch(attributes[0])
                    ended = self.exec_body(body)
            finally:
                self.conditions.pop()
                assigned = self.attribute_paths.pop()
                self.attributes_after_branch(restore)
            branches.append((self.frame.env, region, ended))
            if not ended:
                reaching.append(assigned)
        self.frame.env = self.merge(before, branches, node)
        self.end_attribute_paths(attributes, reaching)
        return all(ended for _, _, ended in branches)

    def attributes_before_branch(self, start: int) -> list:
        """At the start of an `if`'s second branch: the attributes the first branch set (attributes_in_flow from
        start) hold there what they held before the `if`. One the first branch moved into a new slot gets the old
        value stored in it on this path; one that held nothing (or a value no slot holds) reads as an error here,
        and a set here sets over the first branch's value (into its slot: set_attribute reads pending_attributes)."""
        restore = []
        for obj, attr, before in self.attributes_in_flow[start:]:
            try:
                now = object.__getattribute__(obj, attr)
            except AttributeError:
                continue
            if isinstance(now, Slot) and before is not MISSING and (mutable(before) or semantics.is_number(before)):
                now.store(before)
                continue
            key = (id(obj), attr)
            poison = Poison(f"{type(obj).__name__}.{attr}",
                            "is set by the other branch of the run-time `if` only" if before is MISSING else
                            f"holds {_short(before)} here, which the other branch of the run-time `if` changed",
                            hint="set it before the `if` to a run-time value")
            try:
                self.note_attribute_change(obj, attr)
                object.__setattr__(obj, attr, poison)
            except (AttributeError, TypeError):
                continue
            restore.append((obj, attr, poison, now, self.pending_attributes.get(key)))
            self.pending_attributes[key] = (poison, now)
        return restore

    def attributes_after_branch(self, restore: list):
        """The attributes attributes_before_branch made errors that the second branch did not set hold the first
        branch's value again (poison_attributes then tells which paths set them)."""
        for obj, attr, poison, now, outer in reversed(restore):
            key = (id(obj), attr)
            if outer is None:
                self.pending_attributes.pop(key, None)
            else:
                self.pending_attributes[key] = outer
            try:
                if object.__getattribute__(obj, attr) is poison:
                    object.__setattr__(obj, attr, now)
            except (AttributeError, TypeError):
                pass
        restore.clear()

    def merge(self, before: dict, branches, node) -> dict:
        """The names after an `if`: unchanged ones as they were; changed numbers and run-time values in a slot."""
        return self.merge_paths(before, [(env, region) for env, region, ended in branches if not ended], node)

    def merge_paths(self, before: dict, paths, node) -> dict:
        """The names where several run-time paths meet. `paths` holds (env, place) of each path that reaches
        the meeting point; place is the region whose end the path leaves by, or (region, op) for a path that
        leaves by the jump `op`. A name with one value on every path keeps it; numbers and run-time values
        that differ (or were computed inside a path's region) move into a slot stored on every path; a name
        missing on some path, or holding different compile-time values, reads as an error."""
        if not paths:
            return before
        merged = dict(paths[0][0])
        names = dict.fromkeys(name for env, _ in paths for name in env)   # (ordered: the same IR in every process)
        for name in names:
            values = [env.get(name, MISSING) for env, _ in paths]
            unknown = [v for v in values if isinstance(v, Poison)]
            if unknown:   # (unknown on some path: it stays so, for the reason it is)
                merged[name] = unknown[0]
                continue
            if any(v is MISSING for v in values):
                merged[name] = Poison(name, "may be undefined here: it is assigned on some paths that reach this "
                                      "point but not on others",
                                      hint="assign it before the `if` or loop, or on every path",
                                      value=self.slot_on_some_paths(name, paths, values, node))
                continue
            first = values[0]
            if all(_same(v, first) for v in values) and not _defined_inside(first, before.get(name, MISSING)):
                merged[name] = first
                continue
            types = [semantics.type_of(v) for v in values] if all(
                isinstance(v, Dyn) and mutable(v) or semantics.is_number(v) for v in values) else None
            try:
                t = semantics.holding_type(values, merge_type(types, node, self)) if types else None
            except CompileError as e:
                merged[name] = Poison(name, "has different types after the branches of a run-time `if` ("
                                      + ", ".join(map(str, types)) + ")",
                                      hint=e.hint or "give it one type on every path")
                continue
            if t is not None:
                slot = Slot(t, name)
                for (env, place), v in zip(paths, values):
                    self.store_on_path(place, slot, v)
                merged[name] = slot
            elif any(isinstance(v, Dyn) and not mutable(v) for v in values):
                # (a tensor map is a kernel argument read in place: no variable holds one, but a choice does)
                merged[name] = Poison(name, "holds different tensor maps (or a tensor map and another value) after "
                                      "the branches of a run-time `if`: a tensor map cannot be held in a variable",
                                      hint=f"choose between two tensor maps of one type: `{name} = skc.where(cond, "
                                           "t, u)` or `t if cond else u`")
            else:
                merged[name] = Poison(name, "holds different compile-time values after the branches of a run-time `if`",
                                      hint="give it the same value on every path, or use a run-time value")
        return merged

    def slot_on_some_paths(self, name, paths, values, node):
        """A slot holding a name's run-time value on the paths that bound it (None where they hold anything else):
        code that only those paths reach reads it (an `if` body whose `and` test bound it by `:=`)."""
        present = [(path, v) for path, v in zip(paths, values) if v is not MISSING]
        if not all(isinstance(v, Dyn) and mutable(v) or semantics.is_number(v) for _, v in present):
            return None
        try:
            t = semantics.holding_type([v for _, v in present],
                                       merge_type([semantics.type_of(v) for _, v in present], node, self))
        except CompileError:
            return None
        slot = Slot(t, name)
        for (env, place), v in present:
            self.store_on_path(place, slot, v)
        return slot

    def bound_by_test(self, test):
        """In an `if` body or a `while` body: the names a `:=` in the test bound on every run that chose the body,
        read from the slot the paths that bound them stored (they are "may be undefined" only after the test)."""
        env = self.frame.env
        for name in bound_when_true(test):
            value = env.get(name)
            if isinstance(value, Poison) and value.value is not None:
                env[name] = value.value

    def store_on_path(self, place, slot, value):
        """Store value into slot at the end of a path: a region's end, or just before the jump op of (region, op)."""
        builder = self.cg.builder
        if isinstance(place, ir.Region):
            with builder.at(place):
                slot.store(value)
            return
        region, jump = place
        staging = ir.Region()
        with builder.at(staging):
            slot.store(value)
        index = region.ops.index(jump)
        for op in staging.ops:
            op.parent = region
        region.ops[index:index] = staging.ops

    # -- return -----------------------------------------------------------------------
    def stmt_Return(self, node):
        frame = self.frame
        value = self.eval_value(node.value) if node.value is not None else None
        # an unrolled loop's run-time break (an earlier iteration's) or continue (this iteration's) left paths that
        # never reach this return: the return is then a run-time jump, and the loop goes on with those paths
        jumps = any(loop.breaks or loop.continues for loop in frame.loops)
        if frame.is_kernel:
            if value is not None:
                raise self.error_at(node, "a kernel returns nothing", hint="write results to an output pointer")
            if frame.runtime_depth == 0 and not jumps:
                raise CompileTimeReturn(None)
            self.emit_cleanups(0)
            self.cg.builder.create("func.return")
            self.jumps.append(frame)
            if frame.runtime_depth == 0:
                raise CompileTimeReturn(None, cleaned=True)
            return True
        if frame.ret is None or (frame.runtime_depth == 0 and frame.ret.slots is None and not frame.ret.returns_none
                                 and not jumps and _constant(value)):
            # every run-time path reaches this return (no run-time return came before it), and its value is a
            # Python constant (nothing defined inside the function's block): it stays a compile-time value, as in a
            # function without nested returns
            raise CompileTimeReturn(value)
        self.store_return(frame.ret, value, node)
        self.emit_cleanups(0)
        self.cg.builder.create("scf.break", attrs={"label": frame.ret.label})
        self.jumps.append(frame)
        self.mark_jump(frame, "return_mark", frame.runtime_depth)
        if frame.runtime_depth == 0:
            raise CompileTimeReturn(None, cleaned=True)
        return True

    def store_return(self, ret: ReturnTarget, value, node):
        """Store a run-time return's value into the function's return slots; the first return fixes their types (as
        a variable's first value does), and a later one of another type is an error naming both lines."""
        first = ret.line or node.lineno
        if value is None:
            if ret.slots is not None:
                raise self.error_at(node, f"this function returns a value at line {first} and None here",
                                    hint="return a value on every path, or None on every path")
            ret.returns_none, ret.line = True, first
            return
        if ret.returns_none:
            raise self.error_at(node, f"this function returns None at line {first} and a value here",
                                hint="return a value on every path, or None on every path")
        items = value if isinstance(value, tuple) else (value,)
        shape = len(value) if isinstance(value, tuple) else None
        for item in items:
            if not (isinstance(item, Dyn) or semantics.is_number(item)):
                raise self.error_at(node, f"a function that may return at run time must return numbers or run-time "
                                          f"values, found {_describe(item)}",
                                    hint="move the return out of run-time control flow")
        if ret.slots is None:
            ret.slots = [Slot(semantics.type_of(item), "return value") for item in items]
            ret.shape, ret.line = shape, first
        elif ret.shape != shape:
            raise self.error_at(node, f"this function returns {_count(ret.shape)} at line {first} and "
                                      f"{_count(shape)} here", hint="return as many values on every path")
        for k, (slot, item) in enumerate(zip(ret.slots, items)):
            self.check_return(slot.type, item, node, first, "" if shape is None else f" as value {k}")
            slot.store(item)

    def check_integer_return(self, t, item, node, first: int, earlier: str):
        """An integer returned into a float slot: taken where t holds every value of it (an i16 into an f32, a 5
        into an f16); else an error, as Python returns the integer itself (an i32 16777217 read 16777216 in f32),
        naming both fixes: the nearest t here, or a float type that holds it at the first return."""
        elem = ir.element_type(t)
        try:
            held = semantics.chosen_float([item], elem)
        except CompileError:
            held = None   # (a 64-bit integer: no float type holds every one)
        if held is elem:
            return
        wider = f", or return {held} at line {first} too (skc.{held}(...))" if held is not None else ""
        raise self.error_at(node, f"{earlier}, which {t} cannot hold exactly (Python returns the integer as it is)",
                            hint=f"return one type on every path: skc.{elem}(...) here returns the nearest {elem}"
                                 f"{wider}")

    def check_return(self, t, item, node, first: int, what: str):
        """A value returned into a slot of type t (fixed by the return at line `first`) must fit it unchanged."""
        here = f"{item!r}" if semantics.is_number(item) else str(semantics.type_of(item))
        earlier = f"this function returns {t}{what} at line {first} and {here} here"
        if not isinstance(t, PtrType) and ir.element_type(t).is_float and semantics.is_integer_value(item):
            self.check_integer_return(t, item, node, first, earlier)
        elif semantics.holding_type([item], t) is not t:
            raise self.error_at(node, f"{earlier}, which {t} would wrap",
                                hint=f"return one type on every path: convert the one at line {first} "
                                     f"(skc.i64(...)), or return a number {t} holds")
        wider = semantics.type_to_hold(t, item)
        if wider is not None:
            start = semantics.zero_written(wider)
            raise self.error_at(node, f"{earlier}, which {t} cannot represent",
                                hint=f"return one type on every path: {wider} at line {first} too (a number such "
                                     f"as {start}, or skc.{wider}(...))")
        item_type = semantics.type_of(item)
        pointers = isinstance(t, PtrType), isinstance(item_type, PtrType)
        if (pointers[0] or pointers[1]) and item_type != t or (
                not any(pointers) and isinstance(item, Dyn) and (t.is_vector, getattr(t, "count", 1))
                != (item_type.is_vector, getattr(item_type, "count", 1))):
            raise self.error_at(node, earlier, hint="return one type on every path")


def _count(shape) -> str:
    return "one value" if shape is None else f"a tuple of {shape}"


def _constant(value) -> bool:
    """Whether a returned value is made of Python numbers, strings and None only (no run-time value, no object that
    may hold one)."""
    items = value if isinstance(value, tuple) else (value,)
    return all(item is None or isinstance(item, str) or semantics.is_number(item) for item in items)


def _as_slot(value, name: str):
    """A slot holding value, for a number or a run-time value not yet in one; else None."""
    if isinstance(value, Slot) or not (mutable(value) or semantics.is_number(value)):
        return None
    slot = Slot(semantics.type_of(value), name)
    slot.store(value)
    return slot


def _same(a, b) -> bool:
    """Whether two paths hold the same value: the same object, or equal numbers of one type (and, for floats, of one
    sign: 0.0 and -0.0 are equal but divide differently)."""
    return a is b or (semantics.is_number(a) and type(a) is type(b) and a == b
                      and (isinstance(a, numbers.Integral) or math.copysign(1, a) == math.copysign(1, b)))


def _defined_inside(value, before) -> bool:
    """Whether value is an SSA value made after the construct began (so it may not dominate what follows)."""
    return isinstance(value, Dyn) and mutable(value) and not isinstance(value, Slot) and value is not before


def _describe(value) -> str:
    return f"a {type(value).__name__}"


def _statement_name(stmt) -> str:
    return {"Try": "try", "TryStar": "try", "ClassDef": "class", "Import": "import", "ImportFrom": "import",
            "AsyncFunctionDef": "async def", "AsyncFor": "async for", "AsyncWith": "async with",
            "Match": "match"}.get(type(stmt).__name__, type(stmt).__name__)


_UNSUPPORTED_HINTS = {
    "Try": "exceptions do not exist on the GPU; check conditions with `if` and `assert`",
    "Import": "import at the top of the module",
    "ImportFrom": "import at the top of the module",
    "ClassDef": "define classes at module level",
    "Match": "use if / elif",
}


def _module_state(obj, module_globals) -> bool:
    """Whether obj is a module or an object that one of the module's globals names: state that outlives a compile."""
    if isinstance(obj, types.ModuleType):
        return True
    return not isinstance(obj, Dyn) and any(value is obj for value in module_globals.values())


def _own_attribute(obj, attr: str):
    """What obj itself holds under attr (in its __dict__ or a slot, not its class's default); MISSING where none."""
    if not isinstance(obj, type) and hasattr(inspect.getattr_static(type(obj), attr, None), "__set__"):
        return getattr(obj, attr, MISSING)   # (a slot of a __slots__ class)
    own = getattr(obj, "__dict__", None)
    if own is None:
        return getattr(obj, attr, MISSING)
    return own.get(attr, MISSING)


def _holds_values(value) -> bool:
    """Whether a compile-time value is a container or an object whose elements or attributes may hold run-time
    values (not None, a number, a string, a class, a module or a function)."""
    if isinstance(value, (list, dict, tuple, set)):
        return True
    return hasattr(value, "__dict__") and not isinstance(value, (type, types.ModuleType, types.FunctionType,
                                                                 types.MethodType, DType, PtrType))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _run_time_type_name(value) -> str:
    """The skc type a hint suggests for a compile-time number: its own where it is run-time already, else an int's
    i32 and a float's f32."""
    if isinstance(value, Dyn):
        return str(value.type)
    return "f32" if isinstance(value, float) else "i32"
