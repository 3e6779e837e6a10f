"""The GEMM shape suite end to end: skc.blocks.matmul against torch.matmul (cuBLAS) in the same run, bf16 and fp16.

The timed callable is the Python call, host included (`skc.blocks.matmul(a, b)` against `torch.matmul(a, b)`,
each allocating its output), timed by triton.testing.do_bench's median, the two in turn (benchmarks/fair.py). Each shape is checked against torch first
(relative error under 1e-2, output poisoned). Prints a table (TFLOP/s, ratio, geometric mean, minimum), writes
every figure to --json and draws skc and cuBLAS TFLOP/s per shape to --plot (PNG, matplotlib).

    python benchmarks/gemm_suite.py [--json FILE] [--plot FILE.png] [--dtypes bf16,fp16] [--shapes MxNxK,BxMxNxK]
"""
import argparse
import datetime
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc  # noqa: E402
from fair import fair_times  # noqa: E402

SHAPES = ["4096x4096x4096", "8192x8192x8192", "8192x8192x2048", "8192x28672x8192", "8192x8192x28672",
          "4096x14336x4096", "2048x2048x2048", "1024x1024x1024", "128x8192x8192", "16x8192x8192",
          "8x2048x2048x2048"]  # the last: a batch of 8 (B x M x K times B x K x N)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def bench(fn, rep_ms):
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")  # milliseconds


def operands(shape, dtype):
    sizes = [int(v) for v in shape.split("x")]
    batch, (M, N, K) = (sizes[0], sizes[1:]) if len(sizes) == 4 else (None, sizes)
    lead = () if batch is None else (batch,)
    a = torch.randn(*lead, M, K, device="cuda", dtype=dtype)
    b = torch.randn(*lead, K, N, device="cuda", dtype=dtype)
    return a, b, 2 * M * N * K * (batch or 1)


def measure(shape, dtype_name):
    a, b, flops = operands(shape, DTYPES[dtype_name])
    expected = torch.matmul(a, b)
    out = torch.full_like(expected, float("nan"))
    skc.blocks.matmul(a, b, out=out)
    torch.cuda.synchronize()
    error = ((out.float() - expected.float()).norm() / expected.float().norm()).item()
    rep = 100 if flops > 1e12 else 200
    # each first once after a rest, the better of two kept (benchmarks/fair.py)
    times = fair_times({"cublas": lambda: torch.matmul(a, b), "skc": lambda: skc.blocks.matmul(a, b)},
                       lambda fn: bench(fn, rep))
    cublas_ms, skc_ms = times["cublas"], times["skc"]
    config = _config_of(tuple(expected.shape))
    return {"shape": shape, "dtype": dtype_name, "flops": flops, "error": error, "skc_ms": skc_ms,
            "cublas_ms": cublas_ms, "skc_tflops": flops / skc_ms / 1e9, "cublas_tflops": flops / cublas_ms / 1e9,
            "ratio": cublas_ms / skc_ms, "config": config}


def _config_of(shape):
    """The configuration of the plan matmul() made for this output shape (for the table)."""
    from skc.blocks import matmul_host

    for plan in reversed(list(matmul_host._PLANS.values())):
        cfg = getattr(plan, "cfg", None)
        # matmul's own plans say their output's shape; a GemmPlan (the Hopper path) its sizes: (M, N, K), the batch
        # count first for a batch in one launch
        out_shape = getattr(plan, "out_shape", None) or getattr(plan, "sizes", (None,))[:-1]
        if cfg is not None and tuple(out_shape) == tuple(shape):
            batch = f" batch-in-one-launch({cfg.batched})" if cfg.batched else ""
            return f"{cfg.tile_m}x{cfg.tile_n} s{cfg.stages} c{cfg.cluster_m} k{cfg.split_k}{batch}"
    return "per-batch loop" if len(shape) == 3 else "?"


def summary(rows):
    ratios = [r["ratio"] for r in rows if r["error"] < 1e-2]
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else float("nan")
    return {"geomean": geomean, "min": min(ratios) if ratios else float("nan"),
            "wrong": [f"{r['shape']} {r['dtype']}" for r in rows if not r["error"] < 1e-2]}


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = sorted({r["dtype"] for r in rows})
    figure, axes = plt.subplots(len(dtypes), 1, figsize=(13, 4.2 * len(dtypes)), squeeze=False)
    for axis, dtype in zip(axes[:, 0], dtypes):
        mine = [r for r in rows if r["dtype"] == dtype]
        xs = range(len(mine))
        axis.bar([x - 0.2 for x in xs], [r["cublas_tflops"] for r in mine], 0.4, label="cuBLAS (torch.matmul)")
        axis.bar([x + 0.2 for x in xs], [r["skc_tflops"] for r in mine], 0.4, label="skc.blocks.matmul")
        for x, r in zip(xs, mine):
            axis.text(x + 0.2, r["skc_tflops"], f"{r['ratio']:.2f}", ha="center", va="bottom", fontsize=8)
        axis.set_xticks(list(xs))
        axis.set_xticklabels([r["shape"] for r in mine], rotation=20, fontsize=8)
        axis.set_ylabel("TFLOP/s")
        title = f"{dtype}: end to end (host included), do_bench median — geomean {summary(mine)['geomean']:.2f}x"
        axis.set_title(title, loc="left")
        axis.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    parser.add_argument("--plot")
    parser.add_argument("--dtypes", default="bf16,fp16")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    started = time.time()
    rows = []
    for dtype in args.dtypes.split(","):
        for shape in args.shapes.split(","):
            try:
                row = measure(shape, dtype)
            except Exception as exc:  # reported, not fatal: the rest of the suite still runs
                print(f"{shape:18s} {dtype}: FAILED {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                continue
            rows.append(row)
            flag = "" if row["error"] < 1e-2 else f"  WRONG (error {row['error']:.1e})"
            print(f"{shape:18s} {dtype}  cuBLAS {row['cublas_tflops']:6.1f}  skc {row['skc_tflops']:6.1f}  "
                  f"{row['ratio']:5.2f}x  {row['config']}{flag}", flush=True)
            torch.cuda.empty_cache()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python"] + sys.argv), "device": torch.cuda.get_device_name(),
              "seconds": time.time() - started, "rows": rows,
              "summary": {dtype: summary([r for r in rows if r["dtype"] == dtype]) for dtype in DTYPES},
              "all": summary(rows)}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    if args.plot and rows:
        plot(rows, args.plot)
    print("\n| shape | dtype | cuBLAS TFLOP/s | skc TFLOP/s | skc/cuBLAS | config |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shape']} | {r['dtype']} | {r['cublas_tflops']:.1f} | {r['skc_tflops']:.1f} | {r['ratio']:.2f} | "
              f"{r['config']} |")
    for name, s in list(result["summary"].items()) + [("all", result["all"])]:
        print(f"{name}: geomean {s['geomean']:.3f}x, min {s['min']:.3f}x, wrong {s['wrong']}")


if __name__ == "__main__":
    main()
