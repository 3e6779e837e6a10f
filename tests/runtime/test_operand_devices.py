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


# -- fiftieth session: tensor maps, the interpreter, CPU tensors, empty problems ----------------------------------
@skc.kernel
def first_of(tile: skc.TensorMap, out: skc.Ptr[skc.f32]):
    if skc.thread_id(0) == 0:
        out[0] = 1.0


def test_a_tensor_map_over_host_memory_or_another_gpu_is_refused_at_launch(fake):
    """A plain launch of a map over a numpy array, or a tensor on cuda:1, launched on cuda:0: the descriptor held the
    address as it was, read from cuda:0's kernel (a CPU torch tensor's raised torch's own error, from its stream)."""
    driver, torch = fake
    out = torch.Tensor((4,), torch.float32)
    refused(driver, lambda: first_of[1, 32](skc.TensorMap(np.zeros((64, 32), np.float32), (64, 32)), out),
            r"first_of: argument 'tile' is a tensor map over host memory .* the kernel runs on cuda:0: make it over "
            r"a copy on the GPU")
    elsewhere = skc.TensorMap(torch.Tensor((64, 32), torch.float32, device=1), (64, 32))
    for _ in range(2):   # (and again: nothing was kept of the refused map)
        refused(driver, lambda: first_of[1, 32](elsewhere, out),
                r"'tile' is a tensor map over cuda:1; the kernel runs on cuda:0: .*skc.set_device\('cuda:1'\)")
    first_of[1, 32](skc.TensorMap(torch.Tensor((64, 32), torch.float32), (64, 32)), out)
    assert len(driver.launches) == 1


def test_a_pointer_on_another_gpu_says_the_fix(fake):
    driver, torch = fake
    refused(driver, lambda: first_of[1, 32](skc.TensorMap(torch.Tensor((64, 32), torch.float32), (64, 32)),
                                            torch.Tensor((4,), torch.float32, device=1)),
            r"argument 'out' is on cuda:1, the kernel runs on cuda:0: pass arguments on one device.*"
            r"skc.set_device\('cuda:1'\)")


@pytest.mark.parametrize("call", ["matmul", "attention", "conv2d", "scaled"])
def test_gpu_tensors_in_the_interpreter_are_named_by_the_host_paths(fake, call):
    """With the interpreter current, a GPU tensor was named by the interpreter's first read ('TensorMap: argument
    'a' is in cuda memory'), after conv2d had made its output on the GPU."""
    from skc.runtime import devices

    driver, torch = fake
    T = torch.Tensor
    calls = {"matmul": lambda: skc.blocks.matmul(T((64, 32)), T((32, 64))),
             "attention": lambda: skc.blocks.attention(*(T((1, 2, 64, 64)) for _ in range(3))),
             "conv2d": lambda: skc.blocks.conv2d(T((1, 6, 6, 8)).permute(0, 3, 1, 2),
                                                 T((8, 3, 3, 8)).permute(0, 3, 1, 2)),
             "scaled": lambda: skc.blocks.matmul(T((64, 32), torch.float8_e4m3fn), T((64, 32), torch.float8_e4m3fn).T,
                                                 scale_a=T((1,), torch.float32), scale_b=T((1,), torch.float32))}
    with devices.using_device("interpreter"):
        with pytest.raises(skc.LaunchError, match=r"is on cuda:0, the kernel runs in the interpreter .* pass CPU "
                                                  r"tensors \(.*\.cpu\(\)\), or make cuda:0 the current device"):
            calls[call]()


def test_cpu_torch_tensors_on_a_gpu_say_the_fix():
    """CPU tensors while a GPU is current: named with torch's words and both ways out (was: 'pass operands on one
    device, and make it the current one')."""
    real = pytest.importorskip("torch")
    from skc.runtime import fake_cuda

    a, b = real.zeros(64, 32, dtype=real.bfloat16), real.zeros(32, 64, dtype=real.bfloat16)
    with fake_cuda.installed() as driver:
        refused(driver, lambda: skc.blocks.matmul(a, b),
                r"matmul: a is on cpu, the kernel runs on cuda:0 .*expected all tensors on one device: copy it to the "
                r"GPU \(a.to\('cuda:0'\)\), or run the interpreter on CPU tensors \(skc.set_device\('interpreter'\)\)")


def test_empty_problems_launch_nothing_on_a_gpu_and_still_check_devices(fake):
    """conv2d of a batch of none, attention of no query row or no key, the fp8 GEMM of M or N of 0: no launch (they
    were refused); an operand on another GPU is still named."""
    driver, torch = fake
    T, f8, f32 = torch.Tensor, torch.float8_e4m3fn, torch.float32
    x, w = T((0, 6, 6, 8)).permute(0, 3, 1, 2), T((16, 3, 3, 8)).permute(0, 3, 1, 2)
    out = T((0, 4, 4, 16)).permute(0, 3, 1, 2)
    assert skc.blocks.conv2d(x, w, out=out) is out
    q, no_keys = T((1, 2, 64, 64)), T((1, 2, 0, 64))
    given = T((1, 2, 64, 64))
    nobody = T((0, 2, 64, 64))
    assert skc.blocks.attention(nobody, nobody, nobody, out=nobody) is nobody
    assert skc.blocks.attention(q, no_keys, no_keys, out=given) is given
    one = T((1,), f32)
    skc.blocks.matmul(T((0, 32), f8), T((64, 32), f8).T, scale_a=one, scale_b=one, out=T((0, 64)))
    assert driver.launches == []
    refused(driver, lambda: skc.blocks.conv2d(x, w, out=T((0, 4, 4, 16), device=1).permute(0, 3, 1, 2)),
            "conv2d: out is on cuda:1")
    refused(driver, lambda: skc.blocks.attention(q, T((1, 2, 0, 64), device=1), no_keys, out=given),
            "attention: k is on cuda:1")
    refused(driver, lambda: skc.blocks.matmul(T((0, 32), f8), T((64, 32), f8, device=1).T, scale_a=one,
                                              scale_b=one, out=T((0, 64))), "scaled matmul: b is on cuda:1")


# -- fifty-first session: a tensor map launched on one GPU, then on another -----------------------------------------
@pytest.fixture
def two_gpus():
    with fake_host_paths(gpus=2) as found:
        yield found


def test_a_tensor_map_is_checked_on_every_device_it_is_launched_on(two_gpus):
    """A map over a tensor on cuda:0, launched there, then launched on cuda:1 (skc.set_device, or kernel.on(...)): its
    tensor's device was checked at its first launch only, so cuda:1's kernel read cuda:0's address (the reverse too)."""
    from skc.runtime import devices

    driver, torch = two_gpus
    out = {i: torch.Tensor((4,), torch.float32, device=i) for i in (0, 1)}
    here = skc.TensorMap(torch.Tensor((64, 32), torch.float32), (64, 32))
    there = skc.TensorMap(torch.Tensor((64, 32), torch.float32, device=1), (64, 32))
    first_of[1, 32](here, out[0])
    with devices.using_device("cuda:1"):
        first_of[1, 32](there, out[1])
        refused(driver, lambda: first_of[1, 32](here, out[1]),
                r"'tile' is a tensor map over cuda:0; the kernel runs on cuda:1: .*skc.set_device\('cuda:0'\)")
    refused(driver, lambda: first_of[1, 32](there, out[0]), r"'tile' is a tensor map over cuda:1; the kernel runs on "
                                                             r"cuda:0")
    refused(driver, lambda: first_of.on("cuda:1")[1, 32](here, out[1]), "tensor map over cuda:0; the kernel runs on "
                                                                         "cuda:1")
    first_of.on("cuda:1")[1, 32](there, out[1])   # (its launch's device, not the current one)
    ready = first_of[1, 32].ready(here, out[0])
    with devices.using_device("cuda:1"):
        refused(driver, lambda: first_of[1, 32].ready(here, out[1]).bind((here, out[1])), "tensor map over cuda:0")
    ready.bind((here, out[0]))()
    assert len(driver.launches) == 4


def test_a_host_path_plan_serves_the_device_it_was_made_on(two_gpus):
    """matmul's plans are keyed by the current device: cuda:0's operands with cuda:1 current are refused by name (the
    plan made on cuda:0 is not used), and cuda:1's run on cuda:1."""
    from skc.runtime import devices

    driver, torch = two_gpus
    operands = {i: (torch.Tensor((256, 128), device=i), torch.Tensor((128, 512), device=i)) for i in (0, 1)}
    skc.blocks.matmul(*operands[0])
    with devices.using_device("cuda:1"):
        refused(driver, lambda: skc.blocks.matmul(*operands[0]), "matmul: a is on cuda:0, the kernel runs on cuda:1")
        skc.blocks.matmul(*operands[1])
    assert len(driver.launches) == 2
