"""Reduce one mismatching mixgen program: python mixreduce.py SEED COUNT PROGRAM_INDEX THREAD [plain]
(programs of the wider feature set unless `plain`; a program with block or warp collectives keeps every
thread's inputs)"""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzgen  # noqa: E402
import mixgen  # noqa: E402
import ptx_emulator  # noqa: E402
from mixfuzz import mismatches  # noqa: E402

folder = tempfile.mkdtemp()
counter = [0]


class One:
    def __init__(self, helpers, body, inputs):
        self.helpers, self.body, self.inputs_all = helpers, body, inputs
        self.count = 1

    def source(self):
        prog = type("P", (), {})()
        prog.helpers, prog.body, prog.name = self.helpers, self.body, "p0"
        return mixgen._kernel_source([prog])

    def inputs_now(self):
        return self.inputs_all

    def outputs_template(self):
        return [np.zeros_like(x) for x in self.inputs_all] + [np.zeros(mixgen.T * mixgen.NV, np.uint8)]


def check(one):
    counter[0] += 1
    src = one.source()
    try:
        m = fuzzgen.load_module(src, folder, f"red_{counter[0]}")
        k = m.batch
        want = one.outputs_template()
        k.interpret[1, mixgen.T](*[x.copy() for x in one.inputs_now()], *want)
        ptx = k.compile(target="sm_90a", block=(mixgen.T, 1, 1)).asm("ptx")
        got = one.outputs_template()
        ptx_emulator.run_grid(ptx, "batch", [x.copy() for x in one.inputs_now()] + got, 1, mixgen.T)
    except Exception:
        return None
    return mismatches(one, want, got), ptx


def block_end(lines, i):
    ind = len(lines[i]) - len(lines[i].lstrip())
    j = i + 1
    while j < len(lines) and len(lines[j]) - len(lines[j].lstrip()) > ind:
        j += 1
    return j


def main():
    seed, count, pk, thread = map(int, sys.argv[1:5])
    batch = mixgen.Batch(seed, count, extra=sys.argv[5:6] != ["plain"])
    prog = batch.programs[pk]
    size = mixgen.T * mixgen.NV
    o = (pk * mixgen.T + thread) * mixgen.NV
    collective = any(w in line for line in prog.body for w in ("skc.barrier", "skc.warp_", "skc.shfl", "skc.vote",
                                                                 "skc.ballot"))
    if collective:     # the other threads' inputs matter: keep the program's own block of them
        inputs = [x[pk * size:(pk + 1) * size].copy() for x in batch.inputs]
    else:
        inputs = [np.tile(x[o:o + mixgen.NV], mixgen.T) for x in batch.inputs]
    rename = lambda s: s.replace(f"{prog.name}_", "p0_")  # noqa: E731
    helpers = [(rename(n), rename(s), p, r) for n, s, p, r in prog.helpers]
    body = [rename(line) for line in prog.body]
    one = One(helpers, body, inputs)
    r = check(one)
    assert r and r[0], ("does not reproduce alone", r)
    stores = set(one.body[-(len(mixgen.TYPES) + 1) * mixgen.NV:])
    changed = True
    while changed:
        changed = False
        i = len(one.body) - 1
        while i >= 0:
            line = one.body[i]
            j = block_end(one.body, i)
            trial = one.body[:i] + one.body[j:]
            # keep the block structure valid: a header left with an empty body gets a pass
            cand = One(one.helpers, trial, inputs)
            res = check(cand)
            if res and res[0]:
                one = cand
                changed = True
            elif line.strip().startswith(("if ", "elif ", "else", "for ", "while ")) and j - i > 1:
                # try hoisting the body out of the header (dedent)
                pass
            i = min(i, len(one.body)) - 1
        for h in list(one.helpers):
            cand = One([x for x in one.helpers if x is not h], one.body, inputs)
            res = check(cand)
            if res and res[0]:
                one, changed = cand, True
    res = check(one)
    print(one.source())
    print(res[0][:6])
    open(f"/tmp/reduced_{seed}_{pk}.py", "w").write(one.source())
    open(f"/tmp/reduced_{seed}_{pk}.ptx", "w").write(res[1])
    print("inputs:", {t: x[:mixgen.NV].tolist() for t, x in zip(mixgen.TYPES, inputs)})


main()
