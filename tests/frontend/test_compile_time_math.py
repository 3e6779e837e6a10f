"""skc's math builtins on compile-time numbers (literals, constexpr parameters) give what the same builtin gives
on a run-time value holding the same number (helpers' search of folding against run-time computation): the IEEE
results where Python's math raises, minNum/maxNum, one rounding for fma."""
import math

import ml_dtypes
import numpy as np
import pytest

import skc


def run_and_fold(fn, *values, dtype=skc.f64):
    """fn's result on run-time values of `dtype` (f64; f32 for the transcendental ops, which no GPU has on f64) and
    on the same values as constexpr Python numbers."""
    n = len(values)

    @skc.kernel(block=1)
    def run_time(x: skc.Ptr[dtype], out: skc.Ptr[dtype]):
        out[0] = fn(*[x[i] for i in range(n)])

    @skc.kernel(block=1)
    def compile_time(out: skc.Ptr[dtype], v: skc.constexpr):
        out[0] = fn(*v)

    numpy_type = np.float64 if dtype is skc.f64 else np.float32
    r, f = np.zeros(1, numpy_type), np.zeros(1, numpy_type)
    run_time[1, 1](np.array(values, numpy_type), r)
    compile_time[1, 1](f, tuple(values))
    return r[0], f[0]


def same(a, b) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


@pytest.mark.parametrize("fn, x", [
    (skc.sqrt, -1.0), (skc.sqrt, -math.inf), (skc.log, 0.0), (skc.log, -0.0), (skc.log, -2.0), (skc.log2, 0.0),
    (skc.log2, -math.inf), (skc.rsqrt, 0.0), (skc.rsqrt, -0.0), (skc.rsqrt, -4.0), (skc.floor, math.inf),
    (skc.floor, math.nan), (skc.ceil, -math.inf), (skc.trunc, math.nan), (skc.rint, math.inf), (skc.sin, math.inf),
    (skc.cos, -math.inf), (skc.exp, 1000.0),
])
def test_math_of_a_compile_time_number_where_python_raises(fn, x):
    # (skc.sqrt(-1.0) was a compile error, "math domain error", where skc.sqrt of a run-time -1.0 is NaN)
    run_time, folded = run_and_fold(fn, x, dtype=skc.f32)
    assert same(run_time, folded), (run_time, folded)


@pytest.mark.parametrize("dtype", [skc.i32, skc.u8, skc.i8, skc.u32, skc.i64])
@pytest.mark.parametrize("x", [1.5, -1.5, 300.7, -300.7, 255.9, 1e30, -1e30, math.nan, math.inf, -math.inf])
def test_a_compile_time_float_cast_to_an_integer_type_converts_as_at_run_time(dtype, x):
    # (skc.i32(1.5) of a compile-time 1.5 was an error, "cannot use 1.5 as a i32", where a run-time 1.5 gives 1:
    # toward zero, saturating, NaN to 0)
    run_time, folded = run_and_fold(lambda v: dtype(v), x)
    assert same(run_time, folded), (run_time, folded)


@pytest.mark.parametrize("fn", [skc.floor, skc.ceil, skc.trunc, skc.rint])
@pytest.mark.parametrize("x", [-0.0, -0.5, 0.5, -0.25, 2.5, -2.5, 1e300])
def test_rounding_a_compile_time_float_keeps_the_sign_of_zero(fn, x):
    # (they gave Python's int: skc.ceil(-0.5) and skc.floor(-0.0) were 0, where the run-time ops give -0.0)
    run_time, folded = run_and_fold(fn, x)
    assert same(run_time, folded), (run_time, folded)


@pytest.mark.parametrize("fn", [skc.minimum, skc.maximum])
@pytest.mark.parametrize("a, b", [(math.nan, 1.0), (1.0, math.nan), (-math.inf, math.nan), (math.nan, math.nan),
                                  (0.0, -0.0), (-0.0, 0.0), (-0.0, -0.0)])
def test_minimum_and_maximum_of_compile_time_numbers_ignore_nan(fn, a, b):
    # (Python's min(nan, 1.0) is nan, min(1.0, nan) 1.0: the compile-time skc.minimum gave those, where arith.min is
    # IEEE minNum, the non-NaN operand)
    run_time, folded = run_and_fold(fn, a, b)
    assert same(run_time, folded), (run_time, folded)


@pytest.mark.parametrize("a, b, c", [(0.1, 10.0, -1.0), (1 + 2 ** -30, 1 - 2 ** -30, -1.0), (1e308, 10.0, -1e308),
                                     (3, 0.1, 0), (2.0, 3.0, -6.0), (-0.0, 1.0, -0.0)])
def test_fma_of_compile_time_numbers_rounds_once(a, b, c):
    # (Python's a * b + c rounds the product: 0.1 * 10.0 - 1.0 gave 0.0 where the run-time fma gives 5.55e-17)
    run_time, folded = run_and_fold(skc.fma, a, b, c)
    assert same(run_time, folded), (run_time, folded)


def test_numpy_minimum_and_maximum_of_run_time_values_propagate_nan():
    # (they were skc.minimum/maximum, IEEE minNum: numpy.minimum(nan, 1.0) read 1.0 at run time and nan at compile
    # time; numpy.fmin/fmax are the ones that ignore a NaN)
    @skc.kernel(block=4)
    def k(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
        t = skc.thread_id(0)
        out[t] = np.minimum(x[t], y[t])
        out[4 + t] = np.maximum(x[t], y[t])
        out[8 + t] = np.fmin(x[t], y[t])
        out[12 + t] = np.fmax(x[t], y[t])
        out[16 + t] = np.minimum(x[t], 2)

    x = np.array([np.nan, 1.0, np.nan, -3.0], np.float32)
    y = np.array([1.0, np.nan, np.nan, 2.0], np.float32)
    out = np.zeros(20, np.float32)
    k[1, 4](x, y, out)
    want = [np.minimum(x, y), np.maximum(x, y), np.fmin(x, y), np.fmax(x, y), np.minimum(x, np.float32(2))]
    np.testing.assert_array_equal(out, np.concatenate(want))


@pytest.mark.parametrize("fn", [min, max])
@pytest.mark.parametrize("a, b", [(math.nan, 1.0), (1.0, math.nan), (0.0, -0.0), (-0.0, 0.0), (math.nan, -math.inf)])
def test_python_min_and_max_of_run_time_floats_mean_what_python_says(fn, a, b):
    # (they were arith.min/max, IEEE minNum: min(nan, 1.0) read 1.0 at run time and nan at compile time, and
    # min(0.0, -0.0) -0.0 where Python keeps the first)
    run_time, folded = run_and_fold(fn, a, b)
    assert same(run_time, folded) and same(folded, fn(a, b)), (run_time, folded)


def test_python_max_of_a_vector_skips_only_the_nans_behind_the_first_lane():
    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
        out[0] = max(skc.load(x, width=4))
        out[1] = min(skc.load(x + 4, width=4))

    x = np.array([1.5, np.nan, 7.0, -2.0, np.nan, 3.0, -1.0, 2.0], np.float32)
    out = np.zeros(2, np.float32)
    k[1, 1](x, out)
    np.testing.assert_array_equal(out, [max(x[:4].tolist()), min(x[4:].tolist())])


@pytest.mark.parametrize("dtype, value", [(skc.f32, 2 ** 60 + 2 ** 36 + 1), (skc.f32, -(2 ** 60 + 2 ** 36 + 1)),
                                          (skc.bf16, 2 ** 62 + 2 ** 54 + 1), (skc.f32, 2 ** 63 - 1)])
def test_an_int_past_2_to_53_made_a_narrow_float_constant_rounds_once(dtype, value):
    # (the attribute was float(value), already rounded to f64: 2**60 + 2**36 + 1 became the f32 midpoint
    # 2**60 + 2**36, then 2**60, where converting the int at run time gives 2**60 + 2**37)
    @skc.kernel(block=1)
    def k(x: skc.Ptr[skc.i64], out: skc.Ptr[dtype]):
        out[0] = dtype(value)
        out[1] = dtype(x[0])
        out[2] = dtype(x[0]) * 0 + value   # a literal beside a run-time float

    out = np.zeros(3, ml_dtypes.bfloat16 if dtype is skc.bf16 else np.float32)
    k[1, 1](np.array([value], np.int64), out)
    assert out[0] == out[1] == out[2], out


@pytest.mark.parametrize("fn", [skc.exp, skc.exp2, skc.log, skc.log2, skc.rsqrt, skc.sin, skc.cos, skc.tanh,
                                lambda x: x ** x])
def test_transcendental_math_on_f64_is_refused_at_the_line_as_the_gpus_refuse_it(fn):
    """They ran in the interpreter while every GPU target refused them (f32's approximations only), so a kernel
    tested in the interpreter never compiled for a GPU; sqrt, the roundings and abs stay exact on f64."""
    @skc.kernel(block=1)
    def wide(x: skc.Ptr[skc.f64], out: skc.Ptr[skc.f64]):
        out[0] = fn(x[0])   # HERE

    @skc.kernel(block=1)
    def exact(x: skc.Ptr[skc.f64], out: skc.Ptr[skc.f64]):
        out[0] = skc.sqrt(x[0]) + skc.floor(x[0]) + abs(x[0]) + fn(skc.f32(x[0]))

    for run in (lambda: wide[1, 1](np.ones(1), np.zeros(1)),
                lambda: wide.compile(np.ones(1), np.zeros(1), target="sm_90a").asm("ptx")):
        with pytest.raises(skc.CompileError, match="is not available on f64") as info:
            run()
        assert "# HERE" in str(info.value) and "compute it in f32" in str(info.value)
    out = np.zeros(1)
    exact[1, 1](np.full(1, 4.0), out)
    assert out[0] > 9.0 and "sqrt.rn.f64" in exact.compile(np.ones(1), out, target="sm_90a").asm("ptx")


@skc.kernel(block=1)
def integers_rounded(x: skc.Ptr[skc.i32], u: skc.Ptr[skc.u32], w: skc.Ptr[skc.i64], out: skc.Ptr[skc.i64],
                     f: skc.Ptr[skc.f64], big: skc.constexpr):
    out[0] = math.floor(x[0])          # Python's math.floor of an int is the int (f32 rounded it to -2**31)
    out[1] = math.ceil(x[1])
    out[2] = math.trunc(w[0])
    out[3] = math.floor(u[0])          # a u32 stays a u32 (no i32 to wrap it into)
    out[4] = math.floor(x[0] < 0)      # a bool is 1
    f[0] = skc.floor(x[1])             # what skc.floor(big) gives, big a compile-time int
    f[1] = skc.rint(x[1])
    f[2] = skc.floor(big)
    f[3] = skc.trunc(skc.f32(x[1]))    # a float still rounds as a float: f32(16777217) is 16777216


def test_rounding_a_run_time_integer_gives_the_integer_as_a_compile_time_int_does():
    out, f = np.zeros(5, np.int64), np.zeros(4)
    integers_rounded[1, 1](np.array([-2 ** 31 + 1, 2 ** 24 + 1], np.int32), np.array([2 ** 32 - 1], np.uint32),
                           np.array([2 ** 40 + 1]), out, f, 2 ** 24 + 1)
    assert out.tolist() == [-2 ** 31 + 1, 2 ** 24 + 1, 2 ** 40 + 1, 2 ** 32 - 1, 1]
    assert f.tolist() == [2 ** 24 + 1, 2 ** 24 + 1, 2 ** 24 + 1, 2 ** 24]
