"""attention's problem-dependent defaults against the other choice, end to end, timed in turn with cuDNN's SDPA
(benchmarks/fair.py), two rounds a shape: D = 64 without a causal mask, persistent blocks or a tile a block
(attention_host.PERSISTENT_TILES_64); causal D = 128, tiles fetched from a counter or a tile a block
(attention_host.fetches_tiles_of_128). The twenty-eighth session's last run measured the committed rules with it
(they were fitted with scratch scripts timing the same way, whose output is under benchmarks/results).
Run: python benchmarks/attention_rules_ab.py [BxHxHkvxSxD[:causal] ...]"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fair import bench_ms, fair_times  # noqa: E402
from skc.blocks.attention_host import attention, default_config  # noqa: E402

SHAPES = ["12x8x8x256x64", "24x16x4x200x64", "2x24x24x1536x64", "8x16x16x4096x64", "1x12x12x6000x64",
          "1x8x8x3264x128:causal", "1x4x4x6000x128:causal", "1x16x16x16384x128:causal", "6x16x16x1200x128:causal",
          "8x16x16x4096x128:causal"]


def main():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    parser = argparse.ArgumentParser()
    parser.add_argument("shapes", nargs="*", default=SHAPES)
    args = parser.parse_args()
    for spec in args.shapes:
        shape, _, kind = spec.partition(":")
        causal = kind == "causal"
        B, H, Hkv, S, D = map(int, shape.split("x"))
        q = torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16)
        k, v = (torch.randn(B, Hkv, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(2))

        def cudnn():
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                        enable_gqa=H != Hkv)

        chosen = default_config(D, "bf16", causal, problem=(B * H, S), multiprocessors=torch.cuda.get_device_properties(
            0).multi_processor_count)
        other = (replace(chosen, persistent=not chosen.persistent, fetch_tiles=not chosen.fetch_tiles) if causal
                 else replace(chosen, persistent=not chosen.persistent))
        expected = cudnn()
        calls = {"cudnn": cudnn}
        for name, config in (("default", None), ("other", other)):
            error = (attention(q, k, v, causal=causal, config=config) - expected).abs().max().item()
            assert error < 2e-2, (spec, name, error)
            calls[name] = lambda config=config: attention(q, k, v, causal=causal, config=config)
        flops = 4 * B * H * S * S * D / (2 if causal else 1)
        for round_ in range(2):
            times = fair_times(calls, bench_ms)
            reference = flops / times["cudnn"] / 1e9
            print(f"{spec} r{round_} (default persistent={chosen.persistent}, fetch_tiles={chosen.fetch_tiles}): "
                  f"cudnn {reference:.1f} | " + "  ".join(f"{name} {flops / times[name] / 1e9:.1f} "
                                                           f"({flops / times[name] / 1e9 / reference:.2f})"
                                                           for name in ("default", "other")), flush=True)


if __name__ == "__main__":
    main()
