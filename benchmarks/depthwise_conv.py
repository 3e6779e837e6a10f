"""GPU check of conv2d's depthwise kernel (skc/blocks/stencil.py) against F.conv2d (cuDNN, channels_last):
PASS/FAIL per shape (outputs poisoned with NaN before the launch; compared with a float64 reference), then the
median time of ~50 calls of each (torch.cuda.Event), and skc's achieved bandwidth (bytes of x + y over its time).
Run from the repo root: PYTHONPATH=$PWD python benchmarks/depthwise_conv.py (fifty-fifth session)"""
import sys
import time
import traceback

import torch
import torch.nn.functional as F

import skc
from skc.blocks import conv2d

torch.backends.cudnn.benchmark = True
BF16, F16 = torch.bfloat16, torch.float16
# (name, N, C, H, W, multiplier, R, stride, padding, dilation, bias, activation, dtype)
CASES = [
    ("mbv2 3x3 112x112x32 s1", 32, 32, 112, 112, 1, 3, 1, 1, 1, False, None, BF16),
    ("mbv2 3x3 56x56x144 s1", 32, 144, 56, 56, 1, 3, 1, 1, 1, True, "relu", BF16),
    ("mbv2 3x3 56x56x144 s2", 32, 144, 56, 56, 1, 3, 2, 1, 1, False, None, BF16),
    ("convnext 7x7 56x56x96", 32, 96, 56, 56, 1, 7, 1, 3, 1, True, None, BF16),
    ("convnext 7x7 14x14x384", 32, 384, 14, 14, 1, 7, 1, 3, 1, True, "gelu", BF16),
    ("3x3 s2 28x28x256 (brief's)", 32, 256, 28, 28, 1, 3, 2, 1, 1, False, None, BF16),
    ("multiplier 2 3x3 28x28x64", 32, 64, 28, 28, 2, 3, 1, 1, 1, True, None, BF16),
    ("fp16 3x3 56x56x144 s1", 32, 144, 56, 56, 1, 3, 1, 1, 1, False, "silu", F16),
    ("tails 3x3 17x19x40 n3", 3, 40, 17, 19, 1, 3, 1, 1, 1, True, None, BF16),
    ("5x5 dil2 s2 29x31x72", 8, 72, 29, 31, 1, 5, 2, 4, 2, False, None, F16),
]


def reference(x, w, b, stride, padding, dilation, activation, groups):
    y = F.conv2d(x.double(), w.double(), None if b is None else b.double(), stride, padding, dilation, groups)
    if activation == "relu":
        y = y.relu()
    elif activation == "gelu":
        y = F.gelu(y, approximate="tanh")
    elif activation == "silu":
        y = F.silu(y)
    return y


def torch_conv(x, w, b, stride, padding, dilation, activation, groups):
    y = F.conv2d(x, w, b, stride, padding, dilation, groups)
    if activation == "relu":
        return F.relu(y)
    if activation == "gelu":
        return F.gelu(y, approximate="tanh")
    if activation == "silu":
        return F.silu(y)
    return y


def median_ms(fn, calls=50):
    for _ in range(5):
        fn()
    times = []
    for _ in range(calls):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def main():
    failed = 0
    timings = []
    gen = torch.Generator(device="cuda").manual_seed(55)
    began = time.time()
    for name, N, C, H, W, m, R, stride, padding, dilation, bias, activation, dtype in CASES:
        try:
            x = torch.randn(N, C, H, W, device="cuda", generator=gen).to(dtype).to(memory_format=torch.channels_last)
            w = (torch.randn(m * C, 1, R, R, device="cuda", generator=gen) / R).to(dtype)
            w = w.to(memory_format=torch.channels_last)
            b = torch.randn(m * C, device="cuda", generator=gen).to(dtype) if bias else None
            want = reference(x, w, b, stride, padding, dilation, activation, C)
            out = torch.full(want.shape, float("nan"), dtype=dtype, device="cuda").to(memory_format=torch.channels_last)
            y = conv2d(x, w, b, stride, padding, dilation, activation, out=out, groups=C)
            torch.cuda.synchronize()
            error = (y.double() - want).abs()
            limit = 2e-2 * want.abs() + 2e-2   # (a few bf16 ulps: the output's rounding, f32 sums in another order)
            ok = bool(torch.isfinite(y).all()) and bool((error <= limit).all())
            cudnn_error = (torch_conv(x, w, b, stride, padding, dilation, activation, C).double() - want).abs().max()
            print(f"{'PASS' if ok else 'FAIL'} {name}: max error {error.max().item():.3g} (cuDNN's {cudnn_error:.3g})",
                  flush=True)
            failed += not ok
            t_skc = median_ms(lambda: conv2d(x, w, b, stride, padding, dilation, activation, groups=C))
            t_torch = median_ms(lambda: torch_conv(x, w, b, stride, padding, dilation, activation, C))
            moved = (x.numel() + want.numel()) * x.element_size()
            timings.append(f"TIME {name}: skc {t_skc:.4f} ms, F.conv2d {t_torch:.4f} ms, skc/torch speed "
                           f"{t_torch / t_skc:.2f}x; skc {moved / t_skc / 1e6:.0f} GB/s, torch "
                           f"{moved / t_torch / 1e6:.0f} GB/s ({moved / 1e6:.1f} MB of x + y)")
            print(timings[-1], flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name}: raised", flush=True)
            traceback.print_exc()
    print(f"{len(CASES) - failed} of {len(CASES)} passed in {time.time() - began:.1f} s on "
          f"{torch.cuda.get_device_name()}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
