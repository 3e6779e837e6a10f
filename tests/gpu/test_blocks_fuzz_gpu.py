"""Random calls of skc's host-side blocks (tests/fuzz/{gemm,attention,conv}_cases.py) on the GPU: matmul (bf16,
fp16 and fp8 of every scaling), attention and conv2d, each with the configuration skc chooses itself, outputs
poisoned, against float32 references, and conv2d of every grouping (tests/fuzz/conv_group_cases.py).
benchmarks/blocks_fuzz.py runs many more draws; the plans here are kept from case to case too."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz"))
import attention_cases  # noqa: E402
import conv_cases  # noqa: E402
import conv_group_cases  # noqa: E402
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


GROUP_CASES = conv_group_cases.cases(24, seed=57, scale="gpu")


@pytest.mark.parametrize("index", range(len(GROUP_CASES)), ids=[case.label() for case in GROUP_CASES])
def test_random_grouped_conv2d_is_right(index):
    """tests/fuzz/conv_group_cases.py's calls at realistic sizes (depthwise, group stencil, batched GEMM,
    block-diagonal filters, refusals): right against cuDNN in float32, refused with the rule's words, on the plan the
    rules choose."""
    outcome = conv_group_cases.run(GROUP_CASES[index], "cuda", seed=index)
    assert not outcome.failed, outcome
