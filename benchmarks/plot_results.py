"""Plots of the FP8 GEMM and attention benchmarks from their JSON (benchmarks/fp8_gemm.py writes fp8_gemm.json,
benchmarks/attention.py --json): skc against the vendor library in the same run, TFLOP/s per shape; and of
benchmarks/few_rows_async.py's and benchmarks/wave_tiles.py ab's printed tables (skc and the rules before against
torch.matmul, per shape).

    python benchmarks/plot_results.py --fp8 FILE.json --attention FILE.json --few-rows FILE.txt ... \
        --fill-widths FILE.txt ... --out DIR
"""
import argparse
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def bars(axis, labels, series, title):
    """Grouped bars: series is [(name, values)], one bar per series per label, the skc/first-reference ratio on top."""
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series):
        positions = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        drawn = axis.bar(positions, values, width, label=name)
        if i == len(series) - 1:
            for rect, value, reference in zip(drawn, values, series[0][1]):
                if reference and not math.isnan(value):
                    axis.annotate(f"{value / reference:.2f}", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                                  ha="center", va="bottom", fontsize=8)
    axis.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
    axis.set_ylabel("TFLOP/s")
    axis.set_title(title, loc="left")
    axis.legend(fontsize=8)


FP8_KINDS = {"per-tensor": "FP8 e4m3, per-tensor scales (both sides' defaults: each k-block added into f32)",
             "per-tensor-fast": "FP8 e4m3, per-tensor scales, use_fast_accum=True on both sides",
             "block": "FP8 e4m3, block scales (1x128 / 128x128)"}


def fp8(path, out):
    rows = json.load(open(path))
    kinds = [kind for kind in FP8_KINDS if any(r.get("kind") == kind for r in rows)]
    figure, axes = plt.subplots(len(kinds), 1, figsize=(12, 4 * len(kinds)), squeeze=False)
    for axis, kind in zip(axes[:, 0], kinds):
        chosen = [r for r in rows if r.get("kind") == kind]
        ratios = [r["skc"] / r["cublas"] for r in chosen if r.get("cublas")]
        geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        bars(axis, [r["shape"] for r in chosen], [("cuBLASLt (torch._scaled_mm)", [r.get("cublas", math.nan) for r in chosen]),
                                                 ("skc.blocks.matmul", [r["skc"] for r in chosen])],
             f"{FP8_KINDS[kind]}: end to end, geomean {geomean:.2f}x")
    figure.tight_layout()
    figure.savefig(os.path.join(out, "fp8_gemm.png"), dpi=110)


def attention(path, out):
    rows = json.load(open(path))
    figure, axis = plt.subplots(figsize=(12, 4.5))
    bars(axis, [r["shape"] for r in rows], [("cuDNN (SDPA)", [r["cudnn"] for r in rows]),
                                           ("flash (SDPA)", [r["flash"] for r in rows]),
                                           ("skc.blocks.attention", [r["skc"] for r in rows])],
         "attention forward, bf16 (B x H x S x D): ratio skc/cuDNN on top")
    figure.tight_layout()
    figure.savefig(os.path.join(out, "attention.png"), dpi=110)


def before_after(rows, labels, title, path):
    """rows (shape, torch / skc now, torch / skc before) drawn sorted by now's ratio, the geometric means in the title;
    labels: (before's, now's)."""
    rows = sorted(rows, key=lambda r: r[1])
    figure, axis = plt.subplots(figsize=(12, 4.5))
    positions = range(len(rows))
    axis.plot(positions, [r[2] for r in rows], "o", label=labels[0])
    axis.plot(positions, [r[1] for r in rows], "o", label=labels[1])
    axis.axhline(1.0, color="gray", linewidth=0.8)
    geomean = math.exp(sum(math.log(r[1]) for r in rows) / len(rows))
    before = math.exp(sum(math.log(r[2]) for r in rows) / len(rows))
    axis.set_xticks(positions, [r[0] for r in rows], rotation=90, fontsize=6)
    axis.set_ylabel("torch.matmul time / skc time")
    axis.set_title(f"{title}: geomean {geomean:.2f} (before {before:.2f})", loc="left")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def few_rows(paths, out):
    """torch.matmul's time over skc's and over the path before's, per shape of few_rows_async.py's tables, sorted."""
    rows = []
    for path in paths:
        for line in open(path):
            fields = line.split()
            if len(fields) == 9 and "x" in fields[0] and fields[1][0].isdigit():
                rows.append((fields[0], float(fields[4]), float(fields[5])))
    before_after(rows, ("before: B copied into rows TMA can address, then the GEMM",
                        "skc.blocks.matmul: B read in place by cp.async"),
                 "few rows of A over a B whose rows TMA cannot address, bf16, end to end",
                 os.path.join(out, "few_rows_async.png"))


def fill_widths(paths, out):
    """The same of benchmarks/wave_tiles.py ab's lines (`SPEC: torch T  before TILE kN R  default TILE kN R ...`)."""
    rows = []
    for path in paths:
        for line in open(path):
            fields = line.split()
            if len(fields) >= 11 and fields[0].endswith(":") and fields[3] == "before" and fields[7] == "default":
                rows.append((fields[0][:-1].replace(":linear", ""), float(fields[10]), float(fields[6])))
    before_after(rows, ("before: 128 x 128-256, 192-row and 64-row tiles", "skc.blocks.matmul: 128-row tiles "
                        "144-240 wide as well"), "x @ w.t() (a K-major B) whose tiles the fill widths changed, bf16, "
                 "end to end", os.path.join(out, "fill_widths.png"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fp8")
    parser.add_argument("--attention")
    parser.add_argument("--few-rows", nargs="*")
    parser.add_argument("--fill-widths", nargs="*")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    if args.fp8:
        fp8(args.fp8, args.out)
    if args.attention:
        attention(args.attention, args.out)
    if args.few_rows:
        few_rows(args.few_rows, args.out)
    if args.fill_widths:
        fill_widths(args.fill_widths, args.out)


if __name__ == "__main__":
    main()
