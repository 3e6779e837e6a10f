"""torch tensors whose memory their data pointer and strides do not describe are refused by name (were, on the CPU:
RuntimeError and NotImplementedError from inside skc's numpy view, or a misleading "strides (0, 0)" or "out shares
memory with a"; a GPU launch read the memory of a negated view without its negation), and subclasses of torch.Tensor
are torch tensors (were: AttributeError from __cuda_array_interface__, and plan keys without their strides)."""
import warnings

import pytest

torch = pytest.importorskip("torch")
import skc  # noqa: E402
from skc.blocks import conv2d, host_plans, matmul  # noqa: E402


@skc.kernel(block=32)
def copy(x, out, n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        out[i] = x[i]


@skc.kernel(block=32)
def copy_f32(x: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], n: skc.i32):
    i = skc.thread_id(0)
    if i < n:
        out[i] = x[i]


def ints(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 3, shape, generator=generator).to(torch.bfloat16)


def _negated():
    return torch.complex(torch.arange(8.0), torch.arange(8.0)).conj().imag


def _fake(x):
    return torch._subclasses.fake_tensor.FakeTensorMode().from_tensor(x)


@pytest.mark.parametrize("make, message", [
    (_negated, "lazily negated view"),
    (lambda: torch.arange(8.0).to_sparse(), "sparse_coo tensor"),
    (lambda: _fake(torch.arange(8.0)), "FakeTensor")])
@pytest.mark.parametrize("kernel", [copy, copy_f32])
def test_a_kernel_names_a_tensor_it_cannot_read(kernel, make, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = make()
    with pytest.raises(skc.LaunchError, match=f"argument 'x' is .*{message}"):
        kernel[1, 32](x, torch.zeros(8), 8)


def _fp8_matmul(a, b):
    one = torch.tensor(1.0)
    return matmul(a.float().to(torch.float8_e4m3fn), b.float().to(torch.float8_e4m3fn).t().contiguous().t(),
                  scale_a=one, scale_b=one)


@pytest.mark.parametrize("call, operand, operator", [
    (lambda a, b: matmul(a, b), "a", "matmul"), (lambda a, b: matmul(b, a), "b", "matmul"),
    (_fp8_matmul, "a", "scaled_matmul"),
    (lambda w, x: conv2d(x.reshape(1, 4, 4, 16).permute(0, 3, 1, 2), w.reshape(16, 16, 1, 1)), "w", "conv2d")])
def test_a_host_call_under_vmap_after_a_plain_call_of_its_facts_names_the_operator_vmap_runs(call, operand, operator):
    """(the ready plan of a plain call read the data pointer of vmap's tensor: torch's RuntimeError "Cannot access
    data pointer of Tensor that doesn't have storage"; then the error said to write an operator, skc.torch.register_op,
    where torch.ops.skc's runs under vmap: a helper's search, sixty-seventh session)"""
    a, b = ints(16, 16), ints(16, 16, seed=1)
    call(a, b)
    with pytest.raises(skc.LaunchError, match=f"{operand} is a tensor of a torch.func transform .* under "
                                              f"torch.func.vmap call torch.ops.skc.{operator}, which vmap runs"):
        torch.vmap(lambda x: call(x, b))(ints(2, 16, 16))


def test_a_kernel_under_vmap_names_the_missing_storage():
    with pytest.raises(skc.LaunchError, match="argument 'x' is a tensor without storage"):
        torch.vmap(lambda x: copy[1, 32](x, torch.zeros(8), 8))(torch.ones(2, 8))


@pytest.mark.parametrize("make, message", [
    (lambda a: torch._neg_view(a), "matmul: a is a lazily negated view"),
    (lambda a: a.to_sparse(), "matmul: a is a sparse_coo tensor"),
    (lambda a: a.to_sparse_csr(), "matmul: a is a sparse_csr tensor"),
    (_fake, "matmul: a is a FakeTensor")])
def test_matmul_names_an_operand_it_cannot_read(make, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = make(ints(16, 16))
    with pytest.raises(skc.LaunchError, match=message):
        matmul(a, ints(16, 16, seed=1))


class Tagged(torch.Tensor):
    pass


def test_a_subclass_of_torch_tensor_is_a_torch_tensor():
    out = torch.zeros(8).as_subclass(Tagged)
    copy[1, 32](torch.arange(8.0).as_subclass(Tagged), out, 8)
    assert out.tolist() == list(range(8))
    a, b = ints(16, 16), ints(16, 16, seed=1)
    transposed = a.t().contiguous().t()   # (the same shape: the plan key must hold the strides)
    assert host_plans.facts(a.as_subclass(Tagged)) != host_plans.facts(transposed.as_subclass(Tagged))
    for x in (a, transposed):
        got = matmul(x.as_subclass(Tagged), b.as_subclass(Tagged))
        assert torch.equal(got.as_subclass(torch.Tensor).float(), a.float() @ b.float())


def test_conv2d_reads_a_subclass_in_torchs_nchw_order():
    """... and gives one, as F.conv2d, matmul and attention do (it gave a plain tensor: a helper's search, sixty-seventh
    session)."""
    x = ints(1, 8, 6, 6).to(memory_format=torch.channels_last).as_subclass(Tagged)
    w = ints(8, 8, 3, 3, seed=1).to(memory_format=torch.channels_last).as_subclass(Tagged)
    result = conv2d(x, w, padding=1)
    assert type(result) is Tagged and result.is_contiguous(memory_format=torch.channels_last)
    got = result.as_subclass(torch.Tensor)
    expected = torch.nn.functional.conv2d(x.as_subclass(torch.Tensor).float(), w.as_subclass(torch.Tensor).float(),
                                          padding=1)
    assert got.shape == (1, 8, 6, 6)
    torch.testing.assert_close(got.float(), expected, rtol=1e-2, atol=5e-2)


def test_a_negated_view_after_a_plain_call_of_its_facts_is_refused_too():
    """(a ready plan's key held the plain tensor's facts alone, so on a GPU a negated view of them was read
    un-negated: the key holds is_neg() now)"""
    a, b = ints(16, 16), ints(16, 16, seed=1)
    assert host_plans.facts(a) != host_plans.facts(torch._neg_view(a))
    matmul(a, b)
    for _ in range(2):
        with pytest.raises(skc.LaunchError, match="matmul: a is a lazily negated view"):
            matmul(torch._neg_view(a), b)
    copy[1, 32](a.float(), torch.zeros(8), 8)
    with pytest.raises(skc.LaunchError, match="argument 'x' is a lazily negated view"):
        copy[1, 32](torch._neg_view(a.float()), torch.zeros(8), 8)


def test_a_strided_tensor_for_a_pointer_is_read_in_memory_order_from_its_first_element():
    """As a GPU launch reads it from its data_ptr() (was: refused, "pass x.contiguous()"; tests/runtime/
    test_strided_pointers.py has the rest)."""
    out = torch.zeros(32)
    copy_f32[1, 32](torch.arange(32.0).reshape(4, 8).t(), out, 32)
    assert torch.equal(out, torch.arange(32.0))
