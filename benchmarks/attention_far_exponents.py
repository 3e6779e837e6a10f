"""Attention's exponents with AttentionConfig(exact_exponents="far") and "checked" against exact_exponents=False
(one fma each, the default) and cuDNN, at sustained load (fair.sustained: 20 calls a batch, 8 rounds), on issue 12's
rows (fifty-eighth and sixty-seventh sessions): what the warp-uniform test for references past 2^24 costs where it
never fires ("far"), and what the one fma's flags and the second launch over no flagged tile cost ("checked"). Each
row's skc outputs are compared first (bit for bit: below the bound both are the fma's arithmetic).
`--small` times short calls instead, where the second launch's own cost shows.
Run from the repo root: PYTHONPATH=$PWD python benchmarks/attention_far_exponents.py [--quick | --small]"""
import dataclasses
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, "benchmarks")
from fair import report, sustained  # noqa: E402

import skc  # noqa: E402
from skc.blocks.attention_host import attention, default_config  # noqa: E402

ROWS = [(8, 16, 4096, 128, False), (8, 16, 4096, 128, True), (16, 16, 2048, 128, False), (4, 32, 8192, 128, True),
        (8, 16, 4096, 64, False), (1, 32, 16384, 128, False)]
SMALL = [(1, 8, 512, 128, False), (2, 16, 1024, 64, True), (4, 8, 1024, 128, True), (1, 16, 2048, 128, True)]
for B, H, S, D, causal in ROWS[:3] if "--quick" in sys.argv else SMALL if "--small" in sys.argv else ROWS:
    q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    base = default_config(D, "bf16", causal, False, problem=(B * H, S),
                          multiprocessors=skc.current_device().multiprocessors)
    base, far, checked = (dataclasses.replace(base, exact_exponents=mode) for mode in (False, "far", "checked"))
    fast = attention(q, k, v, causal=causal, config=base)
    same = [torch.equal(fast, attention(q, k, v, causal=causal, config=config)) for config in (far, checked)]
    print(f"{B}x{H}x{S}x{D} causal={causal}: far's and checked's outputs equal the fma's bit for bit: {same}",
          flush=True)

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    flops = 4 * B * H * S * S * D // (2 if causal else 1)
    r = sustained({"one fma (False)": lambda: attention(q, k, v, causal=causal, config=base),
                   "far": lambda: attention(q, k, v, causal=causal, config=far),
                   "checked": lambda: attention(q, k, v, causal=causal, config=checked),
                   "cudnn": cudnn}, flops, reps=20, rounds=8)
    report(f"{B}x{H}x{S}x{D} causal={causal}", r)
