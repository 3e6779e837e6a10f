"""What the argument reduction before skc.sin costs (sixty-second session): an elementwise sine over 2**26 floats
(bound by memory) and 64 chained sines a thread over 2**22 (bound by the arithmetic; arguments up to 3.5, and up to
3e5, past the f32 reduction's 2**17), beside a copy, torch.sin, and the same chain of tanh (no reduction); and the
largest error against numpy's float64 sine over arguments up to 10**38.
Run it once with this tree and once with an older tree first on PYTHONPATH to compare. Timings: CUDA events around 50
launches after 5, best of three rounds, µs a launch."""
import numpy as np
import torch

import skc

F32P = skc.Ptr[skc.f32]


@skc.kernel(block=256)
def copy(x: F32P, y: F32P, n: skc.i32):
    i = skc.block_id(0) * 256 + skc.thread_id(0)
    if i < n:
        y[i] = x[i]


@skc.kernel(block=256)
def sine(x: F32P, y: F32P, n: skc.i32):
    i = skc.block_id(0) * 256 + skc.thread_id(0)
    if i < n:
        y[i] = skc.sin(x[i])


@skc.kernel(block=256)
def chained(x: F32P, y: F32P, n: skc.i32, tanh: skc.constexpr, scale: skc.constexpr):
    i = skc.block_id(0) * 256 + skc.thread_id(0)
    if i < n:
        v = x[i]
        for r in range(64):
            v = (skc.tanh(v) if tanh else skc.sin(v)) * scale + 0.5
        y[i] = v


def timed(launch) -> float:
    best = float("inf")
    for _ in range(3):
        for _ in range(5):
            launch()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(50):
            launch()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) * 1000 / 50)
    return best


def main():
    torch.manual_seed(0)
    n = 1 << 26
    x = torch.rand(n, device="cuda") * 200 - 100
    y = torch.empty_like(x)
    grid = -(-n // 256)
    print(f"device: {torch.cuda.get_device_name()}")
    print(f"copy of 2**26 f32: {timed(lambda: copy[grid, 256](x, y, n)):.1f} us")
    print(f"skc.sin of 2**26 f32: {timed(lambda: sine[grid, 256](x, y, n)):.1f} us")
    print(f"torch.sin of 2**26 f32: {timed(lambda: torch.sin(x, out=y)):.1f} us")
    m = 1 << 22
    xs, ys = x[:m].contiguous(), y[:m]
    for name, flag, scale in (("sin", False, 3.0), ("tanh", True, 3.0), ("sin", False, 3.0e5)):
        took = timed(lambda: chained[-(-m // 256), 256](xs, ys, m, flag, scale))
        print(f"64 chained {name} (of arguments up to {scale:g}) over 2**22: {took:.1f} us")
    rng = np.random.default_rng(1)
    wide = (10.0 ** rng.uniform(-3, 38.5, 1 << 20) * rng.choice([-1, 1], 1 << 20)).astype(np.float32)
    dx = torch.from_numpy(wide).cuda()
    dy = torch.empty_like(dx)
    sine[-(-dx.numel() // 256), 256](dx, dy, dx.numel())
    error = np.abs(dy.cpu().numpy() - np.sin(wide.astype(np.float64)))
    print(f"skc.sin over 2**20 arguments up to 1e38: largest error {error.max():.3g}, "
          f"torch.sin's {np.abs(torch.sin(dx).cpu().numpy() - np.sin(wide.astype(np.float64))).max():.3g}")


if __name__ == "__main__":
    main()
