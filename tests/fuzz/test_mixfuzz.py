"""Mixed-type differential fuzzing (mixgen.py): random kernels over every scalar type, casts, promotions, selects,
vectors, run-time loops and helpers, run in the interpreter and, compiled for sm_90a, in the PTX emulator; the
two must agree bit for bit (NaNs as NaNs). It found the bf16 widening LLVM narrowed to f16 and the 64-bit shift
count NVPTX read as 32 bits (forty-second session). CI runs SKC_MIXFUZZ_BATCHES batches (default 4, a few seconds)
from a fixed seed; `python tests/fuzz/mixfuzz.py --seed N --batches B` runs more. (The emulator takes min/max of -0.0 and +0.0 as the
interpreter does, -0.0 below +0.0: what the GPU gives there is not checked.)"""
import os
import tempfile

import pytest

import mixgen
from mixfuzz import mismatches, run_batch

BATCHES = int(os.environ.get("SKC_MIXFUZZ_BATCHES", "4"))
SEED = int(os.environ.get("SKC_MIXFUZZ_SEED", "7"))


@pytest.mark.parametrize("batch", range(BATCHES))
def test_the_interpreter_and_the_ptx_agree_on_mixed_type_programs(batch):
    program_batch = mixgen.Batch(SEED * 100000 + batch, 10, 3)
    want, got, _ = run_batch(program_batch, tempfile.mkdtemp(), f"_test{batch}")
    found = mismatches(program_batch, want, got)
    assert not found, f"seed {program_batch.seed}: {found[:3]}\n" + program_batch.source


@pytest.mark.parametrize("batch", range(max(1, BATCHES // 2)))
def test_the_interpreter_and_the_ptx_agree_on_the_wider_feature_set(batch):
    """fp8, wide vectors, math builtins, powers, atomics, shared memory with a barrier, warp collectives
    (mixgen's extra=True; the emulator runs a block's threads together at barriers and warp collectives)."""
    program_batch = mixgen.Batch(SEED * 100000 + 50 + batch, 10, 3, extra=True)
    want, got, _ = run_batch(program_batch, tempfile.mkdtemp(), f"_extra{batch}")
    found = mismatches(program_batch, want, got)
    assert not found, f"seed {program_batch.seed}: {found[:3]}\n" + program_batch.source


@pytest.mark.parametrize("seed", [1100000, 1100014, 1100033])
def test_the_ptx_agrees_where_the_warp_never_gathers_again(seed):
    """Batches of seed 11 that mismatched on an H100 (forty-fifth session): an earlier program's return that some
    threads take left the later programs' collectives with `activemask`, and after their own divergent loops the GPU
    had not gathered the lanes again. In the emulator without reconvergence (activemask names the lanes of one path;
    a .sync form waits for its mask's lanes) 51 programs of the 23 such batches mismatched then, none since the
    lanes still running are gathered by a ballot of the whole warp."""
    program_batch = mixgen.Batch(seed, 16, 3, extra=True)
    want, got, ptx = run_batch(program_batch, tempfile.mkdtemp(), "_split", reconverge=False)
    assert not mismatches(program_batch, want, got), program_batch.source
    assert "activemask" not in ptx


def test_each_program_is_found_by_its_lines_past_the_helpers():
    """A compile error's line names the program to drop: each program's range starts at its `if b == k:` line and
    ends at its last, counted past the helpers' several lines each (before, the ranges ran short by their lines,
    and the program dropped was another)."""
    batch = mixgen.Batch(1100002, 16, 3, extra=True)
    assert any(program.helpers for program in batch.programs)
    lines = batch.source.splitlines()
    for k, (first, last) in enumerate(batch.ranges):
        assert lines[first - 1] == f"    if b == {k}:"
        assert last == len(lines) or lines[last].startswith("    if b == ")
        assert batch.program_at(first + 1) == k
