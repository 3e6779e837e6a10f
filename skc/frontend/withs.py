"""`with` blocks in kernels: `__enter__` and `__exit__` are inlined, and `__exit__` runs on every path
out of the block — normal, `break`, `continue`, `return` — like `finally`."""
from __future__ import annotations

from .frames import CompileTimeBreak, CompileTimeContinue, CompileTimeReturn


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
                self.call_method(manager, "__exit__", (None, None, None), None)

    def emit_cleanups(self, down_to: int):
        """Emit __exit__ of the with-blocks a run-time jump leaves, innermost first."""
        withs = self.frame.withs
        for index in range(len(withs) - 1, down_to - 1, -1):
            manager = withs[index]
            left = withs[index:]   # __exit__ runs outside this block and those inside it
            del withs[index:]
            try:
                self.call_method(manager, "__exit__", (None, None, None), None)
            finally:
                withs[index:index] = left

    def inside_with(self, manager) -> bool:
        """Whether a with-block of `manager` is open (in this frame or a caller's)."""
        return any(any(m is manager for m in frame.withs) for frame in self.frames)

    def open_withs(self) -> list:
        """The managers of the with-blocks open now (this frame's and its callers')."""
        return [m for frame in self.frames for m in frame.withs]

    def with_ended(self, manager) -> bool:
        """Whether a with-block of `manager` was compiled to its end (the code being compiled may follow it)."""
        return self.ended_withs.get(id(manager)) is manager


