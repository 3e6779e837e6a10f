"""Attention's exact exponents (AttentionConfig.exact_exponents, taken for a scale past 16) against one fma (the
default scale) and cuDNN, at sustained load (fair.sustained: 20 calls a batch, 8 rounds), on three of issue 12's rows
(fifty-seventh session). The exact form runs as scale 20 on q / (20 sqrt(D)): the same softmax, so the two outputs
are compared first. Run from the repo root: PYTHONPATH=$PWD python benchmarks/attention_exact_exponents.py
Output (H100, 2026-12-06): benchmarks/results/session57-2026-12-06-attention-exact-exponents-and-blocks-fuzz.txt"""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, "benchmarks")
from fair import report, sustained  # noqa: E402

from skc.blocks.attention_host import attention  # noqa: E402

for B, H, S, D, causal in [(8, 16, 4096, 128, False), (8, 16, 4096, 128, True), (8, 16, 4096, 64, False)]:
    q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    d = D ** -0.5
    # the same softmax both ways: scale 20 on q / (20 sqrt(D)) equals the default scale on q
    q20 = q * (d / 20.0)
    out1 = attention(q, k, v, causal=causal)
    out2 = attention(q20, k, v, causal=causal, scale=20.0)
    print("max diff exact vs fma", (out1.float() - out2.float()).abs().max().item(), flush=True)
    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    flops = 4 * B * H * S * S * D // (2 if causal else 1)
    r = sustained({"fma (scale 1/sqrt D)": lambda: attention(q, k, v, causal=causal),
                   "exact (scale 20)": lambda: attention(q20, k, v, causal=causal, scale=20.0),
                   "cudnn": cudnn}, flops, reps=20, rounds=8)
    report(f"{B}x{H}x{S}x{D} causal={causal}", r)
