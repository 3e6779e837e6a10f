"""An fp8 GEMM with an empty dimension runs as torch._scaled_mm does (fiftieth session; it was refused by name, 'M, N
and K must each be at least 1', and before that by a layout or TMA stride error): M or N of 0 gives an empty
result with no launch; K of 0 the epilogue of 0, activation(bias) or zeros (torch._scaled_mm on the CPU gives its
shape, but leaves its memory unwritten: zeros, or not, as the allocator had them)."""
import pytest

import skc
from skc.blocks import matmul

torch = pytest.importorskip("torch")
F8 = torch.float8_e4m3fn


def operands(M, N, K):
    return torch.ones(M, K).to(F8), torch.ones(N, K).to(F8).T            # b: K x N, column-major


@pytest.mark.parametrize("M, N, K", [(64, 128, 0), (64, 0, 256), (0, 128, 256), (0, 12, 0)])
def test_empty_fp8_problem_is_torchs(hopper_interpreter, M, N, K):
    a, b = operands(M, N, K)
    one = torch.ones(())
    got = matmul(a, b, scale_a=one, scale_b=one)
    expected = torch.zeros(M, N, dtype=torch.bfloat16)
    assert torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16).shape == (M, N)
    assert got.shape == (M, N) and got.dtype == torch.bfloat16 and torch.equal(got, expected)
    out = torch.full((M, N), 5.0)
    assert matmul(a, b, scale_a=one, scale_b=one, out=out) is out and torch.equal(out, expected.float())
    with pytest.raises(skc.LaunchError, match=r"out is \(1, 1\)"):
        matmul(a, b, scale_a=one, scale_b=one, out=torch.empty(1, 1, dtype=torch.bfloat16))
    with pytest.raises(skc.LaunchError, match="writes bfloat16, float16 or float32"):
        matmul(a, b, scale_a=one, scale_b=one, out=torch.empty(M, N, dtype=torch.float64))


def test_k_of_zero_is_the_epilogue_of_zero(hopper_interpreter):
    """activation(0 + bias) whatever the scales (an infinite one too: the sum of nothing is 0, not 0 · inf), per
    tensor or block-wise (no k-block, so scales of shape M x 0 and 0 x N/128)."""
    a, b = operands(64, 256, 0)
    bias = (torch.arange(256) - 100).to(torch.bfloat16)
    got = matmul(a, b, scale_a=torch.tensor(float("inf")), scale_b=torch.ones(()), bias=bias, activation="relu")
    assert torch.equal(got, torch.relu(bias).expand(64, 256))
    got = matmul(a, b, scale_a=torch.ones(64, 0), scale_b=torch.ones(0, 2), out_dtype=torch.float16, bias=bias)
    assert got.dtype == torch.float16 and torch.equal(got, bias.half().expand(64, 256))
    with pytest.raises(skc.LaunchError, match="neither one value each"):
        matmul(a, b, scale_a=torch.ones(64, 1), scale_b=torch.ones(1, 2))
    with pytest.raises(skc.LaunchError, match="N of 8, found K=0, N=12"):
        matmul(*operands(64, 12, 0), scale_a=torch.ones(()), scale_b=torch.ones(()))
