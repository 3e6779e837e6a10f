"""Random calls of skc's host-side blocks on the GPU against float32 references: `matmul` (bf16, fp16 and fp8 per
tensor, fast and block-wise; rows weighted toward the few-row rules, layouts, batches, fused epilogues),
`attention` (head dimensions, grouped heads, lengths that differ, causal, layouts, the log-sum-exp) and `conv2d`
(channels, taps, strides, paddings, dilations, epilogues). Outputs are poisoned first; the configurations are the
ones skc chooses itself. tests/fuzz/{gemm,attention,conv}_cases.py draw the calls.

    python benchmarks/blocks_fuzz.py --kinds gemm:3000,attention:600,conv2d:600 --seed 3701 [--workers 12] [--json F]

Workers are processes, each taking every W-th case (compiles spread over the CPUs; one disk cache) and keeping its
plans from case to case. Each case is judged by tests/fuzz/call_checks.py: outputs poisoned, inputs fresh before a
repeated call, limits from the output type's own rounding. Prints one line a case that is wrong, refused (an
skc.LaunchError: every drawn call is one skc takes) or crashed (any other exception), then counts per kind and
outcome; exits 1 when any case is not right. `--case N` runs case N alone (the same --kinds and --seed).
"""
from __future__ import annotations

import argparse
import concurrent.futures
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


def config_of(plans) -> str:
    """The configuration of the plans a call made (wrappers and tuples searched one level down), as text."""
    for plan in plans:
        parts = list(plan) if isinstance(plan, tuple) else [plan]
        for part in parts:
            fields = [getattr(part, name, None) for name in getattr(type(part), "__slots__", ())]
            for holder in (part, *getattr(part, "__dict__", {}).values(), *fields):
                cfg = getattr(holder, "cfg", None) or getattr(holder, "config", None)
                if cfg is not None and hasattr(cfg, "tile_m"):
                    text = (f"{cfg.tile_m}x{cfg.tile_n} s{cfg.stages} c{cfg.cluster_m}x{getattr(cfg, 'cluster_n', 1)} "
                            f"k{cfg.split_k}")
                    extras = [name for name in ("swap_ab", "stream_k", "split_tail", "pingpong", "batched")
                              if getattr(cfg, name, False)]
                    return text + "".join(f" {name}" for name in extras) + f" ({type(part).__name__})"
                if cfg is not None and hasattr(cfg, "block_m"):   # an AttentionConfig
                    return f"{cfg.block_m}x{cfg.block_n} s{cfg.stages}" + (" persistent" if cfg.persistent else "")
        return type(plan).__name__
    return "a plan made before"


def plan_tables():
    from skc.blocks import attention_host, conv, fp8_host, matmul_host

    return [module._PLANS for module in (matmul_host, fp8_host, attention_host, conv) if hasattr(module, "_PLANS")]


def numbered(kinds, seed):
    """(index, kind, module, case) of every case, numbered from 1 across the kinds in order."""
    index = 0
    for kind, count in kinds:
        for case in DRAWS[kind].cases(count, seed):
            index += 1
            yield index, kind, DRAWS[kind], case


def run_share(job):
    """One worker's cases: every `workers`-th (or the one `only`). The plan tables are kept between cases, so a
    later call may find the plan an earlier one made (its key must tell them apart)."""
    worker, workers, kinds, seed, only = job
    import torch  # noqa: F401  (each process its own context)

    import skc

    tables = plan_tables()
    rows = []
    for index, kind, draws, case in numbered(kinds, seed):
        if (only and index != only) or (not only and index % workers != worker):
            continue
        row = {"index": index, "kind": kind, "case": case.label(),
               "group": kind + (f" {case.kind}" if kind == "gemm" else "")}   # (a GEMM's dtype: bf16, fp16, fp8)
        started = time.perf_counter()
        before = [set(map(id, table.values())) for table in tables]
        try:
            result = draws.run_case(case, seed=seed * 100003 + index)
            row.update(relative=result.relative, largest=result.largest, nans=result.nans,
                       outcome="ok" if result.right else "wrong", detail=result.describe())
        except skc.LaunchError as error:
            row.update(outcome="refused", detail=str(error))
        except Exception as error:   # a crash is a finding: keep its text
            row.update(outcome="crashed", detail=f"{type(error).__name__}: {error}",
                       trace=traceback.format_exc(limit=6))
        made = [plan for table, ids in zip(tables, before) for plan in table.values() if id(plan) not in ids]
        row["config"] = config_of(made)
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
    parser.add_argument("--case", type=int, default=0, help="run only the case of this number (as printed)")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    kinds = parse_kinds(args.kinds)
    started = time.perf_counter()
    workers = 1 if args.case else args.workers
    jobs = [(w, workers, kinds, args.seed, args.case) for w in range(workers)]
    # (a worker that dies, a crash inside the driver for one, raises BrokenProcessPool here instead of a hang)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = sorted((row for share in pool.map(run_share, jobs) for row in share), key=lambda r: r["index"])
    counts = {}
    for row in rows:
        counts.setdefault(row["group"], {}).setdefault(row["outcome"], 0)
        counts[row["group"]][row["outcome"]] += 1
        if row["outcome"] != "ok":
            print(f"{row['outcome'].upper()} #{row['index']} {row['case']} [{row['config']}]: {row['detail']}")
            if "trace" in row:
                print(row["trace"])
    print(f"{len(rows)} cases (seed {args.seed}) in {time.perf_counter() - started:.0f} s on {workers} workers; "
          f"configurations: {len({r['config'] for r in rows})}")
    for kind, outcomes in sorted(counts.items()):
        right = [r for r in rows if r["outcome"] == "ok" and r["group"] == kind]
        worst = max(right, key=lambda r: r["relative"], default=None)
        print(f"  {kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
              + (f"; largest relative error {worst['relative']:.2e}" if worst else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": args.seed, "kinds": args.kinds, "rows": rows}, f, indent=1)
    # every drawn call is one skc takes: a refusal is a finding too
    return 1 if any(r["outcome"] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
