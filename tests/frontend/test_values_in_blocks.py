"""Values made inside an unrolled loop, or an inlined function, whose jumps (break, continue, return) are all
taken at compile time stay visible after it, in a list or any other Python object (a compiler error before: the
loop's labeled blocks hid them). Each kernel runs in the interpreter and as plain Python on the same arrays."""
import numpy as np
import pytest

import skc
from skc import ir
from frontend_run import F32P, matches_python


def eight():
    return np.arange(1.0, 9.0, dtype=np.float32)


@skc.kernel
def list_after_compile_time_break(x: skc.Ptr[skc.f32], n: skc.i32):
    vals = []
    for s in skc.static_range(4):
        if s == 2:
            break
        vals.append(x[s] * 2.0)
    total = 0.0
    for v in vals:
        total += v
    x[0] = total + n


@skc.kernel
def list_after_nested_compile_time_continue(x: skc.Ptr[skc.f32], n: skc.i32):
    vals = []
    for s in skc.static_range(4):
        for t in skc.static_range(2):
            if t == 1:
                continue
            vals.append(x[s + t] + n)
        if s == 2:
            break
    x[0] = vals[0] + vals[1] * vals[2]


@skc.func
def after_a_run_time_return(x, n):
    vals = []
    if n > 5:
        return 1.0
    for s in skc.static_range(3):
        if s == 2:
            break
        vals.append(x[s])
    return vals[0] + vals[1]


def after_a_run_time_return_py(x, n):
    vals = []
    if n > 5:
        return 1.0
    for s in range(3):
        if s == 2:
            break
        vals.append(x[s])
    return vals[0] + vals[1]


@skc.func
def appends_to_callers_list(x, n, vals):
    for s in skc.static_range(3):
        if n == s:
            return 7.0
        vals.append(x[s])
    return 2.0


def appends_to_callers_list_py(x, n, vals):
    for s in range(3):
        if n == s:
            return 7.0
        vals.append(x[s])
    return 2.0


@skc.kernel
def helpers(x: skc.Ptr[skc.f32], n: skc.i32):
    vals = []
    r = appends_to_callers_list(x, 5, vals)   # (5: every return decided at compile time)
    x[0] = r + vals[0] + vals[2] + after_a_run_time_return(x, n)


def helpers_py(x, n):
    vals = []
    r = appends_to_callers_list_py(x, 5, vals)
    x[0] = r + vals[0] + vals[2] + after_a_run_time_return_py(x, n)


def test_a_list_filled_before_a_compile_time_break_is_read_after_the_loop():
    matches_python(list_after_compile_time_break, eight, [(0,), (3,)], x=F32P, n=ir.i32)
    matches_python(list_after_nested_compile_time_continue, eight, [(0,), (2,)], x=F32P, n=ir.i32)


def test_values_an_inlined_function_made_are_read_after_it():
    matches_python(helpers, eight, [(0,), (7,)], reference=helpers_py, x=F32P, n=ir.i32)


@skc.kernel
def list_grown_before_a_run_time_break(x: skc.Ptr[skc.f32], n: skc.i32):
    vals = [x[7]]
    for s in skc.static_range(4):
        if n == s:
            break
        vals.append(x[s] * 2.0)
    x[0] = vals[-1]   # (a list one item longer on each path: nothing a kernel can hold)


def test_a_value_kept_in_a_list_on_some_run_time_paths_is_a_clear_error():
    """A list grown inside an unrolled iteration that a run-time break may leave has a different length on each
    path: it cannot be merged where the paths meet, and reading it after is refused at the read, by name (it was
    the IR verifier's 'definition is not visible' before)."""
    x = eight()
    with pytest.raises(skc.CompileError, match="a value made on only some of the run-time paths") as caught:
        list_grown_before_a_run_time_break[1, 1](x, 2)
    assert "x[0] = vals[-1]" in str(caught.value) and "hint: assign the value to a variable" in str(caught.value)
