"""Launches follow the caller's stream: without stream= an skc launch with torch tensors among its arguments goes to
torch's current stream, so it orders with the caller's work on a side stream and is captured by torch.cuda.graph;
the replay computes the right result after the inputs change in place. The GEMM (skc.blocks.matmul) alike."""
import pytest

import skc

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")

BLOCK = 256


@skc.kernel(block=BLOCK)
def scale_add(x: skc.Ptr[skc.f32], y: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], alpha: skc.f32, n: skc.i32):
    i = skc.block_id(0) * BLOCK + skc.thread_id(0)
    if i < n:
        out[i] = alpha * x[i] + y[i]


def launch(x, y, out, alpha=2.0):
    n = x.numel()
    scale_add[skc.cdiv(n, BLOCK), BLOCK](x, y, out, alpha, n)


def test_plain_kernel_captured_in_a_cuda_graph_replays_with_new_inputs():
    n = 1 << 20
    x, y = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    out = torch.zeros(n, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (compile, load) outside the capture
        launch(x, y, out)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        launch(x, y, out)
    out.zero_()
    x.copy_(torch.randn(n, device="cuda"))
    y.copy_(torch.randn(n, device="cuda"))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, 2.0 * x + y)
    x.mul_(-1.0)
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, 2.0 * x + y)


def test_a_launch_on_a_side_stream_orders_with_the_streams_work():
    n = 1 << 24
    side = torch.cuda.Stream()
    big = torch.randn(4096, 4096, device="cuda")
    for _ in range(3):
        x = torch.zeros(n, device="cuda")
        y = torch.zeros(n, device="cuda")
        out = torch.full((n,), float("nan"), device="cuda")
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(4):  # keep the side stream busy before x is written
                big = big @ big / 64.0
            x.fill_(1.5)
            launch(x, y, out)         # must run after fill_ on `side`, not on the default stream
            result = out * 2.0          # and before this read on `side`
        side.synchronize()
        assert torch.all(out == 3.0).item()
        assert torch.all(result == 6.0).item()


def test_an_explicit_stream_is_honoured():
    n = 1 << 16
    x, y, out = torch.ones(n, device="cuda"), torch.ones(n, device="cuda"), torch.zeros(n, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    scale_add[skc.cdiv(n, BLOCK), BLOCK](x, y, out, 3.0, n, stream=side)
    side.synchronize()
    assert torch.all(out == 4.0).item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_matmul_captured_in_a_cuda_graph_replays_with_new_inputs(dtype):
    M, N, K = 512, 384, 256
    a = torch.randn(M, K, device="cuda", dtype=dtype)
    b = torch.randn(K, N, device="cuda", dtype=dtype)
    out = torch.zeros(M, N, device="cuda", dtype=dtype)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        skc.blocks.matmul(a, b, out=out)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        skc.blocks.matmul(a, b, out=out)
    for _ in range(2):
        out.zero_()
        a.copy_(torch.randn(M, K, device="cuda", dtype=dtype))
        b.copy_(torch.randn(K, N, device="cuda", dtype=dtype))
        graph.replay()
        torch.cuda.synchronize()
        expected = a.float() @ b.float()
        assert ((out.float() - expected).norm() / expected.norm()).item() <= 1e-2


def test_matmul_takes_a_stream_and_follows_the_current_one():
    M, N, K = 256, 256, 128
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
    expected = a.float() @ b.float()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    out = skc.blocks.matmul(a, b, stream=side)
    side.synchronize()
    assert ((out.float() - expected).norm() / expected.norm()).item() <= 1e-2
    with torch.cuda.stream(side):
        out = skc.blocks.matmul(a, b)
        copy = out.clone()  # ordered after the GEMM on `side`
    side.synchronize()
    assert ((copy.float() - expected).norm() / expected.norm()).item() <= 1e-2


@pytest.mark.parametrize("fields", [{"split_k": 4}, {"stream_k": True}], ids=["split-k", "stream-k"])
def test_buffers_first_made_under_capture_are_the_graphs_own(fields):
    """Split-K's and stream-K's workspace and counters made while a graph captured a stream were kept for that
    stream: the graphs captured on it later and its eager calls shared them (zeroed only by the first graph's
    replay). Two graphs on one stream, the second replayed first, then an eager call on that stream."""
    from skc.blocks import MatmulConfig

    config = MatmulConfig(tile_m=64, tile_n=128, consumers=1, stages=4, **fields)
    a = torch.randn(64 * 133, 1024, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(1024, 128, device="cuda", dtype=torch.bfloat16)
    expected = a.float() @ b.float()
    outs = [torch.full((64 * 133, 128), float("nan"), device="cuda", dtype=torch.bfloat16) for _ in range(3)]
    warm, stream = torch.cuda.Stream(), torch.cuda.Stream()
    with torch.cuda.stream(warm):   # (compiled and loaded outside the capture, on a stream of its own)
        skc.blocks.matmul(a, b, out=outs[2], config=config)
    warm.synchronize()
    graphs = [torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()]
    for graph, out in zip(graphs, outs):
        with torch.cuda.graph(graph, stream=stream):
            skc.blocks.matmul(a, b, out=out, config=config)
    for graph in reversed(graphs):
        graph.replay()
    with torch.cuda.stream(stream):
        outs[2] = skc.blocks.matmul(a, b, config=config)
    torch.cuda.synchronize()
    for out in outs:
        assert ((out.float() - expected).norm() / expected.norm()).item() <= 1e-2


@pytest.mark.parametrize("stream", ["none", "zero", "default", "side"])
def test_copies_around_a_gemm_order_with_its_launch_on_every_stream(stream):
    """matmul's host-side copies (an out off a 16-byte boundary, copied and written back; a and b copied where their
    rows are of no multiple of 8) run on the launch's stream, the default one included: torch.cuda.ExternalStream(0)
    is a new stream of torch's pool, and copies made there were written back before the GEMM had filled them
    (blocks_fuzz seed 5001 case 834: rows of poison). Outputs poisoned, many calls, each checked."""
    torch.manual_seed(0)
    side = torch.cuda.Stream()
    given = {"none": None, "zero": 0, "default": torch.cuda.default_stream(), "side": side}[stream]
    a = torch.randn(4, 6199, 146, device="cuda").bfloat16().transpose(1, 2)
    b = torch.randn(90, 6199, device="cuda").bfloat16().t()
    c = torch.randn(4, 146, 90, device="cuda").bfloat16()
    x, y = torch.randn(2000, 1024, device="cuda").bfloat16(), torch.randn(1024, 512, device="cuda").bfloat16()
    references = (2.0 * (a.float() @ b.float()) + 0.5 * c.float(), x.float() @ y.float())
    if stream == "side":
        side.wait_stream(torch.cuda.current_stream())
    for _ in range(12):
        out = torch.full((4, 146, 90), float("nan"), device="cuda", dtype=torch.bfloat16)
        shifted = torch.full((2000 * 512 + 8,), float("nan"), device="cuda", dtype=torch.bfloat16)
        product = shifted[4:4 + 2000 * 512].view(2000, 512)   # (8 bytes off a 16-byte boundary)
        if stream == "side":
            side.wait_stream(torch.cuda.current_stream())
        skc.blocks.matmul(a, b, out=out, c=c, alpha=2.0, beta=0.5, stream=given)
        skc.blocks.matmul(x, y, out=product, stream=given)
        if stream == "side":
            torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        for got, want in zip((out, product), references):
            assert torch.isfinite(got).all()
            assert (got.float() - want).abs().max() <= 2e-2 * want.abs().max()


# -- arrays other than torch's (skc's, as cupy's) under the driver's capture of the launch's stream ------------------
def _driver_graph(stream, record, mode="RELAXED"):
    """record() captured on `stream` (a handle) by the driver: the instantiated graph and its executable."""
    from skc.runtime import cuda

    module = cuda.driver()
    cuda.call("cuStreamBeginCapture", stream, getattr(module.CUstreamCaptureMode, f"CU_STREAM_CAPTURE_MODE_{mode}"))
    try:
        record()
    finally:
        graph = cuda.call("cuStreamEndCapture", stream)
    return graph, cuda.call("cuGraphInstantiate", graph, 0)


@pytest.mark.parametrize("mode", ["RELAXED", "GLOBAL"])
@pytest.mark.parametrize("M,N,K,fields", [(64, 1024, 4096, {"split_k": 4}),
                                          (2048, 2048, 2048, {"stream_k": True, "tile_m": 64, "tile_n": 256})],
                         ids=["split-k", "stream-k"])
def test_split_and_stream_k_over_skc_arrays_captured_by_the_driver(M, N, K, fields, mode):
    """The path cupy's arrays take under cupy.cuda.Stream.begin_capture: the workspace and counters are the graph's
    own (allocated, zero-filled and freed in the stream), so replays after every plan was dropped, and eager calls
    between replays, compute the operands' new products (exact: small integers in f16)."""
    import gc

    import numpy as np

    from skc.blocks import MatmulConfig, matmul_host
    from skc.runtime import cuda

    config = MatmulConfig.for_problem(M, N, K, "f16", multiprocessors=132, **fields)
    rng = np.random.default_rng(0)

    def operands():
        return (rng.integers(-1, 2, (M, K)).astype(np.float16), rng.integers(-1, 2, (K, N)).astype(np.float16))

    def product(a, b):
        return (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)

    stream = int(cuda.call("cuStreamCreate", 1))   # (CU_STREAM_NON_BLOCKING)
    a, b = operands()
    a_dev, b_dev, out = skc.to_device(a), skc.to_device(b), skc.empty((M, N), "float16")
    skc.blocks.matmul(a_dev, b_dev, out, config=config, stream=stream)   # the warm-up: plan, kernel, kept set
    cuda.call("cuStreamSynchronize", stream)
    assert np.array_equal(out.numpy(), product(a, b))
    graph, executable = _driver_graph(stream, lambda: skc.blocks.matmul(a_dev, b_dev, out, config=config,
                                                                         stream=stream), mode)
    matmul_host._PLANS.clear()
    gc.collect()
    for replay in range(3):
        a, b = operands()
        a_dev.copy_from(a)
        b_dev.copy_from(b)
        out.fill_bytes(0xFF)
        skc.synchronize()
        if replay == 1:   # an eager call between replays, on the capture's stream
            skc.blocks.matmul(a_dev, b_dev, out, config=config, stream=stream)
            cuda.call("cuStreamSynchronize", stream)
            assert np.array_equal(out.numpy(), product(a, b))
            out.fill_bytes(0xFF)
            skc.synchronize()
        cuda.call("cuGraphLaunch", executable, stream)
        cuda.call("cuStreamSynchronize", stream)
        assert np.array_equal(out.numpy(), product(a, b))
    cuda.call("cuGraphExecDestroy", executable)
    cuda.call("cuGraphDestroy", graph)
    cuda.call("cuStreamDestroy", stream)
