"""Fixtures of the blocks' tests."""
import pytest

import skc
from skc.blocks import conv, matmul_host
from skc.runtime import devices


@pytest.fixture
def hopper_interpreter(monkeypatch):
    """The interpreter modelling sm_90a as the current device, with no matmul or conv2d plans from earlier tests (a
    test that looks up the plan its call made finds that one alone)."""
    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "sm_90a")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    matmul_host._PLANS.clear()
    conv._PLANS.clear()
    assert skc.current_device().target.name == "sm_90a"
    yield skc.current_device()
    matmul_host._PLANS.clear()
    conv._PLANS.clear()
    devices._target_of.cache_clear()
