"""Functions under functools.wraps wrappers. `@skc.func` or `@skc.kernel` stacked over such a wrapper read the
wrapped def's source (inspect follows __wrapped__) against the wrapper's code and said the source "is no longer where
it was defined" as if the file had changed. A wrapper that only passes its call through now stands for the def it
wraps; one that does more is refused at the decorator, by name, with where to put skc's decorator instead."""
import functools
import importlib.util
import linecache

import numpy as np
import pytest

import skc
from wrapping_decorators import counted, passed_through


def _local_passed_through(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


def _explicit_arguments(fn):
    @functools.wraps(fn)
    def wrapper(a, b, *rest, scale, **options):
        "Documented, and passes each argument as it came."
        return fn(a, b, *rest, scale=scale, **options)
    return wrapper


def _logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        print("calling", fn.__name__)
        return fn(*args, **kwargs)
    return wrapper


def _reordered(fn):
    @functools.wraps(fn)
    def wrapper(a, b):
        return fn(b, a)
    return wrapper


def _run(kernel, n=4):
    x = np.arange(n, dtype=np.float32)
    y = np.zeros(n, np.float32)
    kernel[1, n](x, y)
    return y


@skc.func
@_local_passed_through
def _twice(v):
    return v * 2.0


@skc.func
@passed_through
@_local_passed_through
def _plus_one(v):
    if v > 1.0:           # (run-time control flow: inlined, never run as Python)
        return v + 1.0
    return v + 1.0


@skc.kernel
def _calls_wrapped_funcs(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):
    i = skc.thread_id(0)
    y[i] = _twice(x[i]) + _plus_one(x[i])


def test_an_skc_func_over_wrappers_that_pass_the_call_through_inlines_the_def():
    """(was: CompileError 'the source of _twice is no longer where it was defined', at the wrapper's file)"""
    assert list(_run(_calls_wrapped_funcs)) == [1.0, 4.0, 7.0, 10.0]
    assert _twice.__skc_function__.__code__.co_name == "_twice"


@skc.kernel
@passed_through
def _wrapped_kernel(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):
    i = skc.thread_id(0)
    y[i] = x[i] * 3.0


def test_a_kernel_over_a_wrapper_that_passes_the_call_through_compiles_the_def():
    assert list(_run(_wrapped_kernel)) == [0.0, 3.0, 6.0, 9.0]


def test_a_wrapper_of_explicit_parameters_passed_as_they_came_passes_through():
    @skc.func
    @_explicit_arguments
    def scaled(a, b, *rest, scale, **options):
        return (a + b) * scale

    @skc.kernel
    def calls(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):
        i = skc.thread_id(0)
        y[i] = scaled(x[i], 1.0, scale=2.0)

    assert list(_run(calls)) == [2.0, 4.0, 6.0, 8.0]


@pytest.mark.parametrize("decorator, maker", [(_logged, "_logged"), (_reordered, "_reordered"),
                                              (counted, "counted")])
def test_an_skc_func_over_a_wrapper_that_does_more_is_refused_by_name(decorator, maker):
    """(was: 'no longer where it was defined'; compiling the def alone would drop the wrapper's code silently)"""
    def body(a, b=1.0):
        return a - b

    with pytest.raises(skc.CompileError) as info:
        skc.func(decorator(body))
    text = str(info.value)
    assert f"@skc.func is stacked over a wrapper that {maker} made with functools.wraps" in text
    assert "does more than call the function it wraps" in text
    assert f"put @skc.func directly on the def, below @{maker}" in text
    assert "no longer where" not in text


def test_a_kernel_over_a_wrapper_that_does_more_is_refused_by_name():
    def body(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):
        y[0] = x[0]

    with pytest.raises(skc.CompileError, match="@skc.kernel is stacked over a wrapper that _logged made") as info:
        skc.kernel(_logged(body))
    assert "put @skc.kernel directly on the def" in str(info.value)
    assert info.value.loc.line == _logged.__code__.co_firstlineno + 1   # (the wrapper, at its @functools.wraps)


@_logged
@skc.func
def _logged_func(v):
    return v + 5.0


@skc.kernel
def _calls_logged_func(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):
    i = skc.thread_id(0)
    y[i] = _logged_func(x[i])


def test_the_advised_order_runs_the_wrapper_at_compile_time(capsys):
    assert list(_run(_calls_logged_func)) == [5.0, 6.0, 7.0, 8.0]
    assert "calling _logged_func" in capsys.readouterr().out


class _Scaler:
    def __init__(self, factor):
        self.factor = factor

    @skc.func
    def scale(self, v):
        if v > 100.0:
            return v
        return v * self.factor

    @passed_through
    def shifted(self, v):
        if v > 100.0:     # (inlined: a plain Python run of it would refuse the run-time `if`)
            return v
        return v + self.factor

    @_logged
    def logged(self, v):
        return v - self.factor


_SCALER = _Scaler(3.0)


@skc.kernel
def _calls_methods(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):
    i = skc.thread_id(0)
    y[i] = _SCALER.scale(x[i]) + _SCALER.shifted(x[i]) * 10.0 + _SCALER.logged(x[i]) * 100.0


def test_methods_under_skc_func_and_wrappers(capsys):
    """An @skc.func method read from an instance binds it (was: 'wrong arguments to _Scaler.scale(): missing a
    required argument: v'); a method under a wrapper that passes its call through is inlined as the method (was:
    'no longer where it was defined'); under one that does more, the wrapper runs at compile time as plain Python
    functions do (was: 'no longer where it was defined')."""
    want = [3 * v + 10 * (v + 3) + 100 * (v - 3) for v in range(4)]
    assert list(_run(_calls_methods)) == want
    assert "calling logged" in capsys.readouterr().out


def test_an_skc_func_method_called_outside_a_kernel_still_says_where_it_runs():
    with pytest.raises(skc.SkcError, match="is an @skc.func: it runs inside kernels only"):
        _SCALER.scale(1.0)


def test_a_function_in_text_linecache_holds_compiles_as_a_notebook_cell_does(tmp_path):
    """IPython keeps each cell's text in linecache: a kernel and a wrapped @skc.func defined there compile."""
    text = ("import functools, skc\n"
            "def through(fn):\n"
            "    @functools.wraps(fn)\n"
            "    def wrapper(*args, **kwargs):\n"
            "        return fn(*args, **kwargs)\n"
            "    return wrapper\n"
            "@skc.func\n"
            "@through\n"
            "def twice(v):\n"
            "    return v * 2.0\n"
            "@skc.kernel\n"
            "def k(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):\n"
            "    i = skc.thread_id(0)\n"
            "    y[i] = twice(x[i])\n")
    name = f"<skc-test-cell-{id(tmp_path)}>"
    linecache.cache[name] = (len(text), None, text.splitlines(True), name)
    try:
        namespace = {}
        exec(compile(text, name, "exec"), namespace)
        assert list(_run(namespace["k"])) == [0.0, 2.0, 4.0, 6.0]
    finally:
        linecache.cache.pop(name, None)


def test_a_function_exec_made_from_a_string_says_where_to_put_it():
    text = ("import skc\n"
            "@skc.kernel\n"
            "def k(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):\n"
            "    y[0] = x[0]\n")
    namespace = {}
    exec(compile(text, "<string-of-test>", "exec"), namespace)
    with pytest.raises(skc.CompileError, match="cannot read the source of k") as info:
        _run(namespace["k"])
    assert "put the string in a .py file and import it" in str(info.value)


def test_a_kernel_whose_file_now_holds_no_def_there_says_the_file_changed(tmp_path):
    """(was: 'k is not defined by a def statement', with the hint that lambdas cannot be compiled)"""
    path = tmp_path / "shrunk_kernels.py"
    path.write_text("import skc\n\n\n@skc.kernel(block=1)\ndef writes(out: skc.Ptr[skc.f32]):\n    out[0] = 1.0\n")
    spec = importlib.util.spec_from_file_location("shrunk_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text("import os\nvalue = 1\nother = 2\nmore = 3\n")
    linecache.checkcache(str(path))
    with pytest.raises(skc.CompileError, match="no longer where it was defined") as info:
        module.writes.interpret[1, 1](np.zeros(1, np.float32))
    assert "lambdas" not in str(info.value) and "import the module again" in str(info.value)


def test_a_lambda_is_still_named_as_one():
    helper = skc.func(lambda v: v * 2.0)

    @skc.kernel
    def calls(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):
        y[0] = helper(x[0])

    with pytest.raises(skc.CompileError, match="is not defined by a def statement") as info:
        _run(calls, 1)
    assert "lambdas cannot be compiled" in str(info.value)


class _WrappedFuncMethods:
    factor = 2.0

    @passed_through
    @skc.func
    def doubled(self, v):
        if v > 100.0:
            return v
        return v * self.factor

    @_logged
    @skc.func
    def shifted(self, v):
        if v > 100.0:
            return v
        return v + self.factor


_WRAPPED_FUNC_METHODS = _WrappedFuncMethods()


@skc.kernel
def _calls_wrapped_func_methods(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32]):
    i = skc.thread_id(0)
    y[i] = _WRAPPED_FUNC_METHODS.doubled(x[i]) + _WRAPPED_FUNC_METHODS.shifted(x[i]) * 10.0


def test_wrappers_over_skc_func_methods(capsys):
    """A pass-through wrapper over an @skc.func method inlines it with its instance; one that does more runs at
    compile time and its call of the @skc.func inlines it (both were 'no longer where it was defined')."""
    assert list(_run(_calls_wrapped_func_methods)) == [2 * v + 10 * (v + 2) for v in range(4)]
    assert "calling shifted" in capsys.readouterr().out
