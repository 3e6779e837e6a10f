"""The fuzz kernels' PTX (LLVM's NVPTX output for sm_90a), run by a PTX emulator with the ISA's semantics, against
the CPU interpreter: the backend's numerics and control flow checked bit for bit without a GPU (ptx_emulator.py).
What this cannot see is below PTX: ptxas (or the driver's JIT) and the hardware."""
import fuzzgen
import numpy as np
import ptx_emulator
import pytest

SEED = 20261130009      # the batch of the 2026-11-30 GPU mismatch report (benchmarks/NOTES.md)


def _interpret(batch, folder):
    kernel = batch.kernel(folder)
    out_i, out_f = np.zeros_like(batch.xi), np.zeros_like(batch.xf)
    kernel.interpret[batch.count, fuzzgen.T](batch.xi, batch.xf, out_i, out_f)
    return kernel, out_i, out_f


def _ptx(kernel, batch):
    compiled = kernel.compile(batch.xi, batch.xf, np.zeros_like(batch.xi), np.zeros_like(batch.xf),
                              target="sm_90a", block=(fuzzgen.T, 1, 1))
    return compiled.asm("ptx")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("seed", [SEED, 2026000])
def test_fuzz_kernels_ptx_matches_the_interpreter(seed, tmp_path):
    batch = fuzzgen.Batch(seed, 50)
    kernel, want_i, want_f = _interpret(batch, str(tmp_path))
    got_i, got_f = ptx_emulator.run_batch(batch, _ptx(kernel, batch))
    found = fuzzgen.mismatches(batch, got_i, got_f, want_i, want_f)
    assert not found, found[:5]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_emulator_sees_a_wrong_instruction(tmp_path):
    """Its agreement means something: PTX with one float op swapped (mul.rn -> div.rn) gives other outputs, and its
    add.rn.f32 rounds to nearest even (1 + 2^-24 is 1 in f32)."""
    batch = fuzzgen.Batch(SEED, 50)
    kernel, want_i, want_f = _interpret(batch, str(tmp_path))
    ptx = _ptx(kernel, batch)
    swapped = ptx.replace("mul.rn.f32", "div.rn.f32")
    assert fuzzgen.mismatches(batch, *ptx_emulator.run_batch(batch, swapped), want_i, want_f)
    program = ptx_emulator.Program(ptx, "batch")
    assert program.compute("add", ["add", "rn", "f32"], [ptx_emulator.bits(np.float32(1.0)),
                                                         ptx_emulator.bits(np.float32(2.0 ** -24))], None) \
        == ptx_emulator.bits(np.float32(1.0))   # round to nearest even, as add.rn.f32 does
