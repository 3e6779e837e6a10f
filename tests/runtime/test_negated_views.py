"""A lazily negated torch view (torch._neg_view(x), z.conj().imag) has a plain tensor's shape, strides, dtype, device
and data pointer, while its memory holds the values un-negated: a launch or a host path that knew the plain
tensor's facts read it as the plain tensor on a GPU (a wrong answer). Every ready path now asks is_neg() and refuses
the view by name, the first call and every later one (here with the fake driver and a stand-in torch). So do the
launchers' fast paths for a nested tensor (is_nested), whose data pointer is its packed buffer's."""
import pytest

import skc
from helpers import fake_host_paths, refused

NEGATED = "lazily negated view"


@pytest.fixture
def fake():
    with fake_host_paths() as found:
        yield found


@skc.kernel(block=32)
def fill(x: skc.Ptr[skc.f32], n: skc.i32):
    if skc.thread_id(0) < n:
        x[skc.thread_id(0)] = 1.0


@skc.kernel(block=32)
def fill_half(x: skc.Ptr[skc.f32], n: skc.i32, value: skc.f16):   # (an f16 scalar: the Python launcher's fast path)
    if skc.thread_id(0) < n:
        x[skc.thread_id(0)] = skc.f32(value)


def nested(torch, x):
    """A stand-in for a strided nested tensor over x's memory (torch's type; its data pointer is its packed
    buffer's)."""
    view = torch.Tensor(x.shape, x.dtype, x.stride(), x.data_ptr(), x.get_device())
    view.is_nested = True
    return view


@pytest.mark.parametrize("kind, message", [("negated", NEGATED), ("nested", "nested tensor")])
@pytest.mark.parametrize("kernel, extra", [(fill, ()), (fill_half, (0.5,))], ids=["native", "python"])
def test_a_kernel_launch_refuses_a_view_it_cannot_read_after_a_plain_launch(fake, kernel, extra, kind, message):
    """(and a nested tensor, whose first launch was refused as well)"""
    driver, torch = fake
    x = torch.Tensor((32,), torch.float32)
    launch, ready = kernel[1, 32], kernel[1, 32].ready(x, 32, *extra)
    for _ in range(2):   # (the launcher's ready paths: first sighting, then the fast one)
        launch(x, 32, *extra)
        ready((x, 32, *extra))
    view = torch._neg_view(x) if kind == "negated" else nested(torch, x)
    for _ in range(2):
        refused(driver, lambda: launch(view, 32, *extra), message)
        refused(driver, lambda: ready((view, 32, *extra)), message)   # (no specialization's lookup in between)
    launch(x, 32, *extra)
    assert len(driver.launches) == 5


def test_matmul_refuses_a_negated_operand_or_output_of_a_ready_plans_facts(fake):
    driver, torch = fake
    a, b, out = torch.Tensor((256, 128)), torch.Tensor((128, 512)), torch.Tensor((256, 512))
    for _ in range(3):   # a plan, then its bound launch
        skc.blocks.matmul(a, b, out)
    for args in ((torch._neg_view(a), b, out), (a, torch._neg_view(b), out), (a, b, torch._neg_view(out))):
        for _ in range(2):
            refused(driver, lambda: skc.blocks.matmul(*args), NEGATED)


def test_scaled_matmul_refuses_a_negated_scale_of_a_ready_plans_facts(fake):
    driver, torch = fake
    a, b_t = torch.Tensor((256, 128), torch.float8_e4m3fn), torch.Tensor((512, 128), torch.float8_e4m3fn)
    scale_a, scale_b = torch.Tensor((1,), torch.float32), torch.Tensor((1,), torch.float32)
    out = torch.Tensor((256, 512))
    for _ in range(3):
        skc.blocks.matmul(a, b_t.T, scale_a=scale_a, scale_b=scale_b, out=out)
    for _ in range(2):
        refused(driver, lambda: skc.blocks.matmul(a, b_t.T, scale_a=torch._neg_view(scale_a), scale_b=scale_b,
                                                  out=out), NEGATED)


def test_attention_refuses_a_negated_operand_of_a_ready_plans_facts(fake):
    driver, torch = fake
    q, k, v, out = (torch.Tensor((1, 2, 128, 64)) for _ in range(4))
    for _ in range(3):
        skc.blocks.attention(q, k, v, out=out)
    for args in ((q, torch._neg_view(k), v, out), (q, k, v, torch._neg_view(out))):
        for _ in range(2):
            refused(driver, lambda: skc.blocks.attention(*args[:3], out=args[3]), NEGATED)


def test_attention_refuses_a_nested_operand_whose_facts_torch_cannot_give(fake):
    """A strided nested tensor raises for its sizes and strides (RuntimeError, "Internal error: NestedTensorImpl
    doesn't support strides"): attention's plan key let it out as it was, where matmul's and the scaled matmul's
    refuse the operand by name."""
    driver, torch = fake
    q, k, v = (torch.Tensor((1, 2, 128, 64)) for _ in range(3))
    view = nested(torch, k)

    def no_strides():
        raise RuntimeError("Internal error: NestedTensorImpl doesn't support strides. Please file an issue.")
    view.stride = no_strides
    refused(driver, lambda: skc.blocks.attention(q, view, v), "attention: k is a nested tensor")
