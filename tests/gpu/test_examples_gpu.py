"""The examples on a real GPU against torch, outputs poisoned first; the GPU against the
interpreter; and launch-time errors raised before anything is launched."""

import numpy as np
import pytest

import skc
from helpers import load_example as _load


def load_example(name):
    return _load(name, "gpu_example")

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")




def poisoned(shape, dtype=torch.float32):
    shape = shape if isinstance(shape, tuple) else (shape,)
    return torch.full(shape, float("nan"), device="cuda", dtype=dtype)


@pytest.mark.parametrize("n", [1, 3, 1023, 1 << 20, (1 << 22) + 5])
def test_vector_add(n):
    example = load_example("vector_add")
    x, y = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    out = poisoned(n)
    example.launch(x, y, out, n)
    torch.cuda.synchronize()
    assert torch.equal(out, x + y)


@pytest.mark.parametrize("rows,cols", [(1, 4), (7, 1000), (256, 4096), (64, 8192), (16, 32768)])
def test_softmax(rows, cols):
    example = load_example("softmax")
    x = torch.randn(rows, cols, device="cuda") * 4
    out = poisoned((rows, cols))
    example.launch(x, out, rows, cols)
    torch.cuda.synchronize()
    expected = torch.softmax(x.double(), dim=1).float()
    assert not out.isnan().any()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("M,N,K", [(64, 64, 16), (1, 1, 1), (100, 70, 33), (1000, 1100, 900)])
def test_sgemm(M, N, K):
    example = load_example("sgemm")
    a, b = torch.randn(M, K, device="cuda"), torch.randn(K, N, device="cuda")
    c = poisoned((M, N))
    example.launch(a, b, c, M, N, K)
    torch.cuda.synchronize()
    expected = (a.double() @ b.double())
    error = ((c.double() - expected).norm() / expected.norm()).item()
    assert error < 1e-5


@pytest.mark.parametrize("name", ["vector_add", "softmax", "sgemm", "gated_gemm", "rmsnorm", "layer_norm", "prefix_sum",
                                  "transpose"])
def test_examples_main_on_gpu(name):
    assert not skc.current_device().is_interpreter
    summary = load_example(name).main()  # raises AssertionError when the result is wrong
    assert "match" in summary or "error" in summary


@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 6), (7, 1003), (4096, 4096), (8192, 1000), (16, 32768),
                                        (4, 100_003), (8, 70_000)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_layer_norm_against_torch(rows, cols, dtype):
    example = load_example("layer_norm")
    x = (torch.randn(rows, cols, device="cuda") * 2 + 10).to(dtype)
    w, b = torch.randn(cols, device="cuda").to(dtype), torch.randn(cols, device="cuda").to(dtype)
    y, mean, rstd = poisoned((rows, cols), dtype), poisoned(rows), poisoned(rows)
    example.launch(x, w, b, y, mean, rstd, rows, cols)
    torch.cuda.synchronize()
    exact = torch.nn.functional.layer_norm(x.double(), (cols,), w.double(), b.double(), 1e-5)
    theirs = torch.nn.functional.layer_norm(x, (cols,), w, b, 1e-5)
    scale = exact.abs().max()
    ours_error = ((y.double() - exact).abs().max() / scale).item()
    assert ours_error <= max(2 * ((theirs.double() - exact).abs().max() / scale).item(), 2 ** -7)
    torch.testing.assert_close(mean.double(), x.double().mean(1), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(rstd.double(), 1 / torch.sqrt(x.double().var(1, unbiased=False) + 1e-5), rtol=1e-4,
                               atol=0)


@pytest.mark.parametrize("n", [1, 3, 4097, 10_000_003, (1 << 24) + 1])
def test_prefix_sum_against_torch(n):
    example = load_example("prefix_sum")
    x = torch.randn(n, device="cuda")
    y = poisoned(n)
    example.launch(x, y, n)
    torch.cuda.synchronize()
    exact = torch.cumsum(x.double(), 0)
    bound = torch.cumsum(x.double().abs(), 0) * 2.0 ** -24 * 8 + 1e-30
    assert ((y.double() - exact).abs() / bound).max().item() <= 1


@pytest.mark.parametrize("m, n", [(1, 1), (1, 100_001), (1000, 3333), (4096, 4096), (33, 65)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int32, torch.float16, torch.bfloat16, torch.int16])
def test_transpose_against_torch(m, n, dtype):
    example = load_example("transpose")
    x = torch.randint(-1000, 1000, (m, n), device="cuda").to(dtype)
    out = torch.full((n, m), 77, device="cuda", dtype=dtype)
    example.launch(x, out, m, n)
    assert torch.equal(out, x.t().contiguous())


def test_gpu_and_interpreter_agree_on_softmax():
    example = load_example("softmax")
    rows, cols = 3, 1000
    host = np.random.default_rng(1).standard_normal((rows, cols), dtype=np.float32)
    gpu_out = poisoned((rows, cols))
    example.launch(torch.from_numpy(host).cuda(), gpu_out, rows, cols)
    cpu_out = np.full((rows, cols), np.nan, np.float32)
    example.softmax.interpret[rows, example.block_size(cols)](host, cpu_out, rows, cols)
    np.testing.assert_allclose(gpu_out.cpu().numpy(), cpu_out, rtol=2e-6, atol=1e-9)


def test_gpu_and_interpreter_agree_on_sgemm():
    example = load_example("sgemm")
    M, N, K = 70, 66, 37
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((M, K), dtype=np.float32), rng.standard_normal((K, N), dtype=np.float32)
    gpu_c = poisoned((M, N))
    example.launch(torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda(), gpu_c, M, N, K)
    cpu_c = np.full((M, N), np.nan, np.float32)
    grid = (skc.cdiv(N, example.BN), skc.cdiv(M, example.BM))
    example.sgemm.interpret[grid, example.THREADS](a, b, cpu_c, M, N, K)
    np.testing.assert_allclose(gpu_c.cpu().numpy(), cpu_c, rtol=1e-5, atol=1e-5)


def test_skc_device_arrays_and_streams():
    example = load_example("vector_add")
    n = 4099
    x, y = skc.to_device(np.arange(n, dtype=np.float32)), skc.to_device(np.ones(n, np.float32))
    out = skc.empty(n, skc.f32).fill_bytes(0xFF)
    stream = torch.cuda.Stream()
    example.vector_add[skc.cdiv(n, 1024), 256](x, y, out, n, stream=stream)
    stream.synchronize()
    np.testing.assert_array_equal(out.numpy(), np.arange(n, dtype=np.float32) + 1)


# -- bad launch input -------------------------------------------------------------------------
def test_host_array_is_rejected_before_launch():
    example = load_example("vector_add")
    host = np.zeros(16, np.float32)
    x = torch.zeros(16, device="cuda")
    with pytest.raises(skc.LaunchError, match="argument 'y' is in cpu memory.*skc.to_device"):
        example.vector_add[1, 256](x, host, x, 16)
    cpu_tensor = torch.zeros(16)
    with pytest.raises(skc.LaunchError, match="argument 'x' is in cpu memory"):
        example.vector_add[1, 256](cpu_tensor, x, x, 16)


def test_wrong_dtype_and_count_are_rejected():
    example = load_example("vector_add")
    x = torch.zeros(16, device="cuda")
    half = torch.zeros(16, device="cuda", dtype=torch.float16)
    with pytest.raises(skc.LaunchError, match="argument 'y' has dtype f16, the kernel declares skc.Ptr\\[skc.f32\\]"):
        example.vector_add[1, 256](x, half, x, 16)
    with pytest.raises(skc.LaunchError, match="takes 4 arguments"):
        example.vector_add[1, 256](x, x, x)
    with pytest.raises(skc.LaunchError, match="must be a number"):
        example.vector_add[1, 256](x, x, x, x)


def test_bad_grid_and_block_are_rejected():
    example = load_example("vector_add")
    x = torch.zeros(16, device="cuda")
    with pytest.raises(skc.LaunchError, match="dimension of zero"):
        example.vector_add[0, 256](x, x, x, 16)
    with pytest.raises(skc.LaunchError, match="exceeds the limit of 65535 blocks along y"):
        example.vector_add[(1, 70000), 256](x, x, x, 16)
    with pytest.raises(skc.LaunchError, match="2048 threads"):
        example.vector_add[1, 2048](x, x, x, 16)


def test_launch_overhead_is_small():
    """Not a timing test of the target: a guard that the hot path does not compile or copy per launch."""
    import time

    example = load_example("vector_add")
    x = torch.zeros(1024, device="cuda")
    launch = example.vector_add[1, 256]
    launch(x, x, x, 1024)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(2000):
        launch(x, x, x, 1024)
    torch.cuda.synchronize()
    per_launch = (time.perf_counter() - started) / 2000
    assert per_launch < 50e-6, per_launch
