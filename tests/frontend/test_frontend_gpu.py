"""Issue 8 on a real GPU: float // and % (the LLVM lowering of the same formula the interpreter runs),
run-time breaks out of unrolled loops, and overflowing literals, against numpy and Python."""
import numpy as np
import pytest

import skc

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")

N = 1024


@skc.kernel
def divmod_f32(a: skc.Ptr[skc.f32], b: skc.Ptr[skc.f32], q: skc.Ptr[skc.f32], r: skc.Ptr[skc.f32]):
    i = skc.block_id(0) * skc.block_dim(0) + skc.thread_id(0)
    q[i] = a[i] // b[i]
    r[i] = a[i] % b[i]


@skc.kernel
def divmod_f64(a: skc.Ptr[skc.f64], b: skc.Ptr[skc.f64], q: skc.Ptr[skc.f64], r: skc.Ptr[skc.f64]):
    i = skc.block_id(0) * skc.block_dim(0) + skc.thread_id(0)
    q[i] = a[i] // b[i]
    r[i] = a[i] % b[i]


def operands(dtype):
    rng = np.random.default_rng(11)
    a = (rng.standard_normal(N) * 10.0 ** rng.integers(-3, 4, N)).astype(dtype)
    b = (rng.standard_normal(N) * 10.0 ** rng.integers(-3, 3, N)).astype(dtype)
    a[:4], b[:4] = [2.0, -2.0, 0.0, 7.5], [0.1, 0.1, -3.0, 2.5]
    return a, b


@pytest.mark.parametrize("kernel, dtype", [(divmod_f32, np.float32), (divmod_f64, np.float64)])
def test_float_floordiv_and_mod_on_the_gpu_match_numpy(kernel, dtype):
    a, b = operands(dtype)
    ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    q = torch.full((N,), float("nan"), device="cuda", dtype=ta.dtype)
    r = torch.full((N,), float("nan"), device="cuda", dtype=ta.dtype)
    kernel[N // 128, 128](ta, tb, q, r)
    torch.cuda.synchronize()
    want_q, want_r = np.floor_divide(a, b), np.remainder(a, b)
    got_q, got_r = q.cpu().numpy(), r.cpu().numpy()
    assert np.array_equal(got_q, want_q), np.nonzero(got_q != want_q)
    assert np.array_equal(got_r, want_r), np.nonzero(got_r != want_r)
    assert np.array_equal(np.signbit(got_r), np.signbit(want_r))


@skc.kernel
def runtime_break_in_static_range(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[0]
    for s in skc.static_range(4):
        if n > s:
            break
        if n == -s:
            continue
        a = a * 2.0 + x[s]
    x[0] = a
    h = 1e39
    x[1] = h


def test_runtime_break_in_static_range_on_the_gpu_matches_python():
    for n in range(-4, 4):
        start = np.arange(1.0, 9.0, dtype=np.float32)
        want = start.copy()
        runtime_break_in_static_range.fn(want, n)
        x = torch.from_numpy(start).cuda()
        runtime_break_in_static_range[1, 1](x, n)
        torch.cuda.synchronize()
        got = x.cpu().numpy()
        assert got[0] == want[0] and got[1] == np.inf, (n, got[:2], want[:2])
