"""Random `skc.blocks.matmul` calls on the GPU against a float32 reference: bf16, fp16 and fp8 (per tensor, fast,
block-wise), shapes weighted toward the few-row rules, layouts, batches, fused epilogues, outputs poisoned
(tests/fuzz/gemm_cases.py draws them). Each case's configuration is the one skc chose itself.

    python benchmarks/gemm_fuzz.py --count 600 --seed 3701 [--workers 12] [--json FILE]

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
import gemm_cases  # noqa: E402


def config_of(plans: dict) -> str:
    """The configuration of the one plan a call made (wrappers searched one level down), as text."""
    for plan in plans.values():
        for holder in (plan, *vars(plan).values()):
            cfg = getattr(holder, "cfg", None)
            if cfg is not None:
                fields = (f"{cfg.tile_m}x{cfg.tile_n} s{cfg.stages} c{cfg.cluster_m}x{getattr(cfg, 'cluster_n', 1)} "
                          f"k{cfg.split_k}")
                extras = [name for name in ("swap_ab", "stream_k", "split_tail", "pingpong", "batched")
                          if getattr(cfg, name, False)]
                return fields + "".join(f" {name}" for name in extras) + f" ({type(plan).__name__})"
        return type(plan).__name__
    return "?"


def run_share(job):
    worker, workers, count, seed = job
    import torch  # noqa: F401  (each process its own context)

    import skc
    from skc.blocks import fp8_host, matmul_host

    rows = []
    for index, case in enumerate(gemm_cases.cases(count, seed)):
        if index % workers != worker:
            continue
        row = {"index": index, "case": case.label()}
        started = time.perf_counter()
        matmul_host._PLANS.clear()
        fp8_host._PLANS.clear()
        try:
            relative, largest, nans = gemm_cases.run_case(case, seed=seed * 100003 + index)
            most_relative, most_largest = gemm_cases.tolerance(case)
            row.update(relative=relative, largest=largest, nans=nans,
                       outcome="ok" if nans == 0 and relative <= most_relative and largest <= most_largest
                       else "wrong")
        except skc.LaunchError as error:
            row.update(outcome="refused", message=str(error))
        except Exception as error:   # a crash is a finding: keep its text
            row.update(outcome="crashed", message=f"{type(error).__name__}: {error}",
                       trace=traceback.format_exc(limit=6))
        row["config"] = config_of({**matmul_host._PLANS, **fp8_host._PLANS})
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=3701)
    parser.add_argument("--workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    started = time.perf_counter()
    jobs = [(w, args.workers, args.count, args.seed) for w in range(args.workers)]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        rows = sorted((row for share in pool.map(run_share, jobs) for row in share), key=lambda r: r["index"])
    counts = {}
    for row in rows:
        kind = row["case"].split()[0]
        counts.setdefault(kind, {}).setdefault(row["outcome"], 0)
        counts[kind][row["outcome"]] += 1
        if row["outcome"] != "ok":
            detail = (f"relative {row['relative']:.2e}, largest {row['largest']:.2e}, NaN {row['nans']}"
                      if row["outcome"] == "wrong" else row["message"])
            print(f"{row['outcome'].upper()} #{row['index']} {row['case']} [{row['config']}]: {detail}")
            if "trace" in row:
                print(row["trace"])
    worst = max((r for r in rows if r["outcome"] == "ok"), key=lambda r: r["relative"], default=None)
    print(f"{len(rows)} cases (seed {args.seed}) in {time.perf_counter() - started:.0f} s on {args.workers} workers; "
          f"configurations: {len({r['config'] for r in rows})}")
    for kind, outcomes in sorted(counts.items()):
        print(f"  {kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())))
    if worst is not None:
        print(f"  largest relative error of a right case: {worst['relative']:.2e} (#{worst['index']} {worst['case']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "count": args.count, "rows": rows}, f, indent=1)
    return 1 if any(r["outcome"] in ("wrong", "crashed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
