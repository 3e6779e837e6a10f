"""Grouped convolutions of 4 to 32 channels a group (fifty-seventh session): skc's conv2d over slabs of 64 channels
(conv.SLAB: the batched GEMM on tensor cores over C/64 groups, each slab's filters block-diagonal, made each call)
against the stencil (CUDA cores) or the batched GEMM a group (no slabs), slabs for groups of 16 and 32 channels too,
and F.conv2d (cuDNN); bf16, channels_last.
Time = events around 30 back-to-back calls / 30, median of 5 rounds; every output checked against float64 first.
Run from the repo root: PYTHONPATH=$PWD python benchmarks/grouped_slabs.py [--quick]"""
import sys
import time

import torch

from grouped_stencil import case, measured
from skc.blocks import conv

torch.backends.cudnn.benchmark = True
# (name, N, C, H, K, R, stride, groups): ResNeXt-50 32x4d's grouped 3x3 of each stage (4, 8, 16, 32 channels a group),
# their stride-2 first blocks, ResNeXt 32x8d's first stage, and other widths
CASES = [("resnext50 32x4d s1 56x56x128 (4)", 32, 128, 56, 128, 3, 1, 32),
         ("resnext50 32x4d s2 56x56x128 (4)", 32, 128, 56, 128, 3, 2, 32),
         ("resnext50 32x4d s1 28x28x256 (8)", 32, 256, 28, 256, 3, 1, 32),
         ("resnext50 32x4d s2 56x56x256 (8)", 32, 256, 56, 256, 3, 2, 32),
         ("resnext50 32x4d s1 14x14x512 (16)", 32, 512, 14, 512, 3, 1, 32),
         ("resnext50 32x4d s1 7x7x1024 (32)", 32, 1024, 7, 1024, 3, 1, 32),
         ("resnext 32x8d s1 56x56x256 (8)", 32, 256, 56, 256, 3, 1, 32),
         ("g4 3x3 28x28x256", 32, 256, 28, 256, 3, 1, 64),
         ("g4 x2 filters 3x3 28x28x128", 32, 128, 28, 256, 3, 1, 32),
         ("g8 3x3 14x14x512", 32, 512, 14, 512, 3, 1, 64),
         ("g4 5x5 28x28x128 batch 8", 8, 128, 28, 128, 5, 1, 32),
         ("g8 3x3 56x56x64 batch 1", 1, 64, 56, 64, 3, 1, 8),
         # (sixty-first session) about the bound: 2.3e8 and 3.5e8 multiply-adds of 4 and 8 a group; 16 a group at
         # 1.2e8, 4.6e8 and 9.2e8
         ("resnext50 32x4d s1 56x56x128 (4) batch 16", 16, 128, 56, 128, 3, 1, 32),
         ("resnext50 32x4d s1 56x56x128 (4) batch 24", 24, 128, 56, 128, 3, 1, 32),
         ("resnext50 32x4d s1 28x28x256 (8) batch 16", 16, 256, 28, 256, 3, 1, 32),
         ("resnext50 32x4d s1 14x14x512 (16) batch 8", 8, 512, 14, 512, 3, 1, 32),
         ("g16 3x3 56x56x128 batch 8", 8, 128, 56, 128, 3, 1, 8),
         ("g16 3x3 28x28x256 batch 32", 32, 256, 28, 256, 3, 1, 16)]
ORIGINAL = (conv.SLAB, conv.SLAB_GROUP_CHANNELS, conv.SLAB_WORK)
# variant -> (SLAB, SLAB_GROUP_CHANNELS, SLAB_WORK): the default's rule, never slabs, slabs of 64 at any work
VARIANTS = {"default": ORIGINAL, "no slabs": (64, (), 0), "slab64 (any)": (64, (4, 8, 16, 32), 0)}


def main():
    quick = "--quick" in sys.argv
    gen = torch.Generator(device="cuda").manual_seed(57)
    began = time.time()
    for name, N, C, H, K, R, stride, groups in CASES:
        x, w, want, t_cudnn = case(gen, N, C, H, K, R, stride, groups)
        line = [f"{name}: cudnn {t_cudnn * 1e3:.1f} us"]
        for label, (slab, channels, work) in VARIANTS.items():
            if quick and label != "default":
                continue
            conv.SLAB, conv.SLAB_GROUP_CHANNELS, conv.SLAB_WORK = slab, channels, work
            try:
                line.append(measured(label, x, w, want, t_cudnn, stride, groups))
            finally:
                conv.SLAB, conv.SLAB_GROUP_CHANNELS, conv.SLAB_WORK = ORIGINAL
        print(" | ".join(line), flush=True)
        if time.time() - began > 280:
            print("stopped: time", flush=True)
            break
    conv._PLANS.clear()


if __name__ == "__main__":
    main()
