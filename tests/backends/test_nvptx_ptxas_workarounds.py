"""PTX that ptxas's optimizer miscompiles, which the NVPTX backend therefore never prints (both found by the GPU
fuzzer, seed 20261130; benchmarks/NOTES.md):

- `abs.sN`: ptxas -O3 takes its result as never negative, though abs of the most negative value is that value
  (Python's abs wrapped to the type): `0 > abs(x)` folds to false, `abs(x) >> k` becomes a logical shift (batch 9).
  The backend computes it as x times its sign; the PTX emulator runs that, and the GPU keeps its values.
- `brx.idx` (a jump table) with an index that differs between a warp's threads: at -O2 and -O3 some threads skip
  the stores after it (batch 19; -O0 and -O1 agree with the interpreter). Kernels carry "no-jump-tables".
- `neg.s16` (ptxas 13.0, V13.0.88; 13.5 keeps it): the result is not sign-extended again, as if -x could not
  overflow: -x of an i16 -32768 read 32768 once widened, and `(-x) >> 15` read 1 (an H100, the scalar sweep). LLVM
  prints every `sub i16 0, x` so; the backend prints `sub.u16 d, 0, x` instead."""
import os
import sys

import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402


@skc.kernel(block=32)
def abs_facts(x: skc.Ptr[skc.i32], y: skc.Ptr[skc.i64], out: skc.Ptr[skc.i32], wide: skc.Ptr[skc.i64]):
    t = skc.thread_id(0)
    a = abs(x[t])
    out[4 * t] = a
    out[4 * t + 1] = 1 if 0 > a else 0              # true for the most negative value
    out[4 * t + 2] = a >> 4                          # an arithmetic shift: negative for it
    out[4 * t + 3] = 1 if (x[t] if x[t] >= 0 else -x[t]) < 0 else 0   # the same abs, written by hand
    b = abs(y[t])
    wide[2 * t] = b
    wide[2 * t + 1] = 1 if b < 0 else 0


INT32 = np.array([-2 ** 31, -2 ** 31 + 1, -7, -1, 0, 1, 5, 2 ** 31 - 1] * 4, np.int32)
INT64 = np.array([-2 ** 63, -2 ** 63 + 1, -3, 0, 9, 2 ** 63 - 1, -1, 1] * 4, np.int64)


def _expected():
    a = np.abs(INT32)                    # numpy wraps as Python's abs does after W(): abs(-2**31) is -2**31
    out = np.stack([a, (a < 0).astype(np.int32), a >> 4, (a < 0).astype(np.int32)], axis=1).reshape(-1)
    b = np.abs(INT64)
    return out, np.stack([b, (b < 0).astype(np.int64)], axis=1).reshape(-1)


def _ptx():
    return abs_facts.compile(INT32, INT64, np.zeros(128, np.int32), np.zeros(64, np.int64),
                             target="sm_90a").asm("ptx")


def test_the_ptx_has_no_integer_abs():
    ptx = _ptx()
    assert "abs.s32" not in ptx and "abs.s64" not in ptx
    assert "mul.lo.s32" in ptx and "mul.lo.s64" in ptx


def test_the_interpreter_wraps_abs_of_the_most_negative_value():
    out, wide = np.zeros(128, np.int32), np.zeros(64, np.int64)
    abs_facts.interpret[1, 32](INT32, INT64, out, wide)
    want_out, want_wide = _expected()
    assert want_out[1] == 1 and want_wide[1] == 1       # the case that matters is in the data
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(wide, want_wide)


def test_the_ptx_computes_abs_with_its_wrap_around():
    arrays = ptx_emulator.run_grid(_ptx(), "abs_facts", [INT32.copy(), INT64.copy(), np.zeros(128, np.int32),
                                                            np.zeros(64, np.int64)], 1, 32)
    want_out, want_wide = _expected()
    np.testing.assert_array_equal(arrays[2], want_out)
    np.testing.assert_array_equal(arrays[3], want_wide)


@pytest.mark.gpu
def test_the_gpu_keeps_abs_of_the_most_negative_value():
    out, wide = skc.to_device(np.zeros(128, np.int32)), skc.to_device(np.zeros(64, np.int64))
    abs_facts[1, 32](skc.to_device(INT32), skc.to_device(INT64), out, wide)
    want_out, want_wide = _expected()
    np.testing.assert_array_equal(out.numpy(), want_out)
    np.testing.assert_array_equal(wide.numpy(), want_wide)


@skc.kernel(block=32)
def many_cases(x: skc.Ptr[skc.i32], out: skc.Ptr[skc.i32]):
    t = skc.thread_id(0)
    k = x[t]
    if k == 0:
        out[t] = 11
    elif k == 1:
        out[t] = 7
    elif k == 2:
        out[t] = x[t + 1]
    elif k == 3:
        out[t] = -4
    elif k == 4:
        out[t] = x[t + 2] * 3
    elif k == 5:
        out[t] = 99
    elif k == 6:
        out[t] = 1 << 20
    else:
        out[t] = k


def test_a_chain_of_cases_on_a_per_thread_value_is_no_jump_table():
    ptx = many_cases.compile(np.zeros(64, np.int32), np.zeros(32, np.int32), target="sm_90a").asm("ptx")
    assert "brx.idx" not in ptx and ".branchtargets" not in ptx
    assert ptx.count("setp.") >= 4        # compares and branches instead


@pytest.mark.gpu
def test_the_gpu_takes_each_threads_own_case():
    x = np.arange(64, dtype=np.int32) % 9
    want = np.zeros(32, np.int32)
    many_cases.interpret[1, 32](x, want)
    out = skc.to_device(np.full(32, 0x7FBADBAD, np.int32))
    many_cases[1, 32](skc.to_device(x), out)
    np.testing.assert_array_equal(out.numpy(), want)


@skc.kernel(block=32)
def neg16_facts(x: skc.Ptr[skc.i16], out: skc.Ptr[skc.i64]):
    t = skc.thread_id(0)
    n = -x[t]
    out[4 * t] = skc.i64(n)                          # -(-32768) wraps to -32768, then widens
    out[4 * t + 1] = skc.i64(n >> 15)                # its sign: -1
    out[4 * t + 2] = skc.i64(n // 2)
    out[4 * t + 3] = skc.i64(x[t] * -1)              # LLVM makes this the same negation


INT16 = np.array([-2 ** 15, -2 ** 15 + 1, -3, -1, 0, 1, 2, 2 ** 15 - 1] * 4, np.int16)


def _expected_neg16():
    n = (-INT16.astype(np.int64) + 2 ** 15) % 2 ** 16 - 2 ** 15     # -x wrapped to i16
    return np.stack([n, n >> 15, n // 2, n], axis=1).reshape(-1)


def _neg16_ptx():
    return neg16_facts.compile(INT16, np.zeros(128, np.int64), target="sm_90a").asm("ptx")


def test_the_ptx_has_no_16_bit_neg():
    ptx = _neg16_ptx()
    assert "neg.s16" not in ptx
    assert "sub.u16" in ptx


def test_the_interpreter_wraps_a_16_bit_negation():
    out = np.zeros(128, np.int64)
    neg16_facts.interpret[1, 32](INT16, out)
    want = _expected_neg16()
    assert want[0] == -2 ** 15 and want[1] == -1        # the case that matters is in the data
    np.testing.assert_array_equal(out, want)


def test_the_ptx_negates_16_bits_with_its_wrap_around():
    arrays = ptx_emulator.run_grid(_neg16_ptx(), "neg16_facts", [INT16.copy(), np.zeros(128, np.int64)], 1, 32)
    np.testing.assert_array_equal(arrays[1], _expected_neg16())


@pytest.mark.gpu
def test_the_gpu_wraps_a_16_bit_negation():
    out = skc.to_device(np.zeros(128, np.int64))
    neg16_facts[1, 32](skc.to_device(INT16), out)
    np.testing.assert_array_equal(out.numpy(), _expected_neg16())
