"""An integer chosen beside a float (`n if c else x`, `n or x`, max(n, x), a name that holds either after a run-time
`if`, skc.where) is the integer as it is, as in Python: it was converted to the float type first, so an i32
16777217 beside an f32 read 16777216 (fifty-sixth session). Where the float type cannot hold every value of the
integer's type the choice is made in the narrowest float type that does (f64 beside an i32 or u32, f32 beside an
i16 and an f16); a 64-bit integer, which no float type holds, is an error at the line. Each kernel runs in the
interpreter beside plain Python."""
import numpy as np
import pytest

import skc
from helpers import line_of

I64 = skc.Ptr[skc.i64]
BIG = 16777217   # 2**24 + 1: the first int f32 cannot hold


def chosen(out: I64, n: skc.i32, x: skc.f32):
    out[0] = n if x > 0 else x                  # an if-expression of values (a select)
    out[1] = n if out[7] == 0 else out[6] + x   # one whose branch loads (a branch of its own)
    out[2] = n or x
    out[3] = max(n, x)
    out[4] = min(x, n, 2.5)
    if x < 100:                                 # a name holding either where the paths meet
        v = n
    else:
        v = x
    out[5] = v


def test_an_i32_chosen_beside_an_f32_keeps_its_value():
    for n, x in ((BIG, 2.5), (BIG, -0.5), (-BIG - 2, 16777216.0), (0, 2.5), (2 ** 31 - 1, 3e9), (7, -3.0)):
        got, want = np.zeros(8, np.int64), np.zeros(8, np.int64)
        skc.kernel(chosen)[1, 1](got, n, x)
        chosen(want, n, x)
        assert got.tolist() == want.tolist(), (n, x)


def number_beside_f32(out: I64, x: skc.f32):
    out[0] = x if x < 0 else BIG
    out[1] = max(x, BIG)
    out[2] = x or 2 ** 31 - 1


def test_an_int_the_float_type_cannot_hold_chosen_beside_it_keeps_its_value():
    for x in (2.5, -2.5, 0.0):
        got, want = np.zeros(3, np.int64), np.zeros(3, np.int64)
        skc.kernel(number_beside_f32)[1, 1](got, x)
        number_beside_f32(want, x)
        assert got.tolist() == want.tolist(), x


def others(out: I64, u: skc.u32, s: skc.i16, h: skc.f16, n: skc.i32, x: skc.f32):
    out[0] = u if h > 0 else h
    out[1] = s if h > 0 else h
    out[2] = skc.where(x > 0, n, x)


def test_a_u32_beside_an_f32_an_i16_beside_an_f16_and_skc_where_keep_their_values():
    got = np.zeros(3, np.int64)
    skc.kernel(others)[1, 1](got, 2 ** 32 - 1, 2 ** 15 - 1, 1.0, BIG, 1.0)
    assert got.tolist() == [2 ** 32 - 1, 2 ** 15 - 1, BIG]


def choices(out: skc.Ptr[skc.f32], n: skc.i32, s: skc.i16, x: skc.f32):
    out[0] = n if x > 0 else x
    out[1] = s if x > 0 else x
    out[2] = skc.where(x > 0, skc.f32(n), x)


def test_the_choice_is_wider_only_where_the_float_type_cannot_hold_the_integer():
    text = skc.kernel(choices).compile(target="sm_90a").ir("tile")
    selects = [line for line in text.splitlines() if "arith.select" in line]
    assert len(selects) == 3, text
    assert selects[0].rstrip().endswith(": f64"), selects    # i32 beside f32: f64 holds both
    assert selects[1].rstrip().endswith(": f32"), selects    # i16 beside f32: f32 holds every i16
    assert selects[2].rstrip().endswith(": f32"), selects    # converted by the user: chosen in f32, as before


def wide_if_expression(out: skc.Ptr[skc.f64], a: skc.i64, x: skc.f64):
    out[0] = a if x > 0 else x   # marker: if-expression


def wide_max(out: skc.Ptr[skc.f64], a: skc.i64, x: skc.f64):
    out[0] = max(x, a)   # marker: max


def wide_number(out: skc.Ptr[skc.f64], x: skc.f64):
    out[0] = x or 2 ** 53 + 1   # marker: number


def wide_paths(out: skc.Ptr[skc.f64], a: skc.i64, x: skc.f64):
    v = x
    if a > 0:
        v = a
    out[0] = v   # marker: paths


@pytest.mark.parametrize("kernel, marker, args, words", [
    (wide_if_expression, "marker: if-expression", (2 ** 53 + 1, 1.0), "no float type holds every i64"),
    (wide_max, "marker: max", (2 ** 53 + 1, 1.0), "no float type holds every i64"),
    (wide_number, "marker: number", (1.0,), "9007199254740993 and a float are chosen"),
    (wide_paths, "marker: paths", (2 ** 53 + 1, 1.0), "'v' has different types")],
    ids=["if-expression", "max", "number", "paths"])
def test_a_64_bit_integer_chosen_beside_a_float_is_an_error_at_its_line(kernel, marker, args, words):
    with pytest.raises(skc.CompileError) as info:
        skc.kernel(kernel)[1, 1](np.zeros(1, np.float64), *args)
    text = str(info.value)
    assert f":{line_of(kernel, marker)}:" in text.splitlines()[0], text
    assert words in text, text
    assert "hint: " in text and ("skc.f64(n)" in text or "write it as a float" in text), text


# -- where the f64 choice meets code that refuses it (review of session 56) ---------------------------------------
F32 = skc.Ptr[skc.f32]


def clamped_exp(x: F32, out: F32, W: skc.i32):
    t = skc.thread_id(0)
    ix = min(max(x[t] * 0.5, 0), W - 1)   # marker: choice
    out[t] = skc.exp(ix - skc.i32(ix))   # marker: exp


def running_max_from_zero(x: F32, out: F32, n: skc.i32):
    m = 0
    for i in range(n):
        m = max(m, x[i])   # marker: max
    out[0] = skc.exp(x[0] - m)


@skc.func
def value_or_index(v, i):
    if v > 0.0:
        return v   # marker: first
    return i   # marker: index


def returned_index(x: F32, out: F32):
    t = skc.thread_id(0)
    out[t] = value_or_index(x[t], t)


def error_of(kernel) -> str:
    with pytest.raises(skc.CompileError) as info:
        skc.kernel(kernel).compile(target="sm_90a")
    return str(info.value)


def test_an_f64_op_refused_names_the_choice_that_made_the_f64():
    """min(max(fx, 0), W - 1) with W an i32 is chosen in f64; skc.exp two lines on refused f64 with no word of where
    it came from (the user wrote no f64)."""
    text = error_of(clamped_exp)
    assert f":{line_of(clamped_exp, 'marker: exp')}:" in text.splitlines()[0], text
    assert "skc.exp is not available on f64" in text, text
    assert f":{line_of(clamped_exp, 'marker: choice')}:" in text.split("hint:")[1], text
    assert "between an i32 and an f32" in text and "skc.f32(n), to choose in f32" in text, text


def test_a_running_max_started_at_an_int_is_hinted_to_start_as_a_float():
    """`m = 0` then `m = max(m, x)`: the hint was `m = skc.f64(0)`, whose f64 maximum skc.exp then refuses; `m = 0.0`
    (as before the f64 choice) keeps it f32."""
    text = error_of(running_max_from_zero)
    assert f":{line_of(running_max_from_zero, 'marker: max')}:" in text.splitlines()[0], text
    assert "variable 'm' holds i32 but is assigned f64" in text, text
    hint = text.split("hint:")[1]
    assert "`m = 0.0`" in hint and hint.index("`m = 0.0`") < hint.find("f64"), text


def fixed_running_max(x: F32, out: F32, n: skc.i32):
    m = 0.0   # (as the hint says)
    for i in range(n):
        m = max(m, x[i])
    out[0] = skc.exp(x[0] - m)


def test_the_hinted_start_compiles_in_f32():
    text = skc.kernel(fixed_running_max).compile(target="sm_90a").ir("tile")
    assert "f64" not in text


def test_an_integer_returned_where_a_float_was_says_so():
    """A function returning an f32, then an i32: "which f32 would wrap", hinting skc.i64(...) (an integer
    conversion, for a float)."""
    text = error_of(returned_index)
    assert f":{line_of(value_or_index, 'marker: index')}:" in text.splitlines()[0], text
    first = line_of(value_or_index, "marker: first")
    assert f"returns f32 at line {first} and i32 here, which f32 cannot hold exactly" in text, text
    assert "would wrap" not in text and "skc.i64" not in text, text
    assert "skc.f32(...) here" in text and f"f64 at line {first}" in text, text
