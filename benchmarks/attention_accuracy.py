"""Attention's accuracy over several seeds, skc against torch's flash and cuDNN backends: on each of the issue's
rows (B = 1, H = 4, all four heads analysed), the max abs error against float32 on the benchmark's 256 rows
(benchmarks/attention.py's measure), on all rows, and the RMS error, for skc's default configuration, skc
without lazy rescaling (or persistent tiles), flash, cuDNN and the float32 result rounded to bf16 (the floor:
output rounding alone). --lazy 4,2 adds skc with those lazy_rescale thresholds (rows that rescale lazily).
Run: python benchmarks/attention_accuracy.py [--seeds N] [--lazy T,...]."""
import argparse
import math
import statistics
from dataclasses import replace

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from skc.blocks.attention_host import attention, default_config

ROWS = [(4096, 128, False), (4096, 128, True), (2048, 128, False), (8192, 128, True), (4096, 64, False),
        (16384, 128, False)]   # (S, D, causal) of the rows
HEADS = 4


def reference(q, k, v, causal):
    s = q.float() @ k.float().transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        S = q.shape[2]
        s = s.masked_fill(torch.ones(S, S, device=q.device, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, -1) @ v.float()


def outputs(q, k, v, causal, expected, lazy=()):
    S, D = q.shape[2], q.shape[3]
    found = {"skc": attention(q, k, v, causal=causal)}
    config = default_config(D, "bf16", causal, False)
    if config.lazy_rescale:
        found["skc-nolazy"] = attention(q, k, v, causal=causal, config=replace(config, lazy_rescale=0.0))
        for threshold in lazy:
            found[f"skc-lazy{threshold:g}"] = attention(q, k, v, causal=causal,
                                                       config=replace(config, lazy_rescale=threshold))
    if config.persistent:
        found["skc-nopers"] = attention(q, k, v, causal=causal,
                                       config=replace(config, persistent=False, fetch_tiles=False))
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        with sdpa_kernel(backend):
            found[name] = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    found["floor"] = expected.bfloat16()
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--lazy", default="", help="lazy_rescale thresholds to add, a comma list")
    args = parser.parse_args()
    lazy = [float(t) for t in args.lazy.split(",") if t]
    for S, D, causal in ROWS:
        runs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            q, k, v = (torch.randn(1, HEADS, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            expected = torch.cat([reference(q[:, h:h + 1], k[:, h:h + 1], v[:, h:h + 1], causal)
                                  for h in range(HEADS)], 1)
            errors = {}
            for name, got in outputs(q, k, v, causal, expected, lazy).items():
                error = (got.float() - expected).abs()
                errors[name] = (error[:, :1, -256:].max().item(), error.max().item(), error.pow(2).mean().sqrt().item())
            runs.append(errors)
        print(f"S={S} D={D} causal={causal}")
        for name in runs[0]:
            last = " ".join(f"{run[name][0]:.2e}" for run in runs)
            print(f"  {name:11s} last256 max {last} | all rows max (median) "
                  f"{statistics.median(run[name][1] for run in runs):.3e} | rms (median) "
                  f"{statistics.median(run[name][2] for run in runs):.4e}")
        for name in (n for n in runs[0] if n.startswith("skc")):
            wins = sum(run[name][0] <= run["flash"][0] for run in runs)
            print(f"  {name} <= flash on the 256 rows: {wins}/{len(runs)} seeds; on all rows: "
                  f"{sum(run[name][1] <= run['flash'][1] for run in runs)}/{len(runs)}", flush=True)


if __name__ == "__main__":
    main()
