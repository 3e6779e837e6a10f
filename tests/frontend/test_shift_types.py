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
