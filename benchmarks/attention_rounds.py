"""Every round of the burst benchmark's method at one attention shape, skc against cuDNN: fair.fair_times's rounds (a
rest before each, the other callable first every other round), triton's do_bench median over 100 ms a round. The
burst benchmark (attention.py) keeps each callable's best round; this prints them all, to show what a best round
picks. Run: python benchmarks/attention_rounds.py [causal|not-causal] [ROUNDS] (8 x 16 x 4096 x 128, bf16)."""
import os
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench

from skc.blocks.attention_host import attention

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fair import fair_times  # noqa: E402

B, H, S, D = 8, 16, 4096, 128


def main():
    causal = (sys.argv[1] if len(sys.argv) > 1 else "causal") == "causal"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out = torch.empty_like(q)
    flops = 4 * B * H * S * S * D / (2 if causal else 1)

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

    calls = {"skc": lambda: attention(q, k, v, causal=causal, out=out), "cudnn": cudnn}
    for call in calls.values():
        call()
    name_of = {id(call): name for name, call in calls.items()}
    timed = []   # (name, TFLOP/s) in the order fair_times ran them: len(calls) a round

    def timer(call):
        ms = do_bench(call, warmup=25, rep=100, return_mode="median")
        timed.append((name_of[id(call)], flops / ms / 1e9))
        return ms

    fair_times(calls, timer, rounds=rounds)
    print(f"{B}x{H}x{S}x{D}{' causal' if causal else ''}, TFLOP/s of each round")
    for round_ in range(rounds):
        cells = timed[round_ * len(calls):(round_ + 1) * len(calls)]
        print(f"round {round_}: " + "  ".join(f"{name} {value:6.1f}" for name, value in cells))


if __name__ == "__main__":
    main()
