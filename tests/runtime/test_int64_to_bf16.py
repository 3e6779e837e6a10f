"""A 64-bit integer cast to bf16 rounds once, to nearest even, as arith.cast defines and as PTX's cvt.rn.bf16.s64 /
.u64 do (the NVPTX lowering's instructions). The interpreter rounded twice, to float64 and then to bf16: a value just
above a bf16 midpoint that float64 rounds onto the midpoint then went to the even neighbour below."""
import numpy as np

import skc


@skc.kernel(block=8)
def to_bf16(x: skc.Ptr[skc.i64], out: skc.Ptr[skc.f32], out_u: skc.Ptr[skc.f32]):
    t = skc.thread_id(0)
    out[t] = skc.f32(skc.bf16(x[t]))
    out_u[t] = skc.f32(skc.bf16(skc.u64(x[t])))


def _bf16_once(v: int) -> float:
    """v rounded once to bf16 (8 significant bits, ties to even), exactly."""
    if v == 0:
        return 0.0
    size = abs(v)
    shift = size.bit_length() - 8
    if shift <= 0:
        return float(v)
    q, r = divmod(size, 1 << shift)
    half = 1 << (shift - 1)
    if r > half or r == half and q & 1:
        q += 1
    return float(q << shift) * (1 if v > 0 else -1)


VALUES = [2 ** 62 + 2 ** 54 + 1, -(2 ** 62 + 2 ** 54 + 1), 2 ** 62 + 2 ** 54, 2 ** 60 + 2 ** 52 + 3, 2 ** 53 + 1,
          -2 ** 63, 2 ** 63 - 1, 12345]


def test_a_64_bit_int_rounds_once_to_bf16():
    x = np.array(VALUES, np.int64)
    out, out_u = np.zeros(8, np.float32), np.zeros(8, np.float32)
    to_bf16.interpret[1, 8](x, out, out_u)
    assert out.tolist() == [_bf16_once(v) for v in VALUES]
    assert out_u.tolist() == [_bf16_once(v % 2 ** 64) for v in VALUES]


def test_the_ptx_converts_in_one_instruction():
    ptx = to_bf16.compile(np.zeros(8, np.int64), np.zeros(8, np.float32), np.zeros(8, np.float32),
                          target="sm_90a").asm("ptx")
    assert "cvt.rn.bf16.s64" in ptx and "cvt.rn.bf16.u64" in ptx
