"""The GPU hang guard on the CPU: in debug mode every mbarrier.wait is a try_wait loop bounded by %globaltimer
that writes a record and traps (PTX through ptxas); without debug the PTX is what it was; the compiler keeps
the table from a record's code to the source line; the host turns a record into a DeadlockError."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import skc
from helpers import line_of
from skc import ir
from skc.backends import nvptx_debug
from skc.backends.ptx_tools import link_ptx
from skc.runtime import hang_guard

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gpu"))
import hang_kernels  # noqa: E402

TILE = ir.TensorMapType(ir.f32, (8, 32), 128)
MARK = str(hang_guard.RECORD_WRITTEN)


def ptx_instructions(ptx: str) -> list:
    """The kernel body's instructions, one string each ('trap; exit;' kept whole), and its labels."""
    body = ptx[ptx.index("{", ptx.index(".entry")) + 1:ptx.rindex("}")]
    items = []
    for line in body.splitlines():
        line = line.split("//")[0].strip()
        if not line or line in "{}" or line.startswith(".reg"):
            continue
        items.append(line)
    return items


def trap_reachable_without(ptx: str, start: str, cut) -> list:
    """The instructions at which a path from each instruction containing `start` reaches `trap;` without passing an
    instruction for which cut(instruction) holds (an instruction-level control-flow walk of the PTX)."""
    items = ptx_instructions(ptx)
    labels = {item[:-1]: index for index, item in enumerate(items) if item.endswith(":")}

    def successors(index):
        item = items[index]
        words = item.replace(";", " ").split()
        if item.startswith(("trap;", "ret;", "exit;")):
            return []
        if "bra" in words[0] or (words[0].startswith("@") and "bra" in words[1]):
            target = labels[words[-1]]
            return [target] if not words[0].startswith("@") else [target, index + 1]
        return [index + 1] if index + 1 < len(items) else []

    bad = []
    for begin in [i for i, item in enumerate(items) if start in item]:
        seen, todo = set(), [begin]
        while todo:
            index = todo.pop()
            if index in seen or cut(items[index]):
                continue
            seen.add(index)
            if items[index].startswith("trap;"):
                bad.append(begin)
            todo.extend(successors(index))
    return bad


def is_mark(instruction: str) -> bool:
    """The winner's store of the 'written' mark, or a loser's comparison of what it read with the mark."""
    return instruction.startswith(("st.volatile", "setp.eq")) and instruction.endswith(f", {MARK};")


def compiled(kernel, debug: bool):
    """The kernel compiled for sm_90a with the hang guard on or off (a fresh Kernel: debug is per kernel)."""
    fresh = skc.kernel(kernel.fn, block=64, debug=debug)
    args = (TILE,) if kernel is hang_kernels.wrong_expect_tx else ()
    return fresh.compile(*args, target="sm_90a", block=64)


@pytest.mark.parametrize("name", ["short_producer", "wrong_expect_tx"])
def test_debug_ptx_bounds_every_mbarrier_wait_and_assembles(name):
    kernel = getattr(hang_kernels, name)
    debug = compiled(kernel, True)
    ptx = debug.asm("ptx")
    waits = len(debug.metadata["hang_sites"]["sites"])
    assert waits == (2 if name == "short_producer" else 1)
    # per wait: the start and each look after a failed try; a claim loser's start and each look for the mark
    assert ptx.count("%globaltimer") == 4 * waits
    assert ptx.count("trap;") == waits
    assert ptx.count("nanosleep.u32") == waits
    assert f", {nvptx_debug.MARK_WAIT_NS + 1};" in ptx       # a loser gives up waiting for the mark after 1 s
    assert ptx.count("fence.sc.sys;") == 2 * waits         # after the record's words, after its 'written' mark
    assert ".visible .global .align 8 .u64 __skc_hang_record;" in ptx
    assert "ld.volatile.global.b64" in ptx and "__skc_hang_claim" in ptx
    assert "mbarrier.try_wait.parity" in ptx
    assert f", {hang_guard.hang_timeout_ns() + 1};" in ptx   # elapsed < limit + 1: spin again
    cubin, log = link_ptx(ptx, "sm_90a", debug.name)
    assert cubin[:4] == b"\x7fELF"


@pytest.mark.parametrize("name", ["short_producer", "wrong_expect_tx", "gemm_short_producer", "faults_after_wait"])
def test_no_thread_traps_before_the_record_is_written(name):
    """The H200 defect (2026-11-30): a trap ends the whole grid, so a thread that lost the claim and trapped at once
    (another warp, timed out in the same microsecond) dropped the winner's record on its way to the host: every
    path from the claim to a trap passes the winner's store of the 'written' mark or a loser's look at it."""
    ptx = gemm_debug().asm("ptx") if name == "gemm_short_producer" else \
        compiled(getattr(hang_kernels, name), True).asm("ptx")
    assert ptx.count("atom.relaxed.sys.global.cas.b32") == ptx.count("trap;") > 0
    assert trap_reachable_without(ptx, "global.cas.b32", is_mark) == []
    # the check itself sees a path that skips the mark (the claim's result is tested before any store of it)
    assert trap_reachable_without(ptx, "global.cas.b32", lambda instruction: False)
    # and the one path that traps with no look: no record installed (null), where there is nothing to wait for
    record_loads = [i for i in ptx_instructions(ptx) if "[__skc_hang_record]" in i]
    assert len(record_loads) == ptx.count("trap;") and all(i.startswith("ld.volatile.global.b64") for i in record_loads)


def gemm_debug():
    kernel = skc.kernel(hang_kernels.gemm_short_producer.fn, debug=True)
    types = [ir.TensorMapType(ir.bf16, box, 128) for box in (hang_kernels.GEMM.boxes()["a"],
                                                             hang_kernels.GEMM.boxes()["b"])]
    return kernel.compile(*types, skc.i32, hang_kernels.GEMM, target="sm_90a", block=hang_kernels.GEMM.threads)


@pytest.mark.parametrize("name", ["short_producer", "wrong_expect_tx"])
def test_without_debug_the_ptx_has_no_guard(name):
    plain = compiled(getattr(hang_kernels, name), False)
    ptx = plain.asm("ptx")
    for absent in ("globaltimer", "trap;", "fence.sc.sys", "__skc_hang"):
        assert absent not in ptx
    assert "hang_sites" not in plain.metadata
    assert plain.key != compiled(getattr(hang_kernels, name), True).key   # debug is part of the cache key


def test_debug_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SKC_DEBUG", "1")
    monkeypatch.setenv("SKC_HANG_TIMEOUT", "0.5")
    kernel = skc.kernel(hang_kernels.short_producer.fn, block=64)
    assert kernel.debug and kernel.options == {"debug": True, "hang_timeout_ns": 500_000_000}
    ptx = kernel.compile(target="sm_90a", block=64).asm("ptx")
    assert "%globaltimer" in ptx and ", 500000001;" in ptx
    for off in ("0", "False", "off", "NO", " false "):   # (False and off turned debug mode on)
        monkeypatch.setenv("SKC_DEBUG", off)
        assert not skc.kernel(hang_kernels.short_producer.fn, block=64).debug, off
    assert skc.kernel(hang_kernels.short_producer.fn, block=64, debug=True).debug


def test_the_site_table_names_each_wait_and_the_barriers():
    table = compiled(hang_kernels.short_producer, True).metadata["hang_sites"]
    here = hang_kernels.__file__
    producer_line = line_of(hang_kernels.short_producer, "mbarrier_wait(empty")
    consumer_line = line_of(hang_kernels.short_producer, "# HANG: consumer")
    assert [(s["file"], s["line"]) for s in table["sites"].values()] == [(here, producer_line), (here, consumer_line)]
    full_line = line_of(hang_kernels.short_producer, "full = skc.shared")
    assert (0, 16, "", f"{here}:{full_line}") in [tuple(b) for b in table["buffers"]]


def test_a_record_becomes_a_deadlock_error_at_the_waiting_line():
    """What the host does after the trap, on a record as the device writes it: the consumer's wait (code 2) on
    the 'full' barrier of stage 1 (shared offset 8), parity 1, block 0, thread 32."""
    table = compiled(hang_kernels.short_producer, True).metadata["hang_sites"]
    words = np.zeros(hang_guard.RECORD_WORDS, np.int32)
    words[:11] = [hang_guard.RECORD_WRITTEN, 2, 1, 8, 0, 0, 0, 32, 0, 0, 3_000_100_000 & 0x7FFFFFFF]
    error = hang_guard.describe(words, table, "short_producer")
    assert isinstance(error, skc.DeadlockError)
    message = str(error)
    line = line_of(hang_kernels.short_producer, "# HANG: consumer")
    assert message.startswith(f"{hang_kernels.__file__}:{line}:"), message
    assert "gave up after" in message and "parity 1" in message
    assert "the mbarrier at shared offset 0x8" in message and ", stage 1" in message
    assert f"declared at {hang_kernels.__file__}:{line_of(hang_kernels.short_producer, 'full = skc.shared')}" in message
    assert "block (0, 0, 0), thread (32, 0, 0)" in message and "role: the code inlined through short_producer" in message
    assert "hint:" in message and "SKC_HANG_TIMEOUT" in message


def test_the_record_layout_agrees_between_backend_and_runtime():
    from skc.backends import nvptx_debug

    assert (nvptx_debug.RECORD_WORDS, nvptx_debug.RECORD_WRITTEN) == (hang_guard.RECORD_WORDS,
                                                                      hang_guard.RECORD_WRITTEN)
    assert nvptx_debug.RECORD_SYMBOL.encode() == hang_guard.RECORD_SYMBOL


@pytest.mark.parametrize("name,marker", [("short_producer", "# HANG: consumer"), ("expect_tx_16", "# HANG: every"),
                                         ("gemm_short_producer", "# HANG: consumers")])
def test_the_interpreter_reports_the_same_misuses_as_deadlocks(name, marker):
    kernel = hang_kernels.KERNELS[name]
    with pytest.raises(skc.DeadlockError) as info:
        hang_kernels.run(name, "interpreter")
    message = str(info.value)
    assert message.startswith(f"{hang_kernels.__file__}:{line_of(kernel, marker)}:")
    assert "threads none" not in message


def test_the_structured_pipeline_wait_is_guarded_too():
    """The GEMM blocks' consumer.acquire() (an mbarrier.wait inlined from skc/blocks/pipeline.py) is bounded, and its
    site names the user's line and the functions it was inlined through."""
    kernel = skc.kernel(hang_kernels.gemm_short_producer.fn, debug=True)
    types = [ir.TensorMapType(ir.bf16, box, 128) for box in (hang_kernels.GEMM.boxes()["a"],
                                                             hang_kernels.GEMM.boxes()["b"])]
    debug = kernel.compile(*types, skc.i32, hang_kernels.GEMM, target="sm_90a", block=hang_kernels.GEMM.threads)
    sites = debug.metadata["hang_sites"]["sites"].values()
    line = line_of(hang_kernels.gemm_short_producer, "# HANG: consumers")
    consumer = [s for s in sites if s["line"] == line]
    assert consumer and "ConsumerRole._wait_stage" in consumer[0]["frames"][0]
    assert consumer[0]["frames"][-1].startswith("gemm_short_producer (")
    ptx = debug.asm("ptx")
    assert ptx.count("trap;") == len(sites) and "%globaltimer" in ptx
    link_ptx(ptx, "sm_90a", debug.name)


def test_the_correct_forms_finish_in_the_interpreter():
    out = hang_kernels.run("expect_tx_0", "interpreter")
    assert sorted(out.tolist()) == list(range(256))   # every element, in the 128B-swizzled order of the stage


def test_the_guarded_launcher_turns_a_failed_launch_with_a_record_into_a_deadlock_error(monkeypatch):
    """The host path with the driver replaced by a fake (no GPU here): the record lives in memory the fake
    'maps'; the 'kernel' fills it and fails as a trap does; the launcher raises DeadlockError at the line."""
    import ctypes
    from types import SimpleNamespace

    from skc.runtime import cuda

    buffer = (ctypes.c_int32 * hang_guard.RECORD_WORDS)()
    installed = {}
    calls = {"cuMemHostAlloc": lambda n, flags: ctypes.addressof(buffer),
             "cuMemHostGetDevicePointer": lambda host, flags: 0xD0000000 + host % 4096,
             "cuModuleGetGlobal": lambda handle, name: (0xC0DE, 8)}
    monkeypatch.setattr(cuda, "make_current", lambda device: None)
    monkeypatch.setattr(cuda, "call", lambda name, *args: calls[name](*args))
    monkeypatch.setattr(cuda, "copy_to_device", lambda address, host, n: installed.update(
        {address: ctypes.c_uint64.from_address(host).value}))
    result = {"code": 0}
    monkeypatch.setattr(cuda, "driver", lambda: SimpleNamespace(
        CU_MEMHOSTALLOC_DEVICEMAP=2, CU_MEMHOSTALLOC_PORTABLE=1, cuCtxSynchronize=lambda: (result["code"],),
        cuGetErrorName=lambda r: (0, b"CUDA_ERROR_ILLEGAL_INSTRUCTION"), cuGetErrorString=lambda r: (0, b"trap")))
    monkeypatch.setattr(cuda, "error_text", lambda r: "CUDA_ERROR_ILLEGAL_INSTRUCTION (trap)")
    table = compiled(hang_kernels.short_producer, True).metadata["hang_sites"]

    def kernel_launch(args, grid, stream):
        if result["code"]:
            buffer[:11] = [hang_guard.RECORD_WRITTEN, 2, 0, 0, 0, 0, 0, 40, 0, 0, 2_000_000_000]
    guard = hang_guard.HangGuardLauncher(SimpleNamespace(launch=kernel_launch), SimpleNamespace(device=0, handle=7),
                                         table, "short_producer")
    assert installed == {0xC0DE: guard.record.device_address}    # the record's address went into the global
    guard.launch((), (1, 1, 1))                                   # a launch that succeeds
    result["code"] = 715
    with pytest.raises(skc.DeadlockError) as info:
        guard.launch((), (1, 1, 1))
    message = str(info.value)
    assert message.startswith(f"{hang_kernels.__file__}:{line_of(hang_kernels.short_producer, '# HANG: consumer')}:")
    assert "stage 0" in message and "thread (40, 0, 0)" in message and "2.0 s" in message
    buffer[0] = 0                                                 # a failure that left no record
    monkeypatch.setattr(guard.record, "clear", lambda: None)
    with pytest.raises(skc.DeviceError, match="no hang record: CUDA_ERROR_ILLEGAL_INSTRUCTION") as info:
        guard.inner = SimpleNamespace(launch=lambda *a: None)
        guard.launch((), (1, 1, 1))
    assert not isinstance(info.value, skc.DeadlockError)
    here = hang_kernels.__file__
    for code, marker in (("1", "mbarrier_wait(empty"), ("2", "# HANG: consumer")):   # the barriers involved
        assert f"site {code}: {here}:{line_of(hang_kernels.short_producer, marker)}" in str(info.value)


def test_a_debug_failure_without_a_record_names_the_waits_it_could_have_been():
    """The host's message when a debug launch fails and no record came back: every guarded wait, its line, its
    barrier's buffer and the functions it was inlined through (the GEMM's waits come from skc/blocks)."""
    table = gemm_debug().metadata["hang_sites"]
    message = hang_guard.no_record_message("gemm_short_producer", "CUDA_ERROR_LAUNCH_FAILED (unspecified launch "
                                           "failure)", table)
    assert message.startswith("gemm_short_producer failed in debug mode with no hang record: CUDA_ERROR_LAUNCH_FAILED")
    for code, site in table["sites"].items():
        assert f"site {code}: {site['file']}:{site['line']}" in message
    line = line_of(hang_kernels.gemm_short_producer, "# HANG: consumers")
    consumer = message[message.index(f"{hang_kernels.__file__}:{line}"):]
    assert "inlined through" in consumer.split("; site")[0] and "ConsumerRole._wait_stage" in consumer.split("; site")[0]
    assert "interpreter" in message and "not a hang" in message
    empty = hang_guard.no_record_message("k", "CUDA_ERROR_ILLEGAL_ADDRESS", {"sites": {}, "buffers": []})
    assert "the kernel has no mbarrier wait" in empty


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0", "18446744074", "1e30", "abc"])
def test_a_hang_timeout_with_no_place_in_the_kernels_u64_of_nanoseconds_is_a_device_error(monkeypatch, value):
    """NaN and the infinities ended in Python's ValueError and OverflowError; 2^64 ns and more wrapped around (0.29 s
    compiled for 584 years, or no comparison at all), and 0 or less became 1 ns (a helper's search, sixtieth session)."""
    monkeypatch.setenv("SKC_HANG_TIMEOUT", value)
    with pytest.raises(skc.DeviceError, match="SKC_HANG_TIMEOUT must be a number of seconds"):
        hang_guard.hang_timeout_ns()
    monkeypatch.setenv("SKC_HANG_TIMEOUT", "31536000")
    assert hang_guard.hang_timeout_ns() == 31_536_000 * 10 ** 9 < 2 ** 63
