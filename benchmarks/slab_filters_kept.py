"""conv2d's slab path (groups of 4 or 8 channels over slabs of 64: conv.SLAB) with its block-diagonal filters kept per
launch stream (sixtieth session: w copied onto their diagonals each call) against made each call (a zero fill and a
copy, and the inner convolution over new filters), in one process, in turn: host µs a call (100 calls, then the
synchronize) and events µs a call (30 back to back, median of 5 rounds), every output checked against float64 first;
then a profile of the kept path's host time. Slabs at any work (conv.SLAB_WORK = 0), so small rows take them too.
Run from the repo root on a GPU: PYTHONPATH=$PWD python benchmarks/slab_filters_kept.py"""
import cProfile
import io
import pstats
import sys
import time

import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from grouped_stencil import batch_ms, case  # noqa: E402
from skc.blocks import conv, conv2d  # noqa: E402

# (name, N, C, H, K, R, stride, groups)
CASES = [("g4 32x56x56x128", 32, 128, 56, 128, 3, 1, 32), ("g8 32x28x28x256", 32, 256, 28, 256, 3, 1, 32),
         ("g8 1x56x56x64", 1, 64, 56, 64, 3, 1, 8), ("32x8d 32x56x56x256", 32, 256, 56, 256, 3, 1, 32)]


def main():
    conv.SLAB_WORK = 0
    keeping = conv.keeping_stream
    gen = torch.Generator(device="cuda").manual_seed(1)
    for name, N, C, H, K, R, stride, groups in CASES:
        x, w, want, t_cudnn = case(gen, N, C, H, K, R, stride, groups)
        call = lambda: conv2d(x, w, None, stride, R // 2, 1, groups=groups)
        line = [f"{name}: cudnn {t_cudnn * 1e3:.1f} us"]
        for _ in range(2):
            for label, way in (("made each call", lambda x, s: None), ("kept", keeping)):
                conv.keeping_stream = way
                conv._PLANS.clear()
                y = call()
                torch.cuda.synchronize()
                ok = bool(((y.double() - want).abs() <= 2e-2 * want.abs() + 2e-2).all())
                for _ in range(5):
                    call()
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(100):
                    call()
                host = (time.perf_counter() - start) / 100
                torch.cuda.synchronize()
                line.append(f"{label}: host {host * 1e6:.1f} us, events {batch_ms(call) * 1e3:.1f} us"
                            + ("" if ok else " WRONG"))
        print(" | ".join(line), flush=True)
    conv.keeping_stream = keeping
    x, w, _, _ = case(gen, 32, 128, 56, 128, 3, 1, 32)
    call = lambda: conv2d(x, w, None, 1, 1, 1, groups=32)
    for _ in range(5):
        call()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(100):
        call()
    profile.disable()
    torch.cuda.synchronize()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(15)
    print(text.getvalue()[-3500:])


if __name__ == "__main__":
    main()
