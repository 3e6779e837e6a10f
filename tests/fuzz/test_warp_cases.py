"""Warp collectives and atomics (warp_cases.py) in whole and partial warps and under divergence: the interpreter
against the PTX emulator (ptx_emulator.py: shfl.sync, vote.sync, atom by the PTX ISA), bit for bit."""
import numpy as np
import ptx_emulator
import pytest
import warp_cases


def _bits(a: np.ndarray) -> list:
    return a.view(f"u{a.dtype.itemsize}").tolist()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("threads", [32, 33, 48, 96, 1000])
def test_warp_cases_ptx_match_the_interpreter(threads):
    for name, kernel, arrays, scalars in warp_cases.cases(threads):
        want = warp_cases.copies(arrays)
        kernel.interpret[1, threads](*want, *scalars)
        ptx = kernel.compile(*arrays, *scalars, target="sm_90a", block=(threads, 1, 1)).asm("ptx")
        # every mask named (no activemask): the lanes of different paths need not gather again but at a .sync
        # form's mask, as a GPU may run them
        assert "activemask" not in ptx, name
        for reconverge in (True, False):
            got = ptx_emulator.run_grid(ptx, kernel.fn.__name__, warp_cases.copies(arrays), 1, threads,
                                        scalars=scalars, reconverge=reconverge)
            for i, (w, g) in enumerate(zip(want, got)):
                assert _bits(w) == _bits(g), f"{name} ({threads} threads, reconverge={reconverge}): array {i}"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_read_the_interpreter_refuses_is_undefined_in_ptx():
    """The shuffle the interpreter stops at (a lane reads one that took the other branch) reads, in the emulator, a
    lane that is not there (its poison), while every lane whose source is active reads it."""
    import skc

    @skc.kernel
    def down_in_branch(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32], n: skc.i32):
        t = skc.thread_id(0)
        if t < n:
            o[t] = skc.shfl_down(x[t], 1)

    x, n = np.arange(64, dtype=np.int32) * 3 + 1, 40
    with pytest.raises(skc.InterpreterError, match="undefined"):
        down_in_branch.interpret[1, 64](x, np.zeros(64, np.int32), n)
    ptx = down_in_branch.compile(x, np.zeros(64, np.int32), n, target="sm_90a", block=(64, 1, 1)).asm("ptx")
    (got,) = ptx_emulator.run_grid(ptx, "down_in_branch", [x.copy(), np.zeros(64, np.int32)], 1, 64,
                                   scalars=(n,))[1:]
    assert got[39] == np.int32(np.uint32(0xDEADBEEF).view(np.int32))
    t = np.arange(39)
    np.testing.assert_array_equal(got[:39], x[np.where(t % 32 == 31, t, t + 1)])   # (lane 31: past the warp's end)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_collective_the_interpreter_refuses_after_a_continue_differs_in_ptx(monkeypatch):
    """A ballot after a `continue` some lanes took inside a branch of the loop's body beside a break (no group the
    analysis names: after the branch, the loop's lanes less those that continued or broke in it): its mask is
    activemask, and the emulator, whose lanes that continued run on to the next iteration's ballot, gathers other
    lanes there than the interpreter did before it refused such a collective (the GPU may do either)."""
    import skc
    from skc.runtime.interpreter import warp

    @skc.kernel
    def after_continue(x: skc.Ptr[skc.i32], o: skc.Ptr[skc.i32]):
        t = skc.thread_id(0)
        s = 0
        for i in range(8):
            v = x[t * 8 + i]
            if v < 6:
                if v < 0:
                    continue
                if v > 100:
                    break
                s = s + 1
            s = s + skc.i32(skc.ballot(v > 3) & 0xffff)
        o[t] = s

    x = np.random.default_rng(0).integers(-3, 9, 256).astype(np.int32)
    with pytest.raises(skc.InterpreterError, match="activemask"):
        after_continue.interpret[1, 32](x, np.zeros(32, np.int32))
    monkeypatch.setattr(warp, "named_collectives", lambda function, target: None)   # (the check off)
    want = np.zeros(32, np.int32)
    after_continue.interpret[1, 32](x, want)
    ptx = after_continue.compile(x, want, target="sm_90a", block=(32, 1, 1)).asm("ptx")
    assert "activemask" in ptx
    (got,) = ptx_emulator.run_grid(ptx, "after_continue", [x.copy(), np.zeros(32, np.int32)], 1, 32)[1:]
    assert got.tolist() != want.tolist()
