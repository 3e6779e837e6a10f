"""Batched matmul's host checks: an out of another type than the operands is refused on every batched path (the
one-launch path wrote bf16 values into an fp16 out), and an empty batch or dimension is named (was: "matmul_kernel
takes 11 arguments, 12 given" for a batch of 0, a TMA stride error for K or N of 0)."""
import pytest

import skc
from skc.blocks import matmul

torch = pytest.importorskip("torch")


def ints(*shape, dtype=torch.bfloat16):
    return torch.randint(-2, 3, shape).to(dtype)


@pytest.mark.parametrize("out_dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("b_shape", [(3, 32, 64), (32, 64)])
def test_batched_out_of_another_type_is_refused(hopper_interpreter, out_dtype, b_shape):
    a = ints(64, 3, 32).transpose(0, 1)  # not foldable: one launch over the batch (b 3-D), or one GEMM per matrix
    with pytest.raises(skc.LaunchError, match=r"out is torch.float(16|32); matmul writes the operands' type \(bf16\)"):
        matmul(a, ints(*b_shape), out=torch.empty(3, 64, 64, dtype=out_dtype))


@pytest.mark.parametrize("a_shape, b_shape", [((0, 64, 32), (0, 32, 64)), ((3, 64, 0), (3, 0, 64)),
                                              ((3, 64, 32), (3, 32, 0)), ((3, 0, 32), (3, 32, 64)),
                                              ((0, 64, 32), (32, 64))])
def test_empty_batched_problem_is_torchs(hopper_interpreter, a_shape, b_shape):
    """No elements: an empty result; K = 0: zeros (each element a sum of nothing), as torch.matmul gives."""
    a, b = ints(*a_shape), ints(*b_shape)
    out = matmul(a, b)
    expected = torch.matmul(a.float(), b.float())
    assert out.shape == expected.shape and out.dtype == a.dtype and torch.equal(out.float(), expected)


def test_batched_one_launch_still_exact(hopper_interpreter):
    a, b = ints(3, 64, 32), ints(3, 32, 64)
    out = torch.empty(3, 64, 64, dtype=torch.bfloat16)
    assert matmul(a, b, out=out) is out and torch.equal(out.float(), a.float() @ b.float())


@pytest.mark.parametrize("name", ["out", "c"])
def test_looped_batch_names_its_strided_out_or_c(hopper_interpreter, name):
    """A batch run one GEMM per matrix (here: with c) takes out and c as row-major matrices: a permuted one is refused
    by its own shape and strides (was: each matrix's GEMM named strides (144, 1) the caller never passed)."""
    a, b = ints(3, 16, 32), ints(3, 32, 48)
    strided = ints(16, 3, 48).permute(1, 0, 2)   # (3, 16, 48), strides (48, 144, 1): each matrix's rows 144 apart
    operands = {"out": strided, "c": ints(3, 16, 48)} if name == "out" else {"c": strided}
    with pytest.raises(skc.LaunchError, match=rf"matmul: {name} \(shape \(3, 16, 48\), strides \(48, 144, 1\)\) must "
                                              "hold each matrix row-major"):
        matmul(a, b, **operands)
    dense = strided.contiguous()   # (the same values, each matrix's rows one after another: taken)
    expected = a.float() @ b.float() + (operands["c"].float() if name == "out" else dense.float())
    result = matmul(a, b, **dict(operands, **{name: dense}))
    assert torch.equal(result.float(), expected)


def test_one_launch_batch_still_takes_a_permuted_out(hopper_interpreter):
    a, b = ints(3, 16, 32), ints(3, 32, 48)
    out = torch.empty(16, 3, 48, dtype=torch.bfloat16).permute(1, 0, 2)
    assert matmul(a, b, out=out) is out and torch.equal(out.float(), a.float() @ b.float())
