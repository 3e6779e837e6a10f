"""Random skc.blocks.matmul calls (tests/fuzz/gemm_cases.py) on the GPU: bf16, fp16 and fp8 of every scaling, the
configuration skc chooses itself, outputs poisoned, against a float32 reference. benchmarks/gemm_fuzz.py runs many
more draws."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz"))
import gemm_cases  # noqa: E402

pytestmark = pytest.mark.gpu
CASES = gemm_cases.cases(48, seed=37)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.label() for case in CASES])
def test_random_matmul_call_is_right(index):
    case = CASES[index]
    relative, largest, nans = gemm_cases.run_case(case, seed=index)
    most_relative, most_largest = gemm_cases.tolerance(case)
    assert nans == 0 and relative <= most_relative and largest <= most_largest, (relative, largest, nans)
