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
