"""A few of conv_group_cases.py's random conv2d calls in the interpreter modelling sm_90a (fixed seeds), one fixed
call of each path, and its draws: deterministic, covering every grouping, layout and outcome they mean to."""
import collections

import pytest

import conv_group_cases as cg

torch = pytest.importorskip("torch")


@pytest.fixture
def hopper_interpreter(monkeypatch):
    """The interpreter modelling sm_90a as the current device (as tests/blocks/conftest.py's), no conv2d plans."""
    import skc
    from skc.blocks import conv
    from skc.runtime import devices

    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "sm_90a")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    conv._PLANS.clear()
    assert skc.current_device().target.name == "sm_90a"
    yield
    conv._PLANS.clear()
    devices._target_of.cache_clear()


def test_draws_are_deterministic_and_cover_the_groupings_and_layouts():
    cases = cg.cases(1500, 21)
    assert cases == cg.cases(1500, 21) and cases != cg.cases(1500, 22)
    assert {c.C // c.groups for c in cases if c.groups > 1} >= {1, 2, 4, 8, 16, 3, 6}
    assert {c.layout for c in cases} == {"channels_last", "nchw", "offset", "rows", "channels", "numpy"}
    assert {c.dtype for c in cases} == {"bf16", "fp16", "fp32", "mixed"}
    assert {c.out for c in cases} == {"", "given", "offset"} and any(c.repeated for c in cases)
    assert any(c.grad for c in cases) and any(c.w_offset for c in cases)
    assert {c.padding for c in cases if isinstance(c.padding, str)} == {"same", "valid"}
    assert any(c.R != c.S for c in cases) and any(c.N == 0 for c in cases) and any(c.C % 2 for c in cases)
    assert any(c.output_size() == (1, 1) for c in cases)
    for case in cases:
        assert case.C % case.groups == 0 and case.K % case.groups == 0 and max(case.R, case.S) <= 7


def test_gpu_draws_stay_within_their_sizes():
    cases = cg.cases(400, 5, "gpu")
    for case in cases:
        assert case.layout != "numpy" and case.dtype in ("bf16", "fp16", "fp32")
        assert case.C <= 512 and case.K <= 512 and 1 <= case.N <= 32 and min(case.H, case.W) >= 7
        assert max(case.N * case.C, case.N * case.K) * case.H * case.W <= 16 * 2 ** 20
    assert {c.C // c.groups for c in cases if c.groups > 1} >= {1, 2, 4, 8, 16}


def test_the_rules_choose_each_path(hopper_interpreter):
    paths = collections.Counter(cg.expected(c, cg.torch_refuses(c), c.layout not in ("nchw", "channels"))[0]
                                for c in cg.cases(1500, 21))
    assert {"_Stencil", "_BlockDiagonal", "GemmPlan", "GemmPlan of 2 groups", "_PaddedChannels", "_no_launch",
            None} <= set(paths)


@pytest.mark.parametrize("case, path", [
    (cg.Case("bf16", 2, 16, 6, 7, 32, 16, 3, 3, 1, 1, bias=True, activation="relu", out="offset", repeated=True),
     "_Stencil"),                                                                                     # depthwise
    (cg.Case("fp16", 1, 24, 5, 6, 24, 6, 3, 5, (2, 1), (1, 2), (1, 2), layout="offset"), "_Stencil"),  # 4 a group
    (cg.Case("bf16", 1, 32, 5, 5, 32, 4, 3, 3, 1, "same", layout="numpy", bias=True), "_Stencil"),     # 8 a group
    (cg.Case("bf16", 1, 32, 5, 4, 32, 2, 3, 3, 2, 1, activation="gelu"), "GemmPlan of 2 groups"),      # 16 a group
    (cg.Case("fp16", 2, 18, 5, 5, 24, 3, 2, 2, 1, "valid", out="given"), "_BlockDiagonal"),            # 6 a group
    (cg.Case("bf16", 1, 3, 4, 4, 8, 1, 3, 3, 1, 1, layout="rows"), "_PaddedChannels"),                 # RGB
    (cg.Case("bf16", 0, 8, 4, 4, 16, 8, 3, 3, 1, 1), "_no_launch"),                                    # no batch
    (cg.Case("bf16", 1, 8, 4, 4, 6, 2, 3, 3, 1, 1), "refused"),                                        # K = 6
    (cg.Case("bf16", 1, 8, 4, 4, 8, 8, 3, 3, 1, 1, layout="nchw"), "refused"),                         # NCHW
])
def test_a_call_of_each_path(hopper_interpreter, case, path):
    outcome = cg.run(case, seed=3)
    assert not outcome.failed and (outcome.path or outcome.kind) == path, (case.label(), outcome)


@pytest.mark.parametrize("first", [0, 6, 12])
def test_a_few_random_calls(hopper_interpreter, first):
    """Three of seed 57's calls from `first` (about a second each; a run of thousands: python
    tests/fuzz/conv_group_cases.py --count 3000 --seconds 3000)."""
    for index, case in enumerate(cg.cases(first + 3, 57)[first:], first):
        outcome = cg.run(case, seed=57 * 100003 + index)
        assert not outcome.failed, (index, case.label(), outcome)
