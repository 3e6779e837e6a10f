"""GEMMs whose rows start at no multiple of 128 bytes from each other (16-byte aligned, so TMA reads them, in two
pieces a 128-byte row of a box): skc's default (tiles in clusters of two, `tile_rules.unaligned_cluster`) against the
same tiles unclustered and torch.matmul, end to end and in turn (benchmarks/fair.py); and, beside them, the same
shapes as views of tensors whose rows are 128-byte aligned (what the row pitch costs each side).
Run: python benchmarks/row_pitch.py [--shapes 3000x3000x3000,...] [--linear] [--json FILE] [--plot PNG]
(`--replot FILE.json|FILE.txt --plot PNG` draws a run's JSON, or its printed table, again)."""
import argparse
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import skc  # noqa: E402
from fair import bench_ms, fair_times, geomean, save  # noqa: E402
from skc.blocks import MatmulConfig  # noqa: E402

SHAPES = ["3000x3000x3000", "1000x1000x1000", "100x3000x5000", "2000x2000x2000", "5000x5000x5000",
          "1000x4000x1000", "6000x2000x3000", "8x3000x5000", "200x5000x3000", "4000x4000x1000"]


def operands(M, N, K, linear, aligned):
    def matrix(rows, cols):   # rows x cols, as a view of 128-byte-aligned rows where asked
        wide = -(-cols // 64) * 64 if aligned else cols
        return torch.randn(rows, wide, device="cuda", dtype=torch.bfloat16)[:, :cols]

    return matrix(M, K), (matrix(N, K).t() if linear else matrix(K, N))


def printed_rows(path):
    """The rows of a run's printed table (its text output), as --json writes them."""
    rows = []
    for line in open(path):
        found = re.match(r"(\d+x\d+x\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+([\d.]+)", line)
        if found:
            case, *values = found.groups()
            rows.append(dict(zip(("case", "skc", "unclustered", "torch", "skc_aligned", "torch_aligned"),
                                 [case, *map(float, values)])))
    return rows


def plot(rows, path):
    """skc, the same tiles unclustered and cuBLAS per shape (TFLOP/s), the skc / cuBLAS ratio over each group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(13, 4.5))
    series = [("skc (clusters)", "skc"), ("skc, same tiles unclustered", "unclustered"), ("cuBLAS", "torch")]
    width = 0.27
    for i, (label, key) in enumerate(series):
        positions = [x + (i - 1) * width for x in range(len(rows))]
        axis.bar(positions, [row[key] for row in rows], width, label=label)
    for x, row in enumerate(rows):
        axis.annotate(f"{row['skc'] / row['torch']:.2f}", (x, max(row["skc"], row["torch"])), ha="center",
                      va="bottom", fontsize=8)
    axis.set_xticks(range(len(rows)), [row["case"] for row in rows], rotation=20, fontsize=8)
    axis.set_ylabel("TFLOP/s")
    axis.set_title("bf16 GEMM, rows 16-byte but not 128-byte aligned, end to end (benchmarks/row_pitch.py)",
                   loc="left")
    axis.set_ylim(0, 1.18 * max(max(row["skc"], row["torch"]) for row in rows))
    axis.legend(fontsize=8, ncol=3, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--linear", action="store_true", help="b as the transpose of an N x K tensor (x @ w.t())")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--plot", help="draw them to this PNG")
    parser.add_argument("--replot", help="only draw a run's --json file or printed table (with --plot)")
    args = parser.parse_args()
    if args.replot:
        rows = json.load(open(args.replot)) if args.replot.endswith(".json") else printed_rows(args.replot)
        plot(rows, args.plot)
        return
    ratios, rows = [], []
    print(f"{'M x N x K':18s} {'skc':>7s} {'unclustered':>11s} {'torch':>7s} {'ratio':>6s}   aligned rows: "
          f"{'skc':>7s} {'torch':>7s}   (TFLOP/s)")
    for shape in args.shapes.split(","):
        M, N, K = map(int, shape.split("x"))
        flops = 2 * M * N * K
        a, b = operands(M, N, K, args.linear, False)
        expected = a.float() @ b.float()
        got = skc.blocks.matmul(a, b).float()
        error = ((got - expected).norm() / expected.norm()).item()
        default = skc.blocks.matmul_host._PLANS[next(reversed(skc.blocks.matmul_host._PLANS))].cfg
        plain = MatmulConfig.for_problem(M, N, K, "bf16", True, args.linear, multiprocessors=132,
                                         tile_m=default.tile_m, tile_n=default.tile_n)
        calls = {"skc": lambda: skc.blocks.matmul(a, b), "unclustered": lambda: skc.blocks.matmul(a, b, config=plain),
                 "torch": lambda: torch.matmul(a, b)}
        times = fair_times(calls, bench_ms)
        a2, b2 = operands(M, N, K, args.linear, True)
        aligned = fair_times({"skc": lambda: skc.blocks.matmul(a2, b2), "torch": lambda: torch.matmul(a2, b2)}, bench_ms)
        rate = {name: flops / t / 1e9 for name, t in times.items()}
        ratios.append(rate["skc"] / rate["torch"])
        rows.append(dict(case=shape, **rate, skc_aligned=flops / aligned["skc"] / 1e9,
                         torch_aligned=flops / aligned["torch"] / 1e9, error=error,
                         config=f"{default.tile_m}x{default.tile_n} cluster {default.cluster_m}x{default.cluster_n}"))
        print(f"{shape:18s} {rate['skc']:7.1f} {rate['unclustered']:11.1f} {rate['torch']:7.1f} {ratios[-1]:6.2f}   "
              f"{'':14s}{flops / aligned['skc'] / 1e9:7.1f} {flops / aligned['torch'] / 1e9:7.1f}   "
              f"cluster {default.cluster_m}x{default.cluster_n} {default.tile_m}x{default.tile_n}"
              f"{'' if error < 1e-2 else f'  WRONG (error {error:.3g})'}", flush=True)
    print(f"geometric mean skc / torch {geomean(ratios):.3f} over {len(ratios)}, "
          f"lowest {min(ratios):.2f}")
    save(rows, args.json, args.plot, plot)


if __name__ == "__main__":
    main()
