"""Attention forward, skc (composed from the blocks) against torch SDPA with the cuDNN and flash backends, on the
issue's shapes; TFLOP/s counting 4·B·H·S²·D (halved when causal); accuracy (max abs error against a float32
reference) of skc and flash on the same data, times triton.testing.do_bench medians, taken in turn (fair.py). Prints one table. Run: python benchmarks/attention.py [--quick] [--sweep] [--compare] [--no-variants] [--json FILE]."""
from __future__ import annotations

import math
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from skc.blocks.attention_host import attention

from fair import fair_times

SHAPES = [  # (B, H, S, D, causal)
    (8, 16, 4096, 128, False), (8, 16, 4096, 128, True), (16, 16, 2048, 128, False), (4, 32, 8192, 128, True),
    (8, 16, 4096, 64, False), (1, 32, 16384, 128, False),
    (2, 16, 1024, 128, False),   # (not the issue's: a small problem, where the host path shows)
]


def timed(fn):
    """Seconds per call: triton's do_bench median (as the other benchmarks; 20 back-to-back calls around CUDA
    events, used before, moved by up to 6 % between two runs of the same kernel)."""
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=100, return_mode="median") / 1e3


def sdpa(backend, q, k, v, causal):
    with sdpa_kernel(backend):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


def error_of(got, q, k, v, causal, rows=256):
    """Max abs error against float32 on the last `rows` query rows of head 0 of batch 0 (all keys)."""
    qs = q[:1, :1, -rows:].float()
    s = qs @ k[:1, :1].float().transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        first = q.shape[2] - rows
        query = first + torch.arange(rows, device=q.device)
        keep = torch.arange(k.shape[2], device=q.device)[None, :] <= query[:, None]
        s = s.masked_fill(~keep, float("-inf"))
    expected = torch.softmax(s, -1) @ v[:1, :1].float()
    return (got[:1, :1, -rows:].float() - expected).abs().max().item()


def sweep():
    """skc's TFLOP/s on (8, 16, 4096, 128) and (8, 16, 4096, 64) for a few configurations (AttentionConfig fields
    beside the defaults)."""
    from skc.blocks.attention_kernel import AttentionConfig

    B, H, S = 8, 16, 4096
    for D in (128, 64):
        q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        out = torch.empty_like(q)
        for causal in (False, True):
            flops = 4 * B * H * S * S * D / (2 if causal else 1)
            for fields in ({}, dict(tree_reductions=True), dict(exp2_on_fma=8), dict(exp2_on_fma=4),
                           dict(exp2_on_fma=3), dict(exp2_on_fma=2), dict(exp2_on_fma=4, tree_reductions=True),
                           dict(producer_registers=24, consumer_registers=240), dict(stages=3), dict(pingpong=True),
                           dict(pingpong=True, exp2_on_fma=4)):
                fields = dict(dict(overlap=True, value_stages=3), **fields)   # the default's, then the variation
                config = AttentionConfig(head_dim=D, causal=causal, **fields)
                name = f"sweep D={D} causal={causal} {fields}"
                try:
                    tflops = flops / timed(lambda c=config, causal=causal: attention(q, k, v, causal=causal, out=out,
                                                                                     config=c)) / 1e12
                    print(f"{name}: {tflops:.1f} TFLOP/s", flush=True)
                except Exception as e:  # a configuration that does not fit: say so, go on
                    print(f"{name}: {type(e).__name__}: {str(e)[:200]}", flush=True)
        q = k = v = out = None
        torch.cuda.empty_cache()


def compare(rounds: int = 3):
    """The default configuration against a few variations on every shape (and D = 64 causal), timed in turn
    `rounds` times with cuDNN beside them (one GPU's clocks move by several percent within a run): medians."""
    import statistics

    from skc.blocks.attention_kernel import AttentionConfig

    three = dict(block_m=192, consumers=3, producer_registers=24, consumer_registers=160)   # D = 64 only (registers)
    variations = {"default": {}, "pingpong+tree": dict(pingpong=True, tree_reductions=True), "c3": three,
                  "c3 s3/4": dict(three, stages=3, value_stages=4), "c3 pingpong": dict(three, pingpong=True),
                  "c3 pingpong+tree": dict(three, pingpong=True, tree_reductions=True)}
    # one consumer warpgroup a block, two blocks an SM (their softmax and MMAs interleave as two warpgroups' do)
    one = dict(block_m=64, consumers=1, blocks_per_sm=2)
    variations.update({"c1x2 n64 ov": dict(one, block_n=64, stages=2, value_stages=3),
                       "c1x2 n64": dict(one, block_n=64, overlap=False, stages=2, value_stages=2),
                       "c1x2 n128": dict(one, block_n=128, overlap=False, stages=1, value_stages=1)})
    if "--only-c1" in sys.argv:
        variations = {name: fields for name, fields in variations.items() if name == "default" or name.startswith("c1")}
    only = sys.argv[sys.argv.index("--compare") + 1] if sys.argv.index("--compare") + 1 < len(sys.argv) else ""
    for B, H, S, D, causal in SHAPES + [(8, 16, 4096, 64, True)]:
        if only.isdigit() and D != int(only):   # --compare 64: only that head dimension's shapes
            continue
        q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        out, flops = torch.empty_like(q), 4 * B * H * S * S * D / (2 if causal else 1)
        configs = {name: None if name == "default" else
                   AttentionConfig(head_dim=D, causal=causal, **dict(dict(overlap=True, value_stages=3), **fields))
                   for name, fields in variations.items() if D == 64 or not name.startswith("c3")}
        calls = {name: (lambda c=config: attention(q, k, v, causal=causal, out=out, config=c))
                 for name, config in configs.items()}   # default: the configuration attention() picks
        calls["cudnn"] = lambda: sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal)
        reference = sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal)
        for name, call in calls.items():   # each variation's output against cuDNN's before it is timed
            call()
            difference = (out - reference).abs().max().item() if name != "cudnn" else 0.0
            if not difference < 2e-2:
                print(f"compare {name}: max abs difference {difference:.3g} from cuDNN", flush=True)
        times = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                times[name].append(timed(call))
        tflops = {name: flops / statistics.median(t) / 1e12 for name, t in times.items()}
        print(f"compare {B}x{H}x{S}x{D}{' causal' if causal else ''}: " + "  ".join(
            f"{name} {value:.1f} ({value / tflops['cudnn']:.2f}x)" for name, value in tflops.items()), flush=True)
        q = k = v = out = None
        torch.cuda.empty_cache()


def main():
    quick = "--quick" in sys.argv
    if "--sweep" in sys.argv:
        sweep()
    if "--compare" in sys.argv:
        compare()
        return
    rows = []
    for B, H, S, D, causal in SHAPES[:2] if quick else SHAPES:
        torch.manual_seed(0)
        q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flops = 4 * B * H * S * S * D / (2 if causal else 1)
        out = torch.empty_like(q)
        ours = attention(q, k, v, causal=causal, out=out)
        result = {"shape": f"{B}x{H}x{S}x{D}{' causal' if causal else ''}", "err_skc": error_of(ours, q, k, v, causal)}
        from skc.blocks.attention_kernel import AttentionConfig

        calls = {"skc": lambda: attention(q, k, v, causal=causal, out=out)}
        if "--no-variants" not in sys.argv:
            persistent = AttentionConfig(head_dim=D, causal=causal, persistent=True, overlap=True)
            calls["skc_p"] = lambda: attention(q, k, v, causal=causal, out=out, config=persistent)
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                got = sdpa(backend, q, k, v, causal)
            except RuntimeError as e:
                print(f"{name} failed on {result['shape']}: {e}", file=sys.stderr)
                continue
            calls[name] = lambda backend=backend: sdpa(backend, q, k, v, causal)
            if name == "flash":
                result["err_flash"] = error_of(got, q, k, v, causal)
        times = fair_times(calls, timed)   # each first once after a rest (benchmarks/fair.py)
        for name in ("skc", "skc_p", "flash", "cudnn"):
            result[name] = flops / times[name] / 1e12 if name in times else float("nan")
        rows.append(result)
        q = k = v = out = ours = got = None   # free the tensors before the next shape
        torch.cuda.empty_cache()
    print(f"{'shape':>24} {'skc':>7} {'skc-p':>7} {'flash':>7} {'cudnn':>7} {'skc/cudnn':>9} {'err skc':>9} "
          f"{'err flash':>9}")
    for r in rows:
        print(f"{r['shape']:>24} {r['skc']:7.1f} {r['skc_p']:7.1f} {r['flash']:7.1f} {r['cudnn']:7.1f} "
              f"{r['skc'] / r['cudnn']:9.2f} "
              f"{r['err_skc']:9.2e} {r.get('err_flash', float('nan')):9.2e}")
    if "--json" in sys.argv:
        import json

        with open(sys.argv[sys.argv.index("--json") + 1], "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
