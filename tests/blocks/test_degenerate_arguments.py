"""Degenerate arguments of the host entry points, as torch takes them (fifty-fourth session): a product of K = 0
whatever alpha is (torch.addmm's beta · c, not NaN), and a beta with no c, refused by name (it was ignored: out
overwritten where BLAS's out = alpha·AB + beta·out would have added to it)."""
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


@pytest.mark.parametrize("beta", [2.0, 1, -1.0, math.nan])
def test_a_beta_without_c_is_refused(hopper_interpreter, beta):
    """torch.addmm takes beta with its input; BLAS reads C as out. skc's beta scales c only: with no c it scaled
    nothing and out was overwritten, silently."""
    a, b, out = ints(16, 32), ints(32, 16), ints(16, 16)
    for call in (lambda: matmul(a, b, out, beta=beta), lambda: matmul(a, b, beta=beta),
                 lambda: matmul(a[:0], b, beta=beta), lambda: matmul(a[:, :0], b[:0], beta=beta)):
        with pytest.raises(skc.LaunchError, match="beta scales c, and no c is given: pass c=out"):
            call()
    expected = out.float() * beta + a.float() @ b.float()
    torch.testing.assert_close(matmul(a, b, out, c=out, beta=beta), expected.bfloat16(), rtol=0, atol=0,
                               equal_nan=True)


def test_a_beta_of_zero_without_c_still_runs(hopper_interpreter):
    a, b = ints(16, 32), ints(32, 16)
    for beta in (0.0, 0, -0.0):
        assert torch.equal(matmul(a, b, beta=beta).float(), a.float() @ b.float())


def test_the_operator_refuses_a_beta_without_c_as_its_fake_does(hopper_interpreter):
    skc_torch = pytest.importorskip("skc.torch")
    a, b = ints(16, 32), ints(32, 16)
    with pytest.raises(skc_torch.OperatorRefusal, match="beta scales c, and no c is given"):
        torch.ops.skc.matmul(a, b, beta=2.0)
    with pytest.raises(skc_torch.OperatorRefusal, match="beta scales c, and no c is given"):
        torch.ops.skc.matmul_out(a, b, ints(16, 16), beta=2.0)
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        fake_a, fake_b = mode.from_tensor(a), mode.from_tensor(b)
        with pytest.raises(skc_torch.OperatorRefusal, match="beta scales c, and no c is given"):
            torch.ops.skc.matmul(fake_a, fake_b, beta=2.0)

