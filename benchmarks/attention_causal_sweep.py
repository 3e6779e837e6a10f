"""Causal attention: the default configuration against variations of it (lazy rescaling off, persistent blocks,
pairwise row reductions, 64-key blocks, warpgroup turns, causal tiles longest first across groups of heads) on the issue's two causal rows,
three rounds each in turn with cuDNN (triton do_bench medians).
Run: python benchmarks/attention_causal_sweep.py [--variants default,group4,...] [--rounds N]"""
from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

from attention import SDPBackend, sdpa, timed
from skc.blocks.attention_host import attention, default_config

ROWS = [(8, 16, 4096, 128), (4, 32, 8192, 128)]
VARIANTS = {"default": {}, "nolazy": dict(lazy_rescale=0.0), "persist": dict(persistent=True),
            "persist-nolazy": dict(persistent=True, lazy_rescale=0.0), "tree": dict(tree_reductions=True),
            "n64": dict(block_n=64, stages=4, value_stages=4), "pingpong": dict(pingpong=True),
            "persist-240": dict(persistent=True, producer_registers=24, consumer_registers=240),
            "group2": dict(head_group=2), "group4": dict(head_group=4), "group8": dict(head_group=8),
            "group16": dict(head_group=16)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    chosen = {name: VARIANTS[name] for name in args.variants.split(",")}
    for B, H, S, D in ROWS:
        q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        out, flops = torch.empty_like(q), 4 * B * H * S * S * D / 2
        base = default_config(D, "bf16", True, False)
        reference = sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, True)
        calls = {}
        for name, fields in chosen.items():
            try:
                config = dataclasses.replace(base, **fields)
                attention(q, k, v, causal=True, out=out, config=config)
            except Exception as e:  # a variation that does not fit: say so, go on
                print(name, type(e).__name__, str(e)[:150], flush=True)
                continue
            difference = (out - reference).abs().max().item()
            if not difference < 2e-2:
                print(f"{name}: max abs difference {difference:.3g} from cuDNN", flush=True)
                continue
            calls[name] = lambda c=config: attention(q, k, v, causal=True, out=out, config=c)
        calls["cudnn"] = lambda: sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, True)
        times = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                times[name].append(timed(call))
        tflops = {name: flops / statistics.median(t) / 1e12 for name, t in times.items()}
        print(f"{B}x{H}x{S}x{D} causal: " + "  ".join(f"{name} {value:.0f} ({value / tflops['cudnn']:.3f})"
                                                      for name, value in tflops.items()), flush=True)
        q = k = v = out = reference = None
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
