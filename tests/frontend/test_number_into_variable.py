"""A compile-time number assigned to a run-time variable it does not fit: an error, as for a run-time value of a
wider type. It used to wrap silently (`v = 0` before a loop, `v = 5_000_000_000` inside it stored 705032704)."""
import numpy as np
import pytest

import skc


@skc.kernel(block=1)
def too_wide(out: skc.Ptr[skc.i64], n: skc.i32):
    v = 0
    for i in range(n):
        v = 5_000_000_000
    out[0] = v


@skc.kernel(block=1)
def too_wide_float(out: skc.Ptr[skc.f32], n: skc.i32):
    v = 0
    for i in range(n):
        v = 1e10
    out[0] = v


@skc.func
def pick(x):
    if x < 0:
        return x
    return 3_000_000_000


@skc.kernel(block=1)
def returned(out: skc.Ptr[skc.i64], x: skc.i32):
    out[0] = pick(x)


@pytest.mark.parametrize("kernel, line", [(too_wide, "v = 5_000_000_000"), (too_wide_float, "v = 1e10"),
                                          (returned, "return 3_000_000_000")])
def test_a_number_a_variable_cannot_hold_is_an_error(kernel, line):
    with pytest.raises(skc.CompileError) as caught:
        kernel.compile(target="sm_90a")
    assert "cannot represent" in str(caught.value) and line in str(caught.value)


@skc.kernel(block=1)
def fitting(out: skc.Ptr[skc.i64], n: skc.i32):
    v = 0
    u: skc.u32 = 0
    flag = False
    w = skc.i64(0)
    for i in range(n):
        v = 2 ** 31 - 1
        u = -1                  # wraps into an unsigned type, as x - 1 does
        flag = 1
        w = 5_000_000_000
    out[0] = v
    out[1] = u
    out[2] = flag
    out[3] = w


def test_numbers_that_fit_are_taken():
    out = np.zeros(4, np.int64)
    fitting.interpret[1, 1](out, 2)
    assert out.tolist() == [2 ** 31 - 1, 2 ** 32 - 1, 1, 5_000_000_000]


def test_the_hint_for_an_f64_value_names_an_f64_start():
    """A float variable started as `s = 0.0` (an f32) and given an f64: the hint said to start it as `s = 0.0`, the
    line that was already there. It names skc.f64(0) now, which runs."""
    def summed(out, x: skc.Ptr[skc.f64], n: skc.i32):
        s = 0.0
        for i in range(n):
            s += x[i]
        out[0] = s

    with pytest.raises(skc.CompileError, match=r"e\.g\. `s = skc\.f64\(0\)` or `s: skc\.f64 = \.\.\.`"):
        skc.kernel(summed).compile(np.zeros(1), np.zeros(3), 3, target="sm_90a")

    def hinted(out, x: skc.Ptr[skc.f64], n: skc.i32):
        s = skc.f64(0)
        for i in range(n):
            s += x[i]
        out[0] = s

    out = np.zeros(1)
    skc.kernel(hinted).interpret[1, 1](out, np.array([0.1, 0.2, 0.3]), 3)
    assert out[0] == 0.1 + 0.2 + 0.3
