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
def test_fuzz_kernels_of_the_extra_constructs_ptx_matches_the_interpreter(tmp_path):
    """fuzzgen's extra=True constructs (mixed integer widths, wide shifts, // and % by negative divisors, float to
    integer casts out of range and of NaN, f16/bf16, NaN and -0.0) in the PTX: the casts' saturation (cvt.rzi in inline
    asm to 32 and 64 bits, llvm.fpto[su]i.sat to narrower integers) and NaN's 0 among them."""
    batch = fuzzgen.Batch(5510, 20, extra=True)
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


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_emulator_runs_barriers_shuffles_and_atomics_as_the_interpreter_does():
    """A block's threads meet at bar.sync and at warp collectives (shfl.sync, activemask, vote): shared memory
    written before a barrier is read after it, a warp sum over a partial warp, a ballot, atomics on global memory."""
    import skc

    @skc.kernel
    def together(x: skc.Ptr[skc.f32], n: skc.Ptr[skc.i32], out: skc.Ptr[skc.f32], bits: skc.Ptr[skc.u32]):
        t = skc.thread_id(0)
        s = skc.shared((24,), skc.f32)
        s[t] = x[t] * 2.0
        skc.barrier()
        v = s[23 - t] + skc.shfl_xor(x[t], 5)
        out[t] = skc.warp_sum(v) + skc.f32(skc.warp_max(n[t]))
        bits[t] = skc.ballot(x[t] > 0.0)
        skc.atomic_add(n + 24 + t % 4, n[t])

    x = (np.arange(24, dtype=np.float32) * 5 % 11) - 4
    n = np.concatenate([np.arange(24, dtype=np.int32) * 7 % 13 - 6, np.zeros(4, np.int32)])
    want = [x.copy(), n.copy(), np.zeros(24, np.float32), np.zeros(24, np.uint32)]
    together.interpret[1, 24](*want)
    ptx = together.compile(*want, target="sm_90a", block=(24, 1, 1)).asm("ptx")
    got = ptx_emulator.run_grid(ptx, "together", [x.copy(), n.copy(), np.zeros(24, np.float32),
                                                  np.zeros(24, np.uint32)], 1, 24)
    for w, g in zip(want, got):
        assert w.tolist() == g.tolist()


def test_kernels_with_every_mask_named_need_no_reconvergence():
    """convgen's kernels of tangled control flow whose PTX names every collective's mask (no `activemask`: the
    convergence analysis' whole warps, live lanes and branch ballots) give the same outputs in the emulator with
    and without reconvergence (without it, a GPU may run lanes of different paths apart: only a .sync form's mask
    gathers them). Where a kernel reads a lane that is not active (undefined on a GPU) both read poison alike."""
    import os
    import sys
    import tempfile

    sys.path.insert(0, os.path.dirname(__file__))
    import convgen

    folder, named = tempfile.mkdtemp(), 0
    for seed in range(48):
        kernel = fuzzgen.load_module(convgen.Gen(seed).kernel(), folder, f"convgen_masks_{seed}").k
        rng = np.random.default_rng(seed)
        threads = (32, 48, 16, 64)[seed % 4]
        x = rng.integers(-3, 9, convgen.WIDTH * 4).astype(np.int32)
        n, m = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        ptx = kernel.compile(target="sm_90a", block=(threads, 1, 1)).asm("ptx")
        if "activemask" in ptx:
            continue
        named += 1
        runs = []
        for reconverge in (True, False):
            out = np.zeros(convgen.WIDTH * 4, np.int32)
            ptx_emulator.run_grid(ptx, "k", [out, x.copy()], 2, threads, reconverge=reconverge, scalars=(n, m))
            runs.append(out)
        np.testing.assert_array_equal(runs[1], runs[0], err_msg=f"convgen seed {seed}")
    assert named >= 20


@pytest.mark.parametrize("int_type, float_type", [("i32", "f32"), ("i64", "f64"), ("u64", "f32")])
def test_run_time_integers_compared_with_run_time_floats_by_value_in_ptx(int_type, float_type):
    """The PTX of an integer compared with a float by value (in f64, or for a 64-bit integer through its nearest f64
    and then as integers) gives Python's truths, as the interpreter does."""
    import skc

    @skc.kernel
    def compared(out: skc.Ptr[skc.u8], i: skc.Ptr[getattr(skc, int_type)], f: skc.Ptr[getattr(skc, float_type)]):
        t = skc.thread_id(0)
        a, b = i[t], f[t]
        out[t * 4], out[t * 4 + 1], out[t * 4 + 2], out[t * 4 + 3] = a < b, a == b, b <= a, a != b

    int_dtype = np.dtype(int_type.replace("i", "int").replace("u", "uint"))
    top = int(np.iinfo(int_dtype).max)
    pairs = [(16777217, 16777216.0), (2 ** 53 + 1, 2.0 ** 53), (top, float(top)), (top - 1, float(top)),
             (3, float("nan")), (7, 7.5), (8, 7.5), (0, -0.0)]
    pairs = [(a, b) for a, b in pairs if a <= top]
    i = np.array([a for a, _ in pairs], int_dtype)
    f = np.array([b for _, b in pairs], np.dtype(float_type.replace("f", "float")))
    want = np.array([[int(a) < float(b), int(a) == float(b), float(b) <= int(a), int(a) != float(b)]
                     for a, b in zip(i, f)], np.uint8).ravel()
    interpreted = np.zeros(4 * len(pairs), np.uint8)
    compared.interpret[1, len(pairs)](interpreted, i, f)
    ptx = compared.compile(interpreted, i, f, target="sm_90a", block=(len(pairs), 1, 1)).asm("ptx")
    emulated = np.zeros_like(interpreted)
    ptx_emulator.run_grid(ptx, "compared", [emulated, i, f], 1, len(pairs))
    assert interpreted.tolist() == want.tolist() and emulated.tolist() == want.tolist()
