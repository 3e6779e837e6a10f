"""math.fmod and math.copysign of run-time values: C's fmod (arith.rem, exact) and |x| with y's sign bit, in the
interpreter and in the GPU's code alike. They had no run-time form, and the error's hints gave formulas that are
wrong: x - y * skc.trunc(x / y) read 0 for fmod(1e10, 3.0) in f32 (1 is right) and 0 for fmod(1e10, 7.0) (4), and
skc.where(y < 0, -abs(x), abs(x)) took -0.0 and -NaN as positive (copysign(1.5, -0.0) read 1.5)."""
import math
import os
import sys

import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402


@skc.kernel(block=16)
def two(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], rem: skc.Ptr[skc.f32], sign: skc.Ptr[skc.f32], n: skc.i32):
    t = skc.thread_id(0)
    if t < n:
        rem[t] = math.fmod(x[t], y[t])
        sign[t] = math.copysign(x[t], y[t])


X = np.array([1e10, -1e10, 5.5, -5.5, 0.0, -0.0, np.inf, np.nan, 1.0, 7.0, 1e-40, 1.5, 1.5, 2.0], np.float32)
Y = np.array([3.0, 3.0, -2.0, 2.0, 1.0, 1.0, 1.0, 1.0, np.inf, 0.0, 3e-41, -0.0, -np.nan, -np.inf], np.float32)


def _bits(a):
    return a.view(np.uint32).tolist()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fmod_and_copysign_are_exact_in_the_interpreter():
    rem, sign = np.zeros_like(X), np.zeros_like(X)
    two[1, 16](X, Y, rem, sign, len(X))
    with np.errstate(all="ignore"):
        assert _bits(rem) == _bits(np.fmod(X, Y).astype(np.float32)) or \
            np.array_equal(rem, np.fmod(X, Y), equal_nan=True)
    assert rem[0] == 1.0 and rem[1] == -1.0 and math.copysign(1.0, rem[5]) == -1.0   # (as Python's math.fmod)
    assert _bits(sign) == _bits(np.copysign(X, Y))
    assert sign[11] == -1.5 and sign[12] == -1.5


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_gpu_code_computes_what_the_interpreter_does():
    want = [X.copy(), Y.copy(), np.zeros_like(X), np.zeros_like(X)]
    two[1, 16](*want, len(X))
    ptx = two.compile(*want, len(X), target="sm_90a").asm("ptx")
    got = ptx_emulator.run_grid(ptx, "two", [X.copy(), Y.copy(), np.zeros_like(X), np.zeros_like(X)], 1, 16,
                                scalars=(len(X),))
    nan = np.isnan(want[2]) & np.isnan(got[2])
    assert (np.array(_bits(want[2])) == np.array(_bits(got[2])))[~nan].all() and np.isnan(got[2]).sum() == nan.sum()
    assert _bits(got[3]) == _bits(want[3])


def test_integers_and_numbers_take_a_float_type():
    @skc.kernel(block=1)
    def mixed(a: skc.Ptr[skc.i64], out: skc.Ptr[skc.f64], small: skc.Ptr[skc.i32], out32: skc.Ptr[skc.f32]):
        out[0] = math.fmod(a[0], 7)
        out[1] = math.copysign(3, a[1])
        out32[0] = math.fmod(small[0], 4)

    out, out32 = np.zeros(2), np.zeros(1, np.float32)
    mixed[1, 1](np.array([2 ** 60 + 5, -1], np.int64), out, np.array([-9], np.int32), out32)
    assert out.tolist() == [math.fmod(2.0 ** 60 + 5, 7), -3.0] and out32[0] == -1.0


def test_one_argument_is_named():
    @skc.kernel(block=1)
    def bad(x: skc.Ptr[skc.f32]):
        x[0] = math.fmod(x[0])

    with pytest.raises(skc.CompileError, match=r"math.fmod\(\) of run-time values takes two arguments"):
        bad[1, 1](np.zeros(1, np.float32))


@pytest.mark.gpu
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_gpu_computes_what_the_interpreter_does():
    want = [X.copy(), Y.copy(), np.zeros_like(X), np.zeros_like(X)]
    two.interpret[1, 16](*want, len(X))
    rem, sign = skc.to_device(np.zeros_like(X)), skc.to_device(np.zeros_like(X))
    two[1, 16](skc.to_device(X), skc.to_device(Y), rem, sign, len(X))
    rem, sign = rem.numpy(), sign.numpy()
    nan = np.isnan(want[2]) & np.isnan(rem)
    assert (np.array(_bits(want[2])) == np.array(_bits(rem)))[~nan].all() and np.isnan(rem).sum() == nan.sum()
    assert _bits(sign) == _bits(want[3])
