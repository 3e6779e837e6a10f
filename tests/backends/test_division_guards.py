"""An integer division whose divisor the program tests before using it (`x // y if y != 0 else 7`, `y != 0 and
x % y == 0`): the frontend evaluates both sides of such a ternary or `and` (neither has effects), so the LLVM IR
divides unconditionally. LLVM's sdiv/srem by zero (and of INT_MIN by -1) is undefined behaviour, which let the
optimizer take the divisor as non-zero and delete the test: the PTX had no compare of y and no 7 at all. The IR
gives such a division an unspecified value only; the lowering divides by 1 there instead."""
import os
import sys

import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402


@skc.kernel(block=32)
def guarded(x: skc.Ptr[skc.i32], y: skc.Ptr[skc.i32], out: skc.Ptr[skc.i32]):
    t = skc.thread_id(0)
    a = x[t]
    b = y[t]
    out[4 * t] = a // b if b != 0 else 7
    out[4 * t + 1] = a % b if b != 0 else 9
    out[4 * t + 2] = 1 if b != 0 and a % b == 0 else 0
    out[4 * t + 3] = a // b if b < 0 else 0         # INT_MIN // -1: LLVM's other undefined case


X = np.array([0, 5, -5, 7, -2 ** 31, -2 ** 31, 2 ** 31 - 1, 12] * 4, np.int32)
Y = np.array([0, 0, 0, 2, -1, 0, -1, 3] * 4, np.int32)


def _wrap(v):
    return (v + 2 ** 31) % 2 ** 32 - 2 ** 31


def _expected():
    rows = []
    for a, b in zip(X.tolist(), Y.tolist()):
        rows += [_wrap(a // b) if b != 0 else 7, a % b if b != 0 else 9, 1 if b != 0 and a % b == 0 else 0,
                 _wrap(a // b if b < 0 else 0)]
    return np.array(rows, np.int32)


def _ptx():
    return guarded.compile(X, Y, np.zeros(128, np.int32), target="sm_90a").asm("ptx")


def test_the_interpreter_takes_the_guards():
    out = np.zeros(128, np.int32)
    guarded.interpret[1, 32](X, Y, out)
    np.testing.assert_array_equal(out, _expected())


def test_the_ptx_keeps_the_guards():
    ptx = _ptx()
    assert "7," in ptx.replace(" ", "") or ", 7" in ptx    # the constant the b == 0 lanes take
    arrays = ptx_emulator.run_grid(ptx, "guarded", [X.copy(), Y.copy(), np.zeros(128, np.int32)], 1, 32)
    np.testing.assert_array_equal(arrays[2], _expected())


def test_a_division_by_a_constant_is_not_guarded():
    @skc.kernel(block=32)
    def by_constant(x: skc.Ptr[skc.i32], out: skc.Ptr[skc.i32]):
        t = skc.thread_id(0)
        out[t] = x[t] // 7 + x[t] % 5

    llvm = by_constant.compile(X, np.zeros(32, np.int32), target="sm_90a").ir("llvm")
    assert "select" not in llvm.split("sdiv")[0].split("srem")[0]


@pytest.mark.gpu
def test_the_gpu_takes_the_guards():
    out = skc.to_device(np.zeros(128, np.int32))
    guarded[1, 32](skc.to_device(X), skc.to_device(Y), out)
    np.testing.assert_array_equal(out.numpy(), _expected())
