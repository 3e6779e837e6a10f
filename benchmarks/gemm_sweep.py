"""Kernel time of the Hopper GEMM under many configurations against cuBLAS, per shape (bf16, random data).

Times the GPU work only: launches are queued behind a sleeping kernel, so host cost never shows, and the
operands stay in L2 from one launch to the next. With --end-to-end it times what the suite times instead
(benchmarks/gemm_suite.py: `matmul(a, b, config=...)` against `torch.matmul(a, b)`, host included, by
triton's do_bench, which clears L2 before each call). It feeds the tuning table: for each shape it prints the
best configuration and its ratio to cuBLAS, and writes every figure to --json.
Usage: python benchmarks/gemm_sweep.py [--json FILE] [--shapes MxNxK,...] [--split] [--only REGEX] [--end-to-end]
"""
import argparse
import json
import os
import re
import sys
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from skc.blocks import MatmulConfig, gemm  # noqa: E402
from skc.blocks.scheduler import TileScheduler  # noqa: E402

SHAPES = ["4096x4096x4096", "8192x8192x8192", "8192x8192x2048", "8192x28672x8192", "8192x8192x28672",
          "4096x14336x4096", "2048x2048x2048", "1024x1024x1024", "128x8192x8192", "16x8192x8192",
          "16384x2048x2048"]


def candidates(M, N, K, only_split=False):
    """Configurations worth trying for an M x N x K problem (names -> MatmulConfig); split-K variants of the
    64-row tiles where they leave SMs idle (only those with only_split)."""
    found = {"default": MatmulConfig.for_problem(M, N, K, multiprocessors=132)}
    for tile_m, tile_n in ((128, 256), (128, 128), (128, 192), (128, 64), (64, 256), (64, 128), (64, 64)):
        consumers = tile_m // 64
        for cluster in (1, 2):
            if cluster == 2 and (tile_n // 64) % 2:
                continue  # clusters multicast B in 64-column chunks split evenly between the two blocks
            base = MatmulConfig(tile_n=tile_n, tile_m=tile_m, consumers=consumers, cluster_m=cluster, stages=2)
            stages = max(n for n in range(2, 13) if replace(base, stages=n).shared_bytes() <= 232448)
            found[f"{tile_m}x{tile_n} s{stages} c{cluster}"] = replace(base, stages=stages)
            tiles = -(-M // tile_m) * -(-N // tile_n)
            if cluster == 1 and tile_m == 64 and 2 * tiles <= 132:
                for split in (2, 3, 4, 8):
                    if split * tiles <= 2 * 132 and K >= split * 256:
                        found[f"{tile_m}x{tile_n} s{stages} c1 k{split}"] = replace(base, stages=stages, split_k=split)
    for cluster in (1, 2):   # 256-row tiles: each of two consumers computes 128 rows (two stacked wgmma parts)
        base = MatmulConfig(tile_m=256, tile_n=128, consumers=2, cluster_m=cluster, stages=2)
        stages = max(n for n in range(2, 13) if replace(base, stages=n).shared_bytes() <= 232448)
        found[f"256x128 s{stages} c{cluster}"] = replace(base, stages=stages)
    for tile_m, tile_n in ((64, 256), (64, 192), (64, 128), (128, 128), (128, 64)):   # pingpong: each consumer
        base = MatmulConfig(tile_n=tile_n, tile_m=tile_m, consumers=2, pingpong=True, stages=2)   # its own tiles
        stages = max(n for n in range(2, 13) if replace(base, stages=n).shared_bytes() <= 232448)
        found[f"{tile_m}x{tile_n} s{stages} pp"] = replace(base, stages=stages)
    for tile_n in (192, 128):   # three consumer warpgroups: 192-row tiles
        base = MatmulConfig(tile_n=tile_n, tile_m=192, consumers=3, stages=2, producer_registers=24,
                            consumer_registers=160)
        stages = max(n for n in range(2, 13) if replace(base, stages=n).shared_bytes() <= 232448)
        found[f"192x{tile_n} s{stages} c1"] = replace(base, stages=stages)
    for name, cfg in list(found.items()):   # stream-K where the tiles leave the last wave part-full
        tiles = -(-M // cfg.tile_m) * -(-N // cfg.tile_n)
        if cfg.cluster_m == 1 and not cfg.pingpong and cfg.split_k == 1 and tiles > 132 and tiles % 132:
            found[f"{name} sk"] = replace(cfg, stream_k=True)
    default = found["default"]
    if default.consumers > 1 and not default.pingpong:   # the default's consumers taking turns at each stage
        found["default turns"] = replace(default, stage_turns=True)
    if only_split:
        found = {name: cfg for name, cfg in found.items() if name == "default" or " k" in name or
                 name.startswith("64x")}
    return found


def kernel_ms(launch, reps=40, rounds=7):
    """Median GPU time of one launch: `reps` launches queued behind a sleeping kernel, timed by events."""
    launch()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        torch.cuda._sleep(3_000_000)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            launch()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / reps)
    return sorted(times)[len(times) // 2]


def end_to_end_ms(call):
    """The median time of one Python call as benchmarks/gemm_suite.py takes it (do_bench, L2 cleared each call)."""
    from triton.testing import do_bench

    return do_bench(call, warmup=25, rep=200, return_mode="median")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--split", action="store_true", help="only the 64-row tiles and their split-K variants")
    parser.add_argument("--only", help="only the configurations whose names match this regular expression")
    parser.add_argument("--end-to-end", action="store_true", help="time the Python calls as the suite does")
    args = parser.parse_args()
    device = skc.current_device()
    results = []
    for shape in args.shapes.split(","):
        M, N, K = (int(v) for v in shape.split("x"))
        a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        expected = (a.float() @ b.float())
        flops = 2 * M * N * K
        cublas = flops / (end_to_end_ms(lambda: torch.matmul(a, b)) if args.end_to_end else
                          kernel_ms(lambda: torch.matmul(a, b))) / 1e9
        row = {"shape": shape, "cublas_tflops": cublas, "configs": {}}
        print(f"{shape}: cuBLAS {cublas:.1f} TFLOP/s", flush=True)
        for name, cfg in candidates(M, N, K, args.split).items():
            if args.only and not re.search(args.only, name):
                continue
            try:
                if args.end_to_end:   # as the suite calls it: the output allocated by each call
                    def launch():
                        skc.blocks.matmul(a, b, out, config=cfg)

                    def timed():
                        return skc.blocks.matmul(a, b, config=cfg)
                elif cfg.split_k > 1 or cfg.stream_k:  # through matmul()'s plan (its workspace); the host is hidden
                    #                                    behind the sleep
                    def launch():
                        skc.blocks.matmul(a, b, out, config=cfg)
                else:
                    boxes = cfg.boxes()
                    maps = [skc.TensorMap(x, boxes[name], cfg.swizzle(name)) for x, name in ((a, "a"), (b, "b"),
                                                                                             (out, "out"))]
                    grid = TileScheduler.grid(M, N, cfg.tile_m, cfg.tile_n, device.multiprocessors, cfg.cluster_m)

                    def launch():
                        gemm.matmul_kernel[grid, cfg.threads](*maps, M, N, K, out, out, 1.0, 0.0, cfg)

                out.fill_(float("nan"))
                launch()
                torch.cuda.synchronize()
                error = ((out.float() - expected).norm() / expected.norm()).item()
                tflops = flops / (end_to_end_ms(timed) if args.end_to_end else
                                  kernel_ms(launch, reps=40 if flops < 1e12 else 8)) / 1e9
            except Exception as exc:  # a configuration that does not compile or launch is reported, not fatal
                print(f"  {name:18s} failed: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
                continue
            row["configs"][name] = {"tflops": tflops, "error": error}
            flag = "" if error < 1e-2 else "  WRONG"
            print(f"  {name:18s} {tflops:7.1f} TFLOP/s  {tflops / cublas:5.2f}x  err {error:.1e}{flag}", flush=True)
        good = {n: r for n, r in row["configs"].items() if r["error"] < 1e-2}
        if good:
            best = max(good, key=lambda n: good[n]["tflops"])
            print(f"  BEST {shape}: {best} {good[best]['tflops']:.1f} ({good[best]['tflops'] / cublas:.2f}x)")
        results.append(row)
        del a, b, out, expected
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
