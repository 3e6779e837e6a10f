"""mixgen's random programs (tests/fuzz/mixgen.py: every scalar type, casts, fp8, vectors, helpers, run-time loops,
atomics, shared memory, warp collectives) on the GPU against the interpreter, bit for bit (NaN as NaN).

    python benchmarks/fuzz_mix_gpu.py [--seed 11] [--batches 64] [--count 16] [--jobs 8] [--seconds 240]

A batch of --count programs is one kernel (program b runs in block b, 16 threads: a partial warp). Batch k has seed
SEED * 100000 + k, as tests/fuzz/mixfuzz.py numbers them, so a mismatch reproduces there (in the PTX emulator) or
here. Prints each mismatching batch's programs and first differences, writes their sources under --out, and exits
1 when any program mismatches. The emulator agreed with the interpreter where an H200 did not (forty-third
session: warp collectives after loops of differing trip counts), which is why this runs on the GPU itself.
"""
import argparse
import itertools
import multiprocessing
import os
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))
import fuzzgen  # noqa: E402
import mixgen  # noqa: E402
import skc  # noqa: E402
from mixfuzz import mismatches  # noqa: E402  (program, thread, type, slot, interpreter, other)
from skc.diagnostics import CompileError  # noqa: E402


def run_batch(batch, folder: str, tag: str):
    """The batch's outputs from the interpreter and from the GPU."""
    kernel = fuzzgen.load_module(batch.source, folder, f"mixgpu_{batch.seed}_{batch.count}{tag}").batch
    want = batch.outputs_template()
    kernel.interpret[batch.count, mixgen.T](*[x.copy() for x in batch.inputs_now()], *want)
    inputs = [skc.to_device(x.copy()) for x in batch.inputs_now()]
    outputs = [skc.to_device(x) for x in batch.outputs_template()]
    kernel[batch.count, mixgen.T](*inputs, *outputs)
    return want, [d.raw().view(w.dtype) for d, w in zip(outputs, want)]


def compiled_batch(seed: int, count: int, folder: str):
    """The batch of `seed`, without the programs skc refuses (each refusal names its program's line)."""
    batch = mixgen.Batch(seed, count, 3, extra=True)
    for attempt in itertools.count():
        try:
            return batch, run_batch(batch, folder, f"_{attempt}")
        except CompileError as e:
            line = getattr(getattr(e, "loc", None), "line", None)
            program = batch.program_at(line) if line else None
            if program is None or batch.count <= 1:
                raise
            batch.drop(program)


def worker(job: int, args) -> tuple:
    folder = tempfile.mkdtemp()
    deadline = time.time() + args.seconds
    programs = bad = errors = 0
    for k in range(job, args.batches, args.jobs):
        if time.time() > deadline:
            break
        seed = args.seed * 100000 + k
        try:
            batch, (want, got) = compiled_batch(seed, args.count, folder)
        except Exception as e:   # noqa: BLE001  (reported, and counted against the run)
            errors += 1
            print(f"ERROR seed {seed}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                  flush=True)
            with open(os.path.join(args.out, f"error_{seed}.txt"), "w") as f:
                f.write(traceback.format_exc())
            continue
        programs += batch.count
        found = mismatches(batch, want, got)
        if found:
            which = sorted({f[0] for f in found})
            bad += len(which)
            print(f"MISMATCH seed {seed}: programs {which}: {found[:3]}", flush=True)
            with open(os.path.join(args.out, f"mismatch_{seed}.txt"), "w") as f:
                f.write(batch.source + "\n\n" + "\n".join(map(str, found[:300])))
    return programs, bad, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--batches", type=int, default=64)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=240.0, help="each job stops taking batches after this")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "skc-mix-gpu"))
    args = parser.parse_args()
    if skc.current_device().kind != "cuda":
        sys.exit("fuzz_mix_gpu: no NVIDIA GPU here (tests/fuzz/mixfuzz.py runs the same programs in the emulator)")
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.starmap(worker, [(job, args) for job in range(args.jobs)])
    programs, bad, errors = (sum(r[i] for r in results) for i in range(3))
    print(f"{programs} programs in {time.time() - start:.0f} s: {bad} mismatching, {errors} batch errors "
          f"(sources of the mismatches in {args.out})")
    sys.exit(1 if bad or errors else 0)


if __name__ == "__main__":
    main()
