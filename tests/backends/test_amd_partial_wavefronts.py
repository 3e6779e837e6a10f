"""Shuffles in a block whose last wavefront is partial (96 threads: lanes 32-63 of wavefront 1 do not exist). The IR
says a read past the block's last thread keeps the reader's own value, and the interpreter modelling gfx942 gives
it; NVPTX guards those reads (nvptx._warp_lanes), but the AMD lowering sent them to ds_bpermute_b32, which reads 0
from a lane that is not active. It now reads the lane only where it exists, as for reads past the wavefront's ends."""
import numpy as np
import pytest

import skc
from helpers import check_lines, check_not
from skc.runtime import devices

I32P = skc.Ptr[skc.i32]


@skc.kernel(block=96)
def partial_shuffles(x: I32P, down: I32P, xor: I32P, idx: I32P, k: skc.i32):
    t = skc.thread_id(0)
    down[t] = skc.shfl_down(x[t], k)
    xor[t] = skc.shfl_xor(x[t], k)
    idx[t] = skc.shfl_idx(x[t], k + 32)


@skc.kernel(block=128)
def whole_shuffles(x: I32P, k: skc.i32):
    t = skc.thread_id(0)
    x[t] = skc.shfl_down(x[t], k) + skc.shfl_idx(x[t], k)


@pytest.fixture
def gfx942_interpreter(monkeypatch):
    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "gfx942")
    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    devices._target_of.cache_clear()
    yield
    devices._target_of.cache_clear()


def test_the_interpreter_keeps_the_value_where_the_lane_is_past_the_block(gfx942_interpreter):
    x = np.arange(100, 196, dtype=np.int32)
    down, xor, idx = (np.zeros(96, np.int32) for _ in range(3))
    partial_shuffles[1, 96](x, down, xor, idx, 16)
    # wavefront 1 is threads 64-95: its lanes 0-31
    assert down[64:96].tolist() == x[80:96].tolist() + x[80:96].tolist()
    assert xor[64:96].tolist() == x[80:96].tolist() + x[64:80].tolist()
    assert idx[64:96].tolist() == x[64:96].tolist()            # lane 48 does not exist
    assert idx[:64].tolist() == [x[48]] * 64                    # wavefront 0 is whole


@pytest.mark.parametrize("target", ["gfx942", "gfx90a"])
def test_amd_reads_a_lane_only_where_the_block_has_it(target):
    compiled = partial_shuffles.compile(I32P, I32P, I32P, I32P, skc.i32, target=target)
    llvm = compiled.ir("llvm")
    # the lanes of this thread's wavefront: min(96 - (linear id & -64), 64)
    check_lines(llvm, r"and i32 %v\d+, -64", r"sub i32 96, %v\d+", r"call i32 @llvm.umin.i32\(i32 %v\d+, i32 64\)",
                r"icmp ult i32 %v\d+, %v\d+", r"select i1 %v\d+, i32 %v\d+, i32 %v\d+", r"shl i32 %v\d+, 2",
                r"call i32 @llvm.amdgcn.ds.bpermute")
    assert llvm.count("icmp ult i32") >= 3, llvm   # down, xor and idx each
    assert compiled.asm("gcn").count("ds_bpermute_b32") == 3


def test_whole_wavefronts_pay_nothing():
    llvm = whole_shuffles.compile(I32P, skc.i32, target="gfx942").ir("llvm")
    check_not(llvm, r"llvm.umin|icmp ult")
