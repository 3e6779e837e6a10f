"""An integer to a constant power above 8 is an integer, exact and wrapping like `*` (as x ** 8 already was); it
went through f32's math.pow and lost digits past 2**24 (3 ** 16 gave 43046720)."""
import numpy as np

import skc


@skc.kernel(block=1)
def powers(out: skc.Ptr[skc.i64], x: skc.i32, y: skc.i64):
    out[0] = x ** 16
    out[1] = x ** 9
    out[2] = y ** 25
    out[3] = x ** 31        # wraps in i32, as x * x * ... does


def _wrap(v, bits):
    return (v + 2 ** (bits - 1)) % 2 ** bits - 2 ** (bits - 1)


def test_integer_powers_are_exact():
    out = np.zeros(4, np.int64)
    powers.interpret[1, 1](out, 3, 5)
    assert out.tolist() == [3 ** 16, 3 ** 9, 5 ** 25, _wrap(3 ** 31, 32)]


def test_their_type_is_the_bases():
    kernel = powers.compile(target="sm_90a")
    assert "math.pow" not in kernel.ir("tile")
