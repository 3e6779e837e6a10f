"""Reduce a GPU-vs-interpreter fuzz mismatch to a small program: statements of the program are removed (or their
`if`/loop unwrapped) while the GPU still disagrees with the interpreter on the same 32 threads' inputs.

    python benchmarks/fuzz_reduce.py --seed 20261130 --batch 9 [--jobs 12] [--out DIR]

The batch's programs are removed (halves first), then each kept program's statements. Candidates are tried --jobs at a time in worker processes (each compiles, interprets and launches one kernel);
the first that still disagrees is kept. Prints the reduced program and its mismatches, and writes its source, its
PTX and the SASS of the ptxas -O3 and -O0 cubins under --out. `--oracle value:PROGRAM:THREAD:SLOT:VALUE` replaces the GPU
by a condition on the interpreter's int output (to check the reducer itself on a machine without a GPU).
"""
import argparse
import ast
import concurrent.futures
import multiprocessing
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))
import fuzzgen  # noqa: E402

_INPUTS: dict = {}


def kernel_source(programs: list) -> str:
    """The batch kernel of the kept programs [(block, lines)]: block b runs program b as in fuzzgen; the blocks of
    removed programs do nothing."""
    lines = ["", "", "@skc.kernel",
             "def batch(xi: skc.Ptr[skc.i32], xf: skc.Ptr[skc.f32], oi: skc.Ptr[skc.i32], of: skc.Ptr[skc.f32]):",
             "    b = skc.block_id(0)",
             f"    o = (b * {fuzzgen.T} + skc.thread_id(0)) * {fuzzgen.NV}"]
    for k, _ in programs:
        lines += [f"    if b == {k}:", f"        p{k}(xi, xf, oi, of, o)"]
    return fuzzgen.SKC_HEADER + "\n\n" + "\n\n\n".join("\n".join(body) for _, body in programs) + "\n" + \
        "\n".join(lines) + "\n"


def outputs(programs: list, oracle: str, tag: str):
    """(interpreter outputs, GPU outputs or None) of the kept programs; None when they do not compile or run."""
    import skc

    warnings.simplefilter("ignore", RuntimeWarning)
    xi, xf = _INPUTS["xi"], _INPUTS["xf"]
    grid = _INPUTS["count"]
    source = kernel_source(programs)
    try:
        ast.parse(source)
        folder = tempfile.mkdtemp(prefix="skc-reduce-")
        kernel = fuzzgen.load_module(source, folder, f"reduce_{tag}").batch
        want = (np.zeros_like(xi), np.zeros_like(xf))
        kernel.interpret[grid, fuzzgen.T](xi, xf, *want)
        if oracle != "gpu":
            return want, None
        arrays = [skc.to_device(xi), skc.to_device(xf), skc.to_device(np.zeros_like(xi)),
                  skc.to_device(np.zeros_like(xf))]
        kernel[grid, fuzzgen.T](*arrays)
        return want, (arrays[2].numpy(), arrays[3].numpy())
    except Exception as error:   # noqa: BLE001  (a candidate that is no longer a valid program is not kept)
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def interesting(job) -> tuple:
    """(whether the candidate still disagrees, why it did not run or '')."""
    programs, oracle, tag = job
    found = outputs(programs, oracle, tag)
    if isinstance(found, str):
        return False, found
    want, got = found
    if oracle == "gpu":
        return bool((got[0] != want[0]).any() or (~fuzzgen.same_floats(got[1], want[1])).any()), ""
    _, program, thread, slot, value = oracle.split(":")
    return int(want[0][(int(program) * fuzzgen.T + int(thread)) * fuzzgen.NV + int(slot)]) == int(value), ""


def spans(lines: list) -> list:
    """(start, end) of each statement with its indented body, largest first."""
    found = []
    for i, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith("@") or text.startswith("def "):
            continue
        indent = len(line) - len(line.lstrip())
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        found.append((i, end))
    return sorted(found, key=lambda s: s[0] - s[1])


def smaller(lines: list):
    """A program's smaller forms: a statement removed, or a compound statement replaced by its dedented body."""
    for start, end in spans(lines):
        yield lines[:start] + lines[end:]
        if end - start > 1 and lines[start].rstrip().endswith(":"):
            indent = len(lines[start]) - len(lines[start].lstrip())
            body = [line[4:] if len(line) - len(line.lstrip()) > indent else line for line in lines[start + 1:end]]
            yield lines[:start] + body + lines[end:]


def candidates(programs: list):
    """Halves, then single programs, removed; then each kept program made smaller."""
    n = len(programs)
    size = n // 2
    while size >= 1:
        for start in range(0, n, size):
            rest = programs[:start] + programs[start + size:]
            if rest:
                yield rest
        size //= 2
    for i, (k, lines) in enumerate(programs):
        for smaller_lines in smaller(lines):
            yield programs[:i] + [(k, smaller_lines)] + programs[i + 1:]


def reduce(programs: list, oracle: str, jobs: int, keep: str) -> list:
    """The smallest disagreeing batch found (written to `keep` after each step, so a time limit loses nothing)."""
    counter = [0]
    # spawned workers: a forked child cannot use the CUDA context its parent made
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init,
                                                initargs=(dict(_INPUTS),)) as pool:
        changed = True
        while changed:
            changed = False
            pending = list(candidates(programs))
            for first in range(0, len(pending), jobs):
                group = pending[first:first + jobs]
                tags = [f"{counter[0] + k}" for k in range(len(group))]
                counter[0] += len(group)
                found = list(pool.map(interesting, [(c, oracle, t) for c, t in zip(group, tags)]))
                results = [f[0] for f in found]
                errors = [f[1] for f in found if f[1]]
                if errors and len(errors) == len(found):
                    print(f"  all {len(found)} candidates failed to run, e.g. {errors[0]}", flush=True)
                if any(results):
                    programs = group[results.index(True)]
                    print(f"  {len(programs)} programs, {sum(len(p[1]) for p in programs)} lines", flush=True)
                    with open(keep, "w") as f:
                        f.write(kernel_source(programs))
                    changed = True
                    break
    return programs


def _init(inputs):
    _INPUTS.update(inputs)


def sass(ptx: str, level: int) -> str:
    """The SASS of the ptxas -O<level> cubin of `ptx` (fuzz_isolate.cubin makes the cubin)."""
    from fuzz_isolate import cubin
    from skc.backends import ptx_tools

    disasm = ptx_tools.nvdisasm_path()
    if disasm is None:
        return "(no nvdisasm)"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin(ptx, level))
        f.flush()
        return subprocess.run([disasm, "-c", f.name], capture_output=True, text=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--batch", type=int, default=9)
    parser.add_argument("--per-batch", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--oracle", default="gpu")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp/skc-reduce"))
    args = parser.parse_args()
    batch = fuzzgen.Batch(args.seed * 1000 + args.batch, args.per_batch)
    _INPUTS.update(xi=batch.xi, xf=batch.xf, count=batch.count)
    programs = [(k, p.source.splitlines()) for k, p in enumerate(batch.programs)]
    disagrees, error = interesting((programs, args.oracle, "start"))
    if not disagrees:
        print("the batch does not disagree: nothing to reduce", error)
        return 1
    print(f"reducing batch {args.batch} of seed {args.seed}: {sum(len(p[1]) for p in programs)} lines")
    os.makedirs(args.out, exist_ok=True)
    programs = reduce(programs, args.oracle, args.jobs, os.path.join(args.out, f"reducing-{args.seed}-{args.batch}.py"))
    source = kernel_source(programs)
    print(source)
    want, got = outputs(programs, args.oracle, "final")
    if got is not None:
        for what, bad in (("int", np.flatnonzero(got[0] != want[0])),
                          ("float", np.flatnonzero(~fuzzgen.same_floats(got[1], want[1])))):
            for k in bad[:8]:
                thread, slot = divmod(int(k) % (fuzzgen.T * fuzzgen.NV), fuzzgen.NV)
                row = int(k) - slot
                print(f"block {int(k) // (fuzzgen.T * fuzzgen.NV)} thread {thread} {what} slot {slot}: GPU "
                      f"{(got[0] if what == 'int' else got[1])[k]!r}, interpreter "
                      f"{(want[0] if what == 'int' else want[1])[k]!r}; inputs xi={batch.xi[row:row + 4].tolist()} "
                      f"xf={batch.xf[row:row + 4].tolist()}")
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"reduced-{args.seed}-{args.batch}")
    with open(stem + ".py", "w") as f:
        f.write(source)
    if args.oracle == "gpu":
        folder = tempfile.mkdtemp(prefix="skc-reduce-")
        kernel = fuzzgen.load_module(source, folder, "reduce_final_ptx").batch
        ptx = kernel.compile(batch.xi, batch.xf, batch.xi, batch.xf, target="sm_90a",
                             block=(fuzzgen.T, 1, 1)).asm("ptx")
        with open(stem + ".txt", "w") as f:
            f.write(ptx + "\n\n// ---- ptxas -O3 ----\n" + sass(ptx, 3) + "\n\n// ---- ptxas -O0 ----\n" + sass(ptx, 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
