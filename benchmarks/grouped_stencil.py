"""Grouped convolutions of 2, 4 and 8 channels a group (fifty-sixth session): skc's conv2d on the group stencil
(stencil.py) against the path it replaces (block-diagonal dense filters for 2 and 4 channels, the batched GEMM for
8) and against F.conv2d (cuDNN), bf16, channels_last; with variants of the stencil's pixels a thread. Time = events
around 30 back-to-back calls / 30 (the kernel's when the host keeps up), median of 5 rounds; every output checked
against float64 first. Run from the repo root: PYTHONPATH=$PWD python benchmarks/grouped_stencil.py"""
import dataclasses
import sys
import time

import torch
import torch.nn.functional as F

import skc  # noqa: F401
from skc.blocks import conv, conv2d, stencil

torch.backends.cudnn.benchmark = True
BF16 = torch.bfloat16
# (name, N, C, H, K, R, stride, groups)
CASES = [("resnext50 32x4d 3x3 56x56x128", 32, 128, 56, 128, 3, 1, 32),
         ("resnext50 32x4d 3x3 s2 56x56x128", 32, 128, 56, 128, 3, 2, 32),
         ("resnext 32x8d 3x3 56x56x256 (8)", 32, 256, 56, 256, 3, 1, 32),
         ("resnext 32x8d 3x3 s2 56x56x256 (8)", 32, 256, 56, 256, 3, 2, 32),
         ("g2 3x3 56x56x64", 32, 64, 56, 64, 3, 1, 32),
         ("g4 3x3 28x28x256", 32, 256, 28, 256, 3, 1, 64),
         ("g4 x2 filters 3x3 28x28x128", 32, 128, 28, 256, 3, 1, 32),
         ("g2 5x5 28x28x128", 32, 128, 28, 128, 5, 1, 64),
         ("g8 3x3 14x14x512", 32, 512, 14, 512, 3, 1, 64),
         ("depthwise 3x3 56x56x144", 32, 144, 56, 144, 3, 1, 144),
         ("depthwise 7x7 56x56x96", 32, 96, 56, 96, 7, 1, 96)]
ORIGINAL_TAKES, ORIGINAL_CONFIG = conv.takes, conv.stencil_config
# (pixels a thread, and threads a block: the rule's where None; the f32 staging of filters measured at 3ee17b4 was a
# StencilConfig field since removed)
VARIANTS = {"stencil": (None,), "cols2": (2,), "cols4": (4,), "cols8": (8,), "t256": (None, 256), "t64": (None, 64)}


def batch_ms(fn, calls=30, rounds=5):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / calls)
    return sorted(times)[len(times) // 2]


def with_columns(columns, threads=None):
    def config(c, dtype, epilogue, *shared):   # (shared: the device's shared memory, which conv2d passes)
        cfg = ORIGINAL_CONFIG(c, dtype, epilogue, *shared)
        if threads is not None:
            cfg = dataclasses.replace(cfg, groups=max(1, threads // cfg.lanes))
        return cfg if columns is None else dataclasses.replace(cfg, columns=columns)
    return config


def case(gen, N, C, H, K, R, stride, groups):
    """One case's x and w (bf16, channels_last, padding R // 2), F.conv2d's answer in float64 and cuDNN's time (ms)."""
    x = torch.randn(N, C, H, H, device="cuda", generator=gen).to(BF16).to(memory_format=torch.channels_last)
    w = (torch.randn(K, C // groups, R, R, device="cuda", generator=gen) / R).to(BF16)
    w = w.to(memory_format=torch.channels_last)
    want = F.conv2d(x.double(), w.double(), None, stride, R // 2, 1, groups)
    return x, w, want, batch_ms(lambda: F.conv2d(x, w, None, stride, R // 2, 1, groups))


def measured(label, x, w, want, t_cudnn, stride, groups) -> str:
    """skc's conv2d as conv's settings stand now: its output checked, then timed; its line (the plans it ran)."""
    pad = w.shape[2] // 2
    conv._PLANS.clear()
    try:
        y = conv2d(x, w, None, stride, pad, 1, groups=groups)
        torch.cuda.synchronize()
        ok = bool(((y.double() - want).abs() <= 2e-2 * want.abs() + 2e-2).all())
        kinds = ",".join(sorted({type(plan).__name__ for _, plan in conv._PLANS.values()}))
        t = batch_ms(lambda: conv2d(x, w, None, stride, pad, 1, groups=groups))
        return f"{label} {t * 1e3:.1f} us {t_cudnn / t:.2f}x [{kinds}]{'' if ok else ' WRONG'}"
    except Exception as error:
        return f"{label} raised {type(error).__name__}: {str(error)[:100]}"


def main():
    gen = torch.Generator(device="cuda").manual_seed(56)
    began = time.time()
    for name, N, C, H, K, R, stride, groups in CASES:
        x, w, want, t_cudnn = case(gen, N, C, H, K, R, stride, groups)
        line = [f"{name}: cudnn {t_cudnn * 1e3:.1f} us"]
        depthwise_only = lambda *a, **k: a[0] == a[2] and ORIGINAL_TAKES(*a, **k)   # (C == groups: the path before)
        runs = [] if C == groups else [("before", (None,), depthwise_only)]
        runs += [(label, variant, ORIGINAL_TAKES) for label, variant in VARIANTS.items()]
        for label, variant, takes in runs:
            conv.takes, conv.stencil_config = takes, with_columns(*variant)
            try:
                line.append(measured(label, x, w, want, t_cudnn, stride, groups))
            finally:
                conv.takes, conv.stencil_config = ORIGINAL_TAKES, ORIGINAL_CONFIG
        print(" | ".join(line), flush=True)
        if time.time() - began > 280:
            print("stopped: time", flush=True)
            break
    conv._PLANS.clear()
    sys.exit(0)


if __name__ == "__main__":
    main()
