"""More Python constructs that compiled to something other than what Python means (helpers' searches, forty-first
session): `+=` that never ran `__iadd__`; 0.0 and -0.0 taken as one value where paths meet; chained comparisons
that evaluated every comparand; a loop variable read after a loop that ran zero times; `:=` inside a comprehension;
generator expressions run where they were made; a lambda made in a comprehension; a loop over a list its body
appends to; `and`/`or` that read a property on every path; a keyword-only default of None. Each kernel runs in the
interpreter beside plain Python."""
import math

import ml_dtypes
import numpy as np
import pytest

import skc

F32 = skc.Ptr[skc.f32]


def both(fn, *args, size=4):
    """fn run by skc (interpreter) and by Python on the same inputs: the two outputs."""
    got, want = np.zeros(size, np.float32), np.zeros(size, np.float32)
    skc.kernel(fn)[1, 1](got, *args)
    fn(want, *args)
    return got, want


def test_augmented_assignment_runs_the_in_place_method():
    def alias(out):
        values = [1.0]
        seen = values
        values += [2.0]        # list.__iadd__: the same list grows
        out[0] = len(seen)

    class Acc:
        def __init__(self, v):
            self.v = v

        def __add__(self, o):
            return Acc(self.v + o)

        def __iadd__(self, o):
            self.v = self.v + 2 * o
            return self

    def in_place(out):
        a = Acc(out[1] + 1.0)
        a += 10.0
        out[0] = a.v

    for fn, expected in ((alias, 2.0), (in_place, 21.0)):
        got, want = both(fn)
        assert got[0] == want[0] == expected


def test_a_list_extended_in_place_inside_a_runtime_loop_is_an_error():
    def grow(out, n: skc.i32):
        values = [1.0]
        for i in range(n):
            values += [2.0]
        out[0] = len(values)

    with pytest.raises(skc.CompileError, match="made outside this run-time loop"):
        skc.kernel(grow)[1, 1](np.zeros(1, np.float32), 3)


def test_negative_zero_stays_itself_where_paths_meet():
    def signed(out, n: skc.i32):
        a = 0.0
        if n < 0:
            a = -0.0
        out[0] = a
        out[1] = out[3] / a

    for n, sign in ((5, 1.0), (-5, -1.0)):
        got = np.array([7, 7, 7, 1], np.float32)
        skc.kernel(signed)[1, 1](got, n)
        assert np.copysign(1.0, got[0]) == sign and got[1] == sign * np.inf


def test_a_chained_comparison_stops_at_its_first_false_part():
    def chained(out, n: skc.i32):
        if n < 0 < skc.atomic_add(out + 1, 1.0):   # never runs the add for n >= 0
            out[0] = 7.0
        if 0 <= n < 4 > out[n]:                     # never loads out[n] out of bounds
            out[2] = 1.0

    got = np.zeros(4, np.float32)
    skc.kernel(chained)[1, 1](got, 5)
    assert got[1] == 0.0 and got[2] == 0.0
    got = np.zeros(4, np.float32)
    skc.kernel(chained)[1, 1](got, -3)    # n < 0: the add runs once (and returns 0: not > 0)
    assert got[1] == 1.0 and got[0] == 0.0 and got[2] == 0.0
    got = np.zeros(4, np.float32)
    skc.kernel(chained)[1, 1](got, 2)
    assert got[2] == 1.0


def test_the_loop_variable_after_a_loop_keeps_python_meaning():
    def reassigned(out, n: skc.i32):
        i = 5
        for i in range(n):
            i = i * 2
        out[0] = i

    for n in (0, 1, 3):
        got, want = both(reassigned, n)
        assert got[0] == want[0]


def test_a_walrus_in_a_comprehension_binds_outside_it():
    def walrus(out):
        last = 0.0
        values = [(last := out[1] + j) for j in range(3)]
        out[0] = last + len(values)

    got, want = both(walrus)
    assert got[0] == want[0] == 5.0


def test_a_generator_expression_runs_where_it_is_consumed():
    def late(out):
        a = 1.0
        g = (a * (out[1] + j) for j in range(3))
        a = 2.0
        out[1] = 10.0
        out[0] = sum(g)

    got, want = both(late)
    assert got[0] == want[0] == 66.0


def test_generators_taken_in_run_time_branches_and_loops_with_breaks():
    def in_branch(out, n: skc.i32):
        g = (out[1 + i] for i in range(3))
        if n > 0:
            out[0] = sum(g)

    def loop_with_break(out, n: skc.i32):
        for v in (i * 2.0 for i in range(4)):
            if v > n:
                out[0] = v
                break

    got = np.array([0, 1, 2, 3], np.float32)
    skc.kernel(in_branch)[1, 1](got, 1)
    assert got[0] == 6.0
    got = np.zeros(4, np.float32)
    skc.kernel(loop_with_break)[1, 1](got, 1)
    assert got[0] == 2.0


def test_a_lambda_made_in_a_comprehension_reads_its_variable():
    def lambdas(out):
        fs = [lambda v: v + j for j in range(3)]
        j = 7.0
        out[0] = fs[0](out[1])
        out[2] = j

    got, want = both(lambdas)
    np.testing.assert_array_equal(got, want)
    assert got[0] == 2.0


def test_an_unrolled_loop_sees_items_its_body_appends():
    def growing(out):
        work = [1, 2]
        total = 0.0
        for w in work:
            if w < 3:
                work.append(w + 2)
            total += w
        out[0] = total

    got, want = both(growing)
    assert got[0] == want[0] == 10.0


def test_and_or_and_if_expressions_do_not_read_a_property_speculatively():
    class Guarded:
        def __init__(self, ptr, i):
            self.ptr, self.i = ptr, i

        @property
        def val(self):
            return self.ptr[self.i]

    def guarded(out, n: skc.i32):
        p = Guarded(out, n)
        if n < 4 and p.val > 3.0:
            out[0] = 1.0
        out[1] = p.val if n < 4 else -1.0

    for n in (9, 2):
        got = np.arange(4, dtype=np.float32)
        skc.kernel(guarded)[1, 1](got, n)   # n = 9 would read out of bounds if p.val ran
        assert got[1] == (-1.0 if n == 9 else 2.0)


def test_a_keyword_only_default_of_none_is_a_default():
    def kw(out):
        def g(v, *, scale=None):
            return v if scale is None else v * scale

        out[0] = g(out[1] + 3.0)
        out[2] = g(2.0, scale=4.0)

    got, want = both(kw)
    np.testing.assert_array_equal(got, want)


# -- a second search (forty-first session) ------------------------------------------------------------------------
def test_a_negative_number_beside_an_unsigned_value_keeps_its_value():
    def mixed(out, a, n: skc.i32):
        x = a[0]
        out[0] = x > -1
        out[1] = x if n > 0 else -1
        out[2] = max(x, -1)
        z = -1
        if n > 5:
            z = a[0]
        out[3] = z
        out[4] = -1 < x

    for dtype in (np.uint8, np.uint32):
        for n in (0, 9):
            got, want = np.zeros(5, np.float64), np.zeros(5, np.float64)
            skc.kernel(mixed)[1, 1](got, np.array([3], dtype), n)
            mixed(want, [3], n)
            np.testing.assert_array_equal(got, want)


def test_a_large_number_beside_a_signed_value_compares_by_value():
    def large(out, a):
        out[0] = a[0] < 2 ** 63
        out[1] = a[0] > -2 ** 63 - 1

    got = np.zeros(2, np.float64)
    skc.kernel(large)[1, 1](got, np.array([-5], np.int64))
    assert got.tolist() == [1.0, 1.0]


class Finder:
    def first_big(self, a, n):
        for i in range(n):
            if a[i] > 2:
                return a[i]
        return -1


def test_returning_a_negative_number_after_an_unsigned_value_is_an_error():
    @skc.kernel(block=1)
    def search(out: skc.Ptr[skc.i32], a: skc.Ptr[skc.u8], n: skc.i32):
        out[0] = Finder().first_big(a, n)

    with pytest.raises(skc.CompileError, match="would wrap"):
        search[1, 1](np.zeros(1, np.int32), np.array([1, 5], np.uint8), 2)


def test_a_walrus_in_a_while_test_is_carried():
    def counted(out, n: skc.i32):
        i = 0
        total = 0
        while (i := i + 1) < n:
            total += i
        out[0] = i
        out[1] = total

    for n in (2, 5):
        got, want = both(counted, n)
        np.testing.assert_array_equal(got, want)


def test_a_name_bound_by_a_walrus_in_a_comprehension_is_carried():
    def carried(out, a, n: skc.i32):
        w = 0
        for i in range(n):
            if a[i] > 2:
                [(w := a[i]) for _ in range(1)]
        out[0] = w

    got, want = np.zeros(1, np.int32), np.zeros(1, np.int32)
    skc.kernel(carried)[1, 1](got, np.array([5, 1], np.int32), 2)
    carried(want, [5, 1], 2)
    assert got.tolist() == want.tolist() == [5]


def test_a_run_time_value_as_a_set_element_or_dict_key_is_an_error():
    def keyed(out):
        out[0] = len({out[1], out[1]})

    with pytest.raises(skc.CompileError, match="set element or a dict key"):
        skc.kernel(keyed)[1, 1](np.zeros(2, np.float32))


def test_unpacking_too_few_values_and_a_keyword_given_twice_are_errors():
    def too_few(out):
        x, y, *z = (out[0],)
        out[1] = x

    def f(**kw):
        return kw["a"]

    def twice(out):
        out[0] = f(a=out[1], **{"a": 7.0})

    with pytest.raises(skc.CompileError, match="cannot unpack 1 values"):
        skc.kernel(too_few)[1, 1](np.zeros(2, np.float32))
    with pytest.raises(skc.CompileError, match="given twice"):
        skc.kernel(twice)[1, 1](np.zeros(2, np.float32))


def test_a_property_setter_runs():
    def setter(out, n: skc.i32):
        q = _Doubling(out[1])   # (its setter stores twice the value)
        q.v = q.v + 1
        out[0] = q.v
        r = _Doubling(out[1])
        for i in range(n):
            r.v = r.v - 3
        out[2] = r.v

    got, want = both(setter, 2)
    np.testing.assert_array_equal(got, want)


# -- a reviewer's findings on the second search --------------------------------------------------------------------
def test_a_number_below_i32_beside_a_small_unsigned_value():
    def far(out, x: skc.u8, n: skc.i32):
        out[0] = min(x, -2 ** 40)
        out[1] = x if n > 0 else -2 ** 40

    got = np.zeros(2, np.float64)
    skc.kernel(far)[1, 1](got, 5, 0)
    assert got.tolist() == [-2.0 ** 40, -2.0 ** 40]


def test_an_inner_unrolled_loop_reusing_a_name_inside_a_run_time_loop():
    def reuse(out, n: skc.i32):
        vals = [1.0, 2.0, 3.0]
        for k in skc.static_range(3):
            out[k] = 0.0
        s = 0.0
        for t in range(n):
            for k in (0, 1, 2):
                s += vals[k]
        out[0] = s

    got, want = both(reuse, 2)
    assert got[0] == want[0] == 12.0


def test_a_name_bound_by_an_inner_loop_is_unreadable_after_a_run_time_loop():
    def after(out, a, n: skc.i32):
        v = 0
        for i in range(n):
            if a[i] > 2:
                for v in (1, 2):
                    pass
        out[0] = v

    with pytest.raises(skc.CompileError, match="inner loop's target"):
        skc.kernel(after)[1, 1](np.zeros(1, np.int32), np.array([5, 1], np.int32), 2)


def test_a_loop_over_a_generator_sees_what_its_body_changes():
    def changing(out):
        vals = [1.0, 2.0, 3.0]
        total = 0.0
        for v in (x * 2.0 for x in vals):
            vals[2] = 10.0
            total += v
        out[0] = total

    got, want = both(changing)
    assert got[0] == want[0] == 26.0


class Frozen:
    __slots__ = ("_v",)

    def __init__(self, v):
        object.__setattr__(self, "_v", v)

    @property
    def v(self):
        return self._v

    @v.setter
    def v(self, x):
        object.__setattr__(self, "_v", x)


def test_a_setter_through_object_setattr_in_a_run_time_loop():
    def frozen(out, n: skc.i32):
        f = Frozen(out[0])
        for i in range(n):
            f.v = f.v + out[i]
        out[0] = f.v

    got2 = np.arange(4, dtype=np.float32)
    skc.kernel(frozen)[1, 1](got2, 4)
    want2 = np.arange(4, dtype=np.float32)
    frozen(want2, 4)
    assert got2[0] == want2[0] == 6.0


# -- a third search: typing rules (forty-first session) -------------------------------------------------------------
def test_a_negative_literal_beside_an_unsigned_value_in_float_division_and_powers():
    def floats(out, x: skc.u32, b: skc.u8):
        out[0] = x / -2
        out[1] = b ** -1
        out[2] = b / -1
        out[3] = b ** -2

    got = np.zeros(4, np.float64)
    skc.kernel(floats)[1, 1](got, 7, 2)
    assert got.tolist() == [-3.5, 0.5, -2.0, 0.25]


def test_a_negative_literal_beside_an_unsigned_value_in_floor_division_and_modulo():
    """The literal keeps its value, as in / and **, and as an i32 argument holding it does (u8 beside i32 is i32):
    it wrapped into the unsigned type, so u8(7) // -2 read 7 // 254 == 0 and u8(7) % -3 read 7 % 253 == 7."""
    def floor(out, x: skc.u8, y: skc.u16, z: skc.u32):
        out[0] = x // -2
        out[1] = x % -3
        out[2] = -7 // x
        out[3] = -7 % x
        out[4] = y // -2
        out[5] = y % -3
        out[6] = z // -2     # in i64, which holds both
        out[7] = z % -3

    got = np.zeros(8, np.float64)
    skc.kernel(floor)[1, 1](got, 7, 7, 7)
    assert got.tolist() == [-4.0, -2.0, -1.0, 0.0, -4.0, -2.0, -4.0, -2.0]

    def u64(out, x: skc.u64):
        out[0] = x // -2

    with pytest.raises(skc.CompileError, match="no integer type holds both u64 values and -2"):
        skc.kernel(u64)[1, 1](np.zeros(1, np.float64), 7)


def test_an_unsigned_base_to_a_negative_run_time_exponent_truncates():
    def powers(out, x: skc.u32, e: skc.i32):
        out[0] = x ** e

    for base, expected in ((3, 0), (1, 1), (0, 0)):
        got = np.zeros(1, np.float64)
        skc.kernel(powers)[1, 1](got, base, -1)
        assert got[0] == expected


def test_a_whole_float_constant_saturates_as_the_run_time_conversion_does():
    def saturated(out, i: skc.Ptr[skc.i32], f: skc.f32):
        out[0] = skc.i8(300.0)
        out[1] = skc.i8(f)
        out[2] = skc.u8(-1.0)
        i[0] = 3e9

    got, ints = np.zeros(3, np.float64), np.zeros(1, np.int32)
    skc.kernel(saturated)[1, 1](got, ints, 300.0)
    assert got.tolist() == [127.0, 127.0, 0.0] and ints[0] == 2 ** 31 - 1


def test_narrow_float_floor_division_is_rounded_once():
    def floor(out, x, y):
        out[0] = x[0] // y[0]

    for dtype, a, b in ((ml_dtypes.bfloat16, -16.375, 0.09423828125), (np.float16, 151.375, 0.010833740234375)):
        x, y = np.array([a], dtype), np.array([b], dtype)
        got = np.zeros(1, dtype)
        skc.kernel(floor)[1, 1](got, x, y)
        expected = np.array([math.floor(float(x[0]) / float(y[0]))], np.float64).astype(dtype)
        assert float(got[0]) == float(expected[0])


def test_min_and_max_of_two_numbers_then_a_run_time_value():
    """The compile-time numbers in front are Python's pair: min(1, 2.0, x) raised AttributeError ('NoneType' object
    has no attribute 'is_bool') on the two numbers."""
    def smallest(out, x):
        out[0], out[1], out[2] = min(1, 2.0, x[0]), max(2.0, 1, x[0]), min(3, 1, x[0], 0.5)

    for value in (0.25, 1.5, 4.0):
        got, want = both(smallest, np.array([value], np.float32))
        assert got.tolist() == want.tolist()


def test_an_integer_compared_with_a_float_by_value():
    def compared(out, x: skc.i32, y: skc.i64):
        out[0] = x == 16777216.0
        out[1] = x > 16777216.0
        out[2] = y == 2.0 ** 40
        out[3] = x < 16777217.5
        out[4] = x > float("-inf")

    got = np.zeros(5, np.float64)
    skc.kernel(compared)[1, 1](got, 16777217, 2 ** 40 + 1)
    assert got.tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]


def test_a_numpy_scalar_constant_beside_a_run_time_value_acts_as_a_python_number():
    def weak(out, x, n: skc.i32):
        acc = 0.0
        for i in range(n):
            acc += x[i] * np.float64(0.5)   # (an f32 accumulator stays f32, as with 0.5)
        out[0] = acc

    got = np.zeros(1, np.float32)
    skc.kernel(weak)[1, 1](got, np.arange(4, dtype=np.float32), 4)
    assert got[0] == 3.0


def test_an_unsigned_u64_divided_by_a_negative_literal():
    def u64(out, x: skc.u64):
        out[0] = x / -2

    def u32(out, x: skc.u32):
        out[0] = x ** -1

    def u64_power(out, x: skc.u64):
        out[0] = x ** -1   # (in f64: 1 / x, as an integer exponent is products on every type; x ** -0.5 is refused)

    got = np.zeros(1, np.float64)
    skc.kernel(u64)[1, 1](got, 8)
    got32 = np.zeros(1, np.float32)
    skc.kernel(u32)[1, 1](got32, 8)
    assert got.tolist() == [-4.0] and got32.tolist() == [0.125]
    skc.kernel(u64_power)[1, 1](got, 8)
    assert got.tolist() == [0.125]

    def f64_root(out, x: skc.f64):
        out[0] = x ** -0.5   # (a float exponent in f64, which no GPU has a pow of: refused as the GPUs refuse it)

    with pytest.raises(skc.CompileError, match=r"x \*\* y is not available on f64"):
        skc.kernel(f64_root)[1, 1](got, 8.0)


def test_a_numpy_integer_stored_out_of_range_wraps_as_numpy_does():
    def store(out):
        out[0] = np.int64(300)

    got = np.zeros(1, np.uint8)
    skc.kernel(store)[1, 1](got)
    assert got[0] == 44


def test_ordering_a_run_time_value_against_none_is_an_error():
    def against_none(out, x: skc.i32):
        out[0] = x < None

    with pytest.raises(skc.CompileError, match="None"):
        skc.kernel(against_none)[1, 1](np.zeros(1, np.float64), 3)


def test_an_integer_vector_compared_with_a_number_by_value():
    """Element by element as each scalar compares: an i32 vector against a float was compared in f32 (16777217 ==
    16777216.0 held), a u8 vector against -1 wrapped it to 255."""
    def compared(out, x: skc.i32, y: skc.u8):
        v, w = skc.vector(x, -x), skc.vector(y, y)
        same, above, wrapped = v == 16777216.0, v > -16777216.5, w > -1
        for i in skc.static_range(2):
            out[i], out[2 + i], out[4 + i] = same[i], above[i], wrapped[i]
        out[6] = (v != float("nan"))[1]
        out[7] = (w == 256)[0]

    got = np.zeros(8, np.float64)
    skc.kernel(compared)[1, 1](got, 16777217, 200)
    assert got.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    ptx = skc.kernel(compared).compile(skc.Ptr[skc.f64], skc.i32, skc.u8, target="sm_90a", block=32).asm("ptx")
    assert "setp" in ptx   # (the vectors' constant truths lower too)


def test_a_name_bound_by_a_while_test_is_read_after_the_loop():
    """The test runs before any way out of the loop, so what its `:=` binds is bound after it, as in Python (this
    was "may be undefined"); a `:=` under the lazy side of `and` may never run, and stays an error."""
    def searched(out, x, n: skc.i32):
        i = 0
        while (v := x[i]) < n:
            i += 1
        out[0], out[1] = v, i

    got, want = both(searched, np.array([1.0, 2.0, 5.0, 9.0], np.float32), 4)
    assert got.tolist() == want.tolist() == [5.0, 2.0, 0.0, 0.0]

    def lazy(out, x, n: skc.i32):
        i = 0
        while i < n and (v := x[i]) < 3:
            i += 1
        out[0] = v

    with pytest.raises(skc.CompileError, match="'v' may be undefined"):
        skc.kernel(lazy)[1, 1](np.zeros(1, np.float32), np.zeros(4, np.float32), 4)


@pytest.mark.parametrize("taken", ["next", "loop", "list", "zip"])
def test_an_iterator_made_outside_a_run_time_loop_is_not_advanced_inside_it(taken):
    """Taking items from a compile-time iterator runs once, at compile time, whatever path the program takes: inside
    a run-time loop every iteration read the first item (out was [0, 0, 0, 0], not [0, 1, 2, 3])."""
    def advanced(out, n: skc.i32):
        items = (float(i) for i in range(4))
        for i in range(n):
            if taken == "next":
                out[i] = next(items)
            elif taken == "loop":
                for x in items:
                    out[i] = x
            elif taken == "list":
                out[i] = len(list(items))
            else:
                out[i] = len(tuple(zip(items, items)))

    with pytest.raises(skc.CompileError, match="takes items from a compile-time iterator, but it was made outside this run-time loop"):
        skc.kernel(advanced)[1, 1](np.zeros(4, np.float32), 4)


def test_an_iterator_made_and_taken_in_one_place_still_runs():
    def here(out, n: skc.i32):
        for i in range(n):
            items = iter([1.0, 2.0])
            out[i] = next(items) + sum(x for x in items)
        rest = (float(i) for i in range(3))
        if n > 2:
            out[0] = sum(rest) + next(iter([4.0]))

    got, want = both(here, 3)
    assert got.tolist() == want.tolist() == [7.0, 3.0, 3.0, 0.0]


def test_an_iterator_a_run_time_branch_took_items_from_is_not_taken_from_after_it():
    """What is left of it depends on the path taken: next() after the branch read the third item on both paths
    (out[0] was 2.0 where the branch was not taken, not 1.0); the other side of the branch took the next item."""
    def after(out, n: skc.i32):
        items = iter([1.0, 2.0, 3.0])
        if n > 2:
            next(items)
        out[0] = next(items)

    def other_side(out, n: skc.i32):
        items = iter([1.0, 2.0, 3.0])
        if n > 2:
            out[0] = next(items)
        else:
            out[0] = next(items)

    for kernel in (after, other_side):
        with pytest.raises(skc.CompileError, match="a run-time branch took items from it before"):
            skc.kernel(kernel)[1, 1](np.zeros(1, np.float32), 1)


def _put(values, v):
    values[0] = v


def _total(values):
    return sum(values)


def test_a_helper_that_changes_a_container_made_outside_a_run_time_branch_is_refused():
    """A plain-Python helper runs once, at compile time: the change it made inside a branch not taken was seen
    after the branch (out[0] read 5.0, Python 3.0). One that only reads the container still runs."""
    def changed(out, n: skc.i32):
        values = [3.0]
        if n > 2:
            _put(values, 5.0)
        out[0] = values[0]

    def table(out, n: skc.i32):
        weights = np.array([1.0, 2.0], np.float32)
        if n > 2:
            np.multiply(weights, 2.0, out=weights)
        out[0] = weights[0]

    for kernel, kind in ((changed, "list"), (table, "ndarray")):
        with pytest.raises(skc.CompileError, match=f"changed a {kind} made outside this run-time loop or branch"):
            skc.kernel(kernel)[1, 1](np.zeros(1, np.float32), 1)

    def read(out, n: skc.i32):
        values = [3.0, 4.0]
        if n > 2:
            out[0] = _total(values)

    got, want = both(read, 3)
    assert got.tolist() == want.tolist() == [7.0, 0.0, 0.0, 0.0]


def test_a_float_compared_with_an_integer_by_value():
    """An int the float type cannot hold was converted to it: 16777216.0 == 16777217 held in f32, 2048 == 2049 in
    f16, and 10**400 was an OverflowError; Python compares the values."""
    def compared(out, x, h):
        v = x[0]
        out[0], out[1], out[2] = v == 16777217, v < 16777217, v >= 16777217
        out[3], out[4], out[5] = x[1] < 10**400, -10**400 < x[1], x[3] > 10**400
        out[6], out[7], out[8] = h[0] == 2049, h[0] < 2049, h[0] > -2049
        out[9] = x[2] != 16777217
        out[10] = x[2] < 10**400
        out[11] = x[3] >= 10**400

    x = np.array([16777216.0, 3.0, np.nan, np.inf], np.float32)
    h = np.array([2048.0], np.float16)
    got, want = np.zeros(12, np.float32), np.zeros(12, np.float32)
    skc.kernel(compared)[1, 1](got, x, h)
    compared(want, [float(v) for v in x], [float(v) for v in h])   # (Python's floats: numpy's overflow on 10**400)
    assert got.tolist() == want.tolist() == [0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1]

    def lanes(out, x: skc.f32):
        less = skc.vector(x, x + 2.0) <= 16777217
        out[0], out[1] = less[0], less[1]

    got = np.zeros(2, np.float32)
    skc.kernel(lanes)[1, 1](got, 16777216.0)
    assert got.tolist() == [1.0, 0.0]


_RUN_TIME_PAIRS = [   # (integer type, float type, integer, float): pairs the float type rounds the integer into
    (np.int32, np.float32, 16777217, 16777216.0),
    (np.uint32, np.float32, 2 ** 32 - 1, 2.0 ** 32),
    (np.int16, np.float16, 2049, 2048.0),
    (np.uint8, ml_dtypes.float8_e5m2, 255, 256.0),
    (np.int64, np.float64, 2 ** 53 + 1, 2.0 ** 53),
    (np.int64, np.float64, 2 ** 63 - 1, 2.0 ** 63),     # (the f64 past the type: the integer lies below it)
    (np.uint64, np.float32, 2 ** 64 - 1, 2.0 ** 64),
    (np.int64, np.float32, -2 ** 63, -2.0 ** 63),
    (np.int64, np.float64, 5, math.nan),
    (np.uint64, np.float64, 7, 7.5),
]


@pytest.mark.parametrize("int_type, float_type, integer, number", _RUN_TIME_PAIRS)
def test_a_run_time_integer_compared_with_a_run_time_float_by_value(int_type, float_type, integer, number):
    """Two run-time values compare as Python compares an int with a float, by value: the integer was converted to
    the float type (i32 16777217 == f32 16777216.0 held, i64 2**63-1 == f64 2**63 too), as it still is for
    arithmetic."""
    def compared(out, i, f):
        a, b = i[0], f[0]
        out[0], out[1], out[2], out[3], out[4], out[5] = a < b, a <= b, a > b, a >= b, a == b, a != b
        out[6], out[7], out[8], out[9], out[10], out[11] = b < a, b <= a, b > a, b >= a, b == a, b != a

    i, f = np.array([integer], int_type), np.array([number], float_type)
    got, want = np.zeros(12, np.float32), np.zeros(12, np.float32)
    skc.kernel(compared)[1, 1](got, i, f)
    compared(want, [integer], [float(f[0])])   # (Python's int and float)
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("fmt, largest", [(skc.f8e5m2, 57344.0), (skc.f8e4m3, 448.0)])
def test_an_fp8_value_compared_with_a_number_by_value(fmt, largest):
    """The number was converted to the fp8 type, which saturates: e5m2's 57344 < math.inf read False, and
    abs(x) == float('inf') (skc's own hint for math.isinf) True."""
    def compared(out, x):
        v = x[0]
        out[0], out[1], out[2] = v < math.inf, abs(v) == float("inf"), v < 100000
        out[3], out[4] = v == largest, v > 1e30

    x = np.array([largest], ml_dtypes.float8_e5m2 if fmt is skc.f8e5m2 else ml_dtypes.float8_e4m3fn)
    got = np.zeros(5, np.float32)
    skc.kernel(compared)[1, 1](got, x)
    assert got.tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    ptx = skc.kernel(compared).compile(skc.Ptr[skc.f32], skc.Ptr[fmt], target="sm_90a", block=32).asm("ptx")
    assert "setp" in ptx


class _Bare:
    pass


class _Defaulted:
    scale = 1.0

    def set(self, value):
        self.scale = value


class _Setter:
    def set(self, value):
        self.w = value


def test_an_attribute_set_on_some_run_time_paths_is_an_error_where_read_after_them():
    """A slot made inside a branch holds nothing on the paths that do not set it: o.v set only where n > 2 read 0.0
    (Python raises AttributeError), a class's default 1.0 set over in a method read 0.0 (Python: 1.0)."""
    def only_one(out, x, n: skc.i32):
        o = _Bare()
        if n > 2:
            o.v = x[1] + 7.0
        out[0] = o.v

    def over_a_default(out, x, n: skc.i32):
        d = _Defaulted()
        if n > 2:
            d.set(x[1] + 7.0)
        out[0] = d.scale

    def in_a_method(out, x, n: skc.i32):
        e = _Setter()
        if n > 2:
            e.set(x[1])
        out[0] = e.w

    def in_a_loop(out, x, n: skc.i32):
        o = _Bare()
        for i in range(n):
            o.v = x[i]
        out[0] = o.v

    for kernel, message in ((only_one, "'_Bare.v' may be undefined"), (over_a_default, "holds 1.0 on some paths"),
                            (in_a_method, "'_Setter.w' may be undefined"), (in_a_loop, "'_Bare.v' may be undefined")):
        with pytest.raises(skc.CompileError, match=message):
            skc.kernel(kernel)[1, 1](np.zeros(1, np.float32), np.ones(4, np.float32), 1)


def test_an_attribute_set_on_every_path_or_on_an_object_made_there_reads_as_python_does():
    def every_path(out, x, n: skc.i32):
        o, d = _Bare(), _Defaulted()
        if n > 2:
            o.v = x[1] + 7.0
            d.set(x[0])
        elif n > 1:
            o.v = x[1]
            d.set(x[1])
        else:
            return
        out[0], out[1] = o.v, d.scale

    def made_there(out, x, n: skc.i32):
        if n > 2:
            o = _Bare()
            o.v = x[1] + 7.0
            out[0] = o.v
        e = _Setter()
        while True:
            e.set(x[2])
            break
        out[1] = e.w

    for kernel in (every_path, made_there):
        for n in (1, 2, 3):
            got, want = both(kernel, np.array([1.0, 2.0, 3.0], np.float32), n)
            assert got.tolist() == want.tolist()


def test_an_attribute_set_on_some_run_time_paths_is_an_error_read_through_getattr_hasattr_or_vars():
    """getattr(o, "v") and vars(o)["v"] gave the internal placeholder ('cannot use <...Poison object at 0x..> as a
    f32'), hasattr(o, "v") True on every path (Python: False where the branch did not run)."""
    def through_getattr(out, x, n: skc.i32):
        o = _Bare()
        if n > 2:
            o.v = x[1]
        out[0] = getattr(o, "v", 0.0)

    def through_hasattr(out, x, n: skc.i32):
        o = _Bare()
        if n > 2:
            o.v = x[1]
        out[0] = 1.0 if hasattr(o, "v") else 0.0

    def through_vars(out, x, n: skc.i32):
        o = _Bare()
        if n > 2:
            o.v = x[1]
        out[0] = vars(o)["v"]

    for kernel in (through_getattr, through_hasattr, through_vars):
        with pytest.raises(skc.CompileError, match="'_Bare.v' may be undefined"):
            skc.kernel(kernel)[1, 1](np.zeros(1, np.float32), np.ones(4, np.float32), 1)


_GROUPS = {"a": [1.0]}


def test_a_container_a_call_returns_from_one_made_outside_a_run_time_branch_is_not_changed_inside_it():
    """dict.get (getattr, max) returning a list made outside the branch counted it as made there: the
    append ran at compile time on every path (len read 2 where the branch was not taken, Python 1)."""
    def through_get(out, n: skc.i32):
        groups = {"a": [1.0]}
        if n > 2:
            groups.get("a").append(2.0)
        out[0] = len(groups["a"])

    def a_global(out, n: skc.i32):
        if n > 2:
            _GROUPS.get("a").append(2.0)
        out[0] = len(_GROUPS["a"])

    def an_attribute(out, n: skc.i32):
        o = _Bare()
        o.rows = [1.0]
        if n > 2:
            getattr(o, "rows").append(2.0)
        out[0] = len(o.rows)

    def first_row(out, n: skc.i32):
        rows = [[1.0], [2.0]]
        if n > 2:
            max(rows, key=len).append(2.0)
        out[0] = len(rows[0])

    for kernel in (through_get, a_global, an_attribute, first_row):
        with pytest.raises(skc.CompileError, match="changes a list made outside this run-time loop or branch"):
            skc.kernel(kernel)[1, 1](np.zeros(1, np.float32), 1)
    assert _GROUPS == {"a": [1.0]}

    def made_by_the_call(out, n: skc.i32):
        rows = [1.0, 2.0]
        if n > 2:
            copy = list(rows)
            copy.append(3.0)
            kept = rows.copy()
            kept.append(4.0)
            out[0] = len(copy) + len(kept)

    got, want = both(made_by_the_call, 3)
    assert got.tolist() == want.tolist()


def test_looking_at_an_iterator_made_outside_a_run_time_loop_takes_nothing():
    """isinstance(), type(), iter() of an iterator take no item: they were refused inside a run-time loop as
    'isinstance() takes items from a compile-time iterator'. next() on what iter() gives back is still refused."""
    import collections.abc

    def look(out, n: skc.i32):
        items = (float(i) for i in range(4))
        for i in range(n):
            if isinstance(items, collections.abc.Iterator) and type(items) is not list and iter(items) is items:
                out[i] = 1.0

    got, want = both(look, 3)
    assert got.tolist() == want.tolist() == [1.0, 1.0, 1.0, 0.0]

    def again(out, n: skc.i32):
        items = iter([1.0, 2.0, 3.0])
        for i in range(n):
            out[i] = next(iter(items))

    with pytest.raises(skc.CompileError, match="takes items from a compile-time iterator, but it was made outside"):
        skc.kernel(again)[1, 1](np.zeros(4, np.float32), 3)


class _Scaled:
    scale = 1.5


@skc.func
def _set_late(o, x, value):
    if x > 0.0:
        return 1.0
    o.scale = value if value is not None else x   # (only on the path that did not return)
    return 2.0


def test_an_attribute_set_past_a_run_time_jump_is_an_error_where_read_after_it():
    """On the paths that returned or broke out before it, the attribute holds its old value (or none): it read the
    fall-through path's 2.0, or 0.0 (a review's finding)."""
    def after_return(out, x: skc.f32, late: skc.constexpr):
        o = _Scaled()
        _set_late(o, x, late)
        out[0] = o.scale

    def after_break(out, x: skc.f32, late: skc.constexpr):
        o = _Bare()
        i = 0
        while True:
            if i >= x:
                break
            o.v = 2.0 * i
            i += 1
        out[0] = o.v

    def first_set_in_branch(out, x: skc.f32, late: skc.constexpr):
        o = _Bare()
        if x > 0.0:
            o.v = 1.0
        out[0] = o.v

    for kernel, late, message in ((after_return, 2.0, "'_Scaled.scale' holds 1.5 on some paths"),
                                  (after_return, None, "'_Scaled.scale' holds 1.5 on some paths"),
                                  (after_break, None, "'_Bare.v' may be undefined"),
                                  (first_set_in_branch, None, "'_Bare.v' may be undefined")):
        with pytest.raises(skc.CompileError, match=message):
            skc.kernel(kernel)[1, 1](np.zeros(1, np.float32), 3.0, late)


def _looks_at(items):
    return 2.0


def test_a_plain_helper_given_an_iterator_in_a_run_time_loop_is_said_to_take_items_only_maybe():
    """skc cannot see what a plain Python helper does with it: the message said it took items (a review's finding),
    and now says it may, and how to let skc see (@skc.func)."""
    def given(out, n: skc.i32):
        items = iter([1.0, 2.0])
        for i in range(n):
            out[i] = _looks_at(items)

    with pytest.raises(skc.CompileError, match=r"_looks_at\(\) \(run as plain Python at compile time\) may take "
                                               r"items") as info:
        skc.kernel(given)[1, 1](np.zeros(2, np.float32), 2)
    assert "@skc.func" in str(info.value)


class _Doubling:
    def __init__(self, v):
        self._v = v

    @property
    def v(self):
        return self._v

    @v.setter
    def v(self, value):
        self._v = 2 * value


def test_a_property_set_inside_run_time_control_flow_is_not_set_before_it():
    """Moving the attributes a run-time branch assigns into slots read a property and set it back, which ran its
    setter once more, natively, before the branch: in a compile-time-false `if` inside a run-time branch it read 2.0
    (Python 1.0); a setter whose value had to follow the path was refused as "set by plain Python code"
    (pygen.py's finding)."""
    def dead_code(out, n: skc.i32):
        r = _Doubling(1.0)
        if n > 2:
            out[1] = 1.0
        elif 2 > 4:
            r.v = 7.0
        out[0] = r.v

    got, want = both(dead_code, 0)
    assert got.tolist() == want.tolist() == [1.0, 0.0, 0.0, 0.0]

    def in_a_loop(out, n: skc.i32):
        r = _Doubling(5.0)
        for i in range(n):
            r.v = r.v - 3
        out[0] = r.v

    with pytest.raises(skc.CompileError, match="'_v' holds the compile-time value 5.0"):
        skc.kernel(in_a_loop)[1, 1](np.zeros(1, np.float32), 2)

    def started_at_run_time(out, n: skc.i32):
        r = _Doubling(out[1])
        for i in range(n):
            r.v = r.v - 3
        out[0] = r.v

    for n in (0, 2):
        got, want = both(started_at_run_time, n)
        assert got.tolist() == want.tolist()


def test_an_iterator_a_loop_left_by_a_run_time_break_is_not_taken_from_after_it():
    """The loop took items past its run-time break at compile time: next() after it read what was left on the path
    that never broke (-9, Python 2 where the break was taken at the first item; pygen.py's finding). A loop that is
    left by run-time `continue`s only, or whose iterator is not read after it, still runs."""
    def after_break(out, x, n: skc.i32):
        it = iter((1.0, 2.0))
        for v in it:
            if x[0] == n:
                break
        out[0] = next(it, -9.0)

    with pytest.raises(skc.CompileError, match="a run-time branch took items from it before"):
        skc.kernel(after_break)[1, 1](np.zeros(1, np.float32), np.zeros(1, np.float32), 0)

    def continued(out, x, n: skc.i32):
        it = iter((1.0, 2.0, 3.0))
        for v in it:
            if x[0] == n:
                continue
            out[1] += v
        out[0] = next(it, -9.0)
        for v in (w for w in (1.0, 2.0)):
            if x[0] > n:
                break
            out[2] += v

    for n in (0, 1):
        got, want = both(continued, np.zeros(1, np.float32), n)
        assert got.tolist() == want.tolist()


def test_a_walrus_on_the_lazy_side_of_a_run_time_and_or_binds_where_it_runs():
    """The name was bound on every path (w read 1 or 7 where Python never ran the `:=`: 0; pygen.py's finding). It
    now holds the new value on the paths that ran it, and one bound only there is "may be undefined" after."""
    def lazy(out, x, n: skc.i32):
        w, v, u = 0, 0, 0
        out[1] = (x[0] > n) or (w := 1)
        out[2] = x[0] if x[0] > n else (v := 7)
        out[3] = 0 < n < (u := x[0])
        for i in range(n):
            out[4] = (x[0] > i) and (u := u + i)
        out[0] = w + 10 * v + 100 * u

    for n in (0, 2, 5):
        got, want = both(lazy, np.array([3.0], np.float32), n, size=5)
        assert got.tolist() == want.tolist()

    def unbound(out, x, n: skc.i32):
        b = (x[0] > n) or (w := 1)
        out[0] = w

    with pytest.raises(skc.CompileError, match="'w' may be undefined"):
        skc.kernel(unbound)[1, 1](np.zeros(1, np.float32), np.zeros(1, np.float32), 0)


class _Bumped:
    def __init__(self, v):
        self.v = v

    def bump(self, k):
        self.v += k


def test_an_attribute_the_first_branch_set_holds_its_old_value_in_the_second():
    """A method setting an attribute in both branches of a run-time `if`: the second branch read the slot the first
    made (unset on its path: 3.0 where Python reads 1.0 + 3.0); one the first branch set first, read in the second,
    read the first's value where Python raises AttributeError (pygen.py's finding)."""
    def both_branches(out, x, n: skc.i32):
        o = _Bumped(1.0)
        if n > 7:
            o.bump(x[1])
        else:
            o.bump(x[0])
        out[0] = o.v

    for n in (0, 9):
        got, want = both(both_branches, np.array([3.0, 10.0], np.float32), n)
        assert got.tolist() == want.tolist()

    def read_before_set(out, x, n: skc.i32):
        o = _Bare()
        if n > 0:
            o.u = x[0]
        else:
            o.u = o.u + 1.0
        out[0] = o.u

    with pytest.raises(skc.CompileError, match="'_Bare.u' is set by the other branch"):
        skc.kernel(read_before_set)[1, 1](np.zeros(1, np.float32), np.zeros(1, np.float32), 0)


def test_a_compile_time_value_read_in_a_run_time_loop_and_then_rebound_there_is_an_error():
    """Every iteration ran the body compiled with the first value: f(i) called the first lambda on every iteration
    (6.0 for n = 3, Python 21.0; pygen.py's finding). A name rebound before it is read still runs."""
    def rebound(out, n: skc.i32):
        f = lambda y: y + 1.0
        c = 0.0
        for i in range(n):
            c += f(i)
            f = lambda y: 10.0
        out[0] = c

    with pytest.raises(skc.CompileError, match="'f' is read in this run-time loop and then changed"):
        skc.kernel(rebound)[1, 1](np.zeros(1, np.float32), 3)

    def made_first(out, n: skc.i32):
        o = _Bare()
        for i in range(n):
            o = _Bare()
            o.v = out[1] + i
            out[0] = o.v

    got, want = both(made_first, 3)
    assert got.tolist() == want.tolist()


def test_the_hint_for_a_compile_time_attribute_changed_in_a_loop_names_its_type():
    """It said skc.i32(1.5) for a float (pygen.py's note)."""
    def changed(out, n: skc.i32):
        o = _Defaulted()
        o.scale = 1.5
        for i in range(n):
            o.set(2.5)   # (in a method: not moved into a variable before the loop)
        out[0] = o.scale

    with pytest.raises(skc.CompileError, match=r"skc\.f32\(1\.5\)"):
        skc.kernel(changed)[1, 1](np.zeros(1, np.float32), 2)


def test_a_none_read_in_a_run_time_loop_and_then_given_a_run_time_value_is_an_error():
    """`best = None` before a run-time loop whose body tests `best is None` and then sets best to a loaded value: the
    one body compiled read None on every iteration (`best is None` always true: the last element, -5, where Python
    gives the maximum, 4). Refused at the loop; set without being read first, it still runs."""
    def running_max(out, x, n: skc.i32):
        best = None
        for i in range(n):
            if best is None or x[i] > best:
                best = x[i]
        out[0] = best

    with pytest.raises(skc.CompileError, match="'best' holds the compile-time value None before this run-time loop"):
        skc.kernel(running_max)[1, 1](np.zeros(1, np.float32), np.array([3, -1, 4, 1, -5], np.float32), 5)

    def last(out, x, n: skc.i32):
        v = None
        for i in range(n):
            v = x[i]
        out[0] = v

    got, want = both(last, np.array([3, -1, 4], np.float32), 3)
    assert got.tolist() == want.tolist()


def test_a_lambda_parameter_or_nested_local_is_not_a_read_of_the_loop_s_name():
    """read_before_assigned took every name a lambda or nested function loads as read from the loop body, its own
    parameters and locals too: a loop rebinding an outer name of the same spelling was refused."""
    def lam(out, x, n: skc.i32):
        op = None
        acc = 0.0
        for i in range(n):
            sq = lambda op: op * op
            acc += sq(x[i])
            op = sq
        out[0] = acc

    def nested(out, x, n: skc.i32):
        f = None
        acc = 0.0
        for i in range(n):
            def g(v):
                f = v * 2.0
                return f
            acc += g(x[i])
            f = g
        out[0] = acc

    def comprehension(out, x, n: skc.i32):
        t = None
        acc = 0.0
        for i in range(n):
            acc += sum([t * x[i] for t in (1.0, 2.0)])
            t = "seen"
        out[0] = acc

    for fn in (lam, nested, comprehension):
        got, want = both(fn, np.array([3, -1, 4], np.float32), 3)
        assert got.tolist() == want.tolist()

    def really_read(out, x, n: skc.i32):
        f = None
        acc = 0.0
        for i in range(n):
            g = lambda v: v if f is None else f(v)
            acc += g(x[i])
            f = lambda v: 2.0 * v
        out[0] = acc

    with pytest.raises(skc.CompileError, match="'f' is read in this run-time loop"):
        skc.kernel(really_read)[1, 1](np.zeros(1, np.float32), np.zeros(3, np.float32), 3)


def test_a_walrus_in_an_and_test_is_read_in_the_body_it_chose():
    """The body of `if a and (y := ...)` or `while ... and (v := ...)` runs only where every operand ran: it was
    refused as "may be undefined" after the lazy-side mend (a review's finding); after the `if` and in its `else` it
    stays so."""
    def scan(out, x, n: skc.i32):
        i, total = 0, 0.0
        while i < n and (v := x[i]) != 9.0:
            total += v
            i += 1
        out[0] = total
        if x[0] > 0 and (y := x[0] * 2.0) > 1.0:
            out[1] = y

    for n in (0, 2, 4):
        got, want = both(scan, np.array([1.0, 2.0, 9.0, 4.0], np.float32), n)
        assert got.tolist() == want.tolist()

    def after(out, x, n: skc.i32):
        if x[0] > n and (y := x[0] * 2.0) > 1.0:
            out[1] = y
        out[0] = y

    with pytest.raises(skc.CompileError, match="'y' may be undefined"):
        skc.kernel(after)[1, 1](np.zeros(2, np.float32), np.ones(1, np.float32), 0)


def test_a_compile_time_index_outside_a_shared_array_is_an_error():
    """`tile[-1, -1]` was added to the address as it was and read before the array (caught by the interpreter,
    silent on a GPU). A negative compile-time index is an error, not the last element as in numpy: a run-time -1
    could not count from the end, and the two must mean the same. An index past an extent is an error too."""
    @skc.kernel(block=4)
    def last(out: F32):
        tile = skc.shared((4, 3), skc.f32)
        t = skc.thread_id(0)
        for j in skc.static_range(3):
            tile[t, j] = t * 10 + j
        skc.barrier()
        out[t] = tile[3, 2] + tile[0, t % 3]

    got = np.zeros(4, np.float32)
    last[1, 4](got)
    assert got.tolist() == [32.0 + t % 3 for t in range(4)]

    @skc.kernel(block=1)
    def negative(out: F32):
        tile = skc.shared((4, 3), skc.f32)
        out[0] = tile[-1, 0]   # marker: negative

    with pytest.raises(skc.CompileError, match=r"index -1 is negative in dimension 0 of an array of shape \(4, 3\)"
                       ) as info:
        negative[1, 1](np.zeros(1, np.float32))
    assert "marker: negative" in str(info.value) and "3 for -1" in str(info.value)

    @skc.kernel(block=1)
    def past(out: F32):
        tile = skc.shared((4,), skc.f32)
        tile[4] = 1.0   # marker: past
        out[0] = tile[0]

    message = r"index 4 is out of range for dimension 0 of an array of shape \(4,\)"
    with pytest.raises(skc.CompileError, match=message) as info:
        past[1, 1](np.zeros(1, np.float32))
    assert "marker: past" in str(info.value)


def test_in_tests_a_run_time_value_against_a_compile_time_container():
    """`v in (1, 3, 5)` of a run-time v (or a constant in a list of run-time values) is `==` against each element, as
    Python's `in` asks; it was "'In' cannot take a run-time operand" (or a bool error naming plain helpers)."""
    def contains(out, x):
        v = x[0]
        out[0] = v in (1.0, 3.0, 5.0)
        out[1] = v not in [2, 4.0]
        out[2] = 3.0 in [x[1], x[2]]
        out[3] = x[1] in {1: "a", 2: "b"}
        out[4] = x[2] in ()
        out[5] = x[3] in (0.5, float("nan"))
        w = x[3]
        out[6] = w in (w,)                 # identity first: a NaN is in a tuple that holds it
        out[7] = x[2] not in (x[1], 7.0)

    for values in ([3.0, 2.0, 3.0, float("nan")], [2.0, 5.0, 7.0, 0.5]):
        got, want = both(contains, np.array(values, np.float32), size=8)
        np.testing.assert_array_equal(got, want)

    @skc.kernel
    def over_a_range(out: F32, n: skc.i32):
        out[0] = n in range(4)

    with pytest.raises(skc.CompileError, match="'in' over run-time values needs a tuple, list, set or dict"):
        over_a_range[1, 1](np.zeros(1, np.float32), 2)


def test_narrow_integers_of_both_signs_compare_by_value_as_c_promotes_them():
    """C promotes integers narrower than int to int before comparing them, so i8(-1) < u8(255) holds there as in
    Python; they unified to u8, where -1 is 255 (False, and i8(-1) == u8(255) True). From 32 bits, mixed operands
    compare in the unsigned type, as C compares them (the tutorial's rule). Python's max() and min() follow."""
    @skc.kernel(block=1)
    def mixed(out: skc.Ptr[skc.i32], a: skc.i8, b: skc.u8, c: skc.i16, d: skc.u16, e: skc.i32, f: skc.u32):
        out[0] = a < b
        out[1] = a == b
        out[2] = c < d
        out[3] = a < d
        out[4] = d >= c
        out[5] = e < f      # 32 bits: unsigned, -1 is 4294967295
        out[6] = a < f      # i8 promoted to int, then unsigned
        out[7] = max(a, b)  # Python's max() compares as `<` does: the larger value, not u8's 255
        out[8] = min(c, d, a)

    got = np.zeros(9, np.int32)
    mixed[1, 1](got, -1, 255, -1, 65535, -1, 1)
    assert got.tolist() == [1, 0, 1, 1, 1, 0, 0, 255, -1]


def test_narrow_integers_of_both_signs_compute_in_i32_as_c_promotes_them():
    """Arithmetic on integers narrower than 32 bits of both signs is in i32, as C's (which promotes both to int) and
    Python's: they unified to the unsigned type (the wider, or the unsigned of one width), so i8(-1) * u8(2) read 254,
    i16(-3) // u16(2) 32766, and an if-expression of i8(-1) and a u8 value 255. From 32 bits the rule is C's, as
    before: i32 beside u32 is u32."""
    @skc.kernel(block=1)
    def mixed(out: skc.Ptr[skc.i32], a: skc.i8, b: skc.u8, c: skc.i16, d: skc.u16, e: skc.i32, f: skc.u32):
        out[0] = a * b
        out[1] = a + d
        out[2] = c // d
        out[3] = c % d
        out[4] = c + d
        out[5] = a if e > 0 else b
        out[6] = b - a
        out[7] = skc.vector(a, b)[0]
        out[8] = skc.i32(e + f)                     # u32: wraps as C's unsigned int

    got = np.zeros(9, np.int32)
    mixed[1, 1](got, -1, 2, -3, 2, -5, 1)
    assert got.tolist() == [-2, 1, -2, 1, -1, 2, 3, -1, -4]
    got[:] = 0
    mixed[1, 1](got, -1, 2, -3, 2, 5, 1)
    assert got[5] == -1

def test_float_of_a_64_bit_integer_is_an_f64():
    """`float()` of an i64 or u64 is an f64, as `/` of one is and as the README says ('float() ... of an i64, an
    f64'): it was an f32, so float(2**53 + 1) / 3 was off in the eighth digit and float(2**62 + 12345) - 2.0**62 read 0 (12288
    in f64). Of an i32 it stays an f32."""
    def widths(out, a: skc.i64, b: skc.u64, c: skc.i32):
        out[0] = float(a) / 3
        out[1] = float(b) - 2.0 ** 62
        out[2] = float(c)

    got = np.zeros(3, np.float64)
    skc.kernel(widths)[1, 1](got, 2 ** 53 + 1, 2 ** 62 + 12345, 16777217)
    assert got.tolist() == [float(2 ** 53 + 1) / 3, float(2 ** 62 + 12345) - 2.0 ** 62, 16777216.0]


def test_exact_math_of_a_64_bit_integer_is_in_f64():
    """skc.sqrt, math.sqrt, math.fabs, math.fmod, math.copysign and skc.fma of an i64 or u64 compute in f64, as `/` of
    one does: through f32, sqrt(2**60 + 2**36) read 2**30 (f64: about 2**30 + 32) and fabs(-(2**53 + 1)) lost its last
    bit. The approximate functions (no f64 form) still take an integer in f32; of an i32, all stay in f32."""
    def exact(out, a: skc.i64, b: skc.u64, c: skc.i32):
        out[0] = skc.sqrt(a)
        out[1] = math.sqrt(b)
        out[2] = math.fabs(-a)
        out[3] = math.fmod(a, 7.0)
        out[4] = math.copysign(b, -1.0)
        out[5] = skc.fma(a, 2, 1)
        out[6] = skc.sqrt(c)
        out[7] = skc.exp2(skc.i64(3))

    got = np.zeros(8, np.float64)
    a, b = 2 ** 60 + 2 ** 36, 2 ** 53 + 1
    skc.kernel(exact)[1, 1](got, a, b, 16777217)
    assert got.tolist() == [math.sqrt(a), math.sqrt(b), float(a), math.fmod(a, 7.0), -float(b), 2.0 * a + 1,
                            float(np.sqrt(np.float32(16777217))), 8.0]


@skc.func
def _scaled_if_number(x, s):
    if isinstance(s, (int, float)):
        return x * s
    return x * 1000.0


def test_isinstance_and_type_of_run_time_scalars_answer_as_python():
    """isinstance() and type() asked of the compiler's object: an i32 was no int, an f32 no float, and `type(a) is
    type(f)` was True; an @skc.func branching on isinstance took its other branch (sixty-fourth session)."""
    def kinds(out, a: skc.i32, f: skc.f32, b: skc.i1):
        out[0] = isinstance(a, int) + 2 * isinstance(f, float) + 4 * isinstance(b, bool) + 8 * isinstance(b, int)
        out[1] = (type(a) is type(f)) + 2 * (type(a) is int) + 4 * (type(f) is float) + 8 * isinstance(a, float)
        out[2] = _scaled_if_number(2.0, a)
        out[3] = isinstance(a, str) + 2 * isinstance(f, (list, tuple))

    got = np.zeros(4, np.float32)
    skc.kernel(kinds)[1, 1](got, 5, 1.5, True)
    # (what Python gives: isinstance(5, int), isinstance(1.5, float), True is a bool and an int; type(5) is int,
    # type(1.5) is float; 2.0 * 5; no str, list or tuple)
    assert got.tolist() == [15.0, 6.0, 10.0, 0.0]
