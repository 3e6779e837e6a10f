"""A shift's result has its left operand's type, whatever the count's type, as with a compile-time count (and as
in C): the count's type used to be unified with the value's, so an unsigned count made a signed `>>` logical
(-8 >> u32(1) gave 2147483644), a wider count widened the result, and `flag << 1` of an i1 gave 0."""
import numpy as np

import skc


@skc.kernel(block=1)
def shifts(x: skc.Ptr[skc.i32], small: skc.Ptr[skc.i8], out: skc.Ptr[skc.i64], s: skc.u32, s8: skc.u8,
           wide: skc.i64, n: skc.i32):
    out[0] = x[0] >> s                  # arithmetic: x is signed
    out[1] = x[0] >> skc.u32(2)
    out[2] = small[0] >> s8
    out[3] = x[1] << wide               # an i32 result, as x[1] << 2 is
    out[4] = x[1] << 2
    out[5] = x[0] >> (wide + (1 << 32))  # a count an i32 cannot hold is past the width: the sign
    out[6] = x[1] << (wide + (1 << 32))
    flag = x[0] < 0
    out[7] = flag << 1                  # True << 1 == 2
    out[8] = flag << n
    out[9] = small[0] << n              # an i8 result, as small[0] << 2 is
    out[10] = small[0] << 2


def test_a_shift_keeps_the_type_of_its_left_operand():
    x = np.array([-8, 1 << 30], np.int32)
    small = np.array([-64], np.int8)
    out = np.zeros(11, np.int64)
    shifts.interpret[1, 1](x, small, out, 1, 1, 2, 2)
    assert out.tolist() == [-4, -2, -32, 0, 0, -1, 0, 2, 4, 0, 0]


@skc.kernel(block=1)
def number_shifted(out: skc.Ptr[skc.i64], top: skc.Ptr[skc.u64], s: skc.u32, s8: skc.u8, wide: skc.i64,
                   count: skc.u64):
    out[0] = -8 >> s                    # the number's own i32: arithmetic, as -8 >> 1 is
    out[1] = 1 << s8                    # an i32, not a u8 (which gave 0 for 1 << 8)
    out[2] = -1 >> s8
    out[3] = 1 if (1 << s8) > 200 else 0
    out[4] = 1 << wide                  # a 64-bit count widens the number: 2 ** 40
    out[5] = True << wide
    out[6] = -1 >> count                # signed: the number is negative
    top[0] = 1 << count                 # a u64 count and a number that is not negative: a u64, 2 ** 63


def test_a_number_shifted_by_a_run_time_count_keeps_its_own_type():
    out, top = np.zeros(7, np.int64), np.zeros(1, np.uint64)
    number_shifted.interpret[1, 1](out, top, 1, 8, 40, 63)
    assert out.tolist() == [-8 >> 1, 1 << 8, -1 >> 8, 1, 1 << 40, 1 << 40, -1]
    assert top.tolist() == [1 << 63]
    number_shifted.compile(out, top, 1, 8, 40, 63, target="sm_90a").asm("ptx")   # the backend takes it too
