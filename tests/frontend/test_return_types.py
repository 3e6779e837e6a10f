"""A function's run-time returns share one slot whose type the first return fixes, as a variable's first value
fixes the variable's: a later return of a type that slot cannot hold is an error naming both returns' lines, their
types and the fix (a later `return 0.5` after `return 0` read "variable 'return value' holds i32", and its hint
"`return value = 0.0`" was no Python), and returns that fit keep Python's answer."""
import os

import numpy as np
import pytest

import skc
from frontend_run import F32P, compile_kernel, launch
from helpers import line_of

HERE = os.path.abspath(__file__)


def error_of(kernel) -> str:
    with pytest.raises(skc.CompileError) as info:
        compile_kernel(kernel, x=F32P)
    return str(info.value)


@skc.func
def int_then_float(v):
    if v < 0.0:
        return 0  # FIRST
    return v * 0.5  # HERE


@skc.func
def int_in_a_loop_then_float(v):
    for _ in range(4):
        if v < 0.0:
            return 0  # FIRST
        v = v * 2.0
    return v  # HERE


@skc.func
def int_in_a_while_then_float(v):
    steps = 0
    while steps < 10:
        if v > 100.0:
            return steps  # FIRST
        v = v * 2.0
        steps += 1
    return v  # HERE


@skc.func
def i32_then_i64(v):
    if v < 0.0:
        return skc.i32(v)  # FIRST
    return skc.i64(v)  # HERE


@skc.func
def f16_then_f32(v):
    if v < 0.0:
        return skc.f16(v)  # FIRST
    return v  # HERE


@skc.func
def i32_then_half(v):
    if v < 0.0:
        return skc.i32(v)  # FIRST
    return 0.5  # HERE


@skc.func
def bool_then_five(v):
    if v < 0.0:
        return v < -1.0  # FIRST
    return 5  # HERE


@skc.func
def tuple_then_float_element(v):
    if v < 0.0:
        return 1, 0  # FIRST
    return 1, v  # HERE


@pytest.mark.parametrize("helper, first, here, fix", [
    (int_then_float, "i32", "f32", "f32"),
    (int_in_a_loop_then_float, "i32", "f32", "f32"),
    (int_in_a_while_then_float, "i32", "f32", "f32"),
    (i32_then_i64, "i32", "i64", "i64"),
    (f16_then_f32, "f16", "f32", "f32"),
    (i32_then_half, "i32", "0.5", "f32"),
    (bool_then_five, "i1", "5", "i32"),
    (tuple_then_float_element, "i32 as value 1", "f32", "f32"),
], ids=lambda p: getattr(p, "__name__", None))
def test_a_later_return_the_first_cannot_hold_names_both_lines_and_the_fix(helper, first, here, fix):
    @skc.kernel
    def kernel(x: F32P):
        helper(x[0])

    text = error_of(kernel)
    line = line_of(helper, "# FIRST")
    assert text.startswith(f"{HERE}:{line_of(helper, '# HERE')}:"), text
    assert f"error: this function returns {first} at line {line} and {here} here, which" in text, text
    assert f"hint: return one type on every path: {fix} at line {line} too" in text, text
    assert "return value" not in text, text


@skc.func
def none_then_value(v):
    if v < 0.0:
        return  # FIRST
    return v  # HERE


@skc.func
def value_then_none(v):
    if v < 0.0:
        return v  # FIRST
    return  # HERE


@skc.func
def pair_then_one(v):
    if v < 0.0:
        return v, v  # FIRST
    return v  # HERE


@skc.func
def pointer_then_number(p, v):
    if v < 0.0:
        return p  # FIRST
    return 0  # HERE


@skc.kernel
def calls_none_then_value(x: F32P):
    none_then_value(x[0])


@skc.kernel
def calls_value_then_none(x: F32P):
    value_then_none(x[0])


@skc.kernel
def calls_pair_then_one(x: F32P):
    pair_then_one(x[0])


@skc.kernel
def calls_pointer_then_number(x: F32P):
    pointer_then_number(x, x[0])


@pytest.mark.parametrize("kernel, helper, message", [
    (calls_none_then_value, none_then_value, "this function returns None at line {} and a value here"),
    (calls_value_then_none, value_then_none, "this function returns a value at line {} and None here"),
    (calls_pair_then_one, pair_then_one, "this function returns a tuple of 2 at line {} and one value here"),
    (calls_pointer_then_number, pointer_then_number,
     "this function returns skc.Ptr[skc.f32] at line {} and 0 here"),
], ids=lambda p: getattr(p, "__name__", None) if callable(p) else None)
def test_returns_of_other_kinds_name_both_lines(kernel, helper, message):
    text = error_of(kernel)
    assert text.startswith(f"{HERE}:{line_of(helper, '# HERE')}:"), text
    assert message.format(line_of(helper, "# FIRST")) in text, text
    assert "return value" not in text, text


@skc.func
def value_then_end(v):
    if v < 0.0:
        return v  # FIRST


@skc.kernel
def calls_value_then_end(x: F32P):
    x[2] = value_then_end(x[0])


def test_a_return_then_the_end_of_the_function_names_the_return():
    text = error_of(calls_value_then_end)
    assert f"value_then_end returns a value at line {line_of(value_then_end, '# FIRST')} and reaches its end" in text


@skc.func
def float_then_int(v):
    if v > 0.0:
        return v * 0.5
    return 0


@skc.func
def nested_early_return(v):
    def half_or_zero(w):
        for _ in range(3):
            if w > 0.0:
                return w * 0.5
            w = w + 1.0
        return 0
    return half_or_zero(v)


@skc.kernel
def returns_that_fit(x: F32P):
    x[2] = float_then_int(x[0])
    x[3] = nested_early_return(x[1])


@pytest.mark.parametrize("a, b", [(3.0, -5.0), (-1.0, -1.5), (0.0, 7.0)])
def test_returns_the_first_type_holds_give_pythons_answer(a, b):
    got = np.array([a, b, 0, 0], np.float32)
    launch(compile_kernel(returns_that_fit, x=F32P), got)
    half_or_zero = next((w * 0.5 for w in (b, b + 1, b + 2) if w > 0), 0)   # (as Python runs the helpers)
    np.testing.assert_array_equal(got, np.array([a, b, a * 0.5 if a > 0 else 0, half_or_zero], np.float32))
