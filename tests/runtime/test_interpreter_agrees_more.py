"""Where the interpreter and the GPU's code disagreed (helpers' searches, forty-first session), now one: integer
division by zero (the backends divide by 1); a run-time range step of 0 (the backends count down, comparing i > ub);
bf16 and fp8 NaNs and e5m2 infinities copied through registers (the GPU's stores move bits unchanged); atom.add.f32
on global memory flushing subnormals; (-inf) ** y for y no integer (the backend gave NaN, C's pow inf or 0); a
pointer minus an unsigned offset (negated in its own type, it wrapped); block and warp sums over a partial last warp
(lanes past the block's end were added); a block past 64 threads along z (CUDA refuses it). The GPU's side is its
PTX, read by the repository's PTX emulator where it matters (tests/fuzz/ptx_emulator.py)."""
import math
import os
import sys

import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402

ml_dtypes = pytest.importorskip("ml_dtypes")


def test_integer_division_by_zero_divides_by_one():
    @skc.kernel(block=4)
    def divide(a: skc.Ptr[skc.i32], q: skc.Ptr[skc.i32], r: skc.Ptr[skc.i32], d: skc.i32):
        t = skc.thread_id(0)
        q[t] = a[t] // d
        r[t] = a[t] % d

    a = np.array([7, -7, 0, -2 ** 31], np.int32)
    q, r = np.zeros(4, np.int32), np.ones(4, np.int32)
    divide[1, 4](a, q, r, 0)
    assert q.tolist() == a.tolist() and r.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("start, stop, expected", [(0, 10, 0), (10, 0, 5)])
def test_a_run_time_step_of_zero_runs_as_the_backends_do(start, stop, expected):
    @skc.kernel(block=1)
    def count(out: skc.Ptr[skc.i32], lo: skc.i32, hi: skc.i32, step: skc.i32):
        n = 0
        for i in range(lo, hi, step):
            n += 1
            if n == 5:
                break
        out[0] = n

    out = np.zeros(1, np.int32)
    count[1, 1](out, start, stop, 0)
    assert out[0] == expected   # (i < ub counting up, i > ub otherwise: lowering._loop_condition)


@pytest.mark.parametrize("dtype, codes", [(ml_dtypes.bfloat16, [0x7F81, 0x7FFF, 0xFFFF, 0x7FC1, 0x7F80]),
                                          (ml_dtypes.float8_e4m3fn, [0x7F, 0xFF, 0x01, 0x80]),
                                          (ml_dtypes.float8_e5m2, [0x7C, 0xFC, 0x7D, 0xFF, 0x7B])])
def test_a_copy_keeps_nan_codes_and_infinities(dtype, codes):
    @skc.kernel(block=8)
    def copy(x, out, n: skc.i32):
        t = skc.thread_id(0)
        if t < n:
            out[t] = x[t]

    bits = np.uint16 if np.dtype(dtype).itemsize == 2 else np.uint8
    x = np.array(codes, bits).view(dtype)
    out = np.zeros_like(x)
    copy[1, 8](x, out, len(codes))
    assert out.view(bits).tolist() == codes


def test_atomic_add_f32_on_global_memory_flushes_subnormals():
    @skc.kernel(block=1)
    def add(x: skc.Ptr[skc.f32], v: skc.f32):
        skc.atomic_add(x, v)

    for start, value in ((0.0, 1e-40), (1.5e-38, -1.4e-38)):
        x = np.array([start], np.float32)
        add[1, 1](x, value)
        assert x[0] == 0.0


def test_minus_infinity_to_a_power_that_is_no_integer():
    @skc.kernel(block=4)
    def power(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
        t = skc.thread_id(0)
        out[t] = x[t] ** y[t]

    x = np.full(4, -np.inf, np.float32)
    y = np.array([0.5, -0.5, 2.5, -1.5], np.float32)
    out = np.zeros(4, np.float32)
    power[1, 4](x, y, out)
    assert out.tolist() == [math.inf, 0.0, math.inf, 0.0]
    ptx = power.compile(x, y, out, target="sm_90a").asm("ptx")
    emulated = ptx_emulator.run_grid(ptx, "power", [x.copy(), y.copy(), np.zeros(4, np.float32)], 1, 4)[2]
    assert emulated.tolist() == out.tolist()


@pytest.mark.parametrize("kind", [skc.u8, skc.u16, skc.u32, skc.u64])
def test_a_pointer_minus_an_unsigned_offset(kind):
    @skc.kernel(block=1)
    def back(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], u: kind):
        out[0] = ((x + u) - u)[1]

    out = np.zeros(1, np.float32)
    back[1, 1](np.arange(8, dtype=np.float32), out, 3)
    assert out[0] == 1.0


@pytest.mark.parametrize("block", [(33, 1, 1), (48, 1, 1), (16, 3, 1), (100, 1, 1)])
def test_reductions_over_a_partial_last_warp(block):
    @skc.kernel(block=block)
    def reduce(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32]):
        t = skc.thread_id(0) + skc.thread_id(1) * skc.block_dim(0)
        v = x[t]
        total, largest, smallest, warp = skc.block_sum(v), skc.block_max(v), skc.block_min(v), skc.warp_sum(v)
        if t == 0:
            out[0] = total
            out[1] = largest
            out[2] = smallest
        out[3 + t] = warp

    n = block[0] * block[1]
    x = (np.arange(n, dtype=np.float32) * 7 % 13) - 5
    out = np.zeros(3 + n, np.float32)
    reduce[1, block](x, out)
    assert out[:3].tolist() == [x.sum(), x.max(), x.min()]
    assert out[3:].tolist() == [x[i // 32 * 32:i // 32 * 32 + 32].sum() for i in range(n)]
    reduce.compile(target="sm_90a")
    reduce.compile(target="gfx942")


def test_a_block_past_64_threads_along_z_is_refused():
    @skc.kernel
    def tall(x: skc.Ptr[skc.f32]):
        x[0] = 1.0

    with pytest.raises(skc.LaunchError, match="along x, y, z"):
        tall[1, (1, 1, 65)](np.zeros(1, np.float32))
    with pytest.raises(skc.CompileError, match="along x, y, z"):
        tall.compile(target="sm_90a", block=(1, 1, 65))


@pytest.mark.parametrize("dtype, np_type", [(skc.i64, np.int64), (skc.u64, np.uint64)])
def test_a_64_bit_shift_by_a_count_past_2_to_32(dtype, np_type):
    # (LLVM's NVPTX backend made select(n >= 64, 0, shl(x, n)) one shl.b64 of n's low 32 bits: n = 2**32 shifted by 0)
    @skc.kernel(block=4)
    def shifts(x: skc.Ptr[dtype], n: skc.Ptr[dtype], left: skc.Ptr[dtype], right: skc.Ptr[dtype]):
        t = skc.thread_id(0)
        left[t] = x[t] << n[t]
        right[t] = x[t] >> n[t]

    x = np.array([-1, 5, -1, 7], np.int64).astype(np_type)
    n = np.array([2 ** 32, 2 ** 32 + 1, -2 ** 63, 3], np.int64).astype(np_type)
    left, right = np.zeros(4, np_type), np.zeros(4, np_type)
    shifts[1, 4](x, n, left, right)
    sign = np_type(-1 if dtype is skc.i64 else 0)
    assert left.tolist() == [0, 0, 0, 56] and right.tolist() == [sign, 0, sign, 0]
    ptx = shifts.compile(x, n, left, right, target="sm_90a").asm("ptx")
    emulated = ptx_emulator.run_grid(ptx, "shifts", [x, n, np.zeros(4, np_type), np.zeros(4, np_type)], 1, 4)
    assert emulated[2].tolist() == left.tolist() and emulated[3].tolist() == right.tolist()
