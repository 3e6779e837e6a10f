"""Differential fuzzing of Python's meaning over compile-time objects (pygen.py): random kernels mixing lists,
dicts, sets, iterators, closures, small classes, properties and dataclasses with run-time values and control flow,
run in the interpreter and as plain Python; each must agree or be refused with an skc error. CI runs
SKC_PYGEN_COUNT programs (default 60, a few seconds) from SKC_PYGEN_SEED; `python tests/fuzz/pygen.py --seed N
--count C` runs more, `python tests/fuzz/pygen.py minimize SEED` shrinks a failing one."""
import os
import sys
import tempfile

import pytest

import pygen

COUNT = int(os.environ.get("SKC_PYGEN_COUNT", "60"))
SEED = int(os.environ.get("SKC_PYGEN_SEED", "1000"))


@pytest.mark.filterwarnings("ignore")
def test_python_object_programs_agree_or_are_refused():
    folder = tempfile.mkdtemp(prefix="pygen")
    sys.path.insert(0, folder)
    tally, bad = {}, []
    for seed in range(SEED, SEED + COUNT):
        verdict, detail, program = pygen.run_one(seed, folder)
        tally[verdict] = tally.get(verdict, 0) + 1
        if verdict in ("DIFFERENT", "FOREIGN"):
            bad.append(f"seed {seed}: {verdict}: {detail}\n{program}")
    assert not bad, "\n".join(bad[:3])
    assert tally.get("same", 0) >= COUNT // 5, tally   # (the generator still makes programs skc runs)


def test_the_generator_covers_its_constructs():
    source = "".join(pygen.make_source(seed) for seed in range(40))
    for construct in ("for i0 in range(", "while ", "break", "continue", "return", ":=", " and ", " or ",
                      "lambda", "def g", "h_set(", "o.bump(", "next(it", " is ", " in ", "q = Pt(", "acc += ",
                      "D['", "S.", ".append("):
        assert construct in source, construct
