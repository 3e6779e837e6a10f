"""conv2d: skc (the GEMM composition with the im2col loader; 1x1 stride-1 convs as plain GEMMs) against torch
(cuDNN), channels_last bf16, on ResNet-50-like shapes at batch 128. Checks each result against torch first.

End to end (the call as a user makes it, host work included; skc and cuDNN in turn, benchmarks/fair.py) by default; --sweep also times the GPU work alone
(launches queued behind a sleeping kernel, as benchmarks/gemm_sweep.py does) for each tile configuration worth
trying, cuDNN's too, and marks the one conv2d picks. Prints tables, writes JSON (to $OUT/conv2d.json or --json)
and, with --plot FILE, a PNG of the ratios to cuDNN (matplotlib).

    python benchmarks/conv2d.py [--batch 128] [--sweep] [--json FILE] [--plot FILE]
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from fair import fair_times  # noqa: E402  (beside this file)

# (C, H, W, K, R, stride, padding)
SHAPES = [
    (64, 56, 56, 64, 3, 1, 1),
    (128, 28, 28, 128, 3, 1, 1),
    (256, 14, 14, 256, 3, 1, 1),
    (512, 7, 7, 512, 3, 1, 1),
    (128, 56, 56, 128, 3, 2, 1),
    (256, 56, 56, 64, 1, 1, 0),
    (64, 56, 56, 256, 1, 1, 0),
    (1024, 14, 14, 256, 1, 1, 0),
]


def bench(fn, rep_ms: int = 200) -> float:
    """Median milliseconds of fn (triton's do_bench when present, else CUDA events)."""
    try:
        from triton.testing import do_bench

        return do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")
    except ImportError:
        import statistics

        import torch

        for _ in range(10):
            fn()
        times = []
        for _ in range(50):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)


def candidates(K: int) -> dict:
    """Tile configurations worth trying for a conv with K output channels (names -> MatmulConfig; as many
    stages as fit, as conv2d does)."""
    from dataclasses import replace

    from skc.blocks import MatmulConfig
    from skc.blocks.host_plans import TILES

    found = {}
    fit = lambda config: replace(config, stages=max(n for n in range(2, 9)
                                                    if replace(config, stages=n).shared_bytes() <= 232448))
    for tile_n in (64, 128):   # three or four consumer warpgroups (registers shared out as the tuning table does)
        for consumers, registers in ((3, 160), (4, 112)):
            if tile_n <= max(64, -(-K // 64) * 64):
                config = fit(MatmulConfig(tile_m=64 * consumers, tile_n=tile_n, consumers=consumers, b_k_major=True,
                                          stages=2, producer_registers=24, consumer_registers=registers))
                if config.stages >= 3:
                    found[f"{config.tile_m}x{tile_n} s{config.stages}"] = config
    for tile_m, tile_n in TILES:
        if tile_n > max(64, -(-K // 64) * 64) or (tile_m, tile_n) == (64, 64) and K > 64 or tile_m == 192:
            continue
        base = MatmulConfig(tile_m=tile_m, tile_n=tile_n, consumers=tile_m // 64, b_k_major=True, stages=2)
        stages = max(n for n in range(2, 9) if replace(base, stages=n).shared_bytes() <= 232448)
        found[f"{tile_m}x{tile_n} s{stages}"] = replace(base, stages=stages)
        if tile_m == 64 or tile_n <= 128:   # the consumers taking tiles in turn
            pingpong = replace(base, consumers=2, pingpong=True)
            stages = max(n for n in range(2, 9) if replace(pingpong, stages=n).shared_bytes() <= 232448)
            found[f"{tile_m}x{tile_n} s{stages} pp"] = replace(pingpong, stages=stages)
        if (tile_m, tile_n) == (128, 128):   # fewer stages (short K: less to fill before the first MMA)
            found["128x128 s4"] = replace(base, stages=4)
            found["128x128 s4 pp"] = replace(base, stages=4, consumers=2, pingpong=True)
    return found


def relative_error(got, expected) -> float:
    return ((got.float() - expected.float()).norm() / expected.float().norm()).item()


def run(batch: int, sweep: bool) -> list:
    import torch

    import skc
    from skc.blocks.conv import _PLANS

    torch.backends.cudnn.benchmark = True
    rows = []
    for C, H, W, K, R, stride, padding in SHAPES:
        x = torch.randn(batch, C, H, W, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
        w = (torch.randn(K, C, R, R, device="cuda", dtype=torch.bfloat16) / (C * R * R) ** 0.5).to(
            memory_format=torch.channels_last)
        expected = torch.nn.functional.conv2d(x, w, stride=stride, padding=padding)
        out = torch.full_like(expected, float("nan"))
        skc.blocks.conv2d(x, w, stride=stride, padding=padding, out=out)
        torch.cuda.synchronize()
        error = relative_error(out, expected)
        if not error <= 1e-2:
            raise AssertionError(f"conv2d {C}x{H}x{W}->{K} {R}x{R}/s{stride}: relative error {error:.3g}")
        skc_call = functools.partial(skc.blocks.conv2d, x, w, stride=stride, padding=padding, out=out)
        torch_call = functools.partial(torch.nn.functional.conv2d, x, w, stride=stride, padding=padding)
        chosen = next(gemm.cfg for conv, gemm in _PLANS.values() if (conv.C, conv.H, conv.K, conv.R, conv.stride)
                      == (C, H, K, R, (stride, stride)))
        times = fair_times({"skc": skc_call, "torch": torch_call}, bench)   # each first once after a rest
        skc_ms, torch_ms = times["skc"], times["torch"]
        P, Q = expected.shape[2:]
        flops = 2 * batch * P * Q * K * C * R * R
        row = {"benchmark": "conv2d", "shape": f"{batch}x{C}x{H}x{W}->{K} {R}x{R}/s{stride}",
               "config": f"{chosen.tile_m}x{chosen.tile_n} s{chosen.stages} {'gemm' if chosen.loader == 'tma' else 'im2col'}",
               "skc_ms": skc_ms, "torch_ms": torch_ms, "skc_TFLOPs": flops / skc_ms / 1e9,
               "torch_TFLOPs": flops / torch_ms / 1e9, "ratio_vs_torch": torch_ms / skc_ms, "relative_error": error}
        if sweep:
            from gemm_sweep import kernel_ms  # the GEMM sweep's timing of GPU work alone

            row["cudnn_kernel_TFLOPs"] = flops / kernel_ms(torch_call) / 1e9
            row["kernel_TFLOPs"] = {}
            for name, cfg in candidates(K).items():
                try:
                    out.fill_(float("nan"))
                    launch = functools.partial(skc_call, config=cfg)
                    launch()
                    torch.cuda.synchronize()
                    if not relative_error(out, expected) <= 1e-2:
                        raise AssertionError(f"relative error {relative_error(out, expected):.3g}")
                    row["kernel_TFLOPs"][name] = flops / kernel_ms(launch) / 1e9
                    row.setdefault("e2e_ratio", {})[name] = torch_ms / bench(launch)  # cold L2, host included
                except Exception as exc:  # noqa: BLE001 (a configuration that fails is reported, not fatal)
                    row["kernel_TFLOPs"][name] = f"{type(exc).__name__}: {str(exc)[:100]}"
            timed = {name: v for name, v in row["kernel_TFLOPs"].items() if isinstance(v, float)}
            if timed:  # the fastest kernel, end to end
                row["best"] = max(timed, key=timed.get)
                row["best_ratio_vs_torch"] = torch_ms / bench(functools.partial(skc_call,
                                                                                config=candidates(K)[row["best"]]))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def geomean(values) -> float:
    import math

    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def plot(rows: list, path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4.5))
    names = [row["shape"] for row in rows]
    axes.bar(range(len(rows)), [row["ratio_vs_torch"] for row in rows], color="tab:blue", label="end to end")
    if all("kernel_TFLOPs" in row for row in rows):
        best = [max([v for v in row["kernel_TFLOPs"].values() if isinstance(v, float)] or [0]) /
                row["cudnn_kernel_TFLOPs"] for row in rows]
        axes.plot(range(len(rows)), best, "o", color="tab:orange", label="best config, kernel time")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.axhline(0.85, color="gray", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("skc / cuDNN (higher is better)")
    axes.set_title(f"conv2d, bf16 channels_last (geomean {geomean(r['ratio_vs_torch'] for r in rows):.2f}x)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--sweep", action="store_true", help="also time each tile configuration's kernel")
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, help="write a PNG of the ratios to cuDNN")
    args = parser.parse_args(argv)
    rows = run(args.batch, args.sweep)
    if args.sweep:
        print("kernel time (TFLOP/s; * = conv2d's choice)")
        for row in rows:
            configs = "  ".join(f"{name}{'*' if row['config'].startswith(name) else ''} "
                                + (f"{v:.0f}" if isinstance(v, float) else "FAIL") for name, v in
                                row["kernel_TFLOPs"].items())
            print(f"{row['shape']:32} cuDNN {row['cudnn_kernel_TFLOPs']:4.0f} | {configs} | best end to end "
                  f"{row.get('best_ratio_vs_torch', 0):.2f}x")
            print(f"{'':32} end to end / cuDNN: " + "  ".join(f"{name} {v:.2f}" for name, v in
                                                           row.get("e2e_ratio", {}).items()))
    print(f"{'shape':32} {'config':20} {'skc ms':>7} {'torch ms':>8} {'skc TF/s':>8} {'torch TF/s':>10} "
          f"{'torch/skc':>9}")
    for row in rows:
        print(f"{row['shape']:32} {row['config']:20} {row['skc_ms']:7.3f} {row['torch_ms']:8.3f} "
              f"{row['skc_TFLOPs']:8.1f} {row['torch_TFLOPs']:10.1f} {row['ratio_vs_torch']:9.2f}")
    print(f"geomean skc/cuDNN {geomean(r['ratio_vs_torch'] for r in rows):.2f}, "
          f"min {min(r['ratio_vs_torch'] for r in rows):.2f}")
    path = args.json or (os.path.join(os.environ["OUT"], "conv2d.json") if os.environ.get("OUT") else None)
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
