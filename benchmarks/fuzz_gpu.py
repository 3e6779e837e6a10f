"""Random kernels on the GPU against the CPU interpreter (and both against the Python reference).

    python benchmarks/fuzz_gpu.py --count 1000 --seed 2026 [--per-batch 100] [--known-bugs] [--extra]

Programs come from tests/fuzz/fuzzgen.py; a batch of --per-batch programs is one kernel (program b runs in block
b), so 1000 programs are 10 compiles and 10 launches. --extra adds fuzzgen's extra constructs (integers of
mixed widths, // and % by negative divisors, wide shifts, float to integer casts, f16/bf16, min/max of NaN and -0.0,
while True and loops with else). Prints each mismatch with the program's source and the
inputs of a thread that shows it; exits 1 when there is any. Without a GPU it checks the interpreter alone.
"""
import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))
import fuzzgen  # noqa: E402
import skc  # noqa: E402


def run_gpu(kernel, batch):
    xi, xf = skc.to_device(batch.xi), skc.to_device(batch.xf)
    oi, of = skc.to_device(np.zeros_like(batch.xi)), skc.to_device(np.zeros_like(batch.xf))
    kernel[batch.count, fuzzgen.T](xi, xf, oi, of)
    return oi.numpy(), of.numpy()


def run_interpreter(kernel, batch):
    oi, of = np.zeros_like(batch.xi), np.zeros_like(batch.xf)
    kernel.interpret[batch.count, fuzzgen.T](batch.xi, batch.xf, oi, of)
    return oi, of


def check(batch, what, got, want) -> int:
    found = fuzzgen.mismatches(batch, *got, *want)
    shown = set()
    for program, thread, kind, slot, value, expected in found:
        if program in shown or len(shown) >= 5:
            continue
        shown.add(program)
        print(f"MISMATCH ({what}) seed {batch.seed} p{program} thread {thread}: {kind} output {slot} is {value!r}, "
              f"expected {expected!r}")
        print(fuzzgen.program_report(batch, program, thread))
    return len({m[0] for m in found})


def run_batch(job):
    """One batch (in a worker process): (kernels, mismatching programs, report text, seconds by part)."""
    import contextlib
    import io

    seed, count, known_bugs, folder, extra = job
    warnings.simplefilter("ignore", RuntimeWarning)
    out = io.StringIO()
    timings = {"compile+gpu": 0.0, "interpreter": 0.0}
    with contextlib.redirect_stdout(out):
        batch = fuzzgen.Batch(seed, count, known_bugs=known_bugs, extra=extra)
        want = batch.reference(folder)
        kernel = batch.kernel(folder)
        t0 = time.perf_counter()
        try:
            interpreted = run_interpreter(kernel, batch)
        except skc.SkcError as error:   # a compile error or an interpreter fault: its message names the program
            print(f"ERROR seed {batch.seed}: compiling or interpreting the batch failed: {error}")
            return count, count, out.getvalue(), timings
        timings["interpreter"] = time.perf_counter() - t0
        bad = check(batch, "interpreter vs Python", interpreted, want)
        if skc.gpu_available():
            t0 = time.perf_counter()
            try:
                on_gpu = run_gpu(kernel, batch)
                timings["compile+gpu"] = time.perf_counter() - t0
                bad += check(batch, "GPU vs interpreter", on_gpu, interpreted)
            except skc.SkcError as error:
                print(f"ERROR seed {batch.seed}: the GPU run failed: {error}")
                bad += count
    return count, bad, out.getvalue(), timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=int(os.environ.get("SKC_FUZZ_COUNT", "1000")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SKC_FUZZ_SEED", "2026")))
    parser.add_argument("--per-batch", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1),
                        help="worker processes (each compiles and launches its own batches)")
    parser.add_argument("--known-bugs", action="store_true")
    parser.add_argument("--extra", action="store_true", help="fuzzgen's extra constructs too (Batch(extra=True))")
    args = parser.parse_args()
    gpu = skc.gpu_available()
    print(f"fuzzing {args.count} kernels from seed {args.seed} in {args.jobs} processes: " +
          ("GPU, interpreter and Python reference" if gpu else "no GPU: interpreter against the Python reference"))
    folder = tempfile.mkdtemp(prefix="skc-fuzz-")
    jobs = [(args.seed * 1000 + index, min(args.per_batch, args.count - index * args.per_batch), args.known_bugs,
             folder, args.extra) for index in range(-(-args.count // args.per_batch))]
    started = time.perf_counter()
    bad = done = 0
    timings = {"compile+gpu": 0.0, "interpreter": 0.0}
    if args.jobs > 1:
        import multiprocessing

        # spawn: a forked child must not inherit the parent's CUDA state
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = list(pool.imap_unordered(run_batch, jobs))
    else:
        results = [run_batch(job) for job in jobs]
    for count, found, text, parts in results:
        done, bad = done + count, bad + found
        print(text, end="")
        for key, value in parts.items():
            timings[key] += value
    seconds = time.perf_counter() - started
    print(f"{done} kernels in {seconds:.1f} s (summed over processes: "
          f"{', '.join(f'{k} {v:.1f} s' for k, v in timings.items())}): {bad} mismatching programs")
    return 1 if bad or done < args.count else 0


if __name__ == "__main__":
    sys.exit(main())
