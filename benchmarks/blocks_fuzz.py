"""Random calls of skc's host-side blocks on the GPU against float32 references: `matmul` (bf16, fp16 and fp8 per
tensor, fast and block-wise; rows weighted toward the few-row rules, layouts, batches, fused epilogues),
`attention` (head dimensions, grouped heads, lengths that differ, causal, layouts, the log-sum-exp) and `conv2d`
(channels, taps, strides, paddings, dilations, epilogues). Outputs are poisoned first; the configurations are the
ones skc chooses itself. tests/fuzz/{gemm,attention,conv}_cases.py draw the calls.

    python benchmarks/blocks_fuzz.py --kinds gemm:3000,attention:600,conv2d:600 --seed 3701 [--workers 12] [--json F]

Workers are processes, each taking every W-th case (compiles spread over the CPUs; one disk cache). Prints one line
a case that is wrong (error over tolerance or a NaN), refused (an skc.LaunchError: the message) or crashed (any other
exception), then counts per kind and outcome; exits 1 when any case is wrong or crashed.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))
import attention_cases  # noqa: E402
import conv_cases  # noqa: E402
import gemm_cases  # noqa: E402

DRAWS = {"gemm": gemm_cases, "attention": attention_cases, "conv2d": conv_cases}


def config_of(plans: dict) -> str:
    """The configuration of the one plan a call made (wrappers searched one level down), as text."""
    for plan in plans.values():
        fields = [getattr(plan, name, None) for name in getattr(type(plan), "__slots__", ())]
        for holder in (plan, *getattr(plan, "__dict__", {}).values(), *fields):
            cfg = getattr(holder, "cfg", None) or getattr(holder, "config", None)
            if cfg is not None and hasattr(cfg, "tile_m"):
                fields = (f"{cfg.tile_m}x{cfg.tile_n} s{cfg.stages} c{cfg.cluster_m}x{getattr(cfg, 'cluster_n', 1)} "
                          f"k{cfg.split_k}")
                extras = [name for name in ("swap_ab", "stream_k", "split_tail", "pingpong", "batched")
                          if getattr(cfg, name, False)]
                return fields + "".join(f" {name}" for name in extras) + f" ({type(plan).__name__})"
            if cfg is not None and hasattr(cfg, "block_m"):   # an AttentionConfig
                return f"{cfg.block_m}x{cfg.block_n} s{cfg.stages}" + (" persistent" if cfg.persistent else "")
        return type(plan).__name__
    return "?"


def plan_tables():
    from skc.blocks import attention_host, conv, fp8_host, matmul_host

    return [module._PLANS for module in (matmul_host, fp8_host, attention_host, conv) if hasattr(module, "_PLANS")]


def run_share(job):
    worker, workers, kinds, seed = job
    import torch  # noqa: F401  (each process its own context)

    import skc

    tables = plan_tables()
    rows, index = [], 0
    for kind, count in kinds:
        draws = DRAWS[kind]
        for case in draws.cases(count, seed):
            index += 1
            if index % workers != worker:
                continue
            row = {"index": index, "kind": kind, "case": case.label()}
            started = time.perf_counter()
            for table in tables:
                table.clear()
            try:
                relative, largest, nans = draws.run_case(case, seed=seed * 100003 + index)
                most_relative, most_largest = draws.tolerance(case)
                row.update(relative=relative, largest=largest, nans=nans,
                           outcome="ok" if nans == 0 and relative <= most_relative and largest <= most_largest
                           else "wrong")
            except skc.LaunchError as error:
                row.update(outcome="refused", message=str(error))
            except Exception as error:   # a crash is a finding: keep its text
                row.update(outcome="crashed", message=f"{type(error).__name__}: {error}",
                           trace=traceback.format_exc(limit=6))
            merged = {}
            for table in tables:
                merged.update(table)
            row["config"] = config_of(merged)
            row["seconds"] = round(time.perf_counter() - started, 3)
            rows.append(row)
    return rows


def parse_kinds(text: str) -> list:
    kinds = []
    for item in text.split(","):
        name, _, count = item.partition(":")
        if name not in DRAWS:
            raise SystemExit(f"unknown kind {name!r}; choose from {', '.join(DRAWS)}")
        kinds.append((name, int(count or 100)))
    return kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="gemm:600,attention:200,conv2d:200")
    parser.add_argument("--seed", type=int, default=3701)
    parser.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    kinds = parse_kinds(args.kinds)
    started = time.perf_counter()
    jobs = [(w, args.workers, kinds, args.seed) for w in range(args.workers)]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        rows = sorted((row for share in pool.map(run_share, jobs) for row in share), key=lambda r: r["index"])
    counts = {}
    for row in rows:
        kind = row["group"] = row["kind"] + (" " + row["case"].split()[0] if row["kind"] == "gemm" else "")
        counts.setdefault(kind, {}).setdefault(row["outcome"], 0)
        counts[kind][row["outcome"]] += 1
        if row["outcome"] != "ok":
            detail = (f"relative {row['relative']:.2e}, largest {row['largest']:.2e}, NaN {row['nans']}"
                      if row["outcome"] == "wrong" else row["message"])
            print(f"{row['outcome'].upper()} #{row['index']} {row['case']} [{row['config']}]: {detail}")
            if "trace" in row:
                print(row["trace"])
    print(f"{len(rows)} cases (seed {args.seed}) in {time.perf_counter() - started:.0f} s on {args.workers} workers; "
          f"configurations: {len({r['config'] for r in rows})}")
    for kind, outcomes in sorted(counts.items()):
        right = [r for r in rows if r["outcome"] == "ok" and r["group"] == kind]
        worst = max(right, key=lambda r: r["relative"], default=None)
        print(f"  {kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
              + (f"; largest relative error {worst['relative']:.2e}" if worst else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "kinds": args.kinds, "rows": rows}, f, indent=1)
    return 1 if any(r["outcome"] in ("wrong", "crashed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
