"""Driver: mixgen batches in the interpreter against their sm_90a PTX in the emulator.

    python mixfuzz.py --seed 1 --batches 10 --count 12
"""
import argparse
import os
import sys
import tempfile
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzgen  # noqa: E402
import mixgen  # noqa: E402
import ptx_emulator  # noqa: E402
from skc.diagnostics import CompileError  # noqa: E402


def run_batch(batch, folder, tag="", reconverge=True):
    module = fuzzgen.load_module(batch.source, folder, f"mix_{batch.seed}_{batch.count}{tag}")
    kernel = module.batch
    want = batch.outputs_template()
    kernel.interpret[batch.count, mixgen.T](*[x.copy() for x in batch.inputs_now()], *want)
    compiled = kernel.compile(target="sm_90a", block=(mixgen.T, 1, 1))
    ptx = compiled.asm("ptx")
    got = batch.outputs_template()
    arrays = [x.copy() for x in batch.inputs_now()] + got
    ptx_emulator.run_grid(ptx, "batch", arrays, batch.count, mixgen.T, reconverge=reconverge)
    return want, got, ptx


def mismatches(batch, want, got):
    names = list(mixgen.TYPES) + ["b"]
    found = []
    for name, w, g in zip(names, want, got):
        bad = np.flatnonzero(~mixgen.same(w, g))
        for i in bad:
            prog, rest = divmod(int(i), mixgen.T * mixgen.NV)
            found.append((prog, rest // mixgen.NV, name, rest % mixgen.NV, w[i], g[i]))
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--out", default="/tmp/mixfuzz")
    ap.add_argument("--plain", action="store_true", help="the first feature set only (no fp8, wide vectors, "
                    "atomics, shared memory, warp collectives, math builtins)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    folder = tempfile.mkdtemp()
    total = bad_programs = errors = 0
    rejected = []
    for k in range(args.batches):
        seed = args.seed * 100000 + k
        batch = mixgen.Batch(seed, args.count, args.depth, extra=not args.plain)
        t0 = time.time()
        result = None
        try:
            for attempt in range(args.count + 1):
                try:
                    result = run_batch(batch, folder, f"_{attempt}")
                    break
                except CompileError as e:
                    loc = getattr(e, "location", None) or getattr(e, "loc", None)
                    line = getattr(loc, "line", None)
                    k_bad = batch.program_at(line) if line else None
                    msg = str(e).splitlines()[0]
                    rejected.append(msg.split("error: ", 1)[-1])
                    with open(f"{args.out}/rejected.txt", "a") as f:
                        f.write(f"seed {seed} line {line}: {msg}\n")
                    if k_bad is None or batch.count <= 1:
                        raise
                    batch.drop(k_bad)
        except Exception as e:   # noqa: BLE001
            errors += 1
            kind = type(e).__module__ + "." + type(e).__name__
            with open(f"{args.out}/err_{seed}.txt", "w") as f:
                f.write(batch.source + "\n\n" + traceback.format_exc())
            print(f"ERROR seed {seed}: {kind}: {str(e).splitlines()[0][:200] if str(e) else ''}", flush=True)
            continue
        want, got, ptx = result
        with open(f"{args.out}/last.ptx", "w") as f:
            f.write(ptx)
        total += batch.count
        found = mismatches(batch, want, got)
        progs = sorted({m[0] for m in found})
        bad_programs += len(progs)
        if found:
            with open(f"{args.out}/mis_{seed}.txt", "w") as f:
                f.write(batch.source + "\n\n" + "\n".join(map(str, found[:200])))
            with open(f"{args.out}/mis_{seed}.ptx", "w") as f:
                f.write(ptx)
            print(f"MISMATCH seed {seed}: programs {progs}: {found[:3]}", flush=True)
        print(f"seed {seed}: {batch.count} programs, {time.time() - t0:.1f}s", flush=True)
    print(f"done: {total} programs run, {bad_programs} mismatching, {errors} batch errors")


if __name__ == "__main__":
    main()
