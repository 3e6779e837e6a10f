"""The experiment that chose conv.SLAB (fifty-seventh session, before conv2d took slabs): grouped convolutions of 2-8
channels a group as conv2d's grouped GEMM over slabs of 32, 64 or 128 channels, each slab's filters block-diagonal and
made ahead (outside the timed calls), against the stencil (conv2d as it was) and F.conv2d (cuDNN) of the grouped
convolution and of the slab one. Times: events around 30 back-to-back calls, median of 5 rounds (grouped_stencil's
batch_ms); each slab output's largest error against float32 torch, relative to its largest value. Run from the repo
root before conv.SLAB (at 5567b9b); after it the "stencil" column is the slab path. Output:
benchmarks/results/session57-2026-12-06-slab-filters-ahead.txt"""
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, "benchmarks")
from grouped_stencil import CASES, batch_ms  # noqa: E402

from skc.blocks import conv2d  # noqa: E402

torch.backends.cudnn.benchmark = True
BF16 = torch.bfloat16


def slab_weight(w, groups, slab):
    K, cg, R, S = w.shape
    kg = K // groups
    per = slab // cg                      # groups a slab
    out = torch.zeros(K, slab, R, S, dtype=w.dtype, device=w.device)
    for g in range(groups):
        i = g % per
        out[g * kg:(g + 1) * kg, i * cg:(i + 1) * cg] = w[g * kg:(g + 1) * kg]
    return out.to(memory_format=torch.channels_last)


gen = torch.Generator(device="cuda").manual_seed(57)
for name, N, C, H, K, R, stride, groups in CASES:
    if C == groups:
        continue
    pad = R // 2
    x = torch.randn(N, C, H, H, device="cuda", generator=gen).to(BF16).to(memory_format=torch.channels_last)
    w = (torch.randn(K, C // groups, R, R, device="cuda", generator=gen) / R).to(BF16).to(memory_format=torch.channels_last)
    want = F.conv2d(x.float(), w.float(), None, stride, pad, 1, groups)
    line = [f"{name}: cudnn {batch_ms(lambda: F.conv2d(x, w, None, stride, pad, 1, groups)) * 1e3:.1f}",
            f"stencil {batch_ms(lambda: conv2d(x, w, None, stride, pad, 1, groups=groups)) * 1e3:.1f}"]
    for slab in (32, 64, 128):
        if C % slab or slab < C // groups:
            continue
        ws = slab_weight(w, groups, slab)
        gs = C // slab
        try:
            y = conv2d(x, ws, None, stride, pad, 1, groups=gs)
            err = ((y.float() - want).abs().max() / want.abs().max()).item()
            t = batch_ms(lambda: conv2d(x, ws, None, stride, pad, 1, groups=gs))
            tc = batch_ms(lambda: F.conv2d(x, ws, None, stride, pad, 1, gs))
            line.append(f"slab{slab} {t * 1e3:.1f} (err {err:.1e}; cudnn {tc * 1e3:.1f})")
        except Exception as e:
            line.append(f"slab{slab} failed {type(e).__name__}: {str(e)[:100]}")
    print(" | ".join(line), flush=True)
