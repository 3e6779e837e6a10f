"""The interpreter's step budget: endless loops (a condition that never changes, a run-time step of 0, a spin
on memory nothing writes) end with InterpreterLimitError at the loop's line, naming the threads still in it."""
from __future__ import annotations

import inspect
import time

import numpy as np
import pytest

import skc
from skc import ir
from skc.diagnostics import InterpreterError, InterpreterLimitError, LaunchError
from skc.frontend import POINTER, SCALAR, ParamSpec, PtrType, Specialization, compile_to_ir
from skc.frontend import language as L
from skc.runtime.interpreter import Memory, run
from skc.target import get_target

TARGET = get_target("sm_90a")


def compile_kernel(fn, block=(64, 1, 1), **params) -> ir.Function:
    specs = tuple(ParamSpec(name, POINTER, t) if isinstance(t, PtrType) else ParamSpec(name, SCALAR, t)
                  for name, t in params.items())
    module, _ = compile_to_ir(fn, Specialization(specs, block), TARGET)
    return module.function()


def launch(function, *args, max_steps=None):
    memory = Memory()
    values = [memory.map_array(a, name=f"arg{i}") if isinstance(a, np.ndarray) else a for i, a in enumerate(args)]
    run(function, grid=(1, 1, 1), block=tuple(function.attrs["block"]), args=values, memory=memory, target=TARGET,
        max_steps=max_steps)


def line_of(fn, marker: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if marker in line)


def while_never_changes(out, n):
    t = L.thread_id(0)
    acc = 0
    if t >= 16:
        while n > 0:                      # LOOP
            acc += 1
    out[t] = acc


def range_with_step_zero(out, n, s):
    t = L.thread_id(0)
    acc = 0
    for i in range(n, 0, s):              # LOOP (a step of 0 counts down, as the backends test it: i > 0 stays true)
        acc += i
    out[t] = acc


def spin_on_memory(flag, out):
    t = L.thread_id(0)
    while flag[0] == 0:                   # LOOP
        pass
    out[t] = 1


def test_a_while_loop_whose_condition_never_changes_ends_at_its_line():
    f = compile_kernel(while_never_changes, out=PtrType(ir.i32), n=ir.i32)
    out = np.zeros(64, np.int32)
    start = time.perf_counter()
    with pytest.raises(InterpreterLimitError) as info:
        launch(f, out, 5, max_steps=20_000)
    assert time.perf_counter() - start < 20
    message = str(info.value)
    here = __file__.rstrip("c")
    assert message.startswith(f"{here}:{line_of(while_never_changes, '# LOOP')}:")
    assert "step budget of 20000 loop iterations in block (0, 0, 0)" in message
    assert "threads 16-63 (first: thread (16, 0, 0)) still run it" in message
    assert "SKC_INTERPRETER_STEPS" in message and "max_steps" in message
    assert isinstance(info.value, InterpreterError)


def test_a_terminating_loop_under_the_budget_still_runs():
    f = compile_kernel(while_never_changes, out=PtrType(ir.i32), n=ir.i32)
    out = np.full(64, -1, np.int32)
    launch(f, out, 0, max_steps=10)        # n = 0: the loop never iterates
    assert out.tolist() == [0] * 64
    g = compile_kernel(range_with_step_zero, out=PtrType(ir.i32), n=ir.i32, s=ir.i32)
    launch(g, out, 10, -3, max_steps=4)    # 4 iterations: exactly the budget
    assert out.tolist() == [10 + 7 + 4 + 1] * 64
    with pytest.raises(InterpreterLimitError):
        launch(g, out, 10, -3, max_steps=3)


def test_a_run_time_range_step_of_zero_ends_at_its_line():
    f = compile_kernel(range_with_step_zero, out=PtrType(ir.i32), n=ir.i32, s=ir.i32)
    out = np.zeros(64, np.int32)
    with pytest.raises(InterpreterLimitError) as info:
        launch(f, out, 10, 0, max_steps=5_000)
    message = str(info.value)
    assert f":{line_of(range_with_step_zero, '# LOOP')}:" in message.splitlines()[0]
    assert "threads 0-63 (first: thread (0, 0, 0)) still run it" in message


def test_a_spin_on_memory_nothing_writes_ends_at_its_line():
    f = compile_kernel(spin_on_memory, flag=PtrType(ir.i32), out=PtrType(ir.i32))
    flag, out = np.zeros(1, np.int32), np.zeros(64, np.int32)
    with pytest.raises(InterpreterLimitError) as info:
        launch(f, flag, out, max_steps=5_000)
    assert f":{line_of(spin_on_memory, '# LOOP')}:" in str(info.value).splitlines()[0]
    flag[0] = 1                             # the flag is set: the same kernel ends
    launch(f, flag, out, max_steps=5_000)
    assert out.tolist() == [1] * 64


def test_the_budget_comes_from_the_environment(monkeypatch):
    f = compile_kernel(range_with_step_zero, out=PtrType(ir.i32), n=ir.i32, s=ir.i32)
    out = np.zeros(64, np.int32)
    monkeypatch.setenv("SKC_INTERPRETER_STEPS", "777")
    with pytest.raises(InterpreterLimitError, match="step budget of 777 loop iterations"):
        launch(f, out, 10, 0)
    monkeypatch.setenv("SKC_INTERPRETER_STEPS", "lots")
    with pytest.raises(LaunchError, match="SKC_INTERPRETER_STEPS must be a positive number"):
        launch(f, out, 10, 0)
    with pytest.raises(LaunchError, match=r"run\(max_steps=...\) must be a positive number"):
        launch(f, out, 10, -1, max_steps=0)


def test_the_default_budget_ends_an_endless_loop_launched_as_a_kernel(monkeypatch):
    """Through @skc.kernel on the interpreter device: the public error class, with the budget from the env."""
    monkeypatch.setenv("SKC_INTERPRETER_STEPS", "3000")
    kernel = skc.kernel(spin_on_memory)
    flag, out = np.zeros(1, np.int32), np.zeros(32, np.int32)
    with pytest.raises(skc.InterpreterLimitError, match="step budget of 3000"):
        kernel.interpret[1, 32](flag, out)


def test_an_elif_chain_too_deep_for_the_interpreters_recursion_is_an_skc_error(tmp_path, monkeypatch):
    """A 300-branch if/elif chain compiles, and the interpreter, which recurses into each nested region, raised a bare
    RecursionError (sixty-fourth session); now an InterpreterLimitError that says what to write instead."""
    import importlib
    import sys

    lines = ["import skc", "", "", "@skc.kernel(block=1)", "def k(out, a: skc.i32):", "    r = -1", "    if a == 0:",
             "        r = 0"]
    for d in range(1, 300):
        lines += [f"    elif a == {d}:", f"        r = {d * 3}"]
    lines.append("    out[0] = r")
    (tmp_path / "deep_elifs.py").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)   # (Python's default, whatever the test run set)
    try:
        module = importlib.import_module("deep_elifs")
        out = np.zeros(1, np.int32)
        with pytest.raises(InterpreterLimitError, match="nests its regions .* too deeply"):
            module.k[1, 1](out, 7)
    finally:
        sys.setrecursionlimit(limit)
        sys.modules.pop("deep_elifs", None)
