"""Operands in another GPU's memory (or the host's) beside ones on the current device: the host paths pass a and b
(matmul), q, k, v and out (attention) as tensor maps, which hold an address whatever device it is on, so only an
operand passed as a pointer was refused, by the launcher; one read through a map was read from this GPU's kernel at
an address of another device (here with the fake driver and a stand-in torch: nothing reached a refusal before)."""
import numpy as np
import pytest

import skc
from helpers import fake_host_paths, refused


@pytest.fixture
def fake():
    with fake_host_paths() as found:
        yield found


@pytest.mark.parametrize("where", ["a", "b", "out"])
def test_matmul_refuses_an_operand_on_another_gpu(fake, where):
    driver, torch = fake
    shapes = {"a": (256, 128), "b": (128, 512), "out": (256, 512)}
    tensors = {name: torch.Tensor(shape, device=1 if name == where else 0) for name, shape in shapes.items()}
    for _ in range(2):   # (and no plan is kept for those facts)
        refused(driver, lambda: skc.blocks.matmul(tensors["a"], tensors["b"], tensors["out"]),
                f"matmul: {where} is on cuda:1, the kernel runs on cuda:0")


def test_matmul_refuses_a_host_array_beside_gpu_tensors(fake):
    driver, torch = fake
    a, out = torch.Tensor((256, 128), torch.float16), torch.Tensor((256, 512), torch.float16)
    refused(driver, lambda: skc.blocks.matmul(a, np.zeros((128, 512), np.float16), out),
            r"matmul: b is on host memory .*copy it to the GPU first \(skc.to_device\(x\)")


@pytest.mark.parametrize("where", ["q", "k", "v", "out"])
def test_attention_refuses_an_operand_on_another_gpu(fake, where):
    driver, torch = fake
    tensors = {name: torch.Tensor((1, 2, 128, 64), device=1 if name == where else 0) for name in ("q", "k", "v", "out")}
    refused(driver, lambda: skc.blocks.attention(tensors["q"], tensors["k"], tensors["v"], out=tensors["out"]),
            f"attention: {where} is on cuda:1")


def test_scaled_matmul_refuses_an_operand_on_another_gpu(fake):
    driver, torch = fake
    a, b_t = torch.Tensor((256, 128), torch.float8_e4m3fn), torch.Tensor((512, 128), torch.float8_e4m3fn, device=1)
    scale_a, scale_b = torch.Tensor((1,), torch.float32), torch.Tensor((1,), torch.float32)
    refused(driver, lambda: skc.blocks.matmul(a, b_t.T, scale_a=scale_a, scale_b=scale_b),
            "scaled matmul: b is on cuda:1")


def test_operands_on_the_current_device_still_launch(fake):
    driver, torch = fake
    a, b, out = torch.Tensor((256, 128)), torch.Tensor((128, 512)), torch.Tensor((256, 512))
    skc.blocks.matmul(a, b, out)
    q, k, v = (torch.Tensor((1, 2, 128, 64)) for _ in range(3))
    skc.blocks.attention(q, k, v)
    assert len(driver.launches) == 2
