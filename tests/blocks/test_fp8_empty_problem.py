"""An fp8 GEMM with an empty dimension is named as such (was: "operands must be row-major or transposed views"
for K = 0, a TMA stride error for N = 0)."""
import pytest

import skc
from skc.blocks import matmul

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("M, N, K", [(64, 128, 0), (64, 0, 256), (0, 128, 256)])
def test_empty_fp8_problem_is_named(hopper_interpreter, M, N, K):
    a = torch.ones(M, K).to(torch.float8_e4m3fn)
    b = torch.ones(N, K).to(torch.float8_e4m3fn).T            # K x N, column-major
    one = torch.ones(())
    with pytest.raises(skc.LaunchError, match="M, N and K must each be at least 1"):
        matmul(a, b, scale_a=one, scale_b=one)
