"""The marks a Python function carries to tell the evaluator how to call it: a DSL builtin (called
directly, it emits IR) or a host function (runs as plain Python at compile time, never inlined)."""


def skc_builtin(fn):
    """Mark a function as a DSL builtin: called directly, it emits IR through the current context."""
    fn.__skc_builtin__ = True
    return fn


def host(fn):
    """Mark a function or method to run as plain Python at compile time, never inlined."""
    fn.__skc_host__ = True
    return fn


def is_builtin(fn) -> bool:
    return getattr(fn, "__skc_builtin__", False)


def is_host(fn) -> bool:
    return getattr(fn, "__skc_host__", False)
