"""`a ** b` for run-time floats (math.pow) must give what the interpreter (numpy's, C's pow) gives at the cases that
are exact: the targets compute exp2(b * log2 a), which gave NaN for 0 ** 0, inf ** 0, 1 ** inf and 1 ** nan (all
1.0 in the interpreter) and for every negative base (-3.0 ** 2.0 is 9.0, -2.0 ** 3.0 is -8.0). The lowering handles
b == 0, |a| == 1, odd and even integer exponents of negative bases (and -0) and NaN for a negative base with a
fractional exponent, around the target's approximation."""
import os
import sys

import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402

F32P = skc.Ptr[skc.f32]
inf, nan = np.inf, np.nan
X = np.array([0, 0, inf, 1, -3, 2, -2, -2, -0.0, -0.0, -0.0, -inf, -inf, -1, -1, 1, nan, 0, 0, 0.5, 2, 4, -8, 3,
              -inf, 10, 1.5, -0.5, 0.25, 7, -1, 2], np.float32)
Y = np.array([0, 1, 0, inf, 2, 3, 3, 0.5, 3, -1, 0.5, 3, -1, inf, nan, nan, 0, -1, -inf, inf, -inf, 0.5, 1 / 3, -2,
              2, 20, 2.5, -3, -0.5, 1, -inf, 1e10], np.float32)


@skc.kernel(block=32)
def power(x: F32P, y: F32P, out: F32P):
    t = skc.thread_id(0)
    out[t] = x[t] ** y[t]


def _interpreted():
    out = np.zeros(32, np.float32)
    with np.errstate(all="ignore"):
        power.interpret[1, 32](X, Y, out)
    return out


def _agree(a, b):
    exact = (a == b) & (np.signbit(a) == np.signbit(b))
    with np.errstate(all="ignore"):
        close = np.isfinite(a) & (np.abs(a - b) <= 1e-5 * np.abs(a))     # exp2 and log2 are approximate
    return exact | (np.isnan(a) & np.isnan(b)) | close


def test_the_ptx_takes_the_special_cases():
    ptx = power.compile(X, Y, np.zeros(32, np.float32), target="sm_90a").asm("ptx")
    out = ptx_emulator.run_grid(ptx, "power", [X.copy(), Y.copy(), np.zeros(32, np.float32)], 1, 32)[2]
    expected = _interpreted()
    bad = np.flatnonzero(~_agree(expected, out))
    assert not bad.size, [(X[i], Y[i], expected[i], out[i]) for i in bad]


def test_the_amd_lowering_compiles():
    power.compile(X, Y, np.zeros(32, np.float32), target="gfx942").asm("gcn")


@pytest.mark.gpu
def test_the_gpu_takes_the_special_cases():
    out = skc.to_device(np.zeros(32, np.float32))
    power[1, 32](skc.to_device(X), skc.to_device(Y), out)
    assert _agree(_interpreted(), out.numpy()).all()
