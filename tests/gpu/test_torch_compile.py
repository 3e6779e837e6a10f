"""torch.ops.skc.matmul (skc.torch) on the GPU: a small model of two Linear-like layers and relus runs under
torch.compile(fullgraph=True) with no graph break, inside a CUDA graph, and on a side stream, each with the
same result as eager (which matches a float32 reference)."""
import pytest

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
import skc.torch  # noqa: E402,F401  (registers torch.ops.skc.*)


class TwoLayers(torch.nn.Module):
    def __init__(self, features=256, hidden=512, out=128):
        super().__init__()
        generator = torch.Generator(device="cuda").manual_seed(0)
        weight = lambda *shape: (torch.randn(*shape, device="cuda", generator=generator) / shape[0] ** 0.5)  # noqa: E731
        self.w1 = torch.nn.Parameter(weight(features, hidden).bfloat16(), requires_grad=False)
        self.b1 = torch.nn.Parameter(torch.randn(hidden, device="cuda", generator=generator).bfloat16(),
                                     requires_grad=False)
        self.w2 = torch.nn.Parameter(weight(hidden, out).bfloat16(), requires_grad=False)

    def forward(self, x):
        h = torch.ops.skc.matmul(x, self.w1, bias=self.b1, activation="relu")  # the epilogue fuses bias + relu
        return torch.relu(torch.ops.skc.matmul(h, self.w2))


def inputs(rows=192, features=256, seed=1):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(rows, features, device="cuda", generator=generator).bfloat16()


def check_against_float32(model, x, got):
    h = torch.relu(x.float() @ model.w1.float() + model.b1.float()).bfloat16()
    expected = torch.relu(h.float() @ model.w2.float())
    error = ((got.float() - expected).norm() / expected.norm()).item()
    assert error < 1e-2, error


def test_eager_matches_a_float32_reference():
    model, x = TwoLayers(), inputs()
    got = model(x)
    assert got.shape == (192, 128) and got.dtype == torch.bfloat16 and got.is_cuda
    check_against_float32(model, x, got)


def test_torch_compile_fullgraph_equals_eager_with_no_graph_break():
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model, x = TwoLayers(), inputs()
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True)
    got = compiled(x)
    torch.testing.assert_close(got, eager, rtol=0, atol=0)
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    other = inputs(seed=2)  # a second call with new data reuses the compiled graph
    torch.testing.assert_close(compiled(other), model(other), rtol=0, atol=0)


def test_inside_a_cuda_graph_equals_eager():
    model, static_x = TwoLayers(), inputs()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up (compiles and loads the kernels) outside the capture
        for _ in range(2):
            model(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = model(static_x)
    for seed in (3, 4):
        x = inputs(seed=seed)
        static_x.copy_(x)
        static_y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(static_y, model(x), rtol=0, atol=0)


def test_torch_compile_reduce_overhead_uses_cuda_graphs_and_equals_eager():
    import torch._dynamo

    torch._dynamo.reset()
    model = TwoLayers()
    compiled = torch.compile(model, fullgraph=True, mode="reduce-overhead")
    for seed in (5, 6, 7):  # the first calls record, later ones replay
        x = inputs(seed=seed)
        torch.testing.assert_close(compiled(x).clone(), model(x), rtol=0, atol=0)


def test_the_op_runs_on_torchs_current_stream():
    """The input is written on a side stream after a long sleep: an op that launched anywhere but on that
    stream would read the NaNs that were there before."""
    model, x = TwoLayers(), inputs()
    expected = model(x)
    late = torch.full_like(x, float("nan"))
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(100_000_000)  # about 50-100 ms of GPU time
        late.copy_(x)
        got = model(late)
    side.synchronize()
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
