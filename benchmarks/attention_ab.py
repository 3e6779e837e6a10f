"""skc attention against cuDNN at sustained load (fair.sustained: ~150 ms batches of back-to-back calls, the two
alternated over rounds, medians), on the issue-12 shapes: steadier than benchmarks/attention.py's short bursts.
Run: python benchmarks/attention_ab.py [ROWS] [ROUNDS] [VARIANTS] (ROWS: a comma list of indices into SHAPES, default
all; VARIANTS: a comma list of keys of VARIANTS, AttentionConfig fields over the default's, timed beside it)."""
import dataclasses
import os
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from skc.blocks.attention_host import attention, default_config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fair import report, sustained  # noqa: E402

SHAPES = [(8, 16, 4096, 128, False), (8, 16, 4096, 128, True), (16, 16, 2048, 128, False), (4, 32, 8192, 128, True),
          (8, 16, 4096, 64, False), (1, 32, 16384, 128, False)]

# (a variant of blocks a tile sets fetch_tiles=False too: the causal D = 128 default's blocks fetch their tiles)
VARIANTS = {"persistent": {"persistent": True, "lazy_rescale": 0.0},
            "lazy": {"persistent": False, "fetch_tiles": False, "lazy_rescale": 8.0},
            "persistent-lazy": {"persistent": True, "lazy_rescale": 8.0}, "lazy4": {"lazy_rescale": 4.0},
            "lazy2": {"lazy_rescale": 2.0}, "lazy1": {"lazy_rescale": 1.0},
            "fetch": {"persistent": True, "fetch_tiles": True},
            "fetch-tree": {"persistent": True, "fetch_tiles": True, "tree_reductions": True},
            "tile-a-block": {"persistent": False, "fetch_tiles": False}}


def main():
    rows = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else None
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    variants = sys.argv[3].split(",") if len(sys.argv) > 3 else []
    for i, (B, H, S, D, causal) in enumerate(SHAPES):
        if rows and str(i) not in rows:
            continue
        q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        out = torch.empty_like(q)
        flops = 4 * B * H * S * S * D / (2 if causal else 1)

        def cudnn(q=q, k=k, v=v, causal=causal):
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

        calls = {"skc": lambda: attention(q, k, v, causal=causal, out=out)}
        base = default_config(D, "bf16", causal, False)
        for name in variants:
            config = dataclasses.replace(base, **VARIANTS[name])
            calls[name] = lambda config=config: attention(q, k, v, causal=causal, out=out, config=config)
        calls["cudnn"] = cudnn
        reference = cudnn()
        attention(q, k, v, causal=causal, out=out)
        print("max diff vs cudnn", (out - reference).abs().max().item())
        reps = max(5, int(150 / (flops / 6.0e14 * 1e3)))   # ~150 ms a sample at 600 TFLOP/s
        report(f"{B}x{H}x{S}x{D}{' causal' if causal else ''} reps={reps}", sustained(calls, flops, reps, rounds), 12)
        q = k = v = out = reference = None
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
