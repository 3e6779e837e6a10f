"""64-bit shifts by counts past 2**32: the IR gives 0 (or the sign, for a signed >>) for a count of the width or more,
and the lowering guards the shift with a select. LLVM 22's NVPTX backend (PerformSELECTShiftCombine) replaces the
guarded shift by a PTX shift, which clamps the count, but gives it only the count's low 32 bits: x << (2**32 + 1) was
x << 1 on NVIDIA (the mixed-type fuzzer, tests/fuzz/mixgen.py). The count is clamped to 64 first."""
import re

import numpy as np
import pytest

import skc
from skc.backends import ptx_tools


@skc.kernel(block=1)
def shifts(a: skc.Ptr[skc.i64], n: skc.Ptr[skc.i64], m: skc.Ptr[skc.i32], out: skc.Ptr[skc.u16],
           wide: skc.Ptr[skc.u64]):
    out[0] = skc.u16((a[0] << n[0]) ^ m[0])
    out[1] = skc.u16((skc.u64(a[0]) >> skc.u64(n[0])) ^ m[0])
    wide[0] = skc.u64(a[0]) << skc.u64(n[0])


def test_the_interpreter_gives_zero_past_the_width():
    out, wide = np.zeros(2, np.uint16), np.zeros(1, np.uint64)
    shifts.interpret[1, 1](np.array([5], np.int64), np.array([2 ** 32 + 1], np.int64), np.array([17], np.int32),
                           out, wide)
    assert out.tolist() == [17, 17] and wide[0] == 0


def test_the_ptx_shifts_by_a_clamped_count():
    if not ptx_tools.have_nvjitlink():
        pytest.skip("nvJitLink is not installed")
    ptx = shifts.compile(target="sm_90a").asm("ptx")
    counts = re.findall(r"(?:shl|shr)\.[bu]64\s+%rd\d+, %rd\d+, (%r\d+);", ptx)
    assert counts
    for count in counts:   # each count is the low half of a min(n, 64), never of n itself
        source = re.search(rf"cvt\.u32\.u64\s+{count}, (%rd\d+);", ptx).group(1)
        assert re.search(rf"min\.u64\s+{source}, %rd\d+, 64;", ptx), ptx
