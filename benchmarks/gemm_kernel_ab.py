"""bf16 GEMM configurations against each other and cuBLAS (torch.matmul) at sustained load, through
skc.blocks.matmul: each sample ~150 ms of back-to-back calls timed with CUDA events, the configurations alternated
over rounds (the order reversed every other round, a 0.1 s rest before each sample), medians reported.
`--b-k-major`: B given as the transpose of an N x K tensor (torch's `x @ w.t()`, nn.Linear's weight), else K x N.
Run: python benchmarks/gemm_kernel_ab.py 8192x8192x8192 default,c2,cublas [--rounds 8] [--b-k-major]
(names: `default` (matmul's own choice), `cublas`, a key of CONFIGS or tiles with suffixes (`fields`); the
first is the baseline)."""
import argparse
import re

import torch

import skc
from fair import report, sustained
from skc.blocks import MatmulConfig

CONFIGS = {"c1": {"tile_m": 128, "tile_n": 256, "cluster_m": 1},   # 128 x 256 tiles, no cluster
           "c2": {"tile_m": 128, "tile_n": 256, "cluster_m": 2},   # in clusters of 2 along M (B multicast)
           "n128-c2": {"tile_m": 128, "tile_n": 128, "cluster_m": 2},
           "g4": {"group_m": 4}, "g16": {"group_m": 16}, "g32": {"group_m": 32},   # the raster's tile-row groups
           "st": {"split_tail": True}, "n128-st": {"tile_m": 128, "tile_n": 128, "cluster_m": 1, "split_tail": True},
           "n192-st": {"tile_m": 128, "tile_n": 192, "cluster_m": 1, "split_tail": True},   # the last wave split
           "192x192": {"tile_m": 192, "tile_n": 192}}   # three consumer warpgroups


def fields(name: str) -> dict:
    """A key of CONFIGS, or `MxN` tiles (no cluster) with suffixes `-k2` (split-K), `-sk` (stream-K), `-st` (the
    last wave's tiles split), `-cm2` /
    `-cn4` (clusters along M sharing B / along N sharing A), `-s5` (stages), `-e1` (epilogue buffers): 128x168-cn2,
    64x64-k2, 192x64-e1."""
    if name in CONFIGS:
        return CONFIGS[name]
    match = re.fullmatch(r"(\d+)x(\d+)((?:-(?:k|cm|cn|s|e)\d+|-sk|-st)*)", name)
    if not match:
        raise SystemExit(f"unknown configuration {name!r}: a key of {sorted(CONFIGS)} or MxN[-k2][-sk][-st][-cm2][-cn2][-s5][-e1]")
    result = {"tile_m": int(match[1]), "tile_n": int(match[2]), "cluster_m": 1}
    keys = {"k": "split_k", "cm": "cluster_m", "cn": "cluster_n", "s": "stages", "e": "epilogue_buffers"}
    for suffix in filter(None, match[3].split("-")):
        if suffix in ("sk", "st"):
            result["stream_k" if suffix == "sk" else "split_tail"] = True
        else:
            key = re.match(r"[a-z]+", suffix)[0]
            result[keys[key]] = int(suffix[len(key):])
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("shapes")
    parser.add_argument("names")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--b-k-major", action="store_true")
    args = parser.parse_args()
    names = args.names.split(",")
    for M, N, K in (tuple(map(int, s.split("x"))) for s in args.shapes.split(",")):
        a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        b = (torch.randn(N, K, device="cuda", dtype=torch.bfloat16).t() if args.b_k_major else
             torch.randn(K, N, device="cuda", dtype=torch.bfloat16))
        out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        expected = a.float() @ b.float()
        calls = {}
        for name in names:
            if name == "cublas":
                calls[name] = lambda: torch.matmul(a, b, out=out)
                continue
            config = None if name == "default" else MatmulConfig.for_problem(
                M, N, K, "bf16", True, args.b_k_major, multiprocessors=132, **fields(name))
            calls[name] = lambda config=config: skc.blocks.matmul(a, b, out=out, config=config)
            calls[name]()
            error = ((out.float() - expected).norm() / expected.norm()).item()
            assert error < 1e-2, (name, error)
        flops = 2 * M * N * K
        reps = max(10, int(150 / (flops / 7e14 * 1e3)))   # ~150 ms a sample at 700 TFLOP/s
        layout = "B K-major" if args.b_k_major else "B K x N"
        report(f"{M}x{N}x{K} {layout} reps={reps}", sustained(calls, flops, reps, args.rounds), 12)


if __name__ == "__main__":
    main()
