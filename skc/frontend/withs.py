"""`with` blocks in kernels: `__enter__` and `__exit__` are inlined, and `__exit__` runs on every path
out of the block — normal, `break`, `continue`, `return` — like `finally`."""
from __future__ import annotations

import contextlib

from .frames import CompileTimeBreak, CompileTimeContinue, CompileTimeReturn

# the managers @contextlib.contextmanager makes: their exit code is the rest of a generator, which runs once
_ONE_SHOT = tuple(getattr(contextlib, name) for name in ("_GeneratorContextManagerBase",) if hasattr(contextlib, name))


class WithEvaluator:
    """Mixin of the evaluator for with-statements and the cleanups jumps must emit."""

    # -- with -------------------------------------------------------------------------
    def stmt_With(self, node):
        frame = self.frame
        managers = []
        ended = False
        try:
            for item in node.items:
                manager = self.eval_value(item.context_expr)
                entered = self.call_method(manager, "__enter__", (), item.context_expr)
                frame.withs.append(manager)
                managers.append(manager)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, entered)
            ended = self.exec_body(node.body)
        except CompileTimeReturn as signal:
            self.close_withs(managers, emit=not signal.cleaned)
            raise
        except (CompileTimeBreak, CompileTimeContinue):
            self.close_withs(managers, emit=True)
            raise
        except BaseException:
            del frame.withs[len(frame.withs) - len(managers):]
            raise
        self.close_withs(managers, emit=not ended)
        for manager in managers:   # (what follows the statement is past its block: blocks' protocol checks ask)
            self.ended_withs[id(manager)] = manager
        return ended

    def close_withs(self, managers, emit: bool):
        for manager in reversed(managers):
            self.frame.withs.pop()
            if emit:
                self.exit_manager(manager)

    def emit_cleanups(self, down_to: int):
        """Emit __exit__ of the with-blocks a run-time jump leaves, innermost first."""
        withs = self.frame.withs
        for index in range(len(withs) - 1, down_to - 1, -1):
            manager = withs[index]
            left = withs[index:]   # __exit__ runs outside this block and those inside it
            del withs[index:]
            try:
                self.exit_manager(manager)
            finally:
                withs[index:index] = left

    def exit_manager(self, manager):
        """manager.__exit__ on one way out of its block. A @contextlib.contextmanager's exit code (the rest of its
        generator, which runs as Python) runs once: on a second way out (a run-time return, break or continue in the
        block) the generator is spent and would emit nothing there, so that is an error."""
        generator = getattr(manager, "gen", None) if isinstance(manager, _ONE_SHOT) else None
        if generator is not None and getattr(generator, "gi_frame", True) is None:
            raise self.cg.error(
                f"this with block has more than one way out (a run-time return, break or continue in it), and its "
                f"context manager, {getattr(generator, '__qualname__', '?')}, is a @contextlib.contextmanager "
                f"generator, whose code after `yield` runs once: the other ways out would skip it",
                hint="write the manager as a class with __enter__ and __exit__ (skc inlines __exit__ on every way out)")
        self.call_method(manager, "__exit__", (None, None, None), None)

    def inside_with(self, manager) -> bool:
        """Whether a with-block of `manager` is open (in this frame or a caller's)."""
        return any(any(m is manager for m in frame.withs) for frame in self.frames)

    def open_withs(self) -> list:
        """The managers of the with-blocks open now (this frame's and its callers')."""
        return [m for frame in self.frames for m in frame.withs]

    def with_ended(self, manager) -> bool:
        """Whether a with-block of `manager` was compiled to its end (the code being compiled may follow it)."""
        return self.ended_withs.get(id(manager)) is manager


