"""A vector of i1 loaded from or stored to memory (`skc.load(flags, width=4)` of a Ptr[skc.i1], `skc.store(flags,
x > 0)` of a vector compare) takes one byte per element, as the interpreter reads and writes it and as numpy and
torch bool arrays hold it. The lowering loaded and stored LLVM's `<4 x i1>`, which in memory is 4 packed bits of one
byte: the GPU read flags[0]'s bits as the four flags and wrote one byte (0b1001) instead of four."""
import re

import numpy as np

import skc

B = skc.Ptr[skc.i1]
I32P = skc.Ptr[skc.i32]


@skc.kernel(block=4)
def bool_vectors(x: B, y: I32P, out: I32P, flags: B):
    t = skc.thread_id(0)
    v = skc.load(x + 4 * t, width=4)
    out[t] = skc.i32(v[0]) + 2 * skc.i32(v[1]) + 4 * skc.i32(v[2]) + 8 * skc.i32(v[3])
    skc.store(flags + 4 * t, skc.load(y + 4 * t, width=4) > 0)


X = np.arange(16) % 3 == 0
Y = (np.arange(16, dtype=np.int32) % 5) - 2


def test_the_interpreter_takes_a_byte_an_element():
    out, flags = np.zeros(4, np.int32), np.zeros(16, np.bool_)
    bool_vectors.interpret[1, 4](X, Y, out, flags)
    assert out.tolist() == [int(sum(X[4 * t + i] << i for i in range(4))) for t in range(4)]
    assert flags.tolist() == (Y > 0).tolist()


def test_the_llvm_ir_moves_a_byte_an_element():
    compiled = bool_vectors.compile(X, Y, np.zeros(4, np.int32), np.zeros(16, np.bool_), target="sm_90a")
    llvm = compiled.ir("llvm")
    assert not re.search(r"(load|store) <\d+ x i1>", llvm), llvm
    assert re.search(r"load <4 x i8>", llvm) and re.search(r"store <4 x i8>", llvm), llvm
    ptx = compiled.asm("ptx")
    assert "ld.global.b8" not in ptx and "st.global.b8" not in ptx     # 4 bytes each, not one


@skc.kernel(block=4)
def bool_scalars(x: B, out: I32P):
    t = skc.thread_id(0)
    out[t] = 1 if x[t] else 0


def test_a_scalar_bool_byte_is_true_where_it_is_not_0_as_a_vector_lane_is():
    """A byte other than 0 and 1 (torch and numpy hold only those; a raw buffer may not) is true, in the
    interpreter and in the LLVM IR alike: the load compares it with 0 (it took the byte's low bit before)."""
    x = np.array([0, 1, 2, 0], np.uint8).view(np.bool_)
    out = np.zeros(4, np.int32)
    bool_scalars.interpret[1, 4](x, out)
    assert out.tolist() == [0, 1, 1, 0]
    llvm = bool_scalars.compile(x, out, target="sm_90a").ir("llvm")
    assert re.search(r"icmp ne i8 %\S+, (0|zeroinitializer)", llvm) and "trunc i8" not in llvm, llvm
