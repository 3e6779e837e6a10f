"""An out that shares memory with an input the kernel still reads is refused (was: a wrong answer: matmul(a, b,
out=b) computed rows from already overwritten b; attention(q, k, v, out=k) likewise), while views of one buffer that
interleave without sharing an element, and c or q as out, stay allowed."""
import numpy as np
import pytest

import skc
from skc.blocks import attention, matmul
from skc.blocks.host_plans import overlaps

torch = pytest.importorskip("torch")
bf16 = torch.bfloat16


def ints(*shape):
    return torch.randint(-2, 3, shape).to(bf16)


def test_overlaps_is_exact_for_interleaved_views():
    buffer = torch.zeros(8, 32)
    assert not overlaps(buffer[:, :16], buffer[:, 16:])          # two column blocks: their rows interleave
    assert overlaps(buffer[:, :17], buffer[:, 16:])
    assert overlaps(buffer, buffer[3:4, 5:6])
    assert not overlaps(buffer[:4], buffer[4:])
    assert not overlaps(buffer[:, ::2], buffer[:, 1::2])
    assert overlaps(buffer.T, buffer[:, 7])
    assert not overlaps(np.zeros(4), np.zeros(4))
    assert not overlaps(torch.zeros(0), buffer)


@pytest.mark.parametrize("alias", ["a", "b"])
def test_matmul_refuses_an_out_that_is_an_operand(hopper_interpreter, alias):
    a, b = ints(256, 256), ints(256, 256)
    with pytest.raises(skc.LaunchError, match=f"out shares memory with {alias}"):
        matmul(a, b, out=a if alias == "a" else b)


def test_matmul_takes_c_as_out_and_rows_of_one_buffer(hopper_interpreter):
    a, b, c = ints(64, 32), ints(32, 64), ints(64, 64)
    expected = a.float() @ b.float() + c.float()
    assert torch.equal(matmul(a, b, out=c, c=c, beta=1.0).float(), expected)    # read and written element-wise
    buffer = torch.zeros(128, 64, dtype=bf16)
    buffer[64:, :32] = a
    assert torch.equal(matmul(buffer[64:, :32], b, out=buffer[:64]).float(), a.float() @ b.float())


@pytest.mark.parametrize("alias", ["k", "v"])
def test_attention_refuses_an_out_that_is_k_or_v(hopper_interpreter, alias):
    q, k, v = (torch.randn(1, 1, 128, 64).to(bf16) for _ in range(3))
    with pytest.raises(skc.LaunchError, match=f"attention: out shares memory with {alias}"):
        attention(q, k, v, out=k if alias == "k" else v)


def test_attention_takes_interleaved_head_blocks_of_one_buffer(hopper_interpreter):
    qkv = torch.randn(1, 64, 3, 64).to(bf16)        # (B, S, 3, D): q, k, v of one head, interleaved by token
    q, k, v = qkv[:, :, 0:1], qkv[:, :, 1:2], qkv[:, :, 2:3]
    expected = attention(q, k, v, layout="bshd")
    out = attention(q, k, v, out=q, layout="bshd")   # q itself: each query tile reads its rows before storing them
    assert out is q and torch.equal(out, expected)


def test_attention_refuses_an_out_that_overlaps_q_elsewhere(hopper_interpreter):
    buffer = torch.randn(1, 1, 160, 64).to(bf16)
    q, k, v = buffer[:, :, :128], torch.randn(1, 1, 128, 64).to(bf16), torch.randn(1, 1, 128, 64).to(bf16)
    with pytest.raises(skc.LaunchError, match="attention: out shares memory with q"):
        attention(q, k, v, out=buffer[:, :, 32:])   # q's rows 32 .. 127, shifted: read after another tile wrote them


def test_matmul_refuses_a_c_that_overlaps_out_elsewhere(hopper_interpreter):
    """c one row above out in one buffer: a tile read c rows another tile had already written as out (rows 64, 128
    and 192 came out wrong); c as out's very view stays allowed, and exact."""
    a, b, buffer = ints(256, 32), ints(32, 16), ints(257, 16)
    with pytest.raises(skc.LaunchError, match="out shares memory with c"):
        matmul(a, b, buffer[1:], c=buffer[:256])
    out = buffer[:256]
    expected = a.float() @ b.float() + out.float()
    matmul(a, b, out, c=buffer[:256])
    assert torch.equal(out.float(), expected)


def test_a_batch_run_matrix_by_matrix_refuses_an_out_over_a_later_matrix(hopper_interpreter):
    """A batch that runs one GEMM per matrix (here: with c) checked each matrix's out against that matrix's operands
    only: out[0] overwrote a[1] before the second GEMM read it."""
    buffer, b = ints(4, 16, 16), ints(3, 16, 16)
    with pytest.raises(skc.LaunchError, match="out shares memory with a"):
        matmul(buffer[:3], b, buffer[1:], c=torch.zeros(3, 16, 16, dtype=bf16))
    out = ints(3, 16, 16)
    expected = buffer[:3].float() @ b.float() + out.float()
    matmul(buffer[:3], b, out, c=out)
    assert torch.equal(out.float(), expected)
