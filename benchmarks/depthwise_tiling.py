"""Depthwise tiling sweep (fifty-fifth session): per shape, skc's conv2d with variants of stencil.stencil_config's
tiling (threads a block, output pixels a thread) against F.conv2d; time = events around 30 back-to-back calls / 30
(the kernel's when the host keeps up), median of 5 rounds. Run from the repo root: PYTHONPATH=$PWD python
benchmarks/depthwise_tiling.py"""
import dataclasses, sys, time
import torch
import torch.nn.functional as F
import skc
from skc.blocks import conv, conv2d
torch.backends.cudnn.benchmark = True
BF16 = torch.bfloat16
CASES = [("mbv2 112x112x32", 32, 32, 112, 112, 3, 1, 1), ("mbv2 56x56x144 s1", 32, 144, 56, 56, 3, 1, 1),
         ("mbv2 56x56x144 s2", 32, 144, 56, 56, 3, 2, 1), ("convnext 7x7 56x56x96", 32, 96, 56, 56, 7, 1, 3),
         ("convnext 7x7 14x14x384", 32, 384, 14, 14, 7, 1, 3), ("3x3 s2 28x28x256", 32, 256, 28, 28, 3, 2, 1)]
original = conv.stencil_config
VARIANTS = {"default": {}, "old(256,4)": {"threads": 256, "columns": 4}, "t128c8": {"threads": 128, "columns": 8},
            "t512c8": {"threads": 512, "columns": 8}, "t256c8": {"threads": 256, "columns": 8}}

def patched(spec):
    def config(c, dtype, epilogue, *shared):
        cfg = original(c, dtype, epilogue, *shared)
        changes = {}
        if "width" in spec and c.C % spec["width"] == 0:
            changes["width"] = spec["width"]
            vectors = c.C // spec["width"]
            changes["lanes"] = min(range(1, min(vectors, 16) + 1), key=lambda n: (-(-vectors // n) * n - vectors, -n))
        if "columns" in spec:
            changes["columns"] = spec["columns"]
        cfg = dataclasses.replace(cfg, **changes)
        if "threads" not in spec:
            return cfg
        return dataclasses.replace(cfg, groups=max(1, spec["threads"] // cfg.lanes))
    return config

def batch_ms(fn, calls=30, rounds=5):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(rounds):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(calls): fn()
        e.record(); e.synchronize(); out.append(s.elapsed_time(e) / calls)
    return sorted(out)[len(out) // 2]

def main():
    gen = torch.Generator(device="cuda").manual_seed(5)
    began = time.time()
    for name, N, C, H, W, R, stride, pad in CASES:
        x = torch.randn(N, C, H, W, device="cuda", generator=gen).to(BF16).to(memory_format=torch.channels_last)
        w = (torch.randn(C, 1, R, R, device="cuda", generator=gen) / R).to(BF16).to(memory_format=torch.channels_last)
        want = F.conv2d(x.double(), w.double(), None, stride, pad, 1, C)
        t_torch = batch_ms(lambda: F.conv2d(x, w, None, stride, pad, 1, C))
        moved = (x.numel() + want.numel()) * 2
        line = [f"{name}: cudnn {t_torch*1e3:.1f} us ({moved / t_torch / 1e6:.0f} GB/s)"]
        for label, spec in VARIANTS.items():
            conv._PLANS.clear(); conv.stencil_config = patched(spec)
            try:
                y = conv2d(x, w, None, stride, pad, 1, groups=C)
                torch.cuda.synchronize()
                ok = bool(((y.double() - want).abs() <= 2e-2 * want.abs() + 2e-2).all())
                t = batch_ms(lambda: conv2d(x, w, None, stride, pad, 1, groups=C))
                line.append(f"{label} {t*1e3:.1f} us {t_torch / t:.2f}x{'' if ok else ' WRONG'}")
            except Exception as error:
                line.append(f"{label} raised {type(error).__name__}: {str(error)[:80]}")
            if time.time() - began > 100: break
        print(" | ".join(line), flush=True)
    conv.stencil_config = original


if __name__ == "__main__":
    main()
