"""Python constructs that compiled to something other than what Python means (a helper's search, eighteenth
session): a compile-time list, dict or set changed inside run-time control flow (the change ran once, on every
path); range() over u32 bounds past 2**31 (an i32 loop); an integer to a run-time integer power (through f32);
max() / min() of one vector (returned the vector); keyword-only kernel parameters bound by position; a string
stored as a number; and two kernels whose code objects compare equal but whose sources differ (one compiled from
the other's source)."""
import importlib
import math
import sys

import numpy as np
import pytest

import skc
from helpers import line_of

F32 = skc.Ptr[skc.f32]
I64 = skc.Ptr[skc.i64]
U32 = skc.Ptr[skc.u32]


def compile_error(kernel, *args) -> str:
    with pytest.raises(skc.CompileError) as info:
        kernel[1, 1](*args)
    return str(info.value)


# -- compile-time containers changed under run-time control flow ---------------------------------------------------
class Items:
    def __init__(self):
        self.values = []


@skc.kernel
def append_in_loop(x: F32, n: skc.i32):
    values = [1.0, 2.0]
    for i in range(n):
        values.append(x[i])   # marker: append
    x[0] = len(values)


@skc.kernel
def pop_in_branch(x: F32, n: skc.i32):
    values = [1.0, 2.0]
    if n > 0:
        values.pop()   # marker: pop
    x[0] = len(values)


@skc.kernel
def add_to_set_in_branch(x: F32, n: skc.i32):
    seen = {1}
    if n > 0:
        seen.add(2)   # marker: add
    x[0] = len(seen)


@skc.kernel
def update_dict_in_loop(x: F32, n: skc.i32):
    table = {}
    while n > 0:
        table.update(a=1)   # marker: update
        n -= 1
    x[0] = len(table)


@skc.kernel
def append_to_attribute_in_branch(x: F32, n: skc.i32):
    items = Items()
    if n > 0:
        items.values.append(1.0)   # marker: attribute
    x[0] = len(items.values)


@pytest.mark.parametrize("kernel, marker, method", [
    (append_in_loop, "marker: append", "list.append()"), (pop_in_branch, "marker: pop", "list.pop()"),
    (add_to_set_in_branch, "marker: add", "set.add()"), (update_dict_in_loop, "marker: update", "dict.update()"),
    (append_to_attribute_in_branch, "marker: attribute", "list.append()")],
    ids=["append-in-loop", "pop-in-if", "set-add-in-if", "dict-update-in-while", "attribute-list-in-if"])
def test_changing_a_compile_time_container_under_run_time_control_flow_is_an_error(kernel, marker, method):
    text = compile_error(kernel, np.zeros(4, np.float32), 2)
    assert text.splitlines()[0].startswith(f"{__file__}:{line_of(kernel, marker)}:"), text
    assert method in text and "cannot follow the path taken" in text and "hint:" in text


@skc.kernel
def containers_of_their_own_region(x: F32, n: skc.i32):
    for i in range(n):
        pair = [1.0]
        pair.append(x[i])          # made in this loop's body: fine
        x[i] = pair[0] + pair[1]
    unrolled = []
    for j in skc.static_range(3):  # unrolled at compile time: fine
        unrolled.append(j)
    x[0] = x[0] + len(unrolled)


def test_containers_made_in_the_same_region_or_unrolled_loops_still_change():
    x = np.arange(1, 5).astype(np.float32)
    containers_of_their_own_region[1, 1](x, 2)
    assert x.tolist() == [2 + 3, 3, 3, 4]


# -- range() over unsigned bounds ----------------------------------------------------------------------------------
@skc.kernel
def count_between(out: U32, n: skc.u32, m: skc.u32):
    count = 0
    for i in range(n, m):
        count += 1
        out[1] = i
    out[0] = count


@skc.kernel
def count_from_wrapped(out: U32, n: skc.u32):
    count = 0
    for i in range(n - 3, 2):   # n - 3 wraps for n < 3: a start past the stop
        count += 1
    out[0] = count


@pytest.mark.parametrize("n, m", [(2 ** 31 - 2, 2 ** 31 + 2), (3_000_000_000, 3_000_000_002), (1, 4), (5, 5)])
def test_a_range_of_u32_bounds_counts_past_2_31(n, m):
    out = np.zeros(2, np.uint32)
    count_between[1, 1](out, n, m)
    assert out[0] == m - n and (m == n or out[1] == m - 1)


def test_a_range_from_a_wrapped_u32_start_runs_as_its_comparison_says():
    out = np.full(1, 99, np.uint32)
    count_from_wrapped[1, 1](out, 1)
    assert out[0] == 0


@skc.kernel
def count_u64(out: U32, n: skc.u64):
    for i in range(n):   # marker: u64
        out[0] = i


def test_a_range_of_u64_bounds_is_an_error_that_says_what_to_convert():
    text = compile_error(count_u64, np.zeros(1, np.uint32), 3)
    assert "u64" in text and "skc.i64" in text


# -- an integer to a run-time integer power ------------------------------------------------------------------------
@skc.kernel(block=1)
def run_time_powers(out: I64, n: skc.i32, m: skc.i32, big: skc.i64, e: skc.i64, u: skc.u32, ue: skc.u32):
    out[0] = n ** m
    out[1] = big ** e
    out[2] = 2 ** m
    out[3] = n ** -m
    out[4] = u ** ue


def _wrap(v, bits):
    return (v + 2 ** (bits - 1)) % 2 ** bits - 2 ** (bits - 1)


@pytest.mark.parametrize("n, m, big, e, u, ue", [(3, 19, 123456789, 1, 3, 5), (1, 5, -1, 3, 2, 31),
                                                 (-1, 3, 7, 0, 5, 0), (2, 40, 3, 39, 7, 13), (5, 0, 0, 0, 0, 0)])
def test_an_integer_to_a_run_time_power_is_exact_and_wraps_like_multiplication(n, m, big, e, u, ue):
    out = np.zeros(5, np.int64)
    run_time_powers[1, 1](out, n, m, big, e, u, ue)
    # n ** -m: for m > 0 the power truncated toward zero, as an integer
    negative = n ** -m if m <= 0 else int(n ** -m) if n in (1, -1) else 0
    assert out.tolist() == [_wrap(n ** m, 32), _wrap(big ** e, 64), _wrap(2 ** m, 32), negative,
                            (u ** ue) % 2 ** 32]


def test_a_run_time_integer_power_needs_no_float_pow():
    assert "math.pow" not in run_time_powers.compile(target="sm_90a").ir("tile")


# -- max(), min() and sum() of one value ---------------------------------------------------------------------------
@skc.kernel(block=1)
def lanes(x: F32):
    v = skc.load(x, width=4)
    x[4] = max(v)
    x[5] = min(v)


@skc.kernel(block=1)
def min_of_one_scalar(x: F32, n: skc.i32):
    x[0] = min(n)


def test_max_and_min_of_a_vector_reduce_its_lanes():
    x = np.array([5, 9, -2, 3, 0, 0], np.float32)
    lanes[1, 1](x)
    assert x[4:].tolist() == [9, -2]


def test_min_of_one_run_time_scalar_is_an_error():
    assert "min() of one run-time i32" in compile_error(min_of_one_scalar, np.zeros(1, np.float32), 3)


@skc.kernel(block=1)
def lane_sums(x: skc.Ptr[skc.i8], counts: skc.Ptr[skc.i32], h: skc.Ptr[skc.f16], f: F32, s: skc.f32):
    v = skc.load(x, width=4)
    x[4] = sum(v)
    counts[0] = sum(v > 0)
    counts[1] = sum(v, 1000)
    halves = skc.load(h, width=4)
    h[4] = sum(halves)
    f[0] = sum(halves, s)
    f[1] = sum(v, start=0.5)


@skc.kernel(block=1)
def float_lanes(x: F32):
    x[4] = sum(skc.load(x, width=4))


@skc.kernel(block=1)
def sum_of_one_scalar(x: F32, n: skc.i32):
    x[0] = sum(n)


def test_sum_of_a_vector_adds_its_lanes_left_to_right_as_python_does():
    x = np.array([100, 100, 100, -100, 0], np.int8)
    counts = np.zeros(2, np.int32)
    h = np.array([1, 2, 3, 0.5, 0], np.float16)
    f = np.zeros(2, np.float32)
    lane_sums[1, 1](x, counts, h, f, 0.25)
    assert x[4] == -56              # 200 wraps in the vector's i8, as numpy's int8 lanes would
    assert counts.tolist() == [3, 1200]   # bools count as ints; a Python int start takes the lanes' type
    assert h[4] == 6.5 and f.tolist() == [6.75, 200.5]
    floats = np.array([1e8, 1, -1e8, 1, 0], np.float32)
    float_lanes[1, 1](floats)
    assert floats[4] == 1           # ((1e8 + 1) - 1e8) + 1 in f32: left to right (a tree of pairs gives 0)


def test_sum_of_one_run_time_scalar_is_an_error():
    assert "sum() of one run-time i32" in compile_error(sum_of_one_scalar, np.zeros(1, np.float32), 3)


# -- keyword-only parameters ---------------------------------------------------------------------------------------
@skc.kernel(block=1)
def with_keyword_only(x: skc.Ptr[skc.i32], n: skc.i32 = 5, *, m: skc.i32 = 7):
    x[0] = n * 100 + m


def test_keyword_only_parameters_are_bound_by_name_only():
    x = np.zeros(1, np.int32)
    for args, kwargs, want in (((x, 1), {}, 107), ((x, 1), {"m": 2}, 102), ((x,), {}, 507)):
        with_keyword_only[1, 1](*args, **kwargs)
        assert x[0] == want
    with pytest.raises(skc.LaunchError, match="too many positional arguments"):
        with_keyword_only[1, 1](x, 1, 2)


# -- constants that are no numbers ---------------------------------------------------------------------------------
@skc.kernel(block=1)
def store_a_string(x: F32):
    x[0] = "2.5"


@skc.kernel(block=1)
def store_a_tuple(x: F32):
    x[0] = (1, 2)


@skc.kernel(block=1)
def store_numpy_scalars(x: F32):
    x[0] = np.float32(2.5)
    x[1] = np.bool_(True)
    x[2] = np.int64(3)


@pytest.mark.parametrize("kernel, shown", [(store_a_string, "'2.5'"), (store_a_tuple, "(1, 2)")])
def test_what_is_no_number_is_no_constant_to_store(kernel, shown):
    """(a string was parsed into a number; a tuple raised int()'s TypeError from inside the compiler)"""
    text = compile_error(kernel, np.zeros(1, np.float32))
    assert f"cannot use {shown} as a f32: it is no number" in text and "TypeError" not in text


def test_numpy_scalars_are_numbers():
    x = np.zeros(3, np.float32)
    store_numpy_scalars[1, 1](x)
    assert x.tolist() == [2.5, 1.0, 3.0]


# -- equal code objects, different sources -------------------------------------------------------------------------
SOURCE = '''import skc


@skc.kernel(block=1)
def widen(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
    v: skc.{type} = skc.cast(x[0], skc.f16)
    out[0] = v * 3.0
'''


def test_kernels_whose_code_objects_compare_equal_compile_from_their_own_sources(tmp_path, monkeypatch):
    """Two files, one function at one line, the bodies equal but for a local annotation (the code object holds no
    local annotation): each kernel compiles from its own file. (The source cache compared code objects, which
    ignore the file name: the second compiled from the first's source.)"""
    for name, kind in (("widen_f32", "f32"), ("widen_f16", "f16")):
        (tmp_path / f"{name}.py").write_text(SOURCE.format(type=kind))
    monkeypatch.syspath_prepend(str(tmp_path))
    wide, narrow = importlib.import_module("widen_f32"), importlib.import_module("widen_f16")
    try:
        assert wide.widen.fn.__code__ == narrow.widen.fn.__code__   # what made the cache serve the wrong source
        x = np.array([0.1], np.float32)
        results = {}
        for module in (wide, narrow):
            out = np.zeros(1, np.float32)
            module.widen[1, 1](x, out)
            results[module.__name__] = out[0]
        # f16 rounds 0.1 * 3 to 0.2998..., f32 keeps 0.29992676 (0.1 was rounded to f16 first in both)
        half = np.float32(np.float16(np.float32(np.float16(0.1)) * np.float32(3.0)))
        assert results["widen_f16"] == half
        assert results["widen_f32"] == np.float32(np.float16(0.1)) * np.float32(3.0)
        assert results["widen_f16"] != results["widen_f32"]
    finally:
        sys.modules.pop("widen_f32", None)
        sys.modules.pop("widen_f16", None)


# -- vector slices, print's keywords, reductions of narrow values --------------------------------------------------
@skc.kernel(block=1)
def slices(x: F32):
    v = skc.load(x, width=4)
    middle = v[1:3]
    backwards = v[::-1]
    x[4] = middle[0] * 10 + middle[1]
    x[5] = backwards[0]


@skc.kernel(block=1)
def one_lane_slice(x: F32):
    v = skc.load(x, width=4)
    x[0] = v[1:2][0]


def test_a_vector_slice_is_a_vector_of_those_lanes():
    x = np.array([1, 2, 3, 4, 0, 0], np.float32)
    slices[1, 1](x)
    assert x[4:].tolist() == [23, 4]
    assert "takes 1 lane(s); a vector has 2 or more" in compile_error(one_lane_slice, x)


@skc.kernel(block=1)
def print_flush(x: F32, n: skc.i32):
    print(n, flush=True)


@skc.kernel(block=1)
def print_run_time_sep(x: F32, n: skc.i32):
    print(n, n, sep=n)


@pytest.mark.parametrize("kernel, message", [(print_flush, "takes sep= and end=, not flush="),
                                             (print_run_time_sep, "print()'s sep is a compile-time string")])
def test_print_names_the_keywords_it_takes(kernel, message):
    """(were a TypeError and an AttributeError from inside the compiler)"""
    text = compile_error(kernel, np.zeros(1, np.float32), 3)
    assert message in text and "Error:" not in text.splitlines()[0].split("error:")[1]


@skc.kernel(block=1)
def print_percent_separators(x: F32, n: skc.i32):
    print(n, n, sep="%")
    print("a", "b", sep="%d", end="%5d\n")


@skc.kernel(block=1)
def print_a_tuple_of_run_time_values(x: F32, n: skc.i32):
    print((n, 1))


def test_print_takes_percent_signs_in_sep_and_end_as_text(capfd):
    """A helper's search (sixtieth session): sep and end went into the printf format unescaped ('%d%%d'), which the
    interpreter refused at run time and a GPU would read as conversions; a tuple of run-time values printed a
    placeholder. The separators are text now, and the tuple an error naming the fix."""
    print_percent_separators[1, 1](np.zeros(1, np.float32), 3)
    assert capfd.readouterr().out.splitlines()[-2:] == ["3%3", "a%db%5d"]
    text = compile_error(print_a_tuple_of_run_time_values, np.zeros(1, np.float32), 3)
    assert "print takes run-time values one by one, not inside a tuple" in text


@skc.kernel(block=32)
def narrow_reductions(x: skc.Ptr[skc.i8], out: skc.Ptr[skc.i32], n: skc.i32):
    t = skc.thread_id(0)
    v = x[t]
    count = skc.warp_sum(t < n)
    largest = skc.warp_max(v)
    smallest = skc.block_min(v)
    if t == 0:
        out[0] = count
        out[1] = largest
        out[2] = smallest


def test_warp_and_block_reductions_of_bools_and_bytes():
    """A bool's sum counts (as Python's sum() of bools); i8 reduces widened, exactly (shuffles move 16 bits or
    more: these were the IR verifier's error)."""
    x, out = np.arange(-10, 22).astype(np.int8), np.zeros(3, np.int32)
    narrow_reductions[1, 32](x, out, 5)
    assert out.tolist() == [5, 21, -10]
    assert narrow_reductions.compile(target="sm_90a", block=32).asm("ptx")


# -- hints that named the wrong thing ------------------------------------------------------------------------------
@skc.kernel(block=1)
def isnan_of_a_run_time_value(x: F32):
    y = x[0]
    x[1] = math.isnan(y)


@skc.kernel(block=1)
def nonlocal_in_a_kernel(x: F32):
    total = 0.0

    def add(v):
        nonlocal total
        total += v

    add(x[0])
    x[1] = total


@pytest.mark.parametrize("kernel, message, hint", [
    (isnan_of_a_run_time_value, "math.isnan() runs at compile time and has no run-time form", "x != x"),
    (nonlocal_in_a_kernel, "'nonlocal' is not supported in kernels", "return the new value")])
def test_hints_name_what_was_written(kernel, message, hint):
    """(math.isnan of a run-time value asked for a compile-time int; nonlocal was reported as 'global')"""
    text = compile_error(kernel, np.zeros(2, np.float32))
    assert message in text and hint in text
