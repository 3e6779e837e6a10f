"""Integer abs on NVPTX keeps Python's meaning wrapped to the type: abs of the most negative value is that value.
ptxas -O3 takes the result of PTX `abs.sN` as never negative (`0 > abs(x)` folds to false, `abs(x) >> k` becomes
a logical shift): the GPU fuzzer found it (seed 20261130, batches 9 and 19; benchmarks/NOTES.md). The backend
prints no `abs.sN`; the PTX it prints instead computes the same values (the PTX emulator runs it) and, on the GPU,
keeps them through ptxas."""
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
    program = ptx_emulator.Program(_ptx(), "abs_facts")
    arrays = [INT32.copy(), INT64.copy(), np.zeros(128, np.int32), np.zeros(64, np.int64)]
    memory = ptx_emulator.Memory(arrays)
    params = dict(zip(program.params, memory.bases))
    for thread in range(32):
        program.run(memory, params, thread, 0)
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
