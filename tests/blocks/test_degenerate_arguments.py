"""Degenerate arguments of the host entry points, as torch takes them (fifty-fourth session): a product of K = 0
whatever alpha, ..."""
import math

import pytest

import skc
from skc.blocks import matmul

torch = pytest.importorskip("torch")
bf16 = torch.bfloat16


def ints(*shape):
    return torch.randint(-2, 3, shape).to(bf16)


@pytest.mark.parametrize("alpha", [math.nan, math.inf, -math.inf, 2.0])
@pytest.mark.parametrize("shapes", [((16, 0), (0, 16)), ((3, 16, 0), (3, 0, 16))])
def test_k_of_zero_drops_alpha_as_torch_addmm_does(hopper_interpreter, alpha, shapes):
    """alpha scales a sum of nothing, 0 whatever alpha (torch.addmm gives beta · c for a NaN or infinite alpha; was:
    NaN, the GEMM of zero operands multiplying its 0 by alpha)."""
    a, b = ints(*shapes[0]), ints(*shapes[1])
    c = ints(*shapes[0][:-1], 16)
    assert torch.equal(matmul(a, b, alpha=alpha), torch.zeros_like(c))
    expected = torch.baddbmm(c.float(), a.float(), b.float(), alpha=alpha) if a.dim() == 3 else torch.addmm(
        c.float(), a.float(), b.float(), alpha=alpha)
    assert torch.equal(matmul(a, b, c=c, alpha=alpha).float(), expected)
    bias = ints(16)
    assert torch.equal(matmul(a, b, bias=bias, alpha=alpha, activation="relu"), torch.relu(bias).expand_as(c))


@pytest.mark.parametrize("shapes", [((16, 0), (0, 16)), ((0, 16), (16, 16))])
def test_an_empty_product_still_names_a_wrong_alpha(hopper_interpreter, shapes):
    with pytest.raises(skc.LaunchError, match="alpha must be a real number, found str '2'"):
        matmul(ints(*shapes[0]), ints(*shapes[1]), alpha="2")
