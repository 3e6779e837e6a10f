"""Loops in kernels: `for` over `range` (a run-time loop), over `skc.static_range` or compile-time
items (unrolled), over scheduler objects (`__skc_range__`), `while` (run-time, or compile-time when
its condition is), and `break`/`continue` of each kind. Names a loop body changes live in var slots
so that every iteration reads what the previous one wrote."""
from __future__ import annotations

import ast
import copy

from .. import ir
from . import semantics
from .builtins import max_unroll, static_range
from .expressions import MAX_COMPILE_TIME_ITERATIONS, MISSING
from .frames import (CompileTimeBreak, CompileTimeContinue, CompileTimeReturn, LoopContext, inline_unjumped,
                     scratch_region)
from .source import (attribute_targets, bound_by_every_run, carried_names, contains_statements, has_nested_jump,
                     read_before_assigned, target_names)
from .values import Dyn, Poison, RValue, Slot, mutable


class LoopEvaluator:
    """Mixin of the evaluator for loops and the jumps out of them."""

    # -- loops ------------------------------------------------------------------------
    def stmt_For(self, node):
        if node.orelse:
            return self.loop_with_else(node)
        if isinstance(node.iter, ast.Call):
            func = self.eval_value(node.iter.func)
            if func is range:
                args, kwargs = self.eval_call_arguments(node.iter)
                if kwargs or not 1 <= len(args) <= 3:
                    raise self.error_at(node.iter, "range takes 1 to 3 positional arguments")
                return self.runtime_for(node, *_range_bounds(args))
            if func is static_range:
                args, kwargs = self.eval_call_arguments(node.iter)
                return self.unrolled_loop(node, self.counted(static_range(*args, **kwargs), node.iter))
        iterable = self.eval_value(node.iter)
        if hasattr(type(iterable), "__skc_range__"):
            return self.protocol_loop(node, iterable)
        return self.unrolled_loop(node, self.compile_time_items(iterable, node.iter))

    def loop_with_else(self, node) -> bool:
        """`for`/`while ... else`: Python runs the else block where no `break` left the loop. Run as `flag = False`,
        the loop with each of its breaks setting the flag first, then `if not flag:` the else block (the flag is a
        compile-time or a run-time bool as the breaks are)."""
        made = self.cg.facts("loops").setdefault(id(node), (node, _flagging_breaks(node)))
        return self.exec_body(made[1])

    def counted(self, loop, node):
        """The items of a static_range, counting them against the kernel's unrolling budget (a loop given its own
        max_unroll=N is held to N alone, and does not use up the kernel's budget)."""
        if loop.max_unroll is not None:
            if len(loop.range) > loop.max_unroll:
                raise self.error_at(node, f"static_range would unroll {len(loop.range)} iterations; its max_unroll "
                                          f"is {loop.max_unroll}", hint="raise max_unroll, or use range()")
            return loop
        limit = max_unroll()
        if self.cg.unrolled + len(loop.range) > limit:
            raise self.error_at(node, f"static_range would unroll {len(loop.range)} iterations here, "
                                      f"{self.cg.unrolled + len(loop.range)} in the kernel so far; the limit is "
                                      f"{limit}",
                                hint="use range() for a run-time loop (or unroll part of it: an inner "
                                     "static_range in a range loop); to unroll more anyway, pass "
                                     "max_unroll=N or set SKC_MAX_UNROLL")
        self.cg.unrolled += len(loop.range)
        return loop

    def runtime_for(self, node, start, stop, step):
        if semantics.is_number(step) and step == 0:
            raise self.error_at(node.iter, "range() step must not be zero")
        t = _index_type((start, stop, step))
        lb, ub, st = (semantics.cast(v, t) if isinstance(v, Dyn) else semantics.constant(v, t)
                      for v in (start, stop, step))
        label = self.cg.label()

        def make_loop():
            return self.cg.builder.for_(lb.value, ub.value, st.value, label)

        kept = []

        def body(for_op):
            induction = RValue(for_op.regions[0].args[0], t)
            if isinstance(node.target, ast.Name):
                current = self.frame.env.get(node.target.id)
                if isinstance(current, Slot) and current.type == t:
                    # a variable before the loop (or one the body assigns): it holds each index in turn, and after
                    # the loop the last value it was given, or its value before a loop that ran zero times
                    current.store(induction)
                    kept.append(current)
                else:
                    self.frame.env[node.target.id] = induction
            else:
                self.assign(node.target, induction)
            self.exec_body(node.body)

        self.runtime_loop(node, make_loop, label, body)
        if isinstance(node.target, ast.Name) and not (kept and self.frame.env.get(node.target.id) is kept[0]):
            self.frame.env[node.target.id] = Poison(
                node.target.id, "is the variable of a run-time loop and has no value after it",
                hint="copy it into another variable inside the loop")
        return False

    def runtime_loop(self, node, make_loop, label: str, body, may_skip: bool = True):
        """Create a run-time loop with `make_loop()` and fill its region with `body(op)`; names the
        body assigns are moved into slots first, so every iteration reads the last one's values."""
        frame = self.frame
        # (a while loop's test runs every iteration: a `:=` in it binds as the body does)
        names = carried_names(node.body + ([ast.Expr(node.test)] if isinstance(node, ast.While) else []))
        everything_before = dict(frame.env)
        before = {}
        for name in names:
            value = frame.env.get(name, MISSING)
            before[name] = value
            if mutable(value) and not isinstance(value, Slot) or semantics.is_number(value):
                slot = Slot(semantics.type_of(value), name)
                slot.store(value)
                frame.env[name] = slot
        self.keep_in_slots(node.body)
        saved_promote = frame.promote
        frame.promote = frame.promote | set(names)
        loop_op = make_loop()
        context = LoopContext(False, frame.runtime_depth, len(frame.withs), label, label,
                              attribute_level=len(self.attribute_paths))
        frame.loops.append(context)
        attributes = self.begin_attribute_paths()
        self.attribute_paths.append(set())
        try:
            with self.runtime_region(loop_op.regions[0], loop=True):
                body(loop_op)
        finally:
            frame.loops.pop()
            frame.promote = saved_promote
            self.attribute_paths.pop()   # (the body's own sets: only what the breaks carried leaves the loop)
        # (the paths that leave it: a test that fails, which may be the first, having set nothing; and each
        # run-time break, having set what its path set before it)
        self.end_attribute_paths(attributes, ([set()] if may_skip else []) + context.break_attributes)
        # (a while's test runs first in every iteration)
        read_first = read_before_assigned(([ast.Expr(node.test)] if isinstance(node, ast.While) else []) + node.body)
        # (the loop's own target is bound before every iteration's body: never read stale)
        own = set(target_names(node.target)) if isinstance(node, ast.For) else set()
        for name, value in everything_before.items():
            if (name not in names and name not in own and frame.env.get(name, MISSING) is not value
                    and name in read_first and not isinstance(value, Poison)):
                # bound other than by an assignment (an inner loop's target, a def, a del): the body, compiled
                # once, reads the value from before the loop where the next iteration would read this one's
                raise self.error_at(node, f"'{name}' is read in this run-time loop and then bound again other than "
                                          "by an assignment (as an inner loop's target, by a def or a del): every "
                                          "iteration would read the value it had before the loop",
                                    hint=f"use another name for what the loop binds there (or, for a number the "
                                         f"next iteration reads, declare a run-time variable before the loop, "
                                         f"`{name}: skc.i32 = 0`, and assign it with `=` in the loop)")
        for name, value in list(frame.env.items()):
            if name not in names and everything_before.get(name, MISSING) is not value:
                # bound in the body other than by an assignment (an inner loop's target): which iteration's value,
                # if any, it holds after the loop is not known at compile time
                frame.env[name] = Poison(
                    name, "is bound inside a run-time loop other than by an assignment (as an inner loop's target, "
                          "say), so its value after the loop is not known at compile time",
                    hint="assign it in the loop's body (`x = ...`), which carries it from one iteration to the next")
        def fixed(name):
            # a compile-time value (None, an object) the body read as it was before the loop and rebound to a
            # run-time value (`best = None` ... `if best is None or v > best: best = v`): read as before on every
            # iteration too
            value = before.get(name, MISSING)
            return value is not MISSING and not isinstance(value, (Slot, Dyn, Poison)) and not semantics.is_number(value)

        # (a while's test runs before any way out of the loop: what it binds on every run is bound after it)
        tested = bound_by_every_run(node.test) if isinstance(node, ast.While) else set()
        for name in names:
            value = frame.env.get(name, MISSING)
            if before.get(name, MISSING) is MISSING and value is not MISSING and may_skip and name not in tested:
                frame.env[name] = Poison(
                    name, "may be undefined here: it is first assigned inside a run-time loop, which may run zero "
                          "times", hint="assign it before the loop")
            elif (isinstance(value, Slot) and value is not before.get(name, MISSING) and fixed(name)
                  and name in read_before_assigned(node.body)):
                raise self.error_at(node, f"'{name}' holds the compile-time value {before[name]!r} before this "
                                          "run-time loop, which reads it and then changes it to a run-time value: "
                                          "every iteration would read the value it had before the loop",
                                    hint="give it a run-time value of the same type before the loop (and a flag "
                                         "for 'not set yet'), or unroll the loop with skc.static_range")
            elif value is not before.get(name, MISSING) and not isinstance(value, Slot):
                if before.get(name, MISSING) is not MISSING and name in read_before_assigned(node.body):
                    # (every run-time iteration runs the one body compiled with the value before the loop)
                    raise self.error_at(node, f"'{name}' is read in this run-time loop and then changed to another "
                                              "compile-time value: every iteration would read the value it had "
                                              "before the loop",
                                        hint="keep run-time state in numbers or run-time values, or unroll the "
                                             "loop with skc.static_range")
                if isinstance(value, Dyn) and not mutable(value):   # (a tensor map: no variable holds one)
                    frame.env[name] = Poison(
                        name, "changes to another tensor map inside a run-time loop: a tensor map cannot be held in a "
                              "variable, so the one it holds after the loop is not known at compile time",
                        hint=f"choose between two tensor maps of one type: `{name} = skc.where(cond, t, u)`")
                    continue
                frame.env[name] = Poison(
                    name, "changes to a compile-time value inside a run-time loop, so its value after the loop is "
                          "not known at compile time",
                    hint="keep run-time state in numbers or run-time values, or mutate an object instead of "
                         "rebinding the name")

    def stmt_While(self, node):
        if node.orelse:
            return self.loop_with_else(node)
        forever = isinstance(node.test, ast.Constant) and bool(node.test.value)
        if not forever:
            scratch = scratch_region()
            before_probe = dict(self.frame.env)   # (a `:=` in the test binds: undone below for a run-time loop)
            with self.cg.builder.at(scratch):
                probe = self.eval_value(node.test)
            if not isinstance(probe, Dyn):
                # `while FLAG:` that nothing in the body can change and only a run-time jump can leave
                forever = (has_nested_jump(node.body) and _is_invariant(node.test, node.body)
                           and self.truth(probe, node.test))
                if not forever:
                    # the probe was the loop's first test: it ran once, here, as Python runs it (a test that
                    # calls or consumes something, `while next(it, None) is not None`, must not run twice)
                    for op in list(scratch.ops):
                        self.cg.builder.region.append(op)
                    return self.compile_time_while(node, probe)
            self.frame.env.clear()
            self.frame.env.update(before_probe)
        label = self.cg.label()

        def make_loop():
            return self.cg.builder.create("scf.loop", attrs={"label": label})

        def body(loop_op):
            if not forever:
                cond = semantics.to_bool(self.eval_value(node.test))
                exit_op = self.cg.builder.if_(semantics.unary("not", cond).value)
                with self.cg.builder.at(exit_op.regions[0]):
                    self.cg.builder.create("scf.break", attrs={"label": label})
                self.bound_by_test(node.test)   # (the body runs only where the test came out true)
            self.exec_body(node.body)

        self.runtime_loop(node, make_loop, label, body, may_skip=not forever)
        # `while True` with no break of its own never falls through
        return forever and not _has_own_break(node.body)

    def compile_time_while(self, node, first=MISSING):
        """A while loop whose condition is known at compile time on every test: unrolled (`first`: the value of
        the first test, when it has been evaluated already)."""
        def iterations():
            cond = first
            for count in range(MAX_COMPILE_TIME_ITERATIONS + 1):   # (the last test may end the loop at the limit)
                if cond is MISSING:
                    cond = self.eval_value(node.test)
                if isinstance(cond, Dyn):
                    raise self.error_at(node.test, "this while condition was known at compile time on entry "
                                                   "but became a run-time value inside the loop",
                                        hint="make the loop variable run-time from the start (e.g. `i: skc.i32 = 0`)")
                if not self.truth(cond, node.test):
                    return
                if count == MAX_COMPILE_TIME_ITERATIONS:
                    break
                cond = MISSING
                yield None
            raise self.error_at(node, f"a compile-time while loop ran {MAX_COMPILE_TIME_ITERATIONS} times; "
                                      "is its condition ever false?",
                                hint="a loop left by a run-time `break` needs a run-time condition or `while True:`")

        return self.unrolled_loop(node, iterations())

    def unrolled_loop(self, node, items):
        """A loop over compile-time items, unrolled (a while loop passes None items and has no target). A
        run-time break or continue inside leaves a labeled block: the loop is one block, each iteration a
        block inside it; the names each jump carries meet the fall-through path's where the jump lands."""
        frame, builder = self.frame, self.cg.builder
        if not has_nested_jump(node.body):
            return self.unrolled_without_jumps(node, items)
        self.keep_in_slots(node.body)
        context = LoopContext(True, frame.runtime_depth, len(frame.withs), continue_is_break=True)
        context.break_label = self.cg.label("B")
        outer = builder.create("scf.block", attrs={"label": context.break_label})
        labels = {context.break_label}
        before = dict(frame.env)
        reachable = True
        end = outer.regions[0]   # where the path that falls out of the loop leaves it
        frame.loops.append(context)
        try:
            with builder.at(outer.regions[0]):
                for item in items:
                    if isinstance(node, ast.For):
                        self.assign(node.target, item)
                    context.continue_label = self.cg.label("C")
                    labels.add(context.continue_label)
                    context.continues = []
                    iteration = builder.create("scf.block", attrs={"label": context.continue_label})
                    with builder.at(iteration.regions[0]):
                        try:
                            ended = self.unrolled_iteration(node)
                        except CompileTimeReturn as signal:
                            if not signal.cleaned:
                                raise
                            ended = True   # this path returned at run time; the loop's run-time jumps go on
                        if ended == "break" and context.continues:
                            # a run-time continue goes on to the next iteration: this path must leave at run time
                            self.jump_out_of_unrolled(context, "break")
                            ended = True
                    self.unmark_jump(context, "continue_mark")   # (the paths a continue took meet again here)
                    paths = [(env, place) for env, place in context.continues]
                    if ended is False:
                        paths.insert(0, (frame.env, iteration.regions[0]))
                    if ended == "break":   # at compile time: the names as this iteration's block leaves them
                        end = iteration.regions[0]
                        break
                    if not paths:        # nothing reaches the next iteration
                        reachable = False
                        break
                    frame.env = self.merge_paths(before, paths, node)
            paths = [(env, place) for env, place in context.breaks]
            if reachable:
                paths.insert(0, (frame.env, end))
            if not paths:
                return True
            frame.env = self.merge_paths(before, paths, node)
        except CompileTimeReturn:   # (the function ends here at compile time: its blocks go all the same)
            inline_unjumped(outer, labels)
            raise
        finally:
            self.unmark_jump(context, "continue_mark")
            self.unmark_jump(context, "break_mark")
            frame.loops.pop()
        inline_unjumped(outer, labels)
        return False

    def unrolled_without_jumps(self, node, items):
        """An unrolled loop whose break and continue (if any) are taken at compile time."""
        frame = self.frame
        frame.loops.append(LoopContext(True, frame.runtime_depth, len(frame.withs)))
        try:
            for item in items:
                if isinstance(node, ast.For):
                    self.assign(node.target, item)
                ended = self.unrolled_iteration(node)
                if ended == "break":
                    break
                if ended is True:
                    return True
        finally:
            frame.loops.pop()
        return False

    def unrolled_iteration(self, node):
        try:
            return self.exec_body(node.body)
        except CompileTimeContinue:
            return False
        except CompileTimeBreak:
            return "break"

    def protocol_loop(self, node, iterable):
        """`for x in obj` where obj has `__skc_range__()` giving run-time (start, stop, step) and
        `__skc_item__(i)` giving the item of index i: a run-time loop over the indices."""
        start, stop, step = self.call_method(iterable, "__skc_range__", (), node.iter)
        label = self.cg.label()
        t = _index_type((start, stop, step))
        lb, ub, st = (semantics.cast(v, t) for v in (start, stop, step))

        def make_loop():
            return self.cg.builder.for_(lb.value, ub.value, st.value, label)

        def body(for_op):
            index = RValue(for_op.regions[0].args[0], t)
            self.assign(node.target, self.call_method(iterable, "__skc_item__", (index,), node.iter))
            self.exec_body(node.body)

        self.runtime_loop(node, make_loop, label, body)
        return False

    def stmt_Break(self, node):
        return self.jump(node, "break")

    def stmt_Continue(self, node):
        return self.jump(node, "continue")

    def jump(self, node, kind: str):
        frame = self.frame
        if not frame.loops:
            raise self.error_at(node, f"'{kind}' outside a loop")
        loop = frame.loops[-1]
        if loop.unrolled and frame.runtime_depth == loop.runtime_depth:
            raise CompileTimeBreak() if kind == "break" else CompileTimeContinue()
        if loop.unrolled:
            return self.jump_out_of_unrolled(loop, kind)
        label = loop.break_label if kind == "break" else loop.continue_label
        self.emit_cleanups(loop.with_depth)
        self.cg.builder.create("scf.break" if kind == "break" else "scf.continue", attrs={"label": label})
        self.jumps.append(loop)
        if kind == "break" and self.on_every_path_here():   # (what this path set in the loop, at every level)
            loop.break_attributes.append(set().union(*self.attribute_paths[loop.attribute_level:]))
        elif kind == "break":   # (past another jump: what it set is not followed)
            loop.break_attributes.append(set())
        return True

    def jump_out_of_unrolled(self, loop: LoopContext, kind: str):
        """A run-time jump out of an unrolled loop's iteration: leave its labeled block, and remember the
        names as they are here, to meet the other paths where the jump lands."""
        label = loop.break_label if kind == "break" else loop.continue_label
        if label is None:
            raise self.cg.error(f"internal: no label for a run-time {kind}")
        self.emit_cleanups(loop.with_depth)
        op = self.cg.builder.create("scf.break", attrs={"label": label})
        self.jumps.append(loop)
        exits = loop.breaks if kind == "break" else loop.continues
        exits.append((dict(self.frame.env), (self.cg.builder.region, op)))
        self.mark_jump(loop, f"{kind}_mark", self.frame.runtime_depth - loop.runtime_depth)
        return True


def _has_own_break(stmts) -> bool:
    return contains_statements(stmts, (ast.Break,), stop_at_loops=True)


def _is_invariant(test, body) -> bool:
    """Whether a loop condition reads only names the body never assigns, and calls nothing."""
    assigned = set(carried_names(body)) | {name for name, _ in attribute_targets(body)}
    for node in ast.walk(test):
        if isinstance(node, (ast.Call, ast.NamedExpr, ast.Await)):
            return False
        if isinstance(node, ast.Name) and node.id in assigned:
            return False
    return True


def _range_bounds(args):
    if len(args) == 1:
        return 0, args[0], 1
    if len(args) == 2:
        return args[0], args[1], 1
    return tuple(args)


def _index_type(values):
    types = [v.type for v in values if isinstance(v, Dyn)]
    for v in values:
        if not isinstance(v, Dyn) and not (semantics.is_number(v) and float(v).is_integer()):
            raise semantics.error(f"range() bounds must be integers, found {v!r}",
                                  hint="count with integers: a // b or skc.cdiv(a, b) rather than a / b")
    t = ir.i32
    for other in types:
        if not (isinstance(other, ir.ScalarType) and other.is_int):
            raise semantics.error(f"range() bounds must be integers, found {other}",
                                  hint="count with integers: a // b or skc.cdiv(a, b) rather than a / b, or convert "
                                       "with skc.i32(...)")
        if other.bits == 64 and not other.is_signed:   # (no signed type holds every u64, and the loop compares signed)
            raise semantics.error("range() bounds of u64: the loop counts in i64, which holds no u64 past 2**63 - 1",
                                  hint="convert the bounds with skc.i64(...) where they fit")
        if other.bits == 64 or (other.bits == 32 and not other.is_signed):   # (i32 holds no u32 past 2**31 - 1)
            t = ir.i64
    for v in values:
        if not isinstance(v, Dyn) and not -2 ** 31 <= v < 2 ** 31:
            t = ir.i64
    return t



def _flagging_breaks(loop) -> list:
    """The statements that run `loop` (a for or while with an else block) without its else: a flag made false, the
    loop whose breaks set it first, and the else block under `if not flag` (at the lines of the user's source)."""
    flag = f"__skc_broke_{loop.lineno}_{loop.col_offset}"

    def assign(value, at):
        return ast.copy_location(ast.Assign([ast.Name(flag, ast.Store())], ast.Constant(value)), at)

    class SetFlag(ast.NodeTransformer):
        def visit_Break(self, node):
            return [assign(True, node), node]

        def visit_loop(self, node):   # a nested loop's breaks are its own; those in its else block are this loop's
            node.orelse = self.statements(node.orelse)
            return node

        def statements(self, stmts):
            return [s for stmt in stmts for s in _as_list(self.visit(stmt))]

        visit_For = visit_AsyncFor = visit_While = visit_loop

        def skip(self, node):
            return node

        visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = skip

    plain = ast.copy_location(type(loop)(**{**{f: getattr(loop, f) for f in loop._fields}, "orelse": []}), loop)
    plain.body = SetFlag().statements(copy.deepcopy(plain.body))
    test = ast.copy_location(ast.UnaryOp(ast.Not(), ast.Name(flag, ast.Load())), loop)
    statements = [assign(False, loop), plain, ast.copy_location(ast.If(test, loop.orelse, []), loop)]
    return [ast.fix_missing_locations(stmt) for stmt in statements]


def _as_list(visited) -> list:
    return visited if isinstance(visited, list) else [visited]
