"""Random calls of skc's host-side blocks (tests/fuzz/{gemm,attention,conv}_cases.py) on the GPU: matmul (bf16,
fp16 and fp8 of every scaling), attention and conv2d, each with the configuration skc chooses itself, outputs
poisoned, against float32 references. benchmarks/blocks_fuzz.py runs many more draws; the plans here are kept
from case to case too."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz"))
import attention_cases  # noqa: E402
import conv_cases  # noqa: E402
import gemm_cases  # noqa: E402

pytestmark = pytest.mark.gpu
CASES = ([(gemm_cases, case) for case in gemm_cases.cases(48, seed=37)]
         + [(attention_cases, case) for case in attention_cases.cases(16, seed=37)]
         + [(conv_cases, case) for case in conv_cases.cases(16, seed=37)])


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.label() for _, case in CASES])
def test_random_call_is_right(index):
    """Outputs poisoned, inputs fresh before each repeated call, limits from the output type's own rounding
    (tests/fuzz/call_checks.py)."""
    draws, case = CASES[index]
    result = draws.run_case(case, seed=index)
    assert result.right, result.describe()
