"""The hang guard on the GPU: pipeline misuses that escape the compile-time checks, run with debug=True, end
within seconds with a DeadlockError naming the waiting line (each in a subprocess with a timeout: a real hang
fails the test instead of hanging the session; a trap also kills the CUDA context, which the subprocess takes)."""
import os
import subprocess
import sys
import time

import pytest

from helpers import line_of

pytestmark = pytest.mark.gpu

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "hang_kernels.py")
sys.path.insert(0, HERE)
import hang_kernels  # noqa: E402


def run_script(name: str, timeout: float = 60, **env):
    root = os.path.dirname(os.path.dirname(HERE))
    environment = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""),
                       SKC_HANG_TIMEOUT="2", **env)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, SCRIPT, name], capture_output=True, text=True, timeout=timeout,
                            env=environment, cwd=HERE)
    return result, time.perf_counter() - started


@pytest.mark.parametrize("name,markers", [("short_producer", ["# HANG: consumer"]),
                                          ("expect_tx_16", ["# HANG: every"]),
                                          # the consumers wait for the missing stage, the producer's drain for
                                          # the consumers: either may time out first
                                          ("gemm_short_producer", ["# HANG: consumers", "with pipe.producer()"])])
def test_a_hang_becomes_a_deadlock_error_at_the_waiting_line(name, markers):
    kernel = hang_kernels.KERNELS[name]
    result, seconds = run_script(name)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    lines = [line_of(kernel, marker) for marker in markers]
    assert any(f"DeadlockError: {SCRIPT}:{line}:" in output for line in lines), output
    assert "deadlock on the GPU" in output and "gave up after" in output
    assert "parity" in output and "stage" in output and "role: the code inlined through" in output
    assert seconds < 45, f"took {seconds:.0f} s"


def test_the_correct_form_runs_under_the_guard():
    result, _ = run_script("expect_tx_0")
    assert result.returncode == 0 and "finished:" in result.stdout, result.stdout + result.stderr


def test_a_fault_that_is_not_a_hang_names_the_waits_it_could_have_been():
    """A debug launch that fails without a hang (an illegal address after a wait that completed) is a DeviceError,
    not a DeadlockError, and names the kernel's guarded wait (its line) as the barrier that could be involved."""
    result, _ = run_script("faults_after_wait")
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "DeviceError: faults_after_wait failed in debug mode with no hang record" in output, output
    line = line_of(hang_kernels.faults_after_wait, "# SITE: completes")
    assert f"site 1: {SCRIPT}:{line}" in output and "DeadlockError" not in output, output
